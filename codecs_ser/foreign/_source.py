"""The bytes of a foreign file, read by range: from a path (read or mapped) or from memory.

Foreign readers never trust a size or an offset they read: every range is checked
against the file before a byte is read or a buffer allocated.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import mmap as _mmap
import os
import struct
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import numpy as np

from .._container import HOT_PIECE
from ..backends._crc32 import crc32
from ..errors import FormatError, UsageError

HEAD = 4096
#: A deflated member may not claim to grow more than this (deflate's own limit is
#: about 1032), so a zip bomb is refused before it is inflated.
MAX_RATIO = 1100
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIG = 0x04034B50


class Source:
    """A foreign file: a path (mapped on demand) or bytes held in memory."""

    def __init__(self, source: Any) -> None:
        self.path: str | None = None
        self._file: BinaryIO | None = None
        self._map: _mmap.mmap | None = None
        self._view: memoryview | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._view = memoryview(source).cast("B")
            self.size = len(self._view)
        elif isinstance(source, (str, os.PathLike)):
            self.path = os.fspath(source)
            self._file = builtins.open(self.path, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
        elif hasattr(source, "read"):
            data = source.read()
            if not isinstance(data, (bytes, bytearray)):
                raise UsageError("a foreign file object must be opened in binary mode")
            self._view = memoryview(data)
            self.size = len(data)
        else:
            raise UsageError(
                f"source must be a path, a readable binary file or bytes, not {type(source).__name__}"
            )
        self._base = 0
        self._root = self
        self._init_lazy()

    def _init_lazy(self) -> None:
        self.head = self.read_at(0, min(HEAD, self.size))
        self._zip: zipfile.ZipFile | bool | None = False
        self._tar: list[tarfile.TarInfo] | bool | None = False

    def window(self, offset: int, size: int, what: str) -> Source:
        """The bytes ``offset .. offset + size`` as a source of their own (a tar member)."""
        self.check_range(offset, size, what)
        sub = object.__new__(Source)
        sub.path, sub._file, sub._view, sub._map = self.path, self._file, self._view, None
        sub._base, sub._root, sub.size = self._base + offset, self._root, size
        sub._init_lazy()
        return sub

    # -- ranges ---------------------------------------------------------------

    def check_range(self, offset: int, n: int, what: str) -> None:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise FormatError(
                f"{what} claims bytes {offset}..{offset + n} but the file has {self.size}",
                path=self.path,
            )

    def read_at(self, offset: int, n: int, what: str = "a range") -> bytes:
        self.check_range(offset, n, what)
        offset += self._base
        if self._view is not None:
            return bytes(self._view[offset : offset + n])
        assert self._file is not None
        self._file.seek(offset)
        data = self._file.read(n)
        if len(data) != n:
            raise FormatError(f"{what} is truncated (the file shrank)", path=self.path)
        return data

    def array_at(
        self,
        offset: int,
        n: int,
        *,
        mmap: bool,
        what: str,
        on_piece: Callable[[memoryview], None] | None = None,
    ) -> np.ndarray:
        """``n`` bytes as a uint8 array: a read-only view with ``mmap``, else a writable copy.

        ``on_piece`` sees the bytes of a copy piece by piece, right after each is copied
        (while it is in the CPU's cache): a checksum then costs no second pass.
        """
        self.check_range(offset, n, what)
        offset += self._base
        if mmap:
            return np.frombuffer(self._root._mapped(), np.uint8, n, offset)
        out = np.empty(n, np.uint8)
        step = HOT_PIECE if on_piece is not None else max(n, 1)
        for start in range(0, n, step):
            piece = out.data[start : start + step]
            self._copy_into(piece, offset + start, what)
            if on_piece is not None:
                on_piece(piece)
        return out

    def _copy_into(self, buffer: memoryview, offset: int, what: str) -> None:
        """Fill ``buffer`` with the bytes at ``offset`` (from the root, base included)."""
        if self._view is not None:
            buffer[:] = memoryview(self._view)[offset : offset + len(buffer)]
            return
        assert self._file is not None
        self._file.seek(offset)
        if cast(Any, self._file).readinto(buffer) != len(buffer):
            raise FormatError(f"{what} is truncated (the file shrank)", path=self.path)

    def _mapped(self) -> Any:
        if self._view is not None:
            return self._view
        if self._map is None:
            assert self._file is not None
            if self.size == 0:
                return b""
            self._map = _mmap.mmap(self._file.fileno(), 0, access=_mmap.ACCESS_READ)
        return self._map

    def stream(self) -> BinaryIO:
        """A seekable file object over the whole source (for zipfile and tarfile)."""
        if self._view is not None:
            return io.BytesIO(self._view[self._base : self._base + self.size])
        assert self._file is not None
        if self._base == 0 and self.size == self._root.size:
            return self._file
        return _Window(self._file, self._base, self.size)  # type: ignore[return-value]

    # -- containers other formats use ---------------------------------------

    def zip(self) -> zipfile.ZipFile | None:
        """The file as a zip archive, or None if it is not one (parsed once)."""
        if self._zip is False:
            self._zip = None
            if self.head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                try:
                    self._zip = zipfile.ZipFile(self.stream())
                except Exception:  # any damage: simply not a zip a reader can claim
                    self._zip = None
        return self._zip if isinstance(self._zip, zipfile.ZipFile) else None

    def tar_members(self, limit: int = 64) -> list[tarfile.TarInfo] | None:
        """The first ``limit`` members of the file as a tar archive, or None."""
        if self._tar is False:
            self._tar = None
            if self.head[257:262] == b"ustar":
                found: list[tarfile.TarInfo] = []
                try:
                    stream = self.stream()
                    stream.seek(0)
                    with tarfile.open(fileobj=stream, mode="r:") as tf:
                        for info in tf:
                            found.append(info)
                            if len(found) >= limit:
                                break
                    self._tar = found
                except Exception:
                    self._tar = None
        return self._tar if isinstance(self._tar, list) else None

    def close(self) -> None:
        if self._root is not self:
            return
        if self._map is not None:
            with contextlib.suppress(BufferError):  # arrays still view it: it closes with them
                self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()


class _Window(io.RawIOBase):
    """A read-only, seekable file object over a range of another file."""

    def __init__(self, f: BinaryIO, base: int, size: int) -> None:
        super().__init__()
        self._f, self._base, self._size, self._pos = f, base, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        start = (0, self._pos, self._size)[whence]
        self._pos = max(0, start + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        if not n:
            return 0
        self._f.seek(self._base + self._pos)
        got = self._f.readinto(memoryview(b)[:n])  # type: ignore[attr-defined]
        self._pos += got
        return int(got)


def zip_member_offset(src: Source, info: zipfile.ZipInfo) -> int:
    """Where a stored zip member's bytes start, from its local header (checked)."""
    local = src.read_at(info.header_offset, _LOCAL.size, f"the local header of {info.filename!r}")
    fields = _LOCAL.unpack(local)
    if fields[0] != _LOCAL_SIG:
        raise FormatError(
            "a zip local header has a bad signature", path=src.path, member=info.filename
        )
    start = info.header_offset + _LOCAL.size + fields[9] + fields[10]
    src.check_range(start, info.compress_size, f"member {info.filename!r}")
    return start


def zip_member_array(
    src: Source, zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, mmap: bool, verify: bool
) -> np.ndarray:
    """A zip member's bytes as uint8: mapped or read directly when stored, else inflated
    with the declared size as a hard bound."""
    if info.flag_bits & 0x1:
        raise FormatError(
            "encrypted zip members are not supported", path=src.path, member=info.filename
        )
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            raise FormatError(
                "a stored zip member has two sizes", path=src.path, member=info.filename
            )
        start = zip_member_offset(src, info)
        crc = 0

        def fold(piece: memoryview) -> None:
            nonlocal crc
            crc = crc32(piece, crc)

        what = f"member {info.filename!r}"
        hashed = verify and not mmap
        out = src.array_at(
            start, info.file_size, mmap=mmap, what=what, on_piece=fold if hashed else None
        )
        if verify and not hashed:
            fold(out.data)
        if verify and crc != info.CRC:
            raise FormatError(
                "CRC mismatch: the member is damaged", path=src.path, member=info.filename
            )
        return out
    if info.compress_type != zipfile.ZIP_DEFLATED:
        raise FormatError(
            f"zip compression method {info.compress_type} is not supported",
            path=src.path,
            member=info.filename,
        )
    src.check_range(info.header_offset, info.compress_size, f"member {info.filename!r}")
    if info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise FormatError(
            "a deflated member claims to inflate beyond what deflate can",
            path=src.path,
            member=info.filename,
        )
    out = np.empty(info.file_size, np.uint8)
    view = out.data
    got = 0
    try:
        with zf.open(info) as f:
            while got < info.file_size:
                n = f.readinto(view[got:])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
            if f.read(1):
                got += 1
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(
            f"the member does not inflate: {type(e).__name__}: {e}"[:300],
            path=src.path,
            member=info.filename,
        ) from None
    if got != info.file_size:
        raise FormatError(
            "a deflated member's size differs from the one its header gives",
            path=src.path,
            member=info.filename,
        )
    return out


def zip_member_bytes(src: Source, zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A small member whole (a pickle, a version string), bounded by ``limit``."""
    if info.file_size > limit:
        raise FormatError(
            f"member is {info.file_size} bytes, more than the {limit} allowed",
            path=src.path,
            member=info.filename,
        )
    return zip_member_array(src, zf, info, mmap=False, verify=True).tobytes()


def zip_member_head(src: Source, zf: zipfile.ZipFile, info: zipfile.ZipInfo, n: int) -> bytes:
    """The first ``n`` bytes of a member (inflating only those)."""
    if info.compress_type == zipfile.ZIP_STORED:
        start = zip_member_offset(src, info)
        return src.read_at(start, min(n, info.file_size), f"member {info.filename!r}")
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
        raise FormatError("unsupported zip member", path=src.path, member=info.filename)
    src.check_range(info.header_offset, info.compress_size, f"member {info.filename!r}")
    try:
        with zf.open(info) as f:
            return f.read(min(n, info.file_size))
    except Exception as e:
        raise FormatError(
            f"the member does not inflate: {type(e).__name__}: {e}"[:300],
            path=src.path,
            member=info.filename,
        ) from None
