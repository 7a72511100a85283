"""What the entry point names: a spec made of strings, so reading it imports no pytensor.

A shared variable's value lives in a ``Container`` (a one-element storage list
plus its type); the container is the leaf, so every function and variable
holding it shares one stored value.  Compiled functions are opaque to the walk
(their insides are graphs and compiled code) and are pickled as a call that
compiles them again around the same containers.
"""

from __future__ import annotations

from codecs_ser import CodecSpec

FUNCTION = "pytensor.compile.executor.Function"

CONTAINER = CodecSpec(
    codec_id="pytensor.container",
    impl="codecs_ser_pytensor._codec:ContainerCodec",
    handles=("pytensor.link.basic.Container",),
    requires=("pytensor",),
    dist="codecs-ser-pytensor",
    namers=(
        ("pytensor.compile.sharedvalue.SharedVariable", "codecs_ser_pytensor._graph:shared_value"),
    ),
    reducers=((FUNCTION, "codecs_ser_pytensor._graph:reduce_function"),),
    opaque=(FUNCTION,),
)
