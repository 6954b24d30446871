"""Name -> numpy array readers for TF1 name-based checkpoints and safetensors files.

Both readers check what the file declares against what it holds, so a truncated or damaged file
is an error naming the file, the tensor and the byte counts, never a crash or silently wrong weights.
"""
from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from albert_ner.weights.paddle import CheckpointFormatError

# Optimizer state and bookkeeping that TF1 pretraining checkpoints carry beside the weights:
# BERT/ALBERT's adam_m/adam_v (AdamWeightDecay, LAMB), tf.train.AdamOptimizer's Adam/Adam_1 slots.
TF1_SKIP = re.compile(r"(^|/)(adam_m|adam_v|Adam|Adam_1|AdamWeightDecayOptimizer[^/]*|global_step"
                      r"|beta1_power|beta2_power)$")
TF1_SKIPPED_KIND = "optimizer/bookkeeping"  # how the load report names what TF1_SKIP leaves out

SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "i1", "U8": "u1", "BOOL": "?"}
SAFETENSORS_WIDENED = {"BF16": 2}  # stored as 2-byte bfloat16, returned as float32 (numpy has no bfloat16)
SAFETENSORS_MAX_HEADER = 100_000_000  # bytes; the format's own limit on the JSON header


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


def _strip_hub_scope(name: str) -> str:
    return name[len("module/"):] if name.startswith("module/") else name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _declared_bytes(shape: List[int], dtype: Any) -> int | None:
    """Bytes a tensor of `shape` and TF `dtype` takes in the data file; None for strings (variable size)."""
    if dtype.name in ("string", "resource", "variant"):
        return None
    return math.prod(int(d) for d in shape) * dtype.size


def _tf1_read_error(prefix: str, name: str, shapes: Dict[str, List[int]], dtypes: Dict[str, Any],
                    exc: BaseException) -> CheckpointFormatError:
    """Why tensor `name` could not be read: its declared size against the data files' size."""
    data_files = sorted(Path(prefix).parent.glob(Path(prefix).name + ".data-*"))
    held = sum(p.stat().st_size for p in data_files)
    own = _declared_bytes(shapes[name], dtypes[name])
    sizes = [_declared_bytes(shapes[n], dtypes[n]) for n in shapes]
    total = sum(b for b in sizes if b is not None)
    uncounted = " (strings not counted)" if None in sizes else ""
    what = (f"{dtypes[name].name} {list(shapes[name])}, " + (f"{own} bytes" if own is not None else "variable size"))
    files = ", ".join(p.name for p in data_files) or "no .data-* file"
    if not data_files:
        verdict = "the data file is missing"
    elif held < total:
        verdict = "the data file is truncated"
    else:
        verdict = "the data file is damaged or belongs to another checkpoint"
    return CheckpointFormatError(
        f"{prefix}: tensor {name} ({what}) cannot be read: the index declares {total} bytes of tensors"
        f"{uncounted}, the data ({files}) has {held} bytes; {verdict} ({_first_line(exc)})")


def read_tf1_checkpoint_entries(path: str | Path) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """(weights, skipped names) of a TF1 name-based checkpoint; optimizer slots and counters are never read.

    Errors name the checkpoint, and for a tensor that cannot be read, the tensor and the byte counts.
    """
    import tensorflow as tf

    prefix = resolve_tf1_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError, IndexError) as exc:
        index = Path(prefix + ".index")
        where = index if index.is_file() else prefix
        raise CheckpointFormatError(f"{where}: cannot read TF checkpoint: {_first_line(exc)}") from None
    tensors: Dict[str, np.ndarray] = {}
    skipped: List[str] = []
    for name in sorted(shapes):
        if TF1_SKIP.search(name):
            skipped.append(_strip_hub_scope(name))
            continue
        try:
            value = reader.get_tensor(name)
        except (tf.errors.OpError, ValueError, IndexError, struct.error) as exc:
            raise _tf1_read_error(prefix, name, shapes, dtypes, exc) from None
        tensors[_strip_hub_scope(name)] = np.asarray(value)
    return tensors, skipped


