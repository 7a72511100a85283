"""CRC-32 for zip members, at memory speed where a library provides it.

Zip needs CRC-32 (its readers check it), and the standard library's runs at about
a quarter of the speed of ISA-L's or zlib-ng's on this kind of data, which made
zip dumps of large arrays CRC-bound.  ``pip install codecs-ser[fast]`` installs
ISA-L (``isal``); without it zlib-ng is used if present, else ``zlib.crc32``.
All three compute the same standard CRC-32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_crc32: Callable[[Any, int], int] | None = None


def _pick() -> Callable[[Any, int], int]:
    try:
        from isal import isal_zlib

        return isal_zlib.crc32
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        return zlib_ng.crc32  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        pass
    import zlib

    return zlib.crc32


def crc32(data: Any, value: int = 0) -> int:
    """The running CRC-32 of ``data`` after ``value`` (as ``zlib.crc32``)."""
    global _crc32
    if _crc32 is None:
        _crc32 = _pick()
    return _crc32(data, value)


def implementation() -> str:
    """Which library computes CRC-32 here (for benchmarks and bug reports)."""
    crc32(b"")
    assert _crc32 is not None
    return f"{_crc32.__module__}.crc32"
