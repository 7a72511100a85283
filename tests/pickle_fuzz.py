"""Pickled skeletons generated from a grammar of opcodes over the allowed globals.

Bit flips rarely get a pickle past its first opcode; a hostile skeleton is a
well-formed program that calls allowed globals with arguments they should refuse.
So a :class:`Program` writes opcodes while keeping a model of the unpickler's stack,
marks and memo, and most programs it writes are well-formed and reach the calls:
a global, an argument tuple of the kinds the callable accepts and of kinds it should
not (array leaves, 17,000-bit ints, deep tuples, classes, odd text encodings, hash
colliding keys), then REDUCE, NEWOBJ, NEWOBJ_EX, INST or OBJ; BUILD with dict and
(state, slotstate) states on instances and on classes; the memo to repeat a call
thousands of times; rarely an opcode that breaks the program on purpose.

``generate(seed)`` is deterministic.  ``ATTACKS`` are programs that reproduce known
attacks on the restricted unpickler, kept as explicit cases.
"""

from __future__ import annotations

import pickle
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from codecs_ser._safe_pickle import DEFAULT_ALLOWED

ALLOWED: tuple[str, ...] = tuple(sorted(DEFAULT_ALLOWED))
#: Globals no untrusted load may import: harmless if called (the canary records it).
REFUSED: tuple[str, ...] = (
    "builtins.getattr",
    "builtins.setattr",
    "builtins.eval",
    "builtins.type",
    "os.getcwd",
    "pathlib.Path",
    "copyreg._reconstructor",
    "numpy.frombuffer",
    "codecs_ser._safe_pickle.unpickle_skeleton",
    "pickle_fuzz.canary",
)
#: Extension codes the executing process registers (copyreg), so EXT1/2/4 name globals.
EXTENSIONS: dict[int, str] = {
    240: "builtins.int",
    241: "collections.Counter",
    242: "pathlib.PurePosixPath",
    300: "fractions.Fraction",
    70000: "uuid.UUID",
    243: "builtins.getattr",
    244: "pickle_fuzz.canary",
}
#: Leaf indexes the resolver answers (see pickle_fuzz_exec.LEAVES); others are refused.
LEAF_INDEXES = (0, 1, 2, 3, 4)
P61 = (1 << 61) - 1

CANARY_CALLS: list[tuple[object, ...]] = []


def canary(*args: object, **kwargs: object) -> None:
    """A refused global that records being called: no load may ever call it."""
    CANARY_CALLS.append(args)


# -- values of interest ------------------------------------------------------------------

INTS = (0, 1, -1, 2, 7, 31, 255, 256, 1000, 65535, 2**31 - 1, -(2**31), 2**32, 2**63, 10**12)
HUGE_INTS = (2**64, 2**128, 2**128 - 1, -(2**127), 2**200, 10**100)
FLOATS = (0.0, -0.0, 1.5, 1e308, float("inf"), float("-inf"), float("nan"), 2.0**61, 1e-320)
ENCODINGS = (
    "utf-8",
    "latin-1",
    "ascii",
    "utf-16",
    "punycode",
    "idna",
    "utf-7",
    "hex",
    "base64",
    "rot13",
    "zlib",
    "uu",
    "undefined",
    "raw_unicode_escape",
    "unicode_escape",
    "cp1252",
    "no-such-codec",
)
ERRORS = ("strict", "ignore", "replace", "surrogateescape", "backslashreplace", "bogus")
TEXTS = (
    "",
    "a",
    "x/y",
    "/etc/passwd",
    "..",
    "a//b/./c",
    "C:\\Windows",
    "\\\\server\\share\\x",
    "1/3",
    "-0",
    "1e999999999",
    "nan",
    "Infinity",
    "0x10",
    "1_000",
    "2020-02-31",
    "12345678-1234-5678-1234-567812345678",
    "\udcff",
    "\u00e9\u4e2d",
    "__class__",
)
ATTRS = (
    "_str",
    "_parts",
    "_drv",
    "_root",
    "_hash",
    "_pparts",
    "_cached_cparts",
    "_numerator",
    "_denominator",
    "int",
    "is_safe",
    "maxlen",
    "default_factory",
    "__missing__",
    "__str__",
    "__repr__",
    "__hash__",
    "__eq__",
    "__getitem__",
    "__class__",
    "__dict__",
    "__defaults__",
    "__kwdefaults__",
    "__code__",
    "__reduce_ex__",
    "__setstate__",
    "__new__",
    "__init__",
    "__len__",
    "__iter__",
    "x",
)
CLASSES = tuple(n for n in ALLOWED if not n.startswith("codecs_ser."))
FUNCTIONS = tuple(n for n in ALLOWED if n.startswith("codecs_ser."))


