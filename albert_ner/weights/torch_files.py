"""Read `pytorch_model.bin` (format as written by torch.save) with numpy alone: no torch unpickler sees the file.

Zip format (torch >= 1.6): `<root>/data.pkl` pickles the state dict, each storage it references by a
persistent id ('storage', StorageClass, key, location, numel) lies raw in `<root>/data/<key>`, and
`<root>/byteorder` says little or big. Legacy format: pickles of the magic number, protocol version,
sys info, the object (persistent ids carry a sixth field, view metadata) and the sorted storage keys,
then per key an int64 element count and the raw little-endian bytes. Both pickles go through
safe_pickle's allow-list; tensors are rebuilt as numpy copies after checking that every element they
reach lies inside their storage.
"""
from __future__ import annotations

import dataclasses
import io
import mmap
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from albert_ner.weights.paddle import CheckpointFormatError
from albert_ner.weights.safe_pickle import (Budget, StandIn, Token, UnsafePickleError, check_shape, numpy_standins,
                                            safe_load, short)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# Tensors may total this many times the file's bytes: float16/bfloat16 widen to float32, tied weights share a storage.
OUTPUT_FACTOR = 4


@dataclasses.dataclass(frozen=True)
class Element:
    """A torch element type as numpy reads it; bfloat16 is read as its uint16 bits."""

    name: str
    typestr: str
    bfloat16: bool = False

    @property
    def itemsize(self) -> int:
        return np.dtype(self.typestr).itemsize

    @property
    def floating(self) -> bool:
        return self.bfloat16 or self.typestr.startswith("f")

    def numpy(self, byteorder: str) -> np.dtype:
        return np.dtype(self.typestr).newbyteorder(byteorder)


# torch dtype name (as pickled: GLOBAL 'torch <name>') -> element type
TORCH_DTYPES = {name: Element(name, typestr, name == "bfloat16") for name, typestr in (
    ("float32", "f4"), ("float64", "f8"), ("float16", "f2"), ("bfloat16", "u2"), ("int64", "i8"), ("int32", "i4"),
    ("int16", "i2"), ("int8", "i1"), ("uint8", "u1"), ("uint16", "u2"), ("uint32", "u4"), ("uint64", "u8"),
    ("bool", "b1"), ("complex64", "c8"), ("complex128", "c16"))}
# typed storage class (GLOBAL 'torch <class>') -> torch dtype name
STORAGE_CLASSES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
                   "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128"}


class StorageRef:
    """One storage a persistent id names: its element type and count; the bytes are read on first use."""

    __slots__ = ("key", "element", "numel", "_load", "_data")

    def __init__(self, key: str, element: Element, numel: int, load: Callable[["StorageRef"], bytes]):
        self.key, self.element, self.numel, self._load, self._data = key, element, numel, load, None

    @property
    def nbytes(self) -> int:
        return self.numel * self.element.itemsize

    def data(self) -> bytes:
        if self._data is None:
            self._data = self._load(self)
        return self._data

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("a storage takes no state")


class TensorRef:
    """What the _rebuild_tensor stand-ins return: a view of a storage, rebuilt once the state dict is read."""

    __slots__ = ("storage", "offset", "size", "stride", "element")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, element: Optional[Element] = None):
        if not isinstance(storage, StorageRef):
            raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}, not a storage")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.element = element or storage.element

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("a tensor takes no state")


def _kind(token: Any, kind: str) -> Element:
    if not isinstance(token, Token) or not isinstance(token.value, tuple) or token.value[0] != kind:
        raise UnsafePickleError(f"expected a torch {kind}, got {getattr(token, 'name', type(token).__name__)}")
    return token.value[1]


def _rebuild_v2(storage: Any, offset: Any, size: Any, stride: Any, *_flags: Any) -> TensorRef:
    return TensorRef(storage, offset, size, stride)


def _rebuild_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
                dtype: Any, *_metadata: Any) -> TensorRef:
    return TensorRef(storage, offset, size, stride, _kind(dtype, "dtype"))


def _parameter(data: Any, *_flags: Any) -> TensorRef:
    if not isinstance(data, TensorRef):
        raise UnsafePickleError(f"parameter data is a {type(data).__name__}, not a tensor")
    return data


def torch_standins(budget: Budget) -> Dict[Tuple[str, str], Any]:
    """The globals a torch state dict pickle uses, each mapped to a checked stand-in.

    numpy's stand-ins are included for values kept beside the tensors (they are skipped, not refused).
    """
    table = numpy_standins(budget)
    for cls, dtype in STORAGE_CLASSES.items():
        table["torch", cls] = Token(f"torch.{cls}", ("storage", TORCH_DTYPES[dtype]))
    untyped = Token("torch.UntypedStorage", ("storage", TORCH_DTYPES["uint8"]))
    table["torch", "UntypedStorage"] = table["torch.storage", "UntypedStorage"] = untyped
    for name, element in TORCH_DTYPES.items():
        table["torch", name] = Token(f"torch.{name}", ("dtype", element))
    table["torch._utils", "_rebuild_tensor_v2"] = StandIn("torch._utils._rebuild_tensor_v2", _rebuild_v2)
    table["torch._utils", "_rebuild_tensor_v3"] = StandIn("torch._utils._rebuild_tensor_v3", _rebuild_v3)
    table["torch._utils", "_rebuild_parameter"] = StandIn("torch._utils._rebuild_parameter", _parameter)
    table["torch._utils", "_rebuild_parameter_with_state"] = StandIn("torch._utils._rebuild_parameter_with_state",
                                                                     _parameter)
    return table


