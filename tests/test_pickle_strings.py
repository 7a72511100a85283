"""Protocol 0 strings with escapes Python never writes (``\\q``, ``\\777``) read as Python
reads them, and no reader of untrusted pickles warns on them: with warnings as errors (as
here), a warning would be a crash that a crafted file could cause."""

from __future__ import annotations

import codecs
import pickle
import pickletools
import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codecs_ser._pickle_ops import decode_escapes, pickle_ops
from codecs_ser._renumber import renumber_pickle
from codecs_ser._safe_pickle import scan_globals, unpickle_skeleton
from codecs_ser.errors import FormatError
from codecs_ser.foreign._pickle import parse

#: Escapes Python's decoder warns on, and what it decodes them to.
ODD = [
    (b"a\\qb", b"a\\qb"),
    (b"\\8\\9", b"\\8\\9"),
    (b"\\777", b"\xff"),
    (b"\\400x", b"\x00x"),
    (b"\\\\q", b"\\q"),  # an escaped backslash, then a plain q: nothing odd
    (b"\\x41\\u00e9\\N", b"A\\u00e9\\N"),
]


def _python_decodes(data: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return codecs.escape_decode(data)[0]


@pytest.mark.parametrize(("raw", "decoded"), ODD)
def test_odd_escapes_decode_as_python_decodes_them_without_warning(
    raw: bytes, decoded: bytes
) -> None:
    assert _python_decodes(raw) == decoded
    assert decode_escapes(raw) == decoded


@given(st.lists(st.sampled_from([b"\\", b"q", b"7", b"4", b"0", b"x", b"a", b"\n", b"'"])))
def test_decode_escapes_agrees_with_python_on_any_escapes(parts: list[bytes]) -> None:
    data = b"".join(parts)
    try:
        expected: bytes | type[ValueError] = _python_decodes(data)
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError):
            decode_escapes(data)
    else:
        assert decode_escapes(data) == expected


def _protocol0(raw: bytes) -> bytes:
    """A protocol 0 pickle of a list holding one STRING with ``raw`` between its quotes."""
    return b"(lp0\nS'" + raw + b"'\np1\na."


@pytest.mark.parametrize(("raw", "decoded"), ODD)
def test_the_untrusted_unpickler_reads_odd_escapes_as_pickle_does(
    raw: bytes, decoded: bytes
) -> None:
    data = _protocol0(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = pickle.loads(data, encoding="bytes")
    assert expected == [decoded]
    if decoded.isascii():
        assert scan_globals(data) == []
        assert unpickle_skeleton(data, lambda i: None) == [decoded.decode("ascii")]
    else:  # as pickle.loads does by default, STRING is read as ASCII text
        for read in (scan_globals, lambda data: unpickle_skeleton(data, lambda i: None)):
            with pytest.raises(FormatError, match="UnicodeDecodeError"):
                read(data)


def test_the_untrusted_unpickler_refuses_an_unquoted_string() -> None:
    with pytest.raises(FormatError, match="must be quoted"):
        unpickle_skeleton(b"(lp0\nSabc\np1\na.", lambda i: None)


@pytest.mark.parametrize("raw", [r for r, _ in ODD])
def test_the_foreign_pickle_reader_and_renumbering_read_odd_escapes(raw: bytes) -> None:
    data = _protocol0(raw)
    if not _python_decodes(raw).isascii():  # pickletools reads STRING as ASCII text
        with pytest.raises(ValueError):
            list(pickle_ops(data))
        for read in (parse, lambda data: renumber_pickle(data, lambda i: i)):
            with pytest.raises(FormatError):
                read(data)
        return
    assert renumber_pickle(data, lambda i: i) == data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = list(pickletools.genops(data))
    ops = list(pickle_ops(data))
    assert [(op.name, arg, pos) for op, arg, pos in ops] == [
        (op.name, arg, pos) for op, arg, pos in expected
    ]
    assert parse(data) == ([_python_decodes(raw).decode("ascii")], [])


@pytest.mark.parametrize("data", [b"", b"(lp0\n", b"\xff.", b"S'abc\n.", b"S'a\\x4'\n."], ids=repr)
def test_pickle_ops_raises_value_error_on_malformed_pickles(data: bytes) -> None:
    with pytest.raises(ValueError):
        list(pickle_ops(data))


#: Protocol 0: strings with odd and known escapes, an int, a float, a unicode string.
SEED = b"(lp0\nS'a\\qb'\np1\naS'\\x41\\101'\np2\naI12\naF2.5\naVx\\u00e9\np3\na."


@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), max_size=4))
def test_pickle_ops_reads_damaged_pickles_as_pickletools_does(flips: list[tuple[int, int]]) -> None:
    """The same opcodes and arguments, or an error of the same kind, for any damage."""
    data = bytearray(SEED)
    for at, value in flips:
        data[at] = value

    def read(ops: Any) -> Any:
        try:
            return [(op.name, arg, pos) for op, arg, pos in ops(bytes(data))]
        except Exception as e:
            return type(e)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = read(pickletools.genops)
    assert read(pickle_ops) == expected
