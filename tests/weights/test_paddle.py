"""Paddle formats in their real byte layout: LoDTensor parameter files and .pdparams pickles."""
import os
import pickle
import struct
from collections import OrderedDict

import numpy as np
import pytest

from albert_ner.weights.paddle import (CheckpointFormatError, load_pdparams, parse_tensor_desc, read_lod_tensor,
                                       read_params_dir)

FP32, INT64 = 5, 3


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def lod_tensor_bytes(array: np.ndarray, dtype_id: int = FP32, packed: bool = False) -> bytes:
    """What paddle.static.io.save_vars writes for one parameter (lod_level 0)."""
    if packed:
        dims = b"".join(_varint(d) for d in array.shape)
        desc = b"\x08" + _varint(dtype_id) + b"\x12" + _varint(len(dims)) + dims
    else:
        desc = b"\x08" + _varint(dtype_id) + b"".join(b"\x10" + _varint(d) for d in array.shape)
    header = struct.pack("<IQIi", 0, 0, 0, len(desc))
    return header + desc + np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def test_file_sizes_match_paddle_output():
    # paddle 2.6.2 save_vars wrote 86, 50 and 32 bytes for these shapes (float32)
    sizes = [len(lod_tensor_bytes(np.zeros(s, np.float32))) for s in ((5, 3), (3, 2), (2,))]
    assert sizes == [86, 50, 32]
    assert lod_tensor_bytes(np.zeros((3, 2), np.float32))[20:26] == bytes.fromhex("080510031002")


@pytest.mark.parametrize("packed", [False, True])
def test_params_dir_round_trip(tmp_path, packed):
    rng = np.random.default_rng(0)
    params = {"word_embedding": rng.normal(size=(18, 4)).astype(np.float32),
              "encoder_layer_0_ffn_fc_0.w_0": rng.normal(size=(4, 16)).astype(np.float32),
              "encoder_layer_0_ffn_fc_0.b_0": rng.normal(size=(16,)).astype(np.float32)}
    d = tmp_path / "params"
    d.mkdir()
    for name, arr in params.items():
        (d / name).write_bytes(lod_tensor_bytes(arr, packed=packed))
    loaded = read_params_dir(d)
    assert loaded.keys() == params.keys()
    for name in params:
        np.testing.assert_array_equal(loaded[name], params[name])
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    (d / "ids").write_bytes(lod_tensor_bytes(ids, INT64))
    np.testing.assert_array_equal(read_lod_tensor(d / "ids"), ids)


def test_truncated_or_foreign_files_name_the_file(tmp_path):
    good = lod_tensor_bytes(np.ones((3, 2), np.float32))
    (tmp_path / "short").write_bytes(good[:-4])
    with pytest.raises(CheckpointFormatError, match=r"short: not a Paddle LoDTensor file: 20 data bytes"):
        read_lod_tensor(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"hello world, this is not a tensor")
    with pytest.raises(CheckpointFormatError, match="text: not a Paddle LoDTensor file"):
        read_lod_tensor(tmp_path / "text")
    assert parse_tensor_desc(bytes.fromhex("080510031002")) == (FP32, [3, 2])


def test_pdparams_state_dict_loads_arrays(tmp_path):
    state = OrderedDict([("ernie.embeddings.word_embeddings.weight", np.arange(6, dtype=np.float32).reshape(3, 2)),
                         ("ernie.encoder.layers.0.linear1.bias", np.ones(4, np.float16)),
                         ("StructuredToParameterName@@", {"a": "linear_0.w_0"})])
    path = tmp_path / "model_state.pdparams"
    for protocol in (2, 4):
        path.write_bytes(pickle.dumps(state, protocol=protocol))
        loaded = load_pdparams(path)
        assert list(loaded) == list(state)[:2]
        np.testing.assert_array_equal(loaded["ernie.embeddings.word_embeddings.weight"],
                                      state["ernie.embeddings.word_embeddings.weight"])
        assert loaded["ernie.encoder.layers.0.linear1.bias"].dtype == np.float16


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"w": np.zeros(2, np.float32), "x": _Hostile(marker)}))
    with pytest.raises(CheckpointFormatError, match=r"evil.pdparams: not a safe .pdparams state dict: "
                                                    r"refusing to load (posix|os|nt)\.system"):
        load_pdparams(path)
    assert not marker.exists()
