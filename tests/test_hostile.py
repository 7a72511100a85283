"""Every hostile or damaged container of ``hostile_corpus`` meets a clear error or gives
back exactly what was written: no crash, no hang, no code run, no write, no file read
outside the container, and bounded time and memory.

Each case runs in a forked child, so a case that would crash the interpreter, hang
in C code or exhaust memory fails alone, with what happened, instead of taking the
suite down.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import os
import pickle
import resource
import select
import signal
import stat
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hostile_corpus as hc
import numpy as np
import pytest
from invariants import ProcessSnapshot, constructible_problems

import codecs_ser
from codecs_ser import _cli
from codecs_ser._safe_pickle import DEFAULT_ALLOWED
from codecs_ser.errors import CodecsSerError, FormatError, IntegrityError, UntrustedError

#: What the library and the standard library import on first need for reasons of their
#: own, imported up front so that each case's process snapshot sees only what a hostile
#: file made a load import.
FIRST_NEED = (
    "codecs_ser.backends.dir",  # imports ctypes, for renameat2
    "codecs_ser.backends.tar",
    "codecs_ser.backends.zip",
    "encodings.cp437",  # zipfile decodes old-style member names with it
    "encodings.raw_unicode_escape",  # the unpickler decodes protocol 0 text with it
)
for _module in FIRST_NEED:
    importlib.import_module(_module)

#: Bounds every case must stay within (for all six calls together).  The time bound
#: catches hangs and quadratic work, not speed: the compression bombs, which inflate up
#: to the limit that stops them, take about 1 s alone and twice that on a busy machine.
MAX_SECONDS = 4.0
MAX_TRACED = 64 << 20
#: A child still running after this is reported as hung and killed.
KILL_AFTER = 8.0
#: Address space a child may add before an allocation fails (instead of the machine
#: running out of memory when a bound is missing).
HEADROOM = 3 << 30

# -- what the calls return --------------------------------------------------------------


def _open(path: Path) -> Any:
    with codecs_ser.open(path) as c:
        return (c.objects, list(c.entries))


def _inspect(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = _cli.main(["inspect", os.fspath(path)])
    return rc, out.getvalue(), err.getvalue()


def _table(stdout: str) -> list[str]:
    """The rows inspect prints for the entries: the content it shows, path aside."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("name "))
    return lines[start:]


