"""Loading is safe by default: a pickled skeleton may import only allowed globals, the
audit that decides runs nothing, and hand-made malicious pickles never execute."""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import xxhash

import codecs_ser
from codecs_ser._manifest import pack_manifest
from codecs_ser._safe_pickle import DEFAULT_ALLOWED
from codecs_ser.errors import CodecsSerError, FormatError, UntrustedError

# -- crafting containers ------------------------------------------------------------------


def craft(target: Any, skeleton: bytes, *, backend: str = "tar", fmt: str = "pickle") -> None:
    """A container whose only object has the given skeleton bytes and a manifest that
    claims it imports nothing."""
    writer = codecs_ser.default_registry.get_backend(backend).create(target, durable=False)
    member = f".codecs_ser/objects/0.{fmt}"
    offset = writer.write_member(member, len(skeleton), [memoryview(skeleton)])
    manifest = pack_manifest(
        writer={},
        metadata={},
        checksum="xxh3_64",
        objects=[
            {
                "name": "main",
                "prefix": "",
                "skeleton": {
                    "format": fmt,
                    "member": member,
                    "offset": offset,
                    "size": len(skeleton),
                    "checksum": "xxh3_64:" + xxhash.xxh3_64_hexdigest(skeleton),
                },
                "globals": [],
                "metadata": {},
            }
        ],
        names=[],
        entries=[],
        dists={},
        created=0.0,
    )
    writer.commit(manifest)


class Call:
    """Pickles as a call of ``func(*args)``: what a malicious pickle does."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> Any:
        return (self.func, self.args)


def _q(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__name__}"


def payloads(sentinel: Path) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (pickle bytes, globals the audit must report); each would create sentinel."""
    s = os.fspath(sentinel)
    cmd = f"touch {s}"
    text_cmd = cmd.encode()
    inner = pickle.dumps(Call(os.system, cmd))
    out: dict[str, tuple[bytes, list[str]]] = {}
    for proto in (0, 2, 4, 5):
        out[f"os.system/p{proto}"] = (
            pickle.dumps(Call(os.system, cmd), protocol=proto),
            [_q(os.system)],
        )
    out["os.system/by hand"] = (b"cos\nsystem\n(V" + text_cmd + b"\ntR.", ["os.system"])
    out["subprocess.Popen"] = (
        pickle.dumps(Call(subprocess.Popen, ["touch", s])),
        ["subprocess.Popen"],
    )
    out["builtins.eval"] = (
        pickle.dumps(Call(eval, f"open({s!r}, 'w').close()")),
        ["builtins.eval"],
    )
    out["builtins.exec"] = (
        pickle.dumps(Call(exec, f"open({s!r}, 'w').close()")),
        ["builtins.exec"],
    )
    out["getattr(__import__)"] = (
        b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V" + text_cmd + b"\ntR.",
        ["builtins.__import__", "builtins.getattr"],
    )
    out["importlib.import_module"] = (
        b"cbuiltins\ngetattr\n(cimportlib\nimport_module\n(Vos\ntRVsystem\ntR(V"
        + text_cmd
        + b"\ntR.",
        ["builtins.getattr", "importlib.import_module"],
    )
    out["nested pickle.loads"] = (pickle.dumps(Call(pickle.loads, inner)), [_q(pickle.loads)])
    out["pickle.loads by hand"] = (
        b"\x80\x03cpickle\nloads\nB" + struct.pack("<I", len(inner)) + inner + b"\x85R.",
        ["pickle.loads"],
    )
    out["functools.partial"] = (
        pickle.dumps(Call(functools.partial(os.system, cmd))),
        sorted(["functools.partial", _q(os.system)]),
    )
    out["hidden in allowed containers"] = (
        pickle.dumps({"a": [1, (2, {"b": Call(os.system, cmd)})], "n": np.dtype("f4")}),
        sorted([_q(os.system), "numpy.dtype"]),
    )
    return out


SENTINEL_NAMES = list(payloads(Path("x")))


@pytest.mark.parametrize("name", SENTINEL_NAMES)
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, name: str) -> None:
    sentinel = tmp_path / "pwned"
    data, wanted = payloads(sentinel)[name]
    target = tmp_path / "evil.tar"
    craft(target, data)

    found = codecs_ser.audit(target)
    assert not sentinel.exists()
    assert set(wanted) <= set(found)
    assert found == sorted(found)

    refused = [g for g in found if g not in DEFAULT_ALLOWED]
    with pytest.raises(UntrustedError) as info:
        codecs_ser.load(target)
    assert info.value.globals == sorted(refused)
    assert not sentinel.exists()

    with codecs_ser.open(target) as c:
        assert c.audit() == found
        with pytest.raises(UntrustedError):
            c.load()
        with pytest.raises(UntrustedError):
            c.load(trusted=["numpy.*", "collections.OrderedDict"])
    with pytest.raises(UntrustedError):
        codecs_ser.loads(target.read_bytes())
    assert not sentinel.exists()


