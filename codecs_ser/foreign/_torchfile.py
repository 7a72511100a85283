"""torch.save files (the zip format of torch >= 1.6), read without torch and without unpickling.

``<root>/data.pkl`` is followed by :mod:`._pickle`, which runs nothing; this module
recognises the calls torch writes for tensors (``torch._utils._rebuild_tensor_v2``
and ``_v3``, ``_rebuild_parameter``), ``OrderedDict`` and ``torch.Size``, and the
persistent ids that name storages (``<root>/data/<key>``).  Each storage is read
once; each tensor is a numpy view of its storage with the tensor's shape, strides
and offset, so tensors that shared a storage share memory.  Any other call stays an
inert record whose tensors are still found (and named by the attributes that hold
them).  Tensor kinds without plain strided bytes (sparse, quantized, nested) and the
legacy pre-1.6 format are refused with a FormatError that says so.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from .._limits import exceeded, get_limits
from .._walk import escape_component
from ..errors import FormatError, UsageError
from ._dtypes import as_readable, bits_dtype, known
from ._pickle import Call, Global, PDict, PSet, parse
from ._source import Source, zip_member_array, zip_member_bytes
from ._spec import ForeignArray, ForeignFile

LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

#: Legacy typed storage classes -> dtype names.
STORAGES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}
#: torch's dtype aliases -> the names codecs_ser uses.
ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
    "chalf": "complex32",
}
ITEMSIZE = {"complex32": 4}
REBUILDS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"}
PARAMETERS = {"_rebuild_parameter", "_rebuild_parameter_with_state"}
_MAX_DEPTH = 200
#: How much larger than its storage an expanded (zero-stride) view may be.
MAX_EXPANSION = 1 << 10
MIN_EXPANDED = 64 << 20


def _dtype_name(g: Any) -> str:
    if isinstance(g, Global) and g.module == "torch":
        name = ALIASES.get(g.name, g.name)
        if known(name):
            return name
    raise FormatError(f"tensor dtype {g!s} is not one codecs_ser reads"[:200])


def _itemsize(name: str) -> int:
    return ITEMSIZE.get(name) or bits_dtype(name).itemsize


class Storage:
    """A storage a persistent id names: its key, dtype and size in elements."""

    __slots__ = ("dtype", "key", "location", "numel")

    def __init__(self, key: str, dtype: str, numel: int, location: str) -> None:
        self.key, self.dtype, self.numel, self.location = key, dtype, numel, location


class Tensor:
    """A tensor the pickle rebuilds: a strided view of a storage."""

    __slots__ = (
        "dtype",
        "offset",
        "parameter",
        "requires_grad",
        "shape",
        "state",
        "storage",
        "strides",
    )

    def __init__(
        self, storage: Storage, offset: int, shape: tuple[int, ...], strides: tuple[int, ...],
        dtype: str, requires_grad: bool,
    ) -> None:  # fmt: skip
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides
        self.dtype, self.requires_grad = dtype, requires_grad
        self.parameter = False
        self.state: Any = None


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, Call) and value.func == Global("torch", "Size") and value.args:
        value = value.args[0]
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise FormatError(f"a tensor's {what} is not a tuple of non-negative ints")
    if len(value) > get_limits().max_ndim:
        raise FormatError(exceeded("the number of dimensions", len(value), "max_ndim"))
    return tuple(value)


def _tensor(args: tuple[Any, ...], dtype: str | None) -> Tensor:
    if len(args) < 4:
        raise FormatError("a tensor rebuild has too few arguments")
    storage, offset, size, stride = args[:4]
    if not isinstance(storage, Storage):
        raise FormatError("a tensor rebuild names something other than a storage")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise FormatError("a tensor's storage offset is not a non-negative int")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise FormatError("a tensor's size and stride differ in length")
    name = dtype or storage.dtype
    if dtype is not None and storage.dtype != "uint8" and storage.dtype != dtype:
        raise FormatError("a tensor's dtype differs from its typed storage's")
    # Every element the view reaches must lie inside the storage.
    storage_bytes = storage.numel * _itemsize(storage.dtype)
    item = _itemsize(name)
    if all(shape):
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        if (last + 1) * item > storage_bytes:
            raise FormatError(
                f"a tensor reaches element {last} but its storage holds {storage_bytes // item}"
            )
    # A view with zero strides may be far larger than its storage (an expanded bias);
    # bounded, so that a few bytes of file cannot make convert write terabytes.
    logical = _count(shape) * item
    if logical > max(storage_bytes * MAX_EXPANSION, MIN_EXPANDED):
        raise FormatError(
            f"a tensor of {logical} bytes views a storage of {storage_bytes}: more than "
            f"{MAX_EXPANSION} times its storage, refused"
        )
    requires_grad = bool(args[4]) if len(args) > 4 and isinstance(args[4], bool) else False
    return Tensor(storage, offset, shape, strides, name, requires_grad)


class _TorchFile(ForeignFile):
    description: ClassVar[str] = "torch.save file (zip format)"

    def __init__(self, src: Source) -> None:
        self._src = src
        zf = src.zip()
        if zf is None:
            raise FormatError("not a torch.save zip file")
        self._zf = zf
        root = _root_of(zf)
        if root is None:
            raise FormatError("not a torch.save zip file: no <root>/data.pkl")
        self._root = root
        byteorder = b"little"
        if f"{root}/byteorder" in zf.NameToInfo:
            byteorder = zip_member_bytes(src, zf, zf.NameToInfo[f"{root}/byteorder"], 16).strip()
        if byteorder not in (b"little", b"big"):
            raise FormatError(f"unknown byte order {byteorder[:16]!r}")
        self._order: Literal["<", ">"] = "<" if byteorder == b"little" else ">"
        limit = get_limits().max_skeleton_bytes
        data = zip_member_bytes(src, zf, zf.NameToInfo[f"{root}/data.pkl"], limit)
        self._storages: dict[str, Storage] = {}
        self.value, globals_ = parse(
            data, reduce=self._reduce, persistent=self._persistent, what=f"{root}/data.pkl"
        )
        self._globals = sorted({str(g) for g in globals_})
        self._tensors: dict[str, Tensor] = {}
        self._names: dict[int, str] = {}
        self._collect(self.value, "", 0, set())
        self._buffers: dict[tuple[str, bool], np.ndarray] = {}
        self._info = {
            name: ForeignArray(
                name,
                bits_dtype(t.dtype),
                t.shape + ((2,) if t.dtype == "complex32" else ()),
                _count(t.shape) * _itemsize(t.dtype),
                {
                    "dtype": t.dtype,
                    "member": f"{root}/data/{t.storage.key}",
                    "storage_offset": t.offset,
                    "strides": list(t.strides),
                    "requires_grad": t.requires_grad,
                    "parameter": t.parameter,
                },
            )
            for name, t in self._tensors.items()
        }

    # -- the pickle's calls ------------------------------------------------------

    def _persistent(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise FormatError("a persistent id is not a storage")
        _, kind, key, location, numel = pid
        if not (isinstance(key, str) and isinstance(numel, int) and numel >= 0):
            raise FormatError("a storage's key or size is malformed")
        if not isinstance(kind, Global) or kind.module not in (
            "torch",
            "torch.storage",
            "torch.cuda",
        ):
            raise FormatError(f"storage type {kind!s} is not one codecs_ser reads"[:200])
        dtype = STORAGES.get(kind.name)
        if dtype is None:
            raise FormatError(
                f"storage type {kind!s} (quantized or unknown) is not one codecs_ser reads"
            )
        found = self._storages.get(key)
        if found is not None:
            if found.dtype != dtype or found.numel != numel:
                raise FormatError(f"storage {key!r} is named with two types or sizes")
            return found
        member = self._zf.NameToInfo.get(f"{self._root}/data/{key}")
        if member is None:
            raise FormatError(f"storage {key!r} has no member {self._root}/data/{key}")
        if member.file_size != numel * _itemsize(dtype):
            raise FormatError(
                f"storage {key!r} holds {member.file_size} bytes, not the {numel} "
                f"{dtype} elements its tensors claim"
            )
        storage = self._storages[key] = Storage(key, dtype, numel, str(location))
        return storage

    def _reduce(self, func: Global, args: tuple[Any, ...]) -> Any:
        if func.module == "torch._utils" and func.name in REBUILDS:
            dtype = (
                _dtype_name(args[6])
                if func.name == "_rebuild_tensor_v3" and len(args) > 6
                else None
            )
            return _tensor(args, dtype)
        if func.module == "torch._utils" and func.name in PARAMETERS:
            if not args or not isinstance(args[0], Tensor):
                raise FormatError("a parameter rebuild holds no tensor")
            t: Tensor = args[0]
            t.parameter = True
            t.requires_grad = (
                bool(args[1]) if len(args) > 1 and isinstance(args[1], bool) else False
            )
            return t
        if func.module == "torch._tensor" and func.name == "_rebuild_from_type_v2":
            if len(args) >= 3 and isinstance(args[0], Global) and isinstance(args[2], tuple):
                return self._reduce(args[0], args[2])
            raise FormatError("a tensor subclass rebuild is malformed")
        if func.module == "torch._utils" and func.name.startswith("_rebuild"):
            raise FormatError(
                f"{func!s}: tensors of this kind (sparse, quantized, nested, meta or on a "
                "device without plain bytes) are not read"
            )
        if func == Global("collections", "OrderedDict") and args == ():
            return PDict(func)
        if func == Global("torch", "Size") and len(args) == 1 and isinstance(args[0], tuple):
            return args[0]
        if func == Global("torch", "device") and args and isinstance(args[0], str):
            return ":".join(str(a) for a in args)  # the device's name, "cuda:0"
        return Call(func, args)

    # -- naming ---------------------------------------------------------------------

    def _collect(self, value: Any, path: str, depth: int, seen: set[int]) -> None:
        """Name every tensor by the path that first reaches it (dict keys, indices,
        attributes of recorded objects), as codecs_ser's walk would."""
        if depth > _MAX_DEPTH:
            raise FormatError("the pickle nests too deeply to name its tensors")
        if isinstance(value, Tensor):
            if id(value) not in self._names:
                name = path or "root"
                base, n = name, 0
                while name in self._tensors:
                    n += 1
                    name = f"{base}~{n}"
                self._names[id(value)] = name
                self._tensors[name] = value
            return
        if isinstance(
            value, (str, bytes, bytearray, int, float, bool, type(None), Global, Storage)
        ):
            return
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, PDict):
            for k, v in value.pairs:
                self._collect(v, _join(path, _key(k)), depth + 1, seen)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                self._collect(v, _join(path, str(i)), depth + 1, seen)
        elif isinstance(value, PSet):
            for i, v in enumerate(value.items):
                self._collect(v, _join(path, str(i)), depth + 1, seen)
        elif isinstance(value, Call):
            self._collect(value.state, path, depth + 1, seen)
            for i, item in enumerate(value.items):
                if isinstance(item, tuple) and len(item) == 2:
                    self._collect(item[1], _join(path, _key(item[0])), depth + 1, seen)
                else:
                    self._collect(item, _join(path, str(i)), depth + 1, seen)
            self._collect(value.args, _join(path, "_args"), depth + 1, seen)

    # -- reading ---------------------------------------------------------------------

    @property
    def arrays_info(self) -> Mapping[str, ForeignArray]:
        return self._info

    def globals(self) -> list[str]:
        return self._globals

    def _storage_bytes(self, s: Storage, *, mmap: bool, verify: bool) -> np.ndarray:
        key = (s.key, mmap)
        buf = self._buffers.get(key)
        if buf is None:
            info = self._zf.NameToInfo[f"{self._root}/data/{s.key}"]
            buf = zip_member_array(self._src, self._zf, info, mmap=mmap, verify=verify)
            self._buffers[key] = buf
        return buf

    def _array(self, t: Tensor, *, mmap: bool, verify: bool | None) -> np.ndarray:
        check = (not mmap) if verify is None else verify
        buf = self._storage_bytes(t.storage, mmap=mmap, verify=check)
        item = _itemsize(t.dtype)
        dtype = bits_dtype(t.dtype).newbyteorder(self._order)
        shape, strides = t.shape, tuple(s * item for s in t.strides)
        if t.dtype == "complex32":
            shape, strides = (*shape, 2), (*strides, 2)
        offset = t.offset * item if _count(t.shape) else 0
        arr = np.ndarray(shape, dtype, buffer=buf, offset=offset, strides=strides)
        return as_readable(arr, t.dtype)

    def read(self, name: str, *, mmap: bool = False, verify: bool | None = None) -> np.ndarray:
        return self._array(self._tensors[name], mmap=mmap, verify=verify)

    def structure(self, *, mmap: bool = False, verify: bool | None = None) -> Any:
        arrays = {id(t): self._array(t, mmap=mmap, verify=verify) for t in self._tensors.values()}
        return _plain(self.value, arrays, 0)


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _join(path: str, comp: str) -> str:
    return f"{path}/{comp}" if path else comp


