"""Every dtype kind inside every core codec that wraps arrays: plain, views, masked
arrays and scalars load back exactly, through every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser

DTYPES = {
    "bool": np.dtype("?"),
    "i1": np.dtype("i1"),
    ">i4": np.dtype(">i4"),
    "u8": np.dtype("<u8"),
    "f2": np.dtype("<f2"),
    ">f8": np.dtype(">f8"),
    "c16": np.dtype("<c16"),
    "M8[ns]": np.dtype("<M8[ns]"),
    "m8[s]": np.dtype("<m8[s]"),
    "S5": np.dtype("S5"),
    "U3": np.dtype("<U3"),
    "V4": np.dtype("V4"),
    "record": np.dtype([("a", "<i2"), ("b", ">f4")]),
    "padded": np.dtype(
        {"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 16}
    ),
    "nested": np.dtype([("p", [("x", "<f4"), ("y", "u1", (2,))]), ("q", "S2")]),
}


def _values(dtype: np.dtype, n: int = 12) -> np.ndarray:
    raw = (np.arange(n * dtype.itemsize, dtype=np.uint64) * 37 % 251).astype(np.uint8)
    if dtype.kind == "b":
        return (np.arange(n) % 3 == 0).astype(dtype)
    if dtype.kind == "U":
        return np.array([chr(0x41 + i % 26) * (i % 4) for i in range(n)], dtype)
    return raw.view(dtype)


def _raw(arr: Any) -> bytes:
    a = np.asarray(arr)
    items = a[..., np.newaxis].view(np.dtype((np.void, a.dtype.itemsize)))[..., 0]
    return np.ascontiguousarray(items).tobytes()


def _check(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, np.ma.MaskedArray):
        assert _raw(a.data) == _raw(b.data)
        assert np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
        return
    if isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert _raw(a) == _raw(b)


@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
@pytest.mark.parametrize("kind", sorted(DTYPES))
def test_every_dtype_in_every_codec(tmp_path: Path, kind: str, backend: str) -> None:
    dtype = DTYPES[kind]
    base = _values(dtype).reshape(3, 4)
    mask = np.ma.make_mask_none(base.shape, dtype=np.ma.make_mask_descr(dtype))
    mask.flat[1] = True if mask.dtype.names is None else tuple([True] * len(mask.dtype.names))
    obj = {
        "plain": base,
        "fortran": np.asfortranarray(base),
        "zero_d": base[1, 1].reshape(()).copy(),
        "empty": base[:0],
        "view": base[::2, 1:],
        "transposed": base.T,
        "masked": np.ma.masked_array(base, mask=mask),
        "scalar": base[0, 1],
    }
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(obj, path, backend=backend)
    back = codecs_ser.load(path)
    for key, value in obj.items():
        _check(value, back[key])
    assert np.shares_memory(back["view"], back["plain"])
    assert codecs_ser.verify(path) == []
    arrays = codecs_ser.load_arrays(path)
    assert _raw(arrays["plain"]) == _raw(base)
