"""Records with padding between their fields: views of them load as views, and what is
written is the bytes of the array, padding included, never the leftovers of fresh memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import codecs_ser

PADDED = np.dtype(
    {"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 16}
)


def _base() -> np.ndarray:
    raw = np.frombuffer(bytes(range(256)) * 2, dtype=np.uint8)[:320].copy()
    return raw.view(PADDED).reshape(4, 5)


def _raw(arr: np.ndarray) -> bytes:
    """The bytes of every item, padding included, in C order."""
    items = arr[..., np.newaxis].view(np.dtype((np.void, arr.dtype.itemsize)))[..., 0]
    return np.ascontiguousarray(items).tobytes()


VIEWS: dict[str, Any] = {
    "every-other-row": lambda b: b[::2],
    "transposed": lambda b: b.T,
    "columns": lambda b: b[:, 1:3],
    "reversed": lambda b: b[::-1, ::-2],
    "row": lambda b: b[1],
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
def test_views_of_padded_records_load_as_views(tmp_path: Any, view: str, backend: str) -> None:
    base = _base()
    v = VIEWS[view](base)
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump({"base": base, "v": v}, path, backend=backend)
    back = codecs_ser.load(path)
    assert np.shares_memory(back["v"], back["base"])
    assert _raw(back["v"]) == _raw(v)
    assert codecs_ser.verify(path) == []


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_padding_is_written_as_it_is(view: str) -> None:
    v = VIEWS[view](_base())
    stored = codecs_ser.load_arrays(codecs_ser.dumps({"x": v}))["x"]
    assert _raw(stored) == _raw(v)


def test_padded_records_dump_to_the_same_bytes_every_time(monkeypatch: Any) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    obj = {"x": _base()[::2], "y": _base().T}
    first = codecs_ser.dumps(obj)
    np.empty(1 << 16, np.uint8).fill(0xAB)  # dirty some fresh memory in between
    assert codecs_ser.dumps(obj) == first