def _key(k: Any) -> str:
    if isinstance(k, (str, int)) and not isinstance(k, bool):
        return escape_component(k)
    return escape_component(repr(k)[:100])


_HASHABLE = (str, bytes, int, float, bool, type(None))


def _plain(value: Any, arrays: dict[int, np.ndarray], depth: int) -> Any:
    """The pickled object as plain data, tensors as numpy; refused where a call would
    have to run to know what it is."""
    if depth > _MAX_DEPTH:
        raise FormatError("the pickle nests too deeply")
    if isinstance(value, Tensor):
        return arrays[id(value)]
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, tuple):
        return tuple(_plain(v, arrays, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, arrays, depth + 1) for v in value]
    if isinstance(value, PDict):
        out: dict[Any, Any] = {}
        for k, v in value.pairs:
            if not isinstance(k, _HASHABLE) or (isinstance(k, int) and abs(k) >= 1 << 60):
                k = repr(k)[:200]
            out[k] = _plain(v, arrays, depth + 1)
        return out
    if isinstance(value, Global):
        return str(value)  # a dtype such as torch.float32: its name
    what = value.func if isinstance(value, Call) else type(value).__name__
    raise UsageError(
        f"the file holds an object of {what!s} that only unpickling (with torch) can rebuild; "
        "its arrays are read by load_arrays()"
    )


def _root_of(zf: zipfile.ZipFile) -> str | None:
    """The archive's one top folder when it holds ``<root>/data.pkl``."""
    names = zf.namelist()
    for name in names[:8] + [n for n in names if n.endswith("/data.pkl")][:1]:
        root, sep, rest = name.partition("/")
        if sep and rest == "data.pkl":
            return root
    return None


class TorchFileReader:
    """torch.save's zip format (detected by a ``<root>/data.pkl`` member); the legacy
    format (a bare pickle stream that starts with torch's magic number) is detected
    in order to refuse it clearly."""

    format_id: ClassVar[str] = "torch"

    def sniff(self, source: Source) -> bool:
        if source.head.startswith(LEGACY_MAGIC):
            return True
        zf = source.zip()
        return zf is not None and _root_of(zf) is not None

    def open(self, source: Source) -> ForeignFile:
        if source.head.startswith(LEGACY_MAGIC):
            raise FormatError(
                "this is a torch.save file in the legacy format of torch < 1.6 (or saved with "
                "_use_new_zipfile_serialization=False), which codecs_ser does not read: load it "
                "with torch and save it again with torch.save, or dump it with codecs_ser"
            )
        return _TorchFile(source)
