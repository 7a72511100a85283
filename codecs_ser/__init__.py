"""codecs_ser: save and load Python objects holding arrays, for every framework.

    codecs_ser.dump(obj, "run.tar")
    obj = codecs_ser.load("run.tar")              # safe by default
    arrays = codecs_ser.load_arrays("run.tar")    # {name: numpy array}, no unpickling

Importing this package imports numpy, msgpack and xxhash, and no framework:
codecs for torch, CuPy, JAX and others are found through entry points and
imported only when a leaf or a file needs them.
"""

from __future__ import annotations

from . import errors
from ._api import (
    Container,
    add,
    add_objects,
    audit,
    dump,
    dumps,
    load,
    load_arrays,
    loads,
    open,
    verify,
)
from ._limits import Limits, get_limits, limits, set_limits
from ._version import __version__
from .backend import BackendSpec
from .codec import CodecBase, CodecSpec, DecodeContext, Encoded
from .errors import (
    CodecsSerError,
    FormatError,
    IntegrityError,
    UnknownCodecError,
    UntrustedError,
)
from .registry import Registry, default_registry, register_backend, register_codec

__all__ = [
    "BackendSpec",
    "CodecBase",
    "CodecSpec",
    "CodecsSerError",
    "Container",
    "DecodeContext",
    "Encoded",
    "FormatError",
    "IntegrityError",
    "Limits",
    "Registry",
    "UnknownCodecError",
    "UntrustedError",
    "__version__",
    "add",
    "add_objects",
    "audit",
    "default_registry",
    "dump",
    "dumps",
    "errors",
    "get_limits",
    "limits",
    "load",
    "load_arrays",
    "loads",
    "open",
    "register_backend",
    "register_codec",
    "set_limits",
    "verify",
]
