"""Golden containers: files written by format version 1 load, forever, and the writer
still writes exactly their bytes.

The files under tests/golden/v1/ were written once by tests/golden/make_golden.py
from the objects in tests/golden/objects.py.  They are never rewritten to make a
test pass; see the generator's docstring.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import numpy as np
import pytest

import codecs_ser

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


objects = _module("codecs_ser_golden_objects", HERE / "golden" / "objects.py")
numpy_only = _module(
    "codecs_ser_read_without", ROOT / "docs" / "examples" / "read_without_codecs_ser.py"
)
GOLDEN = HERE / "golden" / objects.FOLDER
CASES = {case.file: case for case in objects.CASES}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Any:
    return CASES[request.param]


def _path(case: Any) -> Path:
    path = GOLDEN / case.file
    assert path.exists(), f"golden file {path} is missing: it is committed, never generated here"
    return path


# -- comparing exactly -------------------------------------------------------------


def assert_identical(expected: Any, actual: Any, where: str = "", padding: bool = True) -> None:
    """Same types, same dtypes (byte order included), shapes, memory order and bytes
    (with ``padding=False``, the padding bytes between record fields are not compared)."""
    assert type(actual) is type(expected), f"{where}: {type(expected)} loaded as {type(actual)}"
    if isinstance(expected, np.ma.MaskedArray):
        assert_identical(np.asarray(expected.data), np.asarray(actual.data), where + ".data")
        assert_identical(np.ma.getmask(expected), np.ma.getmask(actual), where + ".mask")
        assert expected.hardmask == actual.hardmask, where
        fills = (getattr(expected, "_fill_value", None), getattr(actual, "_fill_value", None))
        if fills[0] is None:
            assert fills[1] is None, where
        else:
            assert_identical(np.asarray(fills[0]), np.asarray(fills[1]), where + ".fill_value")
    elif isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, f"{where}: {expected.dtype} != {actual.dtype}"
        assert actual.dtype.str == expected.dtype.str, where  # byte order, exactly
        assert actual.dtype.descr == expected.dtype.descr, where
        assert actual.shape == expected.shape, where
        if expected.ndim > 1 and expected.flags.f_contiguous and not expected.flags.c_contiguous:
            assert actual.flags.f_contiguous, f"{where}: Fortran order lost"
        if expected.dtype.hasobject:
            assert_identical(expected.tolist(), actual.tolist(), where)
        elif not padding and expected.dtype.names:
            for field in expected.dtype.names:
                assert_identical(expected[field], actual[field], f"{where}.{field}", padding)
        else:
            assert _raw(actual) == _raw(expected), f"{where}: bytes differ"  # NaN bits too
    elif isinstance(expected, np.generic):
        assert actual.dtype == expected.dtype and actual.dtype.str == expected.dtype.str, where
        assert actual.tobytes() == expected.tobytes(), f"{where}: {expected!r} != {actual!r}"
    elif isinstance(expected, float):
        assert math.copysign(1, expected) == math.copysign(1, actual), where
        assert expected == actual or (math.isnan(expected) and math.isnan(actual)), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(expected)} != {list(actual)}"
        if type(expected) is not dict:
            assert vars(actual) == vars(expected) if hasattr(expected, "__dict__") else True
        for k in expected:
            assert_identical(expected[k], actual[k], f"{where}/{k}")
        if hasattr(expected, "default_factory"):
            assert actual.default_factory is expected.default_factory, where
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (x, y) in enumerate(zip(expected, actual, strict=True)):
            assert_identical(x, y, f"{where}/{i}")
    else:
        assert actual == expected, f"{where}: {expected!r} != {actual!r}"
        if hasattr(expected, "maxlen"):
            assert actual.maxlen == expected.maxlen, where


def _raw(array: np.ndarray) -> bytes:
    """The array's memory in C order, padding bytes included (``tobytes`` of a structured
    array may copy field by field and leave padding uninitialized)."""
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # no padded records among these: a copy is exact
    flat = array.reshape(-1)
    return flat.view(np.uint8).tobytes() if flat.size else b""


def _expected_arrays(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """What load_arrays gives for a msgpack object: each leaf's blobs by name."""
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_expected_arrays(value, name + "/"))
        elif isinstance(value, np.ma.MaskedArray):
            out[name] = np.asarray(value.data)
            if value.mask is not np.ma.nomask:
                out[name + ".mask"] = np.ma.getmaskarray(value)
            if getattr(value, "_fill_value", None) is not None:
                out[name + ".fill_value"] = np.asarray(value._fill_value).reshape(())
        elif isinstance(value, np.ndarray):
            out[name] = value.view(np.ndarray)
        elif isinstance(value, np.generic):
            out[name] = np.asarray(value)
    return out


