"""The codec contract: how one kind of leaf becomes .npy blobs plus metadata.

A plugin's entry point names a :class:`CodecSpec` made of strings only, so that
reading the entry points imports nothing heavy; the class named by
``CodecSpec.impl`` is imported the first time a leaf or a file needs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, final, runtime_checkable

import numpy as np

__all__ = ["Codec", "CodecBase", "CodecSpec", "DecodeContext", "Encoded"]


@final
@dataclass(frozen=True, slots=True)
class CodecSpec:
    """Declarative description of a codec, cheap to import.

    ``codec_id`` is written to every manifest entry and must never change.
    ``impl`` is an import string ``"package.module:ClassName"``.  ``handles`` are
    qualified type names (``"torch.Tensor"``), matched exactly, or along the MRO
    when ``subclasses`` is true.  ``dist`` is the distribution to install when
    the codec is missing.
    """

    codec_id: str
    impl: str
    handles: tuple[str, ...] = ()
    subclasses: bool = False
    requires: tuple[str, ...] = ()
    dist: str | None = None


@final
@dataclass(frozen=True, slots=True)
class Encoded:
    """What a codec makes of one leaf.

    ``arrays`` maps a role name to a host numpy array; each becomes one standard
    .npy blob.  The first role is the primary one (its blob is named after the
    leaf).  ``meta`` must be msgpack-safe (str keys; str, bytes, int, float,
    bool, None, lists and dicts of those).  ``device`` is recorded in the
    manifest for people and tools; it never selects the codec.
    """

    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None


@final
@dataclass(frozen=True, slots=True)
class DecodeContext:
    """Options of one load, passed to ``Codec.decode``.

    ``codec_version`` is the version of the codec that wrote the entry, so a
    newer codec can read older entries.  ``mmap`` says the arrays are read-only
    views of the file.  ``map_location`` is the user's placement wish (a device
    string, a callable, or None); a CPU-only codec ignores it.
    """

    codec_version: int
    mmap: bool = False
    map_location: Any = None
    entry: str = ""


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
