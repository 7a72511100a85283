"""PyTensor codec for codecs_ser: shared variables and the compiled functions using them.

Importing this package does not import pytensor: the registry reads the spec in
``_spec`` (strings only), and the codec module is imported the first time a
shared variable is dumped or a ``pytensor.container`` entry is loaded.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
