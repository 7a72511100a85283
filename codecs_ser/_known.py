"""First-party codecs and backends that live in their own distributions.

Used only to tell a user which distribution to install; kept sorted.
"""

from __future__ import annotations

#: codec id -> distribution that provides it
KNOWN_CODECS: dict[str, str] = {
    "cupy.ndarray": "codecs-ser-cupy",
    "jax.array": "codecs-ser-jax",
    "numba.cuda.devicearray": "codecs-ser-numba",
    "torch.tensor": "codecs-ser-torch",
}

#: qualified type name of an array leaf -> distribution with its codec
KNOWN_TYPES: dict[str, str] = {
    "cupy.ndarray": "codecs-ser-cupy",
    "jaxlib._jax.ArrayImpl": "codecs-ser-jax",
    "jaxlib.xla_extension.ArrayImpl": "codecs-ser-jax",
    "numba.cuda.cudadrv.devicearray.DeviceNDArray": "codecs-ser-numba",
    "torch.Tensor": "codecs-ser-torch",
    "torch.nn.parameter.Parameter": "codecs-ser-torch",
}

#: backend id -> distribution that provides it
KNOWN_BACKENDS: dict[str, str] = {}

assert list(KNOWN_CODECS) == sorted(KNOWN_CODECS)
assert list(KNOWN_TYPES) == sorted(KNOWN_TYPES)
assert list(KNOWN_BACKENDS) == sorted(KNOWN_BACKENDS)


def dist_for_type(mro_names: list[str]) -> str | None:
    """The distribution whose codec handles a type, given the names along its MRO."""
    for name in mro_names:
        if name in KNOWN_TYPES:
            return KNOWN_TYPES[name]
    return None
