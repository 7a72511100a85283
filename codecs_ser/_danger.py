"""Globals that can run code or reach the system: never advice, always a warning.

A file that asks for ``os.system`` must not get "allow it with
trusted=['os.system']" as its fix: trusting such a global is ``trusted=True`` in
disguise.  This is the one list of them; ``UntrustedError``, ``audit`` and the CLI
mark what it names, and docs/security.md prints it.
"""

from __future__ import annotations

_NUMPY_STATE = (
    "numpy's pickle machinery: a crafted state crashes the interpreter or corrupts memory"
)

#: Whole modules whose globals run code, touch files, processes or the network.
DANGEROUS_MODULES: dict[str, str] = {
    "_io": "opens files",
    "_pickle": "loads further pickles, which may run anything",
    "_posixsubprocess": "starts processes",
    "antigravity": "opens a web browser when imported",
    "codecs_ser._api": "reads and writes files",
    "asyncio": "starts processes and opens connections",
    "code": "runs code",
    "codecs": "opens files and imports codec modules",
    "cProfile": "runs code",
    "ctypes": "calls any C function and writes any memory",
    "dbm": "opens files",
    "distutils": "runs code",
    "ftplib": "opens connections",
    "glob": "lists files",
    "http": "opens connections",
    "imaplib": "opens connections",
    "importlib": "imports any module",
    "io": "opens files",
    "marshal": "loads code objects",
    "multiprocessing": "starts processes",
    "nt": "runs commands and changes files",
    "numpy.f2py": "compiles and runs code",
    "numpy.testing": "runs commands",
    "os": "runs commands and changes files",
    "pdb": "runs code",
    "pickle": "loads further pickles, which may run anything",
    "pkgutil": "imports any module",
    "platform": "runs commands",
    "posix": "runs commands and changes files",
    "pty": "starts processes",
    "runpy": "runs code",
    "shelve": "opens files and loads pickles",
    "shutil": "changes and removes files",
    "smtplib": "opens connections",
    "socket": "opens connections",
    "subprocess": "starts processes",
    "sys": "changes the interpreter",
    "tempfile": "creates files",
    "this": "prints when imported",
    "timeit": "runs code",
    "torch.load": "loads further pickles",
    "types": "builds code and functions",
    "urllib": "opens connections",
    "webbrowser": "starts programs",
    "zipimport": "imports code from files",
}

#: Single globals of otherwise harmless modules.
DANGEROUS_GLOBALS: dict[str, str] = {
    "builtins.__import__": "imports any module",
    "builtins.breakpoint": "runs the debugger",
    "builtins.compile": "compiles code",
    "builtins.delattr": "changes any object, classes and modules included",
    "builtins.eval": "runs code",
    "builtins.exec": "runs code",
    "builtins.getattr": "reaches any attribute, os.system included",
    "builtins.globals": "reaches the interpreter's globals",
    "builtins.input": "reads the terminal",
    "builtins.open": "reads and writes files",
    "builtins.setattr": "changes any object, classes and modules included",
    "builtins.type": "builds classes",
    "builtins.vars": "reaches the interpreter's globals",
    "copyreg._reconstructor": "calls any class's constructor on any object",
    "functools.partial": "calls anything it is given",
    "codecs_ser.add": "writes files",
    "codecs_ser.dump": "writes files",
    "codecs_ser.load": "loads further files",
    "numpy.load": "loads pickles, which may run anything",
    "numpy._core.multiarray._reconstruct": _NUMPY_STATE,
    "numpy._core.multiarray.scalar": _NUMPY_STATE,
    "numpy.core.multiarray._reconstruct": _NUMPY_STATE,
    "numpy.core.multiarray.scalar": _NUMPY_STATE,
    "numpy.fromfile": "reads files",
    "numpy.save": "writes files",
    "operator.attrgetter": "reaches any attribute",
    "operator.methodcaller": "calls any method",
}

#: cloudpickle's globals rebuild functions and classes from their code.
_CODE_BY_VALUE = ("cloudpickle.", "cloudpickle_fast.")
#: Methods a dotted global can name (``pathlib.PosixPath.write_text``): they act on
#: whatever the pickle passes them.
_DANGEROUS_METHODS = frozenset(
    {
        "chmod", "hardlink_to", "mkdir", "open", "read_bytes", "read_text", "rename",
        "replace", "rmdir", "symlink_to", "touch", "unlink", "write_bytes", "write_text",
    }
)  # fmt: skip


def describe(name: str) -> str | None:
    """What a dangerous global can do, or None when the name is none of them."""
    if name in DANGEROUS_GLOBALS:
        return DANGEROUS_GLOBALS[name]
    if name.startswith(_CODE_BY_VALUE):
        return "rebuilds functions or classes from code stored in the file"
    parts = name.split(".")
    if len(parts) > 2 and (parts[-1] in _DANGEROUS_METHODS or parts[-1].startswith("__")):
        return "reaches a method or an internal attribute of a class"
    from ._safe_globals import SAFE_GLOBALS

    owner = name.rpartition(".")[0]
    while owner:
        if owner in SAFE_GLOBALS:
            return f"reaches an attribute of {owner} (a method, not the allowed class)"
        owner = owner.rpartition(".")[0]
    module = name
    while module:
        if module in DANGEROUS_MODULES:
            return DANGEROUS_MODULES[module]
        module = module.rpartition(".")[0]
    return None


def dangerous(names: list[str]) -> dict[str, str]:
    """The dangerous ones among ``names``, each with what it can do."""
    return {n: reason for n in names if (reason := describe(n)) is not None}
