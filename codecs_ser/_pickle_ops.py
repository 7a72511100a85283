"""Pickle opcodes and protocol 0 strings, read without warnings a file could provoke.

The ``STRING`` opcode (protocol 0) carries a quoted, backslash-escaped argument that
``pickletools`` and the pure-Python unpickler decode with ``codecs.escape_decode``.
That call warns (``DeprecationWarning``) on an escape Python never writes, such as
``\\q`` or ``\\777``, and a program run with warnings as errors would then crash on a
crafted file.  :func:`decode_escapes` gives the same bytes as Python's decoder, with
unknown escapes kept literally, without the warning.
"""

from __future__ import annotations

import codecs
import functools
import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pickletools

_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|(.))", re.DOTALL)
#: What may follow a backslash in an escape the decoder knows (``\x`` checks its digits).
_KNOWN = frozenset(b"\\\n'\"abfnrtvx")


def _quiet(match: re.Match[bytes]) -> bytes:
    octal, char = match.groups()
    if octal is not None:
        value = int(octal, 8)
        # The decoder keeps the low byte of an octal escape past \377 (and warns).
        return match[0] if value <= 0o377 else b"\\x%02x" % (value & 0xFF)
    return match[0] if char[0] in _KNOWN else b"\\\\" + char


def decode_escapes(data: bytes) -> bytes:
    """``codecs.escape_decode(data)[0]``, unknown escapes kept as they stand, no warning.

    A malformed ``\\x`` escape or a trailing backslash still raises ``ValueError``.
    """
    if b"\\" not in data:
        return data
    return codecs.escape_decode(_ESCAPE.sub(_quiet, data))[0]


@functools.cache
def _opcodes() -> dict[bytes, pickletools.OpcodeInfo]:
    import pickletools  # only readers of pickles' opcodes need its tables: not every load

    return {op.code.encode("latin-1"): op for op in pickletools.opcodes}


def _read_string(stream: io.BytesIO) -> str:
    """The argument of ``STRING`` as ``pickletools`` reads it, escapes decoded quietly."""
    import pickletools

    raw = pickletools.read_stringnl(stream, decode=False)  # checks the newline and quotes
    assert isinstance(raw, bytes)  # undecoded, it stays bytes
    return decode_escapes(raw).decode("ascii")


def pickle_ops(data: bytes) -> Iterator[tuple[pickletools.OpcodeInfo, Any, int]]:
    """The opcodes of a pickle as ``pickletools.genops`` yields them (opcode, argument,
    position), up to and including ``STOP``; malformed input raises ``ValueError``."""
    by_code = _opcodes()
    stream = io.BytesIO(data)
    while True:
        pos = stream.tell()
        code = stream.read(1)
        op = by_code.get(code)
        if op is None:
            if not code:
                raise ValueError("pickle exhausted before seeing STOP")
            raise ValueError(f"at position {pos}, opcode {code!r} unknown")
        if op.arg is None:
            arg = None
        elif op.name == "STRING":
            arg = _read_string(stream)
        else:
            arg = op.arg.reader(stream)
        yield op, arg, pos
        if op.name == "STOP":
            return
