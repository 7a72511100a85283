"""dtypes numpy lacks, the way codecs_ser's torch plugin stores them.

bfloat16 comes back as its uint16 bit patterns, the float8 types (and packed
float4) as uint8 bit patterns, complex32 as float16 pairs along a last axis of 2;
the entry's info names the true dtype (``info["dtype"]``).  Where the ``ml_dtypes``
package is importable, bfloat16 and float8 arrays come back as ml_dtypes' types
instead (the same bytes, viewed).
"""

from __future__ import annotations

import importlib.util

import numpy as np

NATIVE = {
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
}
#: name -> bit-pattern dtype, for the types numpy has no twin of.
BITS = {
    "bfloat16": "<u2",
    "float8_e4m3fn": "|u1",
    "float8_e4m3fnuz": "|u1",
    "float8_e5m2": "|u1",
    "float8_e5m2fnuz": "|u1",
    "float8_e8m0fnu": "|u1",
    "float4_e2m1fn_x2": "|u1",
}
#: Types ml_dtypes can view the bits as (float4_e2m1fn_x2 packs two values a byte: not).
ML_DTYPES = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
)
_ml: object = False


def bits_dtype(name: str) -> np.dtype:
    """The numpy dtype the bytes of a named dtype are read as (complex32: float16 pairs)."""
    if name == "complex32":
        return np.dtype("<f2")
    return np.dtype(NATIVE.get(name) or BITS[name])


def known(name: str) -> bool:
    return name in NATIVE or name in BITS or name == "complex32"


def _ml_dtypes() -> object:
    global _ml
    if _ml is False:
        _ml = None
        if importlib.util.find_spec("ml_dtypes") is not None:
            try:
                import ml_dtypes  # type: ignore[import-not-found, unused-ignore]

                _ml = ml_dtypes
            except Exception:
                _ml = None
    return _ml


def as_readable(arr: np.ndarray, name: str) -> np.ndarray:
    """Bit patterns viewed as ml_dtypes' type when that package is there; else as they are."""
    if name not in ML_DTYPES:
        return arr
    ml = _ml_dtypes()
    if ml is None:
        return arr
    return arr.view(getattr(ml, name))
