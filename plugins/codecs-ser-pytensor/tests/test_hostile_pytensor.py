"""Hostile files against the container decoder: every damaged meta field gives a
codecs_ser error (never a crash or a container that lies about its value), and
random meta values never raise anything else."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytensor
import pytest
from codecs_ser_pytensor._codec import ContainerCodec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytensor.link.basic import Container

import codecs_ser
from codecs_ser.codec import DecodeContext, Encoded
from codecs_ser.errors import CodecsSerError, FormatError
from codecs_ser.testing import edit_entry_meta


def _dumped(tmp_path: Path) -> Path:
    path = tmp_path / "c"
    W = pytensor.shared(np.arange(6.0).reshape(2, 3), name="W", shape=(2, None))
    codecs_ser.dump(
        {"W": W.container, "n": pytensor.shared(np.int32(4)).container}, path, backend="dir"
    )
    return path


BAD_META: list[tuple[str, str, dict[str, Any]]] = [
    ("dtype-disagrees-with-blob", "W", {"dtype": "float32"}),
    ("dtype-unknown", "W", {"dtype": "float1024"}),
    ("dtype-not-a-str", "W", {"dtype": [1]}),
    ("dtype-missing", "W", {"dtype": None}),
    ("shape-too-short", "W", {"shape": [None]}),
    ("shape-too-long", "W", {"shape": [None] * 65}),
    ("shape-static-disagrees", "W", {"shape": [3, None]}),
    ("shape-static-huge", "W", {"shape": [1 << 62, None]}),
    ("shape-static-negative", "W", {"shape": [-2, None]}),
    ("shape-static-not-int", "W", {"shape": [2.0, None]}),
    ("shape-not-a-list", "W", {"shape": "2x3"}),
    ("scalar-given-a-dimension", "n", {"shape": [1]}),
    ("readonly-not-bool", "W", {"readonly": 1}),
    ("strict-missing", "W", {"strict": None}),
    ("allow-downcast-not-bool", "W", {"allow_downcast": "yes"}),
    ("name-not-a-str", "W", {"name": 12}),
]


@pytest.mark.parametrize(("case", "entry", "fields"), BAD_META, ids=[c[0] for c in BAD_META])
def test_damaged_meta_is_refused(
    tmp_path: Path, case: str, entry: str, fields: dict[str, Any]
) -> None:
    path = _dumped(tmp_path)
    edit_entry_meta(path, entry, **fields)
    with pytest.raises(FormatError, match="pytensor container"):
        codecs_ser.load(path)
    # The arrays stay readable: their blobs are intact.
    assert set(codecs_ser.load_arrays(path)) == {"W", "n"}


META_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(["dtype", "shape", "name", "readonly", "strict", "allow_downcast", "x"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(FIELDS, META_VALUES, min_size=1, max_size=3))
def test_random_meta_raises_only_codecs_ser_errors(tmp_path: Path, changes: dict[str, Any]) -> None:
    path = _dumped(Path(tempfile.mkdtemp(dir=tmp_path)))
    edit_entry_meta(path, "W", **changes)
    try:
        back = codecs_ser.load(path)
    except CodecsSerError:
        return
    w = back["W"]  # loaded: then it is a container that holds what the blob holds
    assert type(w) is Container and w.type.is_valid_value(w.storage[0])
    np.testing.assert_array_equal(w.storage[0], np.arange(6.0).reshape(2, 3))


def test_decoder_refuses_an_entry_without_its_value_blob() -> None:
    codec = ContainerCodec()
    enc = codec.encode(pytensor.shared(np.ones(2), name="W").container)
    with pytest.raises(FormatError, match="no 'value' blob"):
        codec.decode(Encoded(arrays={}, meta=enc.meta), DecodeContext(codec_version=1))


def test_decoder_refuses_a_dtype_pytensor_has_no_type_for() -> None:
    """A blob of a dtype numpy has and PyTensor lacks (datetimes), named in the meta."""
    value = np.array(["2020-01-01"], "datetime64[D]")
    meta = {"dtype": value.dtype.name, "shape": [None], "name": "t", "readonly": False,
            "strict": False, "allow_downcast": None}  # fmt: skip
    with pytest.raises(FormatError, match="type is invalid"):
        ContainerCodec().decode(
            Encoded(arrays={"value": value}, meta=meta), DecodeContext(codec_version=1)
        )
