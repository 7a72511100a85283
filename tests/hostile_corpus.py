"""Hostile and damaged containers, built the way an attacker would build them.

A real container written by ``codecs_ser.dump`` is taken apart into a :class:`Draft`
(its members, and its manifest as a dict with entry records decoded).  A case
changes the draft, and a renderer writes it back in a backend's on-disk layout,
recomputing what an attacker can recompute: blob and skeleton sizes, offsets and
checksums ("sealing"), the tar trailer and the zip comment pointer with the
manifest's xxh3.  So the hostile part gets past every checksum and reaches the
parsing behind it.  Changes that must survive sealing (a lying size, a wrong
checksum) are *lies*, applied to the manifest after sealing.

Each case says, for each call of the public API, what is correct:

* ``raise``: the call raises ``case.expect`` (``verify`` may instead report
  problems; ``inspect`` exits with status 2 and a message);
* ``same``: the damage is provably harmless for that call (it does not read the
  damaged part, or what it reads is verified), so it returns exactly what the
  intact container gives;
* ``runs``: the call only describes what the manifest claims (``inspect`` prints a
  lying codec id) and must simply succeed;
* ``either``: raising ``case.expect`` and returning the intact result are both
  safe (a stricter reader may refuse what is harmless); never anything else.

The rule behind the choices: a call fails exactly when it needs the damaged
part, and no call ever returns content that differs from what was written.
"""

from __future__ import annotations

import bz2
import copy
import gzip
import hashlib
import io
import lzma
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import xxhash

import codecs_ser
from codecs_ser.errors import (
    CodecsSerError,
    FormatError,
    IntegrityError,
    UnknownCodecError,
    UntrustedError,
)

MANIFEST = ".codecs_ser/manifest.msgpack"
TRAILER = ".codecs_ser/trailer"
SKELETON_MSGPACK = ".codecs_ser/objects/0.msgpack"
SKELETON_PICKLE = ".codecs_ser/objects/0.pickle"
ENTRY_FIELDS = ("object", "path", "codec", "codec_version", "dist", "device", "meta", "blobs")
BLOB_FIELDS = (
    "role",
    "member",
    "offset",
    "size",
    "dtype",
    "shape",
    "fortran_order",
    "checksum",
    "name",
)
E = {name: i for i, name in enumerate(ENTRY_FIELDS)}
B = {name: i for i, name in enumerate(BLOB_FIELDS)}
CALLS = ("open", "load", "load_arrays", "audit", "verify", "inspect")
#: Where a case writes the payload of code it must never run.
SENTINEL = "pwned"
BACKENDS = ("tar", "zip", "dir")

# -- the objects the cases start from ----------------------------------------------------


def _plain() -> Any:
    return {
        "a": np.arange(6, dtype="<f8"),
        "n": {"b": np.arange(12, dtype="<i4").reshape(3, 4)},
        "t": (1, "x"),
        "s": "text",
    }


def _views() -> Any:
    base = np.arange(10.0)
    return {"base": base, "v": base[2:5]}


def _masked() -> Any:
    return {"m": np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]), "s": np.float32(3)}


def _pickled() -> Any:
    return {"set": {1, 2}, "a": np.arange(6, dtype="<f8")}


#: name -> the object a real dump of which each case starts from.
BASES: dict[str, Callable[[], Any]] = {
    "plain": _plain,
    "views": _views,
    "masked": _masked,
    "pickled": _pickled,
}

# -- drafts: a container taken apart -----------------------------------------------------


@dataclass
class Member:
    """One member as a backend stores it.

    ``kind`` is ``file`` or a special file (``symlink``, ``hardlink``, ``chardev``,
    ``blockdev``, ``fifo``, ``dir``); ``stored_as`` is the name written in the
    archive or on disk when it differs from the name the manifest uses (None: the
    same); ``opts`` are backend-specific lies (tar size field, zip header fields).
    ``indexed`` False keeps the member out of the offsets and contents used for sealing.
    """

    name: str
    data: bytes = b""
    kind: str = "file"
    link: str = ""
    stored_as: str | None = None
    opts: dict[str, Any] = field(default_factory=dict)
    indexed: bool = True


class Verbatim:
    """A value placed in the manifest's ``entries`` list as it is, not packed."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Packed:
    """A value packed with msgpack into an ``entries`` byte string, whatever its type."""

    def __init__(self, value: Any) -> None:
        self.value = value


Lie = Callable[[dict[str, Any]], None]


@dataclass
class Draft:
    """Members in order and the manifest as a dict whose entries are decoded records."""

    members: list[Member]
    manifest: dict[str, Any]
    seal: bool = True
    lies: list[Lie] = field(default_factory=list)
    post: Callable[[bytes], bytes] | None = None  # rewrites the encoded manifest

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def contents(self) -> dict[str, bytes]:
        return {m.name: m.data for m in self.members if m.kind == "file" and m.indexed}

    def finish(self, offsets: Mapping[str, int] | None) -> bytes:
        """The manifest bytes: sealed to the members, then the lies, then encoded."""
        m = copy.deepcopy(self.manifest)
        if self.seal:
            _seal(m, self.contents(), offsets)
        for lie in self.lies:
            lie(m)
        data = encode_manifest(m)
        return self.post(data) if self.post is not None else data


def record(m: dict[str, Any], entry: str) -> list[Any]:
    """The decoded record of a named entry in a manifest dict."""
    return m["entries"][m["names"].index(entry)]


def blob(m: dict[str, Any], entry: str, i: int = 0) -> list[Any]:
    return record(m, entry)[E["blobs"]][i]


def skeleton(m: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return m["objects"][i]["skeleton"]


_DIGESTS: dict[str, Callable[[bytes], str]] = {
    "xxh3_64": xxhash.xxh3_64_hexdigest,
    "xxh3_128": xxhash.xxh3_128_hexdigest,
    "crc32": lambda d: f"{zlib.crc32(d):08x}",
    "sha256": lambda d: hashlib.sha256(d).hexdigest(),
    "blake2b": lambda d: hashlib.blake2b(d).hexdigest(),
}


def digest(data: bytes, algorithm: str = "xxh3_64") -> str:
    return f"{algorithm}:{_DIGESTS[algorithm](data)}"


def _resealed(old: Any, data: bytes) -> str:
    algorithm = old.partition(":")[0] if isinstance(old, str) else ""
    return digest(data, algorithm if algorithm in _DIGESTS else "xxh3_64")


def _seal(m: dict[str, Any], contents: Mapping[str, bytes], offsets: Mapping[str, int] | None):
    """Make sizes, offsets and checksums agree with the members, as an attacker can."""
    for rec in m.get("entries", ()):
        if not (isinstance(rec, list) and len(rec) > E["blobs"]):
            continue
        blobs = rec[E["blobs"]]
        for b in blobs if isinstance(blobs, list) else ():
            if isinstance(b, list) and len(b) >= len(BLOB_FIELDS) - 1:
                name = b[B["member"]]
                if isinstance(name, str) and name in contents:
                    b[B["size"]] = len(contents[name])
                    b[B["checksum"]] = _resealed(b[B["checksum"]], contents[name])
                    b[B["offset"]] = None if offsets is None else offsets.get(name)
    for obj in m.get("objects", ()):
        skel = obj.get("skeleton") if isinstance(obj, dict) else None
        if isinstance(skel, dict) and isinstance(skel.get("member"), str):
            name = skel["member"]
            if name in contents:
                skel["size"] = len(contents[name])
                skel["checksum"] = _resealed(skel.get("checksum"), contents[name])
                skel["offset"] = None if offsets is None else offsets.get(name)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def encode_manifest(m: dict[str, Any]) -> bytes:
    m = dict(m)
    entries = m.get("entries")
    if isinstance(entries, list):
        out = []
        for e in entries:
            if isinstance(e, list):
                out.append(_pack(e))
            elif isinstance(e, Packed):
                out.append(_pack(e.value))
            elif isinstance(e, Verbatim):
                out.append(e.value)
            else:
                out.append(e)
        m["entries"] = out
    return _pack(m)


@cache
def _dumped(base: str) -> bytes:
    return codecs_ser.dumps(BASES[base](), backend="tar")


def draft(base: str = "plain") -> Draft:
    """A fresh draft of a real container written by ``codecs_ser.dump``."""
    members: list[Member] = []
    manifest: dict[str, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(_dumped(base))) as tar:
        for info in tar.getmembers():
            f = tar.extractfile(info)
            assert f is not None
            data = f.read()
            if info.name == MANIFEST:
                manifest = msgpack.unpackb(data, raw=False)
            elif info.name != TRAILER:
                members.append(Member(info.name, data))
    manifest["entries"] = [msgpack.unpackb(e, raw=False) for e in manifest["entries"]]
    return Draft(members, manifest)


# -- tar ---------------------------------------------------------------------------------

TAR_TYPES = {
    "file": b"0",
    "hardlink": b"1",
    "symlink": b"2",
    "chardev": b"3",
    "blockdev": b"4",
    "dir": b"5",
    "fifo": b"6",
}
TRAILER_STRUCT = struct.Struct("<16sIQQQQ")


def tar_header(
    name: bytes,
    size: int,
    kind: bytes = b"0",
    link: bytes = b"",
    *,
    size_field: bytes | None = None,
    prefix: bytes = b"",
    bad_checksum: bool = False,
    magic: bytes = b"ustar\x0000",
) -> bytes:
    """A header block with any name, type, size field, prefix field and magic (POSIX
    ustar by default; ``b"ustar  \\0"`` is old GNU, whose prefix field is not a prefix)."""
    h = bytearray(512)
    h[0 : min(len(name), 100)] = name[:100]
    h[100:108] = b"0000644\x00"
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[124:136] = size_field if size_field is not None else b"%011o\x00" % size
    h[136:148] = b"00000000000\x00"
    h[148:156] = b" " * 8
    h[156:157] = kind
    h[157 : 157 + len(link[:100])] = link[:100]
    h[257:265] = magic
    h[329:337] = b"0000001\x00"
    h[337:345] = b"0000005\x00"
    h[345 : 345 + len(prefix[:155])] = prefix[:155]
    h[148:156] = b"%06o\x00 " % (sum(h) + (1 if bad_checksum else 0))
    return bytes(h)


def _pad512(n: int) -> bytes:
    return bytes(-n % 512)


def pax_block(records: Mapping[str, str] | bytes) -> bytes:
    """A pax extended header member (type ``x``) carrying ``records``."""
    if isinstance(records, bytes):
        body = records
    else:
        body = b""
        for key, value in records.items():
            text = f" {key}={value}\n".encode()
            n = len(text) + 1
            while len(str(n)) + len(text) != n:
                n = len(str(n)) + len(text)
            body += str(n).encode() + text
    return tar_header(b"././@PaxHeader", len(body), b"x") + body + _pad512(len(body))


def render_tar(
    d: Draft,
    *,
    trailer: bool | Mapping[str, Any] = True,
    manifest_kind: str = "file",
    end: bytes | None = None,
) -> bytes:
    """The draft as a tar, with the trailer (fields overridable) unless ``trailer`` is False."""
    out = bytearray()
    offsets: dict[str, int] = {}
    for m in d.members:
        name = (m.stored_as if m.stored_as is not None else m.name).encode(
            "utf-8", "surrogateescape"
        )
        if "pax" in m.opts:
            out += pax_block(m.opts["pax"])
        size = m.opts.get("size", len(m.data))
        out += tar_header(
            name,
            size,
            TAR_TYPES[m.kind],
            m.link.encode(),
            size_field=m.opts.get("size_field"),
            bad_checksum=m.opts.get("bad_checksum", False),
            prefix=m.opts.get("prefix", b""),
            magic=m.opts.get("magic", b"ustar\x0000"),
        )
        if m.indexed:
            offsets[m.name] = len(out)
        out += m.data + _pad512(len(m.data))
    manifest = d.finish(offsets)
    header_off = len(out)
    out += tar_header(MANIFEST.encode(), len(manifest), TAR_TYPES[manifest_kind])
    data_off = len(out)
    out += manifest + _pad512(len(manifest))
    if trailer:
        fields = {
            "magic": b"CODECS_SER-TAIL\x00",
            "version": 1,
            "header": header_off,
            "data": data_off,
            "size": len(manifest),
            "digest": xxhash.xxh3_64_intdigest(manifest),
        }
        if isinstance(trailer, Mapping):
            done = bytes(out)
            fields.update({k: v(fields, done) if callable(v) else v for k, v in trailer.items()})
        tail = TRAILER_STRUCT.pack(*fields.values())
        out += tar_header(TRAILER.encode(), len(tail)) + tail + _pad512(len(tail))
    out += bytes(1024) if end is None else end
    out += bytes(-len(out) % 10240)
    return bytes(out)


def tar_offsets(data: bytes) -> dict[str, int]:
    """Data offsets of the members of a tar this module wrote (trusted input)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m.offset_data for m in tar.getmembers()}


# -- zip ---------------------------------------------------------------------------------

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")


def _local(name: bytes, data: bytes, opts: Mapping[str, Any], at: int) -> bytes:
    """A local header at offset ``at`` as the writer makes it: sizes given, a data
    descriptor announced, and the alignment field 0xD935 padding the data to 64 bytes."""
    size = opts.get("local_size", len(data))
    local_name = opts.get("local_name", name)
    fixed = _LOCAL.size + len(local_name) + 6
    pad = -(at + fixed) % 64
    extra = struct.pack("<HHH", 0xD935, 2 + pad, 64) + bytes(pad)
    return (
        _LOCAL.pack(
            opts.get("local_sig", 0x04034B50),
            20,
            opts.get("flags", 0x08),
            opts.get("method", 0),
            0,
            0x21,
            zlib.crc32(data),
            size,
            size,
            len(local_name),
            len(extra),
        )
        + local_name
        + extra
    )


def _descriptor(data: bytes, stored: int | None = None) -> bytes:
    stored = len(data) if stored is None else stored
    return struct.pack("<IIII", 0x08074B50, zlib.crc32(data), stored, len(data))


def _central(
    name: bytes, data: bytes, header_off: int, opts: Mapping[str, Any], stored: int | None = None
) -> bytes:
    size = opts.get("cd_size", len(data))
    extra = b""
    if "zip64_size" in opts:
        extra = struct.pack("<HHQQ", 1, 16, opts["zip64_size"], opts["zip64_size"])
        size = 0xFFFFFFFF
    stored = size if stored is None else stored
    cd_name = opts.get("cd_name", name)
    return (
        _CENTRAL.pack(
            0x02014B50,
            0x0314,
            45 if extra else 20,
            opts.get("flags", 0x08),
            opts.get("cd_method", opts.get("method", 0)),
            0,
            0x21,
            zlib.crc32(data),
            stored,
            size,
            len(cd_name),
            len(extra),
            0,
            0,
            0,
            opts.get("attr", 0o100644 << 16),
            opts.get("cd_offset", header_off),
        )
        + cd_name
        + extra
    )


def render_zip(
    d: Draft,
    *,
    comment: bool | Mapping[str, Any] = True,
    eocd: Mapping[str, Any] | None = None,
    extra_central: Iterable[tuple[str, int]] = (),
    central: bytes | None = None,
) -> bytes:
    """The draft as a stored zip with our comment pointer (fields overridable) unless
    ``comment`` is False.  ``extra_central`` adds directory entries (name, local header
    offset of the member whose header it reuses, by member name index)."""
    out = bytearray()
    offsets: dict[str, int] = {}
    headers: dict[str, int] = {}
    cds: list[bytes] = []
    for m in d.members:
        name = (m.stored_as if m.stored_as is not None else m.name).encode(
            "utf-8", "surrogateescape"
        )
        data = m.data
        header_off = len(out)
        if "nest" in m.opts:
            # The member's data holds a complete local header and data of another member.
            inner_name, inner_data = m.opts["nest"]
            inner_off = header_off + len(_local(name, b"", m.opts, header_off))
            data = _local(inner_name.encode(), inner_data, {}, inner_off) + inner_data
            cds.append(_central(inner_name.encode(), inner_data, inner_off, {}))
        out += _local(name, data, m.opts, header_off)
        if m.indexed:
            offsets[m.name] = len(out)
            headers[m.name] = header_off
        # "packed": the bytes stored for a deflated member (method 8) whose data is ``data``.
        packed = m.opts.get("packed")
        stored = data if packed is None else packed
        out += stored + _descriptor(data, len(stored))
        cds.append(
            _central(name, data, header_off, m.opts, None if packed is None else len(stored))
        )
    manifest = d.finish(offsets)
    header_off = len(out)
    out += _local(MANIFEST.encode(), manifest, {}, header_off)
    data_off = len(out)
    out += manifest + _descriptor(manifest)
    cds.append(_central(MANIFEST.encode(), manifest, header_off, {}))
    for name, of_member in extra_central:
        cds.append(_central(name.encode(), d.member(name).data, headers[of_member], {}))
    cd_start = len(out)
    out += b"".join(cds) if central is None else central
    cd_size = len(out) - cd_start
    tail = b""
    if comment:
        fields = {
            "magic": b"CODECS_SER-ZIP\x00\x00",
            "version": 1,
            "header": header_off,
            "data": data_off,
            "size": len(manifest),
            "digest": xxhash.xxh3_64_intdigest(manifest),
        }
        if isinstance(comment, Mapping):
            done = bytes(out)
            fields.update({k: v(fields, done) if callable(v) else v for k, v in comment.items()})
        tail = TRAILER_STRUCT.pack(*fields.values())
    e = {"count": len(cds), "cd_size": cd_size, "cd_start": cd_start, "comment_len": len(tail)}
    e.update(eocd or {})
    out += _EOCD.pack(
        0x06054B50, 0, 0, e["count"], e["count"], e["cd_size"], e["cd_start"], e["comment_len"]
    )
    return bytes(out + tail)


# -- dir ---------------------------------------------------------------------------------


def outside(tmp: Path) -> Path:
    """A folder beside the container, for what symlinks and hostile names point to."""
    path = tmp / "outside"
    path.mkdir(exist_ok=True)
    return path


