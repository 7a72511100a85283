"""Hostile files against the torch plugin: its safe globals and its decoder.

Every pickle that tries to run code, allocate without bound or build an
impossible object through a global the plugin contributes, and every damaged
entry (meta, shapes, strides, shared buffers), gives a codecs_ser error.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import torch

import codecs_ser
from codecs_ser._safe_pickle import unpickle_skeleton
from codecs_ser.errors import CodecsSerError, FormatError, UntrustedError
from codecs_ser.registry import default_registry


class _Call:
    """Pickles as ``func(*args)``: how a hostile file spells any call."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Any:
        return (self.func, self.args)


def _raw(module: str, name: str, args: tuple[Any, ...], op: bytes, state: Any = None) -> bytes:
    """A pickle applying ``op`` (REDUCE, NEWOBJ) to the global and ``args``, then BUILD."""
    body = pickle.dumps(args, protocol=2)[2:-1]
    out = b"\x80\x04" + b"\x8c" + bytes([len(module)]) + module.encode()
    out += b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93" + body + op
    if state is not None:
        out += pickle.dumps(state, protocol=2)[2:-1] + pickle.BUILD
    return out + pickle.STOP


def _unpickle(data: bytes) -> Any:
    return unpickle_skeleton(data, lambda i: None, plugin_globals=default_registry.safe_global)


def _load(obj: Any) -> Any:
    return _unpickle(obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=4))


def test_contributed_globals_load_untrusted() -> None:
    value = {
        "size": torch.Size([2, 3]),
        "device": torch.device("cuda", 1),
        "dtype": torch.float8_e4m3fn,
    }
    assert _load(value) == value


HOSTILE: list[tuple[str, Callable[[], Any]]] = [
    ("size-of-strings", lambda: _Call(torch.Size, (("a",),))),
    ("size-negative", lambda: _Call(torch.Size, ((-1,),))),
    ("size-huge-dim", lambda: _Call(torch.Size, ((1 << 70,),))),
    ("size-too-many-dims", lambda: _Call(torch.Size, (tuple(range(65)),))),
    ("size-a-list", lambda: _Call(torch.Size, ([1, 2],))),
    ("size-two-args", lambda: _Call(torch.Size, ((1,), (2,)))),
    ("size-by-newobj", lambda: _raw("torch", "Size", ((1, 2),), pickle.NEWOBJ)),
    ("device-bad-type", lambda: _Call(torch.device, ("cuda; rm -rf /",))),
    ("device-huge-index", lambda: _Call(torch.device, ("cuda", 1 << 40))),
    ("device-negative-index", lambda: _Call(torch.device, ("cpu", -1))),
    ("device-three-args", lambda: _Call(torch.device, ("cpu", 0, 0))),
    ("device-unknown-kind", lambda: _Call(torch.device, ("nosuchdevice",))),
    ("device-by-newobj", lambda: _raw("torch", "device", ("cpu",), pickle.NEWOBJ)),
    ("device-given-state", lambda: _raw("torch", "device", ("cpu",), pickle.REDUCE, {"a": 1})),
    ("size-given-state", lambda: _raw("torch", "Size", ((1,),), pickle.REDUCE, {"a": 1})),
    ("dtype-called", lambda: _raw("torch", "float32", (), pickle.REDUCE)),
    ("dtype-called-with-args", lambda: _raw("torch", "bfloat16", (1, 2), pickle.REDUCE)),
    ("dtype-by-newobj", lambda: _raw("torch", "float16", (), pickle.NEWOBJ)),
    ("state-dict-of-a-list", lambda: _Call(_state_dict(), ([1], {}))),
    ("state-dict-metadata-a-str", lambda: _Call(_state_dict(), ({}, "x"))),
    ("state-dict-three-args", lambda: _Call(_state_dict(), ({}, {}, {}))),
    (
        "state-dict-by-build",
        lambda: _raw("collections", "OrderedDict", (), pickle.REDUCE, {"_metadata": 1}),
    ),
    (
        "state-dict-given-state",
        lambda: _raw("codecs_ser_torch._pickling", "state_dict", ({}, {}), pickle.REDUCE, {"x": 1}),
    ),
    ("torch-load", lambda: _Call(torch.load, ("x.pt",))),
    ("torch-rebuild-tensor", lambda: _Call(torch._utils._rebuild_tensor_v2, (None,) * 6)),
    ("torch-from-file", lambda: _Call(torch.from_file, ("/etc/passwd",))),
    ("torch-empty-huge", lambda: _Call(torch.empty, (1 << 40,))),
]


def _state_dict() -> Any:
    from codecs_ser_torch._pickling import state_dict

    return state_dict


@pytest.mark.parametrize("name,make", HOSTILE, ids=[n for n, _ in HOSTILE])
def test_hostile_pickles_are_refused(name: str, make: Callable[[], Any]) -> None:
    made = make()
    with pytest.raises((FormatError, UntrustedError)):
        _load(made if isinstance(made, bytes) else {"x": made})


def test_size_allocations_are_metered() -> None:
    dims = tuple(range(64))  # pickled once, then referred to: a tiny pickle, many calls
    data = pickle.dumps([_Call(torch.Size, (dims,)) for _ in range(20000)], 4)
    with codecs_ser.limits(max_pickle_alloc=1 << 16), pytest.raises(FormatError):
        _unpickle(data)


