"""Shared fixtures: a fresh registry per test, so no test changes the global one."""

from __future__ import annotations

import pytest

from codecs_ser.registry import Registry


@pytest.fixture
def registry() -> Registry:
    return Registry(entry_points=False)
