"""Reading pickled skeletons without trusting them.

Two unpicklers, both built on the pure-Python ``pickle._Unpickler`` (its memo is
a dict, so a hostile memo index cannot make it allocate gigabytes, and every
opcode that calls, hashes or mutates something can be checked here):

* the audit runs the pickle with every global replaced by an inert stub: it
  executes nothing and names every global the pickle would import;
* the restricted loader never hands the pickle an allowed global raw: each one
  is used through the checked constructor of :mod:`._safe_globals`, a ``BUILD``
  may only give state to an object made empty in the same pickle (never to a
  class, a module or a function), dicts, lists and sets may only be filled when
  they are plain ones, and every call and hash is charged to a
  :class:`._pickle_meter.PickleMeter` before it runs.

So loading an untrusted pickle changes nothing outside the objects it returns, and
every object it returns is one its type's public constructor could have built.
``trusted=True`` skips all of this: the user has said the file may run code.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import struct
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from ._pickle_meter import PickleMeter
from ._pickle_ops import decode_escapes
from ._safe_globals import SAFE_GLOBALS, PluginGlobals, SafeGlobal, lookup
from .errors import FormatError, UntrustedError, UsageError

#: Globals a pickled skeleton may use without ``trusted``, each through a checked
#: constructor (``codecs_ser._safe_globals.SAFE_GLOBALS``).
DEFAULT_ALLOWED: frozenset[str] = frozenset(SAFE_GLOBALS)

#: The pure-Python unpickler (not in the typing stubs, hence Any).
_PyUnpickler: Any = getattr(pickle, "_Unpickler")  # noqa: B009


#: Bytes of memory that one item of a dict or set, and an empty set, take.
_ENTRY = 48
_SET = 216
#: Opcodes that build a new object, and about what it takes in memory.
_OBJECT_COSTS = {
    pickle.EMPTY_DICT: 64,
    pickle.EMPTY_LIST: 56,
    pickle.EMPTY_SET: _SET,
    pickle.DICT: 64,
    pickle.LIST: 56,
    pickle.MARK: 64,
    pickle.MEMOIZE: 64,
    pickle.PUT: 64,
    pickle.BINPUT: 64,
    pickle.LONG_BINPUT: 64,
    pickle.DUP: 8,
}


def _charged(handler: Callable[[Any], None], cost: int) -> Callable[[Any], None]:
    """An opcode handler that charges the object it builds to the meter first."""

    def charged(self: Any) -> None:
        self.meter.alloc(cost, "an object")
        handler(self)

    return charged


class _Guarded(_PyUnpickler):
    """The pure-Python unpickler, charging hashes and nesting to a meter."""

    dispatch = dict(_PyUnpickler.dispatch)

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        super().__init__(self._stream)
        self.meter = PickleMeter(len(data))

    def _mapped(self, module: str, name: str) -> tuple[str, str]:
        """The name a protocol 0-2 pickle means (Python 2 names), as pickle maps it."""
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                return _compat_pickle.NAME_MAPPING[(module, name)]
            if module in _compat_pickle.IMPORT_MAPPING:
                return _compat_pickle.IMPORT_MAPPING[module], name
        return module, name

    def _mark_target(self) -> Any:
        mark = self.metastack[-1] if self.metastack else []
        return mark[-1] if mark else None

    def load_setitem(self) -> None:
        self.meter.check_keys(self.stack[-3], (self.stack[-2],))
        self.meter.alloc(_ENTRY, "a dict item")
        super().load_setitem()

    def load_setitems(self) -> None:
        self.meter.check_keys(self._mark_target(), self.stack[0::2])
        self.meter.alloc(_ENTRY * (len(self.stack) // 2), "dict items")
        super().load_setitems()

    def load_additems(self) -> None:
        self.meter.check_keys(self._mark_target(), self.stack)
        self.meter.alloc(_ENTRY * len(self.stack), "set items")
        super().load_additems()

    def load_appends(self) -> None:
        self.meter.alloc(8 * len(self.stack), "list items")
        super().load_appends()

    def load_frozenset(self) -> None:
        self.meter.check_keys(object(), self.stack)
        self.meter.alloc(_SET + _ENTRY * len(self.stack), "a frozenset")
        super().load_frozenset()
        self.meter.new_nested(self.stack[-1])

    def _tuple_made(self) -> None:
        value = self.stack[-1]
        self.meter.alloc(40 + 8 * len(value), "a tuple")
        self.meter.new_nested(value)

    def load_tuple(self) -> None:
        super().load_tuple()
        self._tuple_made()

    def load_tuple1(self) -> None:
        super().load_tuple1()
        self._tuple_made()

    def load_tuple2(self) -> None:
        super().load_tuple2()
        self._tuple_made()

    def load_tuple3(self) -> None:
        super().load_tuple3()
        self._tuple_made()

    def load(self) -> Any:
        value = super().load()
        frame = self._unframer.current_frame
        if (frame is not None and frame.read(1)) or self._stream.read(1):
            # Bytes after STOP are read by no unpickler: a file that hides some there
            # means one thing to a scanner that reads them and another to a loader.
            raise FormatError("the pickled skeleton has bytes after its end (STOP)")
        return value

    def load_frame(self) -> None:
        # The standard unpickler accepts a frame that claims more bytes than remain.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > len(self._stream.getbuffer()) - self._stream.tell():
            raise FormatError("pickle frame claims more bytes than the pickle holds")
        self._unframer.load_frame(size)

    def load_string(self) -> None:
        # As the standard one does, but an escape Python never writes must not warn.
        data = self.readline()[:-1]
        if len(data) < 2 or data[0] != data[-1] or data[0] not in b"\"'":
            raise FormatError("the STRING opcode argument must be quoted")
        self.append(self._decode_string(decode_escapes(data[1:-1])))

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
        (pickle.STRING, "load_string"),
        (pickle.SETITEM, "load_setitem"),
        (pickle.SETITEMS, "load_setitems"),
        (pickle.ADDITEMS, "load_additems"),
        (pickle.APPENDS, "load_appends"),
        (pickle.FROZENSET, "load_frozenset"),
        (pickle.TUPLE, "load_tuple"),
        (pickle.TUPLE1, "load_tuple1"),
        (pickle.TUPLE2, "load_tuple2"),
        (pickle.TUPLE3, "load_tuple3"),
        (pickle.EXT1, "load_ext1"),
        (pickle.EXT2, "load_ext2"),
        (pickle.EXT4, "load_ext4"),
    ):
        dispatch[_op[0]] = locals()[_name]
    del _op, _name
    # Opcodes of a byte or two that build an object of tens or hundreds of bytes.
    for _op, _cost in _OBJECT_COSTS.items():
        dispatch[_op[0]] = _charged(dispatch[_op[0]], _cost)
    del _op, _cost


# -- the audit -----------------------------------------------------------------


class _Stub:
    """Stands in for every global during an audit: accepts anything, runs nothing.

    Whatever a pickle does with a stub (call it, use it as a class for NEWOBJ, set
    its state, append to it) yields another stub, so the dry run reaches every
    global the pickle names.  Each is a distinct object, so keys made of stubs
    hash apart as real objects would.
    """

    __slots__ = ("__weakref__",)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(_Stub)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(_Stub)

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
    return object.__new__(_Stub)


class _StubClassMeta(type):
    """For the C unpickler, which wants a class for NEWOBJ: calls give stub classes."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _new_stub_class()

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