CALL: dict[str, Callable[[Path], Any]] = {
    "open": _open,
    "load": lambda p: codecs_ser.load(p, trusted=False),
    "load_arrays": codecs_ser.load_arrays,
    "audit": codecs_ser.audit,
    "verify": codecs_ser.verify,
    "inspect": _inspect,
}


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares types, dtypes, shapes and bytes of arrays."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ma.MaskedArray):
        return (
            same(np.asarray(a.data), np.asarray(b.data))
            and same(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
            and a.fill_value == b.fill_value
        )
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def readable(message: str) -> bool:
    """A message a user can act on: a few words, not a bare repr, a traceback or an
    operating system error."""
    text = message.strip()
    words = [w for w in text.split() if any(ch.isalpha() for ch in w)]
    return (
        len(words) >= 3
        and not (text[:1] in "[({" and text[-1:] in "])}")
        and "Traceback" not in text
        and "[Errno" not in text
    )


# -- one case, in a child process -----------------------------------------------------------


def _result(call: str, path: Path) -> tuple[str, Any]:
    """("ok", value) | ("error", exception) | ("problems", list) for verify,
    | ("exit", (status, stderr)) for a failing CLI."""
    try:
        value = CALL[call](path)
    except CodecsSerError as e:
        return "error", e
    if call == "verify" and value:
        return "problems", value
    if call == "inspect":
        rc, out, err = value
        if rc != 0:
            return "exit", (rc, err)
        return "ok", _table(out)
    return "ok", value


def _check(case: hc.Case, call: str, path: Path, baseline: dict[str, Any]) -> str | None:
    """Why the call did not do what the case says is correct, or None."""
    want = case.outcome[call]
    try:
        kind, value = _result(call, path)
    except BaseException as e:  # a crash of the library, not a refusal
        return f"{call}: raised {type(e).__name__} (not a CodecsSerError): {e!r}"[:600]
    raised = _raised_as_expected(case, call, kind, value)
    if call == "load" and kind == "ok":
        impossible = constructible_problems(value)
        if impossible:
            return f"load: returned impossible objects: {'; '.join(impossible)}"[:600]
    if call == "audit" and case.audit_globals is not None and want != "raise":
        wanted = sorted(set(case.audit_globals))
        if kind == "ok" and value == wanted:
            return None
        return f"audit: wanted {wanted}, got {kind} {_short(value)}"
    if kind == "ok":
        if want in ("same", "either") and same(value, baseline[call]):
            return None
        if want == "runs":
            return None
        if want == "raise":
            return f"{call}: wanted {case.expect.__name__}, returned {_short(value)}"
        return f"{call}: returned content that differs from what was written: {_short(value)}"
    if want in ("raise", "either") and raised is None:
        return None
    return f"{call}: wanted {want}, got {kind} {raised or _short(value)}"


def _raised_as_expected(case: hc.Case, call: str, kind: str, value: Any) -> str | None:
    """None if the refusal is the expected one with a readable message, else why not."""
    if kind == "error":
        e = value
        if not isinstance(e, case.expect):
            return f"{type(e).__name__} instead of {case.expect.__name__}: {e}"
        if not readable(str(e)):
            return f"unreadable message {str(e)!r}"
        if isinstance(e, UntrustedError) and case.audit_globals is not None:
            forbidden = sorted({g for g in case.audit_globals if g not in DEFAULT_ALLOWED})
            if e.globals != forbidden:
                return f"UntrustedError names {e.globals}, not {forbidden}"
        return None
    if kind == "problems":
        messages = [m for _, m in value]
        if not all(readable(m) for m in messages):
            return f"unreadable problems {value!r}"
        if case.expect is IntegrityError and not any("checksum mismatch" in m for m in messages):
            return f"problems {value!r} name no checksum mismatch"
        return None
    if kind == "exit":
        rc, err = value
        message = err.removeprefix("codecs-ser: error: ")
        if rc != 2 or not err.startswith("codecs-ser: error: ") or not readable(message):
            return f"inspect exited {rc} with {err!r}"
        return None
    return f"returned {_short(value)}"


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to print"
    return text if len(text) < 300 else text[:300] + "..."


def _run_calls(case: hc.Case, path: Path, baseline: dict[str, Any]) -> dict[str, Any]:
    before = ProcessSnapshot.take()  # allowed classes and functions, modules, registries
    tracemalloc.start()
    start = time.perf_counter()
    problems = [p for call in hc.CALLS if (p := _check(case, call, path, baseline))]
    elapsed = time.perf_counter() - start
    problems.extend(f"changed the process: {c}" for c in before.changes())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"problems": problems, "seconds": elapsed, "peak": peak}


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def isolated(fn: Callable[[], dict[str, Any]], timeout: float = KILL_AFTER) -> dict[str, Any]:
    """Run ``fn`` in a forked child; what it returns, or what killed it."""
    r, w = os.pipe()
    # The child's collector then leaves the parent's objects alone: touching them all
    # would copy every page of the heap.
    gc.freeze()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: we exec nothing
        pid = os.fork()
    if pid:
        gc.unfreeze()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code = 0
        try:
            if _vm_bytes():
                soft = _vm_bytes() + HEADROOM
                resource.setrlimit(
                    resource.RLIMIT_AS, (soft, resource.getrlimit(resource.RLIMIT_AS)[1])
                )
            out = fn()
        except BaseException as e:
            out = {"problems": [f"the harness failed: {type(e).__name__}: {e}"]}
            code = 1
        try:
            with os.fdopen(w, "wb") as f:
                f.write(pickle.dumps(out))
        finally:
            os._exit(code)
    os.close(w)
    data = bytearray()
    deadline = time.monotonic() + timeout
    with os.fdopen(r, "rb", buffering=0) as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"problems": [f"hung: still running after {timeout:.0f} s (killed)"]}
            chunk = f.read(1 << 16)
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        return {"problems": [f"the interpreter crashed with {sig}"]}
    if not data:
        return {"problems": [f"the child exited with status {os.WEXITSTATUS(status)}, no result"]}
    return pickle.loads(bytes(data))