def render_dir(d: Draft, root: Path, tmp: Path) -> None:
    """The draft as a container folder; ``{tmp}`` in a symlink target is the case folder."""
    root.mkdir()
    for m in d.members:
        rel = m.stored_as if m.stored_as is not None else m.name
        if "\x00" in rel or rel.startswith("/") or ".." in rel.split("/"):
            continue  # not a place inside the folder: only the manifest names it
        path = root.joinpath(*[p for p in rel.split("/") if p])
        path.parent.mkdir(parents=True, exist_ok=True)
        if m.kind == "file":
            path.write_bytes(m.data)
        elif m.kind == "symlink":
            os.symlink(m.link.replace("{tmp}", os.fspath(tmp)), path)
        elif m.kind == "fifo":
            os.mkfifo(path)
        elif m.kind == "dir":
            path.mkdir()
        else:
            raise ValueError(f"a folder cannot hold a {m.kind}")
    (root / ".codecs_ser").mkdir(exist_ok=True)
    (root / MANIFEST).write_bytes(d.finish(None))


# -- cases -------------------------------------------------------------------------------


def outcomes(raising: Iterable[str] = (), **special: str) -> dict[str, str]:
    """Per call: ``raise`` for the calls named, ``same`` for the others, then overrides."""
    raising = set(raising)
    out = {call: ("raise" if call in raising else "same") for call in CALLS}
    out.update(special)
    return out


#: The whole container is unreadable (the layout or the manifest's top level is bad).
EVERYTHING = outcomes(CALLS)
#: An entry record is bad: opening and auditing never decode entries.
ENTRIES = outcomes(("load", "load_arrays", "verify", "inspect"))
#: A blob is bad but its record parses: inspect lists what the manifest claims.
BLOBS = outcomes(("load", "load_arrays", "verify"))
#: A blob record lies about what it holds: inspect prints the lie.
BLOB_LIES = outcomes(("load", "load_arrays", "verify"), inspect="runs")
#: A msgpack skeleton is bad or lies: only load and verify read it.
SKELETON = outcomes(("load", "verify"))
#: Only load reads what is bad (a skeleton that checks out, a codec, a view).
LOAD = outcomes(("load",))
#: Nothing is bad for any call.
HARMLESS = outcomes()
#: Harmless, but a stricter reader may refuse it.
MAYBE = outcomes((), **dict.fromkeys(CALLS, "either"))
#: A member name the format forbids: refused when the member is read; whether
#: inspect (which decodes records) refuses it too is the core's choice.
UNSAFE_NAME = outcomes(("load", "load_arrays", "verify"), inspect="either")


def strict(*raising: str) -> dict[str, str]:
    """The calls named must refuse; the others may refuse too (a reader that checks the
    whole manifest when it opens), or else give what the intact container gives."""
    return outcomes(raising, **{c: "either" for c in CALLS if c not in raising})


#: A skeleton record naming a member that is not a skeleton: refused when it is read,
#: or already when the manifest is opened.
SKELETON_NAME = strict("load")


@dataclass(frozen=True)
class Case:
    """One hostile container and what each call must do with it."""

    id: str
    backend: str
    category: str
    build: Callable[[Path], Path]
    expect: type[CodecsSerError]
    outcome: Mapping[str, str]
    base: str = "plain"
    audit_globals: tuple[str, ...] | None = None
    fifo: str | None = None  # relative to the case folder: a FIFO that must never be opened

    def __post_init__(self) -> None:
        assert set(self.outcome) == set(CALLS), self.id
        assert all(v in ("raise", "same", "runs", "either") for v in self.outcome.values())


Change = Callable[[Draft], Any]
After = Callable[[Path, Path], Any]


def _builder(
    backend: str,
    base: str,
    change: Change | None,
    render: Mapping[str, Any],
    after: After | None,
    per_tmp: Callable[[Path], Change] | None,
) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        d = draft(base)
        if per_tmp is not None:
            per_tmp(tmp)(d)
        if change is not None:
            change(d)
        if backend == "dir":
            path = tmp / "c"
            render_dir(d, path, tmp)
        else:
            path = tmp / f"c.{backend}"
            path.write_bytes((render_tar if backend == "tar" else render_zip)(d, **render))
        if after is not None:
            found = after(path, tmp)
            if isinstance(found, Path):
                path = found
        return path

    return build


CASES: list[Case] = []


def add(
    id: str,
    backend: str,
    category: str,
    change: Change | None,
    expect: type[CodecsSerError],
    outcome: Mapping[str, str],
    *,
    base: str = "plain",
    render: Mapping[str, Any] | None = None,
    after: After | None = None,
    audit_globals: Iterable[str] | None = None,
    fifo: str | None = None,
    per_tmp: Callable[[Path], Change] | None = None,
) -> None:
    case_id = f"{backend}/{category}/{id}"
    assert all(c.id != case_id for c in CASES), case_id
    CASES.append(
        Case(
            case_id,
            backend,
            category,
            _builder(backend, base, change, render or {}, after, per_tmp),
            expect,
            dict(outcome),
            base,
            None if audit_globals is None else tuple(audit_globals),
            fifo,
        )
    )


def rotate(i: int) -> str:
    """Spread one-of-a-kind manifest cases over the backends."""
    return BACKENDS[i % 3]


def lie(*lies: Lie) -> Change:
    def change(d: Draft) -> None:
        d.lies.extend(lies)

    return change


def post(fn: Callable[[bytes], bytes]) -> Change:
    def change(d: Draft) -> None:
        d.post = fn

    return change


def set_blob(entry: str, name: str, value: Any, i: int = 0) -> Lie:
    def apply(m: dict[str, Any]) -> None:
        blob(m, entry, i)[B[name]] = value

    return apply


def set_entry(entry: str, name: str, value: Any) -> Lie:
    def apply(m: dict[str, Any]) -> None:
        record(m, entry)[E[name]] = value

    return apply


def set_top(key: str, value: Any) -> Lie:
    def apply(m: dict[str, Any]) -> None:
        m[key] = value

    return apply


def drop_top(key: str) -> Lie:
    def apply(m: dict[str, Any]) -> None:
        del m[key]

    return apply


def set_skeleton(key: str, value: Any) -> Lie:
    def apply(m: dict[str, Any]) -> None:
        skeleton(m)[key] = value

    return apply


def set_object(key: str, value: Any) -> Lie:
    def apply(m: dict[str, Any]) -> None:
        m["objects"][0][key] = value

    return apply


def set_member(name: str, data: bytes | Callable[[bytes], bytes]) -> Change:
    """Replace a member's bytes (sealing then makes the manifest agree with them)."""

    def change(d: Draft) -> None:
        m = d.member(name)
        m.data = data(m.data) if callable(data) else data

    return change


def chain(*changes: Change) -> Change:
    def change(d: Draft) -> None:
        for c in changes:
            c(d)

    return change


def rename(old: str, new: str, *, stored: str | None = None) -> Change:
    """Give a member another name, in the manifest and (unless ``stored``) in the archive."""

    def change(d: Draft) -> None:
        m = d.member(old)
        m.name = new
        m.stored_as = stored

        def fix(man: dict[str, Any]) -> None:
            for rec in man["entries"]:
                for b in rec[E["blobs"]]:
                    if b[B["member"]] == old:
                        b[B["member"]] = new
            for obj in man["objects"]:
                if obj["skeleton"]["member"] == old:
                    obj["skeleton"]["member"] = new

        fix(d.manifest)

    return change


def deep(depth: int, open_byte: bytes = b"\x91", leaf: bytes = b"\xc0") -> bytes:
    """msgpack nested ``depth`` levels deep (one-element arrays by default)."""
    return open_byte * depth + leaf


def deep_maps(depth: int) -> bytes:
    return b"\x81\xa1k" * depth + b"\xc0"


def splice_metadata(raw: bytes) -> Change:
    """Put raw msgpack bytes in the manifest's metadata, past any encoder's limits."""
    marker = "@@RAW-METADATA@@"

    def change(d: Draft) -> None:
        d.manifest["metadata"] = marker
        d.post = lambda b: b.replace(_pack(marker), raw, 1)

    return change


def splice_top(key: str, raw: bytes) -> Change:
    marker = f"@@RAW-{key}@@"

    def change(d: Draft) -> None:
        d.lies.append(set_top(key, marker))
        previous = d.post
        d.post = lambda b: (previous or (lambda x: x))(b.replace(_pack(marker), raw, 1))

    return change


# -- .npy helpers ------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"


def npy(
    text: str | bytes, data: bytes, *, version: int | None = None, hlen: int | None = None
) -> bytes:
    """A .npy member with any header text, padded like numpy pads, any declared length
    (format 1.0 unless the text needs 2.0)."""
    body = text.encode("latin1") if isinstance(text, str) else text
    if version is None:
        version = 1 if len(body) < 65000 else 2
    prefix = 10 if version == 1 else 12
    pad = -(prefix + len(body) + 1) % 64
    body = body + b" " * pad + b"\n"
    n = len(body) if hlen is None else hlen
    size = struct.pack("<H", n) if version == 1 else struct.pack("<I", n)
    return NPY_MAGIC + bytes((version, 0)) + size + body + data


def npy_data(member: bytes) -> bytes:
    """The data of a .npy member this module read from a real dump."""
    hlen = struct.unpack("<H", member[8:10])[0]
    return member[10 + hlen :]