def _new_stub_class() -> Any:
    return _StubClassMeta("_Stub", (_Stub,), {})


class _AuditUnpickler(_Guarded):
    dispatch = dict(_Guarded.dispatch)

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.found: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        module, name = self._mapped(module, name)
        self.found.add(f"{module}.{name}")
        return _new_stub()

    def persistent_load(self, pid: Any) -> Any:
        return _new_stub()


class _OwnPickleAuditor(pickle.Unpickler):
    """The audit for a pickle this process just wrote: the C unpickler, for speed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.found: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.found.add(f"{module}.{name}")
        return _new_stub_class()

    def persistent_load(self, pid: Any) -> Any:
        return _new_stub_class()


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


def _trusted_by(full: str, trusted: Iterable[str]) -> bool:
    """Whether the caller's ``trusted`` names (exact, or ``pkg.*``) cover ``full``."""
    for pattern in trusted:
        if pattern == full:
            return True
        if pattern.endswith(".*") and full.startswith(pattern[:-1]):
            return True
    return False


def _allowed(
    full: str, trusted: Iterable[str], plugin_globals: PluginGlobals | None = None
) -> bool:
    if full in DEFAULT_ALLOWED or _trusted_by(full, trusted):
        return True
    return plugin_globals is not None and plugin_globals(full) is not None


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


