"""Reading other libraries' checkpoint files with nothing but codecs_ser and numpy.

``codecs_ser.open`` and ``codecs_ser.load_arrays`` hand a file that is not a
codecs_ser container to the foreign readers: torch.save (zip format),
safetensors, .npy, .npz, Theano/Aesara/PyTensor ``pkl_utils`` zips and Blocks
tar dumps are built in.  Each is recognised by its content, never its suffix,
and read without importing its library or running any pickle.

A third-party reader plugs in like a backend: an entry point in the group
``codecs_ser.foreign`` names a :class:`ForeignSpec` of strings (its magic bytes
and the import string of a class with ``sniff`` and ``open``), imported only when
a file's first bytes match.
"""

from __future__ import annotations

from ._container import ForeignContainer, open_foreign
from ._convert import convert
from ._registry import FOREIGN_GROUP, ForeignRegistry, default_foreign_registry, register_reader
from ._source import Source
from ._spec import ForeignArray, ForeignFile, ForeignReader, ForeignSpec

__all__ = [
    "FOREIGN_GROUP",
    "ForeignArray",
    "ForeignContainer",
    "ForeignFile",
    "ForeignReader",
    "ForeignRegistry",
    "ForeignSpec",
    "Source",
    "convert",
    "default_foreign_registry",
    "open_foreign",
    "register_reader",
]
