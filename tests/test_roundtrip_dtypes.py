"""Every dtype .npy can hold round trips bit for bit, through every backend and channel."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import codecs_ser
from codecs_ser.errors import UntrustedError

BACKENDS = ("tar", "zip", "dir")
STREAM_BACKENDS = ("tar", "zip")
FIXTURE_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -----------------------------------------------------------------------

LONGDOUBLES = [np.dtype("<g"), np.dtype(">g"), np.dtype("<G"), np.dtype(">G")]

simple_dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64)),
    st.sampled_from(LONGDOUBLES),
    hnp.complex_number_dtypes(endianness="?", sizes=(64, 128)),
    hnp.datetime64_dtypes(endianness="?", max_period="Y", min_period="as"),
    hnp.timedelta64_dtypes(endianness="?", max_period="Y", min_period="as"),
    hnp.byte_string_dtypes(endianness="?", min_len=1, max_len=6),
    hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=6),
)

TITLED = [
    np.dtype([(("the first", "a"), "<i4"), (("second", "b"), ">f8", (2,))]),
    np.dtype(
        [
            (("outer title", "outer"), [("x", ">u2", (2, 2)), (("t", "y"), "S3")]),
            ("z", "<c16"),
        ]
    ),
    np.dtype({"names": ["p", "q"], "formats": ["<i2", ">f4"], "offsets": [0, 4], "itemsize": 12}),
    np.dtype([("a", "u1"), ("b", "<f8"), ("c", "<m8[D]")], align=True),
]

structured_dtypes = st.one_of(
    hnp.array_dtypes(simple_dtypes, min_size=1, max_size=4, allow_subarrays=True),
    hnp.nested_dtypes(simple_dtypes, max_leaves=6),
    st.sampled_from(TITLED),
)

any_dtype = st.one_of(simple_dtypes, structured_dtypes)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
LAYOUTS = ("C", "F", "step", "T", "reversed")


@st.composite
def stored_arrays(draw: Any, dtypes: Any = any_dtype) -> np.ndarray:
    """An array of any storable dtype, C or Fortran ordered, or a non-contiguous view."""
    dtype = draw(dtypes)
    arr = draw(hnp.arrays(dtype, shapes))
    layout = draw(st.sampled_from(LAYOUTS))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "T":
        arr = arr.T
    elif layout == "step" and arr.ndim:
        arr = arr[..., ::2]
    elif layout == "reversed" and arr.ndim:
        arr = arr[::-1]
    return arr


# -- comparisons ----------------------------------------------------------------------


def assert_identical(expected: np.ndarray, got: Any) -> None:
    """Same type, dtype (byte order, titles and offsets included), shape and bytes."""
    assert type(got) is np.ndarray, type(got)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.dtype.descr == expected.dtype.descr
    assert got.shape == expected.shape
    assert _value_bytes(got) == _value_bytes(expected)


def _value_bytes(arr: np.ndarray) -> bytes:
    """The array's bytes; for structured dtypes field by field, since the gaps between
    fields hold no data and numpy does not copy them consistently."""
    if arr.dtype.names is None:
        return arr.tobytes()
    return b"".join(_value_bytes(arr[name]) for name in arr.dtype.names)


def assert_mapped(arr: np.ndarray) -> None:
    """A mmap load gives read-only arrays."""
    if arr.nbytes:
        assert not arr.flags.writeable


class WriteOnly:
    """A write-only target with no seek, no tell and short writes."""

    def __init__(self, most: int = 1000) -> None:
        self._chunks: list[bytes] = []
        self._most = most

    def write(self, data: Any) -> int:
        piece = bytes(memoryview(data).cast("B")[: self._most])
        self._chunks.append(piece)
        return len(piece)

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


class NonSeekable(io.RawIOBase):
    """A raw stream that says it cannot seek, as a pipe or socket does."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(memoryview(b).cast("B"))


# -- property tests ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@FIXTURE_SETTINGS
@given(arr=stored_arrays())
def test_path_roundtrip_copy_and_mmap(tmp_path: Path, backend: str, arr: np.ndarray) -> None:
    target = tmp_path / f"c.{backend}"
    obj = {"a": arr, "nested": [arr]}
    codecs_ser.dump(obj, target, backend=backend, durable=False)
    back = codecs_ser.load(target)
    assert_identical(arr, back["a"])
    assert back["nested"][0] is back["a"]
    mapped = codecs_ser.load(target, mmap=True)
    assert_identical(arr, mapped["a"])
    assert_mapped(mapped["a"])
    checked = codecs_ser.load(target, mmap=True, verify=True)
    assert_identical(arr, checked["a"])
    assert codecs_ser.verify(target) == []


