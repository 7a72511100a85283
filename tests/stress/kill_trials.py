"""The long run of tests/test_crash.py: writers SIGKILLed by the thousand, rounds of
racing writers with a reader, and writes to a real, full tmpfs.

    .venv/bin/python tests/stress/kill_trials.py --trials 500

runs 500 kill trials per backend (tar, zip, dir) and operation (dump over an existing
container, add to one), 20 rounds of 4 writers x 5 dumps per backend, and 12 amounts
of free room per backend and operation on a tmpfs mounted in a user namespace (skipped
where the kernel refuses one).  Prints a summary table and every failure; exits 1 if
there was any.  Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import test_crash as crash


def table(header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join(line.format(*map(str, r)) for r in [header, *rows])


def run_kills(
    server: crash.ForkServer, folder: Path, args: argparse.Namespace, rng: random.Random
) -> list[crash.Tally]:
    tallies = []
    start = time.monotonic()

    def progress(t: crash.Tally) -> None:
        if t.trials % 100 == 0 or t.trials == args.trials:
            print(
                f"  {t.backend} {t.op}: {t.trials}/{args.trials} trials, {t.killed} killed, "
                f"{dict(t.outcomes)}, {len(t.failures)} failures "
                f"({time.monotonic() - start:.0f} s)",
                flush=True,
            )

    for backend in args.backends:
        for op in args.ops:
            t = crash.kill_trials(server, folder, backend, op, args.trials, rng, progress)
            print(f"  {backend} {op}: an uninterrupted write took {t.duration * 1e3:.1f} ms")
            tallies.append(t)
    return tallies


def run_races(server: crash.ForkServer, folder: Path, args: argparse.Namespace) -> list[crash.Race]:
    results = []
    for backend in args.backends:
        total = crash.Race(backend)
        for i in range(args.races):
            r = crash.race(server, folder / f"{backend}-{i}", backend, args.writers, args.dumps)
            total.writes += r.writes
            total.reads.update(r.reads)
            total.errors.update(r.errors)
            total.failures += [f"round {i}: {f}" for f in r.failures]
        print(f"  {backend}: {dict(total.reads)} reads, {len(total.failures)} failures", flush=True)
        results.append(total)
    return results


def run_disk(folder: Path, points: int) -> list[dict[str, object]] | None:
    mount = folder / "mnt"
    mount.mkdir()
    if not crash.tmpfs_available(mount):
        print("  cannot mount a tmpfs in a user namespace here: skipped")
        return None
    done = crash.run_in_tmpfs(mount, "32m", points=points, timeout=3600)
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode not in (0, 1) or not lines:
        print(f"  the tmpfs run failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=500, help="kill trials per backend and op")
    p.add_argument("--races", type=int, default=20, help="rounds of racing writers per backend")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--dumps", type=int, default=5, help="dumps per racing writer")
    p.add_argument("--disk-points", type=int, default=12, help="amounts of room on the tmpfs")
    p.add_argument("--backends", type=lambda s: s.split(","), default=list(crash.BACKENDS))
    p.add_argument("--ops", type=lambda s: s.split(","), default=list(crash.OPS))
    p.add_argument("--folder", type=Path, help="where to write (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = random.randrange(1 << 32) if args.seed is None else args.seed
    folder = Path(tempfile.mkdtemp(prefix="kill-trials-", dir=args.folder))
    print(f"seed {seed}, writing under {folder}", flush=True)
    failures: list[str] = []
    server = crash.ForkServer()
    try:
        start = time.monotonic()
        print("kill trials:", flush=True)
        tallies = run_kills(server, folder / "kills", args, random.Random(seed))
        kill_time = time.monotonic() - start
        print("racing writers:", flush=True)
        races = run_races(server, folder / "races", args)
        print("full disk:", flush=True)
        disk = run_disk(folder, args.disk_points) if args.disk_points else None
    finally:
        server.close()
    shutil.rmtree(folder, ignore_errors=True)

    print(f"\nSIGKILL trials ({kill_time:.0f} s; outcome = what the path held after the kill)")
    rows = []
    for t in tallies:
        rows.append(
            [
                t.backend,
                t.op,
                f"{t.duration * 1e3:.1f}",
                t.trials,
                t.killed,
                t.trials - t.killed,
                t.outcomes["old"],
                t.outcomes["new"],
                t.killed_after_commit,
                t.outcomes["broken"] + t.outcomes["other"],
                t.left_by_kill,
                t.left_after_write,
                len(t.failures),
            ]
        )
        failures += t.failures
    head = (
        "backend op write-ms trials killed finished old new killed-but-new broken temp-after-kill"
    )
    print(table([*head.split(), "left-after-next-write", "failures"], rows))

    print("\nRacing writers (reads by a concurrent reader: ok / codecs_ser error raised /")
    print("loaded but verify() reported problems / anything else)")
    rows = []
    for r in races:
        rows.append(
            [
                r.backend,
                r.writes,
                r.reads["ok"],
                r.reads["error"],
                r.reads["verify"],
                r.reads["bad"],
            ]
        )
        rows[-1].append(len(r.failures))
        failures += r.failures
    print(table(["backend", "writes", "ok", "error", "verify", "bad", "failures"], rows))
    for r in races:
        for message, n in r.errors.most_common(10):
            print(f"  {r.backend}: {n} x {message}")

    if disk is not None:
        print("\nFull tmpfs (each write given less room than it needs must fail cleanly)")
        by: dict[tuple[str, str], Counter[str]] = {}
        for d in disk:
            c = by.setdefault((str(d["backend"]), str(d["op"])), Counter())
            c["trials"] += 1
            c["failures"] += bool(d["wrong"])
            failures += [str(w) for w in d["wrong"]]  # type: ignore[attr-defined]
        print(
            table(
                ["backend", "op", "trials", "failures"],
                [[b, o, c["trials"], c["failures"]] for (b, o), c in by.items()],
            )
        )

    print(f"\n{len(failures)} failures")
    for f in failures:
        print(f"  {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
