"""The objects stored in the golden containers, built the same way every time.

``make_golden.py`` dumps them; ``tests/test_golden.py`` compares what loads from
the committed files with them.  Change nothing here without regenerating the
golden files, which is only allowed together with a format version change (see
the generator's docstring).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The SOURCE_DATE_EPOCH the golden files were written with (2023-11-14T22:13:20Z).
EPOCH = 1700000000
#: The folder of this format version's golden files, relative to this module.
FOLDER = "v1"


def _bits(dtype: str, values: list[int]) -> np.ndarray:
    """Floats given by their bit patterns (NaN payloads, signed zeros, infinities)."""
    width = np.dtype(dtype).itemsize
    return np.array(values, dtype=f"<u{width}").view(f"<f{width}").astype(dtype)


def _structured() -> np.ndarray:
    dt = np.dtype([("id", "<i4"), ("pos", ">f8", (2,)), ("name", "S5"), ("ok", "?"), ("u", "<U2")])
    return np.array(
        [(1, (0.5, -1.5), b"ab", True, "x"), (-7, (1e300, -0.0), b"hello", False, "\u00e9z")],
        dtype=dt,
    )


def _aligned() -> np.ndarray:
    dt = np.dtype({"names": ["a", "b"], "formats": ["u1", "<i8"]}, align=True)
    out = np.zeros(2, dtype=dt)  # the padding bytes are zeros
    out["a"] = [3, 250]
    out["b"] = [-(2**62), 2**62]
    return out


def _nested() -> np.ndarray:
    inner = np.dtype([("re", "<f4"), ("im", "<f4")])
    dt = np.dtype([("z", inner), ("k", ">i2", (2, 2))])
    return np.array([((1.0, -2.0), [[1, 2], [3, 4]])], dtype=dt)


def dtype_arrays() -> dict[str, np.ndarray]:
    """One small array per dtype family, both byte orders where it matters."""
    ints = [0, 1, -1, 127, -128]
    out: dict[str, np.ndarray] = {
        "bool": np.array([True, False, True]),
        "i1": np.array(ints, dtype="i1"),
        "i2_le": np.array([*ints, -32768], dtype="<i2"),
        "i2_be": np.array([*ints, 32767], dtype=">i2"),
        "i4_le": np.array([*ints, -(2**31)], dtype="<i4"),
        "i4_be": np.array([*ints, 2**31 - 1], dtype=">i4"),
        "i8_le": np.array([*ints, -(2**63)], dtype="<i8"),
        "i8_be": np.array([*ints, 2**63 - 1], dtype=">i8"),
        "u1": np.array([0, 1, 255], dtype="u1"),
        "u2_le": np.array([0, 1, 65535], dtype="<u2"),
        "u2_be": np.array([0, 1, 65535], dtype=">u2"),
        "u4_le": np.array([0, 1, 2**32 - 1], dtype="<u4"),
        "u4_be": np.array([0, 1, 2**32 - 1], dtype=">u4"),
        "u8_le": np.array([0, 1, 2**64 - 1], dtype="<u8"),
        "u8_be": np.array([0, 1, 2**64 - 1], dtype=">u8"),
        # +0, -0, 1, inf, -inf, quiet NaN, negative NaN, NaN with a payload, smallest subnormal
        "f2_le": _bits("<f2", [0x0000, 0x8000, 0x3C00, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 1]),
        "f2_be": _bits(">f2", [0x3C00, 0x7E01, 0x0001]),
        "f4_le": _bits(
            "<f4",
            [
                0,
                0x80000000,
                0x3F800000,
                0x7F800000,
                0xFF800000,
                0x7FC00000,
                0xFFC00000,
                0x7F800001,
                1,
            ],
        ),
        "f4_be": _bits(">f4", [0x3F800000, 0x7FC00123, 1]),
        "f8_le": _bits(
            "<f8",
            [
                0,
                0x8000000000000000,
                0x3FF0000000000000,
                0x7FF0000000000000,
                0xFFF0000000000000,
                0x7FF8000000000000,
                0xFFF8000000000000,
                0x7FF0000000000001,
                0x7FF80000DEADBEEF,
                1,
            ],
        ),
        "f8_be": _bits(">f8", [0x3FF0000000000000, 0x7FF8000000000ABC, 1]),
        "c8_le": np.array([1 + 2j, -0.0 - 1j, complex(np.inf, np.nan)], dtype="<c8"),
        "c16_le": np.array([1 + 2j, 1e-300 - 1e300j], dtype="<c16"),
        "c16_be": np.array([3 - 4j], dtype=">c16"),
        "str_le": np.array(["", "a", "h\u00e9llo", "\U0001f600"], dtype="<U5"),
        "str_be": np.array(["ab", "\u4e2d"], dtype=">U2"),
        "bytes": np.array([b"", b"a\x00b", b"\xff\xfe"], dtype="S3"),
        "void": np.array([b"\x00\x01\x02", b"\xff\xfe\xfd"], dtype="V3"),
        "datetime_ns": np.array(["2020-01-01T00:00:00.123456789", "NaT"], dtype="datetime64[ns]"),
        "datetime_D": np.array(["1970-01-01", "2262-04-11", "1677-09-22"], dtype="datetime64[D]"),
        "datetime_be": np.array(["2000-02-29T12:00"], dtype=">M8[m]"),
        "timedelta_s": np.array([0, -1, 86400, "NaT"], dtype="timedelta64[s]"),
        "timedelta_us_be": np.array([5], dtype=">m8[us]"),
        "structured": _structured(),
        "aligned": _aligned(),
        "nested": _nested(),
        "zero_d": np.array(3.25, dtype="<f8"),
        "zero_d_be": np.array(-9, dtype=">i2"),
        "empty": np.zeros((0,), dtype="<f4"),
        "empty_2d": np.zeros((3, 0), dtype=">i8"),
        "fortran": np.asfortranarray(np.arange(12, dtype="<i4").reshape(3, 4)),
        "fortran_3d": np.asfortranarray(np.arange(24, dtype=">f4").reshape(2, 3, 4)),
        # a non-contiguous view whose base is not in the object: stored as a copy
        "strided": np.arange(20, dtype="<i2")[::3],
        "reversed": np.arange(5, dtype="<u4")[::-1],
    }
    return out


def views() -> dict[str, np.ndarray]:
    """A base and views into it: they load as views sharing the loaded base's memory."""
    base = np.arange(48, dtype="<f8").reshape(6, 8)
    return {
        "base": base,
        "rows": base[1:4],
        "every_other": base[:, ::2],
        "transposed": base.T,
        "reshaped": base.reshape(8, 6),
        "element_view": base[2:, 3],
        "reversed": base[::-1, ::-1],
    }


