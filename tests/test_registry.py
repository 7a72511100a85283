"""The registry: dispatch by qualified type name, registration rules, plugin errors
raised only when needed, and discovery through entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.backend import BackendSpec
from codecs_ser.codec import CodecBase, CodecSpec, DecodeContext, Encoded
from codecs_ser.errors import (
    DuplicateRegistrationError,
    PluginLoadError,
    PluginValidationError,
    UnknownCodecError,
)
from codecs_ser.registry import Registry


class Base:
    def __init__(self, data: Any = None) -> None:
        self.data = np.arange(3) if data is None else data


class Child(Base):
    pass


class GrandChild(Child):
    pass


def qn(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


class BaseCodec(CodecBase):
    codec_id = "test.base"

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": obj.data}, meta={"type": type(obj).__name__})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        cls = {"Base": Base, "Child": Child, "GrandChild": GrandChild}[encoded.meta["type"]]
        return cls(encoded.arrays["data"])


class ChildCodec(BaseCodec):
    codec_id = "test.child"


def spec(codec_id: str, handles: tuple[str, ...], subclasses: bool = False) -> CodecSpec:
    """A spec for BaseCodec ("test.base") or ChildCodec ("test.child")."""
    impl = f"{__name__}:BaseCodec" if codec_id == "test.base" else f"{__name__}:ChildCodec"
    return CodecSpec(codec_id=codec_id, impl=impl, handles=handles, subclasses=subclasses)


# -- dispatch -------------------------------------------------------------------------------


def test_exact_type_only_unless_subclasses(registry: Registry) -> None:
    s = registry.register_codec(spec("test.base", (qn(Base),)))
    assert registry.spec_for_type(Base) is s
    assert registry.spec_for_type(Child) is None
    assert registry.spec_for_type(GrandChild) is None
    # a subclass that is not handled goes into the pickled skeleton, its arrays still blobs
    data = codecs_ser.dumps({"c": Child()}, registry=registry)
    with codecs_ser.open(data, registry=registry) as c:
        assert c.skeleton_format() == "pickle"
        assert list(c.entries) == ["c/data"]


def test_subclasses_along_the_mro(registry: Registry) -> None:
    s = registry.register_codec(spec("test.base", (qn(Base),), subclasses=True))
    assert registry.spec_for_type(Child) is s
    assert registry.spec_for_type(GrandChild) is s
    back = codecs_ser.loads(codecs_ser.dumps([GrandChild()], registry=registry), registry=registry)
    assert type(back[0]) is GrandChild


def test_exact_name_wins_over_a_base(registry: Registry) -> None:
    base = registry.register_codec(spec("test.base", (qn(Base),), subclasses=True))
    child = registry.register_codec(spec("test.child", (qn(Child),)))
    assert registry.spec_for_type(Base) is base
    assert registry.spec_for_type(Child) is child
    # the Child codec does not take subclasses, so GrandChild falls through to Base
    assert registry.spec_for_type(GrandChild) is base


def test_dispatch_is_by_name_and_imports_nothing(registry: Registry) -> None:
    module = "codecs_ser_never_imported_mod"
    s = registry.register_codec(
        CodecSpec(codec_id="x.thing", impl=f"{module}:Codec", handles=(f"{module}.Thing",))
    )
    fake = type("Thing", (), {"__module__": module})
    assert registry.spec_for_type(fake) is s
    assert "x.thing" in registry.codecs
    assert module not in sys.modules


def test_registration_clears_the_dispatch_cache(registry: Registry) -> None:
    assert registry.spec_for_type(Child) is None  # cached miss
    s = registry.register_codec(spec("test.child", (qn(Child),)))
    assert registry.spec_for_type(Child) is s
    replaced = registry.register_codec(spec("test.child", (qn(GrandChild),)), replace=True)
    assert registry.spec_for_type(Child) is None
    assert registry.spec_for_type(GrandChild) is replaced
    registry.block("test.child")
    assert registry.spec_for_type(GrandChild) is None
    assert "test.child" not in registry.codecs


# -- registration ----------------------------------------------------------------------------


def test_register_spec_class_or_instance(registry: Registry) -> None:
    by_spec = registry.register_codec(spec("test.base", (qn(Base),)))
    assert registry.codecs["test.base"] is by_spec
    codec = registry.get_codec("test.base")
    assert type(codec) is BaseCodec

    by_class = registry.register_codec(ChildCodec, handles=(qn(Child),))
    assert by_class.codec_id == "test.child"
    assert by_class.handles == (qn(Child),)
    assert type(registry.get_codec("test.child")) is ChildCodec

    class Inline(BaseCodec):
        codec_id = "test.inline"

    instance = Inline()
    registry.register_codec(instance, handles=(qn(GrandChild),))
    assert registry.get_codec("test.inline") is instance
    obj = {"b": Base(), "c": Child(), "g": GrandChild()}
    back = codecs_ser.loads(codecs_ser.dumps(obj, registry=registry), registry=registry)
    assert [type(v) for v in back.values()] == [Base, Child, GrandChild]
    with codecs_ser.open(codecs_ser.dumps(obj, registry=registry), registry=registry) as c:
        assert [c.entries[k].codec for k in ("b", "c", "g")] == [
            "test.base",
            "test.child",
            "test.inline",
        ]


def test_module_level_register_codec_uses_the_default_registry() -> None:
    assert codecs_ser.register_codec.__module__ == "codecs_ser.registry"
    assert codecs_ser.default_registry.codecs["numpy.ndarray"].codec_id == "numpy.ndarray"


def test_duplicates(registry: Registry) -> None:
    first = registry.register_codec(spec("test.base", (qn(Base),)))
    assert registry.register_codec(spec("test.base", (qn(Base),))) is first  # same spec: fine
    with pytest.raises(DuplicateRegistrationError) as info:
        registry.register_codec(spec("test.base", (qn(Child),)))
    assert isinstance(info.value, ValueError)
    assert info.value.name == "test.base"
    assert "replace=True" in str(info.value)
    assert registry.spec_for_type(Base) is first
    with pytest.raises(DuplicateRegistrationError):
        registry.register_codec(BaseCodec, handles=(qn(Base),))
    # another id claiming a handled type
    with pytest.raises(DuplicateRegistrationError):
        registry.register_codec(spec("test.child", (qn(Base),)))
    assert "test.child" not in registry.codecs
    second = registry.register_codec(spec("test.base", (qn(Child),)), replace=True)
    assert registry.codecs["test.base"] is second
    assert registry.spec_for_type(Base) is None
    assert registry.spec_for_type(Child) is second


@pytest.mark.parametrize(
    "bad",
    [
        CodecSpec(codec_id="", impl="m:C", handles=("m.T",)),
        CodecSpec(codec_id="x", impl="no_colon", handles=("m.T",)),
        CodecSpec(codec_id="x", impl="", handles=("m.T",)),
        CodecSpec(codec_id="x", impl="m:C", handles=["m.T"]),  # type: ignore[arg-type]
        CodecSpec(codec_id="x", impl="m:C", handles=(1,)),  # type: ignore[arg-type]
        CodecSpec(codec_id="x", impl="m:C", handles=("",)),
        CodecSpec(codec_id=None, impl="m:C", handles=("m.T",)),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_bad_specs(registry: Registry, bad: CodecSpec) -> None:
    before = dict(registry.codecs)
    with pytest.raises(PluginValidationError) as info:
        registry.register_codec(bad)
    assert isinstance(info.value, TypeError)
    assert dict(registry.codecs) == before


class NoMethods:
    codec_id = "test.nomethods"
    codec_version = 1


class NoDecode:
    codec_id = "test.nodecode"
    codec_version = 1

    def encode(self, obj: Any) -> Encoded:
        return Encoded(arrays={"data": np.ones(1)})

    def can_encode(self, obj: Any) -> bool:
        return True


class BadVersion(BaseCodec):
    codec_id = "test.badversion"
    codec_version = 0


@pytest.mark.parametrize("cls", [NoMethods, NoDecode, BadVersion])
def test_bad_codec_classes(registry: Registry, cls: type) -> None:
    with pytest.raises(PluginValidationError) as info:
        registry.register_codec(cls, handles=(qn(Base),))
    if cls is NoDecode:
        assert "decode" in str(info.value)
    assert cls.codec_id not in registry.codecs
    assert registry.spec_for_type(Base) is None


def test_spec_naming_a_bad_class_fails_on_first_use(registry: Registry) -> None:
    registry.register_codec(
        CodecSpec(codec_id="test.nodecode", impl=f"{__name__}:NoDecode", handles=(qn(Base),))
    )
    registry.register_codec(
        CodecSpec(codec_id="test.wrongid", impl=f"{__name__}:BaseCodec", handles=(qn(Child),))
    )
    with pytest.raises(PluginValidationError):
        codecs_ser.dumps({"b": Base()}, registry=registry)
    with pytest.raises(PluginValidationError):
        codecs_ser.dumps({"c": Child()}, registry=registry)
    assert codecs_ser.loads(codecs_ser.dumps(np.ones(2), registry=registry)).tolist() == [1, 1]


class Ghost:
    def __init__(self) -> None:
        self.data = np.ones(2)


@pytest.mark.parametrize(
    ("impl", "cause"),
    [
        ("codecs_ser_no_such_module_xyz:Codec", ModuleNotFoundError),
        ("codecs_ser:NoSuchCodecClass", AttributeError),
        (f"{__name__}:Ghost.missing", AttributeError),
    ],
)
def test_unimportable_impl_fails_only_when_needed(
    registry: Registry, impl: str, cause: type
) -> None:
    registry.register_codec(
        CodecSpec(codec_id="test.ghost", impl=impl, handles=(qn(Ghost),), dist="ghost-dist")
    )
    assert "test.ghost" in registry.codecs
    assert "codecs_ser_no_such_module_xyz" not in sys.modules
    # unrelated leaves are unaffected
    plain = codecs_ser.dumps({"a": np.arange(3)}, registry=registry)
    assert codecs_ser.loads(plain, registry=registry)["a"].tolist() == [0, 1, 2]
    with pytest.raises(PluginLoadError) as info:
        codecs_ser.dumps({"g": Ghost()}, registry=registry)
    err = info.value
    assert isinstance(err, ImportError)
    assert err.entry_point == "test.ghost"
    assert err.dist == "ghost-dist"
    assert err.target == impl
    assert isinstance(err.__cause__, cause)
    text = str(err)
    assert impl in text and "test.ghost" in text and "ghost-dist" in text
    assert cause.__name__ in text


def test_block_removes_a_registered_codec(registry: Registry) -> None:
    registry.register_codec(
        CodecSpec(codec_id="blockme", impl="codecs_ser.codecs.numpy:ScalarCodec", handles=("x.Y",))
    )
    registry.block("blockme")
    assert "blockme" not in registry.codecs


def test_block_keeps_the_core_codecs(registry: Registry) -> None:
    # block() is for entry-point plugins; the core's own numpy codecs are not plugins.
    registry.block("numpy.scalar")
    assert "numpy.scalar" in registry.codecs
    data = codecs_ser.dumps({"s": np.float32(1.5), "a": np.ones(2)}, registry=registry)
    with codecs_ser.open(data, registry=registry) as c:
        assert sorted(c.entries) == ["a", "s"]
    back = codecs_ser.loads(data, registry=registry)
    assert type(back["s"]) is np.float32 and back["s"] == 1.5


def test_unknown_codec_id(registry: Registry) -> None:
    with pytest.raises(UnknownCodecError) as info:
        registry.get_codec("nobody.has.this")
    assert "numpy.ndarray" in info.value.registered


# -- entry points ----------------------------------------------------------------------------

PLUGIN = """
from codecs_ser import BackendSpec, CodecSpec

