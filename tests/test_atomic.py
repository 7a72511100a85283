"""Writes are atomic: a failed dump or add leaves what was there byte for byte, with no
temporary files; a successful one replaces it; streams and pipes work."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.codec import CodecBase, DecodeContext, Encoded
from codecs_ser.errors import UsageError
from codecs_ser.registry import Registry

BACKENDS = ("tar", "zip", "dir")


class Exploding:
    """A leaf whose codec fails, after the leaves before it were written."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ExplodingCodec(CodecBase):
    codec_id = "test.exploding"

    def encode(self, obj: Any) -> Encoded:
        raise obj.exc

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        raise AssertionError("never written")


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle")


def _registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register_codec(ExplodingCodec, handles=(f"{__name__}.Exploding",))
    return registry


def _hidden(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(".")]


BIG = np.arange(300_000, dtype=np.float64)  # larger than the writers' coalescing buffer

FAILURES = {
    "codec raises": lambda: {"a": BIG, "b": np.ones(3), "c": Exploding(RuntimeError("x"))},
    "codec interrupted": lambda: {"a": BIG, "c": Exploding(KeyboardInterrupt())},
    "pickling raises": lambda: {"a": BIG, "b": [Unpicklable()]},
}
RAISES: dict[str, type[BaseException]] = {
    "codec raises": RuntimeError,
    "codec interrupted": KeyboardInterrupt,
    "pickling raises": RuntimeError,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("failure", [*FAILURES, "bad metadata"])
def test_failed_dump_leaves_old_container(
    tmp_path: Path, backend: str, failure: str, snapshot: Any
) -> None:
    registry = _registry()
    target = tmp_path / "run"
    old = {"w": np.arange(10), "note": "old"}
    codecs_ser.dump(old, target, backend=backend)
    before = snapshot(tmp_path)
    if failure == "bad metadata":
        with pytest.raises(UsageError):
            codecs_ser.dump(
                {"a": BIG}, target, backend=backend, metadata={"x": object()}, registry=registry
            )
    else:
        with pytest.raises(RAISES[failure]):
            codecs_ser.dump(FAILURES[failure](), target, backend=backend, registry=registry)
    assert snapshot(tmp_path) == before
    assert _hidden(tmp_path) == []
    back = codecs_ser.load(target)
    assert back["note"] == "old" and back["w"].tolist() == list(range(10))


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_first_dump_leaves_nothing(tmp_path: Path, backend: str) -> None:
    registry = _registry()
    for failure in FAILURES:
        with pytest.raises(RAISES[failure]):
            codecs_ser.dump(
                FAILURES[failure](), tmp_path / "new", backend=backend, registry=registry
            )
        assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("failure", list(FAILURES))
def test_failed_add_leaves_container_intact(
    tmp_path: Path, backend: str, failure: str, snapshot: Any
) -> None:
    registry = _registry()
    target = tmp_path / "run"
    codecs_ser.dump({"w": np.arange(10)}, target, backend=backend)
    codecs_ser.add(target, {"m": np.ones(4)}, name="first")
    before = snapshot(tmp_path)
    with pytest.raises(RAISES[failure]):
        codecs_ser.add(target, FAILURES[failure](), name="extra", registry=registry)
    assert snapshot(tmp_path) == before
    assert _hidden(tmp_path) == []
    with codecs_ser.open(target) as c:
        assert c.objects == ["main", "first"]
    assert codecs_ser.verify(target) == []
    # the same name can be added once the failure is gone
    codecs_ser.add(target, {"a": BIG}, name="extra")
    assert codecs_ser.load(target, name="extra")["a"].tobytes() == BIG.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("durable", [True, False])
def test_successful_dump_replaces_old(tmp_path: Path, backend: str, durable: bool) -> None:
    target = tmp_path / "run"
    codecs_ser.dump({"old_only": np.ones(5), "shared": np.zeros(2)}, target, backend=backend)
    codecs_ser.dump({"shared": np.full(3, 7.0)}, target, backend=backend, durable=durable)
    back = codecs_ser.load(target)
    assert list(back) == ["shared"]
    assert back["shared"].tolist() == [7.0, 7.0, 7.0]
    assert list(codecs_ser.load_arrays(target)) == ["shared"]
    assert os.listdir(tmp_path) == ["run"]
    if backend == "dir":
        assert not (target / "old_only.npy").exists()
    codecs_ser.add(target, {"more": np.ones(1)}, name="more", durable=durable)
    assert codecs_ser.load(target, name="more")["more"].tolist() == [1.0]
    assert os.listdir(tmp_path) == ["run"]


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_mapped_arrays_survive_replacement(tmp_path: Path, backend: str) -> None:
    target = tmp_path / "run"
    codecs_ser.dump({"a": np.arange(100_000)}, target, backend=backend)
    mapped = codecs_ser.load(target, mmap=True)["a"]
    codecs_ser.dump({"a": np.zeros(10)}, target, backend=backend)
    assert mapped.tolist() == list(range(100_000))
    assert codecs_ser.load(target)["a"].tolist() == [0.0] * 10


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_dump_to_a_pipe(backend: str) -> None:
    obj = {"big": BIG, "small": [np.arange(3), "x"], "scalar": np.float32(2.5)}
    read_fd, write_fd = os.pipe()
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as r:
            received.append(r.read())

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with os.fdopen(write_fd, "wb") as w:
            assert not w.seekable()
            codecs_ser.dump(obj, w, backend=backend)
    finally:
        reader.join(timeout=30)
    assert not reader.is_alive()
    data = received[0]
    back = codecs_ser.loads(data)
    assert back["big"].tobytes() == BIG.tobytes()
    assert back["small"][0].tolist() == [0, 1, 2] and back["small"][1] == "x"
    assert type(back["scalar"]) is np.float32 and back["scalar"] == 2.5
    assert codecs_ser.verify(data) == []
    with codecs_ser.open(data) as c:
        assert c.backend == backend