@pytest.mark.parametrize("backend", ["zip", "dir"])
def test_malicious_pickle_in_other_backends(tmp_path: Path, backend: str) -> None:
    sentinel = tmp_path / "pwned"
    for name in ("os.system/p5", "getattr(__import__)", "functools.partial"):
        data, wanted = payloads(sentinel)[name]
        target = tmp_path / f"evil-{len(wanted)}-{backend}"
        craft(target, data, backend=backend)
        assert set(wanted) <= set(codecs_ser.audit(target))
        with pytest.raises(UntrustedError) as info:
            codecs_ser.load(target)
        assert set(wanted) <= set(info.value.globals)
    assert not sentinel.exists()


def test_crafted_container_in_memory(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    data, wanted = payloads(sentinel)["subprocess.Popen"]
    buf = io.BytesIO()
    craft(buf, data, backend="zip")
    with pytest.raises(UntrustedError) as info:
        codecs_ser.loads(buf.getvalue())
    assert info.value.globals == wanted
    assert not sentinel.exists()


def test_computed_global_names_are_refused(tmp_path: Path) -> None:
    # protocol 4 names a global by two strings from the stack; here they are computed
    # at load time by an allowed callable, so no audit can know them in advance
    sentinel = tmp_path / "pwned"
    data = (
        b"\x80\x04cbuiltins\nstr\n(C\x02os\x8c\x05asciitR\x8c\x06system\x93(\x8c"
        + bytes([len(f"touch {sentinel}")])
        + f"touch {sentinel}".encode()
        + b"tR."
    )
    target = tmp_path / "computed.tar"
    craft(target, data)
    with pytest.raises(CodecsSerError):
        codecs_ser.load(target)
    with pytest.raises(CodecsSerError):
        codecs_ser.load(target, trusted=["builtins.str"])
    with pytest.raises(FormatError):
        codecs_ser.audit(target)
    assert not sentinel.exists()


def test_every_refused_global_is_listed_sorted_with_advice(tmp_path: Path) -> None:
    data = b"(czz_mod\na\ncaa_mod\nb\ncmm_mod.sub\nc\ncbuiltins\ndict\nt."
    target = tmp_path / "many.tar"
    craft(target, data)
    with pytest.raises(UntrustedError) as info:
        codecs_ser.load(target)
    err = info.value
    assert err.globals == ["aa_mod.b", "mm_mod.sub.c", "zz_mod.a"]
    message = str(err)
    for g in err.globals:
        assert g in message
    assert "trusted=" in message
    assert "trusted=True" in message
    assert "load_arrays" in message
    # allowing some leaves the others listed
    with pytest.raises(UntrustedError) as info:
        codecs_ser.load(target, trusted=["aa_mod.b", "mm_mod.sub:c"])
    assert info.value.globals == ["zz_mod.a"]


def test_patterns_match_whole_module_names(tmp_path: Path) -> None:
    data = b"(cossy\nthing\ncos_extra.mod\nother\nt."
    target = tmp_path / "near.tar"
    craft(target, data)
    with pytest.raises(UntrustedError) as info:
        codecs_ser.load(target, trusted=["os.*", "oss.*", "os_extra.mo.*", "ossy"])
    assert info.value.globals == ["os_extra.mod.other", "ossy.thing"]
    with pytest.raises(UntrustedError) as info:
        codecs_ser.load(target, trusted=["os_extra.*"])
    assert info.value.globals == ["ossy.thing"]


def test_audit_and_refusal_import_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = tmp_path / "imported"
    module = "codecs_ser_side_effect_probe"
    (tmp_path / f"{module}.py").write_text(
        f"open({os.fspath(sentinel)!r}, 'w').close()\nclass Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(os.fspath(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    data = f"c{module}\nThing\n)R.".encode()
    target = tmp_path / "side.tar"
    craft(target, data)
    assert codecs_ser.audit(target) == [f"{module}.Thing"]
    with pytest.raises(UntrustedError):
        codecs_ser.load(target)
    assert not sentinel.exists()
    assert module not in sys.modules
    try:
        obj = codecs_ser.load(target, trusted=[f"{module}.Thing"])
        assert type(obj).__name__ == "Thing"
        assert sentinel.exists()
    finally:
        sys.modules.pop(module, None)


# -- what trust allows ------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: np.ndarray


def test_default_refuses_user_classes_and_trust_allows_them(tmp_path: Path) -> None:
    obj = {"p": Point(1, np.arange(3))}
    target = tmp_path / "point.tar"
    codecs_ser.dump(obj, target)
    name = f"{Point.__module__}.{Point.__qualname__}"
    module = Point.__module__
    assert codecs_ser.audit(target) == [name]
    with pytest.raises(UntrustedError) as info:
        codecs_ser.load(target)
    assert info.value.globals == [name]
    for trusted in (True, [name], name, [f"{module}:{Point.__qualname__}"], [f"{module}.*"]):
        back = codecs_ser.load(target, trusted=trusted)
        assert type(back["p"]) is Point
        assert back["p"].x == 1
        np.testing.assert_array_equal(back["p"].y, np.arange(3))
    with pytest.raises(UntrustedError):
        codecs_ser.load(target, trusted=[f"{module}.Other"])
    with pytest.raises(UntrustedError):
        codecs_ser.load(target, trusted=False)
    # the arrays are always readable without unpickling
    assert list(codecs_ser.load_arrays(target)) == ["p/y"]


def test_default_allowlist_covers_common_value_types() -> None:
    import collections
    import datetime
    import decimal
    import fractions
    import pathlib
    import uuid

    obj = {
        "od": collections.OrderedDict(a=1),
        "dd": collections.defaultdict(int, {"a": 1}),
        "counter": collections.Counter("aab"),
        "deque": collections.deque([1, 2]),
        "set": {1, 2},
        "frozenset": frozenset({3}),
        "range": range(3),
        "slice": slice(1, 2),
        "bytearray": bytearray(b"x"),
        "date": datetime.date(2020, 1, 2),
        "dt": datetime.datetime(2020, 1, 2, 3, tzinfo=datetime.timezone.utc),
        "td": datetime.timedelta(days=1),
        "dec": decimal.Decimal("1.5"),
        "frac": fractions.Fraction(1, 3),
        "path": pathlib.PurePosixPath("/a/b"),
        "uuid": uuid.UUID(int=5),
        "objarr": np.array([1, "a"], dtype=object),
    }
    data = codecs_ser.dumps(obj)
    with codecs_ser.open(data) as c:
        assert c.skeleton_format() == "pickle"
    back = codecs_ser.loads(data)
    for k, v in obj.items():
        if k == "objarr":
            assert back[k].tolist() == v.tolist()
        else:
            assert type(back[k]) is type(v) and back[k] == v, k


def test_msgpack_skeleton_never_unpickles(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    data, _ = payloads(sentinel)["os.system/p2"]
    target = tmp_path / "liar.tar"
    craft(target, data, fmt="msgpack")
    with pytest.raises(FormatError):
        codecs_ser.load(target, trusted=True)
    assert codecs_ser.audit(target) == []
    assert not sentinel.exists()


# -- member names cannot leave a folder container ------------------------------------------


def _point_blob_at(container: Path, entry: str, member: str) -> None:
    """Rewrite a dir container's manifest so ``entry``'s blob names ``member``."""
    path = container / ".codecs_ser" / "manifest.msgpack"
    m = msgpack.unpackb(path.read_bytes(), raw=False)
    m.pop("manifest_checksum", None)  # as a 1.0 manifest: what is tested is the name
    blob_fields = m["blob_fields"]
    entry_fields = m["entry_fields"]
    i = m["names"].index(entry)
    record = msgpack.unpackb(m["entries"][i], raw=False)
    blob = record[entry_fields.index("blobs")][0]
    blob[blob_fields.index("member")] = member
    m["entries"][i] = msgpack.packb(record, use_bin_type=True)
    path.write_bytes(msgpack.packb(m, use_bin_type=True))


@pytest.mark.parametrize("member", ["../outside.npy", "/etc/passwd", "a/../../outside.npy"])
def test_manifest_cannot_name_files_outside_the_folder(tmp_path: Path, member: str) -> None:
    target = tmp_path / "c"
    arr = np.arange(6.0)
    codecs_ser.dump({"a": arr}, target, backend="dir")
    # a file outside with exactly the bytes (so the checksum would match)
    (tmp_path / "outside.npy").write_bytes((target / "a.npy").read_bytes())
    _point_blob_at(target, "a", member)
    for read in (codecs_ser.load, codecs_ser.load_arrays):
        with pytest.raises(FormatError):
            read(target)


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "c"
    codecs_ser.dump({"a": np.arange(6.0)}, target, backend="dir")
    outside = tmp_path / "outside.npy"
    outside.write_bytes((target / "a.npy").read_bytes())
    (target / "a.npy").unlink()
    (target / "a.npy").symlink_to(outside)
    with pytest.raises(FormatError):
        codecs_ser.load(target)
