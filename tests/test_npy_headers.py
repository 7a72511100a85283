"""Blob headers codecs_ser did not write byte for byte are parsed and must agree with the
manifest; a mapping that cannot be made falls back to a read-only copy."""

from __future__ import annotations

import errno
import mmap
from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser.backends import dir as dir_backend
from codecs_ser.errors import FormatError

SMALL = np.arange(12, dtype=np.float32).reshape(3, 4)
LARGE = np.arange(3 * 4 * 40_000, dtype=np.float32).reshape(3, 4, 40_000)  # over 1 MiB


def _dump(tmp_path: Path, arr: np.ndarray) -> Path:
    target = tmp_path / "run"
    codecs_ser.dump({"w": arr}, target, backend="dir")
    return target / "w.npy"


def _rewrite_header(member: Path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    data = member.read_bytes()
    assert old in data[:256]
    member.write_bytes(data.replace(old, new, 1))


@pytest.mark.parametrize("arr", [SMALL, LARGE], ids=["small", "large"])
@pytest.mark.parametrize("mmap_load", [False, True])
def test_equivalent_header_written_differently_loads(
    tmp_path: Path, arr: np.ndarray, mmap_load: bool
) -> None:
    member = _dump(tmp_path, arr)
    # Same meaning, other bytes (keys in another order): as another writer might.
    data = member.read_bytes()
    hlen = 10 + int.from_bytes(data[8:10], "little")
    text = f"{{'shape': {arr.shape!r}, 'fortran_order': False, 'descr': '<f4'}}"
    member.write_bytes(data[:10] + text.encode().ljust(hlen - 11) + b"\n" + data[hlen:])
    back = codecs_ser.load(member.parent, mmap=mmap_load, verify=False)
    np.testing.assert_array_equal(back["w"], arr)


@pytest.mark.parametrize("arr", [SMALL, LARGE], ids=["small", "large"])
@pytest.mark.parametrize("mmap_load", [False, True])
def test_header_disagreeing_with_manifest_is_refused(
    tmp_path: Path, arr: np.ndarray, mmap_load: bool
) -> None:
    member = _dump(tmp_path, arr)
    _rewrite_header(member, b"'<f4'", b"'<i4'")
    with pytest.raises(FormatError, match="disagrees with the manifest"):
        codecs_ser.load(member.parent, mmap=mmap_load, verify=False)


def test_out_of_descriptors_falls_back_to_read_only_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = _dump(tmp_path, LARGE)

    def refuse(*args: object, **kwargs: object) -> mmap.mmap:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(dir_backend.mmap, "mmap", refuse)
    back = codecs_ser.load(member.parent, mmap=True)
    np.testing.assert_array_equal(back["w"], LARGE)
    assert not back["w"].flags.writeable


def test_other_mapping_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    member = _dump(tmp_path, LARGE)

    def broken(*args: object, **kwargs: object) -> mmap.mmap:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(dir_backend.mmap, "mmap", broken)
    with pytest.raises(OSError, match="I/O error"):
        codecs_ser.load(member.parent, mmap=True)
