"""Benchmark codecs_ser's dump and load against the machine's limits and against peers.

Run ``python benchmarks/bench_core.py [--quick] [--dir TMPDIR] [--repeat N]``.

The machine is shared and noisy, so every figure is the best of N repeats and is
reported as a ratio to a baseline measured in the same run: a raw write or read
of the same number of bytes as one contiguous buffer (the physical limit), and
pickle protocol 5, joblib, one ``numpy.save`` file per array and safetensors (the peers);
peak memory is measured with tracemalloc in one more, untimed run.
Ratios are codecs_ser seconds divided by baseline seconds: lower is better.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

PAGE = 4096
MiB = 1 << 20
GiB = 1 << 30
SEED = 20240611

# Kinds of operation: each kind is compared with the baseline of the same kind.
WRITE = "write"
WRITE_SYNC = "write+fsync"
READ = "read"
MMAP = "mmap"
MMAP_TOUCH = "mmap+touch"
OPEN = "open+read"

#: How a kind reads in a table row of a peer.
KIND_LABEL = {
    WRITE: "dump",
    WRITE_SYNC: "dump + fsync",
    READ: "load",
    MMAP: "load mmap",
    MMAP_TOUCH: "load mmap + touch",
}

PEERS = ("pickle5", "joblib", "np.save", "safetensors")
BACKENDS = ("tar", "zip", "dir")


def _import_optional(name: str) -> ModuleType | None:
    """Import a peer that may be missing, so the rest of the run still happens."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _import_library() -> ModuleType:
    """Import codecs_ser, falling back to the checkout this script lives in."""
    try:
        return importlib.import_module("codecs_ser")
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        return importlib.import_module("codecs_ser")


joblib = _import_optional("joblib")
st_numpy = _import_optional("safetensors.numpy")
cs: ModuleType  # set in main(), so --help works without the library


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    """A named object to save, with its arrays flattened for the baselines."""

    key: str
    title: str
    obj: dict[str, Any]
    flat: dict[str, np.ndarray] = field(init=False)
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.flat = dict(iter_arrays(self.obj))
        self.nbytes = sum(a.nbytes for a in self.flat.values())


