"""What the entry point names: a spec made of strings, so reading it imports no torch."""

from __future__ import annotations

from codecs_ser import CodecSpec

#: torch dtypes an untrusted skeleton may hold as values (``{"dtype": torch.float16}``).
DTYPE_NAMES = (
    "bfloat16",
    "bool",
    "complex128",
    "complex32",
    "complex64",
    "float16",
    "float32",
    "float64",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "int16",
    "int32",
    "int64",
    "int8",
    "uint16",
    "uint32",
    "uint64",
    "uint8",
)

TENSOR = CodecSpec(
    codec_id="torch.tensor",
    impl="codecs_ser_torch._codec:TensorCodec",
    handles=("torch.Tensor", "torch.nn.parameter.Parameter"),
    requires=("torch",),
    dist="codecs-ser-torch",
    safe_globals=(
        ("codecs_ser_torch._pickling.state_dict", "codecs_ser_torch._safe:STATE_DICT"),
        ("torch.Size", "codecs_ser_torch._safe:SIZE"),
        ("torch.device", "codecs_ser_torch._safe:DEVICE"),
        *((f"torch.{name}", "codecs_ser_torch._safe:DTYPE") for name in DTYPE_NAMES),
    ),
    namers=(("torch.nn.modules.module.Module", "codecs_ser_torch._pickling:module_children"),),
    reducers=(("collections.OrderedDict", "codecs_ser_torch._pickling:reduce_state_dict"),),
)
