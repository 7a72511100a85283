"""Pickled skeletons written by a structure-aware generator (tests/pickle_fuzz.py) load
under ``trusted=False`` without breaking an invariant: only CodecsSerError escapes, no
refused global loads, what loads is constructible, the process is unchanged, and time
and memory stay bounded; known attacks are explicit cases.

Executions run in forked workers (tests/pickle_fuzz_campaign.py), so a crash or a hang
is a failure with its input, not the end of the run.  The same seeds run every time;
tests/stress/fuzz_pickle_long.py explores more.
"""

from __future__ import annotations

import collections
import fractions
import io
import pathlib
import pickle
import pickletools
from pathlib import Path

import invariants
import numpy as np
import pickle_fuzz as pf
import pickle_fuzz_campaign as pc
import pickle_fuzz_exec as px
import pytest

import codecs_ser
from codecs_ser.errors import FormatError, UntrustedError

#: Generated executions per CI run.  Ordinary programs run at several hundred a second;
#: each slow or crashing one adds up to its time bound, or a worker restart (about 50 s
#: in all while the current findings stand).
EXECUTIONS = 3000
ATTACK_NAMES = sorted(pf.ATTACKS)


def _failures(report: pc.Report) -> str:
    return "\n".join(report.lines())


# -- the harness itself ---------------------------------------------------------------


def test_generation_is_deterministic() -> None:
    for seed in range(40):
        assert pf.generate(seed)[0] == pf.generate(seed)[0]


def _opcodes(data: bytes) -> tuple[set[str], bool]:
    """Opcode names up to the first malformed one; whether the whole pickle is well-formed
    (stack and marks consistent, one value left)."""
    seen: set[str] = set()
    try:
        for op, _, _ in pickletools.genops(data):
            seen.add(op.name)
        pickletools.dis(data, out=io.StringIO())
    except Exception:
        return seen, False
    return seen, True


def test_programs_are_mostly_well_formed_and_use_every_opcode() -> None:
    """Well-formed programs reach the calls; every opcode shows up somewhere."""
    seen: set[str] = set()
    good = total = 0
    for seed in range(1500):
        data = pf.generate(seed)[0]
        if len(data) > 50_000:
            continue
        ops, ok = _opcodes(data)
        seen |= ops
        good += ok
        total += 1
    assert good >= 0.85 * total, f"only {good} of {total} well-formed"
    every = {op.name for op in pickletools.opcodes}
    assert every - seen == set(), f"never generated: {sorted(every - seen)}"


def test_a_pickle_goes_through_the_public_api_in_a_real_container() -> None:
    data = pickle.dumps({"x": {1, 2}}, protocol=5)
    assert codecs_ser.loads(px.as_container(data), trusted=False) == {"x": {1, 2}}
    with pytest.raises(UntrustedError):
        codecs_ser.loads(px.as_container(pf.ATTACKS["refused-global-getattr"]))


# -- the invariants catch what they should -------------------------------------------------


def test_the_process_snapshot_sees_a_patched_class_and_an_import() -> None:
    snap = invariants.ProcessSnapshot.take()
    assert snap.changes() == []
    pathlib.PurePosixPath._fuzz_probe = 1  # type: ignore[attr-defined]
    try:
        assert any("PurePosixPath" in c for c in snap.changes())
    finally:
        del pathlib.PurePosixPath._fuzz_probe  # type: ignore[attr-defined]
    assert snap.changes() == []
    import sys

    sys.modules["fuzz_probe_module"] = sys  # type: ignore[assignment]
    try:
        assert any("fuzz_probe_module" in c for c in snap.changes())
        with pytest.raises(AssertionError, match="fuzz_probe_module"):
            snap.assert_unchanged()
    finally:
        del sys.modules["fuzz_probe_module"]


def test_check_constructible_refuses_impossible_objects() -> None:
    import datetime

    path = pathlib.PurePosixPath("a/b")
    path._str = "/etc/passwd"  # type: ignore[attr-defined]
    frac = fractions.Fraction(1, 2)
    frac._denominator = 0  # type: ignore[attr-defined]
    deep: tuple[object, ...] = ()
    for _ in range(5000):
        deep = (deep,)
    counter: collections.Counter[str] = collections.Counter()
    counter.x = 1  # type: ignore[attr-defined]
    bad = {
        "path": path,
        "fraction": frac,
        "date": datetime.date(b"\x07\xe4\x02\x1f"),  # type: ignore[call-overload]
        "deep": deep,
        "counter": counter,
        "module": np,
    }
    for name, value in bad.items():
        assert invariants.constructible_problems(value), name
    good = [
        pathlib.PurePosixPath("a/b"),
        fractions.Fraction(3, 6),
        datetime.datetime(2020, 1, 2, 3, 4, 5, fold=1, tzinfo=datetime.timezone.utc),
        collections.deque([1], 3),
        collections.defaultdict(list),
        np.arange(3),
        frozenset({(1, 2)}),
        range(5),
    ]
    invariants.check_constructible(good)


def test_only_library_errors() -> None:
    def boom() -> None:
        raise FormatError("bad")

    assert invariants.only_library_errors(lambda: 5) == (5, None)
    assert isinstance(invariants.only_library_errors(boom)[1], FormatError)
    with pytest.raises(AssertionError, match="KeyError"):
        invariants.only_library_errors(lambda: {}["x"])


# -- known attacks, and a bounded fuzz run ---------------------------------------------------


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_known_attack(name: str, tmp_path: Path) -> None:
    index = ATTACK_NAMES.index(name)
    report = pc.run(
        px.from_attack, range(index, index + 1), out=str(tmp_path), label="attack", kill_after=10
    )
    assert report.executions == 1
    assert not report.findings, _failures(report)


def test_generated_pickles(tmp_path: Path) -> None:
    report = pc.run(px.from_seed, range(EXECUTIONS), out=str(tmp_path), kill_after=10)
    assert report.executions == EXECUTIONS
    assert not report.findings, (
        f"{len(report.findings)} distinct findings (reproducers in {tmp_path}/findings):\n"
        + _failures(report)
    )