@pytest.mark.parametrize("backend", STREAM_BACKENDS)
@settings(max_examples=25, deadline=None)
@given(arr=stored_arrays())
def test_file_object_roundtrip(backend: str, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    codecs_ser.dump({"x": arr}, buf, backend=backend)
    buf.seek(0)
    assert_identical(arr, codecs_ser.load(buf)["x"])
    buf.seek(0)
    assert_identical(arr, codecs_ser.load(buf, mmap=True)["x"])

    for stream in (WriteOnly(), NonSeekable()):
        codecs_ser.dump({"x": arr}, stream, backend=backend)
        data = stream.getvalue() if isinstance(stream, WriteOnly) else bytes(stream.data)
        assert_identical(arr, codecs_ser.loads(data)["x"])


@settings(max_examples=40, deadline=None)
@given(arr=stored_arrays())
def test_dumps_loads_roundtrip(arr: np.ndarray) -> None:
    data = codecs_ser.dumps(arr)
    assert_identical(arr, codecs_ser.loads(data))
    mapped = codecs_ser.loads(data, mmap=True)
    assert_identical(arr, mapped)
    assert_mapped(mapped)
    zipped = codecs_ser.dumps([arr], backend="zip")
    assert_identical(arr, codecs_ser.loads(zipped)[0])


# x87 long doubles carry padding bytes whose content a scalar does not define, so
# scalars of those types are compared by value below, not byte for byte.
scalar_dtypes = simple_dtypes.filter(lambda d: d not in LONGDOUBLES)


@st.composite
def numpy_scalars(draw: Any) -> np.generic:
    dtype = draw(st.one_of(scalar_dtypes, hnp.array_dtypes(scalar_dtypes, max_size=3)))
    value = draw(hnp.from_dtype(dtype))
    return np.array(value, dtype=dtype)[()]


@settings(max_examples=60, deadline=None)
@given(scalar=numpy_scalars())
def test_numpy_scalar_comes_back_as_same_scalar_type(scalar: np.generic) -> None:
    for data in (codecs_ser.dumps({"s": scalar}), codecs_ser.dumps(scalar, backend="zip")):
        back = codecs_ser.loads(data)
        back = back["s"] if isinstance(back, dict) else back
        assert type(back) is type(scalar)
        assert back.dtype == scalar.dtype
        assert back.tobytes() == scalar.tobytes()


@pytest.mark.parametrize("dtype", LONGDOUBLES)
def test_longdouble_scalars(dtype: np.dtype) -> None:
    for value in (0.0, -1.5, 1e300, float("inf"), float("nan")):
        scalar = np.array(value, dtype=dtype)[()]
        back = codecs_ser.loads(codecs_ser.dumps([scalar]))[0]
        assert type(back) is type(scalar) and back.dtype == scalar.dtype
        assert back == scalar or (np.isnan(back) and np.isnan(scalar))


MASKABLE = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(32, 64)),
    hnp.complex_number_dtypes(endianness="?"),
)


@st.composite
def masked_arrays(draw: Any) -> np.ma.MaskedArray:
    dtype = draw(MASKABLE)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    data = draw(hnp.arrays(dtype, shape))
    mask: Any = draw(st.one_of(st.just(np.ma.nomask), hnp.arrays(np.bool_, shape)))
    fill = draw(st.one_of(st.none(), hnp.from_dtype(dtype)))
    return np.ma.MaskedArray(
        data, mask=mask, fill_value=fill, hard_mask=draw(st.booleans()), copy=True
    )


def assert_same_masked(expected: np.ma.MaskedArray, got: Any) -> None:
    assert type(got) is np.ma.MaskedArray
    assert_identical(np.asarray(expected.data), np.asarray(got.data))
    assert (got.mask is np.ma.nomask) == (expected.mask is np.ma.nomask)
    np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(expected))
    assert got.hardmask == expected.hardmask
    want_fill = np.array(expected.fill_value, dtype=expected.dtype)
    assert np.array(got.fill_value, dtype=got.dtype).tobytes() == want_fill.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@FIXTURE_SETTINGS
