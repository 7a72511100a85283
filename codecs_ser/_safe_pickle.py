"""Reading pickled skeletons without trusting them.

Two unpicklers, both built on the pure-Python ``pickle._Unpickler`` (its memo is
a dict, so a hostile memo index cannot make it allocate gigabytes, and every
opcode that calls something can be checked here):

* the audit runs the pickle with every global replaced by an inert stub: it
  executes nothing and names every global the pickle would import;
* the restricted loader imports only allowed globals and meters what their
  calls may allocate, so a few bytes of pickle cannot ask ``bytearray`` for a
  terabyte or ``list`` for a range of 10**12 items.

``trusted=True`` skips all of this: the user has said the file may run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from ._limits import get_limits
from ._skeleton import _make_object_array as _MAKE_OBJECT_ARRAY
from .errors import FormatError, UntrustedError, UsageError

#: Globals a pickled skeleton may import without ``trusted``: value types and
#: containers whose construction runs no user code, and the core's own
#: constructors, which check their arguments.
DEFAULT_ALLOWED: frozenset[str] = frozenset(
    {
        "builtins.bool",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.object",
        "builtins.range",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "codecs_ser._skeleton._as_subclass",
        "codecs_ser._skeleton._make_dtype",
        "codecs_ser._skeleton._make_object_array",
        "codecs_ser._skeleton._make_scalar",
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "datetime.date",
        "datetime.datetime",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib.WindowsPath",
        "uuid.UUID",
    }
)

#: Decimal digits an untrusted number may expand to (Python's own int/str limit).
MAX_DIGITS = 4300
#: Types whose construction iterates an argument into a new container.
_CONTAINERS = (list, tuple, set, frozenset, dict, collections.deque)
_HASH_RANDOMIZED = (str, bytes)
_EXPONENT = re.compile(r"[eE]\s*[+-]?([\d_]+)")


#: The pure-Python unpickler (not in the typing stubs, hence Any).
_PyUnpickler: Any = getattr(pickle, "_Unpickler")  # noqa: B009


class _Guarded(_PyUnpickler):
    """The pure-Python unpickler with hash-flooding checks on dicts and sets."""

    dispatch = dict(_PyUnpickler.dispatch)

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        super().__init__(self._stream)
        limits = get_limits()
        self._max_colliding = limits.max_colliding_keys
        self._hashes: dict[int, Counter[int]] = {}
        # Hashing a tuple visits every element, and shared sub-tuples make a tuple of a
        # few bytes expand to 2**60 elements: what keys expand to is charged here.
        self._hash_budget = 8 * len(data) + limits.max_pickle_alloc
        self._sizes: dict[int, tuple[Any, int]] = {}

    def _expanded(self, obj: Any) -> int:
        """How many elements hashing ``obj`` visits (shared sub-tuples counted each time)."""
        if type(obj) is not tuple:
            return 1
        memo = self._sizes
        stack: list[tuple[Any, bool]] = [(obj, False)]
        while stack:
            node, children_done = stack.pop()
            if id(node) in memo:
                continue
            if children_done:
                total = 1
                for child in node:
                    total += memo.get(id(child), (None, 1 << 62))[1] if type(child) is tuple else 1
                memo[id(node)] = (node, min(total, 1 << 62))  # keeps node alive: ids stay unique
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in node if type(c) is tuple and id(c) not in memo)
        return memo[id(obj)][1]

    def _check_keys(self, target: Any, keys: Iterable[Any]) -> None:
        """Refuse keys that pile up on one hash (a quadratic build), counted per target,
        and keys whose hashing would take forever."""
        counts = None
        for key in keys:
            if type(key) in _HASH_RANDOMIZED:
                continue
            if counts is None:
                counts = self._hashes.setdefault(id(target), Counter())
            self._hash_budget -= self._expanded(key)
            if self._hash_budget < 0:
                raise FormatError(
                    "the pickle's dict keys or set items would take too long to hash (shared "
                    "tuples expanding to billions of elements); if you trust this file, raise "
                    "codecs_ser.limits(max_pickle_alloc=...)"
                )
            try:
                h = hash(key)
            except TypeError:
                continue  # unhashable: inserting it fails on its own
            counts[h] += 1
            if counts[h] > self._max_colliding:
                raise FormatError(
                    f"more than {self._max_colliding} keys share one hash (hash flooding); "
                    "if you trust this file, raise codecs_ser.limits(max_colliding_keys=...)"
                )

    def load_setitem(self) -> None:
        self._check_keys(self.stack[-3], (self.stack[-2],))
        super().load_setitem()

    def load_setitems(self) -> None:
        mark = self.metastack[-1] if self.metastack else []
        self._check_keys(mark[-1] if mark else None, self.stack[0::2])
        super().load_setitems()

    def load_additems(self) -> None:
        mark = self.metastack[-1] if self.metastack else []
        self._check_keys(mark[-1] if mark else None, self.stack)
        super().load_additems()

    def load_frozenset(self) -> None:
        self._check_keys(object(), self.stack)
        super().load_frozenset()

    def load_frame(self) -> None:
        # The standard unpickler accepts a frame that claims more bytes than remain.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > len(self._stream.getbuffer()) - self._stream.tell():
            raise FormatError("pickle frame claims more bytes than the pickle holds")
        self._unframer.load_frame(size)

    def _extension(self, code: int) -> None:
        # The standard unpickler serves extension codes from a cache filled by
        # earlier (possibly trusted) loads; go through find_class every time.
        import copyreg

        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        if not key:
            raise FormatError(f"pickle uses unregistered extension code {code}")
        self.append(self.find_class(*key))

    def load_ext1(self) -> None:
        self._extension(self.read(1)[0])

    def load_ext2(self) -> None:
        self._extension(int.from_bytes(self.read(2), "little"))

    def load_ext4(self) -> None:
        self._extension(int.from_bytes(self.read(4), "little", signed=True))

    for _op, _name in (
        (pickle.FRAME, "load_frame"),
        (pickle.SETITEM, "load_setitem"),
        (pickle.SETITEMS, "load_setitems"),
        (pickle.ADDITEMS, "load_additems"),
        (pickle.FROZENSET, "load_frozenset"),
        (pickle.EXT1, "load_ext1"),
        (pickle.EXT2, "load_ext2"),
        (pickle.EXT4, "load_ext4"),
    ):
        dispatch[_op[0]] = locals()[_name]
    del _op, _name


# -- the audit -----------------------------------------------------------------


class _StubMeta(type):
    """Calling a stub class, or subscripting it, gives another stub class and runs nothing."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _new_stub()

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


