"""The container codec passes codecs_ser's public conformance suite; its spec imports no
PyTensor, and without PyTensor the stored values still read as numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytensor
from pytensor.link.basic import Container
from pytensor.tensor.type import TensorType

import codecs_ser
from codecs_ser.testing import CodecConformance, check_light_import


def _container(value: np.ndarray, **kwargs: Any) -> Container:
    shape = kwargs.pop("shape", (None,) * value.ndim)
    return Container(TensorType(str(value.dtype), shape=shape), [value], **kwargs)


class TestContainerCodec(CodecConformance):
    codec_id = "pytensor.container"

    def sample_objects(self) -> list[Any]:
        rng = np.random.default_rng(0)
        return [
            pytensor.shared(rng.normal(size=(3, 4)).astype(np.float32), name="W").container,
            _container(np.arange(5, dtype=np.int64), name="steps", strict=True),
            _container(np.array(2.5), readonly=True, allow_downcast=False),
            _container(np.zeros((0, 3), np.float64), shape=(None, 3)),
            _container(np.array([True, False]), shape=(2,), name="flags"),
            _container(np.asfortranarray(rng.normal(size=(2, 5))), name="fortran"),
        ]

    def assert_equal(self, a: Any, b: Any) -> None:
        assert type(b) is Container
        assert b.type == a.type and b.name == a.name
        assert (b.readonly, b.strict, b.allow_downcast) == (a.readonly, a.strict, a.allow_downcast)
        assert b.storage[0].dtype == a.storage[0].dtype
        np.testing.assert_array_equal(b.storage[0], a.storage[0])


def test_package_and_spec_import_no_pytensor() -> None:
    check_light_import("codecs_ser_pytensor", forbidden=("pytensor",))
    check_light_import(
        "codecs_ser_pytensor._spec", forbidden=("pytensor", "codecs_ser_pytensor._codec")
    )


def test_declined_containers_stay_in_the_skeleton(tmp_path: Path) -> None:
    """A random generator's container is not a tensor: it is pickled with the object."""
    rng = pytensor.shared(np.random.default_rng(3), name="rng")
    path = tmp_path / "rng.tar"
    codecs_ser.dump({"rng": rng}, path)
    with codecs_ser.open(path) as c:
        assert not any(e.codec == "pytensor.container" for e in c.entries.values())
    back = codecs_ser.load(path, trusted=True)["rng"]
    assert back.get_value().random() == np.random.default_rng(3).random()


PROBE = """
import json, sys
sys.modules["pytensor"] = None  # importing it now fails: the reader must not need it
import codecs_ser
arrays = codecs_ser.load_arrays(sys.argv[1])
print(json.dumps({k: v.tolist() for k, v in arrays.items()}))
"""


def test_load_arrays_needs_no_pytensor(tmp_path: Path) -> None:
    from pytensor_support import model

    m = model()
    path = tmp_path / "m.zip"
    codecs_ser.dump({"predict": m["predict"], "train": m["train"], "params": {"W": m["W"]}}, path)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
    ).stdout
    arrays = json.loads(out.strip().splitlines()[-1])
    np.testing.assert_array_equal(arrays["params/W"], m["W"].get_value())
    np.testing.assert_array_equal(arrays["b"], m["b"].get_value())
