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
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import numpy as np

from .errors import FormatError, UntrustedError, UsageError

# msgpack extension codes of the skeleton (docs/format.md).
EXT_TUPLE = 1
EXT_LEAF = 2
EXT_COMPLEX = 3
EXT_BIGINT = 4

SCALAR_TYPES = frozenset({str, bytes, int, float, bool, type(None), complex})
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1

#: Globals a pickled skeleton may import without ``trusted``: containers and
#: value types whose construction runs no user code.
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
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "copyreg._reconstructor",
        "datetime.date",
        "datetime.datetime",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.dtype",
        "numpy.ndarray",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib.WindowsPath",
        "uuid.UUID",
    }
)


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

    def ext_hook(code: int, payload: bytes) -> Any:
        if code == EXT_TUPLE:
            value = unpackb(payload)
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

    def unpackb(payload: bytes) -> Any:
        return msgpack.unpackb(
            payload,
            ext_hook=ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )

    try:
        return unpackb(data)
    except Exception as e:
        if failures:
            raise failures[0] from e.__cause__  # as the leaf's reader raised it
        if isinstance(e, RecursionError):
            raise FormatError("skeleton is nested too deeply") from None
        if _is_user_error(e):
            raise
        raise FormatError(f"skeleton is not valid msgpack: {type(e).__name__}: {e}") from None


def _is_user_error(e: BaseException) -> bool:
    from .errors import CodecsSerError

    return isinstance(e, CodecsSerError)


def fits_msgpack_int(value: int) -> bool:
    return _INT64_MIN <= value <= _UINT64_MAX


# -- pickled skeleton -------------------------------------------------------


def _as_subclass(data: np.ndarray, cls: type, attrs: dict[str, Any] | None = None) -> np.ndarray:
    """Rebuild an ndarray subclass instance around its data (which was stored as a blob)."""
    if not (isinstance(cls, type) and issubclass(cls, np.ndarray)) or not (
        attrs is None or isinstance(attrs, dict)
    ):
        raise FormatError(f"{cls!r} is not an ndarray subclass")
    out = data.view(cls)
    if attrs:
        out.__dict__.update(attrs)
    return out


def pickle_skeleton(
    obj: Any,
    leaf_ref: Callable[[Any], int | None],
    plain_view: Callable[[np.ndarray], np.ndarray] = lambda a: a.view(np.ndarray),
) -> bytes:
    """Pickle with cloudpickle; leaves become persistent ids (their entry index).

    An ndarray subclass no codec owns is pickled as its class plus a plain view of
    its data, and that view is a leaf: its bytes are a blob, never pickle data.
    """
    import cloudpickle

    plain = SCALAR_TYPES | {list, dict, tuple, set, frozenset}

    class _Pickler(cloudpickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            if type(o) in plain:
                return None
            return leaf_ref(o)

        def reducer_override(self, o: Any) -> Any:
            if isinstance(o, np.ndarray) and type(o) is not np.ndarray and not o.dtype.hasobject:
                attrs = getattr(o, "__dict__", None) or None
                return (_as_subclass, (plain_view(o), type(o), attrs))
            return super().reducer_override(o)

    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


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


class _AuditUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.found: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.found.add(f"{module}.{name}")
        return _new_stub()

    def persistent_load(self, pid: Any) -> Any:
        return _new_stub()


def scan_globals(data: bytes) -> list[str]:
    """Every global a pickle would import, found by a dry run that executes nothing."""
    auditor = _AuditUnpickler(data)
    try:
        auditor.load()
    except Exception as e:
        raise FormatError(f"pickled skeleton is malformed: {type(e).__name__}: {e}") from None
    return sorted(auditor.found)


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


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        data: bytes,
        resolve_leaf: Callable[[int], Any],
        trusted_all: bool,
        trusted: tuple[str, ...],
        source: str | None,
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._resolve_leaf = resolve_leaf
        self._trusted_all = trusted_all
        self._trusted = trusted
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if not self._trusted_all and not _allowed(full, self._trusted):
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


def unpickle_skeleton(
    data: bytes,
    resolve_leaf: Callable[[int], Any],
    *,
    trusted: Any = False,
    source: str | None = None,
) -> Any:
    """Unpickle a skeleton, refusing (before running anything) globals that are not allowed."""
    trusted_all, names = normalize_trusted(trusted)
    if not trusted_all:
        refused = disallowed_globals(scan_globals(data), names)
        if refused:
            raise UntrustedError(refused, path=source)
    unpickler = _RestrictedUnpickler(data, resolve_leaf, trusted_all, names, source)
    try:
        return unpickler.load()
    except (UntrustedError, FormatError):
        raise
    except Exception as e:
        if _is_user_error(e):
            raise
        # Keep the cause: with trusted globals it may come from the user's own classes.
        raise FormatError(
            f"the pickled object could not be rebuilt: {type(e).__name__}: {e}", path=source
        ) from e


def recursion_headroom() -> int:
    """How deep the walk may go before leaving the rest to the pickler."""
    return max(50, min(400, sys.getrecursionlimit() // 3))
