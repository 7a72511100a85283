"""The one exception hierarchy of codecs_ser.

Every error a user can meet derives from :class:`CodecsSerError`, and each
subclass also derives from the builtin exception it refines, so code that
catches ``ValueError`` or ``LookupError`` keeps working.  Exceptions carry their
facts as attributes and format them once, in ``__str__``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CodeByValueError",
    "CodeByValueWarning",
    "CodecsSerError",
    "ConcurrentWriteError",
    "ContainerReplacedError",
    "DuplicateRegistrationError",
    "FormatError",
    "IntegrityError",
    "NoCodecForTypeError",
    "PluginLoadError",
    "PluginValidationError",
    "TargetExistsError",
    "UnknownBackendError",
    "UnknownCodecError",
    "UnpicklableError",
    "UntrustedError",
    "UsageError",
]


class CodecsSerError(Exception):
    """Base class of every error raised by codecs_ser."""


class FormatError(CodecsSerError, ValueError):
    """The input is not a codecs_ser container, or its manifest or a blob is bad or truncated."""

    def __init__(self, message: str, *, path: str | None = None, member: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.member = member

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(f"in {self.path!r}")
        if self.member is not None:
            where.append(f"member {self.member!r}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class ContainerReplacedError(FormatError):
    """A writer replaced the container (a dir swapped whole) while it was being read.

    The one-shot calls (``load``, ``load_arrays``, ``audit``, ``verify``) open it again
    on their own; an open :class:`~codecs_ser.Container` keeps reading what it opened
    and raises this, since what it already returned came from the old container.
    """


class IntegrityError(FormatError):
    """A blob's bytes do not match the checksum the manifest recorded for them."""

    def __init__(
        self,
        member: str,
        *,
        algorithm: str,
        expected: str,
        actual: str,
        path: str | None = None,
    ):
        super().__init__(
            f"checksum mismatch: {algorithm} expected {expected}, got {actual}; "
            "the file is damaged or was modified after it was written",
            path=path,
            member=member,
        )
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class UnknownCodecError(CodecsSerError, LookupError):
    """A codec id is not registered; the message names the distribution that provides it."""

    def __init__(
        self,
        codec_id: str,
        *,
        dist: str | None = None,
        registered: Sequence[str] = (),
        entry: str | None = None,
    ):
        super().__init__(codec_id)
        self.codec_id = codec_id
        self.dist = dist
        self.registered = tuple(registered)
        self.entry = entry

    def __str__(self) -> str:
        what = f"codec {self.codec_id!r}"
        if self.entry is not None:
            what += f" (needed by entry {self.entry!r})"
        parts = [f"{what} is not installed."]
        if self.dist:
            parts.append(f"Install it with: pip install {self.dist}.")
        else:
            parts.append(
                "Register it with codecs_ser.register_codec(spec) or install the package "
                "that provides it."
            )
        parts.append("The arrays can still be read as numpy with codecs_ser.load_arrays(path).")
        if self.registered:
            parts.append(f"Registered codecs: {', '.join(sorted(self.registered))}.")
        return " ".join(parts)


class UnknownBackendError(CodecsSerError, LookupError):
    """A backend name is not registered, or a file matches no registered backend."""

    def __init__(self, backend_id: str, *, dist: str | None = None, registered: Sequence[str] = ()):
        super().__init__(backend_id)
        self.backend_id = backend_id
        self.dist = dist
        self.registered = tuple(registered)

    def __str__(self) -> str:
        parts = [f"backend {self.backend_id!r} is not installed."]
        if self.dist:
            parts.append(f"Install it with: pip install {self.dist}.")
        else:
            parts.append("Register it with codecs_ser.register_backend(spec).")
        if self.registered:
            parts.append(f"Registered backends: {', '.join(sorted(self.registered))}.")
        return " ".join(parts)


class NoCodecForTypeError(CodecsSerError, TypeError):
    """An array-like leaf of a known framework has no codec installed."""

    def __init__(self, type_name: str, *, path: str | None = None, dist: str | None = None):
        super().__init__(type_name)
        self.type_name = type_name
        self.path = path
        self.dist = dist

    def __str__(self) -> str:
        where = f" at {self.path!r}" if self.path else ""
        msg = f"no codec is installed for {self.type_name}{where}."
        if self.dist:
            msg += f" Install it with: pip install {self.dist}."
        else:
            msg += " Register one with codecs_ser.register_codec(spec)."
        return msg


class PluginLoadError(CodecsSerError, ImportError):
    """A plugin's entry point or implementation could not be imported."""

    def __init__(self, target: str, *, entry_point: str | None = None, dist: str | None = None):
        super().__init__(target)
        self.target = target
        self.entry_point = entry_point
        self.dist = dist

    def __str__(self) -> str:
        src = f" (entry point {self.entry_point!r}" if self.entry_point else ""
        if self.dist:
            src += f" from {self.dist}" if src else f" (from {self.dist}"
        src += ")" if src else ""
        cause = f": {self.__cause__!r}" if self.__cause__ is not None else ""
        return f"could not import {self.target!r}{src}{cause}"