def iter_arrays(obj: Any, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """Yield (path, array) for every array in nested dicts, lists and tuples."""
    if isinstance(obj, np.ndarray):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from iter_arrays(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from iter_arrays(v, f"{prefix}/{i}" if prefix else str(i))


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Small random values: content matters little, but zeros could flatter a filesystem."""
    arr = rng.standard_normal(shape, dtype=np.float32)
    arr *= 0.02
    return arr if dtype == np.float32 else arr.astype(dtype)


def make_big(quick: bool) -> Workload:
    """(a) a few large arrays: pure bandwidth."""
    total = 128 * MiB if quick else GiB
    n = total // 8 // 4
    rng = np.random.default_rng(SEED)
    obj = {f"w{i}": _random(rng, (n,), np.float32) for i in range(8)}
    return Workload("a", f"(a) {total // MiB} MiB in 8 float32 arrays", obj)


def gpt2_shapes(vocab: int, layers: int, d: int = 768) -> dict[str, tuple[int, ...]]:
    """GPT-2 small's parameter names and shapes (Conv1D weights are in x out)."""
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (vocab, d), "wpe.weight": (1024, d)}
    for i in range(layers):
        h = f"h.{i}"
        shapes |= {
            f"{h}.ln_1.weight": (d,),
            f"{h}.ln_1.bias": (d,),
            f"{h}.attn.c_attn.weight": (d, 3 * d),
            f"{h}.attn.c_attn.bias": (3 * d,),
            f"{h}.attn.c_proj.weight": (d, d),
            f"{h}.attn.c_proj.bias": (d,),
            f"{h}.ln_2.weight": (d,),
            f"{h}.ln_2.bias": (d,),
            f"{h}.mlp.c_fc.weight": (d, 4 * d),
            f"{h}.mlp.c_fc.bias": (4 * d,),
            f"{h}.mlp.c_proj.weight": (4 * d, d),
            f"{h}.mlp.c_proj.bias": (d,),
        }
    shapes |= {"ln_f.weight": (d,), "ln_f.bias": (d,)}
    return shapes


def make_gpt2(quick: bool) -> Workload:
    """(b) a GPT-2-small-like state dict: embeddings float16, the rest float32."""
    vocab, layers = (10_000, 3) if quick else (50_257, 12)
    rng = np.random.default_rng(SEED + 1)
    obj = {}
    for name, shape in gpt2_shapes(vocab, layers).items():
        dtype = np.float16 if name.startswith(("wte.", "wpe.")) else np.float32
        obj[name] = _random(rng, shape, dtype)
    wl = Workload("b", "", obj)
    wl.title = f"(b) GPT-2-small-like state dict, {len(obj)} entries, {wl.nbytes / MiB:.0f} MiB"
    return wl


def make_small(quick: bool) -> Workload:
    """(c) many tiny arrays in nested dicts: per-entry overhead."""
    count = 2_000 if quick else 20_000
    rng = np.random.default_rng(SEED + 2)
    sizes = rng.integers(16, 257, size=count)
    obj: dict[str, dict[str, np.ndarray]] = {}
    for i, size in enumerate(sizes):
        obj.setdefault(f"group{i // 100}", {})[f"p{i % 100}"] = _random(
            rng, (int(size),), np.float32
        )
    return Workload("c", f"(c) {count:,} float32 arrays of 16-256 elements in nested dicts", obj)


# --------------------------------------------------------------------------- timing helpers


def best_of(
    fn: Callable[[], object], repeat: int, setup: Callable[[], None] | None = None
) -> float:
    """Best wall time of ``fn`` over ``repeat`` runs; setup and freeing the result are untimed."""
    best = math.inf
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        del result
        best = min(best, elapsed)
    return best


def remove(path: Path) -> None:
    """Delete a file or folder if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def fresh_target(path: Path) -> Callable[[], None]:
    """Setup for a write: no old target, and no dirty pages left by the previous run."""

    def setup() -> None:
        remove(path)
        os.sync()

    return setup


def fsync_dir(path: Path) -> None:
    """Make a folder's entries durable, as an atomic rename needs."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file written by someone else (fsync covers the inode, whichever fd)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def touch_array(arr: np.ndarray) -> int:
    """Read one byte per page so lazily mapped data is really fetched."""
    if arr.nbytes <= PAGE and arr.flags.c_contiguous:
        raw = memoryview(arr).cast("B")  # cheap path: tiny arrays span at most two pages
        return raw[0] + raw[-1] if raw else 0
    if arr.size == 0:
        return 0
    return int(np.ravel(arr, order="K").view(np.uint8)[::PAGE].sum())


def walk_arrays(obj: Any) -> Iterator[np.ndarray]:
    """Every array in nested containers, without building names (the touch pass is timed)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from walk_arrays(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from walk_arrays(v)


def touch(obj: Any) -> int:
    """Touch every page of every array in a loaded object."""
    return sum(touch_array(arr) for arr in walk_arrays(obj))


def describe_error(exc: BaseException) -> str:
    """One line for a failed measurement, short enough for a table cell."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------- physical limits


def write_all(fd: int, data: memoryview) -> None:
    """os.write until everything is written (a write may be short)."""
    while data:
        data = data[os.write(fd, data) :]


def raw_write(path: Path, buf: np.ndarray, sync: bool) -> None:
    """The limit for a dump: one contiguous buffer, one file, optionally fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, memoryview(buf).cast("B"))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if sync:
        fsync_dir(path.parent)


def raw_read(path: Path, dst: np.ndarray) -> int:
    """The limit for a load: readinto one buffer, then touch every page."""
    view = memoryview(dst).cast("B")
    done = 0
    with open(path, "rb", buffering=0) as f:
        while done < len(view):
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
    return int(dst[::PAGE].sum())


def contiguous_copy(wl: Workload) -> np.ndarray:
    """All the workload's bytes in one buffer, for the raw baselines."""
    buf = np.empty(wl.nbytes, dtype=np.uint8)
    pos = 0
    for arr in wl.flat.values():
        raw = np.ravel(arr, order="K").view(np.uint8)
        buf[pos : pos + raw.size] = raw
        pos += raw.size
    return buf


def measure_raw_writes(wl: Workload, path: Path, repeat: int) -> dict[str, float]:
    """Raw write of the workload's bytes, plain and fsynced; leaves the file for the reads."""
    buf = contiguous_copy(wl)
    return {
        WRITE_SYNC: best_of(lambda: raw_write(path, buf, True), repeat, fresh_target(path)),
        WRITE: best_of(lambda: raw_write(path, buf, False), repeat, fresh_target(path)),
    }


def measure_limits(wl: Workload, work: Path, repeat: int) -> tuple[dict[str, float], float]:
    """Raw writes and raw read; also a read into a pre-faulted buffer, for information."""
    path = work / "raw.bin"
    limits = measure_raw_writes(wl, path, repeat)
    os.sync()
    holder: list[np.ndarray] = []

    def new_buffer() -> None:
        holder[:] = [np.empty(wl.nbytes, dtype=np.uint8)]

    limits[READ] = best_of(lambda: raw_read(path, holder[0]), repeat, new_buffer)
    limits[MMAP_TOUCH] = limits[READ]
    holder.clear()
    warm = np.ones(wl.nbytes, dtype=np.uint8)
    warm_read = best_of(lambda: raw_read(path, warm), repeat)
    remove(path)
    return limits, warm_read


# --------------------------------------------------------------------------- peers


def pickle_dump(obj: Any, path: Path, sync: bool) -> None:
    """pickle protocol 5 to a file (buffers in-band, as pickle.dump does)."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=5)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    if sync:
        fsync_dir(path.parent)


def pickle_load(path: Path) -> Any:
    """pickle.load, then touch every page."""
    with open(path, "rb") as f:
        obj = pickle.load(f)
    touch(obj)
    return obj


def joblib_dump(obj: Any, path: Path, sync: bool) -> None:
    """joblib.dump of the whole object to one file."""
    assert joblib is not None
    joblib.dump(obj, path)
    if sync:
        fsync_file(path)
        fsync_dir(path.parent)


def joblib_load(path: Path, mmap: bool, touch_pages: bool) -> Any:
    """joblib.load, memory-mapped or not."""
    assert joblib is not None
    obj = joblib.load(path, mmap_mode="r" if mmap else None)
    if touch_pages:
        touch(obj)
    return obj


def npy_name(key: str) -> str:
    """A flat file name for a nested array path."""
    return key.replace("/", "__") + ".npy"


def npsave_dump(flat: dict[str, np.ndarray], folder: Path, sync: bool) -> None:
    """One numpy.save file per array in one folder."""
    folder.mkdir()
    for key, arr in flat.items():
        with open(folder / npy_name(key), "wb") as f:
            np.save(f, arr, allow_pickle=False)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    if sync:
        fsync_dir(folder)
        fsync_dir(folder.parent)


def npsave_load(keys: list[str], folder: Path, mmap: bool, touch_pages: bool) -> Any:
    """numpy.load of every file, memory-mapped or not."""
    mode = "r" if mmap else None
    obj = {k: np.load(folder / npy_name(k), mmap_mode=mode, allow_pickle=False) for k in keys}
    if touch_pages:
        touch(obj)
    return obj


def measure_writes(dump: Callable[[Path, bool], None], path: Path, repeat: int) -> dict[str, float]:
    """A peer's dump, plain and fsynced."""
    return {
        WRITE_SYNC: best_of(lambda: dump(path, True), repeat, fresh_target(path)),
        WRITE: best_of(lambda: dump(path, False), repeat, fresh_target(path)),
    }


def measure_pickle(wl: Workload, work: Path, repeat: int) -> dict[str, float]:
    """pickle protocol 5: dump, dump+fsync, load."""
    path = work / "peer.pkl"
    res = measure_writes(lambda p, s: pickle_dump(wl.obj, p, s), path, repeat)
    os.sync()
    res[READ] = best_of(lambda: pickle_load(path), repeat)
    remove(path)
    return res


def measure_joblib(wl: Workload, work: Path, repeat: int) -> dict[str, float]:
    """joblib: dump, dump+fsync, load, and memory-mapped load."""
    path = work / "peer.joblib"
    res = measure_writes(lambda p, s: joblib_dump(wl.obj, p, s), path, repeat)
    os.sync()
    res[READ] = best_of(lambda: joblib_load(path, False, True), repeat)
    _measure_mmap(res, lambda touch: joblib_load(path, True, touch), repeat)
    remove(path)
    return res


def _measure_mmap(res: dict[str, float], load: Callable[[bool], object], repeat: int) -> None:
    """A peer's mmap load; one mapping per array can run out of file descriptors."""
    try:
        res[MMAP] = best_of(lambda: load(False), repeat)
        res[MMAP_TOUCH] = best_of(lambda: load(True), repeat)
    except OSError as e:
        print(f"  note: peer mmap load failed ({e}); left empty", flush=True)
        gc.collect()


def measure_npsave(wl: Workload, work: Path, repeat: int) -> dict[str, float]:
    """numpy.save per array: dump, dump+fsync, load, and memory-mapped load."""
    folder = work / "peer_npy"
    keys = list(wl.flat)
    res = measure_writes(lambda p, s: npsave_dump(wl.flat, p, s), folder, repeat)
    os.sync()
    res[READ] = best_of(lambda: npsave_load(keys, folder, False, True), repeat)
    _measure_mmap(res, lambda touch: npsave_load(keys, folder, True, touch), repeat)
    remove(folder)
    return res


def measure_peers(wl: Workload, work: Path, repeat: int, notes: list[str]) -> dict[str, dict]:
    """All peers; a missing one is skipped with a note."""
    peers: dict[str, dict[str, float]] = {"pickle5": measure_pickle(wl, work, repeat)}
    if joblib is None:
        notes.append("joblib is not installed: its column is left empty.")
        peers["joblib"] = {}
    else:
        peers["joblib"] = measure_joblib(wl, work, repeat)
    peers["np.save"] = measure_npsave(wl, work, repeat)
    if st_numpy is None:
        notes.append("safetensors is not installed: its column is left empty.")
        peers["safetensors"] = {}
    else:
        peers["safetensors"] = measure_safetensors(wl, work, repeat)
    return peers


def safetensors_dump(flat: dict[str, np.ndarray], path: Path, sync: bool) -> None:
    """safetensors.numpy.save_file of the flat dict ("/"-joined names)."""
    assert st_numpy is not None
    st_numpy.save_file(flat, str(path))
    if sync:
        fsync_file(path)
        fsync_dir(path.parent)


def safetensors_load(path: Path) -> Any:
    """safetensors.numpy.load_file, then touch every page."""
    assert st_numpy is not None
    obj = st_numpy.load_file(str(path))
    touch(obj)
    return obj


def measure_safetensors(wl: Workload, work: Path, repeat: int) -> dict[str, float]:
    """safetensors: dump, dump+fsync, load (it has no mmap load into numpy)."""
    path = work / "peer.safetensors"
    flat = {k: np.ascontiguousarray(v) for k, v in wl.flat.items()}
    res = measure_writes(lambda p, s: safetensors_dump(flat, p, s), path, repeat)
    os.sync()
    res[READ] = best_of(lambda: safetensors_load(path), repeat)
    remove(path)
    return res


# --------------------------------------------------------------------------- peak memory


def peak_mib(fn: Callable[[], object], setup: Callable[[], None] | None = None) -> float:
    """Peak of Python and numpy allocations (tracemalloc) above the start during one
    untimed run of ``fn``, in MiB; memory-mapped pages are not allocations, not counted."""
    if setup is not None:
        setup()
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak / MiB


def peer_peaks(wl: Workload, work: Path) -> dict[str, tuple[float | None, float | None]]:
    """(dump, load) peak MiB of each installed peer, one untimed run each."""
    out: dict[str, tuple[float | None, float | None]] = {}
    keys = list(wl.flat)
    flat = {k: np.ascontiguousarray(v) for k, v in wl.flat.items()}
    cases: list[tuple[str, Path, Callable[[Path], None], Callable[[Path], object]]] = [
        ("pickle5", work / "pk.pkl", lambda p: pickle_dump(wl.obj, p, False), pickle_load),
        (
            "np.save",
            work / "pk_npy",
            lambda p: npsave_dump(wl.flat, p, False),
            lambda p: npsave_load(keys, p, False, True),
        ),
    ]
    if joblib is not None:
        cases.append(
            (
                "joblib",
                work / "pk.joblib",
                lambda p: joblib_dump(wl.obj, p, False),
                lambda p: joblib_load(p, False, True),
            )
        )
    if st_numpy is not None:
        cases.append(
            (
                "safetensors",
                work / "pk.safetensors",
                lambda p: safetensors_dump(flat, p, False),
                safetensors_load,
            )
        )
    for name, path, dump, load in cases:
        try:
            out[name] = (
                peak_mib(partial(dump, path), fresh_target(path)),
                peak_mib(partial(load, path)),
            )
        except Exception:
            out[name] = (None, None)
        remove(path)
    return out


# --------------------------------------------------------------------------- codecs_ser


@dataclass
class Row:
    """One measured codecs_ser operation; its kind picks the baselines it is compared with."""

    label: str
    kind: str
    seconds: float | None
    error: str | None = None
    peak: float | None = None


def attempt(
    label: str,
    kind: str,
    fn: Callable[[], object],
    repeat: int,
    setup: Callable[[], None] | None = None,
) -> Row:
    """Time one operation; a failure becomes a row with the error instead of a crash."""
    try:
        row = Row(label, kind, best_of(fn, repeat, setup))
        row.peak = peak_mib(fn, setup)
        return row
    except Exception as exc:
        return Row(label, kind, None, describe_error(exc))


def cs_dump(obj: Any, target: Path, backend: str, durable: bool) -> None:
    """codecs_ser.dump to a path."""
    cs.dump(obj, target, backend=backend, durable=durable)


def cs_dump_fileobj(obj: Any, target: Path) -> None:
    """codecs_ser.dump (tar) to an already open binary file object."""
    with open(target, "wb") as f:
        cs.dump(obj, f, backend="tar", durable=False)


def cs_load(source: Path, mmap: bool, touch_pages: bool) -> Any:
    """codecs_ser.load, touching every page when asked."""
    obj = cs.load(source, mmap=mmap)
    if touch_pages:
        touch(obj)
    return obj


def cs_open_read(source: Path, name: str) -> None:
    """Open a container and read one entry: the cost of random access."""
    with cs.open(source) as c:
        touch_array(c.read(name))


def pick_entry(source: Path, wl: Workload) -> str:
    """The container entry that holds the middle array of the workload (else the middle entry)."""
    keys = list(wl.flat)
    wanted = keys[len(keys) // 2]
    with cs.open(source) as c:
        names = list(c.entries)
    for name in names:
        stem = name.removesuffix(".npy").strip("/")
        if stem == wanted or stem.endswith("/" + wanted):
            return name
    return names[len(names) // 2]


def check_roundtrip(wl: Workload, loaded: Any) -> str | None:
    """A mismatch message when a load does not give back the dumped arrays."""
    got = dict(iter_arrays(loaded))
    if got.keys() != wl.flat.keys():
        missing = sorted(wl.flat.keys() - got.keys())[:3]
        extra = sorted(got.keys() - wl.flat.keys())[:3]
        return f"entries differ: missing {missing}, unexpected {extra}"
    for key, arr in wl.flat.items():
        other = got[key]
        if other.dtype != arr.dtype or other.shape != arr.shape or not np.array_equal(other, arr):
            return f"array {key!r} differs ({other.dtype}{other.shape} vs {arr.dtype}{arr.shape})"
    return None


def target_path(work: Path, backend: str) -> Path:
    """Where a backend's container goes."""
    return work / {"tar": "cs.tar", "zip": "cs.zip", "dir": "cs_dir"}[backend]


def measure_backend(
    wl: Workload, work: Path, backend: str, repeat: int, notes: list[str]
) -> list[Row]:
    """Dump (durable, plain), then the loads of what was dumped, for one backend."""
    path = target_path(work, backend)
    setup = fresh_target(path)
    rows = [
        attempt(
            f"{backend} dump durable",
            WRITE_SYNC,
            partial(cs_dump, wl.obj, path, backend, True),
            repeat,
            setup,
        ),
        attempt(
            f"{backend} dump", WRITE, partial(cs_dump, wl.obj, path, backend, False), repeat, setup
        ),
    ]
    if not path.exists():
        notes.append(f"{backend}: no container was written, so its loads were not measured.")
        return rows
    os.sync()
    rows += measure_loads(wl, path, backend, repeat, notes)
    remove(path)
    return rows


def measure_loads(
    wl: Workload, path: Path, backend: str, repeat: int, notes: list[str]
) -> list[Row]:
    """Full load, mmap load without and with touching, and the one-entry read for (c)."""
    try:
        problem = check_roundtrip(wl, cs.load(path))
    except Exception as exc:
        problem = describe_error(exc)
    if problem:
        notes.append(f"{backend}: load does not round-trip: {problem}")
    rows = [
        attempt(f"{backend} load", READ, partial(cs_load, path, False, True), repeat),
        attempt(f"{backend} load mmap", MMAP, partial(cs_load, path, True, False), repeat),
        attempt(
            f"{backend} load mmap + touch", MMAP_TOUCH, partial(cs_load, path, True, True), repeat
        ),
    ]
    if wl.key == "c":
        rows.append(measure_open_read(wl, path, backend, repeat, notes))
    return rows


def measure_open_read(wl: Workload, path: Path, backend: str, repeat: int, notes: list[str]) -> Row:
    """Open the container and read one entry; more repeats, since it is short."""
    label = f"{backend} open + read 1 entry"
    try:
        name = pick_entry(path, wl)
    except Exception as exc:
        return Row(label, OPEN, None, describe_error(exc))
    notes.append(f"{backend}: one-entry read uses entry {name!r}.")
    return attempt(label, OPEN, partial(cs_open_read, path, name), max(repeat, 5))


def measure_fileobj(wl: Workload, work: Path, repeat: int) -> Row:
    """tar dump into an open file object, against a plain raw write."""
    path = work / "cs_fileobj.tar"
    fn = partial(cs_dump_fileobj, wl.obj, path)
    row = attempt("tar dump to file object", WRITE, fn, repeat, fresh_target(path))
    remove(path)
    return row


# --------------------------------------------------------------------------- reporting


@dataclass
class Result:
    """Everything measured for one workload."""

    wl: Workload
    limits: dict[str, float]
    warm_read: float
    touch_s: float
    peers: dict[str, dict[str, float]]
    rows: list[Row]
    notes: list[str]
    peaks: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def row(self, label: str) -> Row | None:
        """The row with this label, if measured."""
        return next((r for r in self.rows if r.label == label), None)


def ratio(num: float | None, den: float | None) -> str:
    """num/den as '1.23x', or '-' when either side is missing."""
    if num is None or not den:
        return "-"
    r = num / den
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def fmt_s(seconds: float | None) -> str:
    """Seconds with enough digits for both 1 GiB dumps and sub-millisecond reads."""
    if seconds is None:
        return "ERROR"
    return f"{seconds:.6f}" if seconds < 1 else f"{seconds:.4f}"


HEADER = ("operation", "seconds", "ratio to limit", "ratio to pickle5", "ratio to joblib")
HEADER += ("ratio to np.save", "ratio to safetensors")
WIDTHS = (34, 10, 15, 17, 16, 17, 20)


def line(cells: tuple[str, ...]) -> str:
    """One table line in fixed-width columns."""
    return " | ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, WIDTHS, strict=True))
    )


def table_rows(res: Result) -> Iterator[tuple[str, ...]]:
    """Baseline rows first, then codecs_ser rows with every ratio."""
    lim = res.limits
    yield ("limit: raw write", fmt_s(lim[WRITE]), "1.00x", "-", "-", "-", "-")
    yield ("limit: raw write + fsync", fmt_s(lim[WRITE_SYNC]), "1.00x", "-", "-", "-", "-")
    yield ("limit: raw read (fresh buffer)", fmt_s(lim[READ]), "1.00x", "-", "-", "-", "-")
    warm = res.warm_read
    yield ("info: raw read (pre-faulted)", fmt_s(warm), ratio(warm, lim[READ]), "-", "-", "-", "-")
    yield ("info: page-touch pass alone", fmt_s(res.touch_s), "-", "-", "-", "-", "-")
    for peer in PEERS:
        for kind, seconds in res.peers[peer].items():
            label = f"peer: {peer} {KIND_LABEL[kind]}"
            yield (label, fmt_s(seconds), ratio(seconds, lim.get(kind)), "-", "-", "-", "-")
    for r in res.rows:
        peer_cells = tuple(ratio(r.seconds, res.peers[p].get(r.kind)) for p in PEERS)
        yield (r.label, fmt_s(r.seconds), ratio(r.seconds, lim.get(r.kind)), *peer_cells)


def print_table(res: Result) -> None:
    """Per-workload table, then the mmap speedups and notes."""
    wl = res.wl
    print(f"\n{wl.title} ({len(wl.flat):,} arrays, {wl.nbytes / MiB:.1f} MiB)")
    print(line(HEADER))
    print("-+-".join("-" * w for w in WIDTHS))
    for cells in table_rows(res):
        print(line(cells))
    if wl.key == "c":
        for r in res.rows:
            if r.kind == OPEN:
                ms = "ERROR" if r.seconds is None else f"{r.seconds * 1e3:.3f} ms"
                print(f"  {r.label}: {ms}")
    print_mmap(res)
    print_peaks(res)
    for r in res.rows:
        if r.error:
            print(f"  error in {r.label}: {r.error}")
    for note in res.notes:
        print(f"  note: {note}")


def print_peaks(res: Result) -> None:
    """Peak allocations (tracemalloc, one untimed run each) of peers and codecs_ser rows."""
    print("  peak memory above the start (MiB, tracemalloc; mapped pages not counted):")
    for peer, (dump, load) in res.peaks.items():
        cells = " | ".join("-" if v is None else f"{v:.1f}" for v in (dump, load))
        print(f"    peer {peer:12} dump | load: {cells}")
    for r in res.rows:
        if r.peak is not None:
            print(f"    {r.label:34} {r.peak:.1f}")


def print_mmap(res: Result) -> None:
    """Full load against mmap load, per backend."""
    print("  mmap: backend | full load s | mmap s | mmap+touch s | full/mmap")
    for b in BACKENDS:
        full, mm, mt = (res.row(f"{b} load{s}") for s in ("", " mmap", " mmap + touch"))
        secs = [r.seconds if r else None for r in (full, mm, mt)]
        cells = " | ".join(fmt_s(s) if s is not None else "-" for s in secs)
        print(f"    {b:4} | {cells} | {ratio(secs[0], secs[1])}")


@dataclass
class Target:
    """One goal and whether this run met it."""

    what: str
    value: float | None
    limit: float
    higher_is_better: bool = False
    unit: str = "x"

    def verdict(self) -> str:
        """PASS, MISS, or ERROR when the figure is missing."""
        if self.value is None:
            return "ERROR"
        ok = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "PASS" if ok else "MISS"

    def show(self) -> str:
        """The line printed in the summary."""
        got = "-" if self.value is None else f"{self.value:.2f}{self.unit}"
        sign = ">=" if self.higher_is_better else "<="
        return (
            f"{self.verdict():5} {self.what:58} {got:>10} (target {sign} {self.limit:g}{self.unit})"
        )


def div(num: float | None, den: float | None) -> float | None:
    """num/den, or None when either side is missing."""
    return None if num is None or not den else num / den


def seconds_of(res: Result, label: str) -> float | None:
    """Seconds of a codecs_ser row, None if it failed or was not measured."""
    row = res.row(label)
    return row.seconds if row else None


def bandwidth_targets(res: Result) -> list[Target]:
    """(a), (b): tar and dir close to the raw limits, mmap far faster than a full load."""
    k, lim = res.wl.key, res.limits
    out = []
    for b in ("tar", "dir"):
        out += [
            Target(
                f"({k}) {b} dump durable / raw write+fsync",
                div(seconds_of(res, f"{b} dump durable"), lim[WRITE_SYNC]),
                1.3,
            ),
            Target(
                f"({k}) {b} dump / raw write", div(seconds_of(res, f"{b} dump"), lim[WRITE]), 1.3
            ),
            Target(f"({k}) {b} load / raw read", div(seconds_of(res, f"{b} load"), lim[READ]), 1.2),
            Target(
                f"({k}) {b} full load / mmap load",
                div(seconds_of(res, f"{b} load"), seconds_of(res, f"{b} load mmap")),
                10,
                higher_is_better=True,
            ),
        ]
    return out


def small_targets(res: Result) -> list[Target]:
    """(c): tar near pickle, and fast random access."""
    pk = res.peers["pickle5"]
    opened = seconds_of(res, "tar open + read 1 entry")
    return [
        Target("(c) tar dump / pickle5 dump", div(seconds_of(res, "tar dump"), pk.get(WRITE)), 2),
        Target(
            "(c) tar dump durable / pickle5 dump+fsync",
            div(seconds_of(res, "tar dump durable"), pk.get(WRITE_SYNC)),
            2,
        ),
        Target("(c) tar load / pickle5 load", div(seconds_of(res, "tar load"), pk.get(READ)), 2),
        Target(
            "(c) tar open + read one entry", None if opened is None else opened * 1e3, 5, unit=" ms"
        ),
    ]


IMPORT_PROBE = (
    "import time, numpy; t = time.perf_counter(); import codecs_ser; print(time.perf_counter() - t)"
)


def measure_import(repeat: int) -> float | None:
    """Seconds ``import codecs_ser`` adds to ``import numpy``, best of fresh processes.

    Bytecode caches are allowed (the first process writes them), as an installed
    package has them: the figure is the import, not the compilation of its source.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(cs.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    best: float | None = None
    for _ in range(max(repeat, 15)):
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            return None
        seconds = float(done.stdout.strip().splitlines()[-1])
        best = seconds if best is None else min(best, seconds)
    return best


def print_summary(results: list[Result], import_s: float | None) -> None:
    """All targets with PASS/MISS; zip and the (c) dir figures are in the tables, untargeted."""
    print("\nSummary of targets (ratios are codecs_ser time / baseline time)")
    targets: list[Target] = [
        Target(
            "import codecs_ser, over import numpy (best of fresh processes)",
            None if import_s is None else import_s * 1e3,
            30,
            unit=" ms",
        )
    ]
    for res in results:
        targets += small_targets(res) if res.wl.key == "c" else bandwidth_targets(res)
    for t in targets:
        print("  " + t.show())
    missed = sum(t.verdict() != "PASS" for t in targets)
    print(f"  {len(targets) - missed} of {len(targets)} targets met.")


def print_machine(work_root: Path) -> None:
    """The facts needed to compare runs across machines."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print("Machine")
    print(f"  CPUs: {os.cpu_count()} (usable by this process: {affinity})")
    print(f"  platform: {platform.platform()}")
    print(f"  python: {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"  numpy: {np.__version__}")
    print(f"  joblib: {getattr(joblib, '__version__', 'not installed')}")
    st_version = getattr(_import_optional("safetensors"), "__version__", "not installed")
    print(f"  safetensors: {st_version}")
    print(f"  codecs_ser: {getattr(cs, '__version__', '?')} from {Path(cs.__file__).parent}")
    print(f"  temp dir: {work_root}")


# --------------------------------------------------------------------------- driver


def run_workload(wl: Workload, work: Path, repeat: int) -> Result:
    """Limits, peers, then codecs_ser, each in the same run."""
    notes: list[str] = []
    print(f"... {wl.title}: limits", flush=True)
    limits, warm = measure_limits(wl, work, repeat)
    touch_s = best_of(lambda: touch(wl.obj), repeat)
    print(f"... {wl.title}: peers", flush=True)
    peers = measure_peers(wl, work, repeat, notes)
    rows: list[Row] = []
    for backend in BACKENDS:
        print(f"... {wl.title}: codecs_ser {backend}", flush=True)
        rows += measure_backend(wl, work, backend, repeat, notes)
    rows.append(measure_fileobj(wl, work, repeat))
    peaks = peer_peaks(wl, work)
    return Result(wl, limits, warm, touch_s, peers, rows, notes, peaks)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller workloads (128 MiB, 2,000 arrays)")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where temporary files go")
    p.add_argument("--repeat", type=int, default=3, help="best of N for every figure")
    p.add_argument("--workloads", default="abc", help="which workloads to run, e.g. 'ac'")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build each workload, measure it, print its table, then the summary."""
    global cs
    args = parse_args(argv)
    cs = _import_library()
    makers = {"a": make_big, "b": make_gpt2, "c": make_small}
    work_root = Path(tempfile.mkdtemp(prefix="codecs_ser_bench_", dir=args.dir))
    print_machine(work_root)
    print(f"  repeats: best of {args.repeat}; quick: {args.quick}")
    results = []
    try:
        for key in args.workloads:
            wl = makers[key](args.quick)
            work = work_root / key
            work.mkdir()
            results.append(run_workload(wl, work, args.repeat))
            remove(work)
            print_table(results[-1])
            del wl
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    print("... import cost", flush=True)
    print_summary(results, measure_import(args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
