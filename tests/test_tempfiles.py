"""What killed writers leave behind is removed by the next successful write, and what
live writers are still writing is never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import codecs_ser
from codecs_ser import _tempfiles

pytestmark = pytest.mark.skipif(_tempfiles.fcntl is None, reason="needs flock (POSIX)")


def _hold_lock(path: Path, folder: bool) -> subprocess.Popen[bytes]:
    """Another process that creates ``path`` and holds its writer's lock until killed."""
    code = textwrap.dedent(
        f"""
        import fcntl, os, sys, time
        path = {str(path)!r}
        if {folder!r}:
            os.mkdir(path)
            fd = os.open(path, os.O_RDONLY)
        else:
            fd = os.open(path, os.O_CREAT | os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    return proc


@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
def test_stale_temporaries_go_live_ones_stay(tmp_path: Path, backend: str) -> None:
    target = tmp_path / f"c.{backend}"
    codecs_ser.dump({"a": np.arange(3)}, target, backend=backend)
    stale_file = tmp_path / f".c.{backend}.tmp-0badf00d"
    stale_file.write_bytes(b"left by a killed writer")
    stale_dir = tmp_path / f".c.{backend}.old-0badf00d"
    stale_dir.mkdir()
    (stale_dir / "x.npy").write_bytes(b"x")
    unrelated = tmp_path / f".c.{backend}.tmp-nothex!"
    unrelated.write_bytes(b"not our name pattern")
    live_name = f".c.{backend}.tmp-1111d1d1"
    live = _hold_lock(tmp_path / live_name, folder=backend == "dir")
    try:
        codecs_ser.dump({"a": np.arange(4)}, target, backend=backend)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([f"c.{backend}", unrelated.name, live_name])
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
        assert live.stdout is not None
        live.stdout.close()
    codecs_ser.add(target, {"b": 1}, name="more")  # the writer is gone now: swept
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"c.{backend}", unrelated.name])
    assert codecs_ser.load(target)["a"].tolist() == [0, 1, 2, 3]


def test_a_killed_dir_add_is_undone_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "c"
    codecs_ser.dump({"a": np.arange(3)}, target, backend="dir")
    code = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        import codecs_ser
        from codecs_ser.backends import dir as backend
        backend.DirWriter.commit = lambda self, m: os.kill(os.getpid(), signal.SIGKILL)
        codecs_ser.add({str(target)!r}, {{"w": np.ones(4), "deep": {{"v": np.zeros(2)}}}},
                       name="second")
        """
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert (target / "second" / "w.npy").exists()  # the killed add's files are there...
    with codecs_ser.open(target) as c:
        assert c.objects == ["main"]  # ...but not in the container
    codecs_ser.add(target, {"w": np.ones(4), "deep": {"v": np.zeros(2)}}, name="second")
    files = sorted(
        os.path.relpath(os.path.join(folder, f), target)
        for folder, _, names in os.walk(target)
        for f in names
    )
    assert files == sorted(
        [
            "a.npy",
            "second/w.npy",
            "second/deep/v.npy",
            ".codecs_ser/manifest.msgpack",
            ".codecs_ser/objects/0.msgpack",
            ".codecs_ser/objects/1.msgpack",
        ]
    )
    assert codecs_ser.verify(target) == []
    with codecs_ser.open(target) as c:
        assert c.objects == ["main", "second"]


def test_a_journal_is_not_replayed_against_an_unreadable_manifest(tmp_path: Path) -> None:
    root = tmp_path / "c"
    codecs_ser.dump({"a": np.arange(3)}, root, backend="dir")
    journal = root / ".codecs_ser" / ".manifest.msgpack.add-0badf00d"
    journal.write_bytes(b"a.npy\n")
    from codecs_ser.backends.dir import sweep_container

    sweep_container(str(root), b"not a manifest")
    assert (root / "a.npy").exists() and journal.exists()
    sweep_container(str(root), (root / ".codecs_ser" / "manifest.msgpack").read_bytes())
    assert (root / "a.npy").exists()  # referenced: kept
    assert not journal.exists()
