"""The tar backend: a plain POSIX tar that ``tar -x`` unpacks into .npy files.

Members are written in order (so a pipe works as a target), each 512-byte
aligned, which keeps every array's data 64-byte aligned for mmap.  After the
manifest comes one small member, ``.codecs_ser/trailer``, that records where the
manifest lies: opening a container reads the tail of the file and the manifest,
never the 20,000 member headers before them.  A tar re-packed by another tool
has no trailer; it is then indexed by a scan of its headers.
"""

from __future__ import annotations

import struct
import tarfile
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

import xxhash

from .._clock import now
from .._files import COALESCE, AtomicFile, SeqWriter, Source, copy_prefix, identity
from ..backend import MemberRef
from ..errors import FormatError
from . import _tarscan
from ._tarscan import REGULAR as _REGULAR
from ._tarscan import _number

BLOCK = 512
RECORD = 20 * BLOCK
MANIFEST = ".codecs_ser/manifest.msgpack"
TRAILER = ".codecs_ser/trailer"
TRAILER_MAGIC = b"CODECS_SER-TAIL\x00"
_TRAILER = struct.Struct("<16sIQQQQ")  # magic, version, header off, data off, size, xxh3
#: How much of the file's tail is read to find the trailer.
TAIL = 2 * RECORD + 4 * BLOCK


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def _template(mtime: int) -> tuple[bytes, bytes, bytes, bytes, int]:
    """The fixed parts of a ustar header around its name, size, checksum and prefix
    fields (empty), and the byte sum of the header with those fields empty."""
    header = bytearray(BLOCK)
    header[100:108] = b"0000644\x00"
    header[108:116] = b"0000000\x00"
    header[116:124] = b"0000000\x00"
    header[136:148] = _octal(mtime, 12)
    header[148:156] = b"        "
    header[156] = 0x30  # regular file
    header[257:265] = b"ustar\x0000"
    fixed = bytes(header)
    return fixed[100:124], fixed[136:148], fixed[156:345], fixed[500:], sum(header)


_templates: dict[int, tuple[bytes, bytes, bytes, bytes, int]] = {}
#: A ustar header from its variable fields and the template's fixed parts; ``s``
#: fields are padded with NULs, as the name and prefix fields are.
_USTAR = struct.Struct("100s24s12s12s8s189s155s12s")


def _ustar_header(name: bytes, size: int, mtime: int) -> bytes | None:
    """A plain ustar header, or None when the name or size needs pax."""
    prefix = b""
    if len(name) > 100:
        cut = name.rfind(b"/", 0, 156)
        if cut <= 0 or len(name) - cut - 1 > 100:
            return None
        prefix, name = name[:cut], name[cut + 1 :]
    if size >= 8**11 or not 0 <= mtime < 8**11:
        return None
    found = _templates.get(mtime)
    if found is None:
        found = _templates[mtime] = _template(mtime)
    mode_to_gid, mtime_field, type_to_version, tail, base_sum = found
    size_field = b"%011o\x00" % size
    # The checksum is the byte sum with its own field as spaces: sum only what changed.
    checksum = b"%06o\x00 " % (base_sum + sum(name) + sum(prefix) + sum(size_field))
    return _USTAR.pack(
        name, mode_to_gid, size_field, mtime_field, checksum, type_to_version, prefix, tail
    )


def member_header(name: str, size: int, mtime: int) -> bytes:
    """Header block(s) for a regular member; pax records for long or non-ASCII names."""
    if name.isascii():
        header = _ustar_header(name.encode("ascii"), size, mtime)
        if header is not None:
            return header
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


_ZEROS = bytes(BLOCK)


def _pad(size: int) -> int:
    return -size % BLOCK


class TarWriter:
    """Streams members into a tar; ``commit`` adds manifest, trailer and end blocks."""

    def __init__(self, file: BinaryIO, *, atomic: AtomicFile | None = None, start: int = 0) -> None:
        self._atomic = atomic
        self._out = SeqWriter(file, start)
        self._mtime = int(now())
        self._done = False

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> int:
        header = member_header(name, size, self._mtime)
        offset = self._out.pos + len(header)
        if size < COALESCE and type(chunks) is tuple:
            self._out.write_parts((header, *chunks, _ZEROS[: _pad(size)]), size)
            return offset
        self._out.write(header)
        self._out.write_chunks(chunks, size)
        self._out.write(_ZEROS[: _pad(size)])
        return offset

    def write_members(self, names: Sequence[str], blobs: Sequence[bytes]) -> list[int]:
        """Several small members, whole, in one write: the bytes ``write_member`` would
        write for each in turn; their offsets."""
        mtime = self._mtime
        pos = self._out.pos
        offsets = []
        parts: list[Any] = []
        for name, blob in zip(names, blobs, strict=True):
            size = len(blob)
            header = member_header(name, size, mtime)
            pos += len(header)
            offsets.append(pos)
            pad = -size % BLOCK
            parts += (header, blob, _ZEROS[:pad])
            pos += size + pad
        self._out.write(b"".join(parts))
        return offsets

    def commit(self, manifest: bytes) -> None:
        out = self._out
        header_offset = out.pos
        data_offset = self.write_member(MANIFEST, len(manifest), [memoryview(manifest)])
        trailer = _TRAILER.pack(
            TRAILER_MAGIC,
            1,
            header_offset,
            data_offset,
            len(manifest),
            xxhash.xxh3_64_intdigest(manifest),
        )
        self.write_member(TRAILER, len(trailer), [memoryview(trailer)])
        end = out.pos + 2 * BLOCK
        out.write(bytes(2 * BLOCK + (-end % RECORD)))
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