#: Entries that come back as views of another entry (name -> base entry name).
VIEW_ENTRIES = {
    f"views/{k}": "views/base"
    for k in ("rows", "every_other", "transposed", "reshaped", "element_view", "reversed")
}


def scalars() -> dict[str, Any]:
    return {
        "f4": np.float32(1.5),
        "f8_nan": np.array([0x7FF8000000000BAD], dtype="<u8").view("<f8")[0],
        "f2": np.float16(-0.0),
        "i8": np.int64(-(2**63)),
        "u8": np.uint64(2**64 - 1),
        "bool": np.bool_(True),
        "c8": np.complex64(1 - 1j),
        "datetime": np.datetime64("2021-03-04T05:06:07", "s"),
        "timedelta": np.timedelta64(-3, "h"),
        "record": _structured()[1],
    }


def masked() -> dict[str, Any]:
    a = np.ma.masked_array([1.0, 2.0, np.nan, 4.0], mask=[False, True, False, True])
    a.fill_value = -1.0
    hard = np.ma.masked_array(np.arange(6, dtype=">i4").reshape(2, 3), mask=[[0, 1, 0], [1, 0, 0]])
    hard.harden_mask()
    return {
        "soft": a,
        "hard": hard,
        "nomask": np.ma.masked_array(np.array([1, 2, 3], dtype="<u2")),
        "records": np.ma.masked_array(_structured(), mask=[(False,) * 5, (True,) * 5]),
    }


