"""Entry references in stored skeletons, rewritten to new entry numbers.

Skeletons name their leaves by entry number across the whole container, so
dropping an object's entries (``add(..., replace=True)``) moves the numbers of
every later entry.  The rewrite touches only the references: msgpack extension 2
and the int before each pickle ``BINPERSID``; nothing is unpickled or run.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import msgpack

from ._pickle_ops import pickle_ops
from ._skeleton import EXT_LEAF, EXT_TUPLE
from .errors import FormatError

#: old entry number -> new one; raises FormatError for a reference it cannot keep.
Renumber = Callable[[int], int]


def renumber_msgpack(data: bytes, new: Renumber) -> bytes:
    """A msgpack skeleton whose leaf references go through ``new``."""

    def ext_hook(code: int, payload: bytes) -> msgpack.ExtType:
        if code == EXT_TUPLE:
            return msgpack.ExtType(code, pack(unpack(payload)))
        if code == EXT_LEAF:
            index = msgpack.unpackb(payload)
            if type(index) is not int:
                raise FormatError("skeleton leaf reference is not an integer")
            return msgpack.ExtType(code, msgpack.packb(new(index)))
        return msgpack.ExtType(code, payload)

    def unpack(payload: bytes) -> object:
        return msgpack.unpackb(
            payload, ext_hook=ext_hook, raw=False, strict_map_key=False, use_list=True
        )

    def pack(value: object) -> bytes:
        return msgpack.packb(value, use_bin_type=True)

    try:
        return pack(unpack(data))
    except FormatError:
        raise
    except (RecursionError, ValueError, TypeError, msgpack.UnpackException) as e:
        raise FormatError(f"skeleton is not valid msgpack: {type(e).__name__}: {e}") from None


_INT_PUSHES = frozenset({"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"})


def _int_opcode(value: int) -> bytes:
    if 0 <= value < 1 << 8:
        return b"K" + bytes([value])  # BININT1
    if 0 <= value < 1 << 16:
        return b"M" + struct.pack("<H", value)  # BININT2
    if -(1 << 31) <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def renumber_pickle(data: bytes, new: Renumber) -> bytes:
    """A pickled skeleton whose persistent ids go through ``new``.

    Frames are dropped (they are optional and their lengths would change); every
    other opcode is kept byte for byte.
    """
    try:
        ops = list(pickle_ops(data))
    except Exception as e:
        raise FormatError(f"pickled skeleton is malformed: {type(e).__name__}: {e}") from None
    out = bytearray()
    last: tuple[str, object, int] | None = None  # the previous opcode: name, arg, where in out
    for i, (op, arg, at) in enumerate(ops):
        pos = at or 0  # genops gives positions for bytes
        following = ops[i + 1][2] if i + 1 < len(ops) else None
        end = following if following is not None else pos + 1
        if op.name == "FRAME":
            continue
        if op.name == "PERSID" or (
            op.name == "BINPERSID"
            and (last is None or last[0] not in _INT_PUSHES or type(last[1]) is not int)
        ):
            raise FormatError("pickled skeleton has a leaf reference that is not an int")
        if op.name == "BINPERSID":
            assert last is not None and isinstance(last[1], int)
            del out[last[2] :]
            out += _int_opcode(new(last[1]))
        last = (op.name, arg, len(out))
        out += data[pos:end]
    return bytes(out)