@dataclass
class Program:
    """Opcodes written so far, with the unpickler's stack, marks and memo as a model."""

    rng: random.Random
    proto: int = 4
    out: bytearray = field(default_factory=bytearray)
    stack: list[str] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    memo: dict[int, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    broken: bool = False
    budget: int = 400  # values still to write: keeps programs small

    # -- the model ---------------------------------------------------------------

    def op(self, code: bytes, pops: int = 0, push: str | None = None, arg: bytes = b"") -> None:
        """Write one opcode; pop ``pops`` items of the model and push ``push``."""
        self.out += code + arg
        if self.broken:
            return
        if pops > len(self.stack) - (self.marks[-1] if self.marks else 0):
            self.broken = True
            return
        if pops:
            del self.stack[-pops:]
        if push is not None:
            self.stack.append(push)

    def mark(self) -> None:
        self.out += b"("
        self.marks.append(len(self.stack))

    def pop_mark(self, code: bytes, push: str | None) -> None:
        """An opcode that takes everything since the last mark (TUPLE, LIST, APPENDS...)."""
        self.out += code
        if self.broken or not self.marks:
            self.broken = True
            return
        del self.stack[self.marks.pop() :]
        if push is not None:
            self.stack.append(push)

    def remember(self) -> None:
        """Memoize the top of the stack with one of the four memo opcodes."""
        if not self.stack:
            return
        index = len(self.memo)
        choice = self.rng.randrange(4)
        if choice == 0 and self.proto >= 4:
            self.out += b"\x94"
        elif choice == 1 and index < 256:
            self.out += b"q" + bytes((index,))
        elif choice == 2:
            self.out += b"r" + struct.pack("<I", index)
        else:
            self.out += b"p%d\n" % index
        self.memo[index] = self.stack[-1]

    def recall(self, index: int) -> None:
        choice = self.rng.randrange(3)
        if choice == 0 and index < 256:
            arg = b"h" + bytes((index,))
        elif choice == 1:
            arg = b"j" + struct.pack("<I", index)
        else:
            arg = b"g%d\n" % index
        self.op(arg[:1], push=self.memo.get(index, "?"), arg=arg[1:])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq: tuple[str, ...] | tuple[int, ...] | tuple[float, ...]) -> object:
        return seq[self.rng.randrange(len(seq))]

    # -- scalars -----------------------------------------------------------------

    def int_(self, value: int | None = None) -> str:
        rng = self.rng
        if value is None:
            value = int(self.pick(INTS)) if rng.random() < 0.8 else rng.randrange(-(2**40), 2**40)
        if value is True or value is False:
            self.op(b"\x88" if value else b"\x89", push="bool")
            return "bool"
        choice = rng.randrange(5)
        if choice == 0 and 0 <= value < 256:
            self.op(b"K", push="int", arg=bytes((value,)))
        elif choice == 1 and 0 <= value < 65536:
            self.op(b"M", push="int", arg=struct.pack("<H", value))
        elif choice == 2 and -(2**31) <= value < 2**31:
            self.op(b"J", push="int", arg=struct.pack("<i", value))
        elif choice == 3 and value.bit_length() < 12_000:  # text: within int/str limits
            self.op(b"I" if rng.random() < 0.5 else b"L", push="int", arg=b"%d\n" % value)
        else:
            raw = pickle.encode_long(value)  # type: ignore[attr-defined]
            if len(raw) < 256 and rng.random() < 0.7:
                self.op(b"\x8a", push="int", arg=bytes((len(raw),)) + raw)
            else:
                self.op(b"\x8b", push="int", arg=struct.pack("<i", len(raw)) + raw)
        return "int"

    def huge_int(self) -> str:
        """Ints beyond what a field accepts, or of about 17,000 bits (just under the digit
        limit): slow to divide, convert and reduce."""
        if self.chance(0.5):
            return self.int_(int(self.pick(HUGE_INTS)))
        bits = int(self.pick((16_000, 17_000, 17_199)))
        value = self.rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        self.int_(-value if self.chance(0.2) else value)
        if not self.broken:
            self.stack[-1] = "bigint"
        return "bigint"

    def float_(self) -> str:
        v = float(self.pick(FLOATS)) if self.chance(0.7) else self.rng.uniform(-1e6, 1e6)
        if self.chance(0.7):
            self.op(b"G", push="float", arg=struct.pack(">d", v))
        else:
            self.op(b"F", push="float", arg=repr(v).encode() + b"\n")
        return "float"

    def text(self, value: str | None = None) -> str:
        rng = self.rng
        if value is None:
            pool = (TEXTS, ENCODINGS, ATTRS, ERRORS)[rng.randrange(4)]
            value = str(self.pick(pool)) if rng.random() < 0.9 else "9" * rng.randrange(1, 6000)
        raw = value.encode("utf-8", "surrogatepass")
        choice = rng.randrange(7)
        if choice == 0 and len(raw) < 256:
            self.op(b"\x8c", push="str", arg=bytes((len(raw),)) + raw)
        elif choice == 1:
            self.op(b"\x8d", push="str", arg=struct.pack("<Q", len(raw)) + raw)
        elif choice == 2 and value.isascii() and "\n" not in value and "\\" not in value:
            self.op(b"V", push="str", arg=raw + b"\n")
        elif choice == 3 and value.isascii() and "'" not in value and "\n" not in value:
            self.op(b"S", push="str", arg=b"'" + raw + b"'\n")  # decoded as ASCII
        elif choice == 4 and value.isascii() and len(raw) < 256:
            self.op(b"U", push="str", arg=bytes((len(raw),)) + raw)
        elif choice == 5 and value.isascii():
            self.op(b"T", push="str", arg=struct.pack("<I", len(raw)) + raw)
        else:
            self.op(b"X", push="str", arg=struct.pack("<I", len(raw)) + raw)
        return "str"

    def raw_bytes(self, value: bytes | None = None, *, as_bytearray: bool = False) -> str:
        rng = self.rng
        if value is None:
            value = self.state_bytes() if rng.random() < 0.5 else rng.randbytes(rng.randrange(20))
        if as_bytearray:
            self.op(b"\x96", push="bytearray", arg=struct.pack("<Q", len(value)) + value)
            return "bytearray"
        choice = rng.randrange(3)
        if choice == 0 and len(value) < 256:
            self.op(b"C", push="bytes", arg=bytes((len(value),)) + value)
        elif choice == 1:
            self.op(b"\x8e", push="bytes", arg=struct.pack("<Q", len(value)) + value)
        else:
            self.op(b"B", push="bytes", arg=struct.pack("<I", len(value)) + value)
        return "bytes"

    def state_bytes(self) -> bytes:
        """The byte states date, datetime and time accept from pickles: month and hour in
        range (they are checked), other fields anything."""
        rng = self.rng
        year = struct.pack(">H", rng.choice((1, 2020, 9999, rng.randrange(65536))))
        kind = rng.randrange(4)
        if kind == 0:  # date
            return year + bytes((rng.randrange(1, 13), rng.choice((1, 28, 29, 31, 99, 255))))
        if kind == 1:  # datetime
            hms = bytes((rng.choice((0, 23, 24, 200)), rng.choice((0, 59, 99)), rng.randrange(256)))
            day = bytes((rng.randrange(1, 13) | rng.choice((0, 128)), rng.choice((1, 31, 99))))
            return year + day + hms + rng.randbytes(3)
        if kind == 2:  # time
            hour = rng.choice((0, 23, 24, 200)) | rng.choice((0, 128))
            return bytes((hour, rng.choice((0, 59, 99)), rng.randrange(256))) + rng.randbytes(3)
        return rng.randbytes(16)  # UUID bytes

    def leaf(self) -> str:
        index = int(self.pick(LEAF_INDEXES)) if self.chance(0.95) else self.rng.choice((7, -1))
        if self.chance(0.9):
            self.int_(index)
            self.op(b"Q", pops=1, push="leaf")
        else:
            self.op(b"P", push="leaf", arg=b"%d\n" % index)  # a str id: refused
        return "leaf"

    # -- containers --------------------------------------------------------------

    def items(self, n: int, make: Callable[[], str]) -> None:
        for _ in range(n):
            make()

    def tuple_(self, n: int | None = None, make: Callable[[], str] | None = None) -> str:
        n = self.rng.choice((0, 1, 2, 3, 3, 4, 6)) if n is None else n
        make = make or self.value
        if n <= 3 and self.chance(0.7):
            self.items(n, make)
            self.op((b")", b"\x85", b"\x86", b"\x87")[n], pops=n, push="tuple")
        else:
            self.mark()
            self.items(n, make)
            self.pop_mark(b"t", "tuple")
        return "tuple"

    def list_(self) -> str:
        n = self.rng.choice((0, 1, 2, 3, 5))
        choice = self.rng.randrange(3)
        if choice == 0:
            self.mark()
            self.items(n, self.value)
            self.pop_mark(b"l", "list")
        else:
            self.op(b"]", push="list")
            if choice == 1:
                for _ in range(n):
                    self.value()
                    self.op(b"a", pops=1)
            else:
                self.mark()
                self.items(n, self.value)
                self.pop_mark(b"e", None)
        return "list"

    def dict_(self) -> str:
        n = self.rng.choice((0, 1, 2, 3))
        choice = self.rng.randrange(3)
        if choice == 0:
            self.mark()
            for _ in range(n):
                self.key()
                self.value()
            self.pop_mark(b"d", "dict")
        else:
            self.op(b"}", push="dict")
            for _ in range(n):
                if choice == 1:
                    self.key()
                    self.value()
                    self.op(b"s", pops=2)
            if choice == 2:
                self.mark()
                for _ in range(n):
                    self.key()
                    self.value()
                self.pop_mark(b"u", None)
        return "dict"

    def set_(self, frozen: bool = False, make: Callable[[], str] | None = None) -> str:
        n = self.rng.choice((0, 1, 2, 3))
        make = make or self.key
        if frozen:
            self.mark()
            self.items(n, make)
            self.pop_mark(b"\x91", "frozenset")
            return "frozenset"
        self.op(b"\x8f", push="set")
        self.mark()
        self.items(n, make)
        self.pop_mark(b"\x90", None)
        return "set"

    def key(self) -> str:
        """A value that is usually hashable (sometimes a deep tuple or a colliding int)."""
        r = self.rng.random()
        if r < 0.3:
            return self.int_()
        if r < 0.55:
            return self.text()
        if r < 0.65:
            return self.tuple_(self.rng.randrange(3), self.key)
        if r < 0.72:
            return self.deep_tuple()
        if r < 0.78:
            return self.int_(5 + self.rng.randrange(1, 1000) * P61)
        if r < 0.84:
            return self.set_(frozen=True)
        if r < 0.9:
            return self.raw_bytes()
        return self.value()

    def deep_tuple(self) -> str:
        """A tuple or frozenset nested up to a million deep: hash() recurses into it."""
        depth = self.rng.choice((2, 50, 999, 1001, 5000))
        if self.chance(0.03):
            depth = self.rng.choice((100_000, 1_000_000))
        self.notes.append(f"deep-{depth}")
        if self.chance(0.2):
            self.out += b"(" * depth  # frozensets: FROZENSET closes each mark
            self.int_(1)
            self.out += b"\x91" * depth
            if not self.broken:
                self.stack[-1] = "frozenset"
            return "frozenset"
        self.int_(1) if self.chance(0.5) else self.text("k")
        self.out += b"\x85" * depth
        if not self.broken:
            self.stack[-1] = "tuple"
        return "tuple"

    def colliding(self) -> str:
        """A list of distinct ints that all hash alike, or (int, None) pairs of them."""
        n = self.rng.choice((70, 70, 70, 2000)) if self.chance(0.97) else 30_000
        pairs = self.chance(0.5)
        self.op(b"]", push="list")
        self.mark()
        for k in range(n):
            value = 5 + (k + 1) * P61
            raw = pickle.encode_long(value)  # type: ignore[attr-defined]
            self.out += b"\x8a" + bytes((len(raw),)) + raw
            if pairs:
                self.out += b"N\x86"
        self.out += b"e"
        if not self.broken:
            del self.stack[self.marks.pop() :]
        self.notes.append(f"colliding-{n}")
        return "list"

    # -- globals and calls ---------------------------------------------------------

    def global_(self, name: str | None = None) -> str:
        if name is None:
            name = str(self.pick(REFUSED)) if self.chance(0.03) else str(self.pick(ALLOWED))
        self.names.add(name)
        module, _, attr = name.rpartition(".")
        codes = [c for c, n in EXTENSIONS.items() if n == name]
        choice = self.rng.randrange(5)
        if codes and choice == 0:
            code = codes[0]
            if code < 256:
                self.op(b"\x82", push=f"global:{name}", arg=bytes((code,)))
            elif code < 65536:
                self.op(b"\x83", push=f"global:{name}", arg=struct.pack("<H", code))
            else:
                self.op(b"\x84", push=f"global:{name}", arg=struct.pack("<i", code))
        elif choice in (1, 2):
            self.text(module)
            self.text(attr)
            self.op(b"\x93", pops=2, push=f"global:{name}")
        else:
            self.op(b"c", push=f"global:{name}", arg=f"{module}\n{attr}\n".encode())
        return f"global:{name}"

    def args_for(self, name: str) -> list[Callable[[], str]]:
        """Arguments of the kinds ``name`` accepts, and often of kinds it should refuse."""
        rng = self.rng
        if rng.random() < 0.3:
            return [self.value for _ in range(rng.randrange(4))]
        short = name.rpartition(".")[2]
        t, i, b, h = self.text, self.int_, self.raw_bytes, self.huge_int
        table: dict[str, list[list[Callable[[], str]]]] = {
            "str": [[b, lambda: self.text(str(self.pick(ENCODINGS)))], [b, t, t], [t], [self.leaf]],
            "bytes": [[i], [t, lambda: self.text(str(self.pick(ENCODINGS)))], [self.leaf], [b]],
            "bytearray": [[i], [self.leaf], [t, t], [self.list_]],
            "int": [[t], [t, i], [b], [self.float_], [self.leaf], [h]],
            "float": [[t], [self.leaf], [h]],
            "complex": [[self.float_, self.float_], [t], [h, h]],
            "range": [[i], [i, i, i], [h, h]],
            "slice": [[i, i, i], [self.value]],
            "Fraction": [[h, h], [i, i], [t], [h], [i, self.int_]],
            "Decimal": [[t], [h], [self.float_], [self.tuple_]],
            "date": [[b], [i, i, i], [b, self.value]],
            "datetime": [[b], [i, i, i, i, i, i], [b, self.global_]],
            "time": [[b], [i, i, i], [b, self.value]],
            "timedelta": [[i], [i, i, i], [self.float_], [h]],
            "timezone": [[lambda: self.call("datetime.timedelta")], [self.value, t]],
            "UUID": [[t], [lambda: self.op(b"N", push="none") or "none", b], [h]],
            "PurePosixPath": [[t], [t, t], [self.leaf], [b]],
            "PureWindowsPath": [[t], [t, t]],
            "PosixPath": [[t], [t, t]],
            "WindowsPath": [[t]],
            "defaultdict": [[lambda: self.op(b"N", push="none") or "none", self.colliding]],
            "Counter": [[self.leaf], [self.colliding], [self.dict_], [t]],
            "OrderedDict": [[self.colliding], [self.list_]],
            "deque": [[self.leaf, i], [self.list_, i], [self.list_]],
            "set": [[self.leaf], [self.colliding], [self.list_]],
            "frozenset": [[self.leaf], [self.colliding], [self.list_]],
            "dict": [[self.leaf], [self.colliding], [self.dict_]],
            "list": [[self.leaf], [self.tuple_]],
            "tuple": [[self.leaf], [self.list_]],
            "object": [[], [self.global_]],
            "_as_subclass": [[self.leaf, self.global_], [self.leaf, self.global_, self.dict_]],
            "_make_dtype": [[lambda: self.text("<f8")], [t], [self.list_]],
            "_make_scalar": [[lambda: self.text("<i8"), lambda: self.raw_bytes(bytes(8))]],
            "_make_object_array": [[self.list_, self.value, self.list_]],
        }
        choices = table.get(short, [[self.value]])
        return choices[rng.randrange(len(choices))]

    def call(self, name: str | None = None) -> str:
        """A call of an allowed global, in one of the five calling opcodes, maybe then BUILD."""
        rng = self.rng
        if name is None:
            name = str(self.pick(ALLOWED)) if self.chance(0.97) else str(self.pick(REFUSED))
        args = self.args_for(name)
        is_class = name in CLASSES or name in REFUSED
        form = rng.randrange(10)
        module, _, attr = name.rpartition(".")
        if form == 0 and is_class and "\n" not in name:
            self.mark()
            self.items(len(args), lambda: args.pop(0)())
            self.names.add(name)
            self.pop_mark(b"i", f"obj:{name}")
            self.out += f"{module}\n{attr}\n".encode()
        elif form == 1 and is_class:
            self.mark()
            self.global_(name)
            self.items(len(args), lambda: args.pop(0)())
            self.pop_mark(b"o", f"obj:{name}")
        elif form in (2, 3) and is_class:
            self.global_(name)
            self.tuple_(len(args), lambda: args.pop(0)())
            self.op(b"\x81", pops=2, push=f"obj:{name}")
        elif form == 4 and is_class:
            self.global_(name)
            self.tuple_(len(args), lambda: args.pop(0)())
            self.dict_() if self.chance(0.5) else self.op(b"}", push="dict")
            self.op(b"\x92", pops=3, push=f"obj:{name}")
        else:
            self.global_(name)
            self.tuple_(len(args), lambda: args.pop(0)())
            self.op(b"R", pops=2, push=f"obj:{name}")
        if self.chance(0.2):
            self.build()
        return f"obj:{name}"

    def build(self) -> None:
        """BUILD on what is on top (an instance, or a class pushed for it): a dict state or
        a (state, slotstate) pair, with the attributes that matter to allowed classes."""
        rng = self.rng
        if rng.random() < 0.25:
            self.op(b"N", push="none")
        else:
            self.attr_dict()
        if rng.random() < 0.6:
            self.attr_dict()
            self.op(b"\x86", pops=2, push="tuple")
        elif rng.random() < 0.1:
            self.value()
            self.op(b"0", pops=1)  # POP: state is the first value
        self.op(b"b", pops=1)
        self.notes.append("build")

    def attr_dict(self) -> None:
        self.op(b"}", push="dict")
        self.mark()
        for _ in range(self.rng.choice((1, 1, 2))):
            self.text(str(self.pick(ATTRS)))
            r = self.rng.random()
            if r < 0.3:
                self.text()
            elif r < 0.45:
                self.global_()
            elif r < 0.55:
                self.huge_int()
            else:
                self.value()
        self.pop_mark(b"u", None)

    def patch_class(self) -> str:
        """BUILD with a class (or allowed function) itself as the target."""
        self.global_(str(self.pick(ALLOWED)))
        self.build()
        self.notes.append("patch")
        return self.stack[-1] if self.stack else "?"

    def repeat(self) -> str:
        """One call made many times through the memo: a list of its results."""
        name = self.rng.choice(
            (
                "fractions.Fraction",
                "decimal.Decimal",
                "builtins.bytes",
                "builtins.int",
                str(self.pick(ALLOWED)),
            )
        )
        n = self.rng.choice((2, 10, 300, 300, 3000)) if self.chance(0.97) else 30_000
        self.op(b"]", push="list")
        self.mark()
        self.global_(name)
        f = len(self.memo)
        self.remember()
        if name in ("fractions.Fraction", "decimal.Decimal", "builtins.int"):
            self.tuple_(2 if name == "fractions.Fraction" else 1, self.huge_int)
        elif name == "builtins.bytes":
            self.tuple_(1, self.leaf)
        else:
            self.tuple_(len(a := self.args_for(name)), lambda: a.pop(0)())
        a_index = len(self.memo)
        self.remember()
        self.op(b"R", pops=2, push=f"obj:{name}")
        for _ in range(n - 1):
            self.recall(f)
            self.recall(a_index)
            self.op(b"R", pops=2, push=f"obj:{name}")
        self.pop_mark(b"e", None)
        self.notes.append(f"repeat-{n}-{name}")
        return "list"

    # -- the grammar ---------------------------------------------------------------

    def value(self) -> str:
        """Write opcodes that leave one more value on the stack."""
        self.budget -= 1
        r = self.rng.random()
        if self.budget <= 0 or len(self.marks) > 30:
            r = r * 0.35
        if r < 0.08:
            kind = self.int_()
        elif r < 0.12:
            kind = self.float_()
        elif r < 0.2:
            kind = self.text()
        elif r < 0.25:
            kind = self.raw_bytes(as_bytearray=self.chance(0.2))
        elif r < 0.27:
            self.op(self.rng.choice((b"N", b"\x88", b"\x89")), push="none")
            kind = "none"
        elif r < 0.31:
            kind = self.leaf()
        elif r < 0.35 and self.memo:
            index = self.rng.choice(list(self.memo))
            self.recall(index)
            kind = self.memo[index]
        elif r < 0.42:
            kind = self.tuple_()
        elif r < 0.47:
            kind = self.list_()
        elif r < 0.52:
            kind = self.dict_()
        elif r < 0.55:
            kind = self.set_(frozen=self.chance(0.5))
        elif r < 0.58:
            kind = self.global_()
        elif r < 0.8:
            kind = self.call()
        elif r < 0.84:
            kind = self.patch_class()
        elif r < 0.86:
            kind = self.repeat()
        elif r < 0.88:
            kind = self.huge_int()
        elif r < 0.9:
            kind = self.deep_tuple()
        elif r < 0.92:
            kind = self.colliding()
        else:
            kind = self.call()
        if self.chance(0.15):
            self.remember()
        if self.chance(0.03):
            self.noise()
        return kind

    def noise(self) -> None:
        """Opcodes with no net effect on a well-formed stack (DUP then POP, an empty mark,
        a memo entry), or rarely one that breaks the program on purpose."""
        r = self.rng.random()
        if r < 0.3:
            self.op(b"2", push=self.stack[-1] if self.stack else "?")
            self.op(b"0", pops=1)
        elif r < 0.6:
            self.mark()
            self.value()
            self.pop_mark(b"1", None)
        elif r < 0.8:
            self.remember()
        else:
            self.out += self.rng.choice(
                (b"0", b"1", b"2", b"(", b"t", b"R", b"b", b"s", b"a", b"\x97", b"\x98", b".")
            )
            self.broken = True


