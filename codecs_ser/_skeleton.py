"""The skeleton: the object with its array leaves taken out.

Pure data (dict, list, tuple, str, bytes, int, float, bool, None, complex and
leaves) is stored as msgpack and loads with no pickle at all.  Anything else is
pickled with cloudpickle, leaves replaced by persistent ids; loading it goes
through an unpickler that imports only allowed globals.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from ._byvalue import code_by_value, qualified_name
from ._limits import exceeded, get_limits
from ._npy import descr_of, dtype_from_descr
from .errors import CodecsSerError, FormatError, UnpicklableError

# msgpack extension codes of the skeleton (docs/format.md).
EXT_TUPLE = 1
EXT_LEAF = 2
EXT_COMPLEX = 3
EXT_BIGINT = 4

SCALAR_TYPES = frozenset({str, bytes, int, float, bool, type(None), complex})
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1

#: Tuples nested deeper than this inside one another are pickled, not packed:
#: each level of the msgpack extension costs about 40 KiB of C stack to unpack.
MAX_TUPLE_NESTING = 16


# -- msgpack skeleton -------------------------------------------------------


_int_packer = msgpack.Packer()


def pack_msgpack(obj: Any, leaf_ref: Callable[[Any], int | None]) -> bytes:
    """Pack a pure-data tree; ``leaf_ref`` gives the entry index of a leaf."""

    def default(o: Any) -> Any:
        t = type(o)
        if t is tuple:
            return msgpack.ExtType(EXT_TUPLE, packb(list(o)))
        if t is complex:
            return msgpack.ExtType(EXT_COMPLEX, _complex_bytes(o))
        if t is int:
            return msgpack.ExtType(
                EXT_BIGINT, o.to_bytes((o.bit_length() + 8) // 8, "little", signed=True)
            )
        index = leaf_ref(o)
        if index is None:
            raise TypeError(f"not pure data: {t!r}")
        return msgpack.ExtType(EXT_LEAF, _int_packer.pack(index))

    def packb(o: Any) -> bytes:
        return msgpack.packb(o, default=default, strict_types=True, use_bin_type=True)

    return packb(obj)


def _complex_bytes(c: complex) -> bytes:
    import struct

    return struct.pack("<dd", c.real, c.imag)


def unpack_msgpack(data: bytes, resolve_leaf: Callable[[int], Any]) -> Any:
    """Rebuild a msgpack skeleton; ``resolve_leaf`` returns the object of an entry index."""
    import struct

    failures: list[BaseException] = []
    depth = 0
    max_colliding = get_limits().max_colliding_keys

    def ext_hook(code: int, payload: bytes) -> Any:
        nonlocal depth
        if code == EXT_TUPLE:
            if depth >= MAX_TUPLE_NESTING:
                raise FormatError(
                    f"skeleton nests tuples deeper than {MAX_TUPLE_NESTING} (the writer "
                    "pickles such objects): the file is damaged or hostile"
                )
            depth += 1
            try:
                value = unpackb(payload)
            finally:
                depth -= 1
            if not isinstance(value, list):
                raise FormatError("skeleton tuple is not an array")
            return tuple(value)
        if code == EXT_LEAF:
            index = (
                payload[0] if len(payload) == 1 and payload[0] < 0x80 else msgpack.unpackb(payload)
            )
            if type(index) is not int:
                raise FormatError("skeleton leaf reference is not an integer")
            try:
                return resolve_leaf(index)
            except BaseException as e:
                failures.append(e)  # reading the leaf failed: not a msgpack problem
                raise
        if code == EXT_COMPLEX:
            if len(payload) != 16:
                raise FormatError("skeleton complex number has a bad size")
            real, imag = struct.unpack("<dd", payload)
            return complex(real, imag)
        if code == EXT_BIGINT:
            if len(payload) > 1 << 16:
                raise FormatError("skeleton integer is too large")
            return int.from_bytes(payload, "little", signed=True)
        raise FormatError(f"unknown skeleton extension type {code}")

    def pairs_hook(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        if len(pairs) > max_colliding:
            check_hash_spread((k for k, _ in pairs), max_colliding)
        for k, v in pairs:
            if type(k) is _TIMESTAMP or type(v) is _TIMESTAMP:
                raise _timestamp_error()
        return dict(pairs)

    def list_hook(items: list[Any]) -> list[Any]:
        # msgpack decodes extension type -1 itself, past ext_hook; skeletons never hold it.
        for x in items:
            if type(x) is _TIMESTAMP:
                raise _timestamp_error()
        return items

    def unpackb(payload: bytes) -> Any:
        return msgpack.unpackb(
            payload,
            ext_hook=ext_hook,
            object_pairs_hook=pairs_hook,
            list_hook=list_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )

    try:
        value = unpackb(data)
        if type(value) is _TIMESTAMP:
            raise _timestamp_error()
        return value
    except Exception as e:
        if failures:
            raise failures[0] from e.__cause__  # as the leaf's reader raised it
        if isinstance(e, RecursionError):
            raise FormatError("skeleton is nested too deeply") from None
        if _is_user_error(e):
            raise
        raise FormatError(f"skeleton is not valid msgpack: {type(e).__name__}: {e}") from None


_TIMESTAMP = msgpack.Timestamp


def _timestamp_error() -> FormatError:
    return FormatError(
        "skeleton holds a msgpack timestamp (extension type -1), which it never uses"
    )


def check_hash_spread(keys: Any, limit: int) -> None:
    """Refuse a map whose keys pile up on one hash: building it would take quadratic time.

    str and bytes hashes are randomized per process; numbers and tuples of them are not.
    """
    counts: Counter[int] = Counter()
    for key in keys:
        if type(key) is str or type(key) is bytes:
            continue
        try:
            h = hash(key)
        except TypeError:
            continue  # unhashable: building the dict fails on its own
        counts[h] += 1
        if counts[h] > limit:
            raise FormatError(
                f"more than {limit} keys share one hash (hash flooding); if you trust this "
                "file, raise codecs_ser.limits(max_colliding_keys=...)"
            )


def _is_user_error(e: BaseException) -> bool:
    from .errors import CodecsSerError

    return isinstance(e, CodecsSerError)


def fits_msgpack_int(value: int) -> bool:
    return _INT64_MIN <= value <= _UINT64_MAX


# -- pickled skeleton -------------------------------------------------------


def _as_subclass(data: np.ndarray, cls: type, attrs: dict[str, Any] | None = None) -> np.ndarray:
    """Rebuild an ndarray subclass instance around its data (which was stored as a blob)."""
    if (
        type(data) is not np.ndarray
        or not (isinstance(cls, type) and issubclass(cls, np.ndarray))
        or not (attrs is None or type(attrs) is dict)
    ):
        name = getattr(cls, "__qualname__", type(cls).__name__)
        raise FormatError(
            f"the skeleton asks to view an array as {name}, which is not an ndarray subclass"
        )
    out = data.view(cls)
    if attrs:
        out.__dict__.update(attrs)
    return out


def _make_dtype(descr: Any) -> np.dtype:
    """A dtype from its .npy description, checked by the same rules as a blob's."""
    return dtype_from_descr(descr)


