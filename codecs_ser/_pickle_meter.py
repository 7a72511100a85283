"""What an untrusted pickle may cost: memory, time, hashing and nesting.

A pickle is a program, and a few bytes of it can ask for a lot: the memo lets it
repeat an expensive call for a few bytes each time.  So every call and every hash
that an untrusted pickle causes is charged here *before* it runs, by what it
really costs, against budgets that grow with the pickle's own size:

* ``alloc``: bytes the objects and calls of the pickle create,
  ``ALLOC_PER_BYTE * len(pickle) + max_pickle_alloc`` (Python objects are large: a
  two-byte ``(`` ``FROZENSET`` builds 216 bytes);
* ``work``: steps of CPU time (about a nanosecond each) that calls and hashes
  take, ``WORK_PER_BYTE * len(pickle) + max_pickle_work``;
* keys of one dict or set that share a hash (hash flooding): ``max_colliding_keys``;
* tuples and frozensets nested in one another (``hash`` recurses through tuples
  in C, with no guard): ``max_tuple_depth``.

Every refusal names the limit to raise.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ._limits import get_limits
from .errors import FormatError

#: Work steps each byte of the pickle pays for, beyond ``max_pickle_work``.
WORK_PER_BYTE = 1000
#: Bytes of memory each byte of the pickle pays for, beyond ``max_pickle_alloc``: what
#: honest pickles of many small objects need (a dict of two items is about 20 bytes of
#: pickle and 230 of memory).
ALLOC_PER_BYTE = 32
#: What hashing one element of a tuple costs, in work steps.
_HASH_STEP = 10
_HASH_RANDOMIZED = (str, bytes)


def _refuse(what: str, limit: str) -> FormatError:
    return FormatError(
        f"{what}; if you trust this file, raise codecs_ser.limits({limit}=...) or load it "
        "with trusted=True"
    )


class PickleMeter:
    """The budgets of one untrusted pickle, charged before each costly step."""

    def __init__(self, pickle_size: int) -> None:
        limits = get_limits()
        self.alloc_left = ALLOC_PER_BYTE * pickle_size + limits.max_pickle_alloc
        self.work_left = WORK_PER_BYTE * pickle_size + limits.max_pickle_work
        self.max_colliding = limits.max_colliding_keys
        self.max_depth = limits.max_tuple_depth
        self._hashes: dict[int, tuple[Any, Counter[int]]] = {}
        # id -> (tuple or frozenset, depth, hash cost) for those that hold tuples or
        # frozensets; the value is kept so that its id stays unique while the pickle loads.
        self._nested: dict[int, tuple[Any, int, int]] = {}
        self._pending: dict[int, Any] = {}
        #: Whether a value may serve as a defaultdict's factory (set by the unpickler).
        self.is_safe_factory: Callable[[Any], bool] = lambda value: False

    # -- objects made empty, whose state follows --------------------------------------

    def expect_state(self, obj: Any) -> None:
        """``obj`` was made empty by NEWOBJ; exactly one BUILD must give it its state."""
        self._pending[id(obj)] = obj

    def take_pending(self, obj: Any) -> bool:
        """Whether ``obj`` awaits its state (and from now on, it does not)."""
        if self._pending.get(id(obj)) is obj:
            del self._pending[id(obj)]
            return True
        return False

    def check_all_built(self) -> None:
        """Refuse a pickle that leaves an object without the state its type needs."""
        for obj in self._pending.values():
            raise FormatError(
                f"the pickle leaves a {type(obj).__name__} without its state: the file is "
                "damaged or hostile"
            )

    # -- budgets -------------------------------------------------------------------

    def alloc(self, nbytes: int, what: str) -> None:
        """Charge memory that a call is about to create."""
        self.alloc_left -= nbytes
        if self.alloc_left < 0:
            raise _refuse(
                f"the pickle would build more than {ALLOC_PER_BYTE} bytes of objects per byte "
                f"of its own plus max_pickle_alloc bytes ({what}: about {nbytes})",
                "max_pickle_alloc",
            )

    def work(self, steps: int, what: str) -> None:
        """Charge CPU time that a call or a hash is about to take."""
        self.work_left -= steps
        if self.work_left < 0:
            raise _refuse(
                f"the pickle's calls would take more time than its size allows, plus "
                f"max_pickle_work steps ({what}: about {steps} steps)",
                "max_pickle_work",
            )

    # -- tuples and frozensets -----------------------------------------------------------

    def new_nested(self, value: tuple[Any, ...] | frozenset[Any]) -> None:
        """Record a tuple or frozenset the pickle built (hashable, so possibly hashed, and
        hashing recurses); refuse one nested too deeply to hash safely."""
        depth, cost = 1, 1
        nested = self._nested
        for item in value:
            if type(item) is tuple or type(item) is frozenset:
                known = nested.get(id(item))
                if known is not None and known[0] is item:
                    depth = max(depth, known[1] + 1)
                    cost += known[2]
                else:
                    depth = max(depth, 2)
                    cost += 1 + len(item)
            else:
                cost += 1
        if depth > self.max_depth:
            raise _refuse(
                f"the pickle nests tuples and frozensets more than {self.max_depth} deep",
                "max_tuple_depth",
            )
        if depth > 1:
            nested[id(value)] = (value, depth, min(cost, 1 << 62))

    def _hash_cost(self, key: Any) -> int:
        """Work steps that ``hash(key)`` takes (tuples are hashed anew each time)."""
        t = type(key)
        if t is tuple:
            known = self._nested.get(id(key))
            if known is not None and known[0] is key:
                return _HASH_STEP * known[2]
            return _HASH_STEP * (1 + len(key))
        if t is int:
            return 1 + key.bit_length() // 32
        if t is frozenset:
            return _HASH_STEP * (1 + len(key))  # from the items' stored hashes
        fractions = sys.modules.get("fractions")
        if fractions is not None and t is fractions.Fraction:
            # Not cached: a modular inverse of the denominator on every hash.
            return 500 + (key.numerator.bit_length() + key.denominator.bit_length()) // 4
        return 10 * _HASH_STEP

    # -- keys ------------------------------------------------------------------------

    def check_keys(self, target: Any, keys: Iterable[Any]) -> None:
        """Before ``keys`` go into the dict or set ``target``: charge their hashing, and
        refuse keys that pile up on one hash (building them would be quadratic)."""
        counts: Counter[int] | None = None
        for key in keys:
            self.work(self._hash_cost(key), "hashing a key")
            if type(key) in _HASH_RANDOMIZED:
                continue
            if counts is None:
                entry = self._hashes.get(id(target))
                if entry is None or entry[0] is not target:
                    entry = self._hashes[id(target)] = (target, Counter())
                counts = entry[1]
            try:
                h = hash(key)
            except TypeError:
                continue  # unhashable: inserting it fails on its own
            counts[h] += 1
            if counts[h] > self.max_colliding:
                raise _refuse(
                    f"more than {self.max_colliding} keys of one dict or set share a hash "
                    "(hash flooding)",
                    "max_colliding_keys",
                )
