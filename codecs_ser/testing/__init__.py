"""Conformance checks for codec and backend authors: one meaning of "works with codecs_ser".

A codec package writes::

    from codecs_ser.testing import CodecConformance

    class TestMyCodec(CodecConformance):
        codec_id = "mylib.array"
        def sample_objects(self):
            return [mylib.array([1, 2, 3]), mylib.zeros((2, 0))]

and a backend package::

    from codecs_ser.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend_id = "mystore"

pytest collects the inherited ``test_*`` methods.  The same checks are
available as plain functions (``check_roundtrip`` and friends).  The core's
numpy codecs and its tar, zip and dir backends run exactly these.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

import codecs_ser

from ..codec import BufferView, CodecSpec, Encoded
from ..registry import Registry, default_registry

__all__ = [
    "BackendConformance",
    "CodecConformance",
    "assert_same",
    "check_config",
    "check_light_import",
    "check_roundtrip",
    "check_spec_matches_types",
    "edit_entry_meta",
]


def assert_same(a: Any, b: Any) -> None:
    """Equal values, same types, and for arrays the same dtype, shape and bytes."""
    assert type(a) is type(b), f"type {type(a)!r} came back as {type(b)!r}"
    if isinstance(a, np.ma.MaskedArray):
        np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
        assert_same(np.asarray(a.data), np.asarray(b.data))
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{a.dtype}{a.shape} != {b.dtype}{b.shape}"
        )
        assert a.tobytes() == b.tobytes(), "array bytes differ"
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{a!r} != {b!r}"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=False):
            assert_same(x, y)
    else:
        assert a == b, f"{a!r} != {b!r}"


def check_roundtrip(
    obj: Any,
    *,
    backend: str = "tar",
    folder: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    equal: Callable[[Any, Any], None] = assert_same,
    mmap: bool = False,
    trusted: Any = False,
) -> Any:
    """Dump ``obj`` with ``backend``, load it back, assert it is the same; returns the copy."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = os.path.join(tmp, "container")
        codecs_ser.dump(obj, path, backend=backend, registry=registry)
        problems = codecs_ser.verify(path, registry=registry)
        assert problems == [], problems
        back = codecs_ser.load(path, registry=registry, mmap=mmap, trusted=trusted)
        equal(obj, back)
        return back


def check_config(codec: Any) -> None:
    """``get_config`` is msgpack-safe, names the codec id, and rebuilds an equal codec."""
    config = codec.get_config()
    assert config.get("id") == codec.codec_id, config
    msgpack.packb(config, use_bin_type=True)
    rebuilt = type(codec).from_config(config) if hasattr(type(codec), "from_config") else codec
    assert rebuilt == codec, f"{rebuilt!r} != {codec!r}"
    assert repr(codec) == repr(rebuilt)


def check_spec_matches_types(
    spec: CodecSpec, instances: Iterable[Any], registry: Registry | None = None
) -> None:
    """Each real instance dispatches to ``spec``: the declared type names are the real ones."""
    registry = registry or default_registry
    for obj in instances:
        found = registry.spec_for_type(type(obj))
        assert found is not None and found.codec_id == spec.codec_id, (
            f"{type(obj).__module__}.{type(obj).__qualname__} dispatches to "
            f"{found.codec_id if found else None!r}, not {spec.codec_id!r}; "
            f"the spec handles {spec.handles}"
        )


