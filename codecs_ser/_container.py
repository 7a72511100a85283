"""Container writer and reader: walk -> dispatch -> codec -> .npy blobs -> backend, and back.

The core never names a framework: each leaf goes to the codec the registry
finds for its type; the core writes each array the codec returns as a .npy
member, checksums it on the way, and records it in the manifest.
"""

from __future__ import annotations

import errno
import mmap
import platform
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import msgpack
import numpy as np

from . import _checksum
from ._buffers import Placement, SharePlan, assemble, view_in
from ._bulk import PlainPrefetch
from ._byvalue import qualified_name
from ._clock import now
from ._limits import exceeded, get_limits
from ._manifest import (
    META_DIR,
    NDARRAY_CODEC,
    BlobInfo,
    EntryInfo,
    Manifest,
    ObjectInfo,
    pack_entry,
    pack_manifest,
)
from ._names import clash_key, escape_component
from ._npy import MAX_EXTENT, build_header, descr_of, parse_header
from ._skeleton import pack_msgpack, pickle_skeleton, unpack_msgpack
from ._sparse import PIECE, read_sparse, sparse_fd
from ._version import __version__
from ._walk import Leaf, LeafCollector
from .backend import ContainerReader, ContainerWriter, MemberRef, write_one_by_one
from .codec import BufferView, CodecSpec, DecodeContext, Encoded
from .codecs.numpy import NdarrayCodec
from .errors import (
    CodeByValueError,
    CodeByValueWarning,
    CodecsSerError,
    FormatError,
    IntegrityError,
    UsageError,
)
from .registry import Registry

#: Non-contiguous arrays are copied out in pieces of about this size.
CHUNK = 16 << 20
_MISSING = object()
#: Plain arrays up to this size are written through one gathered copy and one hash call.
SMALL_WRITE = 1 << 16
#: Bytes of small arrays gathered before they are written together, each counted with
#: about what its member adds (headers, padding): a run of tiny arrays stays small too.
SMALL_RUN = 1 << 22
MEMBER_OVERHEAD = 1 << 10
#: Blobs up to this size are read whole in one call.
SMALL_BLOB = 1 << 20
_CORE_DIST = "codecs-ser"


def _byte_view(arr: np.ndarray) -> memoryview:
    """The raw bytes of a C-contiguous array, without a copy."""
    if arr.nbytes == 0:
        return memoryview(b"")
    return arr.reshape(-1).view(np.uint8).data


#: Bytes hashed at a time, right before they are written or right after they are read:
#: small enough to be still in the CPU's cache for the second step, so a dump or a
#: verified load passes over memory once, not twice.
HOT_PIECE = 1 << 20


def _pieces(view: memoryview) -> Iterator[memoryview]:
    for start in range(0, view.nbytes, HOT_PIECE):
        yield view[start : start + HOT_PIECE]


def _array_chunks(arr: np.ndarray) -> tuple[bool, Iterable[memoryview]]:
    """(fortran_order, chunks of the array's bytes in .npy order)."""
    if arr.flags.c_contiguous:
        return False, (_byte_view(arr),)
    if arr.flags.f_contiguous:
        return True, (_byte_view(arr.T),)
    return False, _strided_chunks(arr)


