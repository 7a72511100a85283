"""Shared buffers: leaves whose arrays view one piece of memory (format.md 3.1, ``buffer``).

On write, arrays that codecs return as :class:`BufferView` are grouped by key; a
group of two or more leaves becomes one buffer of the container.  Every blob
still holds its own array's bytes, except that an array placed exactly like one
already written names that blob's member instead of writing the bytes again.
On read, the buffer is rebuilt once per load from its blobs (without a copy
when one blob is the whole buffer), and each blob is checked to show in it
exactly the bytes it stores, so the file cannot mean two different things.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

from ._manifest import BlobInfo
from .codec import BufferView
from .errors import FormatError

#: A buffer is shared only while its blobs hold at least 1/DENSITY of its bytes
#: (plus SLACK): sparser views are stored unshared, and readers refuse sparser
#: buffers, so a hostile file cannot make a reader allocate far more than it holds.
DENSITY = 64
SLACK = 1 << 20


def extent(
    offset: int, shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int
) -> tuple[int, int] | None:
    """The byte range [low, high) an array view touches, None when it touches nothing."""
    low = high = offset
    for n, s in zip(shape, strides, strict=True):
        if n == 0:
            return None
        if s < 0:
            low += (n - 1) * s
        else:
            high += (n - 1) * s
    return low, high + itemsize


def natural_strides(shape: tuple[int, ...], itemsize: int, fortran: bool) -> tuple[int, ...]:
    """Strides of a contiguous array in C (or Fortran) order."""
    strides = [0] * len(shape)
    step = itemsize
    order = range(len(shape)) if fortran else range(len(shape) - 1, -1, -1)
    for i in order:
        strides[i] = step
        step *= max(shape[i], 1)
    return tuple(strides)


class Placement(NamedTuple):
    """Where one array of a dump lies in its shared buffer."""

    buffer_id: int
    record: dict[str, Any]
    alias: tuple[Any, ...]


class SharePlan:
    """Groups the buffer views of one object's leaves and numbers the shared buffers."""

    def __init__(self, first_id: int) -> None:
        self.next_id = first_id
        self._groups: dict[Hashable, list[tuple[int, str, BufferView]]] = {}
        self._placed: dict[tuple[int, str], Placement] = {}

    def add(self, leaf: int, role: str, view: BufferView) -> None:
        if view.key is None or view.dtype.itemsize == 0:
            return
        span = extent(view.offset, view.shape, view.strides, view.dtype.itemsize)
        if span is None:
            return
        if span[0] < 0 or span[1] > view.buffer.nbytes:
            raise TypeError(f"a buffer view of role {role!r} lies outside its buffer")
        self._groups.setdefault(view.key, []).append((leaf, role, view))

    def plan(self) -> None:
        for members in self._groups.values():
            if len({leaf for leaf, _, _ in members}) < 2:
                continue
            spans = [extent(v.offset, v.shape, v.strides, v.dtype.itemsize) for _, _, v in members]
            low = min(s[0] for s in spans if s is not None)
            high = max(s[1] for s in spans if s is not None)
            distinct = {_alias(v): v for _, _, v in members}
            stored = sum(v.dtype.itemsize * int(np.prod(v.shape)) for v in distinct.values())
            if high - low > DENSITY * stored + SLACK:
                continue
            buffer_id = self.next_id
            self.next_id += 1
            for leaf, role, v in members:
                record = {
                    "id": buffer_id,
                    "nbytes": high - low,
                    "offset": v.offset - low,
                    "strides": list(v.strides),
                }
                self._placed[(leaf, role)] = Placement(buffer_id, record, _alias(v))

    def placement(self, leaf: int, role: str) -> Placement | None:
        return self._placed.get((leaf, role))


def _alias(v: BufferView) -> tuple[Any, ...]:
    return (v.key, v.offset, tuple(v.shape), tuple(v.strides), v.dtype.str)


# -- reading -----------------------------------------------------------------------


def view_in(buf: np.ndarray, blob: BlobInfo, source: str | None, entry: str) -> np.ndarray:
    """The blob's array as a view of its (already checked) shared buffer."""
    info = blob.buffer
    assert info is not None
    view = BufferView(info.id, buf, info.offset, blob.shape, info.strides, blob.dtype)
    return view.array()


def _check_extent(blob: BlobInfo, source: str | None, entry: str) -> None:
    info = blob.buffer
    assert info is not None
    if len(info.strides) != len(blob.shape) or blob.dtype.itemsize == 0:
        raise FormatError("a blob's buffer view does not fit its shape", path=source, member=entry)
    span = extent(info.offset, blob.shape, info.strides, blob.dtype.itemsize)
    if span is not None and (span[0] < 0 or span[1] > info.nbytes):
        raise FormatError("a blob's view lies outside its shared buffer", path=source, member=entry)


def _covers(blob: BlobInfo, nbytes: int) -> bool:
    info = blob.buffer
    assert info is not None
    return (
        info.offset == 0
        and blob.nbytes == nbytes
        and info.strides == natural_strides(blob.shape, blob.dtype.itemsize, blob.fortran_order)
    )


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    size = a.dtype.itemsize
    if size in (1, 2, 4, 8) and a.dtype.fields is None and b.dtype.fields is None:
        kind = np.dtype(f"u{size}")
        return bool(np.array_equal(a.view(kind), b.view(kind)))
    return a.tobytes() == b.tobytes()


def raw_bytes(arr: np.ndarray) -> np.ndarray:
    """The bytes of a contiguous array as a 1-d uint8 array, without a copy."""
    if arr.nbytes == 0:
        return np.empty(0, np.uint8)
    return arr.reshape(-1, order="A").view(np.uint8)


def assemble(
    members: list[tuple[str, BlobInfo]],
    read: Callable[[BlobInfo, str], np.ndarray],
    source: str | None,
) -> np.ndarray:
    """Rebuild one shared buffer from the blobs placed in it."""
    first = members[0][1].buffer
    assert first is not None
    nbytes = first.nbytes
    distinct: dict[tuple[Any, ...], tuple[str, BlobInfo]] = {}
    for entry, blob in members:
        assert blob.buffer is not None
        if blob.buffer.nbytes != nbytes:
            raise FormatError(
                "the blobs of one shared buffer disagree on its size", path=source, member=entry
            )
        _check_extent(blob, source, entry)
        key = (blob.member, blob.offset, blob.buffer, blob.shape, blob.dtype.str)
        distinct.setdefault(key, (entry, blob))
    stored = sum(blob.nbytes for _, blob in distinct.values())
    if nbytes > DENSITY * stored + SLACK:
        raise FormatError(
            f"a shared buffer of {nbytes} bytes holds only {stored} bytes of arrays",
            path=source,
            member=members[0][0],
        )
    owner = next((eb for eb in distinct.values() if _covers(eb[1], nbytes)), None)
    if owner is not None:
        buf = raw_bytes(read(owner[1], owner[0]))
        others = [eb for eb in distinct.values() if eb is not owner]
    else:
        buf = np.zeros(nbytes, np.uint8)
        others = list(distinct.values())
        for entry, blob in others:
            view = view_in(buf, blob, source, entry)
            if view.size:
                view[...] = read(blob, entry)
    for entry, blob in others:
        if not _same_bytes(view_in(buf, blob, source, entry), read(blob, entry)):
            raise FormatError(
                "a blob shows other bytes than its shared buffer holds there",
                path=source,
                member=entry,
            )
    return buf
