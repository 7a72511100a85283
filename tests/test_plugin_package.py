"""The example plugin as its users get it: real wheels in a fresh virtual environment.

The core and ``docs/examples/codecs-ser-example`` are built as wheels and
installed with pip in a new venv (numpy, msgpack, cloudpickle and xxhash come
from the package index).  Every check runs in a process of that venv, so the
plugin is found only through the entry points its installed metadata declares,
never through this checkout.  The same venv runs the python examples of
docs/plugins.md and of the example's README; a fast test checks that the code
docs/plugins.md quotes is still what the example's files hold.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "codecs-ser-example"
DOCS = (ROOT / "docs" / "plugins.md", EXAMPLE / "README.md")
PIP_TIMEOUT = 600
RUN_TIMEOUT = 300

#: Variables of this process that must not leak into the venv's processes.
_DROP = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "CODECS_SER_DISABLE_PLUGIN_AUTOLOAD",
)

SPEED = [1.5, 2.0, 4.0]

DUMP = (
    f"SPEED = {SPEED!r}\n"
    + """
import sys
import numpy as np
import codecs_ser
from codecs_ser_example import Quantity

folder = sys.argv[1]
obj = {"speed": Quantity(np.array(SPEED), "m/s"), "steps": np.arange(4), "name": "run"}
codecs_ser.dump(obj, folder + "/run.tar")
codecs_ser.dump(obj, folder + "/run.expack")
codecs_ser.dump(obj, folder + "/run.bin", backend="example-pack")
"""
)

LOAD = (
    f"SPEED = {SPEED!r}\n"
    + """
import json, sys
import numpy as np
import codecs_ser
from codecs_ser_example import Quantity

folder = sys.argv[1]
expected = Quantity(np.array(SPEED), "m/s")
report = {}
for name in ("run.tar", "run.expack", "run.bin"):
    path = folder + "/" + name
    with codecs_ser.open(path) as c:
        facts = {"backend": c.backend, "codec": c.entries["speed"].codec, "dists": c.dists}
    obj = codecs_ser.load(path)
    mapped = codecs_ser.load(path, mmap=True)
    facts.update(
        type=type(obj["speed"]).__module__ + "." + type(obj["speed"]).__qualname__,
        equal=bool(obj["speed"] == expected and mapped["speed"] == expected),
        mapped_writeable=bool(mapped["speed"].value.flags.writeable),
        steps=obj["steps"].tolist(),
        name=obj["name"],
        problems=codecs_ser.verify(path),
    )
    report[name] = facts
print(json.dumps(report))
"""
)

ENTRY_POINTS = """
import json, sys
from importlib.metadata import entry_points
import codecs_ser

registry = codecs_ser.default_registry
print(json.dumps({
    "codecs": {ep.name: ep.value for ep in entry_points(group="codecs_ser.codecs")},
    "backends": {ep.name: ep.value for ep in entry_points(group="codecs_ser.backends")},
    "registered": sorted(registry.codecs),
    "codec_dist": registry.codecs["example.quantity"].dist,
    "backend_suffixes": list(registry.backends["example-pack"].suffixes),
    "imported": sorted(m for m in sys.modules if m.startswith("codecs_ser_example.")),
    "core_file": codecs_ser.__file__,
    "prefix": sys.prefix,
}))
"""

WITHOUT_PLUGIN = """
import json, sys
import codecs_ser
from codecs_ser.errors import FormatError, UnknownCodecError

folder = sys.argv[1]
out = {"registered": sorted(codecs_ser.default_registry.codecs)}
try:
    codecs_ser.load(folder + "/run.tar")
except UnknownCodecError as e:
    out["error"] = {"message": str(e), "dist": e.dist, "codec_id": e.codec_id}
arrays = codecs_ser.load_arrays(folder + "/run.tar")
out["arrays"] = {
    k: [type(v).__module__ + "." + type(v).__qualname__, v.tolist()] for k, v in arrays.items()
}
try:
    codecs_ser.load(folder + "/run.expack")
except FormatError as e:
    out["pack_error"] = str(e)
print(json.dumps(out))
"""


def _run(cmd: list[str], *, cwd: Path, timeout: int, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``; fail the test with its output if it fails.  Returns stdout."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment with the core's and the example's wheels installed."""

    python: Path
    example_wheel: Path
    work: Path

    def pip(self, *args: str) -> str:
        return _run(
            [str(self.python), "-m", "pip", "--disable-pip-version-check", *args],
            cwd=self.work,
            timeout=PIP_TIMEOUT,
        )

    def script(self, code: str, *args: str, **env: str) -> Any:
        """Run ``code`` in a new process of the venv and decode the JSON it prints."""
        out = _run(
            [str(self.python), "-c", code, *args],
            cwd=self.work,
            timeout=RUN_TIMEOUT,
            env=_clean_env(**env),
        )
        return json.loads(out.strip().splitlines()[-1])


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


_BLOCK = re.compile(
    r"(?:<!-- quote: (?P<quote>\S+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)\n```", re.S
)


def _code_blocks(doc: Path) -> list[tuple[str, str | None, str]]:
    """(language, quoted example file or None, code) of every fenced block of a markdown file."""
    text = doc.read_text(encoding="utf-8")
    return [(m["lang"], m["quote"], m["code"]) for m in _BLOCK.finditer(text)]


