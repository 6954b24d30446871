"""Paddle formats in their real byte layout: LoDTensor parameter files and .pdparams pickles."""
import codecs
import os
import pickle
import struct
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from albert_ner.weights.paddle import (CheckpointFormatError, load_pdparams, parse_tensor_desc, read_lod_tensor,
                                       read_params_dir, read_pdparams)

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


# ---- .pdparams pickles: every protocol Paddle and numpy write, and hostile ones -----------------

REPO = Path(__file__).resolve().parents[2]


def _pdparams(tmp_path, payload: bytes, name: str = "model_state.pdparams") -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _load_capped(path: Path) -> subprocess.CompletedProcess:
    """load_pdparams(path) in a child limited to 1 GiB of address space and 120 s."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from albert_ner.weights.paddle import CheckpointFormatError, load_pdparams\n"
            "try:\n    load_pdparams(sys.argv[1])\nexcept CheckpointFormatError as exc:\n    print('REFUSED', exc)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pdparams_every_protocol_and_layout(tmp_path, protocol):
    rng = np.random.default_rng(1)
    state = {"f32": rng.normal(size=(3, 4)).astype(np.float32), "f16": rng.normal(size=5).astype(np.float16),
             "f64_fortran": np.asfortranarray(rng.normal(size=(2, 3))), "big_endian": np.arange(4, dtype=">i4"),
             "i64": np.arange(6, dtype=np.int64).reshape(2, 3), "bools": np.array([True, False]),
             "empty": np.zeros((0, 3), np.float32), "u8": np.arange(7, dtype=np.uint8),
             "step": np.float32(2.5), "StructuredToParameterName@@": {"f32": "linear_0.w_0"}}
    path = _pdparams(tmp_path, pickle.dumps(state, protocol=protocol))
    arrays, skipped = read_pdparams(path)
    assert skipped == ["step", "StructuredToParameterName@@"]
    assert list(arrays) == [k for k, v in state.items() if isinstance(v, np.ndarray)]
    for name, array in arrays.items():
        assert array.dtype == state[name].dtype.newbyteorder("=") and array.flags.writeable
        np.testing.assert_array_equal(array, state[name])


def _nested_codecs_pickle(levels: int = 40) -> bytes:
    """{'w': encode(encode(...encode(b'a', 'hex')..., 'hex'), 'hex')}, built opcode by opcode; each level doubles."""
    head = b"\x80\x03}X\x01\x00\x00\x00w"  # PROTO 3, EMPTY_DICT, 'w'
    callables = b"c_codecs\nencode\nq\x00" + b"X\x03\x00\x00\x00hexq\x010" + b"h\x00" * (levels - 1)
    calls = b"C\x01a" + b"h\x01\x86R" * levels  # b'a', then per level: 'hex', TUPLE2, REDUCE
    return head + callables + calls + b"s."


def test_nested_codecs_encode_is_refused_quickly(tmp_path):
    expected = b"a"
    for _ in range(3):
        expected = codecs.encode(expected, "hex")
    assert pickle.loads(_nested_codecs_pickle(3)) == {"w": expected}  # the construction is a real doubling pickle
    payload = _nested_codecs_pickle(40)
    assert len(payload) < 1024
    result = _load_capped(_pdparams(tmp_path, payload, "doubling.pdparams"))
    assert "REFUSED" in result.stdout, result.stderr[-2000:]
    assert ("doubling.pdparams: not a safe .pdparams state dict: refusing _codecs.encode(bytes, 'hex')"
            in result.stdout)


def test_array_shape_beyond_the_file_is_refused_without_allocating(tmp_path):
    # {'w': _reconstruct(ndarray, (2**31-1, 2**31-1), b'b')}: numpy itself would try to allocate 4 EiB
    payload = (b"\x80\x03}X\x01\x00\x00\x00wcnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
               + b"J" + struct.pack("<i", 2**31 - 1) + b"J" + struct.pack("<i", 2**31 - 1) + b"\x86C\x01b\x87Rs.")
    assert len(payload) <= 96
    path = _pdparams(tmp_path, payload, "huge.pdparams")
    with pytest.raises(CheckpointFormatError, match=r"huge.pdparams: not a safe .pdparams state dict: numpy array of "
                                                    r"shape \[2147483647, 2147483647\] claims 4611686014132420609 "
                                                    rf"bytes, more than the whole file \({len(payload)} bytes\)"):
        load_pdparams(path)


class _RawArray:
    """Pickles as numpy does (_reconstruct + BUILD state), with any state."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return np.zeros(1).__reduce__()[0], (np.ndarray, (0,), b"b"), self.state


