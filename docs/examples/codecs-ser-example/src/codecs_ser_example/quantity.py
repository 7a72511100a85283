"""The type the example codec stores: an array of values with a unit."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Quantity"]


class Quantity:
    """An array of values in one unit, such as ``Quantity([1.5, 2.0], "m")``.

    Two quantities are equal when their units, dtypes, shapes and bytes are, so
    that ``==`` answers with one bool, as a round-trip check needs.
    """

    __slots__ = ("unit", "value")

    def __init__(self, value: ArrayLike, unit: str) -> None:
        if not isinstance(unit, str):
            raise TypeError(f"unit must be a str, not {type(unit).__name__}")
        self.value: np.ndarray = np.asarray(value)
        self.unit = unit

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        a, b = self.value, other.value
        return (
            self.unit == other.unit
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Quantity({self.value!r}, {self.unit!r})"
