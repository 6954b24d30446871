"""Unpickle checkpoint files (`.pdparams`, `pytorch_model.bin`) without letting the file run code or grab memory.

`find_class` never hands out a real numpy, torch or codecs callable: each allowed global maps to a
stand-in of this project that checks its arguments and builds plain numpy arrays, each no larger than
the file and all together within a byte budget. Anything else is refused, naming `module.name`.
"""
from __future__ import annotations

import math
import pickle
import pickletools
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

MAX_DIMS = 32
# numpy's type strings of the plain numeric dtypes an array pickle may use; nothing structured or object.
NUMERIC_TYPESTRS = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"})
BYTE_ORDERS = frozenset({"<", ">", "|", "="})
# The encoding protocol-2 pickles name when they write bytes as `_codecs.encode(text, "latin1")`.
LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"})
NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
NUMPY_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")


class UnsafePickleError(ValueError):
    """A pickle was refused or is malformed; the reader adds the file's name."""


def short(text: Any, limit: int = 120) -> str:
    """`text` as a str cut to `limit` characters, for messages that quote the file."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def check_shape(shape: Any, what: str = "array") -> Tuple[int, ...]:
    """A shape as a tuple of non-negative ints (at most MAX_DIMS), or UnsafePickleError."""
    if not isinstance(shape, (tuple, list)) or len(shape) > MAX_DIMS:
        raise UnsafePickleError(f"{what}: shape must be a tuple of at most {MAX_DIMS} sizes, "
                                f"got {type(shape).__name__}")
    if not all(type(d) is int and d >= 0 for d in shape):  # noqa: E721 (bool is not a size)
        raise UnsafePickleError(f"{what}: shape {short(list(shape))} has a size that is not a non-negative int")
    return tuple(shape)


class Budget:
    """Bytes one file's arrays may take: each at most the file's size, all together at most `total`."""

    def __init__(self, file_bytes: int, total: int):
        self.file_bytes, self.left = file_bytes, total

    def claim(self, shape: Tuple[int, ...], itemsize: int, what: str) -> int:
        """nbytes of an array of `shape`; refused when one array would need more bytes than the file has."""
        nbytes = math.prod(shape) * itemsize
        if nbytes > self.file_bytes:
            raise UnsafePickleError(f"{what} of shape {short(list(shape))} claims {nbytes} bytes, "
                                    f"more than the whole file ({self.file_bytes} bytes)")
        return nbytes

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise UnsafePickleError(f"{what}: the arrays built so far would exceed the {self.file_bytes}-byte "
                                    "file's budget (the pickle reuses its data)")
        self.left -= nbytes


class StandIn:
    """A callable given to the unpickler in place of a global; it has no state a pickle could change."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn: Callable[..., Any]):
        self._name, self._fn = name, fn

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"{self._name} takes no state")


class Token:
    """A non-callable marker given in place of a class the pickle only names (numpy.ndarray, torch storages)."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: Any = None):
        self.name, self.value = name, value

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"{self.name} takes no state")


class Record(dict):
    """Stand-in for collections.OrderedDict: a dict; attributes a pickle sets on it (torch's _metadata) are dropped."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        if state is not None and not isinstance(state, dict):
            raise UnsafePickleError(f"OrderedDict state must be a dict of attributes, got {type(state).__name__}")


class DTypeSpec:
    """Stand-in for numpy.dtype(typestr, align, copy): plain numeric dtypes only; BUILD sets the byte order."""

    __slots__ = ("dtype", "_built")

    def __init__(self, typestr: Any, align: Any = False, copy: Any = True):
        if not isinstance(typestr, str) or typestr not in NUMERIC_TYPESTRS:
            named = short(repr(typestr), 40) if isinstance(typestr, str) else type(typestr).__name__
            raise UnsafePickleError(f"refusing numpy dtype {named} (plain numeric dtypes only)")
        self.dtype, self._built = np.dtype(typestr), False

    def __setstate__(self, state: Any) -> None:
        if self._built or not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise UnsafePickleError("numpy dtype state is not (version, byteorder, ...) of a plain dtype")
        order = state[1]
        if not isinstance(order, str) or order not in BYTE_ORDERS or any(x is not None for x in state[2:5]):
            raise UnsafePickleError("numpy dtype state describes a structured or sub-array dtype")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)
        self._built = True


def _as_bytes(raw: Any, nbytes: int, what: str) -> bytes:
    """Array data as bytes of exactly `nbytes` (str: protocol-2/Python-2 latin-1 text)."""
    if not isinstance(raw, (bytes, bytearray, str)):
        raise UnsafePickleError(f"{what}: data of type {type(raw).__name__} "
                                "(only byte data; object arrays are refused)")
    if len(raw) != nbytes:
        raise UnsafePickleError(f"{what}: {len(raw)} data bytes, but its shape and dtype need {nbytes}")
    return raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)


