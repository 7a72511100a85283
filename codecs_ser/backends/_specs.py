"""Specs of the built-in backends: strings only, so reading them imports nothing."""

from __future__ import annotations

from ..backend import BackendSpec

TAR = BackendSpec(
    backend_id="tar",
    impl="codecs_ser.backends.tar:TarBackend",
    suffixes=(".tar",),
    magic=((257, b"ustar"),),
    dist="codecs-ser",
)
ZIP = BackendSpec(
    backend_id="zip",
    impl="codecs_ser.backends.zip:ZipBackend",
    suffixes=(".zip", ".npz"),
    magic=((0, b"PK\x03\x04"), (0, b"PK\x05\x06")),
    dist="codecs-ser",
)
DIR = BackendSpec(
    backend_id="dir",
    impl="codecs_ser.backends.dir:DirBackend",
    directory=True,
    dist="codecs-ser",
)

BUILTIN_BACKENDS = (TAR, ZIP, DIR)
