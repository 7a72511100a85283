"""A manifest's checksum of itself, for backends with no trailer to hold one.

A tar's trailer and a zip's comment carry the xxh3_64 of the manifest.  A dir
container has no such place that can be replaced atomically together with the
manifest file, so since format revision 1.1 its manifest ends with one more key,
``manifest_checksum``, whose value is ``"xxh3_64:<16 hex digits>"``: the digest
of the manifest's bytes as they are with those 16 digits written as ``0``.
Readers of 1.0 ignore the key; a manifest without it (a 1.0 dir container) is
read as before, unchecked.
"""

from __future__ import annotations

import re
import struct

import msgpack
import xxhash

from .errors import FormatError, IntegrityError

SEAL_KEY = "manifest_checksum"
_ALGORITHM = "xxh3_64"
_PLACEHOLDER = f"{_ALGORITHM}:{'0' * 16}"
_VALUE = re.compile(rf"{_ALGORITHM}:[0-9a-f]{{16}}", re.ASCII)


def _with_one_more_key(data: bytes) -> bytes:
    """The packed map ``data`` with its header counting one more key (its keys follow)."""
    first = data[0]
    if 0x80 <= first <= 0x8F:
        count, body = first & 0x0F, data[1:]
    elif first == 0xDE:
        count, body = struct.unpack_from(">H", data, 1)[0], data[3:]
    elif first == 0xDF:
        count, body = struct.unpack_from(">I", data, 1)[0], data[5:]
    else:
        raise ValueError("a manifest is a msgpack map")
    count += 1
    if count <= 15:
        return bytes((0x80 | count,)) + body
    if count <= 0xFFFF:
        return b"\xde" + struct.pack(">H", count) + body
    return b"\xdf" + struct.pack(">I", count) + body


def seal(data: bytes) -> bytes:
    """The packed manifest ``data`` with ``manifest_checksum`` added as its last key."""
    unsealed = _with_one_more_key(data) + msgpack.packb(SEAL_KEY) + msgpack.packb(_PLACEHOLDER)
    digest = xxhash.xxh3_64_hexdigest(unsealed)
    return unsealed[: -len(digest)] + digest.encode("ascii")


def check_sealed(data: bytes, raw: dict[str, object], source: str | None) -> None:
    """Check the seal of a manifest that has one (``raw`` is ``data`` decoded)."""
    if SEAL_KEY in raw:
        check_seal(data, raw[SEAL_KEY], source)
        return
    last = next(reversed(raw.items()), None)
    if last is not None and type(last[1]) is str and _VALUE.fullmatch(last[1]):
        # A damaged key name would make a sealed manifest look like one of revision 1.0.
        raise FormatError(
            f"the manifest ends with {last[0]!r} holding a checksum: a damaged {SEAL_KEY}",
            path=source,
        )


def check_seal(data: bytes, value: object, source: str | None) -> None:
    """Check a manifest that holds ``manifest_checksum`` (``value``) against its bytes."""
    if type(value) is not str or _VALUE.fullmatch(value) is None:
        raise FormatError(f"{SEAL_KEY} must be '{_ALGORITHM}:' and 16 hex digits", path=source)
    suffix = msgpack.packb(SEAL_KEY) + msgpack.packb(value)
    if not data.endswith(suffix):
        raise FormatError(f"{SEAL_KEY} must be the manifest's last key", path=source)
    expected = value.split(":", 1)[1]
    actual = xxhash.xxh3_64_hexdigest(data[:-16] + b"0" * 16)
    if actual != expected:
        raise IntegrityError(
            ".codecs_ser/manifest.msgpack",
            algorithm=_ALGORITHM,
            expected=expected,
            actual=actual,
            path=source,
        )
