"""Sparse member files: holes read as zeros without being read, or costing memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser.errors import IntegrityError

MiB = 1 << 20


def _sparse_container(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A dir container whose 64 MiB array is stored as a sparse file: data at both ends
    and in the middle, holes between."""
    arr = np.zeros(8 * MiB, np.float64)
    arr[:1000] = np.arange(1000)
    arr[4 * MiB : 4 * MiB + 3] = 7.0
    arr[-5:] = -1.0
    root = tmp_path / "c"
    codecs_ser.dump({"a": arr}, root, backend="dir")
    member = root / "a.npy"
    data = member.read_bytes()
    with open(member, "r+b") as f:
        f.truncate(0)
        f.truncate(len(data))
        for start in range(0, len(data), MiB):
            piece = data[start : start + MiB]
            if any(piece):
                f.seek(start)
                f.write(piece)
    return root, arr


def test_a_sparse_member_loads_and_verifies(tmp_path: Path) -> None:
    root, arr = _sparse_container(tmp_path)
    st = os.stat(root / "a.npy")
    if st.st_blocks * 512 >= st.st_size:
        pytest.skip("this file system does not keep holes")
    back = codecs_ser.load(root)["a"]
    assert back.flags.writeable and np.array_equal(back, arr)
    back[5 * MiB] = 1.0  # a page of a hole: writable like any loaded array
    assert codecs_ser.load_arrays(root)["a"].tobytes() == arr.tobytes()
    assert codecs_ser.verify(root) == []


def test_a_flipped_byte_in_a_sparse_member_is_an_integrity_error(tmp_path: Path) -> None:
    root, _ = _sparse_container(tmp_path)
    with open(root / "a.npy", "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"\x01")
    with pytest.raises(IntegrityError):
        codecs_ser.load(root)
    assert [m for m, _ in codecs_ser.verify(root)] == ["a.npy"]


def test_verify_streams_large_blobs(tmp_path: Path) -> None:
    """Verify hashes a blob in pieces: a flipped bit is found without loading it."""
    arr = np.arange(3 * MiB, dtype=np.int64)
    target = tmp_path / "c.tar"
    codecs_ser.dump({"a": arr}, target)
    data = bytearray(target.read_bytes())
    data[data.index(arr[2 * MiB].tobytes())] ^= 1
    target.write_bytes(bytes(data))
    assert [m for m, p in codecs_ser.verify(target) if "checksum mismatch" in p] == ["a.npy"]