class TarReader:
    """Finds the manifest through the trailer; reads members by the offsets it records."""

    #: ``map_member`` slices one mapping of the whole file: cheap enough to read
    #: thousands of small members through (codecs_ser._bulk).
    maps_cheaply = True

    def __init__(self, source: Any) -> None:
        self._src = Source(source)
        self._index: dict[str, tuple[int, int]] | None = None
        self._manifest_at: tuple[int, int, int] | None = None  # header off, data off, size
        self._manifest_hash: int | None = None
        try:
            self._find_trailer()
            if self._manifest_at is None:
                self._scan()
        except BaseException:
            self._src.close()
            raise

    @property
    def name(self) -> str | None:
        return self._src.name

    def _find_trailer(self) -> None:
        src = self._src
        if src.size < 3 * BLOCK or src.size % BLOCK:
            if src.size % BLOCK:
                raise FormatError(
                    "not a tar container: size is not a multiple of 512", path=src.name
                )
            raise FormatError("not a codecs_ser container: file is too small", path=src.name)
        tail_len = min(src.size, TAIL)
        tail = src.read_at(src.size - tail_len, tail_len)
        pos = tail_len - BLOCK
        while pos >= 0 and not any(tail[pos : pos + BLOCK]):
            pos -= BLOCK
        if pos < 0:
            return
        block = tail[pos : pos + BLOCK]
        if not block.startswith(TRAILER_MAGIC):
            return
        _, version, header_off, data_off, size, digest = _TRAILER.unpack_from(block)
        if version != 1:
            raise FormatError(f"unknown trailer version {version}", path=src.name)
        if not (0 <= header_off < data_off and data_off + size <= src.size):
            raise FormatError("trailer points outside the file", path=src.name)
        header = src.read_at(data_off - BLOCK, BLOCK) if data_off >= BLOCK else b""
        if header[: len(MANIFEST) + 1] != MANIFEST.encode() + b"\0":
            return  # re-packed by another tool with the old trailer last: scan instead
        self._manifest_at = (header_off, data_off, size)
        self._manifest_hash = digest

    def _scan(self) -> None:
        """Index a tar without a trailer (re-packed by another tool) from its headers."""
        src = self._src
        index: dict[str, tuple[int, int]] = {}
        for member in _tarscan.scan(src):
            if member.path is None:
                continue  # tar -x refuses the name; verify reports it
            # Regular files only: links, devices and GNU sparse members are not content.
            # The last entry of a path wins, as in tar -x, whatever it is.
            if member.type in _REGULAR:
                index[member.path] = (member.offset, member.size)
            else:
                index.pop(member.path, None)
        if MANIFEST not in index:
            raise FormatError("not a codecs_ser container: no manifest member", path=src.name)
        self._index = index
        off, size = index[MANIFEST]
        self._manifest_at = (-1, off, size)

    def read_manifest(self) -> bytes:
        assert self._manifest_at is not None
        _, off, size = self._manifest_at
        data = self._src.read_at(off, size)
        if (
            self._manifest_hash is not None
            and xxhash.xxh3_64_intdigest(data) != self._manifest_hash
        ):
            raise FormatError(
                "manifest checksum mismatch: the file is damaged", path=self._src.name
            )
        return data

    def manifest_header_offset(self) -> int:
        assert self._manifest_at is not None
        return self._manifest_at[0]

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
        offset = ref.offset
        whole = self._src.whole_view()
        if whole is not None and 0 < offset <= len(whole) and not offset % BLOCK:
            # What the writer puts, checked first as this runs per read: a regular file
            # ("0") of this size and this (short, ASCII) name.
            header = whole[offset - BLOCK : offset].tobytes()  # bytes compare fast
            name = ref.name
            n = len(name)
            if (
                header[156] == 48
                and n < 100
                and header[124:136] == _octal(ref.size, 12)
                and header[n] == 0
                and header[:n] == name.encode()
                and header[345] == 0
            ):
                return offset
        self._check_header(ref)
        return offset

    def _check_header(self, ref: MemberRef) -> None:
        """The tar header before a member's data must describe that member, a regular file,
        so that ``tar -x`` and codecs_ser read the same bytes for it."""
        offset = ref.offset
        assert offset is not None
        if offset < BLOCK or offset % BLOCK:
            raise FormatError(
                "member offset is not on a tar block boundary", path=self._src.name, member=ref.name
            )
        header = self._src.read_at(offset - BLOCK, BLOCK)
        if header[156:157] not in _REGULAR:
            raise FormatError(
                "the tar entry at this member's offset is not a regular file (a link, device, "
                "FIFO or folder)",
                path=self._src.name,
                member=ref.name,
            )
        size = _number(header[124:136])
        if size != ref.size and not (size == 0 and ref.size >= 8**11):  # pax gives big sizes
            raise FormatError(
                f"the tar header gives this member {size} bytes, the manifest {ref.size}",
                path=self._src.name,
                member=ref.name,
            )
        # Short ASCII names are written in the ustar name field, whole.
        short = len(ref.name) <= 100 and ref.name.isascii()
        if short and (header[:100].rstrip(b"\0") != ref.name.encode("ascii") or header[345]):
            raise FormatError(
                "the tar header at this member's offset names another member",
                path=self._src.name,
                member=ref.name,
            )

    def open_member(self, ref: MemberRef) -> BinaryIO:
        return self._src.range(self._locate(ref), ref.size)  # type: ignore[return-value]

    def readinto_member(self, ref: MemberRef, buffer: Any) -> None:
        """Read a whole member into ``buffer`` (of ``ref.size`` bytes) in one call."""
        self._src.readinto_at(self._locate(ref), buffer)

    def map_member(self, ref: MemberRef) -> memoryview | None:
        return self._src.map(self._locate(ref), ref.size)

    def member_names(self) -> list[str]:
        return [member.name for member in _tarscan.scan(self._src)]

    def index_problems(self, refs: list[MemberRef]) -> list[tuple[str, str]]:
        """Members (the manifest too) whose tar entry as ``tar -x`` sees it (the last one
        whose name normalises to theirs) is not the regular file of the manifest's offset
        and size, and entries whose names no tool extracts safely."""
        assert self._manifest_at is not None
        index: dict[str, _tarscan.TarMember] = {}
        problems = []
        for member in _tarscan.scan(self._src):
            if member.path is None:
                problems.append(
                    (
                        member.name,
                        "a tar entry with a '..' component: tar -x refuses it, "
                        "other tools may extract it over a member or outside the folder",
                    )
                )
            else:
                index[member.path] = member
        manifest = MemberRef(MANIFEST, self._manifest_at[1], self._manifest_at[2])
        for ref in [manifest, *refs]:
            found = index.get(ref.name)
            if found is None or found.type not in _REGULAR:
                problems.append((ref.name, "no regular tar entry of this name"))
            elif found.size != ref.size or (
                self._index is None and ref.offset is not None and found.offset != ref.offset
            ):
                problems.append((ref.name, "the tar entry of this name holds other bytes"))
        return problems

    def close(self) -> None:
        self._src.close()


