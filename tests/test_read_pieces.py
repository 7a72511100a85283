"""Large blobs are read and hashed piece by piece (each piece hashed while it is still in
the CPU's cache): every piece is still checked, the first and the last alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser._container import HOT_PIECE
from codecs_ser.errors import IntegrityError

#: Three and a bit pieces, so the last piece is a short one.
ARRAY = np.arange((3 * HOT_PIECE + 4096) // 8, dtype=np.float64)


@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
def test_large_blob_loads_whole(tmp_path: Path, backend: str) -> None:
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump({"w": ARRAY}, path, backend=backend)
    np.testing.assert_array_equal(codecs_ser.load(path)["w"], ARRAY)


@pytest.mark.parametrize("where", [0, HOT_PIECE - 1, 2 * HOT_PIECE + 7, ARRAY.nbytes - 1])
def test_damage_in_any_piece_is_found(tmp_path: Path, where: int) -> None:
    path = tmp_path / "c"
    codecs_ser.dump({"w": ARRAY}, path, backend="dir")
    member = path / "w.npy"
    data = bytearray(member.read_bytes())
    data[len(data) - ARRAY.nbytes + where] ^= 0x40
    member.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        codecs_ser.load(path)
