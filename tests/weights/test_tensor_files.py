"""TF1 checkpoints written with exact TF1 names, and safetensors files in their byte layout."""
import json
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.weights.paddle import CheckpointFormatError
from albert_ner.weights.tensor_files import read_safetensors, read_tf1_checkpoint, read_tf1_checkpoint_entries


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
    with pytest.raises(CheckpointFormatError, match=r"model.safetensors: not a valid safetensors file: tensor "
                                                    r"'albert.embeddings.position_ids': data_offsets 54..94 are not "
                                                    r"within the 86 bytes"):
        read_safetensors(path)


def test_tf1_entries_name_the_skipped_optimizer_state(tmp_path):
    tensors = {"bert/embeddings/word_embeddings": np.ones((6, 4), np.float32),
               "bert/embeddings/word_embeddings/adam_m": np.zeros((6, 4), np.float32),
               "bert/embeddings/word_embeddings/adam_v": np.zeros((6, 4), np.float32),
               "global_step": np.array(3, np.int64)}
    write_tf1_checkpoint(tmp_path / "model.ckpt", tensors)
    weights, skipped = read_tf1_checkpoint_entries(tmp_path)
    assert list(weights) == ["bert/embeddings/word_embeddings"]
    assert skipped == ["bert/embeddings/word_embeddings/adam_m", "bert/embeddings/word_embeddings/adam_v",
                       "global_step"]


def test_truncated_tf1_data_file_names_the_tensor_and_byte_counts(tmp_path):
    """A cut-short download: the reader says which tensor and how many bytes, not `Read less bytes`."""
    tensors = {"bert/embeddings/word_embeddings": np.ones((10, 4), np.float32),  # 160 bytes, written first
               "bert/encoder/layer_0/output/dense/kernel": np.ones((4, 8), np.float32)}  # 128 bytes, last
    write_tf1_checkpoint(tmp_path / "model.ckpt", tensors)
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    assert data.stat().st_size == 288
    os.truncate(data, 280)
    for read in (read_tf1_checkpoint, read_tf1_checkpoint_entries):
        with pytest.raises(CheckpointFormatError) as info:
            read(tmp_path / "model.ckpt")
        message = str(info.value)
        assert message.startswith(f"{tmp_path / 'model.ckpt'}: tensor bert/encoder/layer_0/output/dense/kernel "
                                  "(float32 [4, 8], 128 bytes) cannot be read")
        assert "declares 288 bytes" in message and "has 280 bytes" in message and "truncated" in message
        assert "\n" not in message


def test_damaged_tf1_data_and_index_files_are_named(tmp_path):
    write_tf1_checkpoint(tmp_path / "model.ckpt", {"bert/embeddings/word_embeddings": np.ones((10, 4), np.float32)})
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[4:8] = b"\xff\xff\xff\xff"  # same size, wrong bytes: the checksum catches it
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointFormatError, match=r"tensor bert/embeddings/word_embeddings \(float32 \[10, 4\], "
                                                    r"160 bytes\) cannot be read: .* has 160 bytes; the data file "
                                                    r"is damaged .*Checksum"):
        read_tf1_checkpoint(tmp_path)
    (tmp_path / "model.ckpt.index").write_bytes(b"not a table" * 20)
    with pytest.raises(CheckpointFormatError, match=r"model\.ckpt\.index: cannot read TF checkpoint: .*sstable"):
        read_tf1_checkpoint(tmp_path / "model.ckpt")


def raw_safetensors(header, data):
    """A safetensors file from a header dict taken as is (any offsets) and raw data bytes."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def f32(*values):
    return np.array(values, "<f4").tobytes()


@pytest.mark.parametrize("header, data, message", [
    # a negative begin reads the end of the JSON header as weights
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}, "b": {"dtype": "F32", "shape": [2],
      "data_offsets": [0, 8]}}, f32(1, 2), r"tensor 'a': data_offsets -8..0 are not within the 8 bytes"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4],
      "data_offsets": [8, 24]}}, f32(1, 2, 3, 4, 5, 6), r"tensor 'b': data_offsets 8..24 overlap tensor 'a'"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2],
      "data_offsets": [16, 24]}}, f32(1, 2, 3, 4, 5, 6), r"data bytes 8..16 belong to no tensor"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, f32(1, 2, 3),
     r"data bytes 8..12 belong to no tensor"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}}, f32(1, 2),
     r"tensor 'a': data_offsets \[0.0, 8.0\] must be an integer"),
    ({"a": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}}, f32(1, 2), r"tensor 'a': shape must be"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f32(1, 2),
     r"tensor 'a': data_offsets 0..8 hold 8 bytes, but shape \[3\] F32 needs 12"),
    ({"a": {"dtype": "F32", "shape": [2]}}, f32(1, 2), r"tensor 'a': entry needs dtype, shape and data_offsets"),
    (["a", "b"], b"", r"header is a JSON list, not an object"),
], ids=["negative", "overlap", "gap", "trailing", "float-offsets", "negative-dim", "size-mismatch", "no-offsets",
        "not-object"])
def test_safetensors_bad_offsets_are_rejected(tmp_path, header, data, message):
    path = tmp_path / "model.safetensors"
    path.write_bytes(raw_safetensors(header, data))
    with pytest.raises(CheckpointFormatError, match=r"model.safetensors: not a valid safetensors file: " + message):
        read_safetensors(path)


def test_safetensors_header_size_and_unsupported_dtype(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(CheckpointFormatError, match=r"header size 4611686018427387904 does not fit"):
        read_safetensors(path)
    path.write_bytes(b"\x01\x00")
    with pytest.raises(CheckpointFormatError, match=r"2 bytes, shorter than the 8-byte header size"):
        read_safetensors(path)
    fp8 = {"scale": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}
    path.write_bytes(raw_safetensors(fp8, b"\x01\x02"))
    with pytest.raises(CheckpointFormatError, match=r"model.safetensors: tensor 'scale' has dtype 'F8_E4M3', "
                                                    r"which is not supported \(supported: F64, .*BF16\)"):
        read_safetensors(path)


def test_bf16_safetensors_load_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    weights = {"embeddings.word_embeddings.weight": (torch.randn(7, 5, generator=g) * 3).to(torch.bfloat16),
               "embeddings.LayerNorm.bias": torch.tensor([0.0, -1.5, 1e30, -2e-30, float("inf")], dtype=torch.bfloat16),
               "scale": torch.tensor(2.5, dtype=torch.bfloat16),
               "position_ids": torch.arange(4)[None, :]}
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(weights, str(path))
    loaded = read_safetensors(path)
    assert loaded.keys() == weights.keys()
    for name, tensor in weights.items():
        want = tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
        assert loaded[name].dtype == want.dtype and loaded[name].shape == want.shape
        np.testing.assert_array_equal(loaded[name], want)
