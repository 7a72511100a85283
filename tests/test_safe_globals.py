"""The allowed globals of an untrusted pickle: every value they describe loads, exactly;
anything their own pickling never writes is refused, with the limit to raise."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import pathlib
import pickle
import uuid
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser._safe_globals import SAFE_GLOBALS
from codecs_ser._safe_pickle import DEFAULT_ALLOWED, scan_globals, unpickle_skeleton
from codecs_ser.errors import FormatError


def _values() -> dict[str, Any]:
    tz = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30), "X")
    nested: Any = ()
    for _ in range(500):
        nested = (nested,)
    return {
        "od": collections.OrderedDict([("b", 1), ("a", 2)]),
        "dd": collections.defaultdict(list, {"a": [1]}),
        "dd_none": collections.defaultdict(None, {"a": 1}),
        "counter": collections.Counter("aab"),
        "deque": collections.deque([1, 2, 3], maxlen=2),
        "set": {1, 2, (3, 4)},
        "frozenset": frozenset({3, frozenset({4})}),
        "range": range(1, 10, 3),
        "slice": slice(1, None, -1),
        "bytearray": bytearray(b"x\x00y"),
        "complex": complex(1.5, -2),
        "date": datetime.date(2024, 2, 29),
        "dt": datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=tz),
        "dt_fold": datetime.datetime(2021, 11, 7, 1, 30, fold=1),
        "time": datetime.time(23, 59, 59, 999_999, tzinfo=datetime.timezone.utc, fold=1),
        "td": datetime.timedelta(days=-3, seconds=5, microseconds=7),
        "tz": tz,
        "dec": decimal.Decimal("-1.50E+3"),
        "dec_nan": decimal.Decimal("NaN123"),
        "frac": fractions.Fraction(-(10**40), 3),
        "pure_path": pathlib.PurePosixPath("/a/b"),
        "path": pathlib.PosixPath("runs/exp1.txt"),
        "win_path": pathlib.PureWindowsPath("c:/x/y"),
        "uuid": uuid.UUID(int=(1 << 128) - 1),
        "uuid_safe": uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe),
        "object": object(),
        "types": [int, float, str, bytes, bytearray, dict, list, set, frozenset, tuple, bool],
        "deep_key": {nested: 1},
        "dtype": np.dtype([("a", "<f4"), ("b", "S3")]),
        "scalar": np.float16(1.5),
        "objarr": np.array([1, "a", None], dtype=object),
    }


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is object:
        return True
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.tolist() == b.tolist()
    if isinstance(a, decimal.Decimal) and a.is_nan():
        return str(a) == str(b)
    if isinstance(a, datetime.datetime | datetime.time):
        return a == b and a.fold == b.fold and a.tzinfo == b.tzinfo
    if isinstance(a, collections.deque):
        return list(a) == list(b) and a.maxlen == b.maxlen
    if isinstance(a, collections.defaultdict):
        return a == b and a.default_factory is b.default_factory
    if isinstance(a, uuid.UUID):
        return a == b and a.is_safe == b.is_safe
    return bool(a == b)


def test_every_allowed_value_round_trips_untrusted() -> None:
    values = _values()
    data = codecs_ser.dumps(values)
    back = codecs_ser.loads(data)
    for key, value in values.items():
        assert _same(back[key], value), key


def test_every_allowed_global_is_one_a_dump_uses() -> None:
    """The allowlist holds no global that the writer's own pickles never name."""
    with codecs_ser.open(codecs_ser.dumps(_values())) as c:
        used = set(c.audit())
    core = {n for n in DEFAULT_ALLOWED if n.startswith("codecs_ser.")}
    unused = DEFAULT_ALLOWED - used - core - {"pathlib.WindowsPath"}  # not on this system
    assert not unused
    assert set(SAFE_GLOBALS) == DEFAULT_ALLOWED


def test_python_versions_pickles_load() -> None:
    """Protocols 2-5 of the standard pickler write these the same way."""
    values = {k: v for k, v in _values().items() if k not in ("bytearray", "dtype", "scalar")}
    values.pop("objarr")
    for protocol in (4, 5):
        data = pickle.dumps(values, protocol=protocol)
        back = unpickle_skeleton(data, lambda i: None)
        for key, value in values.items():
            assert _same(back[key], value), (protocol, key)


