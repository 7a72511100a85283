"""Zip's CRC-32: whichever library computes it, the value is the standard one, and a
zip written with each is one that zipfile checks as sound."""

from __future__ import annotations

import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser.backends import _crc32


@pytest.fixture(params=["preferred", "zlib"])
def crc_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """The library picked on this machine, and the standard library's fallback."""
    saved = _crc32._crc32
    _crc32._crc32 = None if request.param == "preferred" else zlib.crc32
    try:
        yield _crc32.implementation()
    finally:
        _crc32._crc32 = saved


def test_crc32_is_the_standard_one(crc_impl: str) -> None:
    data = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8)
    whole = _crc32.crc32(memoryview(data))
    assert whole == zlib.crc32(memoryview(data))
    running = 0
    for start in range(0, data.nbytes, 100_003):  # chunks of odd sizes
        running = _crc32.crc32(memoryview(data[start : start + 100_003]), running)
    assert running == whole


def test_zip_members_pass_zipfiles_own_check(tmp_path: Path, crc_impl: str) -> None:
    rng = np.random.default_rng(1)
    obj = {"big": rng.random(300_000), "small": np.arange(5), "empty": np.zeros(0)}
    for compress in (False, True):
        path = tmp_path / f"{compress}.zip"
        codecs_ser.dump(obj, path, compress=compress)
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
        np.testing.assert_array_equal(codecs_ser.load(path)["big"], obj["big"])


def test_without_a_faster_library_zlib_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "isal", None)  # importing them now fails
    monkeypatch.setitem(sys.modules, "zlib_ng", None)
    monkeypatch.setattr(_crc32, "_crc32", None)
    assert _crc32.implementation() == "zlib.crc32"
    assert _crc32.crc32(b"codecs_ser") == zlib.crc32(b"codecs_ser")