# -- what must not change ------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under root without following links or opening special files."""
    out: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[rel] = ("file", st.st_mode, f.read())
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = ("other", st.st_mode, st.st_mtime_ns)
    return out


class FifoWatch:
    """Tells whether anyone opened a FIFO for reading, without letting that open block.

    A thread waits to open the FIFO for writing, which completes only when a reader
    opens it; then it closes at once, so the reader sees end of file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = False
        self._done = False
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        if not self._done:
            self.opened = True
        os.close(fd)

    def stop(self) -> bool:
        self._done = True
        time.sleep(0.01)
        if self._thread.is_alive():
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self._thread.join(5)
            os.close(fd)
        return self.opened


# -- baselines: what the intact containers give ------------------------------------------------


@pytest.fixture(scope="session")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per base object, what each call returns for an intact dump of it."""
    out = {}
    for base, make in hc.BASES.items():
        path = tmp_path_factory.mktemp("baseline") / f"{base}.tar"
        obj = make()
        codecs_ser.dump(obj, path)
        rc, stdout, _ = _inspect(path)
        assert rc == 0
        out[base] = {
            "open": _open(path),
            "load": obj,
            "load_arrays": codecs_ser.load_arrays(path),
            "audit": codecs_ser.audit(path),
            "verify": [],
            "inspect": _table(stdout),
        }
    return out


# -- the cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", hc.CASES, ids=[c.id for c in hc.CASES])
def test_hostile_container(
    case: hc.Case, tmp_path: Path, baselines: dict[str, dict[str, Any]]
) -> None:
    path = case.build(tmp_path)
    before = snapshot(tmp_path)
    watch = FifoWatch(tmp_path / case.fifo) if case.fifo else None
    try:
        report = isolated(lambda: _run_calls(case, path, baselines[case.base]))
    finally:
        fifo_opened = watch.stop() if watch else False
    problems = list(report["problems"])
    if report.get("seconds", 0) > MAX_SECONDS:
        problems.append(f"took {report['seconds']:.2f} s")
    if report.get("peak", 0) > MAX_TRACED:
        problems.append(f"traced memory peaked at {report['peak'] / 2**20:.0f} MiB")
    if fifo_opened:
        problems.append(f"{case.fifo} outside the container was opened for reading")
    if snapshot(tmp_path) != before:
        problems.append("the case folder changed: something was written")
    assert not (tmp_path / hc.SENTINEL).exists(), "the payload ran"
    assert not problems, "\n".join(problems)


