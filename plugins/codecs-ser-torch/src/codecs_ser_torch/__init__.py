"""PyTorch codec for codecs_ser: tensors, parameters, shared storages, state dicts.

Importing this package does not import torch: the registry reads the spec in
``_spec`` (strings only), and the codec module is imported the first time a
tensor is dumped or a ``torch.tensor`` entry is loaded.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
