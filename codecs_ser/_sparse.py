"""Reading files with holes: a sparse member of a few KiB can claim gigabytes.

Holes read as zeros, but reading them costs as much as reading data, and writing
the zeros into an array makes its pages cost memory.  So a member file with holes
is read run by run: data runs are read, holes are only hashed as zeros.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import Any

from ._manifest import BlobInfo
from .errors import FormatError

#: Pieces in which verify reads and hashes a blob.
PIECE = 4 << 20


def sparse_fd(f: Any) -> int | None:
    """The descriptor of a member file with holes (fewer blocks on disk than its size),
    else None.  Holes read as zeros but reading them costs as much as data: a sparse
    file of a few KiB can claim gigabytes, so holes are skipped, not read."""
    if not hasattr(os, "SEEK_DATA"):
        return None
    try:
        fd = f.fileno()
        st = os.fstat(fd)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_blocks * 512 >= st.st_size:
        return None
    return int(fd)


def _runs(
    fd: int, start: int, length: int, blob: BlobInfo, source: str | None
) -> Iterator[tuple[int, int, bool]]:
    """(offset, size, is data) of the data and the holes in ``length`` bytes from ``start``
    of a sparse file."""
    end = start + length
    if os.fstat(fd).st_size < end:
        raise FormatError("member is truncated", path=source, member=blob.member)
    pos = start
    while pos < end:
        try:
            data = min(os.lseek(fd, pos, os.SEEK_DATA), end)
        except OSError:  # ENXIO: nothing but a hole up to the end of the file
            data = end
        if data > pos:
            yield pos, data - pos, False
            pos = data
        if pos < end:
            try:
                hole = min(os.lseek(fd, pos, os.SEEK_HOLE), end)
            except OSError:
                hole = end
            hole = max(hole, pos + 1)
            yield pos, hole - pos, True
            pos = hole


def _pread_exact(fd: int, target: memoryview, pos: int, blob: BlobInfo) -> None:
    """Fill ``target`` from ``pos`` of the file."""
    done = 0
    while done < target.nbytes:
        n = os.preadv(fd, [target[done : done + PIECE]], pos + done)
        if not n:
            raise FormatError("member is truncated", member=blob.member)
        done += n


def read_sparse(
    fd: int,
    start: int,
    n: int,
    target: memoryview | None,
    hasher: Any,
    blob: BlobInfo,
    source: str | None,
) -> None:
    """Read ``n`` bytes from ``start`` of a sparse file into ``target`` (None: into one
    reused buffer), hashing them.  Holes are neither read nor written (``target`` is
    zeroed), only hashed as zeros, so their pages never cost memory."""
    scratch: memoryview | None = None
    for pos, size, is_data in _runs(fd, start, n, blob, source):
        done = 0
        while done < size:
            k = min(size - done, PIECE)
            if not is_data:
                if hasher is not None:
                    hasher.update(_zeros()[:k])
            else:
                if target is not None:
                    piece = target[pos - start + done : pos - start + done + k]
                else:
                    scratch = scratch if scratch is not None else memoryview(bytearray(PIECE))
                    piece = scratch[:k]
                _pread_exact(fd, piece, pos + done, blob)
                if hasher is not None:
                    hasher.update(piece)
            done += k


_zero_piece: list[memoryview] = []


def _zeros() -> memoryview:
    """A piece of zeros to hash for a hole, made when first needed."""
    if not _zero_piece:
        _zero_piece.append(memoryview(bytes(PIECE)))
    return _zero_piece[0]
