"""PaddlePaddle checkpoints read with numpy alone: static-graph `params/` files and `.pdparams`.

Static-graph ERNIE 1.0 stores one LoDTensor file per variable:
  uint32 LoDTensor version (0) | uint64 lod_level | per level: uint64 nbytes + offsets |
  uint32 Tensor version (0) | int32 desc_size | VarType.TensorDesc protobuf | raw C-order data.
`.pdparams` (PaddleNLP) is a pickle of a dict of numpy arrays; it is unpickled through
safe_pickle's allow-list of stand-ins so that a hostile file can neither run code nor claim memory.
"""
from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from albert_ner.weights.safe_pickle import ArrayState, Budget, UnsafePickleError, numpy_standins, safe_load, short

# VarType.Type enum values (paddle/fluid/framework/framework.proto) -> numpy dtype.
PADDLE_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
                 6: np.float64, 20: np.uint8, 21: np.int8}


class CheckpointFormatError(ValueError):
    """A checkpoint file is not what its format says; the message names the file."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def parse_tensor_desc(desc: bytes) -> Tuple[int, List[int]]:
    """(data_type enum, dims) from a serialized VarType.TensorDesc (packed or unpacked dims)."""
    dtype, dims, pos = None, [], 0
    while pos < len(desc):
        key, pos = _varint(desc, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(desc, pos)
        elif field == 2 and wire == 0:
            d, pos = _varint(desc, pos)
            dims.append(d - (1 << 64) if d >= 1 << 63 else d)
        elif field == 2 and wire == 2:
            n, pos = _varint(desc, pos)
            end = pos + n
            while pos < end:
                d, pos = _varint(desc, pos)
                dims.append(d - (1 << 64) if d >= 1 << 63 else d)
        else:
            raise ValueError(f"unexpected field {field} (wire type {wire}) in TensorDesc")
    if dtype is None:
        raise ValueError("TensorDesc has no data_type")
    return dtype, dims


def read_lod_tensor(path: str | Path) -> np.ndarray:
    """One static-graph parameter file as a numpy array."""
    path = Path(path)
    buf = path.read_bytes()
    try:
        pos = 0
        (lod_version,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if lod_version != 0:
            raise ValueError(f"LoDTensor version {lod_version}, expected 0")
        (lod_level,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        for _ in range(lod_level):
            (nbytes,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + nbytes
        (tensor_version,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if tensor_version != 0:
            raise ValueError(f"Tensor version {tensor_version}, expected 0")
        (desc_size,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        dtype_id, dims = parse_tensor_desc(buf[pos:pos + desc_size])
        pos += desc_size
        if dtype_id not in PADDLE_DTYPES:
            raise ValueError(f"unsupported data type {dtype_id}")
        dtype = np.dtype(PADDLE_DTYPES[dtype_id]).newbyteorder("<")
        expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        if len(buf) - pos != expected:
            raise ValueError(f"{len(buf) - pos} data bytes for shape {dims} of {dtype.name} ({expected} expected)")
        return np.frombuffer(buf, dtype=dtype, offset=pos).reshape(dims).copy()
    except (struct.error, ValueError) as exc:
        raise CheckpointFormatError(f"{path}: not a Paddle LoDTensor file: {exc}") from None


def read_params_dir(directory: str | Path) -> Dict[str, np.ndarray]:
    """Every parameter file of a static-graph `params/` directory, by file (= variable) name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointFormatError(f"{directory}: not a directory")
    return {p.name: read_lod_tensor(p) for p in sorted(directory.iterdir()) if p.is_file()}


def read_pdparams(path: str | Path) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """A `.pdparams` state dict: (its arrays by name, the names of entries that are not arrays).

    The pickle goes through safe_pickle's numpy stand-ins: no code runs, and the arrays together may
    not hold more bytes than the file.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointFormatError(f"{path}: empty file, not a .pdparams state dict")
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            obj = safe_load(data, numpy_standins(Budget(size, size)))
    except UnsafePickleError as exc:
        raise CheckpointFormatError(f"{path}: not a safe .pdparams state dict: {exc}") from None
    except (MemoryError, OverflowError, RecursionError) as exc:
        raise CheckpointFormatError(f"{path}: {type(exc).__name__} while reading the .pdparams state dict") from None
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    arrays: Dict[str, np.ndarray] = {}
    skipped: List[str] = []  # e.g. Paddle's name table "StructuredToParameterName@@"
    for key, value in obj.items():
        if not (isinstance(key, str) and isinstance(value, ArrayState)):
            skipped.append(key if isinstance(key, str) else f"<{type(key).__name__} key>")
            continue
        try:
            arrays[key] = value.result()
        except (UnsafePickleError, MemoryError) as exc:
            raise CheckpointFormatError(f"{path}: array {short(key)}: {exc or type(exc).__name__}") from None
    return arrays, skipped


def load_pdparams(path: str | Path) -> Dict[str, np.ndarray]:
    """A `.pdparams` state dict as numpy arrays; anything but arrays and plain containers is refused."""
    return read_pdparams(path)[0]
