"""The ``example-pack`` backend: one file, the members back to back, the manifest last.

Layout (integers little-endian)::

    header    HEADER_SIZE bytes: MAGIC, then zeros
    record    RECORD (b"MEMB", name length, data size), the UTF-8 name, zeros up to
              the next 64-byte boundary, then the member's data
    ...       one record per member; the last one holds the manifest
    trailer   TRAILER: offset of the manifest's record, CRC-32 of the manifest, TRAILER_MAGIC

The header is 512 bytes so that no built-in signature can match inside it (tar's
is looked for at offset 257).  Member data starts on a 64-byte boundary, like
the data after each .npy header, so memory-mapped arrays are aligned.  Opening
a container reads the trailer and the manifest, not the records before them.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import secrets
import struct
import zlib
from collections.abc import Iterable
from typing import Any, BinaryIO

from codecs_ser.backend import MemberRef
from codecs_ser.errors import FormatError

MAGIC = b"\x89EXPACK\n"
HEADER_SIZE = 512
ALIGN = 64
MANIFEST = ".codecs_ser/manifest.msgpack"
TRAILER_MAGIC = b"EXPACK-END\x00\x00"
RECORD = struct.Struct("<4sHQ")  # tag, name length, data size
TRAILER = struct.Struct("<QI12s")  # manifest record offset, CRC-32 of the manifest, magic
HEADER = MAGIC + bytes(HEADER_SIZE - len(MAGIC))
_TAG = b"MEMB"
_COPY = 1 << 24


def _padding(pos: int) -> int:
    return -pos % ALIGN


def _write_all(file: BinaryIO, data: bytes | memoryview) -> None:
    """Write every byte, also to raw streams whose ``write`` may take only part."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = file.write(view)
        if n is None:
            raise BlockingIOError("the target file would block")
        view = view[n:]