class TarBackend:
    """Built-in backend ``tar``."""

    backend_id = "tar"

    def create(self, target: Any, *, durable: bool) -> TarWriter:
        if hasattr(target, "write"):
            return TarWriter(target)
        atomic = AtomicFile(target, durable=durable)
        return TarWriter(atomic.file, atomic=atomic)

    def open(self, source: Any) -> TarReader:
        return TarReader(source)

    def rewrite(self, path: str, *, durable: bool) -> TarWriter:
        """A writer of a whole new container that replaces the one at ``path`` on commit,
        unless another writer replaced it meanwhile (``ConcurrentWriteError``)."""
        atomic = AtomicFile(path, durable=durable, expect=identity(path))
        return TarWriter(atomic.file, atomic=atomic)

    def append(self, path: str, *, durable: bool) -> TarWriter:
        expect = identity(path)
        reader = TarReader(path)
        try:
            keep = reader.manifest_header_offset()
        finally:
            reader.close()
        if keep < 0:
            raise FormatError(
                "this tar was re-packed by another tool; add() needs a container written "
                "by codecs_ser (load it and dump it again)",
                path=path,
            )
        atomic = AtomicFile(path, durable=durable, expect=expect)
        try:
            copy_prefix(path, atomic.file, keep)
        except BaseException:
            atomic.abort()
            raise
        return TarWriter(atomic.file, atomic=atomic, start=keep)