@given(marr=masked_arrays())
def test_masked_array_roundtrip(tmp_path: Path, backend: str, marr: np.ma.MaskedArray) -> None:
    target = tmp_path / "m"
    codecs_ser.dump({"m": marr}, target, backend=backend, durable=False)
    assert_same_masked(marr, codecs_ser.load(target)["m"])
    assert_same_masked(marr, codecs_ser.load(target, mmap=True)["m"])
    assert_same_masked(marr, codecs_ser.loads(codecs_ser.dumps(marr)))


# -- fixed cases ------------------------------------------------------------------------


def _sample() -> dict[str, Any]:
    """One array of each kind, under names that need escaping."""
    rng = np.random.default_rng(7)
    floats = rng.standard_normal((4, 5))
    floats[0, 0] = np.nan
    return {
        "bool": np.array([True, False, True]),
        "ints": {
            f"{k}{n}": np.arange(-3, 3).astype(f"{o}{k}{n}")
            for k, n, o in [
                ("i", 1, "|"),
                ("i", 2, ">"),
                ("i", 4, "<"),
                ("i", 8, ">"),
                ("u", 1, "|"),
                ("u", 2, "<"),
                ("u", 4, ">"),
                ("u", 8, "<"),
            ]
        },
        "f16": floats.astype(">f2"),
        "f32": floats.astype("<f4"),
        "f64": floats.astype(">f8"),
        "longdouble": floats.astype(np.longdouble),
        "c64": (floats + 1j).astype(">c8"),
        "c128": (floats - 2j).astype("<c16"),
        "dates": {
            u: np.array(["2001-02-03", "NaT"], dtype=f"M8[{u}]") for u in ["Y", "D", "s", "ns"]
        },
        "deltas": {u: np.array([1, -5, 0], dtype=f">m8[{u}]") for u in ["W", "h", "ms", "ps"]},
        "bytes": np.array([b"a", b"bcd", b""], dtype="S4"),
        "text": np.array(["é", "日本", ""], dtype=">U3"),
        "struct": np.zeros((2, 2), dtype=TITLED[1]),
        "titled": np.ones(3, dtype=TITLED[0]),
        "zero_d": np.array(2.5, dtype=">f4"),
        "empty": np.zeros((0, 3, 0), dtype="<i2"),
        "dims32": np.arange(1.0).reshape((1,) * 32),
        "fortran": np.asfortranarray(floats),
        "strided": floats[::2, ::-3],
        "transposed": floats.T,
        "odd/name": np.arange(3),
        "..": np.arange(4),
        ".hidden": np.arange(5),
        "Case": np.arange(6),
        "case": np.arange(7),
    }


#: How the sample's awkward keys appear in entry paths and member names.
ESCAPED = {"odd/name": "odd%2Fname", "..": "%2E.", ".hidden": "%2Ehidden"}


def _leaves(obj: Any, keys: tuple[str, ...] = ()) -> dict[tuple[str, ...], np.ndarray]:
    out: dict[tuple[str, ...], np.ndarray] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_leaves(v, (*keys, k)))
        else:
            out[(*keys, k)] = v
    return out


def _entry_path(keys: tuple[str, ...]) -> str:
    return "/".join(ESCAPED.get(k, k) for k in keys)


