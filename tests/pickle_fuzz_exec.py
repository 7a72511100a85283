"""One execution of a generated pickle, and the invariants checked after it.

An execution unpickles a skeleton with ``unpickle_skeleton(data, resolve_leaf,
trusted=False)``, or (one in ten) loads a real container whose pickled skeleton was
replaced by it, through ``codecs_ser.loads``.  Then: any exception is a
CodecsSerError; a pickle naming a refused global never loads and never calls it; what
it returned passes ``check_constructible``; the process is as it was
(``ProcessSnapshot``); and it stayed within a time and a memory bound.  Each broken
invariant is a line whose *signature* (numbers and quoted text masked) tells distinct
findings apart.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import os
import re
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import invariants
import numpy as np
import pickle_fuzz as pf

from codecs_ser.errors import FormatError

#: An execution must finish within this many seconds, plus PER_BYTE for each byte of
#: the pickle (the pure-Python unpickler takes about a microsecond per opcode) ...
TIME_BOUND = 2.0
PER_BYTE = 3e-6
#: ... and grow the peak resident memory by at most this many bytes.
MEMORY_BOUND = 256 << 20


class Hang(BaseException):
    """Raised by the alarm: an execution ran well past its time bound."""


@functools.cache
def leaves() -> dict[int, np.ndarray]:
    """The arrays the leaf references of a generated pickle resolve to (read-only)."""
    t = np.arange(1 << 15, dtype=np.float64)
    colliding = (1000003.0 * t - 1j * t).astype(np.complex128)  # every item hashes alike
    out = {
        0: np.arange(1 << 10, dtype=np.uint8).reshape(1, 1 << 10),
        1: colliding,
        2: np.arange(64, dtype=np.int64),
        3: np.ones((1, 1 << 22), dtype=np.uint8),  # 4 MiB that len() calls 1
        4: colliding.reshape(-1, 2),  # rows are (key, value) pairs for dict()
    }
    for a in out.values():
        a.flags.writeable = False
    return out


def resolve_leaf(index: Any) -> np.ndarray:
    found = leaves().get(index) if type(index) is int else None
    if found is None:
        raise FormatError(f"the skeleton refers to entry {index!r}, which does not exist")
    return found


def register_extensions() -> None:
    """Give EXT1/2/4 codes meaning in this process, as a host application could."""
    for code, name in pf.EXTENSIONS.items():
        module, _, attr = name.rpartition(".")
        if copyreg._inverted_registry.get(code) != (module, attr):  # type: ignore[attr-defined]
            copyreg.add_extension(module, attr, code)


@functools.cache
def _container() -> Any:
    """A real container with a pickled skeleton, taken apart (hostile_corpus.draft)."""
    import hostile_corpus as hc

    return hc.draft("pickled")


def as_container(data: bytes) -> bytes:
    """A sealed tar container whose pickled skeleton is ``data``."""
    import hostile_corpus as hc

    d = _container()
    d.member(hc.SKELETON_PICKLE).data = data
    d.manifest["objects"][0]["globals"] = []
    return hc.render_tar(d)


def load(data: bytes, via_api: bool) -> Any:
    if via_api:
        import codecs_ser

        return codecs_ser.loads(as_container(data), trusted=False)
    from codecs_ser._safe_pickle import unpickle_skeleton

    return unpickle_skeleton(data, resolve_leaf, trusted=False)


# -- one execution and its checks ------------------------------------------------------


@dataclass
class Verdict:
    """What one execution broke (nothing: ``problems`` is empty)."""

    problems: list[str] = field(default_factory=list)
    outcome: str = ""
    seconds: float = 0.0
    #: The process may no longer be as it was: a worker should start afresh.
    tainted: bool = False


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def where(e: BaseException) -> str:
    """The innermost frame of an exception: what tells two escapes apart."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.name}"


