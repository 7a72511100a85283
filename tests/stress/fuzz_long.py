"""Long fuzz run of the container readers, by hand (pytest does not collect it).

    .venv/bin/python tests/stress/fuzz_long.py --executions 1000000 --out /tmp/fuzz-run

Each execution mutates one seed container (tests/fuzz_support.py) with a PRNG seeded by
its number, then runs open (reading every entry), load(trusted=False), load_arrays,
audit, verify, load_arrays(mmap=True, verify=True) and, on a share of them,
``codecs-ser inspect``, all in-process on bytes or files in /dev/shm.  Workers run on
every core.  Anything that escapes other than a CodecsSerError, a wrong array, a hang
(--timeout seconds), a worker's death, a large allocation or a leaked descriptor is
written under OUT/findings/<kind>-<where>/ with the input and its id.

Reproduce one execution (OUT/seeds.pickle holds the seeds the ids refer to):

    .venv/bin/python tests/stress/fuzz_long.py --out /tmp/fuzz-run --repro tar:123456

Coverage of codecs_ser (line and branch) is measured with coverage.py unless
--no-coverage (in every N-th chunk of executions with --coverage-every N); the report
lands in OUT/coverage.txt.  ``--atheris BACKEND`` runs the
same mutators and operations under atheris instead of the loop here (optional).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import re
import resource
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BACKENDS = ("tar", "zip", "dir")
OPS_AFTER_OPEN = ("open", "load", "load_arrays", "audit", "verify", "mmap", "load_allowed")
CHUNK = 500
#: Inputs kept per distinct finding.
KEEP = 3


class Hang(BaseException):
    """Raised by the alarm: an execution ran past its time limit."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


def execution_seed(backend: str, number: int) -> int:
    return BACKENDS.index(backend) << 48 | number


def parse_plan(text: str) -> dict[str, int]:
    """'tar=450000,zip=450000,dir=100000' -> executions per backend."""
    plan = {}
    for part in text.split(","):
        name, _, count = part.partition("=")
        plan[name.strip()] = int(float(count))
    return plan


# -- one execution ---------------------------------------------------------------------


def make_mutant(fz: Any, seeds: dict[str, list[Any]], backend: str, number: int) -> Any:
    ch = fz.RandomChooser(execution_seed(backend, number))
    pool = seeds[backend]
    return fz.mutate(fz.pick(ch, pool), ch, fz.pick(ch, pool))


def execute(fz: Any, placed: Any, with_cli: bool) -> dict[str, Any]:
    """Every operation's result or exception.  When opening already fails with a
    CodecsSerError, every call that opens first fails alike, so only the CLI runs."""
    import codecs_ser
    from codecs_ser.errors import CodecsSerError

    ops = fz.operations(placed)
    results: dict[str, Any] = {}
    try:
        codecs_ser.open(placed.source).close()
    except CodecsSerError as e:
        results = {name: e for name in OPS_AFTER_OPEN if name in ops}
    except Exception as e:
        results["open"] = e
    for name, op in ops.items():
        if name in results or (name == "inspect" and not with_cli):
            continue
        try:
            results[name] = op()
        except Exception as e:
            results[name] = e
    return results


# -- findings --------------------------------------------------------------------------


