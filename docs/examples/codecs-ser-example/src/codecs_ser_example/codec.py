"""The ``example.quantity`` codec: a Quantity's values become one .npy blob, its unit metadata."""

from __future__ import annotations

from typing import Any

from codecs_ser import CodecBase, DecodeContext, Encoded

from .quantity import Quantity


class QuantityCodec(CodecBase):
    """Stores ``Quantity.value`` as the blob ``data`` and ``Quantity.unit`` in the manifest.

    Version 2 writes the unit under the key ``"unit"``; version 1 wrote it under
    ``"u"``.  Files keep the version that wrote each entry, so both still load.
    """

    codec_id = "example.quantity"
    codec_version = 2

    def can_encode(self, obj: Any) -> bool:
        # .npy holds object arrays only by pickling them: leave those to the skeleton.
        return not obj.value.dtype.hasobject

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": obj.value}, meta={"unit": obj.unit})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        unit = encoded.meta["u"] if ctx.codec_version == 1 else encoded.meta["unit"]
        # With mmap=True the array is a read-only view of the file; Quantity keeps it as is.
        return Quantity(encoded.arrays["data"], unit)