def _load(body: bytes) -> Any:
    return unpickle_skeleton(b"\x80\x04" + body + b".", lambda i: np.zeros(4, np.uint8))


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_g("collections", "Counter") + b"N}" + _s("x") + b"K\x01s\x86b", id="slots"),
        pytest.param(_g("collections", "Counter") + b"}" + _s("x") + b"K\x01sb", id="dict"),
        pytest.param(_g("builtins", "object") + b"N}" + _s("x") + b"K\x01s\x86b", id="object"),
    ],
)
def test_build_never_changes_a_class(body: bytes) -> None:
    before = dict(vars(collections.Counter))
    with pytest.raises(FormatError, match="whole process"):
        _load(body)
    assert dict(vars(collections.Counter)) == before
    assert not hasattr(object, "x")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_g("builtins", "str") + b"(C\x03abc" + _s("punycode") + b"tR", "builtins.str"),
        (_g("builtins", "bytes") + b"(K\x00QtR", "builtins.bytes"),
        (_g("builtins", "set") + b"(K\x00QtR", "builtins.set"),
        (_g("collections", "defaultdict") + b"(N]tR", "collections.defaultdict"),
        (_g("builtins", "int") + b"(" + _s("1" * 100) + b"tR", "builtins.int"),
        (_g("fractions", "Fraction") + b"(" + _s("1e99") + b"tR", "fractions.Fraction"),
        (_g("decimal", "Decimal") + b"(K\x05tR", "decimal.Decimal"),
        (_g("datetime", "date") + b"(C\x04\x07\xe4\x02\x1ftR", "impossible"),
        (_g("fractions", "Fraction") + b")\x81", "by hand"),
        (_g("uuid", "UUID") + b")\x81", "without its state"),
    ],
)
def test_calls_their_pickling_never_makes_are_refused(body: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        _load(body)


def test_tuples_nested_past_the_limit_are_refused_before_hashing() -> None:
    deep = b"N" + b"\x85" * 1001
    with pytest.raises(FormatError, match="max_tuple_depth"):
        _load(b"}" + deep + b"Ns")
    with pytest.raises(FormatError, match="max_tuple_depth"):
        codecs_ser._safe_pickle.scan_globals(b"\x80\x04(" + deep + b"\x91.")
    with codecs_ser.limits(max_tuple_depth=2000):
        assert len(_load(b"}" + deep + b"Ns")) == 1
    assert scan_globals(b"\x80\x04" + b"N" + b"\x85" * 1000 + b".") == []


def test_work_is_charged_by_what_calls_cost() -> None:
    """Fraction of two large ints, repeated through the memo: refused once the time the
    calls would take passes what the pickle's size pays for, naming the limit."""
    a = pickle.encode_long(3**10_700 + 1)  # type: ignore[attr-defined]
    b = pickle.encode_long(5**7_300 + 2)  # type: ignore[attr-defined]

    def program(calls: int) -> bytes:
        out = _g("fractions", "Fraction") + b"\x94"
        for raw in (a, b):
            out += b"\x8b" + len(raw).to_bytes(4, "little") + raw + b"\x94"
        return out + b"(" + b"h\x00h\x01h\x02\x86R" * calls + b"l"

    assert len(_load(program(3))) == 3
    with pytest.raises(FormatError, match="max_pickle_work"):
        _load(program(2000))
    with codecs_ser.limits(max_pickle_work=1 << 40):
        assert len(_load(program(200))) == 200


def test_frozensets_count_toward_the_nesting_limit() -> None:
    # frozenset({frozenset({... frozenset({None}) ...})}), 1,001 deep
    deep = b"\x80\x04" + b"(" * 1001 + b"N" + b"\x91" * 1001 + b"."
    with pytest.raises(FormatError, match="max_tuple_depth"):
        unpickle_skeleton(deep, lambda i: None)
    with codecs_ser.limits(max_tuple_depth=2000):
        assert type(unpickle_skeleton(deep, lambda i: None)) is frozenset


def test_objects_the_opcodes_build_are_charged() -> None:
    """Two bytes of pickle build a 216-byte set: a million of them pass the budget."""
    sets = b"\x80\x04](" + b"\x8f" * 1_000_000 + b"e."
    with pytest.raises(FormatError, match="max_pickle_alloc"):
        unpickle_skeleton(sets, lambda i: None)
    with codecs_ser.limits(max_pickle_alloc=1 << 30):
        assert len(unpickle_skeleton(sets, lambda i: None)) == 1_000_000


def test_bytes_after_stop_are_refused() -> None:
    with pytest.raises(FormatError, match="after its end"):
        unpickle_skeleton(b"\x80\x04N.cos\nsystem\n.", lambda i: None)
