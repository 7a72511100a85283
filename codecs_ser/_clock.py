"""The time written into containers, which ``SOURCE_DATE_EPOCH`` can fix.

Tar member mtimes, zip member dates and the manifest's ``created`` field are
the only places a container records when it was written.  When the
``SOURCE_DATE_EPOCH`` environment variable is set (a decimal count of seconds
since 1970-01-01 UTC, as reproducible-build tools set it), they all hold that
time instead of the current one, so dumping the same object twice gives the
same bytes (https://reproducible-builds.org/specs/source-date-epoch/).
"""

from __future__ import annotations

import os
import time

from .errors import UsageError

ENV = "SOURCE_DATE_EPOCH"
#: 9999-12-31T23:59:59Z: the last second every platform's calendar functions handle.
MAX_EPOCH = 253402300799


def source_date_epoch() -> int | None:
    """The fixed time from ``SOURCE_DATE_EPOCH``, or None when it is unset or empty.

    Raises :class:`~codecs_ser.errors.UsageError` when it is set to anything but a
    decimal integer from 0 to ``MAX_EPOCH``.
    """
    raw = os.environ.get(ENV)
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_EPOCH:
        raise UsageError(
            f"the environment variable {ENV} must be a whole number of seconds since "
            f"1970-01-01 UTC (from 0 to {MAX_EPOCH}), as `date +%s` prints it; "
            f"it is {raw!r}. Unset it to write the current time."
        )
    return int(text)


def now() -> float:
    """What a writer records as the current time: ``SOURCE_DATE_EPOCH`` if set."""
    fixed = source_date_epoch()
    return time.time() if fixed is None else float(fixed)
