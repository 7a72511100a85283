"""The zip backend: a stored (uncompressed) zip that ``numpy.load`` opens as it is.

Every array is a ``<name>.npy`` member, so ``numpy.load("run.zip")`` lists the
arrays under their hierarchical names, as Theano's pkl_utils zips did.  Each
member's data is padded to a 64-byte boundary (an extra field, as Android's
zipalign does) so mmap views are aligned.  The archive comment records where
the manifest lies, so opening reads the end record and the manifest only.
Members are written in order with data descriptors, so a pipe works as a target.
"""

from __future__ import annotations

import itertools
import re
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import xxhash

from .._clock import source_date_epoch
from .._files import AtomicFile, SeqWriter, Source, copy_prefix, identity
from .._limits import exceeded, get_limits
from ..backend import MemberRef, write_one_by_one
from ..errors import FormatError
from ._crc32 import crc32
from ._inflate import InflatingReader

MANIFEST = ".codecs_ser/manifest.msgpack"
ALIGN = 64
#: Extra-field bytes a reader searches over to find a member's local header: what the
#: writer puts (zip64 sizes, then the alignment field and its padding), then more.
_WRITER_EXTRA = 20 + 6 + ALIGN - 1
_MAX_EXTRA = 1024
U32 = 0xFFFFFFFF
U16 = 0xFFFF
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR = struct.Struct("<IIQI")
_POINTER = struct.Struct("<16sIQQQQ")  # magic, version, local header off, data off, size, xxh3
POINTER_MAGIC = b"CODECS_SER-ZIP\x00\x00"
_ALIGN_EXTRA_ID = 0xD935
_FLAG_DESCRIPTOR = 0x08
_FLAG_UTF8 = 0x800
_DRIVE = re.compile(r"[A-Za-z]:")


