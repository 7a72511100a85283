"""The backend contract: where a container's named members are stored.

A backend stores named members (the .npy blobs, the skeletons) and one
manifest.  The core decides the names, the bytes and the checksums; a backend
only places them, and finds the manifest again without scanning every member.
Like codecs, a backend is announced by a :class:`BackendSpec` of strings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol, Union, final, runtime_checkable

__all__ = [
    "Backend",
    "BackendSpec",
    "ContainerReader",
    "ContainerWriter",
    "MemberRef",
    "Source",
    "Target",
]

#: A dump target: a filesystem path or a writable binary file object.
Target = Union[str, "os.PathLike[str]", BinaryIO]
#: A load source: a filesystem path or a readable binary file object.
Source = Union[str, "os.PathLike[str]", BinaryIO]


@final
@dataclass(frozen=True, slots=True)
class BackendSpec:
    """Declarative description of a backend, cheap to import.

    ``suffixes`` pick the backend for a dump target by its name (".tar").
    ``magic`` lists ``(offset, bytes)`` signatures that identify a file of this
    kind when loading.  ``directory`` says the container is a folder.
    """

    backend_id: str
    impl: str
    suffixes: tuple[str, ...] = ()
    magic: tuple[tuple[int, bytes], ...] = ()
    directory: bool = False
    dist: str | None = None


@final
@dataclass(frozen=True, slots=True)
class MemberRef:
    """Where one member lies: its name, its byte offset in a one-file container, its size."""

    name: str
    offset: int | None
    size: int


@runtime_checkable
class ContainerWriter(Protocol):
    """Writes members one after another, then the manifest, then makes it all visible at once."""

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> int | None:
        """Store ``size`` bytes given as ``chunks``; return their offset in the container, if any."""
        ...

    def commit(self, manifest: bytes) -> None:
        """Write the manifest and publish the container (atomically, for paths)."""
        ...

    def abort(self) -> None:
        """Drop everything written; an existing container at the target is left as it was."""
        ...


def write_one_by_one(
    writer: ContainerWriter, names: Sequence[str], blobs: Sequence[bytes]
) -> list[int | None]:
    """Small whole members through ``write_member``, one after another: what a writer's
    optional ``write_members`` must write in one call, and the core's way without it."""
    return [
        writer.write_member(name, len(blob), (memoryview(blob),))
        for name, blob in zip(names, blobs, strict=True)
    ]


@runtime_checkable
class ContainerReader(Protocol):
    """Reads the manifest and single members of one container."""

    def read_manifest(self) -> bytes: ...

    def open_member(self, ref: MemberRef) -> BinaryIO:
        """A readable stream over exactly the member's bytes."""
        ...

    def map_member(self, ref: MemberRef) -> memoryview | None:
        """A read-only zero-copy view of the member's bytes, or None where that cannot be."""
        ...

    def member_names(self) -> list[str]:
        """Every member name the container holds (scans the container; for checks only)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """What a backend class provides."""

    backend_id: str

    def create(self, target: Target, *, durable: bool) -> ContainerWriter: ...

    def open(self, source: Source) -> ContainerReader: ...

    def append(self, path: str, *, durable: bool) -> ContainerWriter:
        """A writer that keeps every member of the container at ``path`` and adds more.

        Until ``commit`` the container at ``path`` must stay exactly as it was.
        """
        ...