def plain_data() -> dict[str, Any]:
    """Pure data: what a msgpack skeleton stores without any pickle."""
    return {
        "none": None,
        "bools": [True, False],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1],
        "big_ints": [2**64, -(2**63) - 1, 10**40, -(10**40)],
        "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e-310],
        "complex": [1 + 2j, complex(-0.0, float("inf"))],
        "str": ["", "plain", "\u00e9\u4e2d\U0001f600"],
        "bytes": [b"", b"\x00\xff"],
        "tuple": (1, "two", (3.0, (None,))),
        "empty": {"list": [], "dict": {}, "tuple": ()},
        "keys": {1: "int key", (1, 2): "tuple key", b"k": "bytes key", None: "none key"},
        "nested": [{"a": [1, {"b": (2,)}]}],
    }


def msgpack_object() -> dict[str, Any]:
    """The main object of the msgpack containers: pure data and arrays of every core codec."""
    return {
        "dtypes": dtype_arrays(),
        "views": views(),
        "scalars": scalars(),
        "masked": masked(),
        "data": plain_data(),
        "recarray": np.rec.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
    }


def second_object(main: dict[str, Any]) -> dict[str, Any]:
    """The object added under the name ``second``; it shares one array's bytes with main."""
    return {
        "copy_of_bool": np.array([True, False, True]),  # same bytes as main's dtypes/bool
        "new": np.linspace(0.0, 1.0, 5, dtype=">f4"),
        "step": 2,
    }


def pickle_object() -> dict[str, Any]:
    """Types msgpack cannot hold, all in the default allowlist, so trusted=False loads them."""
    arr = np.arange(6, dtype="<i4").reshape(2, 3)
    return {
        "set": {"alpha", "beta", "gamma", 3, 2.5, b"raw", ("t", 1)},
        "frozenset": frozenset({"x", "y", frozenset({"z"})}),
        "empty_set": set(),
        "fraction": fractions.Fraction(-22, 7),
        "decimal": decimal.Decimal("-1.2345678901234567890E+40"),
        "datetime": datetime.datetime(
            2023, 11, 14, 22, 13, 20, 123456, tzinfo=datetime.timezone.utc
        ),
        "date": datetime.date(1999, 12, 31),
        "time": datetime.time(23, 59, 59),
        "timedelta": datetime.timedelta(days=-1, seconds=5, microseconds=7),
        "tz": datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
        "ordered": collections.OrderedDict([("z", 1), ("a", [arr])]),
        "counter": collections.Counter({"x": 3, "y": 1}),
        "deque": collections.deque([1, 2, 3], maxlen=5),
        "defaultdict": collections.defaultdict(int, {"k": 1}),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "range": range(1, 10, 3),
        "slice": slice(1, None, 2),
        "bytearray": bytearray(b"\x00mutable"),
        "shared": [arr, arr],  # one array referenced twice: stored once, loaded as one
        "view": arr[:, 1],
        "dtype": np.dtype(">f8"),
        "structured_dtype": np.dtype([("a", "<i2"), ("b", "S3")]),
        "scalar_in_list": [np.float64(2.5)],
        "object_array": np.array([1, "two", None, (3,)], dtype=object),
        "masked": np.ma.masked_array([1, 2], mask=[0, 1]),
    }


def pickle_second_object(main: dict[str, Any]) -> dict[str, Any]:
    return {"tags": {"red", "green", "blue"}, "weights": np.full((2, 2), 0.5, dtype="<f2")}


@dataclass(frozen=True)
class Case:
    """One golden container: what is dumped, how, and what is added to it."""

    file: str
    backend: str
    checksum: str
    build: Any
    metadata: dict[str, Any]
    second: Any
    second_metadata: dict[str, Any] = field(default_factory=dict)
    skeleton: str = "msgpack"


_META = {"epoch": 3, "note": "golden \u2713", "loss": 0.25, "tags": ["a", "b"], "raw": b"\x01"}

CASES = [
    Case("msgpack.tar", "tar", "xxh3_64", msgpack_object, _META, second_object, {"part": 2}),
    Case("msgpack.zip", "zip", "sha256", msgpack_object, _META, second_object, {"part": 2}),
    Case("msgpack.dir", "dir", "xxh3_64", msgpack_object, _META, second_object, {"part": 2}),
    Case("pickle.tar", "tar", "sha256", pickle_object, {}, pickle_second_object, skeleton="pickle"),
    Case(
        "pickle.zip", "zip", "xxh3_64", pickle_object, {}, pickle_second_object, skeleton="pickle"
    ),
    Case("pickle.dir", "dir", "sha256", pickle_object, {}, pickle_second_object, skeleton="pickle"),
]
