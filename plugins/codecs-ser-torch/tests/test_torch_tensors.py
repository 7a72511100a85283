"""Tensors of every dtype and layout round-trip bit for bit through every backend."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from codecs_ser_torch._dtypes import BY_NAME
from torch_support import assert_tree_same, same_storage

import codecs_ser
from codecs_ser.errors import NoCodecForTypeError

DTYPES = sorted(BY_NAME)


def _sample(dtype: torch.dtype, shape: tuple[int, ...] = (3, 5)) -> torch.Tensor:
    """Random bits of the dtype (every pattern, NaNs included), made valid for bool."""
    g = torch.Generator().manual_seed(1)
    raw = torch.randint(0, 256, (*shape, dtype.itemsize), dtype=torch.uint8, generator=g)
    if dtype == torch.bool:
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


def roundtrip(obj: Any, tmp_path: Path, backend: str = "tar", **load: Any) -> Any:
    path = tmp_path / f"x.{backend}"
    codecs_ser.dump(obj, path, backend=backend)
    assert codecs_ser.verify(path) == []
    return codecs_ser.load(path, **load)


@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype(name: str, tmp_path: Path, backend: str) -> None:
    dtype = BY_NAME[name].torch
    t = _sample(dtype)
    cases = {
        "plain": t,
        "scalar": t[1, 2].clone(),
        "empty": t[:0],
        "transposed": t.T,
        "sliced": t[1:, ::2],
    }
    back = roundtrip(cases, tmp_path, backend)
    assert_tree_same(cases, back)


def test_views_keep_their_geometry_and_storage(tmp_path: Path, backend: str) -> None:
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    cases = {
        "base": base,
        "offset": base[1],
        "transposed": base.transpose(0, 2),
        "strided": base[:, ::2, 1::2],
        "flat": base.view(-1),
        "bytes": base.view(torch.int32),
    }
    back = roundtrip(cases, tmp_path, backend)
    assert_tree_same(cases, back)
    for k, v in cases.items():
        assert back[k].stride() == v.stride() and back[k].storage_offset() == v.storage_offset()
        assert same_storage(back[k], back["base"]), k
    back["base"][0, 0, 0] = -1.0
    assert back["flat"][0] == -1.0


def test_channels_last_conj_neg(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    z = torch.randn(4, dtype=torch.complex64)
    cases = {"cl": x, "conj": z.conj(), "neg": torch.randn(4, dtype=torch.complex64).conj().imag}
    back = roundtrip(cases, tmp_path)
    assert back["cl"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(back["conj"], z.conj()) and not back["conj"].is_conj()
    assert torch.equal(back["neg"], cases["neg"])


def test_tied_weights_are_stored_once(tmp_path: Path) -> None:
    emb = torch.nn.Embedding(1000, 64)
    head = torch.nn.Linear(64, 1000, bias=False)
    head.weight = emb.weight
    sd = {"emb.weight": emb.weight.detach(), "head.weight": head.weight.detach()}
    path = tmp_path / "tied.tar"
    codecs_ser.dump(sd, path)
    torch_path = tmp_path / "tied.pt"
    torch.save(sd, torch_path)
    # The bytes once; a tar's fixed overhead (headers, manifest, 10 KiB records) beside.
    assert path.stat().st_size < torch_path.stat().st_size + 16 * 1024
    assert path.stat().st_size < 1.1 * emb.weight.nbytes
    back = codecs_ser.load(path)
    assert same_storage(back["emb.weight"], back["head.weight"])
    arrays = codecs_ser.load_arrays(path)
    assert np.array_equal(arrays["head.weight"], emb.weight.detach().numpy())


def test_parameters_and_grad_flags(tmp_path: Path, backend: str) -> None:
    p = torch.nn.Parameter(torch.randn(3))
    frozen = torch.nn.Parameter(torch.randn(3), requires_grad=False)
    leaf = torch.randn(2, requires_grad=True)
    cases = {
        "p": p,
        "frozen": frozen,
        "leaf": leaf,
        "nonleaf": leaf * 2,
        "ints": torch.ones(2, dtype=torch.int64),
    }
    back = roundtrip(cases, tmp_path, backend)
    assert type(back["p"]) is torch.nn.Parameter and back["p"].requires_grad
    assert type(back["frozen"]) is torch.nn.Parameter and not back["frozen"].requires_grad
    assert back["leaf"].requires_grad and back["nonleaf"].requires_grad
    assert back["nonleaf"].is_leaf
    assert torch.equal(back["nonleaf"], cases["nonleaf"].detach())


def test_sparse_and_meta(tmp_path: Path, backend: str) -> None:
    dense = torch.zeros(4, 5)
    dense[0, 1], dense[3, 4], dense[2, 0] = 1.5, -2.0, 7.0
    cases = {
        "coo": dense.to_sparse(),
        "uncoalesced": torch.sparse_coo_tensor(
            [[0, 0], [1, 1]], [1.0, 2.0], (2, 2), check_invariants=True
        ),
        "csr": dense.to_sparse_csr(),
        "meta": torch.empty(3, 7, dtype=torch.bfloat16, device="meta"),
    }
    back = roundtrip(cases, tmp_path, backend)
    assert_tree_same(cases, back)
    assert back["coo"].is_coalesced() and not back["uncoalesced"].is_coalesced()


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype:UserWarning")
def test_unsupported_tensors_name_their_path(tmp_path: Path) -> None:
    q = torch.quantize_per_tensor(torch.randn(3), 0.1, 0, torch.qint8)
    nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    for bad in (q, nested):
        with pytest.raises(NoCodecForTypeError) as err:
            codecs_ser.dump({"model": {"layer": bad}}, tmp_path / "bad.tar")
        assert "'model/layer'" in " ".join(getattr(err.value, "__notes__", []))
    assert not (tmp_path / "bad.tar").exists()


def test_file_objects(tmp_path: Path) -> None:
    obj = {"w": torch.randn(5, 5), "t": torch.randn(5, 5).T}
    for backend in ("tar", "zip"):
        buf = io.BytesIO()
        codecs_ser.dump(obj, buf, backend=backend)
        assert_tree_same(obj, codecs_ser.load(io.BytesIO(buf.getvalue())))
        with open(tmp_path / f"f.{backend}", "wb") as f:
            codecs_ser.dump(obj, f, backend=backend)
        with open(tmp_path / f"f.{backend}", "rb") as f:
            assert_tree_same(obj, codecs_ser.load(f))


def test_open_reads_one_tensor(tmp_path: Path) -> None:
    base = torch.randn(10, 10)
    obj = {"a": base, "b": base[2:4], "c": torch.ones(3)}
    codecs_ser.dump(obj, tmp_path / "x.tar")
    with codecs_ser.open(tmp_path / "x.tar") as c:
        assert torch.equal(c.read("b"), base[2:4])
        assert torch.equal(c.read("c"), torch.ones(3))


def _mapped_from(path: Path, address: int) -> bool:
    """Whether ``address`` lies in a mapping of the file at ``path`` (Linux)."""
    real = str(path.resolve())
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high and fields[-1] == real:
                return True
    return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
@pytest.mark.parametrize("kind", ["tar", "zip", "dir"])
def test_mmap_gives_tensors_backed_by_the_file(tmp_path: Path, kind: str) -> None:
    w = torch.randn(512, 512)
    obj = {"w": w, "tied": w.detach(), "b": torch.randn(300, 300).T}
    path = tmp_path / f"m.{kind}"
    codecs_ser.dump(obj, path, backend=kind)
    before = path.read_bytes() if kind != "dir" else (path / "w.npy").read_bytes()
    back = codecs_ser.load(path, mmap=True)
    assert_tree_same(obj, back)
    member = path if kind != "dir" else path / "w.npy"
    assert _mapped_from(member, back["w"].data_ptr())
    assert same_storage(back["w"], back["tied"])
    back["w"].add_(1.0)  # copy-on-write: the tensor changes, the file does not
    assert torch.equal(back["tied"], w + 1.0)
    del back
    after = path.read_bytes() if kind != "dir" else (path / "w.npy").read_bytes()
    assert after == before