# -- damaged entries ------------------------------------------------------------------------


def _dumped(tmp_path: Path, obj: Any) -> Path:
    path = tmp_path / "c"
    codecs_ser.dump(obj, path, backend="dir")
    return path


def _edit(path: Path, name: str, change: Callable[[list[Any]], None]) -> None:
    """Rewrite one entry record of a dir container's manifest, as an attacker would: the
    manifest's own checksum is dropped (a revision 1.0 manifest has none), so what is
    tested is the entry, not that checksum."""
    mpath = path / ".codecs_ser" / "manifest.msgpack"
    m = msgpack.unpackb(mpath.read_bytes(), raw=False)
    m.pop("manifest_checksum", None)
    i = m["names"].index(name)
    record = msgpack.unpackb(m["entries"][i], raw=False)
    change(record)
    m["entries"][i] = msgpack.packb(record, use_bin_type=True)
    mpath.write_bytes(msgpack.packb(m, use_bin_type=True))


def _meta(**fields: Any) -> Callable[[list[Any]], None]:
    def change(record: list[Any]) -> None:
        record[6].update(fields)

    return change


def _buffer(**fields: Any) -> Callable[[list[Any]], None]:
    def change(record: list[Any]) -> None:
        record[7][0][9].update(fields)

    return change


def _blob(index: int, value: Any) -> Callable[[list[Any]], None]:
    def change(record: list[Any]) -> None:
        record[7][0][index] = value

    return change


BAD_ENTRIES: list[tuple[str, str, Callable[[list[Any]], None]]] = [
    ("unknown-dtype", "w", _meta(dtype="float128")),
    ("dtype-not-a-str", "w", _meta(dtype=[1])),
    ("dtype-disagrees-with-blob", "w", _meta(dtype="float64")),
    ("bool-requires-grad", "i", _meta(requires_grad=True)),
    ("requires-grad-not-bool", "w", _meta(requires_grad=1)),
    ("unknown-layout", "w", _meta(layout="jagged")),
    ("meta-shape-huge", "m", _meta(shape=[1 << 40, 1 << 40])),
    ("meta-shape-negative", "m", _meta(shape=[-1])),
    ("meta-shape-too-many-dims", "m", _meta(shape=[1] * 65)),
    ("strides-not-dense", "cl", _meta(strides=[1, 1, 1, 1])),
    ("strides-huge", "cl", _meta(strides=[1 << 40, 1, 1, 1])),
    ("sparse-shape-too-small", "coo", _meta(shape=[1, 1])),
    ("sparse-coalesced-not-bool", "coo", _meta(coalesced="yes")),
    ("csr-shape-wrong", "csr", _meta(shape=[2, 2])),
    ("complex32-not-pairs", "c32", _blob(5, [6])),
    ("buffer-offset-outside", "b", _buffer(offset=1 << 40)),
    ("buffer-strides-outside", "b", _buffer(strides=[1 << 30, 4])),
    ("buffer-negative-stride", "b", _buffer(strides=[-4, 4])),
    ("buffer-strides-wrong-rank", "b", _buffer(strides=[4])),
    ("buffer-sparse-and-huge", "b", _buffer(nbytes=1 << 45)),
    ("buffer-sizes-disagree", "b", _buffer(nbytes=10_000)),
    ("buffer-misaligned", "b", _buffer(offset=2)),
    ("buffer-not-a-map", "b", _blob(9, [1, 2])),
    ("buffer-id-missing", "b", _buffer(id=None)),
]


def _sample() -> dict[str, Any]:
    base = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    dense = torch.eye(3)
    return {
        "w": torch.randn(3, 3),
        "i": torch.arange(3),
        "m": torch.empty(2, device="meta"),
        "cl": torch.randn(1, 2, 3, 4).to(memory_format=torch.channels_last),
        "coo": dense.to_sparse(),
        "csr": dense.to_sparse_csr(),
        "c32": torch.zeros(3, dtype=torch.complex64).to(torch.complex32),
        "base": base,
        "b": base[2:5],
    }


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")
@pytest.mark.parametrize("case,name,change", BAD_ENTRIES, ids=[c for c, _, _ in BAD_ENTRIES])
def test_damaged_entries_are_format_errors(
    case: str, name: str, change: Callable[[list[Any]], None], tmp_path: Path
) -> None:
    path = _dumped(tmp_path, _sample())
    _edit(path, name, change)
    with pytest.raises(CodecsSerError):
        codecs_ser.load(path)
    with pytest.raises(CodecsSerError), codecs_ser.open(path) as c:
        c.read(name)


def test_view_bytes_must_agree_with_the_buffer(tmp_path: Path) -> None:
    path = _dumped(tmp_path, _sample())
    (path / "b.npy").write_bytes((path / "b.npy").read_bytes()[:-4] + b"\x00\x00\x80\x7f")
    with codecs_ser.open(path) as c:
        member = c.entries["b"].blobs[0]
    # Fix the checksum so only the disagreement remains.
    import xxhash

    digest = xxhash.xxh3_64_hexdigest((path / "b.npy").read_bytes())
    _edit(path, "b", _blob(7, f"xxh3_64:{digest}"))
    assert member.member == "b.npy"
    with pytest.raises(FormatError, match="other bytes"):
        codecs_ser.load(path)
