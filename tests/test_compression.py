"""Compression end to end: every suffix and ``compress=`` writes what it says, loading
recognises compression by content, and decompression stays within the limits."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser import _compression
from codecs_ser.errors import FormatError, UsageError

HAS_ZSTD = True
try:
    _compression.zstd_module()
except UsageError:
    HAS_ZSTD = False

MAGIC = {
    "gzip": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
}
SUFFIXES = {
    ".tar.gz": "gzip",
    ".tgz": "gzip",
    ".gz": "gzip",
    ".tar.bz2": "bz2",
    ".tbz2": "bz2",
    ".tar.xz": "xz",
    ".txz": "xz",
    ".tar.zst": "zstd",
    ".tzst": "zstd",
}
zstd_only = pytest.mark.skipif(not HAS_ZSTD, reason="no zstd library installed")


def _obj() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((64, 32)).astype(np.float32),
        "ids": np.arange(5000, dtype=np.int64) % 7,
        "nested": {"mask": np.zeros((100, 100), bool), "empty": np.zeros((0, 3))},
        "name": "run",
    }


def _same(a: Any, b: Any) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _same(a[k], b[k])
        elif isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])
        else:
            assert a[k] == b[k]


def _needs(algo: str) -> None:
    if algo == "zstd" and not HAS_ZSTD:
        pytest.skip("no zstd library installed")


def _decompress(algo: str, data: bytes) -> bytes:
    if algo == "zstd":
        kind, module = _compression.zstd_module()
        if kind == "stdlib":
            return module.decompress(data)  # type: ignore[no-any-return]
        return module.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()  # type: ignore[no-any-return]
    return {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}[algo](data)


@pytest.mark.parametrize("suffix", list(SUFFIXES))
def test_each_suffix_writes_its_compression(tmp_path: Path, suffix: str) -> None:
    algo = SUFFIXES[suffix]
    _needs(algo)
    path = tmp_path / f"run{suffix}"
    codecs_ser.dump(_obj(), path)
    assert path.read_bytes().startswith(MAGIC[algo])
    _same(codecs_ser.load(path), _obj())
    with codecs_ser.open(path) as c:
        assert c.compression == algo and c.backend == "tar"
        assert np.array_equal(c.read("ids"), _obj()["ids"])
    assert codecs_ser.verify(path) == []
    assert set(codecs_ser.load_arrays(path)) == {"w", "ids", "nested/mask", "nested/empty"}


@pytest.mark.parametrize("algo", ["gzip", "bz2", "xz", "zstd"])
def test_the_tar_inside_is_what_the_tar_backend_writes(
    tmp_path: Path, algo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs(algo)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    codecs_ser.dump(_obj(), tmp_path / "plain.tar")
    codecs_ser.dump(_obj(), tmp_path / "packed.bin", compress=algo)
    inner = _decompress(algo, (tmp_path / "packed.bin").read_bytes())
    assert inner == (tmp_path / "plain.tar").read_bytes()


def test_gzip_output_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    codecs_ser.dump(_obj(), tmp_path / "a.tar.gz")
    codecs_ser.dump(_obj(), tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar")
@pytest.mark.parametrize(
    ("suffix", "flag"), [(".tar.gz", "-z"), (".tar.bz2", "-j"), (".tar.xz", "-J")]
)
def test_system_tar_lists_and_extracts(tmp_path: Path, suffix: str, flag: str) -> None:
    path = tmp_path / f"run{suffix}"
    codecs_ser.dump(_obj(), path)
    listed = subprocess.run(["tar", flag, "-tf", path], check=True, capture_output=True, text=True)
    assert "w.npy" in listed.stdout.split()
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", flag, "-xf", path, "-C", out], check=True)
    assert np.array_equal(np.load(out / "nested" / "mask.npy"), _obj()["nested"]["mask"])
    with tarfile.open(path) as tf:  # Python's tarfile agrees
        assert "ids.npy" in tf.getnames()


@pytest.mark.parametrize(
    ("compress", "algo"),
    [("gzip", "gzip"), ("gzip:1", "gzip"), ("bz2:9", "bz2"), ("xz", "xz"), (True, "gzip")],
)
def test_explicit_compress_with_a_neutral_name(tmp_path: Path, compress: Any, algo: str) -> None:
    path = tmp_path / "run.ckpt"
    codecs_ser.dump(_obj(), path, compress=compress)
    assert path.read_bytes().startswith(MAGIC[algo])
    _same(codecs_ser.load(path), _obj())


def test_gzip_level_changes_the_size(tmp_path: Path) -> None:
    obj = {"a": np.tile(np.arange(1000, dtype=np.int64), 200)}
    codecs_ser.dump(obj, tmp_path / "fast.tar.gz", compress="gzip:1")
    codecs_ser.dump(obj, tmp_path / "best.tar.gz", compress="gzip:9")
    assert (tmp_path / "best.tar.gz").stat().st_size < (tmp_path / "fast.tar.gz").stat().st_size


def test_true_follows_the_suffix(tmp_path: Path) -> None:
    codecs_ser.dump(_obj(), tmp_path / "run.tar.xz", compress=True)
    assert (tmp_path / "run.tar.xz").read_bytes().startswith(MAGIC["xz"])


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        ("run.tar.gz", {"compress": "xz"}, "lie"),
        ("run.tar.gz", {"compress": False}, "lie"),
        ("run.tar", {"compress": "gzip"}, "uncompressed tar"),
        ("run.tar.gz", {"backend": "zip"}, "compressed tar"),
        ("run.zip.gz", {}, "compressed tar"),
        ("run.zip", {"compress": "gzip"}, "deflate"),
        ("run.ckpt", {"compress": "deflate"}, "zip members"),
        ("run", {"backend": "dir", "compress": True}, "dir backend"),
        ("run.ckpt", {"compress": "gzip:10"}, "levels"),
        ("run.ckpt", {"compress": "gzip:x"}, "level"),
        ("run.ckpt", {"compress": "lz4"}, "unknown compression"),
        ("run.ckpt", {"compress": ("gzip", 6)}, "compress must be"),
    ],
)
def test_contradictions_are_usage_errors(
    tmp_path: Path, name: str, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        codecs_ser.dump(_obj(), tmp_path / name, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_zstd_without_a_library_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(_compression.importlib, "import_module", missing)
    with pytest.raises(UsageError, match="pip install zstandard"):
        codecs_ser.dump(_obj(), tmp_path / "run.tar.zst")
    assert list(tmp_path.iterdir()) == []


@zstd_only
def test_zstd_file_without_a_library_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.tar.zst"
    codecs_ser.dump(_obj(), path)

    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(_compression.importlib, "import_module", missing)
    with pytest.raises(FormatError, match="pip install zstandard"):
        codecs_ser.load(path)


@pytest.mark.parametrize("algo", ["gzip", "bz2", "xz"])
@pytest.mark.parametrize("misleading", ["run.tar", "run.zip", "run.npz", "run"])
def test_compression_is_recognised_by_content(tmp_path: Path, algo: str, misleading: str) -> None:
    src = tmp_path / "src.bin"
    codecs_ser.dump(_obj(), src, compress=algo)
    path = tmp_path / misleading
    src.rename(path)
    _same(codecs_ser.load(path), _obj())
    with codecs_ser.open(path) as c:
        assert c.compression == algo


def test_a_plain_tar_named_tar_gz_still_loads(tmp_path: Path) -> None:
    codecs_ser.dump(_obj(), tmp_path / "plain.tar")
    (tmp_path / "plain.tar").rename(tmp_path / "liar.tar.gz")
    _same(codecs_ser.load(tmp_path / "liar.tar.gz"), _obj())


@pytest.mark.parametrize("compress", ["gzip", "xz", "deflate"])
def test_bytes_and_file_objects(compress: str) -> None:
    backend = "zip" if compress == "deflate" else "tar"
    data = codecs_ser.dumps(_obj(), backend=backend, compress=compress)
    _same(codecs_ser.loads(data), _obj())
    _same(codecs_ser.load(io.BytesIO(data)), _obj())

    class Pipe(io.RawIOBase):  # not seekable
        def __init__(self) -> None:
            self._b = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            return self._b.readinto(b)

    _same(codecs_ser.load(io.BufferedReader(Pipe())), _obj())


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"])
def test_add_to_a_compressed_tar_rewrites_it(tmp_path: Path, suffix: str) -> None:
    algo = SUFFIXES[suffix]
    _needs(algo)
    path = tmp_path / f"run{suffix}"
    codecs_ser.dump(_obj(), path)
    codecs_ser.add(path, {"ids": _obj()["ids"], "more": np.ones(4)}, name="second")
    assert path.read_bytes().startswith(MAGIC[algo])
    with codecs_ser.open(path) as c:
        assert c.objects == ["main", "second"] and c.compression == algo
    assert np.array_equal(codecs_ser.load(path, "second")["more"], np.ones(4))
    _same(codecs_ser.load(path), _obj())
    assert codecs_ser.verify(path) == []
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left


def test_add_to_a_compressed_tar_leaves_it_unchanged_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "run.tar.gz"
    codecs_ser.dump(_obj(), path)
    before = path.read_bytes()
    with pytest.raises(UsageError):
        codecs_ser.add(path, {"x": np.ones(2)}, name="MAIN")
    assert path.read_bytes() == before


def test_decompressed_copies_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", os.fspath(scratch))
    path = tmp_path / "run.tar.gz"
    codecs_ser.dump(_obj(), path)
    codecs_ser.load(path)
    arrays = codecs_ser.load_arrays(path, mmap=True)
    with codecs_ser.open(path) as c:
        c.read("w")
    codecs_ser.add(path, {"x": np.ones(2)}, name="two")
    assert list(scratch.iterdir()) == []
    assert np.array_equal(arrays["w"], _obj()["w"])  # mapped arrays outlive the copy's name


@pytest.mark.parametrize("name", ["run.tar.gz", "run.zip"])
def test_mmap_on_compressed_data_gives_read_only_copies(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    codecs_ser.dump(_obj(), path, compress=True)
    arrays = codecs_ser.load_arrays(path, mmap=True)
    for key, arr in arrays.items():
        assert arr.size == 0 or not arr.flags.writeable, key
    assert np.array_equal(arrays["w"], _obj()["w"])
    loaded = codecs_ser.load(path, mmap=True)
    assert not loaded["w"].flags.writeable
    assert loaded["w"].ctypes.data % 64 == 0


# -- zip: deflated members ------------------------------------------------------------------


def test_zip_compress_deflates_each_member_but_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "run.zip"
    codecs_ser.dump(_obj(), path, compress=True)
    with zipfile.ZipFile(path) as zf:
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        assert zf.testzip() is None
    assert methods.pop(".codecs_ser/manifest.msgpack") == zipfile.ZIP_STORED
    assert set(methods.values()) == {zipfile.ZIP_DEFLATED}
    with np.load(path) as z:
        assert np.array_equal(z["nested/mask"], _obj()["nested"]["mask"])
        assert np.array_equal(z["w"], _obj()["w"])
    _same(codecs_ser.load(path), _obj())
    with codecs_ser.open(path) as c:
        assert c.compression is None and c.backend == "zip"
        assert np.array_equal(c.read("w"), _obj()["w"])
    assert codecs_ser.verify(path) == []


def test_a_deflated_zip_is_smaller(tmp_path: Path) -> None:
    obj = {"a": np.zeros(100_000)}
    codecs_ser.dump(obj, tmp_path / "stored.zip")
    codecs_ser.dump(obj, tmp_path / "deflated.zip", compress="deflate:9")
    assert (tmp_path / "deflated.zip").stat().st_size * 50 < (
        tmp_path / "stored.zip"
    ).stat().st_size


@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip")
def test_unzip_tests_a_deflated_zip(tmp_path: Path) -> None:
    path = tmp_path / "run.zip"
    codecs_ser.dump(_obj(), path, compress="deflate")
    subprocess.run(["unzip", "-tq", path], check=True, capture_output=True)


def test_add_to_a_deflated_zip_deflates_the_new_members(tmp_path: Path) -> None:
    path = tmp_path / "run.zip"
    codecs_ser.dump(_obj(), path, compress=True)
    codecs_ser.add(path, {"ids": _obj()["ids"], "z": np.zeros(1000)}, name="second")
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("second/z.npy")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert "second/ids.npy" not in zf.namelist()  # stored bytes are reused
    assert np.array_equal(codecs_ser.load(path, "second")["ids"], _obj()["ids"])
    assert codecs_ser.verify(path) == []


def test_a_repacked_deflated_zip_is_read_through_its_directory(tmp_path: Path) -> None:
    src = tmp_path / "run.zip"
    codecs_ser.dump(_obj(), src)
    repacked = tmp_path / "repacked.zip"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info.filename, a.read(info))
    _same(codecs_ser.load(repacked), _obj())
    assert codecs_ser.verify(repacked) == []


def _deflated_zip(tmp_path: Path) -> tuple[Path, bytearray, zipfile.ZipInfo]:
    path = tmp_path / "run.zip"
    codecs_ser.dump({"a": np.zeros(10_000)}, path, compress=True)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("a.npy")
    return path, bytearray(path.read_bytes()), info


def _central_at(data: bytearray, name: bytes) -> int:
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        if data[at + 46 : at + 46 + len(name)] == name:
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(name)


def test_a_directory_size_that_disagrees_with_the_manifest_is_refused(tmp_path: Path) -> None:
    path, data, _ = _deflated_zip(tmp_path)
    at = _central_at(data, b"a.npy")
    size = int.from_bytes(data[at + 24 : at + 28], "little")
    data[at + 24 : at + 28] = (size + 1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="zip directory gives this member"):
        codecs_ser.load(path)


def test_a_truncated_deflate_stream_is_refused(tmp_path: Path) -> None:
    path, data, info = _deflated_zip(tmp_path)
    with codecs_ser.open(path) as c:
        offset = c._manifest.entry(0).blobs[0].offset
    # Zero the end of the stored data: the stream no longer ends where it should.
    data[offset + info.compress_size - 8 : offset + info.compress_size] = bytes(8)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="deflated member"):
        codecs_ser.load(path)
    assert codecs_ser.verify(path) != []


# -- limits ----------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_within_the_limits(tmp_path: Path) -> None:
    # A valid tar header, then a member of 200 MiB of zeros: a container as far as it goes.
    info = tarfile.TarInfo("a.npy")
    info.size = 200 << 20
    head = info.tobuf(format=tarfile.USTAR_FORMAT)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(head)]
    chunk = bytes(1 << 20)
    for _ in range(200):
        parts.append(c.compress(chunk))
    parts.append(c.flush())
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(b"".join(parts))
    assert path.stat().st_size < 300_000
    with pytest.raises(FormatError, match="max_decompressed_bytes") as e:
        codecs_ser.load(path)
    assert "max_decompression_ratio" in str(e.value)
    with (
        codecs_ser.limits(max_decompressed_bytes=1 << 30),
        pytest.raises(FormatError, match=r"truncated|manifest|container"),
    ):
        codecs_ser.load(path)


def test_a_bomb_of_zeros_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "zeros.tar.bz2"
    path.write_bytes(bz2.compress(bytes(64 << 20)))
    with pytest.raises(FormatError, match="does not hold a tar or zip"):
        codecs_ser.load(path)


def test_the_ratio_limit_lets_large_files_expand_more(tmp_path: Path) -> None:
    obj = {"a": np.zeros(3 << 20)}  # 24 MiB of zeros: gzip makes about 24 KiB of it
    path = tmp_path / "run.tar.gz"
    codecs_ser.dump(obj, path)
    with (
        codecs_ser.limits(max_decompressed_bytes=1 << 20, max_decompression_ratio=10),
        pytest.raises(FormatError, match="max_decompression_ratio"),
    ):
        codecs_ser.load(path)
    with codecs_ser.limits(max_decompressed_bytes=1 << 20, max_decompression_ratio=2000):
        assert codecs_ser.load(path)["a"].shape == (3 << 20,)


@pytest.mark.parametrize(
    ("what", "mangle"),
    [
        ("truncated", lambda b: b[: len(b) // 2]),
        ("trailing garbage", lambda b: b + b"garbage"),
        ("two gzip members", lambda b: b + b),
        ("a gzip of a gzip", lambda b: gzip.compress(b)),
        ("damaged", lambda b: b[:100] + bytes(50) + b[150:]),
    ],
)
def test_damaged_streams_are_format_errors(tmp_path: Path, what: str, mangle: Any) -> None:
    path = tmp_path / "run.tar.gz"
    codecs_ser.dump(_obj(), path)
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(FormatError):
        codecs_ser.load(path)
    with pytest.raises(FormatError):
        codecs_ser.verify(path)
