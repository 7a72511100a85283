""".npy headers, written byte for byte as ``numpy.save`` writes them, and read back safely.

Building the header here (and caching it) costs a fraction of
``numpy.lib.format``'s per-call work, which matters with tens of thousands of
small arrays.  Reading compares the stored header with the one the manifest
implies; only a header that differs is parsed, with numpy's literal parser.
"""

from __future__ import annotations

import ast
import re
import reprlib
import struct
from collections.abc import Sequence
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


#: A type string of one field, as numpy writes them ('<f8', '|S10', '<M8[25s]', '|b1').
#: Anything else ('u1,u1', '(3,)u1', '2i4') is numpy's comma-string syntax for records
#: and subarrays: numpy never writes it in a .npy header, but reads it, so it is counted.
_ONE_FIELD = re.compile(r"[<>|=]?[A-Za-z?][0-9]{0,12}(?:\[[0-9]{0,12}[A-Za-z]{1,3}\])?")
#: numpy's bound on an array: its itemsize times every non-zero dimension must fit in
#: intp (a zero dimension makes the array empty, not the other dimensions smaller).
MAX_EXTENT = int(np.iinfo(np.intp).max)


def shape_fits(shape: Sequence[int], itemsize: int) -> bool:
    """Whether numpy can make an array of this shape and itemsize (else it raises)."""
    extent = max(itemsize, 1)
    for n in shape:
        extent *= max(n, 1)
        if extent > MAX_EXTENT:
            return False
    return True


def _string_fields(descr: str) -> int:
    """How many fields numpy may make of a type string: one for a plain type, else at
    most one per comma-separated part (commas of subarray shapes count too)."""
    return 1 if _ONE_FIELD.fullmatch(descr) else descr.count(",") + 1


def _count(seen: list[int], n: int) -> None:
    """Add ``n`` fields to a description's running count; refuse past the limit, before
    numpy spends time and memory on each field."""
    seen[0] += n
    if seen[0] > get_limits().max_dtype_fields:
        raise FormatError(exceeded("the dtype description's fields", seen[0], "max_dtype_fields"))


def _to_tuples(descr: Any, depth: int = 0, seen: list[int] | None = None) -> Any:
    """The description as numpy takes it (tuples), checked and its fields counted; a
    description unpickled from a file may share sub-lists, so it is counted as a tree."""
    if depth > 32:
        raise FormatError("dtype description is nested too deeply")
    if seen is None:
        seen = [0]
    if isinstance(descr, str):
        # A field's type: the field is counted already, the records of a comma string not.
        _count(seen, _string_fields(descr) - (1 if depth else 0))
        return descr
    if not isinstance(descr, (list, tuple)) or not descr:
        raise FormatError(f"bad dtype description {_short(descr)}")
    _count(seen, len(descr))
    out = []
    for field in descr:
        if not isinstance(field, (list, tuple)) or len(field) not in (2, 3):
            raise FormatError(f"bad dtype field {_short(field)}")
        name = tuple(field[0]) if isinstance(field[0], list) else field[0]
        item: tuple[Any, ...] = (name, _to_tuples(field[1], depth + 1, seen))
        if len(field) == 3:
            shape = field[2]
            if (
                not isinstance(shape, (list, tuple))
                or len(shape) > get_limits().max_ndim
                or not all(type(n) is int and 0 <= n < 1 << 31 for n in shape)
            ):
                raise FormatError(f"bad subarray shape in dtype field {_short(field)}")
            item += (tuple(shape),)
        out.append(item)
    return out


def dtype_from_descr(descr: Any, *, allow_object: bool = False) -> np.dtype:
    """The dtype a manifest ``dtype`` field names; FormatError for anything else.

    Object dtypes are refused unless ``allow_object`` (a blob never holds objects).
    """
    if isinstance(descr, str) and not allow_object:
        _count([0], _string_fields(descr))
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
        dtype = dtype_from_descr(header["descr"], allow_object=True)
    except FormatError as e:
        raise FormatError(f"malformed .npy header: {e.message}") from None
    return dtype, bool(fortran), tuple(shape), start + hlen
