"""Helpers shared by the torch plugin's tests."""

from __future__ import annotations

from typing import Any

import torch


def assert_tensor_same(a: Any, b: Any) -> None:
    """Same type, dtype, shape, strides-independent values bit for bit, device, grad flag."""
    assert type(a) is type(b), f"{type(a)} came back as {type(b)}"
    assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
    assert a.requires_grad == b.requires_grad and a.layout == b.layout
    if a.device.type == "meta":
        return
    if a.layout != torch.strided:
        a, b = a.to_dense(), b.to_dense()
    a, b = a.detach().cpu().resolve_conj().resolve_neg(), b.detach().cpu()
    if a.dtype == torch.complex32:
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if a.dtype.itemsize and a.numel():
        bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.int64}
        kind = bits[a.dtype.itemsize]
        if a.dtype.itemsize == 16:
            a, b = torch.view_as_real(a), torch.view_as_real(b)
        assert torch.equal(a.contiguous().view(kind), b.contiguous().view(kind)), "bits differ"


def assert_tree_same(a: Any, b: Any) -> None:
    """Nested dicts, lists and tuples of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert_tensor_same(a, b)
    elif isinstance(a, dict):
        assert type(a) is type(b) and list(a) == list(b), f"{list(a)} != {list(b)}"
        for k in a:
            assert_tree_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_tree_same(x, y)
    else:
        assert type(a) is type(b) and a == b, f"{a!r} != {b!r}"


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
