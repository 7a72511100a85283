"""Compiled functions and shared variables: what they compute, what they share, how their
values are named, and what an untrusted load refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytensor
import pytest
from pytensor_support import batch, model

import codecs_ser
from codecs_ser.errors import UntrustedError


def _roundtrip(obj: Any, path: Path, **load: Any) -> Any:
    codecs_ser.dump(obj, path)
    return codecs_ser.load(path, trusted=True, **load)


def _entries(path: Path) -> dict[str, str]:
    with codecs_ser.open(path) as c:
        return {name: e.codec for name, e in c.entries.items()}


def test_functions_compute_the_same_after_a_load(tmp_path: Path, backend: str) -> None:
    m = model()
    x, y = batch()
    m["train"](x, y, 0.1)  # called before the dump: the walk must not wander into its state
    back = _roundtrip(m, tmp_path / f"m.{backend}")
    np.testing.assert_allclose(back["predict"](x), m["predict"](x))
    for _ in range(3):  # the same training steps from the same state
        np.testing.assert_allclose(back["train"](x, y, 0.1), m["train"](x, y, 0.1))
    np.testing.assert_allclose(back["predict"](x), m["predict"](x))
    np.testing.assert_allclose(back["W"].get_value(), m["W"].get_value())


def test_functions_still_share_their_variables(tmp_path: Path) -> None:
    m = model()
    x, y = batch()
    back = _roundtrip(m, tmp_path / "m.tar")
    before = back["norm"]()
    back["train"](x, y, 0.5)  # updates W and b in their shared storage
    after = back["norm"]()
    assert after != before
    assert after == pytest.approx(
        float(np.sum(back["W"].get_value() ** 2) + np.sum(back["b"].get_value() ** 2))
    )
    back["W"].set_value(np.zeros((4, 3)))  # seen by every function using W
    back["b"].set_value(np.zeros(3))
    assert back["norm"]() == 0.0
    np.testing.assert_allclose(back["predict"](x), np.full((8, 3), 1 / 3))


def test_each_shared_value_is_stored_once_under_its_path(tmp_path: Path) -> None:
    m = model()
    path = tmp_path / "m.tar"
    codecs_ser.dump({"fns": [m["train"], m["predict"]], "params": {"W": m["W"]}}, path)
    entries = _entries(path)
    containers = sorted(n for n, codec in entries.items() if codec == "pytensor.container")
    # W is held at params/W; b only inside the functions: named by its .name
    assert containers == ["b", "params/W"]
    assert not any("vm" in n.split("/") or "jit_fn" in n for n in entries)


def test_names_of_values_reached_only_through_functions_are_unique(tmp_path: Path) -> None:
    a = pytensor.shared(np.ones(2), name="W")
    b = pytensor.shared(np.full(2, 2.0), name="W")
    c = pytensor.shared(np.full(2, 3.0))  # no name
    f = pytensor.function([], a + b + c)
    path = tmp_path / "f.tar"
    back = _roundtrip({"f": f, "W": np.zeros(1)}, path)
    names = sorted(n for n, codec in _entries(path).items() if codec == "pytensor.container")
    # "W" is the array at the key W, so the two values named W get W_2 and W_3
    assert names[:2] == ["W_2", "W_3"] and names[2].startswith("_unnamed/")
    np.testing.assert_array_equal(back["f"](), np.full(2, 6.0))
    arrays = codecs_ser.load_arrays(path)
    assert {float(arrays["W_2"][0]), float(arrays["W_3"][0])} == {1.0, 2.0}


def test_mmap_load_computes_and_leaves_the_file_alone(tmp_path: Path) -> None:
    m = model()
    x, y = batch()
    path = tmp_path / "m.tar"
    codecs_ser.dump(m, path)
    back = codecs_ser.load(path, trusted=True, mmap=True)
    np.testing.assert_allclose(back["predict"](x), m["predict"](x))
    back["train"](x, y, 0.1)
    w = back["W"].get_value(borrow=True)
    w[...] = 7.0  # an in-place write stays in this process
    again = codecs_ser.load_arrays(path)
    np.testing.assert_allclose(again["W"], m["W"].get_value())


def test_functions_need_trust(tmp_path: Path) -> None:
    m = model()
    path = tmp_path / "m.tar"
    codecs_ser.dump({"predict": m["predict"]}, path)
    with pytest.raises(UntrustedError, match="pytensor"):
        codecs_ser.load(path)


def test_unpickle_function_flag_is_honoured(tmp_path: Path) -> None:
    m = model()
    path = tmp_path / "m.tar"
    codecs_ser.dump({"predict": m["predict"], "W": m["W"]}, path)
    with pytensor.config.change_flags(unpickle_function=False):
        back = codecs_ser.load(path, trusted=True)
    assert back["predict"] is None
    np.testing.assert_array_equal(back["W"].get_value(), m["W"].get_value())