class _StubBase:
    """Stands in for every global during an audit: accepts anything, runs nothing.

    Whatever a pickle does with a global (call it, use it as a class, set its
    state, append to it) yields another stub, so the dry run reaches every
    global the pickle names.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _new_stub()

    def __setstate__(*args: Any) -> None:
        pass

    def __setitem__(*args: Any) -> None:
        pass

    def append(*args: Any) -> None:
        pass

    def extend(*args: Any) -> None:
        pass

    def add(*args: Any) -> None:
        pass


def _new_stub() -> Any:
    return _StubMeta("_Stub", (_StubBase,), {})


class _AuditUnpickler(_Guarded):
    dispatch = dict(_Guarded.dispatch)

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.found: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.found.add(f"{module}.{name}")
        return _new_stub()

    def persistent_load(self, pid: Any) -> Any:
        return _new_stub()


class _OwnPickleAuditor(pickle.Unpickler):
    """The audit for a pickle this process just wrote: the C unpickler, for speed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.found: set[str] = set()

    find_class = _AuditUnpickler.find_class
    persistent_load = _AuditUnpickler.persistent_load


def scan_globals(data: bytes, *, own: bool = False) -> list[str]:
    """Every global a pickle would import, found by a dry run that executes nothing.

    ``own``: the pickle was just written by this process, so it needs no guards.
    """
    auditor = _OwnPickleAuditor(data) if own else _AuditUnpickler(data)
    try:
        auditor.load()
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(f"pickled skeleton is malformed: {type(e).__name__}: {e}") from None
    return sorted(auditor.found)


# -- trust ---------------------------------------------------------------------


def _allowed(full: str, trusted: Iterable[str]) -> bool:
    if full in DEFAULT_ALLOWED:
        return True
    for pattern in trusted:
        if pattern == full:
            return True
        if pattern.endswith(".*") and full.startswith(pattern[:-1]):
            return True
    return False


