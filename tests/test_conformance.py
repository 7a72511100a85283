"""The core's numpy codecs and its three backends pass the public conformance suite."""

from __future__ import annotations

from typing import Any

import numpy as np

from codecs_ser.testing import BackendConformance, CodecConformance


class TestNdarrayCodec(CodecConformance):
    codec_id = "numpy.ndarray"

    def sample_objects(self) -> list[Any]:
        return [
            np.arange(12, dtype=np.float32).reshape(3, 4),
            np.zeros((2, 0, 3), dtype=">i2"),
            np.array(["x", "yz"]),
            np.asfortranarray(np.ones((3, 2), dtype=np.complex64)),
        ]


class TestScalarCodec(CodecConformance):
    codec_id = "numpy.scalar"

    def sample_objects(self) -> list[Any]:
        return [np.float16(1.5), np.int64(-3), np.datetime64("2024-01-02", "D"), np.bytes_(b"ab")]


class TestMaskedCodec(CodecConformance):
    codec_id = "numpy.masked"

    def sample_objects(self) -> list[Any]:
        return [
            np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-1.0),
            np.ma.masked_array(np.arange(4).reshape(2, 2)),
        ]


class TestTarBackend(BackendConformance):
    backend_id = "tar"


class TestZipBackend(BackendConformance):
    backend_id = "zip"


class TestDirBackend(BackendConformance):
    backend_id = "dir"
