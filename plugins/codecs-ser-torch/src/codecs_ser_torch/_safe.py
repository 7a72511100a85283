"""Checked constructors for the torch globals an untrusted skeleton may use.

Each accepts exactly what the type's own pickling writes and builds the value
through its public constructor; anything else is refused as a damaged or
hostile file.  torch is imported only when a pickle names one of these globals.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from codecs_ser.errors import FormatError
from codecs_ser.safe_globals import PickleMeter, SafeGlobal, refused_args

Args = tuple[Any, ...]

#: torch.Size longer than this is refused (no tensor has more dimensions).
MAX_DIMS = 64
#: Device kinds are short lowercase words (cpu, cuda, mps, xpu, meta, ...).
_DEVICE_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)


def _size(g: Any, args: Args, meter: PickleMeter) -> Any:
    """torch.Size((d0, d1, ...)): one tuple of non-negative ints below 2**63."""
    if len(args) != 1 or type(args[0]) is not tuple or len(args[0]) > MAX_DIMS:
        raise refused_args(g, args)
    dims = args[0]
    if not all(type(d) is int and 0 <= d < 1 << 63 for d in dims):
        raise refused_args(g, args)
    meter.alloc(8 * len(dims) + 64, "torch.Size()")
    return g(dims)


def _device(g: Any, args: Args, meter: PickleMeter) -> Any:
    """torch.device(type) or torch.device(type, index)."""
    if not 1 <= len(args) <= 2 or type(args[0]) is not str:
        raise refused_args(g, args)
    if _DEVICE_TYPE.fullmatch(args[0]) is None:
        raise refused_args(g, args)
    if len(args) == 2 and not (type(args[1]) is int and 0 <= args[1] < 1 << 16):
        raise refused_args(g, args)
    meter.work(2000, "torch.device()")
    try:
        return g(*args)
    except (RuntimeError, ValueError, TypeError) as e:
        raise FormatError(f"the pickle names an impossible torch.device: {e}") from None


def _state_dict(g: Any, args: Args, meter: PickleMeter) -> Any:
    """A state dict: its items (a dict) and its _metadata (an OrderedDict or dict)."""
    if len(args) != 2 or type(args[0]) is not dict or type(args[1]) not in (OrderedDict, dict):
        raise refused_args(g, args)
    meter.alloc(96 * len(args[0]) + 64, "a state dict")
    meter.check_keys(object(), args[0])
    return g(args[0], args[1])


SIZE = SafeGlobal(call=_size)
DEVICE = SafeGlobal(call=_device)
STATE_DICT = SafeGlobal(call=_state_dict)
#: dtypes are pickled by name (``torch.float32``) and only ever loaded as values.
DTYPE = SafeGlobal()
