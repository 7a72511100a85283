"""The msgpack manifest: what a container holds, readable without loading anything else.

Entries are stored as a list of individually packed msgpack maps (``bin``), next
to a list of their names, so opening a container with 20,000 entries unpacks
20,000 small byte strings and decodes an entry only when it is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

import msgpack
import numpy as np

from ._limits import exceeded, get_limits
from ._manifest_seal import check_sealed
from ._npy import _short, dtype_from_descr, shape_fits
from .errors import FormatError

FORMAT_NAME = "codecs_ser"
FORMAT_VERSION = 1
META_DIR = ".codecs_ser"
NDARRAY_CODEC = "numpy.ndarray"


class BufferInfo(NamedTuple):
    """Where a blob's array lies in a buffer that other blobs share (format.md 3.1)."""

    id: int
    nbytes: int
    offset: int
    strides: tuple[int, ...]


class BlobInfo(NamedTuple):
    """One .npy blob of an entry, as the manifest describes it."""

    role: str
    member: str
    offset: int | None
    size: int
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    checksum: str
    descr: Any = None
    name: str = ""
    buffer: BufferInfo | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of array data (the member minus its .npy header)."""
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n


class EntryInfo(NamedTuple):
    """One stored leaf: its codec, where it came from, and its blobs.

    ``number`` is the entry's position in the manifest (what skeletons refer to).
    """

    number: int
    name: str
    object: int
    path: str
    codec: str
    codec_version: int
    dist: str | None
    device: str | None
    meta: Mapping[str, Any]
    blobs: tuple[BlobInfo, ...]

    @property
    def dtype(self) -> np.dtype:
        """dtype of the primary blob."""
        return self.blobs[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the primary blob."""
        return self.blobs[0].shape

    @property
    def nbytes(self) -> int:
        """Bytes of array data in this entry's blobs."""
        return sum(b.nbytes for b in self.blobs)


#: A member or entry name: relative POSIX components, none empty or starting with ".",
#: no backslash, no C0 control character (docs/format.md section 1).
_COMPONENT = r"(?!\.)[^/\\\x00-\x1f\x7f]+"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_SKELETON_MEMBER = re.compile(r"\.codecs_ser/objects/(0|[1-9][0-9]{0,8})\.(msgpack|pickle)")


def valid_name(name: str) -> bool:
    """Whether ``name`` follows the member-name rules (safe to use as a relative path)."""
    return _NAME.fullmatch(name) is not None


def _fail(msg: str, path: str | None, member: str | None = None) -> FormatError:
    return FormatError(f"bad manifest: {msg}", path=path, member=member)


def _is_int(v: Any) -> TypeGuard[int]:
    return type(v) is int


#: Field order of an entry record and of a blob record (also written into each
#: manifest, so the records describe themselves; later versions may append fields).
ENTRY_FIELDS = ("object", "path", "codec", "codec_version", "dist", "device", "meta", "blobs")
BLOB_FIELDS = (
    "role",
    "member",
    "offset",
    "size",
    "dtype",
    "shape",
    "fortran_order",
    "checksum",
    "name",
)
#: Appended to BLOB_FIELDS (format 1.1) in containers where leaves share buffers.
SHARED_BLOB_FIELDS = (*BLOB_FIELDS, "buffer")
_NE, _NB = len(ENTRY_FIELDS), len(BLOB_FIELDS)


def _parse_buffer(raw: Any, shape: list[int], source: str | None, entry: str) -> BufferInfo:
    if type(raw) is not dict:
        raise _fail("blob buffer is not a map", source, entry)
    bid, nbytes, offset = raw.get("id"), raw.get("nbytes"), raw.get("offset")
    strides = raw.get("strides")
    if (
        not (_is_int(bid) and _is_int(nbytes) and _is_int(offset))
        or min(bid, nbytes, offset) < 0
        or type(strides) is not list
        or len(strides) != len(shape)
        or not all(_is_int(v) and abs(v) < 1 << 62 for v in strides)
    ):
        raise _fail("blob buffer has a field of the wrong type or out of range", source, entry)
    return BufferInfo(bid, nbytes, offset, tuple(strides))


#: dtypes of plain type strings ('<f4', '|b1') met in manifests: the same few thousands of
#: times in a container of many small arrays, so each is checked and built once.
_PLAIN_DTYPES: dict[str, np.dtype] = {}
_PLAIN_TYPE = re.compile(r"[<>|][A-Za-z?][0-9]{1,3}")


