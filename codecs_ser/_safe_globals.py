"""The globals an untrusted pickled skeleton may use, each with a checked constructor.

An allowed global is never handed to the pickle raw.  For each one this table says
which of the pickle's three ways of using a global it may take, and checks the
arguments of each exactly as the type's own pickling writes them:

* ``call``: ``REDUCE`` (and protocol 0's ``INST``/``OBJ``), ``global(*args)``;
* ``new``: ``NEWOBJ``, ``global.__new__(global, *args)``;
* ``state``: ``BUILD`` on an object that ``new`` made in the same pickle.

Anything else (a ``BUILD`` on a class, a ``str(b, "punycode")``, a
``Fraction`` whose state is set by hand) is refused.  Every object a call returns is
built by the type's public constructor from checked values, so it is one that
constructor could have built; its cost is charged to the :class:`PickleMeter` first.

A global used only as a value (``defaultdict(list)`` names ``builtins.list``) is
loaded as itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._pickle_meter import PickleMeter
from .errors import FormatError

Args = tuple[Any, ...]
CheckedCall = Callable[[Any, Args, PickleMeter], Any]
CheckedState = Callable[[Any, Any, PickleMeter], None]


@dataclass(frozen=True, slots=True)
class SafeGlobal:
    """How an untrusted pickle may use one allowed global (None: not at all)."""

    call: CheckedCall | None = None
    new: CheckedCall | None = None
    state: CheckedState | None = None


def _name(g: Any) -> str:
    return f"{getattr(g, '__module__', '?')}.{getattr(g, '__qualname__', '?')}"


def refused_args(g: Any, args: Args) -> FormatError:
    """The error for a call whose arguments the global's own pickling never writes."""
    kinds = ", ".join(type(a).__name__ for a in args)
    return FormatError(
        f"the pickle calls {_name(g)}({kinds}), which is not how such an object is "
        "pickled: refused, as the file is damaged or hostile (load it with trusted=True "
        "if you trust it)"
    )


def _ints(args: Args, *, none_ok: bool = False) -> bool:
    return all(type(a) is int or (none_ok and a is None) for a in args)


def _number_steps(*values: int) -> int:
    """Work steps of arithmetic on these ints (gcd and conversions are quadratic)."""
    words = max((v.bit_length() for v in values), default=0) // 64 + 1
    return 2000 + 25 * words * words


# -- builtins ----------------------------------------------------------------------


def _scalar(kinds: tuple[type, ...]) -> CheckedCall:
    """int(), float(x), str(s) ...: no argument, or one value of the listed kinds."""

    def call(g: Any, args: Args, meter: PickleMeter) -> Any:
        if len(args) > 1 or (args and type(args[0]) not in kinds):
            raise refused_args(g, args)
        if args and type(args[0]) is int:
            meter.work(_number_steps(args[0]), f"{g.__name__}() of a large int")
        return g(*args)

    return call


def _bytes_like(g: Any, args: Args, meter: PickleMeter) -> Any:
    if not args:
        return g()
    if len(args) == 1 and type(args[0]) in (bytes, bytearray):
        meter.alloc(len(args[0]), f"{g.__name__}() of bytes")
        return g(args[0])
    if (
        g is bytearray
        and len(args) == 2
        and type(args[0]) is str
        and args[1] in ("latin-1", "latin1")
    ):
        meter.alloc(len(args[0]), "bytearray() of text")
        return bytearray(args[0].encode("latin-1"))
    raise refused_args(g, args)


def _complex(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) > 2 or not all(type(a) in (int, float) for a in args):
        raise refused_args(g, args)
    meter.work(_number_steps(*(a for a in args if type(a) is int)), "complex()")
    return complex(*args)


def _range(g: Any, args: Args, meter: PickleMeter) -> Any:
    if not 1 <= len(args) <= 3 or not _ints(args):
        raise refused_args(g, args)
    return range(*args)


def _slice(g: Any, args: Args, meter: PickleMeter) -> Any:
    if not 1 <= len(args) <= 3 or not _ints(args, none_ok=True):
        raise refused_args(g, args)
    return slice(*args)


def _object(g: Any, args: Args, meter: PickleMeter) -> Any:
    if args:
        raise refused_args(g, args)
    return object()


def _sequence_arg(g: Any, args: Args, meter: PickleMeter, per_item: int) -> Any:
    """The one list or tuple argument of a container call (or none), charged per item."""
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        raise refused_args(g, args)
    items = args[0] if args else ()
    meter.alloc(per_item * len(items), f"{g.__name__}() of {len(items)} items")
    return items


def _list(g: Any, args: Args, meter: PickleMeter) -> Any:
    return list(_sequence_arg(g, args, meter, 8))


def _tuple(g: Any, args: Args, meter: PickleMeter) -> Any:
    value = tuple(_sequence_arg(g, args, meter, 8))
    meter.new_nested(value)
    return value


