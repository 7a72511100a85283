"""Temporary files and folders beside a target, and the removal of those a killed
writer left behind.

A writer holds an exclusive ``flock`` on its temporary file or folder for as long
as it writes.  The kernel drops the lock when the process dies, however it dies,
so a later successful write can tell a dead writer's leftovers (lock free) from
a live writer's work in progress (lock held) and remove only the former.
Where ``flock`` does not exist, nothing is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

#: Tags of temporary names: a file or folder being written, a folder being
#: replaced, a journal of an ``add`` to a folder container.
TAGS = ("tmp", "old", "add")
_TAIL = re.compile(r"\.(tmp|old|add)-[0-9a-f]{8}")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def temp_name(path: str, tag: str) -> str:
    """A hidden, unique name beside ``path``, on the same filesystem so rename is atomic."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{tag}-{secrets.token_hex(4)}")


def _lock(fd: int) -> bool:
    """Take the writer's lock on ``fd`` without waiting; False if another process has it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def still_named(fd: int, path: str, *, follow: bool = False) -> bool:
    """Whether ``path`` still names the file or folder open as ``fd`` (it may have been
    removed or replaced since it was opened)."""
    try:
        a, b = os.fstat(fd), (os.stat(path) if follow else os.lstat(path))
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _create_locked(path: str, tag: str, make: Callable[[str], int]) -> tuple[str, int]:
    for _ in range(16):
        tmp = temp_name(path, tag)
        fd = make(tmp)
        if fd < 0:
            continue
        # Between creating and locking, a sweeper may have taken it for a dead writer's.
        if _lock(fd) and still_named(fd, tmp):
            return tmp, fd
        os.close(fd)
    raise OSError(f"could not create a temporary file beside {path!r}")


def create_file(path: str, tag: str = "tmp") -> tuple[str, int]:
    """A new temporary file beside ``path``, locked: (its path, a writable descriptor)."""

    def make(tmp: str) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        return os.open(tmp, flags, 0o666)

    return _create_locked(path, tag, make)


def create_folder(path: str, tag: str = "tmp") -> tuple[str, int]:
    """A new temporary folder beside ``path``, locked: (its path, a descriptor holding the lock)."""

    def make(tmp: str) -> int:
        os.mkdir(tmp)
        try:
            return os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            return -1  # a sweeper took it for a dead writer's before it was locked

    return _create_locked(path, tag, make)


def stale(path: str, tags: tuple[str, ...] = ("tmp", "old")) -> list[str]:
    """Temporary names of ``path`` (with these tags) whose writers are gone."""
    if fcntl is None:
        return []
    folder, base = os.path.split(os.path.abspath(path))
    prefix = f".{base}"
    found = []
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    for name in names:
        if not name.startswith(prefix):
            continue
        match = _TAIL.fullmatch(name, len(prefix))
        if match is None or match.group(1) not in tags:
            continue
        full = os.path.join(folder, name)
        try:
            fd = os.open(full, _OPEN_FLAGS)
        except OSError:
            continue
        try:
            if _lock(fd) and still_named(fd, full):
                found.append(full)
        finally:
            os.close(fd)  # the check is redone by remove(): a writer may start meanwhile
    return found


def remove(full: str, before: Callable[[int], None] | None = None) -> None:
    """Remove one stale temporary file or folder, holding its lock while doing so;
    ``before`` (given the locked descriptor) runs first, for journals to be replayed."""
    try:
        fd = os.open(full, _OPEN_FLAGS)
    except OSError:
        return
    try:
        if not (_lock(fd) and still_named(fd, full)):
            return
        if before is not None:
            before(fd)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)
    finally:
        os.close(fd)


def sweep(path: str) -> None:
    """Remove what killed writers of ``path`` left beside it; never fails the caller."""
    for full in stale(path):
        with contextlib.suppress(OSError):
            remove(full)