def test_doc_quotes_match_the_example_files() -> None:
    quotes = [(path, code) for _, path, code in _code_blocks(DOCS[0]) if path is not None]
    assert len(quotes) >= 8, quotes
    for path, code in quotes:
        source = (EXAMPLE / path).read_text(encoding="utf-8")
        assert f"\n{code}\n" in f"\n{source}", f"docs/plugins.md quotes {path}; it differs:\n{code}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("plugin_package")
    wheels = base / "wheels"
    for project in (ROOT, EXAMPLE):
        _run(
            [
                *(sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check"),
                *("--no-deps", "--no-build-isolation", "-w", str(wheels), str(project)),
            ],
            cwd=base,
            timeout=PIP_TIMEOUT,
        )
    core_wheel = _one(wheels, "codecs_ser-*.whl")
    example_wheel = _one(wheels, "codecs_ser_example-*.whl")
    folder = base / "venv"
    _run([sys.executable, "-m", "venv", str(folder)], cwd=base, timeout=PIP_TIMEOUT)
    scripts = folder / ("Scripts" if os.name == "nt" else "bin")
    env = Venv(python=scripts / "python", example_wheel=example_wheel, work=base)
    env.pip("install", str(core_wheel), str(example_wheel), "pytest")
    return env


@pytest.fixture(scope="module")
def written(venv: Venv) -> Path:
    """Containers holding a Quantity, written by one process of the venv."""
    folder = venv.work / "written"
    folder.mkdir()
    _run(
        [str(venv.python), "-c", DUMP, str(folder)],
        cwd=venv.work,
        timeout=RUN_TIMEOUT,
    )
    return folder


@pytest.mark.slow
def test_entry_points_found_through_installed_metadata(venv: Venv) -> None:
    facts = venv.script(ENTRY_POINTS)
    assert facts["codecs"]["example.quantity"] == "codecs_ser_example._spec:QUANTITY"
    assert facts["backends"]["example-pack"] == "codecs_ser_example._spec:PACK"
    assert facts["codecs"]["numpy.ndarray"] == "codecs_ser.codecs._specs:NDARRAY"
    assert "example.quantity" in facts["registered"]
    assert facts["codec_dist"] == "codecs-ser-example"
    assert facts["backend_suffixes"] == [".expack"]
    # Listing the registry imports the spec module only, no implementation.
    assert facts["imported"] == ["codecs_ser_example._spec"]
    # The venv's own copy of the core, not this checkout.
    assert Path(facts["core_file"]).is_relative_to(Path(facts["prefix"]))
    assert not Path(facts["core_file"]).is_relative_to(ROOT)


@pytest.mark.slow
def test_roundtrip_in_a_separate_process(venv: Venv, written: Path) -> None:
    report = venv.script(LOAD, str(written))
    backends = {"run.tar": "tar", "run.expack": "example-pack", "run.bin": "example-pack"}
    for name, backend in backends.items():
        facts = report[name]
        assert facts["backend"] == backend, name
        assert facts["codec"] == "example.quantity", name
        assert facts["dists"]["codecs-ser-example"] == "0.1.0", name
        assert facts["type"] == "codecs_ser_example.quantity.Quantity", name
        assert facts["equal"] is True, name
        assert facts["mapped_writeable"] is False, name
        assert facts["steps"] == [0, 1, 2, 3], name
        assert facts["name"] == "run", name
        assert facts["problems"] == [], name


@pytest.mark.slow
def test_example_conformance_suite_passes(venv: Venv) -> None:
    result = subprocess.run(
        [str(venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), result.stdout


@pytest.mark.slow
def test_autoload_can_be_disabled(venv: Venv, written: Path) -> None:
    out = venv.script(WITHOUT_PLUGIN, str(written), CODECS_SER_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "example.quantity" not in out["registered"]
    assert out.get("error") is not None, "load() did not raise UnknownCodecError"
    assert out["error"]["dist"] == "codecs-ser-example"


@pytest.mark.slow
def test_missing_plugin_names_its_distribution(venv: Venv, written: Path) -> None:
    venv.pip("uninstall", "-y", "codecs-ser-example")
    try:
        out = venv.script(WITHOUT_PLUGIN, str(written))
    finally:
        venv.pip("install", "--no-deps", str(venv.example_wheel))
    assert "example.quantity" not in out["registered"]
    error = out.get("error")
    assert error is not None, "load() did not raise UnknownCodecError"
    assert error["codec_id"] == "example.quantity"
    assert error["dist"] == "codecs-ser-example"
    assert "pip install codecs-ser-example" in error["message"]
    assert "load_arrays" in error["message"]
    shown = "codecs_ser.errors.UnknownCodecError: " + error["message"].split(" Registered")[0]
    assert shown in DOCS[0].read_text(encoding="utf-8"), "docs/plugins.md shows another message"
    assert out["arrays"] == {
        "speed": ["numpy.ndarray", SPEED],
        "steps": ["numpy.ndarray", [0, 1, 2, 3]],
    }
    # A file of a backend that is not installed cannot even be opened.
    assert "not a codecs_ser container" in out["pack_error"]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_examples_run(venv: Venv, doc: Path) -> None:
    """The unquoted python blocks of a doc run in order and print what their comments say."""
    blocks = [code for lang, path, code in _code_blocks(doc) if lang == "python" and path is None]
    assert blocks, f"no python examples in {doc}"
    code = "\n\n".join(blocks)
    prints = [line.strip() for line in code.splitlines() if line.strip().startswith("print(")]
    assert all("  # " in line for line in prints), "every print shows its output in a comment"
    expected = [line.split("  # ", 1)[1] for line in prints]
    folder = venv.work / f"doc-{doc.stem}"
    folder.mkdir()
    out = _run([str(venv.python), "-c", code], cwd=folder, timeout=RUN_TIMEOUT)
    assert out.splitlines() == expected
