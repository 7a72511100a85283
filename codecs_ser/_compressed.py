"""Whole-stream compression of a one-file container (a ``.tar.gz``), around a backend.

Writing: the backend writes its usual container into a compressing file object, so
what decompresses is byte for byte what the backend writes uncompressed (``tar
-xzf`` unpacks it, and the offsets in the manifest count in it).  Reading: the
compressed stream is decompressed once into a temporary file, bounded by the
limits ``max_decompressed_bytes`` and ``max_decompression_ratio``, and the backend
reads that file.  A stream is one gzip member, bz2 stream, xz stream or zstd frame
sequence with nothing after it.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO

from . import _compression
from ._files import AtomicFile
from ._limits import get_limits
from .backend import ContainerReader, ContainerWriter, write_one_by_one
from .errors import FormatError, UsageError

#: Input read, and output produced, per step of decompression.
CHUNK = 1 << 20
#: An xz stream may ask for at most this much memory to decompress (xz -9 needs 65 MiB).
XZ_MEMLIMIT = 256 << 20
#: A zstd frame's window may be at most this large (zstd --long=27 by default).
ZSTD_MAX_WINDOW = 1 << 27
_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)


# -- writing ------------------------------------------------------------------------------


def _compressor(choice: _compression.Choice) -> Any:
    """An object with ``compress(data) -> bytes`` and ``flush() -> bytes``."""
    if choice.name == "gzip":
        return zlib.compressobj(choice.level, zlib.DEFLATED, 16 + 15)
    if choice.name == "bz2":
        return bz2.BZ2Compressor(choice.level)
    if choice.name == "xz":
        return lzma.LZMACompressor(lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=choice.level)
    if choice.name == "zstd":
        kind, module = _compression.zstd_module()
        if kind == "stdlib":
            return module.ZstdCompressor(level=choice.level)
        return module.ZstdCompressor(level=choice.level, write_content_size=False).compressobj()
    raise AssertionError(choice.name)


class CompressingFile(io.RawIOBase):
    """A write-only file object that compresses what is written into ``file``."""

    def __init__(self, file: BinaryIO, choice: _compression.Choice) -> None:
        self._file = file
        self._c = _compressor(choice)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        out = self._c.compress(view)
        if out:
            _write_all(self._file, out)
        return view.nbytes

    def flush(self) -> None:
        """Nothing: flushing a compressor mid-stream costs ratio; ``finish`` ends it."""

    def finish(self) -> None:
        _write_all(self._file, self._c.flush())
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            flush()


def _write_all(file: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view.nbytes:
        n = file.write(view)
        if n is None:
            raise BlockingIOError("target file object would block")
        view = view[n:]


class CompressedWriter:
    """A backend's writer whose container is compressed as one stream on its way out."""

    def __init__(
        self,
        make: Any,
        target: Any,
        choice: _compression.Choice,
        *,
        durable: bool,
        expect: Any = None,
    ) -> None:
        """``make(file)`` gives the backend's writer for a file object."""
        self._atomic = (
            None
            if hasattr(target, "write")
            else AtomicFile(os.fspath(target), durable=durable, expect=expect)
        )
        try:
            self._file = CompressingFile(
                target if self._atomic is None else self._atomic.file, choice
            )
            self._inner: ContainerWriter = make(self._file)
        except BaseException:
            if self._atomic is not None:
                self._atomic.abort()
            raise
        self._done = False

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> int | None:
        return self._inner.write_member(name, size, chunks)

    def write_members(self, names: Sequence[str], blobs: Sequence[bytes]) -> list[int | None]:
        """A run of small members, in one call where the backend's writer takes runs."""
        write_members = getattr(self._inner, "write_members", None)
        if write_members is not None:
            return list(write_members(names, blobs))
        return write_one_by_one(self._inner, names, blobs)

    def commit(self, manifest: bytes) -> None:
        self._inner.commit(manifest)
        self._file.finish()
        self._done = True
        if self._atomic is not None:
            self._atomic.commit()

    def abort(self) -> None:
        self._inner.abort()
        if self._atomic is not None and not self._done:
            self._atomic.abort()