def read_tf1_checkpoint(path: str | Path) -> Dict[str, np.ndarray]:
    """Every weight of a TF1 name-based checkpoint (optimizer slots and step counters left out)."""
    return read_tf1_checkpoint_entries(path)[0]


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return value


def _safetensors_entries(header: Any, data_len: int) -> List[Tuple[str, str, List[int], int, int]]:
    """(name, dtype code, shape, begin, end) per tensor, checked against the format's rules."""
    if not isinstance(header, dict):
        raise ValueError(f"header is a JSON {type(header).__name__}, not an object")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise ValueError(f"tensor {name!r}: entry needs dtype, shape and data_offsets, got {info!r}")
        code = info["dtype"]
        shape = info["shape"]
        offsets = info["data_offsets"]
        if not isinstance(shape, list) or any(_int(d, f"tensor {name!r}: shape {shape}") < 0 for d in shape):
            raise ValueError(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise ValueError(f"tensor {name!r}: data_offsets must be [begin, end], got {offsets!r}")
        begin, end = (_int(o, f"tensor {name!r}: data_offsets {offsets}") for o in offsets)
        if not 0 <= begin <= end <= data_len:
            raise ValueError(f"tensor {name!r}: data_offsets {begin}..{end} are not within the {data_len} "
                             "bytes of data after the header")
        if code in SAFETENSORS_DTYPES:
            itemsize = np.dtype(SAFETENSORS_DTYPES[code]).itemsize
        elif code in SAFETENSORS_WIDENED:
            itemsize = SAFETENSORS_WIDENED[code]
        else:
            raise CheckpointFormatError(f"tensor {name!r} has dtype {code!r}, which is not supported (supported: "
                                        f"{', '.join([*SAFETENSORS_DTYPES, *SAFETENSORS_WIDENED])})")
        need = math.prod(shape) * itemsize
        if end - begin != need:
            raise ValueError(f"tensor {name!r}: data_offsets {begin}..{end} hold {end - begin} bytes, but shape "
                             f"{shape} {code} needs {need}")
        entries.append((name, code, shape, begin, end))
    covered, previous = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < covered:
            raise ValueError(f"tensor {name!r}: data_offsets {begin}..{end} overlap tensor {previous!r}, "
                             f"which ends at {covered}")
        if begin > covered:
            raise ValueError(f"data bytes {covered}..{begin} belong to no tensor (before tensor {name!r})")
        covered, previous = end, name
    if covered != data_len:
        raise ValueError(f"data bytes {covered}..{data_len} belong to no tensor")
    return entries


def read_safetensors(path: str | Path) -> Dict[str, np.ndarray]:
    """A `.safetensors` file with numpy alone: u64 header size, JSON header, raw little-endian data.

    Offsets are checked (inside the data, no overlaps, no gaps, sizes matching shapes); BF16 comes
    back as float32.
    """
    path = Path(path)
    buf = path.read_bytes()
    try:
        if len(buf) < 8:
            raise ValueError(f"{len(buf)} bytes, shorter than the 8-byte header size")
        (n,) = struct.unpack_from("<Q", buf, 0)
        if n > min(len(buf) - 8, SAFETENSORS_MAX_HEADER):
            raise ValueError(f"header size {n} does not fit (file of {len(buf)} bytes, "
                             f"at most {SAFETENSORS_MAX_HEADER} allowed)")
        header = json.loads(buf[8:8 + n].decode("utf-8"))
        base = 8 + n
        entries = _safetensors_entries(header, len(buf) - base)
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise CheckpointFormatError(f"{path}: not a valid safetensors file: {exc}") from None
    out = {}
    for name, code, shape, begin, _ in entries:
        count = math.prod(shape)
        if code == "BF16":  # the high half of a float32: widen through uint16 -> uint32 << 16
            bits = np.frombuffer(buf, dtype="<u2", count=count, offset=base + begin).astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(shape)
        else:
            out[name] = np.frombuffer(buf, dtype=np.dtype(SAFETENSORS_DTYPES[code]), count=count,
                                      offset=base + begin).reshape(shape).copy()
    return out
