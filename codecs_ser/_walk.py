"""Walk an object: find its array leaves, give each a hierarchical name, and decide
whether the rest is pure data (msgpack) or needs pickle.

Names follow the path in the object: dict keys, list and tuple indices,
dataclass and namedtuple fields, instance attributes, joined by "/".  Leaves
the walk cannot name (reached only through a pickled object's state) get
generated names when the pickler meets them.
"""

from __future__ import annotations

import copyreg
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import xxhash

from ._byvalue import by_reference
from ._known import dist_for_type
from ._names import clash_key, escape_component
from ._skeleton import MAX_TUPLE_NESTING, SCALAR_TYPES, fits_msgpack_int, recursion_headroom
from .codec import CodecSpec
from .errors import NoCodecForTypeError
from .registry import Registry

_MAX_NAME = 1000


class Leaf:
    """One array leaf: the object, its codec, and the entry it becomes."""

    __slots__ = ("index", "obj", "path", "spec", "stem")

    def __init__(self, index: int, obj: Any, spec: CodecSpec, path: str, stem: str) -> None:
        self.index = index
        self.obj = obj
        self.spec = spec
        self.path = path
        self.stem = stem


class LeafCollector:
    """Collects the leaves of one object, with names unique in the whole container."""

    def __init__(
        self,
        registry: Registry,
        *,
        prefix: str,
        used_names: set[str],
        first_index: int,
    ) -> None:
        self._registry = registry
        self._prefix = prefix
        self._used = used_names
        self._next_index = first_index
        self._unnamed = 0
        self.leaves: list[Leaf] = []
        self._by_id: dict[int, Leaf] = {}
        self._declined: dict[int, bool] = {}
        self._known_missing: dict[type, str | None] = {}
        self._max_depth = recursion_headroom()
        self._plain_views: dict[int, np.ndarray] = {}
        #: Where the walk met each object it did not store as data (by id): what an
        #: error about that object names.
        self._paths: dict[int, str] = {}
        #: id -> (object, its __reduce_ex__ value) of objects whose saved form was walked.
        self._reduced: dict[int, tuple[Any, Any]] = {}

    # -- naming ------------------------------------------------------------

    def reserve(self, path: str) -> str:
        """A unique stem for ``path``: no file system may take two stems for one file."""
        base = self._prefix + path if path else self._prefix + "root"
        if len(base) > _MAX_NAME:
            base = (
                self._prefix + f"_long/{xxhash.xxh3_64_hexdigest(base.encode('utf-8', 'replace'))}"
            )
        stem, n = base, 0
        key = clash_key(stem)
        while key in self._used:
            n += 1
            stem = f"{base}~{n}"
            key = clash_key(stem)
        self._used.add(key)
        return stem

    def reserve_member(self, stem: str, role: str) -> str:
        """A unique member stem for a secondary blob of an entry."""
        return self.reserve(stem[len(self._prefix) :] + "." + escape_component(role))

    # -- leaves --------------------------------------------------------------

    def leaf_spec(self, obj: Any, path: str) -> CodecSpec | None:
        """The codec spec if ``obj`` is stored as a leaf, else None."""
        tp = type(obj)
        spec = self._registry.spec_for_type(tp)
        if spec is None:
            if tp not in self._known_missing:
                names = [f"{c.__module__}.{c.__qualname__}" for c in tp.__mro__]
                self._known_missing[tp] = dist_for_type(names)
            dist = self._known_missing[tp]
            if dist is not None:
                raise NoCodecForTypeError(
                    f"{tp.__module__}.{tp.__qualname__}", path=path, dist=dist
                )
            return None
        key = id(obj)
        declined = self._declined.get(key)
        if declined is None:
            codec = self._registry.get_codec(spec.codec_id)
            declined = not codec.can_encode(obj)
            self._declined[key] = declined
        return None if declined else spec

    def add(self, obj: Any, spec: CodecSpec, path: str | None) -> Leaf:
        leaf = self._by_id.get(id(obj))
        if leaf is not None:
            return leaf
        if path is None:
            path = self._name_unreached(obj, spec)
        leaf = Leaf(self._next_index, obj, spec, path, self.reserve(path))
        self._next_index += 1
        self.leaves.append(leaf)
        self._by_id[id(obj)] = leaf
        return leaf

    def _name_unreached(self, obj: Any, spec: CodecSpec) -> str:
        """The path of a leaf first met by the pickler: its codec's name for it (made
        unique as ``W``, ``W_2``, ...), else a generated ``_unnamed/N``."""
        codec = self._registry.get_codec(spec.codec_id)
        hint = getattr(codec, "leaf_name", None)
        name = hint(obj) if hint is not None else None
        if isinstance(name, str) and name:
            base = escape_component(name)
            path, n = base, 1
            while clash_key(self._prefix + path) in self._used:
                n += 1
                path = f"{base}_{n}"
            return path
        self._unnamed += 1
        return f"_unnamed/{self._unnamed}"

    def ref(self, obj: Any) -> int | None:
        """Entry index of a leaf, adding it (unnamed) if the walk did not reach it."""
        leaf = self._by_id.get(id(obj))
        if leaf is not None:
            return leaf.index
        if type(obj) in SCALAR_TYPES:
            return None
        spec = self.leaf_spec(obj, "")
        if spec is None:
            return None
        return self.add(obj, spec, None).index

    # -- the walk ------------------------------------------------------------

    def walk(self, obj: Any) -> bool:
        """Name every reachable leaf; True if the whole object is pure data (msgpack-able)."""
        self._seen: set[int] = set()
        self._tuples: dict[tuple[int, int], bool] = {}
        return self._visit(obj, "", 0)

    def _child(self, path: str, key: Any) -> str:
        comp = escape_component(key)
        return f"{path}/{comp}" if path else comp

    def _visit(self, obj: Any, path: str, depth: int, nesting: int = 0) -> bool:
        """``nesting``: how many tuples enclose ``obj`` (msgpack skeletons cap it)."""
        tp = type(obj)
        if tp in SCALAR_TYPES:
            if tp is str:
                return _utf8_ok(obj)
            return tp is not int or fits_msgpack_int(obj) or obj.bit_length() < 1 << 15
        if id(obj) in self._by_id:
            return True
        spec = self.leaf_spec(obj, path)
        if spec is not None:
            self.add(obj, spec, path)
            return True
        if depth > self._max_depth:
            return False
        key = id(obj)
        if tp is tuple:
            # Immutable: sharing a tuple changes nothing, so it stays pure; visit it once
            # per nesting level (deeper copies may pass the cap).
            if nesting >= MAX_TUPLE_NESTING:
                self._visit_object(obj, path, depth)
                return False
            known = self._tuples.get((key, nesting))
            if known is not None:
                return known
            self._tuples[(key, nesting)] = False  # until proven pure; a cycle through it is not
            nesting += 1
        elif key in self._seen:
            return False  # a shared or cyclic dict or list: only pickle keeps identity
        else:
            self._seen.add(key)
        depth += 1
        if tp is dict:
            pure = True
            for k, v in tuple(obj.items()):  # a snapshot: visiting may run code that mutates it
                if (
                    type(k) not in SCALAR_TYPES
                    and not (type(k) is tuple and _pure_key(k, nesting + 1))
                ) or (type(k) is str and not _utf8_ok(k)):
                    pure = False
                pure = self._visit(v, self._child(path, k), depth, nesting) and pure
            return pure
        if tp is list or tp is tuple:
            pure = True
            for i, v in enumerate(obj):
                pure = self._visit(v, self._child(path, i), depth, nesting) and pure
            if tp is tuple:
                self._tuples[(key, nesting - 1)] = pure
            return pure
        if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
            self._visit(self.plain_view(obj), path, depth)  # the data of a subclass: a leaf
        else:
            self._visit_object(obj, path, depth)
        return False

    def _reducer_for(self, tp: type) -> Callable[[Any], Any] | None:
        """The reduction pickling will use for a type ahead of its own: a plugin's, else
        one registered with :mod:`copyreg` (frameworks register compiled functions so)."""
        found = self._registry.reducer_for(tp)
        return found if found is not None else copyreg.dispatch_table.get(tp)

    def path_of(self, obj: Any) -> str | None:
        """Where the walk met ``obj``, if it did."""
        return self._paths.get(id(obj))

    def _visit_reduced(
        self, obj: Any, path: str, depth: int, reducer: Callable[[Any], Any] | None = None
    ) -> bool:
        """Name the leaves in what pickling saves of an object (an extension type's
        arrays live in neither ``__dict__`` nor slots), reduced by ``reducer`` (a plugin's
        or copyreg's) or by ``__reduce_ex__``.  The reduction is kept and the pickler uses
        it: another call could build new arrays, which the names would miss.  False
        when ``reducer`` declines (NotImplemented)."""
        try:
            rv = obj.__reduce_ex__(5) if reducer is None else reducer(obj)
        except Exception:
            return True  # no saved form: pickling reports it, with the path
        if rv is NotImplemented:
            return False
        if not (isinstance(rv, tuple) and any(x is not None for x in rv[3:5])):
            # Kept unless it holds item iterators, which pickling can consume only once.
            self._reduced[id(obj)] = (obj, rv)
        for key, value in _reduced_parts(rv):
            self._visit(value, self._child(path, key), depth)
        return True

    def reduced(self, obj: Any) -> Any:
        """The reduction the walk made of ``obj`` (None if it made none)."""
        found = self._reduced.get(id(obj))
        return found[1] if found is not None and found[0] is obj else None

    def plain_view(self, arr: np.ndarray) -> np.ndarray:
        """One plain ndarray view per subclass instance, so walk and pickler agree on it."""
        view = self._plain_views.get(id(arr))
        if view is None:
            view = self._plain_views[id(arr)] = arr.view(np.ndarray)
        return view

    def _visit_object(self, obj: Any, path: str, depth: int) -> None:
        """Name leaves inside objects that will be pickled; purity is already lost.

        Containers are iterated as snapshots (a collection or a codec check may mutate
        them), and the walk stops where the pickler stores a reference instead of a
        value, so it never wanders into a library's global state.
        """
        self._paths.setdefault(id(obj), path)
        if by_reference(obj) or self._registry.is_opaque(type(obj)):
            return
        if isinstance(obj, dict):
            for k, v in tuple(obj.items()):
                self._visit(v, self._child(path, k), depth)
        elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
            for field, v in zip(obj._fields, obj, strict=False):
                self._visit(v, self._child(path, field), depth)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            if isinstance(obj, (list, tuple)):
                for i, v in enumerate(obj):
                    self._visit(v, self._child(path, i), depth)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for field in dataclasses.fields(obj):
                if hasattr(obj, field.name):
                    self._visit(getattr(obj, field.name), self._child(path, field.name), depth)
        else:
            namer = None if isinstance(obj, type) else self._registry.namer_for(type(obj))
            if namer is not None:
                # The framework's own names first (a module's state_dict keys); what the
                # generic walk below then meets again is already named.
                for keys, value in namer(obj):
                    child = path
                    for key in keys:
                        child = self._child(child, key)
                    self._visit(value, child, depth)
            reducer = None if isinstance(obj, type) else self._reducer_for(type(obj))
            if reducer is not None and self._visit_reduced(obj, path, depth, reducer):
                return  # pickled through that reduction, never through __dict__ or slots
            state = getattr(obj, "__dict__", None)
            slots = _slots_of(type(obj))
            if (
                namer is None
                and not isinstance(obj, _CORE_PICKLED)
                and (_saves_its_own_way(type(obj)) or not (state or slots))
            ):
                # What pickling saves first (an extension type's arrays live in neither
                # __dict__ nor slots), then what __dict__ holds besides.
                self._visit_reduced(obj, path, depth)
            if isinstance(state, dict) and not isinstance(obj, type):
                for k, v in tuple(state.items()):
                    self._visit(v, self._child(path, k), depth)
            for slot in slots:
                try:
                    value = object.__getattribute__(obj, slot)
                except AttributeError:
                    continue
                self._visit(value, self._child(path, slot), depth)