def _all_expected_arrays(case: Any) -> dict[str, np.ndarray]:
    main = case.build()
    second = case.second(main)
    if case.skeleton == "msgpack":
        return {**_expected_arrays(main), **_expected_arrays(second, "second/")}
    masked = main["masked"]
    return {
        "ordered/a/0": main["ordered"]["a"][0],
        "view": main["view"],
        "scalar_in_list/0": np.asarray(main["scalar_in_list"][0]),
        "masked": np.asarray(masked.data),
        "masked.mask": np.ma.getmaskarray(masked),
        "second/weights": second["weights"],
    }


def _assert_same_arrays(
    expected: dict[str, np.ndarray], actual: dict[str, Any], padding: bool = True
) -> None:
    assert sorted(actual) == sorted(expected)
    for name, array in expected.items():
        assert_identical(array, np.asarray(actual[name]), name, padding)


# -- loading -------------------------------------------------------------------------


def test_load_gives_the_expected_objects(case: Any) -> None:
    path = _path(case)
    main = case.build()
    loaded = codecs_ser.load(path, trusted=False)
    assert_identical(main, loaded, case.file)
    assert_identical(case.second(main), codecs_ser.load(path, name="second"), case.file)
    mapped = codecs_ser.load(path, mmap=True)
    assert_identical(main, mapped, case.file + " (mmap)")


def test_views_share_memory_as_documented(case: Any) -> None:
    loaded = codecs_ser.load(_path(case))
    if case.skeleton == "msgpack":
        views = loaded["views"]
        for name in objects.VIEW_ENTRIES:
            key = name.split("/")[-1]
            assert np.shares_memory(views[key], views["base"]), f"{name} is not a view of base"
        assert views["base"].base is None or not np.shares_memory(
            views["base"], loaded["dtypes"]["bool"]
        )
        with codecs_ser.open(_path(case)) as c:
            for name, base in objects.VIEW_ENTRIES.items():
                view = c.entries[name].meta["view"]
                assert list(c.entries)[view["base"]] == base
    else:
        assert loaded["shared"][0] is loaded["shared"][1] is loaded["ordered"]["a"][0]
        assert np.shares_memory(loaded["view"], loaded["shared"][0])


def test_load_arrays(case: Any) -> None:
    _assert_same_arrays(_all_expected_arrays(case), codecs_ser.load_arrays(_path(case)))


def test_verify_finds_nothing(case: Any) -> None:
    assert codecs_ser.verify(_path(case)) == []


def test_open_lists_entries_and_metadata(case: Any) -> None:
    expected = _all_expected_arrays(case)
    with codecs_ser.open(_path(case)) as c:
        assert c.backend == case.backend
        assert c.format_version == 1
        assert c.objects == ["main", "second"]
        assert c.metadata == case.metadata
        assert c.skeleton_format() == case.skeleton
        assert c.skeleton_format("second") == (
            "msgpack" if case.skeleton == "msgpack" else "pickle"
        )
        assert set(c.writer) == {
            "codecs_ser",
            "python",
            "numpy",
            "msgpack",
            "platform",
            "byteorder",
        }
        assert list(c.dists) == ["codecs-ser"]
        entries = c.entries
        blob_names = set()
        for name in entries:
            info = entries[name]
            assert info.codec in ("numpy.ndarray", "numpy.scalar", "numpy.masked"), name
            assert info.codec_version == 1 and info.dist == "codecs-ser", name
            for blob in info.blobs:
                assert blob.checksum.startswith(case.checksum + ":"), name
                blob_names.add(blob.name)
                array = expected[blob.name]
                assert blob.dtype == array.dtype and blob.shape == array.shape, blob.name
        assert blob_names == set(expected)
        for name in entries:
            assert_identical(expected[name], np.asarray(_primary(c.read(name))), name)


def _primary(value: Any) -> Any:
    return np.asarray(value.data) if isinstance(value, np.ma.MaskedArray) else value


