"""Compression algorithms: their names, levels, signatures and suffixes, and how a
``compress=`` argument and a target's suffix agree on one.

Two kinds exist.  *Stream* compression (gzip, bz2, xz, zstd) compresses a whole tar
container, so ``tar -xzf`` unpacks it.  *Member* compression (deflate) compresses
each zip member alone, so ``numpy.load`` and ``unzip`` still read it and one member
is still read without the others.  This module imports no compression library until
one is needed; zstd is used only where ``zstandard`` (or Python 3.14's
``compression.zstd``) is installed.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from .errors import UsageError

DEFLATE = "deflate"


class Algorithm(NamedTuple):
    """One compression algorithm; ``magic`` is what its stream starts with."""

    name: str
    magic: bytes
    default_level: int
    levels: range
    suffixes: tuple[str, ...]


STREAM = {
    a.name: a
    for a in (
        Algorithm("gzip", b"\x1f\x8b", 6, range(0, 10), (".tar.gz", ".tgz", ".gz")),
        Algorithm("bz2", b"BZh", 9, range(1, 10), (".tar.bz2", ".tbz2", ".tbz", ".bz2")),
        Algorithm("xz", b"\xfd7zXZ\x00", 6, range(0, 10), (".tar.xz", ".txz", ".xz")),
        Algorithm("zstd", b"\x28\xb5\x2f\xfd", 3, range(1, 23), (".tar.zst", ".tzst", ".zst")),
    )
}
MEMBER = {DEFLATE: Algorithm(DEFLATE, b"", 6, range(0, 10), ())}
#: What ``compress=True`` means for each backend.
DEFAULT_FOR_BACKEND = {"tar": "gzip", "zip": DEFLATE}


class Choice(NamedTuple):
    """A chosen compression: the algorithm's name and its level."""

    name: str
    level: int

    @property
    def stream(self) -> bool:
        return self.name in STREAM


def sniff(head: bytes) -> str | None:
    """The stream algorithm whose signature starts ``head``, if any."""
    for algo in STREAM.values():
        if head.startswith(algo.magic):
            return algo.name
    return None


def suffix_of(name: str) -> tuple[str, str] | None:
    """(algorithm, the name without its compression suffix) when ``name`` ends in one."""
    lower = name.lower()
    best: tuple[str, str, str] | None = None
    for algo in STREAM.values():
        for suffix in algo.suffixes:
            if lower.endswith(suffix) and (best is None or len(suffix) > len(best[1])):
                best = (algo.name, suffix, name[: len(name) - len(suffix)])
    if best is None:
        return None
    algo_name, suffix, rest = best
    # ".tgz" stands for ".tar.gz": what is left names a tar; a bare ".gz" adds nothing.
    return algo_name, rest + ".tar" if suffix.startswith(".t") else rest


def parse(compress: Any, backend: str) -> Choice | None:
    """A ``compress=`` argument as a :class:`Choice`: None or False for none, True for
    the backend's default, else ``"name"`` or ``"name:level"``."""
    if compress is None or compress is False:
        return None
    if compress is True:
        default = DEFAULT_FOR_BACKEND.get(backend)
        if default is None:
            raise UsageError(_no_compression(backend))
        return _choice(default, None)
    if not isinstance(compress, str):
        raise UsageError(
            f"compress must be True, False, None or a name such as 'gzip' or 'gzip:9', "
            f"not {compress!r}"
        )
    name, sep, level_text = compress.partition(":")
    level: int | None = None
    if sep:
        if not level_text.isdigit():
            raise UsageError(f"compress={compress!r}: the level after ':' must be a number")
        level = int(level_text)
    return _choice(name.lower(), level)


def _choice(name: str, level: int | None) -> Choice:
    algo = STREAM.get(name) or MEMBER.get(name)
    if algo is None:
        known = ", ".join(repr(n) for n in [*STREAM, *MEMBER])
        raise UsageError(f"unknown compression {name!r}; known: {known}")
    if level is None:
        level = algo.default_level
    if level not in algo.levels:
        raise UsageError(
            f"{name} levels run from {algo.levels.start} to {algo.levels.stop - 1}, not {level}"
        )
    return Choice(name, level)


def _no_compression(backend: str) -> str:
    if backend == "dir":
        return (
            "the dir backend stores plain files (readable by eye, mapped with mmap=True) and "
            "does not compress; compress a tar ('run.tar.gz') or a zip (compress='deflate')"
        )
    return f"the {backend!r} backend does not compress; use tar or zip to compress"


def check_backend(choice: Choice, backend: str) -> None:
    """A compression the backend can write, or a UsageError that says which it can."""
    if backend == "tar" and not choice.stream:
        raise UsageError(
            f"{choice.name} compresses zip members; a tar is compressed whole: "
            "compress='gzip', 'bz2', 'xz' or 'zstd'"
        )
    if backend == "zip" and choice.stream:
        raise UsageError(
            f"a zip compresses each member with deflate (compress='deflate' or True), so "
            f"numpy.load and unzip still read it; {choice.name} compresses a tar"
        )
    if backend not in ("tar", "zip"):
        raise UsageError(_no_compression(backend))


ZSTD_HINT = (
    "zstd needs the zstandard package (pip install zstandard), or Python 3.14's compression.zstd"
)


def zstd_module() -> tuple[str, Any]:
    """('stdlib' | 'zstandard', the module) for zstd, or a UsageError naming what to install."""
    for name, kind in (("compression.zstd", "stdlib"), ("zstandard", "zstandard")):
        try:
            return kind, importlib.import_module(name)
        except ImportError:
            continue
    raise UsageError(ZSTD_HINT)
