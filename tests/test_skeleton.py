"""The skeleton: pure data as msgpack with exact types, everything else pickled; leaf
identity, views and cycles survive; leaf names follow the path and are always safe."""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import inspect
import math
import os
import struct
import tarfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import codecs_ser

BACKENDS = ("tar", "zip", "dir")

# -- exact comparison ---------------------------------------------------------------


def assert_same_tree(expected: Any, got: Any) -> None:
    """Same types all the way down (tuple stays tuple, bool stays bool), same values;
    floats compared bit for bit so nan and -0.0 count."""
    assert type(got) is type(expected), f"{type(expected)!r} came back as {type(got)!r}"
    if isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
    elif isinstance(expected, np.generic):
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    elif isinstance(expected, float):
        assert struct.pack("<d", got) == struct.pack("<d", expected)
    elif isinstance(expected, complex):
        assert struct.pack("<dd", got.real, got.imag) == struct.pack(
            "<dd", expected.real, expected.imag
        )
    elif isinstance(expected, dict):
        assert len(got) == len(expected)
        for (k1, v1), (k2, v2) in zip(expected.items(), got.items(), strict=True):
            assert_same_tree(k1, k2)
            assert_same_tree(v1, v2)
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for a, b in zip(expected, got, strict=True):
            assert_same_tree(a, b)
    else:
        assert got == expected


