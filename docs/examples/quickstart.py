"""A real dump, inspect and load: what the README's first command runs.

Usage: python docs/examples/quickstart.py [CONTAINER]

It saves a small model's state with codecs_ser to CONTAINER (quickstart.tar in
the current folder by default), inspects the file without loading it, loads it
back (fully, then as zero-copy mmap views), adds an optimizer state, replaces it,
and checks every checksum.  The file stays, for ``codecs-ser inspect`` and
``codecs-ser audit``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

import codecs_ser


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


def main(path: str) -> None:
    rng = np.random.default_rng(0)
    state = make_state(rng)
    codecs_ser.dump(state, path, metadata={"epoch": 3})
    print(f"dumped {os.path.getsize(path):,} bytes to {path}\n")

    # The command line reads the manifest only (python -m codecs_ser is codecs-ser).
    subprocess.run([sys.executable, "-m", "codecs_ser", "inspect", "--tree", path], check=True)

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
    codecs_ser.add(path, adam, name="optimizer", metadata={"step": 1200})
    adam["exp_avg"][0] += 1  # a later step: replace the stored optimizer state
    codecs_ser.add(path, adam, name="optimizer", metadata={"step": 1300}, replace=True)
    with codecs_ser.open(path) as c:
        print(
            f"objects now: {c.objects}; the optimizer's metadata: {c.object_metadata('optimizer')}"
        )
        print(f"globals loading would import: {c.audit()}")
    assert codecs_ser.verify(path) == []
    print("every checksum matches")
    print(f"\n{path} stays: try  codecs-ser inspect {path}  and  codecs-ser audit {path}")


if __name__ == "__main__":
    if len(sys.argv) > 2 or sys.argv[1:] in (["-h"], ["--help"]):
        print(__doc__.split("\n\n")[1])
        sys.exit(0 if len(sys.argv) == 2 else 2)
    main(sys.argv[1] if len(sys.argv) == 2 else "quickstart.tar")