def test_the_corpus_is_large_and_distinct() -> None:
    ids = [c.id for c in hc.CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 300
    for backend in hc.BACKENDS:
        assert sum(c.backend == backend for c in hc.CASES) >= 60, backend


@pytest.mark.parametrize("base", sorted(hc.BASES))
@pytest.mark.parametrize(
    "layout",
    [
        ("tar", {}),
        ("tar", {"trailer": False}),
        ("zip", {}),
        ("zip", {"comment": False}),
        ("dir", {}),
    ],
    ids=["tar", "tar-without-trailer", "zip", "zip-without-comment", "dir"],
)
def test_untouched_drafts_render_to_the_same_container(
    tmp_path: Path, base: str, layout: tuple[str, dict[str, Any]], baselines: dict[str, Any]
) -> None:
    """The renderers are faithful: what the cases change is the only difference."""
    backend, options = layout
    d = hc.draft(base)
    if backend == "dir":
        path = tmp_path / "c"
        hc.render_dir(d, path, tmp_path)
    else:
        path = tmp_path / f"c.{backend}"
        path.write_bytes((hc.render_tar if backend == "tar" else hc.render_zip)(d, **options))
    for call in hc.CALLS:
        kind, value = _result(call, path)
        assert kind == "ok", (call, value)
        assert same(value, baselines[base][call]), call


# -- sweeps: every truncation, every bit ------------------------------------------------------

SWEEP_CALLS = ("load", "load_arrays", "verify")
#: Tracing every allocation of thousands of loads is slow: memory is measured on a sample.
TRACE_EVERY = 16
#: Per call, the members it reads: damage elsewhere must leave its result intact.
READS = {
    "load": {"manifest", "skeleton", "blob"},
    "load_arrays": {"manifest", "blob"},
    "verify": {"manifest", "skeleton", "blob"},
}


def _spans(data: bytes, backend: str) -> dict[str, tuple[int, int]]:
    """(data offset, size) of each member of a container this process wrote."""
    if backend == "tar":
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
    import struct
    import zipfile

    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            n, extra = struct.unpack_from("<HH", data, info.header_offset + 26)
            out[info.filename] = (info.header_offset + 30 + n + extra, info.file_size)
    return out


def _kind(name: str) -> str:
    if name == hc.MANIFEST:
        return "manifest"
    return "skeleton" if name.startswith(".codecs_ser/objects/") else "blob"


def _sweep(
    sources: Callable[[], Iterator[tuple[str, Any, str]]], expect: type[CodecsSerError]
) -> dict[str, Any]:
    """Run the sweep calls on every (label, source, damaged part) and collect what is wrong:
    a call that reads the damaged part must raise ``expect`` (verify: report it), one
    that does not must give back what was written, and ``either`` allows both."""
    base = hc.BASES["plain"]()
    arrays = codecs_ser.load_arrays(codecs_ser.dumps(base))
    intact = {"load": base, "load_arrays": arrays, "verify": []}
    case = hc.Case("sweep", "any", "sweep", lambda p: p, expect, hc.outcomes())
    problems: list[str] = []
    count = peak = 0
    slowest = 0.0
    for label, source, part in sources():
        count += 1
        traced = count % TRACE_EVERY == 0
        if traced:
            tracemalloc.start()
        for call in SWEEP_CALLS:
            start = time.perf_counter()
            try:
                kind, value = _result(call, source)
            except BaseException as e:
                problems.append(f"{label} {call}: {type(e).__name__} (not a CodecsSerError): {e}")
                continue
            slowest = max(slowest, time.perf_counter() - start)
            if kind == "ok":
                if part == "unchecked" and call == "load_arrays":
                    # Without a manifest checksum a flipped name goes unnoticed; the
                    # arrays themselves are checksummed and must be intact.
                    if not same(
                        sorted(v.tobytes() for v in value.values()),
                        sorted(v.tobytes() for v in arrays.values()),
                    ):
                        problems.append(f"{label} {call}: returned other arrays")
                elif part in ("either", "unchecked") or part not in READS[call]:
                    if not same(value, intact[call]):
                        problems.append(f"{label} {call}: returned other content")
                else:
                    problems.append(f"{label} {call}: wanted {expect.__name__}, returned it")
            elif part not in ("either", "unchecked", *READS[call]):
                problems.append(f"{label} {call}: refused damage it does not read: {value}")
            elif why := _raised_as_expected(case, call, kind, value):
                problems.append(f"{label} {call}: {why}")
        if traced:
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    return {"problems": problems[:40], "count": count, "slowest": slowest, "peak": peak}


def _assert_sweep(report: dict[str, Any], at_least: int) -> None:
    assert not report["problems"], "\n".join(report["problems"])
    assert report["count"] >= at_least
    assert report["slowest"] < MAX_SECONDS
    assert report["peak"] < MAX_TRACED


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_every_truncation_of_a_file_container(backend: str) -> None:
    data = codecs_ser.dumps(hc.BASES["plain"](), backend=backend)
    offset, size = _spans(data, backend)[hc.MANIFEST]
    needed = offset + size  # everything any call reads lies before this

    def sources() -> Iterator[tuple[str, Any, str]]:
        for n in range(len(data)):
            yield f"cut at {n}", data[:n], "manifest" if n < needed else "either"

    _assert_sweep(isolated(lambda: _sweep(sources, FormatError), timeout=60), len(data))


def test_every_truncation_of_each_file_of_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "c"
    codecs_ser.dump(hc.BASES["plain"](), root, backend="dir")
    files = sorted(p for p in root.rglob("*") if p.is_file())

    def sources() -> Iterator[tuple[str, Any, str]]:
        for p in files:
            original = p.read_bytes()
            rel = p.relative_to(root).as_posix()
            step = max(1, len(original) // 200)
            for n in [*range(0, len(original), step), len(original) - 1]:
                p.write_bytes(original[:n])
                yield f"{rel} cut at {n}", root, _kind(rel)
            p.write_bytes(original)

    _assert_sweep(isolated(lambda: _sweep(sources, FormatError), timeout=60), 4 * 150)


def _file_flips(
    backend: str, member: str, *, start: int = 0, stride: int = 1
) -> Callable[[], Iterator[tuple[str, Any, str]]]:
    data = codecs_ser.dumps(hc.BASES["plain"](), backend=backend)
    offset, size = _spans(data, backend)[member]

    def sources() -> Iterator[tuple[str, Any, str]]:
        for bit in range(8 * (offset + start), 8 * (offset + size), stride):
            yield f"bit {bit}", _flip(data, bit), _kind(member)

    return sources


def _folder_flips(
    root: Path, member: str, *, start: int = 0, stride: int = 1, part: str | None = None
) -> Callable[[], Iterator[tuple[str, Any, str]]]:
    path = root / member

    def sources() -> Iterator[tuple[str, Any, str]]:
        original = path.read_bytes()
        for bit in range(8 * start, 8 * len(original), stride):
            path.write_bytes(_flip(original, bit))
            yield f"bit {bit}", root, part or _kind(member)
        path.write_bytes(original)

    return sources


#: (what is flipped, member, first byte, stride in bits, expected error)
FLIPS = [
    ("blob-data", "a.npy", 128, 1, IntegrityError),
    ("npy-header", "a.npy", 0, 3, FormatError),
    ("skeleton", hc.SKELETON_MSGPACK, 0, 1, IntegrityError),
    ("manifest", hc.MANIFEST, 0, 5, FormatError),
]


@pytest.mark.parametrize("backend", ["tar", "zip"])
@pytest.mark.parametrize(
    ("what", "member", "start", "stride", "expect"), FLIPS, ids=[f[0] for f in FLIPS]
)
def test_bit_flips_in_a_file_container(
    backend: str, what: str, member: str, start: int, stride: int, expect: type[CodecsSerError]
) -> None:
    sources = _file_flips(backend, member, start=start, stride=stride)
    _assert_sweep(isolated(lambda: _sweep(sources, expect), timeout=60), 200)


@pytest.mark.parametrize(
    ("what", "member", "start", "stride", "expect"), FLIPS, ids=[f[0] for f in FLIPS]
)
def test_bit_flips_in_a_folder(
    tmp_path: Path, what: str, member: str, start: int, stride: int, expect: type[CodecsSerError]
) -> None:
    root = tmp_path / "c"
    codecs_ser.dump(hc.BASES["plain"](), root, backend="dir")
    # A folder's manifest has no checksum of its own: a flip there must be refused (by
    # any of the errors, a flipped codec id is an unknown codec) or be harmless.
    part = "unchecked" if what == "manifest" else None
    if what == "manifest":
        expect = CodecsSerError
    sources = _folder_flips(root, member, start=start, stride=stride, part=part)
    _assert_sweep(isolated(lambda: _sweep(sources, expect), timeout=60), 200)
