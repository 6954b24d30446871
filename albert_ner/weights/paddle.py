"""PaddlePaddle checkpoints read with numpy alone: static-graph `params/` files and `.pdparams`.

Static-graph ERNIE 1.0 stores one LoDTensor file per variable:
  uint32 LoDTensor version (0) | uint64 lod_level | per level: uint64 nbytes + offsets |
  uint32 Tensor version (0) | int32 desc_size | VarType.TensorDesc protobuf | raw C-order data.
`.pdparams` (PaddleNLP) is a pickle of a dict of numpy arrays; it is unpickled through an
allow-list so that a hostile file cannot run code.
"""
from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

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


# (module, name) pairs a numpy-array pickle needs; nothing else is ever imported.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles carry array bytes as encode(str, "latin1")
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_pdparams(path: str | Path) -> Dict[str, np.ndarray]:
    """A `.pdparams` state dict as numpy arrays; anything but arrays and plain containers is refused."""
    path = Path(path)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise CheckpointFormatError(f"{path}: not a safe .pdparams state dict: {exc}") from None
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    # Paddle adds a name table ("StructuredToParameterName@@") beside the arrays; keep arrays only.
    return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
