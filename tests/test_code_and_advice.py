"""Code saved by value is announced, recorded and refusable; objects with no saved form
name their path; the advice for a refused file never suggests trusting what can run
code."""

from __future__ import annotations

import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codecs_ser
from codecs_ser._danger import describe
from codecs_ser.errors import (
    CodeByValueError,
    CodeByValueWarning,
    UnpicklableError,
    UntrustedError,
    UsageError,
)

sys.path.insert(0, str(Path(__file__).parent))
import hostile_corpus as hc


def _closure() -> Any:
    def inner(x: int) -> int:
        return x + 1

    return inner


class Importable:
    """A class importable by name: pickled by reference, no warning."""

    def __init__(self) -> None:
        self.w = np.ones(2)


def _with_code() -> dict[str, Any]:
    class Local:
        pass

    return {"f": lambda x: x * 2, "model": {"act": _closure()}, "cls": Local, "a": np.ones(2)}


def test_code_by_value_warns_naming_each_and_its_path() -> None:
    with pytest.warns(CodeByValueWarning) as caught:
        data = codecs_ser.dumps(_with_code())
    (warning,) = caught
    names = dict(warning.message.code)  # type: ignore[union-attr]
    assert names == {
        f"{__name__}._with_code.<locals>.<lambda>": "f",
        f"{__name__}._with_code.<locals>.Local": "cls",
        f"{__name__}._closure.<locals>.inner": "model/act",
    }
    assert warning.filename == __file__  # points at the caller's dump
    with codecs_ser.open(data) as c:
        assert {(x["name"], x["path"]) for x in c.code()} == set(names.items())
        verdicts = c.audit(explain=True)
    assert any(v.startswith("dangerous: rebuilds functions") for v in verdicts.values())
    assert codecs_ser.loads(data, trusted=True)["model"]["act"](1) == 2


def test_code_by_value_allow_and_refuse(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codecs_ser.dump(_with_code(), tmp_path / "ok.tar", code_by_value="allow")
    with pytest.raises(CodeByValueError, match="model/act"):
        codecs_ser.dump(_with_code(), tmp_path / "no.tar", code_by_value="refuse")
    assert not (tmp_path / "no.tar").exists()
    codecs_ser.dump({"a": np.ones(1)}, tmp_path / "c.tar")
    with pytest.raises(CodeByValueError):
        codecs_ser.add(tmp_path / "c.tar", {"f": lambda: 1}, name="x", code_by_value="refuse")
    with pytest.raises(UsageError):
        codecs_ser.dumps({"a": 1}, code_by_value="maybe")


def test_importable_code_is_saved_by_name_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = codecs_ser.dumps({"o": Importable(), "fn": np.mean, "cls": Importable})
    with codecs_ser.open(data) as c:
        assert c.code() == []


@pytest.mark.parametrize(
    ("thing", "type_name"),
    [
        (threading.Lock(), "_thread.lock"),
        ((i for i in range(3)), "builtins.generator"),
    ],
)
def test_an_object_with_no_saved_form_names_its_path(thing: Any, type_name: str) -> None:
    with pytest.raises(UnpicklableError) as info:
        codecs_ser.dumps({"run": {"state": {"x": thing}}, "a": np.ones(1)})
    assert isinstance(info.value, TypeError)
    assert info.value.type_name == type_name
    assert info.value.path == "run/state/x"
    assert "run/state/x" in str(info.value)


def test_an_open_file_names_its_path(tmp_path: Path) -> None:
    with (tmp_path / "f.txt").open("w") as f, pytest.raises(UnpicklableError) as info:
        codecs_ser.dumps({"log": f})
    assert info.value.path == "log"


def test_every_code_running_pickle_of_the_corpus_is_marked_dangerous() -> None:
    for label, _payload, names in hc._pickles_that_run_code():
        if label == "many-globals-are-all-named":
            continue  # made-up names, nothing to run
        assert any(describe(n) for n in names), label


@pytest.mark.parametrize(
    "name",
    ["posix.system", "os.system", "builtins.eval", "subprocess.Popen", "builtins.getattr",
     "cloudpickle.cloudpickle._make_function", "collections.OrderedDict.fromkeys",
     "pathlib.PosixPath.write_text", "ctypes.CDLL", "importlib.import_module"],
)  # fmt: skip
def test_dangerous_globals_are_never_advised(tmp_path: Path, name: str) -> None:
    err = UntrustedError([name, "mylib.Config"], path="f.tar")
    message = str(err)
    assert name in err.dangerous and "DANGEROUS" in message
    assert f"trusted=['{name}'" not in message and f"'{name}']" not in message
    assert "trusted=['mylib.Config']" in message
    assert "trusted=True in disguise" in message


def test_advice_suggests_a_package_pattern_where_it_fits() -> None:
    message = str(UntrustedError(["mylib.A", "mylib.b.B", "mylib.C", "other.D"]))
    assert "trusted=['mylib.*', 'other.D']" in message


def test_a_malformed_code_record_is_a_format_error(tmp_path: Path) -> None:
    import msgpack

    from codecs_ser.errors import FormatError

    path = tmp_path / "c"
    codecs_ser.dump({"f": lambda: 1}, path, backend="dir", code_by_value="allow")
    manifest = path / ".codecs_ser" / "manifest.msgpack"
    raw = msgpack.unpackb(manifest.read_bytes())
    assert raw["objects"][0]["code"][0]["path"] == "f"
    raw.pop("manifest_checksum")  # edited by hand: what is tested is the code record
    raw["objects"][0]["code"] = [{"name": 3}]
    manifest.write_bytes(msgpack.packb(raw, use_bin_type=True))
    with pytest.raises(FormatError, match="code"):
        codecs_ser.open(path)


def test_audit_verdicts_say_which_globals_the_caller_trusts() -> None:
    from codecs_ser._safe_pickle import verdicts

    found = ["builtins.set", "mylib.Config", "os.system", "other.Thing"]
    assert verdicts(found, trusted=["mylib.*"]) == {
        "builtins.set": "allowed",
        "mylib.Config": "trusted",
        "os.system": "dangerous: runs commands and changes files",
        "other.Thing": "not allowed",
    }
