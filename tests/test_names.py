"""Names made from keys are safe paths everywhere: escaped, bounded in bytes, and never
two that a case-folding or normalising file system takes for one file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import codecs_ser
from codecs_ser._manifest import valid_name
from codecs_ser._names import MAX_COMPONENT, clash_key, escape_component

_ESCAPE = re.compile(r"%(?![0-9A-F]{2})")


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("a\x85b", "a%C2%85b"),
        ("line\u2028para\u2029", "line%E2%80%A8para%E2%80%A9"),
        ("lone\ud800", "lone%ED%A0%80"),
        ("tab\tdel\x7f", "tab%09del%7F"),
        ("a/b\\c%", "a%2Fb%5Cc%25"),
        (".hidden", "%2Ehidden"),
        ("", "%"),
        (3, "3"),
    ],
)
def test_escapes(key: object, name: str) -> None:
    assert escape_component(key) == name


def test_long_components_are_cut_by_bytes_at_a_boundary() -> None:
    emoji = escape_component("\U0001f600" * 80)
    assert len(emoji.encode()) <= MAX_COMPONENT
    assert emoji.startswith("\U0001f600" * 20 + "~")
    escapes = escape_component("a" * 78 + "/" * 30)
    assert escapes.startswith("a" * 78 + "~")  # "%2F" would not fit whole
    assert escape_component("a" * 200) == "a" * 80 + "~" + escape_component("a" * 200)[81:]


@settings(max_examples=300, derandomize=True)
@given(st.text(min_size=0, max_size=200))
def test_every_key_gives_a_valid_bounded_component(key: str) -> None:
    name = escape_component(key)
    assert valid_name(name)
    assert len(name.encode("utf-8")) <= MAX_COMPONENT
    assert name == "%" or not _ESCAPE.search(name)  # "%" alone is the empty key
    assert not any(0x80 <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in name)


def test_clash_keys_fold_case_and_normalise() -> None:
    assert clash_key("MAIN") == clash_key("main")
    assert clash_key("\u00c5") == clash_key("A\u030a")  # two spellings of Å
    assert clash_key("Stra\u00dfe") == clash_key("STRASSE")
    assert clash_key("a") != clash_key("b")


@pytest.mark.parametrize("backend", ["tar", "zip", "dir"])
def test_names_that_one_file_system_would_merge_are_kept_apart(
    tmp_path: Path, backend: str
) -> None:
    obj = {
        "\u00c5": np.zeros(1),
        "A\u030a": np.ones(1),
        "W": np.full(1, 2.0),
        "w": np.full(1, 3.0),
        "\U0001f600" * 80: np.full(1, 4.0),
        "x\x85": np.full(1, 5.0),
    }
    path = tmp_path / f"c.{backend}"
    codecs_ser.dump(obj, path, backend=backend)
    back = codecs_ser.load(path)
    assert list(back) == list(obj)
    for key, value in obj.items():
        assert np.array_equal(back[key], value)
    names = list(codecs_ser.load_arrays(path))
    assert len({clash_key(n) for n in names}) == len(names) == len(obj)