def _make_scalar(descr: Any, raw: bytes) -> np.generic:
    """A numpy scalar from its dtype and bytes; the size must match exactly."""
    dtype = dtype_from_descr(descr)
    if type(raw) is not bytes or len(raw) != dtype.itemsize:
        raise FormatError("numpy scalar in the skeleton has the wrong number of bytes")
    return np.frombuffer(raw, dtype)[0]


def _make_object_array(
    shape: list[int], fortran: bool, items: list[Any], descr: Any = None
) -> np.ndarray:
    """An array holding Python objects (dtype object, or records with object fields) from
    its items, which must be exactly as many as its shape holds."""
    if (
        type(shape) is not list
        or len(shape) > 64
        or not all(type(n) is int and n >= 0 for n in shape)
        or type(items) is not list
        or type(fortran) is not bool
    ):
        raise FormatError("object array in the skeleton is malformed")
    count = 1
    for n in shape:
        count *= n
    if count != len(items):
        raise FormatError("object array in the skeleton has the wrong number of items")
    dtype = np.dtype(object) if descr is None else dtype_from_descr(descr, allow_object=True)
    if not dtype.hasobject:
        raise FormatError("object array in the skeleton has a dtype without objects")
    if count * dtype.itemsize > get_limits().max_pickle_alloc:
        raise FormatError(
            exceeded("an object array in the skeleton", count * dtype.itemsize, "max_pickle_alloc")
        )
    out = np.empty(len(items), dtype=dtype)
    for i, item in enumerate(items):
        out[i] = item  # one by one: a slice assignment would unpack nested lists
    return out.reshape(shape, order="F" if fortran else "C")