def numpy_saved(arr: np.ndarray, version: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


# -- pickles, assembled from opcodes -----------------------------------------------------


def p_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def p_stack_global(module: str, name: str) -> bytes:
    return p_str(module) + p_str(name) + b"\x93"


def p_str(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def p_bytes(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b


def p_int(n: int) -> bytes:
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = pickle.encode_long(n)  # type: ignore[attr-defined]
    return b"\x8a" + bytes((len(raw),)) + raw


def p_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def p_list(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"l"


def p_call(func: bytes, *args: bytes) -> bytes:
    return func + p_tuple(*args) + b"R"


def p_put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def p_get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def pk(body: bytes, proto: int = 4) -> bytes:
    """A whole pickle: protocol header, ``body`` (which leaves one value), STOP."""
    return b"\x80" + bytes((proto,)) + body + b"."


def tuple_dag(depth: int) -> bytes:
    """T0 = (), Tk = (Tk-1, Tk-1): a few bytes per level, 2**depth leaves to hash."""
    out = b")" + p_put(0) + b"0"
    for k in range(1, depth + 1):
        out += p_get(k - 1) + p_get(k - 1) + b"\x86" + p_put(k) + b"0"
    return out + p_get(depth)


def list_dag(depth: int) -> bytes:
    """L0 = [], Lk = [Lk-1, Lk-1]: 2**depth leaves to visit for a repr."""
    out = b"]" + p_put(0) + b"0"
    for k in range(1, depth + 1):
        out += b"]" + b"(" + p_get(k - 1) + p_get(k - 1) + b"e" + p_put(k) + b"0"
    return out + p_get(depth)


def descr_dag(depth: int) -> bytes:
    """D0 = '<f8', Dk = [['a', Dk-1], ['b', Dk-1]]: a dtype description of 2**depth fields."""
    out = p_str("<f8") + p_put(0) + b"0"
    for k in range(1, depth + 1):
        out += p_list(p_list(p_str("a"), p_get(k - 1)), p_list(p_str("b"), p_get(k - 1)))
        out += p_put(k) + b"0"
    return out + p_get(depth)


def with_pickle(payload: bytes | Callable[[Path], bytes]) -> Callable[[Path], Change]:
    """A change that installs a hand-made pickle as the skeleton of the pickled base."""

    def for_tmp(tmp: Path) -> Change:
        data = payload(tmp) if callable(payload) else payload

        def change(d: Draft) -> None:
            d.member(SKELETON_PICKLE).data = data
            d.manifest["objects"][0]["globals"] = []

        return change

    return for_tmp


def shell(tmp: Path) -> str:
    return f"touch {os.fspath(tmp / SENTINEL)}"


# -- the cases: tar layout ---------------------------------------------------------------


def _tar_layout() -> None:
    cat = "layout"
    no_trailer = {"trailer": False}

    def trailer(**fields: Any) -> dict[str, Any]:
        return {"trailer": fields}

    add(
        "trailer-magic-damaged-falls-back-to-a-scan",
        "tar",
        cat,
        None,
        FormatError,
        HARMLESS,
        render=trailer(magic=b"CODECS_SER-TAIX\x00"),
    )
    for v in (0, 2, 0xFFFFFFFF):
        add(
            f"trailer-version-{v}",
            "tar",
            cat,
            None,
            FormatError,
            EVERYTHING,
            render=trailer(version=v),
        )
    add(
        "trailer-header-offset-not-before-data",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(header=lambda f, out: f["data"]),
    )
    add(
        "trailer-size-claims-10**12",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(size=10**12),
    )
    add(
        "trailer-size-claims-2**64-1",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(size=2**64 - 1),
    )
    add(
        "trailer-size-claims-1GiB-within-the-limit",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(size=(1 << 30) - 1),
    )
    add(
        "trailer-data-offset-past-the-end",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(data=10**9),
    )
    add(
        "trailer-data-offset-2**64-1",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(data=2**64 - 1, header=0),
    )
    add(
        "trailer-digest-wrong",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(digest=lambda f, out: f["digest"] ^ 1),
    )
    add(
        "trailer-size-one-short",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(size=lambda f, out: f["size"] - 1),
    )

    def hash_of(start: int, size: int) -> Callable[[dict[str, Any], bytes], int]:
        return lambda f, out: xxhash.xxh3_64_intdigest(out[start : start + size])

    # A trailer that does not point at the manifest member may be a stale one that a
    # re-packing tool kept: falling back to a scan of the headers is as safe as refusing.
    # The first member's data (a .npy) lies at 512.
    add(
        "trailer-points-at-a-blob-with-its-digest",
        "tar",
        cat,
        None,
        FormatError,
        MAYBE,
        render=trailer(data=512, header=0, size=176, digest=hash_of(512, 176)),
    )
    add(
        "trailer-points-at-nothing",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=trailer(size=0, digest=xxhash.xxh3_64_intdigest(b"")),
    )
    add(
        "trailer-points-into-a-header-block",
        "tar",
        cat,
        None,
        FormatError,
        MAYBE,
        render=trailer(header=0, data=100, size=300, digest=hash_of(100, 300)),
    )
    add(
        "trailer-points-at-the-skeleton",
        "tar",
        cat,
        None,
        FormatError,
        MAYBE,
        render=trailer(header=2048, data=2560, size=26, digest=hash_of(2560, 26)),
    )

    def grow(extra: bytes) -> After:
        def after(path: Path, tmp: Path) -> None:
            path.write_bytes(path.read_bytes() + extra)

        return after

    add(
        "size-not-a-multiple-of-512", "tar", cat, None, FormatError, EVERYTHING, after=grow(b"\x01")
    )
    add(
        "garbage-block-after-the-end",
        "tar",
        cat,
        None,
        FormatError,
        MAYBE,
        after=grow(b"\xff" * 512),
    )

    def replace_file(data: bytes) -> After:
        def after(path: Path, tmp: Path) -> None:
            path.write_bytes(data)

        return after

    add(
        "three-zero-blocks",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=replace_file(bytes(1536)),
    )
    add(
        "one-header-then-nothing",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=replace_file(tar_header(b"a.npy", 10**6)),
    )
    add(
        "ustar-magic-only",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=replace_file(bytes(257) + b"ustar\x0000" + bytes(10240 - 265)),
    )
    add(
        "no-trailer-and-no-manifest-member",
        "tar",
        cat,
        lambda d: d.members.__setitem__(slice(None), d.members[:2]),
        FormatError,
        EVERYTHING,
        render=no_trailer,
        after=lambda p, t: p.write_bytes(_strip_manifest(p.read_bytes())),
    )

    # Without the trailer every header is scanned.
    add(
        "scan-dot-slash-names",
        "tar",
        cat,
        lambda d: [setattr(m, "stored_as", "./" + m.name) for m in d.members],
        FormatError,
        HARMLESS,
        render=no_trailer,
    )
    add(
        "scan-names-from-pax-records",
        "tar",
        cat,
        lambda d: [
            m.opts.update(pax={"path": m.name}) or setattr(m, "stored_as", "garbage")
            for m in d.members
        ],
        FormatError,
        HARMLESS,
        render=no_trailer,
    )
    add(
        "scan-bad-header-checksum",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(bad_checksum=True),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-size-field-not-octal",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(size_field=b"00000000x76\x00"),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-size-field-runs-past-the-end",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(size_field=b"77777777777\x00"),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-base256-size-2**88",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(size_field=b"\x80" + b"\xff" * 11),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-pax-record-malformed",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(pax=b"99999 path=a.npy\n"),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-pax-record-without-equals",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(pax=b"12 pathxxxx\n"),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-pax-size-not-a-number",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(pax={"size": "-176"}),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-pax-size-10**15",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(pax={"size": str(10**15)}),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )
    add(
        "scan-pax-header-over-1MiB",
        "tar",
        cat,
        lambda d: d.members[0].opts.update(pax={"comment": "x" * (1 << 20)}),
        FormatError,
        EVERYTHING,
        render=no_trailer,
    )

    def duplicate(garbage_first: bool) -> Change:
        def change(d: Draft) -> None:
            real = d.member("a.npy")
            # The same .npy header over other data: only the checksum can tell.
            fake = Member("a.npy", real.data[:128] + bytes(len(real.data) - 128), indexed=False)
            i = d.members.index(real)
            if garbage_first:
                d.members.insert(i, fake)
            else:
                d.members.insert(i + 1, fake)
                d.lies.append(set_blob("a", "checksum", digest(real.data)))

        return change

    add(
        "scan-duplicate-name-the-later-one-is-the-real-one",
        "tar",
        cat,
        duplicate(True),
        FormatError,
        HARMLESS,
        render=no_trailer,
    )
    add(
        "scan-duplicate-name-the-later-one-is-garbage",
        "tar",
        cat,
        duplicate(False),
        IntegrityError,
        BLOBS,
        render=no_trailer,
    )
    add(
        "duplicate-name-after-the-member-the-manifest-points-to",
        "tar",
        cat,
        duplicate(False),
        FormatError,
        MAYBE,
    )

    # Special files where the manifest expects a regular member.
    links = {"symlink": "/etc/passwd", "hardlink": "n/b.npy"}
    for kind in ("symlink", "hardlink", "chardev", "blockdev", "fifo", "dir"):

        def special(d: Draft, kind: str = kind) -> None:
            m = d.member("a.npy")
            m.kind, m.link = kind, links.get(kind, "")

        def special_empty(d: Draft, kind: str = kind) -> None:
            special(d)
            d.member("a.npy").opts.update(size=0)
            d.member("a.npy").data = b""
            d.lies.append(set_blob("a", "size", 176))

        add(f"blob-is-a-{kind}-read-by-offset", "tar", cat, special, FormatError, BLOBS)
        add(
            f"blob-is-a-{kind}-found-by-a-scan",
            "tar",
            cat,
            special_empty,
            FormatError,
            BLOBS,
            render=no_trailer,
        )
    for kind in ("symlink", "hardlink", "fifo"):

        def special_skeleton(d: Draft, kind: str = kind) -> None:
            m = d.member(SKELETON_MSGPACK)
            m.kind, m.link = kind, links.get(kind, "")

        add(f"skeleton-is-a-{kind}", "tar", cat, special_skeleton, FormatError, SKELETON)
    add(
        "manifest-member-is-a-symlink-read-through-the-trailer",
        "tar",
        cat,
        None,
        FormatError,
        MAYBE,
        render={"manifest_kind": "symlink"},
    )
    add(
        "manifest-member-is-a-symlink-found-by-a-scan",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render={"manifest_kind": "symlink", "trailer": False},
    )
    add(
        "manifest-member-is-a-fifo-found-by-a-scan",
        "tar",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render={"manifest_kind": "fifo", "trailer": False},
    )

    # Headers that disagree with the manifest.
    add(
        "header-names-another-member",
        "tar",
        cat,
        lambda d: setattr(d.member("a.npy"), "stored_as", "z.npy"),
        FormatError,
        BLOBS,
    )
    add(
        "header-name-with-dot-dot-manifest-without",
        "tar",
        cat,
        lambda d: setattr(d.member("a.npy"), "stored_as", "../a.npy"),
        FormatError,
        BLOBS,
    )
    add(
        "header-size-field-differs",
        "tar",
        cat,
        lambda d: d.member("a.npy").opts.update(size_field=b"%011o\x00" % 100),
        FormatError,
        BLOBS,
    )
    add(
        "header-name-has-a-nul-after-the-name",
        "tar",
        cat,
        lambda d: setattr(d.member("a.npy"), "stored_as", "a.npy\x00junk"),
        FormatError,
        HARMLESS,
    )
    add(
        "offset-points-at-another-members-data",
        "tar",
        cat,
        lambda d: d.lies.append(
            lambda m: blob(m, "a").__setitem__(B["offset"], blob(m, "n/b")[B["offset"]])
        ),
        FormatError,
        BLOBS,
    )
    for name, value in (
        ("unaligned", lambda o: o + 1),
        ("zero", lambda o: 0),
        ("in-the-end-blocks", lambda o: 9728),
        ("10**15", lambda o: 10**15),
        ("one-block-early", lambda o: o - 512),
        ("null", lambda o: None),
    ):
        add(
            f"blob-offset-{name}",
            "tar",
            "offsets",
            lambda d, value=value: d.lies.append(
                lambda m: blob(m, "a").__setitem__(B["offset"], value(blob(m, "a")[B["offset"]]))
            ),
            FormatError,
            BLOBS,
        )
    add(
        "skeleton-offset-unaligned",
        "tar",
        "offsets",
        lambda d: d.lies.append(
            lambda m: skeleton(m).__setitem__("offset", skeleton(m)["offset"] + 1)
        ),
        FormatError,
        SKELETON,
    )
    add(
        "skeleton-offset-10**15",
        "tar",
        "offsets",
        lie(set_skeleton("offset", 10**15)),
        FormatError,
        SKELETON,
    )
    add(
        "skeleton-offset-null",
        "tar",
        "offsets",
        lie(set_skeleton("offset", None)),
        FormatError,
        SKELETON,
    )


def _strip_manifest(data: bytes) -> bytes:
    """A tar with its manifest member renamed, so no member is the manifest."""
    i = data.find(MANIFEST.encode())
    out = bytearray(data)
    out[i : i + len(MANIFEST)] = b".codecs_ser/manifesto.msgpak"
    header = out[i : i + 512]
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)
    out[i : i + 512] = header
    return bytes(out)


_tar_layout()
# -- the cases: zip layout ---------------------------------------------------------------


def _zip_layout() -> None:
    cat = "layout"
    plain = {"comment": False}

    def pointer(**fields: Any) -> dict[str, Any]:
        return {"comment": fields}

    def hash_of(start: int, size: int) -> Callable[[dict[str, Any], bytes], int]:
        return lambda f, out: xxhash.xxh3_64_intdigest(out[start : start + size])

    add(
        "pointer-magic-damaged-falls-back-to-the-directory",
        "zip",
        cat,
        None,
        FormatError,
        HARMLESS,
        render=pointer(magic=b"CODECS_SER-ZIQ\x00\x00"),
    )
    add(
        "no-comment-read-through-the-directory",
        "zip",
        cat,
        None,
        FormatError,
        HARMLESS,
        render=plain,
    )
    for v in (0, 2, 0xFFFFFFFF):
        add(
            f"pointer-version-{v}",
            "zip",
            cat,
            None,
            FormatError,
            EVERYTHING,
            render=pointer(version=v),
        )
    add(
        "pointer-header-offset-not-before-data",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(header=lambda f, out: f["data"]),
    )
    add(
        "pointer-size-claims-10**12",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(size=10**12),
    )
    add(
        "pointer-size-claims-1GiB-within-the-limit",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(size=(1 << 30) - 1),
    )
    add(
        "pointer-size-2**64-1",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(size=2**64 - 1),
    )
    add(
        "pointer-data-offset-past-the-end",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(data=10**9),
    )
    add(
        "pointer-digest-wrong",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(digest=lambda f, out: f["digest"] ^ 1),
    )
    # The first member's local header is at 0, its data at 64.
    add(
        "pointer-points-at-a-blob-with-its-digest",
        "zip",
        cat,
        None,
        FormatError,
        MAYBE,
        render=pointer(header=0, data=64, size=176, digest=hash_of(64, 176)),
    )
    add(
        "pointer-points-at-nothing",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render=pointer(size=0, digest=xxhash.xxh3_64_intdigest(b"")),
    )
    add(
        "comment-length-one-short",
        "zip",
        cat,
        None,
        FormatError,
        MAYBE,
        render={"eocd": {"comment_len": 47}},
    )
    add(
        "eocd-directory-offset-past-the-end",
        "zip",
        cat,
        None,
        FormatError,
        MAYBE,
        render={"eocd": {"cd_start": 10**6}},
    )

    def replace_file(data: bytes) -> After:
        def after(path: Path, tmp: Path) -> None:
            path.write_bytes(data)

        return after

    add(
        "end-record-only",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=replace_file(_EOCD.pack(0x06054B50, 0, 0, 0, 0, 0, 0, 0)),
    )
    add(
        "local-header-signature-only",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=replace_file(b"PK\x03\x04"),
    )
    add(
        "pointer-in-an-empty-zip",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=replace_file(
            _EOCD.pack(0x06054B50, 0, 0, 0, 0, 0, 0, 52)
            + TRAILER_STRUCT.pack(b"CODECS_SER-ZIP\x00\x00", 1, 0, 22, 10, 0)
        ),
    )

    # Without our comment, the central directory is the index.
    def opt(member: str, **opts: Any) -> Change:
        return lambda d: d.member(member).opts.update(opts)

    add(
        "dir-duplicate-names",
        "zip",
        cat,
        lambda d: d.members.insert(1, Member("a.npy", d.member("a.npy").data, indexed=False)),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    # Since revision 1.2 a member may be deflated: one that says so but is not is
    # refused when it is read.
    add(
        "dir-deflated-member",
        "zip",
        cat,
        opt("a.npy", method=8),
        FormatError,
        BLOBS,
        render=plain,
    )
    add(
        "dir-local-header-names-another-member",
        "zip",
        cat,
        opt("a.npy", local_name=b"z.npy"),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-local-size-disagrees",
        "zip",
        cat,
        opt("a.npy", local_size=100, flags=0),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-size-past-the-end",
        "zip",
        cat,
        opt("a.npy", cd_size=10**9),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-zip64-size-2**60",
        "zip",
        cat,
        opt("a.npy", zip64_size=2**60),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-header-offset-past-the-end",
        "zip",
        cat,
        opt("a.npy", cd_offset=10**8),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-bad-local-signature",
        "zip",
        cat,
        opt("a.npy", local_sig=0x04034B51),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-two-names-one-local-header",
        "zip",
        cat,
        lambda d: d.members.append(Member("z.npy", d.member("a.npy").data, indexed=False)),
        FormatError,
        EVERYTHING,
        render={"comment": False, "extra_central": [("z.npy", "a.npy")]},
    )
    add(
        "dir-member-nested-inside-another",
        "zip",
        cat,
        lambda d: d.members.insert(
            0, Member("pad.bin", opts={"nest": ("x.bin", b"x" * 64)}, indexed=False)
        ),
        FormatError,
        EVERYTHING,
        render=plain,
    )
    add(
        "dir-size-smaller-than-the-manifests",
        "zip",
        cat,
        opt("a.npy", cd_size=100, local_size=100),
        FormatError,
        BLOBS,
        render=plain,
    )
    add(
        "dir-without-the-manifest",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render={"comment": False, "central": b""},
    )
    add(
        "dir-count-lies",
        "zip",
        cat,
        None,
        FormatError,
        MAYBE,
        render={"comment": False, "eocd": {"count": 1000}},
    )
    add(
        "dir-garbage",
        "zip",
        cat,
        None,
        FormatError,
        EVERYTHING,
        render={"comment": False, "central": b"PK\x01\x02" + b"\xff" * 60},
    )
    add(
        "dir-member-missing",
        "zip",
        cat,
        lambda d: d.member("a.npy").__setattr__("stored_as", "z.npy"),
        FormatError,
        BLOBS,
        render=plain,
    )

    # With our comment the directory is not needed to read: its lies are harmless to
    # loading, and verify may report that unzip would extract other bytes.
    add(
        "pointer-dir-duplicate-names",
        "zip",
        cat,
        lambda d: d.members.insert(1, Member("a.npy", bytes(176), indexed=False)),
        FormatError,
        MAYBE,
    )
    add("pointer-dir-says-deflated", "zip", cat, opt("a.npy", cd_method=8), FormatError, MAYBE)
    add("pointer-dir-size-lies", "zip", cat, opt("a.npy", cd_size=10**9), FormatError, MAYBE)
    add(
        "pointer-dir-names-another-member",
        "zip",
        cat,
        opt("a.npy", cd_name=b"z.npy"),
        FormatError,
        MAYBE,
    )
    add(
        "pointer-dir-garbage",
        "zip",
        cat,
        None,
        FormatError,
        MAYBE,
        render={"central": b"PK\x01\x02" + b"\xff" * 60},
    )
    add(
        "pointer-dir-member-nested-inside-another",
        "zip",
        cat,
        lambda d: d.members.insert(
            0, Member("pad.bin", opts={"nest": ("x.bin", b"x" * 64)}, indexed=False)
        ),
        FormatError,
        MAYBE,
    )
    add(
        "pointer-local-header-names-another-member",
        "zip",
        cat,
        opt("a.npy", local_name=b"z.npy"),
        FormatError,
        MAYBE,
    )

    # Offsets the manifest gives, read through the comment pointer.
    for name, value in (
        ("at-the-local-header", lambda o: o - 64),
        ("past-the-end", lambda o: 10**6),
        ("10**15", lambda o: 10**15),
        ("null", lambda o: None),
        ("one-byte-late", lambda o: o + 1),
    ):
        add(
            f"blob-offset-{name}",
            "zip",
            "offsets",
            lambda d, value=value: d.lies.append(
                lambda m: blob(m, "a").__setitem__(B["offset"], value(blob(m, "a")[B["offset"]]))
            ),
            FormatError,
            BLOBS,
        )
    add(
        "skeleton-offset-10**15",
        "zip",
        "offsets",
        lie(set_skeleton("offset", 10**15)),
        FormatError,
        SKELETON,
    )
    add(
        "skeleton-offset-null",
        "zip",
        "offsets",
        lie(set_skeleton("offset", None)),
        FormatError,
        SKELETON,
    )

    def swap_to_b(m: dict[str, Any]) -> None:
        a, b = blob(m, "a"), blob(m, "n/b")
        for key in ("offset", "size", "dtype", "shape", "checksum"):
            a[B[key]] = b[B[key]]

    # a's record describes b's bytes exactly, under a's member name: what unzip
    # extracts as a.npy differs from what would be loaded as "a".
    add(
        "record-reads-another-members-bytes",
        "zip",
        "offsets",
        lie(swap_to_b),
        FormatError,
        BLOB_LIES,
    )


_zip_layout()

# -- the cases: dir layout ---------------------------------------------------------------


def _outside_copy(member: str, name: str = "a.npy") -> After:
    """A byte-identical copy of a member outside the folder: if a link to it were
    followed, loading would silently succeed."""

    def after(path: Path, tmp: Path) -> None:
        src = draft("plain").member(member).data
        (outside(tmp) / name).write_bytes(src)

    return after


def _then(*afters: After) -> After:
    def after(path: Path, tmp: Path) -> Path | None:
        found = None
        for a in afters:
            got = a(path, tmp)
            found = got if isinstance(got, Path) else found
        return found

    return after


def _dir_layout() -> None:
    cat = "layout"

    def member_as(kind: str, link: str = "", member: str = "a.npy") -> Change:
        def change(d: Draft) -> None:
            m = d.member(member)
            m.kind, m.link = kind, link

        return change

    def make_fifo(rel: str) -> After:
        def after(path: Path, tmp: Path) -> None:
            os.mkfifo(tmp / rel)

        return after

    add(
        "blob-links-to-an-identical-file-outside",
        "dir",
        cat,
        member_as("symlink", "{tmp}/outside/a.npy"),
        FormatError,
        BLOBS,
        after=_outside_copy("a.npy"),
    )
    add(
        "blob-links-relatively-outside",
        "dir",
        cat,
        member_as("symlink", "../outside/a.npy"),
        FormatError,
        BLOBS,
        after=_outside_copy("a.npy"),
    )
    add("blob-links-to-dev-zero", "dir", cat, member_as("symlink", "/dev/zero"), FormatError, BLOBS)
    add(
        "blob-links-to-a-fifo-outside",
        "dir",
        cat,
        member_as("symlink", "{tmp}/outside/fifo"),
        FormatError,
        BLOBS,
        after=lambda p, t: os.mkfifo(outside(t) / "fifo"),
        fifo="outside/fifo",
    )
    add(
        "blob-links-to-etc-passwd",
        "dir",
        cat,
        member_as("symlink", "/etc/passwd"),
        FormatError,
        BLOBS,
    )
    add(
        "blob-links-to-another-member",
        "dir",
        cat,
        member_as("symlink", "n/b.npy"),
        FormatError,
        BLOBS,
    )
    add("blob-link-dangles", "dir", cat, member_as("symlink", "nowhere.npy"), FormatError, BLOBS)
    add("blob-link-loops", "dir", cat, member_as("symlink", "a.npy"), FormatError, BLOBS)
    add(
        "blob-folder-links-outside",
        "dir",
        cat,
        lambda d: (
            d.members.insert(0, Member("n", kind="symlink", link="{tmp}/outside", indexed=False))
            or d.member("n/b.npy").__setattr__("stored_as", "\x00")
        ),
        FormatError,
        BLOBS,
        after=_outside_copy("n/b.npy", "b.npy"),
    )
    add("blob-is-a-fifo", "dir", cat, member_as("fifo"), FormatError, BLOBS)
    add("blob-is-a-folder", "dir", cat, member_as("dir"), FormatError, BLOBS)
    add(
        "skeleton-is-a-fifo",
        "dir",
        cat,
        member_as("fifo", member=SKELETON_MSGPACK),
        FormatError,
        SKELETON,
    )
    add(
        "skeleton-links-to-an-identical-file-outside",
        "dir",
        cat,
        member_as("symlink", "{tmp}/outside/skel", member=SKELETON_MSGPACK),
        FormatError,
        SKELETON,
        after=_outside_copy(SKELETON_MSGPACK, "skel"),
    )

    def move_manifest(kind: str) -> After:
        def after(path: Path, tmp: Path) -> None:
            manifest = path / MANIFEST
            data = manifest.read_bytes()
            manifest.unlink()
            if kind == "link-outside":
                (outside(tmp) / "manifest.msgpack").write_bytes(data)
                os.symlink(outside(tmp) / "manifest.msgpack", manifest)
            elif kind == "link-inside":
                (path / "m.msgpack").write_bytes(data)
                os.symlink("../m.msgpack", manifest)
            elif kind == "link-dev-zero":
                os.symlink("/dev/zero", manifest)
            elif kind == "fifo":
                os.mkfifo(manifest)
            elif kind == "folder":
                manifest.mkdir()
            elif kind == "link-fifo-outside":
                os.mkfifo(outside(tmp) / "fifo")
                os.symlink(outside(tmp) / "fifo", manifest)

        return after

    for kind in ("link-outside", "link-inside", "link-dev-zero", "fifo", "folder"):
        add(
            f"manifest-{kind}", "dir", cat, None, FormatError, EVERYTHING, after=move_manifest(kind)
        )
    add(
        "manifest-link-fifo-outside",
        "dir",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=move_manifest("link-fifo-outside"),
        fifo="outside/fifo",
    )

    def meta_folder_outside(path: Path, tmp: Path) -> None:
        os.rename(path / ".codecs_ser", outside(tmp) / "meta")
        os.symlink(outside(tmp) / "meta", path / ".codecs_ser")

    add(
        "meta-folder-links-outside",
        "dir",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=meta_folder_outside,
    )

    def root_link(path: Path, tmp: Path) -> Path:
        link = tmp / "link"
        os.symlink(path, link)
        return link

    add(
        "container-path-is-a-link-to-the-folder",
        "dir",
        cat,
        None,
        FormatError,
        MAYBE,
        after=root_link,
    )

    def root_special(kind: str) -> After:
        def after(path: Path, tmp: Path) -> Path:
            root = tmp / "root"
            if kind == "fifo":
                os.mkfifo(root)
            elif kind == "dev-zero":
                os.symlink("/dev/zero", root)
            else:
                os.mkfifo(outside(tmp) / "fifo")
                os.symlink(outside(tmp) / "fifo", root)
            return root

        return after

    add(
        "container-path-is-a-fifo",
        "dir",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=root_special("fifo"),
        fifo="root",
    )
    add(
        "container-path-links-to-dev-zero",
        "dir",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=root_special("dev-zero"),
    )
    add(
        "container-path-links-to-a-fifo",
        "dir",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=root_special("link-fifo"),
        fifo="outside/fifo",
    )

    def edit(rel: str, fn: Callable[[bytes], bytes] | None) -> After:
        def after(path: Path, tmp: Path) -> None:
            p = path / rel
            if fn is None:
                p.unlink()
            else:
                p.write_bytes(fn(p.read_bytes()))

        return after

    add("blob-missing", "dir", cat, None, FormatError, BLOBS, after=edit("a.npy", None))
    add("blob-grew", "dir", cat, None, FormatError, BLOBS, after=edit("a.npy", lambda b: b + b"\0"))
    add("blob-shrank", "dir", cat, None, FormatError, BLOBS, after=edit("a.npy", lambda b: b[:-1]))
    add("blob-emptied", "dir", cat, None, FormatError, BLOBS, after=edit("a.npy", lambda b: b""))
    add(
        "skeleton-missing",
        "dir",
        cat,
        None,
        FormatError,
        SKELETON,
        after=edit(SKELETON_MSGPACK, None),
    )
    add("manifest-missing", "dir", cat, None, FormatError, EVERYTHING, after=edit(MANIFEST, None))
    add(
        "manifest-empty",
        "dir",
        cat,
        None,
        FormatError,
        EVERYTHING,
        after=edit(MANIFEST, lambda b: b""),
    )

    def junk(path: Path, tmp: Path) -> None:
        (path / "junk.npy").write_bytes(b"junk")
        (path / "deep" / "er").mkdir(parents=True)
        os.symlink("/etc/passwd", path / "deep" / "passwd")
        os.mkfifo(path / "deep" / "fifo")
        (path / ".codecs_ser" / ".manifest.msgpack.add-0123abcd").write_bytes(b"a.npy\n")

    add(
        "unreferenced-files-links-fifos-and-a-stale-journal",
        "dir",
        cat,
        None,
        FormatError,
        HARMLESS,
        after=junk,
    )
    add(
        "offsets-given-in-a-folder",
        "dir",
        "offsets",
        lie(set_blob("a", "offset", 10**15), set_skeleton("offset", 10**15)),
        FormatError,
        MAYBE,
    )


_dir_layout()
# -- the cases: member names -------------------------------------------------------------

#: Names the format forbids (docs/format.md, section 1).
UNSAFE_NAMES = {
    "dot-dot": "../a.npy",
    "dot-dot-inside": "n/../a.npy",
    "absolute": "/a.npy",
    "backslash": "n\\b.npy",
    "nul": "a.npy\x00.txt",
    "control-character": "a\x01.npy",
    "empty-component": "n//a.npy",
    "dot-component": "./a.npy",
    "trailing-slash": "a.npy/",
}


def _member_names() -> None:
    cat = "names"
    for key, name in UNSAFE_NAMES.items():
        for backend in BACKENDS:
            if backend == "dir" and key == "absolute":
                continue  # below, pointing at a real file
            add(f"blob-named-{key}", backend, cat, rename("a.npy", name), FormatError, UNSAFE_NAME)
    for key in ("dot-dot", "absolute", "backslash"):
        add(
            f"scan-blob-named-{key}",
            "tar",
            cat,
            rename("a.npy", UNSAFE_NAMES[key]),
            FormatError,
            UNSAFE_NAME,
            render={"trailer": False},
        )
        # "n\\b.npy" extracts to n/b.npy, another member's path, where backslashes are
        # separators: a reader of the zip directory may refuse the whole zip for it.
        clash = {"open": "either", "audit": "either"} if key == "backslash" else {}
        add(
            f"dir-blob-named-{key}",
            "zip",
            cat,
            rename("a.npy", UNSAFE_NAMES[key]),
            FormatError,
            {**UNSAFE_NAME, **clash},
            render={"comment": False},
        )

    # In a folder the names lead to real, byte-identical files outside.
    add(
        "blob-named-by-an-absolute-path-outside",
        "dir",
        cat,
        None,
        FormatError,
        UNSAFE_NAME,
        per_tmp=lambda tmp: rename("a.npy", f"{tmp}/outside/a.npy"),
        after=_outside_copy("a.npy"),
    )
    add(
        "blob-named-dot-dot-to-a-copy-outside",
        "dir",
        cat,
        rename("a.npy", "../outside/a.npy"),
        FormatError,
        UNSAFE_NAME,
        after=_outside_copy("a.npy"),
    )
    add(
        "blob-named-deep-dot-dot-to-a-copy-outside",
        "dir",
        cat,
        rename("a.npy", "n/../../outside/a.npy"),
        FormatError,
        UNSAFE_NAME,
        after=_outside_copy("a.npy"),
    )
    add(
        "blob-named-by-an-absolute-path-to-dev-zero",
        "dir",
        cat,
        rename("a.npy", "/dev/zero"),
        FormatError,
        UNSAFE_NAME,
    )
    add(
        "blob-named-by-an-absolute-path-to-etc-passwd",
        "dir",
        cat,
        rename("a.npy", "/etc/passwd"),
        FormatError,
        UNSAFE_NAME,
    )

    unsafe_skeleton = strict("load", "verify")
    for backend in BACKENDS:
        add(
            "skeleton-named-dot-dot",
            backend,
            cat,
            rename(SKELETON_MSGPACK, "../0.msgpack"),
            FormatError,
            unsafe_skeleton,
            after=_outside_copy(SKELETON_MSGPACK, "0.msgpack") if backend == "dir" else None,
        )
        add(
            "skeleton-named-absolute",
            backend,
            cat,
            rename(SKELETON_MSGPACK, "/0.msgpack"),
            FormatError,
            unsafe_skeleton,
        )


_member_names()

# -- the cases: the manifest's encoding --------------------------------------------------


def _manifest_encoding() -> None:
    cat = "manifest-bytes"
    whole: dict[str, Change] = {
        "not-msgpack": post(lambda b: b"\xc1" + b[1:]),
        "json-text": post(lambda b: b'{"format": "codecs_ser", "format_version": 1}'),
        "empty": post(lambda b: b""),
        "truncated-in-half": post(lambda b: b[: len(b) // 2]),
        "one-byte-short": post(lambda b: b[:-1]),
        "trailing-garbage": post(lambda b: b + b"\x00"),
        "an-array": post(lambda b: _pack([1, 2, 3])),
        "a-string": post(lambda b: _pack("codecs_ser")),
        "nil": post(lambda b: b"\xc0"),
        "a-float": post(lambda b: _pack(1.5)),
        "int-keys": post(lambda b: _pack({1: "codecs_ser"})),
        "array32-claims-2**32-1-items": post(lambda b: b"\xdd\xff\xff\xff\xff"),
        "map32-claims-2**32-1-pairs": post(lambda b: b"\xdf\xff\xff\xff\xff"),
        "str32-claims-2**32-1-bytes": post(lambda b: b"\xdb\xff\xff\xff\xff"),
        "bin32-claims-2**32-1-bytes": post(lambda b: b"\xc6\xff\xff\xff\xff"),
        "ext32-claims-2**32-1-bytes": post(lambda b: b"\xc9\xff\xff\xff\xff\x05"),
        "map-of-2**20+1-pairs-claimed": post(lambda b: b"\xdf\x00\x10\x00\x01"),
        "names-claims-2**32-1-items": splice_top("names", b"\xdd\xff\xff\xff\xff"),
        "entries-claims-2**32-1-items": splice_top("entries", b"\xdd\xff\xff\xff\xff"),
        "objects-claims-2**32-1-items": splice_top("objects", b"\xdd\xff\xff\xff\xff"),
        "metadata-bin32-claims-2**32-1-bytes": splice_metadata(b"\xc6\xff\xff\xff\xff"),
        "metadata-str32-claims-2**32-1-bytes": splice_metadata(b"\xdb\xff\xff\xff\xff"),
        "metadata-nested-5000-arrays": splice_metadata(deep(5000)),
        "metadata-nested-100000-arrays": splice_metadata(deep(100_000)),
        "metadata-nested-5000-maps": splice_metadata(deep_maps(5000)),
        "metadata-invalid-utf8": splice_metadata(b"\xa2\xff\xfe"),
        "names-invalid-utf8": splice_top("names", b"\x91\xa2\xff\xfe"),
    }
    for i, (name, change) in enumerate(whole.items()):
        backends = BACKENDS if i < 12 else (rotate(i),)
        for backend in backends:
            add(name, backend, cat, change, FormatError, EVERYTHING)


_manifest_encoding()

# -- the cases: the manifest's top level -------------------------------------------------


def _manifest_top() -> None:
    cat = "manifest-fields"
    bad: list[tuple[str, Lie]] = [
        ("format-missing", drop_top("format")),
        ("format-other", set_top("format", "codecs_ser2")),
        ("format-bytes", set_top("format", b"codecs_ser")),
        ("format-nil", set_top("format", None)),
        ("format_version-missing", drop_top("format_version")),
        ("format_version-0", set_top("format_version", 0)),
        ("format_version--1", set_top("format_version", -1)),
        ("format_version-2", set_top("format_version", 2)),
        ("format_version-2**64-1", set_top("format_version", 2**64 - 1)),
        ("format_version-str", set_top("format_version", "1")),
        ("format_version-float", set_top("format_version", 1.0)),
        ("format_version-bool", set_top("format_version", True)),
        ("format_version-nil", set_top("format_version", None)),
        ("format_version-list", set_top("format_version", [1])),
        ("entry_fields-missing", drop_top("entry_fields")),
        ("entry_fields-reordered", set_top("entry_fields", list(reversed(ENTRY_FIELDS)))),
        ("entry_fields-truncated", set_top("entry_fields", list(ENTRY_FIELDS[:7]))),
        ("entry_fields-a-string", set_top("entry_fields", ",".join(ENTRY_FIELDS))),
        ("blob_fields-missing", drop_top("blob_fields")),
        ("blob_fields-reordered", set_top("blob_fields", list(reversed(BLOB_FIELDS)))),
        ("blob_fields-a-map", set_top("blob_fields", dict.fromkeys(BLOB_FIELDS, 1))),
        ("names-missing", drop_top("names")),
        ("names-nil", set_top("names", None)),
        ("names-an-int-among-them", lambda m: m["names"].__setitem__(0, 7)),
        ("names-duplicated", lambda m: m["names"].__setitem__(1, m["names"][0])),
        ("names-one-too-many", lambda m: m["names"].append("extra")),
        ("names-a-map", lambda m: m.__setitem__("names", dict.fromkeys(m["names"], 1))),
        ("entries-missing", drop_top("entries")),
        ("entries-a-map", lambda m: m.__setitem__("entries", {"a": 1})),
        ("entries-one-too-few", lambda m: m["entries"].pop()),
        ("objects-missing", drop_top("objects")),
        ("objects-empty", set_top("objects", [])),
        ("objects-a-map", lambda m: m.__setitem__("objects", m["objects"][0])),
        ("object-an-int", set_top("objects", [7])),
        ("object-without-name", lambda m: m["objects"][0].pop("name")),
        ("object-without-prefix", lambda m: m["objects"][0].pop("prefix")),
        ("object-without-skeleton", lambda m: m["objects"][0].pop("skeleton")),
        ("object-name-an-int", set_object("name", 1)),
        ("object-name-nil", set_object("name", None)),
        ("object-prefix-bytes", set_object("prefix", b"")),
        ("object-skeleton-a-list", set_object("skeleton", [])),
        (
            "objects-with-one-name-twice",
            lambda m: m["objects"].append(copy.deepcopy(m["objects"][0])),
        ),
        ("object-globals-a-string", set_object("globals", "os.system")),
        ("object-globals-with-an-int", set_object("globals", ["os.system", 1])),
        ("skeleton-format-missing", lambda m: skeleton(m).pop("format")),
        ("skeleton-format-json", set_skeleton("format", "json")),
        ("skeleton-format-nil", set_skeleton("format", None)),
        ("skeleton-member-missing", lambda m: skeleton(m).pop("member")),
        ("skeleton-member-an-int", set_skeleton("member", 0)),
        ("skeleton-checksum-an-int", set_skeleton("checksum", 0)),
        ("skeleton-checksum-nil", set_skeleton("checksum", None)),
        ("skeleton-offset-negative", set_skeleton("offset", -1)),
        ("skeleton-offset-a-string", set_skeleton("offset", "2560")),
        ("skeleton-size-negative", set_skeleton("size", -1)),
        ("skeleton-size-nil", set_skeleton("size", None)),
        ("skeleton-size-a-float", set_skeleton("size", 26.0)),
        ("skeleton-size-bool", set_skeleton("size", True)),
    ]
    for i, (name, fn) in enumerate(bad):
        add(name, rotate(i), cat, lie(fn), FormatError, EVERYTHING)

    # Fields readers must tolerate, or that only describe.
    harmless: list[tuple[str, Lie]] = [
        ("writer-a-string", set_top("writer", "evil")),
        ("metadata-a-list", set_top("metadata", [1, 2])),
        ("dists-an-int", set_top("dists", 1)),
        ("checksum-an-int", set_top("checksum", 1)),
        ("created-a-string", set_top("created", "yesterday")),
        ("unknown-top-level-keys", set_top("zzz", {"exec": "os.system('x')"})),
        ("object-metadata-a-string", set_object("metadata", "x")),
        ("object-globals-claim-os-system", set_object("globals", ["os.system"])),
    ]
    for i, (name, fn) in enumerate(harmless):
        add(name, rotate(i), cat, lie(fn), FormatError, HARMLESS)

    def appended(m: dict[str, Any]) -> None:
        m["entry_fields"] = [*ENTRY_FIELDS, "future"]
        m["blob_fields"] = [*BLOB_FIELDS, "future"]
        for rec in m["entries"]:
            rec.append({"future": True})
            for b in rec[E["blobs"]]:
                b.append("future")

    for backend in BACKENDS:
        add(
            "fields-appended-by-a-future-minor-version",
            backend,
            cat,
            lie(appended),
            FormatError,
            HARMLESS,
        )


_manifest_top()
# -- the cases: entry and blob records, field by field -------------------------------------

#: Wrong values for each field of an entry record: refused when the entry is decoded.
ENTRY_WRONG: dict[str, list[tuple[str, Any]]] = {
    "object": [
        ("negative", -1),
        ("str", "0"),
        ("nil", None),
        ("float", 0.0),
        ("bool", False),
        ("no-such-object", 7),
        ("2**64-1", 2**64 - 1),
        ("list", [0]),
    ],
    "path": [("nil", None), ("int", 1), ("bytes", b"a"), ("list", ["a"])],
    "codec": [("nil", None), ("int", 1), ("bytes", b"numpy.ndarray"), ("list", ["numpy"])],
    "codec_version": [
        ("zero", 0),
        ("negative", -1),
        ("str", "1"),
        ("nil", None),
        ("float", 1.0),
        ("bool", True),
    ],
    "dist": [("int", 1), ("bytes", b"codecs-ser"), ("list", [])],
    "device": [("int", 0), ("bytes", b"cuda:0"), ("map", {})],
    "meta": [("nil", None), ("list", []), ("str", "view"), ("int", 1)],
    "blobs": [
        ("nil", None),
        ("empty", []),
        ("str", "a.npy"),
        ("map", {}),
        ("list-of-nil", [None]),
        ("list-of-empty-list", [[]]),
        ("list-of-int", [1]),
    ],
}

#: Wrong values for each field of a blob record: refused when the entry is decoded.
BLOB_WRONG: dict[str, list[tuple[str, Any]]] = {
    "role": [("nil", None), ("int", 1), ("bytes", b"data"), ("list", [])],
    "member": [("nil", None), ("empty", ""), ("int", 1), ("bytes", b"a.npy"), ("list", [])],
    "offset": [("negative", -1), ("str", "64"), ("float", 64.0), ("bool", True), ("list", [])],
    "size": [
        ("negative", -1),
        ("str", "176"),
        ("nil", None),
        ("float", 176.0),
        ("bool", True),
        ("zero", 0),
        ("smaller-than-the-data", 40),
    ],
    "dtype": [
        ("nil", None),
        ("int", 8),
        ("empty", ""),
        ("object", "|O"),
        ("object-alias", "O"),
        ("object-field", [["a", "|O"]]),
        ("nested-object-field", [["a", [["b", "|O"]]]]),
        ("invalid", "<x9"),
        ("python", "np.dtype('O')"),
        ("map", {"descr": "<f8"}),
        ("nested-100-deep", [["a", "<f8"]] if False else None),
        ("subarray-2**40", [["a", "<f8", [2**20, 2**20]]]),
        ("subarray-negative", [["a", "<f8", [-1]]]),
        ("empty-list", []),
        ("field-of-one", [["a"]]),
    ],
    "shape": [
        ("nil", None),
        ("str", "6"),
        ("negative", [-1]),
        ("float", [6.0]),
        ("bool", [True]),
        ("2**63", [2**63]),
        ("10**15", [10**15]),
        ("65-dims", [1] * 65),
        ("map", {"0": 6}),
        ("2**32-each", [2**32, 2**32]),
    ],
    "fortran_order": [("nil", None), ("int", 1), ("str", "False"), ("list", [])],
    "checksum": [("nil", None), ("int", 1), ("bytes", b"xxh3_64:0")],
    "name": [("int", 1), ("bytes", b"a"), ("list", [])],
}


def _nested_descr(depth: int) -> Any:
    descr: Any = "<f8"
    for _ in range(depth):
        descr = [["a", descr]]
    return descr


BLOB_WRONG["dtype"][10] = ("nested-100-deep", _nested_descr(100))


def _records() -> None:
    i = 0
    for fname, values in ENTRY_WRONG.items():
        for label, value in values:
            add(
                f"entry-{fname}-{label}",
                rotate(i),
                "entry-fields",
                lie(set_entry("a", fname, value)),
                FormatError,
                ENTRIES,
            )
            i += 1
    for fname, values in BLOB_WRONG.items():
        for label, value in values:
            add(
                f"blob-{fname}-{label}",
                rotate(i),
                "blob-fields",
                lie(set_blob("a", fname, value)),
                FormatError,
                ENTRIES,
            )
            i += 1

    def entry_bytes(raw: Any) -> Lie:
        def apply(m: dict[str, Any]) -> None:
            m["entries"][0] = raw

        return apply

    real = _pack(draft().manifest["entries"][0])
    whole: list[tuple[str, Any]] = [
        ("not-msgpack", b"\xc1"),
        ("truncated", real[:-3]),
        ("trailing-bytes", real + b"\x00"),
        ("empty", b""),
        ("nested-5000-deep", deep(5000)),
        ("array32-claims-2**32-1", b"\xdd\xff\xff\xff\xff"),
        ("str32-claims-2**32-1", b"\xdb\xff\xff\xff\xff"),
        ("a-map", _pack(dict(zip(ENTRY_FIELDS, draft().manifest["entries"][0], strict=True)))),
        ("too-short", _pack(draft().manifest["entries"][0][:7])),
        ("nil", _pack(None)),
        ("a-str-not-bin", Verbatim(real.decode("latin1"))),
        ("an-int-not-bin", Verbatim(7)),
        ("a-list-not-bin", Verbatim([0, "a"])),
    ]
    for label, raw in whole:
        add(
            f"entry-bytes-{label}",
            rotate(i),
            "entry-fields",
            lie(entry_bytes(raw)),
            FormatError,
            ENTRIES,
        )
        i += 1

    def blob_record(fn: Callable[[list[Any]], Any]) -> Lie:
        def apply(m: dict[str, Any]) -> None:
            rec = record(m, "a")
            rec[E["blobs"]][0] = fn(rec[E["blobs"]][0])

        return apply

    for label, fn in (
        ("too-short", lambda b: b[:8]),
        ("a-map", lambda b: dict(zip(BLOB_FIELDS, b, strict=True))),
        ("nil", lambda b: None),
        ("a-string", lambda b: "a.npy"),
    ):
        add(
            f"blob-record-{label}",
            rotate(i),
            "blob-fields",
            lie(blob_record(fn)),
            FormatError,
            ENTRIES,
        )
        i += 1

    # Records that parse, and lie about the bytes they describe.
    lies: list[tuple[str, Lie, type[CodecsSerError], Mapping[str, str]]] = [
        ("dtype-float32", set_blob("a", "dtype", "<f4"), FormatError, BLOB_LIES),
        ("dtype-big-endian", set_blob("a", "dtype", ">f8"), FormatError, BLOB_LIES),
        ("dtype-int64-same-size", set_blob("a", "dtype", "<i8"), FormatError, BLOB_LIES),
        ("dtype-datetime", set_blob("a", "dtype", "<M8[as]"), FormatError, BLOB_LIES),
        ("dtype-record", set_blob("a", "dtype", [["x", "<f8"]]), FormatError, BLOB_LIES),
        ("shape-same-bytes", set_blob("a", "shape", [3, 2]), FormatError, BLOB_LIES),
        ("shape-0-d", set_blob("a", "shape", []), FormatError, BLOB_LIES),
        ("shape-empty", set_blob("a", "shape", [0]), FormatError, BLOB_LIES),
        # No array has this shape (numpy refuses it): the record itself is bad.
        ("shape-2**64-1-by-0", set_blob("a", "shape", [2**64 - 1, 0]), FormatError, ENTRIES),
        ("shape-64-dims", set_blob("a", "shape", [1] * 63 + [6]), FormatError, BLOB_LIES),
        ("fortran-order", set_blob("n/b", "fortran_order", True), FormatError, BLOB_LIES),
        ("size-one-more", lambda m: blob(m, "a").__setitem__(B["size"], 177), FormatError, BLOBS),
        ("size-one-less", lambda m: blob(m, "a").__setitem__(B["size"], 175), FormatError, BLOBS),
        ("size-2**64-1", set_blob("a", "size", 2**64 - 1), FormatError, BLOBS),
        (
            "checksum-zero-digest",
            set_blob("a", "checksum", "xxh3_64:" + "0" * 16),
            IntegrityError,
            BLOBS,
        ),
        (
            "checksum-of-other-algorithm",
            set_blob("a", "checksum", "sha256:" + "0" * 64),
            IntegrityError,
            BLOBS,
        ),
        (
            "checksum-without-algorithm",
            set_blob("a", "checksum", "5ab94c5a69120c93"),
            FormatError,
            BLOBS,
        ),
        ("checksum-empty", set_blob("a", "checksum", ""), FormatError, BLOBS),
        (
            "checksum-unknown-algorithm",
            set_blob("a", "checksum", "md5:" + "0" * 32),
            FormatError,
            BLOBS,
        ),
        ("checksum-digest-missing", set_blob("a", "checksum", "xxh3_64:"), FormatError, BLOBS),
        (
            "checksum-of-another-member",
            lambda m: blob(m, "a").__setitem__(B["checksum"], blob(m, "n/b")[B["checksum"]]),
            IntegrityError,
            BLOBS,
        ),
        ("member-missing", set_blob("a", "member", "nowhere.npy"), FormatError, BLOBS),
        (
            "member-is-the-skeleton",
            set_blob("a", "member", SKELETON_MSGPACK),
            FormatError,
            UNSAFE_NAME,
        ),
        ("member-is-the-manifest", set_blob("a", "member", MANIFEST), FormatError, UNSAFE_NAME),
    ]
    for label, fn, expect, outcome in lies:
        for backend in BACKENDS:
            add(f"blob-lies-{label}", backend, "blob-lies", lie(fn), expect, outcome)

    # The same member named by two entries is how add() stores identical bytes once.
    def second_name(m: dict[str, Any]) -> None:
        blob(m, "a")[B["name"]] = "n/b"

    add(
        "blob-name-repeats-another-entrys-name",
        "tar",
        "blob-lies",
        lie(second_name),
        FormatError,
        outcomes(("load_arrays",)),
    )
    add(
        "blob-name-claims-a-path-outside",
        "zip",
        "blob-lies",
        lie(set_blob("a", "name", "../../etc/passwd")),
        FormatError,
        strict("load_arrays"),
    )

    def claim(nbytes: int) -> Lie:
        """A blob record claiming ``nbytes`` of data, consistent with itself."""

        def apply(m: dict[str, Any]) -> None:
            b = blob(m, "a")
            b[B["shape"]] = [nbytes // 8]
            b[B["size"]] = nbytes + 128

        return apply

    for backend in BACKENDS:
        add(
            "blob-claims-10**15-bytes",
            backend,
            "resource-claims",
            lie(claim(10**15)),
            FormatError,
            BLOB_LIES,
        )
        add(
            "blob-claims-1GiB",
            backend,
            "resource-claims",
            lie(claim(1 << 30)),
            FormatError,
            BLOB_LIES,
        )
        add(
            "skeleton-claims-10**15-bytes",
            backend,
            "resource-claims",
            lie(set_skeleton("size", 10**15)),
            FormatError,
            SKELETON,
        )
        add(
            "skeleton-claims-1GiB-within-the-limit",
            backend,
            "resource-claims",
            lie(set_skeleton("size", (1 << 30) - 1)),
            FormatError,
            SKELETON,
        )


_records()

# -- the cases: skeleton records that parse and lie ----------------------------------------


def _skeleton_records() -> None:
    cat = "skeleton-lies"
    cases: list[tuple[str, Change, type[CodecsSerError], Mapping[str, str], str]] = [
        (
            "checksum-zero-digest",
            lie(set_skeleton("checksum", "xxh3_64:" + "0" * 16)),
            IntegrityError,
            SKELETON,
            "plain",
        ),
        (
            "checksum-malformed",
            lie(set_skeleton("checksum", "nocolon")),
            FormatError,
            SKELETON,
            "plain",
        ),
        (
            "checksum-unknown-algorithm",
            lie(set_skeleton("checksum", "md5:00")),
            FormatError,
            SKELETON,
            "plain",
        ),
        ("size-zero", lie(set_skeleton("size", 0)), FormatError, SKELETON, "plain"),
        (
            "size-one-less",
            lambda d: d.lies.append(
                lambda m: skeleton(m).__setitem__("size", skeleton(m)["size"] - 1)
            ),
            FormatError,
            SKELETON,
            "plain",
        ),
        (
            "member-missing",
            lie(set_skeleton("member", "nowhere")),
            FormatError,
            strict("load", "verify"),
            "plain",
        ),
        (
            "member-empty-name",
            lie(set_skeleton("member", "")),
            FormatError,
            strict("load", "verify"),
            "plain",
        ),
        (
            "msgpack-declared-pickle",
            lie(set_skeleton("format", "pickle")),
            FormatError,
            strict("load", "audit"),
            "plain",
        ),
        (
            "pickle-declared-msgpack",
            lie(set_skeleton("format", "msgpack")),
            FormatError,
            SKELETON_NAME,
            "pickled",
        ),
        (
            "member-is-a-blob",
            lambda d: d.lies.append(
                lambda m: skeleton(m).update(
                    {k: blob(m, "a")[B[k]] for k in ("offset", "size", "checksum")}, member="a.npy"
                )
            ),
            FormatError,
            SKELETON_NAME,
            "plain",
        ),
        (
            "pickle-member-is-a-blob",
            lambda d: d.lies.append(
                lambda m: skeleton(m).update(
                    {k: blob(m, "a")[B[k]] for k in ("offset", "size", "checksum")}, member="a.npy"
                )
            ),
            FormatError,
            strict("load", "audit"),
            "pickled",
        ),
    ]
    for i, (label, change, expect, outcome, base) in enumerate(cases):
        for backend in BACKENDS if i < 4 else (rotate(i),):
            add(label, backend, cat, change, expect, outcome, base=base)

    def later_object(m: dict[str, Any]) -> None:
        second = copy.deepcopy(m["objects"][0])
        second.update(name="other", prefix="other/")
        m["objects"].append(second)
        record(m, "a")[E["object"]] = 1

    for backend in BACKENDS:
        add(
            "skeleton-uses-an-entry-of-a-later-object",
            backend,
            cat,
            lie(later_object),
            FormatError,
            outcomes(("load",), open="runs"),
        )


_skeleton_records()
# -- the cases: codecs -------------------------------------------------------------------


def _codecs() -> None:
    cat = "codecs"
    unknown = outcomes(("load",), inspect="runs")
    ids: list[tuple[str, str, Any]] = [
        ("unknown", "evil.codec", None),
        ("unknown-with-a-dist-to-install", "evil.codec", "evil-dist"),
        ("empty-id", "", None),
        ("trailing-space", "numpy.ndarray ", None),
        ("other-case", "NUMPY.NDARRAY", None),
        ("with-a-nul", "numpy.ndarray\x00", None),
        ("a-dotted-callable", "os.system", None),
        ("10000-characters", "x" * 10_000, None),
    ]
    for i, (label, codec, dist) in enumerate(ids):
        add(
            f"codec-{label}",
            rotate(i),
            cat,
            lie(set_entry("a", "codec", codec), set_entry("a", "dist", dist)),
            UnknownCodecError,
            unknown,
        )

    # Known codecs given what they never write.
    add(
        "ndarray-codec-version-2",
        "tar",
        cat,
        lie(set_entry("a", "codec_version", 2)),
        FormatError,
        unknown,
    )
    add(
        "ndarray-codec-version-2**63",
        "zip",
        cat,
        lie(set_entry("a", "codec_version", 2**63)),
        FormatError,
        unknown,
    )
    add(
        "masked-codec-version-2",
        "dir",
        cat,
        lie(set_entry("m", "codec_version", 2)),
        FormatError,
        unknown,
        base="masked",
    )
    add(
        "scalar-codec-given-a-3-element-array",
        "tar",
        cat,
        lie(set_entry("m", "codec", "numpy.scalar")),
        FormatError,
        unknown,
        base="masked",
    )
    add(
        "masked-codec-with-a-mask-of-another-shape",
        "zip",
        cat,
        lambda d: (
            d.member("m.mask.npy").__setattr__("data", numpy_saved(np.zeros(2, bool), (1, 0)))
            or d.lies.append(set_blob("m", "shape", [2], 1))
        ),
        FormatError,
        outcomes(("load",), load_arrays="runs", inspect="runs"),
        base="masked",
    )
    add(
        "masked-codec-without-a-data-blob",
        "dir",
        cat,
        lie(set_blob("m", "role", "other", 0)),
        FormatError,
        unknown,
        base="masked",
    )
    add(
        "masked-codec-hard-mask-not-a-bool",
        "tar",
        cat,
        lie(set_entry("m", "meta", {"hard_mask": "yes"})),
        FormatError,
        unknown,
        base="masked",
    )
    add(
        "ndarray-codec-given-a-view-that-is-not-a-map",
        "zip",
        cat,
        lie(set_entry("a", "meta", {"view": 5})),
        FormatError,
        outcomes((), load="either", inspect="runs"),
    )


_codecs()

# -- the cases: views --------------------------------------------------------------------


def _views_cases() -> None:
    cat = "views"

    def view(**fields: Any) -> Lie:
        def apply(m: dict[str, Any]) -> None:
            record(m, "v")[E["meta"]]["view"].update(fields)

        return apply

    cases: list[tuple[str, Lie, Mapping[str, str]]] = [
        ("base-is-itself", view(base=1), LOAD),
        ("base-out-of-range", view(base=99), LOAD),
        ("base-negative", view(base=-1), LOAD),
        ("base-a-string", view(base="0"), LOAD),
        ("base-nil", view(base=None), LOAD),
        ("offset-negative", view(offset=-8), LOAD),
        ("offset-past-the-end", view(offset=80), LOAD),
        ("offset-10**15", view(offset=10**15), LOAD),
        ("offset-a-string", view(offset="16"), LOAD),
        ("offset-nil", view(offset=None), LOAD),
        ("strides-too-many", view(strides=[8, 8]), LOAD),
        ("strides-10**15", view(strides=[10**15]), LOAD),
        ("strides-floats", view(strides=[8.0]), LOAD),
        ("strides-a-string", view(strides="8"), LOAD),
        ("strides-2**63", view(strides=[2**63]), LOAD),
        ("strides-2**62-overflowing", view(strides=[2**62]), LOAD),
        ("offset-unaligned-reads-other-values", view(offset=17), LOAD),
        # The view's own blob is checksummed: a view reading other values is a lie.
        ("offset-reads-other-values", view(offset=24), LOAD),
        ("strides-negative-read-other-values", view(strides=[-8]), LOAD),
        ("strides-zero-read-one-value", view(strides=[0]), LOAD),
        ("view-record-claims-float32", set_blob("v", "dtype", "<f4"), BLOB_LIES),
        ("view-record-claims-4-items", set_blob("v", "shape", [4]), BLOB_LIES),
    ]
    for i, (label, fn, outcome) in enumerate(cases):
        add(label, rotate(i), cat, lie(fn), FormatError, outcome, base="views")

    def cycle(m: dict[str, Any]) -> None:
        record(m, "base")[E["meta"]] = {"view": {"base": 1, "offset": 0, "strides": [8]}}

    def base_not_an_array(m: dict[str, Any]) -> None:
        record(m, "base")[E["codec"]] = "numpy.scalar"

    for backend in BACKENDS:
        add("two-views-of-each-other", backend, cat, lie(cycle), FormatError, LOAD, base="views")
    add(
        "base-is-not-an-ndarray-entry",
        "zip",
        cat,
        lie(base_not_an_array),
        FormatError,
        outcomes(("load",), inspect="runs"),
        base="views",
    )


_views_cases()

# -- the cases: .npy headers -------------------------------------------------------------

A_DATA = np.arange(6, dtype="<f8").tobytes()
A_HEADER = "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }"


def _npy_headers() -> None:
    cat = "npy-headers"
    bad: list[tuple[str, bytes]] = [
        (
            "dtype-float32",
            npy("{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", A_DATA),
        ),
        (
            "shape-2-by-3",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", A_DATA),
        ),
        ("fortran-order", npy("{'descr': '<f8', 'fortran_order': True, 'shape': (6,), }", A_DATA)),
        ("object-dtype", npy("{'descr': '|O', 'fortran_order': False, 'shape': (6,), }", A_DATA)),
        (
            "object-field",
            npy("{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (6,), }", A_DATA),
        ),
        ("length-65535-past-the-member", npy(A_HEADER, A_DATA, hlen=0xFFFF)),
        ("v2-length-2**32-1", npy(A_HEADER, A_DATA, version=2, hlen=0xFFFFFFFF)),
        ("v3-length-2**31", npy(A_HEADER, A_DATA, version=3, hlen=2**31)),
        ("length-shorter-than-the-text", npy(A_HEADER, A_DATA, hlen=20)),
        (
            "a-list-not-a-dict",
            npy("[('descr', '<f8'), ('fortran_order', False), ('shape', (6,))]", A_DATA),
        ),
        (
            "extra-key",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'x': 1}", A_DATA),
        ),
        ("missing-key", npy("{'descr': '<f8', 'shape': (6,)}", A_DATA)),
        (
            "python-call",
            npy(
                "{'descr': __import__('os').system('touch pwned'), 'fortran_order': False, 'shape': (6,)}",
                A_DATA,
            ),
        ),
        (
            "lambda",
            npy("{'descr': (lambda: '<f8')(), 'fortran_order': False, 'shape': (6,)}", A_DATA),
        ),
        (
            "nested-parentheses-5000",
            npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': "
                + "(" * 5000
                + "6,"
                + ")" * 5000
                + "}",
                A_DATA,
            ),
        ),
        (
            "nested-lists-100000",
            npy(
                "{'descr': "
                + "[" * 100_000
                + "]" * 100_000
                + ", 'fortran_order': False, 'shape': (6,)}",
                A_DATA,
            ),
        ),
        (
            "nested-descr-150",
            npy(
                "{'descr': "
                + "[('a', " * 150
                + "'<f8'"
                + ")]" * 150
                + ", 'fortran_order': False, 'shape': (6,)}",
                A_DATA,
            ),
        ),
        (
            "int-of-5000-digits",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (" + "9" * 5000 + ",)}", A_DATA),
        ),
        (
            "shape-10**15",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (10**15,)}", A_DATA),
        ),
        (
            "shape-1000000000000000",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000,)}", A_DATA),
        ),
        ("shape-negative", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-6,)}", A_DATA)),
        ("shape-a-float", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (6.0,)}", A_DATA)),
        (
            "shape-a-bool",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (True, 6)}", A_DATA),
        ),
        (
            "fortran-order-a-string",
            npy("{'descr': '<f8', 'fortran_order': 'no', 'shape': (6,)}", A_DATA),
        ),
        ("fortran-order-zero", npy("{'descr': '<f8', 'fortran_order': 0, 'shape': (6,)}", A_DATA)),
        ("descr-invalid", npy("{'descr': '<x9', 'fortran_order': False, 'shape': (6,)}", A_DATA)),
        ("descr-a-set", npy("{'descr': {'<f8'}, 'fortran_order': False, 'shape': (6,)}", A_DATA)),
        (
            "nul-in-the-text",
            npy("{'descr': '<f8',\x00 'fortran_order': False, 'shape': (6,)}", A_DATA),
        ),
        (
            "v3-not-utf8",
            npy(
                b"{'descr': '<f8', 'fortran_order': False, 'shape': (6,)} \xff\xfe",
                A_DATA,
                version=3,
            ),
        ),
        ("bad-magic", b"\x93NUMPX" + npy(A_HEADER, A_DATA)[6:]),
        ("no-magic-at-all", b"\x00" * 128 + A_DATA),
        ("version-0", npy(A_HEADER, A_DATA)[:6] + b"\x00" + npy(A_HEADER, A_DATA)[7:]),
        ("version-4", npy(A_HEADER, A_DATA)[:6] + b"\x04" + npy(A_HEADER, A_DATA)[7:]),
        ("version-255", npy(A_HEADER, A_DATA)[:6] + b"\xff" + npy(A_HEADER, A_DATA)[7:]),
        ("header-only", npy(A_HEADER, b"")),
        ("one-byte-of-data-missing", npy(A_HEADER, A_DATA[:-1])),
        ("one-byte-of-data-extra", npy(A_HEADER, A_DATA + b"\0")),
    ]
    for i, (label, data) in enumerate(bad):
        add(label, rotate(i), cat, set_member("a.npy", data), FormatError, BLOBS)
    # Smaller than the data its record claims: the record itself is refused.
    add("magic-only", "zip", cat, set_member("a.npy", NPY_MAGIC), FormatError, ENTRIES)

    # Headers that differ from what codecs_ser writes but say the same: any reader
    # must give back the same array.
    arr = np.arange(6, dtype="<f8")
    same_meaning: list[tuple[str, bytes]] = [
        ("numpy-v2", numpy_saved(arr, (2, 0))),
        ("numpy-v3", numpy_saved(arr, (3, 0))),
        ("keys-reordered", npy("{'shape': (6,), 'fortran_order': False, 'descr': '<f8'}", A_DATA)),
        ("no-spaces", npy("{'descr':'<f8','fortran_order':False,'shape':(6,)}", A_DATA)),
        (
            "dtype-as-a-record-of-one-unnamed",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (6,)}", A_DATA),
        ),
        (
            "padded-with-900000-spaces",
            npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (6,)}" + " " * 900_000,
                A_DATA,
                version=2,
            ),
        ),
    ]
    for i, (label, data) in enumerate(same_meaning):
        add(
            f"same-meaning-{label}",
            rotate(i),
            cat,
            set_member("a.npy", data),
            FormatError,
            HARMLESS,
        )


