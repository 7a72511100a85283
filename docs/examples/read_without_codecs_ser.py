"""Read every array of a codecs_ser tar, zip or dir container with only numpy and msgpack.

Usage: python read_without_codecs_ser.py CONTAINER

This follows docs/format.md and imports nothing from codecs_ser, to show the
format stays readable without the library that wrote it.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile

import msgpack
import numpy as np

MANIFEST = ".codecs_ser/manifest.msgpack"


def members(path: str) -> dict[str, bytes]:
    """Every member of a tar, zip or dir container, by name."""
    if os.path.isdir(path):
        out = {}
        for folder, _, files in os.walk(path):
            for f in files:
                full = os.path.join(folder, f)
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, path).replace(os.sep, "/")] = fh.read()
        return out
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in z.namelist()}
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isfile()}


def read_arrays(path: str) -> dict[str, np.ndarray]:
    files = members(path)
    manifest = msgpack.unpackb(files[MANIFEST])
    entry_fields, blob_fields = manifest["entry_fields"], manifest["blob_fields"]
    arrays = {}
    for name, raw in zip(manifest["names"], manifest["entries"], strict=True):
        entry = dict(zip(entry_fields, msgpack.unpackb(raw), strict=False))
        for i, blob_raw in enumerate(entry["blobs"]):
            blob = dict(zip(blob_fields, blob_raw, strict=False))
            key = blob["name"] or (name if i == 0 else blob["member"][:-4])
            arrays[key] = np.load(io.BytesIO(files[blob["member"]]), allow_pickle=False)
    return arrays


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1])
        sys.exit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
    for key, value in read_arrays(sys.argv[1]).items():
        print(f"{key}: {value.dtype} {value.shape}")
