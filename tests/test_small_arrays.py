"""Many small arrays: the short write path and the whole-object read pass give what the
general paths give, and every check still holds when a member is damaged."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser import _bulk, _container
from codecs_ser.backends.tar import TarReader
from codecs_ser.backends.zip import ZipReader
from codecs_ser.errors import FormatError, IntegrityError

EPOCH = "1700000000"


def _small_object() -> dict[str, Any]:
    rng = np.random.default_rng(5)
    obj: dict[str, Any] = {
        f"g{i}": {f"p{j}": rng.standard_normal(16 + i * 7 + j).astype(np.float32) for j in range(5)}
        for i in range(6)
    }
    obj["kinds"] = {
        "f16": np.arange(7, dtype=np.float16),
        "big": np.arange(5, dtype=">i4"),
        "bool": np.array([True, False, True]),
        "c": np.arange(12, dtype=np.float64).reshape(3, 4),
        "f": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.array(2.5),
        "strided": np.arange(20, dtype=np.int64)[::2],
        "when": np.array(["2020-01-01"], dtype="datetime64[D]"),
        "large": np.arange(40_000, dtype=np.float32),
    }
    obj["shared"] = obj["g0"]["p0"]
    return obj


def _flat(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}/{k}"))
    return out


def _assert_same(a: Any, b: Any) -> None:
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k, x in fa.items():
        y = fb[k]
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert np.array_equal(x, y), k


@pytest.mark.parametrize(
    ("backend", "compress"),
    [("tar", None), ("zip", None), ("dir", None), ("tar", "gzip"), ("zip", "deflate")],
)
def test_short_write_path_writes_the_general_paths_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, compress: str | None
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    obj = _small_object()
    suffix = f"{backend}.gz" if compress == "gzip" else backend
    fast, slow = tmp_path / f"fast.{suffix}", tmp_path / f"slow.{suffix}"
    codecs_ser.dump(obj, fast, backend=backend, compress=compress)
    monkeypatch.setattr(_container, "SMALL_WRITE", -1)
    codecs_ser.dump(obj, slow, backend=backend, compress=compress)
    if backend == "dir":
        files = sorted(p.relative_to(fast) for p in fast.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(slow) for p in slow.rglob("*") if p.is_file())
        for rel in files:
            assert (fast / rel).read_bytes() == (slow / rel).read_bytes(), rel
    elif compress == "gzip":  # the tar inside: the gzip stream's own header may differ
        assert gzip.decompress(fast.read_bytes()) == gzip.decompress(slow.read_bytes())
    else:
        assert fast.read_bytes() == slow.read_bytes()


@pytest.fixture
def passed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many arrays the whole-object pass decoded."""
    count = [0]
    real = _bulk._copy

    def spy(*args: Any) -> np.ndarray:
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(_bulk, "_copy", spy)
    return count


@pytest.mark.parametrize("backend", ["tar", "zip"])
@pytest.mark.parametrize("checksum", ["xxh3_64", "xxh3_128", "crc32", "sha256", "blake2b"])
def test_whole_object_read_gives_what_was_dumped(
    tmp_path: Path, checksum: str, passed: list[int], backend: str
) -> None:
    obj = _small_object()
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(obj, path, checksum=checksum, backend=backend)
    loaded = codecs_ser.load(path)
    # Every small C- or F-ordered array, the datetime and the empty one included.
    assert passed[0] == 30 + 8
    _assert_same(obj, loaded)
    assert loaded["shared"] is loaded["g0"]["p0"]
    p = loaded["g1"]["p2"]
    assert p.flags.writeable and p.flags.owndata
    p[0] = 7.0  # an array of its own: changing it changes nothing else
    assert loaded["g1"]["p3"][0] != 7.0 or obj["g1"]["p3"][0] == 7.0
    assert loaded["kinds"]["f"].flags.f_contiguous


@pytest.mark.parametrize("reader", [TarReader, ZipReader])
def test_whole_object_read_falls_back_where_nothing_can_be_mapped(
    tmp_path: Path, passed: list[int], monkeypatch: pytest.MonkeyPatch, reader: type
) -> None:
    obj = _small_object()
    path = tmp_path / "c"
    codecs_ser.dump(obj, path, backend=reader.__module__.rsplit(".", 1)[1])
    monkeypatch.setattr(reader, "map_member", lambda self, ref: None)
    _assert_same(obj, codecs_ser.load(path))
    assert passed[0] == 0


def _member_offset(path: Path, member: str) -> int:
    with codecs_ser.open(path) as c:
        entry = c.entries[member]
        offset = entry.blobs[0].offset
        assert offset is not None
        return offset