_npy_headers()
# -- the cases: msgpack skeletons --------------------------------------------------------


def _ext_header(code: int, n: int) -> bytes:
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    c = code & 0xFF
    if n in fixed:
        return bytes((fixed[n], c))
    if n < 1 << 8:
        return bytes((0xC7, n, c))
    if n < 1 << 16:
        return b"\xc8" + struct.pack(">H", n) + bytes((c,))
    return b"\xc9" + struct.pack(">I", n) + bytes((c,))


def ext(code: int, payload: bytes) -> bytes:
    return _ext_header(code, len(payload)) + payload


def nested_tuples(depth: int, leaf: bytes = b"\x00") -> bytes:
    """``depth`` tuples (extension type 1) each holding the next, built in linear time."""
    sizes = [len(leaf)]
    for _ in range(depth):
        payload = 1 + sizes[-1]
        sizes.append(len(_ext_header(1, payload)) + payload)
    parts = [_ext_header(1, 1 + sizes[k - 1]) + b"\x91" for k in range(depth, 0, -1)]
    return b"".join(parts) + leaf


def leaf(payload: bytes) -> bytes:
    return ext(2, payload)


def colliding_floats() -> list[float]:
    """Floats that all hash to 1: 2**(61*k) (2**61 is 1 modulo the hash prime)."""
    return [2.0 ** (61 * k) for k in range(-17, 17)]


