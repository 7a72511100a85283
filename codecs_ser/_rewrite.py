"""Replacing objects: a new container that carries over every object but the replaced ones.

``add(..., replace=True)`` writes the whole container again, as ``dump`` does, so it
keeps every write's guarantees (a temporary file or folder swapped in at commit).
The members of the objects kept are copied, each checked against its checksum on
the way; blobs only the replaced objects used are left behind.  Entries after a
dropped one move up, so their records and the references in kept skeletons are
renumbered (see ``_renumber``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import msgpack

from . import _checksum
from ._container import Reader
from ._manifest import Manifest, ObjectInfo, pack_entry
from ._renumber import renumber_msgpack, renumber_pickle
from .backend import ContainerReader, ContainerWriter, MemberRef
from .errors import FormatError, IntegrityError
from .registry import Registry

#: Members are copied in pieces of this size.
PIECE = 16 << 20


def _checked_copy(
    reader: ContainerReader, ref: MemberRef, checksum: str, source: str | None
) -> Iterator[memoryview]:
    """The member's bytes in pieces; raises IntegrityError after the last piece if they
    do not match ``checksum``: a damaged blob is never carried into the new container."""
    algorithm, digest = _checksum.split(checksum)
    hasher = _checksum.new_hasher(algorithm)
    left = ref.size
    with reader.open_member(ref) as f:
        while left:
            piece = f.read(min(left, PIECE))
            if not piece:
                raise FormatError("member is truncated", path=source, member=ref.name)
            hasher.update(piece)
            left -= len(piece)
            yield memoryview(piece)
    if hasher.hexdigest() != digest:
        raise IntegrityError(
            ref.name, algorithm=algorithm, expected=digest, actual=hasher.hexdigest(), path=source
        )


def carry_over(
    m: Manifest, reader: ContainerReader, registry: Registry, out: ContainerWriter, drop: set[int]
) -> Manifest:
    """Copy every member of the objects not in ``drop`` to ``out``; return the manifest
    of what was copied.  Objects keep their numbers: the records of those in ``drop``
    stay as placeholders for their replacements, their entries are gone."""
    kept_entries = [i for i in range(len(m.names)) if m.entry(i).object not in drop]
    numbers = {old: new for new, old in enumerate(kept_entries)}

    def renumber(index: int) -> int:
        found = numbers.get(index)
        if found is None:
            raise FormatError(
                "a kept object refers to an entry of a replaced one; replace both", path=m.source
            )
        return found

    skeletons = Reader(m, reader, registry)
    objects: list[ObjectInfo] = []
    for i, obj in enumerate(m.objects):
        if i in drop:
            objects.append(obj)
            continue
        data = skeletons.read_skeleton(obj)  # checked against its checksum
        first = next((e for e in kept_entries if m.entry(e).object == i), None)
        if first is not None and numbers[first] != first:
            rewrite = renumber_msgpack if obj.skeleton_format == "msgpack" else renumber_pickle
            data = rewrite(data, renumber)
        member = obj.skeleton_ref["member"]
        algorithm = _checksum.split(obj.skeleton_ref["checksum"])[0]
        hasher = _checksum.new_hasher(algorithm)
        hasher.update(data)
        offset = out.write_member(member, len(data), [memoryview(data)])
        skeleton_ref = {
            "format": obj.skeleton_format,
            "member": member,
            "offset": offset,
            "size": len(data),
            "checksum": f"{algorithm}:{hasher.hexdigest()}",
        }
        objects.append(dataclasses.replace(obj, skeleton_ref=skeleton_ref))

    copied: dict[tuple[str, int | None], int | None] = {}
    raw_entries: list[bytes] = []
    dists: dict[str, Any] = {}
    for old in kept_entries:
        entry = m.entry(old)
        record = msgpack.unpackb(m.raw_entries[old], raw=False, strict_map_key=False)
        view = entry.meta.get("view")
        if isinstance(view, dict) and type(view.get("base")) is int:
            record[6] = {**record[6], "view": {**view, "base": renumber(view["base"])}}
        for blob, raw in zip(entry.blobs, record[7], strict=True):
            key = (blob.member, blob.offset)
            if key not in copied:
                ref = MemberRef(blob.member, blob.offset, blob.size)
                copied[key] = out.write_member(
                    blob.member, blob.size, _checked_copy(reader, ref, blob.checksum, m.source)
                )
            raw[2] = copied[key]
        if entry.dist is not None and entry.dist in m.dists:
            dists[entry.dist] = m.dists[entry.dist]
        raw_entries.append(pack_entry(record))
    return dataclasses.replace(
        m,
        objects=objects,
        names=[m.names[i] for i in kept_entries],
        raw_entries=raw_entries,
        dists=dists,
        _cache={},
        _index=None,
        _lookups=0,
    )