# -- reading ------------------------------------------------------------------------------


class _Zlib:
    """zlib's decompressor with the interface of bz2's and lzma's (needs_input, eof)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + 15)  # gzip: header, CRC-32 and length checked
        self._tail = b""
        self.needs_input = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(self._tail + data, max_length)
        self._tail = self._d.unconsumed_tail
        self.needs_input = len(out) < max_length and not self._tail
        return out

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


def _decompressor(name: str) -> Any:
    if name == "gzip":
        return _Zlib()
    if name == "bz2":
        return bz2.BZ2Decompressor()
    if name == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
    if name == "zstd":
        kind, module = _compression.zstd_module()
        if kind == "stdlib":
            return module.ZstdDecompressor()
        return None  # read through zstandard's stream reader, see _zstandard_copy
    raise AssertionError(name)


def _allowed(compressed: int) -> int:
    lim = get_limits()
    return max(lim.max_decompressed_bytes, compressed * lim.max_decompression_ratio)


def _too_large(name: str, compressed: int, path: str | None) -> FormatError:
    lim = get_limits()
    return FormatError(
        f"the {name} stream ({compressed} bytes) expands beyond {_allowed(compressed)} bytes, "
        f"the larger of max_decompressed_bytes ({lim.max_decompressed_bytes}) and "
        f"max_decompression_ratio ({lim.max_decompression_ratio}) times its size; if you "
        "trust this file, raise them with codecs_ser.limits(max_decompressed_bytes=...) or "
        "codecs_ser.limits(max_decompression_ratio=...)",
        path=path,
    )


#: How much of the decompressed content is shown to ``check_head``.
HEAD = 512


class _Sink:
    """Where decompressed bytes go: counted against the limits, the first ones checked
    (a bomb of zeros is no container, and is refused at once)."""

    def __init__(
        self,
        out: BinaryIO,
        name: str,
        size: int,
        path: str | None,
        check_head: Callable[[bytes], None] | None,
    ) -> None:
        self._out = out
        self._name = name
        self._size = size
        self._path = path
        self._allowed = _allowed(size)
        self._check = check_head
        self._head = b""
        self.total = 0

    def write(self, piece: bytes) -> None:
        self.total += len(piece)
        if self.total > self._allowed:
            raise _too_large(self._name, self._size, self._path)
        if self._check is not None:
            self._head += piece[: HEAD - len(self._head)]
            if len(self._head) >= HEAD:
                self.end()
        self._out.write(piece)

    def end(self) -> None:
        if self._check is not None:
            check, self._check = self._check, None
            check(self._head)


def decompress_into(
    name: str,
    src: BinaryIO,
    size: int,
    out: BinaryIO,
    path: str | None,
    check_head: Callable[[bytes], None] | None = None,
) -> None:
    """Decompress the one stream that ``src`` (``size`` bytes from its position) holds;
    ``check_head`` sees the first 512 decompressed bytes (all of them, if fewer)."""
    sink = _Sink(out, name, size, path, check_head)
    try:
        d = _decompressor(name)
    except UsageError as e:
        raise FormatError(f"this container is compressed with {name}: {e}", path=path) from None
    if d is None:
        _zstandard_copy(_compression.zstd_module()[1], src, sink, path)
        sink.end()
        return
    left = size
    try:
        while not d.eof:
            data = b""
            if d.needs_input:
                data = src.read(min(CHUNK, left)) if left else b""
                left -= len(data)
                if not data:
                    raise FormatError(f"the {name} stream is truncated", path=path)
            sink.write(d.decompress(data, CHUNK))
    except _ERRORS as e:
        raise FormatError(f"the {name} stream is damaged: {e}", path=path) from None
    if d.unused_data or left:
        raise FormatError(
            f"data follows the {name} stream (a second stream, or garbage); a container is "
            "one stream",
            path=path,
        )
    sink.end()


def _zstandard_copy(zstandard: Any, src: BinaryIO, sink: _Sink, path: str | None) -> None:
    """zstd through the zstandard package: its stream reader bounds each read's output;
    frames that follow one another decompress as one stream, as ``zstd -d`` does."""
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        with dctx.stream_reader(src, read_across_frames=True, closefd=False) as reader:
            while piece := reader.read(CHUNK):
                sink.write(piece)
    except zstandard.ZstdError as e:
        raise FormatError(f"the zstd stream is damaged: {e}", path=path) from None


class DecompressedCopy:
    """A compressed container decompressed into a temporary file, removed on close."""

    def __init__(
        self,
        name: str,
        source: Any,
        path: str | None,
        check_head: Callable[[bytes], None] | None = None,
    ) -> None:
        self.algorithm = name
        self._dir = tempfile.mkdtemp(prefix="codecs_ser-")
        self.path = os.path.join(self._dir, "container")
        self.file: io.FileIO | None = None
        try:
            with contextlib.ExitStack() as stack:
                src, size = _opened(source, stack)
                out = stack.enter_context(open(self.path, "wb"))
                decompress_into(name, src, size, out, path, check_head)
            # Errors name the compressed file, not this copy.
            self.file = io.FileIO(self.path, "r")
            self.file.name = path
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _opened(source: Any, stack: contextlib.ExitStack) -> tuple[BinaryIO, int]:
    """A readable file over ``source`` (a path, bytes or a seekable file), and its size."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        return io.BytesIO(view), view.nbytes
    if isinstance(source, (str, os.PathLike)):
        f = stack.enter_context(open(os.fspath(source), "rb"))
        return f, os.fstat(f.fileno()).st_size
    start = source.tell()
    end = source.seek(0, os.SEEK_END)
    source.seek(start)
    return source, end - start


