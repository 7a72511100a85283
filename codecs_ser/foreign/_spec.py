"""The foreign-reader contract: a spec of strings, a reader, and the file it opens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, final, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ._source import Source

__all__ = ["ForeignArray", "ForeignFile", "ForeignReader", "ForeignSpec"]


@final
@dataclass(frozen=True, slots=True)
class ForeignSpec:
    """Declarative description of a foreign-format reader, cheap to import.

    ``magic`` lists ``(offset, bytes)`` signatures: the reader is asked to
    ``sniff`` a file only when one matches its first bytes.  ``impl`` is an import
    string ``"package.module:ClassName"``, imported the first time a file needs it.
    """

    format_id: str
    impl: str
    magic: tuple[tuple[int, bytes], ...] = ()
    description: str = ""
    dist: str | None = None


class ForeignArray(NamedTuple):
    """One array of a foreign file as its reader describes it, before reading it.

    ``dtype`` and ``shape`` are those of the numpy array ``read`` returns; ``info``
    holds what numpy cannot say (``{"dtype": "bfloat16"}``) and where the bytes lie.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int
    info: Mapping[str, Any]


class ForeignFile(ABC):
    """An opened foreign file: its arrays by name, read one by one."""

    #: What the file is, in words ("torch.save file (zip, version 3)").
    description: ClassVar[str] = ""

    @property
    @abstractmethod
    def arrays_info(self) -> Mapping[str, ForeignArray]:
        """Every array the file holds, by hierarchical name, without reading any."""

    @abstractmethod
    def read(self, name: str, *, mmap: bool = False, verify: bool | None = None) -> np.ndarray:
        """One array; with ``mmap``, a read-only view of the file where the bytes allow."""

    def structure(self, *, mmap: bool = False, verify: bool | None = None) -> Any:
        """The object the file holds, as plain data with numpy arrays, where that can be
        read without running code; by default the dict of its arrays."""
        return {name: self.read(name, mmap=mmap, verify=verify) for name in self.arrays_info}

    def globals(self) -> list[str]:
        """The globals an unpickler would import to load the file (none are imported)."""
        return []

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata the file carries (safetensors' ``__metadata__``, say)."""
        return {}

    def close(self) -> None:  # noqa: B027 - most readers hold nothing of their own
        """Release what the reader holds beyond the source."""


@runtime_checkable
class ForeignReader(Protocol):
    """What a foreign-reader class provides."""

    format_id: ClassVar[str]

    def sniff(self, source: Source) -> bool:
        """Whether the file is of this format (cheap: its head, a zip or tar listing)."""
        ...

    def open(self, source: Source) -> ForeignFile:
        """Open the file; raise FormatError when it is damaged or not readable safely."""
        ...
