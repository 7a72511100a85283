"""One kind of plugin: specs by id, implementations imported on first use, entry points
read once.

Codecs, backends and foreign readers are three tables of this one kind; they differ
only in their spec type and checks, and in what the registry indexes besides (a
codec's types, a backend's suffixes).  A broken entry point is kept as its error and
raised only when what it provides is asked for, so one bad plugin breaks nothing else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar, cast

from ._importing import import_object
from .errors import DuplicateRegistrationError, PluginLoadError, PluginValidationError

#: Set (to anything but "" or "0") to read no entry points: only what code registers.
AUTOLOAD_ENV = "CODECS_SER_DISABLE_PLUGIN_AUTOLOAD"
#: The core's own distribution: the only one whose entry points may name built-in ids.
CORE_DIST = "codecs-ser"


class PluginSpec(Protocol):
    """What every kind of spec has: the implementation to import, and where it comes from."""

    @property
    def impl(self) -> str: ...

    @property
    def dist(self) -> str | None: ...


S = TypeVar("S", bound=PluginSpec)


def autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "") not in ("", "0")


def check_import_string(spec: Any, impl: Any) -> None:
    if not isinstance(impl, str) or ":" not in impl:
        raise PluginValidationError(f"{spec!r}: impl must be an import string 'pkg.mod:Name'")


def check_magic(spec: Any, magic: Any) -> None:
    """Magic signatures are ``(offset, bytes)`` pairs: offsets from 0, bytes not empty."""
    if not isinstance(magic, tuple) or not all(
        isinstance(m, tuple)
        and len(m) == 2
        and isinstance(m[0], int)
        and m[0] >= 0
        and isinstance(m[1], bytes)
        and m[1]
        for m in magic
    ):
        raise PluginValidationError(f"{spec!r}: magic must be a tuple of (offset, bytes) pairs")


class PluginTable(Generic[S]):
    """The specs of one kind of plugin, their implementations, and broken entry points."""

    def __init__(
        self,
        kind: str,
        spec_type: type[S],
        id_field: str,
        check_spec: Callable[[S], None],
        check_impl: Callable[[S, Any], None],
    ) -> None:
        self.kind = kind
        self._spec_type = spec_type
        self._id_field = id_field
        self._check_spec = check_spec
        self._check_impl = check_impl
        self.specs: dict[str, S] = {}
        self.instances: dict[str, Any] = {}
        self.broken: dict[str, PluginLoadError | PluginValidationError] = {}
        self.blocked: set[str] = set()
        self.builtin: set[str] = set()

    def key(self, spec: S) -> str:
        return str(getattr(spec, self._id_field))

    def admit(self, spec: S, instance: Any, *, replace: bool) -> S | None:
        """Check a spec (and an instance, for code that is not packaged) before storing it.

        Returns the spec already registered when it is this one (nothing to do), else
        None; another spec under the same id raises unless ``replace``.
        """
        self._check_spec(spec)
        if instance is not None:
            self._check_impl(spec, instance)
        old = self.specs.get(self.key(spec))
        if old is not None and not replace:
            if old == spec and instance is None:
                return old
            raise DuplicateRegistrationError(self.kind, self.key(spec))
        return None

    def store(self, spec: S, instance: Any = None) -> None:
        key = self.key(spec)
        self.specs[key] = spec
        self.instances.pop(key, None)
        self.broken.pop(key, None)
        if instance is not None:
            self.instances[key] = instance

    def block(self, key: str, *, keep_builtin: bool) -> bool:
        """Ignore the entry point ``key`` from now on; True if its spec was removed."""
        self.blocked.add(key)
        self.broken.pop(key, None)
        if keep_builtin and key in self.builtin:
            return False
        self.instances.pop(key, None)
        return self.specs.pop(key, None) is not None

    def view(self) -> Mapping[str, S]:
        return MappingProxyType(self.specs)

    def spec(self, key: str, missing: Callable[[], Exception]) -> S:
        """The spec of an id.  An id whose entry point failed raises that failure; an
        unknown id, ``missing()``."""
        spec = self.specs.get(key)
        if spec is None:
            broken = self.broken.get(key)
            raise broken if broken is not None else missing()
        return spec

    def implementation(self, key: str, missing: Callable[[], Exception]) -> Any:
        """The instance for an id, imported and checked on first use."""
        try:
            return self.instances[key]
        except KeyError:
            pass
        spec = self.spec(key, missing)
        cls = import_object(spec.impl, entry_point=key, dist=spec.dist)
        instance = cls() if isinstance(cls, type) else cls
        self._check_impl(spec, instance)
        self.instances[key] = instance
        return instance

    def load_entry_points(self, group: str, register: Callable[[S], object], blocker: str) -> None:
        """Register the specs that the entry points of ``group`` name.

        ``register`` stores one spec (with the checks of its kind); ``blocker`` is the
        object whose ``block`` a user calls to silence a clash, for the error message.
        """
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            if ep.name in self.blocked:
                continue
            dist = getattr(getattr(ep, "dist", None), "name", None)
            if ep.name in self.builtin and dist != CORE_DIST:
                continue  # another distribution claims one of the core's own ids: the core's stays
            try:
                spec: Any = import_object(ep.value, entry_point=ep.name, dist=dist)
                if not isinstance(spec, self._spec_type):
                    raise PluginValidationError(
                        f"entry point {ep.name!r} = {ep.value!r} from {dist} must name a "
                        f"{self._spec_type.__name__}, not {type(spec).__name__}"
                    )
                if dist is not None and spec.dist is None:
                    spec = dataclasses.replace(cast(Any, spec), dist=dist)
                old = self.specs.get(ep.name)
                if old is not None and old.impl == spec.impl:
                    continue  # already registered (the core's own readers are)
                register(spec)
            except (PluginLoadError, PluginValidationError, DuplicateRegistrationError) as e:
                if isinstance(e, DuplicateRegistrationError):
                    e = PluginValidationError(
                        f"entry point {ep.name!r} from {dist} clashes with an already registered "
                        f"{e.kind} {e.name!r}; uninstall one of the two, or block one with "
                        f"{blocker}.block({ep.name!r})"
                    )
                self.broken[ep.name] = e
