"""Foreign checkpoints: torch.save, safetensors, .npy/.npz, pkl_utils and Blocks files read
by codecs_ser.open and load_arrays, recognised by content, with nothing unpickled."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import foreign_writers as fw
import numpy as np
import pytest

import codecs_ser
from codecs_ser import _cli
from codecs_ser.errors import FormatError, UsageError
from codecs_ser.foreign import (
    ForeignArray,
    ForeignContainer,
    ForeignFile,
    ForeignRegistry,
    ForeignSpec,
    Source,
    _dtypes,
    default_foreign_registry,
    open_foreign,
)

try:
    import torch
except ImportError:  # pragma: no cover - torch is a test extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch to write the files")


# -- torch.save ---------------------------------------------------------------------


@pytest.fixture
def torch_file(tmp_path: Path) -> tuple[Path, Any]:
    assert torch is not None
    w = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = OrderedDict(
        weight=w,
        view=w[1:, ::2],
        tied=w,
        bf=torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        f8=torch.tensor([0.5, 1.0], dtype=torch.float8_e4m3fn),
        p=torch.nn.Parameter(torch.ones(3)),
        b=torch.tensor([True, False]),
        i=torch.arange(5, dtype=torch.int64)[::2],
        scalar=torch.tensor(7.0, dtype=torch.float64),
        empty=torch.zeros(0, 3),
        expanded=torch.ones(1, 3).expand(4, 3),
    )
    obj = {"model": sd, "step": 12, "names": ["a", "b"], "shape": torch.Size([2, 3])}
    path = tmp_path / "ckpt.bin"  # the suffix says nothing
    torch.save(obj, path)
    return path, obj


@needs_torch
def test_torch_arrays_match_torch_load(torch_file: tuple[Path, Any]) -> None:
    path, obj = torch_file
    arrays = codecs_ser.load_arrays(path)
    sd = obj["model"]
    assert sorted(arrays) == sorted(f"model/{k}" for k in sd if k != "tied")
    for key, t in sd.items():
        if key in ("tied", "bf", "f8"):
            continue
        got = arrays[f"model/{key}"]
        want = t.detach().numpy()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    bf_bits = sd["bf"].view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(np.asarray(arrays["model/bf"]).view(np.uint16), bf_bits)
    f8_bits = sd["f8"].view(torch.uint8).numpy()
    np.testing.assert_array_equal(np.asarray(arrays["model/f8"]).view(np.uint8), f8_bits)


@needs_torch
@pytest.mark.parametrize("mmap", [False, True])
def test_torch_views_share_memory(torch_file: tuple[Path, Any], mmap: bool) -> None:
    path, _ = torch_file
    arrays = codecs_ser.load_arrays(path, mmap=mmap)
    assert np.shares_memory(arrays["model/weight"], arrays["model/view"])
    assert arrays["model/view"].strides == (24, 8)
    assert arrays["model/expanded"].strides == (0, 4)
    assert arrays["model/weight"].flags.writeable is not mmap
    if not mmap:
        arrays["model/weight"][1, 0] = -1
        assert arrays["model/view"][0, 0] == -1


@needs_torch
def test_torch_entries_audit_and_structure(torch_file: tuple[Path, Any]) -> None:
    path, _ = torch_file
    with codecs_ser.open(path) as c:
        assert isinstance(c, ForeignContainer) and c.format == "torch"
        assert c.objects == ["main"]
        e = c.entries["model/bf"]
        assert e.meta["dtype"] == "bfloat16" and e.dtype == np.dtype("<u2") and e.shape == (2,)
        assert c.entries["model/view"].meta["strides"] == [6, 2]
        assert c.entries["model/p"].meta["parameter"] is True
        assert "torch._utils._rebuild_tensor_v2" in c.audit()
        assert c.verify() == []
        loaded = c.load()
        assert loaded["step"] == 12 and loaded["names"] == ["a", "b"] and loaded["shape"] == (2, 3)
        assert loaded["model"]["tied"] is loaded["model"]["weight"]
        np.testing.assert_array_equal(c.read("model/i"), [0, 2, 4])


@needs_torch
def test_torch_whole_module_arrays_named_by_attributes(tmp_path: Path) -> None:
    """A pickled nn.Module: its classes are kept as inert records, its tensors found."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    path = tmp_path / "net.pt"
    torch.save(net, path)
    arrays = codecs_ser.load_arrays(path)
    assert sorted(arrays) == ["_modules/0/_parameters/bias", "_modules/0/_parameters/weight"]
    np.testing.assert_array_equal(arrays["_modules/0/_parameters/weight"], net[0].weight.detach())
    with codecs_ser.open(path) as c, pytest.raises(UsageError, match="only unpickling"):
        c.load()


