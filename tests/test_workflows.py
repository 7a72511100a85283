"""Checkpoint workflows: object metadata, replacing objects, several objects per write,
progress, and the errors of a dump to a folder that does not exist."""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser._renumber import renumber_msgpack, renumber_pickle
from codecs_ser._skeleton import pack_msgpack, pickle_skeleton, unpack_msgpack
from codecs_ser.errors import ConcurrentWriteError, FormatError, UsageError

BACKENDS = [("tar", "c.tar"), ("zip", "c.zip"), ("dir", "c")]


@pytest.fixture(params=BACKENDS, ids=[b for b, _ in BACKENDS])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    backend, name = request.param
    return backend, os.fspath(tmp_path / name)


def _checkpoint(backend: str, path: str) -> np.ndarray:
    base = np.arange(12.0)
    codecs_ser.dump({"w": np.ones(3), "base": base, "view": base[2:6]}, path, backend=backend)
    codecs_ser.add(path, {"exp_avg": np.full(4, 2.0)}, name="optimizer", metadata={"lr": 0.1})
    # Pickled, after the object that gets replaced, one leaf sharing bytes with "main".
    log = collections.OrderedDict(losses=np.full(5, 0.5), copy=base.copy())
    codecs_ser.add(path, log, name="log")
    return base


# -- metadata ----------------------------------------------------------------------------


def test_object_metadata_reads_back(target: tuple[str, str]) -> None:
    backend, path = target
    _checkpoint(backend, path)
    with codecs_ser.open(path) as c:
        assert c.object_metadata("optimizer") == {"lr": 0.1}
        assert c.object_metadata() == {} and c.object_metadata("log") == {}
        with pytest.raises(UsageError):
            c.object_metadata("nope")


# -- replace -----------------------------------------------------------------------------


def test_replace_keeps_the_others_and_drops_unused_blobs(target: tuple[str, str]) -> None:
    backend, path = target
    base = _checkpoint(backend, path)
    codecs_ser.add(path, {"step": np.arange(2)}, name="optimizer", replace=True, metadata={"k": 1})
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "optimizer", "log"]
        assert c.object_metadata("optimizer") == {"k": 1}
        assert "optimizer/exp_avg" not in c.entries
        members = {b.member for e in c.entries.values() for b in e.blobs}
        assert "optimizer/exp_avg.npy" not in members
    assert codecs_ser.verify(path) == []
    assert np.array_equal(codecs_ser.load(path, name="optimizer")["step"], np.arange(2))
    log = codecs_ser.load(path, name="log", trusted=["collections.OrderedDict"])
    assert np.array_equal(log["losses"], np.full(5, 0.5)) and np.array_equal(log["copy"], base)
    main = codecs_ser.load(path)
    assert np.shares_memory(main["view"], main["base"])
    if backend == "dir":
        assert not os.path.exists(os.path.join(path, "optimizer", "exp_avg.npy"))


def test_replacing_the_first_object_keeps_bytes_others_share(target: tuple[str, str]) -> None:
    backend, path = target
    base = _checkpoint(backend, path)
    codecs_ser.add(path, {"w": np.zeros(1)}, name="main", replace=True)
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "optimizer", "log"]
    assert list(codecs_ser.load(path)) == ["w"]
    log = codecs_ser.load(path, name="log", trusted=True)
    assert np.array_equal(log["copy"], base)  # its blob was the old main's "base"
    assert codecs_ser.verify(path) == []


def test_replace_of_a_new_name_appends(target: tuple[str, str]) -> None:
    backend, path = target
    _checkpoint(backend, path)
    codecs_ser.add(path, np.ones(2), name="extra", replace=True)
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "optimizer", "log", "extra"]


def test_names_are_compared_ignoring_case(target: tuple[str, str]) -> None:
    backend, path = target
    _checkpoint(backend, path)
    with pytest.raises(UsageError, match="ignoring case"):
        codecs_ser.add(path, np.ones(1), name="OPTIMIZER")
    codecs_ser.add(path, np.ones(1), name="OPTIMIZER", replace=True)
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "OPTIMIZER", "log"]


def test_a_failed_replace_leaves_the_container_as_it_was(
    target: tuple[str, str], snapshot: Any
) -> None:
    backend, path = target
    _checkpoint(backend, path)
    folder = Path(path).parent
    before = snapshot(folder)

    class Boom:
        def __reduce__(self) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        codecs_ser.add(path, {"x": np.ones(3), "bad": Boom()}, name="optimizer", replace=True)
    assert snapshot(folder) == before


def test_a_damaged_blob_is_never_carried_over(tmp_path: Path) -> None:
    path = tmp_path / "c.tar"
    codecs_ser.dump({"keep": np.full(64, 7, np.uint8)}, path)
    codecs_ser.add(path, np.ones(2), name="optimizer")
    data = bytearray(path.read_bytes())
    data[data.find(bytes([7] * 64))] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(codecs_ser.IntegrityError):
        codecs_ser.add(path, np.zeros(2), name="optimizer", replace=True)
    assert path.read_bytes() == bytes(data)


