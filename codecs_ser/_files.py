"""File plumbing shared by the one-file backends: atomic replacement, sequential
writing with a running offset, and bounded reads of a byte range."""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from collections.abc import Iterable
from typing import Any, BinaryIO

from . import _tempfiles
from .errors import ConcurrentWriteError, FormatError, TargetExistsError

#: Small members are gathered into one write of about this size.
COALESCE = 1 << 20
#: Reads up to this size are copied out of a mapping of the file instead.
MAPPED_READ = 1 << 16


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def identity(path: str) -> tuple[int, ...] | None:
    """What tells whether a file was replaced or rewritten since it was last looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class AtomicFile:
    """A new file beside ``path`` that replaces it only on ``commit``.

    The temporary file is locked while it is written (see ``_tempfiles``); a
    successful commit removes the temporary files of killed writers of ``path``.
    """

    def __init__(self, path: str, *, durable: bool, expect: Any = None) -> None:
        """``expect``: the :func:`identity` the target must still have at commit (for add)."""
        self.path = os.path.abspath(path)
        self.durable = durable
        self._expect = expect
        if os.path.isdir(self.path):
            raise TargetExistsError(
                f"{self.path!r} is a folder; choose a file name, or backend='dir' to write a folder"
            )
        self.tmp, fd = _tempfiles.create_file(self.path)
        # A second descriptor keeps the lock until the rename is done.
        self._lock_fd = os.dup(fd)
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=0)

    def commit(self) -> None:
        try:
            self.file.flush()
            if self.durable:
                os.fsync(self.file.fileno())
            self.file.close()
            if self._expect is not None and identity(self.path) != self._expect:
                raise ConcurrentWriteError(self.path)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        os.close(self._lock_fd)
        if self.durable:
            fsync_dir(os.path.dirname(self.path))
        _tempfiles.sweep(self.path)

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)


class SeqWriter:
    """Writes sequentially to a file object, gathering small writes, counting the offset."""

    def __init__(self, file: BinaryIO, start: int = 0) -> None:
        self.file = file
        self.pos = start
        self._buf = bytearray()

    def write(self, data: Any) -> None:
        n = len(data) if isinstance(data, (bytes, bytearray)) else memoryview(data).nbytes
        if n == 0:
            return
        if n < COALESCE:
            self._buf += data
            if len(self._buf) >= COALESCE:
                self.flush()
        else:
            self.flush()
            self._write_all(memoryview(data).cast("B"))
        self.pos += n

    def write_parts(self, parts: tuple[Any, ...], size: int) -> None:
        """Gather a small member's pieces (header, data, padding) with one bookkeeping step;
        ``size`` is the data's length, checked against what the parts hold."""
        buf = self._buf
        start = len(buf)
        for part in parts:
            buf += part
        added = len(buf) - start
        if added - len(parts[0]) - len(parts[-1]) != size:
            raise ValueError("member announced a size that its data does not have")
        self.pos += added
        if len(buf) >= COALESCE:
            self.flush()

    def write_chunks(self, chunks: Iterable[memoryview], size: int) -> None:
        """Write chunks that must add up to exactly ``size`` bytes."""
        start = self.pos
        for chunk in chunks:
            self.write(chunk)
        if self.pos - start != size:
            raise ValueError(f"member announced {size} bytes but {self.pos - start} were given")

    def flush(self) -> None:
        if self._buf:
            self._write_all(memoryview(self._buf))
            self._buf = bytearray()

    def _write_all(self, view: memoryview) -> None:
        while view.nbytes:
            written = self.file.write(view)
            if written is None:  # a non-blocking raw stream that is not ready
                raise BlockingIOError("target file object would block")
            view = view[written:]


def copy_prefix(src_path: str, dst: BinaryIO, length: int) -> None:
    """Copy the first ``length`` bytes of a file, in the kernel where it can."""
    with open(src_path, "rb", buffering=0) as src:
        remaining = length
        offset = 0
        dst_fd = dst.fileno()
        use_kernel = hasattr(os, "copy_file_range")
        while remaining:
            n = 0
            if use_kernel:
                try:
                    n = os.copy_file_range(src.fileno(), dst_fd, min(remaining, 1 << 30), offset)
                except OSError:
                    use_kernel = False
            if not use_kernel:
                src.seek(offset)
                chunk = src.read(min(remaining, 1 << 24))
                n = len(chunk)
                if n:
                    dst.write(chunk)
            if n == 0:
                raise FormatError("container is shorter than its index says", path=src_path)
            offset += n
            remaining -= n