def _get(obj: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        obj = obj[k]
    return obj


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_sample_every_backend(tmp_path: Path, backend: str) -> None:
    obj = _sample()
    target = tmp_path / "sample"
    codecs_ser.dump(obj, target, backend=backend)
    for mmap in (False, True):
        back = codecs_ser.load(target, mmap=mmap)
        for keys, arr in _leaves(obj).items():
            got = _get(back, keys)
            assert_identical(arr, got)
            if mmap:
                assert_mapped(got)
    assert codecs_ser.load(target)["fortran"].flags.f_contiguous
    # every blob is mapped at a 64-byte aligned address
    for name, arr in codecs_ser.load_arrays(target, mmap=True).items():
        assert arr.nbytes == 0 or arr.ctypes.data % 64 == 0, name


def test_many_dimensions() -> None:
    for ndim in (32, 64):
        arr = np.arange(1, dtype="<u2").reshape((1,) * ndim)
        assert_identical(arr, codecs_ser.loads(codecs_ser.dumps(arr)))
    view = np.ones((2,) * 6)[(slice(None, None, 2),) * 6]
    assert_identical(view, codecs_ser.loads(codecs_ser.dumps(view)))


def test_memmap_loads_as_ndarray(tmp_path: Path) -> None:
    mm = np.memmap(tmp_path / "raw.bin", dtype=">f4", mode="w+", shape=(3, 4))
    mm[:] = np.arange(12).reshape(3, 4)
    mm.flush()
    for backend in BACKENDS:
        target = tmp_path / f"mm.{backend}"
        codecs_ser.dump({"mm": mm, "row": mm[1]}, target, backend=backend)
        for mmap in (False, True):
            back = codecs_ser.load(target, mmap=mmap)
            assert type(back["mm"]) is np.ndarray
            assert type(back["row"]) is np.ndarray
            assert_identical(np.asarray(mm), back["mm"])
            assert_identical(np.asarray(mm[1]), back["row"])
    del mm


@pytest.mark.parametrize(
    "marr",
    [
        np.ma.masked_array(np.zeros(3, dtype=np.float16), mask=[0, 1, 0]),
        np.ma.masked_array(np.array([b"a", b"b"], dtype="S1"), mask=[0, 1]),
        np.ma.masked_array(np.array(["x", "y"], dtype="U1"), mask=[1, 0]),
    ],
    ids=["float16", "bytes", "str"],
)
def test_masked_array_default_fill_value_roundtrip(marr: np.ma.MaskedArray) -> None:
    # numpy's default fill values (1e20, b"N/A", "N/A") do not fit these dtypes
    back = codecs_ser.loads(codecs_ser.dumps({"m": marr}))["m"]
    np.testing.assert_array_equal(np.ma.getmaskarray(back), np.ma.getmaskarray(marr))
    assert back.fill_value == marr.fill_value


def test_masked_array_without_mask_and_with_hard_mask() -> None:
    plain = np.ma.masked_array(np.arange(4.0))
    back = codecs_ser.loads(codecs_ser.dumps(plain))
    assert back.mask is np.ma.nomask and not back.hardmask
    hard = np.ma.masked_array(np.arange(4.0), mask=[1, 0, 0, 1], hard_mask=True, fill_value=-7.0)
    back = codecs_ser.loads(codecs_ser.dumps(hard))
    assert back.hardmask and back.fill_value == -7.0
    back[0] = 99.0  # a hard mask keeps masked values
    assert back.mask[0] and back.data[0] == 0.0


# -- object dtypes -------------------------------------------------------------------------


class Opaque:
    def __init__(self, v: int) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.v == self.v

    __hash__ = None  # type: ignore[assignment]


def test_object_arrays_live_in_the_skeleton_not_in_blobs() -> None:
    objs = np.array([1, "two", None, (3, 4), [5]], dtype=object)
    mixed = np.zeros(2, dtype=[("n", "<i4"), ("o", "O")])
    mixed["o"] = ["a", {"b": 1}]
    data = codecs_ser.dumps({"objs": objs, "mixed": mixed, "plain": np.arange(3)})
    with codecs_ser.open(data) as c:
        assert list(c.entries) == ["plain"]
        assert c.skeleton_format() == "pickle"
        wanted = c.audit()
    assert set(codecs_ser.load_arrays(data)) == {"plain"}
    # the core's own checked constructors rebuild them: no trust needed
    assert wanted == ["codecs_ser._skeleton._make_object_array"]
    back = codecs_ser.loads(data)
    assert back["objs"].dtype == object and back["objs"].tolist() == objs.tolist()
    assert back["mixed"].dtype == mixed.dtype
    assert back["mixed"].tolist() == mixed.tolist()
    np.testing.assert_array_equal(back["plain"], np.arange(3))


def test_object_array_of_user_objects_needs_trust() -> None:
    arr = np.array([Opaque(1), Opaque(2)], dtype=object)
    data = codecs_ser.dumps({"a": arr})
    name = f"{Opaque.__module__}.{Opaque.__qualname__}"
    with pytest.raises(UntrustedError) as info:
        codecs_ser.loads(data)
    assert info.value.globals == [name]
    back = codecs_ser.loads(data, trusted=[name])
    assert back["a"].tolist() == arr.tolist()


# -- numpy reads every blob -------------------------------------------------------------


def test_numpy_load_reads_the_zip(tmp_path: Path) -> None:
    obj = _sample()
    target = tmp_path / "plain.zip"
    codecs_ser.dump(obj, target)
    with codecs_ser.open(target) as c:
        name_of = {e.path: n for n, e in c.entries.items()}
    with np.load(target) as npz:
        for keys, arr in _leaves(obj).items():
            name = name_of[_entry_path(keys)]
            assert name in npz.files
            assert_identical(arr, npz[name])
        for name, arr in codecs_ser.load_arrays(target).items():
            assert_identical(arr, npz[name])


@pytest.mark.parametrize("tool", ["tar-command", "tarfile"])
def test_extracted_tar_gives_npy_files(tmp_path: Path, tool: str) -> None:
    obj = _sample()
    target = tmp_path / "plain.tar"
    codecs_ser.dump(obj, target)
    out = tmp_path / "out"
    out.mkdir()
    if tool == "tar-command":
        exe = shutil.which("tar")
        if exe is None:
            pytest.skip("no tar command on this system")
        subprocess.run([exe, "-xf", os.fspath(target), "-C", os.fspath(out)], check=True)
    else:
        with tarfile.open(target) as tf:
            tf.extractall(out, filter="data")
    with codecs_ser.open(target) as c:
        name_of = {e.path: n for n, e in c.entries.items()}
    leaves = _leaves(obj)
    assert len(name_of) == len(leaves)
    for keys, arr in leaves.items():
        assert_identical(arr, np.load(out / (name_of[_entry_path(keys)] + ".npy")))


class Tagged(np.ndarray):
    """A user's ndarray subclass."""


@pytest.mark.parametrize(
    "arr",
    [
        np.rec.array([(1, 2.0), (3, 4.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        np.arange(6.0).reshape(2, 3).view(Tagged),
    ],
    ids=["recarray", "subclass"],
)
def test_ndarray_subclass_bytes_are_blobs(arr: np.ndarray) -> None:
    # array bytes never go through pickle: a subclass keeps its type through the
    # skeleton, and its data is a blob that load_arrays reads
    data = codecs_ser.dumps({"sub": arr})
    arrays = codecs_ser.load_arrays(data)
    assert list(arrays) == ["sub"]
    assert arrays["sub"].tobytes() == np.asarray(arr).tobytes()
    back = codecs_ser.loads(data, trusted=True)["sub"]
    assert type(back) is type(arr)
    assert back.dtype == arr.dtype and back.tobytes() == arr.tobytes()


class NonSeekableReader(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        return self._buf.readinto(b)


@pytest.mark.parametrize("backend", STREAM_BACKENDS)
def test_file_objects_at_an_offset_and_unseekable_sources(tmp_path: Path, backend: str) -> None:
    obj = _sample()
    leaves = _leaves(obj)
    # a container written after other data in the same stream
    buf = io.BytesIO()
    buf.write(b"HEADER")
    codecs_ser.dump(obj, buf, backend=backend)
    path = tmp_path / "embedded.bin"
    path.write_bytes(buf.getvalue())
    with open(path, "rb") as f:
        for mmap in (False, True):
            for source in (buf, f):
                source.seek(6)
                back = codecs_ser.load(source, mmap=mmap)
                for keys, arr in leaves.items():
                    assert_identical(arr, _get(back, keys))
        f.seek(6)
        assert codecs_ser.verify(f) == []
    # a source that cannot seek is read whole
    data = buf.getvalue()[6:]
    back = codecs_ser.load(NonSeekableReader(data))
    for keys, arr in leaves.items():
        assert_identical(arr, _get(back, keys))


def test_masked_structured_array_roundtrips() -> None:
    """A structured masked array's mask has one bool field per field of the data."""
    data = np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "<i4"), ("b", "<f8")])
    m = np.ma.masked_array(data, mask=[(False, True), (True, False)])
    back = codecs_ser.loads(codecs_ser.dumps({"m": m}))["m"]
    assert back.mask.dtype == m.mask.dtype
    assert back.mask.tolist() == m.mask.tolist() and back.data.tolist() == data.tolist()


def test_mmap_copy_of_a_small_padded_record_keeps_its_padding_bytes() -> None:
    """A small blob read for mmap=True is copied to aligned memory byte for byte."""
    dt = np.dtype({"names": ["a", "b"], "formats": ["u1", "<i8"]}, align=True)
    arr = np.zeros(2, dt)
    arr["a"], arr["b"] = [1, 2], [3, 4]
    for _ in range(5):
        back = codecs_ser.loads(codecs_ser.dumps({"x": arr}), mmap=True)["x"]
        assert back.view(np.uint8).tobytes() == arr.view(np.uint8).tobytes()
