"""Stored pretraining chunks: the shard file format, the manifest, and a streaming tf.data reader.

A shard is an uncompressed .npz of four flat arrays: `token_ids` int32 [N], `word_starts` int8 [N],
`sentence_starts` int8 [N] (all chunks back to back) and `offsets` int64 [chunks + 1] (chunk i is
[offsets[i], offsets[i+1])). The manifest (manifest.json in the same folder) lists each split's shards
in order with their example counts and sha256; a chunk's `example_index` is its position in its split.

Reading is shuffled in two deterministic steps, both a pure function of (seed, epoch): the shard order is
permuted, then consecutive shards are read in blocks of at least `cycle_length` shards and `shuffle_buffer`
chunks, each block's chunks in a random order (so each batch mixes several shards). At most three blocks
are in memory at a time (two load ahead while one is read); `.skip(n)` on the result resumes exactly
after n examples.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Sequence, Union

import numpy as np

from albert_ner.writable import fsync_directory

FORMAT = "albert-ner-pretrain-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")
ARRAYS = ("token_ids", "word_starts", "sentence_starts", "offsets")
DTYPES = {"token_ids": np.int32, "word_starts": np.int8, "sentence_starts": np.int8, "offsets": np.int64}
PathLike = Union[str, "os.PathLike[str]"]


def write_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it and rename it to `path`."""
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_directory(path.parent)


