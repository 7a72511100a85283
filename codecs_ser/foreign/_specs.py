"""Specs of the built-in foreign readers: strings only, so reading them imports nothing."""

from __future__ import annotations

from ._spec import ForeignSpec

_ZIP = ((0, b"PK\x03\x04"), (0, b"PK\x05\x06"))

TORCH = ForeignSpec(
    format_id="torch",
    impl="codecs_ser.foreign._torchfile:TorchFileReader",
    # the zip format, and the legacy pickle stream (refused with a clear error)
    magic=(*_ZIP, (0, b"\x80\x02\x8a\x0a")),
    description="torch.save file",
    dist="codecs-ser",
)
SAFETENSORS = ForeignSpec(
    format_id="safetensors",
    impl="codecs_ser.foreign._safetensors:SafetensorsReader",
    magic=((8, b"{"),),
    description="safetensors file",
    dist="codecs-ser",
)
NPY = ForeignSpec(
    format_id="npy",
    impl="codecs_ser.foreign._npz:NpyReader",
    magic=((0, b"\x93NUMPY"),),
    description=".npy file",
    dist="codecs-ser",
)
THEANO = ForeignSpec(
    format_id="theano-pkl",
    impl="codecs_ser.foreign._theano:PklUtilsReader",
    magic=_ZIP,
    description="Theano/Aesara/PyTensor pkl_utils zip",
    dist="codecs-ser",
)
NPZ = ForeignSpec(
    format_id="npz",
    impl="codecs_ser.foreign._npz:NpzReader",
    magic=_ZIP,
    description=".npz file",
    dist="codecs-ser",
)
BLOCKS = ForeignSpec(
    format_id="blocks",
    impl="codecs_ser.foreign._blocks:BlocksReader",
    magic=((257, b"ustar"),),
    description="Blocks tar dump",
    dist="codecs-ser",
)

#: In the order they are asked: the most specific zip layouts before plain npz.
BUILTIN_READERS = (TORCH, SAFETENSORS, NPY, THEANO, NPZ, BLOCKS)
