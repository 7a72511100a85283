"""Specs of the built-in numpy codecs: strings only, so reading them imports nothing."""

from __future__ import annotations

from ..codec import CodecSpec

NDARRAY = CodecSpec(
    codec_id="numpy.ndarray",
    impl="codecs_ser.codecs.numpy:NdarrayCodec",
    handles=("numpy.ndarray", "numpy.memmap", "numpy.recarray", "numpy.rec.recarray"),
    requires=("numpy",),
    dist="codecs-ser",
)
SCALAR = CodecSpec(
    codec_id="numpy.scalar",
    impl="codecs_ser.codecs.numpy:ScalarCodec",
    handles=("numpy.generic",),
    subclasses=True,
    requires=("numpy",),
    dist="codecs-ser",
)
MASKED = CodecSpec(
    codec_id="numpy.masked",
    impl="codecs_ser.codecs.numpy:MaskedArrayCodec",
    handles=("numpy.ma.MaskedArray", "numpy.ma.core.MaskedArray"),
    requires=("numpy",),
    dist="codecs-ser",
)

BUILTIN_CODECS = (NDARRAY, SCALAR, MASKED)
