"""Codec and backend registry: entry points read once, implementations imported on first use.

Dispatch goes by the qualified type name of a leaf (``"torch.Tensor"``), walked
along the MRO, so registering a codec never imports its framework.  Module-level
``register_codec`` / ``register_backend`` act on :data:`default_registry`;
tests build their own :class:`Registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._importing import import_object
from ._known import KNOWN_BACKENDS, KNOWN_CODECS
from ._plugin_table import AUTOLOAD_ENV as AUTOLOAD_ENV
from ._plugin_table import (
    PluginTable,
    autoload_disabled,
    check_import_string,
    check_magic,
)
from .backend import Backend, BackendSpec
from .codec import Codec, CodecSpec
from .errors import (
    DuplicateRegistrationError,
    PluginValidationError,
    UnknownBackendError,
    UnknownCodecError,
)

__all__ = [
    "BACKEND_GROUP",
    "CODEC_GROUP",
    "Registry",
    "default_registry",
    "register_backend",
    "register_codec",
]

CODEC_GROUP = "codecs_ser.codecs"
BACKEND_GROUP = "codecs_ser.backends"


def _type_name(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


def _check_codec_spec(spec: CodecSpec) -> None:
    if not isinstance(spec.codec_id, str) or not spec.codec_id:
        raise PluginValidationError(f"{spec!r}: codec_id must be a non-empty str")
    check_import_string(spec, spec.impl)
    if not isinstance(spec.handles, tuple) or not all(
        isinstance(h, str) and h for h in spec.handles
    ):
        raise PluginValidationError(f"{spec!r}: handles must be a tuple of qualified type names")
    for hook in ("safe_globals", "namers", "reducers"):
        pairs = getattr(spec, hook)
        if not isinstance(pairs, tuple) or not all(
            isinstance(p, tuple)
            and len(p) == 2
            and isinstance(p[0], str)
            and p[0]
            and isinstance(p[1], str)
            and ":" in p[1]
            for p in pairs
        ):
            raise PluginValidationError(
                f"{spec!r}: {hook} must be a tuple of (name, 'pkg.mod:Name') pairs"
            )
    if not isinstance(spec.opaque, tuple) or not all(isinstance(n, str) and n for n in spec.opaque):
        raise PluginValidationError(f"{spec!r}: opaque must be a tuple of qualified type names")


def _check_backend_spec(spec: BackendSpec) -> None:
    if not isinstance(spec.backend_id, str) or not spec.backend_id:
        raise PluginValidationError(f"{spec!r}: backend_id must be a non-empty str")
    check_import_string(spec, spec.impl)
    check_magic(spec, spec.magic)
    if not all(isinstance(s, str) and s.startswith(".") for s in spec.suffixes):
        raise PluginValidationError(f"{spec!r}: suffixes must be strings such as '.tar'")


def _check_codec_impl(spec: CodecSpec, codec: Any) -> None:
    missing = [
        m for m in ("encode", "decode", "can_encode") if not callable(getattr(codec, m, None))
    ]
    if missing:
        raise PluginValidationError(
            f"codec {spec.impl!r} lacks {', '.join(missing)}; a codec implements "
            "encode(obj) -> Encoded, decode(encoded, ctx) -> obj and can_encode(obj) -> bool "
            "(subclass codecs_ser.codec.CodecBase for defaults)"
        )
    if getattr(codec, "codec_id", None) != spec.codec_id:
        raise PluginValidationError(
            f"codec {spec.impl!r} has codec_id {getattr(codec, 'codec_id', None)!r} "
            f"but its spec says {spec.codec_id!r}"
        )
    version = getattr(codec, "codec_version", None)
    if not isinstance(version, int) or version < 1:
        raise PluginValidationError(f"codec {spec.impl!r}: codec_version must be an int >= 1")


def _check_backend_impl(spec: BackendSpec, backend: Any) -> None:
    missing = [m for m in ("create", "open", "append") if not callable(getattr(backend, m, None))]
    if missing:
        raise PluginValidationError(
            f"backend {spec.impl!r} lacks {', '.join(missing)}; a backend implements "
            "create(target, *, durable), open(source) and append(path, *, durable)"
        )


class Registry:
    """Known codecs and backends, by id and by the type names they handle."""

    def __init__(self, *, entry_points: bool = True, builtins: bool = True) -> None:
        self._codecs: PluginTable[CodecSpec] = PluginTable(
            "codec", CodecSpec, "codec_id", _check_codec_spec, _check_codec_impl
        )
        self._backends: PluginTable[BackendSpec] = PluginTable(
            "backend", BackendSpec, "backend_id", _check_backend_spec, _check_backend_impl
        )
        self._by_type: dict[str, CodecSpec] = {}
        self._type_cache: dict[type, CodecSpec | None] = {}
        self._hooks: dict[str, dict[str, tuple[str, CodecSpec]]] | None = None
        self._hook_objects: dict[tuple[str, str], Any] = {}
        self._hook_type_cache: dict[tuple[str, type], Any] = {}
        self._opaque: frozenset[str] | None = None
        self._opaque_cache: dict[type, bool] = {}
        self._scanned = not entry_points
        if builtins:
            from .backends._specs import BUILTIN_BACKENDS
            from .codecs._specs import BUILTIN_CODECS

            for cspec in BUILTIN_CODECS:
                self.register_codec(cspec)
                self._codecs.builtin.add(cspec.codec_id)
            for bspec in BUILTIN_BACKENDS:
                self.register_backend(bspec)
                self._backends.builtin.add(bspec.backend_id)

    # -- registration -------------------------------------------------------

    def register_codec(
        self,
        codec: CodecSpec | Codec | type,
        *,
        handles: tuple[str, ...] = (),
        subclasses: bool = False,
        replace: bool = False,
    ) -> CodecSpec:
        """Register a codec by spec, or a codec class or instance for code that is not packaged.

        For a class or instance, ``handles`` names the qualified types it encodes.
        """
        instance: Any = None
        if isinstance(codec, CodecSpec):
            spec = codec
        else:
            instance = codec() if isinstance(codec, type) else codec
            cls = type(instance)
            spec = CodecSpec(
                codec_id=getattr(instance, "codec_id", ""),
                impl=f"{cls.__module__}:{cls.__qualname__}",
                handles=tuple(handles),
                subclasses=subclasses,
            )
        same = self._codecs.admit(spec, instance, replace=replace)
        if same is not None:
            return same
        if not replace:
            for name in spec.handles:
                owner = self._by_type.get(name)
                if owner is not None and owner.codec_id != spec.codec_id:
                    raise DuplicateRegistrationError("type", name)
        old = self._codecs.specs.get(spec.codec_id)
        if old is not None:
            self._forget_types(old)
        self._codecs.store(spec, instance)
        for name in spec.handles:
            self._by_type[name] = spec
        self._type_cache.clear()
        self._clear_hooks()
        return spec

    def _forget_types(self, spec: CodecSpec) -> None:
        for name in spec.handles:
            if self._by_type.get(name) is spec:
                del self._by_type[name]

    def register_backend(
        self,
        backend: BackendSpec | Backend,
        *,
        suffixes: tuple[str, ...] = (),
        replace: bool = False,
    ) -> BackendSpec:
        """Register a backend by spec, or a backend instance for code that is not packaged."""
        instance: Any = None
        if isinstance(backend, BackendSpec):
            spec = backend
        else:
            instance = backend() if isinstance(backend, type) else backend
            cls = type(instance)
            spec = BackendSpec(
                backend_id=getattr(instance, "backend_id", ""),
                impl=f"{cls.__module__}:{cls.__qualname__}",
                suffixes=tuple(suffixes),
            )
        same = self._backends.admit(spec, instance, replace=replace)
        if same is not None:
            return same
        self._backends.store(spec, instance)
        return spec

    def block(self, name: str) -> None:
        """Ignore the entry point ``name`` (a codec or backend id) from now on.

        The core's own codecs and backends are not entry-point plugins and stay.
        """
        spec = self._codecs.specs.get(name)
        if self._codecs.block(name, keep_builtin=True) and spec is not None:
            self._forget_types(spec)
            self._type_cache.clear()
            self._clear_hooks()
        self._backends.block(name, keep_builtin=True)

    # -- entry points --------------------------------------------------------

    def _ensure_scanned(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        if autoload_disabled():
            return
        blocker = "codecs_ser.default_registry"
        self._codecs.load_entry_points(CODEC_GROUP, self.register_codec, blocker)
        self._backends.load_entry_points(BACKEND_GROUP, self.register_backend, blocker)

    # -- lookup --------------------------------------------------------------

    @property
    def codecs(self) -> Mapping[str, CodecSpec]:
        """Registered codec specs by id (read-only view)."""
        self._ensure_scanned()
        return self._codecs.view()

    @property
    def backends(self) -> Mapping[str, BackendSpec]:
        """Registered backend specs by id (read-only view)."""
        self._ensure_scanned()
        return self._backends.view()

    def spec_for_type(self, tp: type) -> CodecSpec | None:
        """The codec spec that owns a leaf type, or None (cached per type)."""
        try:
            return self._type_cache[tp]
        except KeyError:
            pass
        self._ensure_scanned()
        found: CodecSpec | None = None
        for i, cls in enumerate(tp.__mro__):
            spec = self._by_type.get(_type_name(cls))
            if spec is not None and (i == 0 or spec.subclasses):
                found = spec
                break
        self._type_cache[tp] = found
        return found

    # -- plugin hooks: safe globals, namers, reducers ------------------------------

    def _clear_hooks(self) -> None:
        self._hooks = None
        self._opaque = None
        self._opaque_cache.clear()
        self._hook_objects.clear()
        self._hook_type_cache.clear()

    def _hook_table(self, hook: str) -> dict[str, tuple[str, CodecSpec]]:
        self._ensure_scanned()
        if self._hooks is None:
            tables: dict[str, dict[str, tuple[str, CodecSpec]]] = {
                "safe_globals": {},
                "namers": {},
                "reducers": {},
            }
            for spec in self._codecs.specs.values():
                for name in tables:
                    for key, target in getattr(spec, name):
                        tables[name].setdefault(key, (target, spec))
            self._hooks = tables
        return self._hooks[hook]

    def _hook_object(self, hook: str, key: str) -> Any:
        found = self._hook_table(hook).get(key)
        if found is None:
            return None
        target, spec = found
        cache_key = (hook, key)
        if cache_key not in self._hook_objects:
            self._hook_objects[cache_key] = import_object(
                target, entry_point=spec.codec_id, dist=spec.dist
            )
        return self._hook_objects[cache_key]

    def safe_global_names(self) -> frozenset[str]:
        """Pickle globals that plugins let untrusted skeletons use (names only, nothing imported)."""
        return frozenset(self._hook_table("safe_globals"))

    def safe_global(self, name: str) -> Any:
        """The checked constructor (a SafeGlobal) a plugin gives for a pickle global, or None."""
        from ._safe_globals import SafeGlobal

        found = self._hook_object("safe_globals", name)
        if found is not None and not isinstance(found, SafeGlobal):
            raise PluginValidationError(
                f"the safe global {name!r} names {type(found).__name__}, not a "
                "codecs_ser.safe_globals.SafeGlobal"
            )
        return found

    def _by_mro(self, hook: str, tp: type, exact: bool) -> Any:
        cache_key = (hook, tp)
        try:
            return self._hook_type_cache[cache_key]
        except KeyError:
            pass
        table = self._hook_table(hook)
        found = None
        if table:
            for cls in tp.__mro__[:1] if exact else tp.__mro__:
                name = _type_name(cls)
                if name in table:
                    found = self._hook_object(hook, name)
                    break
        self._hook_type_cache[cache_key] = found
        return found

    def namer_for(self, tp: type) -> Any:
        """A plugin's function naming the leaves inside objects of this type, or None."""
        return self._by_mro("namers", tp, exact=False)

    def reducer_for(self, tp: type) -> Any:
        """A plugin's pickling reduction for objects of exactly this type, or None."""
        return self._by_mro("reducers", tp, exact=True)

    def is_opaque(self, tp: type) -> bool:
        """Whether a plugin asks the walk not to enter objects of this type (by name: no import)."""
        try:
            return self._opaque_cache[tp]
        except KeyError:
            pass
        if self._opaque is None:
            self._ensure_scanned()
            self._opaque = frozenset(n for s in self._codecs.specs.values() for n in s.opaque)
        found = bool(self._opaque) and any(_type_name(c) in self._opaque for c in tp.__mro__)
        self._opaque_cache[tp] = found
        return found

    def get_codec(
        self, codec_id: str, *, entry: str | None = None, dist: str | None = None
    ) -> Codec:
        """The codec instance for an id; imports its implementation on first use."""
        try:
            return self._codecs.instances[codec_id]
        except KeyError:
            pass
        self._ensure_scanned()
        return self._codecs.implementation(
            codec_id,
            lambda: UnknownCodecError(
                codec_id,
                dist=dist or KNOWN_CODECS.get(codec_id),
                registered=list(self._codecs.specs),
                entry=entry,
            ),
        )

    def get_backend(self, backend_id: str) -> Backend:
        """The backend instance for an id; imports its implementation on first use."""
        try:
            return self._backends.instances[backend_id]
        except KeyError:
            pass
        self._ensure_scanned()
        return self._backends.implementation(backend_id, lambda: self._unknown(backend_id))

    def get_backend_spec(self, backend_id: str) -> BackendSpec:
        self._ensure_scanned()
        return self._backends.spec(backend_id, lambda: self._unknown(backend_id))

    def _unknown(self, backend_id: str) -> UnknownBackendError:
        return UnknownBackendError(
            backend_id, dist=KNOWN_BACKENDS.get(backend_id), registered=list(self._backends.specs)
        )

    def backend_for_suffix(self, name: str) -> str | None:
        """The backend whose longest suffix ends ``name``, if any."""
        self._ensure_scanned()
        best: tuple[int, str] | None = None
        lower = name.lower()
        for spec in self._backends.specs.values():
            for suffix in spec.suffixes:
                if lower.endswith(suffix.lower()) and (best is None or len(suffix) > best[0]):
                    best = (len(suffix), spec.backend_id)
        return best[1] if best else None

    def backends_for_head(self, head: bytes) -> list[str]:
        """Backends whose magic signature matches the first bytes of a file, the ones with
        the earliest signature first (a zip's data may hold tar's signature at 257)."""
        self._ensure_scanned()
        found: list[tuple[int, str]] = []
        for spec in self._backends.specs.values():
            offsets = [
                offset
                for offset, magic in spec.magic
                if head[offset : offset + len(magic)] == magic
            ]
            if offsets:
                found.append((min(offsets), spec.backend_id))
        return [backend_id for _, backend_id in sorted(found)]

    def directory_backends(self) -> list[str]:
        self._ensure_scanned()
        return [s.backend_id for s in self._backends.specs.values() if s.directory]


default_registry = Registry()


def register_codec(
    codec: CodecSpec | Codec | type,
    *,
    handles: tuple[str, ...] = (),
    subclasses: bool = False,
    replace: bool = False,
) -> CodecSpec:
    """Register a codec in the default registry (see :meth:`Registry.register_codec`)."""
    return default_registry.register_codec(
        codec, handles=handles, subclasses=subclasses, replace=replace
    )


def register_backend(
    backend: BackendSpec | Backend, *, suffixes: tuple[str, ...] = (), replace: bool = False
) -> BackendSpec:
    """Register a backend in the default registry (see :meth:`Registry.register_backend`)."""
    return default_registry.register_backend(backend, suffixes=suffixes, replace=replace)