def plain_dtype(descr: str) -> np.dtype | None:
    """The dtype of a plain type string ('<f4'), checked once per string; None for any
    other description or one this version refuses."""
    dtype = _PLAIN_DTYPES.get(descr)
    if dtype is None and len(_PLAIN_DTYPES) < 256 and _PLAIN_TYPE.fullmatch(descr):
        try:
            dtype = _PLAIN_DTYPES[descr] = dtype_from_descr(descr)
        except FormatError:
            return None
    return dtype


def parse_blob(
    raw: Any, source: str | None, entry: str, primary: bool, buffers: bool = False
) -> BlobInfo:
    """Check one blob record field by field (this runs once per blob read, so it is terse)."""
    if type(raw) is not list or len(raw) < _NB:
        raise _fail("blob record is not a list of the blob fields", source, entry)
    role, member, offset, size, descr, shape, fortran, checksum, name = raw[:_NB]
    limits = get_limits()
    if (
        type(role) is not str
        or type(member) is not str
        or not member
        or not (offset is None or (type(offset) is int and offset >= 0))
        or type(size) is not int
        or size < 0
        or type(shape) is not list
        or len(shape) > limits.max_ndim
        or type(fortran) is not bool
        or type(checksum) is not str
        or not (name is None or type(name) is str)
    ):
        raise _fail("blob has a field of the wrong type or out of range", source, entry)
    for n in shape:
        if type(n) is not int or n < 0:
            raise _fail("blob shape is not a list of non-negative integers", source, entry)
    # The usual member is the (already checked) entry name plus ".npy".
    if member[:-4] != entry and (not member.endswith(".npy") or _NAME.fullmatch(member) is None):
        raise _fail(f"blob member name {member!r} breaks the naming rules", source, entry)
    if name is not None and _NAME.fullmatch(name) is None:
        raise _fail(f"blob name {name!r} breaks the naming rules", source, entry)
    plain = type(descr) is str and limits.max_dtype_fields >= 1
    dtype = plain_dtype(descr) if plain else None
    if dtype is None:
        try:
            dtype = dtype_from_descr(descr)
        except FormatError as e:
            raise _fail(e.message, source, entry) from None
    if not shape_fits(shape, dtype.itemsize):
        raise _fail(
            f"blob shape {_short(shape)} is larger than numpy can make (each dimension, "
            "a zero one aside, times the itemsize must fit in a signed 64-bit size)",
            source,
            entry,
        )
    if name is None:
        name = entry if primary else (member[:-4] if member.endswith(".npy") else member)
    buffer = None
    if buffers and len(raw) > _NB and raw[_NB] is not None:
        buffer = _parse_buffer(raw[_NB], shape, source, entry)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes > size:
        raise _fail(
            f"blob claims {nbytes} bytes of data in a member of {size} bytes", source, entry
        )
    return BlobInfo(
        role, member, offset, size, dtype, tuple(shape), fortran, checksum, descr, name, buffer
    )


def parse_entry(
    raw_bytes: Any, index: int, name: str, source: str | None, buffers: bool = False
) -> EntryInfo:
    """``buffers``: the manifest's blob_fields name ``buffer`` (format 1.1)."""
    if type(raw_bytes) is not bytes:
        raise _fail("entry is not a byte string", source, name)
    try:
        raw = msgpack.unpackb(raw_bytes, raw=False)
    except Exception as e:
        raise _fail(f"entry is not valid msgpack ({type(e).__name__})", source, name) from None
    if _NAME.fullmatch(name) is None:
        raise _fail(
            "entry name breaks the naming rules (a path outside the container?)", source, name
        )
    if type(raw) is not list or len(raw) < _NE:
        raise _fail("entry record is not a list of the entry fields", source, name)
    obj, path, codec, version, dist, device, meta, blobs_raw = raw[:_NE]
    if (
        type(obj) is not int
        or obj < 0
        or type(path) is not str
        or type(codec) is not str
        or type(version) is not int
        or version < 1
        or not (dist is None or type(dist) is str)
        or not (device is None or type(device) is str)
        or type(meta) is not dict
        or type(blobs_raw) is not list
        or not blobs_raw
    ):
        raise _fail("entry has a field of the wrong type, or no blobs", source, name)
    if len(blobs_raw) == 1:  # the usual entry: one array
        blobs: tuple[BlobInfo, ...] = (parse_blob(blobs_raw[0], source, name, True, buffers),)
    else:
        blobs = tuple(parse_blob(b, source, name, i == 0, buffers) for i, b in enumerate(blobs_raw))
    return EntryInfo(index, name, obj, path, codec, version, dist, device, meta, blobs)


