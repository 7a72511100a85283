"""The torch tensor codec: dense, sparse and meta tensors and nn.Parameter.

A dense tensor is a view of its storage: the codec returns it as a
:class:`codecs_ser.BufferView` of the storage's bytes, so tensors sharing a
storage (tied weights, views, a module's parameters and its state_dict) are
stored once and share one storage again after loading.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from codecs_ser.codec import BufferView, CodecBase, DecodeContext, Encoded, writable_view
from codecs_ser.errors import FormatError, NoCodecForTypeError

from ._dtypes import BY_NAME, Stored, stored

#: Tensors of more dimensions than this are refused on load.
MAX_DIMS = 64
_LAYOUTS = ("strided", "sparse_coo", "sparse_csr", "meta")


def _host_bytes(storage: torch.UntypedStorage) -> np.ndarray:
    """A storage's bytes as a 1-d uint8 numpy array (a copy only for device storages)."""
    if storage.device.type != "cpu":
        storage = storage.cpu()
    if storage.nbytes() == 0:
        return np.empty(0, np.uint8)
    return torch.empty(0, dtype=torch.uint8).set_(storage).numpy()


def _unsupported(t: torch.Tensor) -> str | None:
    if t.is_quantized:
        return f"quantized torch.Tensor ({t.dtype})"
    if t.is_nested:
        return "nested torch.Tensor"
    if t.layout not in (torch.strided, torch.sparse_coo, torch.sparse_csr):
        return f"torch.Tensor of layout {t.layout}"
    if stored(t.dtype) is None:
        return f"torch.Tensor of dtype {t.dtype}"
    if type(t) not in (torch.Tensor, torch.nn.Parameter):
        return f"{type(t).__module__}.{type(t).__qualname__}"
    return None


