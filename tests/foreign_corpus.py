"""Hostile and damaged foreign files, built byte by byte (no torch or safetensors needed).

Each case is (name, bytes, expected): expected is "raise" (load_arrays must raise a
clear FormatError) or a sorted list of the array names load_arrays must return.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

SENTINEL = "pwned-by-foreign"


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(n: int) -> bytes:
    return pickle.dumps(n, protocol=2)[2:-1]


def storage(key: str = "0", kind: str = "FloatStorage", numel: int = 4) -> bytes:
    """The persistent id torch writes for a storage."""
    return (
        b"(" + _str("storage") + _g("torch", kind) + _str(key) + _str("cpu") + _int(numel) + b"tQ"
    )


def tensor(
    shape: tuple[int, ...] = (4,), stride: tuple[int, ...] = (1,), offset: int = 0, **kw: Any
) -> bytes:
    """A ``_rebuild_tensor_v2`` call as torch pickles it."""
    dims = b"(" + b"".join(_int(n) for n in shape) + b"t"
    strides = b"(" + b"".join(_int(n) for n in stride) + b"t"
    return (
        _g("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + storage(**kw)
        + _int(offset)
        + dims
        + strides
        + b"\x89"
        + _g("collections", "OrderedDict")
        + b")R"
        + b"tR"
    )


def call(module: str, name: str, *args: bytes) -> bytes:
    return _g(module, name) + b"(" + b"".join(args) + b"tR"


def pkl(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def dict_of(**items: bytes) -> bytes:
    return b"}(" + b"".join(_str(k) + v for k, v in items.items()) + b"u"


def torch_zip(
    data_pkl: bytes, storages: dict[str, bytes] | None = None, root: str = "archive"
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", data_pkl)
        zf.writestr(f"{root}/byteorder", "little")
        for key, data in (storages if storages is not None else {"0": bytes(16)}).items():
            zf.writestr(f"{root}/data/{key}", data)
        zf.writestr(f"{root}/version", "3\n")
    return buf.getvalue()


def safetensors(header: Any, data: bytes, *, raw_header: bytes | None = None) -> bytes:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _st(offsets: list[tuple[str, list[int], list[int]]], data_len: int) -> bytes:
    header = {n: {"dtype": "F32", "shape": s, "data_offsets": o} for n, s, o in offsets}
    return safetensors(header, bytes(data_len))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}".encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _patch_zip_size(data: bytes, name: bytes, size: int) -> bytes:
    """Claim another uncompressed size for a member, in both its headers."""
    out = bytearray(data)
    at = 0
    while (at := out.find(name, at + 1)) != -1:
        if out[at - 30 : at - 26] == b"PK\x03\x04":
            struct.pack_into("<I", out, at - 30 + 22, size)
        elif out[at - 46 : at - 42] == b"PK\x01\x02":
            struct.pack_into("<I", out, at - 46 + 24, size)
    return bytes(out)


def _deep_list(depth: int) -> bytes:
    return pkl(b"]" * depth + b"a" * (depth - 1))


def _bomb() -> bytes:
    data = zip_of({"a.npy": npy_bytes(np.zeros(1000))}, zipfile.ZIP_DEFLATED)
    return _patch_zip_size(data, b"a.npy", 0xFFFF_FFF0)


def _crc_damaged() -> bytes:
    data = bytearray(zip_of({"a.npy": npy_bytes(np.arange(8.0))}))
    data[data.find(b"\x00\x00\x00\x00\x00\x00\xf0?")] ^= 0xFF  # a byte of array data
    return bytes(data)


#: Cases whose damage only checksum verification finds, which mmap skips by default.
UNVERIFIED_WITH_MMAP = {"npz/crc-damaged"}
F32 = np.arange(4, dtype=np.float32).tobytes()
CASES: dict[str, tuple[Callable[[], bytes], Any]] = {
    # torch: code a pickle asks to run, run never
    "torch/os-system": (
        lambda: torch_zip(pkl(call("os", "system", _str(f"touch {SENTINEL}")))),
        [],
    ),
    "torch/import-module": (
        lambda: torch_zip(pkl(call("importlib", "import_module", _str("antigravity")))),
        [],
    ),
    "torch/builtins-eval": (
        lambda: torch_zip(pkl(call("builtins", "eval", _str(f"open('{SENTINEL}','w')")))),
        [],
    ),
    "torch/tensor-inside-os-system": (
        lambda: torch_zip(pkl(call("os", "system", tensor())), {"0": F32}),
        ["_args/0"],
    ),
    "torch/newobj-of-hostile-class": (
        lambda: torch_zip(pkl(_g("subprocess", "Popen") + b"(" + _str("x") + b"t\x81" + b"}b")),
        [],
    ),
    "torch/state-dict": (lambda: torch_zip(pkl(dict_of(w=tensor()))), ["w"]),
    # torch: damaged structure
    "torch/storage-shorter-than-claimed": (
        lambda: torch_zip(pkl(dict_of(w=tensor(numel=4))), {"0": bytes(8)}),
        "raise",
    ),
    "torch/view-past-storage": (
        lambda: torch_zip(pkl(dict_of(w=tensor(shape=(4,), stride=(2,))))),
        "raise",
    ),
    "torch/offset-past-storage": (lambda: torch_zip(pkl(dict_of(w=tensor(offset=1)))), "raise"),
    "torch/expanded-view-ok": (
        lambda: torch_zip(pkl(dict_of(w=tensor(shape=(1000, 4), stride=(0, 1))))),
        ["w"],
    ),
    "torch/huge-expanded-view": (
        lambda: torch_zip(pkl(dict_of(w=tensor(shape=(1 << 40,), stride=(0,))))),
        "raise",
    ),
    "torch/missing-storage": (lambda: torch_zip(pkl(dict_of(w=tensor())), {}), "raise"),
    "torch/quantized-storage": (
        lambda: torch_zip(pkl(dict_of(w=tensor(kind="QInt8Storage")))),
        "raise",
    ),
    "torch/sparse-tensor": (
        lambda: torch_zip(pkl(call("torch._utils", "_rebuild_sparse_tensor", _int(0)))),
        "raise",
    ),
    "torch/persistent-id-not-storage": (lambda: torch_zip(pkl(_str("x") + b"Q")), "raise"),
    "torch/deep-lists": (lambda: torch_zip(_deep_list(200_000)), "raise"),
    "torch/memo-get-before-put": (lambda: torch_zip(pkl(b"h\x05")), "raise"),
    "torch/huge-string-length": (
        lambda: torch_zip(b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"abc."),
        "raise",
    ),
    "torch/truncated-pickle": (lambda: torch_zip(pkl(dict_of(w=tensor()))[:-9]), "raise"),
    "torch/ext-registry": (lambda: torch_zip(pkl(b"\x82\x01")), "raise"),
    "torch/legacy": (
        lambda: b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.",
        "raise",
    ),
    "torch/unhashable-set-key": (lambda: torch_zip(pkl(b"}(]]u")), []),
    # safetensors
    "st/ok": (lambda: _st([("a", [2], [0, 8]), ("b", [2], [8, 16])], 16), ["a", "b"]),
    "st/overlap": (lambda: _st([("a", [2], [0, 8]), ("b", [2], [4, 12])], 12), "raise"),
    "st/gap": (lambda: _st([("a", [2], [0, 8]), ("b", [2], [12, 20])], 20), "raise"),
    "st/past-end": (lambda: _st([("a", [2], [0, 8]), ("b", [2], [8, 16])], 12), "raise"),
    "st/trailing-bytes": (lambda: _st([("a", [2], [0, 8])], 12), "raise"),
    "st/shape-disagrees": (lambda: _st([("a", [3], [0, 8])], 8), "raise"),
    "st/huge-shape": (lambda: _st([("a", [1 << 62, 1 << 62], [0, 8])], 8), "raise"),
    "st/header-past-file": (lambda: struct.pack("<Q", 1000) + b"{}", "raise"),
    "st/not-json": (lambda: safetensors(None, b"", raw_header=b"{nope"), "raise"),
    "st/deep-json": (lambda: safetensors(None, b"", raw_header=b"{" + b"[" * 100_000), "raise"),
    "st/duplicate-key": (
        lambda: safetensors(
            None,
            bytes(8),
            raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            b'"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        ),
        "raise",
    ),
    "st/bad-dtype": (
        lambda: safetensors(
            {"a": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 8]}}, bytes(8)
        ),
        "raise",
    ),
    "st/big-int": (
        lambda: safetensors(None, b"", raw_header=b'{"a":' + b"9" * 5000 + b"}"),
        "raise",
    ),
    # numpy
    "npy/huge-shape-short-data": (lambda: npy_header((1 << 40,)) + bytes(8), "raise"),
    "npy/object": (lambda: npy_header((1,), "|O") + pickle.dumps(0), "raise"),
    "npy/truncated-header": (lambda: npy_header((3,))[:20], "raise"),
    "npz/bomb": (_bomb, "raise"),
    "npz/crc-damaged": (_crc_damaged, "raise"),
    "npz/member-not-npy": (lambda: zip_of({"a.npy": b"not an npy"}), "raise"),
    "pkl-utils/member-not-npy": (lambda: zip_of({"pkl": pickle.dumps(1), "W": b"junk"}), "raise"),
    "pkl-utils/hostile-pickle": (
        lambda: zip_of(
            {
                "pkl": pkl(call("os", "system", _str(f"touch {SENTINEL}"))),
                "W": npy_bytes(np.ones(2)),
            }
        ),
        ["W"],
    ),
    "blocks/parameters-not-npz": (
        lambda: tar_of({"_parameters": b"junk", "_pkl": pickle.dumps(1)}),
        "raise",
    ),
    "blocks/hostile-pickle": (
        lambda: tar_of(
            {
                "_parameters": zip_of({"|mlp.W.npy": npy_bytes(np.ones(2))}),
                "_pkl": pkl(call("os", "system", _str(f"touch {SENTINEL}"))),
            }
        ),
        ["/mlp.W"],
    ),
}
