"""add(): named objects appended to a container, bytes already stored not stored again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.errors import ConcurrentWriteError, FormatError, UsageError

BACKENDS = ("tar", "zip", "dir")
BIG = np.random.default_rng(3).standard_normal(200_000)  # 1.6 MB


def size_of(target: Path) -> int:
    if target.is_dir():
        return sum(
            os.path.getsize(os.path.join(folder, f))
            for folder, _, files in os.walk(target)
            for f in files
        )
    return target.stat().st_size


@pytest.fixture(params=BACKENDS)
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    target = tmp_path / f"run.{request.param}"
    codecs_ser.dump(
        {"w": BIG, "b": np.arange(5), "cfg": {"lr": 0.1}},
        target,
        backend=request.param,
        metadata={"epoch": 3},
    )
    return target


def test_add_appends_named_objects(container: Path) -> None:
    codecs_ser.add(container, {"exp_avg": np.zeros(7), "step": 3}, name="optimizer")
    codecs_ser.add(container, [np.ones(2), "tail"], name="history")
    with codecs_ser.open(container) as c:
        assert c.objects == ["main", "optimizer", "history"]
        assert c.metadata == {"epoch": 3}
        assert "optimizer/exp_avg" in c.entries
        assert "history/0" in c.entries
    first = codecs_ser.load(container)
    assert first["cfg"] == {"lr": 0.1}
    assert first["w"].tobytes() == BIG.tobytes()
    assert codecs_ser.load(container, name="main")["b"].tolist() == list(range(5))
    opt = codecs_ser.load(container, name="optimizer")
    assert opt["step"] == 3 and opt["exp_avg"].tolist() == [0.0] * 7
    hist = codecs_ser.load(container, name="history")
    assert hist[0].tolist() == [1.0, 1.0] and hist[1] == "tail"
    for mmap in (False, True):
        assert codecs_ser.load(container, name="optimizer", mmap=mmap)["step"] == 3
    assert sorted(codecs_ser.load_arrays(container, name="optimizer")) == ["exp_avg"]
    assert {"w", "b", "optimizer/exp_avg", "history/0"} <= set(codecs_ser.load_arrays(container))
    assert codecs_ser.verify(container) == []


def test_add_does_not_store_known_bytes_again(container: Path) -> None:
    before = size_of(container)
    codecs_ser.add(container, {"w_again": BIG.copy(), "new": np.ones(3)}, name="copy")
    grown = size_of(container) - before
    assert grown < BIG.nbytes // 4
    with codecs_ser.open(container) as c:
        original = c.entries["w"].blobs[0]
        again = c.entries["copy/w_again"].blobs[0]
        assert again.member == original.member
        assert again.offset == original.offset
        assert again.checksum == original.checksum
        assert c.entries["copy/new"].blobs[0].member != original.member
    back = codecs_ser.load(container, name="copy")
    assert back["w_again"].tobytes() == BIG.tobytes()
    assert codecs_ser.load(container, name="copy", mmap=True)["w_again"].tobytes() == BIG.tobytes()
    assert codecs_ser.load_arrays(container)["copy/w_again"].tobytes() == BIG.tobytes()
    assert codecs_ser.verify(container) == []


def test_add_stores_different_arrays(container: Path) -> None:
    before = size_of(container)
    changed = BIG.copy()
    changed[-1] += 1.0
    same_bytes_other_dtype = BIG.view(np.int64)
    codecs_ser.add(container, {"changed": changed, "as_int": same_bytes_other_dtype}, name="v2")
    assert size_of(container) - before >= 2 * BIG.nbytes
    with codecs_ser.open(container) as c:
        members = {c.entries[n].blobs[0].member for n in ("w", "v2/changed", "v2/as_int")}
    assert len(members) == 3
    back = codecs_ser.load(container, name="v2")
    assert back["changed"].tobytes() == changed.tobytes()
    assert back["as_int"].dtype == np.int64
    assert back["as_int"].tobytes() == BIG.tobytes()


def test_add_with_existing_name_is_refused(container: Path) -> None:
    codecs_ser.add(container, {"a": np.ones(1)}, name="extra")
    size = size_of(container)
    for name in ("main", "extra"):
        with pytest.raises(UsageError):
            codecs_ser.add(container, {"a": np.zeros(1)}, name=name)
    assert size_of(container) == size
    assert codecs_ser.load(container, name="extra")["a"].tolist() == [1.0]


def test_add_an_object_named_like_an_entry(container: Path) -> None:
    # Its entries go under "w/" beside the member "w.npy": different names on every disk.
    codecs_ser.add(container, {"w": np.ones(1), "x": np.zeros(1)}, name="w")
    assert codecs_ser.load(container, name="w")["w"].tolist() == [1.0]
    with codecs_ser.open(container) as c:
        assert {"w/w", "w/x"} <= set(c.entries)
    assert codecs_ser.verify(container) == []


@pytest.mark.parametrize("taken", ["MAIN", "Main", "main"])
def test_object_names_are_unique_ignoring_case(container: Path, taken: str) -> None:
    with pytest.raises(UsageError, match="already holds an object"):
        codecs_ser.add(container, {"x": np.ones(1)}, name=taken)
    codecs_ser.add(container, {"x": np.ones(1)}, name="\u00c5")
    with pytest.raises(UsageError, match="ignoring case"):
        codecs_ser.add(container, {"x": np.ones(1)}, name="A\u030a")


def test_add_with_its_own_checksum(tmp_path: Path) -> None:
    for backend in BACKENDS:
        target = tmp_path / f"c.{backend}"
        codecs_ser.dump({"a": np.ones(3)}, target, backend=backend)
        codecs_ser.add(target, {"b": np.arange(3.0)}, name="more", checksum="sha256")
        with codecs_ser.open(target) as c:
            assert c.entries["more/b"].blobs[0].checksum.startswith("sha256:")
            assert c.entries["a"].blobs[0].checksum.startswith("xxh3_64:")
        assert codecs_ser.verify(target) == []
        with pytest.raises(UsageError):
            codecs_ser.add(target, {"b": 1}, name="bad", checksum="md5")


def test_add_keeps_the_container_checksum(tmp_path: Path) -> None:
    for backend in BACKENDS:
        target = tmp_path / f"sha.{backend}"
        codecs_ser.dump({"a": np.ones(3)}, target, backend=backend, checksum="sha256")
        codecs_ser.add(target, {"b": np.zeros(3)}, name="more")
        with codecs_ser.open(target) as c:
            assert c.entries["more/b"].blobs[0].checksum.startswith("sha256:")
        assert codecs_ser.verify(target) == []


def test_add_to_something_that_is_not_a_container(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"x" * 2048)
    with pytest.raises(FormatError):
        codecs_ser.add(junk, {"a": np.ones(1)}, name="x")
    assert junk.read_bytes() == b"x" * 2048
    with pytest.raises(FileNotFoundError):
        codecs_ser.add(tmp_path / "missing.tar", {"a": np.ones(1)}, name="x")
    assert sorted(os.listdir(tmp_path)) == ["junk.tar"]


def test_many_adds_keep_every_object(container: Path) -> None:
    for i in range(5):
        codecs_ser.add(container, {"i": i, "arr": np.full(3, i), "w": BIG}, name=f"obj{i}")
    with codecs_ser.open(container) as c:
        assert c.objects == ["main"] + [f"obj{i}" for i in range(5)]
        members = {c.entries[f"obj{i}/w"].blobs[0].member for i in range(5)}
        assert members == {c.entries["w"].blobs[0].member}
    for i in range(5):
        back = codecs_ser.load(container, name=f"obj{i}")
        assert back["i"] == i and back["arr"].tolist() == [i] * 3
    assert size_of(container) < 2 * BIG.nbytes


class _AddsMeanwhile:
    """Pickling it runs another add() to the same container: a second writer, mid-add."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        codecs_ser.add(self.target, {"x": np.arange(7)}, name="meanwhile")
        return (dict, ())


def test_add_that_raced_another_writer_loses_nothing(container: Path) -> None:
    with pytest.raises(ConcurrentWriteError) as info:
        codecs_ser.add(container, {"late": _AddsMeanwhile(container)}, name="late")
    assert str(container) in str(info.value)
    with codecs_ser.open(container) as c:
        assert c.objects == ["main", "meanwhile"]
        assert c.verify() == []
        np.testing.assert_array_equal(c.load("meanwhile")["x"], np.arange(7))
    codecs_ser.add(container, {"late": 1}, name="late")  # the retry works
    with codecs_ser.open(container) as c:
        assert c.objects == ["main", "meanwhile", "late"]
