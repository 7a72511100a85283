"""Member names: how a key becomes a path component, and when two names clash.

Names must be safe as relative paths on every file system a container may be
unpacked on (docs/format.md, section 4): no separator, no control character,
no leading dot, components of bounded bytes, and no two names that one file
system could take for the same file.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import xxhash

#: Components longer than this many UTF-8 bytes are shortened.
MAX_COMPONENT = 120
#: What a shortened component keeps, in UTF-8 bytes, before "~" and its digest.
SHORTENED_TO = 80


def _percent(ch: str) -> str:
    """A character as %XX escapes of its UTF-8 bytes (lone surrogates as Python writes them)."""
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


#: Escapes of ASCII text: separators, C0 controls, DEL.  Those of other characters
#: (C1 controls, line and paragraph separators, lone surrogates: 2,000 more) are made
#: the first time a name is not ASCII, so importing codecs_ser stays cheap.
_ASCII_ESCAPES = {c: _percent(chr(c)) for c in (ord("%"), ord("/"), ord("\\"), *range(0x20), 0x7F)}
_ALL_ESCAPES: dict[int, str] = {}


def _escapes(text: str) -> dict[int, str]:
    if text.isascii():
        return _ASCII_ESCAPES
    if not _ALL_ESCAPES:
        others = (*range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000))
        _ALL_ESCAPES.update({c: _percent(chr(c)) for c in others})
        _ALL_ESCAPES.update(_ASCII_ESCAPES)
    return _ALL_ESCAPES


def escape_component(key: Any) -> str:
    """A member-name component for a key: no '/', no control characters, no leading '.'."""
    if type(key) is str and key.isidentifier() and len(key) <= MAX_COMPONENT // 4:
        return key  # nothing to escape: the common case of attribute-like names
    text = key if type(key) is str else repr(key)
    if not text:
        return "%"
    out = text.translate(_escapes(text))
    if out[0] == ".":
        out = "%2E" + out[1:]
    raw = out.encode("utf-8")
    if len(raw) > MAX_COMPONENT:
        out = _shortened(out) + "~" + xxhash.xxh3_64_hexdigest(raw)
    return out


def _shortened(out: str) -> str:
    """The longest start of an escaped component that fits SHORTENED_TO bytes, cut
    between characters and never inside a %XX escape."""
    size, cut = 0, 0
    for i, ch in enumerate(out):
        size += len(ch.encode("utf-8"))
        if size > SHORTENED_TO:
            break
        cut = i + 1
    escape = out.rfind("%", max(0, cut - 2), cut)
    return out[:escape] if escape >= 0 else out[:cut]


def clash_key(name: str) -> str:
    """What two names share when some file system takes them for one file: case is
    folded (Windows, macOS) and Unicode normalised (macOS: 'Å' as one or two code points)."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())
