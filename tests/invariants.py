"""Invariants of an untrusted load, shared by the pickle fuzzer and the hostile-corpus tests.

* :class:`ProcessSnapshot`: a hostile load must leave the process as it found it (no
  allowed class or function patched, no module imported, no registry or interpreter
  setting changed);
* :func:`check_constructible`: whatever it returns is something the public constructors
  of its types could have built (no path whose text disagrees with its parts, no
  ``Fraction(1, 0)``, no 31st of February, no tuple nested a million deep);
* :func:`only_library_errors`: whatever it raises is a ``CodecsSerError``.
"""

from __future__ import annotations

import collections
import copyreg
import datetime
import decimal
import fractions
import functools
import importlib
import math
import pathlib
import sys
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from codecs_ser._safe_pickle import DEFAULT_ALLOWED
from codecs_ser.errors import CodecsSerError

T = TypeVar("T")

#: Nesting of tuples and frozensets (the containers hash() recurses into) a result may have.
MAX_HASHABLE_NESTING = 1000
#: Objects of a result that check_constructible looks at before it stops (bounded time).
MAX_NODES = 200_000
#: Lazily imported submodules that loading legitimately pulls in (numpy's and ours).
LAZY_MODULE_PREFIXES = ("numpy.", "codecs_ser.")


def resolve(name: str) -> Any:
    """The object a 'module.Name' global names, imported the way find_class would."""
    module, _, attr = name.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@functools.cache
def allowed_objects() -> dict[int, str]:
    """id -> name of every object DEFAULT_ALLOWED names (they live as long as the process)."""
    return {id(resolve(name)): name for name in sorted(DEFAULT_ALLOWED)}


@functools.cache
def _watched() -> tuple[tuple[type, ...], tuple[Callable[..., Any], ...]]:
    """The allowed classes with every class in their MROs, and the allowed functions."""
    classes: dict[int, type] = {}
    functions: list[Callable[..., Any]] = []
    for name in sorted(DEFAULT_ALLOWED):
        obj = resolve(name)
        if isinstance(obj, type):
            for klass in (*obj.__mro__, type(obj)):
                classes.setdefault(id(klass), klass)
        else:
            functions.append(obj)
    return tuple(classes.values()), tuple(functions)


def _registries() -> dict[str, dict[Any, Any]]:
    return {
        "copyreg.dispatch_table": copyreg.dispatch_table,
        "copyreg._extension_registry": copyreg._extension_registry,  # type: ignore[attr-defined]
        "copyreg._inverted_registry": copyreg._inverted_registry,  # type: ignore[attr-defined]
        "copyreg._extension_cache": copyreg._extension_cache,  # type: ignore[attr-defined]
    }


def _decimal_settings() -> tuple[Any, ...]:
    c = decimal.getcontext()
    traps = tuple(sorted(k.__name__ for k, on in c.traps.items() if on))
    return (c.prec, c.rounding, c.Emin, c.Emax, c.capitals, c.clamp, traps)


def _function_state(f: Any) -> tuple[Any, ...]:
    d = getattr(f, "__dict__", {})
    return (
        tuple(d),
        tuple(map(id, d.values())),
        id(getattr(f, "__defaults__", None)),
        id(getattr(f, "__kwdefaults__", None)),
        id(getattr(f, "__code__", None)),
    )


class ProcessSnapshot:
    """What a hostile load could change for the whole process, kept to compare fast (about
    40 microseconds): it runs after every fuzz execution."""

    def __init__(self) -> None:
        classes, functions = _watched()
        self._classes = classes
        self._functions = functions
        # Lists compare item by item with an identity shortcut: a replaced value (a new
        # object, not equal to the old one) or a new or removed name shows.
        self._class_keys = [list(vars(c)) for c in classes]
        self._class_values = [list(vars(c).values()) for c in classes]
        self._function_values = [
            (
                tuple(getattr(f, "__dict__", {}).values()),
                getattr(f, "__defaults__", None),
                getattr(f, "__kwdefaults__", None),
                getattr(f, "__code__", None),
            )
            for f in functions
        ]
        self._function_state = [_function_state(f) for f in functions]
        self._modules = set(sys.modules)
        self._registries = {k: dict(v) for k, v in _registries().items()}
        self._registry_ids = {k: tuple(map(id, v.values())) for k, v in self._registries.items()}
        self._recursion = sys.getrecursionlimit()
        self._int_digits = sys.get_int_max_str_digits()
        self._decimal = _decimal_settings()

    @classmethod
    def take(cls) -> ProcessSnapshot:
        return cls()

    def changes(self, *, lazy_modules: tuple[str, ...] = LAZY_MODULE_PREFIXES) -> list[str]:
        """What differs from the snapshot, one line each (empty: nothing)."""
        out: list[str] = []
        for klass, keys, values in zip(
            self._classes, self._class_keys, self._class_values, strict=True
        ):
            d = vars(klass)
            if list(d) != keys or list(d.values()) != values:
                out.append(f"class {_name(klass)} patched: {_dict_diff(keys, values, d)}")
        for f, state in zip(self._functions, self._function_state, strict=True):
            if _function_state(f) != state:
                out.append(f"function {_name(f)} patched (its __dict__, defaults or code)")
        if sys.modules.keys() != self._modules:
            added = sorted(set(sys.modules) - self._modules)
            removed = sorted(self._modules - set(sys.modules))
            added = [m for m in added if not m.startswith(lazy_modules)]
            if added or removed:
                out.append(f"sys.modules changed: imported {added}, removed {removed}")
        for name, table in _registries().items():
            if table.keys() != self._registries[name].keys() or (
                tuple(map(id, table.values())) != self._registry_ids[name]
            ):
                out.append(f"{name} changed")
        if sys.getrecursionlimit() != self._recursion:
            out.append(f"recursion limit changed to {sys.getrecursionlimit()}")
        if sys.get_int_max_str_digits() != self._int_digits:
            out.append(f"int max str digits changed to {sys.get_int_max_str_digits()}")
        if _decimal_settings() != self._decimal:
            out.append(f"decimal context changed: {_decimal_settings()}")
        return out

    def assert_unchanged(self) -> None:
        found = self.changes()
        if found:
            raise AssertionError("the load changed the process: " + "; ".join(found))


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def _dict_diff(keys: list[str], values: list[Any], now: Any) -> str:
    before = dict(zip(keys, values, strict=True))
    added = sorted(str(k) for k in now.keys() - before.keys())
    removed = sorted(str(k) for k in before.keys() - now.keys())
    replaced = sorted(str(k) for k in before.keys() & now.keys() if before[k] is not now[k])
    return f"added {added}, removed {removed}, replaced {replaced}"