def _where(e: BaseException) -> str:
    """The innermost frame in codecs_ser (else the innermost one): what tells bugs apart."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "/codecs_ser/" in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "unknown"
    return f"{os.path.basename(frame.filename)}:{frame.lineno}"


def _slug(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.:-]+", "_", text)[:80]
    return text + "-" + hashlib.sha1(text.encode()).hexdigest()[:6]


class Findings:
    """Writes each distinct finding once, with up to KEEP inputs, under OUT/findings."""

    def __init__(self, out: str, fz: Any) -> None:
        self.root = os.path.join(out, "findings")
        self.fz = fz
        self._logged: dict[str, set[str]] = {}
        os.makedirs(self.root, exist_ok=True)

    def add(self, category: str, key: str, detail: dict[str, Any], mutant: Any, run_id: str) -> str:
        folder = os.path.join(self.root, _slug(f"{category}-{key}"))
        os.makedirs(folder, exist_ok=True)
        if run_id in self._logged.setdefault(folder, set()):
            return folder  # another operation of the same execution
        self._logged[folder].add(run_id)
        with open(os.path.join(folder, "hits.log"), "a") as f:
            f.write(f"{run_id}\t{mutant.describe() if mutant else ''}\n")
        info = os.path.join(folder, "info.json")
        if not os.path.exists(info):
            with open(info, "w") as f:
                json.dump(
                    {"category": category, "key": key, "run_id": run_id, **detail}, f, indent=1
                )
        kept = [n for n in os.listdir(folder) if n.startswith("input-")]
        if mutant is not None and len(kept) < KEEP:
            self._save_input(folder, mutant, run_id)
        return folder

    def _save_input(self, folder: str, mutant: Any, run_id: str) -> None:
        name = "input-" + run_id.replace(":", "-")
        if mutant.seed.backend == "dir":
            with open(os.path.join(folder, name + ".tree.pickle"), "wb") as f:
                pickle.dump(mutant.tree, f)
        else:
            with open(os.path.join(folder, f"{name}.{mutant.seed.backend}"), "wb") as f:
                f.write(mutant.data)


def report_results(
    findings: Findings, mutant: Any, placed: Any, results: dict[str, Any], run_id: str
) -> int:
    """Record what is wrong with one execution's results; returns how many findings."""
    fz = findings.fz
    n = 0
    for op, e in fz.escaped(results).items():
        category = "hang" if isinstance(e, Hang) else "escape"
        if isinstance(e, MemoryError):
            category = "memory"
        if isinstance(e, Warning):
            category = "warning"
        key = f"{type(e).__name__}@{_where(e)}"
        tail = "".join(traceback.format_exception(e)[-8:])
        detail = {"op": op, "type": type(e).__name__, "message": str(e)[:500], "traceback": tail}
        findings.add(category, key, detail, mutant, run_id)
        n += 1
    for problem in fz.problems(placed, results):
        if "escaped" in problem:
            continue
        key = re.sub(r"\d+", "N", problem)[:100] + f" [{mutant.kind}]"
        findings.add("oracle", key, {"problem": problem}, mutant, run_id)
        n += 1
    return n


