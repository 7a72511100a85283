"""The torch codec passes codecs_ser's public conformance suite; its spec imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch_support import assert_tensor_same

from codecs_ser.testing import CodecConformance, check_light_import


class TestTensorCodec(CodecConformance):
    codec_id = "torch.tensor"

    def sample_objects(self) -> list[Any]:
        g = torch.Generator().manual_seed(0)
        return [
            torch.randn(3, 4, generator=g),
            torch.arange(6, dtype=torch.int16).reshape(2, 3).T,
            torch.zeros(0, 5, dtype=torch.bfloat16),
            torch.nn.Parameter(torch.randn(2, 2, generator=g)),
            torch.tensor(3.5, dtype=torch.float64),
        ]

    def assert_equal(self, a: Any, b: Any) -> None:
        assert_tensor_same(a, b)


def test_package_and_spec_import_no_torch() -> None:
    check_light_import("codecs_ser_torch", forbidden=("torch",))
    check_light_import("codecs_ser_torch._spec", forbidden=("torch", "codecs_ser_torch._codec"))


PROBE = """
import json, sys
import codecs_ser
arrays = codecs_ser.load_arrays(sys.argv[1])
with codecs_ser.open(sys.argv[1]) as c:
    dtypes = {n: e.meta["dtype"] for n, e in c.entries.items()}
print(json.dumps({"torch": "torch" in sys.modules, "keys": sorted(arrays),
                  "bf16": str(arrays["bf"].dtype), "dtypes": dtypes}))
"""


def test_load_arrays_of_tensors_needs_no_torch(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    w = torch.randn(4, 4)
    codecs_ser_dump({"w": w, "tied": w.detach(), "bf": torch.ones(3, dtype=torch.bfloat16)}, path)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["torch"] is False
    assert found["keys"] == ["bf", "tied", "w"]
    assert found["bf16"] == "uint16"  # the raw bit patterns; the entry says what they are
    assert found["dtypes"] == {"w": "float32", "tied": "float32", "bf": "bfloat16"}


def codecs_ser_dump(obj: Any, path: Path) -> None:
    import codecs_ser

    codecs_ser.dump(obj, path)
