""".npy headers, written byte for byte as ``numpy.save`` writes them, and read back safely.

Building the header here (and caching it) costs a fraction of
``numpy.lib.format``'s per-call work, which matters with tens of thousands of
small arrays.  Reading compares the stored header with the one the manifest
implies; only a header that differs is parsed, with numpy's literal parser.
"""

from __future__ import annotations

import ast
import reprlib
import struct
from functools import lru_cache
from typing import Any, cast

import numpy as np
from numpy.lib import format as npformat

from ._limits import exceeded, get_limits
from .errors import FormatError

MAGIC = b"\x93NUMPY"
ALIGN = 64
GROWTH_AXIS_DIGITS = 21


def descr_of(dtype: np.dtype) -> Any:
    """The .npy ``descr`` of a dtype, as msgpack-safe lists instead of tuples."""
    return _to_lists(npformat.dtype_to_descr(dtype))


def _short(value: Any) -> str:
    """A bounded repr: values from a file may be huge, or shared and exponentially deep."""
    return reprlib.repr(value)


def _to_lists(descr: Any) -> Any:
    if isinstance(descr, str):
        return descr
    out = []
    for field in descr:
        name = list(field[0]) if isinstance(field[0], tuple) else field[0]
        item = [name, _to_lists(field[1])]
        if len(field) == 3:
            item.append(list(field[2]))
        out.append(item)
    return out


#: Fields a dtype description may hold in all (a description unpickled from a
#: file may share sub-lists, so it could otherwise expand to billions).
MAX_FIELDS = 1 << 16


def _to_tuples(descr: Any, depth: int = 0, seen: list[int] | None = None) -> Any:
    if depth > 32:
        raise FormatError("dtype description is nested too deeply")
    if isinstance(descr, str):
        return descr
    if not isinstance(descr, list) or not descr:
        raise FormatError(f"bad dtype description {_short(descr)}")
    if seen is None:
        seen = [0]
    seen[0] += len(descr)
    if seen[0] > MAX_FIELDS:
        raise FormatError(f"dtype description has more than {MAX_FIELDS} fields")
    out = []
    for field in descr:
        if not isinstance(field, list) or len(field) not in (2, 3):
            raise FormatError(f"bad dtype field {_short(field)}")
        name = tuple(field[0]) if isinstance(field[0], list) else field[0]
        item: tuple[Any, ...] = (name, _to_tuples(field[1], depth + 1, seen))
        if len(field) == 3:
            if not isinstance(field[2], list) or not all(
                isinstance(n, int) and 0 <= n < 1 << 31 for n in field[2]
            ):
                raise FormatError(f"bad subarray shape in dtype field {_short(field)}")
            item += (tuple(field[2]),)
        out.append(item)
    return out


def dtype_from_descr(descr: Any, *, allow_object: bool = False) -> np.dtype:
    """The dtype a manifest ``dtype`` field names; FormatError for anything else.

    Object dtypes are refused unless ``allow_object`` (a blob never holds objects).
    """
    if isinstance(descr, str) and not allow_object:
        return _simple_dtype(descr)
    try:
        dtype = npformat.descr_to_dtype(_to_tuples(descr))
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(f"bad dtype description {_short(descr)}: {e}") from None
    if dtype.hasobject and not allow_object:
        raise FormatError("object dtypes are never stored as blobs")
    return dtype


@lru_cache(maxsize=512)
def _simple_dtype(descr: str) -> np.dtype:
    try:
        dtype = npformat.descr_to_dtype(cast(Any, descr))
    except Exception as e:
        raise FormatError(f"bad dtype description {_short(descr)}: {e}") from None
    if dtype.hasobject:
        raise FormatError("object dtypes are never stored as blobs")
    return dtype


def _header_text(descr: Any, fortran_order: bool, shape: tuple[int, ...]) -> str:
    # Same text numpy.lib.format writes: keys sorted, repr of each value, then spare
    # room for the growth axis so tools that append in place keep working.
    text = f"{{'descr': {_to_tuples(descr) if not isinstance(descr, str) else descr!r}, 'fortran_order': {fortran_order!r}, 'shape': {shape!r}, }}"
    if shape:
        text += " " * (GROWTH_AXIS_DIGITS - len(repr(shape[-1 if fortran_order else 0])))
    return text


def _wrap(text: str) -> bytes:
    try:
        body = text.encode("latin1")
        versions: tuple[tuple[int, int, str], ...] = ((1, 0, "<H"), (2, 0, "<I"))
    except UnicodeEncodeError:
        body = text.encode("utf8")
        versions = ((3, 0, "<I"),)
    for major, minor, fmt in versions:
        prefix_len = len(MAGIC) + 2 + struct.calcsize(fmt)
        hlen = len(body) + 1
        pad = ALIGN - ((prefix_len + hlen) % ALIGN)
        try:
            size = struct.pack(fmt, hlen + pad)
        except struct.error:
            continue
        return MAGIC + bytes((major, minor)) + size + body + b" " * pad + b"\n"
    raise FormatError("array header is too large for the .npy format")


@lru_cache(maxsize=4096)
def _header_cached(descr_key: str, fortran_order: bool, shape: tuple[int, ...]) -> bytes:
    return _wrap(_header_text(descr_key, fortran_order, shape))


def build_header(descr: Any, fortran_order: bool, shape: tuple[int, ...]) -> bytes:
    """The exact bytes ``numpy.save`` puts before the data of such an array."""
    if isinstance(descr, str):
        return _header_cached(descr, fortran_order, shape)
    return _wrap(_header_text(descr, fortran_order, shape))


def parse_header(data: bytes) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    """Parse a .npy header with numpy's literal parser: (dtype, fortran, shape, header length)."""
    if data[:6] != MAGIC or len(data) < 10:
        raise FormatError("blob is not a .npy file (bad magic)")
    major = data[6]
    if major == 1:
        hlen = struct.unpack("<H", data[8:10])[0]
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            raise FormatError("truncated .npy header")
        hlen = struct.unpack("<I", data[8:12])[0]
        start = 12
    else:
        raise FormatError(f"unsupported .npy format version {major}")
    if hlen > get_limits().max_npy_header_bytes:
        raise FormatError(exceeded("the .npy header", hlen, "max_npy_header_bytes"))
    if len(data) < start + hlen:
        raise FormatError("truncated .npy header")
    try:
        text = data[start : start + hlen].decode("latin1" if major < 3 else "utf8")
        header = ast.literal_eval(text)
    except Exception as e:
        raise FormatError(f"malformed .npy header: {type(e).__name__}") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise FormatError("malformed .npy header: expected keys descr, fortran_order, shape")
    shape, fortran = header["shape"], header["fortran_order"]
    if not isinstance(fortran, bool):
        raise FormatError("malformed .npy header: fortran_order is not a bool")
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise FormatError(f"malformed .npy header: bad shape {shape!r}")
    try:
        dtype = npformat.descr_to_dtype(header["descr"])
    except Exception as e:
        raise FormatError(f"malformed .npy header: bad descr ({type(e).__name__})") from None
    return dtype, bool(fortran), tuple(shape), start + hlen