def _hash_flood_map(n: int) -> bytes:
    floats = colliding_floats()
    keys = [(a, b) for a in floats for b in floats][:n]
    out = b"\xde" + struct.pack(">H", len(keys))
    for a, b in keys:
        out += ext(1, b"\x92" + _pack(a) + _pack(b)) + b"\xc0"
    return out


def _msgpack_skeletons() -> None:
    cat = "msgpack-skeleton"
    real = draft().member(SKELETON_MSGPACK).data
    bad: list[tuple[str, bytes]] = [
        ("tuples-nested-17-deep", nested_tuples(17)),
        ("tuples-nested-3000-deep", nested_tuples(3000)),
        ("tuples-nested-200000-deep", nested_tuples(200_000)),
        ("tuples-nested-3000-deep-in-a-map-key", b"\x81" + nested_tuples(3000) + b"\xc0"),
        ("arrays-nested-100000-deep", deep(100_000)),
        ("maps-nested-100000-deep", deep_maps(100_000)),
        ("leaf-out-of-range", leaf(_pack(99))),
        ("leaf-negative", leaf(_pack(-1))),
        ("leaf-2**64-1", leaf(_pack(2**64 - 1))),
        ("leaf-a-string", leaf(_pack("0"))),
        ("leaf-nil", leaf(b"\xc0")),
        ("leaf-a-float", leaf(_pack(0.0))),
        ("leaf-a-bool", leaf(b"\xc3")),
        ("leaf-empty-payload", leaf(b"")),
        ("leaf-two-ints", leaf(b"\x00\x01")),
        ("leaf-a-list", leaf(_pack([0]))),
        ("leaf-as-a-map-key", b"\x81" + leaf(b"\x00") + b"\xc0"),
        ("unknown-ext-0", ext(0, b"\x00")),
        ("unknown-ext-5", ext(5, b"\x00")),
        ("unknown-ext-127", ext(127, b"")),
        ("unknown-ext--2", ext(-2, b"\x00")),
        ("unknown-ext--128", ext(-128, b"\x00" * 4)),
        ("timestamp-ext--1", ext(-1, b"\x00\x00\x00\x01")),
        ("timestamp-ext--1-bad-size", ext(-1, b"\x00\x00\x01")),
        ("complex-of-8-bytes", ext(3, b"\x00" * 8)),
        ("complex-empty", ext(3, b"")),
        ("bigint-of-70000-bytes", ext(4, b"\x01" * 70_000)),
        ("tuple-of-an-int", ext(1, b"\x05")),
        ("tuple-of-garbage", ext(1, b"\xc1")),
        ("tuple-with-trailing-bytes", ext(1, b"\x90\x90")),
        ("tuple-claims-2**32-1-items", ext(1, b"\xdd\xff\xff\xff\xff")),
        ("map-with-a-list-key", b"\x81\x91\x00\xc0"),
        ("map-with-a-map-key", b"\x81\x80\xc0"),
        ("hash-flooding-tuple-keys", _hash_flood_map(1000)),
        ("array32-claims-2**32-1-items", b"\xdd\xff\xff\xff\xff"),
        ("map32-claims-2**32-1-pairs", b"\xdf\xff\xff\xff\xff"),
        ("str32-claims-2**32-1-bytes", b"\xdb\xff\xff\xff\xff"),
        ("bin32-claims-2**32-1-bytes", b"\xc6\xff\xff\xff\xff"),
        ("not-msgpack", b"\xc1"),
        ("empty", b""),
        ("trailing-bytes", real + b"\xc0"),
        ("truncated", real[:-1]),
        ("a-pickle", pickle.dumps({"a": 1})),
    ]
    for i, (label, data) in enumerate(bad):
        backends = BACKENDS if label.startswith("tuples-nested") else (rotate(i),)
        for backend in backends:
            add(label, backend, cat, set_member(SKELETON_MSGPACK, data), FormatError, LOAD)


