"""One pass over an object's small plain-array entries before its skeleton is rebuilt.

A checkpoint of thousands of small arrays spends most of its load time in
per-entry Python work: parsing a record field by field, building descriptions,
dispatching to the codec, locating, hashing and copying each member.  For the
common record (a numpy.ndarray entry of codec version 1 with one small blob,
no metadata, no shared buffer) this pass does the same checks in one loop and
reads each member out of the mapped file.  Anything else, and anything that
fails a check here, is left to the general path, which reads it again and
raises its usual error: this pass only ever adds arrays that path would return.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import msgpack
import numpy as np

from . import _checksum
from ._limits import get_limits
from ._manifest import NDARRAY_CODEC, Manifest, plain_dtype, valid_name
from ._npy import build_header, shape_fits
from .backend import ContainerReader, MemberRef

#: Members up to this size are copied out of the mapping one by one.
SMALL_MEMBER = 1 << 16


class PlainPrefetch:
    """The whole-object pass of one reader: records are unpacked and sorted by object
    once, then each object's plain small arrays are read when that object is loaded."""

    def __init__(self, m: Manifest, reader: ContainerReader, *, verify: bool) -> None:
        self._m = m
        self._reader = reader
        self._verify = verify
        self._by_object: dict[int, list[tuple[int, list[Any]]]] | None = None
        self._digests: dict[str, Callable[[Any], str]] = {}

    def run(
        self,
        obj_index: int,
        decoded: dict[int, Any],
        owners: dict[int, int],
        advance: Callable[[int], None] | None = None,
    ) -> None:
        """Decode the plain small arrays of object ``obj_index`` into ``decoded`` (entry
        index -> array) and note each one's object in ``owners``."""
        if not getattr(self._reader, "maps_cheaply", False):
            return
        limits = get_limits()
        if limits.max_dtype_fields < 1:
            return
        if self._by_object is None:
            self._by_object = self._sort(limits.max_ndim)
        for i, blob in self._by_object.pop(obj_index, []):
            if i in decoded:
                continue
            found = self._read(blob)
            if found is False:
                return  # no view (an unmappable source, a deflated zip member): general path
            if found is not None:
                decoded[i] = found
                owners[i] = obj_index
                if advance is not None:
                    advance(found.nbytes)

    def _sort(self, max_ndim: int) -> dict[int, list[tuple[int, list[Any]]]]:
        """Entries whose record has the plain form, by object: (index, blob record)."""
        out: dict[int, list[tuple[int, list[Any]]]] = {}
        names = self._m.names
        n_objects = len(self._m.objects)
        unpackb = msgpack.unpackb
        for i, raw in enumerate(self._m.raw_entries):
            if type(raw) is not bytes or len(raw) > 1024:
                continue
            try:
                rec = unpackb(raw, raw=False)
            except Exception:
                continue
            if (
                type(rec) is not list
                or len(rec) != 8
                or type(rec[0]) is not int
                or not 0 <= rec[0] < n_objects
                or rec[2] != NDARRAY_CODEC
                or type(rec[3]) is not int
                or rec[3] != 1
                or type(rec[1]) is not str
                or type(rec[6]) is not dict
                or rec[6]
                or (rec[4] is not None and type(rec[4]) is not str)
                or (rec[5] is not None and type(rec[5]) is not str)
                or type(rec[7]) is not list
                or len(rec[7]) != 1
            ):
                continue
            b = rec[7][0]
            if type(b) is not list or len(b) != 9:
                continue
            role, member, offset, size, descr, shape, fortran, checksum, bname = b
            name = names[i]
            if (
                type(role) is not str
                or bname is not None
                or type(name) is not str
                or member != name + ".npy"
                or type(offset) is not int
                or offset < 0
                or type(size) is not int
                or not 0 <= size <= SMALL_MEMBER
                or type(descr) is not str
                or type(shape) is not list
                or len(shape) > max_ndim
                or not all(type(d) is int and d >= 0 for d in shape)
                or type(fortran) is not bool
                or type(checksum) is not str
                or not valid_name(name)
            ):
                continue
            out.setdefault(rec[0], []).append((i, b))
        return out

    def _read(self, blob: list[Any]) -> np.ndarray | Literal[False] | None:
        """The array of a plain blob; None leaves it to the general path, False says the
        source cannot be mapped at all."""
        _, member, offset, size, descr, shape, fortran, checksum, _ = blob
        dtype = plain_dtype(descr)
        if dtype is None or not shape_fits(shape, dtype.itemsize):
            return None
        try:
            view = self._reader.map_member(MemberRef(member, offset, size))
        except Exception:
            return None
        if view is None:
            return False
        shape = tuple(shape)
        hlen = _header_length(view, dtype, shape, fortran, descr)
        if hlen is None:
            return None
        if self._verify:
            algorithm, _, digest = checksum.partition(":")
            one_shot = self._digests.get(algorithm)
            if one_shot is None:
                if algorithm not in _checksum.ALGORITHMS:
                    return None
                one_shot = self._digests[algorithm] = _checksum.one_shot(algorithm)
            if one_shot(view) != digest:
                return None
        return _copy(view, hlen, dtype, shape, fortran)


def _header_length(
    view: memoryview, dtype: np.dtype, shape: tuple[int, ...], fortran: bool, descr: str
) -> int | None:
    """The header length, if the member starts with the header we write and holds as
    many data bytes as the shape implies; None sends the entry to the general path."""
    expected = build_header(descr, fortran, shape)
    hlen = len(expected)
    if hlen + dtype.itemsize * math.prod(shape) != view.nbytes:
        return None
    if view[:hlen].tobytes() != expected:  # bytes compare faster than memoryviews do
        return None
    return hlen


def _copy(
    view: memoryview, hlen: int, dtype: np.dtype, shape: tuple[int, ...], fortran: bool
) -> np.ndarray:
    """A writeable array of its own holding the member's data."""
    if view.nbytes == hlen:
        return np.empty(shape, dtype, order="F" if fortran else "C")
    flat = np.frombuffer(view, dtype, offset=hlen).copy()
    if len(shape) == 1:
        return flat
    return flat.reshape(shape, order="F" if fortran else "C")
