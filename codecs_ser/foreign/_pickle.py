"""A pickle reader that never imports or calls anything.

It follows the opcodes of a pickle stream (protocols 0 to 5) and builds plain
values: globals stay :class:`Global` names, calls stay :class:`Call` records and
persistent ids go to the caller's hook.  A format reader (torch files) gives a
``reduce`` hook that recognises its own rebuild calls and containers; every other
call is kept as an inert record, so a hostile pickle that names ``os.system``
produces a record that names it, and nothing runs.

Dicts are kept as lists of pairs (:class:`PDict`), never hashed, so keys built to
collide cannot make reading quadratic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .._pickle_ops import pickle_ops
from ..errors import FormatError

#: Deepest nesting of marks and containers a pickle may build.
MAX_STACK = 10_000  # pickle writes items in batches of 1,000: deeper is no torch file
#: Memo keys above this are never written by a pickler (and could be chosen to collide).
MAX_MEMO_KEY = 1 << 32


class Global(NamedTuple):
    """A global a pickle names (``module.name``); it is never imported."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


class Call:
    """A call the pickle asks for (``func(*args)``), recorded, not made; its later
    state and items are kept with it."""

    __slots__ = ("args", "func", "items", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func = func
        self.args = args
        self.state: Any = None
        self.items: list[Any] = []

    def __repr__(self) -> str:
        return f"<call of {self.func}>"


class PDict:
    """A pickled dict as its (key, value) pairs in order; nothing is hashed."""

    __slots__ = ("cls", "pairs")

    def __init__(self, cls: Global | None = None) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.cls = cls


class PSet:
    """A pickled set or frozenset as a list of its items."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


Reduce = Callable[[Global, Any], Any]
Persistent = Callable[[Any], Any]


def _no_persistent(pid: Any) -> Any:
    raise FormatError("the pickle refers to an object stored outside it (a persistent id)")


def _keep(func: Global, args: Any) -> Any:
    return Call(func, args)


class _Mark:
    pass


def parse(
    data: bytes,
    *,
    reduce: Reduce = _keep,
    persistent: Persistent = _no_persistent,
    what: str = "the pickle",
) -> tuple[Any, list[Global]]:
    """The value a pickle describes and every global it names, without running any of it."""
    try:
        return _parse(data, reduce, persistent)
    except FormatError as e:
        if e.member is None and what:
            e.message = f"{what}: {e.message}"
        raise
    except (
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        EOFError,
        OverflowError,
    ) as e:
        raise FormatError(f"{what} is damaged: {type(e).__name__}: {e}"[:300]) from None


def _parse(data: bytes, reduce: Reduce, persistent: Persistent) -> tuple[Any, list[Global]]:
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    globals_: list[Global] = []

    def pop_mark() -> list[Any]:
        if not marks:
            raise FormatError("a pickle opcode needs a mark that is not there")
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    def put(key: int) -> None:
        if not 0 <= key < MAX_MEMO_KEY:
            raise FormatError(f"memo key {key} is out of range")
        memo[key] = stack[-1]

    def get(key: int) -> Any:
        try:
            return memo[key]
        except KeyError:
            raise FormatError(f"memo key {key} is used before it is set") from None

    def set_items(target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            raise FormatError("SETITEMS with an odd number of items")
        pairs = list(zip(items[::2], items[1::2], strict=True))
        if isinstance(target, PDict):
            target.pairs.extend(pairs)
        elif isinstance(target, Call):
            target.items.extend(pairs)
        else:
            raise FormatError(f"SETITEM on a {type(target).__name__}")

    def append(target: Any, items: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, Call):
            target.items.extend(items)
        else:
            raise FormatError(f"APPEND on a {type(target).__name__}")

    def global_(module: Any, name: Any) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise FormatError("a global is named by something other than strings")
        g = Global(module, name)
        globals_.append(g)
        return g

    arg: Any
    for op, arg, _pos in pickle_ops(data):
        code = op.name
        if len(stack) > MAX_STACK or len(marks) > MAX_STACK:
            raise FormatError("the pickle nests too deeply")
        if code in ("PROTO", "FRAME"):
            continue
        if code == "STOP":
            if len(stack) != 1 or marks:
                raise FormatError("the pickle stops with a malformed stack")
            return stack[0], globals_
        if code == "MARK":
            marks.append(len(stack))
        elif code in (
            "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
            "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING",
            "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
            "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
        ):  # fmt: skip
            stack.append(arg)
        elif code == "BYTEARRAY8":
            stack.append(bytearray(arg))
        elif code == "NONE":
            stack.append(None)
        elif code in ("NEWTRUE", "NEWFALSE"):
            stack.append(code == "NEWTRUE")
        elif code == "EMPTY_LIST":
            stack.append([])
        elif code == "EMPTY_DICT":
            stack.append(PDict())
        elif code == "EMPTY_TUPLE":
            stack.append(())
        elif code == "EMPTY_SET":
            stack.append(PSet([]))
        elif code in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(code[-1])
            if len(stack) < n:
                raise FormatError(f"{code} on a short stack")
            stack.append(tuple(stack[-n:]))
            del stack[-n - 1 : -1]
        elif code == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif code == "LIST":
            stack.append(pop_mark())
        elif code == "DICT":
            d = PDict()
            set_items(d, pop_mark())
            stack.append(d)
        elif code == "FROZENSET":
            stack.append(PSet(pop_mark()))
        elif code == "ADDITEMS":
            items = pop_mark()
            target = stack[-1]
            if not isinstance(target, PSet):
                raise FormatError("ADDITEMS on something other than a set")
            target.items.extend(items)
        elif code == "APPEND":
            value = stack.pop()
            append(stack[-1], [value])
        elif code == "APPENDS":
            items = pop_mark()
            append(stack[-1], items)
        elif code == "SETITEM":
            value = stack.pop()
            key = stack.pop()
            set_items(stack[-1], [key, value])
        elif code == "SETITEMS":
            items = pop_mark()
            set_items(stack[-1], items)
        elif code == "POP":
            if marks and marks[-1] == len(stack):
                marks.pop()
            else:
                stack.pop()
        elif code == "POP_MARK":
            pop_mark()
        elif code == "DUP":
            stack.append(stack[-1])
        elif code in ("PUT", "BINPUT", "LONG_BINPUT"):
            put(int(arg))
        elif code == "MEMOIZE":
            put(len(memo))
        elif code in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(get(int(arg)))
        elif code == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            stack.append(global_(module, name))
        elif code == "STACK_GLOBAL":
            name = stack.pop()
            module = stack.pop()
            stack.append(global_(module, name))
        elif code == "REDUCE":
            args: Any = stack.pop()
            func = stack.pop()
            if not isinstance(args, tuple):
                raise FormatError("REDUCE with arguments that are not a tuple")
            stack.append(reduce(func, args) if isinstance(func, Global) else Call(func, args))
        elif code in ("NEWOBJ", "NEWOBJ_EX"):
            if code == "NEWOBJ_EX":
                stack.pop()  # keyword arguments
            args = stack.pop()
            cls = stack.pop()
            stack.append(Call(cls, args))
        elif code == "OBJ":
            items = pop_mark()
            if not items:
                raise FormatError("OBJ without a class")
            stack.append(Call(items[0], tuple(items[1:])))
        elif code == "INST":
            module, _, name = str(arg).partition(" ")
            stack.append(Call(global_(module, name), tuple(pop_mark())))
        elif code == "BUILD":
            state = stack.pop()
            target = stack[-1]
            if isinstance(target, Call):
                target.state = state
            elif isinstance(target, PDict):
                pass  # an OrderedDict's attributes (a state_dict's _metadata)
            else:
                _build_other(target, state)
        elif code in ("PERSID", "BINPERSID"):
            pid = arg if code == "PERSID" else stack.pop()
            stack.append(persistent(pid))
        elif code in ("EXT1", "EXT2", "EXT4"):
            raise FormatError("the pickle uses the copyreg extension registry, which is not read")
        elif code in ("NEXT_BUFFER", "READONLY_BUFFER"):
            raise FormatError("the pickle refers to out-of-band buffers, which are not read")
        else:
            raise FormatError(f"pickle opcode {code} is not read")
    raise FormatError("the pickle ends without STOP")


def _build_other(target: Any, state: Any) -> None:
    """BUILD on a value the reader made: tensors with attributes keep them aside."""
    keep = getattr(target, "state", None)
    if keep is None and hasattr(target, "__slots__") and "state" in target.__slots__:
        target.state = state
        return
    if not hasattr(target, "state"):
        raise FormatError(f"BUILD on a {type(target).__name__}")
    target.state = state
