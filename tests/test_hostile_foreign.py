"""Hostile and damaged foreign files (tests/foreign_corpus.py): every reading call meets a
clear codecs_ser error or returns exactly the arrays the file holds; nothing a pickle
names runs; no crash, hang or large allocation.  Each case runs in a forked child
with the bounds of tests/test_hostile.py."""

from __future__ import annotations

import contextlib
import io
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import foreign_corpus as fc
import pytest
from test_hostile import KILL_AFTER, MAX_SECONDS, MAX_TRACED, isolated, readable

import codecs_ser
from codecs_ser import _cli
from codecs_ser.errors import CodecsSerError, FormatError


def _inspect(path: Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return _cli.main(["inspect", os.fspath(path)])


def _calls(path: Path, out: Path) -> dict[str, Any]:
    def opened() -> Any:
        with codecs_ser.open(path) as c:
            return list(c.entries)

    return {
        "open": opened,
        "load_arrays": lambda: sorted(codecs_ser.load_arrays(path)),
        "mmap": lambda: sorted(codecs_ser.load_arrays(path, mmap=True)),
        "bytes": lambda: sorted(codecs_ser.load_arrays(path.read_bytes())),
        "load": lambda: codecs_ser.load(path) and None,
        "audit": lambda: codecs_ser.audit(path),
        "verify": lambda: codecs_ser.verify(path),
        "inspect": lambda: _inspect(path),
        "convert": lambda: _cli.main(["convert", os.fspath(path), os.fspath(out)]),
    }


def _run(path: Path, out: Path, expected: Any, name: str) -> dict[str, Any]:
    problems: list[str] = []
    tracemalloc.start()
    start = time.perf_counter()
    for call, fn in _calls(path, out).items():
        try:
            value = fn()
        except CodecsSerError as e:
            if not readable(str(e)):
                problems.append(f"{call}: unreadable message {str(e)!r}")
            if call in ("load_arrays", "mmap", "bytes") and expected != "raise":
                problems.append(f"{call}: raised {e!r}, wanted {expected}")
            if call == "load_arrays" and expected == "raise" and not isinstance(e, FormatError):
                problems.append(f"{call}: raised {type(e).__name__}, wanted FormatError")
            continue
        except BaseException as e:  # a crash of the library, not a refusal
            problems.append(
                f"{call}: raised {type(e).__name__} (not a CodecsSerError): {e!r}"[:400]
            )
            continue
        if call == "mmap" and name in fc.UNVERIFIED_WITH_MMAP:
            continue
        if call in ("load_arrays", "mmap", "bytes") and value != expected:
            problems.append(f"{call}: returned {value!r}, wanted {expected!r}"[:400])
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"problems": problems, "seconds": seconds, "peak": peak}


@pytest.mark.parametrize("name", sorted(fc.CASES))
def test_hostile_foreign_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make, expected = fc.CASES[name]
    path = tmp_path / "input.bin"
    path.write_bytes(make())
    monkeypatch.chdir(tmp_path)  # where a pickle's command would leave its sentinel
    report = isolated(
        lambda: _run(path, tmp_path / "out.tar", expected, name), timeout=KILL_AFTER * 2
    )
    problems = list(report["problems"])
    if report.get("seconds", 0) > MAX_SECONDS * 2:
        problems.append(f"took {report['seconds']:.2f} s")
    if report.get("peak", 0) > MAX_TRACED:
        problems.append(f"traced memory peaked at {report['peak'] / 2**20:.0f} MiB")
    if (tmp_path / fc.SENTINEL).exists():
        problems.append("a command named in the pickle ran")
    assert not problems