#: Set items nested deeper than this (tuples in tuples) are not ordered by value.
_MAX_ORDER_DEPTH = 16


def _order_key(item: Any, depth: int = 0) -> tuple[Any, ...] | None:
    """A sort key for a set item that is plain data, the same in every process; else None.

    The key never uses ``hash``: str and bytes hashes change from one process to the
    next (``PYTHONHASHSEED``), and so does the order a set of them iterates in.
    """
    tp = type(item)
    if tp in SCALAR_TYPES:
        return (tp.__name__, repr(item))
    if depth >= _MAX_ORDER_DEPTH or tp not in (tuple, frozenset):
        return None
    keys = []
    for x in item:
        key = _order_key(x, depth + 1)
        if key is None:
            return None
        keys.append(key)
    return (tp.__name__, tuple(keys) if tp is tuple else tuple(sorted(keys)))


def _set_order(o: set[Any] | frozenset[Any]) -> list[Any]:
    """A set's items sorted by value when they are all plain data, else in its own order."""
    keyed = []
    for item in o:
        key = _order_key(item)
        if key is None:
            return list(o)
        keyed.append((key, item))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


def pickle_skeleton(
    obj: Any,
    leaf_ref: Callable[[Any], int | None],
    plain_view: Callable[[np.ndarray], np.ndarray] = lambda a: a.view(np.ndarray),
    reducer_for: Callable[[type], Any] = lambda tp: None,
    on_code: Callable[[Any], None] = lambda obj: None,
    path_of: Callable[[Any], str | None] = lambda obj: None,
    reduced: Callable[[Any], Any] = lambda obj: None,
) -> bytes:
    """Pickle with cloudpickle; leaves become persistent ids (their entry index).

    An ndarray subclass no codec owns is pickled as its class plus a plain view of
    its data, and that view is a leaf: its bytes are a blob, never pickle data.

    The same object gives the same bytes in every process: the C pickler writes a
    set's items in hash order, which for str and bytes changes with the hash seed,
    so a skeleton holding a set of two or more items is pickled again with the
    pure-Python pickler, which writes sets of plain data sorted by value.

    ``reducer_for`` gives a plugin's reduction for a type (see ``CodecSpec.reducers``).
    ``on_code`` is told of each function or class stored as code rather than by name;
    ``path_of`` says where in the object the walk met something, for errors;
    ``reduced`` gives the reductions the walk made (so leaves keep their names).
    """
    import cloudpickle

    plain = SCALAR_TYPES | {list, dict, tuple, set, frozenset}
    sets = [0]
    last: list[Any] = [None]  # the object being pickled when something fails

    def persistent_id(o: Any) -> Any:
        last[0] = o
        tp = type(o)
        if tp in plain:
            if (tp is set or tp is frozenset) and len(o) > 1:
                sets[0] += 1
            return None
        return leaf_ref(o)

    def reduce(o: Any) -> Any:
        if code_by_value(o):
            on_code(o)
        walked = reduced(o)
        if walked is not None:
            return walked
        plugin = reducer_for(type(o))
        if plugin is not None:
            rv = plugin(o)
            if rv is not NotImplemented:
                return rv
        if isinstance(o, np.ndarray):
            if type(o) is not np.ndarray and not o.dtype.hasobject:
                attrs = getattr(o, "__dict__", None) or None
                return (_as_subclass, (plain_view(o), type(o), attrs))
            if type(o) is np.ndarray and o.dtype.hasobject and o.dtype.metadata is None:
                fortran = o.flags.f_contiguous and not o.flags.c_contiguous
                flat = o.ravel(order="F" if fortran else "C")
                if o.dtype.names is None:
                    return (_make_object_array, (list(o.shape), fortran, list(flat)))
                items = [x.item() for x in flat]  # records as tuples of their fields
                descr = descr_of(o.dtype)
                return (_make_object_array, (list(o.shape), fortran, items, descr))
        elif isinstance(o, np.dtype):
            if not o.hasobject and o.metadata is None:
                return (_make_dtype, (descr_of(o),))
        elif (
            isinstance(o, np.generic)
            and type(o).__module__ == "numpy"
            and not o.dtype.hasobject
            and o.dtype.metadata is None
        ):
            return (_make_scalar, (descr_of(o.dtype), o.tobytes()))
        return NotImplemented

    class _Pickler(cloudpickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            return persistent_id(o)

        def reducer_override(self, o: Any) -> Any:
            rv = reduce(o)
            return super().reducer_override(o) if rv is NotImplemented else rv

    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=5).dump(obj)
    except (TypeError, pickle.PicklingError, AttributeError) as e:
        if isinstance(e, CodecsSerError):
            raise
        culprit = last[0]
        raise UnpicklableError(_type_name(culprit), path=path_of(culprit), reason=str(e)) from e
    if not sets[0]:
        return buf.getvalue()
    ordered = io.BytesIO()
    try:
        _OrderedPickler(ordered, persistent_id, reduce).dump(obj)
    except Exception:
        # Too deep for the pure-Python pickler, or a cloudpickle whose internals differ:
        # the first pickle is as valid, with its sets in hash order.
        return buf.getvalue()
    return ordered.getvalue()


