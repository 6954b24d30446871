"""Name -> numpy array readers for TF1 name-based checkpoints and safetensors files."""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Dict

import numpy as np

from albert_ner.weights.paddle import CheckpointFormatError

# Optimizer state and bookkeeping that TF1 pretraining checkpoints carry beside the weights.
TF1_SKIP = re.compile(r"(^|/)(adam_m|adam_v|AdamWeightDecayOptimizer[^/]*|global_step|beta1_power|beta2_power)$")

SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "i1", "U8": "u1", "BOOL": "?"}


def resolve_tf1_prefix(path: str | Path) -> str:
    """A checkpoint prefix from a prefix, an `.index` file, or a directory (via `checkpoint` or one *.index)."""
    path = Path(path)
    if path.is_dir():
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(path))
        if latest:
            return latest
        indexes = sorted(path.glob("*.index"))
        if len(indexes) != 1:
            raise CheckpointFormatError(f"{path}: expected one *.index checkpoint, found {len(indexes)}")
        return str(indexes[0])[: -len(".index")]
    text = str(path)
    return text[: -len(".index")] if text.endswith(".index") else text


def read_tf1_checkpoint(path: str | Path) -> Dict[str, np.ndarray]:
    """Every weight of a TF1 name-based checkpoint (optimizer slots and step counters left out)."""
    import tensorflow as tf

    prefix = resolve_tf1_prefix(path)
    try:
        names = [n for n, _ in tf.train.list_variables(prefix)]
        return {n.replace("module/", "", 1) if n.startswith("module/") else n: tf.train.load_variable(prefix, n)
                for n in names if not TF1_SKIP.search(n)}
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointFormatError(f"{prefix}: cannot read TF checkpoint: {exc}") from None


def read_safetensors(path: str | Path) -> Dict[str, np.ndarray]:
    """A `.safetensors` file with numpy alone: u64 header size, JSON header, raw little-endian data."""
    path = Path(path)
    buf = path.read_bytes()
    try:
        (n,) = struct.unpack_from("<Q", buf, 0)
        header = json.loads(buf[8:8 + n].decode("utf-8"))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = np.dtype(SAFETENSORS_DTYPES[info["dtype"]])
            begin, end = info["data_offsets"]
            shape = [int(d) for d in info["shape"]]
            if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or base + end > len(buf):
                raise ValueError(f"tensor {name!r}: offsets {begin}..{end} do not fit shape {shape} {info['dtype']}")
            out[name] = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)),
                                      offset=base + begin).reshape(shape).copy()
        return out
    except (struct.error, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointFormatError(f"{path}: not a safetensors file: {exc}") from None