@dataclass(slots=True)
class ObjectInfo:
    """One named object of a container: where its skeleton lies and what it imports."""

    name: str
    prefix: str
    skeleton_format: str
    skeleton: BlobInfo | None
    skeleton_ref: dict[str, Any]
    globals: list[str]
    metadata: dict[str, Any]
    #: Functions and classes its pickle stores as code: {"name", "path"} (revision 1.1).
    code: list[dict[str, Any]] = field(default_factory=list)


def _parse_code(raw: Any, source: str | None) -> list[dict[str, Any]]:
    ok = isinstance(raw, list) and all(
        isinstance(c, dict)
        and isinstance(c.get("name"), str)
        and (c.get("path") is None or isinstance(c.get("path"), str))
        for c in raw
    )
    if not ok:
        raise _fail("object code is not a list of {name, path} maps", source)
    return [{"name": c["name"], "path": c.get("path")} for c in raw]


def _parse_object(raw: Any, source: str | None) -> ObjectInfo:
    if not isinstance(raw, dict):
        raise _fail("object record is not a map", source)
    try:
        name, prefix, skel = raw["name"], raw["prefix"], raw["skeleton"]
    except KeyError as e:
        raise _fail(f"object record lacks field {e.args[0]!r}", source) from None
    globals_ = raw.get("globals", [])
    metadata = raw.get("metadata", {})
    if not isinstance(name, str) or not isinstance(prefix, str) or not isinstance(skel, dict):
        raise _fail("object record has a bad type", source)
    if not isinstance(globals_, list) or not all(isinstance(g, str) for g in globals_):
        raise _fail("object globals is not a list of strings", source)
    if not isinstance(metadata, dict):
        metadata = {}
    fmt = skel.get("format")
    if fmt not in ("msgpack", "pickle"):
        raise _fail(f"unknown skeleton format {fmt!r}", source)
    member, offset, size, checksum = (
        skel.get("member"),
        skel.get("offset"),
        skel.get("size"),
        skel.get("checksum"),
    )
    if not isinstance(member, str) or not isinstance(checksum, str):
        raise _fail("skeleton member or checksum has a bad type", source)
    found = _SKELETON_MEMBER.fullmatch(member)
    if found is None or found.group(2) != fmt:
        raise _fail(f"skeleton member name {member!r} breaks the naming rules", source)
    if not (offset is None or (_is_int(offset) and offset >= 0)) or not (
        _is_int(size) and size >= 0
    ):
        raise _fail("skeleton offset or size has a bad type", source)
    code = _parse_code(raw.get("code", []), source)
    return ObjectInfo(name, prefix, fmt, None, dict(skel), list(globals_), metadata, code)


@dataclass(slots=True)
class Manifest:
    """A parsed manifest; entries are decoded on first access."""

    source: str | None
    format_version: int
    writer: dict[str, Any]
    metadata: dict[str, Any]
    checksum: str
    objects: list[ObjectInfo]
    names: list[str]
    raw_entries: list[bytes]
    dists: dict[str, Any]
    created: Any
    shared_buffers: bool = False
    _cache: dict[int, EntryInfo] = field(default_factory=dict)
    _index: dict[str, int] | None = None
    _lookups: int = 0

    def entry(self, i: int) -> EntryInfo:
        try:
            return self._cache[i]
        except KeyError:
            pass
        if not (_is_int(i) and 0 <= i < len(self.names)):
            raise _fail(f"reference to entry {i!r}, which does not exist", self.source)
        info = parse_entry(self.raw_entries[i], i, self.names[i], self.source, self.shared_buffers)
        if info.object >= len(self.objects):
            raise _fail("entry names an object that does not exist", self.source, info.name)
        self._cache[i] = info
        return info

    def find(self, name: str) -> int | None:
        """Index of an entry by name: a scan for the first few lookups, then a dict."""
        if self._index is None:
            self._lookups += 1
            if self._lookups <= 4:
                try:
                    return self.names.index(name)
                except ValueError:
                    return None
            self._index = {n: i for i, n in enumerate(self.names)}
        return self._index.get(name)

    def object_index(self, name: str | None) -> int:
        if name is None:
            if not self.objects:
                raise _fail("container holds no object", self.source)
            return 0
        for i, obj in enumerate(self.objects):
            if obj.name == name:
                return i
        known = ", ".join(repr(o.name) for o in self.objects)
        raise KeyError(f"no object named {name!r} in this container; it holds {known}")


