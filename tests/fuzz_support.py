"""Seed containers, mutators and the operations under test, shared by the fuzz tests and
the long fuzz run (tests/stress/fuzz_long.py).

A mutation draws every decision from a :class:`Chooser`, so the same mutators run on
hypothesis data (which can shrink them) and on a seeded ``random.Random`` (which makes a
long run reproducible from its seed).  Mutations come in kinds:

* ``blind``: byte-level damage anywhere in a container, no fix-ups;
* ``blobdata``: byte-level damage confined to the data bytes of blobs (checksums left as
  they were), for which a successful load must still return the original arrays;
* ``structured``: the container is decoded into a model (manifest with decoded entry and
  blob records, member bytes), fields and members are mutated, and the container is
  written again with every offset, size, checksum and manifest hash fixed up so that
  the readers get past their first check and into the deep code;
* ``replace`` and ``header``: consistent rewrites whose correct result is known (a blob
  replaced by another array; a .npy header rewritten as another valid header).

For dir containers the mutants are file trees, so they can also replace members with
folders, symbolic links or FIFOs, delete them, or point outside the container.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import copy
import dataclasses
import datetime
import decimal
import hashlib
import io
import os
import pickle
import random
import reprlib
import shutil
import struct
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgpack
import numpy as np
import xxhash

import codecs_ser
from codecs_ser import _cli
from codecs_ser._manifest_seal import SEAL_KEY, seal
from codecs_ser.errors import CodecsSerError

T = TypeVar("T")

BACKENDS = ("tar", "zip", "dir")
MANIFEST = ".codecs_ser/manifest.msgpack"
TRAILER = ".codecs_ser/trailer"
_POINTER = struct.Struct("<16sIQQQQ")
TAR_MAGIC = b"CODECS_SER-TAIL\x00"
ZIP_MAGIC = b"CODECS_SER-ZIP\x00\x00"


# -- choices -----------------------------------------------------------------------


class Chooser(Protocol):
    """Where a mutator takes its decisions from."""

    def integer(self, lo: int, hi: int) -> int:
        """An int in [lo, hi]."""
        ...

    def raw(self, n: int) -> bytes:
        """n arbitrary bytes."""
        ...


class RandomChooser:
    """Decisions from a seeded PRNG: a long run is reproduced from its seeds."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self._rng.randint(lo, hi)

    def raw(self, n: int) -> bytes:
        return self._rng.randbytes(n)


def pick(ch: Chooser, seq: Sequence[T]) -> T:
    return seq[ch.integer(0, len(seq) - 1)]


def chance(ch: Chooser, percent: int) -> bool:
    return ch.integer(0, 99) < percent


# -- seeds ---------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    """A user class: its pickled skeleton needs a global outside the default allowlist."""

    x: np.ndarray
    label: str
    weights: list[Any]


POINT_GLOBAL = f"{Point.__module__}.{Point.__qualname__}"


def _objects() -> dict[str, tuple[Any, dict[str, Any]]]:
    """Small objects that between them reach every reader path: name -> (object, dump kwargs)."""
    rng = np.random.default_rng(7)
    base = np.arange(24, dtype="<f8")
    structured = np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8", (2,)), ("c", "S3")])
    structured["a"] = [1, -2, 3]
    structured["c"] = [b"x", b"yz", b""]
    masked = np.ma.masked_array(
        np.array([1.5, 2.5, 3.5, 4.5], dtype="<f4"), mask=[0, 1, 0, 1], fill_value=-1.0
    )
    return {
        "msgpack": (
            {
                "ints": np.arange(6, dtype="<i4").reshape(2, 3),
                "fortran": np.asfortranarray(rng.standard_normal((3, 4))),
                "meta": [1, 2.5, "text", b"raw", None, True, (3, (4, 5)), 2**70, 1 + 2j],
                "scalar": np.float32(1.25),
                "empty": np.zeros((0, 3), dtype="<u2"),
            },
            {},
        ),
        "dtypes": (
            {
                "structured": structured,
                "big": np.array([1.0, -2.0], dtype=">f8"),
                "bool": np.array([True, False, True]),
                "c16": np.array([1 + 2j], dtype="<c16"),
                "time": np.array(["2020-01-01", "2021-06-30"], dtype="<M8[D]"),
                "uni": np.array(["ab", "é"], dtype="<U2"),
                "half": np.array([0.5, 1.5], dtype="<f2"),
                "u64": np.array([2**64 - 1], dtype="<u8"),
                "zero_d": np.array(3, dtype="<i8"),
                "rec": np.rec.array([(1, 2.0)], dtype=[("p", "<i2"), ("q", "<f4")]),
            },
            {"checksum": "crc32"},
        ),
        "views": (
            {"base": base, "slice": base[3:11], "strided": base[::5], "grid": base.reshape(4, 6)},
            {},
        ),
        "masked": ({"m": masked, "plain": np.arange(3, dtype="<i2")}, {"checksum": "sha256"}),
        "pickled": (
            {
                "set": {1, 2, 3},
                "frozen": frozenset({"a", "b"}),
                "ordered": collections.OrderedDict(a=np.arange(4, dtype="<i8"), b=1),
                "when": datetime.date(2020, 1, 2),
                "dec": decimal.Decimal("1.25"),
                "dtype": np.dtype("<f4"),
                "objects": np.array([1, "a", None], dtype=object),
                "shared": [base[:4].copy()] * 2,
            },
            {},
        ),
        # Over the 1 MiB up to which blobs are read in one piece, and over the size from
        # which dir members are mapped: the streaming and mapping readers.
        "large": ({"big": np.arange(140_000, dtype="<f8"), "small": np.ones(3)}, {}),
        "dataclass": (
            Point(x=np.linspace(0, 1, 5), label="p", weights=[np.ones(2, dtype="<f4"), 7]),
            {"checksum": "blake2b"},
        ),
    }


def _second_object() -> Any:
    """What ``add`` appends: one array identical to one already stored (dedupe), one new."""
    return {"again": np.arange(6, dtype="<i4").reshape(2, 3), "new": np.full(5, 9, dtype="<i8")}


Node = Any  # bytes: a file; Link(target), FOLDER, FIFO: special nodes of a dir tree


@dataclasses.dataclass(frozen=True)
class Link:
    target: str


FOLDER = "<folder>"
FIFO = "<fifo>"
#: A file beside the container folder: what a member name that escapes it would reach.
OUTSIDE = "../outside.npy"


@dataclasses.dataclass
class Seed:
    """One valid container and what the operations return for it."""

    name: str
    backend: str
    data: bytes  # tar, zip: the container
    tree: dict[str, Node]  # dir: relative path -> file bytes
    trusted: tuple[str, ...]
    manifest: dict[str, Any]  # decoded, entries as raw bytes
    members: dict[str, bytes]  # every member but the manifest and the trailer, in order
    regions: list[tuple[int, int]]  # tar, zip: interesting byte ranges (headers, members)
    blob_data: list[tuple[str, int, int]]  # (member, start, end) of array data in the member
    baseline: dict[str, Any] = dataclasses.field(default_factory=dict)


def _tree_of(root: str) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for folder, _, files in os.walk(root):
        for f in files:
            path = os.path.join(folder, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root).replace(os.sep, "/")] = fh.read()
    return out


def _npy_header_len(data: bytes) -> int:
    if data[6] == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    return 12 + int.from_bytes(data[8:12], "little")


def _members_of(backend: str, data: bytes, tree: dict[str, Node]) -> dict[str, bytes]:
    if backend == "dir":
        return {k: v for k, v in tree.items() if k != MANIFEST}
    out: dict[str, bytes] = {}
    if backend == "tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for info in tf.getmembers():
                f = tf.extractfile(info)
                assert f is not None
                out[info.name] = f.read()
    else:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                out[name] = zf.read(name)
    out.pop(MANIFEST, None)
    out.pop(TRAILER, None)
    return out


