"""The codec contract: how one kind of leaf becomes .npy blobs plus metadata.

A plugin's entry point names a :class:`CodecSpec` made of strings only, so that
reading the entry points imports nothing heavy; the class named by
``CodecSpec.impl`` is imported the first time a leaf or a file needs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, final, runtime_checkable

import numpy as np

__all__ = [
    "BufferView",
    "Codec",
    "CodecBase",
    "CodecSpec",
    "DecodeContext",
    "Encoded",
    "writable_view",
]


@final
@dataclass(frozen=True, slots=True)
class CodecSpec:
    """Declarative description of a codec, cheap to import.

    ``codec_id`` is written to every manifest entry and must never change.
    ``impl`` is an import string ``"package.module:ClassName"``.  ``handles`` are
    qualified type names (``"torch.Tensor"``), matched exactly, or along the MRO
    when ``subclasses`` is true.  ``dist`` is the distribution to install when
    the codec is missing.

    The optional hooks are pairs of strings, ``(name, "package.module:Object")``,
    imported only when the name is met:

    * ``safe_globals``: a pickle global (``"torch.Size"``) and the
      :class:`codecs_ser.safe_globals.SafeGlobal` (a checked constructor) through
      which an untrusted pickled skeleton may use it;
    * ``namers``: a container type (matched along the MRO) and a function
      ``obj -> iterable of (tuple of keys, child)`` naming the leaves inside it;
    * ``reducers``: a type (matched exactly) and a function ``obj -> reduce tuple or
      NotImplemented`` the skeleton pickler asks before its own reductions; the walk
      names the leaves in what it returns.

    ``opaque`` lists qualified type names (matched along the MRO) the walk does not
    enter: compiled functions, whose insides are graphs and caches rather than the
    user's data.  Leaves the pickler then meets inside them are named by their
    codec's ``leaf_name`` (see :class:`CodecBase`).
    """

    codec_id: str
    impl: str
    handles: tuple[str, ...] = ()
    subclasses: bool = False
    requires: tuple[str, ...] = ()
    dist: str | None = None
    safe_globals: tuple[tuple[str, str], ...] = ()
    namers: tuple[tuple[str, str], ...] = ()
    reducers: tuple[tuple[str, str], ...] = ()
    opaque: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class BufferView:
    """An array of a leaf as a window on a byte buffer that other leaves may share.

    A codec returns one in ``Encoded.arrays`` where a framework lets several
    leaves view one piece of memory (a torch storage): the core stores each
    shared buffer's bytes once and, on load, gives every leaf's decoder the same
    buffer, so the sharing comes back.  ``key`` names the buffer during one dump
    (equal keys: the same memory); ``buffer`` is all of it as a 1-d uint8 host
    array; ``offset`` and ``strides`` are in bytes.  On decode, ``key`` is the
    buffer's id in the file and ``buffer`` the one array every sharer gets.
    """

    key: Hashable
    buffer: np.ndarray
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype

    def array(self) -> np.ndarray:
        """The leaf's array: a view of the buffer, no copy."""
        if self.dtype.itemsize == 0 or 0 in self.shape:
            return np.empty(self.shape, self.dtype)
        return np.ndarray(
            self.shape, self.dtype, buffer=self.buffer, offset=self.offset, strides=self.strides
        )


@final
@dataclass(frozen=True, slots=True)
class Encoded:
    """What a codec makes of one leaf.

    ``arrays`` maps a role name to a host numpy array, or to a :class:`BufferView`
    when the array lives in a buffer other leaves may share; each becomes one
    standard .npy blob.  The first role is the primary one (its blob is named
    after the leaf).  ``meta`` must be msgpack-safe (str keys; str, bytes, int,
    float, bool, None, lists and dicts of those).  ``device`` is recorded in the
    manifest for people and tools (``"cpu"``, ``"cuda:0"``); it never selects the
    codec.  On decode, ``arrays`` holds numpy arrays only, and ``buffers`` the
    :class:`BufferView` of each role that was stored in a shared buffer.
    """

    arrays: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None
    buffers: Mapping[str, BufferView] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class DecodeContext:
    """Options of one load, passed to ``Codec.decode``.

    ``codec_version`` is the version of the codec that wrote the entry, so a
    newer codec can read older entries.  ``mmap`` says the arrays are read-only
    views of the file.  ``map_location`` is the user's placement wish, as
    ``torch.load`` takes it; codecs ask :meth:`device_for` rather than parse it.
    ``shared`` lives for one load: codecs keep there what they build from a
    shared buffer (keyed by the buffer's id), so its sharers share that too.
    """

    codec_version: int
    mmap: bool = False
    map_location: Any = None
    entry: str = ""
    shared: dict[Any, Any] = field(default_factory=dict)

    def device_for(self, saved: str | None) -> str | None:
        """Where a leaf saved on ``saved`` goes (see :func:`codecs_ser.placement.device_for`)."""
        from .placement import device_for

        return device_for(self.map_location, saved)

    def relocate(self, value: Any, saved: str | None) -> Any:
        """A callable ``map_location``'s say on a decoded host value (the value if none)."""
        from .placement import relocate

        return relocate(self.map_location, value, saved)


@runtime_checkable
class Codec(Protocol):
    """What a codec class provides.  :class:`CodecBase` fills in the defaults."""

    codec_id: ClassVar[str]
    codec_version: ClassVar[int]

    def can_encode(self, obj: Any) -> bool: ...

    def encode(self, obj: Any) -> Encoded: ...

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any: ...

    def get_config(self) -> dict[str, Any]: ...


class CodecBase(ABC):
    """Convenience base: config, equality and repr built from ``get_config``."""

    codec_id: ClassVar[str] = ""
    codec_version: ClassVar[int] = 1

    def can_encode(self, obj: Any) -> bool:
        """Whether this leaf is stored as blobs; False sends it to the skeleton instead."""
        return True

    @abstractmethod
    def encode(self, obj: Any) -> Encoded:
        """Turn one leaf into host arrays plus metadata."""

    @abstractmethod
    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        """Rebuild the leaf from what ``encode`` made (possibly by an older version)."""

    def leaf_name(self, obj: Any) -> str | None:
        """A name for a leaf the walk did not reach (one met only by the pickler, inside
        an object saved its own way); None gives it a generated ``_unnamed/N``.
        Clashes are resolved by the core (``W``, ``W_2``, ...)."""
        return None

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CodecBase:
        params = {k: v for k, v in config.items() if k != "id"}
        return cls(**params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodecBase):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.get_config().items())))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})"


def writable_view(arr: np.ndarray) -> np.ndarray | None:
    """A writable view of a read-only array that lies in one of the core's file mappings.

    With ``mmap=True`` codecs get read-only views of the file.  The core maps files
    copy-on-write, so a codec whose framework cannot hold read-only memory (torch)
    may wrap this view instead of copying: writes stay private to the process and
    never reach the file.  None when ``arr`` is not in such a mapping.
    """
    import mmap

    base: Any = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, mmap.mmap):
        return None
    whole = np.frombuffer(base, np.uint8)
    if not whole.flags.writeable or arr.nbytes == 0:
        return None
    offset = arr.__array_interface__["data"][0] - whole.__array_interface__["data"][0]
    return np.ndarray(arr.shape, arr.dtype, buffer=whole, offset=offset, strides=arr.strides)
