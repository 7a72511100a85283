"""What the entry points name: specs made of strings, so reading them imports nothing else.

The registry imports this module when it first looks for codecs; the codec and
the backend modules are imported only when a Quantity is dumped, an
``example.quantity`` entry is loaded, or an ``example-pack`` file is opened.
"""

from __future__ import annotations

from codecs_ser import BackendSpec, CodecSpec

QUANTITY = CodecSpec(
    codec_id="example.quantity",
    impl="codecs_ser_example.codec:QuantityCodec",
    handles=("codecs_ser_example.quantity.Quantity",),
    requires=("numpy",),
    dist="codecs-ser-example",
)

PACK = BackendSpec(
    backend_id="example-pack",
    impl="codecs_ser_example.pack:PackBackend",
    suffixes=(".expack",),
    magic=((0, b"\x89EXPACK\n"),),
    dist="codecs-ser-example",
)