def normalize_trusted(trusted: Any) -> tuple[bool, tuple[str, ...]]:
    """``trusted`` as (everything allowed?, extra names); accepts 'mod.Name' and 'mod:Name'."""
    if trusted is True:
        return True, ()
    if trusted is False or trusted is None:
        return False, ()
    if isinstance(trusted, str):
        trusted = [trusted]
    if not isinstance(trusted, (list, tuple, set, frozenset)):
        raise UsageError("trusted must be True, False, or a list of 'module.Name' strings")
    names = []
    for item in trusted:
        if not isinstance(item, str) or not item:
            raise UsageError("trusted must be True, False, or a list of 'module.Name' strings")
        names.append(item.replace(":", "."))
    return False, tuple(names)


def disallowed_globals(found: Iterable[str], trusted: Iterable[str]) -> list[str]:
    trusted = tuple(trusted)
    return sorted(g for g in found if not _allowed(g, trusted))


# -- the restricted loader ---------------------------------------------------------


def _built_size(value: Any) -> int:
    """Roughly the bytes a container built by iterating ``value`` takes: a pointer per
    item, plus a new object per item where iterating creates them (str, range)."""
    try:
        n = len(value)
    except (TypeError, OverflowError):
        return 1 << 62 if isinstance(value, range) else 0
    if isinstance(value, str):
        return 80 * n
    if isinstance(value, range):
        return 40 * n
    return 8 * n


def _keys_of(func: type, source: Any) -> list[Any]:
    """What ``func(source)`` would hash: the items, or for a dict the first of each pair."""
    if isinstance(source, dict):
        return list(source)
    if not isinstance(source, (list, tuple, set, frozenset, collections.deque)):
        return []  # str, bytes, range: their items are hashed fast
    if issubclass(func, dict) and not issubclass(func, collections.Counter):
        return [k[0] for k in source if isinstance(k, (tuple, list)) and k]
    return list(source)


