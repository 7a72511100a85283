"""How each torch dtype is stored in .npy: its numpy twin, or its raw bits.

numpy has no bfloat16, float8 or complex32: bfloat16 is stored as uint16 bit
patterns, the float8 (and packed float4) types as uint8 bit patterns, complex32 as
pairs of float16 along a last axis of 2.  The entry's meta names the true dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Stored(NamedTuple):
    """A torch dtype and the .npy dtype its bytes are written as."""

    torch: torch.dtype
    numpy: np.dtype
    pairs: bool  # complex32: a last axis of 2 float16 values


_NATIVE = {
    "bool": "|b1",
    "uint8": "|u1",
    "int8": "|i1",
    "int16": "<i2",
    "uint16": "<u2",
    "int32": "<i4",
    "uint32": "<u4",
    "int64": "<i8",
    "uint64": "<u8",
    "float16": "<f2",
    "float32": "<f4",
    "float64": "<f8",
    "complex64": "<c8",
    "complex128": "<c16",
    "bfloat16": "<u2",
}
_BITS8 = (
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
)


def _table() -> dict[str, Stored]:
    table: dict[str, Stored] = {}
    for name, descr in _NATIVE.items():
        table[name] = Stored(getattr(torch, name), np.dtype(descr), False)
    for name in _BITS8:
        if hasattr(torch, name):  # newer float formats exist in newer torch only
            table[name] = Stored(getattr(torch, name), np.dtype("|u1"), False)
    table["complex32"] = Stored(torch.complex32, np.dtype("<f2"), True)
    return table


BY_NAME = _table()
BY_DTYPE = {s.torch: (name, s) for name, s in BY_NAME.items()}


def stored(dtype: Any) -> tuple[str, Stored] | None:
    """The name and storage of a torch dtype, None for dtypes without plain bytes."""
    return BY_DTYPE.get(dtype)
