"""The dir backend: a folder that mirrors the object's hierarchy, readable with ``ls``.

``dump`` builds a new folder beside the target and swaps it in, so readers see
the old folder or the new one, never a half-written one.  It replaces a folder
only if that folder is a codecs_ser container (it holds
``.codecs_ser/manifest.msgpack``); a user's other folders are never touched.
``add`` writes new members in place and then replaces the manifest file
atomically, so a failure leaves the container as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import shutil
import stat
from collections.abc import Iterable
from typing import Any, BinaryIO

from .. import _tempfiles
from .._files import SeqWriter, fsync_dir, identity
from .._limits import exceeded, get_limits
from .._manifest_seal import seal
from .._tempfiles import temp_name
from ..backend import MemberRef
from ..errors import (
    ConcurrentWriteError,
    ContainerReplacedError,
    FormatError,
    TargetExistsError,
)

MANIFEST = ".codecs_ser/manifest.msgpack"
#: Member files smaller than this are read, not mapped: a mapping costs a descriptor.
MIN_MAPPED = 1 << 16
_RENAME_EXCHANGE = 2


def is_container(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MANIFEST))


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)


def _check_name(root: str, name: str) -> list[str]:
    """The components of a member name, refusing names that could leave ``root``."""
    parts = name.split("/")
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise FormatError("unsafe member name", path=root, member=name)
    return parts


def safe_member_path(root: str, name: str) -> str:
    """The file a member name stands for, refusing anything that could leave ``root``."""
    path = os.path.join(root, *_check_name(root, name))
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise FormatError("member resolves outside the container folder", path=root, member=name)
    return path


class DirWriter:
    """Writes member files under a folder; ``commit`` writes the manifest and publishes."""

    def __init__(
        self,
        root: str,
        *,
        final: str | None,
        durable: bool,
        lock_fd: int | None = None,
        expect: Any = None,
    ) -> None:
        """``expect``: the identity the manifest at ``final`` must still have when the new
        folder is swapped in (a rewrite of an existing container)."""
        self._root = root
        self._expect_final = expect
        self._final = final  # None: writing in place (add)
        self._durable = durable
        self._written: list[str] = []
        self._dirs: set[str] = set()
        self._created: list[str] = []  # folders this writer made, parents first
        self._done = False
        self._lock_fd = lock_fd  # holds the lock on the temporary folder (dump)
        self._journal: tuple[str, int] | None = None
        if final is None:
            # add(): new members go into the container itself; a journal of them lets a
            # later write remove them if this process is killed before it commits.
            self._expect = identity(os.path.join(root, MANIFEST))
            self._journal = _tempfiles.create_file(os.path.join(root, MANIFEST), "add")

    def _write_file(self, path: str, chunks: Iterable[Any], size: int) -> None:
        folder = os.path.dirname(path)
        if folder not in self._dirs:
            missing = []
            probe = folder
            while not os.path.isdir(probe):
                missing.append(probe)
                probe = os.path.dirname(probe)
            os.makedirs(folder, exist_ok=True)
            self._created.extend(reversed(missing))
            self._dirs.add(folder)
        with open(path, "wb", buffering=0) as f:
            self._written.append(path)
            out = SeqWriter(f)
            out.write_chunks(chunks, size)
            out.flush()
            if self._durable:
                os.fsync(f.fileno())

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> None:
        path = safe_member_path(self._root, name)
        if self._journal is not None:
            if os.path.lexists(path):
                # add(): never overwrite a file of the container, even an unreferenced one.
                raise FileExistsError(f"{path!r} already exists in the container folder")
            os.write(self._journal[1], name.encode("utf-8", "surrogateescape") + b"\n")
        self._write_file(path, chunks, size)

    def commit(self, manifest: bytes) -> None:
        manifest = seal(manifest)  # a folder has no trailer to hold the manifest's checksum
        manifest_path = os.path.join(self._root, MANIFEST)
        if self._journal is not None:
            tmp, fd = _tempfiles.create_file(manifest_path)
            try:
                with os.fdopen(os.dup(fd), "wb", buffering=0) as f:
                    out = SeqWriter(f)
                    out.write_chunks([memoryview(manifest)], len(manifest))
                    out.flush()
                    if self._durable:
                        os.fsync(f.fileno())
                if identity(manifest_path) != self._expect:
                    raise ConcurrentWriteError(self._root)
                os.replace(tmp, manifest_path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            finally:
                os.close(fd)
            self._written.clear()
            self._done = True
            if self._durable:
                fsync_dir(os.path.dirname(manifest_path))
            self._close_journal()
            sweep_container(self._root, manifest)
            return
        self._write_file(manifest_path, [memoryview(manifest)], len(manifest))
        if self._durable:
            for folder in sorted(self._dirs, key=len, reverse=True):
                fsync_dir(folder)
            fsync_dir(self._root)
        final = self._final
        assert final is not None
        if self._expect_final is not None and (
            identity(os.path.join(final, MANIFEST)) != self._expect_final
        ):
            raise ConcurrentWriteError(final)
        if os.path.lexists(final):
            _check_replaceable(final)
            if _exchange(self._root, final):
                old = self._root
            else:
                old = temp_name(final, "old")
                os.rename(final, old)
                os.rename(self._root, final)
            self._done = True
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self._root, final)
            self._done = True
        if self._durable:
            fsync_dir(os.path.dirname(final))
        self._release()
        _tempfiles.sweep(final)

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _close_journal(self) -> None:
        if self._journal is not None:
            path, fd = self._journal
            self._journal = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def abort(self) -> None:
        if self._done:
            return
        if self._final is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._release()
            return
        for path in self._written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        self._close_journal()


def _check_replaceable(path: str) -> None:
    if os.path.islink(path) or not os.path.isdir(path):
        raise TargetExistsError(
            f"{path!r} exists and is not a codecs_ser folder; the dir backend replaces only "
            "its own containers. Remove it or choose another path."
        )
    if not is_container(path):
        raise TargetExistsError(
            f"{path!r} is a folder that is not a codecs_ser container; refusing to replace "
            "it. Remove it or choose another path."
        )


_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)  # a symlink could point anywhere
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the open
    | getattr(os, "O_BINARY", 0)
)


_AT = os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _open_at(root_fd: int, name: str) -> int:
    """Open a member relative to the container's folder, one component at a time and
    following no symlink, so every read sees the folder that was opened."""
    parts = name.split("/")
    folder = root_fd
    try:
        for part in parts[:-1]:
            fd = os.open(part, _DIR_FLAGS, dir_fd=folder)
            if folder != root_fd:
                os.close(folder)
            folder = fd
        return os.open(parts[-1], _READ_FLAGS, dir_fd=folder)
    finally:
        if folder != root_fd:
            os.close(folder)


def _open_regular(root: str, name: str, root_fd: int | None = None) -> BinaryIO:
    """Open a member file for reading; refuse symlinks, folders, FIFOs and devices."""
    try:
        if root_fd is not None:
            _check_name(root, name)  # the walk below follows no symlink: names suffice
            fd = _open_at(root_fd, name)
        else:
            fd = os.open(safe_member_path(root, name), _READ_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        if root_fd is not None and not _tempfiles.still_named(root_fd, root, follow=True):
            raise ContainerReplacedError(
                "the container folder was replaced while it was read; open it again",
                path=root,
                member=name,
            ) from None
        raise FormatError("member is missing", path=root, member=name) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise FormatError(
                "member is (or lies under) a symbolic link; a container folder holds regular "
                "files and folders only",
                path=root,
                member=name,
            ) from None
        if e.errno == errno.ENAMETOOLONG:
            raise FormatError(
                "member name is too long for this file system", path=root, member=name
            ) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
            raise FormatError(f"member is {kind}, not a regular file", path=root, member=name)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class DirReader:
    """Reads a container folder; every member path is checked to stay inside it.

    The folder is opened once and members are opened relative to it, so a reader
    keeps reading the container it opened even if a dump swaps in a new one.
    """

    def __init__(self, source: Any) -> None:
        if not isinstance(source, (str, os.PathLike)):
            raise FormatError("the dir backend reads folders, not file objects")
        self._root = os.fspath(source)
        if not os.path.isdir(self._root):
            raise FormatError("not a folder", path=self._root)
        if not is_container(self._root):
            raise FormatError(
                "not a codecs_ser container folder: no .codecs_ser/manifest.msgpack",
                path=self._root,
            )
        # The path itself may be a symlink (the user's choice); nothing under it may.
        self._fd: int | None = (
            os.open(self._root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if _AT else None
        )

    def read_manifest(self) -> bytes:
        with _open_regular(self._root, MANIFEST, self._fd) as f:
            size = os.fstat(f.fileno()).st_size
            if size > get_limits().max_manifest_bytes:
                raise FormatError(
                    exceeded("the manifest", size, "max_manifest_bytes"), path=self._root
                )
            data = f.read(size)
        if len(data) != size:
            raise FormatError("the manifest changed while it was read", path=self._root)
        return data

    def _open(self, ref: MemberRef) -> BinaryIO:
        f = _open_regular(self._root, ref.name, self._fd)
        size = os.fstat(f.fileno()).st_size
        if size != ref.size:
            f.close()
            raise FormatError(
                f"member has {size} bytes, the manifest says {ref.size}",
                path=self._root,
                member=ref.name,
            )
        return f

    def open_member(self, ref: MemberRef) -> BinaryIO:
        return self._open(ref)

    def readinto_member(self, ref: MemberRef, buffer: Any) -> None:
        """Read a whole member into ``buffer`` (of ``ref.size`` bytes) in one call."""
        with self._open(ref) as f:
            view = memoryview(buffer).cast("B")
            pos = 0
            while pos < view.nbytes:
                n = f.readinto(view[pos:])  # type: ignore[attr-defined]
                if not n:
                    raise FormatError("member is truncated", path=self._root, member=ref.name)
                pos += n

    def map_member(self, ref: MemberRef) -> memoryview | None:
        """A mapping of a member file; None (read it instead) for small files, or when the
        process runs out of descriptors (each mapping holds one open)."""
        if ref.size < MIN_MAPPED:
            return None
        with self._open(ref) as f:
            try:
                # Copy-on-write, handed out read-only (see codecs_ser.codec.writable_view).
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
                return memoryview(mapped).toreadonly()
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                    return None
                raise

    def member_names(self) -> list[str]:
        names = []
        for folder, _, files in os.walk(self._root):
            rel = os.path.relpath(folder, self._root)
            for f in files:
                names.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
        return sorted(names)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class DirBackend:
    """Built-in backend ``dir``."""

    backend_id = "dir"

    def create(self, target: Any, *, durable: bool) -> DirWriter:
        if not isinstance(target, (str, os.PathLike)):
            raise TypeError("the dir backend writes to a folder path, not to a file object")
        final = os.path.abspath(os.fspath(target))
        if os.path.lexists(final):
            _check_replaceable(final)
        root, lock_fd = _tempfiles.create_folder(final)
        return DirWriter(root, final=final, durable=durable, lock_fd=lock_fd)

    def open(self, source: Any) -> DirReader:
        return DirReader(source)

    def rewrite(self, path: str, *, durable: bool) -> DirWriter:
        """A writer of a whole new folder swapped in for the container at ``path`` on
        commit, unless another writer replaced it meanwhile (``ConcurrentWriteError``)."""
        final = os.path.abspath(os.fspath(path))
        _check_replaceable(final)
        expect = identity(os.path.join(final, MANIFEST))
        root, lock_fd = _tempfiles.create_folder(final)
        return DirWriter(root, final=final, durable=durable, lock_fd=lock_fd, expect=expect)

    def append(self, path: str, *, durable: bool) -> DirWriter:
        root = os.fspath(path)
        # What a killed add() left must go first: its files would block the new names.
        reader = DirReader(root)
        try:
            manifest = reader.read_manifest()
        finally:
            reader.close()
        sweep_container(root, manifest)
        return DirWriter(root, final=None, durable=durable)


def _referenced(manifest: bytes, root: str) -> set[str] | None:
    """Every member name the manifest uses; None if it cannot be read."""
    from .._manifest import parse_manifest

    try:
        m = parse_manifest(manifest, root)
        names = {MANIFEST}
        names.update(str(o.skeleton_ref.get("member")) for o in m.objects)
        for i in range(len(m.names)):
            names.update(b.member for b in m.entry(i).blobs)
    except FormatError:
        return None
    return names


def sweep_container(root: str, manifest: bytes) -> None:
    """Undo the adds that killed processes left in a folder container: remove the files
    each one's journal lists that the manifest does not use, then the journal."""
    manifest_path = os.path.join(root, MANIFEST)
    journals = _tempfiles.stale(manifest_path, ("add",))
    if journals:
        keep = _referenced(manifest, root)
        if keep is None:
            return  # never remove files on the word of a manifest that cannot be read

        def replay(fd: int) -> None:
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            for line in b"".join(chunks).decode("utf-8", "surrogateescape").splitlines():
                if line in keep:
                    continue
                try:
                    path = safe_member_path(root, line)
                except FormatError:
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(path)  # may never have been created: killed in makedirs
                folder = os.path.dirname(path)
                with contextlib.suppress(OSError):
                    while os.path.abspath(folder) != os.path.abspath(root):
                        os.rmdir(folder)  # only while empty: raises otherwise
                        folder = os.path.dirname(folder)

        for journal in journals:
            with contextlib.suppress(OSError):
                _tempfiles.remove(journal, replay)
    _tempfiles.sweep(manifest_path)
    _tempfiles.sweep(root)  # folders of dumps to this path that were killed