class PluginValidationError(CodecsSerError, TypeError):
    """A codec or backend spec, or the class it names, breaks the plugin contract."""


class DuplicateRegistrationError(CodecsSerError, ValueError):
    """A codec or backend id is registered twice with different specs."""

    def __init__(self, kind: str, name: str):
        super().__init__(name)
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        if self.kind == "type":
            return (
                f"type {self.name!r} is already handled by another codec; "
                "pass replace=True to take it over"
            )
        return (
            f"{self.kind} {self.name!r} is already registered with a different spec; "
            "pass replace=True to override it"
        )


class UsageError(CodecsSerError, ValueError):
    """An argument given to a codecs_ser call is not valid (the message says which)."""


class TargetExistsError(CodecsSerError, FileExistsError):
    """The target path exists and is not something codecs_ser may replace."""


class ConcurrentWriteError(CodecsSerError, RuntimeError):
    """Another process replaced the container while ``add`` was writing to it.

    The add was abandoned and the other process's container left in place, so neither
    write is lost; add again.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return (
            f"{self.path!r} was replaced by another process during add(); this add was "
            "abandoned so that the other write is not lost. Add again (and serialize writers "
            "of one container)."
        )


class UnpicklableError(CodecsSerError, TypeError):
    """Part of the object has no saved form (a lock, an open file, a generator)."""

    def __init__(self, type_name: str, *, path: str | None, reason: str) -> None:
        super().__init__(type_name, path, reason)
        self.type_name = type_name
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        where = f"at {self.path!r}" if self.path else "inside the object's pickled state"
        return (
            f"cannot save the {self.type_name} {where}: {self.reason}. It holds something "
            "that has no saved form (a lock, an open file, a generator, a connection): "
            "leave it out of what you save (for example with __getstate__), or register a "
            "codec for its type"
        )


def _code_listing(code: Sequence[tuple[str, str | None]]) -> str:
    return ", ".join(f"{name} (at {path!r})" if path else name for name, path in code)


class CodeByValueWarning(UserWarning):
    """The object holds functions or classes that are saved as code, not by name."""

    def __init__(self, code: Sequence[tuple[str, str | None]]) -> None:
        super().__init__(code)
        self.code = list(code)

    def __str__(self) -> str:
        return (
            f"saving code by value: {_code_listing(self.code)}. They are defined in "
            "__main__, inside a function, or as lambdas, so they cannot be imported by "
            "name: the file holds their code, loading it needs trusted=True and the same "
            "Python version. Define them in a module to save them by name, or pass "
            "code_by_value='allow' to save code without this warning ('refuse' to refuse)"
        )


class CodeByValueError(CodecsSerError, TypeError):
    """``code_by_value='refuse'`` and the object holds functions or classes saved as code."""

    def __init__(self, code: Sequence[tuple[str, str | None]]) -> None:
        super().__init__(code)
        self.code = list(code)

    def __str__(self) -> str:
        return (
            f"the object holds code that would be saved by value: {_code_listing(self.code)}"
            " (code_by_value='refuse'); define them in an importable module"
        )


class UntrustedError(CodecsSerError):
    """Loading would import globals that are not allowed.

    ``globals`` lists every global the file wants that is not allowed, sorted;
    ``dangerous`` maps those that can run code or reach files, processes or the
    network to what they can do.  The message never suggests trusting those.
    """

    def __init__(self, globals_: Sequence[str], *, path: str | None = None):
        super().__init__(list(globals_))
        self.globals = sorted(set(globals_))
        self.path = path
        from ._danger import dangerous

        self.dangerous = dangerous(self.globals)

    def __str__(self) -> str:
        src = f"{self.path!r}" if self.path else "this container"
        harmless = [g for g in self.globals if g not in self.dangerous]
        parts = [f"loading {src} would import globals that are not allowed by default"]
        if self.dangerous:
            marked = "; ".join(f"{g} ({why})" for g, why in self.dangerous.items())
            parts.append(
                f"DANGEROUS: {marked}. Trusting any of these is trusted=True in disguise: "
                "the file could run any code. Load it with trusted=True only if you trust "
                "whoever made it"
            )
        if harmless:
            listed = ", ".join(harmless)
            parts.append(
                f"not in the allowlist: {listed}. If you trust the file, allow them with "
                f"codecs_ser.load(..., trusted={_suggested(harmless)!r})"
                + ("" if self.dangerous else ", or load everything with trusted=True")
            )
        parts.append("codecs_ser.load_arrays() reads the arrays without unpickling")
        return ". ".join(parts) + "."


def _suggested(names: Sequence[str]) -> list[str]:
    """The trusted=[...] to suggest: 'pkg.*' for a package that several names share."""
    by_package: dict[str, list[str]] = {}
    for name in names:
        by_package.setdefault(name.split(".", 1)[0], []).append(name)
    out: list[str] = []
    for package, members in by_package.items():
        out.extend([f"{package}.*"] if len(members) > 2 else members)
    return out