#: The pure-Python pickler (not in the typing stubs, hence Any).
_PyPickler: Any = getattr(pickle, "_Pickler")  # noqa: B009


def _cloudpickle_method(name: str) -> Any:
    import cloudpickle

    return cloudpickle.Pickler.__dict__[name]


class _OrderedPickler(_PyPickler):
    """cloudpickle's reductions on the pure-Python pickler, writing sets sorted by value.

    It writes the opcodes the C pickler writes (protocol 5), items of sets in the order
    of ``_set_order``.
    """

    dispatch = dict(_PyPickler.dispatch)

    def __init__(
        self,
        file: io.BytesIO,
        persistent_id: Callable[[Any], Any],
        reduce: Callable[[Any], Any],
    ) -> None:
        import cloudpickle

        super().__init__(file, protocol=5)
        self._pid = persistent_id
        self._reduce = reduce
        self.dispatch_table = cloudpickle.Pickler.dispatch_table
        self.globals_ref: dict[int, Any] = {}
        self.proto = 5
        for name in ("_function_reduce", "_dynamic_function_reduce", "_function_getnewargs"):
            setattr(self, name, _cloudpickle_method(name).__get__(self))
        self._cloudpickle_override = _cloudpickle_method("reducer_override").__get__(self)

    def persistent_id(self, o: Any) -> Any:
        return self._pid(o)

    def reducer_override(self, o: Any) -> Any:
        if type(o) in _PLAIN_TYPES:
            return NotImplemented  # as the C pickler: these never reach reducer_override
        rv = self._reduce(o)
        return self._cloudpickle_override(o) if rv is NotImplemented else rv

    def save_set(self, obj: set[Any]) -> None:
        self.write(pickle.EMPTY_SET)
        self.memoize(obj)
        items = _set_order(obj)
        for i in range(0, len(items), self._BATCHSIZE):
            self.write(pickle.MARK)
            for item in items[i : i + self._BATCHSIZE]:
                self.save(item)
            self.write(pickle.ADDITEMS)

    def save_frozenset(self, obj: frozenset[Any]) -> None:
        self.write(pickle.MARK)
        for item in _set_order(obj):
            self.save(item)
        if id(obj) in self.memo:
            # Reached again through its own items: take it from the memo.
            self.write(pickle.POP_MARK + self.get(self.memo[id(obj)][0]))
            return
        self.write(pickle.FROZENSET)
        self.memoize(obj)

    dispatch[set] = save_set
    dispatch[frozenset] = save_frozenset


_PLAIN_TYPES = frozenset(
    {type(None), bool, int, float, bytes, str, bytearray, dict, set, frozenset, list, tuple}
)


def recursion_headroom() -> int:
    """How deep the walk may go before leaving the rest to the pickler."""
    return max(50, min(400, sys.getrecursionlimit() // 3))


def _type_name(obj: Any) -> str:
    return qualified_name(type(obj))
