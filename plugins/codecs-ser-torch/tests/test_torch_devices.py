"""map_location in every torch.load form, CUDA files on machines without CUDA, GPU tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
import torch
from torch_support import assert_tree_same, same_storage

import codecs_ser
from codecs_ser.errors import FormatError


def _as_if_saved_on_cuda(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A dir container whose tensors say they came from cuda:0 (as a GPU machine writes)."""
    w = torch.randn(4, 4)
    obj = {"w": w, "tied": w.detach(), "b": torch.arange(3)}
    path = tmp_path / "c"
    codecs_ser.dump(obj, path, backend="dir")
    mpath = path / ".codecs_ser" / "manifest.msgpack"
    m = msgpack.unpackb(mpath.read_bytes(), raw=False)
    m.pop("manifest_checksum", None)  # edited by hand: a manifest without its own checksum
    for i, raw in enumerate(m["entries"]):
        record = msgpack.unpackb(raw, raw=False)
        record[5] = "cuda:0"
        m["entries"][i] = msgpack.packb(record, use_bin_type=True)
    mpath.write_bytes(msgpack.packb(m, use_bin_type=True))
    return path, obj


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_file_without_cuda_says_map_location(tmp_path: Path) -> None:
    path, _ = _as_if_saved_on_cuda(tmp_path)
    with pytest.raises(FormatError, match="map_location='cpu'"):
        codecs_ser.load(path)


@pytest.mark.parametrize(
    "where", ["cpu", torch.device("cpu"), {"cuda:0": "cpu"}, lambda t, saved: None]
)
def test_map_location_forms(tmp_path: Path, where: Any) -> None:
    path, obj = _as_if_saved_on_cuda(tmp_path)
    back = codecs_ser.load(path, map_location=where)
    assert_tree_same(obj, back)
    assert same_storage(back["w"], back["tied"])


def test_map_location_callable_sees_saved_device(tmp_path: Path) -> None:
    path, _ = _as_if_saved_on_cuda(tmp_path)
    seen: list[str] = []

    def where(t: torch.Tensor, saved: str) -> torch.Tensor:
        seen.append(saved)
        return t.double() if t.is_floating_point() else t

    back = codecs_ser.load(path, map_location=where)
    assert back["w"].dtype == torch.float64 and seen == ["cuda:0"] * 3


def test_dict_map_location_leaves_other_devices(tmp_path: Path) -> None:
    codecs_ser.dump({"x": torch.ones(2)}, tmp_path / "x.tar")
    back = codecs_ser.load(tmp_path / "x.tar", map_location={"cuda:1": "cuda:0"})
    assert back["x"].device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_come_back_to_their_device(tmp_path: Path) -> None:
    w = torch.randn(64, 64, device="cuda")
    obj = {"w": w, "tied": w.detach(), "view": w[3:5], "p": torch.nn.Parameter(w.clone())}
    codecs_ser.dump(obj, tmp_path / "g.tar")
    back = codecs_ser.load(tmp_path / "g.tar")
    assert_tree_same(obj, back)
    assert back["w"].device == w.device and same_storage(back["w"], back["view"])
    host = codecs_ser.load(tmp_path / "g.tar", map_location="cpu")
    assert host["w"].device.type == "cpu" and torch.equal(host["w"], w.cpu())
