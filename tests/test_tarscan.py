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


# -- names as tar -x and unzip extract them -------------------------------------------------


def _tar_of(*members: tuple[bytes, bytes, bytes, bytes]) -> bytes:
    """A tar of (name, data, prefix field, magic) members, headers made by hand."""
    out = b""
    for name, data, prefix, magic in members:
        h = bytearray(512)
        h[: len(name)] = name
        h[100:108] = b"0000644\0"
        h[124:136] = b"%011o\0" % len(data)
        h[136:148] = b"00000000000\0"
        h[148:156] = b" " * 8
        h[156:157] = b"0"
        h[257:265] = magic
        h[345 : 345 + len(prefix)] = prefix
        h[148:156] = b"%06o\0 " % sum(h)
        out += bytes(h) + data + bytes(-len(data) % 512)
    return out + bytes(10240 - len(out) % 10240)


POSIX, OLD_GNU, V7 = b"ustar\x0000", b"ustar  \x00", bytes(8)
#: (stored name, prefix field, magic) -> where tar -x puts it (None: it refuses to).
TAR_NAMES = [
    (b"/a.npy", b"", POSIX, "a.npy"),
    (b"///./a.npy", b"", POSIX, "a.npy"),
    (b"././a.npy", b"", POSIX, "a.npy"),
    (b".//a.npy", b"", POSIX, "a.npy"),
    (b"n/./b.npy", b"", POSIX, "n/b.npy"),
    (b"n//b.npy", b"", POSIX, "n/b.npy"),
    (b"a.npy", b"n", POSIX, "n/a.npy"),
    (b"a.npy", b"zzz", OLD_GNU, "a.npy"),
    (b"a.npy", b"zzz", V7, "a.npy"),
    (b"x/../a.npy", b"", POSIX, None),
    (b"../a.npy", b"", POSIX, None),
]


@pytest.mark.parametrize(("stored", "prefix", "magic", "path"), TAR_NAMES)
def test_scanned_names_are_where_tar_extracts_them(
    stored: bytes, prefix: bytes, magic: bytes, path: str | None
) -> None:
    from codecs_ser._files import Source
    from codecs_ser.backends import _tarscan

    (member,) = _tarscan.scan(Source(_tar_of((stored, b"x", prefix, magic))))
    assert member.path == path


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs the tar command")
@pytest.mark.parametrize(("stored", "prefix", "magic", "path"), TAR_NAMES)
def test_gnu_tar_agrees_on_the_names(
    tmp_path: Path, stored: bytes, prefix: bytes, magic: bytes, path: str | None
) -> None:
    """The rules above are GNU tar's: check them against the tar on this machine."""
    (tmp_path / "c.tar").write_bytes(_tar_of((stored, b"EVIL", prefix, magic)))
    (tmp_path / "x").mkdir()
    subprocess.run(
        ["tar", "-xf", str(tmp_path / "c.tar"), "-C", str(tmp_path / "x")], capture_output=True
    )
    found = [p.relative_to(tmp_path / "x").as_posix() for p in (tmp_path / "x").rglob("*")]
    files = [f for f in found if (tmp_path / "x" / f).is_file()]
    assert files == ([] if path is None else [path])


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("/a.npy", "a.npy"),
        ("./a.npy", "a.npy"),
        ("../a.npy", "a.npy"),
        ("n/../b.npy", "n/b.npy"),
        ("\\a.npy", "a.npy"),
        ("n\\b.npy", "n/b.npy"),
        ("C:\\a.npy", "a.npy"),
        ("a.npy", "a.npy"),
    ],
)
def test_zip_names_are_where_unzip_extracts_them(name: str, path: str) -> None:
    from codecs_ser.backends.zip import extracted_name

    assert extracted_name(name) == path


def test_verify_reports_a_later_tar_entry_that_replaces_the_manifest(tmp_path: Path) -> None:
    """tar -x of this file gives another manifest than the one codecs_ser reads."""
    target = tmp_path / "c.tar"
    codecs_ser.dump({"a": np.arange(5)}, target)
    data = target.read_bytes().rstrip(b"\0")
    data = data[: -(-len(data) // 512) * 512] if len(data) % 512 else data
    extra = _tar_of((b"./.codecs_ser/manifest.msgpack", b"other", b"", POSIX))
    trailer_at = data.rindex(b".codecs_ser/trailer")
    tar = data[:trailer_at] + extra[:1024] + data[trailer_at:]
    target.write_bytes(tar + bytes(10240 - len(tar) % 10240))
    assert codecs_ser.load(target)["a"].tolist() == list(range(5))
    assert (".codecs_ser/manifest.msgpack", "the tar entry of this name holds other bytes") in (
        codecs_ser.verify(target)
    )


@pytest.mark.parametrize(
    "field", [b"0000_000012\0", b"0o000000012\0", b"+0000000012\0", b"000000001\xd9\xa1\0"]
)
def test_numeric_fields_take_octal_digits_only(field: bytes) -> None:
    from codecs_ser.backends._tarscan import _number

    assert _number(field) == -1
    assert _number(b"   12 \0\0\0\0\0\0") == 10
    assert _number(b"00000000012\0") == 10


@pytest.mark.parametrize("text", ["\u00b2", "\u0661", "1" * 21, "+1", "1_0", " 1", ""])
def test_pax_numbers_take_a_few_ascii_digits_only(text: str) -> None:
    from codecs_ser.backends._tarscan import decimal

    assert decimal(text) is None