def _set_of(kind: type) -> CheckedCall:
    def call(g: Any, args: Args, meter: PickleMeter) -> Any:
        items = _sequence_arg(g, args, meter, 32)
        target = object()
        meter.check_keys(target, items)
        return kind(items)

    return call


def _mapping_arg(g: Any, args: Args, meter: PickleMeter) -> dict[Any, Any]:
    """The one dict argument of a mapping call (or none), its keys checked again."""
    if len(args) > 1 or (args and type(args[0]) is not dict):
        raise refused_args(g, args)
    source: dict[Any, Any] = args[0] if args else {}
    meter.alloc(48 * len(source), f"{g.__name__}() of {len(source)} items")
    meter.check_keys(object(), source)
    return source


def _dict(g: Any, args: Args, meter: PickleMeter) -> Any:
    return g(_mapping_arg(g, args, meter))


# -- collections ---------------------------------------------------------------------


def _ordered_dict(g: Any, args: Args, meter: PickleMeter) -> Any:
    if args:  # its items follow through SETITEMS, which are checked
        raise refused_args(g, args)
    return g()


def _defaultdict(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) > 1:  # defaultdict(factory, pairs): pickling never passes the pairs
        raise refused_args(g, args)
    factory = args[0] if args else None
    if factory is not None and not meter.is_safe_factory(factory):
        raise FormatError(
            f"the pickle makes a defaultdict whose default factory is "
            f"{type(factory).__name__} {_name(factory)}, which is not an allowed class"
        )
    return g(factory)


def _deque(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) > 2 or (len(args) == 2 and not (args[1] is None or type(args[1]) is int)):
        raise refused_args(g, args)
    items = _sequence_arg(g, args[:1], meter, 8)
    maxlen = args[1] if len(args) == 2 else None
    if maxlen is not None and maxlen < 0:
        raise refused_args(g, args)
    return g(items, maxlen)


# -- datetime ----------------------------------------------------------------------


def _tzinfo(g: Any, args: Args, tz: Any) -> Any:
    import datetime

    if tz is not None and not isinstance(tz, datetime.tzinfo):
        raise refused_args(g, args)
    return tz


def _fields(g: Any, args: Args, size: int) -> bytes:
    """The packed state of a date, datetime or time (its pickled form)."""
    if not 1 <= len(args) <= 2 or type(args[0]) is not bytes or len(args[0]) != size:
        raise refused_args(g, args)
    return args[0]


def _checked(g: Any, args: Args, build: Callable[[], Any]) -> Any:
    """Build through the public constructor; its refusal is the file's error."""
    try:
        return build()
    except (ValueError, TypeError, OverflowError) as e:
        raise FormatError(f"the pickle builds an impossible {_name(g)}: {e}") from None


def _date(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) == 3 and _ints(args):
        return _checked(g, args, lambda: g(*args))
    raw = _fields(g, args, 4)
    if len(args) != 1:
        raise refused_args(g, args)
    return _checked(g, args, lambda: g(raw[0] << 8 | raw[1], raw[2], raw[3]))


def _datetime(g: Any, args: Args, meter: PickleMeter) -> Any:
    raw = _fields(g, args, 10)
    tz = _tzinfo(g, args, args[1] if len(args) == 2 else None)
    us = raw[7] << 16 | raw[8] << 8 | raw[9]
    return _checked(
        g,
        args,
        lambda: g(
            raw[0] << 8 | raw[1],
            raw[2] & 0x7F,
            raw[3],
            raw[4],
            raw[5],
            raw[6],
            us,
            tz,
            fold=raw[2] >> 7,
        ),
    )


def _time(g: Any, args: Args, meter: PickleMeter) -> Any:
    raw = _fields(g, args, 6)
    tz = _tzinfo(g, args, args[1] if len(args) == 2 else None)
    us = raw[3] << 16 | raw[4] << 8 | raw[5]
    return _checked(g, args, lambda: g(raw[0] & 0x7F, raw[1], raw[2], us, tz, fold=raw[0] >> 7))


def _timedelta(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) > 3 or not _ints(args) or any(a.bit_length() > 64 for a in args):
        raise refused_args(g, args)
    return _checked(g, args, lambda: g(*args))


def _timezone(g: Any, args: Args, meter: PickleMeter) -> Any:
    import datetime

    ok = 1 <= len(args) <= 2 and type(args[0]) is datetime.timedelta
    if not ok or (len(args) == 2 and type(args[1]) is not str):
        raise refused_args(g, args)
    return _checked(g, args, lambda: g(*args))


# -- numbers ---------------------------------------------------------------------------

_FRACTION_TEXT = re.compile(r"-?[0-9]+(/[0-9]+)?", re.ASCII)


def _decimal(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) > 1 or (args and type(args[0]) is not str):
        raise refused_args(g, args)
    if args:
        meter.work(500 + 5 * len(args[0]), "Decimal() of text")
        meter.alloc(len(args[0]), "Decimal() of text")
    return _checked(g, args, lambda: g(*args))


