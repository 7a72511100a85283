"""The walk never fails on, or wanders into, what an object's attributes reach: it
iterates snapshots and stops where the pickler stores a reference."""

from __future__ import annotations

import copyreg
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.codec import CodecBase, CodecSpec, DecodeContext, Encoded
from codecs_ser.errors import PluginValidationError
from codecs_ser.registry import Registry


class Mutator:
    """A leaf type whose codec check adds a key to the dict that holds it (as a garbage
    collection callback or a lazily filled cache would during a walk)."""

    def __init__(self, owner: dict[str, Any]) -> None:
        self.owner = owner


class MutatorCodec(CodecBase):
    codec_id = "test.mutator"

    def can_encode(self, obj: Any) -> bool:
        obj.owner[f"added{len(obj.owner)}"] = 1
        return False

    def encode(self, obj: Any) -> Encoded:  # pragma: no cover - never asked
        raise AssertionError

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:  # pragma: no cover
        raise AssertionError


@pytest.fixture
def mutator_codec() -> Iterator[None]:
    name = f"{Mutator.__module__}.{Mutator.__qualname__}"
    codecs_ser.default_registry.register_codec(MutatorCodec(), handles=(name,))
    try:
        yield
    finally:
        codecs_ser.default_registry.block("test.mutator")


class Holder:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.state["m"] = Mutator(self.state)
        self.state["w"] = np.arange(3)


def test_a_dict_mutated_during_the_walk(tmp_path: Path, mutator_codec: None) -> None:
    obj = Holder()
    codecs_ser.dump({"plain": obj.state, "holder": obj}, tmp_path / "x.tar")
    assert "plain/w" in codecs_ser.load_arrays(tmp_path / "x.tar")


def test_modules_and_importable_functions_are_not_walked(tmp_path: Path) -> None:
    mod = types.ModuleType("codecs_ser_test_walk_mod")
    mod.big = np.zeros(5)  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    try:
        obj = types.SimpleNamespace(mod=mod, fn=np.zeros, own=np.ones(2), cls=np.ndarray)
        codecs_ser.dump(obj, tmp_path / "x.tar")
        assert sorted(codecs_ser.load_arrays(tmp_path / "x.tar")) == ["own"]
        back = codecs_ser.load(tmp_path / "x.tar", trusted=True)
        assert back.mod is mod and back.fn is np.zeros
    finally:
        del sys.modules[mod.__name__]


class Compiled:
    """A compiled function's stand-in: per-run caches beside the user's weights, pickled
    through a reduction registered with copyreg (as PyTensor registers its functions)."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        self.cache = {"jit": np.ones(2), "address": hex(id(self))}


def _reduce_compiled(c: Compiled) -> Any:
    return (Compiled, (c.weights,))


def test_types_registered_with_copyreg_are_walked_through_that_reduction(tmp_path: Path) -> None:
    copyreg.pickle(Compiled, _reduce_compiled)
    try:
        codecs_ser.dump({"fn": Compiled(np.arange(3))}, tmp_path / "x.tar")
        # what pickling saves is named; the cache, which it never saves, is not walked
        assert sorted(codecs_ser.load_arrays(tmp_path / "x.tar")) == ["fn/0"]
        back = codecs_ser.load(tmp_path / "x.tar", trusted=True)["fn"]
        np.testing.assert_array_equal(back.weights, np.arange(3))
    finally:
        del copyreg.dispatch_table[Compiled]


class Value:
    """A named leaf, such as a shared variable's value."""

    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self.data = name, data


class ValueCodec(CodecBase):
    codec_id = "test.value"

    def encode(self, obj: Value) -> Encoded:
        return Encoded(arrays={"data": obj.data}, meta={"name": obj.name})

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Value:
        return Value(encoded.meta["name"], encoded.arrays["data"])

    def leaf_name(self, obj: Value) -> str | None:
        return obj.name or None


class Graph:
    """A compiled graph: values inside, reached by the walk only if it enters."""

    def __init__(self, *values: Value) -> None:
        self.nodes = {"inputs": list(values), "scratch": np.zeros(1)}


def _registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register_codec(
        CodecSpec(
            codec_id="test.value",
            impl=f"{__name__}:ValueCodec",
            handles=(f"{__name__}.Value",),
            opaque=(f"{__name__}.Graph",),
        )
    )
    return reg


def test_opaque_types_are_not_entered_and_codecs_name_what_pickling_meets(
    tmp_path: Path,
) -> None:
    reg = _registry()
    graph = Graph(Value("W", np.ones(2)), Value("W", np.full(2, 2.0)), Value("", np.zeros(3)))
    obj = {"graph": graph, "W": np.zeros(1), "direct": Value("b", np.arange(4))}
    codecs_ser.dump(obj, tmp_path / "x.tar", registry=reg)
    names = sorted(codecs_ser.load_arrays(tmp_path / "x.tar", registry=reg))
    # "direct" is reached by the walk; inside the graph, the codec names its values
    # (W is taken by the array at the key W) and numpy's arrays get generated names.
    assert names == ["W", "W_2", "W_3", "_unnamed/1", "_unnamed/2", "direct"]
    back = codecs_ser.load(tmp_path / "x.tar", registry=reg, trusted=True)
    assert [v.name for v in back["graph"].nodes["inputs"]] == ["W", "W", ""]
    np.testing.assert_array_equal(back["graph"].nodes["inputs"][1].data, np.full(2, 2.0))


def test_opaque_must_name_types() -> None:
    with pytest.raises(PluginValidationError, match="opaque"):
        Registry(entry_points=False).register_codec(
            CodecSpec(codec_id="test.bad", impl="x:Y", opaque=("",))
        )
