"""Fixtures of the torch plugin's tests."""

from __future__ import annotations

from typing import Any

import pytest

BACKENDS = ("tar", "zip", "dir")


@pytest.fixture(params=BACKENDS)
def backend(request: Any) -> str:
    return str(request.param)