def disallowed_globals(
    found: Iterable[str], trusted: Iterable[str], plugin_globals: PluginGlobals | None = None
) -> list[str]:
    trusted = tuple(trusted)
    return sorted(g for g in found if not _allowed(g, trusted, plugin_globals))


def verdicts(
    found: Iterable[str], trusted: Any = False, plugin_globals: PluginGlobals | None = None
) -> dict[str, str]:
    """For each global: "dangerous: <what it can do>", "allowed" (by default or by a
    plugin), "trusted" (by the caller's names) or "not allowed"."""
    from ._danger import describe

    everything, names = normalize_trusted(trusted)
    out = {}
    for g in sorted(found):
        why = describe(g)
        if why is not None:
            out[g] = f"dangerous: {why}"
        elif _allowed(g, (), plugin_globals):
            out[g] = "allowed"
        elif everything or _trusted_by(g, names):
            out[g] = "trusted"
        else:
            out[g] = "not allowed"
    return out


# -- the restricted loader ---------------------------------------------------------

_SETITEM_TARGETS = (dict, collections.OrderedDict, collections.Counter, collections.defaultdict)
_APPEND_TARGETS = (list, collections.deque)
_ADDITEMS_TARGETS = (set,)


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


class _RestrictedUnpickler(_Guarded):
    """Uses allowed globals only through their checked constructors (see module doc)."""

    dispatch = dict(_Guarded.dispatch)

    def __init__(
        self,
        data: bytes,
        resolve_leaf: Callable[[int], Any],
        trusted: tuple[str, ...],
        source: str | None,
        plugin_globals: PluginGlobals | None = None,
    ) -> None:
        super().__init__(data)
        self._resolve_leaf = resolve_leaf
        self._trusted = trusted
        self._source = source
        self._plugin_globals = plugin_globals
        # id -> (global, its SafeGlobal, or None when the caller trusted it by name).
        self._globals: dict[int, tuple[Any, SafeGlobal | None]] = {}
        # id(class) -> (class, how BUILD may give state to its instances).
        self._states: dict[int, tuple[Any, SafeGlobal]] = {}
        self.meter.is_safe_factory = self._is_safe_factory

    def _refuse(self, message: str) -> FormatError:
        return FormatError(
            f"{message}: refused, as the file is damaged or hostile (load it with "
            "trusted=True if you trust it)",
            path=self._source,
        )

    # -- globals ---------------------------------------------------------------------

    def find_class(self, module: str, name: str) -> Any:
        module, name = self._mapped(module, name)
        full = f"{module}.{name}"
        trusted = _trusted_by(full, self._trusted)
        policy = None if trusted else lookup(full, self._plugin_globals)
        if policy is None and not trusted:
            raise UntrustedError([full], path=self._source)
        try:
            obj = super().find_class(module, name)
        except (ImportError, AttributeError) as e:
            raise FormatError(
                f"the object needs {full}, which cannot be imported here ({e}); install the "
                "package that provides it, or read the arrays with codecs_ser.load_arrays()",
                path=self._source,
            ) from None
        self._globals[id(obj)] = (obj, policy)
        if policy is not None and policy.state is not None:
            self._states[id(obj)] = (obj, policy)
        return obj

    def _global(self, obj: Any) -> tuple[bool, SafeGlobal | None]:
        """(is ``obj`` a global this pickle named?, its checked use or None if trusted)."""
        entry = self._globals.get(id(obj))
        if entry is None or entry[0] is not obj:
            return False, None
        return True, entry[1]

    def _trusts_type(self, cls: type) -> bool:
        return bool(self._trusted) and _trusted_by(_qualified(cls), self._trusted)

    def _is_safe_factory(self, value: Any) -> bool:
        named, _policy = self._global(value)
        return named and isinstance(value, type)

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not int:
            raise FormatError("pickled skeleton has a bad leaf reference")
        return self._resolve_leaf(pid)

    # -- calls -------------------------------------------------------------------------

    def _call(self, func: Any, args: Any) -> Any:
        if type(args) is not tuple:
            raise FormatError("pickled skeleton calls with arguments that are not a tuple")
        named, policy = self._global(func)
        if named and policy is None:
            return func(*args)  # the caller trusts this global by name
        if policy is not None:
            if policy.call is None:
                raise self._refuse(
                    f"the pickle calls {_qualified(func)}, which pickling never does"
                )
            return policy.call(func, args, self.meter)
        if self._trusted and not named:
            return func(*args)  # made by a call of a global the caller trusts
        raise self._refuse(f"the pickle calls a {type(func).__name__} that is no allowed global")

    def _new(self, cls: Any, args: Any, kwargs: Any) -> Any:
        if type(args) is not tuple or type(kwargs) is not dict:
            raise FormatError("pickled skeleton calls with malformed arguments")
        named, policy = self._global(cls)
        if named and policy is None:
            return cls.__new__(cls, *args, **kwargs)  # the caller trusts this global by name
        if policy is not None:
            if policy.new is None or kwargs:
                raise self._refuse(f"the pickle makes a {_qualified(cls)} by hand (NEWOBJ)")
            return policy.new(cls, args, self.meter)
        if isinstance(cls, type) and self._trusts_type(cls):
            return cls.__new__(cls, *args, **kwargs)
        raise self._refuse(f"the pickle makes a {type(cls).__name__} that is no allowed class")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, {}))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        named, policy = self._global(klass)
        if named and policy is None:
            super()._instantiate(klass, args)  # the caller trusts this global by name
        elif not args and policy is not None and policy.new is not None:
            self.append(self._new(klass, (), {}))
        else:
            self.append(self._call(klass, tuple(args)))

    # -- state and filling -------------------------------------------------------------

    def _is_class_like(self, obj: Any) -> bool:
        """Classes, modules and the globals themselves: changing them changes the process."""
        return isinstance(obj, (type, ModuleType)) or self._global(obj)[0]

    def load_build(self) -> None:
        inst = self.stack[-2]
        if self._is_class_like(inst):
            raise self._refuse(
                f"the pickle sets attributes of {_qualified(inst)} itself, which would change "
                "it for the whole process"
            )
        cls = type(inst)
        if self._trusts_type(cls):
            super().load_build()
            return
        entry = self._states.get(id(cls))
        if entry is None or entry[0] is not cls or not self.meter.take_pending(inst):
            raise self._refuse(
                f"the pickle sets the internal state of a {_qualified(cls)} (BUILD), which "
                "its pickling never does"
            )
        state = self.stack.pop()
        setter = entry[1].state
        assert setter is not None
        setter(inst, state, self.meter)

    def _check_target(self, target: Any, kinds: tuple[type, ...], what: str) -> None:
        if type(target) in kinds:
            return
        if not self._is_class_like(target) and self._trusts_type(type(target)):
            return
        raise self._refuse(f"the pickle {what} a {_qualified(type(target))}")

    def load_setitem(self) -> None:
        self._check_target(self.stack[-3], _SETITEM_TARGETS, "sets items of")
        super().load_setitem()

    def load_setitems(self) -> None:
        self._check_target(self._mark_target(), _SETITEM_TARGETS, "sets items of")
        super().load_setitems()

    def load_append(self) -> None:
        self._check_target(self.stack[-2], _APPEND_TARGETS, "appends to")
        super().load_append()

    def load_appends(self) -> None:
        self._check_target(self._mark_target(), _APPEND_TARGETS, "appends to")
        super().load_appends()

    def load_additems(self) -> None:
        self._check_target(self._mark_target(), _ADDITEMS_TARGETS, "adds items to")
        super().load_additems()

    def load(self) -> Any:
        value = super().load()
        self.meter.check_all_built()
        return value

    for _op, _name in (
        (pickle.REDUCE, "load_reduce"),
        (pickle.NEWOBJ, "load_newobj"),
        (pickle.NEWOBJ_EX, "load_newobj_ex"),
        (pickle.BUILD, "load_build"),
        (pickle.SETITEM, "load_setitem"),
        (pickle.SETITEMS, "load_setitems"),
        (pickle.APPEND, "load_append"),
        (pickle.APPENDS, "load_appends"),
        (pickle.ADDITEMS, "load_additems"),
    ):
        dispatch[_op[0]] = locals()[_name]
    del _op, _name