# -- what a load returned ----------------------------------------------------------------

_PATHS = (
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.PosixPath,
    pathlib.WindowsPath,
)
_SEQUENCES = (list, tuple, set, frozenset, collections.deque)
_MAPPINGS = (dict, collections.Counter, collections.OrderedDict, collections.defaultdict)
_HASHABLE_NESTS = (tuple, frozenset)
_FLAT = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    range,
    decimal.Decimal,
    object,
)


def _children(obj: Any) -> Iterator[Any]:
    t = type(obj)
    if t in _SEQUENCES:
        yield from obj
    elif t in _MAPPINGS:
        for k, v in obj.items():
            yield k
            yield v
        if t is collections.defaultdict:
            yield obj.default_factory
    elif t is slice:
        yield from (obj.start, obj.stop, obj.step)
    elif t in (datetime.datetime, datetime.time):
        yield obj.tzinfo
    elif t is memoryview:
        yield obj.obj
    elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        yield from obj.ravel().tolist() if obj.dtype == object else ()


def check_constructible(
    obj: Any, *, max_nodes: int = MAX_NODES, max_nesting: int = MAX_HASHABLE_NESTING
) -> None:
    """Assert every object reachable from ``obj`` is one its public constructor could have
    built; walks iteratively, at most ``max_nodes`` objects, and never hashes deep things."""
    found = constructible_problems(obj, max_nodes=max_nodes, max_nesting=max_nesting)
    if found:
        raise AssertionError("the load returned impossible objects: " + "; ".join(found))


def constructible_problems(
    obj: Any, *, max_nodes: int = MAX_NODES, max_nesting: int = MAX_HASHABLE_NESTING
) -> list[str]:
    """What check_constructible would complain about, one line per problem (at most 20)."""
    problems: list[str] = []
    seen: set[int] = set()
    keep: list[Any] = []  # keeps ids of visited objects unique during the walk
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack and len(seen) < max_nodes and len(problems) < 20:
        node, nesting = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        keep.append(node)
        if type(node) in _HASHABLE_NESTS:
            nesting += 1
            if nesting > max_nesting:
                problems.append(f"tuples or frozensets nested more than {max_nesting} deep")
                continue
        try:
            problem = _problem(node)
        except Exception as e:  # a broken object: even looking at it fails
            problem = f"{type(node).__name__}: inspecting it raised {type(e).__name__}: {e}"
        if problem:
            problems.append(problem)
            continue
        # Only unbroken chains of tuples and frozensets recurse when hashed: a list or a
        # dict between them is unhashable, and repr and == guard their own recursion.
        if type(node) not in _HASHABLE_NESTS:
            nesting = 0
        try:
            stack.extend((c, nesting) for c in _children(node) if id(c) not in seen)
        except Exception as e:
            problems.append(f"{type(node).__name__}: iterating it raised {type(e).__name__}")
    return problems


