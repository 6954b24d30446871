"""Write a `.safetensors` file with numpy alone (the reader is tensor_files.read_safetensors).

Layout: u64 little-endian header size N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__"},
padded with spaces to a multiple of 8 so every tensor starts aligned, then the tensors' little-endian C-order
bytes back to back (no gaps: offsets are relative to the end of the header).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

# numpy dtype -> safetensors dtype code (the ones this project writes and reads)
DTYPE_CODES = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
               np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8",
               np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The file's bytes for `tensors` (written in name order) and optional string metadata."""
    header: Dict[str, object] = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        array = np.asarray(tensors[name])
        code = DTYPE_CODES.get(array.dtype.newbyteorder("="))
        if code is None:
            raise ValueError(f"tensor {name!r}: dtype {array.dtype} cannot be written to safetensors "
                             f"(supported: {', '.join(str(d) for d in DTYPE_CODES)})")
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": [int(d) for d in array.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"safetensors metadata must map strings to strings; not so for {bad!r}")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write `tensors` to `path` (through a temporary file renamed into place); returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(safetensors_bytes(tensors, metadata))
    os.replace(tmp, path)
    return path
