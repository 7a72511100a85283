"""The ``codecs-ser`` command: inspect a container, verify its checksums, convert foreign
files, list plugins."""

from __future__ import annotations

import argparse
import reprlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import _api
from .errors import CodecsSerError


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _clean(text: str) -> str:
    """The text with control characters escaped: names and versions come from the file,
    and a terminal must not obey escape sequences planted in them."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class _BoundedRepr(reprlib.Repr):
    """A repr for values from the file: metadata may nest thousands of levels (a plain
    repr then raises RecursionError) or hold megabytes; beyond these bounds it
    abbreviates with "..."."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 6
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 30
        self.maxstring = self.maxother = 200
        self.maxlong = 60

    def repr_bytes(self, x: bytes, level: int) -> str:
        """Bytes are cut before their repr is made (the plain repr of a gigabyte is 4 GB)."""
        if len(x) <= self.maxstring:
            return repr(x)
        return repr(x[: self.maxstring]) + f"... ({len(x)} bytes)"


_render = _BoundedRepr().repr


def _text(value: Any) -> str:
    """A value from the file for a line of output: strings as they are, else bounded."""
    return value if isinstance(value, str) else _render(value)


def _say(*parts: object, file: Any = None) -> None:
    print(_clean(" ".join(map(str, parts))), file=file or sys.stdout)


def _inspect(path: str) -> int:
    with _api.open(path) as c:
        writer = c.writer
        description = getattr(c, "description", None)
        if description is not None:  # a foreign file (codecs_ser.foreign)
            _say(f"{path}: {description}, read without its library; nothing unpickled")
        else:
            _say(
                f"{path}: codecs_ser format {c.format_version}, backend {c.backend}, "
                f"written by codecs_ser {_text(writer.get('codecs_ser'))} "
                f"on Python {_text(writer.get('python'))}"
            )
            for name in c.objects:
                _say(f"object {name!r}: {c.skeleton_format(name)} skeleton")
        if c.metadata:
            _say(f"metadata: {_render(c.metadata)}")
        rows = [("name", "codec", "dtype", "shape", "size")]
        total = 0
        for name, entry in c.entries.items():
            total += entry.nbytes
            shape = (
                "("
                + ", ".join(map(str, entry.shape))
                + ("," if len(entry.shape) == 1 else "")
                + ")"
            )
            rows.append((name, entry.codec, str(entry.dtype), shape, _size(entry.nbytes)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            _say("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip())
        _say(f"{len(rows) - 1} entries, {_size(total)} of array data")
    return 0


def _verify(path: str) -> int:
    problems = _api.verify(path)
    if not problems:
        _say(f"{path}: OK, every checksum matches")
        return 0
    for member, problem in problems:
        _say(f"{member}: {problem}")
    _say(f"{path}: {len(problems)} problem(s)")
    return 1


def _convert(source: str, target: str, trusted: bool) -> int:
    from .foreign import convert

    kept = convert(source, target, trusted=trusted)
    if kept == "arrays":
        _say(
            f"{target}: the arrays of {source} (its object needs unpickling to rebuild; "
            "--trusted does that for files you trust)"
        )
    else:
        _say(f"{target}: the {kept} of {source}")
    return 0


def _plugins() -> int:
    from .registry import default_registry

    tables: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("codec", default_registry.codecs),
        ("backend", default_registry.backends),
    )
    for kind, specs in tables:
        for key, spec in sorted(specs.items()):
            _say(f"{kind:8s} {key:24s} {spec.impl}  ({spec.dist or 'registered in code'})")
    from .foreign import default_foreign_registry

    for key, fspec in default_foreign_registry.readers.items():
        _say(f"{'foreign':8s} {key:24s} {fspec.impl}  ({fspec.dist or 'registered in code'})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``codecs-ser`` and ``python -m codecs_ser``."""
    parser = argparse.ArgumentParser(prog="codecs-ser", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="list the entries of a container (reads its manifest only)")
    p.add_argument("file")
    p = sub.add_parser("verify", help="check every checksum; exit status 1 if any fails")
    p.add_argument("file")
    p = sub.add_parser(
        "convert",
        help="write a container, or a torch, safetensors, npy/npz, pkl_utils or Blocks "
        "file, as a codecs_ser container",
    )
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument(
        "--trusted",
        action="store_true",
        help="unpickle the source with its library to keep the whole object (trusted files only)",
    )
    sub.add_parser("plugins", help="list registered codecs and backends")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            return _inspect(args.file)
        if args.command == "verify":
            return _verify(args.file)
        if args.command == "convert":
            return _convert(args.source, args.target, args.trusted)
        return _plugins()
    except (CodecsSerError, OSError) as e:
        _say(f"codecs-ser: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
