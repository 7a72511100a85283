"""Where decoded leaves go: ``map_location``, defined once for every codec.

The forms are those of ``torch.load``: None keeps each leaf on the device it
was saved on; a string or a device object sends every leaf there; a dict maps
saved device strings to new ones (others stay); a callable receives each
decoded host value and its saved device string and returns the value to use,
or None to keep the default placement.  Device strings are ``"cpu"`` for host
memory and ``"<kind>:<index>"`` (``"cuda:0"``) otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import UsageError

__all__ = ["HOST", "check_map_location", "device_for", "relocate"]

#: The device string of host memory.
HOST = "cpu"


def _as_device(value: Any) -> str:
    if isinstance(value, str):
        if not value:
            raise UsageError("map_location: a device string must not be empty")
        return value
    # A framework's device object (torch.device) prints as its device string.
    if type(value).__name__ == "device" and hasattr(value, "type"):
        return str(value)
    raise UsageError(
        "map_location must be None, a device string, a device, a dict of device strings, "
        f"or a callable; got {type(value).__name__}"
    )


def check_map_location(map_location: Any) -> None:
    """Refuse a malformed ``map_location`` before anything is read."""
    if map_location is None or callable(map_location):
        return
    if isinstance(map_location, Mapping):
        for k, v in map_location.items():
            _as_device(k)
            _as_device(v)
        return
    _as_device(map_location)


def device_for(map_location: Any, saved: str | None) -> str | None:
    """The device a leaf saved on ``saved`` is placed on (None: it had no device).

    A callable ``map_location`` places everything on the host first; the codec
    then calls :func:`relocate`.
    """
    if map_location is None:
        return saved
    if callable(map_location) and not isinstance(map_location, (str, Mapping)):
        return HOST if saved is not None else None
    if isinstance(map_location, Mapping):
        for k, v in map_location.items():
            if _as_device(k) == saved:
                return _as_device(v)
        return saved
    return _as_device(map_location)


def relocate(map_location: Any, value: Any, saved: str | None) -> Any:
    """What a callable ``map_location`` makes of a decoded host value."""
    if not callable(map_location) or isinstance(map_location, (str, Mapping)):
        return value
    out = map_location(value, saved)
    return value if out is None else out
