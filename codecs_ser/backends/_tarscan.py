"""A bounded scan of tar headers, for tars without codecs_ser's trailer.

The standard library's ``tarfile`` is not used on untrusted input: before Python
3.11.10 / 3.12.6 its pax header parsing could be driven into catastrophic regex
backtracking (CVE-2024-6232), and it follows more of the format than a reader of
stored members needs. This scanner reads ustar headers, pax extended headers
(``path`` and ``size``) and GNU long names, checks every header's checksum, and
bounds every record it holds in memory.

Member names are normalised the way GNU tar normalises them when it extracts
(:func:`extracted_name`), so a member that ``tar -x`` would write over another
is found under the name of the one it replaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from .._files import Source
from ..errors import FormatError

BLOCK = 512
#: Largest pax or GNU long-name record kept in memory.
MAX_EXTENSION = 1 << 20
REGULAR = (b"0", b"\0", b"7")


#: Longest decimal number read from a pax record: sizes beyond 10**20 bytes are absurd,
#: and ``int`` of thousands of digits is slow (and refused past 4,300 by Python).
MAX_DIGITS = 20
#: A numeric header field as GNU tar reads it: leading spaces, octal digits, then a NUL,
#: a space or the end of the field.  Nothing else (``int`` would also take "0o", "_", "+").
_OCTAL = re.compile(rb" *([0-7]*)[ \0]*")
_DECIMAL = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")
#: ustar (POSIX) magic: only these headers have a prefix field; old GNU headers keep
#: other data there, and GNU tar then ignores it.
_POSIX_MAGIC = b"ustar\0"


class TarMember(NamedTuple):
    name: str  # as the archive spells it
    type: bytes
    offset: int  # of the data
    size: int
    path: str | None = None  # where tar -x puts it (see extracted_name); None: nowhere


def _number(field: bytes) -> int:
    """A numeric header field: NUL/space-terminated octal, or GNU base-256; -1 if bad."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    found = _OCTAL.fullmatch(field.split(b"\0", 1)[0] + b"\0")
    if found is None:
        return -1
    digits = found.group(1)
    return int(digits, 8) if digits else 0


def decimal(text: str) -> int | None:
    """A decimal number from a pax record: ASCII digits only, at most MAX_DIGITS of them
    (``str.isdigit`` accepts "²" and other digits ``int`` refuses)."""
    return int(text) if _DECIMAL.fullmatch(text) else None


def extracted_name(name: str) -> str | None:
    """The path, relative to the folder it extracts into, where GNU tar puts a member:
    leading "/" and "./" removed, empty and "." components collapsed (the kernel does
    that for "a//b" and "a/./b"), a trailing "/" dropped.  None for a name with a ".."
    component, which GNU tar refuses to extract (and other tools resolve: it is never
    a safe name)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def _checksum_ok(header: bytes) -> bool:
    stored = _number(header[148:156])
    unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
    if stored == unsigned:
        return True
    signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b > 127)
    return stored == signed


def _pax_records(data: bytes, where: str | None) -> dict[str, str]:
    """``"<len> key=value\\n"`` records; malformed ones are an error, not a guess."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 20)
        length = decimal(data[pos:space].decode("ascii", "replace")) if space >= 0 else None
        if length is None:
            raise FormatError("malformed pax header record", path=where)
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise FormatError("malformed pax header record", path=where)
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise FormatError("malformed pax header record", path=where)
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


def _header_name(header: bytes) -> str:
    """The name a header block gives: the prefix field counts only in POSIX ustar headers."""
    raw = header[:100].split(b"\0", 1)[0]
    if header[257:263] == _POSIX_MAGIC and header[345]:
        raw = header[345:500].split(b"\0", 1)[0] + b"/" + raw
    return raw.decode("utf-8", "surrogateescape")


def scan(src: Source) -> Iterator[TarMember]:
    """Every member of the tar, in order; FormatError for a damaged or hostile header."""
    where = src.name
    pos = 0
    pending: dict[str, str] = {}
    while pos + BLOCK <= src.size:
        header = src.read_at(pos, BLOCK)
        if not any(header):
            return  # end-of-archive blocks
        if not _checksum_ok(header):
            raise FormatError(f"tar header at offset {pos} has a bad checksum", path=where)
        kind = header[156:157]
        size = _number(header[124:136])
        if size < 0:
            raise FormatError(f"tar header at offset {pos} has a bad size field", path=where)
        data = pos + BLOCK
        if data + size > src.size:
            raise FormatError("tar member runs past the end of the file", path=where)
        if kind in (b"x", b"L"):
            if size > MAX_EXTENSION:
                raise FormatError("tar extension header is too large", path=where)
            body = src.read_at(data, size)
            if kind == b"x":
                pending.update(_pax_records(body, where))
            else:
                pending["path"] = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind not in (b"g", b"K"):
            name = pending.get("path")
            if name is None:
                name = _header_name(header)
            if "size" in pending:
                found = decimal(pending["size"])
                if found is None:
                    raise FormatError("pax size is not a number", path=where)
                size = found
                if data + size > src.size:
                    raise FormatError("tar member runs past the end of the file", path=where)
            pending = {}
            path = extracted_name(name)
            if name.endswith("/") and kind in REGULAR:
                kind = b"5"  # GNU tar makes a folder of a regular member named "x/"
            yield TarMember(name, kind, data, size, path)
        pos = data + -(-size // BLOCK) * BLOCK
