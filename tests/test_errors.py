"""Every public error: raised where the docs say, carrying the facts a user needs, and
catchable both as CodecsSerError and as the builtin it refines."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

import codecs_ser
from codecs_ser import errors
from codecs_ser.codec import CodecBase, CodecSpec, DecodeContext, Encoded
from codecs_ser.errors import (
    CodecsSerError,
    FormatError,
    IntegrityError,
    NoCodecForTypeError,
    TargetExistsError,
    UnknownBackendError,
    UnknownCodecError,
    UntrustedError,
    UsageError,
)
from codecs_ser.registry import Registry

BACKENDS = ("tar", "zip", "dir")
MANIFEST = ".codecs_ser/manifest.msgpack"
TRAILER = ".codecs_ser/trailer"


# -- FormatError ------------------------------------------------------------------------


def test_not_a_container(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a container\n" * 40)
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    plain_tar = tmp_path / "plain.tar"
    with tarfile.open(plain_tar, "w") as tf:
        tf.add(text, arcname="notes.txt")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.npy").write_bytes(b"")
    for source in (text, empty, plain_tar, folder):
        with pytest.raises(FormatError):
            codecs_ser.load(source)
        with pytest.raises(FormatError):
            codecs_ser.open(source)
        with pytest.raises(ValueError):
            codecs_ser.load_arrays(source)
    for data in (b"", b"\x00" * 1024, b"PK\x03\x04garbage", text.read_bytes()):
        with pytest.raises(FormatError):
            codecs_ser.loads(data)
        with pytest.raises(FormatError):
            codecs_ser.load(io.BytesIO(data))


def _cut_points(data: bytes, backend: str) -> list[int]:
    """Lengths that cut the container before its manifest is complete."""
    manifest_at = data.find(MANIFEST.encode())
    assert manifest_at > 0
    points = [1, 100, 262, 511, 512, 513, 1000, 1024, 4096, manifest_at, manifest_at + 100]
    if backend == "tar":
        points += [manifest_at + 512, manifest_at + 520]
    step = max(1, manifest_at // 7)
    points += list(range(step, manifest_at, step))
    return sorted({p for p in points if 0 < p < manifest_at + 512})


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_truncated_container(tmp_path: Path, backend: str) -> None:
    obj = {"a": np.arange(3000.0), "b": [np.ones((20, 20)), "text"], "c": np.zeros(5, "S7")}
    data = codecs_ser.dumps(obj, backend=backend)
    target = tmp_path / f"cut.{backend}"
    for n in _cut_points(data, backend):
        target.write_bytes(data[:n])
        for source in (target, data[:n], io.BytesIO(data[:n])):
            with pytest.raises(FormatError):
                codecs_ser.load(source)


def test_truncated_blob_in_dir(tmp_path: Path) -> None:
    target = tmp_path / "d"
    codecs_ser.dump({"a": np.arange(100.0), "b": np.ones(3)}, target, backend="dir")
    blob = target / "a.npy"
    blob.write_bytes(blob.read_bytes()[:-8])
    with pytest.raises(FormatError) as info:
        codecs_ser.load(target)
    assert info.value.member == "a.npy"
    (target / "b.npy").unlink()
    with codecs_ser.open(target) as c, pytest.raises(FormatError) as info:
        c.read("b")
    assert info.value.member == "b.npy"


def rebuild_tar(src: Path, dst: Path, mutate: Callable[[dict[str, Any]], Any]) -> None:
    """Copy a tar container member by member (same layout, so the same offsets) with
    its manifest changed by ``mutate``."""
    writer = codecs_ser.default_registry.get_backend("tar").create(os.fspath(dst), durable=False)
    manifest = None
    with tarfile.open(src) as tf:
        for info in tf:
            data = tf.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == MANIFEST:
                manifest = msgpack.unpackb(data, raw=False)
            elif info.name != TRAILER:
                writer.write_member(info.name, len(data), [memoryview(data)])
    assert manifest is not None
    new = mutate(manifest)
    writer.commit(new if isinstance(new, bytes) else msgpack.packb(new, use_bin_type=True))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(m: dict[str, Any]) -> dict[str, Any]:
        m[key] = value
        return m

    return mutate


def _drop_last_entry(m: dict[str, Any]) -> dict[str, Any]:
    m["names"] = m["names"][:-1]
    m["entries"] = m["entries"][:-1]
    return m


BAD_MANIFESTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "not msgpack": lambda m: b"\xc1\xc1 this is not msgpack",
    "not a map": lambda m: msgpack.packb([1, 2, 3]),
    "other format": _set("format", "something_else"),
    "newer version": _set("format_version", 99),
    "version not int": _set("format_version", "1"),
    "no objects": _set("objects", []),
    "names not list": _set("names", "a"),
    "names and entries differ": lambda m: {**m, "names": [*m["names"], "extra"]},
    "duplicate names": lambda m: {**m, "names": [m["names"][0]] * len(m["names"])},
    "entry not bytes": lambda m: {**m, "entries": [1] * len(m["entries"])},
    "entry garbage": lambda m: {**m, "entries": [b"\xc1"] * len(m["entries"])},
    "skeleton refers to a missing entry": _drop_last_entry,
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_bad_manifest(tmp_path: Path, case: str) -> None:
    src = tmp_path / "good.tar"
    codecs_ser.dump({"a": np.arange(4), "b": np.ones(2)}, src)
    dst = tmp_path / "bad.tar"
    rebuild_tar(src, dst, BAD_MANIFESTS[case])
    with pytest.raises(FormatError) as info:
        codecs_ser.load(dst)
    if case == "newer version":
        assert "upgrade" in str(info.value)
    assert codecs_ser.load(src)["a"].tolist() == [0, 1, 2, 3]


def test_manifest_damage_is_detected(tmp_path: Path) -> None:
    for backend in ("tar", "zip"):
        data = bytearray(codecs_ser.dumps({"a": np.arange(4)}, backend=backend))
        at = data.find(b"codecs_ser", data.find(MANIFEST.encode()) + len(MANIFEST))
        assert at > 0
        data[at] ^= 0x20
        with pytest.raises(FormatError):
            codecs_ser.loads(bytes(data))


# -- IntegrityError ---------------------------------------------------------------------


MARKER = (np.arange(512, dtype="<i8") * 7919 + 104729).reshape(16, 32)


def _flip_in_blob(target: Path, backend: str) -> None:
    needle = MARKER.tobytes()
    path = target / "x.npy" if backend == "dir" else target
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0
    data[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("checksum", ["xxh3_64", "sha256", "crc32"])
def test_flipped_byte_in_blob(tmp_path: Path, backend: str, checksum: str) -> None:
    target = tmp_path / "c"
    codecs_ser.dump({"x": MARKER, "y": np.ones(3)}, target, backend=backend, checksum=checksum)
    _flip_in_blob(target, backend)

    with pytest.raises(IntegrityError) as info:
        codecs_ser.load(target)
    err = info.value
    assert err.member == "x.npy"
    assert err.algorithm == checksum
    assert err.expected != err.actual
    assert "x.npy" in str(err)
    assert isinstance(err, FormatError) and isinstance(err, ValueError)

    with pytest.raises(IntegrityError):
        codecs_ser.load_arrays(target)
    with codecs_ser.open(target) as c:
        with pytest.raises(IntegrityError):
            c.read("x")
        np.testing.assert_array_equal(c.read("y"), np.ones(3))
    with pytest.raises(IntegrityError):
        codecs_ser.load(target, mmap=True, verify=True)
    # documented: verify=False skips checksums, and mmap skips them unless asked
    for kwargs in ({"verify": False}, {"mmap": True}):
        back = codecs_ser.load(target, **kwargs)
        assert back["x"].tobytes() != MARKER.tobytes()

    problems = codecs_ser.verify(target)
    assert [member for member, _ in problems] == ["x.npy"]
    assert "checksum" in problems[0][1]


def test_flipped_byte_in_skeleton(tmp_path: Path) -> None:
    target = tmp_path / "c.tar"
    codecs_ser.dump({"x": np.ones(2), "label": "UNIQUE-LABEL-TEXT"}, target)
    data = bytearray(target.read_bytes())
    at = data.find(b"UNIQUE-LABEL-TEXT")
    data[at] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        codecs_ser.load(target)
    assert info.value.member == ".codecs_ser/objects/0.msgpack"
    assert [m for m, _ in codecs_ser.verify(target)] == [".codecs_ser/objects/0.msgpack"]


def test_cli_verify_and_inspect(tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    codecs_ser.dump({"x": MARKER}, good)
    bad = tmp_path / "bad.tar"
    bad.write_bytes(good.read_bytes())
    _flip_in_blob(bad, "tar")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk" * 300)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codecs_ser", *args], capture_output=True, text=True
        )

    ok = cli("verify", os.fspath(good))
    assert ok.returncode == 0, ok.stderr
    failed = cli("verify", os.fspath(bad))
    assert failed.returncode == 1
    assert "x.npy" in failed.stdout
    broken = cli("inspect", os.fspath(junk))
    assert broken.returncode == 2
    assert "error" in broken.stderr and "Traceback" not in broken.stderr
    listed = cli("inspect", os.fspath(good))
    assert listed.returncode == 0 and "x" in listed.stdout and "int64" in listed.stdout


# -- UnknownCodecError ------------------------------------------------------------------


class Celsius:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values


class CelsiusCodec(CodecBase):
    codec_id = "test.celsius"
    codec_version = 1

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": obj.values, "offset": np.array(273.15)}, meta={"u": "C"})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        return Celsius(encoded.arrays["data"])


CELSIUS = CodecSpec(
    codec_id="test.celsius",
    impl=f"{__name__}:CelsiusCodec",
    handles=(f"{Celsius.__module__}.{Celsius.__qualname__}",),
    dist="celsius-codecs",
)


def test_unknown_codec_names_the_distribution(tmp_path: Path) -> None:
    writer_registry = Registry(entry_points=False)
    writer_registry.register_codec(CELSIUS)
    target = tmp_path / "t.tar"
    obj = {"t": Celsius(np.arange(3.0)), "plain": np.ones(2)}
    codecs_ser.dump(obj, target, registry=writer_registry)
    back = codecs_ser.load(target, registry=writer_registry)
    assert type(back["t"]) is Celsius and back["t"].values.tolist() == [0.0, 1.0, 2.0]

    bare = Registry(entry_points=False)
    with codecs_ser.open(target, registry=bare) as c:
        assert c.entries["t"].codec == "test.celsius"
        assert "celsius-codecs" in c.dists
    with pytest.raises(UnknownCodecError) as info:
        codecs_ser.load(target, registry=bare)
    err = info.value
    assert isinstance(err, LookupError)
    assert err.codec_id == "test.celsius"
    assert err.dist == "celsius-codecs"
    assert "pip install celsius-codecs" in str(err)
    assert "'t'" in str(err)
    assert "load_arrays" in str(err)
    arrays = codecs_ser.load_arrays(target, registry=bare)
    assert arrays["t"].tolist() == [0.0, 1.0, 2.0]
    assert float(arrays["t.offset"]) == 273.15
    assert arrays["plain"].tolist() == [1.0, 1.0]


def test_unknown_first_party_codec_names_its_package(tmp_path: Path) -> None:
    class FakeTorchCodec(CelsiusCodec):
        codec_id = "torch.tensor"

    registry = Registry(entry_points=False)
    registry.register_codec(FakeTorchCodec(), handles=(f"{__name__}.Celsius",))
    target = tmp_path / "t.tar"
    codecs_ser.dump([Celsius(np.ones(1))], target, registry=registry)
    with pytest.raises(UnknownCodecError) as info:
        codecs_ser.load(target, registry=Registry(entry_points=False))
    assert "pip install codecs-ser-torch" in str(info.value)


# -- UnknownBackendError, NoCodecForTypeError -------------------------------------------


def test_unknown_backend(tmp_path: Path) -> None:
    target = tmp_path / "x.tar"
    with pytest.raises(UnknownBackendError) as info:
        codecs_ser.dump({"a": np.ones(2)}, target, backend="nope")
    assert isinstance(info.value, LookupError)
    assert info.value.backend_id == "nope"
    assert "nope" in str(info.value) and "tar" in str(info.value)
    assert not target.exists()
    with pytest.raises(UnknownBackendError):
        codecs_ser.dumps([1], backend="nope")
    assert os.listdir(tmp_path) == []


def _fake_type(module: str, qualname: str, base: type = object) -> type:
    mod = types.ModuleType(module)
    cls = type(qualname.rsplit(".", 1)[-1], (base,), {"__module__": module})
    cls.__qualname__ = qualname
    setattr(mod, qualname, cls)
    return cls


def test_framework_leaf_without_codec(tmp_path: Path) -> None:
    tensor = _fake_type("torch", "Tensor")
    parameter = _fake_type("torch.nn.parameter", "Parameter", tensor)
    jax_array = _fake_type("jaxlib._jax", "ArrayImpl")
    registry = Registry(entry_points=False)
    target = tmp_path / "x.tar"
    cases = [
        ({"params": {"w": tensor()}}, "torch.Tensor", "params/w", "codecs-ser-torch"),
        ({"p": [parameter()]}, "torch.nn.parameter.Parameter", "p/0", "codecs-ser-torch"),
        ({"j": jax_array()}, "jaxlib._jax.ArrayImpl", "j", "codecs-ser-jax"),
    ]
    for obj, type_name, path, dist in cases:
        with pytest.raises(NoCodecForTypeError) as info:
            codecs_ser.dump(obj, target, registry=registry)
        err = info.value
        assert isinstance(err, TypeError)
        assert err.type_name == type_name
        assert err.path == path
        assert err.dist == dist
        assert f"pip install {dist}" in str(err)
        assert not target.exists()
    assert os.listdir(tmp_path) == []


# -- UsageError --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metadata": [1, 2]},
        {"metadata": {"a": object()}},
        {"metadata": "text"},
        {"checksum": "md5"},
        {"checksum": ""},
        {"name": ""},
        {"name": 5},
        {"backend": 5},
    ],
    ids=repr,
)
def test_bad_dump_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    target = tmp_path / "x.tar"
    with pytest.raises(UsageError):
        codecs_ser.dump({"a": np.ones(2)}, target, **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_arguments_are_refused_before_writing_to_a_stream() -> None:
    buf = io.BytesIO()
    with pytest.raises(UsageError):
        codecs_ser.dump({"a": np.ones(300_000)}, buf, metadata={"bad": object()})
    assert buf.getvalue() == b""


def test_metadata_that_is_accepted_can_be_read_back(tmp_path: Path) -> None:
    target = tmp_path / "m.tar"
    meta = {1: "int key"}
    try:
        codecs_ser.dump({"a": np.ones(2)}, target, metadata=meta)
    except UsageError:
        assert not target.exists()
        return
    with codecs_ser.open(target) as c:
        assert c.metadata == meta


def test_bad_targets_and_sources() -> None:
    for target in (123, None, ["x"], b"bytes are not a target"):
        with pytest.raises(UsageError):
            codecs_ser.dump({"a": 1}, target)  # type: ignore[arg-type]
    for source in (123, None, ["x"]):
        with pytest.raises(UsageError):
            codecs_ser.load(source)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        codecs_ser.loads("text, not bytes")  # type: ignore[arg-type]


def test_bad_object_names(tmp_path: Path) -> None:
    target = tmp_path / "c.tar"
    codecs_ser.dump({"a": np.ones(2), "s": {1, 2}}, target)
    with pytest.raises(UsageError):
        codecs_ser.load(target, name="missing")
    with pytest.raises(UsageError):
        codecs_ser.load_arrays(target, name="missing")
    with codecs_ser.open(target) as c, pytest.raises(KeyError):
        c.read("missing")
    with pytest.raises(UsageError):
        codecs_ser.add(target, {"b": 1}, name="main")
    with pytest.raises(UsageError):
        codecs_ser.add(target, {"b": 1}, name="")
    with pytest.raises(UsageError):
        codecs_ser.add(io.BytesIO(target.read_bytes()), {"b": 1}, name="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("trusted", [[1], [""], [None], 3.5], ids=repr)
def test_bad_trusted_argument(tmp_path: Path, trusted: Any) -> None:
    target = tmp_path / "c.tar"
    codecs_ser.dump({"a": np.ones(2), "s": {1, 2}}, target)
    with pytest.raises(UsageError):
        codecs_ser.load(target, trusted=trusted)


# -- TargetExistsError -----------------------------------------------------------------


def test_dir_backend_never_replaces_a_user_folder(tmp_path: Path, snapshot: Any) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(folder)
    with pytest.raises(TargetExistsError) as info:
        codecs_ser.dump({"a": np.ones(3)}, folder, backend="dir")
    assert isinstance(info.value, FileExistsError)
    assert snapshot(folder) == before
    assert sorted(os.listdir(tmp_path)) == ["results"]

    a_file = tmp_path / "file"
    a_file.write_bytes(b"keep")
    with pytest.raises(TargetExistsError):
        codecs_ser.dump({"a": np.ones(3)}, a_file, backend="dir")
    assert a_file.read_bytes() == b"keep"
    assert sorted(os.listdir(tmp_path)) == ["file", "results"]


def test_one_file_backend_refuses_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "run.tar"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with pytest.raises(TargetExistsError, match="is a folder"):
        codecs_ser.dump({"a": np.ones(2)}, folder)
    assert (folder / "keep.txt").read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["run.tar"]


# -- the hierarchy ------------------------------------------------------------------------

REFINES = {
    "FormatError": ValueError,
    "IntegrityError": errors.FormatError,
    "UnknownCodecError": LookupError,
    "UnknownBackendError": LookupError,
    "NoCodecForTypeError": TypeError,
    "PluginLoadError": ImportError,
    "PluginValidationError": TypeError,
    "DuplicateRegistrationError": ValueError,
    "UsageError": ValueError,
    "TargetExistsError": FileExistsError,
    "CodeByValueError": TypeError,
    "UnpicklableError": TypeError,
    "ConcurrentWriteError": RuntimeError,
    "ContainerReplacedError": errors.FormatError,
    "UntrustedError": CodecsSerError,
}


def test_every_error_derives_from_the_base_and_its_builtin() -> None:
    public = {n for n in errors.__all__ if not n.endswith("Warning")} - {"CodecsSerError"}
    assert public == set(REFINES)
    assert issubclass(errors.CodeByValueWarning, UserWarning)
    for name, builtin in REFINES.items():
        cls = getattr(errors, name)
        assert issubclass(cls, CodecsSerError), name
        assert issubclass(cls, builtin), name
    assert issubclass(CodecsSerError, Exception)
    for name in ("CodecsSerError", "FormatError", "IntegrityError", "UnknownCodecError"):
        assert getattr(codecs_ser, name) is getattr(errors, name)
    assert codecs_ser.UntrustedError is UntrustedError


# -- errors raised by codecs carry the leaf path ---------------------------------------------


class Exploding:
    pass


class ExplodingCodec(CodecBase):
    codec_id = "test.exploding"

    def encode(self, obj: Any) -> Encoded:
        raise RuntimeError("cannot encode this one")

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        raise AssertionError("never written")


class WrongResultCodec(ExplodingCodec):
    codec_id = "test.wrong"

    def encode(self, obj: Any) -> Any:
        return {"data": np.ones(2)}


class BadDecodeCodec(CelsiusCodec):
    codec_id = "test.baddecode"

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        raise ValueError("decode failed")


def _notes(e: BaseException) -> str:
    return "\n".join(getattr(e, "__notes__", []))


def test_encode_error_gets_a_note_with_the_leaf_path(tmp_path: Path) -> None:
    registry = Registry(entry_points=False)
    registry.register_codec(ExplodingCodec, handles=(f"{__name__}.Exploding",))
    target = tmp_path / "x.tar"
    with pytest.raises(RuntimeError, match="cannot encode") as info:
        codecs_ser.dump({"model": {"layers": [np.ones(2), Exploding()]}}, target, registry=registry)
    notes = _notes(info.value)
    assert "'model/layers/1'" in notes
    assert "test.exploding" in notes
    assert not target.exists() and os.listdir(tmp_path) == []


def test_codec_returning_the_wrong_thing_is_named(tmp_path: Path) -> None:
    registry = Registry(entry_points=False)
    registry.register_codec(WrongResultCodec, handles=(f"{__name__}.Exploding",))
    with pytest.raises(TypeError) as info:
        codecs_ser.dumps({"leaf": Exploding()}, registry=registry)
    assert "test.wrong" in str(info.value)
    assert "'leaf'" in _notes(info.value)


def test_decode_error_is_a_format_error_naming_the_entry(tmp_path: Path) -> None:
    registry = Registry(entry_points=False)
    registry.register_codec(BadDecodeCodec, handles=(f"{__name__}.Celsius",))
    data = codecs_ser.dumps({"deg": Celsius(np.ones(2))}, registry=registry)
    with pytest.raises(FormatError) as info:
        codecs_ser.loads(data, registry=registry)
    assert info.value.member == "deg"
    assert "test.baddecode" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_cli_escapes_control_characters_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codecs_ser import _cli

    target = tmp_path / "c.tar"
    codecs_ser.dump({"a": np.arange(3)}, target, metadata={"note": "\x1b]0;owned\x07"})
    assert _cli.main(["inspect", os.fspath(target)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert _cli._clean("ok ünï\x1b[2J\n") == "ok ünï\\x1b[2J\\n"


def test_inspect_renders_values_from_the_file_bounded() -> None:
    """Metadata nested past the recursion limit, or of megabytes, prints abbreviated."""
    from codecs_ser._cli import _render

    deep: Any = "bottom"
    for _ in range(3000):
        deep = {"k": [deep]}
    text = _render({"deep": deep, "big": b"x" * 10**7, "long": "y" * 10**7})
    assert len(text) < 3000 and "..." in text


def test_a_path_with_a_nul_is_a_usage_error() -> None:
    with pytest.raises(errors.UsageError):
        codecs_ser.load("a\x00b.tar")
