"""Foreign readers by format id: entry points of ``codecs_ser.foreign`` read once, on the
first foreign file, and implementations imported when a file needs them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._importing import import_object
from ..errors import DuplicateRegistrationError, PluginLoadError, PluginValidationError
from ..registry import AUTOLOAD_ENV
from ._spec import ForeignReader, ForeignSpec

__all__ = ["FOREIGN_GROUP", "ForeignRegistry", "default_foreign_registry", "register_reader"]

FOREIGN_GROUP = "codecs_ser.foreign"


def _check_spec(spec: ForeignSpec) -> None:
    if not isinstance(spec.format_id, str) or not spec.format_id:
        raise PluginValidationError(f"{spec!r}: format_id must be a non-empty str")
    if not isinstance(spec.impl, str) or ":" not in spec.impl:
        raise PluginValidationError(f"{spec!r}: impl must be an import string 'pkg.mod:Name'")
    if not isinstance(spec.magic, tuple) or not all(
        isinstance(m, tuple)
        and len(m) == 2
        and isinstance(m[0], int)
        and m[0] >= 0
        and isinstance(m[1], bytes)
        and m[1]
        for m in spec.magic
    ):
        raise PluginValidationError(f"{spec!r}: magic must be a tuple of (offset, bytes) pairs")


def _check_impl(spec: ForeignSpec, reader: Any) -> None:
    missing = [m for m in ("sniff", "open") if not callable(getattr(reader, m, None))]
    if missing:
        raise PluginValidationError(
            f"foreign reader {spec.impl!r} lacks {', '.join(missing)}; a reader implements "
            "sniff(source) -> bool and open(source) -> ForeignFile"
        )
    if getattr(reader, "format_id", None) != spec.format_id:
        raise PluginValidationError(
            f"foreign reader {spec.impl!r} has format_id {getattr(reader, 'format_id', None)!r} "
            f"but its spec says {spec.format_id!r}"
        )


class ForeignRegistry:
    """Known foreign readers, asked in registration order (built-ins first)."""

    def __init__(self, *, entry_points: bool = True, builtins: bool = True) -> None:
        self._specs: dict[str, ForeignSpec] = {}
        self._readers: dict[str, ForeignReader] = {}
        self._broken: dict[str, PluginLoadError | PluginValidationError] = {}
        self._blocked: set[str] = set()
        self._scanned = not entry_points
        if builtins:
            from ._specs import BUILTIN_READERS

            for spec in BUILTIN_READERS:
                self.register_reader(spec)

    def register_reader(
        self, reader: ForeignSpec | ForeignReader | type, *, magic: tuple[Any, ...] = (),
        replace: bool = False,
    ) -> ForeignSpec:  # fmt: skip
        """Register a reader by spec, or a reader class or instance (with its ``magic``)."""
        instance: Any = None
        if isinstance(reader, ForeignSpec):
            spec = reader
        else:
            instance = reader() if isinstance(reader, type) else reader
            cls = type(instance)
            spec = ForeignSpec(
                format_id=getattr(instance, "format_id", ""),
                impl=f"{cls.__module__}:{cls.__qualname__}",
                magic=tuple(magic),
            )
        _check_spec(spec)
        if instance is not None:
            _check_impl(spec, instance)
        old = self._specs.get(spec.format_id)
        if old is not None and not replace:
            if old == spec and instance is None:
                return old
            raise DuplicateRegistrationError("foreign reader", spec.format_id)
        self._specs[spec.format_id] = spec
        self._readers.pop(spec.format_id, None)
        self._broken.pop(spec.format_id, None)
        if instance is not None:
            self._readers[spec.format_id] = instance
        return spec

    def block(self, format_id: str) -> None:
        """Ignore a reader from now on (a built-in one too)."""
        self._blocked.add(format_id)
        self._specs.pop(format_id, None)
        self._readers.pop(format_id, None)
        self._broken.pop(format_id, None)

    def _ensure_scanned(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        if os.environ.get(AUTOLOAD_ENV, "") not in ("", "0"):
            return
        from importlib.metadata import entry_points

        for ep in entry_points(group=FOREIGN_GROUP):
            if ep.name in self._blocked:
                continue
            dist = getattr(getattr(ep, "dist", None), "name", None)
            if ep.name in self._specs and dist == "codecs-ser":
                continue  # the core's own readers, already registered
            try:
                spec = import_object(ep.value, entry_point=ep.name, dist=dist)
                if not isinstance(spec, ForeignSpec):
                    raise PluginValidationError(
                        f"entry point {ep.name!r} = {ep.value!r} from {dist} must name a "
                        f"ForeignSpec, not {type(spec).__name__}"
                    )
                if spec.dist is None and dist is not None:
                    spec = ForeignSpec(
                        spec.format_id, spec.impl, spec.magic, spec.description, dist
                    )
                self.register_reader(spec)
            except (PluginLoadError, PluginValidationError, DuplicateRegistrationError) as e:
                if isinstance(e, DuplicateRegistrationError):
                    e = PluginValidationError(
                        f"entry point {ep.name!r} from {dist} clashes with an already "
                        f"registered foreign reader {e.name!r}"
                    )
                self._broken[ep.name] = e

    @property
    def readers(self) -> Mapping[str, ForeignSpec]:
        """Registered reader specs by format id (read-only view)."""
        self._ensure_scanned()
        return MappingProxyType(self._specs)

    @property
    def broken(self) -> Mapping[str, Exception]:
        """Entry points that failed to load, by name (they are skipped, not raised)."""
        self._ensure_scanned()
        return MappingProxyType(self._broken)

    def candidates(self, head: bytes) -> list[str]:
        """Format ids whose magic matches the first bytes of a file, in asking order."""
        self._ensure_scanned()
        return [
            spec.format_id
            for spec in self._specs.values()
            if any(head[o : o + len(m)] == m for o, m in spec.magic)
        ]

    def get_reader(self, format_id: str) -> ForeignReader:
        """The reader for a format id, imported on first use."""
        self._ensure_scanned()
        reader = self._readers.get(format_id)
        if reader is not None:
            return reader
        spec = self._specs.get(format_id)
        if spec is None:
            broken = self._broken.get(format_id)
            if broken is not None:
                raise broken
            raise PluginValidationError(f"no foreign reader {format_id!r} is registered")
        cls = import_object(spec.impl, entry_point=format_id, dist=spec.dist)
        instance = cls() if isinstance(cls, type) else cls
        _check_impl(spec, instance)
        self._readers[format_id] = instance
        return instance


default_foreign_registry = ForeignRegistry()


def register_reader(
    reader: ForeignSpec | ForeignReader | type, *, magic: tuple[Any, ...] = (),
    replace: bool = False,
) -> ForeignSpec:  # fmt: skip
    """Register a foreign reader in the default registry."""
    return default_foreign_registry.register_reader(reader, magic=magic, replace=replace)
