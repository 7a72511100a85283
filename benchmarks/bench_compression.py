"""Size and speed of each compression on bench_core's three workloads, beside
``joblib.dump(compress=3)`` and ``np.savez_compressed``, in one run.

Run ``python benchmarks/bench_compression.py [--quick] [--dir TMPDIR] [--repeat N]``.

Every figure is the best of N repeats, and each is also given as a ratio to the two
peers measured in the same run (lower is better for size and time alike).  Loads
read every array back into memory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_core as core

#: What is measured for codecs_ser: label, file name, dump keyword arguments.
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("tar (none)", "c.tar", {}),
    ("tar.gz", "c.tar.gz", {}),
    ("tar.gz level 1", "c1.tar.gz", {"compress": "gzip:1"}),
    ("tar.bz2", "c.tar.bz2", {}),
    ("tar.xz", "c.tar.xz", {}),
    ("tar.zst", "c.tar.zst", {}),
    ("zip deflate", "c.zip", {"compress": "deflate"}),
)
PEERS = ("joblib compress=3", "np.savez_compressed")


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(
    dump: Callable[[], None], load: Callable[[], object], path: Path, repeat: int
) -> tuple[int, float, float]:
    """(size in bytes, dump seconds, load seconds)."""
    dump_s = best(dump, repeat)
    size = path.stat().st_size
    load_s = best(load, repeat)
    return size, dump_s, load_s


def run_workload(wl: core.Workload, work: Path, repeat: int) -> dict[str, tuple[int, float, float]]:
    cs = core.cs
    rows: dict[str, tuple[int, float, float]] = {}
    for label, name, kwargs in VARIANTS:
        path = work / name
        if name.endswith(".zst"):
            try:
                from codecs_ser import _compression

                _compression.zstd_module()
            except cs.errors.UsageError:
                continue
        rows[label] = measure(
            lambda p=path, kw=kwargs: cs.dump(wl.obj, p, durable=False, **kw),  # type: ignore[misc]
            lambda p=path: cs.load(p),  # type: ignore[misc]
            path,
            repeat,
        )
        path.unlink()
    if core.joblib is not None:
        path = work / "j.joblib"
        rows[PEERS[0]] = measure(
            lambda: core.joblib.dump(wl.obj, path, compress=3),
            lambda: core.joblib.load(path),
            path,
            repeat,
        )
        path.unlink()
    path = work / "s.npz"
    flat = wl.flat

    def npz_load() -> object:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    rows[PEERS[1]] = measure(lambda: np.savez_compressed(path, **flat), npz_load, path, repeat)
    path.unlink()
    return rows


def _ratio(a: float, b: float | None) -> str:
    return "-" if not b else f"{a / b:.2f}"


def table(wl: core.Workload, rows: dict[str, tuple[int, float, float]]) -> str:
    joblib = rows.get(PEERS[0])
    npz = rows[PEERS[1]]
    head = (
        "| variant | size MiB | size/raw | size/joblib | size/npz | dump s | dump/joblib "
        "| dump/npz | load s | load/joblib | load/npz |"
    )
    out = [f"### {wl.title}", "", head, "|" + " --- |" * 11]
    for label, (size, d, lo) in rows.items():
        out.append(
            f"| {label} | {size / core.MiB:.1f} | {size / wl.nbytes:.3f} "
            f"| {_ratio(size, joblib[0] if joblib else None)} | {_ratio(size, npz[0])} "
            f"| {d:.2f} | {_ratio(d, joblib[1] if joblib else None)} | {_ratio(d, npz[1])} "
            f"| {lo:.2f} | {_ratio(lo, joblib[2] if joblib else None)} | {_ratio(lo, npz[2])} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smaller workloads")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N (default 1)")
    args = parser.parse_args(argv)
    core.cs = core._import_library()
    work = Path(tempfile.mkdtemp(prefix="bench-compression-", dir=args.dir))
    try:
        print(f"codecs_ser {core.cs.__version__}, numpy {np.__version__}, quick={args.quick}")
        for make in (core.make_big, core.make_gpt2, core.make_small):
            wl = make(args.quick)
            print()
            print(table(wl, run_workload(wl, work, args.repeat)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