def write_shard(path: Path, token_ids: Sequence[np.ndarray], word_starts: Sequence[np.ndarray],
                sentence_starts: Sequence[np.ndarray]) -> Dict[str, Any]:
    """Write chunks (three equal-length arrays each) as one shard, atomically; returns {file, examples, tokens,
    sha256}."""
    lengths = np.array([len(t) for t in token_ids], dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    def flat(parts: Sequence[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if len(parts) else np.zeros(0, dtype)

    arrays = {"token_ids": flat(token_ids, np.int32), "word_starts": flat(word_starts, np.int8),
              "sentence_starts": flat(sentence_starts, np.int8), "offsets": offsets}
    for name in ("word_starts", "sentence_starts"):
        if len(arrays[name]) != len(arrays["token_ids"]):
            raise ValueError(f"{path}: {name} has {len(arrays[name])} entries for {len(arrays['token_ids'])} tokens")
    write_atomically(path, lambda f: np.savez(f, **arrays))
    return {"file": path.name, "examples": int(len(lengths)), "tokens": int(offsets[-1]), "sha256": sha256_file(path)}


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_shard(path: PathLike) -> Dict[str, np.ndarray]:
    """The four arrays of one shard, checked: dtypes, equal lengths, offsets from 0 rising to the token count."""
    source = os.fspath(path)
    try:
        with np.load(source, allow_pickle=False) as data:
            missing = [name for name in ARRAYS if name not in data.files]
            if missing:
                raise ValueError(f"{source}: not a pretraining shard (no member {', '.join(missing)})")
            arrays = {name: data[name] for name in ARRAYS}
    except (OSError, ValueError, EOFError) as exc:
        if str(exc).startswith(source):
            raise
        raise ValueError(f"{source}: cannot be read as a pretraining shard ({exc})") from None
    for name, dtype in DTYPES.items():
        if arrays[name].dtype != dtype or arrays[name].ndim != 1:
            raise ValueError(f"{source}: member {name} is {arrays[name].dtype} {list(arrays[name].shape)}, "
                             f"expected 1-D {np.dtype(dtype).name}")
    n = len(arrays["token_ids"])
    for name in ("word_starts", "sentence_starts"):
        if len(arrays[name]) != n:
            raise ValueError(f"{source}: member {name} has {len(arrays[name])} entries for {n} token_ids")
    off = arrays["offsets"]
    if len(off) == 0 or off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 0):
        raise ValueError(f"{source}: member offsets does not rise from 0 to the {n} token_ids")
    return arrays


def load_manifest(manifest_dir: PathLike, split: str = "train") -> Dict[str, Any]:
    """The manifest of a preprocessed folder, checked for format and `split`; errors name the file."""
    path = Path(manifest_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no manifest (is {manifest_dir} a finished `preprocess` output?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pretraining shard manifest (format is not {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')!r}; this version reads "
                         f"{FORMAT_VERSION} (preprocess the corpus again)")
    if split not in manifest.get("splits", {}):
        raise ValueError(f"{path}: no split {split!r} (has {', '.join(manifest.get('splits', {})) or 'none'})")
    return manifest


def count_examples(manifest_dir: PathLike, split: str = "train") -> int:
    """How many chunks `split` holds (from the manifest; no shard is read)."""
    return int(load_manifest(manifest_dir, split)["splits"][split]["examples"])


def _mix(seed: int, epoch: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, *more])


def _blocks(counts: Sequence[int], shuffle_buffer: int, cycle_length: int) -> List[List[int]]:
    """Consecutive shards grouped into blocks of at least `cycle_length` shards and `shuffle_buffer` chunks (the
    last block takes what is left)."""
    blocks: List[List[int]] = []
    block: List[int] = []
    size = 0
    for k, count in enumerate(counts):
        block.append(k)
        size += count
        if len(block) >= cycle_length and size >= shuffle_buffer:
            blocks.append(block)
            block, size = [], 0
    if block:
        blocks.append(block)
    return blocks


def read_examples(manifest_dir: PathLike, split: str = "train", shuffle_buffer: int = 10_000, seed: int = 0,
                  epoch: int = 0, cycle_length: int = 4):
    """tf.data.Dataset of {token_ids int32 [L], word_starts int8 [L], sentence_starts int8 [L], example_index
    int64}, one element per chunk of `split`, in an order fixed by (seed, epoch) (see the module docstring).

    shuffle_buffer 0: no shuffling: every chunk in stored order (e.g. for evaluation)."""
    import tensorflow as tf

    manifest = load_manifest(manifest_dir, split)
    if shuffle_buffer < 0 or cycle_length < 1:
        raise ValueError(f"shuffle_buffer must be >= 0 and cycle_length >= 1, got {shuffle_buffer}, {cycle_length}")
    folder = Path(manifest_dir)
    shards = [s for s in manifest["splits"][split]["shards"] if s["examples"] > 0]
    for shard in shards:
        if not (folder / shard["file"]).is_file():
            raise FileNotFoundError(f"{folder / shard['file']}: shard listed in {folder / MANIFEST} is missing")
    shuffle = shuffle_buffer > 0
    if shuffle:
        shards = [shards[i] for i in _mix(seed, epoch).permutation(len(shards))]
        blocks = _blocks([s["examples"] for s in shards], shuffle_buffer, cycle_length)
    else:
        blocks = [[k] for k in range(len(shards))]

    def load_block(number: np.int64):
        """A block's chunks back to back, and each chunk's start, end and example_index in reading order."""
        parts, starts, ends, indices, base = [], [], [], [], 0
        for k in blocks[int(number)]:
            path = folder / shards[k]["file"]
            arrays = load_shard(path)
            off = arrays["offsets"]
            if len(off) - 1 != shards[k]["examples"]:
                raise ValueError(f"{path}: holds {len(off) - 1} chunks, {folder / MANIFEST} says "
                                 f"{shards[k]['examples']}")
            parts.append(arrays)
            starts.append(off[:-1] + base)
            ends.append(off[1:] + base)
            indices.append(np.arange(len(off) - 1, dtype=np.int64) + int(shards[k]["first_index"]))
            base += int(off[-1])
        order = np.concatenate(indices)
        perm = _mix(seed, epoch, 1, int(number)).permutation(len(order)) if shuffle else np.arange(len(order))
        return (np.concatenate([a["token_ids"] for a in parts]), np.concatenate([a["word_starts"] for a in parts]),
                np.concatenate([a["sentence_starts"] for a in parts]), np.concatenate(starts)[perm],
                np.concatenate(ends)[perm], order[perm])

    def loaded(number):
        values = tf.numpy_function(load_block, [number], [tf.int32, tf.int8, tf.int8, tf.int64, tf.int64, tf.int64])
        for value in values:
            value.set_shape([None])
        return tuple(values)

    def chunks(tok, ws, ss, starts, ends, index):
        return tf.data.Dataset.from_tensor_slices((starts, ends, index)).map(
            lambda a, b, i: {"token_ids": tok[a:b], "word_starts": ws[a:b], "sentence_starts": ss[a:b],
                             "example_index": i})

    ds = tf.data.Dataset.range(len(blocks)).map(loaded, num_parallel_calls=2, deterministic=True)
    return ds.flat_map(chunks)


def verify_shards(manifest_dir: PathLike, manifest: Dict[str, Any]) -> List[str]:
    """Problems with the shards `manifest` lists (missing, or not the sha256 it records); empty if all are intact."""
    folder = Path(manifest_dir)
    problems: List[str] = []
    for split, info in manifest.get("splits", {}).items():
        for shard in info.get("shards", []):
            path = folder / shard["file"]
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != shard["sha256"]:
                problems.append(f"{path}: sha256 differs from the manifest's")
    return problems
