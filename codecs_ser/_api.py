"""The public calls: dump, load, dumps, loads, open, load_arrays, add, audit, verify."""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

import numpy as np

from . import _checksum, _clock, _compression
from ._container import (
    Reader,
    Writer,
    check_code_policy,
    check_metadata,
    check_new_object_name,
)
from ._manifest import EntryInfo, EntryMap, Manifest, parse_manifest
from .backend import ContainerReader, ContainerWriter, MemberRef, Source, Target
from .errors import CodecsSerError, ContainerReplacedError, FormatError, UsageError
from .registry import Registry, default_registry

__all__ = [
    "Container",
    "add",
    "add_objects",
    "audit",
    "dump",
    "dumps",
    "load",
    "load_arrays",
    "loads",
    "open",
    "verify",
]

DEFAULT_NAME = "main"
_HEAD = 512


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _pick_backend(target: Any, backend: str | None, registry: Registry) -> str:
    if backend is not None:
        if not isinstance(backend, str):
            raise UsageError(f"backend must be a name such as 'tar', not {backend!r}")
        registry.get_backend_spec(backend)
        return backend
    if _is_path(target):
        name = os.fspath(target)
        found = _compression.suffix_of(name)
        return registry.backend_for_suffix(found[1] if found else name) or "tar"
    return "tar"


def _pick_compression(target: Any, backend_id: str, compress: Any) -> _compression.Choice | None:
    """The compression to write: ``compress=`` and the target's suffix must agree."""
    if compress is True and _is_path(target):
        found = _compression.suffix_of(os.fspath(target))
        if found is not None:
            compress = found[0]  # True with ".tar.xz" means xz
    choice = _compression.parse(compress, backend_id)
    if _is_path(target):
        name = os.fspath(target)
        found = _compression.suffix_of(name)
        if found is not None:
            if backend_id != "tar":
                raise UsageError(
                    f"{name!r} ends in a {found[0]} suffix, which names a compressed tar, "
                    f"not a {backend_id} container: choose another name"
                )
            if choice is None:
                if compress is False:
                    raise UsageError(
                        f"compress=False, but {name!r} ends in a {found[0]} suffix: the name "
                        "would lie; drop the suffix or the argument"
                    )
                choice = _compression.parse(found[0], backend_id)
            elif choice.name != found[0]:
                raise UsageError(
                    f"compress={compress!r}, but {name!r} ends in a {found[0]} suffix; the "
                    "name would lie: make them agree"
                )
        elif choice is not None and choice.stream and name.lower().endswith(".tar"):
            raise UsageError(
                f"compress={compress!r}, but {name!r} ends in '.tar', which names an "
                f"uncompressed tar: name it '{name}.{_SUFFIX[choice.name]}' or drop compress"
            )
    if choice is not None:
        _compression.check_backend(choice, backend_id)
        if choice.name == "zstd":
            _compression.zstd_module()  # fails before anything is written, naming the package
    return choice


_SUFFIX = {"gzip": "gz", "bz2": "bz2", "xz": "xz", "zstd": "zst"}


