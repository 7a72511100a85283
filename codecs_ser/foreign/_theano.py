"""Theano's ``pkl_utils.dump`` zips (kept by Aesara; the format PyTensor inherited).

As theano/misc/pkl_utils.py writes them: a zip (deflated) whose member ``pkl`` is
the pickled object, in which every ndarray is a persistent id
``"<kind>.<member>"`` (``ndarray``, ``cuda_ndarray`` or ``gpuarray``), and each such
array is a .npy member named after the shared variable that held it (``W``, then
``W_1`` for a second ``W``) or ``array_N`` when it had no name.  The arrays are read
under their member names; the pickle is only scanned for the globals it names.
"""

from __future__ import annotations

import zipfile
from typing import ClassVar

from .._limits import get_limits
from ..errors import FormatError
from ._npz import NpzFile
from ._pickle import parse
from ._source import Source, zip_member_bytes
from ._spec import ForeignFile

PICKLE = "pkl"


def _arrays(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo] | None:
    members = [m for m in zf.infolist() if not m.filename.endswith("/")]
    names = [m.filename for m in members]
    if PICKLE not in names or any("/" in n for n in names):
        return None
    return [m for m in members if m.filename != PICKLE]


class _PklUtils(NpzFile):
    description: ClassVar[str] = "Theano/Aesara/PyTensor pkl_utils zip"

    def __init__(self, src: Source, members: list[zipfile.ZipInfo]) -> None:
        super().__init__(src, members)
        zf = src.zip()
        assert zf is not None
        self._pickle = zip_member_bytes(
            src, zf, zf.NameToInfo[PICKLE], get_limits().max_skeleton_bytes
        )
        self._globals: list[str] | None = None

    def globals(self) -> list[str]:
        if self._globals is None:
            _, found = parse(self._pickle, persistent=lambda pid: pid, what="the pkl member")
            self._globals = sorted({str(g) for g in found})
        return self._globals


class PklUtilsReader:
    """A zip with a member ``pkl`` beside flat members (no folders) that are .npy files."""

    format_id: ClassVar[str] = "theano-pkl"

    def sniff(self, source: Source) -> bool:
        zf = source.zip()
        return zf is not None and _arrays(zf) is not None

    def open(self, source: Source) -> ForeignFile:
        zf = source.zip()
        members = _arrays(zf) if zf is not None else None
        if members is None:
            raise FormatError("not a pkl_utils zip")
        return _PklUtils(source, members)