def unpickle_skeleton(
    data: bytes,
    resolve_leaf: Callable[[int], Any],
    *,
    trusted: Any = False,
    source: str | None = None,
    plugin_globals: PluginGlobals | None = None,
) -> Any:
    """Unpickle a skeleton, refusing globals that are not allowed, all named at once.

    With only the default globals, nothing that runs has an effect outside the objects
    being built, so the dry run that names every refused global runs only when one is
    met.  When the caller trusts globals by name, their code could have effects: the
    dry run comes first, so nothing runs when any global is refused.  ``plugin_globals``
    gives the checked constructors plugins contribute (``Registry.safe_global``).
    """
    trusted_all, names = normalize_trusted(trusted)
    if trusted_all:
        unpickler: Any = _TrustedUnpickler(data, resolve_leaf)
    else:
        if names:
            _refuse_untrusted(data, names, source, plugin_globals)
        unpickler = _RestrictedUnpickler(data, resolve_leaf, names, source, plugin_globals)
    try:
        return unpickler.load()
    except UntrustedError:
        _refuse_untrusted(data, names, source, plugin_globals)
        raise
    except FormatError:
        raise
    except Exception as e:
        from .errors import CodecsSerError

        if isinstance(e, CodecsSerError):
            raise
        # Keep the cause: with trusted globals it may come from the user's own classes.
        raise FormatError(
            f"the pickled object could not be rebuilt: {type(e).__name__}: {e}", path=source
        ) from e


def _refuse_untrusted(
    data: bytes,
    trusted: tuple[str, ...],
    source: str | None,
    plugin_globals: PluginGlobals | None = None,
) -> None:
    """Raise UntrustedError naming every global of the pickle that is not allowed."""
    refused = disallowed_globals(scan_globals(data), trusted, plugin_globals)
    if refused:
        raise UntrustedError(refused, path=source)


class _TrustedUnpickler(pickle.Unpickler):
    """The C unpickler, for files the user trusts to run code."""

    def __init__(self, data: bytes, resolve_leaf: Callable[[int], Any]) -> None:
        super().__init__(io.BytesIO(data))
        self._resolve_leaf = resolve_leaf

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not int:
            raise FormatError("pickled skeleton has a bad leaf reference")
        return self._resolve_leaf(pid)