def test_replace_detects_a_concurrent_writer(
    target: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, path = target
    _checkpoint(backend, path)
    from codecs_ser import _rewrite

    real = _rewrite.carry_over

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        kept = real(*args, **kwargs)
        codecs_ser.add(path, np.ones(1), name="other")  # another writer commits first
        return kept

    monkeypatch.setattr(_rewrite, "carry_over", meanwhile)
    with pytest.raises(ConcurrentWriteError):
        codecs_ser.add(path, np.zeros(1), name="optimizer", replace=True)
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "optimizer", "log", "other"]
    assert codecs_ser.verify(path) == []


# -- several objects -----------------------------------------------------------------------


def test_add_objects_writes_several_at_once(target: tuple[str, str]) -> None:
    backend, path = target
    _checkpoint(backend, path)
    codecs_ser.add_objects(
        path,
        {"optimizer": {"m": np.ones(2)}, "ema": {"w": np.zeros(3)}},
        metadata={"ema": {"decay": 0.99}},
        replace=True,
    )
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "optimizer", "log", "ema"]
        assert c.object_metadata("ema") == {"decay": 0.99}
    assert codecs_ser.verify(path) == []
    with pytest.raises(UsageError, match="ignoring case"):
        codecs_ser.add_objects(path, {"a": 1, "A": 2})
    with pytest.raises(UsageError, match="metadata"):
        codecs_ser.add_objects(path, {"b": 1}, metadata={"c": {}})


def test_dump_with_more_objects(target: tuple[str, str]) -> None:
    backend, path = target
    codecs_ser.dump(
        {"w": np.ones(2)}, path, backend=backend, objects={"optimizer": {"m": np.zeros(2)}}
    )
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "optimizer"]
    assert np.array_equal(codecs_ser.load(path, name="optimizer")["m"], np.zeros(2))
    with pytest.raises(UsageError, match="ignoring case"):
        codecs_ser.dump(1, path, backend=backend, objects={"MAIN": 2})


# -- renumbering -------------------------------------------------------------------------


def test_renumber_msgpack_and_pickle() -> None:
    a, b = np.ones(1), np.zeros(1)
    refs = {id(a): 300, id(b): 70000}
    tree = {"t": (a, [b, (1, 2.5, "x", b"y")]), 3: 2**70}
    data = pack_msgpack(tree, lambda o: refs.get(id(o)))
    moved = renumber_msgpack(data, lambda i: i - 299)
    back = unpack_msgpack(moved, lambda i: f"entry {i}")
    assert back == {"t": ("entry 1", ["entry 69701", (1, 2.5, "x", b"y")]), 3: 2**70}

    obj = collections.OrderedDict(a=a, b=[b, a], big=np.arange(40000))
    refs[id(obj["big"])] = 5
    pickled = pickle_skeleton(obj, lambda o: refs.get(id(o)))
    moved = renumber_pickle(pickled, lambda i: i + 2**40)

    class Load(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return f"entry {pid}"

    out = Load(io.BytesIO(moved)).load()
    assert out == collections.OrderedDict(
        a="entry 1099511628076",
        b=["entry 1099511697776", "entry 1099511628076"],
        big="entry 1099511627781",
    )
    with pytest.raises(FormatError):
        renumber_pickle(b"\x80\x05X\x01\x00\x00\x00aQ.", lambda i: i)  # a str persistent id


# -- progress ----------------------------------------------------------------------------


def test_progress_plain_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.tar"
    state = {"a": np.ones(1000), "b": [np.zeros(10)] * 3}
    codecs_ser.dump(state, path)
    assert capsys.readouterr() == ("", "")  # nothing unless asked
    codecs_ser.dump(state, path, progress=True)
    err = capsys.readouterr().err
    assert "dump p.tar: 100% (7.9 KiB of 7.9 KiB)" in err and err.endswith("\n")
    codecs_ser.load(path, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "load p.tar: 100% (7.9 KiB of 7.9 KiB)" in err


def test_progress_uses_tqdm_where_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars: list[Any] = []

    class FakeBar:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs, self.n, self.total, self.closed = kwargs, 0, 0, False
            bars.append(self)

        def update(self, n: int) -> None:
            self.n += n

        def refresh(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    fake = types.ModuleType("tqdm")
    fake.tqdm = FakeBar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    path = tmp_path / "p.zip"
    codecs_ser.dump({"a": np.ones(100)}, path, progress=True)
    codecs_ser.load(path, progress=True)
    assert [(b.n, b.total, b.closed) for b in bars] == [(800, 800, True), (800, 800, True)]
    assert bars[0].kwargs["file"] is sys.stderr and bars[0].kwargs["desc"] == "dump p.zip"


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
def test_a_dump_into_a_missing_folder_names_the_target(tmp_path: Path, backend: str) -> None:
    target = tmp_path / "missing" / "run.tar"
    with pytest.raises(FileNotFoundError) as info:
        codecs_ser.dump({"a": np.ones(1)}, target, backend=backend)
    assert info.value.filename == os.fspath(target)
    assert os.fspath(tmp_path / "missing") in str(info.value)
    assert ".tmp" not in str(info.value)


def test_map_location_is_checked_and_leaves_numpy_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.tar"
    codecs_ser.dump({"a": np.ones(2)}, path)
    out = codecs_ser.load(path, map_location="cuda:0")
    assert type(out["a"]) is np.ndarray
    with pytest.raises(UsageError):
        codecs_ser.load(path, map_location=3)
