"""Progress of a long dump or load, on stderr, only when asked for (``progress=True``).

A tqdm bar where tqdm is installed (it is no dependency), else one line rewritten
in place at most every ``INTERVAL`` seconds and finished with a newline.  Progress
counts array bytes: the total grows as objects are walked or chosen for loading.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

#: Seconds between two updates of the plain line.
INTERVAL = 0.5


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Counts array bytes done against a total and shows them on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = 0
        self.done = 0
        self._bar: Any = None
        self._last = 0.0
        self._started = time.monotonic()
        self._closed = False
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            return
        self._bar = tqdm(
            total=0,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            leave=True,
        )

    def add_total(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= INTERVAL:
            self._last = now
            self._line("\r")

    def _line(self, start: str, end: str = "") -> None:
        share = f"{min(100, 100 * self.done // self.total)}% " if self.total else ""
        sys.stderr.write(
            f"{start}{self.label}: {share}({_size(self.done)} of {_size(self.total)}){end}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            return
        seconds = time.monotonic() - self._started
        self._line("\r", f" in {seconds:.1f} s\n")