def _regions_of(backend: str, data: bytes) -> list[tuple[int, int]]:
    """Header blocks, member data and the tail: where blind damage is most telling."""
    regions: list[tuple[int, int]] = []
    if backend == "tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for info in tf.getmembers():
                regions.append((info.offset, info.offset_data))
                regions.append((info.offset_data, info.offset_data + info.size))
        end = regions[-1][1] if regions else 0
        regions.append((end, min(len(data), end + 1024)))
    elif backend == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            cd = zf.start_dir
        for info in infos:
            start = info.header_offset
            name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
            body = start + 30 + name_len + extra_len
            regions.append((start, body))
            regions.append((body, body + info.file_size))
        regions.append((cd, len(data)))
        regions.append((max(0, len(data) - 70), len(data)))
    return regions


def _manifest_bytes(backend: str, data: bytes, tree: dict[str, Node]) -> bytes:
    if backend == "dir":
        return tree[MANIFEST]
    if backend == "tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            f = tf.extractfile(MANIFEST)
            assert f is not None
            return f.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(MANIFEST)


def _blob_data(manifest: dict[str, Any], members: dict[str, bytes]) -> list[tuple[str, int, int]]:
    out = []
    seen = set()
    for raw in manifest["entries"]:
        for blob in msgpack.unpackb(raw, raw=False)[7]:
            member = blob[1]
            if member in seen:
                continue
            seen.add(member)
            body = members[member]
            start = _npy_header_len(body)
            if start < len(body):
                out.append((member, start, len(body)))
    return out


def _dump_seed(obj: Any, kwargs: dict[str, Any], backend: str, folder: str, add: bool) -> str:
    suffix = {"tar": ".tar", "zip": ".zip", "dir": ""}[backend]
    path = os.path.join(folder, f"c{suffix}")
    codecs_ser.dump(obj, path, backend=backend, durable=False, **kwargs)
    if add:
        codecs_ser.add(path, _second_object(), name="second", durable=False)
    return path


def make_seeds(backend: str) -> list[Seed]:
    """The seed containers of one backend, each with its baseline results."""
    seeds = []
    plans = [(name, obj, kw, False) for name, (obj, kw) in _objects().items()]
    obj, kw = _objects()["msgpack"]
    plans.append(("added", obj, kw, True))
    with tempfile.TemporaryDirectory(prefix="fuzzseed") as tmp:
        for name, obj, kw, add in plans:
            folder = os.path.join(tmp, name)
            os.mkdir(folder)
            path = _dump_seed(obj, kw, backend, folder, add)
            if backend == "dir":
                data, tree = b"", _tree_of(path)
            else:
                with open(path, "rb") as f:
                    data, tree = f.read(), {}
            manifest = msgpack.unpackb(_manifest_bytes(backend, data, tree), raw=False)
            members = _members_of(backend, data, tree)
            trusted = (POINT_GLOBAL,) if name == "dataclass" else ()
            seed = Seed(
                name=name,
                backend=backend,
                data=data,
                tree=tree,
                trusted=trusted,
                manifest=manifest,
                members=members,
                regions=_regions_of(backend, data),
                blob_data=_blob_data(manifest, members),
            )
            seeds.append(seed)
    for seed in seeds:
        with Workspace() as ws:
            results = run_operations(ws.place(Mutant(seed, "none", seed.data, seed.tree)))
        failed = {op: r for op, r in results.items() if isinstance(r, BaseException)}
        if seed.trusted:
            failed.pop("load", None)  # refused: the object's class is not allowed by default
        if failed:
            raise AssertionError(f"seed {seed.name}/{backend} does not load: {failed}")
        seed.baseline = results
    return seeds


#: Compressed seeds: (label, backend, compress=).
COMPRESSED = (
    ("gzip", "tar", "gzip"),
    ("bz2", "tar", "bz2"),
    ("xz", "tar", "xz"),
    ("deflate", "zip", "deflate"),
)


def make_compressed_seeds() -> list[Seed]:
    """One small object dumped with each compression, with its baseline results: blind
    damage to a compressed stream reaches the decompressors and their bounds."""
    obj, kw = _objects()["msgpack"]
    seeds = []
    for label, backend, compress in COMPRESSED:
        data = codecs_ser.dumps(obj, backend=backend, compress=compress, **kw)
        plain = codecs_ser.dumps(obj, backend=backend, **kw)
        seed = Seed(
            name=f"compressed-{label}",
            backend=backend,
            data=data,
            tree={},
            trusted=(),
            manifest=msgpack.unpackb(_manifest_bytes(backend, plain, {}), raw=False),
            members=_members_of(backend, plain, {}),
            regions=[(0, min(len(data), 64)), (max(0, len(data) - 64), len(data))],
            blob_data=[],
        )
        with Workspace() as ws:
            results = run_operations(ws.place(Mutant(seed, "none", seed.data, seed.tree)))
        failed = {op: r for op, r in results.items() if isinstance(r, BaseException)}
        if failed:
            raise AssertionError(f"seed {seed.name} does not load: {failed}")
        seed.baseline = results
        seeds.append(seed)
    return seeds


# -- mutants -------------------------------------------------------------------------


@dataclasses.dataclass
class Mutant:
    """A mutated container and what its correct reading is known to be, where it is."""

    seed: Seed
    kind: str
    data: bytes
    tree: dict[str, Node]
    steps: list[str] = dataclasses.field(default_factory=list)
    #: ops whose successful result must equal the seed's baseline
    same_as_seed: tuple[str, ...] = ()
    #: verify() must report a problem
    damaged: bool = False
    #: load_arrays must succeed and return exactly this
    arrays: dict[str, np.ndarray] | None = None

    def describe(self) -> str:
        return f"{self.seed.backend}/{self.seed.name} {self.kind}: " + "; ".join(self.steps)


INTERESTING_INTS = (
    0,
    1,
    -1,
    2,
    7,
    8,
    16,
    63,
    64,
    127,
    128,
    255,
    256,
    511,
    512,
    513,
    1023,
    4096,
    65535,
    65536,
    2**20,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53,
    2**62,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**31),
    -(2**63),
)
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xC1, 0xC3, 0xD9, 0xDD, 0xDF, 0x30, 0x20)


def _interesting_int(ch: Chooser, width: int) -> int:
    value = pick(ch, INTERESTING_INTS)
    if chance(ch, 20):
        value += pick(ch, (-1, 1))
    return value % (1 << (8 * width))


# -- blind byte mutations --------------------------------------------------------------


def _position(ch: Chooser, size: int, regions: Sequence[tuple[int, int]]) -> int:
    """A byte position, often inside an interesting region (the rest is mostly padding)."""
    if regions and chance(ch, 75):
        start, end = pick(ch, regions)
        end = min(end, size)
        if start < end:
            return ch.integer(start, end - 1)
    return ch.integer(0, size - 1)