def test_torch_legacy_format_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    path.write_bytes(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.")
    with pytest.raises(FormatError, match="legacy format"):
        codecs_ser.load_arrays(path)


# -- safetensors -----------------------------------------------------------------------


@pytest.mark.parametrize("mmap", [False, True])
def test_safetensors(tmp_path: Path, mmap: bool) -> None:
    st = pytest.importorskip("safetensors.numpy")
    data = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3, np.int8)}
    path = tmp_path / "model.pt"  # a misleading suffix
    st.save_file(data, str(path), metadata={"format": "np"})
    arrays = codecs_ser.load_arrays(path, mmap=mmap)
    assert sorted(arrays) == sorted(data)
    for k, v in data.items():
        np.testing.assert_array_equal(arrays[k], v)
        assert arrays[k].dtype == v.dtype
    assert arrays["b"].flags.writeable is not mmap
    with codecs_ser.open(path) as c:
        assert c.format == "safetensors" and c.metadata == {"format": "np"}


@needs_torch
def test_safetensors_bfloat16_from_torch(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    t = torch.tensor([1.0, -3.5, 2.25], dtype=torch.bfloat16)
    path = tmp_path / "bf.safetensors"
    st.save_file({"t": t}, str(path))
    with codecs_ser.open(path) as c:
        assert c.entries["t"].meta["dtype"] == "bfloat16"
        got = np.asarray(c.read("t")).view(np.uint16)
    np.testing.assert_array_equal(got, t.view(torch.int16).numpy().view(np.uint16))


def test_ml_dtypes_view_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ml_dtypes importable, bfloat16 bits come back as ml_dtypes.bfloat16 (here a
    stand-in module, so the test runs without the package)."""

    class FakeMl:
        bfloat16 = np.dtype("<f2")  # any 2-byte dtype shows that the view is taken

    monkeypatch.setattr(_dtypes, "_ml", FakeMl)
    bits = np.array([1, 2], np.uint16)
    assert _dtypes.as_readable(bits, "bfloat16").dtype == np.dtype("<f2")
    assert _dtypes.as_readable(bits, "uint16").dtype == np.uint16


# -- numpy -------------------------------------------------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz(tmp_path: Path, save: Any) -> None:
    path = tmp_path / "arrays.data"
    a, b = np.arange(6.0).reshape(2, 3), np.asfortranarray(np.ones((3, 2), np.int16))
    save(path, a=a, b=b)
    path = Path(str(path) + ".npz")
    arrays = codecs_ser.load_arrays(path)
    np.testing.assert_array_equal(arrays["a"], a)
    np.testing.assert_array_equal(arrays["b"], b)
    with codecs_ser.open(path) as c:
        assert c.format == "npz" and sorted(c.entries) == ["a", "b"]


def test_npy_and_bytes_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.arange(5, dtype=">i4"))
    for source in (path, path.read_bytes(), io.BytesIO(path.read_bytes())):
        arrays = codecs_ser.load_arrays(source)  # type: ignore[arg-type]
        np.testing.assert_array_equal(arrays["array"], np.arange(5))
    assert codecs_ser.load_arrays(path, mmap=True)["array"].flags.writeable is False


def test_npy_object_array_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="only pickle"):
        codecs_ser.load_arrays(path)


def test_codecs_ser_containers_still_win(tmp_path: Path) -> None:
    """A codecs_ser zip named .npz is a container, read through its manifest."""
    path = tmp_path / "c.npz"
    codecs_ser.dump({"x": np.arange(3)}, path)
    with codecs_ser.open(path) as c:
        assert not isinstance(c, ForeignContainer)
    assert list(codecs_ser.load_arrays(path)) == ["x"]


def test_unknown_files_keep_the_containers_error(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"hello world" * 10)
    with pytest.raises(FormatError, match="not a codecs_ser container"):
        codecs_ser.load_arrays(path)


# -- Theano / Blocks --------------------------------------------------------------------


def test_pkl_utils_zip(tmp_path: Path) -> None:
    w1, w2, b, free = np.ones((2, 3)), np.zeros((3, 1)), np.arange(3.0), np.eye(2)
    obj = {"layers": [{"W": w1, "b": b}, {"W": w2}], "free": free}
    names = {id(w1): "W", id(w2): "W", id(b): "b"}
    path = tmp_path / "model.zip"
    written = fw.pkl_utils_dump(obj, names, str(path))
    assert sorted(written) == ["W", "W_1", "array_0", "b"]
    arrays = codecs_ser.load_arrays(path)
    assert sorted(arrays) == sorted(written)
    for k, v in written.items():
        np.testing.assert_array_equal(arrays[k], v)
    with codecs_ser.open(path) as c:
        assert c.format == "theano-pkl" and c.audit() == []


def test_blocks_tar(tmp_path: Path) -> None:
    params = [
        ("|mlp|linear_0.W", np.ones((3, 4), np.float32)),
        ("|mlp|linear_0.b", np.zeros(4, np.float32)),
        ("|mlp|linear_0.W", np.full((2, 2), 2.0)),  # a name seen twice
    ]
    path = tmp_path / "main_loop.tar"
    fw.blocks_dump({"step": 3, "W": params[0][1]}, params, str(path), extra={"log": {"a": 1}})
    arrays = codecs_ser.load_arrays(path)
    assert sorted(arrays) == ["/mlp/linear_0.W", "/mlp/linear_0.W_2", "/mlp/linear_0.b"]
    np.testing.assert_array_equal(arrays["/mlp/linear_0.W_2"], params[2][1])
    with codecs_ser.open(path) as c:
        assert c.format == "blocks" and c.metadata["members"] == ["_parameters", "_pkl", "log"]
        assert c.audit() == []


# -- the plug-in point -------------------------------------------------------------------


class _Text(ForeignFile):
    description: ClassVar[str] = "text of numbers"

    def __init__(self, src: Source) -> None:
        self.values = np.array([float(x) for x in src.read_at(5, src.size - 5).split()])

    @property
    def arrays_info(self) -> dict[str, ForeignArray]:
        return {"values": ForeignArray("values", self.values.dtype, self.values.shape, 0, {})}

    def read(self, name: str, *, mmap: bool = False, verify: bool | None = None) -> np.ndarray:
        return self.values


class TextReader:
    format_id: ClassVar[str] = "nums"

    def sniff(self, source: Source) -> bool:
        return source.head.startswith(b"NUMS\n")

    def open(self, source: Source) -> ForeignFile:
        return _Text(source)


def test_third_party_reader_registered_in_code(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b"NUMS\n1 2 3.5")
    reg = ForeignRegistry(entry_points=False)
    reg.register_reader(TextReader, magic=((0, b"NUMS"),))
    c = open_foreign(path, registry=reg)
    assert c is not None
    with c:
        np.testing.assert_array_equal(c.arrays()["values"], [1, 2, 3.5])
    spec = default_foreign_registry.register_reader(
        ForeignSpec("nums", f"{__name__}:TextReader", magic=((0, b"NUMS"),))
    )
    try:
        np.testing.assert_array_equal(codecs_ser.load_arrays(path)["values"], [1, 2, 3.5])
    finally:
        default_foreign_registry.block(spec.format_id)


def test_third_party_reader_from_an_entry_point(tmp_path: Path) -> None:
    """A distribution's entry point in codecs_ser.foreign is found, imported lazily."""
    site = tmp_path / "site"
    pkg = site / "nums_reader"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from codecs_ser.foreign import ForeignSpec\n"
        "SPEC = ForeignSpec('nums', 'test_foreign:TextReader', magic=((0, b'NUMS'),))\n"
    )
    dist = site / "nums_reader-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nums-reader\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[codecs_ser.foreign]\nnums = nums_reader:SPEC\n")
    (tmp_path / "v.txt").write_bytes(b"NUMS\n4 5")
    code = (
        "import codecs_ser\n"
        f"print(codecs_ser.load_arrays({str(tmp_path / 'v.txt')!r})['values'].tolist())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(Path(__file__).parent)]))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[4.0, 5.0]"


# -- the command line --------------------------------------------------------------------


def test_cli_inspect_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.npz"
    np.savez(src, w=np.arange(4.0), b=np.ones(2, np.int32))
    assert _cli.main(["inspect", str(src)]) == 0
    out = capsys.readouterr().out
    assert ".npz file" in out and "w" in out and "(4,)" in out
    dst = tmp_path / "a.tar"
    assert _cli.main(["convert", str(src), str(dst)]) == 0
    loaded = codecs_ser.load(dst)
    np.testing.assert_array_equal(loaded["w"], np.arange(4.0))
    with codecs_ser.open(dst) as c:
        assert c.skeleton_format() == "msgpack"


@needs_torch
def test_cli_convert_torch_trusted(tmp_path: Path, torch_file: tuple[Path, Any]) -> None:
    src, obj = torch_file
    safe, trusted = tmp_path / "safe.tar", tmp_path / "trusted.tar"
    assert _cli.main(["convert", str(src), str(safe)]) == 0
    loaded = codecs_ser.load(safe)
    np.testing.assert_array_equal(loaded["model"]["weight"], obj["model"]["weight"].numpy())
    assert loaded["model"]["tied"] is loaded["model"]["weight"]
    net = tmp_path / "net.pt"
    torch.save(torch.nn.Linear(2, 2), net)
    # Not safely readable as an object: converted as its arrays, with a note.
    assert _cli.main(["convert", str(net), str(tmp_path / "net.tar")]) == 0
    assert sorted(codecs_ser.load(tmp_path / "net.tar")) == [
        "_parameters/bias",
        "_parameters/weight",
    ]
    if codecs_ser.default_registry.spec_for_type(torch.Tensor) is not None:
        # --trusted unpickles with torch (for trusted files only); dumping the tensors
        # then needs the torch plugin.
        assert _cli.main(["convert", "--trusted", str(src), str(trusted)]) == 0
        loaded = codecs_ser.load(trusted, trusted=True)
        assert torch.equal(loaded["model"]["weight"], obj["model"]["weight"])


@pytest.mark.parametrize("where", ["first piece", "last piece"])
def test_a_damaged_byte_anywhere_in_a_large_stored_member_fails_its_crc(
    tmp_path: Path, where: str
) -> None:
    """Copies are checked piece by piece as they are read: every piece counts."""
    arr = np.arange(600_000, dtype=np.float32)  # 2.3 MiB: three pieces
    path = tmp_path / "big.npz"
    np.savez(path, a=arr)
    data = bytearray(path.read_bytes())
    start = data.find(arr[:4].tobytes())
    at = start + 8 if where == "first piece" else start + arr.nbytes - 8
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="CRC mismatch"):
        codecs_ser.load_arrays(path)
    with pytest.raises(FormatError, match="CRC mismatch"):  # from bytes in memory, too
        codecs_ser.load_arrays(io.BytesIO(bytes(data)))
    unchecked = codecs_ser.load_arrays(path, verify=False)["a"]
    assert np.count_nonzero(unchecked != arr) == 1