def _strided_chunks(arr: np.ndarray) -> Iterator[memoryview]:
    if arr.dtype.names is not None:
        # Copying records copies their fields only, leaving the padding between them as
        # whatever the new memory held: copy whole items, padding included.
        arr = arr[..., np.newaxis].view(np.dtype((np.void, arr.dtype.itemsize)))[..., 0]
    rows = max(1, CHUNK // max(1, arr.nbytes // max(1, arr.shape[0])))
    if arr.ndim and arr.nbytes // max(1, arr.shape[0]) <= CHUNK:
        for i in range(0, arr.shape[0], rows):
            yield _byte_view(np.ascontiguousarray(arr[i : i + rows]))
        return
    for chunk in np.nditer(
        arr,
        flags=["external_loop", "buffered", "zerosize_ok"],
        buffersize=max(1, CHUNK // arr.itemsize),
        order="C",
    ):
        yield _byte_view(np.ascontiguousarray(chunk))


def _hashed(chunks: Iterable[memoryview], hasher: Any) -> Iterator[memoryview]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def _dist_version(dist: str | None, cache: dict[str, str | None]) -> str | None:
    if dist is None:
        return None
    if dist == _CORE_DIST:
        return __version__
    if dist not in cache:
        try:
            from importlib.metadata import version

            cache[dist] = version(dist)
        except Exception:
            cache[dist] = None
    return cache[dist]


_DIST_VERSIONS: dict[str, str | None] = {}


def writer_info() -> dict[str, Any]:
    return {
        "codecs_ser": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "platform": sys.platform,
        "byteorder": sys.byteorder,
    }


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise UsageError("metadata must be a dict of msgpack-safe values")
    try:
        # The reader's rules, applied now: a file must never be written that cannot be read.
        msgpack.unpackb(msgpack.packb(metadata, use_bin_type=True), raw=False, strict_map_key=True)
    except Exception as e:
        raise UsageError(
            "metadata must be a dict with str keys holding only str, bytes, int, float, bool, "
            f"None, lists and such dicts: {e}"
        ) from None
    return metadata


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Validate user metadata before a dump starts writing."""
    return _check_metadata(metadata)


CODE_POLICIES = ("warn", "allow", "refuse")


def check_code_policy(policy: Any) -> str:
    """``code_by_value``: warn (the default), allow, or refuse code stored by value."""
    if policy not in CODE_POLICIES:
        raise UsageError(f"code_by_value must be one of {CODE_POLICIES}, not {policy!r}")
    return str(policy)


def check_new_object_name(name: str, existing: Iterable[str]) -> None:
    """Object names are unique compared as member names are (case folded, normalised)."""
    key = clash_key(name)
    for other in existing:
        if clash_key(other) == key:
            same = "" if other == name else f" ({other!r}: names are compared ignoring case)"
            raise UsageError(f"the container already holds an object named {name!r}{same}")


class Writer:
    """Writes one container: objects, their leaves, then the manifest."""

    def __init__(
        self,
        backend_writer: ContainerWriter,
        registry: Registry,
        *,
        checksum: str,
        existing: Manifest | None = None,
        existing_reader: ContainerReader | None = None,
        code_by_value: str = "warn",
        progress: Any = None,
    ) -> None:
        self._bw = backend_writer
        self._progress = progress  # a _progress.Progress, or None
        self._registry = registry
        self._algorithm = _checksum.check_algorithm(checksum)
        self._descr_cache: dict[np.dtype, Any] = {}
        self._codec_cache: dict[str, tuple[Any, str | None]] = {}
        self._new_hasher = _checksum.factory(self._algorithm)
        self._digest = _checksum.one_shot(self._algorithm)
        self._existing = existing
        self._existing_reader = existing_reader
        self._code_policy = check_code_policy(code_by_value)
        self._objects: list[dict[str, Any]] = []
        self._names: list[str] = []
        self._entries: list[bytes] = []
        self._dists: dict[str, Any] = {}
        self._used: set[str] = {clash_key(META_DIR)}
        self._dedupe: dict[tuple[int, str], tuple[str, int | None]] | None = None
        self._next_buffer = 0
        self._shared_buffers = False
        self._aliases: dict[tuple[Any, ...], list[Any]] = {}
        if existing is not None:
            self._adopt(existing)

    def _adopt(self, m: Manifest) -> None:
        """Keep every object and entry of an existing container (for add)."""
        for obj in m.objects:
            self._objects.append(
                {
                    "name": obj.name,
                    "prefix": obj.prefix,
                    "skeleton": obj.skeleton_ref,
                    "globals": obj.globals,
                    "metadata": obj.metadata,
                }
            )
            self._used.add(clash_key(obj.prefix.rstrip("/")))
        self._names = list(m.names)
        self._entries = list(m.raw_entries)
        self._dists = dict(m.dists)
        # Bytes are reused only where they can be compared with the stored ones.
        self._dedupe = {} if self._existing_reader is not None else None
        for i in range(len(m.names)):
            entry = m.entry(i)
            self._used.add(clash_key(entry.name))
            for blob in entry.blobs:
                if blob.buffer is not None:
                    self._shared_buffers = True
                    self._next_buffer = max(self._next_buffer, blob.buffer.id + 1)
                self._used.add(clash_key(blob.member[: -len(".npy")]))
                if self._dedupe is not None:
                    self._dedupe[(blob.size, blob.checksum)] = (blob.member, blob.offset)

    # -- objects ---------------------------------------------------------------

    def write_object(
        self,
        obj: Any,
        name: str,
        metadata: dict[str, Any] | None = None,
        *,
        slot: int | None = None,
    ) -> None:
        """Write one named object after the others, or in place of the object record at
        ``slot`` (a replaced object, whose entries are already gone)."""
        others = [o["name"] for i, o in enumerate(self._objects) if i != slot]
        check_new_object_name(name, others)
        index = len(self._objects) if slot is None else slot
        # Entries of this object whose names other entries hold get "~n" as any leaf does.
        prefix = "" if index == 0 else escape_component(name) + "/"
        collector = LeafCollector(
            self._registry, prefix=prefix, used_names=self._used, first_index=len(self._names)
        )
        pure = collector.walk(obj)
        if self._progress is not None:
            self._progress.add_total(sum(_leaf_nbytes(leaf.obj) for leaf in collector.leaves))
        if pure:
            skeleton = pack_msgpack(obj, collector.ref)
            fmt, globals_ = "msgpack", []
            code: list[tuple[str, str | None]] = []
        else:
            seen: dict[int, tuple[Any, str | None]] = {}

            def note_code(o: Any) -> None:
                seen.setdefault(id(o), (o, collector.path_of(o)))

            skeleton = pickle_skeleton(
                obj,
                collector.ref,
                collector.plain_view,
                self._registry.reducer_for,
                on_code=note_code,
                path_of=collector.path_of,
                reduced=collector.reduced,
            )
            code = sorted(
                {(qualified_name(o), path) for o, path in seen.values()},
                key=lambda item: (item[0], item[1] or ""),
            )
            self._check_code(code)
            from ._safe_pickle import scan_globals

            fmt, globals_ = "pickle", scan_globals(skeleton, own=True)
        self._write_leaves(collector, index)
        member = f"{META_DIR}/objects/{index}.{fmt}"
        hasher = _checksum.new_hasher(self._algorithm)
        offset = self._bw.write_member(
            member, len(skeleton), _hashed([memoryview(skeleton)], hasher)
        )
        record: dict[str, Any] = {
            "name": name,
            "prefix": prefix,
            "skeleton": {
                "format": fmt,
                "member": member,
                "offset": offset,
                "size": len(skeleton),
                "checksum": f"{self._algorithm}:{hasher.hexdigest()}",
            },
            "globals": globals_,
            "metadata": _check_metadata(metadata),
        }
        if code:  # functions and classes stored as code (revision 1.1), only when there are
            record["code"] = [{"name": n, "path": p} for n, p in code]
        if slot is None:
            self._objects.append(record)
        else:
            self._objects[slot] = record

    def _check_code(self, code: Sequence[tuple[str, str | None]]) -> None:
        """Warn of, or refuse, functions and classes that the pickle stores as code."""
        if not code or self._code_policy == "allow":
            return
        if self._code_policy == "refuse":
            raise CodeByValueError(code)
        warnings.warn(CodeByValueWarning(code), stacklevel=5)

    def _write_leaves(self, collector: LeafCollector, obj_index: int) -> None:
        views = self._find_views(collector.leaves)
        plan = SharePlan(self._next_buffer)
        encoded: dict[int, Encoded] = {}
        leaf: Leaf | None = None
        try:
            for leaf in collector.leaves:
                enc = self._encode(leaf)
                if enc is not None:
                    encoded[leaf.index] = enc
                    for role, arr in enc.arrays.items():
                        if isinstance(arr, BufferView):
                            plan.add(leaf.index, role, arr)
        except Exception as e:
            _note_leaf(e, leaf)
            raise
        plan.plan()
        self._next_buffer = plan.next_id
        names, entries = self._names, self._entries
        # Small plain arrays take a short path (one hash call each, runs written together);
        # the bytes written are those of the general path below.
        small = self._dedupe is None
        run: list[Leaf] = []
        run_bytes = 0
        leaf = None
        try:
            for leaf in collector.leaves:
                arr = leaf.obj
                if (
                    small
                    and type(arr) is np.ndarray
                    and leaf.index not in encoded
                    and leaf.index not in views
                    and arr.nbytes <= SMALL_WRITE
                    and arr.flags.c_contiguous
                ):
                    run.append(leaf)
                    run_bytes += arr.nbytes + MEMBER_OVERHEAD
                    if run_bytes >= SMALL_RUN:
                        self._write_small(run, obj_index)
                        run, run_bytes = [], 0
                    continue
                if run:
                    self._write_small(run, obj_index)
                    run, run_bytes = [], 0
                record = self._leaf_record(
                    leaf, obj_index, collector, encoded.get(leaf.index), plan
                )
                if leaf.index in views:
                    base, offset = views[leaf.index]
                    record[6] = {
                        **record[6],
                        "view": {
                            "base": base.index,
                            "offset": offset,
                            "strides": list(arr.strides),
                        },
                    }
                names.append(leaf.stem)
                entries.append(pack_entry(record))
            if run:
                self._write_small(run, obj_index)
        except Exception as e:
            _note_leaf(e, leaf)
            raise

    def _write_small(self, run: list[Leaf], obj_index: int) -> None:
        """Write a run of small C-contiguous ndarray leaves and add their manifest records:
        each member is built whole and hashed in one call, and a backend that has
        ``write_members`` takes the whole run in one call."""
        descr_cache = self._descr_cache
        descrs = []
        blobs = []
        for leaf in run:
            arr = leaf.obj
            dtype = arr.dtype
            descr = descr_cache.get(dtype)
            if descr is None:
                descr = descr_cache[dtype] = descr_of(dtype)
            descrs.append(descr)
            # tobytes: for a small array one C call beats building a byte view of it.
            blobs.append(build_header(descr, False, arr.shape) + arr.tobytes())
        members = [leaf.stem + ".npy" for leaf in run]
        write_members = getattr(self._bw, "write_members", None)
        if write_members is not None:
            offsets = write_members(members, blobs)
        else:
            offsets = write_one_by_one(self._bw, members, blobs)
        prefix = self._algorithm + ":"
        digest = self._digest
        progress = self._progress
        for leaf, member, blob, offset, descr in zip(
            run, members, blobs, offsets, descrs, strict=True
        ):
            arr = leaf.obj
            codec, _ = self._codec_for(leaf.spec)
            checksum = prefix + digest(blob)
            record = ["data", member, offset, len(blob), descr, arr.shape, False, checksum, None]
            self._entries.append(
                pack_entry(_plain_record(obj_index, leaf, codec.codec_version, record))
            )
            self._names.append(leaf.stem)
            if progress is not None:
                progress.advance(arr.nbytes)

    def _codec_for(self, spec: CodecSpec) -> tuple[Any, str | None]:
        """The codec of a spec and the version of its distribution, looked up once per dump."""
        found = self._codec_cache.get(spec.codec_id)
        if found is None:
            codec = self._registry.get_codec(spec.codec_id)
            version = _dist_version(spec.dist, _DIST_VERSIONS)
            found = self._codec_cache[spec.codec_id] = (codec, version)
        return found

    def _encode(self, leaf: Leaf) -> Encoded | None:
        """The codec's Encoded for a leaf; None for a plain ndarray (written directly)."""
        codec, dist_version = self._codec_for(leaf.spec)
        if leaf.spec.dist is not None:
            self._dists[leaf.spec.dist] = dist_version
        obj = leaf.obj
        if type(codec) is NdarrayCodec and type(obj) is np.ndarray:
            return None
        spec = leaf.spec
        encoded = codec.encode(obj)
        if not isinstance(encoded, Encoded) or not encoded.arrays:
            raise TypeError(
                f"codec {spec.codec_id!r} returned {encoded!r}, not an Encoded with arrays"
            )
        if encoded.meta:
            try:
                msgpack.unpackb(msgpack.packb(dict(encoded.meta), use_bin_type=True), raw=False)
            except Exception as e:
                raise TypeError(
                    f"codec {spec.codec_id!r} returned metadata that is not msgpack-safe with "
                    f"str keys: {e}"
                ) from None
        for role, arr in encoded.arrays.items():
            if not isinstance(arr, (np.ndarray, BufferView)):
                raise TypeError(
                    f"codec {spec.codec_id!r} returned a {type(arr).__name__} for role "
                    f"{role!r}, not a numpy array or a BufferView"
                )
        return encoded

    def _leaf_record(
        self,
        leaf: Leaf,
        obj_index: int,
        collector: LeafCollector,
        encoded: Encoded | None,
        plan: SharePlan,
    ) -> list[Any]:
        """Write one leaf's blobs and return its manifest record (ENTRY_FIELDS)."""
        spec = leaf.spec
        codec, _ = self._codec_for(spec)
        if encoded is None:
            blob = self._write_array(leaf.stem, "data", leaf.obj, True)
            return _plain_record(obj_index, leaf, codec.codec_version, blob)
        blobs = []
        for i, (role, arr) in enumerate(encoded.arrays.items()):
            stem = leaf.stem if i == 0 else collector.reserve_member(leaf.stem, role)
            if isinstance(arr, BufferView):
                blobs.append(
                    self._write_view(stem, role, arr, i == 0, plan.placement(leaf.index, role))
                )
            else:
                blobs.append(self._write_array(stem, role, arr, i == 0))
        return [
            obj_index,
            leaf.path,
            spec.codec_id,
            int(codec.codec_version),
            spec.dist,
            encoded.device,
            dict(encoded.meta),
            blobs,
        ]

    def _write_view(
        self, stem: str, role: str, view: BufferView, primary: bool, placed: Placement | None
    ) -> list[Any]:
        """A blob of an array in a buffer: its own bytes, or the blob of an exact alias."""
        if placed is None:
            return self._write_array(stem, role, view.array(), primary)
        self._shared_buffers = True
        earlier = self._aliases.get(placed.alias)
        if earlier is None:
            blob = self._write_array(stem, role, view.array(), primary)
            self._aliases[placed.alias] = blob
        else:
            blob = list(earlier[:9])
            blob[0] = role
            blob[8] = None if primary else stem
        blob.append(placed.record)
        return blob

    def _write_array(self, stem: str, role: str, arr: np.ndarray, primary: bool) -> list[Any]:
        """Write one array as a .npy member; return its manifest record (BLOB_FIELDS)."""
        member = stem + ".npy"
        dtype = arr.dtype
        descr = self._descr_cache.get(dtype)
        if descr is None:
            descr = self._descr_cache[dtype] = descr_of(dtype)
        fortran, chunks = _array_chunks(arr)
        if type(chunks) is tuple and chunks[0].nbytes > HOT_PIECE:
            chunks = _pieces(chunks[0])  # hashed piece by piece, each written while hot
        header = build_header(descr, fortran, arr.shape)
        size = len(header) + arr.nbytes
        hasher = self._new_hasher()
        if self._dedupe is not None:
            chunks = list(chunks)
            hasher.update(header)
            for c in chunks:
                hasher.update(c)
            checksum = self._algorithm + ":" + hasher.hexdigest()
            reuse = self._dedupe.get((size, checksum))
            if reuse is not None and self._same_bytes(reuse, size, header, chunks):
                member, offset = reuse
            else:
                offset = self._bw.write_member(member, size, (memoryview(header), *chunks))
        elif type(chunks) is tuple:
            hasher.update(header)
            hasher.update(chunks[0])
            checksum = self._algorithm + ":" + hasher.hexdigest()
            offset = self._bw.write_member(member, size, (memoryview(header), chunks[0]))
        else:
            offset = self._bw.write_member(
                member, size, _hashed(_prepend(memoryview(header), chunks), hasher)
            )
            checksum = self._algorithm + ":" + hasher.hexdigest()
        name = None if primary and member == stem + ".npy" else stem
        if self._progress is not None:
            self._progress.advance(arr.nbytes)
        return [role, member, offset, size, descr, list(arr.shape), fortran, checksum, name]

    def _same_bytes(
        self, reuse: tuple[str, int | None], size: int, header: bytes, chunks: list[memoryview]
    ) -> bool:
        """Compare a candidate for reuse byte by byte: a fast hash is not proof."""
        assert self._existing_reader is not None
        member, offset = reuse
        with self._existing_reader.open_member(MemberRef(member, offset, size)) as f:
            for piece in [memoryview(header), *chunks]:
                if f.read(piece.nbytes) != piece:
                    return False
        return True

    # -- numpy views ---------------------------------------------------------------

    def _find_views(self, leaves: list[Leaf]) -> dict[int, tuple[Leaf, int]]:
        """Leaves that are views into another stored ndarray leaf: index -> (base, offset).

        Leaves sharing one memory owner are grouped; the largest contiguous one is
        stored and the others that lie inside it become views of it.
        """
        views: dict[int, tuple[Leaf, int]] = {}
        arrays = [leaf for leaf in leaves if type(leaf.obj) is np.ndarray]
        if not any(leaf.obj.base is not None for leaf in arrays):
            return views  # nothing is a view: the common case, decided in one pass
        groups: dict[int, list[Leaf]] = {}
        for leaf in arrays:
            arr = leaf.obj
            if arr.size and not arr.dtype.hasobject:
                owner = arr
                while isinstance(owner.base, np.ndarray):
                    owner = owner.base
                groups.setdefault(id(owner), []).append(leaf)
        for group in groups.values():
            if len(group) < 2:
                continue
            bases = sorted(
                (g for g in group if g.obj.flags.c_contiguous or g.obj.flags.f_contiguous),
                key=lambda g: -g.obj.nbytes,
            )
            used_as_base: set[int] = set()
            for base in bases:
                if base.index in views:
                    continue
                for leaf in group:
                    if leaf is base or leaf.index in views or leaf.index in used_as_base:
                        continue
                    offset = _view_offset(leaf.obj, base.obj)
                    if offset is not None:
                        views[leaf.index] = (base, offset)
                        used_as_base.add(base.index)
        return views

    # -- finish ------------------------------------------------------------------

    def commit(self, metadata: dict[str, Any] | None = None) -> None:
        existing = self._existing
        manifest = pack_manifest(
            writer=existing.writer if existing is not None else writer_info(),
            metadata=existing.metadata if existing is not None else _check_metadata(metadata),
            checksum=self._algorithm,
            objects=self._objects,
            names=self._names,
            entries=self._entries,
            dists=self._dists,
            created=existing.created if existing is not None else now(),
            shared_buffers=self._shared_buffers,
        )
        self._bw.commit(manifest)


def _plain_record(obj_index: int, leaf: Leaf, version: int, blob: list[Any]) -> list[Any]:
    """The manifest record (ENTRY_FIELDS) of a plain ndarray leaf: what
    NdarrayCodec.encode gives, without building it (this runs per leaf)."""
    spec = leaf.spec
    return [obj_index, leaf.path, spec.codec_id, version, spec.dist, None, {}, [blob]]


def _note_leaf(e: Exception, leaf: Leaf | None) -> None:
    """Say which leaf (and codec) an error while encoding or writing it came from."""
    if leaf is None:
        return
    if isinstance(e, CodecsSerError):
        e.add_note(f"while encoding {leaf.path or 'root'!r} ({_type_name(leaf.obj)})")
    else:
        e.add_note(
            f"while encoding {leaf.path or 'root'!r} ({_type_name(leaf.obj)}) with codec "
            f"{leaf.spec.codec_id!r}"
        )


def _prepend(first: memoryview, rest: Iterable[memoryview]) -> Iterator[memoryview]:
    yield first
    yield from rest


def _leaf_nbytes(obj: Any) -> int:
    """The array bytes a leaf will take, as far as it tells (for progress only)."""
    n = getattr(obj, "nbytes", 0)
    return n if type(n) is int else 0


def _type_name(obj: Any) -> str:
    tp = type(obj)
    return f"{tp.__module__}.{tp.__qualname__}"


def _view_offset(view: np.ndarray, base: np.ndarray) -> int | None:
    """Byte offset of ``view`` inside ``base``'s buffer, if base is stored as one block."""
    if not (base.flags.c_contiguous or base.flags.f_contiguous) or view.dtype.hasobject:
        return None
    start = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    low = high = 0
    for n, stride in zip(view.shape, view.strides, strict=False):
        if stride < 0:
            low += (n - 1) * stride
        else:
            high += (n - 1) * stride
    if start + low < 0 or start + high + view.itemsize > base.nbytes:
        return None
    return start


# -- reading -----------------------------------------------------------------------


class Reader:
    """Decodes entries and objects of one opened container, each entry at most once."""

    def __init__(
        self,
        manifest: Manifest,
        backend_reader: ContainerReader,
        registry: Registry,
        *,
        mmap: bool = False,
        verify: bool | None = None,
        map_location: Any = None,
        progress: Any = None,
    ) -> None:
        self.m = manifest
        self.progress = progress  # a _progress.Progress, or None
        self._br = backend_reader
        self._registry = registry
        self._mmap = mmap
        self._verify = (not mmap) if verify is None else bool(verify)
        self._map_location = map_location
        self._decoded: dict[int, Any] = {}
        #: The object of each entry the whole-object pass decoded (codecs_ser._bulk).
        self._owners: dict[int, int] = {}
        self._prefetch: PlainPrefetch | None = None
        self._resolving: set[int] = set()
        self._shared: dict[Any, Any] = {}
        self._buffers: dict[int, np.ndarray] = {}
        self._buffer_blobs: dict[int, list[tuple[str, BlobInfo]]] | None = None

    # -- shared buffers --------------------------------------------------------

    def shared_buffer(self, buffer_id: int, entry: str) -> np.ndarray:
        """A shared buffer, rebuilt from its blobs once per load."""
        found = self._buffers.get(buffer_id)
        if found is not None:
            return found
        if self._buffer_blobs is None:
            blobs: dict[int, list[tuple[str, BlobInfo]]] = {}
            for i in range(len(self.m.names)):
                info = self.m.entry(i)
                for b in info.blobs:
                    if b.buffer is not None:
                        blobs.setdefault(b.buffer.id, []).append((info.name, b))
            self._buffer_blobs = blobs
        members = self._buffer_blobs.get(buffer_id)
        if not members:
            raise FormatError(
                "a blob names a shared buffer that does not exist", path=self.m.source, member=entry
            )
        buf = assemble(members, lambda b, name: self.read_array(b, entry=name), self.m.source)
        self._buffers[buffer_id] = buf
        return buf

    # -- blobs ---------------------------------------------------------------

    def read_array(self, blob: BlobInfo, *, entry: str) -> np.ndarray:
        """One .npy blob as an array: checked against the manifest and its checksum."""
        arr = self._read_array(blob)
        if self.progress is not None:
            self.progress.advance(blob.nbytes)
        return arr

    def _read_array(self, blob: BlobInfo) -> np.ndarray:
        ref = MemberRef(blob.member, blob.offset, blob.size)
        expected = build_header(blob.descr, blob.fortran_order, blob.shape)
        if self._mmap:
            view = self._br.map_member(ref)
            if view is not None:
                return self._array_from_view(view, blob, expected)
            # Not mappable (a small file, a stream): a copy, aligned and read-only like a mapping.
            arr = _aligned(self._read(ref, blob, expected))
            arr.flags.writeable = False
            return arr
        return self._read(ref, blob, expected)

    def _read(self, ref: MemberRef, blob: BlobInfo, expected: bytes) -> np.ndarray:
        if blob.size <= SMALL_BLOB:
            return self._read_small(ref, blob, expected)
        hasher = _checksum.new_hasher(_checksum.split(blob.checksum)[0]) if self._verify else None
        with self._br.open_member(ref) as f:
            head, hlen = self._read_header(f, ref, blob, expected)
            if hasher is not None:
                hasher.update(head if hlen == len(head) else self._reread_header(ref, hlen))
            sparse = sparse_fd(f)
            arr = _new_array(blob, self.m.source, zeroed=sparse is not None)
            target = _byte_view(arr.T if blob.fortran_order else arr)
            if sparse is not None:
                read_sparse(sparse, f.tell(), target.nbytes, target, hasher, blob, self.m.source)
            elif hasher is not None:
                _readinto_hashed(f, target, hasher, blob, self.m.source)
            else:
                _readinto_exact(f, target, blob, self.m.source)
        if hasher is not None:
            self._compare(blob, hasher)
        return arr

    def _read_header(
        self, f: Any, ref: MemberRef, blob: BlobInfo, expected: bytes
    ) -> tuple[bytes, int]:
        """Read a large blob's .npy header, checked against the manifest: (what was read
        of it, its length); the file is left at the data."""
        head = _read_exact(f, min(len(expected), blob.size), blob, self.m.source)
        hlen = len(expected)
        if head != expected:
            hlen = self._check_foreign_header(head, f, blob)
        self._check_data_size(blob, hlen)
        return head, hlen

    def check_blob(self, blob: BlobInfo) -> None:
        """Check a blob as reading it would (header, size, checksum) in pieces, never
        holding the whole array: verify must not need the memory that loading needs."""
        ref = MemberRef(blob.member, blob.offset, blob.size)
        expected = build_header(blob.descr, blob.fortran_order, blob.shape)
        if blob.size <= SMALL_BLOB:
            self._read_small(ref, blob, expected)
            return
        hasher = _checksum.new_hasher(_checksum.split(blob.checksum)[0])
        with self._br.open_member(ref) as f:
            head, hlen = self._read_header(f, ref, blob, expected)
            hasher.update(head if hlen == len(head) else self._reread_header(ref, hlen))
            sparse = sparse_fd(f)
            if sparse is None:
                _hash_stream(f, blob.nbytes, hasher, blob, self.m.source)
            else:
                read_sparse(sparse, f.tell(), blob.nbytes, None, hasher, blob, self.m.source)
        self._compare(blob, hasher)

    def _read_small(self, ref: MemberRef, blob: BlobInfo, expected: bytes) -> np.ndarray:
        """A small blob in one read; the array keeps the read buffer as its memory."""
        try:
            buf = bytearray(blob.size)
        except MemoryError:
            raise _out_of_memory(blob, self.m.source) from None
        readinto = getattr(self._br, "readinto_member", None)
        if readinto is not None:
            readinto(ref, buf)
        else:
            with self._br.open_member(ref) as f:
                _readinto_exact(f, memoryview(buf), blob, self.m.source)
        hlen = len(expected)
        if not buf.startswith(expected):
            hlen = self._foreign_header(bytes(buf[: 12 + get_limits().max_npy_header_bytes]), blob)
        self._check_data_size(blob, hlen)
        if self._verify:
            algorithm, _, digest = blob.checksum.partition(":")
            actual = _checksum.hexdigest(algorithm, buf)
            if actual != digest:
                raise IntegrityError(
                    blob.member, algorithm=algorithm, expected=digest, actual=actual,
                    path=self.m.source,
                )  # fmt: skip
        if blob.nbytes == 0:
            return np.empty(blob.shape, blob.dtype)
        flat = np.frombuffer(buf, blob.dtype, offset=hlen)
        return flat.reshape(blob.shape, order="F" if blob.fortran_order else "C")

    def _check_data_size(self, blob: BlobInfo, hlen: int) -> None:
        if hlen + blob.nbytes != blob.size:
            raise FormatError(
                f".npy member holds {blob.size - hlen} bytes of data, its shape and dtype "
                f"need {blob.nbytes}",
                path=self.m.source,
                member=blob.member,
            )

    def _reread_header(self, ref: MemberRef, hlen: int) -> bytes:
        with self._br.open_member(ref) as f:
            return _read_exact(f, hlen, None, self.m.source)

    def _check_foreign_header(self, head: bytes, f: Any, blob: BlobInfo) -> int:
        """A header we did not write byte for byte: parse it and compare with the manifest."""
        prefix = head[:12]
        if len(prefix) >= 10 and prefix[:6] == b"\x93NUMPY":
            need = (
                (10 + int.from_bytes(prefix[8:10], "little"))
                if prefix[6] == 1
                else (12 + int.from_bytes(prefix[8:12], "little"))
            )
        else:
            need = len(head)
        if need > blob.size:
            raise FormatError(
                ".npy header runs past the member", path=self.m.source, member=blob.member
            )
        if need > 12 + get_limits().max_npy_header_bytes:
            raise FormatError(
                exceeded("the .npy header", need, "max_npy_header_bytes"),
                path=self.m.source,
                member=blob.member,
            )
        if need > len(head):
            head = head + _read_exact(f, need - len(head), blob, self.m.source)
        elif need < len(head):
            raise FormatError(
                ".npy header is shorter than expected; data misaligned",
                path=self.m.source,
                member=blob.member,
            )
        return self._foreign_header(head, blob)

    def _foreign_header(self, head: bytes, blob: BlobInfo) -> int:
        """Parse a header that differs from the one we write; it must agree with the manifest."""
        dtype, fortran, shape, hlen = parse_header(head)
        if dtype != blob.dtype or fortran != blob.fortran_order or shape != blob.shape:
            raise FormatError(
                f".npy header ({dtype}, {shape}, fortran={fortran}) disagrees with the manifest "
                f"({blob.dtype}, {blob.shape}, fortran={blob.fortran_order})",
                path=self.m.source,
                member=blob.member,
            )
        return hlen

    def _array_from_view(self, view: memoryview, blob: BlobInfo, expected: bytes) -> np.ndarray:
        head = bytes(view[: len(expected)])
        hlen = len(expected)
        if head != expected:
            hlen = self._foreign_header(bytes(view[: 12 + get_limits().max_npy_header_bytes]), blob)
        if hlen + blob.nbytes != view.nbytes:
            raise FormatError(
                ".npy member size does not match its shape and dtype",
                path=self.m.source,
                member=blob.member,
            )
        if self._verify:
            hasher = _checksum.new_hasher(_checksum.split(blob.checksum)[0])
            hasher.update(view)
            self._compare(blob, hasher)
        if blob.nbytes == 0:
            return np.empty(blob.shape, blob.dtype)
        return np.ndarray(
            blob.shape,
            blob.dtype,
            buffer=view,
            offset=hlen,
            order="F" if blob.fortran_order else "C",
        )

    def _compare(self, blob: BlobInfo, hasher: Any) -> None:
        algorithm, _, digest = blob.checksum.partition(":")
        actual = hasher.hexdigest()
        if actual != digest:
            raise IntegrityError(
                blob.member, algorithm=algorithm, expected=digest, actual=actual, path=self.m.source
            )

    # -- entries ---------------------------------------------------------------

    def entry_value(self, index: int) -> Any:
        """The decoded leaf of an entry, decoded once so shared leaves stay one object."""
        try:
            return self._decoded[index]
        except KeyError:
            pass
        if index in self._resolving:
            raise FormatError("entries refer to each other in a cycle", path=self.m.source)
        self._resolving.add(index)
        try:
            entry = self.m.entry(index)
            try:
                value = self._decode(entry)
            except CodecsSerError as e:
                e.add_note(f"while decoding entry {entry.name!r} with codec {entry.codec!r}")
                raise
        finally:
            self._resolving.discard(index)
        self._decoded[index] = value
        return value

    def _decode(self, entry: EntryInfo) -> Any:
        if (
            entry.codec == NDARRAY_CODEC
            and isinstance(entry.meta.get("view"), dict)
            and entry.codec_version == 1
        ):
            return self._decode_view(entry)
        codec = self._registry.get_codec(entry.codec, entry=entry.name, dist=entry.dist)
        if (
            type(codec) is NdarrayCodec
            and not entry.meta
            and len(entry.blobs) == 1
            and entry.codec_version == 1
        ):
            return self.read_array(entry.blobs[0], entry=entry.name)  # what its decode returns
        if entry.codec_version > codec.codec_version:
            raise FormatError(
                f"entry was written by version {entry.codec_version} of codec {entry.codec!r}; "
                f"the installed one reads up to version {codec.codec_version}. Upgrade "
                f"{entry.dist or 'the package that provides it'}",
                path=self.m.source,
                member=entry.name,
            )
        arrays: dict[str, np.ndarray] = {}
        buffers: dict[str, BufferView] = {}
        for b in entry.blobs:
            if b.buffer is None:
                arrays[b.role] = self.read_array(b, entry=entry.name)
                continue
            buf = self.shared_buffer(b.buffer.id, entry.name)
            arrays[b.role] = view_in(buf, b, self.m.source, entry.name)
            buffers[b.role] = BufferView(
                b.buffer.id, buf, b.buffer.offset, b.shape, b.buffer.strides, b.dtype
            )
        encoded = Encoded(arrays=arrays, meta=entry.meta, device=entry.device, buffers=buffers)
        ctx = DecodeContext(
            codec_version=entry.codec_version,
            mmap=self._mmap,
            map_location=self._map_location,
            entry=entry.name,
            shared=self._shared,
        )
        try:
            return codec.decode(encoded, ctx)
        except CodecsSerError:
            raise
        except Exception as e:
            raise FormatError(
                f"codec {entry.codec!r} could not decode this entry: {type(e).__name__}: {e}",
                path=self.m.source,
                member=entry.name,
            ) from e

    def _decode_view(self, entry: EntryInfo) -> np.ndarray:
        """A view into another entry's array, as it was when dumped (its own blob is a copy
        kept for readers that do not know views)."""
        view = entry.meta["view"]
        base_index, offset, strides = view.get("base"), view.get("offset"), view.get("strides")
        if type(base_index) is not int or not isinstance(strides, list) or len(entry.blobs) != 1:
            raise FormatError("bad view entry", path=self.m.source, member=entry.name)
        base_entry = self.m.entry(base_index)
        if base_entry.codec != NDARRAY_CODEC or "view" in base_entry.meta:
            raise FormatError(
                "view entry's base is not a stored array", path=self.m.source, member=entry.name
            )
        base = self.entry_value(base_index)
        blob = entry.blobs[0]
        result = _make_view(
            base, blob.dtype, blob.shape, tuple(strides), offset, self.m.source, entry.name
        )
        # The view must show exactly the bytes stored for it (what readers that know
        # nothing of views get): otherwise the file would mean two different arrays.
        own = self.read_array(blob, entry=entry.name)
        if not _same_values(result, own):
            raise FormatError(
                "view entry shows other values than the bytes stored for it",
                path=self.m.source,
                member=entry.name,
            )
        return result

    # -- objects -----------------------------------------------------------------

    def read_skeleton(self, obj: ObjectInfo) -> bytes:
        ref = obj.skeleton_ref
        blob_ref = MemberRef(ref["member"], ref.get("offset"), ref["size"])
        if blob_ref.size > get_limits().max_skeleton_bytes:
            raise FormatError(
                exceeded("the skeleton", blob_ref.size, "max_skeleton_bytes"),
                path=self.m.source,
                member=blob_ref.name,
            )
        with self._br.open_member(blob_ref) as f:
            data = _read_exact(f, blob_ref.size, None, self.m.source)
        algorithm, digest = _checksum.split(ref["checksum"])
        hasher = _checksum.new_hasher(algorithm)
        hasher.update(data)
        if hasher.hexdigest() != digest:
            raise IntegrityError(
                blob_ref.name,
                algorithm=algorithm,
                expected=digest,
                actual=hasher.hexdigest(),
                path=self.m.source,
            )
        return data

    def read_plain(
        self, obj_index: int, into: dict[int, np.ndarray], owners: dict[int, int]
    ) -> None:
        """Read the small plain arrays of an object in one pass (codecs_ser._bulk) into
        ``into`` (entry index -> array); nothing with ``mmap``, whose views cost nothing."""
        if self._mmap:
            return
        if self._prefetch is None:
            self._prefetch = PlainPrefetch(self.m, self._br, verify=self._verify)
        advance = self.progress.advance if self.progress is not None else None
        self._prefetch.run(obj_index, into, owners, advance)

    def load_object(self, obj_index: int, *, trusted: Any) -> Any:
        obj = self.m.objects[obj_index]
        data = self.read_skeleton(obj)
        if type(self._registry.get_codec(NDARRAY_CODEC)) is NdarrayCodec:
            # The core's codec gives a plain entry's array as it is stored.
            self.read_plain(obj_index, self._decoded, self._owners)
        resolve = self._resolver(obj_index)
        if obj.skeleton_format == "msgpack":
            return unpack_msgpack(data, resolve)
        from ._safe_pickle import unpickle_skeleton  # imported when a pickle is met

        return unpickle_skeleton(
            data,
            resolve,
            trusted=trusted,
            source=self.m.source,
            plugin_globals=self._registry.safe_global,
        )

    def _resolver(self, obj_index: int) -> Any:
        owners = self._owners

        def resolve(index: int) -> Any:
            owner = owners.get(index)
            if owner is None:
                owner = self.m.entry(index).object
            if owner > obj_index:
                raise FormatError(
                    "skeleton refers to an entry of a later object", path=self.m.source
                )
            return self.entry_value(index)

        return resolve


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one dtype and shape hold the same bytes in every field; the
    padding between the fields of records is not part of the values."""
    if a.dtype.names is None:
        return a.tobytes() == b.tobytes()
    return all(_same_values(a[name], b[name]) for name in a.dtype.names)


def _make_view(
    base: np.ndarray,
    dtype: np.dtype,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    offset: int,
    source: str | None,
    name: str,
) -> np.ndarray:
    ok = (
        type(offset) is int
        and len(shape) == len(strides) <= 64
        and all(type(n) is int and n >= 0 for n in shape)
        and all(type(s) is int and -MAX_EXTENT <= s <= MAX_EXTENT for s in strides)
    )
    if ok:
        low = high = 0
        for n, s in zip(shape, strides, strict=False):
            if n == 0:
                low = high = 0
                break
            if s < 0:
                low += (n - 1) * s
            else:
                high += (n - 1) * s
        ok = offset + low >= 0 and offset + high + dtype.itemsize <= base.nbytes
    if not ok:
        raise FormatError("view entry lies outside its base array", path=source, member=name)
    flat = (
        base.reshape(-1, order="A") if base.flags.c_contiguous or base.flags.f_contiguous else None
    )
    if flat is None:
        raise FormatError("view entry's base is not contiguous", path=source, member=name)
    raw = flat.view(np.uint8)
    return np.ndarray(shape, dtype, buffer=raw, offset=offset, strides=strides)


def _aligned(arr: np.ndarray, align: int = 64) -> np.ndarray:
    """The array itself if its data is ``align``-aligned, else an aligned copy."""
    if arr.nbytes == 0 or arr.ctypes.data % align == 0:
        return arr
    raw = np.empty(arr.nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    # Copied as bytes: assigning records copies their fields only, and would leave the
    # padding between fields as whatever the fresh memory held.
    raw[start : start + arr.nbytes] = arr.reshape(-1, order="A").view(np.uint8)
    out = raw[start : start + arr.nbytes].view(arr.dtype)
    return out.reshape(arr.shape, order="F" if fortran else "C")


def _out_of_memory(blob: BlobInfo, source: str | None) -> FormatError:
    """The error for an array this process cannot allocate, saying what to do."""
    return FormatError(
        f"not enough memory to read this array of {blob.nbytes} bytes "
        f"({blob.dtype}, shape {blob.shape}); free memory or raise the process's memory "
        "limit, or load with mmap=True to map the file instead of reading it into memory",
        path=source,
        member=blob.member,
    )


def _new_array(blob: BlobInfo, source: str | None, *, zeroed: bool = False) -> np.ndarray:
    """The array a blob is read into.  Zeroed, it lies in an anonymous mapping whose
    pages cost memory only once written: the holes of a sparse file stay free."""
    order: Literal["C", "F"] = "F" if blob.fortran_order else "C"
    try:
        if zeroed and blob.nbytes:
            memory = mmap.mmap(-1, blob.nbytes)
            return np.ndarray(blob.shape, blob.dtype, buffer=memory, order=order)
        return np.empty(blob.shape, blob.dtype, order=order)
    except MemoryError:
        raise _out_of_memory(blob, source) from None
    except OSError as e:
        if e.errno != errno.ENOMEM:
            raise
        raise _out_of_memory(blob, source) from None


def _hash_stream(f: Any, n: int, hasher: Any, blob: BlobInfo, source: str | None) -> None:
    """Hash the next ``n`` bytes of a file in pieces of one reused buffer."""
    buf = memoryview(bytearray(min(n, PIECE)))
    done = 0
    while done < n:
        piece = buf[: min(n - done, PIECE)]
        _readinto_exact(f, piece, blob, source)
        hasher.update(piece)
        done += piece.nbytes


def _readinto_hashed(
    f: Any, target: memoryview, hasher: Any, blob: BlobInfo, source: str | None
) -> None:
    """Fill ``target`` from ``f``, hashing each piece right after it is read."""
    for piece in _pieces(target):
        _readinto_exact(f, piece, blob, source)
        hasher.update(piece)


def _read_exact(f: Any, n: int, blob: BlobInfo | None, source: str | None) -> bytes:
    data = f.read(n)
    if data is None or len(data) != n:
        raise FormatError("member is truncated", path=source, member=blob.member if blob else None)
    return bytes(data)


def _readinto_exact(f: Any, target: memoryview, blob: BlobInfo, source: str | None) -> None:
    pos, total = 0, target.nbytes
    while pos < total:
        n = f.readinto(target[pos:])
        if not n:
            raise FormatError("member is truncated", path=source, member=blob.member)
        pos += n