def _saves_its_own_way(tp: type) -> bool:
    """Whether pickling saves something else than an instance's ``__dict__`` and slots."""
    known = _OWN_WAY.get(tp)
    if known is None:
        known = _OWN_WAY[tp] = (
            getattr(tp, "__reduce_ex__", None) is not object.__reduce_ex__
            or getattr(tp, "__reduce__", None) is not object.__reduce__
            or getattr(tp, "__getstate__", None) is not _DEFAULT_GETSTATE
        )
    return known


_OWN_WAY: dict[type, bool] = {}
#: What the skeleton pickler writes its own way (codecs_ser._skeleton), never reduced here.
_CORE_PICKLED = (np.ndarray, np.generic, np.dtype)

_DEFAULT_GETSTATE = getattr(object, "__getstate__", None)


def _reduced_parts(rv: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs of what pickling saves of an object, from its ``__reduce_ex__``
    value: its arguments by index, its state by key."""
    if not isinstance(rv, tuple):
        return []  # a name: pickled by reference, nothing inside is saved
    parts: list[tuple[Any, Any]] = []
    args = rv[1] if len(rv) > 1 else ()
    if isinstance(args, tuple):
        parts.extend(enumerate(args))
    state = rv[2] if len(rv) > 2 else None
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        state, slot_state = state  # (__dict__, slots) as copyreg writes it
        parts.extend(tuple(slot_state.items()))
    if isinstance(state, dict):
        parts.extend(tuple(state.items()))
    elif isinstance(state, (tuple, list)):
        parts.extend(enumerate(state))
    return parts


def _pure_key(key: tuple[Any, ...], nesting: int) -> bool:
    """Whether a tuple dict key packs as msgpack (``nesting``: tuples around it, itself too)."""
    return nesting <= MAX_TUPLE_NESTING and all(
        (type(k) in SCALAR_TYPES and (type(k) is not str or _utf8_ok(k)))
        or (type(k) is tuple and _pure_key(k, nesting + 1))
        for k in key
    )


def _utf8_ok(text: str) -> bool:
    """Whether msgpack can store the string (lone surrogates, from undecodable file
    names, cannot be UTF-8; such objects are pickled instead)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_slot_cache: dict[type, tuple[str, ...]] = {}


def _slots_of(tp: type) -> tuple[str, ...]:
    try:
        return _slot_cache[tp]
    except KeyError:
        pass
    names: list[str] = []
    for cls in tp.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        names.extend(s for s in slots if s not in ("__dict__", "__weakref__"))
    _slot_cache[tp] = tuple(names)
    return _slot_cache[tp]
