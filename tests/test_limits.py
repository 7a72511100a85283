"""Resource limits: each one refuses a file that exceeds it with an error naming the knob,
and raising the knob lets the same file load."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser._safe_pickle import unpickle_skeleton
from codecs_ser.errors import FormatError, UsageError


class Opaque:
    """Forces a pickled skeleton."""

    def __init__(self, payload: object) -> None:
        self.payload = payload


def test_defaults_and_overrides_are_scoped() -> None:
    before = codecs_ser.get_limits()
    assert before == codecs_ser.Limits()
    with codecs_ser.limits(max_entries=5) as inside:
        assert inside.max_entries == 5
        assert codecs_ser.get_limits().max_entries == 5
        assert codecs_ser.get_limits().max_ndim == before.max_ndim
    assert codecs_ser.get_limits() == before


def test_set_limits_returns_the_previous_ones() -> None:
    previous = codecs_ser.set_limits(max_skeleton_bytes=123)
    try:
        assert codecs_ser.get_limits().max_skeleton_bytes == 123
    finally:
        codecs_ser.set_limits(max_skeleton_bytes=previous.max_skeleton_bytes)
    assert codecs_ser.get_limits().max_skeleton_bytes == previous.max_skeleton_bytes


def test_limits_of_one_thread_do_not_leak_into_another() -> None:
    seen: list[int] = []
    with codecs_ser.limits(max_entries=7):
        worker = threading.Thread(target=lambda: seen.append(codecs_ser.get_limits().max_entries))
        worker.start()
        worker.join()
    assert seen == [codecs_ser.Limits().max_entries]


@pytest.mark.parametrize(
    "overrides",
    [{"max_bogus": 1}, {"max_entries": -1}, {"max_entries": 1.5}, {"max_entries": True}],
)
def test_bad_limits_are_usage_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(UsageError), codecs_ser.limits(**overrides):  # type: ignore[arg-type]
        pass


def test_manifest_limit(tmp_path: Path) -> None:
    target = tmp_path / "a.tar"
    codecs_ser.dump({"a": np.arange(3)}, target)
    with codecs_ser.limits(max_manifest_bytes=10), pytest.raises(FormatError) as info:
        codecs_ser.open(target)
    assert "max_manifest_bytes" in str(info.value)
    assert codecs_ser.load(target)["a"].tolist() == [0, 1, 2]


def test_entries_limit() -> None:
    data = codecs_ser.dumps({f"a{i}": np.arange(2) for i in range(10)})
    with codecs_ser.limits(max_entries=5), pytest.raises(FormatError):
        codecs_ser.open(data)
    assert len(codecs_ser.load_arrays(data)) == 10


def test_skeleton_limit() -> None:
    data = codecs_ser.dumps({"text": "x" * 5000})
    with codecs_ser.limits(max_skeleton_bytes=1000), pytest.raises(FormatError) as info:
        codecs_ser.loads(data)
    assert "max_skeleton_bytes" in str(info.value)
    # arrays are still readable: the skeleton is not needed for them
    with codecs_ser.limits(max_skeleton_bytes=1000):
        assert codecs_ser.load_arrays(data) == {}


def test_ndim_limit() -> None:
    data = codecs_ser.dumps({"a": np.zeros((1,) * 10)})
    with codecs_ser.limits(max_ndim=4), pytest.raises(FormatError):
        codecs_ser.load_arrays(data)
    assert codecs_ser.load_arrays(data)["a"].ndim == 10


def _amplifying_pickle(calls: int) -> bytes:
    """``list(items)`` for one list of 100,000 items, ``calls`` times, through the memo: a few
    bytes of pickle per call, 800 kB built by each."""
    body = b"\x80\x04cbuiltins\nlist\n\x94](" + b"N" * 100_000 + b"e\x94("
    body += b"h\x00h\x01\x85R" * calls
    return body + b"l."


def test_pickle_alloc_limit_counts_what_calls_build() -> None:
    small, big = _amplifying_pickle(2), _amplifying_pickle(100)
    assert len(unpickle_skeleton(small, lambda i: None)) == 2
    with pytest.raises(FormatError) as info:
        unpickle_skeleton(big, lambda i: None)  # 100 lists of 100,000 items from 100 kB of pickle
    assert "max_pickle_alloc" in str(info.value)
    with codecs_ser.limits(max_pickle_alloc=1 << 30):
        assert len(unpickle_skeleton(big, lambda i: None)) == 100


def test_colliding_keys_are_refused_in_msgpack_skeletons() -> None:
    modulus = (1 << 61) - 1  # int hashes wrap around here: these all hash to 0
    keys = {i * modulus: i for i in range(200)}
    data = codecs_ser.dumps({"d": keys})
    assert codecs_ser.open(data).skeleton_format() == "msgpack"
    with pytest.raises(FormatError) as info:
        codecs_ser.loads(data)
    assert "max_colliding_keys" in str(info.value)
    with codecs_ser.limits(max_colliding_keys=1000):
        assert codecs_ser.loads(data) == {"d": keys}


def test_colliding_keys_are_refused_in_pickled_skeletons() -> None:
    modulus = (1 << 61) - 1
    data = codecs_ser.dumps({"o": Opaque({i * modulus for i in range(200)})})
    name = f"{Opaque.__module__}.{Opaque.__qualname__}"
    with pytest.raises(FormatError) as info:
        codecs_ser.loads(data, trusted=[name])
    assert "hash" in str(info.value)
    with codecs_ser.limits(max_colliding_keys=1000):
        assert len(codecs_ser.loads(data, trusted=[name])["o"].payload) == 200


def test_deeply_nested_tuples_are_pickled_and_round_trip() -> None:
    deep: tuple[object, ...] = ()
    for i in range(40):
        deep = (deep, i)
    shallow: tuple[object, ...] = ()
    for i in range(10):
        shallow = (shallow, i)
    data = codecs_ser.dumps({"t": deep})
    assert codecs_ser.open(data).skeleton_format() == "pickle"
    assert codecs_ser.loads(data) == {"t": deep}  # no globals: loads untrusted
    data = codecs_ser.dumps({"t": shallow, "k": {((1, (2,)),): 1}})
    assert codecs_ser.open(data).skeleton_format() == "msgpack"
    assert codecs_ser.loads(data) == {"t": shallow, "k": {((1, (2,)),): 1}}


def test_numpy_values_in_pickles_load_untrusted() -> None:
    obj = {
        "o": Opaque(None),
        "dtypes": [np.dtype(">i4"), np.dtype([("a", "<f4"), ("b", "S3", (2,))])],
        "scalars": {np.float32(1.5), np.int16(-3)},
        "objects": np.array([[1, "a"], [None, [2]]], dtype=object),
    }
    data = codecs_ser.dumps(obj)
    name = f"{Opaque.__module__}.{Opaque.__qualname__}"
    assert [g for g in codecs_ser.audit(data) if g.startswith("numpy")] == []
    back = codecs_ser.loads(data, trusted=[name])
    assert back["dtypes"] == obj["dtypes"]
    assert back["scalars"] == obj["scalars"]
    assert back["objects"].tolist() == obj["objects"].tolist()


@pytest.mark.parametrize(
    "descr",
    [
        ",".join(["u1"] * 70_000),  # numpy's comma string: one field per part
        [["f", ",".join(["u1"] * 70_000)]],  # a comma string inside a record
        [[f"f{i}", "u1"] for i in range(70_000)],
    ],
    ids=["comma-string", "comma-string-in-a-record", "list"],
)
def test_dtype_fields_limit(descr: object) -> None:
    from codecs_ser._npy import dtype_from_descr

    with pytest.raises(FormatError) as info:
        dtype_from_descr(descr)
    assert "max_dtype_fields" in str(info.value)
    with codecs_ser.limits(max_dtype_fields=80_000):
        assert len(dtype_from_descr(descr).descr) in (1, 70_000)


def test_dtype_fields_limit_applies_to_npy_headers() -> None:
    from codecs_ser._npy import parse_header

    nine = ",".join(["u1"] * 9)
    text = f"{{'descr': '{nine}', 'fortran_order': False, 'shape': (1,), }}"
    body = text.encode() + b" " * (-(len(text) + 11) % 64) + b"\n"
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body
    assert len(parse_header(header)[0].names or ()) == 9
    with codecs_ser.limits(max_dtype_fields=8), pytest.raises(FormatError) as info:
        parse_header(header)
    assert "max_dtype_fields" in str(info.value)


@pytest.mark.parametrize("descr", ["<f8", "|S10", "<U3", "<M8[25s]", "|b1", "|V16", "<c16"])
def test_plain_type_strings_are_one_field(descr: str) -> None:
    from codecs_ser._npy import dtype_from_descr

    with codecs_ser.limits(max_dtype_fields=1):
        assert dtype_from_descr(descr) == np.dtype(descr)


@pytest.mark.parametrize(
    ("shape", "itemsize", "fits"),
    [
        ([0, 2**63 - 1], 1, True),
        ([0, 2**63], 1, False),
        ([2**63, 0], 1, False),
        ([0, 2**60], 8, False),
        ([0, 2**60 - 1], 8, True),
        ([0, 2**62, 4], 1, False),
        ([3, 0, 5], 8, True),
    ],
)
def test_shapes_numpy_can_make(shape: list[int], itemsize: int, fits: bool) -> None:
    from codecs_ser._npy import shape_fits

    assert shape_fits(shape, itemsize) is fits
    dtype = np.dtype(f"V{itemsize}")
    if fits:
        np.empty(shape, dtype)
    else:
        with pytest.raises(ValueError):
            np.empty(shape, dtype)
