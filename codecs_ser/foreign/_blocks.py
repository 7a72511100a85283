"""Blocks' tar dumps (blocks/serialization.py ``dump``, ``secure_dump``, ``add_to_dump``).

A tar archive whose member ``_parameters`` is an npz of the shared variables'
values, keyed by brick path with ``BRICK_DELIMITER`` ``|`` (``|mlp|linear_0.W``),
and ``_pkl`` the pickled object (arrays in it refer to those parameters by
persistent id); ``add_to_dump`` appends more pickled members.  The arrays are read
as ``blocks.serialization.load_parameters`` named them: ``|`` replaced by ``/``
(``/mlp/linear_0.W``).  The pickles are only scanned for the globals they name.
"""

from __future__ import annotations

import tarfile
from typing import Any, ClassVar

from .._limits import get_limits
from ..errors import FormatError
from ._npz import NpzFile, npy_members
from ._pickle import parse
from ._source import Source
from ._spec import ForeignFile

PARAMETERS = "_parameters"
PICKLE = "_pkl"
BRICK_DELIMITER = "|"


def _members(source: Source) -> dict[str, tarfile.TarInfo] | None:
    found = source.tar_members()
    if not found:
        return None
    by_name: dict[str, tarfile.TarInfo] = {}
    for info in found:
        by_name[info.name] = info  # a later member of one name wins, as tarfile's does
    if PARAMETERS not in by_name and PICKLE not in by_name:
        return None
    return by_name


class _Blocks(NpzFile):
    description: ClassVar[str] = "Blocks tar dump"

    def __init__(self, source: Source, members: dict[str, tarfile.TarInfo]) -> None:
        self._tar_members = members
        self._outer = source
        self._globals: list[str] | None = None
        info = members.get(PARAMETERS)
        if info is None:
            super().__init__(source, [])
            return
        if not info.isfile():
            raise FormatError("the _parameters member is not a file")
        inner = source.window(info.offset_data, info.size, "the _parameters member")
        zf = inner.zip()
        if zf is None:
            raise FormatError("the _parameters member is not an npz file")
        npy = npy_members(zf)
        if npy is None:
            npy = [] if not zf.infolist() else None
        if npy is None:
            raise FormatError("the _parameters member holds members that are not .npy files")
        super().__init__(inner, npy, rename=lambda key: key.replace(BRICK_DELIMITER, "/"))

    @property
    def metadata(self) -> dict[str, Any]:
        return {"members": sorted(self._tar_members)}

    def globals(self) -> list[str]:
        if self._globals is None:
            found: set[str] = set()
            limit = get_limits().max_skeleton_bytes
            for name, info in self._tar_members.items():
                if name == PARAMETERS or not info.isfile():
                    continue
                if info.size > limit:
                    raise FormatError(f"member {name!r} is larger than max_skeleton_bytes")
                data = self._outer.read_at(info.offset_data, info.size, f"member {name!r}")
                _, globals_ = parse(data, persistent=lambda pid: pid, what=f"member {name!r}")
                found.update(str(g) for g in globals_)
            self._globals = sorted(found)
        return self._globals


class BlocksReader:
    """A tar archive with a ``_parameters`` or ``_pkl`` member among its first ones."""

    format_id: ClassVar[str] = "blocks"

    def sniff(self, source: Source) -> bool:
        return _members(source) is not None

    def open(self, source: Source) -> ForeignFile:
        members = _members(source)
        if members is None:
            raise FormatError("not a Blocks tar dump")
        return _Blocks(source, members)
