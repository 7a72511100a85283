"""Long fuzz run of the restricted unpickler, by hand (pytest does not collect it).

    .venv/bin/python tests/stress/fuzz_pickle_long.py --executions 1000000 --workers 2 --out /tmp/pfuzz

Execution N unpickles the skeleton ``pickle_fuzz.generate(N)`` (one in ten through
``codecs_ser.loads`` of a real container) in a forked worker and checks every
invariant of tests/invariants.py, the time bound and the memory bound
(tests/pickle_fuzz_exec.py).  Every distinct finding lands in
OUT/findings/<signature>/ with up to three reproducing pickles and info.json;
OUT/summary.json has the counts.  ``--attacks`` runs the known attacks instead.

Reproduce one execution in this process (a crash then ends it, with its traceback):

    .venv/bin/python tests/stress/fuzz_pickle_long.py --repro seed:123456

``--coverage`` measures line and branch coverage of codecs_ser/_safe_pickle.py
(OUT/coverage.txt).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]  # the tests' helpers, this checkout's package


def _progress(start: float) -> Callable[[Any], None]:
    def say(r: Any) -> None:  # a pickle_fuzz_campaign.Report
        print(
            f"{time.monotonic() - start:7.0f}s {r.executions} executions, "
            f"{r.per_second:.0f}/s, {len(r.findings)} distinct findings",
            flush=True,
        )

    return say


def run(args: argparse.Namespace) -> None:
    import pickle_fuzz as pf
    import pickle_fuzz_campaign as pc
    import pickle_fuzz_exec as px

    os.makedirs(args.out, exist_ok=True)
    if args.attacks:
        make, numbers, label = px.from_attack, range(len(pf.ATTACKS)), "attack"
    else:
        make, numbers, label = px.from_seed, range(args.start, args.start + args.executions), "seed"
    coverage_file = None
    if args.coverage:
        for name in os.listdir(args.out):
            if name.startswith(".coverage"):
                os.unlink(os.path.join(args.out, name))
        coverage_file = os.path.join(args.out, ".coverage")
    print(f"{len(numbers)} executions ({label}s {numbers.start}..) on {args.workers} workers")
    report = pc.run(
        make,
        numbers,
        workers=args.workers,
        out=args.out,
        label=label,
        kill_after=args.kill_after,
        coverage_file=coverage_file,
        progress=_progress(time.monotonic()),
        progress_every=args.report_every,
    )
    lines = report.lines()
    print(f"{report.executions} executions in {report.seconds:.0f} s: {report.per_second:.0f}/s")
    print(f"{len(lines)} distinct findings:" if lines else "no findings")
    print("\n".join(lines))
    summary = {
        "executions": report.executions,
        "seconds": round(report.seconds, 1),
        "per_second": round(report.per_second, 1),
        "findings": {
            f.signature: {"count": f.count, "ids": f.ids, "problem": f.problem, "hint": f.hint}
            for f in report.findings.values()
        },
    }
    if coverage_file:
        summary["coverage"] = coverage_report(args.out)
        print("coverage of _safe_pickle.py:", summary["coverage"])
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


def coverage_report(out: str) -> float:
    import coverage

    cov = coverage.Coverage(data_file=os.path.join(out, ".coverage"), branch=True)
    cov.combine(data_paths=[out], keep=True)
    cov.save()
    with open(os.path.join(out, "coverage.txt"), "w") as f:
        return round(cov.report(file=f, show_missing=True), 1)


def repro(args: argparse.Namespace) -> None:
    """Run one execution here, printing what it broke."""
    import pickle_fuzz_exec as px

    faulthandler.enable()
    label, _, number = args.repro.partition(":")
    make = px.from_attack if label == "attack" else px.from_seed
    data, names, via_api, program = make(int(number))
    if args.keep:
        with open(args.keep, "wb") as f:
            f.write(data)
        print("pickle written to", args.keep)
    print(f"{len(data)} bytes, via the public API: {via_api}, {px.cause_hint(program)}")
    snapshot = px.prepare_worker()
    v = px.execute(data, names, via_api=via_api, snapshot=snapshot)
    print(f"{v.outcome} in {v.seconds:.3f} s")
    for problem in v.problems:
        print("PROBLEM:", problem)


def main() -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/codecs-ser-pickle-fuzz")
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--kill-after", type=float, default=20.0, help="seconds: hung")
    parser.add_argument("--report-every", type=float, default=30.0)
    parser.add_argument("--attacks", action="store_true", help="run the known attacks")
    parser.add_argument("--coverage", action="store_true", help="of _safe_pickle.py")
    parser.add_argument("--repro", help="seed:N or attack:N, run here")
    parser.add_argument("--keep", help="with --repro: write the pickle to this path")
    args = parser.parse_args()
    if args.repro:
        repro(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