def _as_count(value: Any) -> int | None:
    """An int argument (bool aside), which ``bytes(n)`` and friends treat as a size."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def _check_number(func: Any, args: tuple[Any, ...]) -> None:
    """Refuse numbers whose conversion would take quadratic time or huge memory:
    int(Decimal('1e999999999')), Fraction('1e999999999'), gcd of megabyte ints."""
    for a in args:
        if isinstance(a, Decimal):
            if a.is_finite() and abs(a.adjusted()) > MAX_DIGITS:
                raise FormatError(
                    f"the pickle converts a number with an exponent beyond {MAX_DIGITS}"
                )
        elif isinstance(a, str) and func is Fraction:
            found = _EXPONENT.search(a)
            digits = found.group(1).replace("_", "").lstrip("0") if found else ""
            if len(digits) > len(str(MAX_DIGITS)) or int(digits or 0) > MAX_DIGITS:
                raise FormatError(
                    f"the pickle converts a number with an exponent beyond {MAX_DIGITS}"
                )
        elif type(a) is int and a.bit_length() > 4 * MAX_DIGITS:
            raise FormatError(f"the pickle passes an integer of more than {MAX_DIGITS} digits")


class _RestrictedUnpickler(_Guarded):
    """Imports only allowed globals; meters and checks every call the pickle makes."""

    dispatch = dict(_Guarded.dispatch)

    def __init__(
        self,
        data: bytes,
        resolve_leaf: Callable[[int], Any],
        trusted: tuple[str, ...],
        source: str | None,
    ) -> None:
        super().__init__(data)
        self._resolve_leaf = resolve_leaf
        self._trusted = trusted
        self._source = source
        # What the pickle's own bytes build is already bounded by its size; this
        # budget is for what calls build from them (a list of a range, bytes(n)).
        self._budget = 8 * len(data) + get_limits().max_pickle_alloc
        self._numpy_trusted = any(t.startswith("numpy") for t in trusted)

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if not _allowed(full, self._trusted):
            raise UntrustedError([full], path=self._source)
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError) as e:
            raise FormatError(
                f"the object needs {full}, which cannot be imported here ({e}); install the "
                "package that provides it, or read the arrays with codecs_ser.load_arrays()",
                path=self._source,
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not int:
            raise FormatError("pickled skeleton has a bad leaf reference")
        return self._resolve_leaf(pid)

    def _spend(self, cost: int) -> None:
        self._budget -= cost
        if self._budget < 0:
            limit = get_limits().max_pickle_alloc
            raise FormatError(
                f"the pickled object's calls would build more than its own size plus "
                f"max_pickle_alloc={limit} bytes (this call: about {cost}); if you trust this "
                "file, raise codecs_ser.limits(max_pickle_alloc=...)",
                path=self._source,
            )

    def _check_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Before a call the pickle asks for: charge what it builds from its arguments
        against the budget, and refuse numbers that take forever to convert."""
        if func is _MAKE_OBJECT_ARRAY and len(args) >= 3:
            self._spend(_built_size(args[2]))
            return
        if not isinstance(func, type):
            return  # the core's checked constructors, or callables the user trusted
        values = (*args, *kwargs.values())
        cost = 0
        if issubclass(func, (str, np.generic)) and any(
            not isinstance(a, (str, bytes, bytearray, int, float)) for a in values
        ):
            # str() of a container is its repr, which shared sub-lists make exponential.
            raise FormatError(
                f"the pickle converts a container to {func.__name__}: refused, as its text "
                "can be exponentially long"
            )
        if issubclass(func, (bytes, bytearray, str, np.generic)):
            for a in values:
                n = _as_count(a)
                cost += abs(n) if n is not None else _built_size(a)
        elif issubclass(func, _CONTAINERS):
            for a in values:
                cost += _built_size(a)
            if issubclass(func, (set, frozenset, dict)) and args:
                self._check_keys(object(), _keys_of(func, args[0]))
        if issubclass(func, (int, Fraction, Decimal)):
            _check_number(func, args)
        self._spend(cost)

    def load_reduce(self) -> None:
        args = self.stack[-1]
        if type(args) is not tuple:
            raise FormatError("pickled skeleton calls with arguments that are not a tuple")
        self._check_call(self.stack[-2], args, {})
        super().load_reduce()

    def load_newobj(self) -> None:
        args = self.stack[-1]
        if type(args) is not tuple:
            raise FormatError("pickled skeleton calls with arguments that are not a tuple")
        self._check_call(self.stack[-2], args, {})
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        kwargs, args = self.stack[-1], self.stack[-2]
        if type(args) is not tuple or type(kwargs) is not dict:
            raise FormatError("pickled skeleton calls with malformed arguments")
        self._check_call(self.stack[-3], args, kwargs)
        super().load_newobj_ex()

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        self._check_call(klass, tuple(args), {})
        super()._instantiate(klass, args)

    def load_build(self) -> None:
        inst = self.stack[-2]
        if isinstance(inst, (np.ndarray, np.dtype, np.generic)) and not self._numpy_trusted:
            # numpy's __setstate__ trusts its input (a bad object-array state crashes the
            # interpreter, a bad dtype state corrupts memory): only for trusted files.
            raise FormatError(
                f"the pickle sets the internal state of a numpy {type(inst).__name__}; "
                "load it with trusted=True if you trust this file",
                path=self._source,
            )
        super().load_build()

    for _op, _name in (
        (pickle.REDUCE, "load_reduce"),
        (pickle.NEWOBJ, "load_newobj"),
        (pickle.NEWOBJ_EX, "load_newobj_ex"),
        (pickle.BUILD, "load_build"),
    ):
        dispatch[_op[0]] = locals()[_name]
    del _op, _name


def unpickle_skeleton(
    data: bytes,
    resolve_leaf: Callable[[int], Any],
    *,
    trusted: Any = False,
    source: str | None = None,
) -> Any:
    """Unpickle a skeleton, refusing (before running anything) globals that are not allowed."""
    trusted_all, names = normalize_trusted(trusted)
    if trusted_all:
        unpickler: Any = _TrustedUnpickler(data, resolve_leaf)
    else:
        refused = disallowed_globals(scan_globals(data), names)
        if refused:
            raise UntrustedError(refused, path=source)
        unpickler = _RestrictedUnpickler(data, resolve_leaf, names, source)
    try:
        return unpickler.load()
    except (UntrustedError, FormatError):
        raise
    except Exception as e:
        from .errors import CodecsSerError

        if isinstance(e, CodecsSerError):
            raise
        # Keep the cause: with trusted globals it may come from the user's own classes.
        raise FormatError(
            f"the pickled object could not be rebuilt: {type(e).__name__}: {e}", path=source
        ) from e


class _TrustedUnpickler(pickle.Unpickler):
    """The C unpickler, for files the user trusts to run code."""

    def __init__(self, data: bytes, resolve_leaf: Callable[[int], Any]) -> None:
        super().__init__(io.BytesIO(data))
        self._resolve_leaf = resolve_leaf

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not int:
            raise FormatError("pickled skeleton has a bad leaf reference")
        return self._resolve_leaf(pid)