_msgpack_skeletons()

# -- the cases: pickled skeletons --------------------------------------------------------

PICKLED = outcomes(("load",))
#: A pickle so malformed that the audit, which runs it with stubs, fails too.
MALFORMED = outcomes(("load", "audit"))

Payload = bytes | Callable[[Path], bytes]


def _pickles_that_run_code() -> list[tuple[str, Payload, list[str]]]:
    def cmd(call: Callable[[str, Path], bytes]) -> Callable[[Path], bytes]:
        return lambda tmp: call(shell(tmp), tmp)

    def target(tmp: Path) -> str:
        return os.fspath(tmp / SENTINEL)

    def write_code(tmp: Path) -> str:
        return f"open({target(tmp)!r}, 'w').close()"

    imp = p_call(p_global("builtins", "__import__"), p_str("os"))
    inner = lambda tmp: pk(p_call(p_global("os", "system"), p_str(shell(tmp))), 2)  # noqa: E731
    return [
        (
            "os-system-protocol-0",
            lambda t: b"cos\nsystem\n(V" + shell(t).encode() + b"\ntR.",
            ["os.system"],
        ),
        (
            "os-system",
            cmd(lambda c, t: pk(p_call(p_global("os", "system"), p_str(c)))),
            ["os.system"],
        ),
        (
            "posix-system",
            cmd(lambda c, t: pk(p_call(p_global("posix", "system"), p_str(c)))),
            ["posix.system"],
        ),
        (
            "nt-system",
            cmd(lambda c, t: pk(p_call(p_global("nt", "system"), p_str(c)))),
            ["nt.system"],
        ),
        ("os-popen", cmd(lambda c, t: pk(p_call(p_global("os", "popen"), p_str(c)))), ["os.popen"]),
        (
            "subprocess-popen",
            lambda t: pk(
                p_call(p_global("subprocess", "Popen"), p_list(p_str("touch"), p_str(target(t))))
            ),
            ["subprocess.Popen"],
        ),
        (
            "subprocess-check-output",
            lambda t: pk(
                p_call(
                    p_global("subprocess", "check_output"), p_list(p_str("touch"), p_str(target(t)))
                )
            ),
            ["subprocess.check_output"],
        ),
        (
            "builtins-eval",
            lambda t: pk(p_call(p_global("builtins", "eval"), p_str(write_code(t)))),
            ["builtins.eval"],
        ),
        (
            "builtins-exec",
            lambda t: pk(p_call(p_global("builtins", "exec"), p_str(write_code(t)))),
            ["builtins.exec"],
        ),
        (
            "builtins-compile-then-exec",
            lambda t: pk(
                p_call(
                    p_global("builtins", "exec"),
                    p_call(
                        p_global("builtins", "compile"),
                        p_str(write_code(t)),
                        p_str("<x>"),
                        p_str("exec"),
                    ),
                )
            ),
            ["builtins.compile", "builtins.exec"],
        ),
        (
            "builtins-open-for-writing",
            lambda t: pk(p_call(p_global("builtins", "open"), p_str(target(t)), p_str("w"))),
            ["builtins.open"],
        ),
        (
            "builtins-getattr-of-import",
            cmd(
                lambda c, t: pk(
                    p_call(p_call(p_global("builtins", "getattr"), imp, p_str("system")), p_str(c))
                )
            ),
            ["builtins.__import__", "builtins.getattr"],
        ),
        ("builtins-import", pk(imp), ["builtins.__import__"]),
        (
            "importlib-import-module",
            cmd(
                lambda c, t: pk(
                    p_call(
                        p_call(
                            p_global("builtins", "getattr"),
                            p_call(p_global("importlib", "import_module"), p_str("os")),
                            p_str("system"),
                        ),
                        p_str(c),
                    )
                )
            ),
            ["builtins.getattr", "importlib.import_module"],
        ),
        (
            "pickle-loads-of-a-nested-pickle",
            lambda t: pk(p_call(p_global("pickle", "loads"), p_bytes(inner(t)))),
            ["pickle.loads"],
        ),
        (
            "c-pickle-loads-of-a-nested-pickle",
            lambda t: pk(p_call(p_global("_pickle", "loads"), p_bytes(inner(t)))),
            ["_pickle.loads"],
        ),
        (
            "functools-partial",
            cmd(
                lambda c, t: pk(
                    p_call(
                        p_call(p_global("functools", "partial"), p_global("os", "system"), p_str(c))
                    )
                )
            ),
            ["functools.partial", "os.system"],
        ),
        (
            "operator-attrgetter",
            cmd(
                lambda c, t: pk(
                    p_call(
                        p_call(p_call(p_global("operator", "attrgetter"), p_str("system")), imp),
                        p_str(c),
                    )
                )
            ),
            ["builtins.__import__", "operator.attrgetter"],
        ),
        (
            "operator-methodcaller",
            cmd(
                lambda c, t: pk(
                    p_call(
                        p_call(p_global("operator", "methodcaller"), p_str("system"), p_str(c)), imp
                    )
                )
            ),
            ["builtins.__import__", "operator.methodcaller"],
        ),
        (
            "copyreg-reconstructor-with-a-disallowed-base",
            pk(
                p_call(
                    p_global("copyreg", "_reconstructor"),
                    p_global("os", "_wrap_close"),
                    p_global("builtins", "object"),
                    b"N",
                )
            ),
            ["builtins.object", "copyreg._reconstructor", "os._wrap_close"],
        ),
        (
            "stack-global-os-system",
            cmd(lambda c, t: pk(p_call(p_stack_global("os", "system"), p_str(c)))),
            ["os.system"],
        ),
        ("inst-opcode", lambda t: b"(V" + shell(t).encode() + b"\nios\nsystem\n.", ["os.system"]),
        (
            "obj-opcode",
            cmd(lambda c, t: pk(b"(" + p_global("os", "system") + p_str(c) + b"o")),
            ["os.system"],
        ),
        (
            "newobj-popen",
            lambda t: pk(
                p_global("subprocess", "Popen")
                + p_tuple(p_list(p_str("touch"), p_str(target(t))))
                + b"\x81"
            ),
            ["subprocess.Popen"],
        ),
        (
            "newobj-ex-popen",
            lambda t: pk(
                p_global("subprocess", "Popen")
                + p_tuple(p_list(p_str("touch"), p_str(target(t))))
                + b"}"
                + b"\x92"
            ),
            ["subprocess.Popen"],
        ),
        (
            "hidden-in-allowed-containers",
            cmd(
                lambda c, t: pk(
                    b"}"
                    + p_str("a")
                    + p_list(p_tuple(p_int(1), p_call(p_global("os", "system"), p_str(c))))
                    + b"s"
                )
            ),
            ["os.system"],
        ),
        (
            "dotted-name-to-object-subclasses",
            pk(p_call(p_stack_global("builtins", "object.__subclasses__"))),
            ["builtins.object.__subclasses__"],
        ),
        (
            "dotted-name-through-an-allowed-class",
            pk(p_call(p_stack_global("collections", "OrderedDict.fromkeys"), p_list())),
            ["collections.OrderedDict.fromkeys"],
        ),
        (
            "dotted-name-to-function-globals",
            pk(p_stack_global("codecs_ser._skeleton", "_make_dtype.__globals__")),
            ["codecs_ser._skeleton._make_dtype.__globals__"],
        ),
        (
            "dotted-name-to-a-method-of-an-allowed-type",
            pk(p_call(p_stack_global("builtins", "bytes.fromhex"), p_str("00"))),
            ["builtins.bytes.fromhex"],
        ),
        (
            "numpy-reconstruct-of-10**12-items",
            pk(
                p_call(
                    p_global("numpy._core.multiarray", "_reconstruct"),
                    p_global("numpy", "ndarray"),
                    p_tuple(p_int(10**12)),
                    p_bytes(b"b"),
                )
            ),
            ["numpy._core.multiarray._reconstruct", "numpy.ndarray"],
        ),
        (
            "numpy-core-reconstruct",
            pk(
                p_call(
                    p_global("numpy.core.multiarray", "_reconstruct"),
                    p_global("numpy", "ndarray"),
                    p_tuple(p_int(0)),
                    p_bytes(b"b"),
                )
            ),
            ["numpy.core.multiarray._reconstruct", "numpy.ndarray"],
        ),
        (
            "numpy-load",
            lambda t: pk(p_call(p_global("numpy", "load"), p_str(target(t)))),
            ["numpy.load"],
        ),
        (
            "sys-modules-setitem",
            pk(p_global("sys", "modules") + p_str("os") + b"N" + b"s"),
            ["sys.modules"],
        ),
        (
            "shutil-rmtree-of-the-case-folder",
            lambda t: pk(p_call(p_global("shutil", "rmtree"), p_str(os.fspath(t)))),
            ["shutil.rmtree"],
        ),
        (
            "builtins-setattr",
            pk(p_call(p_global("builtins", "setattr"), imp, p_str("sep"), p_str("!"))),
            ["builtins.__import__", "builtins.setattr"],
        ),
        ("builtins-globals", pk(p_call(p_global("builtins", "globals"))), ["builtins.globals"]),
        (
            "builtins-breakpoint",
            pk(p_call(p_global("builtins", "breakpoint"))),
            ["builtins.breakpoint"],
        ),
        (
            "ctypes-cdll",
            pk(p_call(p_global("ctypes", "CDLL"), p_str("libc.so.6"))),
            ["ctypes.CDLL"],
        ),
        (
            "codecs-ser-dump-writing-a-file",
            lambda t: pk(p_call(p_global("codecs_ser._api", "dump"), p_str("x"), p_str(target(t)))),
            ["codecs_ser._api.dump"],
        ),
        (
            "runpy-run-path",
            lambda t: pk(p_call(p_global("runpy", "run_path"), p_str(target(t)))),
            ["runpy.run_path"],
        ),
        (
            "a-module-that-opens-a-browser-on-import",
            pk(p_global("antigravity", "geohash")),
            ["antigravity.geohash"],
        ),
        ("a-module-that-prints-on-import", pk(p_global("this", "s")), ["this.s"]),
        (
            "many-globals-are-all-named",
            b"(czz_mod\na\ncaa_mod\nb\ncmm_mod.sub\nc\ncbuiltins\ndict\nt.",
            ["aa_mod.b", "builtins.dict", "mm_mod.sub.c", "zz_mod.a"],
        ),
    ]


