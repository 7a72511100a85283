"""Training state loads with the default trusted=False; whole modules load with trust."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch_support import assert_tree_same, same_storage

import codecs_ser


def _trained(steps: int = 3) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 8)).pow(2).mean().backward()
        opt.step()
        sched.step()
    return model, opt, sched


def test_checkpoint_loads_untrusted(tmp_path: Path, backend: str) -> None:
    model, opt, sched = _trained()
    ckpt = {
        "model": model.state_dict(),
        "optim": opt.state_dict(),
        "sched": sched.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": 3,
        "meta": {
            "shape": torch.Size([2, 3]),
            "dtype": torch.bfloat16,
            "device": torch.device("cpu"),
        },
    }
    path = tmp_path / f"ckpt.{backend}"
    codecs_ser.dump(ckpt, path, backend=backend)
    back = codecs_ser.load(path)  # trusted=False
    assert_tree_same(ckpt, back)
    assert type(back["model"]) is OrderedDict
    assert back["model"]._metadata == ckpt["model"]._metadata
    assert back["optim"]["state"][0]["step"].dim() == 0
    model2, opt2, sched2 = _trained(0)
    model2.load_state_dict(back["model"])
    opt2.load_state_dict(back["optim"])
    sched2.load_state_dict(back["sched"])
    torch.set_rng_state(back["rng"])
    x = torch.randn(3, 8)
    assert torch.equal(model(x), model2(x))


def test_module_parameters_share_with_state_dict(tmp_path: Path) -> None:
    model, _, _ = _trained(1)
    obj = {"params": list(model.parameters()), "sd": model.state_dict()}
    codecs_ser.dump(obj, tmp_path / "x.tar")
    back = codecs_ser.load(tmp_path / "x.tar")
    assert same_storage(back["params"][0], back["sd"]["0.weight"])
    assert type(back["params"][0]) is torch.nn.Parameter


def test_module_leaves_are_named_by_state_dict_keys(tmp_path: Path) -> None:
    layer = torch.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    model = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    path = tmp_path / "m.tar"
    codecs_ser.dump({"model": model}, path)
    with codecs_ser.open(path) as c:
        names = set(c.entries)
    assert "model/layers/0/self_attn/in_proj_weight" in names
    assert "model/layers/1/linear2/bias" in names
    assert not any("_parameters" in n for n in names)


def test_whole_transformer_with_adam_is_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Transformer(
        d_model=256,
        nhead=4,
        num_encoder_layers=11,
        num_decoder_layers=11,
        dim_feedforward=1024,
        dropout=0.0,
        batch_first=True,
    )
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params >= 20_000_000
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    src, tgt = torch.randn(2, 5, 256), torch.randn(2, 4, 256)
    for _ in range(2):
        opt.zero_grad()
        model(src, tgt).pow(2).mean().backward()
        opt.step()
    path = tmp_path / "run.tar"
    codecs_ser.dump({"model": model, "optim": opt.state_dict()}, path)
    back = codecs_ser.load(path, trusted=True)
    model.eval()
    back["model"].eval()
    with torch.no_grad():
        assert torch.equal(model(src, tgt), back["model"](src, tgt))
    assert_tree_same(opt.state_dict(), back["optim"])