THING = CodecSpec(
    codec_id="fake.thing",
    impl="fake_codecs_ser_plugin_impl:ThingCodec",
    handles=("fake_codecs_ser_plugin_impl.Thing",),
)
BAD_IMPL = CodecSpec(
    codec_id="fake.badimpl",
    impl="fake_codecs_ser_plugin_impl:NoSuchClass",
    handles=("fake_codecs_ser_plugin_impl.Other",),
)
TYPE_CLASH = CodecSpec(
    codec_id="fake.typeclash",
    impl="fake_codecs_ser_plugin_impl:ThingCodec",
    handles=("numpy.ndarray",),
)
NOT_A_SPEC = 42
"""

PLUGIN_IMPL = """
import numpy as np
from codecs_ser import CodecBase, Encoded


class Thing:
    def __init__(self, data):
        self.data = data


class ThingCodec(CodecBase):
    codec_id = "fake.thing"

    def encode(self, obj):
        return Encoded(arrays={"data": np.asarray(obj.data)})

    def decode(self, encoded, ctx):
        return Thing(encoded.arrays["data"])
"""

ENTRY_POINTS = """
[codecs_ser.codecs]
fake.thing = fake_codecs_ser_plugin:THING
fake.badimpl = fake_codecs_ser_plugin:BAD_IMPL
fake.typeclash = fake_codecs_ser_plugin:TYPE_CLASH
fake.notaspec = fake_codecs_ser_plugin:NOT_A_SPEC
fake.missing = fake_codecs_ser_plugin_missing:SPEC

