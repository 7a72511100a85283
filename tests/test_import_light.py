"""Importing codecs_ser, and dumping and loading plain numpy data, import no framework."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from codecs_ser.testing import check_light_import

FRAMEWORKS = ("torch", "jax", "jaxlib", "cupy", "numba", "tensorflow")
WATCHED = (*FRAMEWORKS, "cloudpickle", "importlib.metadata")

PROBE = f"""
import json, sys
WATCHED = {WATCHED!r}
loaded = lambda: sorted(m for m in WATCHED if m in sys.modules)
steps = {{"before": loaded()}}
import codecs_ser
steps["import"] = loaded()
import numpy as np
state = {{"model": {{"w": np.ones((3, 4), np.float32), "b": np.zeros(4)}}, "step": 3,
         "scalar": np.float64(0.5), "masked": np.ma.masked_array([1.0, 2.0], mask=[0, 1])}}
data = codecs_ser.dumps(state)
steps["dump"] = loaded()
back = codecs_ser.loads(data)
assert back["step"] == 3 and back["model"]["w"].shape == (3, 4)
codecs_ser.load_arrays(data)
with codecs_ser.open(data) as c:
    steps["format"] = c.skeleton_format()
steps["load"] = loaded()
print(json.dumps(steps))
"""


def _run(env_extra: dict[str, str] | None = None) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "CODECS_SER_DISABLE_PLUGIN_AUTOLOAD"}
    env.update(env_extra or {})
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_imports_no_framework_no_pickler_and_no_entry_points() -> None:
    steps = _run()
    assert steps["before"] == []
    assert steps["import"] == []


def test_plain_numpy_dump_and_load_import_no_framework() -> None:
    steps = _run()
    assert steps["format"] == "msgpack"
    for step in ("dump", "load"):
        assert not set(steps[step]) & set(FRAMEWORKS), steps[step]
        # a msgpack skeleton needs no pickler
        assert "cloudpickle" not in steps[step]
    # entry points are read on first need: the first dump reads them
    assert "importlib.metadata" in steps["dump"]


def test_without_plugin_autoload_entry_points_are_never_read() -> None:
    steps = _run({"CODECS_SER_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert steps["dump"] == [] and steps["load"] == []


#: What only some calls need (sha256 checksums, compression, temporary files, plugins):
#: imported by those calls, never by ``import codecs_ser`` (the import budget of
#: benchmarks/bench_core.py, measured there, not here).
ONLY_SOME_CALLS = (
    "hashlib",
    "bz2",
    "lzma",
    "tempfile",
    "tarfile",
    "zipfile",
    "shutil",
    "threading",
    "cloudpickle",
    "importlib.metadata",
)


def test_import_leaves_what_only_some_calls_need() -> None:
    check_light_import("codecs_ser", forbidden=ONLY_SOME_CALLS)


def test_check_light_import_helper() -> None:
    check_light_import()
    check_light_import("codecs_ser", forbidden=WATCHED)
    check_light_import("codecs_ser.registry", forbidden=WATCHED)
    check_light_import("codecs_ser.testing", forbidden=FRAMEWORKS)


def test_check_light_import_detects_a_heavy_import() -> None:
    try:
        check_light_import("json", forbidden=("json.decoder",))
    except AssertionError as e:
        assert "json.decoder" in str(e)
    else:
        raise AssertionError("check_light_import missed an import")
