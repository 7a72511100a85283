"""The ``codecs-ser`` command: inspect, audit, verify and plugins, as scripts use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser import _cli


class Custom:
    """A class the default allowlist does not know: loading it needs trust."""

    def __init__(self) -> None:
        self.w = np.arange(3.0)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = _cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def plain(tmp_path: Path) -> str:
    path = tmp_path / "plain.tar"
    codecs_ser.dump(
        {"model": {"layers": [{"w": np.ones((2, 3), np.float32)}], "b": np.zeros(4)}, "step": 3},
        path,
        metadata={"epoch": 3},
    )
    codecs_ser.add(path, {"exp_avg": np.zeros(4)}, name="optimizer", metadata={"lr": 0.1})
    return os.fspath(path)


@pytest.fixture
def pickled(tmp_path: Path) -> str:
    path = tmp_path / "pickled.zip"
    codecs_ser.dump({"custom": Custom()}, path)
    return os.fspath(path)


@pytest.fixture
def by_value(tmp_path: Path) -> str:
    path = tmp_path / "code.tar"
    codecs_ser.dump({"f": lambda x: x + 1}, path, code_by_value="allow")
    return os.fspath(path)


# -- inspect ---------------------------------------------------------------------------


def test_inspect_shows_objects_metadata_and_entries(
    plain: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "inspect", plain)
    assert code == 0
    assert "metadata: {'epoch': 3}" in out
    assert "object 'optimizer': msgpack skeleton, metadata {'lr': 0.1}" in out
    assert "model/layers/0/w" in out and "(2, 3)" in out
    assert "3 entries" in out


def test_inspect_tree_shows_the_hierarchy(plain: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--tree", plain)
    assert code == 0
    lines = out.splitlines()
    at = lines.index("main")
    assert lines[at + 1 : at + 6] == [
        "`-- model/",
        "    |-- layers/",
        "    |   `-- 0/",
        "    |       `-- w  float32 (2, 3) 24 B",
        "    `-- b  float64 (4,) 32 B",
    ]
    assert "optimizer" in lines and "`-- exp_avg  float64 (4,) 32 B" in lines


def test_inspect_tree_of_an_array_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.tar"
    codecs_ser.dump(np.arange(5, dtype=np.int8), path)
    code, out, _ = run(capsys, "inspect", "--tree", os.fspath(path))
    assert code == 0 and "main int8 (5,) 5 B" in out.splitlines()


def test_inspect_abbreviates_long_dtypes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = np.dtype([(f"field_with_a_long_name_{i}", "<f8", (3,)) for i in range(40)])
    path = tmp_path / "r.tar"
    codecs_ser.dump({"r": np.zeros(2, record), "s": np.zeros(1, "U200")}, path)
    code, out, _ = run(capsys, "inspect", os.fspath(path))
    assert code == 0
    assert "record[40] (960 B)" in out
    assert max(len(line) for line in out.splitlines()[2:]) < 80
    code, out, _ = run(capsys, "inspect", "--json", os.fspath(path))
    (report,) = json.loads(out)
    assert report["entries"][0]["dtype"] == str(record)  # JSON keeps the whole dtype


def test_short_dtype() -> None:
    assert _cli._short_dtype(np.dtype("float32")) == "float32"
    long = np.dtype("(2,3,4,5,6,7)<f8")
    assert len(_cli._short_dtype(long.base if long.subdtype is None else long)) <= 24


def test_inspect_json(plain: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--json", plain)
    assert code == 0
    (report,) = json.loads(out)
    assert report["file"] == plain and report["backend"] == "tar"
    assert report["metadata"] == {"epoch": 3}
    assert report["objects"] == [
        {"name": "main", "skeleton": "msgpack", "metadata": {}},
        {"name": "optimizer", "skeleton": "msgpack", "metadata": {"lr": 0.1}},
    ]
    first = report["entries"][0]
    assert first == {
        "name": "model/layers/0/w",
        "object": "main",
        "path": "model/layers/0/w",
        "codec": "numpy.ndarray",
        "dtype": "float32",
        "shape": [2, 3],
        "nbytes": 24,
        "device": None,
    }
    assert report["nbytes"] == 24 + 32 + 32


def test_inspect_json_encodes_bytes_and_escapes_controls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.tar"
    codecs_ser.dump({"a": np.ones(1)}, path, metadata={"raw": b"\x00\xff", "t": "\x1b[2J"})
    code, out, _ = run(capsys, "inspect", "--json", os.fspath(path))
    assert code == 0 and "\x1b" not in out
    (report,) = json.loads(out)
    assert report["metadata"] == {"raw": {"base64": "AP8="}, "t": "\x1b[2J"}


def test_several_files_the_worst_status_wins(
    plain: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk" * 300)
    code, out, err = run(capsys, "inspect", plain, os.fspath(junk), plain)
    assert code == 2
    assert out.count("codecs_ser format 1") == 2
    assert "junk.bin" in err
    code, out, _ = run(capsys, "inspect", "--json", plain, os.fspath(junk))
    assert code == 2
    good, bad = json.loads(out)
    assert good["file"] == plain and "entries" in good
    assert bad["file"] == os.fspath(junk) and "not a codecs_ser container" in bad["error"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"codecs-ser {codecs_ser.__version__}"


def test_every_subcommand_has_one_function_pair() -> None:
    assert set(_cli.COMMANDS) >= {"inspect", "audit", "verify", "plugins"}
    parser = _cli._parser()
    for name in ("inspect", "audit", "verify"):
        assert parser.parse_args([name, "a", "b", "--json"]).files == ["a", "b"]


# -- audit -----------------------------------------------------------------------------


def test_audit_plain_data_imports_nothing(plain: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", plain)
    assert code == 0
    assert "object 'main': plain data (msgpack), loading imports nothing" in out
    assert "loads with the default allowlist" in out


def test_audit_marks_what_needs_trust(pickled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", pickled)
    assert code == 1
    custom = f"{__name__}.Custom"
    assert any(
        line.split() == [custom, "not", "allowed", "by", "default"] for line in out.splitlines()
    )
    assert f"loading needs trusted=['{custom}']" in out
    code, out, _ = run(capsys, "audit", "--json", pickled)
    (report,) = json.loads(out)
    assert report["needs_trust"] == [custom]
    (obj,) = report["objects"]
    assert obj["skeleton"] == "pickle" and obj["code_by_value"] is False
    assert {"name": custom, "allowed": False, "danger": None} in obj["globals"]
    assert all(g["allowed"] for g in obj["globals"] if g["name"] != custom)


def test_audit_says_when_code_comes_by_value(
    by_value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", by_value)
    assert code == 1
    assert "holds code by value" in out and "DANGEROUS" in out
    assert "trusted=True" in out and "trusted=['" not in out  # never advice to trust those
    code, out, _ = run(capsys, "audit", "--json", by_value)
    assert json.loads(out)[0]["objects"][0]["code_by_value"] is True


class Shell:
    def __reduce__(self) -> Any:
        return (os.system, ("true",))


def test_audit_marks_dangerous_globals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shell.tar"
    codecs_ser.dump({"x": Shell()}, path)
    code, out, _ = run(capsys, "audit", os.fspath(path))
    assert code == 1
    system = f"{os.system.__module__}.system"
    assert any(line.split()[:2] == [system, "DANGEROUS:"] for line in out.splitlines()), out
    code, out, _ = run(capsys, "audit", "--json", os.fspath(path))
    (report,) = json.loads(out)
    (g,) = report["objects"][0]["globals"]
    assert g["name"] == system and not g["allowed"] and "commands" in g["danger"]


def test_audit_takes_the_code_by_value_flag_from_the_container(
    pickled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        codecs_ser.Container, "code", lambda self, name=None: [{"name": "m.f", "path": "f"}]
    )
    code, out, _ = run(capsys, "audit", pickled)
    assert code == 1 and "holds code by value" in out


def test_audit_suggests_a_pattern_for_a_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pkg.tar"
    codecs_ser.dump({"a": Custom(), "b": Other(), "c": Third()}, path)
    code, out, _ = run(capsys, "audit", os.fspath(path))
    assert code == 1
    assert f"loading needs trusted=['{__name__.split('.')[0]}.*']" in out


class Other:
    pass


class Third:
    pass


# -- verify ----------------------------------------------------------------------------


def test_verify_json(plain: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.tar"
    codecs_ser.dump({"x": np.full(64, 7, np.uint8)}, bad)
    data = bytearray(bad.read_bytes())
    at = data.find(bytes([7] * 64))
    data[at] ^= 1
    bad.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify", "--json", plain, os.fspath(bad))
    assert code == 1
    good, broken = json.loads(out)
    assert good == {"file": plain, "ok": True, "problems": []}
    assert broken["ok"] is False and broken["problems"][0]["member"] == "x.npy"
    code, out, _ = run(capsys, "verify", plain, os.fspath(bad))
    assert code == 1 and "OK, every checksum matches" in out and "1 problem(s)" in out


# -- pipes -----------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``codecs-ser inspect f | head`` exits 0 with nothing on stderr."""
    path = tmp_path / "many.tar"
    codecs_ser.dump({f"array_number_{i}": np.zeros(1) for i in range(3000)}, path)
    for extra in ([], ["--json"], ["--tree"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "codecs_ser", "inspect", *extra, os.fspath(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # what head does after its lines
        err = proc.stderr.read()
        proc.stderr.close()
        assert proc.wait(timeout=60) == 0, err
        assert err == b""


def test_errors_go_to_stderr_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", os.fspath(tmp_path / "missing.tar"))
    assert code == 2 and out.strip() == ""
    assert err.startswith("codecs-ser: error:") and "missing.tar" in err
