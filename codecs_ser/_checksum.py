"""Blob checksums: a fast default, a cryptographic option, each named in the manifest.

Measured on the development machine (see benchmarks/checksums.py): xxh3_64 runs
at about 8x the speed of a page-cache read, zlib's crc32 at about the speed of
the read itself, sha256 at half of it.  So xxh3_64 is the default and sha256 is
offered for tamper evidence.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import xxhash

from .errors import FormatError

DEFAULT = "xxh3_64"


class _Crc32:
    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: Any) -> None:
        self._value = zlib.crc32(data, self._value)

    def hexdigest(self) -> str:
        return f"{self._value:08x}"


def _sha256() -> Any:
    import hashlib  # OpenSSL's bindings cost a few ms to import; most files use xxh3

    return hashlib.sha256()


def _blake2b() -> Any:
    import hashlib

    return hashlib.blake2b()


_FACTORIES: dict[str, Callable[[], Any]] = {
    "xxh3_64": xxhash.xxh3_64,
    "xxh3_128": xxhash.xxh3_128,
    "crc32": _Crc32,
    "sha256": _sha256,
    "blake2b": _blake2b,
}

ALGORITHMS = tuple(sorted(_FACTORIES))


def new_hasher(algorithm: str) -> Any:
    """A fresh incremental hasher (``update`` / ``hexdigest``) for a named algorithm."""
    try:
        return _FACTORIES[algorithm]()
    except KeyError:
        raise FormatError(
            f"unknown checksum algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}"
        ) from None


def factory(algorithm: str) -> Callable[[], Any]:
    """The constructor of hashers for an algorithm (for callers that make many)."""
    check_algorithm(algorithm)
    return _FACTORIES[algorithm]


def _incremental(factory: Callable[[], Any]) -> Callable[[Any], str]:
    def digest(data: Any) -> str:
        hasher = factory()
        hasher.update(data)
        return str(hasher.hexdigest())

    return digest


#: One call instead of three (new hasher, update, hexdigest): this runs per small blob.
_ONE_SHOT: dict[str, Callable[[Any], str]] = {
    "xxh3_64": xxhash.xxh3_64_hexdigest,
    "xxh3_128": xxhash.xxh3_128_hexdigest,
    "crc32": _incremental(_Crc32),
    "sha256": _incremental(_sha256),
    "blake2b": _incremental(_blake2b),
}


def hexdigest(algorithm: str, data: Any) -> str:
    """The digest of ``data`` in one call (FormatError for an unknown algorithm)."""
    digest = _ONE_SHOT.get(algorithm)
    if digest is None:
        raise FormatError(
            f"unknown checksum algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}"
        )
    return digest(data)


def one_shot(algorithm: str) -> Callable[[Any], str]:
    """A function from a whole buffer to its hex digest: for small blobs, one call
    instead of a hasher's three (the digest is the incremental hasher's)."""
    check_algorithm(algorithm)
    return _ONE_SHOT[algorithm]


def check_algorithm(algorithm: str) -> str:
    if algorithm not in _FACTORIES:
        raise ValueError(
            f"unknown checksum algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    return algorithm


def split(checksum: Any) -> tuple[str, str]:
    """``"xxh3_64:0123..."`` -> (algorithm, hex digest); FormatError if malformed."""
    if not isinstance(checksum, str) or ":" not in checksum:
        raise FormatError(f"malformed checksum {checksum!r}")
    algorithm, _, digest = checksum.partition(":")
    if algorithm not in _FACTORIES:
        raise FormatError(
            f"checksum algorithm {algorithm!r} is not supported by this version of codecs_ser"
        )
    return algorithm, digest