def check_light_import(
    module: str = "codecs_ser", forbidden: Sequence[str] = ("torch", "jax", "cupy", "numba")
) -> None:
    """Importing ``module`` in a fresh interpreter imports none of ``forbidden``."""
    code = (
        f"import sys, {module}; "
        f"print(','.join(m for m in {tuple(forbidden)!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import {module} imported {out}"


def edit_entry_meta(path: str | os.PathLike[str], entry: str, **fields: Any) -> None:
    """Rewrite fields of one entry's meta in a dir container, as a hostile file would.

    For a codec's hostile tests: dump with ``backend="dir"``, damage the meta its
    decoder reads, and check the load raises a ``codecs_ser.errors`` exception.  The
    manifest's own checksum is dropped (a revision 1.0 manifest has none), so what is
    tested is the decoder, not that checksum.  ``None`` as a value removes the field.
    """
    mpath = Path(path) / ".codecs_ser" / "manifest.msgpack"
    manifest = msgpack.unpackb(mpath.read_bytes(), raw=False)
    manifest.pop("manifest_checksum", None)
    index = manifest["names"].index(entry)
    record = msgpack.unpackb(manifest["entries"][index], raw=False)
    meta = record[manifest["entry_fields"].index("meta")]
    for key, value in fields.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    manifest["entries"][index] = msgpack.packb(record, use_bin_type=True)
    mpath.write_bytes(msgpack.packb(manifest, use_bin_type=True))


class CodecConformance:
    """Checks every codec passes.  Set ``codec_id``; override ``sample_objects``."""

    codec_id: str = ""
    backends: Sequence[str] = ("tar", "zip", "dir")

    def sample_objects(self) -> list[Any]:
        raise NotImplementedError("return a few objects this codec encodes")

    def assert_equal(self, a: Any, b: Any) -> None:
        assert_same(a, b)

    def registry(self) -> Registry:
        return default_registry

    def _spec(self) -> CodecSpec:
        spec = self.registry().codecs.get(self.codec_id)
        assert spec is not None, f"codec {self.codec_id!r} is not registered (entry point missing?)"
        return spec

    def test_spec_is_declarative(self) -> None:
        spec = self._spec()
        assert isinstance(spec, CodecSpec)
        assert all(isinstance(h, str) for h in spec.handles) and spec.handles

    def test_samples_dispatch_to_codec(self) -> None:
        check_spec_matches_types(self._spec(), self.sample_objects(), self.registry())

    def test_encode_gives_arrays_and_msgpack_meta(self) -> None:
        codec = self.registry().get_codec(self.codec_id)
        assert isinstance(codec.codec_version, int) and codec.codec_version >= 1
        for obj in self.sample_objects():
            enc = codec.encode(obj)
            assert isinstance(enc, Encoded) and enc.arrays
            assert all(isinstance(a, (np.ndarray, BufferView)) for a in enc.arrays.values())
            msgpack.packb(dict(enc.meta), use_bin_type=True)

    def test_roundtrip_every_backend(self, tmp_path: Path) -> None:
        for backend in self.backends:
            for obj in self.sample_objects():
                check_roundtrip(
                    {"leaf": obj},
                    backend=backend,
                    folder=tmp_path,
                    registry=self.registry(),
                    equal=lambda a, b: self.assert_equal(a["leaf"], b["leaf"]),
                )

    def test_identity_kept(self, tmp_path: Path) -> None:
        obj = self.sample_objects()[0]
        path = tmp_path / "shared.tar"
        codecs_ser.dump({"a": obj, "b": obj}, path, registry=self.registry())
        back = codecs_ser.load(path, registry=self.registry())
        assert back["a"] is back["b"]
        with codecs_ser.open(path, registry=self.registry()) as c:
            assert len(c.entries) == 1

    def test_arrays_readable_as_numpy(self, tmp_path: Path) -> None:
        path = tmp_path / "plain.zip"
        codecs_ser.dump({"x": self.sample_objects()[0]}, path, registry=self.registry())
        arrays = codecs_ser.load_arrays(path, registry=self.registry())
        assert "x" in arrays and isinstance(arrays["x"], np.ndarray)
        with np.load(path) as npz:
            assert "x" in npz.files

    def test_mmap_roundtrip(self, tmp_path: Path) -> None:
        for obj in self.sample_objects():
            check_roundtrip(
                [obj],
                backend="tar",
                folder=tmp_path,
                registry=self.registry(),
                mmap=True,
                equal=lambda a, b: self.assert_equal(a[0], b[0]),
            )


class BackendConformance:
    """Checks every backend passes.  Set ``backend_id``; override ``target`` if needed."""

    backend_id: str = ""

    def registry(self) -> Registry:
        return default_registry

    def target(self, tmp_path: Path, name: str = "container") -> str:
        return str(tmp_path / name)

    def sample(self) -> dict[str, Any]:
        rng = np.random.default_rng(0)
        return {
            "model": {"w": rng.standard_normal((7, 5)).astype(np.float32), "b": np.arange(5)},
            "steps": [np.float64(0.5), np.zeros((0, 3)), np.asfortranarray(np.ones((3, 2)))],
            "name": "run",
            "é/..": np.array(["a", "bc"]),
        }

    def test_roundtrip(self, tmp_path: Path) -> None:
        target = self.target(tmp_path)
        obj = self.sample()
        codecs_ser.dump(obj, target, backend=self.backend_id, registry=self.registry())
        assert_same(obj, codecs_ser.load(target, registry=self.registry()))
        assert codecs_ser.verify(target, registry=self.registry()) == []

    def test_open_reads_single_entry(self, tmp_path: Path) -> None:
        target = self.target(tmp_path)
        obj = self.sample()
        codecs_ser.dump(obj, target, backend=self.backend_id, registry=self.registry())
        with codecs_ser.open(target, registry=self.registry()) as c:
            assert "model/w" in c.entries
            assert_same(obj["model"]["w"], c.read("model/w"))

    def test_mmap(self, tmp_path: Path) -> None:
        target = self.target(tmp_path)
        obj = self.sample()
        codecs_ser.dump(obj, target, backend=self.backend_id, registry=self.registry())
        back = codecs_ser.load(target, mmap=True, registry=self.registry())
        assert_same(obj, back)

    def test_add_keeps_old_objects(self, tmp_path: Path) -> None:
        target = self.target(tmp_path)
        obj = self.sample()
        codecs_ser.dump(obj, target, backend=self.backend_id, registry=self.registry())
        extra = {"w_again": obj["model"]["w"].copy(), "new": np.ones(3)}
        codecs_ser.add(target, extra, name="extra", registry=self.registry())
        assert_same(obj, codecs_ser.load(target, registry=self.registry()))
        assert_same(extra, codecs_ser.load(target, name="extra", registry=self.registry()))
        assert codecs_ser.verify(target, registry=self.registry()) == []

    def test_failed_dump_leaves_old_container(self, tmp_path: Path) -> None:
        target = self.target(tmp_path)
        obj = self.sample()
        codecs_ser.dump(obj, target, backend=self.backend_id, registry=self.registry())

        class Boom:
            def __reduce__(self) -> Any:
                raise RuntimeError("boom")

        try:
            codecs_ser.dump(
                {"a": np.ones(10), "bad": Boom()},
                target,
                backend=self.backend_id,
                registry=self.registry(),
            )
        except RuntimeError:
            pass
        else:
            raise AssertionError("dump of an unpicklable object did not raise")
        assert_same(obj, codecs_ser.load(target, registry=self.registry()))
        leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".")]
        assert leftovers == [], leftovers
