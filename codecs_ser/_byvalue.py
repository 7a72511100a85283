"""Which functions and classes pickling stores as code, not as a name to import.

cloudpickle stores a function or class by value when it cannot be imported by
name elsewhere: defined in ``__main__``, inside a function, a lambda, or in a
module registered to be pickled by value.  A file holding code needs near-total
trust and the same Python version to load, so the writer says when it happens.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_REFERENCE_TYPES = (
    types.ModuleType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)


def _importable(obj: Any) -> bool:
    """Whether ``obj`` is what its module and qualified name lead to."""
    module_name = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or ""
    module = sys.modules.get(module_name)
    if module is None or "<" in qualname:
        return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


def by_reference(obj: Any) -> bool:
    """Whether the pickler stores ``obj`` by name: a module, a class, a builtin, or a
    function importable under its qualified name (what it reaches is not the object's)."""
    if isinstance(obj, (*_REFERENCE_TYPES, type)):
        return True
    return isinstance(obj, types.FunctionType) and _importable(obj)


def code_by_value(obj: Any) -> bool:
    """Whether pickling stores this function or class as code (as cloudpickle decides)."""
    if not isinstance(obj, (types.FunctionType, type)):
        return False
    module = getattr(obj, "__module__", None) or ""
    if module == "builtins":
        return False  # the interpreter's own types (code, cell): pickled by name
    if module == "__main__" or not _importable(obj):
        return True
    cloudpickle = sys.modules.get("cloudpickle")
    registered = getattr(cloudpickle, "list_registry_pickle_by_value", None)
    if registered is None:
        return False
    names = registered()
    return any(module == n or module.startswith(n + ".") for n in names)


def qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
