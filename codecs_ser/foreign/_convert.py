"""``codecs-ser convert``: any file codecs_ser can open, written as a codecs_ser container."""

from __future__ import annotations

import os
import pickle
from typing import Any

from .._api import Container, dump
from .._api import open as open_container
from ..errors import CodecsSerError, UsageError
from ._container import ForeignContainer

__all__ = ["convert"]


def convert(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, trusted: bool = False,
    backend: str | None = None,
) -> str:  # fmt: skip
    """Write the file at ``source`` as a codecs_ser container at ``target``; returns what was kept.

    Without ``trusted`` the object is read as plain data where that needs no code
    to run ("object"), else only its arrays, by name ("arrays").  With ``trusted``
    a torch file is unpickled by torch (``weights_only=False``) and a pkl_utils or
    Blocks file by pickle, with its arrays in place ("trusted object"): only for
    files you trust, and the classes they name must be importable.
    """
    with open_container(source) as c:
        if trusted and isinstance(c, ForeignContainer) and c.format in TRUSTED:
            obj, kept = TRUSTED[c.format](c, os.fspath(source)), "trusted object"
        else:
            obj, kept = _safe(c)
    dump(obj, target, backend=backend)
    return kept


def _safe(c: Container) -> tuple[Any, str]:
    if not isinstance(c, ForeignContainer):
        return c.load(), "object"
    try:
        return c.load(), "object"
    except UsageError:
        return c.arrays(), "arrays"


def _torch(c: ForeignContainer, path: str) -> Any:
    try:
        import torch
    except ImportError:
        raise UsageError("--trusted conversion of a torch file needs torch installed") from None
    return torch.load(path, map_location="cpu", weights_only=False)


def _pickle_with_arrays(c: ForeignContainer, path: str) -> Any:
    """Unpickle the file's pickle member, its persistent ids resolved to the arrays."""
    file: Any = c._file
    arrays = c.arrays()
    data = getattr(file, "_pickle", None)
    if data is None:
        raise UsageError(f"--trusted is not supported for a {c.description}")

    class _Loader(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            key = str(pid).partition(".")[2]
            if key not in arrays:
                raise CodecsSerError(f"the pickle refers to an array {key!r} the file lacks")
            return arrays[key]

    import io

    return _Loader(io.BytesIO(data)).load()


TRUSTED = {"torch": _torch, "theano-pkl": _pickle_with_arrays}