def _problem(o: Any) -> str | None:
    """Why ``o`` (looked at alone) could not have come from its public constructor."""
    t = type(o)
    check = _CHECKS.get(t)
    if check is not None:
        return check(o)
    if t in _FLAT or t in _SEQUENCES or t is slice or t is memoryview:
        return None
    if t in _MAPPINGS:
        attrs = getattr(o, "__dict__", None)
        if attrs:
            return f"{t.__name__} with instance attributes {sorted(map(str, attrs))[:5]}"
        if t is collections.defaultdict and not (
            o.default_factory is None or id(o.default_factory) in allowed_objects()
        ):
            return f"defaultdict whose default_factory is {type(o.default_factory).__name__}"
        return None
    if isinstance(o, (np.ndarray, np.generic, np.dtype)):
        return None
    if isinstance(o, (type, types.FunctionType, types.BuiltinFunctionType)):
        if id(o) in allowed_objects():
            return None
        return f"a reference to {_name(o)}, which is not an allowed global"
    if isinstance(o, types.ModuleType):
        return f"a module object {o.__name__}"
    return f"an object of type {_name(t)}, which no allowed global builds"


def _path(p: Any) -> str | None:
    text, parts = str(p), p.parts
    if type(text) is not str or type(parts) is not tuple:
        return f"{type(p).__name__} whose str or parts are not text"
    rebuilt = type(p)(*parts)
    if str(rebuilt) != text or rebuilt.parts != parts or rebuilt.name != p.name:
        return f"{type(p).__name__} whose str {text[:40]!r} disagrees with its parts {parts[:4]}"
    if (p.drive, p.root) != (rebuilt.drive, rebuilt.root):
        return f"{type(p).__name__} whose drive or root disagrees with its text"
    return None


def _fraction(f: fractions.Fraction) -> str | None:
    n, d = f.numerator, f.denominator
    if type(n) is not int or type(d) is not int:
        return f"Fraction of {type(n).__name__}/{type(d).__name__}"
    if d <= 0 or math.gcd(n, d) != 1:
        return f"Fraction {n}/{d} that is not in lowest terms with a positive denominator"
    return None


def _same(kind: str, made: Any, got: tuple[Any, ...], rebuilt: Callable[[], Any]) -> str | None:
    try:
        again = rebuilt()
    except (ValueError, TypeError, OverflowError) as e:
        return f"{kind} {got} that its constructor refuses ({e})"
    return None if again == made else f"{kind} {got} that its constructor rebuilds differently"


def _date(d: datetime.date) -> str | None:
    got = (d.year, d.month, d.day)
    return _same("date", got, got, lambda: _fields(datetime.date(*got)))


def _datetime(d: datetime.datetime) -> str | None:
    got = _fields(d)
    return _same(
        "datetime",
        got,
        got,
        lambda: _fields(datetime.datetime(*got[:7], tzinfo=d.tzinfo, fold=d.fold)),
    )


def _time(t: datetime.time) -> str | None:
    got = (t.hour, t.minute, t.second, t.microsecond, t.fold)
    return _same(
        "time",
        got,
        got,
        lambda: (lambda r: (r.hour, r.minute, r.second, r.microsecond, r.fold))(
            datetime.time(*got[:4], tzinfo=t.tzinfo, fold=t.fold)
        ),
    )


def _fields(d: Any) -> tuple[Any, ...]:
    if type(d) is datetime.date:
        return (d.year, d.month, d.day)
    return (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.fold)


def _timedelta(td: datetime.timedelta) -> str | None:
    got = (td.days, td.seconds, td.microseconds)
    return _same(
        "timedelta",
        got,
        got,
        lambda: (lambda r: (r.days, r.seconds, r.microseconds))(datetime.timedelta(*got)),
    )


def _timezone(tz: datetime.timezone) -> str | None:
    got = (tz.utcoffset(None), tz.tzname(None))
    return _same(
        "timezone",
        got,
        got,
        lambda: (lambda r: (r.utcoffset(None), r.tzname(None)))(datetime.timezone(*got)),
    )


def _uuid(u: uuid.UUID) -> str | None:
    value = u.int
    if type(value) is not int or not 0 <= value < 1 << 128:
        shown = value.bit_length() if type(value) is int else type(value).__name__
        return f"UUID whose int is outside [0, 2**128) ({shown} bits)"
    if not isinstance(u.is_safe, uuid.SafeUUID):
        return f"UUID whose is_safe is {type(u.is_safe).__name__}"
    return None


def _deque(q: collections.deque[Any]) -> str | None:
    m = q.maxlen
    if m is not None and (type(m) is not int or m < 0 or len(q) > m):
        return f"deque with maxlen {m!r} holding {len(q)} items"
    return None


_CHECKS: dict[type, Callable[[Any], str | None]] = {
    **dict.fromkeys(_PATHS, _path),
    fractions.Fraction: _fraction,
    datetime.date: _date,
    datetime.datetime: _datetime,
    datetime.time: _time,
    datetime.timedelta: _timedelta,
    datetime.timezone: _timezone,
    uuid.UUID: _uuid,
    collections.deque: _deque,
}


def only_library_errors(fn: Callable[[], T]) -> tuple[T | None, CodecsSerError | None]:
    """(result, None), or (None, error) when ``fn`` raised a CodecsSerError; any other
    exception fails (with it as the cause)."""
    try:
        return fn(), None
    except CodecsSerError as e:
        return None, e
    except Exception as e:
        raise AssertionError(
            f"an exception other than CodecsSerError escaped: {type(e).__name__}: {str(e)[:300]}"
        ) from e
