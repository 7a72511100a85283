"""Shared fixtures: a fresh registry per test, so no test changes the global one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from codecs_ser.registry import Registry

Tree = dict[str, "bytes | None"]


def _tree(root: Path) -> Tree:
    out: Tree = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(folder, d), root)] = None
        for f in files:
            p = os.path.join(folder, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


@pytest.fixture
def registry() -> Registry:
    return Registry(entry_points=False)


@pytest.fixture
def snapshot() -> Callable[[Path], Tree]:
    """Every file and folder under a root, files with their bytes: to prove nothing changed."""
    return _tree