class DecompressedReader:
    """A backend's reader of a decompressed copy; closing it removes the copy."""

    def __init__(self, inner: ContainerReader, copy: DecompressedCopy) -> None:
        self._inner = inner
        self.copy = copy
        self.compression = copy.algorithm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read_manifest(self) -> bytes:
        return self._inner.read_manifest()

    def open_member(self, ref: Any) -> BinaryIO:
        return self._inner.open_member(ref)

    def map_member(self, ref: Any) -> memoryview | None:
        return self._inner.map_member(ref)

    def member_names(self) -> list[str]:
        return self._inner.member_names()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self.copy.close()


class RecompressingWriter:
    """``add`` to a compressed container: the backend appends to the decompressed copy,
    which is then compressed again over the original path, atomically."""

    def __init__(
        self,
        inner: ContainerWriter,
        copy_path: str,
        path: str,
        choice: _compression.Choice,
        *,
        durable: bool,
        expect: Any,
    ) -> None:
        self._inner = inner
        self._copy_path = copy_path
        self._path = path
        self._choice = choice
        self._durable = durable
        self._expect = expect

    def write_member(self, name: str, size: int, chunks: Iterable[memoryview]) -> int | None:
        return self._inner.write_member(name, size, chunks)

    def commit(self, manifest: bytes) -> None:
        self._inner.commit(manifest)
        atomic = AtomicFile(self._path, durable=self._durable, expect=self._expect)
        try:
            out = CompressingFile(atomic.file, self._choice)
            with open(self._copy_path, "rb") as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
            out.finish()
        except BaseException:
            atomic.abort()
            raise
        atomic.commit()

    def abort(self) -> None:
        self._inner.abort()


__all__ = [
    "CompressedWriter",
    "CompressingFile",
    "DecompressedCopy",
    "DecompressedReader",
    "RecompressingWriter",
    "decompress_into",
]
