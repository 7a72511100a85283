"""The example codec and backend pass codecs_ser's public conformance suite."""

from __future__ import annotations

from typing import Any

import numpy as np
from codecs_ser.testing import BackendConformance, CodecConformance, check_light_import

from codecs_ser_example import Quantity


class TestQuantityCodec(CodecConformance):
    codec_id = "example.quantity"
    backends = ("tar", "zip", "dir", "example-pack")

    def sample_objects(self) -> list[Any]:
        return [
            Quantity(np.linspace(0.0, 1.0, 5), "m"),
            Quantity(np.arange(6, dtype=np.int16).reshape(2, 3), "s"),
            Quantity(np.zeros((0, 4), dtype=np.float32), ""),
            Quantity(np.asfortranarray(np.ones((3, 2))), "kg m^-3"),
        ]


class TestPackBackend(BackendConformance):
    backend_id = "example-pack"


def test_entry_point_module_is_light() -> None:
    check_light_import(
        "codecs_ser_example._spec",
        forbidden=("codecs_ser_example.codec", "codecs_ser_example.pack"),
    )