def generate(seed: int) -> tuple[bytes, Program]:
    """The pickle of one execution (and its model, for the checks), from its seed."""
    rng = random.Random(seed)
    program = Program(rng, proto=rng.choice((2, 4, 4, 5, 5, 5)), budget=rng.choice((3, 10, 40)))
    program.value()
    body = bytes(program.out) + b"."
    head = b"\x80" + bytes((program.proto,))
    if program.proto >= 4 and rng.random() < 0.5:
        size = len(body) if rng.random() < 0.95 else len(body) + rng.choice((-1, 1, 1 << 40))
        head += b"\x95" + struct.pack("<Q", max(size, 0))
    return head + body, program


# -- known attacks -------------------------------------------------------------------------


def _g(name: str) -> bytes:
    module, _, attr = name.rpartition(".")
    return b"c" + f"{module}\n{attr}\n".encode()


def _s(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _b(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def _i(n: int) -> bytes:
    raw = pickle.encode_long(n)  # type: ignore[attr-defined]
    return b"\x8b" + struct.pack("<i", len(raw)) + raw


def _call(name: str, *args: bytes) -> bytes:
    return _g(name) + b"(" + b"".join(args) + b"tR"


def _pk(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def _leaf(i: int) -> bytes:
    return _i(i) + b"Q"


def _repeat(call: bytes, n: int) -> bytes:
    """[call, call, ...]: the global and its argument tuple memoized, then reused n times."""
    head, _, rest = call.partition(b"(")
    args = b"(" + rest[:-1]
    again = b"h\x00h\x01R"
    return b"](" + head + b"q\x00" + args + b"q\x01R" + again * (n - 1) + b"e"


def _colliding(n: int, pairs: bool) -> bytes:
    out = b"]("
    for k in range(n):
        out += _i(5 + (k + 1) * P61) + (b"N\x86" if pairs else b"")
    return out + b"e"


def _slotstate(target: bytes, attr: str, value: bytes) -> bytes:
    """BUILD with state None and slotstate {attr: value}: setattr on the target."""
    return target + b"N}" + _s(attr) + value + b"s\x86b"


_BIG = (1 << 16999) + 12345
_BIG2 = (1 << 16998) + 54321

#: name -> a pickle reproducing a known attack through allowed globals only.
ATTACKS: dict[str, bytes] = {
    "class-slot-patched-path-str": _pk(
        _slotstate(_g("pathlib.PurePosixPath"), "_str", _s("/attacker"))
        + b"0"
        + _call("pathlib.PurePosixPath", _s("a"))
    ),
    "class-counter-missing-patched": _pk(
        _slotstate(_g("collections.Counter"), "__missing__", _g("builtins.bool"))
    ),
    "class-fraction-slot-patched": _pk(_slotstate(_g("fractions.Fraction"), "_denominator", _i(0))),
    "function-defaults-patched": _pk(
        _slotstate(_g("codecs_ser._skeleton._make_dtype"), "__defaults__", b"(" + _s("<f8") + b"t")
    ),
    "function-dict-patched": _pk(
        _g("codecs_ser._skeleton._make_dtype") + b"}" + _s("x") + _i(1) + b"sb"
    ),
    "path-str-disagrees-with-parts": _pk(
        _slotstate(_call("pathlib.PurePosixPath", _s("a/b")), "_str", _s("/etc/passwd"))
    ),
    "fraction-1-over-0": _pk(
        _slotstate(_g("fractions.Fraction") + b")\x81", "_denominator", _i(0))
    ),
    "datetime-day-99-hour-200": _pk(
        _call(
            "datetime.datetime", _b(struct.pack(">H", 2020) + bytes((1, 99, 200, 99, 99, 0, 0, 0)))
        )
    ),
    "date-february-31": _pk(_call("datetime.date", _b(struct.pack(">H", 2020) + bytes((2, 31))))),
    "time-hour-99-minute-99": _pk(_call("datetime.time", _b(bytes((23, 99, 99, 0, 0, 0))))),
    "uuid-int-of-200-bits": _pk(_g("uuid.UUID") + b")\x81}" + _s("int") + _i(1 << 200) + b"sb"),
    "uuid-negative-int": _pk(_g("uuid.UUID") + b")\x81}" + _s("int") + _i(-5) + b"sb"),
    "dict-key-a-million-tuples-deep": _pk(b"}" + _i(1) + b"\x85" * 1_000_000 + b"Ns"),
    "frozenset-item-a-million-tuples-deep": _pk(b"(" + _i(1) + b"\x85" * 1_000_000 + b"\x91"),
    "tuple-5000-deep-returned": _pk(_i(1) + b"\x85" * 5000),
    "defaultdict-of-colliding-pairs": _pk(
        _g("collections.defaultdict") + b"(N" + _colliding(30_000, pairs=True) + b"tR"
    ),
    "set-of-a-colliding-leaf": _pk(_call("builtins.set", _leaf(1))),
    "frozenset-of-a-colliding-leaf": _pk(_call("builtins.frozenset", _leaf(1))),
    "counter-of-a-colliding-leaf": _pk(_call("collections.Counter", _leaf(1))),
    "dict-of-a-colliding-leaf-pairs": _pk(_call("builtins.dict", _leaf(4))),
    "bytes-of-a-leaf-many-times": _pk(_repeat(_call("builtins.bytes", _leaf(3)), 100)),
    "str-of-punycode": _pk(
        _call("builtins.str", _b(b"a" * 20_000 + b"-" + b"9" * 20_000), _s("punycode"))
    ),
    "str-of-a-codec-outside-the-allowlist": _pk(_call("builtins.str", _b(b"00"), _s("hex"))),
    "fraction-of-17000-bit-ints-repeated": _pk(
        _repeat(_call("fractions.Fraction", _i(_BIG), _i(_BIG2)), 50_000)
    ),
    "decimal-of-a-17000-bit-int-repeated": _pk(_repeat(_call("decimal.Decimal", _i(_BIG)), 10_000)),
    "counter-instance-attribute": _pk(
        _call("collections.Counter") + b"}" + _s("x") + _i(1) + b"sb"
    ),
    "refused-global-getattr": _pk(_call("builtins.getattr", _g("builtins.int"), _s("real"))),
    "refused-global-by-extension": _pk(b"\x82\xf4(tR"),
    "refused-global-canary-by-stack-global": _pk(_s("pickle_fuzz") + _s("canary") + b"\x93(tR"),
}

#: Attacks that name refused globals: they must fail (UntrustedError), never load.
ATTACK_REFUSED: dict[str, tuple[str, ...]] = {
    "refused-global-getattr": ("builtins.getattr",),
    "refused-global-by-extension": ("pickle_fuzz.canary",),
    "refused-global-canary-by-stack-global": ("pickle_fuzz.canary",),
}