def blind(
    data: bytes,
    ch: Chooser,
    steps: list[str],
    *,
    regions: Sequence[tuple[int, int]] = (),
    other: bytes = b"",
    keep_size: bool = False,
    block: int = 1,
) -> bytes:
    """One byte-level mutation; ``keep_size`` allows only in-place ones.

    ``block``: a size the result is usually padded to (a tar's size must be a multiple of
    512, or the reader stops at once).
    """
    buf = bytearray(data)
    if not buf:
        steps.append("blind: fill empty")
        return bytes(ch.raw(ch.integer(1, 16))) if not keep_size else data
    ops = ["flip", "byte", "int", "ascii", "random", "copy"]
    if not keep_size:
        ops += ["insert", "delete", "truncate", "splice", "dup", "extend"]
    op = pick(ch, ops)
    pos = _position(ch, len(buf), regions)
    if op == "flip":
        bit = ch.integer(0, 7)
        buf[pos] ^= 1 << bit
        steps.append(f"flip bit {bit} at {pos}")
    elif op == "byte":
        value = pick(ch, INTERESTING_BYTES) if chance(ch, 70) else ch.integer(0, 255)
        buf[pos] = value
        steps.append(f"byte {value:#x} at {pos}")
    elif op == "int":
        width = pick(ch, (1, 2, 4, 8))
        order = pick(ch, ("little", "big"))
        value = _interesting_int(ch, width)
        raw = value.to_bytes(width, order)[: len(buf) - pos]
        buf[pos : pos + len(raw)] = raw
        steps.append(f"int {value} ({width} bytes {order}) at {pos}")
    elif op == "ascii":
        text = pick(ch, (b"0", b"7", b"-1", b"77777777777", b"99999999999", b" ", b"\x00", b"x"))
        text = text[: len(buf) - pos]
        buf[pos : pos + len(text)] = text
        steps.append(f"text {text!r} at {pos}")
    elif op == "random":
        n = min(ch.integer(1, 32), len(buf) - pos)
        buf[pos : pos + n] = ch.raw(n)
        steps.append(f"random {n} bytes at {pos}")
    elif op == "copy":
        src = _position(ch, len(buf), regions)
        n = min(ch.integer(1, 64), len(buf) - src, len(buf) - pos)
        buf[pos : pos + n] = buf[src : src + n]
        steps.append(f"copy {n} bytes from {src} to {pos}")
    elif op == "insert":
        n = pick(ch, (1, 2, 4, 8, 64, 512, ch.integer(1, 1024)))
        fill = pick(ch, ("zeros", "random", "copy"))
        chunk = (
            bytes(n) if fill == "zeros" else ch.raw(n) if fill == "random" else bytes(buf[pos:])[:n]
        )
        buf[pos:pos] = chunk
        steps.append(f"insert {len(chunk)} {fill} bytes at {pos}")
    elif op == "delete":
        n = pick(ch, (1, 2, 8, 512, ch.integer(1, 1024)))
        del buf[pos : pos + n]
        steps.append(f"delete {n} bytes at {pos}")
    elif op == "truncate":
        del buf[pos:]
        steps.append(f"truncate to {pos}")
    elif op == "splice":
        donor = other or bytes(buf)
        cut = ch.integer(0, len(donor))
        buf = buf[:pos] + donor[cut:]
        steps.append(f"splice donor[{cut}:] at {pos}")
    elif op == "dup":
        n = min(pick(ch, (16, 512, 1024, ch.integer(1, 4096))), len(buf) - pos)
        at = ch.integer(0, len(buf))
        buf[at:at] = buf[pos : pos + n]
        steps.append(f"duplicate {n} bytes from {pos} at {at}")
    else:
        n = pick(ch, (1, 512, 10240, ch.integer(1, 2048)))
        buf += bytes(n) if chance(ch, 50) else ch.raw(n)
        steps.append(f"extend by {n}")
    if block > 1 and len(buf) % block and chance(ch, 80):
        buf += bytes(-len(buf) % block)
        steps.append(f"zero-padded to {len(buf)}")
    return bytes(buf)


def _blinds(data: bytes, ch: Chooser, steps: list[str], **kwargs: Any) -> bytes:
    for _ in range(ch.integer(1, 3)):
        data = blind(data, ch, steps, **kwargs)
    return data


def mutate_blind(seed: Seed, ch: Chooser, other: Seed | None = None) -> Mutant:
    """Byte damage anywhere in the container (dir: in one of its files), no fix-ups."""
    steps: list[str] = []
    if seed.backend == "dir":
        tree = dict(seed.tree)
        name = pick(ch, sorted(tree))
        donor = b""
        if other is not None and other.tree:
            donor = pick(ch, [v for v in other.tree.values() if isinstance(v, bytes)])
        tree[name] = _blinds(tree[name], ch, steps, other=donor)
        steps.insert(0, f"file {name}")
        return Mutant(seed, "blind", b"", tree, steps)
    donor = other.data if other is not None else b""
    block = 512 if seed.backend == "tar" else 1
    data = _blinds(seed.data, ch, steps, regions=seed.regions, other=donor, block=block)
    return Mutant(seed, "blind", data, {}, steps)


def _member_data_offset(seed: Seed, member: str) -> int:
    """Where a member's bytes lie in a tar or zip seed."""
    body = seed.members[member]
    for start, end in seed.regions:
        if end - start == len(body) and seed.data[start:end] == body:
            return start
    raise LookupError(member)


def mutate_blob_data(seed: Seed, ch: Chooser) -> Mutant | None:
    """In-place damage to array data bytes only: checksums must catch every change."""
    if not seed.blob_data:
        return None
    steps: list[str] = []
    member, start, end = pick(ch, seed.blob_data)
    body = seed.members[member]
    region = [(start, end)]
    new = body
    for _ in range(ch.integer(1, 3)):
        new = blind(new, ch, steps, regions=region, keep_size=True)
        if new[:start] != body[:start]:
            new = body[:start] + new[start:]  # a position outside the region was drawn
    if new == body:
        return None
    steps.insert(0, f"data of {member}")
    if seed.backend == "dir":
        tree = dict(seed.tree)
        tree[member] = new
        data = b""
    else:
        at = _member_data_offset(seed, member)
        data = seed.data[:at] + new + seed.data[at + len(body) :]
        tree = {}
    ops = ("open", "load", "load_allowed", "load_arrays", "mmap")
    return Mutant(seed, "blobdata", data, tree, steps, same_as_seed=ops, damaged=True)


# -- the model: a container taken apart, mutated, and written again ------------------


@dataclasses.dataclass
class Raw:
    """An entry record kept as (possibly mutated) bytes, packed as they are."""

    data: bytes


@dataclasses.dataclass
class Model:
    backend: str
    manifest: dict[str, Any]  # entries decoded to lists, or Raw
    members: dict[str, bytes]
    dropped: set[str] = dataclasses.field(default_factory=set)  # dir: members not written


def model_of(seed: Seed) -> Model:
    manifest = copy.deepcopy(seed.manifest)
    manifest["entries"] = [msgpack.unpackb(e, raw=False) for e in seed.manifest["entries"]]
    return Model(seed.backend, manifest, dict(seed.members))


def blob_records(m: Model) -> list[list[Any]]:
    out = []
    entries = m.manifest.get("entries")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, list) and len(entry) > 7 and isinstance(entry[7], list):
            out.extend(b for b in entry[7] if isinstance(b, list) and len(b) >= 9)
    return out


def _n_entries(m: Model) -> int:
    entries = m.manifest.get("entries")
    return len(entries) if isinstance(entries, list) else 0


def _skeleton_records(m: Model) -> list[dict[str, Any]]:
    out = []
    objects = m.manifest.get("objects")
    for obj in objects if isinstance(objects, list) else []:
        if isinstance(obj, dict) and isinstance(obj.get("skeleton"), dict):
            out.append(obj["skeleton"])
    return out


def _digest(algorithm: str, data: bytes) -> str:
    if algorithm == "xxh3_64":
        return xxhash.xxh3_64_hexdigest(data)
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128_hexdigest(data)
    if algorithm == "crc32":
        return f"{zlib.crc32(data):08x}"
    return hashlib.new(algorithm, data).hexdigest()


def _checksum_of(record_checksum: Any, data: bytes) -> str:
    algorithm = record_checksum.partition(":")[0] if isinstance(record_checksum, str) else ""
    if algorithm not in ("xxh3_64", "xxh3_128", "crc32", "sha256", "blake2b"):
        algorithm = "xxh3_64"
    return f"{algorithm}:{_digest(algorithm, data)}"


def refresh_member(m: Model, member: str, *, fix_checksum: bool = True) -> None:
    """After a member's bytes changed: its size and (optionally) checksum in every record."""
    body = m.members[member]
    for blob in blob_records(m):
        if blob[1] == member:
            blob[3] = len(body)
            if fix_checksum:
                blob[7] = _checksum_of(blob[7], body)
    for skel in _skeleton_records(m):
        if skel.get("member") == member:
            skel["size"] = len(body)
            if fix_checksum:
                skel["checksum"] = _checksum_of(skel.get("checksum"), body)


def _build_header(descr: Any, fortran: Any, shape: Any, version: int = 1, pad: int = 0) -> bytes:
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}"
    body = (text + " " * pad).encode("utf8" if version == 3 else "latin1", "replace")
    prefix = 10 if version == 1 else 12
    total = prefix + len(body) + 1
    body += b" " * (-total % 64) + b"\n"
    size = len(body).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes((version, 0)) + size + body


def _npy_bytes(arr: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, arr, allow_pickle=False)
    else:
        np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


