"""Reading one deflated zip member, never producing more than its known size.

The size is the manifest's, and the zip directory must agree with it; the stream
must end exactly there, use exactly its stored bytes, and match its CRC-32.  So a
member that inflates beyond what was claimed (a zip bomb) is refused after at most
the claimed bytes, which the caller has already accepted.
"""

from __future__ import annotations

import io
import zlib
from typing import Any

from .._files import Source
from ..errors import FormatError

#: Stored bytes read per step.
CHUNK = 1 << 20
#: At most this much is inflated per call into a temporary ``bytes``.
STEP = 1 << 22


class InflatingReader(io.RawIOBase):
    """A readable stream over the inflated bytes of one member."""

    def __init__(
        self, source: Source, offset: int, stored: int, size: int, crc: int, name: str
    ) -> None:
        self._src = source
        self._offset = offset
        self._stored = stored
        self._size = size
        self._crc_expected = crc
        self._name = name
        self._d = zlib.decompressobj(-15)
        self._in = 0  # stored bytes read
        self._pos = 0  # inflated bytes given
        self._pending = b""
        self._crc = 0

    def readable(self) -> bool:
        return True

    def _fail(self, why: str) -> FormatError:
        return FormatError(why, path=self._src.name, member=self._name)

    def _input(self) -> bytes:
        tail = self._d.unconsumed_tail
        if tail:
            return tail
        n = min(CHUNK, self._stored - self._in)
        if n <= 0:
            return b""
        data = self._src.read_at(self._offset + self._in, n)
        self._in += n
        return data

    def _inflate(self, data: bytes, limit: int) -> bytes:
        try:
            return self._d.decompress(data, limit)
        except zlib.error as e:
            raise self._fail(f"the deflated member is damaged: {e}") from None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(view.nbytes, self._size - self._pos)
        if want <= 0:
            return 0
        while not self._pending:
            if self._d.eof:
                raise self._fail(
                    f"the deflated member ends after {self._pos} bytes; the manifest and zip "
                    f"directory give {self._size}"
                )
            data = self._input()
            self._pending = self._inflate(data, min(want, STEP))
            if not data and not self._pending and not self._d.eof:
                raise self._fail("the deflated member is truncated")
        n = min(want, len(self._pending))
        view[:n] = self._pending[:n]
        self._crc = zlib.crc32(view[:n], self._crc)
        self._pending = self._pending[n:]
        self._pos += n
        if self._pos == self._size:
            self._finish()
        return n

    def _finish(self) -> None:
        """At the claimed size: the stream must end here, on its last stored byte."""
        while not self._d.eof:
            data = self._input()
            if self._inflate(data, 1):
                raise self._fail(
                    f"the deflated member expands beyond the {self._size} bytes the manifest "
                    "and zip directory give it (a zip bomb, or a damaged file)"
                )
            if not data and not self._d.eof:
                raise self._fail("the deflated member is truncated")
        if self._d.unused_data or self._in != self._stored or self._d.unconsumed_tail:
            raise self._fail("the deflated member's stream ends before its stored bytes do")
        if self._crc != self._crc_expected:
            raise self._fail("the deflated member's CRC-32 differs from the zip directory's")