class _Storages:
    """Persistent ids -> StorageRefs, one per key; a key may not come back with another type or size."""

    def __init__(self, budget: Budget, load: Callable[[StorageRef], bytes]):
        self.budget, self.load, self.refs = budget, load, {}

    def get(self, storage_type: Any, key: Any, numel: Any) -> StorageRef:
        element = _kind(storage_type, "storage")
        if not isinstance(key, str) or type(numel) is not int or numel < 0:  # noqa: E721
            raise UnsafePickleError("storage persistent id needs a str key and a non-negative element count")
        self.budget.claim((numel,), element.itemsize, f"storage {short(key, 40)}")
        ref = self.refs.get(key)
        if ref is None:
            ref = self.refs[key] = StorageRef(key, element, numel, self.load)
        elif (ref.element, ref.numel) != (element, numel):
            raise UnsafePickleError(f"storage {short(key, 40)} is named with two types or sizes")
        return ref


def _member_loader(archive: zipfile.ZipFile, root: str) -> Callable[[StorageRef], bytes]:
    def load(ref: StorageRef) -> bytes:
        name = f"{root}data/{ref.key}"
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise UnsafePickleError(f"storage member {short(name)} is missing") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafePickleError(f"storage member {short(name)} is compressed (torch.save stores them as is)")
        if info.file_size != ref.nbytes:
            raise UnsafePickleError(f"storage member {short(name)} holds {info.file_size} bytes, but the pickle "
                                    f"claims {ref.numel} {ref.element.name} elements ({ref.nbytes} bytes)")
        try:
            return archive.read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise UnsafePickleError(f"cannot read storage member {short(name)}: {short(exc)}") from None
    return load