class EntryMap(Mapping[str, EntryInfo]):
    """Read-only mapping name -> EntryInfo that decodes entries on access."""

    def __init__(self, manifest: Manifest) -> None:
        self._m = manifest

    def __getitem__(self, name: str) -> EntryInfo:
        i = self._m.find(name)
        if i is None:
            raise KeyError(name)
        return self._m.entry(i)

    def __iter__(self) -> Iterator[str]:
        return iter(self._m.names)

    def __len__(self) -> int:
        return len(self._m.names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._m.find(name) is not None


def parse_manifest(data: bytes, source: str | None) -> Manifest:
    """Unpack and check the top level of a manifest; entries are checked when read."""
    limits = get_limits()
    if len(data) > limits.max_manifest_bytes:
        raise FormatError(exceeded("the manifest", len(data), "max_manifest_bytes"), path=source)
    try:
        raw = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_array_len=limits.max_entries,
            max_map_len=1 << 20,
        )
    except Exception as e:
        raise _fail(f"not valid msgpack ({type(e).__name__}: {e})", source) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise FormatError("not a codecs_ser manifest", path=source)
    check_sealed(bytes(data), raw, source)
    version = raw.get("format_version")
    if not _is_int(version) or version < 1:
        raise _fail("format_version is missing or not an integer", source)
    if version > FORMAT_VERSION:
        raise FormatError(
            f"container format version {version} is newer than this codecs_ser reads "
            f"({FORMAT_VERSION}); upgrade codecs_ser (pip install -U codecs-ser)",
            path=source,
        )
    for key, known in (("entry_fields", ENTRY_FIELDS), ("blob_fields", BLOB_FIELDS)):
        declared = raw.get(key)
        if not isinstance(declared, list) or tuple(declared[: len(known)]) != known:
            raise _fail(f"{key} must start with {list(known)}", source)
    names, entries, objects = raw.get("names"), raw.get("entries"), raw.get("objects")
    if not isinstance(names, list) or not isinstance(entries, list) or len(names) != len(entries):
        raise _fail("names and entries must be lists of the same length", source)
    if not all(type(n) is str for n in names):
        raise _fail("entry names must be strings", source)
    if len(set(names)) != len(names):
        raise _fail("entry names are not unique", source)
    if not isinstance(objects, list) or not objects:
        raise _fail("objects must be a non-empty list", source)
    parsed_objects = [_parse_object(o, source) for o in objects]
    if len({o.name for o in parsed_objects}) != len(parsed_objects):
        raise _fail("object names are not unique", source)
    writer, metadata, dists = raw.get("writer", {}), raw.get("metadata", {}), raw.get("dists", {})
    checksum = raw.get("checksum", "")
    return Manifest(
        source=source,
        format_version=version,
        writer=writer if isinstance(writer, dict) else {},
        metadata=metadata if isinstance(metadata, dict) else {},
        checksum=checksum if isinstance(checksum, str) else "",
        objects=parsed_objects,
        names=names,
        raw_entries=entries,
        dists=dists if isinstance(dists, dict) else {},
        created=raw.get("created"),
        shared_buffers=tuple(raw["blob_fields"][_NB : _NB + 1]) == ("buffer",),
    )


_entry_packer = msgpack.Packer(use_bin_type=True)


def pack_entry(record: list[Any]) -> bytes:
    """One manifest entry record (ENTRY_FIELDS, blobs as BLOB_FIELDS lists) as msgpack."""
    return _entry_packer.pack(record)


def pack_manifest(
    *,
    writer: dict[str, Any],
    metadata: dict[str, Any],
    checksum: str,
    objects: list[dict[str, Any]],
    names: list[str],
    entries: list[bytes],
    dists: dict[str, Any],
    created: Any,
    shared_buffers: bool = False,
) -> bytes:
    """``shared_buffers``: some blob records carry the appended ``buffer`` field."""
    return msgpack.packb(
        {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "writer": writer,
            "created": created,
            "metadata": metadata,
            "checksum": checksum,
            "dists": dists,
            "objects": objects,
            "entry_fields": list(ENTRY_FIELDS),
            "blob_fields": list(SHARED_BLOB_FIELDS if shared_buffers else BLOB_FIELDS),
            "names": names,
            "entries": entries,
        },
        use_bin_type=True,
    )