def _fraction(g: Any, args: Args, meter: PickleMeter) -> Any:
    if len(args) == 1 and type(args[0]) is str:
        text = args[0]
        if _FRACTION_TEXT.fullmatch(text) is None:  # no exponents: 1e999999999 is 10**999999999
            raise refused_args(g, args)
        meter.work(2000 + len(text) * len(text) // 2, "Fraction() of text")
    elif len(args) <= 2 and _ints(args):
        meter.work(_number_steps(*args), "Fraction() of large ints")
    else:
        raise refused_args(g, args)
    return _checked(g, args, lambda: g(*args))


# -- pathlib and uuid --------------------------------------------------------------------


def _path(g: Any, args: Args, meter: PickleMeter) -> Any:
    if not all(type(a) is str for a in args):
        raise refused_args(g, args)
    size = sum(len(a) for a in args) + len(args)
    meter.work(200 + 20 * size, f"{g.__name__}()")
    meter.alloc(4 * size, f"{g.__name__}()")
    return _checked(g, args, lambda: g(*args))


def _uuid_new(g: Any, args: Args, meter: PickleMeter) -> Any:
    if args:
        raise refused_args(g, args)
    inst = object.__new__(g)
    meter.expect_state(inst)
    return inst


def _uuid_state(inst: Any, state: Any, meter: PickleMeter) -> None:
    import uuid

    ok = type(state) is dict and "int" in state and set(state) <= {"int", "is_safe"}
    if ok:
        value, safe = state["int"], state.get("is_safe")
        ok = type(value) is int and 0 <= value < 1 << 128 and safe in (0, -1, None)
    if not ok:
        raise FormatError("the pickle gives a UUID a state that no UUID has")
    uuid.UUID.__setstate__(inst, dict(state))  # type: ignore[attr-defined]


# -- the core's own constructors -------------------------------------------------------


def _core(function: str) -> CheckedCall:
    """One of codecs_ser._skeleton's checked constructors, charged for what it builds."""

    def call(g: Any, args: Args, meter: PickleMeter) -> Any:
        if function == "_make_object_array" and len(args) >= 3 and type(args[2]) is list:
            meter.alloc(8 * len(args[2]), "an object array")
        meter.work(2000, function)
        return g(*args)

    return call


_CONTAINER_CALLS: dict[str, CheckedCall] = {
    "builtins.bool": _scalar((bool, int)),
    "builtins.bytearray": _bytes_like,
    "builtins.bytes": _bytes_like,
    "builtins.complex": _complex,
    "builtins.dict": _dict,
    "builtins.float": _scalar((float, int)),
    "builtins.frozenset": _set_of(frozenset),
    "builtins.int": _scalar((int,)),
    "builtins.list": _list,
    "builtins.range": _range,
    "builtins.set": _set_of(set),
    "builtins.slice": _slice,
    "builtins.str": _scalar((str,)),
    "builtins.tuple": _tuple,
    "collections.Counter": _dict,
    "collections.OrderedDict": _ordered_dict,
    "collections.defaultdict": _defaultdict,
    "collections.deque": _deque,
    "datetime.date": _date,
    "datetime.datetime": _datetime,
    "datetime.time": _time,
    "datetime.timedelta": _timedelta,
    "datetime.timezone": _timezone,
    "decimal.Decimal": _decimal,
    "fractions.Fraction": _fraction,
    "pathlib.PosixPath": _path,
    "pathlib.PurePosixPath": _path,
    "pathlib.PureWindowsPath": _path,
    "pathlib.WindowsPath": _path,
}


def _table() -> dict[str, SafeGlobal]:
    table = {name: SafeGlobal(call=call) for name, call in _CONTAINER_CALLS.items()}
    table["builtins.object"] = SafeGlobal(call=_object, new=_object)
    table["uuid.UUID"] = SafeGlobal(new=_uuid_new, state=_uuid_state)
    for function in ("_as_subclass", "_make_dtype", "_make_object_array", "_make_scalar"):
        table[f"codecs_ser._skeleton.{function}"] = SafeGlobal(call=_core(function))
    return dict(sorted(table.items()))


#: "module.Name" -> how an untrusted pickle may use that global.
SAFE_GLOBALS: Mapping[str, SafeGlobal] = MappingProxyType(_table())


# -- plugins -------------------------------------------------------------------------

#: A registry's lookup of the checked constructors plugins contribute
#: (``CodecSpec.safe_globals``): "module.Name" -> SafeGlobal, or None.
PluginGlobals = Callable[[str], "SafeGlobal | None"]


def lookup(full: str, plugin_globals: PluginGlobals | None) -> SafeGlobal | None:
    """How an untrusted pickle may use ``full``: the core's own rule, else a plugin's."""
    found = SAFE_GLOBALS.get(full)
    if found is None and plugin_globals is not None:
        found = plugin_globals(full)
    return found
