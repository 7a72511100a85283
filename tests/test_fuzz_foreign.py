"""Damaged foreign files: every reader of foreign bytes raises only CodecsSerError, in
bounded time and memory, whatever bytes it meets.

Seeds are small valid files of each format (built without their libraries); each
example flips, overwrites, inserts or cuts bytes of one, then opens it, reads every
array (copied and mapped), audits, verifies and inspects it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import foreign_corpus as fc
import foreign_writers as fw
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codecs_ser
from codecs_ser import _cli
from codecs_ser.errors import CodecsSerError

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MAX_SECONDS = 5
MAX_TRACED = 64 << 20
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 40, (1 << 64) - 1)


@functools.cache
def seeds() -> dict[str, bytes]:
    a = np.arange(6, dtype=np.float32)
    out = {
        "torch": fc.torch_zip(
            fc.pkl(
                fc.dict_of(
                    w=fc.tensor(shape=(2, 2), stride=(2, 1)),
                    v=fc.tensor(shape=(2,), stride=(2,), offset=1),
                )
            ),
            {"0": a[:4].tobytes()},
        ),
        "safetensors": fc.safetensors(
            {
                "__metadata__": {"k": "v"},
                "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                "b": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]},
            },
            a.tobytes() + bytes(4),
        ),
        "npy": fc.npy_bytes(a.reshape(2, 3)),
        "npz": fc.zip_of({"a.npy": fc.npy_bytes(a), "b.npy": fc.npy_bytes(a[:2])}),
        "npz-deflated": fc.zip_of({"a.npy": fc.npy_bytes(a)}, method=8),
        "blocks": fc.tar_of(
            {"_parameters": fc.zip_of({"|mlp.W.npy": fc.npy_bytes(a)}), "_pkl": fc.pkl(b"N")}
        ),
    }
    buf = io.BytesIO()
    fw.pkl_utils_dump({"W": a, "x": a[:3].copy()}, {id(a): "W"}, buf)  # type: ignore[arg-type]
    out["pkl-utils"] = buf.getvalue()
    return out


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def fail(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        if not out:
            break
        at = draw.draw(st.integers(0, len(out) - 1))
        kind = draw.draw(st.sampled_from(["flip", "int", "cut", "insert", "byte"]))
        if kind == "flip":
            out[at] ^= 1 << draw.draw(st.integers(0, 7))
        elif kind == "byte":
            out[at] = draw.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, ord("{"), ord("(")]))
        elif kind == "int":
            width = draw.draw(st.sampled_from([2, 4, 8]))
            value = draw.draw(st.sampled_from(INTERESTING)) % (1 << (8 * width))
            out[at : at + width] = value.to_bytes(width, "little")
        elif kind == "cut":
            del out[at:]
        else:
            out[at:at] = draw.draw(st.binary(min_size=1, max_size=16))
    return bytes(out)


def _read_everything(path: Path) -> None:
    with codecs_ser.open(path) as c:
        for name in list(c.entries):
            c.read(name)
            c.read(name, mmap=True)
        c.audit()
        c.verify()
        with contextlib.suppress(CodecsSerError):
            c.load()
    codecs_ser.load_arrays(path.read_bytes())


@pytest.mark.parametrize("seed", sorted(seeds()))
def test_damaged_foreign_files_raise_only_codecs_ser_errors(seed: str, tmp_path: Path) -> None:
    base = seeds()[seed]
    path = tmp_path / "fuzzed"
    path.write_bytes(base)
    _read_everything(path)  # the seed itself reads

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        mutant = _mutate(base, data)
        path.write_bytes(mutant)
        tracemalloc.start()
        try:
            with _alarm(MAX_SECONDS), contextlib.redirect_stdout(io.StringIO()):
                with contextlib.suppress(CodecsSerError):
                    _read_everything(path)
                with contextlib.redirect_stderr(io.StringIO()):
                    assert _cli.main(["inspect", str(path)]) in (0, 2)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < MAX_TRACED, f"traced memory peaked at {peak / 2**20:.0f} MiB"

    run()
