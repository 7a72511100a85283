"""The ``codecs-ser`` command: vet a container before loading it, check it, list plugins.

Every subcommand reads only what it needs and runs nothing from the file:
``inspect`` the manifest, ``audit`` the skeletons (a dry run of their pickles),
``verify`` every member.  Each subcommand is one ``_<name>_parser`` and one
``_<name>`` function, registered in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import reprlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _api
from ._version import __version__
from .errors import CodecsSerError

#: Exit statuses: 0 all is well, 1 a finding (a bad checksum, a global not allowed by
#: default), 2 a file that could not be read or a bad command line.
OK, FINDING, ERROR = 0, 1, 2
#: dtypes longer than this are abbreviated in tables (records can be kilobytes long).
DTYPE_WIDTH = 24


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


def _short_dtype(dtype: np.dtype, width: int = DTYPE_WIDTH) -> str:
    """A dtype that fits a table column: records by their field count and item size."""
    text = str(dtype)
    if len(text) <= width:
        return text
    if dtype.names is not None:
        return f"record[{len(dtype.names)}] ({dtype.itemsize} B)"
    return text[: width - 3] + "..."


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _json_default(value: Any) -> Any:
    """Metadata may hold bytes, which JSON cannot: they become {"base64": ...}."""
    if isinstance(value, (bytes, bytearray)):
        import base64

        return {"base64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _print_json(value: Any) -> None:
    # ensure_ascii: control characters from the file come out escaped, never raw.
    print(json.dumps(value, default=_json_default, ensure_ascii=True, indent=2))


def _per_file(paths: Sequence[str], one: Callable[[str], tuple[int, Any]], as_json: bool) -> int:
    """Run ``one`` on every file; errors are reported per file, the worst status wins."""
    status, results = OK, []
    for i, path in enumerate(paths):
        if i and not as_json:
            _say()
        try:
            code, result = one(path)
        except BrokenPipeError:
            raise
        except (CodecsSerError, OSError, RecursionError) as e:
            code, result = ERROR, {"file": path, "error": _error_text(e)}
            if not as_json:
                _say(f"codecs-ser: error: {_error_text(e)}", file=sys.stderr)
        status = max(status, code)
        results.append(result)
    if as_json:
        _print_json(results)
    return status


def _error_text(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "the manifest nests values too deeply to print"
    return str(e)


# -- inspect ---------------------------------------------------------------------------


def _inspect_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="what a container holds (reads its manifest only)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON list, an item per file")
    p.add_argument("--tree", action="store_true", help="each object's arrays as a tree")


def _inspect(args: argparse.Namespace) -> int:
    def one(path: str) -> tuple[int, Any]:
        with _api.open(path) as c:
            if args.json:
                return OK, _inspect_json(path, c)
            _inspect_header(path, c)
            if args.tree:
                _inspect_tree(c)
            else:
                _inspect_table(c)
        return OK, None

    return _per_file(args.files, one, args.json)


def _inspect_header(path: str, c: _api.Container) -> None:
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
    if c.metadata:
        _say(f"metadata: {_render(c.metadata)}")
    for name in c.objects:
        line = f"object {name!r}: {c.skeleton_format(name)} skeleton"
        own = c.object_metadata(name)
        if own:
            line += f", metadata {_render(own)}"
        _say(line)


def _inspect_table(c: _api.Container) -> None:
    rows = [("name", "codec", "dtype", "shape", "size")]
    total = 0
    for name, entry in c.entries.items():
        total += entry.nbytes
        rows.append(
            (name, entry.codec, _short_dtype(entry.dtype), _shape(entry.shape), _size(entry.nbytes))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        _say("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip())
    _say(f"{len(rows) - 1} entries, {_size(total)} of array data")


def _inspect_tree(c: _api.Container) -> None:
    """Each object's hierarchy, as the paths of its arrays spell it (plain values of the
    skeleton are not in the manifest, so they are not shown)."""
    trees: list[dict[str, Any]] = [{} for _ in c.objects]
    total = 0
    for entry in c.entries.values():
        total += entry.nbytes
        node = trees[entry.object] if 0 <= entry.object < len(trees) else None
        if node is None:
            continue
        parts = entry.path.split("/") if entry.path else []
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            node = child if isinstance(child, dict) else {}
        node[parts[-1] if parts else ""] = entry
    for name, tree in zip(c.objects, trees, strict=True):
        root = tree.pop("", None)
        described = f" {_leaf(root)}" if root is not None else ""
        _say(f"{name}{described}")
        _tree_lines(tree, "")
    _say(f"{len(c.entries)} entries, {_size(total)} of array data")


def _leaf(entry: Any) -> str:
    return f"{_short_dtype(entry.dtype)} {_shape(entry.shape)} {_size(entry.nbytes)}" + (
        "" if entry.codec == "numpy.ndarray" else f" [{entry.codec}]"
    )


def _tree_lines(node: Mapping[str, Any], indent: str) -> None:
    items = list(node.items())
    for i, (key, value) in enumerate(items):
        last = i == len(items) - 1
        branch = "`-- " if last else "|-- "
        if isinstance(value, dict):
            _say(f"{indent}{branch}{key}/")
            _tree_lines(value, indent + ("    " if last else "|   "))
        else:
            _say(f"{indent}{branch}{key}  {_leaf(value)}")


def _inspect_json(path: str, c: _api.Container) -> dict[str, Any]:
    return {
        "file": path,
        "format_version": c.format_version,
        "backend": c.backend,
        "writer": c.writer,
        "metadata": c.metadata,
        "objects": [
            {
                "name": name,
                "skeleton": c.skeleton_format(name),
                "metadata": c.object_metadata(name),
            }
            for name in c.objects
        ],
        "entries": [
            {
                "name": name,
                "object": c.objects[e.object] if 0 <= e.object < len(c.objects) else None,
                "path": e.path,
                "codec": e.codec,
                "dtype": str(e.dtype),
                "shape": list(e.shape),
                "nbytes": e.nbytes,
                "device": e.device,
            }
            for name, e in c.entries.items()
        ],
        "nbytes": sum(e.nbytes for e in c.entries.values()),
    }


# -- audit ------------------------------------------------------------------------------


def _code_by_value(container: _api.Container, name: str, globals_: Sequence[str]) -> bool:
    """Whether the object carries code by value (functions or classes pickled whole, which
    run their own code when loaded with trust): the manifest's flag where the container
    records one, else what the globals show (cloudpickle's helpers rebuild such code)."""
    if container.code(name):
        return True  # recorded since revision 1.1, with names and paths
    return any(g.startswith(("cloudpickle.", "cloudpickle_fast.")) for g in globals_)


def _audit_parser(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="the globals loading would import, dangerous ones marked; exit status 1 if "
        "loading needs trusted=...",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON list, an item per file")


def _audit(args: argparse.Namespace) -> int:
    def one(path: str) -> tuple[int, Any]:
        objects: list[dict[str, Any]] = []
        with _api.open(path) as c:
            for name in c.objects:
                verdicts = c.audit(name, explain=True)
                objects.append(
                    {
                        "name": name,
                        "skeleton": c.skeleton_format(name),
                        "code_by_value": _code_by_value(c, name, list(verdicts)),
                        "code": [{"name": x["name"], "path": x["path"]} for x in c.code(name)],
                        "globals": [
                            {
                                "name": g,
                                "allowed": verdict == "allowed",
                                "danger": verdict.partition("dangerous: ")[2] or None,
                            }
                            for g, verdict in verdicts.items()
                        ],
                    }
                )
        needs_trust = sorted({g["name"] for o in objects for g in o["globals"] if not g["allowed"]})
        result = {"file": path, "needs_trust": needs_trust, "objects": objects}
        if not args.json:
            _audit_text(path, objects, needs_trust)
        return (FINDING if needs_trust else OK), result

    return _per_file(args.files, one, args.json)


def _audit_text(path: str, objects: list[dict[str, Any]], needs_trust: list[str]) -> None:
    _say(f"{path}:")
    dangerous = set()
    for o in objects:
        found = o["globals"]
        if o["skeleton"] == "msgpack":
            _say(f"object {o['name']!r}: plain data (msgpack), loading imports nothing")
            continue
        code = ", holds code by value" if o["code_by_value"] else ""
        _say(f"object {o['name']!r}: pickle, loading imports {len(found)} global(s){code}")
        width = max((len(g["name"]) for g in found), default=0)
        for g in found:
            mark = "allowed by default" if g["allowed"] else "not allowed by default"
            if g["danger"]:
                mark = f"DANGEROUS: {g['danger']}"
                dangerous.add(g["name"])
            _say(f"  {g['name'].ljust(width)}  {mark}")
        for x in o["code"]:
            where = f" at {_text(x['path'])}" if x["path"] else ""
            _say(f"  code by value: {_text(x['name'])}{where}")
    harmless = [g for g in needs_trust if g not in dangerous]
    if dangerous:
        _say(
            "DANGEROUS globals: the file can run any code; load it only with trusted=True "
            "and only if you trust whoever made it"
        )
    elif harmless:
        from .errors import _suggested

        _say(f"loading needs trusted={_suggested(harmless)!r}, if you trust the file")
    if needs_trust:
        _say("codecs_ser.load_arrays reads the arrays without unpickling")
    else:
        _say("loads with the default allowlist: no code of the file runs")


# -- verify -----------------------------------------------------------------------------


def _verify_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check every checksum; exit status 1 if any fails")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON list, an item per file")


def _verify(args: argparse.Namespace) -> int:
    def one(path: str) -> tuple[int, Any]:
        problems = _api.verify(path)
        if not args.json:
            for member, problem in problems:
                _say(f"{member}: {problem}")
            if problems:
                _say(f"{path}: {len(problems)} problem(s)")
            else:
                _say(f"{path}: OK, every checksum matches")
        result = {
            "file": path,
            "ok": not problems,
            "problems": [{"member": m, "problem": p} for m, p in problems],
        }
        return (FINDING if problems else OK), result

    return _per_file(args.files, one, args.json)


# -- plugins ----------------------------------------------------------------------------


def _convert_parser(sub: Any) -> None:
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


def _convert(args: argparse.Namespace) -> int:
    from .foreign import convert

    kept = convert(args.source, args.target, trusted=args.trusted)
    if kept == "arrays":
        _say(
            f"{args.target}: the arrays of {args.source} (its object needs unpickling to "
            "rebuild; --trusted does that for files you trust)"
        )
    else:
        _say(f"{args.target}: the {kept} of {args.source}")
    return OK


def _plugins_parser(sub: Any) -> None:
    sub.add_parser("plugins", help="list registered codecs and backends")


def _plugins(args: argparse.Namespace) -> int:
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
    return OK


#: name -> (adds its parser, runs it).
COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "inspect": (_inspect_parser, _inspect),
    "audit": (_audit_parser, _audit),
    "verify": (_verify_parser, _verify),
    "convert": (_convert_parser, _convert),
    "plugins": (_plugins_parser, _plugins),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecs-ser", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=f"codecs-ser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at the null device: the reader of a pipe left (``| head``), and
    Python's final flush must not fail again and print "Broken pipe"."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``codecs-ser`` and ``python -m codecs_ser``."""
    args = _parser().parse_args(argv)
    try:
        try:
            status = COMMANDS[args.command][1](args)
        except (CodecsSerError, OSError) as e:
            if isinstance(e, BrokenPipeError):
                raise
            _say(f"codecs-ser: error: {e}", file=sys.stderr)
            status = ERROR
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return OK
    return status


if __name__ == "__main__":
    sys.exit(main())