_DESCRS: tuple[Any, ...] = (
    "<f8",
    ">f8",
    "<i4",
    "|b1",
    "|u1",
    "<U0",
    "<U3",
    "|S0",
    "|S5",
    "|V0",
    "|V8",
    "|O",
    "O",
    "<M8[ns]",
    "<m8[D]",
    "<c16",
    "<f2",
    "<i0",
    "V2147483648",
    "<U1073741824",
    "|S9223372036854775807",
    "<f8)",
    "",
    "[('a', '<i4')]",
    [["a", "<i4"]],
    [["a", "<i4", [2**31]]],
    [["a", "<f8", [1024, 1024, 1024]]],
    [["", "<i4"]],
    [[["title", "n"], "<i4"]],
    [["a", [["b", "<i4"], ["c", "|O"]]]],
    [["a", "<i4"], ["a", "<f8"]],
    [["a", "|O"]],
    [["a", "<i4", []]],
    [["a", "<i4", [-1]]],
    [],
    [["a"]],
    [["a", "<i4", [2], "x"]],
    [[1, "<i4"]],
)
_SHAPES: tuple[Any, ...] = (
    [],
    [0],
    [1],
    [3],
    [2**31],
    [2**63 - 1],
    [2**32, 2**32],
    [1] * 65,
    [1] * 64,
    [-1],
    [2**64 - 1],
    ["3"],
    [1.5],
    [True],
    [0, 2**63 - 1],
    None,
)
_STRINGS: tuple[str, ...] = (
    "",
    ".",
    "..",
    "/",
    "a.npy",
    OUTSIDE,
    "/etc/passwd",
    ".codecs_ser/manifest.msgpack",
    ".codecs_ser/trailer",
    ".codecs_ser/objects/0.msgpack",
    ".codecs_ser/objects/0.pickle",
    ".codecs_ser",
    "a" * 300,
    "a/" * 60 + "b.npy",
    "x\x00y",
    "é.npy",
    "a\\b.npy",
    "numpy.ndarray",
    "numpy.masked",
    "numpy.scalar",
    "torch.tensor",
    "xxh3_64:",
    "xxh3_64:0",
    "sha256:00",
    "md5:00",
    ":",
    "msgpack",
    "pickle",
    "data",
    "mask",
    "fill_value",
    "cuda:0",
    "main",
    "second",
    "second/",
)


#: Member names a reader must refuse or resolve safely.
MEMBER_NAMES: tuple[str, ...] = (
    "",
    ".",
    "..",
    "/",
    "/etc/passwd",
    OUTSIDE,
    "a/../../outside.npy",
    "a//b.npy",
    "./a.npy",
    "a" * 256 + ".npy",
    "a" * 300 + ".npy",
    "d/" * 2100 + "x.npy",
    "x\x00y.npy",
    "a\\b.npy",
    "é.npy",
    ".codecs_ser",
    ".codecs_ser/objects",
    MANIFEST,
    TRAILER,
    ".codecs_ser/.manifest.msgpack.add-deadbeef",
    "ints.npy/x",
    "A.NPY",
)


def _some_member(m: Model, ch: Chooser) -> str:
    names = sorted(m.members)
    return pick(ch, names) if names else "a.npy"


