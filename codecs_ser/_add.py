"""Named objects written into an existing container: appended, or replacing namesakes.

Appending keeps every member and adds more (``Backend.append``).  Replacing writes
the container again without the replaced objects (``Backend.rewrite`` and
``_rewrite.carry_over``): their blobs that no kept object uses are gone, and the
new objects take their places, so ``load(path)`` still returns the first object.
Either way the container at the path changes in one step at commit, or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _checksum, _clock
from ._container import Writer, check_metadata, check_new_object_name
from ._files import identity
from ._manifest import parse_manifest
from ._names import clash_key
from .errors import UsageError
from .registry import Registry


def _abandoned(e: BaseException, path: str) -> None:
    if isinstance(e, OSError):
        e.add_note(f"codecs_ser: the add to {path!r} was abandoned; the container is unchanged")


def add_objects(
    path: str,
    items: Sequence[tuple[str, Any, dict[str, Any] | None]],
    *,
    replace: bool,
    checksum: str | None,
    durable: bool,
    registry: Registry,
    open_backend: Any,
    code_by_value: str = "warn",
    appender: Any = None,
) -> None:
    """Write ``items`` (name, object, metadata) into the container at ``path`` at once."""
    if not items:
        raise UsageError("add() needs at least one object")
    seen: dict[str, str] = {}
    for name, _, metadata in items:
        if not isinstance(name, str) or not name:
            raise UsageError("add() needs a non-empty name for each new object")
        key = clash_key(name)
        if key in seen:
            raise UsageError(
                f"two new objects are named {seen[key]!r} and {name!r}: names are compared "
                "ignoring case"
            )
        seen[key] = name
        check_metadata(metadata)
    if checksum is not None:
        try:
            _checksum.check_algorithm(checksum)
        except ValueError as e:
            raise UsageError(str(e)) from None
    _clock.source_date_epoch()  # a bad SOURCE_DATE_EPOCH fails before anything is written
    expect = identity(path)
    reader, backend_id = open_backend(path, registry)
    try:
        manifest = parse_manifest(reader.read_manifest(), path)
        existing = {clash_key(o.name): i for i, o in enumerate(manifest.objects)}
        slots: dict[str, int] = {}
        for name, _, _ in items:
            if replace and clash_key(name) in existing:
                slots[name] = existing[clash_key(name)]
            else:
                check_new_object_name(name, [o.name for o in manifest.objects])
        algorithm = checksum or (
            manifest.checksum if manifest.checksum in _checksum.ALGORITHMS else _checksum.DEFAULT
        )
        backend = registry.get_backend(backend_id)
        if slots and not hasattr(backend, "rewrite"):
            raise UsageError(f"the {backend_id!r} backend cannot replace objects")
        compressed = getattr(reader, "copy", None) is not None
        if slots and compressed:
            raise UsageError(
                "replace=True on a compressed container is not supported: load it, and dump "
                "it again with the new object"
            )
        try:
            writer = (
                backend.rewrite(path, durable=durable)  # type: ignore[attr-defined]
                if slots
                else appender(reader, backend_id, path, registry, durable, expect)
                if appender is not None
                else backend.append(path, durable=durable)
            )
        except OSError as e:
            _abandoned(e, path)
            raise
        try:
            if slots:
                from ._rewrite import carry_over

                kept = carry_over(manifest, reader, registry, writer, set(slots.values()))
                w = Writer(
                    writer, registry, checksum=algorithm, existing=kept, code_by_value=code_by_value
                )
            else:
                w = Writer(
                    writer,
                    registry,
                    checksum=algorithm,
                    existing=manifest,
                    existing_reader=reader,
                    code_by_value=code_by_value,
                )
            # Replacements first, in the order of their places; new objects after them.
            ordered = sorted(items, key=lambda item: slots.get(item[0], len(manifest.objects)))
            for name, obj, metadata in ordered:
                w.write_object(obj, name, metadata, slot=slots.get(name))
            w.commit()
        except BaseException as e:
            writer.abort()
            _abandoned(e, path)
            raise
    finally:
        reader.close()