[codecs_ser.backends]
fake-broken = fake_codecs_ser_plugin_missing:BACKEND
"""

CHECK = """
import io, json, sys
import numpy as np
import codecs_ser
from codecs_ser.errors import (
    PluginLoadError, PluginValidationError, UnknownBackendError, UnknownCodecError,
)
from codecs_ser.registry import Registry

out = {"imported_at_start": "fake_codecs_ser_plugin" in sys.modules}
reg = codecs_ser.default_registry
if sys.argv[1] == "block":
    reg.block("fake.thing")
codecs = reg.codecs
out["codecs"] = sorted(codecs)
out["dist"] = codecs["fake.thing"].dist if "fake.thing" in codecs else None
out["impl_imported_after_listing"] = "fake_codecs_ser_plugin_impl" in sys.modules

arr = {"a": np.arange(4), "s": np.float64(2.0)}
back = codecs_ser.loads(codecs_ser.dumps(arr))
out["numpy_ok"] = back["a"].tolist() == [0, 1, 2, 3] and bool(back["s"] == 2.0)
out["zip_ok"] = codecs_ser.loads(codecs_ser.dumps(arr, backend="zip"))["a"].tolist() == [0, 1, 2, 3]

errors = {}
for cid in ("fake.badimpl", "fake.typeclash", "fake.notaspec", "fake.missing"):
    try:
        reg.get_codec(cid)
        errors[cid] = None
    except (PluginLoadError, PluginValidationError, UnknownCodecError) as e:
        errors[cid] = [type(e).__name__, getattr(e, "entry_point", None), getattr(e, "dist", None)]