class ArrayState:
    """What numpy's _reconstruct / _frombuffer stand-ins return; `array` is set once its data is checked."""

    __slots__ = ("array", "_budget")

    def __init__(self, budget: Budget):
        self.array: Optional[np.ndarray] = None
        self._budget = budget

    def fill(self, shape: Any, spec: Any, fortran: Any, raw: Any) -> "ArrayState":
        if self.array is not None:
            raise UnsafePickleError("numpy array state set twice")
        if not isinstance(spec, DTypeSpec) or not isinstance(fortran, (bool, int)):
            raise UnsafePickleError("numpy array state needs (shape, dtype, is_fortran, data)")
        shape = check_shape(shape)
        what = f"{spec.dtype.name} array"
        nbytes = self._budget.claim(shape, spec.dtype.itemsize, what)
        data = _as_bytes(raw, nbytes, what)
        self._budget.charge(nbytes, what)
        self.array = np.frombuffer(data, dtype=spec.dtype).reshape(shape, order="F" if fortran else "C")
        return self

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise UnsafePickleError("numpy array state is not (version, shape, dtype, is_fortran, data)")
        self.fill(*state)

    def result(self) -> np.ndarray:
        """The array as a writable copy in native byte order."""
        if self.array is None:
            raise UnsafePickleError("numpy array without data")
        return self.array.astype(self.array.dtype.newbyteorder("="), copy=True)


def _encode(text: Any, encoding: Any) -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes: latin-1 text in, the same number of bytes out."""
    if not isinstance(text, str) or not isinstance(encoding, str) or encoding.lower() not in LATIN1_NAMES:
        raise UnsafePickleError(f"refusing _codecs.encode({type(text).__name__}, {short(repr(encoding), 40)}): "
                                "only encode(str, 'latin1'), the way pickles write bytes, is allowed")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """`bytes()` as protocol-2 pickles write b''; nothing else."""
    if args:
        raise UnsafePickleError("refusing builtins.bytes with arguments")
    return b""


def numpy_standins(budget: Budget) -> Dict[Tuple[str, str], Any]:
    """The globals a pickled dict of numpy arrays uses, each mapped to a checked stand-in."""
    ndarray = Token("numpy.ndarray")

    def reconstruct(cls: Any, shape: Any, typecode: Any) -> ArrayState:
        if cls is not ndarray or typecode not in (b"b", "b"):
            raise UnsafePickleError("numpy _reconstruct is only allowed as _reconstruct(ndarray, shape, b'b')")
        budget.claim(check_shape(shape), 1, "numpy array")
        return ArrayState(budget)

    def frombuffer(buf: Any, spec: Any, shape: Any, order: Any) -> ArrayState:
        if order not in ("C", "F"):
            raise UnsafePickleError("numpy _frombuffer order must be 'C' or 'F'")
        return ArrayState(budget).fill(shape, spec, order == "F", buf)

    def scalar(spec: Any, raw: Any = None) -> Any:
        if not isinstance(spec, DTypeSpec):
            raise UnsafePickleError("numpy scalar needs a plain numeric dtype")
        return np.frombuffer(_as_bytes(raw, spec.dtype.itemsize, "numpy scalar"), dtype=spec.dtype)[0]

    table: Dict[Tuple[str, str], Any] = {("numpy", "ndarray"): ndarray,
                                         ("numpy", "dtype"): StandIn("numpy.dtype", DTypeSpec),
                                         ("_codecs", "encode"): StandIn("_codecs.encode", _encode),
                                         ("builtins", "bytes"): StandIn("builtins.bytes", _empty_bytes),
                                         ("__builtin__", "bytes"): StandIn("builtins.bytes", _empty_bytes),
                                         ("collections", "OrderedDict"): StandIn("collections.OrderedDict",
                                                                                 lambda: Record())}
    for module in NUMPY_MODULES:
        table[module, "_reconstruct"] = StandIn("numpy _reconstruct", reconstruct)
        table[module, "scalar"] = StandIn("numpy scalar", scalar)
    for module in NUMPY_NUMERIC_MODULES:
        table[module, "_frombuffer"] = StandIn("numpy _frombuffer", frombuffer)
    return table


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, stream: Any, standins: Mapping[Tuple[str, str], Any],
                 persistent_load: Optional[Callable[[Any], Any]]):
        super().__init__(stream, encoding="latin1")
        self._standins, self._persistent = standins, persistent_load

    def find_class(self, module: str, name: str) -> Any:
        target = self._standins.get((module, name))
        if target is None:
            raise UnsafePickleError(f"refusing to load {short(module, 80)}.{short(name, 80)}")
        return target

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError("refusing a persistent id (this format has none)")
        return self._persistent(pid)


def _check_opcodes(stream: Any) -> None:
    """Walk the opcodes without building anything, so that no length the pickle claims exceeds the file."""
    try:
        for _ in pickletools.genops(stream):
            pass
    except ValueError as exc:
        raise UnsafePickleError(f"malformed pickle: {short(exc, 200)}") from None


def safe_load(stream: Any, standins: Mapping[Tuple[str, str], Any],
              persistent_load: Optional[Callable[[Any], Any]] = None) -> Any:
    """Unpickle the one pickle that starts at `stream`'s position (left just after it) through `standins`.

    `stream` needs read/readline/tell/seek (a BytesIO or mmap). Any failure, running out of memory
    included, is an UnsafePickleError.
    """
    try:
        start = stream.tell()
        _check_opcodes(stream)
        stream.seek(start)
        return _AllowListUnpickler(stream, standins, persistent_load).load()
    except UnsafePickleError:
        raise
    except (MemoryError, OverflowError, RecursionError) as exc:
        detail = f": {short(exc, 200)}" if str(exc) else ""
        raise UnsafePickleError(f"{type(exc).__name__} while unpickling{detail}") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError) as exc:
        raise UnsafePickleError(f"malformed pickle: {type(exc).__name__}: {short(exc, 200)}") from None
