"""Resolve ``"package.module:Name"`` import strings, once, with attributed errors."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import PluginLoadError, PluginValidationError

_cache: dict[str, Any] = {}


def import_object(target: str, *, entry_point: str | None = None, dist: str | None = None) -> Any:
    """Import the object an import string names; the only place plugins are imported."""
    try:
        return _cache[target]
    except KeyError:
        pass
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PluginValidationError(
            f"import string {target!r} must look like 'package.module:Name'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise PluginLoadError(target, entry_point=entry_point, dist=dist) from e
    _cache[target] = obj
    return obj