try:
    reg.get_backend("fake-broken")
    errors["fake-broken"] = None
except (PluginLoadError, PluginValidationError, UnknownBackendError) as e:
    errors["fake-broken"] = [type(e).__name__, getattr(e, "entry_point", None), getattr(e, "dist", None)]
out["errors"] = errors

if "fake.thing" in codecs:
    from fake_codecs_ser_plugin_impl import Thing
    data = codecs_ser.dumps({"t": Thing(np.arange(3.0))})
    back = codecs_ser.loads(data)
    out["thing_type"] = type(back["t"]).__name__
    out["thing_data"] = back["t"].data.tolist()
    with codecs_ser.open(data) as c:
        out["entry_codec"] = c.entries["t"].codec
        out["dists"] = c.dists
    try:
        codecs_ser.loads(data, registry=Registry(entry_points=False))
    except UnknownCodecError as e:
        out["without_plugin"] = [e.dist, str(e)]
out["impl_imported_at_end"] = "fake_codecs_ser_plugin_impl" in sys.modules
if sys.argv[1] == "block":
    from fake_codecs_ser_plugin_impl import Thing
    with codecs_ser.open(codecs_ser.dumps({"t": Thing(np.arange(3.0))})) as c:
        out["blocked_format"] = c.skeleton_format()
        out["blocked_entries"] = {n: e.codec for n, e in c.entries.items()}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    info = site / "fake_codecs_ser_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-codecs-ser-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    (site / "fake_codecs_ser_plugin.py").write_text(PLUGIN)
    (site / "fake_codecs_ser_plugin_impl.py").write_text(PLUGIN_IMPL)
    (site / "check_plugins.py").write_text(CHECK)
    return site