def execute(
    data: bytes,
    names: set[str],
    *,
    via_api: bool,
    snapshot: invariants.ProcessSnapshot,
    time_bound: float = TIME_BOUND,
    memory_bound: int = MEMORY_BOUND,
    alarm: float | None = None,
) -> Verdict:
    """Run one pickle and check every invariant; ``alarm``: interrupt it after that long."""
    v = Verdict()
    pf.CANARY_CALLS.clear()
    rss = _peak_rss()
    started = time.perf_counter()
    value: Any = None
    if alarm:
        signal.setitimer(signal.ITIMER_REAL, alarm)
    try:
        try:
            value, error = invariants.only_library_errors(lambda: load(data, via_api))
            v.outcome = (
                f"error {type(error).__name__}" if error else f"value {type(value).__name__}"
            )
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except AssertionError as e:
        cause = e.__cause__ or e
        v.outcome = f"escaped {type(cause).__name__}"
        v.problems.append(f"escaped {type(cause).__name__} at {where(cause)}: {str(cause)[:200]}")
        v.tainted = isinstance(cause, (MemoryError, RecursionError))
    except Hang:
        v.outcome = "interrupted"
        v.problems.append(f"over the time bound: still running after {alarm:.1f} s (interrupted)")
        v.tainted = True
    v.seconds = time.perf_counter() - started
    time_bound += PER_BYTE * len(data)
    if v.seconds > time_bound and v.outcome != "interrupted":
        v.problems.append(f"over the time bound: {v.seconds:.1f} s (bound {time_bound:.1f} s)")
    grown = _peak_rss() - rss
    if grown > memory_bound:
        v.problems.append(f"over the memory bound: peak RSS grew {grown >> 20} MiB")
        v.tainted = True
    refused = sorted(names & set(pf.REFUSED))
    if refused and v.outcome.startswith("value"):
        v.problems.append(f"loaded although it names refused globals {refused}")
    if pf.CANARY_CALLS:
        v.problems.append("called a refused global (the canary)")
    if v.outcome.startswith("value"):
        v.problems += invariants.constructible_problems(value)
    del value
    changed = snapshot.changes()
    if changed:
        v.problems += changed
        v.tainted = True
    return v


_MASKS = (
    (re.compile(r"\[[^\]]*\]"), "[…]"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?"), "N"),
)


def signature(problem: str) -> str:
    """A problem with its numbers and quoted text masked: what a distinct finding is."""
    head = problem.split(": ", 2)
    if problem.startswith("escaped"):
        problem = ": ".join(head[:1])  # type and place, not the message
    elif problem.startswith("over the"):
        problem = head[0]
    for pattern, mask in _MASKS:
        problem = pattern.sub(mask, problem)
    return problem[:160]


def cause_hint(program: pf.Program | None) -> str:
    """What a generated program did that can be slow or crash (repeats, colliding keys,
    deep tuples, leaves, class patching): a hint added to time, memory, crash findings."""
    if program is None:
        return ""
    kinds = sorted({re.sub(r"-\d+", "", n) for n in program.notes})
    return ",".join(kinds)


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


#: A pickle using the text opcodes, whose first use imports a codec (raw-unicode-escape).
_WARM_UP = b"\x80\x02(Va\nS'b'\nU\x01cK\x00Qt."


def warm() -> None:
    """Do the slow one-time work (the leaves, the container to put pickles in) in the
    parent, before workers fork, so a fresh worker starts in milliseconds."""
    leaves()
    _container()


def prepare_worker() -> invariants.ProcessSnapshot:
    """Make this process ready to execute pickles: extension codes registered, warnings
    as errors, lazy imports done (one load of each kind), the alarm; then its snapshot."""
    import warnings

    warm()
    register_extensions()
    warnings.simplefilter("error")
    signal.signal(signal.SIGALRM, _alarm)
    for via_api in (False, True):
        with contextlib.suppress(Exception):
            load(_WARM_UP, via_api)
    return invariants.ProcessSnapshot.take()


def limit_address_space(extra: int = 2 << 30) -> None:
    """Turn a runaway allocation into a MemoryError instead of exhausting the machine."""
    with open("/proc/self/status") as f:
        vm = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")), 0)
    if vm:
        resource.setrlimit(
            resource.RLIMIT_AS, (vm + extra, resource.getrlimit(resource.RLIMIT_AS)[1])
        )


Make = Callable[[int], tuple[bytes, set[str], bool, "pf.Program | None"]]


def from_seed(seed: int) -> tuple[bytes, set[str], bool, pf.Program | None]:
    """The generated pickle of a seed: its bytes, globals, whether it goes through the
    public API, and its model."""
    data, program = pf.generate(seed)
    return data, program.names, seed % 10 == 9, program


def from_attack(index: int) -> tuple[bytes, set[str], bool, pf.Program | None]:
    """The pickle of a known attack (by its index in ``sorted(ATTACKS)``)."""
    name = sorted(pf.ATTACKS)[index]
    return pf.ATTACKS[name], set(pf.ATTACK_REFUSED.get(name, ())), False, None
