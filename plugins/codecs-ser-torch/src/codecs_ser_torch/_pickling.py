"""Names and pickling for torch containers; imports no torch (torch objects come in).

A module's leaves are named by its ``state_dict`` keys.  A state dict is an
OrderedDict carrying a ``_metadata`` attribute, which plain pickling restores by
setting the instance's state, something an untrusted load never allows; so it is
pickled as a call of :func:`state_dict`, whose checked constructor (``_safe``)
untrusted loads may use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any


def module_children(module: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each parameter and buffer of an nn.Module under its state_dict key, split at dots."""
    for key, value in module.state_dict(keep_vars=True).items():
        yield tuple(key.split(".")), value


def state_dict(items: dict[Any, Any], metadata: Any) -> OrderedDict[Any, Any]:
    """An OrderedDict of ``items`` with its ``_metadata``, as ``Module.state_dict`` makes it."""
    out: OrderedDict[Any, Any] = OrderedDict(items)
    out.__dict__["_metadata"] = metadata
    return out


def reduce_state_dict(obj: Any) -> Any:
    """Pickle an OrderedDict whose only attribute is ``_metadata`` as a :func:`state_dict` call."""
    if type(obj) is not OrderedDict or set(vars(obj)) != {"_metadata"}:
        return NotImplemented
    return (state_dict, (dict(obj), vars(obj)["_metadata"]))
