"""What the conformance suite cannot know: old codec versions, file objects, damaged packs."""

from __future__ import annotations

import io
from pathlib import Path

import codecs_ser
import numpy as np
import pytest
from codecs_ser import DecodeContext, Encoded
from codecs_ser.errors import FormatError

from codecs_ser_example import Quantity


def test_version_1_entries_still_decode() -> None:
    codec = codecs_ser.default_registry.get_codec("example.quantity")
    old = Encoded(arrays={"data": np.arange(3.0)}, meta={"u": "K"})
    assert codec.decode(old, DecodeContext(codec_version=1)) == Quantity(np.arange(3.0), "K")


def test_dump_picks_backend_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "run.expack"
    codecs_ser.dump({"t": Quantity([1.0, 2.0], "s")}, path)
    with codecs_ser.open(path) as c:
        assert c.backend == "example-pack"
        assert c.entries["t"].codec == "example.quantity"
        assert c.dists == {"codecs-ser-example": "0.1.0"}


def test_mmap_gives_read_only_views(tmp_path: Path) -> None:
    path = tmp_path / "big.expack"
    codecs_ser.dump({"q": Quantity(np.arange(1000.0), "m")}, path)
    q = codecs_ser.load(path, mmap=True)["q"]
    assert not q.value.flags.writeable
    assert q.value.ctypes.data % 64 == 0
    assert q == Quantity(np.arange(1000.0), "m")


def test_bytes_and_file_objects() -> None:
    obj = {"q": Quantity(np.eye(2), "1"), "n": 3}
    data = codecs_ser.dumps(obj, backend="example-pack")
    assert data.startswith(b"\x89EXPACK\n")
    assert codecs_ser.loads(data) == obj
    stream = io.BytesIO(b"junk" + data)
    stream.seek(4)
    assert codecs_ser.load(stream) == obj


def test_damaged_pack_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "run.expack"
    codecs_ser.dump({"q": Quantity(np.ones(4), "m")}, path)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with pytest.raises(FormatError, match="trailer"):
        codecs_ser.load(path)
    path.write_bytes(data[:-30] + bytes([data[-30] ^ 1]) + data[-29:])
    with pytest.raises(FormatError, match="manifest"):
        codecs_ser.load(path)
