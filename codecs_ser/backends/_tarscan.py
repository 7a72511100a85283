"""A bounded scan of tar headers, for tars without codecs_ser's trailer.

The standard library's ``tarfile`` is not used on untrusted input: before Python
3.11.10 / 3.12.6 its pax header parsing could be driven into catastrophic regex
backtracking (CVE-2024-6232), and it follows more of the format than a reader of
stored members needs. This scanner reads ustar headers, pax extended headers
(``path`` and ``size``) and GNU long names, checks every header's checksum, and
bounds every record it holds in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from .._files import Source
from ..errors import FormatError

BLOCK = 512
#: Largest pax or GNU long-name record kept in memory.
MAX_EXTENSION = 1 << 20
REGULAR = (b"0", b"\0", b"7")


class TarMember(NamedTuple):
    name: str
    type: bytes
    offset: int  # of the data
    size: int


def _number(field: bytes) -> int:
    """A numeric header field: NUL/space-terminated octal, or GNU base-256."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        return -1


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
        if space < 0 or not data[pos:space].isdigit():
            raise FormatError("malformed pax header record", path=where)
        length = int(data[pos:space])
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise FormatError("malformed pax header record", path=where)
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise FormatError("malformed pax header record", path=where)
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


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
                raw = header[:100].split(b"\0", 1)[0]
                if header[257:262] == b"ustar" and header[345]:
                    raw = header[345:500].split(b"\0", 1)[0] + b"/" + raw
                name = raw.decode("utf-8", "surrogateescape")
            if "size" in pending:
                if not pending["size"].isdigit():
                    raise FormatError("pax size is not a number", path=where)
                size = int(pending["size"])
                if data + size > src.size:
                    raise FormatError("tar member runs past the end of the file", path=where)
            pending = {}
            yield TarMember(name, kind, data, size)
        pos = data + -(-size // BLOCK) * BLOCK
