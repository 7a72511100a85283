"""The walk never fails on, or wanders into, what an object's attributes reach: it
iterates snapshots and stops where the pickler stores a reference."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser.codec import CodecBase, DecodeContext, Encoded


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