def dump(
    obj: Any,
    target: Target,
    *,
    backend: str | None = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    objects: Mapping[str, Any] | None = None,
    checksum: str = _checksum.DEFAULT,
    durable: bool = True,
    code_by_value: str = "warn",
    progress: bool = False,
    compress: Any = None,
    registry: Registry | None = None,
) -> None:
    """Save ``obj`` to a path or a binary file object.

    The backend comes from ``backend``, else the target's suffix (``.tar``,
    ``.zip``), else ``tar``; ``backend="dir"`` writes a folder.  Writing to a
    path is atomic: the old file stays until the new one is complete.
    ``durable=False`` skips the fsyncs.  ``checksum`` names the blob checksum
    (``"xxh3_64"``, or ``"sha256"`` for tamper evidence).  Functions and classes
    that cannot be imported by name (lambdas, ``__main__``) are saved as code, with a
    :class:`~codecs_ser.errors.CodeByValueWarning`; ``code_by_value="allow"`` saves
    them silently, ``"refuse"`` raises :class:`~codecs_ser.errors.CodeByValueError`.
    ``objects`` stores more named objects beside ``obj`` in the same write
    (``{"optimizer": opt}``; load one with ``load(path, name="optimizer")``).
    ``progress=True`` shows progress on stderr.

    ``compress``: None (the suffix decides: ``.tar.gz``, ``.tgz``, ``.tar.bz2``,
    ``.tar.xz``, ``.tar.zst`` compress the whole tar), True (gzip for a tar,
    deflate for each zip member), or ``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"``,
    ``"deflate"``, each optionally with a level: ``"gzip:9"``.  A suffix that
    says otherwise is a UsageError.
    """
    registry = registry or default_registry
    if not (_is_path(target) or hasattr(target, "write")):
        raise UsageError(
            f"target must be a path or a writable binary file, not {type(target).__name__}"
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise UsageError("name must be a non-empty string")
    try:
        _checksum.check_algorithm(checksum)
    except ValueError as e:
        raise UsageError(str(e)) from None
    check_metadata(metadata)
    check_code_policy(code_by_value)
    extra = _named_objects(objects, name or DEFAULT_NAME)
    _clock.source_date_epoch()  # a bad SOURCE_DATE_EPOCH fails before anything is written
    backend_id = _pick_backend(target, backend, registry)
    _check_folder(target)
    choice = _pick_compression(target, backend_id, compress)
    impl = registry.get_backend(backend_id)
    writer: ContainerWriter
    if choice is None:
        writer = impl.create(target, durable=durable)
    elif choice.stream:
        from ._compressed import CompressedWriter  # imported when compression is asked for

        writer = CompressedWriter(
            lambda f: impl.create(f, durable=durable), target, choice, durable=durable
        )
    else:
        writer = impl.create(target, durable=durable, compress=choice.level)  # type: ignore[call-arg]
    bar = _progress(progress, target, "dump")
    try:
        w = Writer(writer, registry, checksum=checksum, code_by_value=code_by_value, progress=bar)
        w.write_object(obj, name or DEFAULT_NAME, None)
        for extra_name, extra_obj in extra:
            w.write_object(extra_obj, extra_name, None)
        w.commit(metadata)
        if bar is not None:
            bar.close()
    except BaseException as e:
        if bar is not None:
            bar.close()
        writer.abort()
        if isinstance(e, OSError) and _is_path(target):
            e.add_note(
                f"codecs_ser: the dump to {os.fspath(target)!r} was abandoned; what was there "  # type: ignore[arg-type]
                "before is unchanged"
            )
        raise


def _named_objects(objects: Any, first: str) -> list[tuple[str, Any]]:
    """``dump``'s further objects, checked before anything is written."""
    if objects is None:
        return []
    if not isinstance(objects, Mapping):
        raise UsageError("objects must be a dict of object names to objects")
    names = [first]
    for key in objects:
        if not isinstance(key, str) or not key:
            raise UsageError("objects must be a dict with non-empty str names as keys")
        check_new_object_name(key, names)
        names.append(key)
    return list(objects.items())


def _check_folder(target: Any) -> None:
    """A dump into a folder that does not exist names the target, not a temporary file
    beside it."""
    if _is_path(target):
        folder = os.path.dirname(os.path.abspath(os.fspath(target)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                errno.ENOENT,
                f"no such folder: {folder!r}",
                os.fspath(target),
            )


def _progress(progress: bool, source: Any, verb: str) -> Any:
    if not progress:
        return None
    from ._progress import Progress

    label = os.path.basename(os.fspath(source)) if _is_path(source) else "stream"
    return Progress(f"{verb} {label}")


def dumps(obj: Any, **kwargs: Any) -> bytes:
    """Save ``obj`` to bytes in memory (a tar container unless ``backend`` says otherwise)."""
    buf = io.BytesIO()
    dump(obj, buf, **kwargs)
    return buf.getvalue()


def _open_backend(
    source: Any, registry: Registry, *, nested: bool = False
) -> tuple[ContainerReader, str]:
    name: str | None
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(memoryview(source)[:_HEAD])
        name = None
    elif _is_path(source):
        path = os.fspath(source)
        try:
            mode = os.stat(path).st_mode
        except ValueError:  # a NUL in the path
            raise UsageError(f"not a valid path: {path!r}") from None
        if stat.S_ISDIR(mode):
            return _try_backends(registry.directory_backends(), path, registry, path)
        if not stat.S_ISREG(mode):
            # A FIFO or a device would block the read or never end.
            raise FormatError(
                "not a container: a FIFO, socket or device, not a regular file", path=path
            )
        with builtins.open(path, "rb") as f:
            head = f.read(_HEAD)
        name = path
    elif hasattr(source, "read"):
        seekable = getattr(source, "seekable", lambda: False)()
        if not seekable:
            source = source.read()
            return _open_backend(source, registry, nested=nested)
        start = source.tell()
        head = source.read(_HEAD)
        source.seek(start)
        found = getattr(source, "name", None)
        name = found if isinstance(found, str) else None
    else:
        raise UsageError(
            f"source must be a path, a readable binary file or bytes, not {type(source).__name__}"
        )
    candidates = registry.backends_for_head(head)
    algorithm = None if candidates else _compression.sniff(head)
    if algorithm is not None:
        if nested:
            raise FormatError(
                f"a compressed container holds another compressed stream ({algorithm}); "
                "a container is compressed once",
                path=name,
            )
        return _open_decompressed(algorithm, source, registry, name)
    if not candidates:
        raise FormatError(
            "not a codecs_ser container: neither a tar nor a zip file, nor a format of an "
            "installed backend",
            path=name,
        )
    return _try_backends(candidates, source, registry, name)


def _open_decompressed(
    algorithm: str, source: Any, registry: Registry, name: str | None
) -> tuple[ContainerReader, str]:
    """A compressed container: decompressed (within the limits) into a temporary file,
    read there by the backend its content names."""

    def check_head(head: bytes) -> None:
        if not registry.backends_for_head(head):
            raise FormatError(
                f"the {algorithm} stream does not hold a tar or zip container (nor a format of "
                "an installed backend)",
                path=name,
            )

    from ._compressed import DecompressedCopy, DecompressedReader  # when a file is compressed

    copy = DecompressedCopy(algorithm, source, name, check_head)
    try:
        reader, backend_id = _open_backend(copy.file, registry, nested=True)
    except BaseException:
        copy.close()
        raise
    return DecompressedReader(reader, copy), backend_id


def _try_backends(
    candidates: list[str], source: Any, registry: Registry, name: str | None
) -> tuple[ContainerReader, str]:
    """Open with the first candidate backend that recognises the container."""
    error: FormatError | None = None
    start = source.tell() if hasattr(source, "tell") else None
    for backend_id in candidates:
        if start is not None:
            source.seek(start)  # a backend that gave up may have moved the file position
        try:
            return registry.get_backend(backend_id).open(source), backend_id
        except FormatError as e:
            error = error or e
    if error is None:
        raise FormatError("no installed backend reads this kind of container", path=name)
    raise error


class Container:
    """An opened container: reading it costs its manifest; entries are read one by one.

    Use it as a context manager: ``with codecs_ser.open(path) as c: c.read(name)``.
    """

    def __init__(self, source: Source | bytes, *, registry: Registry | None = None) -> None:
        self._registry = registry or default_registry
        self._source = source
        self._reader, self.backend = _open_backend(source, self._registry)
        try:
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
            self._manifest: Manifest = parse_manifest(self._reader.read_manifest(), name)
        except BaseException:
            self._reader.close()
            raise

    # -- what it holds --------------------------------------------------------------

    @property
    def entries(self) -> Mapping[str, EntryInfo]:
        """Entry name -> :class:`EntryInfo` (codec, dtype, shape, nbytes, ...), decoded lazily."""
        return EntryMap(self._manifest)

    @property
    def objects(self) -> list[str]:
        """Names of the objects stored (the first one is what ``load`` returns by default)."""
        return [o.name for o in self._manifest.objects]

    @property
    def metadata(self) -> dict[str, Any]:
        """The user metadata given to ``dump``."""
        return self._manifest.metadata

    def object_metadata(self, name: str | None = None) -> dict[str, Any]:
        """The metadata given to ``add`` for the named object (the first one by default);
        ``metadata`` is the container's own, given to ``dump``."""
        return self._manifest.objects[self._object_index(name)].metadata

    @property
    def compression(self) -> str | None:
        """The stream compression of the file ('gzip', 'bz2', 'xz', 'zstd'), or None."""
        return getattr(self._reader, "compression", None)

    @property
    def format_version(self) -> int:
        return self._manifest.format_version

    @property
    def writer(self) -> dict[str, Any]:
        """Versions of codecs_ser, Python and numpy that wrote the container."""
        return self._manifest.writer

    @property
    def dists(self) -> dict[str, Any]:
        """Distributions (and versions) whose codecs wrote entries."""
        return self._manifest.dists

    def skeleton_format(self, name: str | None = None) -> str:
        """'msgpack' (pure data, no pickle) or 'pickle' for the named object."""
        return self._manifest.objects[self._object_index(name)].skeleton_format

    def _object_index(self, name: str | None) -> int:
        try:
            return self._manifest.object_index(name)
        except KeyError as e:
            raise UsageError(e.args[0]) from None

    def _reader_for(self, **kwargs: Any) -> Reader:
        return Reader(self._manifest, self._reader, self._registry, **kwargs)

    # -- reading ----------------------------------------------------------------

    def read(
        self, name: str, *, mmap: bool = False, verify: bool | None = None, map_location: Any = None
    ) -> Any:
        """One entry, decoded by its codec; reads that entry's bytes and nothing else."""
        index = self._manifest.find(name)
        if index is None:
            raise KeyError(f"no entry named {name!r} in this container")
        return self._reader_for(mmap=mmap, verify=verify, map_location=map_location).entry_value(
            index
        )

    def load(
        self,
        name: str | None = None,
        *,
        trusted: Any = False,
        mmap: bool = False,
        verify: bool | None = None,
        map_location: Any = None,
        progress: bool = False,
    ) -> Any:
        """The named object (the first one by default); see :func:`codecs_ser.load`."""
        from ._safe_pickle import normalize_trusted
        from .placement import check_map_location

        normalize_trusted(trusted)  # a bad argument fails the same for every skeleton
        check_map_location(map_location)
        index = self._object_index(name)
        bar = _progress(progress, self._source, "load")
        reader = self._reader_for(mmap=mmap, verify=verify, map_location=map_location, progress=bar)
        if bar is None:
            return reader.load_object(index, trusted=trusted)
        m = self._manifest
        try:
            for i in range(len(m.names)):
                entry = m.entry(i)
                if entry.object == index:
                    bar.add_total(entry.nbytes)
            return reader.load_object(index, trusted=trusted)
        finally:
            bar.close()

    def arrays(
        self, name: str | None = None, *, mmap: bool = False, verify: bool | None = None
    ) -> dict[str, np.ndarray]:
        """Every blob as a numpy array, with no codec and no unpickling.

        Keys are member names without ``.npy``; with ``name``, only that object's
        entries, keyed relative to the object.
        """
        m = self._manifest
        only = None if name is None else self._object_index(name)
        reader = self._reader_for(mmap=mmap, verify=verify)
        plain: dict[int, np.ndarray] = {}  # small plain arrays, read in one pass
        for obj_index in range(len(m.objects)) if only is None else [only]:
            reader.read_plain(obj_index, plain, {})
        prefix = m.objects[only].prefix if only is not None else ""
        out: dict[str, np.ndarray] = {}

        def add(key: str, array: np.ndarray) -> None:
            if key in out:
                raise FormatError(
                    "two arrays of the container have one name", path=m.source, member=key
                )
            out[key] = array

        for i in range(len(m.names)):
            array = plain.pop(i, None)
            if array is not None:  # a plain entry: one blob, named as its entry is
                add(_strip(m.names[i], prefix), array)
                continue
            entry = m.entry(i)
            if only is not None and entry.object != only:
                continue
            for blob in entry.blobs:
                add(_strip(blob.name, prefix), reader.read_array(blob, entry=entry.name))
        return out

    @overload
    def audit(self, name: str | None = None, *, explain: Literal[False] = False) -> list[str]: ...

    @overload
    def audit(self, name: str | None = None, *, explain: Literal[True]) -> dict[str, str]: ...

    @overload
    def audit(self, name: str | None = None, *, explain: bool) -> list[str] | dict[str, str]: ...

    def audit(self, name: str | None = None, *, explain: bool = False) -> Any:
        """Every global loading would import (all objects, or the named one), sorted.

        With ``explain``, a dict of each to its verdict: ``"allowed"`` (loads with the
        default ``trusted=False``), ``"not allowed"`` (needs ``trusted=[...]``), or
        ``"dangerous: <what it can do>"`` (can run code or reach the system: trusting
        it is ``trusted=True`` in disguise).
        """
        found: set[str] = set()
        indices = range(len(self._manifest.objects)) if name is None else [self._object_index(name)]
        reader = self._reader_for()
        for i in indices:
            obj = self._manifest.objects[i]
            if obj.skeleton_format == "pickle":
                from ._safe_pickle import scan_globals

                found.update(scan_globals(reader.read_skeleton(obj)))
        if explain:
            from ._safe_pickle import verdicts

            return verdicts(found, plugin_globals=self._registry.safe_global)
        return sorted(found)

    def code(self, name: str | None = None) -> list[dict[str, Any]]:
        """Functions and classes stored as code by value (all objects, or the named one):
        ``{"object", "name", "path"}`` each; loading them needs ``trusted=True``."""
        objects = self._manifest.objects
        chosen = objects if name is None else [objects[self._object_index(name)]]
        return [{"object": o.name, **c} for o in chosen for c in o.code]

    def verify(self) -> list[tuple[str, str]]:
        """Check every checksum; returns (member, problem) pairs, empty when all is well.

        A container replaced by a writer meanwhile is no problem of its content: that
        raises :class:`~codecs_ser.errors.ContainerReplacedError` instead.
        """
        problems: list[tuple[str, str]] = []
        reader = self._reader_for(verify=True)
        m = self._manifest

        def checked(member: str, check: Callable[[Any], Any], arg: Any) -> Any:
            try:
                return check(arg)
            except ContainerReplacedError:
                raise
            except CodecsSerError as e:
                problems.append((member, str(e)))
                return None

        for obj in m.objects:
            checked(str(obj.skeleton_ref.get("member")), reader.read_skeleton, obj)
        for i in range(len(m.names)):
            entry = checked(m.names[i], m.entry, i)
            for blob in entry.blobs if entry is not None else ():
                checked(blob.member, reader.check_blob, blob)
        index_problems = getattr(self._reader, "index_problems", None)
        if index_problems is not None:
            # What tar -x or unzip would extract must be what was just checked.
            refs = [
                MemberRef(
                    o.skeleton_ref["member"], o.skeleton_ref.get("offset"), o.skeleton_ref["size"]
                )
                for o in m.objects
            ]
            for i in range(len(m.names)):
                with contextlib.suppress(CodecsSerError):  # reported above
                    refs.extend(MemberRef(b.member, b.offset, b.size) for b in m.entry(i).blobs)
            problems.extend(index_problems(refs))
        return problems

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


T = TypeVar("T")

#: How often a one-shot call opens a path again when a writer replaced it meanwhile.
REOPEN_ATTEMPTS = 8


def _reopening(source: Any, call: Callable[[], T]) -> T:
    """Run a one-shot read of ``source``, opening it again when a writer swapped the
    container (a dir) while it was read, as a reader of a tar never sees the swap."""
    for attempt in range(REOPEN_ATTEMPTS):
        try:
            return call()
        except ContainerReplacedError:
            if not _is_path(source) or attempt == REOPEN_ATTEMPTS - 1:
                raise
    raise AssertionError("a last attempt either returns or raises")


def open(source: Source | bytes, *, registry: Registry | None = None) -> Container:
    """Open a container; reads only its manifest.

    A file that is not a codecs_ser container but one a foreign reader recognises
    by its content (torch.save, safetensors, .npy, .npz, pkl_utils, Blocks; see
    :mod:`codecs_ser.foreign`) opens read-only, with nothing unpickled.
    """
    if hasattr(source, "read") and not getattr(source, "seekable", lambda: False)():
        source = source.read()  # both attempts need the bytes
    start = source.tell() if hasattr(source, "tell") else None
    try:
        return Container(source, registry=registry)
    except FormatError:
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]
        foreign = _open_foreign(source)
        if foreign is None:
            raise
        return foreign


def _open_foreign(source: Any) -> Container | None:
    """The source opened by a foreign reader that claims it (imported only now)."""
    from .foreign import open_foreign

    return open_foreign(source)


def load(
    source: Source | bytes,
    name: str | None = None,
    *,
    trusted: Any = False,
    mmap: bool = False,
    verify: bool | None = None,
    map_location: Any = None,
    progress: bool = False,
    registry: Registry | None = None,
) -> Any:
    """Load an object saved by :func:`dump` (the first object, or the one called ``name``).

    Safe by default: a pure-data object loads with no pickle; a pickled one may
    import only allowed globals, else :class:`~codecs_ser.errors.UntrustedError`
    lists what it wants.  ``trusted=True`` allows everything, a list of
    ``"module.Name"`` strings allows those.  ``mmap=True`` returns read-only
    zero-copy views of uncompressed blobs.  Checksums are verified as blobs are
    read (``verify=False`` skips that; with ``mmap`` they are skipped unless
    ``verify=True``, since verifying reads every page).

    ``map_location`` places leaves as ``torch.load`` does (a device string, a dict
    of saved to new devices, a callable; see :mod:`codecs_ser.placement`).  It
    concerns codecs of devices, such as the torch plugin's: numpy arrays live in
    host memory and load as numpy arrays whatever it says, so for a numpy-only
    container it changes nothing (a malformed one is still refused).
    ``progress=True`` shows progress on stderr (a tqdm bar where tqdm is installed).
    """

    def once() -> Any:
        with Container(source, registry=registry) as c:
            return c.load(
                name,
                trusted=trusted,
                mmap=mmap,
                verify=verify,
                map_location=map_location,
                progress=progress,
            )

    return _reopening(source, once)


def loads(data: bytes, **kwargs: Any) -> Any:
    """Load an object from bytes made by :func:`dumps`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"loads() takes bytes, not {type(data).__name__}")
    return load(data, **kwargs)


def load_arrays(
    source: Source | bytes,
    name: str | None = None,
    *,
    mmap: bool = False,
    verify: bool | None = None,
    registry: Registry | None = None,
) -> dict[str, np.ndarray]:
    """Every array of the container as numpy, by hierarchical name; no codec, no unpickling.

    Foreign files (see :func:`open`) give their arrays the same way.
    """

    def once() -> dict[str, np.ndarray]:
        with open(source, registry=registry) as c:
            return c.arrays(name, mmap=mmap, verify=verify)

    return _reopening(source, once)


def audit(
    source: Source | bytes,
    name: str | None = None,
    *,
    explain: bool = False,
    registry: Registry | None = None,
) -> Any:
    """The globals that loading would import, sorted; runs nothing.

    ``explain=True`` gives each global's verdict instead (see :meth:`Container.audit`):
    the allowed ones load without ``trusted``, the dangerous ones should never be
    trusted by name.
    """

    def once() -> Any:
        with Container(source, registry=registry) as c:
            return c.audit(name, explain=explain)

    return _reopening(source, once)


def verify(source: Source | bytes, *, registry: Registry | None = None) -> list[tuple[str, str]]:
    """Check every checksum of a container; an empty list means it is intact."""

    def once() -> list[tuple[str, str]]:
        with Container(source, registry=registry) as c:
            return c.verify()

    return _reopening(source, once)


def add(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    name: str,
    metadata: dict[str, Any] | None = None,
    replace: bool = False,
    checksum: str | None = None,
    durable: bool = True,
    code_by_value: str = "warn",
    registry: Registry | None = None,
) -> None:
    """Add ``obj`` as a named object to the container at ``path``.

    ``name`` must differ from the names of the objects already there, compared
    ignoring case, unless ``replace=True``: then an object of that name is replaced
    (it keeps its place, so replacing the first object changes what ``load`` returns
    by default) and the blobs only it used are dropped; that writes the container
    again.  ``metadata`` is the object's own (``Container.object_metadata``).
    Appended arrays whose bytes the container already holds (under the same
    checksum) are not stored again.  ``checksum`` names the new blobs' checksum; by
    default, the container's.  A failure midway leaves the container exactly as it
    was; another process that changed it meanwhile makes this raise
    :class:`~codecs_ser.errors.ConcurrentWriteError`.
    """
    if not isinstance(name, str) or not name:
        raise UsageError("add() needs a non-empty name for the new object")
    add_objects(
        path,
        {name: obj},
        metadata={name: metadata} if metadata is not None else None,
        replace=replace,
        checksum=checksum,
        durable=durable,
        code_by_value=code_by_value,
        registry=registry,
    )


def add_objects(
    path: str | os.PathLike[str],
    objects: Mapping[str, Any],
    *,
    metadata: Mapping[str, dict[str, Any]] | None = None,
    replace: bool = False,
    checksum: str | None = None,
    durable: bool = True,
    code_by_value: str = "warn",
    registry: Registry | None = None,
) -> None:
    """Add several named objects (``{"optimizer": opt, "log": log}``) in one write.

    As :func:`add` for each, all or none: ``metadata`` maps object names to their
    metadata.
    """
    from ._add import add_objects as write

    check_code_policy(code_by_value)
    if not _is_path(path):
        raise UsageError("add() needs a path to an existing container")
    if not isinstance(objects, Mapping):
        raise UsageError("add_objects() takes a dict of object names to objects")
    if metadata is not None and (
        not isinstance(metadata, Mapping) or not set(metadata) <= set(objects)
    ):
        raise UsageError("metadata must map names of the objects being added to dicts")
    write(
        os.fspath(path),
        [(name, obj, (metadata or {}).get(name)) for name, obj in objects.items()],
        replace=replace,
        checksum=checksum,
        durable=durable,
        code_by_value=code_by_value,
        registry=registry or default_registry,
        open_backend=_open_backend,
        appender=_appender,
    )


def _appender(
    reader: ContainerReader,
    backend_id: str,
    path: str,
    registry: Registry,
    durable: bool,
    expect: Any,
) -> ContainerWriter:
    """The writer of an add: in place, or, for a compressed container, to its
    decompressed copy, compressed again over ``path`` (the whole file is rewritten)."""
    backend = registry.get_backend(backend_id)
    copy = getattr(reader, "copy", None)  # a DecompressedCopy: the container is compressed
    if copy is None:
        return backend.append(path, durable=durable)
    from ._compressed import RecompressingWriter

    choice = _compression.parse(copy.algorithm, backend_id)
    assert choice is not None
    inner = backend.append(copy.path, durable=False)
    return RecompressingWriter(inner, copy.path, path, choice, durable=durable, expect=expect)
