"""Fixtures of the PyTensor plugin's tests: compiled code goes to a private folder."""

from __future__ import annotations

import os
import tempfile
from typing import Any

# PyTensor reads its flags once, at import: the compile cache must not land in $HOME.
os.environ.setdefault(
    "PYTENSOR_FLAGS", f"compiledir={tempfile.mkdtemp(prefix='codecs-ser-pytensor-')}"
)

import pytest

BACKENDS = ("tar", "zip", "dir")


@pytest.fixture(params=BACKENDS)
def backend(request: Any) -> str:
    return str(request.param)
