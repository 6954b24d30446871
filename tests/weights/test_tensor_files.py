"""TF1 checkpoints written with exact TF1 names, and safetensors files in their byte layout."""
import json
import struct

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.weights.paddle import CheckpointFormatError
from albert_ner.weights.tensor_files import read_safetensors, read_tf1_checkpoint


def write_tf1_checkpoint(prefix, tensors):
    """A V2 checkpoint with arbitrary (TF1-style) names, plus the `checkpoint` index file."""
    names = list(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    (prefix.parent / "checkpoint").write_text(f'model_checkpoint_path: "{prefix.name}"\n')


def test_tf1_checkpoint_names_and_slots(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "bert/embeddings/word_embeddings": rng.normal(size=(30, 8)).astype(np.float32),
        "bert/embeddings/word_embeddings_2": rng.normal(size=(8, 16)).astype(np.float32),
        "bert/encoder/layer_shared/attention/self/query/kernel": rng.normal(size=(16, 16)).astype(np.float32),
        "bert/encoder/layer_shared/attention/self/query/kernel/adam_m": np.zeros((16, 16), np.float32),
        "bert/encoder/layer_shared/attention/self/query/kernel/adam_v": np.zeros((16, 16), np.float32),
        "global_step": np.array(7, np.int64),
    }
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", tensors)
    for source in (tmp_path, tmp_path / "albert_model.ckpt", tmp_path / "albert_model.ckpt.index"):
        loaded = read_tf1_checkpoint(source)
        assert sorted(loaded) == sorted(n for n in tensors if "adam" not in n and n != "global_step")
        np.testing.assert_array_equal(loaded["bert/embeddings/word_embeddings_2"],
                                      tensors["bert/embeddings/word_embeddings_2"])
    with pytest.raises(CheckpointFormatError, match="cannot read TF checkpoint"):
        read_tf1_checkpoint(tmp_path / "missing.ckpt")


def safetensors_bytes(tensors):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    codes = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64"}
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": codes[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def test_safetensors_round_trip_and_corruption(tmp_path):
    tensors = {"albert.embeddings.word_embeddings.weight": np.arange(12, dtype=np.float32).reshape(4, 3),
               "albert.pooler.bias": np.ones(3, np.float16),
               "albert.embeddings.position_ids": np.arange(5, dtype=np.int64)[None, :]}
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(tensors))
    loaded = read_safetensors(path)
    assert loaded.keys() == tensors.keys()
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == arr.dtype
    path.write_bytes(safetensors_bytes(tensors)[:-8])
    with pytest.raises(CheckpointFormatError, match=r"model.safetensors: not a safetensors file: tensor"):
        read_safetensors(path)
