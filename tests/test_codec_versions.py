"""Codec versions: an entry names the version of the codec that wrote it; a newer codec
reads every older version of its own entries, and an older codec refuses a newer entry
with the distribution to upgrade, while the arrays stay readable as numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.codec import CodecBase, DecodeContext, Encoded
from codecs_ser.errors import CodecsSerError
from codecs_ser.registry import Registry


class Celsius:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values


class CelsiusV1(CodecBase):
    """Version 1 stores the values as they are."""

    codec_id = "test.celsius"
    codec_version = 1

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": obj.values})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        return Celsius(encoded.arrays["data"])


class CelsiusV2(CodecBase):
    """Version 2 stores kelvins and names the unit; it still reads what version 1 wrote."""

    codec_id = "test.celsius"
    codec_version = 2
    seen: list[int] = []

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": obj.values + 273.15}, meta={"unit": "K"})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        self.seen.append(ctx.codec_version)
        data = encoded.arrays["data"]
        if ctx.codec_version == 1:
            return Celsius(data)
        return Celsius(data - 273.15)


def _registry(codec: type) -> Registry:
    registry = Registry(entry_points=False)
    registry.register_codec(codec, handles=(f"{__name__}.Celsius",))
    return registry


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_a_newer_codec_reads_older_entries(backend: str) -> None:
    data = codecs_ser.dumps(
        {"t": Celsius(np.array([0.0, 100.0]))}, backend=backend, registry=_registry(CelsiusV1)
    )
    with codecs_ser.open(data, registry=_registry(CelsiusV1)) as c:
        assert c.entries["t"].codec_version == 1
    CelsiusV2.seen.clear()
    back = codecs_ser.loads(data, registry=_registry(CelsiusV2))
    assert back["t"].values.tolist() == [0.0, 100.0]
    assert CelsiusV2.seen == [1]
    newer = codecs_ser.dumps({"t": Celsius(np.array([0.0]))}, registry=_registry(CelsiusV2))
    assert codecs_ser.loads(newer, registry=_registry(CelsiusV2))["t"].values.tolist() == [0.0]


def test_an_older_codec_refuses_a_newer_entry_and_says_to_upgrade() -> None:
    newer = codecs_ser.dumps({"t": Celsius(np.array([1.0]))}, registry=_registry(CelsiusV2))
    with pytest.raises(CodecsSerError, match=r"(?i)upgrade"):
        codecs_ser.loads(newer, registry=_registry(CelsiusV1))
    arrays = codecs_ser.load_arrays(newer, registry=_registry(CelsiusV1))
    assert arrays["t"].tolist() == [274.15]