def _view(t: torch.Tensor, spec: Stored) -> BufferView:
    """A strided tensor as a window on its storage's bytes."""
    t = t.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    storage = t.untyped_storage()
    size = t.element_size()
    shape = tuple(t.shape)
    strides = tuple(s * size for s in t.stride())
    if spec.pairs:
        shape, strides = (*shape, 2), (*strides, size // 2)
    key = (str(t.device), storage.data_ptr()) if storage.nbytes() else None
    return BufferView(
        key=key,
        buffer=_host_bytes(storage),
        offset=int(t.storage_offset()) * size,
        shape=shape,
        strides=strides,
        dtype=spec.numpy,
    )


class TensorCodec(CodecBase):
    """torch.Tensor and nn.Parameter: dtype, shape, strides, device, requires_grad, sharing."""

    codec_id = "torch.tensor"
    codec_version = 1

    def encode(self, obj: Any) -> Encoded:
        problem = _unsupported(obj)
        if problem is not None:
            raise NoCodecForTypeError(problem)
        name, spec = stored(obj.dtype)  # type: ignore[misc]
        meta: dict[str, Any] = {"dtype": name}
        if type(obj) is torch.nn.Parameter:
            meta["parameter"] = True
        if obj.requires_grad:
            meta["requires_grad"] = True
        device = str(obj.device)
        if obj.device.type == "meta":
            meta["layout"] = "meta"
            meta["shape"] = list(obj.shape)
            return Encoded(arrays={"data": np.empty(0, spec.numpy)}, meta=meta, device=device)
        arrays: dict[str, Any]
        if obj.layout == torch.sparse_coo:
            meta.update(layout="sparse_coo", shape=list(obj.shape), coalesced=obj.is_coalesced())
            arrays = {
                "values": _view(obj._values(), spec),
                "indices": _view(obj._indices(), BY_NAME["int64"]),
            }
        elif obj.layout == torch.sparse_csr:
            meta.update(layout="sparse_csr", shape=list(obj.shape))
            index = BY_NAME[str(obj.crow_indices().dtype).removeprefix("torch.")]
            arrays = {
                "values": _view(obj.values(), spec),
                "crow_indices": _view(obj.crow_indices(), index),
                "col_indices": _view(obj.col_indices(), index),
            }
        else:
            arrays = {"data": _view(obj, spec)}
            if not obj.is_contiguous() and _dense(tuple(obj.shape), obj.stride()):
                # Kept when the tensor is stored alone (channels-last): its blob is C order.
                meta["strides"] = list(obj.stride())
        return Encoded(arrays=arrays, meta=meta, device=device)

    def decode(self, encoded: Encoded, ctx: DecodeContext) -> Any:
        meta = encoded.meta
        spec = BY_NAME.get(meta.get("dtype"))  # type: ignore[arg-type]
        if spec is None:
            raise FormatError(f"unknown torch dtype {meta.get('dtype')!r} in the entry's meta")
        layout = meta.get("layout", "strided")
        if layout not in _LAYOUTS:
            raise FormatError(f"unknown tensor layout {layout!r} in the entry's meta")
        if layout == "meta":
            return self._finish(torch.empty(_shape(meta), dtype=spec.torch, device="meta"), meta)
        if layout == "sparse_coo":
            coalesced = meta.get("coalesced", False)
            if type(coalesced) is not bool:
                raise FormatError("a sparse tensor's coalesced flag is not a bool")
            indices = _tensor(encoded, "indices", BY_NAME["int64"], ctx)
            values = _tensor(encoded, "values", spec, ctx)
            with torch.sparse.check_sparse_tensor_invariants():
                t = torch.sparse_coo_tensor(indices, values, _shape(meta), is_coalesced=coalesced)
        elif layout == "sparse_csr":
            crow = _tensor(encoded, "crow_indices", _index_spec(encoded, "crow_indices"), ctx)
            col = _tensor(encoded, "col_indices", _index_spec(encoded, "col_indices"), ctx)
            values = _tensor(encoded, "values", spec, ctx)
            with torch.sparse.check_sparse_tensor_invariants(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
                t = torch.sparse_csr_tensor(crow, col, values, _shape(meta))
        else:
            t = _tensor(encoded, "data", spec, ctx)
            if "strides" in meta and "data" not in encoded.buffers:
                t = _restride(t, meta["strides"])
        t = _place(t, encoded.device, ctx, encoded.buffers.get("data"))
        return self._finish(t, meta)

    def _finish(self, t: torch.Tensor, meta: Any) -> torch.Tensor:
        grad, param = meta.get("requires_grad", False), meta.get("parameter", False)
        if type(grad) is not bool or type(param) is not bool:
            raise FormatError("requires_grad and parameter must be bools")
        if grad and not (t.is_floating_point() or t.is_complex()):
            raise FormatError(f"a tensor of dtype {t.dtype} cannot require grad")
        if param:
            return torch.nn.Parameter(t, requires_grad=grad)
        if grad:
            t.requires_grad_(True)
        return t


def _shape(meta: Any) -> list[int]:
    shape = meta.get("shape")
    if (
        type(shape) is not list
        or len(shape) > MAX_DIMS
        or not all(type(n) is int and 0 <= n < 1 << 62 for n in shape)
    ):
        raise FormatError("a tensor's shape in the entry's meta is not a list of sizes")
    total = 1
    for n in shape:
        total *= n
    if total >= 1 << 62:
        raise FormatError("a tensor's shape in the entry's meta is too large")
    return shape


def _dense(shape: tuple[int, ...], strides: Any) -> bool:
    """Whether strides lay the elements out without gaps or overlaps (in some order)."""
    step = 1
    for s, n in sorted(zip(strides, shape, strict=True)):
        if n > 1 and s != step:
            return False
        step *= n
    return True


def _restride(t: torch.Tensor, strides: Any) -> torch.Tensor:
    """A copy of ``t`` laid out with the dense, non-overlapping ``strides`` it was saved with."""
    ok = (
        type(strides) is list
        and len(strides) == t.dim()
        and all(type(s) is int and s >= 0 for s in strides)
        and _dense(tuple(t.shape), strides)
    )
    if not ok:
        raise FormatError("a tensor's strides in the entry's meta are not dense")
    if t.stride() == tuple(strides):
        return t
    out = torch.empty_strided(t.shape, strides, dtype=t.dtype)
    return out.copy_(t)


def _index_spec(encoded: Encoded, role: str) -> Stored:
    arr = encoded.arrays.get(role)
    if arr is not None and arr.dtype == np.dtype("<i4"):
        return BY_NAME["int32"]
    return BY_NAME["int64"]


def _writable_bytes(raw: np.ndarray) -> np.ndarray:
    """Bytes torch may wrap: writable ones as they are, read-only ones copied."""
    if raw.flags.writeable:
        return raw
    # mmap=True: the file's copy-on-write mapping (writes stay private), else a copy.
    view = writable_view(raw)
    return raw.copy() if view is None else view


def _storage(raw: np.ndarray) -> torch.UntypedStorage:
    if raw.nbytes == 0:
        return torch.UntypedStorage(0)
    return torch.from_numpy(_writable_bytes(raw)).untyped_storage()


def _tensor(encoded: Encoded, role: str, spec: Stored, ctx: DecodeContext) -> torch.Tensor:
    """One role's array as a tensor on the host, on the shared storage when there is one."""
    arr = encoded.arrays.get(role)
    if arr is None:
        raise FormatError(f"the entry has no {role!r} array")
    if arr.dtype != spec.numpy:
        raise FormatError(f"a {spec.torch} tensor is stored as {arr.dtype}, not {spec.numpy}")
    view = encoded.buffers.get(role)
    if view is not None:
        key = ("torch.storage", view.key)
        storage = ctx.shared.get(key)
        if storage is None:
            storage = ctx.shared[key] = _storage(view.buffer)
        offset, strides = view.offset, view.strides
    else:
        if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            arr = np.ascontiguousarray(arr)
        raw = arr.reshape(-1, order="A").view(np.uint8) if arr.nbytes else arr.view(np.uint8)
        storage = _storage(raw)
        offset, strides = 0, arr.strides
    shape = arr.shape
    size = spec.torch.itemsize
    if spec.pairs:
        if not shape or shape[-1] != 2 or (arr.size and strides[-1] != size // 2):
            raise FormatError("complex32 is stored as float16 pairs along a last axis of 2")
        shape, strides = shape[:-1], strides[:-1]
    if len(shape) > MAX_DIMS or offset % size or any(s % size or s < 0 for s in strides):
        raise FormatError("a tensor's offset or strides do not fit its dtype")
    with warnings.catch_warnings():
        # torch warns on every complex32 tensor made; the user's own already did.
        warnings.filterwarnings("ignore", "ComplexHalf support is experimental", UserWarning)
        t = torch.empty(0, dtype=spec.torch)
        if arr.size == 0:
            return t.new_empty(shape)
        return t.set_(storage, offset // size, shape, tuple(s // size for s in strides))


def _place(
    t: torch.Tensor, saved: str | None, ctx: DecodeContext, view: BufferView | None
) -> torch.Tensor:
    """Move a host tensor where map_location (or the device it came from) says."""
    target = ctx.device_for(saved)
    if target is None or target == "cpu":
        return ctx.relocate(t, saved) if saved is not None else t
    device = torch.device(target)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FormatError(
            f"this tensor was saved on {saved} and would load to {target}, but torch here has no "
            "CUDA; load with map_location='cpu'"
        )
    if view is None:
        return t.to(device)
    # Move the shared storage once, so its sharers share it on the device too.
    key = ("torch.storage", view.key, target)
    moved = ctx.shared.get(key)
    if moved is None:
        host = torch.empty(0, dtype=torch.uint8).set_(t.untyped_storage())
        moved = ctx.shared[key] = host.to(device).untyped_storage()
    return torch.empty(0, dtype=t.dtype, device=device).set_(
        moved, t.storage_offset(), t.shape, t.stride()
    )