def _pickles_through_allowed_globals() -> list[tuple[str, Payload, list[str] | None]]:
    """What an attacker can do with only the allowed globals; None: the audit refuses too."""
    mk = "codecs_ser._skeleton"
    leaf0 = p_int(0) + b"Q"
    big_a = pickle.encode_long(7 ** (8 * 400_000))  # type: ignore[attr-defined]
    big_b = pickle.encode_long(3 ** (8 * 500_000))  # type: ignore[attr-defined]

    def long4(raw: bytes) -> bytes:
        return b"\x8b" + struct.pack("<i", len(raw)) + raw

    prime = 2**61 - 1
    colliding = [p_int(5 + k * prime) for k in range(200)]
    return [
        (
            "object-built-with-a-class-attribute",
            pk(
                p_global("builtins", "object")
                + b")"
                + b"\x81"
                + b"}"
                + p_str("__class__")
                + p_global("builtins", "bytearray")
                + b"sb"
            ),
            ["builtins.bytearray", "builtins.object"],
        ),
        (
            "object-called-with-a-class",
            pk(p_call(p_global("builtins", "object"), p_global("builtins", "bytearray"))),
            ["builtins.bytearray", "builtins.object"],
        ),
        (
            "make-dtype-object",
            pk(p_call(p_global(mk, "_make_dtype"), p_str("|O"))),
            [f"{mk}._make_dtype"],
        ),
        (
            "make-dtype-object-field",
            pk(p_call(p_global(mk, "_make_dtype"), p_list(p_list(p_str("a"), p_str("|O"))))),
            [f"{mk}._make_dtype"],
        ),
        (
            "make-dtype-subarray-of-2**40",
            pk(
                p_call(
                    p_global(mk, "_make_dtype"),
                    p_list(p_list(p_str("a"), p_str("<f8"), p_list(p_int(2**20), p_int(2**20)))),
                )
            ),
            [f"{mk}._make_dtype"],
        ),
        (
            "make-dtype-of-2**30-shared-fields",
            pk(p_call(p_global(mk, "_make_dtype"), descr_dag(30))),
            [f"{mk}._make_dtype"],
        ),
        (
            "make-scalar-of-the-wrong-size",
            pk(p_call(p_global(mk, "_make_scalar"), p_str("<f8"), p_bytes(b"12"))),
            [f"{mk}._make_scalar"],
        ),
        (
            "make-scalar-of-objects",
            pk(p_call(p_global(mk, "_make_scalar"), p_str("|O"), p_bytes(bytes(8)))),
            [f"{mk}._make_scalar"],
        ),
        (
            "make-scalar-then-set-its-state",
            pk(
                p_call(p_global(mk, "_make_scalar"), p_str("<f8"), p_bytes(bytes(8)))
                + p_tuple()
                + b"b"
            ),
            [f"{mk}._make_scalar"],
        ),
        (
            "make-object-array-of-10**12-claimed",
            pk(
                p_call(p_global(mk, "_make_object_array"), p_list(p_int(10**12)), b"\x89", p_list())
            ),
            [f"{mk}._make_object_array"],
        ),
        (
            "make-object-array-of-2**80-claimed",
            pk(
                p_call(
                    p_global(mk, "_make_object_array"),
                    p_list(p_int(2**40), p_int(2**40)),
                    b"\x89",
                    p_list(),
                )
            ),
            [f"{mk}._make_object_array"],
        ),
        (
            "make-object-array-without-objects",
            pk(
                p_call(
                    p_global(mk, "_make_object_array"),
                    p_list(p_int(1)),
                    b"\x89",
                    p_list(p_int(1)),
                    p_str("<f8"),
                )
            ),
            [f"{mk}._make_object_array"],
        ),
        (
            "as-subclass-of-a-non-array-class",
            pk(p_call(p_global(mk, "_as_subclass"), leaf0, p_global("builtins", "bytearray"))),
            ["builtins.bytearray", f"{mk}._as_subclass"],
        ),
        ("persistent-id-a-string", pk(p_str("0") + b"Q"), []),
        ("persistent-id-out-of-range", pk(p_int(99) + b"Q"), []),
        ("persistent-id-negative", pk(p_int(-1) + b"Q"), []),
        ("persistent-id-2**64", pk(p_int(2**64) + b"Q"), []),
        ("persistent-id-text-opcode", b"P0\n.", []),
        ("persistent-id-a-tuple", pk(p_tuple(p_int(0)) + b"Q"), []),
        # Memory and time bombs.
        (
            "bytearray-of-10**12",
            pk(p_call(p_global("builtins", "bytearray"), p_int(10**12))),
            ["builtins.bytearray"],
        ),
        (
            "bytes-of-10**11",
            pk(p_call(p_global("builtins", "bytes"), p_int(10**11))),
            ["builtins.bytes"],
        ),
        (
            "bytes-of-1GiB",
            pk(p_call(p_global("builtins", "bytes"), p_int(1 << 30))),
            ["builtins.bytes"],
        ),
        (
            "bytearray-of-a-numpy-int-of-10**12",
            pk(
                p_call(
                    p_global("builtins", "bytearray"),
                    p_call(
                        p_global(mk, "_make_scalar"),
                        p_str("<i8"),
                        p_bytes(struct.pack("<q", 10**12)),
                    ),
                )
            ),
            ["builtins.bytearray", f"{mk}._make_scalar"],
        ),
        (
            "newobj-bytes-of-10**11",
            pk(p_global("builtins", "bytes") + p_tuple(p_int(10**11)) + b"\x81"),
            ["builtins.bytes"],
        ),
        (
            "newobj-ex-bytes-of-10**11",
            pk(p_global("builtins", "bytes") + p_tuple(p_int(10**11)) + b"}" + b"\x92"),
            ["builtins.bytes"],
        ),
        (
            "list-of-range-10**12",
            pk(
                p_call(
                    p_global("builtins", "list"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                )
            ),
            ["builtins.list", "builtins.range"],
        ),
        (
            "tuple-of-range-10**12",
            pk(
                p_call(
                    p_global("builtins", "tuple"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                )
            ),
            ["builtins.range", "builtins.tuple"],
        ),
        (
            "set-of-range-10**12",
            pk(
                p_call(
                    p_global("builtins", "set"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                )
            ),
            ["builtins.range", "builtins.set"],
        ),
        (
            "frozenset-of-range-10**12",
            pk(
                p_call(
                    p_global("builtins", "frozenset"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                )
            ),
            ["builtins.frozenset", "builtins.range"],
        ),
        (
            "bytes-of-range-10**12",
            pk(
                p_call(
                    p_global("builtins", "bytes"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                )
            ),
            ["builtins.bytes", "builtins.range"],
        ),
        (
            "deque-of-range-10**12-keeping-1",
            pk(
                p_call(
                    p_global("collections", "deque"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                    p_int(1),
                )
            ),
            ["builtins.range", "collections.deque"],
        ),
        (
            "counter-of-range-10**12",
            pk(
                p_call(
                    p_global("collections", "Counter"),
                    p_call(p_global("builtins", "range"), p_int(10**12)),
                )
            ),
            ["builtins.range", "collections.Counter"],
        ),
        (
            "int-of-decimal-1e999999999",
            pk(
                p_call(
                    p_global("builtins", "int"),
                    p_call(p_global("decimal", "Decimal"), p_str("1e999999999")),
                )
            ),
            ["builtins.int", "decimal.Decimal"],
        ),
        (
            "fraction-of-1e999999999",
            pk(p_call(p_global("fractions", "Fraction"), p_str("1e999999999"))),
            ["fractions.Fraction"],
        ),
        (
            "fraction-of-decimal-1e999999999",
            pk(
                p_call(
                    p_global("fractions", "Fraction"),
                    p_call(p_global("decimal", "Decimal"), p_str("1e999999999")),
                )
            ),
            ["decimal.Decimal", "fractions.Fraction"],
        ),
        (
            "fraction-of-two-megabyte-ints",
            pk(p_call(p_global("fractions", "Fraction"), long4(big_a), long4(big_b))),
            ["fractions.Fraction"],
        ),
        (
            "int-of-100000-digits",
            pk(p_call(p_global("builtins", "int"), p_str("9" * 100_000))),
            ["builtins.int"],
        ),
        (
            "str-of-a-list-shared-2**40-times",
            pk(p_call(p_global("builtins", "str"), list_dag(40))),
            ["builtins.str"],
        ),
        ("set-of-a-tuple-shared-2**60-times", pk(b"\x8f(" + tuple_dag(60) + b"\x90"), None),
        ("frozenset-of-a-tuple-shared-2**60-times", pk(b"(" + tuple_dag(60) + b"\x91"), None),
        ("dict-key-a-tuple-shared-2**60-times", pk(b"}" + tuple_dag(60) + b"Ns"), None),
        (
            "timedelta-of-10**12-days",
            pk(p_call(p_global("datetime", "timedelta"), p_int(10**12))),
            ["datetime.timedelta"],
        ),
        (
            "uuid-of-a-200-bit-int",
            pk(p_call(p_global("uuid", "UUID"), b"N", b"N", b"N", b"N", p_int(2**200))),
            ["uuid.UUID"],
        ),
        (
            "dict-of-200-keys-with-one-hash",
            pk(b"}(" + b"".join(k + b"N" for k in colliding) + b"u"),
            None,
        ),
        ("set-of-200-items-with-one-hash", pk(b"\x8f(" + b"".join(colliding) + b"\x90"), None),
        (
            "builtins-set-of-200-items-with-one-hash",
            pk(p_call(p_global("builtins", "set"), p_list(*colliding))),
            ["builtins.set"],
        ),
    ]


def _pickles_that_break_invariants() -> list[tuple[str, Payload, list[str] | None]]:
    """Valid pickles of allowed globals that patch classes for the whole process, build
    objects their constructors refuse, crash the interpreter or take minutes."""
    mk = "codecs_ser._skeleton"
    leaf0 = p_int(0) + b"Q"
    counter, path = p_global("collections", "Counter"), p_global("pathlib", "PurePosixPath")
    fraction, uuid_ = p_global("fractions", "Fraction"), p_global("uuid", "UUID")

    def build(target: bytes, state: bytes) -> bytes:
        return target + state + b"b"

    def slots(**attrs: bytes) -> bytes:
        """A BUILD state of (None, {name: value}): set with setattr, one by one."""
        items = b"".join(p_str(k) + v for k, v in attrs.items())
        return b"N}(" + items + b"u\x86"

    def packed(cls: str, raw: bytes) -> bytes:
        return p_call(p_global("datetime", cls), p_bytes(raw))

    big = pickle.encode_long(3**10_700 + 1)  # type: ignore[attr-defined]
    repeated = 30_000  # Fraction of two 17,000-bit ints, 9 bytes of pickle each time
    long4 = b"".join(
        b"\x8b" + struct.pack("<i", len(raw)) + raw + p_put(i) + b"0"
        for i, raw in ((1, big), (2, pickle.encode_long(5**7300 + 2)))  # type: ignore[attr-defined]
    )
    fraction_bomb = (
        fraction + p_put(0) + b"0" + long4 + b"(" + b"h\x00h\x01h\x02\x86R" * repeated + b"l"
    )
    deep = b"N" + b"\x85" * 1_000_000
    return [
        # Process-wide patches through BUILD.
        (
            "build-sets-counter-missing-on-the-class",
            pk(build(counter, slots(__missing__=p_global("builtins", "bool")))),
            ["builtins.bool", "collections.Counter"],
        ),
        (
            "build-sets-a-path-class-str-slot",
            pk(build(path, slots(_str=p_str("/tmp/elsewhere")))),
            ["pathlib.PurePosixPath"],
        ),
        (
            "build-sets-a-class-dict-state",
            pk(build(counter, b"}" + p_str("__missing__") + p_global("builtins", "bool") + b"s")),
            ["builtins.bool", "collections.Counter"],
        ),
        (
            "build-on-a-core-constructor",
            pk(build(p_global(mk, "_make_dtype"), slots(__defaults__=p_tuple()))),
            [f"{mk}._make_dtype"],
        ),
        # Objects their public constructors refuse.
        (
            "path-whose-str-is-not-its-parts",
            pk(build(p_call(path, p_str("runs"), p_str("exp1.txt")), slots(_str=p_str("/x")))),
            ["pathlib.PurePosixPath"],
        ),
        (
            "fraction-one-over-zero-by-slots",
            pk(
                build(
                    fraction + p_tuple() + b"\x81",
                    slots(_numerator=p_int(1), _denominator=p_int(0)),
                )
            ),
            ["fractions.Fraction"],
        ),
        (
            "fraction-one-over-zero",
            pk(p_call(fraction, p_int(1), p_int(0))),
            ["fractions.Fraction"],
        ),
        (
            "datetime-2020-01-99-200-99-99",
            pk(packed("datetime", bytes([7, 228, 1, 99, 200, 99, 99, 0, 0, 0]))),
            ["datetime.datetime"],
        ),
        ("date-2020-02-31", pk(packed("date", bytes([7, 228, 2, 31]))), ["datetime.date"]),
        ("time-25-00", pk(packed("time", bytes([25, 0, 0, 0, 0, 0]))), ["datetime.time"]),
        (
            "uuid-of-2**200",
            pk(build(uuid_ + p_tuple() + b"\x81", b"}" + p_str("int") + p_int(2**200) + b"s")),
            ["uuid.UUID"],
        ),
        (
            "uuid-of-minus-one",
            pk(build(uuid_ + p_tuple() + b"\x81", b"}" + p_str("int") + p_int(-1) + b"s")),
            ["uuid.UUID"],
        ),
        ("uuid-left-without-state", pk(uuid_ + p_tuple() + b"\x81"), ["uuid.UUID"]),
        (
            "uuid-state-set-twice",
            pk(
                build(
                    build(uuid_ + p_tuple() + b"\x81", b"}" + p_str("int") + p_int(5) + b"s"),
                    b"}" + p_str("int") + p_int(6) + b"s",
                )
            ),
            ["uuid.UUID"],
        ),
        (
            "object-given-attributes",
            pk(build(p_global("builtins", "object") + p_tuple() + b"\x81", slots(x=p_int(1)))),
            ["builtins.object"],
        ),
        (
            "timezone-of-a-day",
            pk(
                p_call(
                    p_global("datetime", "timezone"),
                    p_call(p_global("datetime", "timedelta"), p_int(1)),
                )
            ),
            ["datetime.timedelta", "datetime.timezone"],
        ),
        # Interpreter crashes: hash() recursing in C.
        ("dict-key-a-million-tuples-deep", pk(b"}" + deep + b"Ns"), None),
        ("frozenset-item-a-million-tuples-deep", pk(b"(" + deep + b"\x91"), None),
        ("set-item-a-million-tuples-deep", pk(b"\x8f(" + deep + b"\x90"), None),
        # Hashing that skips the collision check, and calls charged below their cost.
        (
            "defaultdict-given-pairs",
            pk(
                p_call(
                    p_global("collections", "defaultdict"),
                    b"N",
                    p_list(*(p_tuple(p_int(5 + k * (2**61 - 1)), b"N") for k in range(200))),
                )
            ),
            ["collections.defaultdict"],
        ),
        (
            "defaultdict-of-a-core-constructor",
            pk(p_call(p_global("collections", "defaultdict"), p_global(mk, "_make_dtype"))),
            [f"{mk}._make_dtype", "collections.defaultdict"],
        ),
        ("set-of-an-array-leaf", pk(p_call(p_global("builtins", "set"), leaf0)), ["builtins.set"]),
        (
            "frozenset-of-an-array-leaf",
            pk(p_call(p_global("builtins", "frozenset"), leaf0)),
            ["builtins.frozenset"],
        ),
        ("counter-of-an-array-leaf", pk(p_call(counter, leaf0)), ["collections.Counter"]),
        (
            "dict-of-an-array-leaf",
            pk(p_call(p_global("builtins", "dict"), leaf0)),
            ["builtins.dict"],
        ),
        (
            "bytes-of-an-array-leaf",
            pk(p_call(p_global("builtins", "bytes"), leaf0)),
            ["builtins.bytes"],
        ),
        (
            "str-of-bytes-as-punycode",
            pk(p_call(p_global("builtins", "str"), p_bytes(b"abc-"), p_str("punycode"))),
            ["builtins.str"],
        ),
        ("fraction-of-17000-bit-ints-30000-times", pk(fraction_bomb), ["fractions.Fraction"]),
        (
            "decimal-of-a-17000-bit-int",
            pk(p_call(p_global("decimal", "Decimal"), b"\x8b" + struct.pack("<i", len(big)) + big)),
            ["decimal.Decimal"],
        ),
        (
            "setitems-on-an-array-leaf",
            pk(leaf0 + b"(" + p_int(0) + p_int(1) + b"u"),
            [],
        ),
        (
            "append-to-a-class",
            pk(p_global("builtins", "list") + p_int(1) + b"a"),
            ["builtins.list"],
        ),
    ]


def _malformed_pickles() -> list[tuple[str, bytes]]:
    body = b"}" + p_str("a") + p_int(0) + b"Q" + b"s"
    return [
        (
            "memo-put-at-2**31-then-get-a-missing-one",
            pk(b"]" + b"r" + struct.pack("<I", 2**31) + b"j" + struct.pack("<I", 2**31 - 1)),
        ),
        ("memo-put-at-a-20-digit-index-then-get-a-missing-one", b"(lp99999999999999999999\ng1\n."),
        ("binbytes8-claims-2**62", b"\x80\x05\x8e" + struct.pack("<Q", 2**62) + b"abc."),
        ("binunicode8-claims-2**62", b"\x80\x05\x8d" + struct.pack("<Q", 2**62) + b"abc."),
        ("bytearray8-claims-2**62", b"\x80\x05\x96" + struct.pack("<Q", 2**62) + b"abc."),
        ("binbytes8-claims-2**64-1", b"\x80\x05\x8e" + b"\xff" * 8 + b"abc."),
        ("frame-claims-2**62", b"\x80\x05\x95" + struct.pack("<Q", 2**62) + body + b"."),
        (
            "frame-claims-one-byte-more",
            b"\x80\x05\x95" + struct.pack("<Q", len(body) + 2) + body + b".",
        ),
        ("long4-claims-2**31-1-bytes", b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b"\x01."),
        ("binunicode-claims-2**32-1", b"\x80\x02X\xff\xff\xff\xffabc."),
        ("100000-marks", b"(" * 100_000 + b"."),
        ("empty", b""),
        ("no-stop", pk(body)[:-1]),
        ("unknown-opcode", b"\x80\x04\xff."),
        ("protocol-6", b"\x80\x06N."),
        ("reduce-on-an-empty-stack", b"\x80\x02R."),
        ("stop-on-an-empty-stack", b"\x80\x02."),
        ("memo-get-missing", b"\x80\x02h\x05."),
        ("append-to-an-int", pk(p_int(1) + p_int(2) + b"a")),
        ("setitem-on-a-string", pk(p_str("x") + p_str("k") + b"N" + b"s")),
        ("extension-code-1", b"\x80\x02\x82\x01."),
        ("extension-code-2**31-1", b"\x80\x02\x84\xff\xff\xff\x7f."),
        (
            "global-names-computed-at-load-time",
            b"\x80\x04cbuiltins\nstr\n(C\x02os\x8c\x05asciitR\x8c\x06system\x93(\x8c\x05touchtR.",
        ),
        ("stack-global-of-non-strings", pk(p_int(1) + p_int(2) + b"\x93")),
        ("a-global-hidden-after-stop", pk(b"N") + p_global("os", "system") + b"."),
        (
            "a-global-hidden-after-stop-in-its-frame",
            b"\x80\x04\x95" + struct.pack("<Q", 15) + b"N." + p_global("os", "system") + b"..",
        ),
    ]


def _pickles() -> None:
    for i, (label, payload, names) in enumerate(_pickles_that_run_code()):
        add(
            label,
            rotate(i),
            "pickle-code",
            None,
            UntrustedError,
            PICKLED,
            base="pickled",
            per_tmp=with_pickle(payload),
            audit_globals=names,
        )
    for i, (label, payload, found) in enumerate(_pickles_through_allowed_globals()):
        add(
            label,
            rotate(i),
            "pickle-allowed",
            None,
            FormatError,
            PICKLED if found is not None else MALFORMED,
            base="pickled",
            per_tmp=with_pickle(payload),
            audit_globals=found,
        )
    for label, payload, found in _pickles_that_break_invariants():
        for backend in BACKENDS:
            add(
                label,
                backend,
                "pickle-invariant",
                None,
                FormatError,
                PICKLED if found is not None else MALFORMED,
                base="pickled",
                per_tmp=with_pickle(payload),
                audit_globals=found,
            )
    for i, (label, payload) in enumerate(_malformed_pickles()):
        add(
            label,
            rotate(i),
            "pickle-malformed",
            None,
            FormatError,
            MALFORMED,
            base="pickled",
            per_tmp=with_pickle(payload),
        )


_pickles()


# -- the cases: what tar -x and unzip extract over a member ------------------------------

#: Names GNU tar extracts to a member's path (checked with tar 1.34): leading "/" and "./"
#: removed, "//" and "/./" collapsed; a trailing "/" makes a folder of it; a ".." name
#: it refuses, but other tools (Python's tarfile) resolve it.
TAR_SHADOWS = {
    "leading-slash": "/a.npy",
    "leading-slashes": "//a.npy",
    "dot-slash-twice": "././a.npy",
    "dot-slash-slash": ".//a.npy",
    "slash-dot-slash-inside": "n/./b.npy",
    "double-slash-inside": "n//b.npy",
    "trailing-slash": "a.npy/",
}
#: Names unzip (or Python's zipfile) extracts to a member's path: backslashes are
#: separators for archives made on Windows, "/", "./" and drives are removed, ".." dropped.
ZIP_SHADOWS = {
    "leading-slash": "/a.npy",
    "dot-slash": "./a.npy",
    "dot-dot-first": "../a.npy",
    "dot-dot-inside": "n/../b.npy",
    "backslash-first": "\\a.npy",
    "dot-backslash": ".\\a.npy",
    "backslash-inside": "n\\b.npy",
    "drive-letter": "C:\\a.npy",
}


def shadow(stored: str, **opts: Any) -> Change:
    """Add, after the real member, an entry that extracts over it: the same .npy header
    over other data, under a name (and header fields) that only normalisation relates."""

    def change(d: Draft) -> None:
        target = "n/b.npy" if stored.replace("\\", "/").lstrip("./").startswith("n/") else "a.npy"
        real = d.member(target)
        fake = Member(
            target, real.data[:128] + bytes(len(real.data) - 128), stored_as=stored, indexed=False
        )
        fake.opts.update(opts)
        d.members.insert(d.members.index(real) + 1, fake)

    return change


def _extracted_names() -> None:
    cat = "extracted-names"
    for label, name in TAR_SHADOWS.items():
        add(f"{label}-read-by-offset", "tar", cat, shadow(name), FormatError, strict("verify"))
        add(
            f"{label}-found-by-a-scan",
            "tar",
            cat,
            shadow(name),
            FormatError,
            BLOBS,
            render={"trailer": False},
        )
    for mode, render in (("read-by-offset", {}), ("found-by-a-scan", {"trailer": False})):
        # GNU tar refuses to extract it; Python's tarfile puts it over a.npy.
        add(
            f"dot-dot-back-to-it-{mode}",
            "tar",
            cat,
            shadow("x/../a.npy"),
            FormatError,
            strict("verify"),
            render=render,
        )
        # Old GNU and v7 headers have no prefix field: tar -x ignores what lies there.
        for label, magic in (("old-gnu", b"ustar  \x00"), ("v7", bytes(8))):
            add(
                f"{label}-header-with-bytes-in-the-prefix-field-{mode}",
                "tar",
                cat,
                shadow("a.npy", prefix=b"zzz", magic=magic),
                FormatError,
                strict("verify") if mode == "read-by-offset" else BLOBS,
                render=render,
            )
    for label, name in ZIP_SHADOWS.items():
        add(f"{label}-read-by-offset", "zip", cat, shadow(name), FormatError, strict("verify"))
        add(
            f"{label}-found-in-the-directory",
            "zip",
            cat,
            shadow(name),
            FormatError,
            EVERYTHING,
            render={"comment": False},
        )


_extracted_names()

# -- the cases: numbers in tar headers --------------------------------------------------


def _tar_numbers() -> None:
    cat = "numbers"
    no_trailer = {"trailer": False}
    pax_sizes = {
        "superscript-two": "\u00b2",
        "arabic-indic": "\u0661\u0667\u0666",
        "5000-digits": "0" * 4997 + "176",
        "plus-sign": "+176",
        "underscore": "1_76",
    }
    for label, size in pax_sizes.items():
        add(
            f"scan-pax-size-{label}",
            "tar",
            cat,
            lambda d, size=size: d.member("a.npy").opts.update(pax={"size": size}),
            FormatError,
            EVERYTHING,
            render=no_trailer,
        )
    # int(text, 8) takes what tar does not: tar -x would read another size.
    fields = {
        "underscore": b"0000_000260\x00",
        "0o-prefix": b"0o000000260\x00",
        "plus-sign": b"+0000000260\x00",
    }
    for label, raw in fields.items():

        def change(d: Draft, raw: bytes = raw) -> None:
            d.member("a.npy").opts.update(size_field=raw)

        add(
            f"scan-size-field-{label}",
            "tar",
            cat,
            change,
            FormatError,
            EVERYTHING,
            render=no_trailer,
        )
        add(f"header-size-field-{label}", "tar", cat, change, FormatError, BLOBS)


_tar_numbers()

# -- the cases: shapes and dtypes that numpy refuses or spends seconds on --------------------


def huge_shape(shape: list[int], descr: str = "<f8") -> Change:
    """A blob whose manifest record and .npy header agree on a shape numpy cannot make."""
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    return chain(
        set_member("a.npy", npy(text, b"")),
        lie(set_blob("a", "shape", shape), set_blob("a", "dtype", descr)),
    )


def _shapes_and_dtypes() -> None:
    cat = "numbers"
    shapes = {
        "0-and-2**63": ([0, 2**63], "<f8"),
        "2**63-and-0": ([2**63, 0], "|u1"),
        "0-and-2**64-1": ([0, 2**64 - 1], "|u1"),
        "0-and-2**60-of-8-bytes": ([0, 2**60], "<f8"),
        "0-and-2**62-and-4": ([0, 2**62, 4], "|u1"),
    }
    for i, (label, (shape, descr)) in enumerate(shapes.items()):
        add(f"blob-shape-{label}", rotate(i), cat, huge_shape(shape, descr), FormatError, ENTRIES)

    # numpy's comma strings make a record of every part: a million fields cost seconds.
    comma = ",".join(["u1"] * 1_000_000)
    for backend in BACKENDS:
        add(
            "blob-dtype-comma-string-of-10**6-fields",
            backend,
            cat,
            lie(set_blob("a", "dtype", comma)),
            FormatError,
            ENTRIES,
        )
    fields_340000 = ",".join(["u1"] * 340_000)
    header = f"{{'descr': '{fields_340000}', 'fortran_order': False, 'shape': (6,), }}"
    add(
        "npy-header-descr-comma-string-of-340000-fields",
        rotate(1),
        cat,
        set_member("a.npy", lambda b: npy(header, npy_data(b))),
        FormatError,
        BLOBS,
    )


_shapes_and_dtypes()

# -- the cases: what inspect prints ----------------------------------------------------


def _rendering() -> None:
    cat = "rendering"
    writer = b"\x81\xaacodecs_ser" + deep_maps(1000)
    changes = {
        "metadata-nested-1000-maps": splice_metadata(deep_maps(1000)),
        "metadata-nested-1000-arrays": splice_metadata(deep(1000)),
        "writer-version-nested-1000-maps": splice_top("writer", writer),
        "metadata-of-one-10MiB-bytes": lie(set_top("metadata", {"b": bytes(10 << 20)})),
    }
    for i, (label, change) in enumerate(changes.items()):
        add(label, rotate(i), cat, change, FormatError, HARMLESS)


_rendering()

# -- the cases: sparse files -------------------------------------------------------------

#: A sparse member: a .npy header, then a hole the file system reads as zeros.
SPARSE_ITEMS = (5 << 30) // 8


@cache
def _sparse_npy() -> tuple[bytes, int, str]:
    """(header, whole size, checksum) of a .npy of SPARSE_ITEMS zeros (float64)."""
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({SPARSE_ITEMS},), }}"
    header = npy(text, b"")
    hasher = xxhash.xxh3_64(header)
    zeros = bytes(64 << 20)
    left = SPARSE_ITEMS * 8
    while left:
        n = min(left, len(zeros))
        hasher.update(zeros[:n])
        left -= n
    return header, len(header) + SPARSE_ITEMS * 8, f"xxh3_64:{hasher.hexdigest()}"


def _sparse() -> None:
    cat = "sparse"

    def change(d: Draft) -> None:
        header, size, checksum = _sparse_npy()
        d.member("a.npy").data = header
        d.lies.extend(
            [
                set_blob("a", "shape", [SPARSE_ITEMS]),
                set_blob("a", "size", size),
                set_blob("a", "checksum", checksum),
            ]
        )

    def grow(path: Path, tmp: Path) -> None:
        os.truncate(path / "a.npy", _sparse_npy()[1])

    # 5 GiB of zeros in a few KiB of disk: what it holds is what it says, and loading it
    # needs 5 GiB; where that is more than the process may have, a clear error.
    add(
        "blob-of-5GiB-in-a-sparse-file",
        "dir",
        cat,
        change,
        FormatError,
        outcomes(("load", "load_arrays"), verify="either", inspect="runs"),
        after=grow,
    )


_sparse()


# -- the cases: compression --------------------------------------------------------------

#: What a bomb expands to: beyond the floor of max_decompressed_bytes (64 MiB).
BOMB = 70 << 20


@cache
def _bomb(algorithm: str) -> bytes:
    """A valid tar header of a member of BOMB bytes, then its zeros, compressed: it stays
    a container as far as it is read, so only the limit stops it."""
    info = tarfile.TarInfo("a.npy")
    info.size = BOMB
    data = info.tobuf(format=tarfile.USTAR_FORMAT) + bytes(BOMB)
    if algorithm == "gzip":
        return gzip.compress(data, 9, mtime=0)
    return bz2.compress(data, 9) if algorithm == "bz2" else lzma.compress(data)


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _compression() -> None:
    cat = "compression"

    def compressed(fn: Callable[[bytes], bytes], suffix: str = ".tar.gz") -> After:
        """Compress the rendered tar (then damage it with ``fn``) as the container."""

        def after(path: Path, tmp: Path) -> Path:
            target = tmp / f"c{suffix}"
            target.write_bytes(fn(path.read_bytes()))
            path.unlink()
            return target

        return after

    def gz(data: bytes) -> bytes:
        return gzip.compress(data, 6, mtime=0)

    streams: dict[str, Callable[[bytes], bytes]] = {
        "gzip-truncated": lambda b: gz(b)[: len(gz(b)) // 2],
        "gzip-trailing-garbage": lambda b: gz(b) + b"garbage",
        "gzip-two-members": lambda b: gz(b) + gz(b),
        "gzip-of-gzip": lambda b: gz(gz(b)),
        "gzip-bad-crc": lambda b: gz(b)[:-8] + bytes(4) + gz(b)[-4:],
        "gzip-of-zeros-not-a-tar": lambda b: gz(bytes(BOMB)),
        "gzip-bomb-of-one-member": lambda b: _bomb("gzip"),
        "bz2-bomb-of-one-member": lambda b: _bomb("bz2"),
        "xz-bomb-of-one-member": lambda b: _bomb("xz"),
        "xz-truncated": lambda b: lzma.compress(b)[:-30],
        "xz-trailing-garbage": lambda b: lzma.compress(b) + b"\0" * 3 + b"x",
        "bz2-two-streams": lambda b: bz2.compress(b) + bz2.compress(b),
    }
    for label, fn in streams.items():
        add(label, "tar", cat, None, FormatError, EVERYTHING, after=compressed(fn))

    def deflated(member: str, packed: Callable[[bytes], bytes], **opts: Any) -> Change:
        """Store ``member`` deflated (method 8, sizes in its descriptor): ``packed`` makes
        the stored bytes of the member's data."""

        def change(d: Draft) -> None:
            m = d.member(member)
            m.opts.update(method=8, local_size=0, packed=packed(m.data), **opts)

        return change

    # Each one is refused when the member is read, never before anything else is.
    add(
        "deflate-expands-beyond-its-size",
        "zip",
        cat,
        deflated("a.npy", lambda data: _raw_deflate(data + bytes(1 << 20))),
        FormatError,
        BLOBS,
    )
    add(
        "deflate-shorter-than-its-size",
        "zip",
        cat,
        deflated("a.npy", lambda data: _raw_deflate(data[:-8])),
        FormatError,
        BLOBS,
    )
    add(
        "deflate-truncated",
        "zip",
        cat,
        deflated("a.npy", lambda data: _raw_deflate(data)[:-3]),
        FormatError,
        BLOBS,
    )
    add(
        "deflate-directory-size-disagrees",
        "zip",
        cat,
        deflated("a.npy", _raw_deflate, cd_size=len(_dumped_npy("a")) + 64),
        FormatError,
        BLOBS,
    )
    add(
        "deflate-damaged-stream",
        "zip",
        cat,
        deflated("a.npy", lambda data: b"\xff" * 40),
        FormatError,
        BLOBS,
    )

    # A member that claims 1 GiB from a few deflated bytes: refused before allocating.
    items = (1 << 30) // 8
    header = npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({items},), }}", b"")
    claimed = len(header) + items * 8

    def bomb(d: Draft) -> None:
        d.member("a.npy").data = header
        d.member("a.npy").opts.update(
            method=8, local_size=0, packed=_raw_deflate(header + bytes(1 << 16)), cd_size=claimed
        )
        d.lies.extend([set_blob("a", "shape", [items]), set_blob("a", "size", claimed)])

    add("deflate-bomb-claims-1GiB", "zip", cat, bomb, FormatError, BLOB_LIES)


@cache
def _dumped_npy(entry: str) -> bytes:
    d = draft("plain")
    return d.member(f"{entry}.npy").data


_compression()
