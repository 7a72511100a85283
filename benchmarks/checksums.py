"""Throughput of candidate checksums, against reading and copying the same bytes.

Run ``python benchmarks/checksums.py [--dir TMPDIR] [--size-mib 256] [--repeat 3]``.

A container checksums every array it writes and, when verifying, every array it
reads, so a checksum is only cheap enough if it costs a fraction of the read it
rides on.  Each algorithm is therefore reported as a ratio to a raw page-cache
read and to a memcpy of the same buffer, both measured in the same run, and
also as the fixed cost of one call on a 256-byte buffer (tiny arrays).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import math
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

MiB = 1 << 20
GiB = 1 << 30
SMALL = 256
SMALL_CALLS = 20_000

Hasher = Callable[[memoryview], object]


def _import_optional(name: str) -> ModuleType | None:
    """Import an optional algorithm; a missing one is skipped, not fatal."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def algorithms() -> tuple[dict[str, Hasher], list[str]]:
    """The algorithms to compare, and a note for each one that is not installed."""
    algos: dict[str, Hasher] = {
        "zlib.crc32": zlib.crc32,
        "hashlib.sha256": lambda b: hashlib.sha256(b).digest(),
        "hashlib.blake2b": lambda b: hashlib.blake2b(b).digest(),
    }
    skipped = []
    xxhash = _import_optional("xxhash")
    if xxhash is None:
        skipped.append("xxhash is not installed: xxh64, xxh3_64, xxh3_128 skipped")
    else:
        algos |= {
            "xxhash.xxh64": xxhash.xxh64_intdigest,
            "xxhash.xxh3_64": xxhash.xxh3_64_intdigest,
            "xxhash.xxh3_128": xxhash.xxh3_128_intdigest,
        }
    crc32c = _import_optional("crc32c")
    if crc32c is None:
        skipped.append("crc32c is not installed: skipped")
    else:
        algos["crc32c.crc32c"] = crc32c.crc32c
    return algos, skipped


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time over ``repeat`` runs: the least disturbed one on a shared machine."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def read_into(path: Path, dst: memoryview) -> int:
    """Read a whole file into a pre-faulted buffer: a page-cache copy into user memory."""
    done = 0
    with open(path, "rb", buffering=0) as f:
        while done < len(dst):
            n = f.readinto(dst[done:])
            if not n:
                break
            done += n
    return done


def write_file(path: Path, data: memoryview) -> None:
    """Put the buffer in a file, so the read baseline comes from the page cache."""
    with open(path, "wb") as f:
        f.write(data)


def baselines(buf: np.ndarray, workdir: Path, repeat: int) -> dict[str, float]:
    """Raw page-cache read and memcpy of the same bytes, measured in this run."""
    dst = np.ones_like(buf)  # pre-faulted, so both baselines time copying only
    fd, name = tempfile.mkstemp(prefix="checksums_", suffix=".bin", dir=workdir)
    os.close(fd)
    path = Path(name)
    try:
        write_file(path, memoryview(buf))
        read = best_of(lambda: read_into(path, memoryview(dst)), repeat)
    finally:
        path.unlink()
    copy = best_of(lambda: np.copyto(dst, buf), repeat)
    return {"raw read": read, "memcpy": copy}


def per_call_us(fn: Hasher, repeat: int) -> float:
    """Microseconds for one call on a 256-byte buffer: the fixed cost per tiny array."""
    small = memoryview(np.random.default_rng(1).integers(0, 256, SMALL, dtype=np.uint8))

    def loop() -> None:
        for _ in range(SMALL_CALLS):
            fn(small)

    return best_of(loop, repeat) / SMALL_CALLS * 1e6


def row(name: str, seconds: float, size: int, base: dict[str, float], us: str) -> str:
    """One table line: ms per GiB, GB/s, ratios to the baselines, per-call cost."""
    ms_gib = seconds / size * GiB * 1e3
    gbs = size / seconds / 1e9
    r_read = seconds / base["raw read"]
    r_copy = seconds / base["memcpy"]
    return f"{name:18} | {ms_gib:9.1f} | {gbs:7.2f} | {r_read:12.2f}x | {r_copy:14.2f}x | {us:>13}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--dir", default=tempfile.gettempdir(), help="where the read baseline's file goes"
    )
    p.add_argument("--size-mib", type=int, default=256, help="buffer size for throughput")
    p.add_argument("--repeat", type=int, default=3, help="best of N for every figure")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure the baselines, then every algorithm, and print one table."""
    args = parse_args(argv)
    size = args.size_mib * MiB
    buf = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    view = memoryview(buf)
    algos, skipped = algorithms()
    base = baselines(buf, Path(args.dir), args.repeat)
    print(f"CPUs: {os.cpu_count()}; python {sys.version.split()[0]}; numpy {np.__version__}")
    print(f"{args.size_mib} MiB buffer, best of {args.repeat}; ratios are time / baseline time")
    print(
        f"{'algorithm':18} | {'ms/GiB':>9} | {'GB/s':>7} | {'ratio to read':>13} | "
        f"{'ratio to memcpy':>15} | {'us/call 256B':>13}"
    )
    print("-" * 94)
    for name, seconds in base.items():
        print(row(f"[{name}]", seconds, size, base, "-"))
    for name, fn in algos.items():
        seconds = best_of(lambda fn=fn: fn(view), args.repeat)
        print(row(name, seconds, size, base, f"{per_call_us(fn, args.repeat):.3f}"))
    for note in skipped:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