def _damage(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_damaged_small_member_data_is_an_integrity_error(tmp_path: Path, backend: str) -> None:
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(_small_object(), path, backend=backend)
    _damage(path, _member_offset(path, "g3/p1") + 128 + 3)  # inside the data
    with pytest.raises(IntegrityError) as info:
        codecs_ser.load(path)
    assert "g3/p1.npy" in str(info.value)
    with codecs_ser.open(path) as c, pytest.raises(IntegrityError):
        c.load()  # a whole-object read from an opened container reports it too
    # Without verification the bytes load as they are; the other arrays are unharmed.
    loaded = codecs_ser.load(path, verify=False)
    assert loaded["g3"]["p0"].shape == (37,)


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_damaged_small_member_header_is_a_format_error(tmp_path: Path, backend: str) -> None:
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(_small_object(), path, backend=backend)
    _damage(path, _member_offset(path, "g2/p4") + 30)  # inside the .npy header text
    with pytest.raises(FormatError):
        codecs_ser.load(path)


def test_damaged_tar_header_before_a_small_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.tar"
    codecs_ser.dump(_small_object(), path)
    _damage(path, _member_offset(path, "g4/p0") - 512 + 2)  # the member's name in its header
    with pytest.raises(FormatError):
        codecs_ser.load(path)


def test_damaged_zip_local_header_before_a_small_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.zip"
    codecs_ser.dump(_small_object(), path, backend="zip")
    at = _member_offset(path, "g4/p0")
    name_at = path.read_bytes().rfind(b"g4/p0.npy", 0, at)  # the name in its local header
    assert 0 < name_at < at
    _damage(path, name_at + 1)
    with pytest.raises(FormatError, match="local header"):
        codecs_ser.load(path)


def test_skeleton_of_an_earlier_object_cannot_use_a_later_objects_entries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.tar"
    first = {"a": np.arange(3, dtype=np.float32)}
    codecs_ser.dump(first, path)
    codecs_ser.add(path, {"b": np.arange(4, dtype=np.float32)}, name="second")
    with codecs_ser.open(path) as c:
        second = c.load("second")
        assert second["b"].shape == (4,)
        again = c.load()
        assert again["a"].shape == (3,)


@pytest.mark.parametrize(
    "name",
    ["a.npy", "x" * 100, "dir/" * 30 + "leaf.npy", "p" * 150 + "/" + "n" * 99, "é/w.npy"],
)
@pytest.mark.parametrize("size", [0, 1, 511, 512, 8**11 - 1, 8**11])
def test_tar_member_headers_read_back_with_tarfile(name: str, size: int) -> None:
    import tarfile

    from codecs_ser.backends.tar import member_header

    header = member_header(name, size, 1_700_000_000)
    info = tarfile.TarInfo.frombuf(header[-512:], "utf-8", "strict")
    if len(header) > 512:  # pax records carry a long, non-ASCII or large member's fields
        with tarfile.open(fileobj=io.BytesIO(header + bytes(1024)), mode="r:") as tf:
            info = tf.next()
            assert info is not None
    assert (info.name, info.size, info.mtime, info.type) == (name, size, 1_700_000_000, b"0")


def test_runs_of_tiny_arrays_are_written_in_bounded_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run is bounded by what its members add to the file, not by array bytes alone:
    10,000 scalars are not gathered into one 10 MB write."""
    from codecs_ser.backends.tar import TarWriter

    calls: list[int] = []
    real = TarWriter.write_members

    def spy(self: Any, names: Any, blobs: Any) -> list[int]:
        calls.append(sum(len(blob) for blob in blobs) + 512 * len(blobs))
        return real(self, names, blobs)

    monkeypatch.setattr(TarWriter, "write_members", spy)
    obj = [np.full((), i, np.float64) for i in range(10_000)]
    codecs_ser.dump(obj, tmp_path / "c.tar")
    assert len(calls) > 1
    assert max(calls) <= 2 * _container.SMALL_RUN
    back = codecs_ser.load(tmp_path / "c.tar")
    assert [float(a) for a in back[:3]] == [0.0, 1.0, 2.0] and len(back) == 10_000


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_load_arrays_reads_small_arrays_in_the_whole_object_pass(
    tmp_path: Path, passed: list[int], monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    obj = _small_object()
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(obj, path, backend=backend)
    codecs_ser.add(path, {"w": np.arange(3.0), "big": np.arange(40_000.0)}, name="extra")
    fast = codecs_ser.load_arrays(path)
    fast_extra = codecs_ser.load_arrays(path, name="extra")
    # Every object's small arrays and then extra's one ("big" is read the general way).
    assert passed[0] == (30 + 8 + 1) + 1
    monkeypatch.setattr(_bulk.PlainPrefetch, "run", lambda *args, **kwargs: None)
    slow = codecs_ser.load_arrays(path)
    assert list(fast) == list(slow)  # the same names, in the same order
    for key, array in slow.items():
        assert array.dtype == fast[key].dtype and np.array_equal(array, fast[key]), key
    assert list(fast_extra) == ["w", "big"]
    assert np.array_equal(fast_extra["w"], np.arange(3.0))


def test_load_arrays_reports_a_damaged_small_member(tmp_path: Path) -> None:
    path = tmp_path / "c.tar"
    codecs_ser.dump(_small_object(), path)
    _damage(path, _member_offset(path, "g3/p1") + 128 + 3)
    with pytest.raises(IntegrityError, match="g3/p1"):
        codecs_ser.load_arrays(path)
    assert codecs_ser.load_arrays(path, verify=False)["g3/p0"].shape == (37,)