def run_check(site: Path, mode: str = "plain", disable: str | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "CODECS_SER_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([os.fspath(site), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    if disable is not None:
        env["CODECS_SER_DISABLE_PLUGIN_AUTOLOAD"] = disable
    done = subprocess.run(
        [sys.executable, os.fspath(site / "check_plugins.py"), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_entry_point_plugin_is_found_and_used_lazily(fake_site: Path) -> None:
    out = run_check(fake_site)
    assert out["imported_at_start"] is False
    assert "fake.thing" in out["codecs"]
    assert {"numpy.ndarray", "numpy.scalar", "numpy.masked"} <= set(out["codecs"])
    assert out["dist"] == "fake-codecs-ser-plugin"
    assert out["impl_imported_after_listing"] is False
    assert out["thing_type"] == "Thing" and out["thing_data"] == [0.0, 1.0, 2.0]
    assert out["entry_codec"] == "fake.thing"
    assert out["dists"].get("fake-codecs-ser-plugin") == "0.1"
    dist, message = out["without_plugin"]
    assert dist == "fake-codecs-ser-plugin"
    assert "pip install fake-codecs-ser-plugin" in message
    assert out["impl_imported_at_end"] is True


def test_broken_entry_points_break_nothing_else(fake_site: Path) -> None:
    out = run_check(fake_site)
    assert out["numpy_ok"] is True and out["zip_ok"] is True
    errors = out["errors"]
    assert errors["fake.badimpl"][0] == "PluginLoadError"
    assert errors["fake.badimpl"][1:] == ["fake.badimpl", "fake-codecs-ser-plugin"]
    assert errors["fake.missing"][0] == "PluginLoadError"
    assert errors["fake.missing"][1:] == ["fake.missing", "fake-codecs-ser-plugin"]
    assert errors["fake.notaspec"][0] == "PluginValidationError"
    assert errors["fake.typeclash"][0] == "PluginValidationError"
    assert errors["fake-broken"][0] == "PluginLoadError"
    assert "fake.typeclash" not in out["codecs"]


def test_autoload_can_be_disabled(fake_site: Path) -> None:
    out = run_check(fake_site, disable="1")
    assert "fake.thing" not in out["codecs"]
    assert {"numpy.ndarray", "numpy.scalar", "numpy.masked"} <= set(out["codecs"])
    assert out["numpy_ok"] is True
    assert out["impl_imported_at_end"] is False
    assert out["errors"]["fake.missing"][0] == "UnknownCodecError"
    assert out["errors"]["fake-broken"][0] == "UnknownBackendError"
    # "0" and "" mean autoload stays on
    assert "fake.thing" in run_check(fake_site, disable="0")["codecs"]


def test_blocked_entry_point_is_ignored(fake_site: Path) -> None:
    out = run_check(fake_site, mode="block")
    assert "fake.thing" not in out["codecs"]
    assert "fake.badimpl" in out["codecs"]
    assert out["numpy_ok"] is True
    # a Thing is then an ordinary object: pickled, its array a numpy blob
    assert out["blocked_format"] == "pickle"
    assert out["blocked_entries"] == {"t/data": "numpy.ndarray"}


CLASH_CHECK = """
import numpy as np
import codecs_ser
from codecs_ser.errors import PluginValidationError

try:
    codecs_ser.dumps({"a": np.arange(3)})
    print("no error")
except PluginValidationError as e:
    message = str(e)
    print("error:", message)
    # do what the message advises, then use numpy arrays as before
    advice = message[message.index("codecs_ser.default_registry.block("):]
    exec(advice.split(")")[0] + ")")
    data = codecs_ser.dumps({"a": np.arange(3)})
    with codecs_ser.open(data) as c:
        print("entries:", list(c.entries))
    print("loaded:", codecs_ser.loads(data)["a"].tolist())
"""


def test_plugin_squatting_a_builtin_id(tmp_path: Path) -> None:
    info = tmp_path / "squatter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: squatter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[codecs_ser.codecs]\nnumpy.ndarray = squatter_mod:SPEC\n"
    )
    (tmp_path / "squatter_mod.py").write_text(
        "from codecs_ser import CodecSpec\n"
        "SPEC = CodecSpec(codec_id='numpy.ndarray', impl='squatter_mod:Codec',"
        " handles=('squatter_mod.T',))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CODECS_SER_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.fspath(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", CLASH_CHECK], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # either the core's own codec keeps working, or following the advice restores it
    assert lines[0] == "no error" or (
        "squatter" in lines[0] and lines[1:] == ["entries: ['a']", "loaded: [0, 1, 2]"]
    ), done.stdout + done.stderr


def test_backend_magic_must_be_offset_and_bytes_pairs() -> None:
    reg = Registry(entry_points=False)
    for magic in (((-1, b"x"),), ((0, b""),), ((0, "text"),), ("tar",)):
        with pytest.raises(PluginValidationError, match="magic"):
            reg.register_backend(BackendSpec("bad", "m:C", magic=magic))  # type: ignore[arg-type]


def test_block_removes_a_plugin_backend_but_not_a_builtin_one() -> None:
    reg = Registry(entry_points=False)
    reg.register_backend(BackendSpec("mine", "m:C", suffixes=(".mine",)))
    assert reg.backend_for_suffix("x.mine") == "mine"
    reg.block("mine")
    assert "mine" not in reg.backends and reg.backend_for_suffix("x.mine") is None
    reg.block("tar")
    assert reg.backend_for_suffix("x.tar") == "tar"
