"""A real dump, inspect and load: what the README's first command runs.

It saves a small model's state with codecs_ser, inspects the file without
loading it, loads it back (fully, then as zero-copy mmap views), appends an
optimizer state, and checks every checksum.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

import codecs_ser
from codecs_ser._cli import main as cli


def make_state(rng: np.random.Generator) -> dict:
    layers = [
        {
            "weight": rng.standard_normal((256, 256)).astype(np.float32),
            "bias": np.zeros(256, np.float32),
        }
        for _ in range(4)
    ]
    return {
        "model": {"layers": layers, "embed": rng.standard_normal((1000, 256)).astype(np.float16)},
        "step": 1200,
        "lr": 3e-4,
        "name": "quickstart",
    }


def main() -> None:
    rng = np.random.default_rng(0)
    state = make_state(rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.tar")
        codecs_ser.dump(state, path, metadata={"epoch": 3})
        print(f"dumped {os.path.getsize(path):,} bytes to run.tar\n")

        cli(["inspect", path])  # reads the manifest only

        back = codecs_ser.load(path)
        assert np.array_equal(
            back["model"]["layers"][2]["weight"], state["model"]["layers"][2]["weight"]
        )
        assert back["step"] == 1200 and back["name"] == "quickstart"
        views = codecs_ser.load(path, mmap=True)
        assert not views["model"]["embed"].flags.writeable  # zero-copy, read-only
        with codecs_ser.open(path) as c:
            one = c.read("model/layers/0/weight")  # reads that blob and nothing else
        print(f"\nloaded back; one entry alone: {one.dtype} {one.shape}")

        adam = {"exp_avg": [np.zeros_like(layer["weight"]) for layer in state["model"]["layers"]]}
        codecs_ser.add(path, adam, name="optimizer")
        with codecs_ser.open(path) as c:
            print(f"objects now: {c.objects}, globals loading would import: {c.audit()}")
        assert codecs_ser.verify(path) == []
        print("every checksum matches")


if __name__ == "__main__":
    main()
