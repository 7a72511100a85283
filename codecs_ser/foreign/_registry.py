"""Foreign readers by format id: entry points of ``codecs_ser.foreign`` read once, on the
first foreign file, and implementations imported when a file needs them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._plugin_table import PluginTable, autoload_disabled, check_import_string, check_magic
from ..errors import PluginValidationError
from ._spec import ForeignReader, ForeignSpec

__all__ = ["FOREIGN_GROUP", "ForeignRegistry", "default_foreign_registry", "register_reader"]

FOREIGN_GROUP = "codecs_ser.foreign"


def _check_spec(spec: ForeignSpec) -> None:
    if not isinstance(spec.format_id, str) or not spec.format_id:
        raise PluginValidationError(f"{spec!r}: format_id must be a non-empty str")
    check_import_string(spec, spec.impl)
    check_magic(spec, spec.magic)


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
        self._readers: PluginTable[ForeignSpec] = PluginTable(
            "foreign reader", ForeignSpec, "format_id", _check_spec, _check_impl
        )
        self._scanned = not entry_points
        if builtins:
            from ._specs import BUILTIN_READERS

            for spec in BUILTIN_READERS:
                self.register_reader(spec)
                self._readers.builtin.add(spec.format_id)

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
        same = self._readers.admit(spec, instance, replace=replace)
        if same is not None:
            return same
        self._readers.store(spec, instance)
        return spec

    def block(self, format_id: str) -> None:
        """Ignore a reader from now on (a built-in one too)."""
        self._readers.block(format_id, keep_builtin=False)

    def _ensure_scanned(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        if not autoload_disabled():
            self._readers.load_entry_points(
                FOREIGN_GROUP, self.register_reader, "codecs_ser.foreign.default_foreign_registry"
            )

    @property
    def readers(self) -> Mapping[str, ForeignSpec]:
        """Registered reader specs by format id (read-only view)."""
        self._ensure_scanned()
        return self._readers.view()

    @property
    def broken(self) -> Mapping[str, Exception]:
        """Entry points that failed to load, by name (they are skipped, not raised)."""
        self._ensure_scanned()
        return MappingProxyType(self._readers.broken)

    def candidates(self, head: bytes) -> list[str]:
        """Format ids whose magic matches the first bytes of a file, in asking order."""
        self._ensure_scanned()
        return [
            spec.format_id
            for spec in self._readers.specs.values()
            if any(head[o : o + len(m)] == m for o, m in spec.magic)
        ]

    def get_reader(self, format_id: str) -> ForeignReader:
        """The reader for a format id, imported on first use."""
        self._ensure_scanned()
        reader: ForeignReader = self._readers.implementation(
            format_id,
            lambda: PluginValidationError(f"no foreign reader {format_id!r} is registered"),
        )
        return reader


default_foreign_registry = ForeignRegistry()


def register_reader(
    reader: ForeignSpec | ForeignReader | type, *, magic: tuple[Any, ...] = (),
    replace: bool = False,
) -> ForeignSpec:  # fmt: skip
    """Register a foreign reader in the default registry."""
    return default_foreign_registry.register_reader(reader, magic=magic, replace=replace)
