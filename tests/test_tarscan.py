"""Tars without codecs_ser's trailer (re-packed by another tool) are indexed by the
core's own header scanner: it reads what GNU tar writes and refuses what is damaged."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser.errors import FormatError

OBJ = {"a": np.arange(10), "long" * 40: np.ones(3), "ünï": {"z": np.zeros(2)}}


def _repack(container: Path, out: Path, fmt: str) -> None:
    """Extract with tarfile and pack again in ``fmt``, without the trailer member."""
    with tarfile.open(container) as src, tarfile.open(out, "w", format=fmt) as dst:
        for member in src:
            if member.name != ".codecs_ser/trailer":
                dst.addfile(member, src.extractfile(member))


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_repacked_tars_load(tmp_path: Path, fmt: int) -> None:
    codecs_ser.dump(OBJ, tmp_path / "c.tar")
    _repack(tmp_path / "c.tar", tmp_path / "r.tar", fmt)
    back = codecs_ser.load(tmp_path / "r.tar")
    assert back["long" * 40].tolist() == [1, 1, 1]
    assert back["ünï"]["z"].tolist() == [0, 0]
    assert codecs_ser.verify(tmp_path / "r.tar") == []


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs the tar command")
def test_gnu_tar_repack_with_dot_slash_names(tmp_path: Path) -> None:
    codecs_ser.dump(OBJ, tmp_path / "c.tar")
    (tmp_path / "x").mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "c.tar"), "-C", str(tmp_path / "x")], check=True)
    subprocess.run(
        ["tar", "-C", str(tmp_path / "x"), "-cf", str(tmp_path / "r.tar"), "."], check=True
    )
    assert codecs_ser.load(tmp_path / "r.tar")["a"].tolist() == list(range(10))


def _pax_tar(records: bytes) -> bytes:
    """A tar whose first header is a pax header with these raw records."""
    info = tarfile.TarInfo("PaxHeaders/x")
    info.type = tarfile.XHDTYPE
    info.size = len(records)
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    return header + records + bytes(-len(records) % 512) + bytes(10240)


@pytest.mark.parametrize(
    "records",
    [
        b"99 path=x\n",  # longer than the data
        b"5 a=b\n",  # shorter than its own length field
        b"12 nokeyval\n",
        b"x" * 30 + b"\n",
        b"1" * 5000 + b" hdrcharset=" + b"9" * 5000,  # the shape of CVE-2024-6232
    ],
)
def test_malformed_pax_records_are_refused_quickly(records: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(FormatError):
        codecs_ser.open(_pax_tar(records))
    assert time.perf_counter() - start < 1.0


def test_bad_header_checksum_is_refused(tmp_path: Path) -> None:
    codecs_ser.dump(OBJ, tmp_path / "c.tar")
    _repack(tmp_path / "c.tar", tmp_path / "r.tar", tarfile.GNU_FORMAT)
    data = bytearray((tmp_path / "r.tar").read_bytes())
    data[100] ^= 0x01  # the mode field of the first header
    with pytest.raises(FormatError, match="checksum"):
        codecs_ser.open(bytes(data))


def test_links_are_not_members(tmp_path: Path) -> None:
    codecs_ser.dump(OBJ, tmp_path / "c.tar")
    with tarfile.open(tmp_path / "c.tar") as src, tarfile.open(tmp_path / "r.tar", "w") as dst:
        for member in src:
            if member.name == "a.npy":
                link = tarfile.TarInfo("a.npy")
                link.type = tarfile.SYMTYPE
                link.linkname = "/etc/passwd"
                dst.addfile(link)
            elif member.name != ".codecs_ser/trailer":
                dst.addfile(member, src.extractfile(member))
    with pytest.raises(FormatError, match="missing"):
        codecs_ser.load_arrays(tmp_path / "r.tar")


def test_verify_reports_a_zip_directory_that_disagrees_with_the_manifest(tmp_path: Path) -> None:
    target = tmp_path / "c.zip"
    codecs_ser.dump({"a": np.arange(5)}, target)
    data = bytearray(target.read_bytes())
    at = data.rindex(b"a.npy")  # the central directory comes last
    data[at : at + 5] = b"b.npy"
    target.write_bytes(bytes(data))
    assert codecs_ser.load(target)["a"].tolist() == list(range(5))  # read by the manifest
    assert codecs_ser.verify(target) == [("a.npy", "not in the zip directory")]


def test_verify_reports_a_tar_entry_that_disagrees_with_the_manifest(tmp_path: Path) -> None:
    target = tmp_path / "c.tar"
    codecs_ser.dump({"a": np.arange(5), "b": np.arange(5)}, target)
    data = bytearray(target.read_bytes())
    at = data.index(b"b.npy")  # the header of b.npy: rename it to c.npy, checksum fixed
    data[at : at + 5] = b"c.npy"
    header = data[at : at + 512]
    header[148:156] = b" " * 8
    data[at + 148 : at + 156] = b"%06o\0 " % sum(header)
    target.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="names another member"):
        codecs_ser.load(target)
    problems = codecs_ser.verify(target)
    assert ("b.npy", "no regular tar entry of this name") in problems


def test_odd_zip_directory_fields_are_format_errors() -> None:
    data = bytearray(codecs_ser.dumps({"a": np.arange(3)}, backend="zip"))
    data[data.rfind(b"CODECS_SER-ZIP")] ^= 0xFF  # no pointer: the zip directory is read
    cd = data.find(b"PK\x01\x02")
    data[cd + 6 : cd + 8] = (64).to_bytes(2, "little")  # "version made by" 6.4 -> zipfile balks
    with pytest.raises(FormatError, match="not a readable zip"):
        codecs_ser.loads(bytes(data))