# -- workers ---------------------------------------------------------------------------


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _vm_bytes() -> int:
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def worker(
    index: int,
    args: argparse.Namespace,
    tasks: Any,
    reports: Any,
    state: Any,
    seeds: dict[str, list[Any]],
) -> None:
    """Take chunks of executions from ``tasks`` until there are none; report counts."""
    import fuzz_support as fz

    cov = None
    if args.coverage:
        import coverage

        cov = coverage.Coverage(
            data_file=os.path.join(args.out, ".coverage"),
            data_suffix=True,
            branch=True,
            source_pkgs=["codecs_ser"],
        )
    warnings.simplefilter("error")
    unraisable: list[Any] = []
    sys.unraisablehook = unraisable.append
    limit = _vm_bytes() + (args.memory_gib << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    findings = Findings(args.out, fz)
    last_save = time.monotonic()
    fds = _fd_count()
    fd_reported = False
    with fz.Workspace() as ws:
        while True:
            task = tasks.get()
            if task is None:
                break
            backend, start, count = task
            measured = cov is not None and (start // CHUNK) % args.coverage_every == 0
            if measured:
                cov.start()
            kinds: Counter[str] = Counter()
            found = 0
            for number in range(start, start + count):
                state[0], state[1], state[2] = BACKENDS.index(backend), number, int(time.time())
                state[3] = start + count
                run_id = f"{backend}:{number}"
                try:
                    mutant = make_mutant(fz, seeds, backend, number)
                except Exception as e:  # a bug of the mutators, not of the readers
                    detail = {"traceback": "".join(traceback.format_exception(e)[-6:])}
                    findings.add("mutator", type(e).__name__, detail, None, run_id)
                    kinds["mutator-error"] += 1
                    continue
                kinds[mutant.kind] += 1
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                try:
                    placed = ws.place(mutant)
                    signal.setitimer(signal.ITIMER_REAL, args.timeout)
                    try:
                        results = execute(fz, placed, with_cli=number % 8 == 0)
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except Hang as e:
                    results = {"execution": e}
                    placed = None
                if placed is None:
                    detail = {"timeout_s": args.timeout}
                    findings.add("hang", run_id.split(":")[0], detail, mutant, run_id)
                    found += 1
                else:
                    found += report_results(findings, mutant, placed, results, run_id)
                grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
                if grown > 256 << 10:  # KiB
                    detail = {"peak_rss_growth_mib": grown >> 10}
                    findings.add("memory", "peak-rss", detail, mutant, run_id)
                    found += 1
                if unraisable:
                    for u in unraisable:
                        key = f"{type(u.exc_value).__name__}: {str(u.exc_value)[:60]}"
                        detail = {"message": str(u.exc_value)[:500], "object": repr(u.object)[:200]}
                        findings.add("unraisable", key, detail, mutant, run_id)
                    unraisable.clear()
                    found += 1
                if number % 200 == 0 and not fd_reported and _fd_count() > fds + 32:
                    findings.add("fd-leak", backend, {"open_fds": _fd_count()}, mutant, run_id)
                    fd_reported = True
            state[2] = 0
            if measured:
                cov.stop()
            reports.put(("done", index, backend, count, dict(kinds), found))
            if cov is not None and time.monotonic() - last_save > 120:
                _save_coverage(cov)
                last_save = time.monotonic()
    if cov is not None:
        _save_coverage(cov)
    reports.put(("exit", index))


def _save_coverage(cov: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cov.save()


# -- the parent ----------------------------------------------------------------------


def chunks(plan: dict[str, int], skip: dict[str, int]) -> Iterator[tuple[str, int, int]]:
    """Chunks of executions, the backends interleaved so each advances all along."""
    pos = dict.fromkeys(plan, 0)
    for b in plan:
        pos[b] = skip.get(b, 0)
    while any(pos[b] < plan[b] for b in plan):
        for b in plan:
            if pos[b] < plan[b]:
                n = min(CHUNK, plan[b] - pos[b])
                yield b, pos[b], n
                pos[b] += n


def _save_seeds(out: str, seeds: dict[str, list[Any]]) -> None:
    with open(os.path.join(out, "seeds.pickle"), "wb") as f:
        pickle.dump(seeds, f)
    for backend, pool in seeds.items():
        folder = os.path.join(out, "seeds", backend)
        os.makedirs(folder, exist_ok=True)
        for seed in pool:
            if backend == "dir":
                with open(os.path.join(folder, seed.name + ".tree.pickle"), "wb") as f:
                    pickle.dump(seed.tree, f)
            else:
                with open(os.path.join(folder, f"{seed.name}.{backend}"), "wb") as f:
                    f.write(seed.data)


def _dead_worker(
    fz: Any, seeds: dict[str, list[Any]], findings: Findings, state: Any, code: int | None
) -> None:
    """A worker died or stopped answering: record the input it was on."""
    backend, number = BACKENDS[state[0]], state[1]
    run_id = f"{backend}:{number}"
    if not state[2]:
        findings.add("crash", f"exit {code} between executions", {"exit_code": code}, None, run_id)
        return
    try:
        mutant = make_mutant(fz, seeds, backend, number)
    except Exception:
        mutant = None
    category = "hang" if code is None else "crash"
    findings.add(category, f"exit {code}", {"exit_code": code}, mutant, run_id)


def run(args: argparse.Namespace) -> None:
    os.makedirs(args.out, exist_ok=True)
    cov = None
    if args.coverage:
        import coverage

        for name in os.listdir(args.out):
            if name.startswith(".coverage"):
                os.unlink(os.path.join(args.out, name))
        cov = coverage.Coverage(
            data_file=os.path.join(args.out, ".coverage"),
            data_suffix=True,
            branch=True,
            source_pkgs=["codecs_ser"],
        )
        cov.start()
    import fuzz_support as fz

    seeds = {b: fz.make_seeds(b) for b in args.plan}
    if cov is not None:
        cov.stop()
        cov.save()
    _save_seeds(args.out, seeds)
    findings = Findings(args.out, fz)
    ctx = mp.get_context("fork")
    tasks = ctx.Queue()
    reports = ctx.Queue()
    total_chunks = 0
    for task in chunks(args.plan, {}):
        tasks.put(task)
        total_chunks += 1
    procs: dict[int, Any] = {}
    states: dict[int, Any] = {}

    def start(i: int) -> None:
        states[i] = ctx.RawArray("q", 4)
        p = ctx.Process(target=worker, args=(i, args, tasks, reports, states[i], seeds))
        p.start()
        procs[i] = p

    for i in range(args.workers):
        start(i)
    next_id = args.workers
    done: Counter[str] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    found = chunks_done = 0
    finished: set[int] = set()
    started = last = time.monotonic()
    log = open(os.path.join(args.out, "progress.log"), "a")

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")
        log.flush()

    def replace(i: int, code: int | None) -> None:
        """Record the input a dead or stuck worker was on; requeue the rest of its chunk."""
        nonlocal next_id, chunks_done
        state = states[i]
        backend, number, end = BACKENDS[state[0]], state[1], state[3]
        _dead_worker(fz, seeds, findings, state, code)
        say(f"worker {i} {'stuck' if code is None else f'died ({code})'} on {backend}:{number}")
        del procs[i]
        if state[2]:  # it was inside a chunk
            if number + 1 < end:
                tasks.put((backend, number + 1, end - number - 1))
            else:
                chunks_done += 1
            done[backend] += 1
        start(next_id)
        next_id += 1

    say(f"plan {args.plan} on {args.workers} workers, timeout {args.timeout}s")
    sentinels = False
    while len(finished) < len(procs) or not sentinels:
        try:
            msg = reports.get(timeout=1.0)
        except Exception:
            msg = None
        if msg is not None and msg[0] == "done":
            _, _, backend, count, k, f = msg
            done[backend] += count
            found += f
            chunks_done += 1
            for kind, n in k.items():
                kinds[(backend, kind)] += n
        elif msg is not None and msg[0] == "exit":
            finished.add(msg[1])
        if chunks_done >= total_chunks and not sentinels:
            for _ in procs:
                tasks.put(None)
            sentinels = True
        for i, p in list(procs.items()):
            if i in finished:
                continue
            since = states[i][2]
            if not p.is_alive() and p.exitcode != 0:
                replace(i, p.exitcode)
                if sentinels:
                    tasks.put(None)
            elif since and time.time() - since > max(30, 6 * args.timeout):
                p.kill()
                p.join()
                replace(i, None)
                if sentinels:
                    tasks.put(None)
        now = time.monotonic()
        if now - last > args.report_every:
            last = now
            total = sum(done.values())
            rate = total / max(1e-9, now - started)
            per = ", ".join(f"{b} {done[b]}" for b in args.plan)
            say(f"{now - started:7.0f}s {total} executions ({per}), {rate:.0f}/s, {found} findings")
    for p in procs.values():
        p.join(timeout=30)
    elapsed = time.monotonic() - started
    summary = {
        "executions": dict(done),
        "total": sum(done.values()),
        "seconds": round(elapsed),
        "per_second": round(sum(done.values()) / max(elapsed, 1e-9)),
        "kinds": {f"{b}/{k}": n for (b, k), n in sorted(kinds.items())},
        "findings": sorted(os.listdir(findings.root)),
    }
    if args.coverage:
        summary["coverage"] = coverage_report(args.out)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    say(json.dumps(summary, indent=1))
    log.close()


def coverage_report(out: str) -> dict[str, Any]:
    import coverage

    cov = coverage.Coverage(data_file=os.path.join(out, ".coverage"), branch=True)
    cov.combine(data_paths=[out], keep=True)
    cov.save()
    with open(os.path.join(out, "coverage.txt"), "w") as f:
        total = cov.report(file=f, show_missing=True, skip_empty=True)
    data = cov.get_data()
    lines = branches = lines_hit = branches_hit = 0
    for path in data.measured_files():
        analysis = cov._analyze(path)
        numbers = analysis.numbers
        lines += numbers.n_statements
        lines_hit += numbers.n_executed
        branches += numbers.n_branches
        branches_hit += numbers.n_branches - numbers.n_missing_branches
    return {
        "combined_percent": round(total, 1),
        "line_percent": round(100 * lines_hit / max(1, lines), 1),
        "branch_percent": round(100 * branches_hit / max(1, branches), 1),
    }


# -- reproducing one execution -------------------------------------------------------


def repro(args: argparse.Namespace) -> None:
    import fuzz_support as fz

    with open(os.path.join(args.out, "seeds.pickle"), "rb") as f:
        seeds = pickle.load(f)
    backend, _, number = args.repro.partition(":")
    mutant = make_mutant(fz, seeds, backend, int(number))
    print(mutant.describe())
    with fz.Workspace() as ws:
        placed = ws.place(mutant)
        results = fz.run_operations(placed)
        for op, r in results.items():
            if isinstance(r, BaseException):
                print(f"{op}: {type(r).__name__}: {str(r)[:300]}")
                if op in fz.escaped(results):
                    traceback.print_exception(r)
            else:
                print(f"{op}: ok")
        for problem in fz.problems(placed, results):
            print("PROBLEM:", problem)
        if args.keep:
            target = os.path.abspath(args.keep)
            if backend == "dir":
                fz.write_tree(mutant.tree, target)
            else:
                with open(target, "wb") as f:
                    f.write(mutant.data)
            print("input written to", target)


# -- atheris -------------------------------------------------------------------------


def run_atheris(args: argparse.Namespace, rest: list[str]) -> None:
    """The same mutators driven by atheris's coverage-guided data (optional)."""
    import atheris

    with atheris.instrument_imports():
        import codecs_ser  # noqa: F401
    import fuzz_support as fz

    backend = args.atheris
    seeds = fz.make_seeds(backend)
    ws = fz.Workspace()

    class Chooser:
        def __init__(self, fdp: Any) -> None:
            self._fdp = fdp

        def integer(self, lo: int, hi: int) -> int:
            return int(self._fdp.ConsumeIntInRange(lo, hi))

        def raw(self, n: int) -> bytes:
            data = self._fdp.ConsumeBytes(n)
            return data + bytes(n - len(data))

    def one(data: bytes) -> None:
        ch = Chooser(atheris.FuzzedDataProvider(data))
        mutant = fz.mutate(fz.pick(ch, seeds), ch, fz.pick(ch, seeds))
        placed = ws.place(mutant)
        found = fz.problems(placed, fz.run_operations(placed))
        if found:
            raise AssertionError(mutant.describe() + "\n" + "\n".join(found))

    warnings.simplefilter("error")
    atheris.Setup([sys.argv[0], *rest], one)
    atheris.Fuzz()


def main() -> None:
    # One BLAS thread per worker: the workers are the parallelism (and numpy is imported
    # only below, in the functions that need it).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/codecs-ser-fuzz")
    parser.add_argument("--executions", type=int, default=None, help="total, split by --share")
    parser.add_argument("--plan", default=None, help="e.g. tar=450000,zip=450000,dir=100000")
    parser.add_argument("--share", default="tar=0.45,zip=0.45,dir=0.10")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--memory-gib", type=int, default=3, help="address space per worker")
    parser.add_argument("--report-every", type=float, default=30.0)
    parser.add_argument("--no-coverage", dest="coverage", action="store_false")
    parser.add_argument(
        "--coverage-every",
        type=int,
        default=1,
        help="measure coverage in every N-th chunk of executions (1: all; tracing doubles "
        "the cost of an execution)",
    )
    parser.add_argument("--repro", help="BACKEND:NUMBER of one execution to run again")
    parser.add_argument("--keep", help="with --repro: write the input to this path")
    parser.add_argument("--atheris", choices=BACKENDS, help="fuzz one backend with atheris")
    args, rest = parser.parse_known_args()
    if args.atheris:
        run_atheris(args, rest)
        return
    if args.repro:
        repro(args)
        return
    if args.plan:
        args.plan = parse_plan(args.plan)
    else:
        total = args.executions or 10_000
        args.plan = {b: int(total * s) for b, s in parse_plan_float(args.share).items()}
    run(args)


def parse_plan_float(text: str) -> dict[str, float]:
    return {p.split("=")[0].strip(): float(p.split("=")[1]) for p in text.split(",")}


if __name__ == "__main__":
    main()