def _read_zip(archive: zipfile.ZipFile, budget: Budget) -> Tuple[Any, str]:
    """(unpickled state dict, byte order) of a torch.save zip archive."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise UnsafePickleError(f"expected one <root>/data.pkl in the archive, found {len(pickles)}")
    root = pickles[0][:-len("data.pkl")]
    order = b"little"
    if root + "byteorder" in archive.namelist():
        marker = archive.getinfo(root + "byteorder")
        order = archive.read(marker) if marker.file_size <= len(b"little") else b"(too long)"
        if order not in (b"little", b"big"):
            raise UnsafePickleError(f"byteorder member says {short(order, 20)}, not little or big")
    info = archive.getinfo(pickles[0])
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > budget.file_bytes:
        raise UnsafePickleError(f"{pickles[0]} is compressed or larger than the file")
    storages = _Storages(budget, _member_loader(archive, root))

    def persistent_load(pid: Any) -> StorageRef:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise UnsafePickleError("refusing a persistent id that is not ('storage', type, key, location, numel)")
        return storages.get(pid[1], pid[2], pid[4])

    stream = io.BytesIO(archive.read(info))
    return safe_load(stream, torch_standins(budget), persistent_load), "<" if order == b"little" else ">"


def _read_legacy(data: mmap.mmap, budget: Budget) -> Any:
    """The unpickled object of a legacy (pre-1.6, non-zip) torch.save file; storages read from after the pickles."""
    if safe_load(data, {}) != LEGACY_MAGIC:
        raise UnsafePickleError("not a PyTorch checkpoint (no torch.save magic number)")
    if safe_load(data, {}) != LEGACY_PROTOCOL:
        raise UnsafePickleError("legacy torch.save protocol version is not 1001")
    safe_load(data, {})  # sys_info: storages are little-endian whatever it says
    spans: Dict[str, Tuple[int, int]] = {}  # storage key -> (offset of its bytes, element count in the file)

    def load_root(ref: StorageRef) -> bytes:
        if ref.key not in spans:
            raise UnsafePickleError(f"storage {short(ref.key, 40)} has no data in the file")
        start, numel = spans[ref.key]
        if numel != ref.numel:
            raise UnsafePickleError(f"storage {short(ref.key, 40)} holds {numel} elements, "
                                    f"the pickle claims {ref.numel}")
        return bytes(data[start:start + ref.nbytes])

    roots = _Storages(budget, load_root)
    views: Dict[str, StorageRef] = {}

    def persistent_load(pid: Any) -> StorageRef:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
            raise UnsafePickleError("refusing a persistent id that is not "
                                    "('storage', type, key, location, numel, view)")
        root = roots.get(pid[1], pid[2], pid[4])
        if pid[5] is None:
            return root
        view = pid[5]
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and all(type(v) is int and v >= 0 for v in view[1:])):  # noqa: E721
            raise UnsafePickleError("storage view metadata is not (key, offset, size)")
        key, offset, size = view
        if offset + size > root.numel:
            raise UnsafePickleError(f"storage view {short(key, 40)} reaches past its storage")
        if key not in views:
            views[key] = StorageRef(key, root.element, size, lambda ref: root.data()[
                offset * root.element.itemsize:(offset + size) * root.element.itemsize])
        return views[key]

    obj = safe_load(data, torch_standins(budget), persistent_load)
    keys = safe_load(data, {})
    if not isinstance(keys, list) or not all(isinstance(k, str) and k in roots.refs for k in keys):
        raise UnsafePickleError("the legacy storage key list does not match the storages the pickle names")
    pos, size = data.tell(), len(data)
    for key in keys:
        if pos + 8 > size:
            raise UnsafePickleError(f"file ends before storage {short(key, 40)}")
        numel = int.from_bytes(data[pos:pos + 8], "little", signed=True)
        nbytes = numel * roots.refs[key].element.itemsize
        if numel < 0 or pos + 8 + nbytes > size:
            raise UnsafePickleError(f"storage {short(key, 40)} claims {numel} elements, past the end of the file")
        spans[key] = (pos + 8, numel)
        pos += 8 + nbytes
    return obj


def _materialize(ref: TensorRef, byteorder: str, budget: Budget) -> np.ndarray:
    """The tensor as a C-contiguous numpy copy (floating types as float32), after bounds checks."""
    element = ref.element
    shape = check_shape(ref.size, "tensor")
    stride, offset = ref.stride, ref.offset
    if not (isinstance(stride, (tuple, list)) and len(stride) == len(shape)
            and all(type(s) is int and s >= 0 for s in stride)):  # noqa: E721
        shown = list(stride) if isinstance(stride, (tuple, list)) else type(stride).__name__
        raise UnsafePickleError(f"stride {short(shown)} does not fit shape {list(shape)}")
    if type(offset) is not int or offset < 0:  # noqa: E721
        shown = offset if type(offset) is int else type(offset).__name__  # noqa: E721
        raise UnsafePickleError(f"storage offset {short(shown)} is not a non-negative int")
    count = budget.claim(shape, element.itemsize, f"{element.name} tensor") // element.itemsize
    data = ref.storage.data()
    available = len(data) // element.itemsize
    last = offset + sum((d - 1) * s for d, s in zip(shape, stride)) if count else offset - 1
    if offset > available or last >= available:
        raise UnsafePickleError(f"shape {list(shape)}, stride {list(stride)} at offset {offset} reach past the "
                                f"{available}-element storage {short(ref.storage.key, 40)}")
    budget.charge(count * (4 if element.floating else element.itemsize), f"{element.name} tensor")
    flat = np.frombuffer(data, dtype=element.numpy(byteorder), count=available)
    steps = [s * element.itemsize if d > 1 else 0 for d, s in zip(shape, stride)]  # a size-1 dim never steps
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape, strides=steps, writeable=False)
    if element.bfloat16:
        return (view.astype(np.uint32, order="C") << 16).view(np.float32)
    return view.astype(np.float32 if element.floating else element.numpy("="), order="C")


def read_torch_state_dict(path: str | Path) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """A torch.save state dict (zip or legacy format): (tensors by name as numpy, names of non-tensor entries).

    Floating tensors come back as float32; no torch import, no code from the file runs.
    """
    path = Path(path)
    size = path.stat().st_size
    budget = Budget(size, OUTPUT_FACTOR * size)
    try:
        with path.open("rb") as f:
            head = f.read(4)
            if head == b"PK\x03\x04":
                with zipfile.ZipFile(f) as archive:
                    obj, order = _read_zip(archive, budget)
                    return _collect(obj, order, budget, path)
            if head[:1] != b"\x80":
                raise UnsafePickleError("not a PyTorch checkpoint (neither a torch.save zip archive "
                                        "nor the legacy pickle format)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _collect(_read_legacy(data, budget), "<", budget, path)
    except UnsafePickleError as exc:
        raise CheckpointFormatError(f"{path}: not a safe PyTorch state dict: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise CheckpointFormatError(f"{path}: truncated or corrupt torch.save zip archive: {short(exc)}") from None
    except (MemoryError, OverflowError, RecursionError) as exc:
        raise CheckpointFormatError(f"{path}: {type(exc).__name__} while reading the PyTorch state dict") from None


def _collect(obj: Any, byteorder: str, budget: Budget, path: Path) -> Tuple[Dict[str, np.ndarray], List[str]]:
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a state dict (a dict of tensors), got {type(obj).__name__}")
    tensors: Dict[str, np.ndarray] = {}
    skipped: List[str] = []
    for key, value in obj.items():
        if not (isinstance(key, str) and isinstance(value, TensorRef)):
            skipped.append(key if isinstance(key, str) else f"<{type(key).__name__} key>")
            continue
        try:
            tensors[key] = _materialize(value, byteorder, budget)
        except (UnsafePickleError, MemoryError, OverflowError) as exc:
            raise CheckpointFormatError(f"{path}: tensor {short(key)}: {exc or type(exc).__name__}") from None
    return tensors, skipped