def random_value(ch: Chooser, m: Model | None = None, depth: int = 0) -> Any:
    """A msgpack-packable value of any type, biased to the boundaries readers get wrong."""
    kind = ch.integer(0, 13 if depth < 2 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return bool(ch.integer(0, 1))
    if kind == 2:
        return pick(ch, INTERESTING_INTS)
    if kind == 3:
        return pick(ch, (0.0, -0.0, 1.5, float("nan"), float("inf"), -float("inf"), 1e308))
    if kind == 4:
        return pick(ch, _STRINGS)
    if kind == 5 and m is not None:
        return _some_member(m, ch)
    if kind == 6:
        return ch.raw(ch.integer(0, 16))
    if kind == 7:
        return pick(ch, _DESCRS)
    if kind == 8:
        return msgpack.ExtType(ch.integer(0, 127), ch.raw(ch.integer(0, 8)))
    if kind == 9:
        return copy.deepcopy(pick(ch, _SHAPES))
    if kind == 10:
        return [random_value(ch, m, depth + 1) for _ in range(ch.integer(0, 3))]
    if kind == 11:
        return {pick(ch, _STRINGS): random_value(ch, m, depth + 1) for _ in range(ch.integer(0, 3))}
    if kind == 12:
        return {"view": _view_meta(ch)}
    return msgpack.Timestamp(ch.integer(-(2**40), 2**40), 0)


def _view_meta(ch: Chooser) -> Any:
    """The meta of a numpy view entry, with fields at the edges of its base."""
    n = ch.integer(0, 3)
    meta: dict[str, Any] = {
        "base": pick(ch, (0, 1, 2, 3, -1, 2**31, None, "0")),
        "offset": pick(ch, (0, 8, 16, 184, 192, 200, -8, 2**62, 2**63 - 1, None, 1.0)),
        "strides": [pick(ch, (0, 8, 16, 24, -8, 1, 2**62, -(2**62), 3)) for _ in range(n)],
    }
    if chance(ch, 20):
        del meta[pick(ch, sorted(meta))]
    return meta


def tweak(value: Any, ch: Chooser, m: Model | None = None) -> Any:
    """A variation of a value of the same kind (or, sometimes, of any kind)."""
    if chance(ch, 25):
        return random_value(ch, m)
    if type(value) is bool:
        return not value
    if type(value) is int:
        return pick(
            ch,
            (
                value + 1,
                value - 1,
                value + 512,
                value - 512,
                value * 2,
                -value,
                value + 64,
                value ^ (1 << ch.integer(0, 62)),
                pick(ch, INTERESTING_INTS),
                float(value),
                str(value),
            ),
        )
    if type(value) is str:
        return pick(
            ch,
            (
                "",
                value + "x",
                value[:-1],
                value.upper(),
                value + "/..",
                "../" + value,
                value + "\x00",
                pick(ch, _STRINGS),
                value.encode(),
                _some_member(m, ch) if m else value,
            ),
        )
    if type(value) is list:
        value = list(value)
        op = ch.integer(0, 4)
        if op == 0 and value:
            del value[ch.integer(0, len(value) - 1)]
        elif op == 1 and value:
            value.append(copy.deepcopy(pick(ch, value)))
        elif op == 2:
            value.append(random_value(ch, m))
        elif op == 3 and len(value) > 1:
            i, j = ch.integer(0, len(value) - 1), ch.integer(0, len(value) - 1)
            value[i], value[j] = value[j], value[i]
        else:
            value = value[: ch.integer(0, len(value))]
        return value
    if type(value) is dict:
        value = dict(value)
        if value and chance(ch, 50):
            del value[pick(ch, sorted(value, key=repr))]
        else:
            value[pick(ch, _STRINGS)] = random_value(ch, m)
        return value
    if type(value) is bytes:
        return blind(value, ch, []) if value else ch.raw(4)
    return random_value(ch, m)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 4


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a decoded msgpack tree (down to a depth of 40), as the keys that lead
    to it."""
    out = [prefix]
    if len(prefix) >= 40:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(tree, path[:-1])[path[-1]] = value
    return tree


def mutate_tree(tree: Any, ch: Chooser, m: Model | None, steps: list[str], what: str) -> Any:
    """Change one node of a decoded tree: replace, tweak, delete it."""
    paths = _paths(tree)
    path = pick(ch, paths) if len(paths) == 1 or chance(ch, 10) else pick(ch, paths[1:])
    old = _get(tree, path)
    if path and chance(ch, 10):
        parent = _get(tree, path[:-1])
        del parent[path[-1]]
        steps.append(f"{what}{list(path)}: deleted")
        return tree
    new = tweak(old, ch, m)
    steps.append(f"{what}{list(path)}: {_short(old)} -> {_short(new)}")
    return _set(tree, path, new)


def _short(value: Any) -> str:
    """A bounded repr (also of deeply nested values) for a mutation's description."""
    return _REPR.repr(value)


# -- structured mutations of the manifest --------------------------------------------


def _mutate_entry(m: Model, ch: Chooser, steps: list[str]) -> None:
    entries = m.manifest.get("entries")
    if not isinstance(entries, list) or not entries:
        return
    i = ch.integer(0, len(entries) - 1)
    entry = entries[i]
    if isinstance(entry, Raw):
        entry.data = blind(entry.data, ch, steps)
        return
    op = ch.integer(0, 10)
    if op == 0:
        packed = msgpack.packb(entry, use_bin_type=True)
        entries[i] = Raw(blind(packed, ch, steps))
        steps[-1] = f"entry {i} bytes: {steps[-1]}"
    elif op == 1 and isinstance(entry, list) and len(entry) > 7 and isinstance(entry[7], list):
        blobs = entry[7]
        j = ch.integer(0, max(0, len(blobs) - 1))
        if blobs and isinstance(blobs[j], list):
            field = ch.integer(0, len(blobs[j]) - 1) if blobs[j] else 0
            if blobs[j]:
                old = blobs[j][field]
                blobs[j][field] = tweak(old, ch, m)
                steps.append(
                    f"entry {i} blob {j} field {field}: {_short(old)} -> {_short(blobs[j][field])}"
                )
    elif op == 2 and isinstance(entry, list) and len(entry) > 6:
        entry[6] = {"view": _view_meta(ch)} if chance(ch, 70) else random_value(ch, m)
        steps.append(f"entry {i} meta = {_short(entry[6])}")
    elif op == 3 and isinstance(entry, list) and len(entry) > 7:
        others = blob_records(m)
        if others:
            entry[7] = [copy.deepcopy(pick(ch, others)) for _ in range(ch.integer(1, 3))]
            steps.append(f"entry {i} blobs taken from other entries")
    elif op == 4 and isinstance(entry, list) and len(entry) > 2:
        entry[2] = pick(
            ch, ("numpy.ndarray", "numpy.masked", "numpy.scalar", "torch.tensor", "", "x")
        )
        steps.append(f"entry {i} codec = {entry[2]}")
    elif op == 5 and isinstance(entry, list) and len(entry) > 7 and isinstance(entry[7], list):
        blobs = [b for b in entry[7] if isinstance(b, list) and len(b) > 1]
        if blobs:
            blob = pick(ch, blobs)
            blob[1] = pick(ch, MEMBER_NAMES)
            steps.append(f"entry {i} blob member = {_short(blob[1])}")
    else:
        entries[i] = mutate_tree(entry, ch, m, steps, f"entry {i}")


def _mutate_top(m: Model, ch: Chooser, steps: list[str]) -> None:
    op = ch.integer(0, 5)
    man = m.manifest
    if op == 0 and isinstance(man.get("names"), list) and man["names"]:
        names = man["names"]
        i = ch.integer(0, len(names) - 1)
        names[i] = tweak(names[i], ch, m)
        steps.append(f"names[{i}] = {_short(names[i])}")
    elif op == 1 and isinstance(man.get("objects"), list) and man["objects"]:
        objects = man["objects"]
        i = ch.integer(0, len(objects) - 1)
        objects[i] = mutate_tree(objects[i], ch, m, steps, f"objects[{i}]")
    elif op == 2 and isinstance(man.get("entries"), list) and len(man["entries"]) > 1:
        entries = man["entries"]
        i, j = ch.integer(0, len(entries) - 1), ch.integer(0, len(entries) - 1)
        entries[i], entries[j] = entries[j], entries[i]
        steps.append(f"entries {i} and {j} swapped")
    else:
        m.manifest = mutate_tree(man, ch, m, steps, "manifest")
        if not isinstance(m.manifest, dict):
            m.manifest = {"format": "codecs_ser", "value": m.manifest}


def _mutate_view_targets(m: Model, ch: Chooser, steps: list[str]) -> None:
    """Make an ndarray entry a view of another, with offsets and strides at the edges."""
    entries = m.manifest.get("entries")
    if not isinstance(entries, list) or len(entries) < 1:
        return
    i = ch.integer(0, len(entries) - 1)
    if isinstance(entries[i], list) and len(entries[i]) > 6:
        entries[i][2] = "numpy.ndarray"
        meta = _view_meta(ch)
        if chance(ch, 60):
            meta["base"] = ch.integer(0, len(entries) - 1)
        entries[i][6] = {"view": meta}
        steps.append(f"entry {i} made a view: {meta}")


def _mutate_trailer_fields(
    pointer: list[Any], data_len: int, regions: Sequence[tuple[int, int]], ch: Chooser
) -> str:
    """Change the tar trailer or zip pointer (magic, version, header off, data off, size)."""
    field = ch.integer(0, 4)
    if field == 0:
        pointer[0] = blind(pointer[0], ch, [], keep_size=True)
    elif field == 1:
        pointer[1] = _interesting_int(ch, 4)
    elif chance(ch, 50) and regions:
        start, end = pick(ch, regions)
        pointer[3], pointer[4] = start, end - start
        pointer[2] = max(0, start - pick(ch, (512, 0, 30, 64, 1)))
    else:
        pointer[field] = _interesting_int(ch, 8) if chance(ch, 50) else ch.integer(0, data_len)
    return f"pointer field {field} = {_short(pointer[field])}"


# -- structured mutations of members -------------------------------------------------


def _mutate_npy_header(body: bytes, ch: Chooser, steps: list[str]) -> bytes:
    """Rewrite a .npy header with one field changed (or its framing broken)."""
    try:
        dtype, fortran, shape, _ = _parse_npy(body)
    except Exception:
        return blind(body, ch, steps)
    data = body[_npy_header_len(body) :]
    descr: Any = np.lib.format.dtype_to_descr(dtype)
    version = 1
    op = ch.integer(0, 7)
    if op == 0:
        new = tweak(list(shape) if isinstance(shape, (list, tuple)) else [shape], ch)
        shape = tuple(new) if isinstance(new, list) else new
    elif op == 1:
        descr = pick(ch, _DESCRS)
    elif op == 2:
        fortran = pick(ch, (not fortran, 1, None, "True"))
    elif op == 3:
        version = pick(ch, (2, 3))
    elif op == 4:
        header = _build_header(descr, fortran, shape)
        header = header.replace(b"}", b", 'extra': 1}", 1)
        steps.append("npy header: extra key")
        return header + data
    elif op == 5:
        length = _interesting_int(ch, 2)
        steps.append(f"npy header length = {length}")
        return body[:8] + length.to_bytes(2, "little") + body[10:]
    elif op == 6:
        steps.append("npy header: padding")
        return _build_header(descr, fortran, shape, pad=ch.integer(1, 200)) + data
    else:
        steps.append("npy header: version byte")
        return body[:6] + bytes((pick(ch, (0, 2, 3, 4, 255)),)) + body[7:]
    steps.append(f"npy header: descr={_short(descr)} fortran={fortran!r} shape={_short(shape)}")
    return _build_header(descr, fortran, shape, version) + data


def _parse_npy(body: bytes) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    """(dtype, fortran_order, shape, header length) of a well-formed .npy member."""
    hlen = _npy_header_len(body)
    start = 10 if body[6] == 1 else 12
    header = ast.literal_eval(body[start:hlen].decode("utf8" if body[6] == 3 else "latin1"))
    dtype = np.lib.format.descr_to_dtype(header["descr"])
    return dtype, header["fortran_order"], header["shape"], hlen


def _mutate_msgpack_skeleton(body: bytes, ch: Chooser, steps: list[str], m: Model) -> bytes:
    """Decode a msgpack skeleton keeping its extension types, change one node, re-encode."""
    try:
        tree = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except Exception:
        return blind(body, ch, steps)
    op = ch.integer(0, 6)
    n_entries = _n_entries(m)
    if op == 0:
        index = pick(ch, (0, 1, n_entries - 1, n_entries, -1, 2**31, 2**63, 2**64 - 1))
        leaf = msgpack.ExtType(2, msgpack.packb(index))
        steps.append(f"skeleton: leaf ref {index}")
        tree = [tree, leaf]
    elif op == 1:
        depth = pick(ch, (15, 16, 17, 100))
        value: Any = 1
        for _ in range(depth):
            value = msgpack.ExtType(1, msgpack.packb([value]))
        steps.append(f"skeleton: tuples nested {depth}")
        tree = [tree, value]
    elif op == 2:
        code = pick(ch, (1, 2, 3, 4, 0, 5, 127))
        payload = ch.raw(pick(ch, (0, 1, 8, 15, 16, 17, 70000)))
        steps.append(f"skeleton: ext {code} with {len(payload)} bytes")
        tree = [tree, msgpack.ExtType(code, payload)]
    elif op == 3:
        n = pick(ch, (65, 200))
        step = (1 << 61) - 1  # ints equal modulo 2**61-1 share a hash
        tree = [tree, {k * step: 0 for k in range(n)}]
        steps.append(f"skeleton: {n} colliding int keys")
    elif op == 4:
        deep: Any = 0
        for _ in range(pick(ch, (100, 1000, 3000))):
            deep = [deep]
        tree = [tree, deep]
        steps.append("skeleton: deeply nested lists")
    else:
        tree = mutate_tree(tree, ch, m, steps, "skeleton")
    try:
        return msgpack.packb(tree, use_bin_type=True)
    except Exception:
        return blind(body, ch, steps)


def _pickle_templates(n_entries: int) -> list[bytes]:
    """Hostile or odd pickles that use only allowed globals (or name a forbidden one)."""
    p = pickle

    def glob(module: str, name: str) -> bytes:
        return p.GLOBAL + f"{module}\n{name}\n".encode()

    def call(module: str, name: str, *args: bytes) -> bytes:
        return glob(module, name) + p.MARK + b"".join(args) + p.TUPLE + p.REDUCE

    def integer(n: int) -> bytes:
        return p.LONG + f"{n}L\n".encode()

    def pid(n: int) -> bytes:
        return integer(n) + p.BINPERSID

    def text(s: str) -> bytes:
        raw = s.encode()
        return p.BINUNICODE + len(raw).to_bytes(4, "little") + raw

    def frame(body: bytes) -> bytes:
        return p.PROTO + b"\x05" + body + p.STOP

    return [
        frame(call("builtins", "bytearray", integer(2**40))),
        frame(call("builtins", "list", call("builtins", "range", integer(10**12)))),
        frame(call("decimal", "Decimal", text("1e999999999"))),
        frame(call("builtins", "int", text("9" * 5000))),
        frame(call("fractions", "Fraction", text("1e99999999"))),
        frame(
            call(
                "codecs_ser._skeleton",
                "_make_object_array",
                p.EMPTY_LIST + p.MARK + integer(2**31) + p.APPENDS,
                p.NEWFALSE,
                p.EMPTY_LIST,
            )
        ),
        frame(call("codecs_ser._skeleton", "_make_dtype", text("<U1073741824"))),
        frame(
            call("codecs_ser._skeleton", "_make_scalar", text("<f8"), p.SHORT_BINBYTES + b"\x03abc")
        ),
        frame(call("codecs_ser._skeleton", "_as_subclass", pid(0), glob("builtins", "object"))),
        frame(pid(n_entries)),
        frame(pid(-1)),
        frame(text("x") + p.BINPERSID),
        frame(p.EMPTY_DICT + pid(0) + p.MARK + p.BINPUT + b"\x00" + p.STOP),
        frame(call("collections", "deque", p.EMPTY_LIST, integer(-1))),
        frame(call("datetime", "datetime", p.SHORT_BINBYTES + b"\x0a" + b"\xff" * 10)),
        frame(pid(0) + p.EMPTY_DICT + p.BUILD),
        frame(call("builtins", "object") + p.EMPTY_DICT + p.BUILD),
        frame(glob("os", "system") + text("true") + p.TUPLE1 + p.REDUCE),
        frame(p.LONG_BINGET + b"\xff\xff\xff\x7f"),
        frame(p.BINBYTES8 + (2**62).to_bytes(8, "little")),
        frame(p.EXT4 + b"\xff\xff\xff\x7f"),
        frame(p.MARK * 100000),
        frame(
            p.EMPTY_SET
            + p.MARK
            + b"".join(integer(k * ((1 << 61) - 1)) for k in range(80))
            + p.ADDITEMS
        ),
    ]


def _mutate_pickle_skeleton(body: bytes, ch: Chooser, steps: list[str], m: Model) -> bytes:
    n_entries = _n_entries(m)
    op = ch.integer(0, 3)
    if op == 0:
        templates = _pickle_templates(n_entries)
        i = ch.integer(0, len(templates) - 1)
        steps.append(f"skeleton: pickle template {i}")
        return templates[i]
    if op == 1:
        # Splice a template's body in front of the original's STOP.
        templates = _pickle_templates(n_entries)
        i = ch.integer(0, len(templates) - 1)
        snippet = templates[i][2:-1]
        steps.append(f"skeleton: template {i} spliced before STOP")
        return body[:-1] + snippet + pickle.POP + body[-1:]
    return blind(body, ch, steps)


def _mutate_member(m: Model, ch: Chooser, steps: list[str]) -> str | None:
    """Change one member's bytes; returns the member's name."""
    if not m.members:
        return None
    member = _some_member(m, ch)
    body = m.members[member]
    if member.endswith(".npy") and chance(ch, 50):
        new = _mutate_npy_header(body, ch, steps)
    elif member.endswith(".msgpack") and chance(ch, 70):
        new = _mutate_msgpack_skeleton(body, ch, steps, m)
    elif member.endswith(".pickle") and chance(ch, 70):
        new = _mutate_pickle_skeleton(body, ch, steps, m)
    else:
        new = blind(body, ch, steps)
    steps[-1] = f"member {member}: {steps[-1]}"
    m.members[member] = new
    return member


def mutate_structured(seed: Seed, ch: Chooser) -> Mutant:
    """Mutate the decoded container and write it again with every check fixed up."""
    m = model_of(seed)
    steps: list[str] = []
    rounds = ch.integer(1, 3)
    for _ in range(rounds):
        what = ch.integer(0, 9)
        if what <= 2:
            member = _mutate_member(m, ch, steps)
            if member is not None:
                refresh_member(m, member, fix_checksum=chance(ch, 90))
        elif what <= 5:
            _mutate_entry(m, ch, steps)
        elif what == 6:
            _mutate_view_targets(m, ch, steps)
        elif what == 7 and m.members:
            member = _some_member(m, ch)
            if seed.backend == "dir" or chance(ch, 50):
                m.dropped.add(member)
                steps.append(f"member {member} not written")
            else:
                m.members[pick(ch, (OUTSIDE[3:], member + "x", "a" * 120 + ".npy"))] = (
                    m.members.pop(member)
                )
                steps.append(f"member {member} renamed")
        else:
            _mutate_top(m, ch, steps)
    return write_model(seed, m, ch, steps)


def _encode_manifest(m: Model, ch: Chooser, steps: list[str]) -> bytes:
    man = dict(m.manifest)
    entries = man.get("entries")
    if isinstance(entries, list):
        man["entries"] = [
            e.data if isinstance(e, Raw) else msgpack.packb(e, use_bin_type=True) for e in entries
        ]
    sealed = man.pop(SEAL_KEY, None) is not None
    packed = msgpack.packb(man, use_bin_type=True)
    if sealed:  # a dir manifest's own checksum, which anyone can recompute
        packed = seal(packed)
    if chance(ch, 8):
        packed = blind(packed, ch, steps)
        steps[-1] = f"manifest bytes: {steps[-1]}"
    return packed


def _set_offsets(m: Model, offsets: dict[str, int]) -> None:
    for blob in blob_records(m):
        if isinstance(blob[1], str) and blob[1] in offsets:
            blob[2] = offsets[blob[1]]
    for skel in _skeleton_records(m):
        if isinstance(skel.get("member"), str) and skel["member"] in offsets:
            skel["offset"] = offsets[skel["member"]]


def _tar_header(name: str, size: int) -> bytes:
    """Header block(s) of a regular member: plain ustar for short ASCII names (most of
    them, and fast), pax from the standard library for the rest."""
    raw = name.encode("utf-8", "surrogateescape")
    if name.isascii() and 0 < len(raw) < 100 and size < 8**11:
        header = bytearray(512)
        header[: len(raw)] = raw
        header[100:108] = b"0000644\x00"
        header[108:116] = header[116:124] = b"0000000\x00"
        header[124:136] = b"%011o\x00" % size
        header[136:148] = b"14524424400\x00"
        header[148:156] = b" " * 8
        header[156] = 0x30
        header[257:265] = b"ustar\x0000"
        header[148:156] = b"%06o\x00 " % sum(header)
        return bytes(header)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 1_700_000_000
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _TarOut:
    """Writes a tar member by member, telling where each header and data begin."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def add(self, name: str, body: bytes) -> tuple[int, int]:
        start = len(self.buf)
        self.buf += _tar_header(name, len(body))
        data = len(self.buf)
        self.buf += body
        self.buf += bytes(-len(body) % 512)
        return start, data

    def close(self) -> bytes:
        self.buf += bytes(1024)
        self.buf += bytes(-len(self.buf) % 10240)
        return bytes(self.buf)


def _zip_add(zf: zipfile.ZipFile, buf: io.BytesIO, name: str, body: bytes) -> tuple[int, int]:
    """Add a stored member whose data starts on a 64-byte boundary (the alignment extra
    field ends its local header, as in containers codecs_ser writes); (header, data)."""
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    header = buf.tell()
    fixed = 30 + len(name.encode("utf-8"))
    pad = -(header + fixed + 6) % 64
    info.extra = struct.pack("<HHH", 0xD935, 2 + pad, 64) + bytes(pad)
    zf.writestr(info, body)
    return header, header + fixed + 6 + pad


def write_model(seed: Seed, m: Model, ch: Chooser, steps: list[str]) -> Mutant:
    """The container of a model, every offset and the manifest hash made consistent."""
    if seed.backend == "dir":
        tree: dict[str, Node] = {k: v for k, v in m.members.items() if k not in m.dropped}
        tree[MANIFEST] = _encode_manifest(m, ch, steps)
        if chance(ch, 30):
            tree = mutate_fs(tree, ch, steps)
        return Mutant(seed, "structured", b"", tree, steps)
    buf = io.BytesIO()
    offsets: dict[str, int] = {}
    if seed.backend == "tar":
        tar = _TarOut()
        for name, body in m.members.items():
            offsets[name] = tar.add(name, body)[1]
        _set_offsets(m, offsets)
        manifest = _encode_manifest(m, ch, steps)
        header_at, data_at = tar.add(MANIFEST, manifest)
        pointer = [TAR_MAGIC, 1, header_at, data_at, len(manifest), 0]
        regions = [(o, o + len(m.members[n])) for n, o in offsets.items()]
        if chance(ch, 10):
            steps.append(_mutate_trailer_fields(pointer, len(tar.buf), regions, ch))
        pointer[5] = _hash_at(bytes(tar.buf), pointer[3], pointer[4], manifest)
        tar.add(TRAILER, _POINTER.pack(*pointer))
        data = tar.close()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
                for name, body in m.members.items():
                    offsets[name] = _zip_add(zf, buf, name, body)[1]
                _set_offsets(m, offsets)
                manifest = _encode_manifest(m, ch, steps)
                header, data_at = _zip_add(zf, buf, MANIFEST, manifest)
                pointer = [ZIP_MAGIC, 1, header, data_at, len(manifest), 0]
                regions = [(o, o + len(m.members[n])) for n, o in offsets.items()]
                if chance(ch, 10):
                    steps.append(_mutate_trailer_fields(pointer, buf.tell(), regions, ch))
                pointer[5] = _hash_at(buf.getvalue(), pointer[3], pointer[4], manifest)
                zf.comment = _POINTER.pack(*pointer)
        data = buf.getvalue()
    if chance(ch, 5):
        data = blind(data, ch, steps, regions=seed.regions)
    return Mutant(seed, "structured", data, {}, steps)


def _hash_at(data: bytes, offset: int, size: int, manifest: bytes) -> int:
    """The hash a trailer must give for the bytes it points at (so a moved pointer is
    followed, not refused at once)."""
    if offset >= 0 and size <= 1 << 24 and offset + size <= len(data):
        return xxhash.xxh3_64_intdigest(data[offset : offset + size])
    return xxhash.xxh3_64_intdigest(manifest)


def mutate_replace(seed: Seed, ch: Chooser) -> Mutant | None:
    """Replace one blob by another array, the manifest updated to match: the result is known."""
    m = model_of(seed)
    blobs = blob_records(m)
    if not blobs:
        return None
    target = pick(ch, blobs)
    member = target[1]
    arr = pick(
        ch,
        (
            np.arange(7, dtype="<i2"),
            np.zeros((2, 0, 3), dtype="<f4"),
            np.array(5.5, dtype=">f8"),
            np.asfortranarray(np.arange(12, dtype="<u4").reshape(3, 4)),
            np.array([(1, b"ab")], dtype=[("n", "<i8"), ("s", "S2")]),
            np.array(["xyz"], dtype="<U3"),
            np.ones(3, dtype="|b1"),
        ),
    )
    m.members[member] = _npy_bytes(arr)
    descr = _lists(np.lib.format.dtype_to_descr(arr.dtype))
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
    expected = {k: v for k, v in seed.baseline["load_arrays"].items()}
    for i, entry in enumerate(m.manifest["entries"]):
        for j, blob in enumerate(entry[7]):
            if blob[1] == member:
                blob[4], blob[5], blob[6] = descr, list(arr.shape), fortran
                key = blob[8] or (m.manifest["names"][i] if j == 0 else member[:-4])
                expected[key] = arr
    refresh_member(m, member)
    steps = [f"{member} replaced by {arr.dtype} {arr.shape}"]
    mutant = write_model(seed, m, _Never(), steps)
    mutant.kind = "replace"
    mutant.arrays = expected
    return mutant


def mutate_header(seed: Seed, ch: Chooser) -> Mutant | None:
    """Rewrite one .npy header as another valid header of the same array (a version 2.0 or
    3.0 header, or more padding): the arrays read must not change."""
    m = model_of(seed)
    names = [n for n in m.members if n.endswith(".npy")]
    if not names:
        return None
    member = pick(ch, names)
    body = m.members[member]
    dtype, fortran, shape, hlen = _parse_npy(body)
    descr = np.lib.format.dtype_to_descr(dtype)
    version = pick(ch, (1, 2, 3))
    pad = pick(ch, (0, 1, 64, 300))
    m.members[member] = _build_header(descr, fortran, shape, version, pad) + body[hlen:]
    refresh_member(m, member)
    steps = [f"{member} header rewritten as version {version}.0, {pad} more spaces"]
    mutant = write_model(seed, m, _Never(), steps)
    mutant.kind = "header"
    mutant.same_as_seed = ("open", "load", "load_allowed", "load_arrays", "verify", "mmap")
    mutant.arrays = dict(seed.baseline["load_arrays"])
    return mutant


class _Never:
    """A chooser that declines every optional extra mutation (for the known-result kinds)."""

    def integer(self, lo: int, hi: int) -> int:
        return hi if hi == 99 and lo == 0 else lo

    def raw(self, n: int) -> bytes:
        return bytes(n)


def _lists(descr: Any) -> Any:
    if isinstance(descr, str):
        return descr
    return [
        [
            list(f[0]) if isinstance(f[0], tuple) else f[0],
            _lists(f[1]),
            *([list(f[2])] if len(f) == 3 else []),
        ]
        for f in descr
    ]


# -- dir trees -----------------------------------------------------------------------


def mutate_fs(tree: dict[str, Node], ch: Chooser, steps: list[str]) -> dict[str, Node]:
    """Damage a container folder the way a file system can: a member truncated, grown,
    deleted, or replaced by a folder, a symbolic link or a FIFO; a stray journal."""
    tree = dict(tree)
    name = pick(ch, sorted(tree))
    op = ch.integer(0, 8)
    node = tree[name]
    if op == 0 and isinstance(node, bytes):
        tree[name] = node[: ch.integer(0, max(0, len(node) - 1))]
        steps.append(f"fs: {name} truncated")
    elif op == 1 and isinstance(node, bytes):
        tree[name] = node + bytes(pick(ch, (1, 64, 4096)))
        steps.append(f"fs: {name} grown")
    elif op == 2:
        del tree[name]
        steps.append(f"fs: {name} deleted")
    elif op == 3:
        tree[name] = FOLDER
        steps.append(f"fs: {name} is a folder")
    elif op == 4:
        target = pick(ch, ("/etc/passwd", "../outside.npy", "missing.npy", ".", name, "a.npy"))
        if target not in ("/etc/passwd", "../outside.npy", "missing.npy", "."):
            target = os.path.basename(pick(ch, sorted(tree)))
        tree[name] = Link(target)
        steps.append(f"fs: {name} -> symlink {target}")
    elif op == 5:
        tree[name] = FIFO
        steps.append(f"fs: {name} is a FIFO")
    elif op == 6:
        tree[".codecs_ser/.manifest.msgpack.add-deadbeef"] = b"a.npy\n../outside.npy\n"
        steps.append("fs: stray add journal")
    elif op == 7:
        folder = name.rpartition("/")[0]
        if folder:
            tree = {k: v for k, v in tree.items() if not k.startswith(folder + "/")}
            tree[folder] = Link("/tmp") if chance(ch, 50) else b"not a folder"
            steps.append(f"fs: folder {folder} replaced")
        else:
            steps.append("fs: nothing")
    else:
        tree[name] = ch.raw(ch.integer(0, 600))
        steps.append(f"fs: {name} random content")
    return tree


def write_tree(tree: dict[str, Node], root: str) -> None:
    """Materialize a dir mutant under ``root`` (whose parent receives OUTSIDE)."""
    os.makedirs(root)
    with open(os.path.join(os.path.dirname(root), "outside.npy"), "wb") as f:
        f.write(_npy_bytes(np.arange(3, dtype="<i8")))
    for name in sorted(tree, key=lambda n: (n.count("/"), n)):
        node = tree[name]
        parts = name.split("/")
        if not name or "\x00" in name or any(p in ("", ".", "..") for p in parts):
            continue
        path = os.path.join(root, *parts)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            if os.path.lexists(parent):
                continue  # a mutant made the parent a file or a link
            os.makedirs(parent)
        if os.path.lexists(path) or len(path) > 4000 or max(map(len, parts)) > 255:
            continue
        if isinstance(node, bytes):
            with open(path, "wb") as f:
                f.write(node)
        elif isinstance(node, Link):
            os.symlink(node.target, path)
        elif node == FOLDER:
            os.mkdir(path)
        elif node == FIFO:
            os.mkfifo(path)


def mutate(seed: Seed, ch: Chooser, other: Seed | None = None, kind: str | None = None) -> Mutant:
    """One mutant of a seed, of the given kind or a drawn one."""
    kind = kind or pick(
        ch,
        (
            "blind",
            "blind",
            "blobdata",
            "structured",
            "structured",
            "structured",
            "replace",
            "header",
            "fs",
        ),
    )
    mutant: Mutant | None = None
    if kind == "blobdata":
        mutant = mutate_blob_data(seed, ch)
    elif kind == "replace":
        mutant = mutate_replace(seed, ch)
    elif kind == "header":
        mutant = mutate_header(seed, ch)
    elif kind == "fs" and seed.backend == "dir":
        steps: list[str] = []
        mutant = Mutant(seed, "fs", b"", mutate_fs(seed.tree, ch, steps), steps)
    elif kind == "structured":
        mutant = mutate_structured(seed, ch)
    if mutant is None:
        mutant = mutate_blind(seed, ch, other)
    return mutant


# -- running the operations ----------------------------------------------------------


class Workspace:
    """A scratch folder (in /dev/shm where there is one) for the files a mutant needs."""

    def __init__(self, base: str | None = None) -> None:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.root = tempfile.mkdtemp(prefix="fuzz", dir=base or shm)
        self._n = 0

    def place(self, mutant: Mutant) -> Placed:
        """Put the mutant where the operations can read it (a file only when asked for)."""
        self.clear()
        self._n += 1
        folder = os.path.join(self.root, str(self._n))
        os.makedirs(folder)
        if mutant.seed.backend == "dir":
            path = os.path.join(folder, "c")
            write_tree(mutant.tree, path)
            return Placed(mutant, path, path)
        return Placed(mutant, mutant.data, os.path.join(folder, "c." + mutant.seed.backend))

    def clear(self) -> None:
        for name in os.listdir(self.root):
            shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclasses.dataclass
class Placed:
    mutant: Mutant
    source: bytes | str  # what the API calls get
    where: str  # the file or folder the command line gets

    @property
    def path(self) -> str:
        """The container as a file (written on first use: most calls read the bytes)."""
        if not os.path.lexists(self.where):
            with open(self.where, "wb") as f:
                f.write(self.mutant.data)
        return self.where


def _open_all(source: bytes | str) -> dict[str, Any]:
    with codecs_ser.open(source) as c:
        out: dict[str, Any] = {
            "objects": c.objects,
            "metadata": c.metadata,
            "formats": [c.skeleton_format(n) for n in c.objects],
        }
        for name in list(c.entries)[:64]:
            info = c.entries[name]
            out[f"info:{name}"] = (str(info.dtype), info.shape, info.nbytes, info.codec)
            out[name] = c.read(name)
        return out


def _inspect(path: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = _cli.main(["inspect", path])
    if code not in (0, 2):
        raise AssertionError(f"inspect returned {code!r}")
    return code


def operations(placed: Placed) -> dict[str, Callable[[], Any]]:
    """The calls a reader of an untrusted container makes, by name."""
    src, seed = placed.source, placed.mutant.seed
    ops: dict[str, Callable[[], Any]] = {
        "open": lambda: _open_all(src),
        "load": lambda: codecs_ser.load(src, trusted=False),
        "load_arrays": lambda: codecs_ser.load_arrays(src),
        "audit": lambda: codecs_ser.audit(src),
        "verify": lambda: codecs_ser.verify(src),
        "mmap": lambda: codecs_ser.load_arrays(src, mmap=True, verify=True),
        "inspect": lambda: _inspect(placed.path),
    }
    if seed.trusted:
        ops["load_allowed"] = lambda: codecs_ser.load(src, trusted=list(seed.trusted))
    return ops


def run_operations(placed: Placed) -> dict[str, Any]:
    """Every operation's result, or the exception it raised."""
    results: dict[str, Any] = {}
    for name, op in operations(placed).items():
        try:
            results[name] = op()
        except Exception as e:
            results[name] = e
    return results


def escaped(results: dict[str, Any]) -> dict[str, BaseException]:
    """Operations that raised something other than a CodecsSerError."""
    return {
        op: r
        for op, r in results.items()
        if isinstance(r, BaseException) and not isinstance(r, CodecsSerError)
    }


def same(a: Any, b: Any) -> bool:
    """Deep equality in which arrays must match in type, dtype, shape, mask and bytes."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if type(a) is not type(b) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        if isinstance(a, np.ma.MaskedArray):
            return (
                same(np.ma.getdata(a), np.ma.getdata(b))
                and same(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
                and same(np.asarray(a.fill_value), np.asarray(b.fill_value))
            )
        if a.dtype.hasobject:
            return all(same(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    if isinstance(a, np.generic) or isinstance(b, np.generic):
        return type(a) is type(b) and a.tobytes() == b.tobytes()
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a):
        return same(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


def problems(placed: Placed, results: dict[str, Any]) -> list[str]:
    """What is wrong with these results: escapes, bad exit codes, wrong arrays."""
    mutant = placed.mutant
    seed = mutant.seed
    out = []
    for op, e in escaped(results).items():
        out.append(f"{op}: {type(e).__name__} escaped: {e}")
    for op in mutant.same_as_seed:
        got = results.get(op)
        known = op in seed.baseline and op in results and not isinstance(got, BaseException)
        if known and not same(got, seed.baseline[op]):
            out.append(f"{op}: succeeded with a result that differs from the original")
    if mutant.damaged:
        found = results.get("verify")
        if isinstance(found, list) and not found:
            out.append("verify: reports no problem for damaged array bytes")
    if mutant.arrays is not None:
        for op in ("load_arrays", "mmap"):
            got = results.get(op)
            if isinstance(got, BaseException):
                out.append(f"{op}: refused a consistent container: {type(got).__name__}: {got}")
            elif not same(got, mutant.arrays):
                out.append(f"{op}: returned other arrays than the container holds")
    return out