def extracted_name(name: str) -> str:
    """The path, relative to the folder it extracts into, where unzip (or Python's
    zipfile) puts a member: backslashes are separators (unzip converts them for archives
    made on DOS or Windows, zipfile on Windows), a drive and leading "/" are removed, and
    empty, "." and ".." components are dropped (unzip skips ".." rather than refusing)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if parts and _DRIVE.match(parts[0]):
        parts[0] = parts[0][2:]
        if not parts[0]:
            del parts[0]
    return "/".join(parts)


def _dos_time(t: float, *, utc: bool = False) -> tuple[int, int]:
    """MS-DOS (time, date) fields: local time as zip tools write it, or UTC."""
    lt = time.gmtime(t) if utc else time.localtime(t)
    if lt.tm_year < 1980:
        return 0, (1 << 5) | 1  # 1980-01-01 00:00:00, the earliest a zip can say
    if lt.tm_year > 2107:
        return (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31  # the latest
    return (
        (lt.tm_hour << 11) | (lt.tm_min << 5) | (lt.tm_sec // 2),
        ((lt.tm_year - 1980) << 9) | (lt.tm_mon << 5) | lt.tm_mday,
    )


def _writer_time() -> tuple[int, int]:
    """Now in local time, or ``SOURCE_DATE_EPOCH`` in UTC so the bytes depend on no time zone."""
    fixed = source_date_epoch()
    return _dos_time(time.time()) if fixed is None else _dos_time(fixed, utc=True)


#: Deflate turns one bit into at most 258 bytes (a match of length 258 coded in one
#: bit, its distance in another): no stream expands more than 1032 times, plus a block.
DEFLATE_MAX_RATIO = 1032


def deflate_bound(size: int) -> int:
    """The most bytes deflate (zlib's deflateBound, raw) makes of ``size`` bytes."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def _descriptor(crc: int, stored: int, size: int, zip64: bool) -> bytes:
    """The data descriptor after a member: its CRC, stored size and size."""
    if zip64:
        return struct.pack("<IIQQ", 0x08074B50, crc, stored, size)
    return struct.pack("<IIII", 0x08074B50, crc, stored, size)


@dataclass(slots=True)
class _Entry:
    name: bytes
    flags: int
    crc: int
    size: int
    header_offset: int
    dos_time: int
    dos_date: int
    method: int = 0
    csize: int = -1  # the stored size when the member is deflated

    @property
    def stored_size(self) -> int:
        return self.size if self.csize < 0 else self.csize


class ZipWriter:
    """Streams stored members, then writes the central directory and end records."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        atomic: AtomicFile | None = None,
        start: int = 0,
        entries: list[_Entry] | None = None,
        level: int | None = None,
    ) -> None:
        """``level``: deflate every member but the manifest at this level; None stores them."""
        self._atomic = atomic
        self._level = level
        self._out = SeqWriter(file, start)
        self._entries: list[_Entry] = entries or []
        self._time, self._date = _writer_time()
        self._done = False

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> int:
        if self._level is not None and name != MANIFEST:
            return self._write_deflated(name, size, chunks, self._level)
        out = self._out
        raw = name.encode("utf-8")
        flags = _FLAG_DESCRIPTOR | (0 if name.isascii() else _FLAG_UTF8)
        header_offset = out.pos
        out.write(self._stored_header(raw, flags, size, header_offset))
        data_offset = out.pos
        crc = 0
        for chunk in chunks:
            crc = crc32(chunk, crc)
            out.write(chunk)
        if out.pos - data_offset != size:
            raise ValueError(
                f"member announced {size} bytes but {out.pos - data_offset} were given"
            )
        out.write(_descriptor(crc, size, size, size >= U32))
        self._entries.append(_Entry(raw, flags, crc, size, header_offset, self._time, self._date))
        return data_offset

    def write_members(self, names: Sequence[str], blobs: Sequence[bytes]) -> list[int | None]:
        """Several small members, whole, in one write: the bytes ``write_member`` would
        write for each in turn; their offsets."""
        if self._level is not None:
            return write_one_by_one(self, names, blobs)
        at = self._out.pos
        offsets: list[int | None] = []
        parts: list[bytes] = []
        for name, blob in zip(names, blobs, strict=True):
            raw = name.encode("utf-8")
            flags = _FLAG_DESCRIPTOR | (0 if name.isascii() else _FLAG_UTF8)
            size = len(blob)
            header = self._stored_header(raw, flags, size, at)
            crc = crc32(blob)
            descriptor = _descriptor(crc, size, size, size >= U32)
            parts += (header, blob, descriptor)
            self._entries.append(_Entry(raw, flags, crc, size, at, self._time, self._date))
            offsets.append(at + len(header))
            at += len(header) + size + len(descriptor)
        self._out.write(b"".join(parts))
        return offsets

    def _local_header(
        self, raw: bytes, flags: int, method: int, extra: bytes, sizes: int, at: int
    ) -> bytes:
        """A local header, name and extra fields starting at offset ``at``, padded so that
        the data is aligned; ``sizes``: what its size fields say."""
        fixed = _LOCAL.size + len(raw) + len(extra)
        pad = -(at + fixed + 6) % ALIGN
        extra += struct.pack("<HHH", _ALIGN_EXTRA_ID, 2 + pad, ALIGN) + bytes(pad)
        version = 45 if sizes == U32 else 20
        fields = _LOCAL.pack(
            0x04034B50,
            version,
            flags,
            method,
            self._time,
            self._date,
            0,
            sizes,
            sizes,
            len(raw),
            len(extra),
        )
        return fields + raw + extra

    def _stored_header(self, raw: bytes, flags: int, size: int, at: int) -> bytes:
        if size >= U32:
            return self._local_header(
                raw, flags, 0, struct.pack("<HHQQ", 1, 16, size, size), U32, at
            )
        return self._local_header(raw, flags, 0, b"", size, at)

    def _write_deflated(
        self, name: str, size: int, chunks: Iterable[memoryview], level: int
    ) -> int:
        """A member compressed with deflate (method 8): sizes and CRC in its descriptor."""
        out = self._out
        raw = name.encode("utf-8")
        flags = _FLAG_DESCRIPTOR | (0 if name.isascii() else _FLAG_UTF8)
        # The stored size is known only at the end: zip64 when deflate's bound may need it.
        zip64 = deflate_bound(size) >= U32
        header_offset = out.pos
        zip64_extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        out.write(self._local_header(raw, flags, 8, zip64_extra, U32 if zip64 else 0, out.pos))
        data_offset = out.pos
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        crc = 0
        given = 0
        for chunk in chunks:
            crc = crc32(chunk, crc)
            given += memoryview(chunk).nbytes
            out.write(c.compress(chunk))
        out.write(c.flush())
        if given != size:
            raise ValueError(f"member announced {size} bytes but {given} were given")
        csize = out.pos - data_offset
        out.write(_descriptor(crc, csize, size, zip64))
        self._entries.append(
            _Entry(raw, flags, crc, size, header_offset, self._time, self._date, 8, csize)
        )
        return data_offset

    def commit(self, manifest: bytes) -> None:
        out = self._out
        header_offset = out.pos
        data_offset = self.write_member(MANIFEST, len(manifest), [memoryview(manifest)])
        cd_start = out.pos
        for e in self._entries:
            extra = b""
            size32, csize32, off32 = e.size, e.stored_size, e.header_offset
            fields = []
            if e.size >= U32 or e.stored_size >= U32:
                fields += [e.size, e.stored_size]
                size32 = csize32 = U32
            if e.header_offset >= U32:
                fields.append(e.header_offset)
                off32 = U32
            if fields:
                extra = struct.pack("<HH", 1, 8 * len(fields)) + struct.pack(
                    f"<{len(fields)}Q", *fields
                )
            out.write(
                _CENTRAL.pack(
                    0x02014B50,
                    0x0314,
                    45 if extra else 20,
                    e.flags,
                    e.method,
                    e.dos_time,
                    e.dos_date,
                    e.crc,
                    csize32,
                    size32,
                    len(e.name),
                    len(extra),
                    0,
                    0,
                    0,
                    (0o100644 << 16),
                    off32,
                )
            )
            out.write(e.name)
            out.write(extra)
        cd_size = out.pos - cd_start
        count = len(self._entries)
        comment = _POINTER.pack(
            POINTER_MAGIC,
            1,
            header_offset,
            data_offset,
            len(manifest),
            xxhash.xxh3_64_intdigest(manifest),
        )
        if count >= U16 or cd_size >= U32 or cd_start >= U32:
            eocd64 = out.pos
            out.write(
                _EOCD64.pack(0x06064B50, 44, 0x0314, 45, 0, 0, count, count, cd_size, cd_start)
            )
            out.write(_LOCATOR.pack(0x07064B50, 0, eocd64, 1))
            out.write(_EOCD.pack(0x06054B50, 0, 0, U16, U16, U32, U32, len(comment)))
        else:
            out.write(_EOCD.pack(0x06054B50, 0, 0, count, count, cd_size, cd_start, len(comment)))
        out.write(comment)
        out.flush()
        self._done = True
        if self._atomic is not None:
            self._atomic.commit()
        else:
            flush = getattr(out.file, "flush", None)
            if flush is not None:
                flush()

    def abort(self) -> None:
        if self._atomic is not None and not self._done:
            self._atomic.abort()


class ZipReader:
    """Finds the manifest through the archive comment; reads stored members by offset."""

    #: ``map_member`` slices one mapping of the whole file after a look at the local
    #: header: cheap enough to read thousands of small members through (codecs_ser._bulk).
    #: It gives None for a deflated member, and the whole-object pass then stops.
    maps_cheaply = True

    def __init__(self, source: Any) -> None:
        self._src = Source(source)
        self._index: dict[str, tuple[int, int]] | None = None
        self._pointer: tuple[int, int, int, int] | None = None
        #: Deflated members by data offset: (stored size, CRC-32).
        self._packed: dict[int, tuple[int, int]] = {}
        self._directory: dict[str, zipfile.ZipInfo] | None = None
        try:
            self._find_pointer()
            if self._pointer is None:
                self._scan()
        except BaseException:
            self._src.close()
            raise

    def _find_pointer(self) -> None:
        src = self._src
        tail_len = _EOCD.size + _POINTER.size
        if src.size < tail_len:
            if src.size < _EOCD.size:
                raise FormatError("not a zip container: file is too small", path=src.name)
            return
        tail = src.read_at(src.size - tail_len, tail_len)
        eocd = tail[: _EOCD.size]
        if eocd[:4] != b"PK\x05\x06" or _EOCD.unpack(eocd)[7] != _POINTER.size:
            return
        magic, version, header_off, data_off, size, digest = _POINTER.unpack(tail[_EOCD.size :])
        if magic != POINTER_MAGIC:
            return
        if version != 1:
            raise FormatError(f"unknown zip pointer version {version}", path=src.name)
        if not (0 <= header_off < data_off and data_off + size <= src.size):
            raise FormatError("archive comment points outside the file", path=src.name)
        self._pointer = (header_off, data_off, size, digest)

    def _infos(self) -> list[zipfile.ZipInfo]:
        src = self._src
        src.file.seek(src.base)
        try:
            with zipfile.ZipFile(src.file) as zf:
                return zf.infolist()
        except Exception as e:  # zipfile raises many kinds on bad input (NotImplementedError too)
            raise FormatError(
                f"not a readable zip container: {type(e).__name__}: {e}", path=src.name
            ) from None

    def _scan(self) -> None:
        """Index a zip without our comment (re-packed by another tool) from its directory."""
        index: dict[str, tuple[int, int]] = {}
        spans: list[tuple[int, int, str]] = []
        for info in self._infos():
            if extracted_name(info.filename) in index:
                raise FormatError(
                    "zip holds two members that extract to one file",
                    path=self._src.name,
                    member=info.filename,
                )
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise FormatError(
                    "zip members compressed otherwise than with deflate are not supported; "
                    "write the container with codecs_ser",
                    path=self._src.name,
                    member=info.filename,
                )
            # zipfile counts from the start of the file object; this source from its base.
            header_at = info.header_offset - self._src.base
            local = self._src.read_at(header_at, _LOCAL.size)
            fields = _LOCAL.unpack(local)
            if fields[0] != 0x04034B50:
                raise FormatError("bad local header", path=self._src.name, member=info.filename)
            data = header_at + _LOCAL.size + fields[9] + fields[10]
            local_name = self._src.read_at(header_at + _LOCAL.size, fields[9])
            if info.filename not in (
                local_name.decode("utf-8", "replace"),
                local_name.decode("cp437", "replace"),
            ):
                raise FormatError(
                    "local header names another member than the zip directory",
                    path=self._src.name,
                    member=info.filename,
                )
            if not fields[2] & 0x08 and fields[8] not in (info.file_size, U32):
                raise FormatError(
                    "local header and zip directory disagree on the member's size",
                    path=self._src.name,
                    member=info.filename,
                )
            if fields[3] != info.compress_type:
                raise FormatError(
                    "local header and zip directory disagree on the member's compression",
                    path=self._src.name,
                    member=info.filename,
                )
            stored = info.compress_size
            if info.compress_type == zipfile.ZIP_STORED and stored != info.file_size:
                raise FormatError(
                    "the zip directory gives a stored member two sizes",
                    path=self._src.name,
                    member=info.filename,
                )
            if data + stored > self._src.size:
                raise FormatError(
                    "member lies outside the file", path=self._src.name, member=info.filename
                )
            if info.compress_type == zipfile.ZIP_DEFLATED:
                self._packed[data] = self._deflated(info, data, info.file_size, info.filename)
            index[extracted_name(info.filename)] = (data, info.file_size)
            spans.append((header_at, data + stored, info.filename))
        spans.sort()
        for (_, end, _), (start, _, name) in itertools.pairwise(spans):
            if start < end:
                raise FormatError(
                    "zip members overlap (a zip bomb or a damaged file)",
                    path=self._src.name,
                    member=name,
                )
        if MANIFEST not in index:
            raise FormatError("not a codecs_ser container: no manifest member", path=self._src.name)
        self._index = index
        off, size = index[MANIFEST]
        self._pointer = (-1, off, size, -1)

    def read_manifest(self) -> bytes:
        assert self._pointer is not None
        _, off, size, digest = self._pointer
        packed = self._packed.get(off)
        if packed is not None:  # a zip re-packed by another tool may deflate it
            if size > get_limits().max_manifest_bytes:
                raise FormatError(
                    exceeded("the manifest", size, "max_manifest_bytes"), path=self._src.name
                )
            buf = bytearray(size)
            reader = InflatingReader(self._src, off, packed[0], size, packed[1], MANIFEST)
            pos = 0
            while pos < size:
                pos += reader.readinto(memoryview(buf)[pos:])
            return bytes(buf)
        data = self._src.read_at(off, size)
        if digest >= 0 and xxhash.xxh3_64_intdigest(data) != digest:
            raise FormatError(
                "manifest checksum mismatch: the file is damaged", path=self._src.name
            )
        return data

    def _locate(self, ref: MemberRef) -> int:
        if self._index is not None:
            found = self._index.get(ref.name)
            if found is None:
                raise FormatError("member is missing", path=self._src.name, member=ref.name)
            if found[1] != ref.size:
                raise FormatError(
                    "member size differs from the manifest", path=self._src.name, member=ref.name
                )
            return found[0]
        if ref.offset is None:
            raise FormatError(
                "manifest gives no offset for member", path=self._src.name, member=ref.name
            )
        if self._check_local_header(ref, ref.offset) == 8 and ref.offset not in self._packed:
            self._packed[ref.offset] = self._directory_entry(ref)
        return ref.offset

    def _directory_entry(self, ref: MemberRef) -> tuple[int, int]:
        """A deflated member's stored size and CRC, from the zip directory (read once), whose
        entry of this name must start at the local header before ``ref.offset``."""
        if self._directory is None:
            self._directory = {extracted_name(i.filename): i for i in self._infos()}
        info = self._directory.get(ref.name)
        if info is None:
            raise FormatError(
                "a deflated member is not in the zip directory",
                path=self._src.name,
                member=ref.name,
            )
        header_at = info.header_offset - self._src.base
        local = _LOCAL.unpack(self._src.read_at(header_at, _LOCAL.size))
        assert ref.offset is not None
        if header_at + _LOCAL.size + local[9] + local[10] != ref.offset:
            raise FormatError(
                "the zip directory's entry of this member lies elsewhere than the manifest says",
                path=self._src.name,
                member=ref.name,
            )
        return self._deflated(info, ref.offset, ref.size, ref.name)

    def _deflated(self, info: zipfile.ZipInfo, data: int, size: int, name: str) -> tuple[int, int]:
        """(stored size, CRC) of a deflated member, once its sizes are known to be possible:
        a bomb is refused here, before anything is allocated for it."""
        if info.compress_type != zipfile.ZIP_DEFLATED:
            raise FormatError(
                "the zip directory says this member is not deflated, its local header that it is",
                path=self._src.name,
                member=name,
            )
        stored = info.compress_size
        if info.file_size != size:
            raise FormatError(
                f"the zip directory gives this member {info.file_size} bytes, the manifest {size}",
                path=self._src.name,
                member=name,
            )
        if data + stored > self._src.size:
            raise FormatError("member lies outside the file", path=self._src.name, member=name)
        if size > DEFLATE_MAX_RATIO * (stored + 1):
            raise FormatError(
                f"{stored} deflated bytes cannot expand to the {size} bytes claimed for this "
                "member (a zip bomb, or a damaged file)",
                path=self._src.name,
                member=name,
            )
        return stored, info.CRC

    def _check_local_header(self, ref: MemberRef, data: int) -> int:
        """The local header in front of a member's data must name that member, stored, of
        the manifest's size, so that ``unzip`` and codecs_ser read the same bytes for it.

        It is found by its signature, searching back from the data over the extra fields:
        first over what the writer puts (at most 89 bytes), then over ``_MAX_EXTRA``.
        Returns the member's method: 0 (stored) or 8 (deflated).
        """
        raw = ref.name.encode("utf-8")
        for extra in (_WRITER_EXTRA, _MAX_EXTRA):
            method = self._local_header_found(ref, raw, data, extra)
            if method >= 0:
                return method
        raise FormatError(
            "the zip local header before this member's data does not describe it",
            path=self._src.name,
            member=ref.name,
        )

    def _local_header_found(self, ref: MemberRef, raw: bytes, data: int, extra: int) -> int:
        start = data - _LOCAL.size - len(raw) - extra
        start = start if start > 0 else 0
        window = self._src.searchable()
        if window is None or data > len(window):
            window = self._src.read_at(start, data - start)
            data -= start
            start = 0
        end = data - _LOCAL.size - len(raw)
        while end >= start:
            at = window.rfind(b"PK\x03\x04", start, end + 4)
            if at < 0:
                return -1
            fields = _LOCAL.unpack_from(window, at)
            if at + _LOCAL.size + fields[9] + fields[10] == data:
                sizes = (fields[7], fields[8])
                found = (
                    fields[3] in (0, 8)  # stored or deflated (its sizes: the zip directory's)
                    and fields[9] == len(raw)
                    and window[at + _LOCAL.size : at + _LOCAL.size + len(raw)] == raw
                    and (fields[3] == 8 or sizes in ((ref.size, ref.size), (U32, U32), (0, 0)))
                )
                return fields[3] if found else -1
            end = at - 1
        return -1

    def open_member(self, ref: MemberRef) -> BinaryIO:
        offset = self._locate(ref)
        packed = self._packed.get(offset)
        if packed is not None:
            return InflatingReader(self._src, offset, packed[0], ref.size, packed[1], ref.name)  # type: ignore[return-value]
        return self._src.range(offset, ref.size)  # type: ignore[return-value]

    def readinto_member(self, ref: MemberRef, buffer: Any) -> None:
        """Read a whole member into ``buffer`` (of ``ref.size`` bytes) in one call."""
        offset = self._locate(ref)
        packed = self._packed.get(offset)
        if packed is None:
            self._src.readinto_at(offset, buffer)
            return
        reader = InflatingReader(self._src, offset, packed[0], ref.size, packed[1], ref.name)
        view = memoryview(buffer).cast("B")
        pos = 0
        while pos < view.nbytes:
            pos += reader.readinto(view[pos:])

    def map_member(self, ref: MemberRef) -> memoryview | None:
        """A view of a stored member; None for a deflated one (it is read as a copy)."""
        offset = self._locate(ref)
        if offset in self._packed:
            return None
        return self._src.map(offset, ref.size)

    def index_problems(self, refs: list[MemberRef]) -> list[tuple[str, str]]:
        """Members (the manifest too) whose zip directory entry (what ``unzip`` extracts:
        the last one whose name normalises to theirs) is not a stored member at the
        manifest's offset with the manifest's size."""
        assert self._pointer is not None
        infos: dict[str, zipfile.ZipInfo] = {}
        problems: list[tuple[str, str]] = []
        for info in self._infos():
            path = extracted_name(info.filename)
            if path in infos:
                problems.append((info.filename, "two zip directory entries extract to this name"))
            infos[path] = info
        manifest = MemberRef(MANIFEST, self._pointer[1], self._pointer[2])
        for ref in [manifest, *refs]:
            found = infos.get(ref.name)
            if found is None:
                problems.append((ref.name, "not in the zip directory"))
                continue
            info = found
            header_at = info.header_offset - self._src.base
            local = _LOCAL.unpack(self._src.read_at(header_at, _LOCAL.size))
            data = header_at + _LOCAL.size + local[9] + local[10]
            if (
                info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                or info.file_size != ref.size
                or (self._index is None and ref.offset is not None and data != ref.offset)
            ):
                problems.append((ref.name, "the zip entry of this name holds other bytes"))
        return problems

    def member_names(self) -> list[str]:
        return [info.filename for info in self._infos()]

    def kept_entries(self) -> tuple[int, list[_Entry]]:
        """For add(): where the manifest member starts, and every member before it."""
        assert self._pointer is not None
        keep = self._pointer[0]
        entries = []
        for info in self._infos():
            if info.filename == MANIFEST:
                continue
            if info.header_offset >= keep:
                raise FormatError(
                    "member lies after the manifest", path=self._src.name, member=info.filename
                )
            dos_time = (
                (info.date_time[3] << 11) | (info.date_time[4] << 5) | (info.date_time[5] // 2)
            )
            dos_date = (
                ((info.date_time[0] - 1980) << 9) | (info.date_time[1] << 5) | info.date_time[2]
            )
            entries.append(
                _Entry(
                    info.filename.encode("utf-8"),
                    info.flag_bits,
                    info.CRC,
                    info.file_size,
                    info.header_offset,
                    dos_time,
                    dos_date,
                    info.compress_type,
                    info.compress_size if info.compress_type else -1,
                )
            )
        return keep, entries

    def close(self) -> None:
        self._src.close()


class ZipBackend:
    """Built-in backend ``zip``."""

    backend_id = "zip"

    def create(self, target: Any, *, durable: bool, compress: int | None = None) -> ZipWriter:
        """``compress``: the deflate level of every member but the manifest; None stores."""
        if hasattr(target, "write"):
            return ZipWriter(target, level=compress)
        atomic = AtomicFile(target, durable=durable)
        return ZipWriter(atomic.file, atomic=atomic, level=compress)

    def open(self, source: Any) -> ZipReader:
        return ZipReader(source)

    def rewrite(self, path: str, *, durable: bool) -> ZipWriter:
        """A writer of a whole new container that replaces the one at ``path`` on commit,
        unless another writer replaced it meanwhile (``ConcurrentWriteError``)."""
        atomic = AtomicFile(path, durable=durable, expect=identity(path))
        return ZipWriter(atomic.file, atomic=atomic)

    def append(self, path: str, *, durable: bool) -> ZipWriter:
        expect = identity(path)
        reader = ZipReader(path)
        try:
            keep, entries = reader.kept_entries()
        finally:
            reader.close()
        if keep < 0:
            raise FormatError(
                "this zip was re-packed by another tool; add() needs a container written "
                "by codecs_ser (load it and dump it again)",
                path=path,
            )
        atomic = AtomicFile(path, durable=durable, expect=expect)
        try:
            copy_prefix(path, atomic.file, keep)
        except BaseException:
            atomic.abort()
            raise
        # New members are deflated when the container's are (at the default level).
        level = 6 if any(e.method == 8 for e in entries) else None
        return ZipWriter(atomic.file, atomic=atomic, start=keep, entries=entries, level=level)