class Source:
    """A readable, seekable container file: a path, a file object, or bytes in memory."""

    def __init__(self, source: Any) -> None:
        self.name: str | None = None
        self._mmap: mmap.mmap | None = None
        self._owned = False
        self._bytes: memoryview | None = None
        self._whole: memoryview | None = None
        self._no_map = False
        self._view: memoryview | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._bytes = memoryview(source).cast("B")
            self.file: BinaryIO = io.BytesIO(self._bytes)
            self.base = 0
            self.size = self._bytes.nbytes
        elif isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            try:
                self.file = open(self.name, "rb", buffering=1 << 16)
            except IsADirectoryError:
                raise FormatError(
                    "expected a container file, found a folder", path=self.name
                ) from None
            self._owned = True
            self.base = 0
            self.size = os.fstat(self.file.fileno()).st_size
        else:
            self.file = source
            self.name = (
                getattr(source, "name", None)
                if isinstance(getattr(source, "name", None), str)
                else None
            )
            self.base = source.tell()
            end = source.seek(0, os.SEEK_END)
            source.seek(self.base)
            self.size = end - self.base

    def read_at(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``offset``; FormatError if the file is shorter."""
        if offset < 0 or size < 0 or offset + size > self.size:
            raise FormatError("container is truncated or an offset is out of range", path=self.name)
        self.file.seek(self.base + offset)
        data = self.file.read(size)
        if len(data) != size:
            raise FormatError("container is truncated", path=self.name)
        return data

    def searchable(self) -> Any:
        """The source as an object with ``rfind`` and slicing (an mmap or bytes), in file
        offsets from its base... or None; for scanning a few bytes without copying."""
        if self._mapped() is None or self.base:
            return None
        if self._mmap is not None:
            return self._mmap
        obj = self._bytes.obj if self._bytes is not None else None
        return obj if isinstance(obj, bytes) else None

    def whole_view(self) -> memoryview | None:
        """The source from its base on, as one read-only view, where it can be mapped."""
        if self._view is None:
            whole = self._mapped()
            if whole is not None:
                self._view = whole[self.base : self.base + self.size]
        return self._view

    def readinto_at(self, offset: int, buffer: Any) -> None:
        """Fill ``buffer`` with the bytes at ``offset``; FormatError if the file is shorter."""
        view = memoryview(buffer)
        if view.format != "B":
            view = view.cast("B")
        if offset < 0 or offset + view.nbytes > self.size:
            raise FormatError("member lies outside the container (truncated file?)", path=self.name)
        if view.nbytes <= MAPPED_READ and self._mapped() is not None:
            # Many small members: a copy out of the page cache beats a seek and a read each.
            start = self.base + offset
            view[:] = self._whole[start : start + view.nbytes]  # type: ignore[index]
            return
        f = self.file
        f.seek(self.base + offset)
        pos = 0
        while pos < view.nbytes:
            n = f.readinto(view[pos:])  # type: ignore[attr-defined]
            if not n:
                raise FormatError("container is truncated", path=self.name)
            pos += n

    def _mapped(self) -> memoryview | None:
        """The whole source as one read-only view (bytes, or an mmap of the file), if it can be."""
        if self._whole is None and not self._no_map:
            if self._bytes is not None:
                self._whole = self._bytes
            else:
                try:
                    fileno = self.file.fileno()
                    if self.size + self.base > 0:
                        # Copy-on-write: a framework that cannot hold read-only memory
                        # (torch) may write to its tensors; the file never changes.
                        self._mmap = mmap.mmap(fileno, 0, access=mmap.ACCESS_COPY)
                        self._whole = memoryview(self._mmap)
                except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
                    self._no_map = True
        return self._whole

    def range(self, offset: int, size: int) -> RangeReader:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise FormatError("member lies outside the container (truncated file?)", path=self.name)
        return RangeReader(self, offset, size)

    def map(self, offset: int, size: int) -> memoryview | None:
        """A read-only zero-copy view of a byte range (None where the source cannot map)."""
        if offset < 0 or size < 0 or offset + size > self.size:
            raise FormatError("member lies outside the container (truncated file?)", path=self.name)
        if size == 0:
            return memoryview(b"")
        whole = self._mapped()
        if whole is None:
            return None
        start = self.base + offset
        return whole[start : start + size].toreadonly()

    def close(self) -> None:
        # An mmap with arrays still viewing it stays alive until they are gone.
        self._mmap = None
        self._whole = None
        self._view = None
        if self._owned:
            self.file.close()


class RangeReader(io.RawIOBase):
    """Reads one member's byte range of a :class:`Source`, never past its end."""

    def __init__(self, source: Source, offset: int, size: int) -> None:
        self._source = source
        self._start = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(view.nbytes, self._size - self._pos)
        if n <= 0:
            return 0
        f = self._source.file
        f.seek(self._source.base + self._start + self._pos)
        got = f.readinto(view[:n])  # type: ignore[attr-defined]
        got = got or 0
        self._pos += got
        return got