# -- pure data ------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True),
    st.text(max_size=8),
    st.binary(max_size=8),
)
hashable_keys = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.binary(max_size=4),
    st.tuples(st.integers(), st.text(max_size=3)),
)
small_arrays = hnp.arrays(
    st.sampled_from([np.dtype("<f8"), np.dtype(">i4"), np.dtype("?"), np.dtype("<U3")]),
    hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
)
pure_data = st.recursive(
    st.one_of(scalars, small_arrays),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashable_keys, children, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(obj=pure_data)
def test_pure_data_is_msgpack_with_exact_types(obj: Any) -> None:
    data = codecs_ser.dumps(obj)
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "msgpack"
        assert c.audit() == []
    assert_same_tree(obj, codecs_ser.loads(data))


def test_pure_data_examples(tmp_path: Path) -> None:
    obj = {
        "tuple": (1, (2, [3, (4,)])),
        "list": [1, [2]],
        "bools": [True, False, 0, 1],
        "ints": [2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**200, -(2**1000)],
        "floats": [math.nan, -math.inf, math.inf, -0.0, 5e-324],
        "complex": [1 + 2j, complex(math.nan, -0.0)],
        "bytes": b"\x00\xff",
        "none": None,
        "text": "é日本\x00",
        (1, "t"): "tuple key",
        b"raw": "bytes key",
        3: "int key",
        2.5: "float key",
        None: "none key",
        True: "bool key",
        "nested": {"a": {"b": {"c": [np.arange(3), np.float32(2.5)]}}},
    }
    for backend in BACKENDS:
        target = tmp_path / f"pure.{backend}"
        codecs_ser.dump(obj, target, backend=backend)
        with codecs_ser.open(target) as c:
            assert c.skeleton_format() == "msgpack"
        assert_same_tree(obj, codecs_ser.load(target))


# -- pickled skeletons ----------------------------------------------------------------


@dataclasses.dataclass
class Params:
    w: np.ndarray
    b: np.ndarray
    note: str = "x"


class Pair(NamedTuple):
    x: np.ndarray
    y: np.ndarray


class Holder:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and _deep_eq(self.__dict__, other.__dict__)

    __hash__ = None  # type: ignore[assignment]


class Slotted:
    __slots__ = ("s", "t")

    def __init__(self, s: Any, t: Any) -> None:
        self.s = s
        self.t = t


class Color(enum.Enum):
    RED = 1


class MyStr(str):
    pass


def _deep_eq(a: Any, b: Any) -> bool:
    try:
        assert_same_tree(a, b)
    except AssertionError:
        return False
    return True


def _make_closure() -> Any:
    k = 3

    def add(x: int) -> int:
        return x + k

    return add


NOT_PURE = {
    "OrderedDict": collections.OrderedDict(a=1, b=np.arange(2)),
    "defaultdict": collections.defaultdict(list, {"a": [1]}),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "bytearray": bytearray(b"xy"),
    "dataclass": Params(np.ones(2), np.zeros(1)),
    "namedtuple": Pair(np.arange(2), np.arange(3)),
    "instance": Holder(a=np.arange(2), b="x"),
    "slots": Slotted(np.arange(2), 5),
    "enum": Color.RED,
    "str subclass": MyStr("s"),
    "class": Holder,
    "function": _deep_eq,
    "huge int": 2**40000,
}


@pytest.mark.parametrize("name", list(NOT_PURE))
def test_anything_else_is_pickled(name: str) -> None:
    obj = NOT_PURE[name]
    data = codecs_ser.dumps({"v": obj})
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "pickle"
    back = codecs_ser.loads(data, trusted=True)["v"]
    assert type(back) is type(obj)
    if isinstance(obj, Params):
        assert_same_tree(obj.w, back.w)
        assert_same_tree(obj.b, back.b)
    elif isinstance(obj, Slotted):
        assert_same_tree(obj.s, back.s)
        assert back.t == obj.t
    elif isinstance(obj, Pair):
        assert_same_tree(tuple(obj), tuple(back))
    elif isinstance(obj, collections.OrderedDict):
        assert list(back) == ["a", "b"] and back["a"] == 1
        assert_same_tree(obj["b"], back["b"])
    elif isinstance(obj, type) or inspect.isfunction(obj):
        assert back is obj
    else:
        assert back == obj


def test_lambdas_and_closures_are_pickled_by_value() -> None:
    data = codecs_ser.dumps({"f": lambda x: x * 2, "g": _make_closure()}, code_by_value="allow")
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "pickle"
    back = codecs_ser.loads(data, trusted=True)
    assert back["f"](4) == 8
    assert back["g"](4) == 7


def test_shared_list_keeps_identity() -> None:
    shared = [np.arange(3), 1]
    obj = {"a": shared, "b": shared}
    data = codecs_ser.dumps(obj)
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "pickle"
    back = codecs_ser.loads(data)
    assert back["a"] is back["b"]
    assert_same_tree(shared, back["a"])


def test_shared_tuple_stays_pure() -> None:
    t = (1, 2)
    data = codecs_ser.dumps({"a": t, "b": t})
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "msgpack"
    assert codecs_ser.loads(data) == {"a": (1, 2), "b": (1, 2)}


# -- identity, views, cycles ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pickled", [False, True], ids=["msgpack", "pickle"])
def test_same_array_twice_is_one_object(tmp_path: Path, backend: str, pickled: bool) -> None:
    arr = np.arange(10.0)
    masked = np.ma.masked_array([1, 2], mask=[0, 1])
    obj: Any = {"a": arr, "b": [arr, (arr,)], "m1": masked, "m2": masked}
    if pickled:
        obj["extra"] = Holder(again=arr)
    target = tmp_path / "c"
    codecs_ser.dump(obj, target, backend=backend)
    with codecs_ser.open(target) as c:
        assert c.skeleton_format() == ("pickle" if pickled else "msgpack")
        assert sorted(c.entries) == ["a", "m1"]
    for mmap in (False, True):
        back = codecs_ser.load(target, mmap=mmap, trusted=pickled)
        assert back["a"] is back["b"][0] is back["b"][1][0]
        assert back["m1"] is back["m2"]
        if pickled:
            assert back["extra"].again is back["a"]


def _views() -> dict[str, Any]:
    owner = np.arange(240, dtype=np.float64)
    base = owner[20:220].reshape(10, 20)
    return {
        "base": base,
        "row": base[3],
        "col": base[:, 4],
        "steps": base[1:9:2, ::3],
        "reversed": base[::-1, ::-2],
        "transposed": base.T,
        "bytes": base[2].view(np.uint8)[::8],
        "flat": base.reshape(-1)[5:50],
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mmap", [False, True], ids=["copy", "mmap"])
def test_views_share_memory_with_their_base(tmp_path: Path, backend: str, mmap: bool) -> None:
    obj = _views()
    target = tmp_path / "views"
    codecs_ser.dump(obj, target, backend=backend)
    back = codecs_ser.load(target, mmap=mmap)
    for name, arr in obj.items():
        assert_same_tree(arr, back[name])
        if name != "base":
            assert np.shares_memory(back[name], back["base"]), name
    if not mmap:
        back["base"][3, 4] = -1.0
        assert back["row"][4] == -1.0 and back["col"][3] == -1.0
    else:
        assert not back["row"].flags.writeable
    # readers that know nothing of views still get every array whole
    arrays = codecs_ser.load_arrays(target)
    for name, arr in obj.items():
        assert_same_tree(arr, arrays[name])


def test_view_in_a_pickled_object_shares_memory() -> None:
    base = np.arange(12.0)
    data = codecs_ser.dumps(Holder(base=base, half=base[:6]))
    back = codecs_ser.loads(data, trusted=True)
    assert np.shares_memory(back.base, back.half)
    assert_same_tree(base[:6], back.half)


def test_cyclic_structures_roundtrip() -> None:
    cyc: list[Any] = [np.arange(3)]
    cyc.append(cyc)
    d: dict[str, Any] = {"w": np.ones(2)}
    d["self"] = d
    inst = Holder(w=np.zeros(2))
    inst.me = inst
    obj = {"list": cyc, "dict": d, "inst": inst}
    data = codecs_ser.dumps(obj)
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "pickle"
    back = codecs_ser.loads(data, trusted=True)
    assert back["list"][1] is back["list"]
    assert back["dict"]["self"] is back["dict"]
    assert back["inst"].me is back["inst"]
    assert_same_tree(cyc[0], back["list"][0])
    assert_same_tree(d["w"], back["dict"]["w"])
    # a cycle of plain lists and dicts imports nothing, so it needs no trust
    plain = codecs_ser.loads(codecs_ser.dumps({"list": cyc, "dict": d}))
    assert plain["list"][1] is plain["list"]


# -- leaf names ------------------------------------------------------------------------


def test_leaf_names_follow_the_path() -> None:
    a = [np.full(2, i) for i in range(12)]
    obj = {
        "model": {"w": a[0], "layers": [a[1], a[2]]},
        "tup": (a[3],),
        "dc": Params(a[4], a[5]),
        "nt": Pair(a[6], a[7]),
        "inst": Holder(weight=a[8], _private=a[9]),
        "slots": Slotted(a[10], a[11]),
    }
    data = codecs_ser.dumps(obj)
    expected = {
        "model/w": a[0],
        "model/layers/0": a[1],
        "model/layers/1": a[2],
        "tup/0": a[3],
        "dc/w": a[4],
        "dc/b": a[5],
        "nt/x": a[6],
        "nt/y": a[7],
        "inst/weight": a[8],
        "inst/_private": a[9],
        "slots/s": a[10],
        "slots/t": a[11],
    }
    arrays = codecs_ser.load_arrays(data)
    assert sorted(arrays) == sorted(expected)
    for name, arr in expected.items():
        assert_same_tree(arr, arrays[name])
    with codecs_ser.open(data) as c:
        assert sorted(c.entries) == sorted(expected)
        for name, entry in c.entries.items():
            assert entry.path == name


def test_root_leaf_is_named_root() -> None:
    assert list(codecs_ser.load_arrays(codecs_ser.dumps(np.arange(3)))) == ["root"]


def _check_safe(name: str) -> None:
    assert name and not name.startswith("/")
    assert "\\" not in name
    assert not any(ord(ch) < 32 or ord(ch) == 0x7F for ch in name), repr(name)
    for part in name.split("/"):
        assert part, repr(name)
        assert not part.startswith("."), repr(name)
    name.encode("utf-8")


AWKWARD = {
    "a/b": 1,
    "..": 2,
    ".": 3,
    ".hidden": 4,
    "x\x00y": 5,
    "": 6,
    "/abs": 7,
    "back\\slash": 8,
    "A": 9,
    "a": 10,
    "ß": 11,
    "SS": 12,
    1: 13,
    "1": 14,
    None: 15,
    (1, "/"): 16,
    b"..": 17,
    2.5: 18,
    "%2F": 19,
    "tab\tnew\nline": 20,
    "é" * 200: 21,
    "é" * 201: 22,
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_awkward_keys_give_safe_unique_names(tmp_path: Path, backend: str) -> None:
    obj = {k: np.full(2, v) for k, v in AWKWARD.items()}
    target = tmp_path / "keys"
    codecs_ser.dump(obj, target, backend=backend)
    with codecs_ser.open(target) as c:
        names = list(c.entries)
        members = [b.member for e in c.entries.values() for b in e.blobs]
    assert len(names) == len(AWKWARD)
    assert len({n.casefold() for n in names}) == len(names)
    for name in names:
        _check_safe(name)
    for member in members:
        _check_safe(member)
    back = codecs_ser.load(target)
    assert list(back) == list(AWKWARD)
    for k, v in AWKWARD.items():
        assert_same_tree(np.full(2, v), back[k])
    if backend == "dir":
        files = []
        for folder, _, found in os.walk(target):
            rel = os.path.relpath(folder, target)
            files += [f if rel == "." else f"{rel}/{f}" for f in found]
        assert set(members) <= set(files)
        assert all(not f.startswith("..") for f in files)
    if backend == "tar":
        out = tmp_path / "out"
        with tarfile.open(target) as tf:
            tf.extractall(out, filter="data")
        for member, v in zip(members, AWKWARD.values(), strict=True):
            assert_same_tree(np.full(2, v), np.load(out / member))


def test_keys_differing_only_by_case_get_distinct_names() -> None:
    obj = {"Weight": np.ones(1), "weight": np.zeros(1), "WEIGHT": np.full(1, 2.0)}
    with codecs_ser.open(codecs_ser.dumps(obj)) as c:
        names = list(c.entries)
    assert len({n.casefold() for n in names}) == 3
    assert names[0] == "Weight"
    back = codecs_ser.loads(codecs_ser.dumps(obj))
    for k, v in obj.items():
        assert_same_tree(v, back[k])


key_text = st.text(alphabet=st.sampled_from("aA./\\%\x00\x01é ~"), max_size=6)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(
        st.one_of(key_text, st.integers(-3, 3), st.none(), st.binary(max_size=2)),
        min_size=1,
        max_size=8,
        unique=True,
    )
)
def test_any_keys_give_safe_unique_member_names(tmp_path: Path, keys: list[Any]) -> None:
    obj = {"group": {k: np.full(1, i) for i, k in enumerate(keys)}}
    target = tmp_path / "k.dir"
    codecs_ser.dump(obj, target, backend="dir", durable=False)
    with codecs_ser.open(target) as c:
        names = list(c.entries)
    assert len({n.casefold() for n in names}) == len(obj["group"])
    for name in names:
        _check_safe(name)
        assert name.startswith("group/")
    back = codecs_ser.load(target)
    for i, k in enumerate(obj["group"]):
        assert_same_tree(np.full(1, i), back["group"][k])


def test_leaves_reached_only_by_the_pickler_are_still_blobs() -> None:
    # a partial's arguments are not walked; the pickler meets the array and stores a blob
    p = functools.partial(np.add, np.arange(3))
    data = codecs_ser.dumps({"p": p})
    names = list(codecs_ser.load_arrays(data))
    assert len(names) == 1
    _check_safe(names[0])
    back = codecs_ser.loads(data, trusted=True)
    assert_same_tree(np.arange(3) + 1, back["p"](1))


def test_strings_with_lone_surrogates_roundtrip() -> None:
    # os.listdir() gives such names for file names that are not valid UTF-8
    name = os.fsdecode(b"caf\xe9.npy")
    obj = {"files": [name, "ok"], name: np.arange(2)}
    back = codecs_ser.loads(codecs_ser.dumps(obj))
    assert back["files"] == [name, "ok"]
    assert_same_tree(np.arange(2), back[name])


def test_containers_with_item_iterators_keep_their_items() -> None:
    """deque and OrderedDict pickle their items through iterators, which can be consumed
    once: the set forces a second, ordered pickling of the same object."""
    import collections

    obj = {
        "d": collections.deque([1, 2, np.arange(3)], maxlen=5),
        "o": collections.OrderedDict(a=np.ones(2), b=2),
        "s": {"x", "y", "z"},
    }
    back = codecs_ser.loads(codecs_ser.dumps(obj))
    assert list(back["d"])[:2] == [1, 2] and back["d"][2].tolist() == [0, 1, 2]
    assert list(back["o"]) == ["a", "b"] and back["s"] == {"x", "y", "z"}
