"""What newcomers save first: scikit-learn models, pandas frames, scipy sparse matrices,
dataclass configs.  They load back and work, and every array in them has a name that
says where it is (not ``_unnamed/N``), the same from run to run."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import codecs_ser

pd = pytest.importorskip("pandas")
sp = pytest.importorskip("scipy.sparse")
ensemble = pytest.importorskip("sklearn.ensemble")


@dataclasses.dataclass
class Config:
    lr: float = 0.1
    layers: tuple[int, ...] = (64, 64)
    mask: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(3, bool))


def _objects() -> dict[str, Any]:
    rng = np.random.RandomState(0)
    x = rng.rand(60, 4)
    y = (x[:, 0] > 0.5).astype(int)
    rf = ensemble.RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    df = pd.DataFrame({"a": np.arange(5.0), "b": list("abcde"), "c": np.arange(5)})
    return {"rf": rf, "x": x, "df": df, "m": sp.csr_matrix(np.eye(4)), "cfg": Config()}


@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
def test_everyday_objects_round_trip_with_names(tmp_path: Any, backend: str) -> None:
    obj = _objects()
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(obj, path, backend=backend)
    back = codecs_ser.load(path, trusted=["sklearn.*", "pandas.*", "scipy.*", f"{__name__}.*"])
    assert (back["rf"].predict(obj["x"]) == obj["rf"].predict(obj["x"])).all()
    assert back["df"].equals(obj["df"])
    assert (back["m"] != obj["m"]).nnz == 0
    assert back["cfg"] == dataclasses.replace(back["cfg"], mask=back["cfg"].mask)
    assert back["cfg"].mask.tolist() == [True] * 3
    names = list(codecs_ser.load_arrays(path))
    assert not [n for n in names if n.startswith("_unnamed")]
    assert {"rf/estimators_/0/tree_/nodes", "rf/estimators_/2/tree_/values"} <= set(names)
    assert {"m/data", "m/indices", "m/indptr", "cfg/mask"} <= set(names)
    assert any(n.startswith("df/_mgr/") for n in names)


def test_names_are_the_same_from_run_to_run() -> None:
    first = list(codecs_ser.open(codecs_ser.dumps(_objects())).entries)
    second = list(codecs_ser.open(codecs_ser.dumps(_objects())).entries)
    assert first == second


def test_each_array_is_stored_once() -> None:
    """The walk's reductions are the ones pickled, so no array is written twice."""
    data = codecs_ser.dumps({"rf": _objects()["rf"]})
    with codecs_ser.open(data) as c:
        members = [b.member for e in c.entries.values() for b in e.blobs]
    assert len(members) == len(set(members))
