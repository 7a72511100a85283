"""The codec: a PyTensor ``Container`` holding a tensor value becomes one .npy blob.

The entry's meta keeps what the container needs besides its value (the tensor
type's dtype and static shape, its name and flags), so it is rebuilt without
pickle.  Containers of other types (random generators, sparse matrices) are
declined and stay in the pickled skeleton.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pytensor.link.basic import Container
from pytensor.tensor.type import TensorType

from codecs_ser.codec import CodecBase, DecodeContext, Encoded, writable_view
from codecs_ser.errors import FormatError

ROLE = "value"


class ContainerCodec(CodecBase):
    codec_id = "pytensor.container"
    codec_version = 1

    def can_encode(self, obj: Any) -> bool:
        storage = getattr(obj, "storage", None)
        if not (isinstance(obj, Container) and type(obj.type) is TensorType):
            return False
        if not (isinstance(storage, list) and len(storage) == 1):
            return False
        value = storage[0]
        return (
            type(value) is np.ndarray
            and not value.dtype.hasobject
            and value.dtype == np.dtype(obj.type.dtype)
        )

    def encode(self, obj: Any) -> Encoded:
        tensor_type = obj.type
        meta: dict[str, Any] = {
            "dtype": str(tensor_type.dtype),
            "shape": [None if n is None else int(n) for n in tensor_type.shape],
            "name": obj.name if isinstance(obj.name, str) else None,
            "readonly": bool(obj.readonly),
            "strict": bool(obj.strict),
            "allow_downcast": None if obj.allow_downcast is None else bool(obj.allow_downcast),
        }
        return Encoded(arrays={ROLE: obj.storage[0]}, meta=meta, device="cpu")

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        meta = encoded.meta
        value = encoded.arrays.get(ROLE)
        if not isinstance(value, np.ndarray):
            raise FormatError(f"a pytensor container entry has no {ROLE!r} blob", member=ctx.entry)
        dtype, shape = meta.get("dtype"), meta.get("shape")
        if not isinstance(dtype, str) or value.dtype.name != dtype:
            raise FormatError(
                f"a pytensor container's dtype {dtype!r} disagrees with its blob "
                f"({value.dtype.name})",
                member=ctx.entry,
            )
        if not isinstance(shape, list) or len(shape) != value.ndim:
            raise FormatError(
                "a pytensor container's static shape does not match its blob's dimensions",
                member=ctx.entry,
            )
        for static, actual in zip(shape, value.shape, strict=True):
            if static is not None and (type(static) is not int or static != actual):
                raise FormatError(
                    f"a pytensor container's static shape {shape!r} does not fit its blob "
                    f"of shape {list(value.shape)}",
                    member=ctx.entry,
                )
        flags = {k: meta.get(k) for k in ("readonly", "strict", "allow_downcast")}
        name = meta.get("name")
        if (
            type(flags["readonly"]) is not bool
            or type(flags["strict"]) is not bool
            or not (flags["allow_downcast"] is None or type(flags["allow_downcast"]) is bool)
            or not (name is None or isinstance(name, str))
        ):
            raise FormatError(
                "a pytensor container's name or flags are of the wrong type", member=ctx.entry
            )
        if not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        elif ctx.mmap and not value.flags.writeable:
            # Copy-on-write: an in-place update stays in this process, the file is untouched.
            value = writable_view(value) if writable_view(value) is not None else value
        try:
            tensor_type = TensorType(dtype, shape=tuple(shape))
        except (TypeError, ValueError) as e:
            raise FormatError(
                f"a pytensor container's type is invalid: {e}", member=ctx.entry
            ) from e
        return Container(tensor_type, [value], name=name, **flags)

    def leaf_name(self, obj: Any) -> str | None:
        """The variable's name (``W``) for a value met only inside a compiled function."""
        name = getattr(obj, "name", None)
        return name if isinstance(name, str) and name else None
