"""The built-in numpy codecs: ndarray (and memmap), numpy scalars, masked arrays.

Each array becomes one standard .npy blob; the core writes the header and
streams the bytes, so these codecs only say which arrays make up a leaf.
Object dtypes are not blobs: they stay in the skeleton.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import numpy as np

from .._npy import descr_of
from ..codec import CodecBase, DecodeContext, Encoded
from ..errors import FormatError


@lru_cache(maxsize=1024)
def storable(dtype: np.dtype) -> bool:
    """Whether .npy can hold this dtype without pickle (cached: asked once per leaf)."""
    if dtype.hasobject:
        return False
    try:
        descr_of(dtype)
    except Exception:
        return False
    return True


class NdarrayCodec(CodecBase):
    """numpy.ndarray and numpy.memmap, any dtype .npy can hold; loads as ndarray."""

    codec_id = "numpy.ndarray"
    codec_version = 1

    def can_encode(self, obj: Any) -> bool:
        return storable(obj.dtype)

    def encode(self, obj: Any) -> Encoded:
        if type(obj) is np.ndarray:
            return Encoded(arrays={"data": obj})
        meta = {"type": "recarray"} if isinstance(obj, np.recarray) else {}
        return Encoded(arrays={"data": obj.view(np.ndarray)}, meta=meta)

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        data = encoded.arrays["data"]
        kind = encoded.meta.get("type")
        if kind == "recarray":
            return data.view(np.recarray)
        if kind is not None:
            raise FormatError(f"unknown ndarray type {kind!r} in the entry's meta")
        return data


class ScalarCodec(CodecBase):
    """numpy scalars (np.float32(1), np.datetime64(...), structured np.void, ...)."""

    codec_id = "numpy.scalar"
    codec_version = 1

    def can_encode(self, obj: Any) -> bool:
        return storable(obj.dtype)

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": np.asarray(obj)})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        data = encoded.arrays["data"]
        if data.ndim != 0:
            raise FormatError(f"a numpy scalar is stored as a 0-d array, not of shape {data.shape}")
        return data[()]


class MaskedArrayCodec(CodecBase):
    """numpy.ma.MaskedArray: data, mask and fill value as three .npy blobs."""

    codec_id = "numpy.masked"
    codec_version = 1

    def can_encode(self, obj: Any) -> bool:
        return storable(obj.dtype)

    def encode(self, obj: Any) -> Encoded:
        arrays: dict[str, np.ndarray] = {"data": np.asarray(obj.data)}
        if obj.mask is not np.ma.nomask:
            arrays["mask"] = np.ma.getmaskarray(obj)
        # numpy keeps a fill value that was set as a 0-d array of the dtype; the default one
        # (None here) is derived on demand and may not even fit the dtype (1e20 in float16).
        fill = getattr(obj, "_fill_value", None)
        if fill is not None:
            arrays["fill_value"] = np.asarray(fill).reshape(())
        return Encoded(arrays=arrays, meta={"hard_mask": bool(obj.hardmask)})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        arrays = encoded.arrays
        data = arrays["data"]
        mask = arrays.get("mask", np.ma.nomask)
        fill = arrays.get("fill_value")
        hard = encoded.meta.get("hard_mask", False)
        # A structured array's mask has a bool field for each field of the data.
        mask_dtype = np.ma.make_mask_descr(data.dtype)
        if mask is not np.ma.nomask and (mask.dtype != mask_dtype or mask.shape != data.shape):
            raise FormatError(
                f"mask of dtype {mask.dtype} and shape {mask.shape} does not fit data of shape "
                f"{data.shape}"
            )
        if fill is not None and fill.ndim != 0:
            raise FormatError("a masked array's fill value is stored as a 0-d array")
        if type(hard) is not bool:
            raise FormatError("hard_mask is not a bool")
        return np.ma.MaskedArray(
            data,
            mask=mask,
            fill_value=None if fill is None else cast(Any, fill[()]),
            hard_mask=hard,
            copy=False,
        )
