"""Runs many pickle fuzz executions in forked workers, so a crash or a hang is a finding.

Workers take chunks of execution numbers from a queue and run them one after another
(pickle_fuzz_exec.execute); each publishes the number it is on, so when one dies (a
segfault in C recursion) or stops answering (a hang in C code) the parent knows the
input, records it, kills and replaces the worker, and requeues the rest of its chunk.
A worker whose process may have been changed (a patched class, a grown heap, an
interrupted load) reports and exits, and a fresh one takes over.  Every distinct
finding is saved under OUT/findings/<signature>/ with its reproducing pickle(s).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import pickle_fuzz_exec as px

#: Exit status of a worker that stops because its process may have been changed.
TAINTED = 3
#: Pickles kept per distinct finding.
KEEP = 3


@dataclass
class Finding:
    """One distinct broken invariant: how often, and the first inputs that broke it."""

    signature: str
    problem: str
    hint: str
    count: int = 0
    ids: list[int] = field(default_factory=list)


@dataclass
class Report:
    executions: int = 0
    seconds: float = 0.0
    findings: dict[str, Finding] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.executions / max(self.seconds, 1e-9)

    def lines(self) -> list[str]:
        return [
            f"{f.count:6d}  {f.signature}  [first: {f.ids[0]}{'; ' + f.hint if f.hint else ''}]"
            for f in sorted(self.findings.values(), key=lambda f: -f.count)
        ]


def _slug(text: str) -> str:
    short = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:70].strip("_")
    return f"{short}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


class Recorder:
    """Collects findings and writes each one's reproducers under ``out`` (if given)."""

    def __init__(self, out: str | None, make: px.Make, label: str) -> None:
        self.out = out
        self.make = make
        self.label = label
        self.report = Report()

    def add(self, number: int, problems: list[str], outcome: str) -> None:
        program = None
        try:
            data, _, via_api, program = self.make(number)
        except Exception:  # the generator itself failed: still record the number
            data, via_api = b"", False
        hint = px.cause_hint(program)
        for problem in problems:
            sig = px.signature(problem)
            f = self.report.findings.setdefault(sig, Finding(sig, problem, hint))
            f.count += 1
            if len(f.ids) < KEEP:
                f.ids.append(number)
                self._save(f, number, data, via_api, problem, outcome)

    def _save(
        self, f: Finding, number: int, data: bytes, via_api: bool, problem: str, outcome: str
    ) -> None:
        if self.out is None:
            return
        folder = os.path.join(self.out, "findings", _slug(f.signature))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{self.label}-{number}.pickle"), "wb") as fh:
            fh.write(data)
        info = {
            "signature": f.signature,
            "problem": problem,
            "outcome": outcome,
            "hint": f.hint,
            "via_api": via_api,
            "ids": f.ids,
            "repro": f"tests/stress/fuzz_pickle_long.py --repro {self.label}:{number}",
        }
        with open(os.path.join(folder, "info.json"), "w") as fh:
            json.dump(info, fh, indent=1)


def _worker(
    make: px.Make,
    tasks: Any,
    results: Connection,
    state: Any,
    alarm: float,
    coverage_file: str | None,
) -> None:
    """Execute numbers from chunks in ``tasks``; send findings and counts on ``results``
    (a pipe: a send is written before it returns, so nothing is lost when we exit)."""
    cov = None
    if coverage_file:
        import coverage

        cov = coverage.Coverage(
            data_file=coverage_file, data_suffix=True, branch=True, include=["*/_safe_pickle.py"]
        )
        cov.start()
    px.limit_address_space()
    snapshot = px.prepare_worker()
    code = 0
    while code == 0:
        task = tasks.get()
        if task is None:
            break
        start, end = task
        state[2], state[3] = end, start
        done = 0
        for number in range(start, end):
            state[0], state[1] = number, int(time.monotonic() * 1000)
            data, names, via_api, _ = make(number)
            v = px.execute(data, names, via_api=via_api, snapshot=snapshot, alarm=alarm)
            done += 1
            if v.problems:
                results.send(("finding", number, v.problems, v.outcome))
            if v.tainted:
                code = TAINTED
                break
        state[1] = 0
        results.send(("done", done, code == 0))  # False: cut short after state[0]
    if cov is not None:
        cov.stop()
        cov.save()
    results.close()
    os._exit(code)


