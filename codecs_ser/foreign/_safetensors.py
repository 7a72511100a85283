"""safetensors files: an 8-byte header length, a JSON header, then the tensors' bytes.

The header is checked as the safetensors library checks it: every tensor's byte
range matches its dtype and shape, and the ranges tile the data exactly (no
overlap, no gap, nothing past the end).  bfloat16 and float8 follow
:mod:`codecs_ser.foreign._dtypes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .._limits import exceeded, get_limits
from ..errors import FormatError
from ._dtypes import as_readable, bits_dtype
from ._source import Source
from ._spec import ForeignArray, ForeignFile

#: The safetensors library refuses larger headers too.
MAX_HEADER = 100_000_000

#: safetensors dtype -> the name codecs_ser's torch plugin uses for it.
DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "F16": "float16",
    "BF16": "bfloat16",
    "U32": "uint32",
    "I32": "int32",
    "F32": "float32",
    "F64": "float64",
    "U64": "uint64",
    "I64": "int64",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
}


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"the header names {k!r} twice")
        out[k] = v
    return out


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class _Safetensors(ForeignFile):
    description: ClassVar[str] = "safetensors file"

    def __init__(self, src: Source) -> None:
        self._src = src
        if src.size < 8:
            raise FormatError("a safetensors file is at least 8 bytes long")
        n = int.from_bytes(src.read_at(0, 8), "little")
        if n > MAX_HEADER:
            raise FormatError(f"the safetensors header claims {n} bytes, more than {MAX_HEADER}")
        if 8 + n > src.size:
            raise FormatError(f"the safetensors header claims {n} bytes but the file ends first")
        try:
            header = json.loads(src.read_at(8, n).decode("utf-8"), object_pairs_hook=_pairs)
        except FormatError:
            raise
        except (ValueError, RecursionError) as e:
            raise FormatError(f"the safetensors header is not JSON: {type(e).__name__}") from None
        if not isinstance(header, dict):
            raise FormatError("the safetensors header is not a JSON object")
        meta = header.pop("__metadata__", None)
        if meta is not None and not (
            isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
        ):
            raise FormatError("the safetensors __metadata__ is not a map of strings")
        self._metadata = dict(meta or {})
        if len(header) > get_limits().max_entries:
            raise FormatError(exceeded("the number of tensors", len(header), "max_entries"))
        self._start = 8 + n
        data_size = src.size - self._start
        info: dict[str, ForeignArray] = {}
        spans: list[tuple[int, int, str]] = []
        for name, t in header.items():
            if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
                raise FormatError(f"tensor {name!r}: expected dtype, shape and data_offsets")
            kind, shape, offsets = t["dtype"], t["shape"], t["data_offsets"]
            if kind not in DTYPES:
                raise FormatError(f"tensor {name!r}: dtype {str(kind)[:40]!r} is not read")
            if not isinstance(shape, list) or not all(_int(d) for d in shape):
                raise FormatError(f"tensor {name!r}: the shape is not a list of sizes")
            if len(shape) > get_limits().max_ndim:
                raise FormatError(exceeded("the number of dimensions", len(shape), "max_ndim"))
            if not (
                isinstance(offsets, list) and len(offsets) == 2 and all(_int(o) for o in offsets)
            ):
                raise FormatError(f"tensor {name!r}: data_offsets is not [begin, end]")
            begin, end = offsets
            dtype = bits_dtype(DTYPES[kind])
            need = dtype.itemsize
            for d in shape:
                need *= d
                if need > data_size:
                    break
            if end < begin or end - begin != need:
                raise FormatError(
                    f"tensor {name!r}: its byte range {begin}..{end} does not hold its "
                    f"{kind} {tuple(shape)}"
                )
            spans.append((begin, end, name))
            info[name] = ForeignArray(
                name,
                dtype,
                tuple(shape),
                need,
                {"dtype": DTYPES[kind], "member": name, "offset": self._start + begin},
            )
        at = 0
        for begin, end, name in sorted(spans):
            if begin != at:
                what = "overlaps the one before it" if begin < at else "leaves a gap before it"
                raise FormatError(f"tensor {name!r}: its byte range {what}")
            at = end
        if at != data_size:
            raise FormatError(
                f"the tensors' bytes end at {at} but the data is {data_size} bytes long"
                if at < data_size
                else f"the tensors claim {at} bytes but the data is {data_size} bytes long"
            )
        self._info = info

    @property
    def arrays_info(self) -> Mapping[str, ForeignArray]:
        return self._info

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    def read(self, name: str, *, mmap: bool = False, verify: bool | None = None) -> np.ndarray:
        a = self._info[name]
        buf = self._src.array_at(
            int(a.info["offset"]), a.nbytes, mmap=mmap, what=f"tensor {name!r}"
        )
        arr = np.ndarray(a.shape, a.dtype, buffer=buf)
        return as_readable(arr, str(a.info["dtype"]))


class SafetensorsReader:
    """A safetensors file: the header's first byte after its length is ``{``."""

    format_id: ClassVar[str] = "safetensors"

    def sniff(self, source: Source) -> bool:
        if source.size < 10 or source.head[8:9] != b"{":
            return False
        n = int.from_bytes(source.head[:8], "little")
        return 2 <= n <= MAX_HEADER  # one that claims more than the file is refused by open

    def open(self, source: Source) -> ForeignFile:
        return _Safetensors(source)
