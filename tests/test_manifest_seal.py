"""A dir manifest carries its own checksum (format revision 1.1): any damage to it is
caught; dir containers written before load as they did; tar and zip keep theirs in the
trailer and the comment."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

import codecs_ser
from codecs_ser._manifest_seal import SEAL_KEY, seal
from codecs_ser.errors import FormatError, IntegrityError

MANIFEST = ".codecs_ser/manifest.msgpack"


def _dir(tmp_path: Path) -> Path:
    path = tmp_path / "c"
    codecs_ser.dump({"a": np.arange(4.0), "meta": "x"}, path, backend="dir", metadata={"k": 1})
    return path


def test_dir_manifest_ends_with_its_checksum(tmp_path: Path) -> None:
    path = _dir(tmp_path)
    data = (path / MANIFEST).read_bytes()
    raw = msgpack.unpackb(data)
    assert list(raw)[-1] == SEAL_KEY and raw[SEAL_KEY].startswith("xxh3_64:")
    codecs_ser.add(path, {"b": np.ones(2)}, name="more")
    assert list(msgpack.unpackb((path / MANIFEST).read_bytes()))[-1] == SEAL_KEY
    assert codecs_ser.verify(path) == []


def test_every_damaged_byte_of_a_dir_manifest_is_caught(tmp_path: Path) -> None:
    path = _dir(tmp_path)
    data = (path / MANIFEST).read_bytes()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x01
        (path / MANIFEST).write_bytes(bytes(damaged))
        with pytest.raises(FormatError):
            codecs_ser.open(path).close()


def test_a_seal_that_is_not_the_last_key_is_refused(tmp_path: Path) -> None:
    path = _dir(tmp_path)
    raw = msgpack.unpackb((path / MANIFEST).read_bytes())
    moved = {SEAL_KEY: raw.pop(SEAL_KEY), **raw}
    (path / MANIFEST).write_bytes(msgpack.packb(moved))
    with pytest.raises(FormatError, match="last key"):
        codecs_ser.load(path)
    raw[SEAL_KEY] = "sha256:abc"
    (path / MANIFEST).write_bytes(msgpack.packb(raw))
    with pytest.raises(FormatError, match="16 hex digits"):
        codecs_ser.load(path)


def test_unsealed_dir_manifests_still_load(tmp_path: Path) -> None:
    path = _dir(tmp_path)
    raw = msgpack.unpackb((path / MANIFEST).read_bytes())
    del raw[SEAL_KEY]
    (path / MANIFEST).write_bytes(msgpack.packb(raw, use_bin_type=True))
    assert codecs_ser.load(path)["meta"] == "x"


@pytest.mark.parametrize("backend", ["tar", "zip"])
def test_tar_and_zip_keep_the_checksum_in_their_trailer(backend: str) -> None:
    with codecs_ser.open(codecs_ser.dumps({"a": 1}, backend=backend)) as c:
        assert c.metadata == {}
    data = codecs_ser.dumps({"a": 1}, backend=backend)
    assert SEAL_KEY.encode() not in data


@pytest.mark.parametrize("keys", [1, 14, 15, 16, 70_000])
def test_seal_grows_the_map_header(keys: int) -> None:
    sealed = seal(msgpack.packb({f"k{i}": i for i in range(keys)}))
    raw = msgpack.unpackb(sealed)
    assert len(raw) == keys + 1 and list(raw)[-1] == SEAL_KEY


def test_a_wrong_digest_is_an_integrity_error(tmp_path: Path) -> None:
    path = _dir(tmp_path)
    data = bytearray((path / MANIFEST).read_bytes())
    data[-1] = ord("0") if data[-1] != ord("0") else ord("1")
    (path / MANIFEST).write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        codecs_ser.load(path)
