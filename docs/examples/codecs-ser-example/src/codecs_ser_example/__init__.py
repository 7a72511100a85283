"""Example codecs_ser plugin: a codec for :class:`Quantity` and the ``example-pack`` backend.

``Quantity`` is imported on first access, so that importing this package (which
the registry does when it reads the entry points in ``_spec``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .quantity import Quantity

__all__ = ["Quantity"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Quantity":
        from .quantity import Quantity

        return Quantity
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
