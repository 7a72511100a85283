"""Small writers of the two checkpoint formats whose libraries no longer install.

They follow the formats as their sources write them; where a detail is assumed,
the docstring says so.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np


def pkl_utils_dump(obj: Any, names: Mapping[int, str], path: str) -> dict[str, np.ndarray]:
    """What Theano's ``theano.misc.pkl_utils.dump`` writes (PersistentSharedVariableID).

    A ZIP_DEFLATED zip: member ``pkl`` is the pickled ``obj`` where every plain
    ndarray is the persistent id ``"ndarray.<member>"``; each array is written once,
    by ``numpy.lib.format.write_array``, as a member named after the shared
    variable that held it (``names`` maps ``id(array)`` to that variable's name),
    ``W``, then ``W_1``, ``W_2`` for later arrays of the same name, or ``array_N``
    (N counting unnamed arrays from 0).  Returns member name -> array.
    """
    seen: dict[int, str] = {}
    counter: defaultdict[str, int] = defaultdict(int)
    unnamed = 0
    written: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:

        def persistent_id(o: Any) -> str | None:
            nonlocal unnamed
            if type(o) is not np.ndarray:
                return None
            if id(o) not in seen:
                if id(o) in names:
                    name = names[id(o)]
                    count = counter[name]
                    counter[name] += 1
                    if count:
                        name += f"_{count}"
                else:
                    name = f"array_{unnamed}"
                    unnamed += 1
                buf = io.BytesIO()
                np.lib.format.write_array(buf, o)
                zf.writestr(name, buf.getvalue())
                written[name] = o
                seen[id(o)] = f"ndarray.{name}"
            return seen[id(o)]

        buf = io.BytesIO()
        p = pickle.Pickler(buf, protocol=2)
        p.persistent_id = persistent_id  # type: ignore[method-assign]
        p.dump(obj)
        zf.writestr("pkl", buf.getvalue())
    return written


def blocks_dump(
    obj: Any,
    parameters: list[tuple[str, np.ndarray]],
    path: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """What Blocks' ``blocks.serialization.dump`` (and ``add_to_dump``) write.

    An uncompressed tar made with ``tarfile``: member ``_parameters``, written
    first, is ``numpy.savez`` of the parameters' values keyed by their
    ``_Renamer`` names: the brick path joined by ``BRICK_DELIMITER`` ``|`` with a
    leading ``|``, then ``.`` and the variable's name (``|mlp|linear_0.W``), a
    repeated name getting ``_2``, ``_3``; then ``_pkl``, the pickled object, in
    which each parameter's value is a persistent id (assumed here to be the
    mangled name ``"#1" + name``, as ``_mangle_parameter_name`` writes for
    shared variables).  ``extra`` adds members the way ``add_to_dump`` does (a
    pickle each).  ``parameters`` gives (path name, value) pairs.
    """
    used: set[str] = set()
    named: dict[str, np.ndarray] = {}
    for name, value in parameters:
        if name in used:
            i = 2
            while f"{name}_{i}" in used:
                i += 1
            name = f"{name}_{i}"
        used.add(name)
        named[name] = value
    ids = {id(v): "#1" + n for n, v in named.items()}

    def add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    with tarfile.TarFile(path, mode="w") as tf:
        if named:
            buf = io.BytesIO()
            np.savez(buf, **named)
            add(tf, "_parameters", buf.getvalue())
        buf = io.BytesIO()
        p = pickle.Pickler(buf, protocol=2)
        p.persistent_id = lambda o: ids.get(id(o))  # type: ignore[method-assign]
        p.dump(obj)
        add(tf, "_pkl", buf.getvalue())
        for name, value in (extra or {}).items():
            add(tf, name, pickle.dumps(value, protocol=2))