def test_manifest_fields_as_specified(case: Any) -> None:
    """Read with msgpack alone, as docs/format.md describes the manifest."""
    manifest = msgpack.unpackb(numpy_only.members(str(_path(case)))[numpy_only.MANIFEST])
    assert manifest["format"] == "codecs_ser" and manifest["format_version"] == 1
    assert manifest["created"] == float(objects.EPOCH)
    assert manifest["checksum"] == case.checksum
    assert [o["name"] for o in manifest["objects"]] == ["main", "second"]
    assert [o["prefix"] for o in manifest["objects"]] == ["", "second/"]
    assert manifest["objects"][1]["metadata"] == case.second_metadata
    assert manifest["objects"][0]["skeleton"]["format"] == case.skeleton


def test_numpy_only_reader(case: Any) -> None:
    """docs/examples/read_without_codecs_ser.py reads every array back."""
    arrays = numpy_only.read_arrays(str(_path(case)))
    # numpy.load copies records field by field: the padding between fields is not the file's
    _assert_same_arrays(_all_expected_arrays(case), arrays, padding=False)


# -- the writer still writes these bytes -------------------------------------------------

REWRITE = """
import json, sys
import codecs_ser._container as container
sys.path.insert(0, sys.argv[1])
import make_golden
pinned = json.loads(sys.argv[3])
container.writer_info = lambda: dict(pinned["writer"])
container._dist_version = lambda dist, cache: None if dist is None else pinned["dists"][dist]
make_golden.write_all(__import__("pathlib").Path(sys.argv[2]))
"""

FROZEN = (
    "The writer no longer produces the bytes of the committed golden file {file} ({member}). "
    "Format v1 is frozen: files written today must be byte-identical to these. "
    "If the change is intended, it needs a format version change (FORMAT_VERSION in "
    "codecs_ser/_manifest.py) and a note in docs/format.md, and new golden files written with "
    "tests/golden/make_golden.py --force into the new version's folder; otherwise fix the "
    "writer. (Before comparing, only the manifest's `writer` and `dists` version fields are "
    "set to the values recorded in the committed files.)"
)


def _files(root: Path) -> dict[str, bytes]:
    if root.is_file():
        return {"": root.read_bytes()}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _pinned_versions() -> dict[str, Any]:
    pinned: list[dict[str, Any]] = []
    for case in objects.CASES:
        with codecs_ser.open(_path(case)) as c:
            pinned.append({"writer": c.writer, "dists": c.dists})
    assert all(p == pinned[0] for p in pinned), "golden files were written by different versions"
    return pinned[0]


MANIFEST = ".codecs_ser/manifest.msgpack"


def _unsealed(manifest: bytes) -> bytes:
    """A 1.1 dir manifest as 1.0 wrote it: without its last key, manifest_checksum."""
    suffix = msgpack.packb("manifest_checksum") + msgpack.packb("xxh3_64:" + "0" * 16)
    assert 0x81 <= manifest[0] <= 0x8F, "the manifest is a map of fewer than 16 keys"
    return bytes((manifest[0] - 1,)) + manifest[1 : -len(suffix)]


def test_writer_still_writes_the_golden_bytes(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONHASHSEED"] = "4242"
    env.pop("SOURCE_DATE_EPOCH", None)  # the generator sets it to objects.EPOCH
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            REWRITE,
            str(HERE / "golden"),
            str(tmp_path),
            json.dumps(_pinned_versions()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for case in objects.CASES:
        golden, fresh = _files(GOLDEN / case.file), _files(tmp_path / case.file)
        if MANIFEST in fresh:
            # Revision 1.1 ends a dir manifest with its own checksum; nothing else changed.
            fresh[MANIFEST] = _unsealed(fresh[MANIFEST])
        for member in sorted(golden.keys() | fresh.keys()):
            same = golden.get(member) == fresh.get(member)
            where = f"member {member!r}" if member else "the whole file"
            assert same, FROZEN.format(
                file=f"tests/golden/{objects.FOLDER}/{case.file}", member=where
            )


def test_generator_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / objects.CASES[0].file).write_bytes(b"keep")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(HERE / "golden" / "make_golden.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1 and "format version change" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [objects.CASES[0].file]
    assert (tmp_path / objects.CASES[0].file).read_bytes() == b"keep"


def test_golden_set_is_small() -> None:
    total = sum(len(b) for case in objects.CASES for b in _files(GOLDEN / case.file).values())
    assert total < 512 * 1024
