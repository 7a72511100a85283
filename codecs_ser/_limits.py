"""Resource limits applied while reading a container, so a hostile file is refused
before it can exhaust memory or time.

The defaults fit every container codecs_ser writes for models of hundreds of
GiB; raise them for one block of code with ``codecs_ser.limits(...)``, or for
the whole process with ``codecs_ser.set_limits(...)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from .errors import UsageError


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What reading one container may cost.

    Attributes:
        max_manifest_bytes: size of the manifest (it is read whole when a container opens).
        max_entries: number of entries (stored leaves) in one manifest.
        max_ndim: dimensions of one array.
        max_npy_header_bytes: size of one .npy header.
        max_skeleton_bytes: size of one object's skeleton (it is read whole).
        max_pickle_alloc: bytes or items that the calls of an untrusted pickled skeleton
            may create beyond the data the pickle itself carries.
        max_pickle_work: steps of CPU time (about a nanosecond each) that the calls and
            hashes of an untrusted pickled skeleton may take beyond what its size pays for
            (1,000 steps a byte): its number conversions, copies and key hashing.
        max_colliding_keys: keys of one dict or set that may share a hash (hash flooding
            makes building them quadratic).
        max_tuple_depth: tuples nested in tuples in a pickled skeleton (hashing one
            recurses through them on the C stack).
        max_dtype_fields: fields of one dtype description, nested ones and those of
            numpy's comma strings ('u1,u1') included (numpy spends time and memory on each).
        max_decompressed_bytes: what a compressed container (a .tar.gz) may expand to
            whatever its size: it is decompressed into a temporary file first.
        max_decompression_ratio: beyond max_decompressed_bytes, how many times its own
            size a compressed container may expand to (gzip reaches about 1030 at most;
            bz2, xz and zstd reach far more on long runs of zeros, as bombs do).
    """

    max_manifest_bytes: int = 1 << 30
    max_entries: int = 10_000_000
    max_ndim: int = 64
    max_npy_header_bytes: int = 1 << 20
    max_skeleton_bytes: int = 1 << 30
    max_pickle_alloc: int = 64 << 20
    max_pickle_work: int = 1 << 28
    max_colliding_keys: int = 64
    max_tuple_depth: int = 1000
    max_dtype_fields: int = 1 << 16
    max_decompressed_bytes: int = 1 << 26
    max_decompression_ratio: int = 1024


DEFAULT_LIMITS = Limits()
_current: ContextVar[Limits] = ContextVar("codecs_ser_limits", default=DEFAULT_LIMITS)
_FIELDS = frozenset(f.name for f in dataclasses.fields(Limits))


def get_limits() -> Limits:
    """The limits in force here (per thread and per asyncio task)."""
    return _current.get()


def _changed(overrides: dict[str, Any]) -> Limits:
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise UsageError(f"unknown limit(s) {sorted(unknown)}; the limits are {sorted(_FIELDS)}")
    for name, value in overrides.items():
        if type(value) is not int or value < 0:
            raise UsageError(f"limit {name} must be a non-negative int, not {value!r}")
    return dataclasses.replace(_current.get(), **overrides)


def set_limits(**overrides: int) -> Limits:
    """Change limits for this thread or task from now on; returns the previous ones."""
    previous = _current.get()
    _current.set(_changed(overrides))
    return previous


@contextlib.contextmanager
def limits(**overrides: int) -> Iterator[Limits]:
    """Raise (or lower) limits inside a ``with`` block::

    with codecs_ser.limits(max_skeleton_bytes=8 << 30):
        obj = codecs_ser.load("huge.tar", trusted=True)
    """
    token = _current.set(_changed(overrides))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def exceeded(what: str, size: int, name: str) -> str:
    """The message of a refusal: what was too large, and the knob that raises it."""
    limit = getattr(_current.get(), name)
    return (
        f"{what} ({size} bytes or items) exceeds the limit of {limit}; if you trust this file, "
        f"raise it with codecs_ser.limits({name}=...)"
    )
