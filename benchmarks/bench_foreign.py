"""Benchmark reading foreign checkpoints against their own libraries.

Run ``python benchmarks/bench_foreign.py [--size-mib 400] [--repeat 3] [--dir TMPDIR]``.

One state dict of float32 tensors (about ``--size-mib``) is saved with torch.save and
with safetensors; ``codecs_ser.load_arrays`` reads each, copied and mapped (with
``verify=False`` too, since the zip CRCs of a torch file are checked when copying),
against ``torch.load(weights_only=True)`` (and its ``mmap=True``) and
``safetensors.numpy.load_file``.  Every figure is the best of N repeats in this run,
given as a ratio to its baseline: lower is better.  Files are read from the page
cache (each is read once before timing).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import codecs_ser


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        out = fn()
        if isinstance(out, dict):  # touch every array so lazy reads are counted
            for v in out.values():
                np.asarray(v).reshape(-1)[:1].copy()
        times.append(time.perf_counter() - start)
        del out
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("torch is not installed: nothing to compare with")
        return 0
    n_tensors = 64
    per = args.size_mib * (1 << 20) // 4 // n_tensors
    rng = np.random.default_rng(0)
    sd = {
        f"layers.{i}.weight": torch.from_numpy(rng.random(per, np.float32))
        for i in range(n_tensors)
    }
    rows: list[tuple[str, float, str, float]] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        pt = os.path.join(tmp, "model.pt")
        torch.save(sd, pt)
        codecs_ser.load_arrays(pt)
        base = best(lambda: torch.load(pt, weights_only=True), args.repeat)
        base_mmap = best(lambda: torch.load(pt, weights_only=True, mmap=True), args.repeat)
        for label, fn, ref, ref_t in (
            ("torch file, copied", lambda: codecs_ser.load_arrays(pt), "torch.load", base),
            (
                "torch file, copied, verify=False",
                lambda: codecs_ser.load_arrays(pt, verify=False),
                "torch.load",
                base,
            ),
            (
                "torch file, mmap=True",
                lambda: codecs_ser.load_arrays(pt, mmap=True),
                "torch.load(mmap=True)",
                base_mmap,
            ),
        ):
            rows.append((label, best(fn, args.repeat), ref, ref_t))
        del sd
        try:
            from safetensors.numpy import load_file, save_file
        except ImportError:
            print("safetensors is not installed: its rows are left out")
        else:
            st = os.path.join(tmp, "model.safetensors")
            save_file(codecs_ser.load_arrays(pt), st)
            os.remove(pt)
            base_st = best(lambda: load_file(st), args.repeat)
            rows.append(
                ("safetensors, copied", best(lambda: codecs_ser.load_arrays(st), args.repeat),
                 "safetensors.numpy.load_file", base_st)
            )  # fmt: skip
            rows.append(
                ("safetensors, mmap=True",
                 best(lambda: codecs_ser.load_arrays(st, mmap=True), args.repeat),
                 "safetensors.numpy.load_file", base_st)
            )  # fmt: skip
    print(f"{args.size_mib} MiB in {n_tensors} float32 tensors, best of {args.repeat}")
    print(
        f"{'codecs_ser.load_arrays':36s} {'seconds':>8s}  {'baseline':30s} {'seconds':>8s}  ratio"
    )
    for label, t, ref, ref_t in rows:
        print(f"{label:36s} {t:8.3f}  {ref:30s} {ref_t:8.3f}  {t / ref_t:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