def run(
    make: px.Make,
    numbers: range,
    *,
    workers: int = 1,
    out: str | None = None,
    label: str = "seed",
    chunk: int = 200,
    alarm: float = 2 * px.TIME_BOUND,
    kill_after: float = 20.0,
    coverage_file: str | None = None,
    progress: Callable[[Report], None] | None = None,
    progress_every: float = 10.0,
) -> Report:
    """Execute every number of ``numbers`` (``make(number)`` gives its pickle) and return
    the distinct findings; a worker still on one input after ``kill_after`` s is killed."""
    px.warm()
    ctx = mp.get_context("fork")
    tasks: Any = ctx.Queue()
    recorder = Recorder(out, make, label)
    report = recorder.report
    pending = 0  # chunks queued and not yet finished
    for lo in range(numbers.start, numbers.stop, chunk):
        tasks.put((lo, min(lo + chunk, numbers.stop)))
        pending += 1
    workers_now: dict[Connection, tuple[Any, Any]] = {}

    def start() -> None:
        state = ctx.RawArray("q", 4)  # number, since (ms; 0: idle), chunk end, chunk start
        reader, writer = ctx.Pipe(duplex=False)
        args = (make, tasks, writer, state, alarm, coverage_file)
        p = ctx.Process(target=_worker, args=args, daemon=True)
        p.start()
        writer.close()
        workers_now[reader] = (p, state)

    def receive(msg: tuple[Any, ...]) -> None:
        nonlocal pending
        if msg[0] == "finding":
            recorder.add(msg[1], msg[2], msg[3])
        else:
            report.executions += msg[1]
            pending -= msg[2]

    def retire(reader: Connection, problem: str | None) -> None:
        """A worker ended (its pipe is drained): requeue the rest of the chunk it was on,
        and if it died there (``problem``), record the input."""
        nonlocal pending
        p, state = workers_now.pop(reader)
        p.join()
        number, busy, end, first = state[0], state[1], state[2], state[3]
        reader.close()
        if problem is None:  # tainted: it cut its chunk short after `number`, and said so
            if number + 1 < end:
                tasks.put((number + 1, end))
            else:
                pending -= 1
            return
        if not busy:
            return  # between chunks: no input to blame
        recorder.add(number, [problem], "died")
        report.executions += number - first + 1
        if number + 1 < end:
            tasks.put((number + 1, end))
        else:
            pending -= 1

    for _ in range(workers):
        start()
    started = last = time.monotonic()
    while pending > 0:
        for reader in wait(list(workers_now), timeout=0.2):
            conn = cast(Connection, reader)
            try:
                receive(conn.recv())
                continue
            except EOFError:
                pass
            p, _ = workers_now[conn]
            p.join()
            code = p.exitcode
            if code == TAINTED:
                retire(conn, None)
            elif code and code < 0:
                retire(conn, f"the worker died with {signal.Signals(-code).name}")
            else:
                retire(conn, f"the worker exited with status {code}")
            if pending > 0:
                start()
        for conn, (p, state) in list(workers_now.items()):
            busy = state[1]
            if busy and time.monotonic() * 1000 - busy > kill_after * 1000:
                p.kill()
                while conn.poll():  # what it sent before it hung
                    try:
                        receive(conn.recv())
                    except EOFError:
                        break
                retire(conn, f"hung: still running after {kill_after:.0f} s (killed)")
                if pending > 0:
                    start()
        now = time.monotonic()
        if progress is not None and now - last > progress_every:
            last = now
            report.seconds = now - started
            progress(report)
    for _ in workers_now:
        tasks.put(None)
    for conn, (p, _) in workers_now.items():
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
        conn.close()
    report.seconds = time.monotonic() - started
    return report
