"""The examples in docs/examples: public API only, usage without arguments, and the
quick start leaves a file that ``codecs-ser inspect`` reads."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.fspath(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_examples_use_only_public_api(example: Path) -> None:
    for node in ast.walk(ast.parse(example.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("codecs_ser"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(a.name.startswith("_") for a in node.names)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "codecs_ser"
        ):
            assert not node.attr.startswith("_"), node.attr


def test_read_without_codecs_ser_prints_its_usage(tmp_path: Path) -> None:
    done = _python(os.fspath(ROOT / "docs/examples/read_without_codecs_ser.py"), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout.startswith("Usage:")


def test_quickstart_leaves_a_file_to_inspect(tmp_path: Path) -> None:
    done = _python(os.fspath(ROOT / "docs/examples/quickstart.py"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "every checksum matches" in done.stdout
    left = tmp_path / "quickstart.tar"
    inspected = _python("-m", "codecs_ser", "inspect", os.fspath(left), cwd=tmp_path)
    assert inspected.returncode == 0 and "object 'optimizer'" in inspected.stdout
    usage = _python(os.fspath(ROOT / "docs/examples/quickstart.py"), "--help", cwd=tmp_path)
    assert usage.returncode == 0 and usage.stdout.startswith("Usage:")
