"""Reproducible output: with SOURCE_DATE_EPOCH set, the same object dumps to the same bytes.

Each dump runs in its own process, with its own hash seed and time zone, so that
nothing the bytes may depend on (set order of str items, the clock, the time zone,
temporary names) is shared between the two.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import msgpack
import numpy as np
import pytest

import codecs_ser
from codecs_ser.errors import UsageError

ROOT = Path(codecs_ser.__file__).resolve().parents[1]
EPOCH = 1700000000  # 2023-11-14T22:13:20Z

WRITE = """
import collections, datetime, fractions, sys
import numpy as np
import codecs_ser

base = np.arange(24, dtype="<f8").reshape(4, 6)
plain = {"w": base, "view": base[1:, ::2], "tags": ["a", "b"], "n": 2**70, "t": (1, 2.5, None)}
fancy = {
    "w": np.ones(3, np.float32),
    "names": {"alpha", "beta", "gamma", "delta", "epsilon", b"raw", 7, 2.5, ("x", 1)},
    "frozen": frozenset({"p", "q", "r", frozenset({"s", "t"})}),
    "when": datetime.datetime(2020, 5, 17, 8, 30),
    "ratio": fractions.Fraction(3, 7),
    "ordered": collections.OrderedDict(z=1, a=2),
}
out = sys.argv[1]
for backend in ("tar", "zip", "dir"):
    for label, obj in (("plain", plain), ("fancy", fancy)):
        path = f"{out}/{label}.{backend}"
        codecs_ser.dump(obj, path, backend=backend, metadata={"run": 1}, durable=False)
        codecs_ser.add(path, {"extra": np.zeros(2)}, name="second", durable=False)
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("SOURCE_DATE_EPOCH", None)
    env.update(extra)
    return env


def _write(out: Path, **env: str) -> None:
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", WRITE, str(out)],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root (a dir container is compared file by file), by relative path."""
    if root.is_file():
        return {"": root.read_bytes()}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_object_gives_same_bytes_across_processes(tmp_path: Path) -> None:
    _write(tmp_path / "a", SOURCE_DATE_EPOCH=str(EPOCH), PYTHONHASHSEED="1", TZ="UTC")
    time.sleep(1.1)  # a different second, in case anything read the clock
    _write(tmp_path / "b", SOURCE_DATE_EPOCH=str(EPOCH), PYTHONHASHSEED="2", TZ="JST-9")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len(names) == 6
    for name in names:
        a, b = _files(tmp_path / "a" / name), _files(tmp_path / "b" / name)
        assert a.keys() == b.keys(), name
        for member in a:
            assert a[member] == b[member], f"{name}/{member} differs between the two processes"
    # and the sets were really pickled: the skeleton is a pickle, loads, and compares equal
    obj = codecs_ser.load(tmp_path / "a" / "fancy.tar")
    assert obj["names"] == {"alpha", "beta", "gamma", "delta", "epsilon", b"raw", 7, 2.5, ("x", 1)}
    with codecs_ser.open(tmp_path / "a" / "fancy.tar") as c:
        assert c.skeleton_format() == "pickle"


def test_without_source_date_epoch_a_new_process_writes_the_current_time(tmp_path: Path) -> None:
    _write(tmp_path / "a", PYTHONHASHSEED="1")
    for backend in ("tar", "zip", "dir"):
        with codecs_ser.open(tmp_path / "a" / f"fancy.{backend}") as c:
            created = c._manifest.created
        assert abs(created - time.time()) < 300


def _manifest(data: bytes) -> dict[str, object]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        f = t.extractfile(".codecs_ser/manifest.msgpack")
        assert f is not None
        return msgpack.unpackb(f.read())


def test_times_follow_source_date_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    data = codecs_ser.dumps({"a": np.ones(2)})
    assert _manifest(data)["created"] == float(EPOCH)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert {m.mtime for m in t} == {EPOCH}
        assert {(m.uid, m.gid, m.uname, m.gname, m.mode) for m in t} == {(0, 0, "", "", 0o644)}
    zpath = tmp_path / "a.zip"
    codecs_ser.dump({"a": np.ones(2)}, zpath)
    with zipfile.ZipFile(zpath) as z:
        # zip times are UTC under SOURCE_DATE_EPOCH, so the time zone changes nothing
        assert {i.date_time for i in z.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_created_is_now_without_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = time.time()
    data = codecs_ser.dumps({"a": np.ones(2)})
    created = _manifest(data)["created"]
    assert isinstance(created, float) and before - 1 <= created <= time.time() + 1
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")  # empty counts as unset
    assert abs(_manifest(codecs_ser.dumps({"a": 1}))["created"] - time.time()) < 60  # type: ignore[operator]


@pytest.mark.parametrize("value", ["soon", "1.5", "-1", "1e9", "0x10", "99999999999999", "١٢٣"])
def test_bad_source_date_epoch_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    target = tmp_path / "x.tar"
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        codecs_ser.dump({"a": np.ones(2)}, target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    codecs_ser.dump({"a": np.ones(2)}, target)
    before = target.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        codecs_ser.add(target, {"b": 1}, name="more")
    assert target.read_bytes() == before


def test_source_date_epoch_bounds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before 1980 a zip says 1980-01-01; a tar says exactly the time (pax after 2242)."""
    for epoch, zip_time in ((0, (1980, 1, 1, 0, 0, 0)), (253402300799, (2107, 12, 31, 23, 59, 58))):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
        path = tmp_path / f"{epoch}.zip"
        codecs_ser.dump({"a": np.ones(2)}, path)
        with zipfile.ZipFile(path) as z:
            assert {i.date_time for i in z.infolist()} == {zip_time}
        data = codecs_ser.dumps({"a": np.ones(2)})
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            assert {m.mtime for m in t} == {epoch}
        assert codecs_ser.loads(data)["a"].tolist() == [1.0, 1.0]


def test_set_order_does_not_depend_on_insertion() -> None:
    """Sets of plain data are pickled sorted by value, however they were built."""
    words = [f"w{i}" for i in range(50)]
    a = codecs_ser.dumps({"s": set(words)})
    b = codecs_ser.dumps({"s": set(reversed(words))})
    assert _strip_created(a) == _strip_created(b)


def _strip_created(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        out = {}
        for m in t:
            f = t.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
    manifest = msgpack.unpackb(out.pop(".codecs_ser/manifest.msgpack"))
    manifest.pop("created")
    out.pop(".codecs_ser/trailer")
    out["manifest"] = msgpack.packb(manifest)
    return out