@pytest.mark.parametrize("shape, message", [
    ((3,), r"float32 array: 8 data bytes, but its shape and dtype need 12"),
    ((10**6,), r"float32 array of shape \[1000000\] claims 4000000 bytes, more than the whole file")])
def test_array_claiming_more_than_its_data_is_refused(tmp_path, shape, message):
    path = _pdparams(tmp_path, pickle.dumps({"w": _RawArray((1, shape, np.dtype("f4"), False, b"\0" * 8))}))
    with pytest.raises(CheckpointFormatError, match="model_state.pdparams: not a safe .pdparams state dict: "
                                                    + message):
        load_pdparams(path)


def test_data_reused_by_many_arrays_is_refused(tmp_path):
    shared = np.arange(1024, dtype=np.float32).tobytes()  # pickled once, then fetched from the memo
    state = {f"w{i}": _RawArray((1, (1024,), np.dtype("f4"), False, shared)) for i in range(64)}
    payload = pickle.dumps(state, protocol=4)
    assert len(payload) < 2 * len(shared)
    path = _pdparams(tmp_path, payload)
    with pytest.raises(CheckpointFormatError, match=r"float32 array: the arrays built so far would exceed the "
                                                    rf"{len(payload)}-byte file's budget"):
        load_pdparams(path)
    assert len(load_pdparams(_pdparams(tmp_path, pickle.dumps(dict(list(state.items())[:1]))))) == 1


def test_length_claim_beyond_the_file_is_refused(tmp_path):
    path = _pdparams(tmp_path, b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc", "claim.pdparams")
    result = _load_capped(path)
    assert ("REFUSED " + f"{path}: not a safe .pdparams state dict: malformed pickle: expected 1099511627776 bytes "
            "in a bytes8, but only 3 remain") in result.stdout, result.stderr[-2000:]


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


@pytest.mark.parametrize("payload, message", [
    (lambda m: pickle.dumps({"x": _Eval(m)}), r"refusing to load builtins\.eval"),
    (lambda m: pickle.dumps({"x": _Hostile(m)}, protocol=4), r"refusing to load (posix|os|nt)\.system"),
    (lambda m: b"\x80\x02cnumpy\nload\nq\x00.", r"refusing to load numpy\.load"),
    (lambda m: b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n.", r"refusing to load torch\._utils\._rebuild_tensor_v2"),
    (lambda m: b"\x80\x02cnumpy\ndtype\n}b.", r"numpy\.dtype takes no state"),  # BUILD on a stand-in
    (lambda m: b"\x80\x02cnumpy\ndtype\n)\x81.", r"UnpicklingError: NEWOBJ class argument"),
    (lambda m: b"\x80\x03cnumpy\ndtype\nX\x01\x00\x00\x00O\x89\x88\x87R.", r"refusing numpy dtype 'O'"),
    (lambda m: b"\x80\x03c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00rot_13\x86R.",
     r"refusing _codecs\.encode\(str, 'rot_13'\)"),
])
def test_hostile_or_foreign_globals_are_refused(tmp_path, payload, message):
    marker = tmp_path / "pwned"
    path = _pdparams(tmp_path, payload(marker), "evil.pdparams")
    with pytest.raises(CheckpointFormatError, match=r"evil.pdparams: not a safe .pdparams state dict: .*" + message):
        load_pdparams(path)
    assert not marker.exists()
