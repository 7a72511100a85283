"""numpy's own files: one .npy, or an .npz (a zip of .npy members, named as np.load names them).

Headers are parsed by codecs_ser's bounded .npy parser, and an array's bytes are
checked against its header before anything is allocated; object arrays (which
need pickle) are refused.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .._limits import exceeded, get_limits
from .._npy import MAGIC, parse_header, shape_fits
from ..errors import FormatError
from ._source import Source, zip_member_array, zip_member_head, zip_member_offset
from ._spec import ForeignArray, ForeignFile

#: Enough bytes to hold any header the limits allow to be parsed.
_PROBE = 12


def header_of(data: bytes, what: str) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    """(dtype, fortran, shape, header length) of .npy bytes, checked to be a plain array."""
    try:
        dtype, fortran, shape, hlen = parse_header(data)
    except FormatError as e:
        raise FormatError(f"{what}: {e.message}") from None
    if dtype.hasobject:
        raise FormatError(f"{what} holds Python objects, which only pickle can read; not read")
    if len(shape) > get_limits().max_ndim:
        raise FormatError(
            f"{what}: " + exceeded("the number of dimensions", len(shape), "max_ndim")
        )
    if not shape_fits(shape, dtype.itemsize):
        raise FormatError(f"{what}: the shape {shape} is too large")
    return dtype, fortran, shape, hlen


def _nbytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


def array_from(
    buf: np.ndarray, dtype: np.dtype, fortran: bool, shape: tuple[int, ...], hlen: int, what: str
) -> np.ndarray:
    """The array a .npy's bytes hold (a view of ``buf``), once its size is checked."""
    need = _nbytes(dtype, shape)
    if len(buf) - hlen != need:
        raise FormatError(
            f"{what}: the header promises {need} bytes of data but {len(buf) - hlen} follow"
        )
    return np.ndarray(shape, dtype, buffer=buf, offset=hlen, order="F" if fortran else "C")


def _head_size(src: Source, start: int, limit: int, what: str) -> bytes:
    """The bytes of a .npy header at ``start`` (its length field read first)."""
    first = src.read_at(start, min(_PROBE, limit), what)
    if first[:6] != MAGIC or len(first) < 10:
        raise FormatError(f"{what} is not a .npy file (bad magic)")
    major = first[6]
    length = int.from_bytes(first[8:10], "little") + 10
    if major in (2, 3) and len(first) >= 12:
        length = int.from_bytes(first[8:12], "little") + 12
    if length > get_limits().max_npy_header_bytes + 12:
        raise FormatError(f"{what}: " + exceeded("the .npy header", length, "max_npy_header_bytes"))
    return src.read_at(start, min(length, limit), what)


class _Npy(ForeignFile):
    description: ClassVar[str] = ".npy file"

    def __init__(self, src: Source) -> None:
        self._src = src
        what = "the .npy file"
        self._dtype, self._fortran, self._shape, self._hlen = header_of(
            _head_size(src, 0, src.size, what), what
        )
        need = _nbytes(self._dtype, self._shape)
        if src.size - self._hlen != need:
            raise FormatError(
                f"{what}: the header promises {need} bytes of data but {src.size - self._hlen} follow"
            )
        self._info = {
            "array": ForeignArray(
                "array", self._dtype, self._shape, need, {"member": "array", "offset": self._hlen}
            )
        }

    @property
    def arrays_info(self) -> Mapping[str, ForeignArray]:
        return self._info

    def read(self, name: str, *, mmap: bool = False, verify: bool | None = None) -> np.ndarray:
        buf = self._src.array_at(0, self._src.size, mmap=mmap, what="the .npy file")
        return array_from(buf, self._dtype, self._fortran, self._shape, self._hlen, "the .npy file")

    def structure(self, *, mmap: bool = False, verify: bool | None = None) -> Any:
        return self.read("array", mmap=mmap)


class NpyReader:
    """A single .npy file; its one array is named ``array``."""

    format_id: ClassVar[str] = "npy"

    def sniff(self, source: Source) -> bool:
        return source.head[:6] == MAGIC

    def open(self, source: Source) -> ForeignFile:
        return _Npy(source)


class NpzFile(ForeignFile):
    """The .npy members of a zip, by name without ``.npy``; ``rename`` maps those names."""

    description: ClassVar[str] = ".npz file"

    def __init__(self, src: Source, members: list[zipfile.ZipInfo], rename: Any = None) -> None:
        self._src = src
        zf = src.zip()
        if zf is None and members:
            raise FormatError("not a zip file")
        self._zf = zf
        self._members: dict[str, tuple[zipfile.ZipInfo, np.dtype, bool, tuple[int, ...], int]] = {}
        info: dict[str, ForeignArray] = {}
        limits = get_limits()
        if len(members) > limits.max_entries:
            raise FormatError(exceeded("the number of arrays", len(members), "max_entries"))
        for m in members:
            key = m.filename[:-4] if m.filename.endswith(".npy") else m.filename
            name = rename(key) if rename else key
            if name in info:
                raise FormatError("two arrays have one name", member=m.filename)
            what = f"member {m.filename!r}"
            if m.compress_type == zipfile.ZIP_STORED:
                start = zip_member_offset(src, m)
                head = _head_size(src, start, m.file_size, what)
            else:
                assert zf is not None
                head = zip_member_head(src, zf, m, limits.max_npy_header_bytes + 12)
            dtype, fortran, shape, hlen = header_of(head, what)
            need = _nbytes(dtype, shape)
            if m.file_size - hlen != need:
                raise FormatError(
                    f"{what}: the header promises {need} bytes of data but "
                    f"{m.file_size - hlen} follow"
                )
            self._members[name] = (m, dtype, fortran, shape, hlen)
            info[name] = ForeignArray(name, dtype, shape, need, {"member": m.filename})
        self._info = info

    def _inflate(self, m: zipfile.ZipInfo, *, mmap: bool, verify: bool = True) -> np.ndarray:
        assert self._zf is not None
        return zip_member_array(self._src, self._zf, m, mmap=mmap, verify=verify)

    @property
    def arrays_info(self) -> Mapping[str, ForeignArray]:
        return self._info

    def read(self, name: str, *, mmap: bool = False, verify: bool | None = None) -> np.ndarray:
        m, dtype, fortran, shape, hlen = self._members[name]
        check = (not mmap) if verify is None else verify
        buf = self._inflate(m, mmap=mmap and m.compress_type == zipfile.ZIP_STORED, verify=check)
        return array_from(buf, dtype, fortran, shape, hlen, f"member {m.filename!r}")


def npy_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo] | None:
    """The members when every one is a .npy file by name (an npz), else None."""
    members = [m for m in zf.infolist() if not m.filename.endswith("/")]
    if not members or not all(m.filename.endswith(".npy") for m in members):
        return None
    return members


class NpzReader:
    """An .npz (np.savez or np.savez_compressed): a zip whose members are all .npy files."""

    format_id: ClassVar[str] = "npz"

    def sniff(self, source: Source) -> bool:
        zf = source.zip()
        return zf is not None and npy_members(zf) is not None

    def open(self, source: Source) -> ForeignFile:
        zf = source.zip()
        members = npy_members(zf) if zf is not None else None
        if members is None:
            raise FormatError("not an .npz file")
        return NpzFile(source, members)