class PackWriter:
    """Appends records to ``file``; for a path, ``commit`` renames the hidden file over it."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        pos: int,
        tmp: str | None = None,
        final: str | None = None,
        durable: bool = False,
    ) -> None:
        self._file = file
        self._pos = pos  # bytes written so far, counted from the container's first byte
        self._tmp = tmp
        self._final = final
        self._durable = durable
        self._done = False

    def write_bytes(self, data: bytes | memoryview) -> None:
        """Write bytes that belong to no member (the header, a copied prefix)."""
        _write_all(self._file, data)
        self._pos += memoryview(data).nbytes

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> int:
        raw = name.encode("utf-8")
        if not raw or len(raw) > 0xFFFF or b"\x00" in raw:
            raise ValueError(f"member name {name!r} cannot be stored")
        self.write_bytes(RECORD.pack(_TAG, len(raw), size))
        self.write_bytes(raw)
        self.write_bytes(bytes(_padding(self._pos)))
        offset = self._pos
        for chunk in chunks:
            self.write_bytes(chunk)
        if self._pos - offset != size:
            raise ValueError(f"member {name!r} announced {size} bytes, got {self._pos - offset}")
        return offset

    def commit(self, manifest: bytes) -> None:
        record = self._pos
        self.write_member(MANIFEST, len(manifest), [memoryview(manifest)])
        self.write_bytes(TRAILER.pack(record, zlib.crc32(manifest), TRAILER_MAGIC))
        self._file.flush()
        if self._tmp is None or self._final is None:
            self._done = True  # a caller's file object: it stays open and theirs
            return
        if self._durable:
            os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._final)
        self._done = True
        if self._durable:
            _fsync_dir(os.path.dirname(self._final))

    def abort(self) -> None:
        """Remove the hidden file; a caller's file object keeps what was written to it."""
        if self._done or self._tmp is None:
            return
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def _fsync_dir(folder: str) -> None:
    """Make a rename durable, where the system lets a folder be opened."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _hidden_file(path: str) -> tuple[str, BinaryIO]:
    """A new hidden file beside ``path``, so that renaming it over ``path`` is atomic."""
    folder, base = os.path.split(path)
    tmp = os.path.join(folder, f".{base}.tmp-{secrets.token_hex(4)}")
    return tmp, open(tmp, "xb")


class _Range(io.RawIOBase):
    """Reads ``size`` bytes at ``start`` of a shared file, never past them."""

    def __init__(self, file: BinaryIO, start: int, size: int) -> None:
        self._file = file
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(view.nbytes, self._size - self._pos)
        done = 0
        while done < want:
            self._file.seek(self._start + self._pos + done)
            n = self._file.readinto(view[done:want])  # type: ignore[attr-defined]
            if not n:
                break
            done += n
        self._pos += done
        return done


class PackReader:
    """Reads a pack from a path, bytes, or a seekable binary file positioned at its start."""

    def __init__(self, source: Any) -> None:
        self._name: str | None = None
        self._owned = False
        self._map: mmap.mmap | None = None
        if isinstance(source, (str, os.PathLike)):
            self._name = os.fspath(source)
            self._file: BinaryIO = open(self._name, "rb")
            self._owned = True
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self._file = io.BytesIO(bytes(source))
        else:
            self._file = source
        try:
            self._base = self._file.tell()
            self._size = self._file.seek(0, os.SEEK_END) - self._base
            self._find_manifest()
        except BaseException:
            self.close()
            raise

    def _read_at(self, offset: int, size: int) -> bytes:
        if offset < 0 or offset + size > self._size:
            raise FormatError("example-pack file is truncated", path=self._name)
        self._file.seek(self._base + offset)
        data = self._file.read(size)
        if len(data) != size:
            raise FormatError("example-pack file is truncated", path=self._name)
        return data

    def _record(self, offset: int) -> tuple[str, int, int]:
        """(name, data offset, data size) of the record at ``offset``."""
        tag, name_len, size = RECORD.unpack(self._read_at(offset, RECORD.size))
        if tag != _TAG:
            raise FormatError(f"no member record at offset {offset}", path=self._name)
        raw = self._read_at(offset + RECORD.size, name_len)
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(
                f"member name at offset {offset} is not UTF-8", path=self._name
            ) from None
        if not name or "\x00" in name:
            raise FormatError(f"bad member name at offset {offset}", path=self._name)
        end = offset + RECORD.size + name_len
        return name, end + _padding(end), size

    def _find_manifest(self) -> None:
        if self._size < HEADER_SIZE + TRAILER.size or self._read_at(0, len(MAGIC)) != MAGIC:
            raise FormatError("not an example-pack file", path=self._name)
        record, crc, magic = TRAILER.unpack(self._read_at(self._size - TRAILER.size, TRAILER.size))
        if magic != TRAILER_MAGIC or not HEADER_SIZE <= record < self._size:
            raise FormatError("example-pack file has no trailer (truncated?)", path=self._name)
        name, offset, size = self._record(record)
        if name != MANIFEST or offset + size != self._size - TRAILER.size:
            raise FormatError(
                "example-pack trailer does not point at the manifest", path=self._name
            )
        self._manifest_record = record
        self._manifest_at = (offset, size, crc)

    @property
    def manifest_record(self) -> int:
        """Where the manifest's record starts: ``append`` keeps every byte before it."""
        return self._manifest_record

    def read_manifest(self) -> bytes:
        offset, size, crc = self._manifest_at
        data = self._read_at(offset, size)
        if zlib.crc32(data) != crc:
            raise FormatError("example-pack manifest is damaged (CRC mismatch)", path=self._name)
        return data

    def _check(self, ref: MemberRef) -> int:
        """The member's offset, once it is known to lie between the header and the manifest."""
        offset = ref.offset
        if offset is None or offset < HEADER_SIZE or offset + ref.size > self._manifest_record:
            raise FormatError(
                "member lies outside the pack's members", path=self._name, member=ref.name
            )
        return offset

    def open_member(self, ref: MemberRef) -> BinaryIO:
        return io.BufferedReader(_Range(self._file, self._base + self._check(ref), ref.size))

    def map_member(self, ref: MemberRef) -> memoryview | None:
        offset = self._check(ref)
        if not self._owned:
            return None  # bytes or a caller's file object: the core reads instead
        if self._map is None:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return memoryview(self._map)[offset : offset + ref.size]

    def member_names(self) -> list[str]:
        names = []
        pos = HEADER_SIZE
        end = self._size - TRAILER.size
        while pos < end:
            name, offset, size = self._record(pos)
            names.append(name)
            pos = offset + size
        if pos != end:
            raise FormatError("example-pack records overrun the trailer", path=self._name)
        return names

    def close(self) -> None:
        # Arrays loaded with mmap=True may still view the map: drop it, never close it.
        self._map = None
        if self._owned:
            self._file.close()


class PackBackend:
    """Backend ``example-pack``: dump to a path or a writable binary file object."""

    backend_id = "example-pack"

    def create(self, target: Any, *, durable: bool) -> PackWriter:
        if hasattr(target, "write"):
            writer = PackWriter(target, pos=0)
            writer.write_bytes(HEADER)
            return writer
        final = os.path.abspath(os.fspath(target))
        if os.path.isdir(final):
            raise IsADirectoryError(
                f"{final!r} is a folder; the example-pack backend writes a file"
            )
        tmp, file = _hidden_file(final)
        writer = PackWriter(file, pos=0, tmp=tmp, final=final, durable=durable)
        try:
            writer.write_bytes(HEADER)
        except BaseException:
            writer.abort()
            raise
        return writer

    def open(self, source: Any) -> PackReader:
        return PackReader(source)

    def append(self, path: str, *, durable: bool) -> PackWriter:
        """Copy every record but the manifest's to a hidden file; the new ones follow them."""
        final = os.path.abspath(os.fspath(path))
        reader = PackReader(final)
        try:
            keep = reader.manifest_record
        finally:
            reader.close()
        tmp, file = _hidden_file(final)
        writer = PackWriter(file, pos=0, tmp=tmp, final=final, durable=durable)
        try:
            with open(final, "rb") as src:
                copied = 0
                while copied < keep:
                    chunk = src.read(min(_COPY, keep - copied))
                    if not chunk:
                        raise FormatError("example-pack file shrank while copying", path=final)
                    writer.write_bytes(chunk)
                    copied += len(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer
