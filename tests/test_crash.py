"""A writer killed at any instant, writers racing for one path, and a full disk all
leave the path holding one complete container, the old one or a new one; and the next
successful write removes what dead writers left beside it.

Writers run in processes forked by one long-lived helper (:class:`ForkServer`), so a
trial costs a fork rather than an interpreter start and the kill instants fall on the
write itself.  ``tests/stress/kill_trials.py`` runs the same trials by the thousand.
"""

from __future__ import annotations

import builtins
import errno
import functools
import io
import json
import os
import random
import re
import select
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.errors import CodecsSerError

HERE = Path(__file__).resolve().parent
BACKENDS = ("tar", "zip", "dir")
OPS = ("dump", "add")
#: Kill trials per backend and operation here; the stress script runs thousands.
TRIALS = 15
#: Trials between two timings of an uninterrupted write: how long one takes drifts.
RETIME = 20
LEAVES = 6
#: float64 elements per leaf: 6 leaves of 512 KiB, so a durable write takes tens of ms.
LEAF = 1 << 16
#: Smaller objects where many writes must fit in little time (races, full disks).
SMALL = 1 << 13
OLD, NEW, PROBE = "old", "new", "probe:16"
#: The name under which a trial add() stores its object.
ADDED = "extra"
PAGE = 4096

#: What a container holds: its objects' (name, tag) pairs, in order.
State = tuple[tuple[str, str], ...]
#: The two states a path may be in after a killed write: before and after.
STATES: dict[str, dict[str, State]] = {
    "dump": {"old": (("main", OLD),), "new": (("main", NEW),)},
    "add": {"old": (("main", OLD),), "new": (("main", OLD), (ADDED, NEW))},
    # add(replace=True) of an object with one after it: the whole container is written
    # again, the later object's entries renumbered.
    "replace": {
        "old": (("main", OLD), (ADDED, "mid"), ("tail", "tail")),
        "new": (("main", OLD), (ADDED, NEW), ("tail", "tail")),
    },
}

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and SIGKILL (POSIX)"
)


# -- objects ------------------------------------------------------------------------


@functools.cache
def make_object(tag: str) -> dict[str, Any]:
    """The object called ``tag``, built from the tag alone, so the test process and every
    writer hold equal copies to compare a loaded container with.  ``name:N`` gives
    leaves of N elements."""
    _, _, size = tag.partition(":")
    leaf = int(size) if size else LEAF
    rng = np.random.default_rng(zlib.crc32(tag.encode()))
    return {
        "tag": tag,
        "leaves": {f"w{i}": rng.standard_normal(leaf) for i in range(LEAVES)},
        "ints": rng.integers(0, 1 << 30, leaf // 4 + 1, dtype=np.int32),
        "meta": {"names": [tag, "x"], "step": len(tag)},
    }


def same(a: Any, b: Any) -> bool:
    """Deep equality that compares arrays by dtype, shape and bytes."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def target(folder: Path, backend: str) -> Path:
    return folder / ("c" if backend == "dir" else f"c.{backend}")


def write(op: str, path: Path | str, backend: str, tag: str, name: str = ADDED) -> None:
    """The write a trial makes: ``dump`` the object over the path, or ``add`` it as ``name``."""
    if op == "dump":
        codecs_ser.dump(make_object(tag), path, backend=backend, durable=True)
    else:
        codecs_ser.add(path, make_object(tag), name=name, durable=True, replace=op == "replace")


def build(path: Path, backend: str, state: State) -> None:
    """Write ``state`` at ``path`` cleanly: a dump of the first object, adds of the rest
    (not durable: these writes are the test's, and fsyncs only make it slower)."""
    (name, tag), *rest = state
    codecs_ser.dump(make_object(tag), path, backend=backend, name=name, durable=False)
    for name, tag in rest:
        codecs_ser.add(path, make_object(tag), name=name, durable=False)


class Broken(Exception):
    """The path does not hold a complete, intact container of known objects."""


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def read_back(path: Path) -> State:
    """The objects at ``path`` as (name, tag) pairs, once the container verifies clean and
    each object equals the one its tag names; :class:`Broken` otherwise."""
    try:
        with codecs_ser.open(path) as c:
            found = []
            for name in c.objects:
                obj = c.load(name)
                tag = obj.get("tag") if isinstance(obj, dict) else None
                if not isinstance(tag, str) or not same(obj, make_object(tag)):
                    raise Broken(f"object {name!r} is none of the objects written")
                found.append((name, tag))
            problems = c.verify()
    except Broken:
        raise
    except Exception as e:
        raise Broken(describe(e)) from e
    if problems:
        raise Broken(f"verify() reports {problems[:3]}")
    return tuple(found)


def tree(root: Path) -> frozenset[str]:
    """Every file and folder (these with a trailing slash) under ``root``, relative to it."""
    out = set()
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel + "/"
        out.update(prefix + d + "/" for d in dirs)
        out.update(prefix + f for f in files)
    return frozenset(out)


class CleanTrees:
    """The files of a cleanly written folder container holding given objects, to tell what
    a killed writer left inside a folder container from what belongs there."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self._cache: dict[State, frozenset[str]] = {}

    def __call__(self, state: State) -> frozenset[str]:
        if state not in self._cache:
            ref = self._scratch / f"ref{len(self._cache)}"
            build(ref, "dir", state)
            self._cache[state] = tree(ref)
            shutil.rmtree(ref)
        return self._cache[state]


def leftovers(path: Path, state: State | None, clean: CleanTrees) -> list[str]:
    """What lies beside the container (its folder holds nothing else), and for a folder
    container, what lies inside it that a clean one holding ``state`` would not have."""
    left = sorted(n for n in os.listdir(path.parent) if n != path.name)
    if state is not None and path.is_dir():
        left += sorted(f"{path.name}/{f}" for f in tree(path) - clean(state))
    return left


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# -- the fork server ----------------------------------------------------------------


def _spawn(work: Callable[[], None], gate: tuple[int, int] | None = None) -> tuple[int, int]:
    """Fork a writer that runs ``work`` and exits 0, or 1 if it raises (with the error on
    a pipe and the traceback on stderr); with ``gate``, it first waits until every write
    end of that pipe is closed.  Returns the pid and the read end of the error pipe."""
    errors = os.pipe()
    pid = os.fork()
    if pid:
        os.close(errors[1])
        return pid, errors[0]
    code = 1
    try:
        os.close(errors[0])
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # stdout carries the server's replies
        if gate is not None:
            os.close(gate[1])
            os.read(gate[0], 1)
        work()
        code = 0
    except BaseException as e:
        os.write(errors[1], describe(e).encode("utf-8", "replace")[:4000])
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _reap(pid: int, errors: int) -> str:
    """Wait for a writer: "done", "killed", or how else it ended and why."""
    _, status = os.waitpid(pid, 0)
    with os.fdopen(errors, "rb") as f:
        why = f.read().decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return "killed" if signum == signal.SIGKILL else f"signal {signum}"
    code = os.waitstatus_to_exitcode(status)
    return "done" if code == 0 else f"exit {code}: {why}"


def _serve_run(op: str, path: str, backend: str, tag: str, delay: float | None) -> dict[str, Any]:
    """One writer, killed ``delay`` seconds after the fork (None: left to finish)."""
    make_object(tag)  # built before the fork: the clock is for the write alone
    start = time.perf_counter()
    pid, errors = _spawn(lambda: write(op, path, backend, tag))
    if delay is not None:
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)  # an exited writer stays a zombie until reaped: no pid reuse
    status = _reap(pid, errors)
    return {"status": status, "elapsed": time.perf_counter() - start}


def _serve_race(path: str, backend: str, writers: list[list[str]]) -> dict[str, Any]:
    """Writers that dump their lists of objects to one path, all starting at once."""
    for tags in writers:
        for tag in tags:
            make_object(tag)
    gate = os.pipe()

    def dump_all(tags: list[str]) -> None:
        for tag in tags:
            write("dump", path, backend, tag)

    start = time.perf_counter()
    spawned = [_spawn(functools.partial(dump_all, tags), gate) for tags in writers]
    os.close(gate[0])
    os.close(gate[1])  # the writers start now
    statuses = [_reap(*writer) for writer in spawned]
    return {"statuses": statuses, "elapsed": time.perf_counter() - start}


def serve() -> None:
    """The fork server's loop: a JSON request a line on stdin, a JSON reply a line on stdout."""
    tasks = "/proc/self/task"
    if os.path.isdir(tasks) and len(os.listdir(tasks)) != 1:
        raise SystemExit("the fork server has threads; forking it would not be safe")
    handlers = {"run": _serve_run, "race": _serve_race}
    out = sys.stdout.buffer

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message).encode() + b"\n")
        out.flush()

    reply({"ready": True})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        reply(handlers[request.pop("kind")](**request))


class ForkServer:
    """A single-threaded helper that has imported numpy and codecs_ser and forks a writer
    per request, and kills and reaps it: forking the test process itself is not safe
    once any test has started a thread."""

    def __init__(self) -> None:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        code = (
            f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_crash; test_crash.serve()"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert self.receive() == {"ready": True}

    def send(self, **request: Any) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        self._proc.stdin.flush()

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether a reply is waiting."""
        assert self._proc.stdout is not None
        return bool(select.select([self._proc.stdout], [], [], timeout)[0])

    def receive(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server exited ({self._proc.wait()}); see its stderr")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, **request: Any) -> dict[str, Any]:
        self.send(**request)
        return self.receive()

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


# -- kill trials --------------------------------------------------------------------


@dataclass
class Tally:
    """What a series of kill trials found, for one backend and operation."""

    backend: str
    op: str
    #: Median time of an uninterrupted write, in seconds.
    duration: float = 0.0
    trials: int = 0
    killed: int = 0
    #: Writers killed once their container was in place (during the clean-up after it).
    killed_after_commit: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Trials after whose kill temporary files were there (expected; the next write sweeps).
    left_by_kill: int = 0
    #: Leftovers still there after the next successful write (failures).
    left_after_write: int = 0
    failures: list[str] = field(default_factory=list)


def time_write(server: ForkServer, path: Path, op: str, backend: str) -> float:
    """How long an uninterrupted write takes in a forked writer, from fork to reaping;
    puts the old container back afterwards."""
    reply = server.call(kind="run", op=op, path=str(path), backend=backend, tag=NEW, delay=None)
    if reply["status"] != "done":
        raise RuntimeError(f"an uninterrupted {op} to {path} ended with {reply['status']}")
    remove(path)
    build(path, backend, STATES[op]["old"])
    return float(reply["elapsed"])


def next_write(
    tally: Tally, where: str, path: Path, backend: str, op: str, state: State, clean: CleanTrees
) -> None:
    """A successful write that must leave nothing of earlier killed writers: ``op`` is
    ``"add"`` (of a small object) or ``"dump"`` (of the old object, ready for the next trial)."""
    if op == "add":
        try:
            codecs_ser.add(path, make_object(PROBE), name=PROBE, durable=False)
        except Exception as e:
            tally.failures.append(f"{where}: the next add failed: {describe(e)}")
            return
        state = (*state, (PROBE, PROBE))
    else:
        try:
            build(path, backend, state)
        except Exception as e:
            tally.failures.append(f"{where}: the next dump failed: {describe(e)}")
            remove(path)
            build(path, backend, state)
    left = leftovers(path, state, clean)
    if left:
        tally.left_after_write += 1
        tally.failures.append(f"{where}: left after the next successful {op}: {left}")


def kill_trials(
    server: ForkServer,
    folder: Path,
    backend: str,
    op: str,
    trials: int,
    rng: random.Random,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Kill ``trials`` writers, each writing over the old container, at instants drawn
    uniformly over 1.2 times an uninterrupted write (the median of the last five
    timings, retaken now and then); after each, the path must hold the old or the new
    container, and the next successful write (alternately an add and a dump) must leave
    no temporary file behind."""
    work = folder / f"{backend}-{op}"
    scratch = folder / f"{backend}-{op}-clean"
    work.mkdir(parents=True)
    scratch.mkdir(parents=True)
    clean = CleanTrees(scratch)
    path = target(work, backend)
    states = STATES[op]
    build(path, backend, states["old"])
    tally = Tally(backend, op)
    timings = [time_write(server, path, op, backend) for _ in range(3)]
    recent = timings
    for i in range(trials):
        if i and i % RETIME == 0:
            timings.append(time_write(server, path, op, backend))
            recent = timings[-5:]
        duration = statistics.median(recent)
        delay = rng.uniform(0, 1.2 * duration)
        where = f"{backend} {op} trial {i} (kill at {delay * 1e3:.1f} of {duration * 1e3:.1f} ms)"
        reply = server.call(
            kind="run", op=op, path=str(path), backend=backend, tag=NEW, delay=delay
        )
        tally.trials += 1
        status = reply["status"]
        tally.killed += status == "killed"
        if status not in ("killed", "done"):
            tally.failures.append(f"{where}: the writer ended with {status}")
        found: State | None
        try:
            found = read_back(path)
        except Broken as e:
            found = None
            tally.outcomes["broken"] += 1
            beside = sorted(os.listdir(work))
            tally.failures.append(f"{where}: no complete container: {e}; the folder holds {beside}")
        else:
            outcome = next((k for k, v in states.items() if v == found), None)
            tally.outcomes[outcome or "other"] += 1
            tally.killed_after_commit += status == "killed" and outcome == "new"
            if outcome is None:
                tally.failures.append(f"{where}: holds {found}, neither the old nor the new")
            elif status == "done" and outcome != "new":
                tally.failures.append(f"{where}: the writer finished but the path holds the old")
        tally.left_by_kill += bool(leftovers(path, found, clean))
        if found is not None and i % 2 == 0:
            next_write(tally, where, path, backend, "add", found, clean)
        next_write(tally, where, path, backend, "dump", states["old"], clean)
        tally.duration = statistics.median(timings)
        if progress is not None:
            progress(tally)
    return tally


# -- racing writers -----------------------------------------------------------------


@dataclass
class Race:
    """What a run of concurrent writers and a reader found, for one backend."""

    backend: str
    writes: int = 0
    reads: Counter[str] = field(default_factory=Counter)
    #: Reads that raised a codecs_ser error or whose verify() reported problems, by message.
    errors: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def read_once(path: Path) -> tuple[str, str]:
    """One reader's look at the path: ("ok", tag); ("error", message) when a codecs_ser
    error was raised; ("verify", problems) when the object loaded but verify() then
    reported problems; ("bad", what) for anything else (another exception, a wrong object)."""
    try:
        found = read_back(path)
    except Broken as e:
        cause = e.__cause__
        if isinstance(cause, CodecsSerError):
            return "error", describe(cause)
        if str(e).startswith("verify() reports"):
            return "verify", str(e)
        return "bad", str(e)
    if len(found) != 1:
        return "bad", f"holds {found}"
    return "ok", found[0][1]


def read_one_shot(path: Path) -> tuple[str, str]:
    """As :func:`read_once`, through the one-shot calls, each of which opens the path
    again when a writer swaps the container while it reads."""
    try:
        obj = codecs_ser.load(path)
        problems = codecs_ser.verify(path)
        codecs_ser.load_arrays(path)
        codecs_ser.audit(path)
    except CodecsSerError as e:
        return "error", describe(e)
    except Exception as e:
        return "bad", describe(e)
    tag = obj.get("tag") if isinstance(obj, dict) else None
    if not isinstance(tag, str) or not same(obj, make_object(tag)):
        return "bad", "an object that is none of the objects written"
    if problems:
        return "verify", f"verify() reports {problems[:3]}"
    return "ok", tag


def gist(message: str) -> str:
    """A message without its hashes and paths, to count alike ones together."""
    message = re.sub(r"[0-9a-f]{16}", "<hash>", message)
    return re.sub(r"'[^']*'", "'...'", message)[:200]


def race(
    server: ForkServer,
    folder: Path,
    backend: str,
    writers: int,
    dumps: int,
    leaf: int = SMALL,
    reader: Callable[[Path], tuple[str, str]] = read_once,
) -> Race:
    """``writers`` processes dump ``dumps`` different objects each to one path while this
    process reads it in a loop; the end result must be the last object of one writer,
    every read a complete container of one object written (or, where the backend cannot
    swap atomically for readers, a codecs_ser error), and nothing left beside it."""
    work = folder / f"race-{backend}"
    scratch = folder / f"race-{backend}-clean"
    work.mkdir(parents=True)
    scratch.mkdir(parents=True)
    path = target(work, backend)
    plan = [[f"race-{w}-{j}:{leaf}" for j in range(dumps)] for w in range(writers)]
    written = {tag for tags in plan for tag in tags} | {f"race-init:{leaf}"}
    for tag in written:
        make_object(tag)
    result = Race(backend, writes=writers * dumps)
    build(path, backend, (("main", f"race-init:{leaf}"),))
    server.send(kind="race", path=str(path), backend=backend, writers=plan)
    while not server.ready():
        kind, what = reader(path)
        if kind == "ok" and what not in written:
            kind, what = "bad", f"object {what!r} was never written"
        result.reads[kind] += 1
        if kind in ("error", "verify"):
            result.errors[gist(what)] += 1
        elif kind == "bad":
            result.failures.append(f"{backend} race: a reader saw {what}")
    reply = server.receive()
    if any(s != "done" for s in reply["statuses"]):
        result.failures.append(f"{backend} race: writers ended with {reply['statuses']}")
    try:
        found = read_back(path)
    except Broken as e:
        result.failures.append(f"{backend} race: no complete container at the end: {e}")
        return result
    if found not in [(("main", tags[-1]),) for tags in plan]:
        result.failures.append(f"{backend} race: ends holding {found}, no writer's last object")
    left = leftovers(path, found, CleanTrees(scratch))
    if left:
        result.failures.append(f"{backend} race: left behind: {left}")
    return result


# -- full disks ---------------------------------------------------------------------


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class DiskBudget:
    """Files under ``root`` behave as on a disk with ``room`` bytes left: the write that
    reaches the end writes what fits and the next one fails with ENOSPC, as write(2)
    does; ``fsync_fails`` makes that fsync of a file (1 is the first) fail with ENOSPC, as
    it does where space is allocated late.  Installed by patching the os and io calls
    writers use; ``used`` and ``fsyncs`` count what a write did, to choose failure points."""

    def __init__(self, root: Path, room: int | None = None, fsync_fails: int | None = None) -> None:
        self.root = str(root.resolve()) + os.sep
        self.room = room
        self.fsync_fails = fsync_fails
        self.used = 0
        self.fsyncs = 0

    def ours(self, file: Any) -> bool:
        if isinstance(file, int):
            try:
                file = os.readlink(f"/proc/self/fd/{file}")
            except OSError:
                return False
        elif isinstance(file, (str, bytes, os.PathLike)):
            file = os.path.abspath(os.fsdecode(file))
        else:
            return False
        return bool(str(file).startswith(self.root))

    def allow(self, n: int) -> int:
        """How many of ``n`` bytes fit; ENOSPC if none do."""
        if self.room is None or n == 0:
            return n
        fits = min(n, self.room - self.used)
        if fits <= 0:
            raise _enospc()
        return fits

    def install(self, mp: pytest.MonkeyPatch) -> None:
        budget = self
        real_open, real_fdopen = builtins.open, os.fdopen
        real_write, real_fsync = os.write, os.fsync

        class File(io.FileIO):
            def write(self, b: Any) -> int:
                view = memoryview(b).cast("B")
                n = super().write(view[: budget.allow(view.nbytes)])
                budget.used += n or 0
                return n or 0

        def opener(real: Callable[..., Any]) -> Callable[..., Any]:
            def open_(
                file: Any, mode: str = "r", buffering: int = -1, *args: Any, **kw: Any
            ) -> Any:
                if not (set(mode) & set("wax+") and budget.ours(file)):
                    return real(file, mode, buffering, *args, **kw)
                raw = File(file, mode.replace("b", "").replace("t", ""))
                return raw if buffering == 0 else io.BufferedWriter(raw)

            return open_

        def write_(fd: int, data: Any) -> int:
            if not budget.ours(fd):
                return real_write(fd, data)
            view = memoryview(data).cast("B")
            n = real_write(fd, view[: budget.allow(view.nbytes)])
            budget.used += n
            return n

        def fsync_(fd: int) -> None:
            if budget.ours(fd) and stat.S_ISREG(os.fstat(fd).st_mode):
                budget.fsyncs += 1
                if budget.fsyncs == budget.fsync_fails:
                    raise _enospc()
            real_fsync(fd)

        mp.setattr(builtins, "open", opener(real_open))
        mp.setattr(os, "fdopen", opener(real_fdopen))
        mp.setattr(os, "write", write_)
        mp.setattr(os, "fsync", fsync_)
        for name in ("copy_file_range", "sendfile", "pwrite"):
            if hasattr(os, name):
                mp.setattr(os, name, self._counted(getattr(os, name), name))

    def _counted(self, real: Callable[..., int], name: str) -> Callable[..., int]:
        """os.copy_file_range(src, dst, count, ...), os.sendfile(dst, src, offset, count)
        and os.pwrite(fd, data, offset), limited and counted like write."""

        def call(*args: Any) -> int:
            a = list(args)
            dst = a[1] if name == "copy_file_range" else a[0]
            if not self.ours(dst):
                return real(*a)
            if name == "pwrite":
                a[1] = memoryview(a[1]).cast("B")[: self.allow(len(memoryview(a[1]).cast("B")))]
            else:
                at = 2 if name == "copy_file_range" else 3
                a[at] = self.allow(a[at])
            n = real(*a)
            self.used += n
            return n

        return call


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


DISK_OLD, DISK_NEW = f"disk-old:{SMALL * 2}", f"disk-new:{SMALL * 2}"
DISK_STATES: dict[str, dict[str, State]] = {
    "dump": {"old": (("main", DISK_OLD),), "new": (("main", DISK_NEW),)},
    "add": {"old": (("main", DISK_OLD),), "new": (("main", DISK_OLD), (ADDED, DISK_NEW))},
}


def contents(path: Path) -> dict[str, bytes | None]:
    """A file's bytes, or every file (with its bytes) and folder under a folder."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {f: None if f.endswith("/") else (path / f).read_bytes() for f in tree(path)}


def check_failed_write(
    e: BaseException, path: Path, op: str, errnos: tuple[int, ...], before: dict[str, Any]
) -> list[str]:
    """What is wrong after a write failed for want of space: the error must be an OSError
    with the errno and a note that the old container is unchanged, and the folder must
    hold that old container, byte for byte as ``before``, and nothing else."""
    wrong = []
    if not isinstance(e, OSError) or e.errno not in errnos:
        wrong.append(f"raised {describe(e)}, not an OSError with errno {errnos}")
    elif not any("unchanged" in note for note in getattr(e, "__notes__", [])):
        wrong.append(f"the {describe(e)} has no note saying the old container is unchanged")
    now = contents(path) if path.exists() else {}
    if now != before:
        changed = sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))
        wrong.append(f"the old container changed: {changed}")
    try:
        found = read_back(path)
    except Broken as b:
        wrong.append(f"the old container is broken: {b}")
    else:
        if found != DISK_STATES[op]["old"]:
            wrong.append(f"holds {found}, not the old container")
    left = sorted(n for n in os.listdir(path.parent) if n != path.name)
    if left:
        wrong.append(f"left beside it: {left}")
    return wrong


def _blocks(path: Path) -> int:
    """Bytes allocated to a file or a folder's files (what a tmpfs charges)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(
        os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, fs in os.walk(path) for f in fs
    )


def room_needed(scratch: Path, backend: str, op: str) -> int:
    """Bytes the write takes on the disk while it runs (the whole new file for tar and zip,
    whose add writes a full copy; the new members for a folder add)."""
    path = target(scratch, backend)
    build(path, backend, DISK_STATES[op]["old"])
    before = _blocks(path)
    write(op, path, backend, DISK_NEW)
    need = _blocks(path) - (before if backend == "dir" and op == "add" else 0)
    remove(path)
    return need


def tmpfs_trial(mount: Path, backend: str, op: str, room: int) -> list[str]:
    """A write on a real tmpfs that has ``room`` bytes left; returns what went wrong.  With
    too little room the write must fail leaving the old container, and succeed once the
    disk has room again; with enough, it must succeed."""
    work = mount / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    path = target(work, backend)
    build(path, backend, DISK_STATES[op]["old"])
    filler = mount / "filler"
    with open(filler, "wb") as f:
        st = os.statvfs(mount)
        fill = st.f_bavail * st.f_frsize - room
        if fill > 0:
            os.posix_fallocate(f.fileno(), 0, fill)
    where = f"{backend} {op} on a tmpfs with {room} bytes left"
    wrong = []
    before = contents(path)
    try:
        write(op, path, backend, DISK_NEW)
    except Exception as e:
        failed = check_failed_write(e, path, op, (errno.ENOSPC,), before)
        wrong = [f"{where}: {w}" for w in failed]
    else:
        wrong.append(f"{where}: the write succeeded")  # the caller decides if it may
    filler.unlink()
    try:
        write(op, path, backend, DISK_NEW)
        if read_back(path) != DISK_STATES[op]["new"]:
            wrong.append(f"{where}: the write with room again did not give the new container")
    except Exception as e:
        wrong.append(f"{where}: the write with room again failed: {describe(e)}")
    left = sorted(os.listdir(work))
    if left != [path.name]:
        wrong.append(f"{where}: after the write with room again, the folder holds {left}")
    return wrong


def tmpfs_main(mount: str, points: int = 3) -> int:
    """Runs inside a user and mount namespace with a small tmpfs at ``mount``: the write
    fails at ``points`` amounts of room from none to one page short, per backend and
    operation.  Prints a JSON line per trial; returns 1 if any went wrong."""
    root = Path(mount)
    scratch = root / "scratch"
    scratch.mkdir()
    bad = 0
    for backend in BACKENDS:
        for op in OPS:
            need = room_needed(scratch, backend, op)
            rooms = sorted(
                {int(need * k / max(points - 1, 1)) // PAGE * PAGE for k in range(points)}
            )
            rooms[-1] = need - PAGE
            for room in rooms:
                wrong = tmpfs_trial(root, backend, op, room)
                line = {"backend": backend, "op": op, "room": room, "need": need, "wrong": wrong}
                print(json.dumps(line), flush=True)
                bad += bool(wrong)
    return 1 if bad else 0


def run_in_tmpfs(
    mount: Path, size: str, points: int, timeout: float
) -> subprocess.CompletedProcess[str]:
    """:func:`tmpfs_main` in a child with a private tmpfs of ``size`` at ``mount``, mounted
    in a user namespace so no privilege is needed where the kernel allows those."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_crash; "
        f"sys.exit(test_crash.tmpfs_main({str(mount)!r}, {points}))"
    )
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" -c "$4"'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", size, str(mount), sys.executable, code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tmpfs_available(mount: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1"', "sh", str(mount)]
    return subprocess.run(probe, capture_output=True).returncode == 0


# -- tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    s = ForkServer()
    yield s
    s.close()


@pytest.mark.parametrize("op", (*OPS, "replace"))
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_writer_leaves_old_or_new(
    server: ForkServer, tmp_path: Path, backend: str, op: str
) -> None:
    seed = random.randrange(1 << 32)
    tally = kill_trials(server, tmp_path, backend, op, TRIALS, random.Random(seed))
    assert tally.failures == [], f"seed {seed}"
    assert tally.killed > 0  # the instants did fall on the write


@pytest.mark.parametrize("backend", BACKENDS)
def test_racing_writers_and_a_reader(server: ForkServer, tmp_path: Path, backend: str) -> None:
    result = race(server, tmp_path, backend, writers=4, dumps=5)
    assert result.failures == []
    assert result.reads["ok"] > 0
    if backend != "dir":
        # A file is replaced by one rename and read through one descriptor: never torn.
        assert result.errors == Counter()
    # A folder is swapped whole, but a reader opens its members one by one, so one that
    # reads across a swap meets members of the new container; the checksums tell it so.


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_shot_reads_never_see_a_swap(server: ForkServer, tmp_path: Path, backend: str) -> None:
    """load, verify, load_arrays and audit of a path open it again when a writer swaps a
    dir container under them: like a tar reader, they never see the swap."""
    result = race(server, tmp_path, backend, writers=4, dumps=5, reader=read_one_shot)
    assert result.failures == []
    assert result.reads["ok"] > 0
    assert result.errors == Counter()


class FullFile(io.RawIOBase):
    """A writable stream on a disk with ``room`` bytes left."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = min(memoryview(b).nbytes, self.room - self.written)
        if n <= 0 and memoryview(b).nbytes:
            raise _enospc()
        self.written += n
        return n


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_disk_full_file_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.chdir(tmp_path)
    obj = make_object(DISK_NEW)
    total = len(codecs_ser.dumps(obj, backend=backend))
    for room in (0, 1, total // 2, total - 1):
        out = FullFile(room)
        with pytest.raises(OSError) as info:
            codecs_ser.dump(obj, out, backend=backend)
        assert info.value.errno == errno.ENOSPC
        assert out.written == room
    assert os.listdir(tmp_path) == []


FAILURE_POINTS = ("first byte", "middle", "manifest", "first fsync", "last fsync")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="tells files apart by /proc")
@pytest.mark.parametrize("point", FAILURE_POINTS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_disk_full_leaves_old_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, op: str, point: str
) -> None:
    scratch, work = tmp_path / "scratch", tmp_path / "work"
    scratch.mkdir()
    work.mkdir()
    # What the write does when there is room: the bytes and fsyncs to fail at.
    dry = target(scratch, backend)
    build(dry, backend, DISK_STATES[op]["old"])
    before_bytes = tree_bytes(dry)
    counting = DiskBudget(scratch)
    with monkeypatch.context() as mp:
        counting.install(mp)
        write(op, dry, backend, DISK_NEW)
    grown = tree_bytes(dry) - (before_bytes if backend == "dir" and op == "add" else 0)
    assert counting.used >= grown > 0, "a write path the simulated disk does not see"
    total = counting.used
    budget = {
        "first byte": DiskBudget(work, room=0),
        "middle": DiskBudget(work, room=total // 2),
        "manifest": DiskBudget(work, room=total - 1),
        "first fsync": DiskBudget(work, fsync_fails=1),
        "last fsync": DiskBudget(work, fsync_fails=counting.fsyncs),
    }[point]
    path = target(work, backend)
    build(path, backend, DISK_STATES[op]["old"])
    before = contents(path)
    with monkeypatch.context() as mp:
        budget.install(mp)
        with pytest.raises(OSError) as info:
            write(op, path, backend, DISK_NEW)
    assert check_failed_write(info.value, path, op, (errno.ENOSPC,), before) == []
    write(op, path, backend, DISK_NEW)  # with room again
    assert read_back(path) == DISK_STATES[op]["new"]
    assert os.listdir(work) == [path.name]


def test_disk_full_on_a_real_tmpfs(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    if not tmpfs_available(mount):
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    done = run_in_tmpfs(mount, "16m", points=3, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
