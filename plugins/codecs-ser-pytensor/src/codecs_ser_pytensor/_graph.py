"""Naming and pickling for PyTensor graphs; imports no pytensor (its objects come in).

A shared variable is named by the path at which the walk meets it: its value
(the container) takes the variable's place.  A compiled function is pickled as
``rebuild_function(maker, inputs, trust_input)``: the maker compiles it again on
load, around the shared variables' own containers, so a function and the
variables it uses still share their values (``W.set_value`` is seen by every
function using ``W``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def shared_value(variable: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """A shared variable's container, under the variable's own path."""
    container = getattr(variable, "container", None)
    if container is not None:
        yield (), container


def reduce_function(fn: Any) -> Any:
    """Pickle a compiled function as its maker plus the storage of each input.

    A shared input gives its variable's own container (the one object that the
    variable, every function and the file then share); an input with a default
    gives the function's container, which holds the current default; a required
    input gives nothing, since its storage only holds the last call's argument.
    """
    maker = fn.maker
    inputs: list[Any] = []
    for spec, required, container in zip(
        maker.expanded_inputs, maker.required, fn.input_storage, strict=True
    ):
        own = getattr(spec.variable, "container", None)
        if spec.shared and own is not None and own.storage is container.storage:
            inputs.append(own)
        elif spec.shared or not required:
            inputs.append(container)
        else:
            inputs.append(None)
    return (rebuild_function, (maker, inputs, bool(fn.trust_input)))


def rebuild_function(maker: Any, inputs: list[Any], trust_input: bool) -> Any:
    """Compile the function again around ``inputs`` (PyTensor's own unpickling does so)."""
    from pytensor import config

    if not config.unpickle_function:
        return None  # the user asked PyTensor not to rebuild functions on load
    fn = maker.create(inputs)
    fn.trust_input = trust_input
    return fn
