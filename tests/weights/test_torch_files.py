"""pytorch_model.bin read without torch: files written by torch.save (zip and legacy) and the transformers way,
checked against torch itself; hostile, truncated and inconsistent files are refused naming the file."""
import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from albert_ner.weights.paddle import CheckpointFormatError
from albert_ner.weights.sources import read_source
from albert_ner.weights.torch_files import LEGACY_MAGIC, LEGACY_PROTOCOL, read_torch_state_dict

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def reference(tensor):
    """What the loader has always handed on: floating tensors as float32 numpy, others as they are."""
    tensor = tensor.detach()
    return tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()


def assert_matches_torch(tensors, state):
    expected = {k: reference(v) for k, v in state.items() if hasattr(v, "is_floating_point")}
    assert list(tensors) == list(expected)
    for name, array in expected.items():
        assert tensors[name].dtype == array.dtype and tensors[name].shape == array.shape, name
        np.testing.assert_array_equal(tensors[name], array, err_msg=name)
        assert tensors[name].flags.c_contiguous and tensors[name].flags.writeable


def mixed_state(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {"dense.weight": base, "transposed": base.t(), "slice": base[1:3, 2:5], "row": base[2],
            "half": torch.randn(3, 5, generator=g).half(), "bf16": torch.randn(7, generator=g).bfloat16(),
            "double": torch.randn(2, 2, generator=g).double(), "ids": torch.arange(10).reshape(2, 5),
            "mask": torch.tensor([True, False, True]), "int8": torch.tensor([-3, 0, 7], dtype=torch.int8),
            "param": torch.nn.Parameter(torch.ones(3)), "empty": torch.zeros(0, 4),
            "expanded": torch.arange(5.0).expand(3, 5), "step": 5, "note": "text", "nested": {"epoch": 1}}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_save_files_match_torch(torch, tmp_path, zip_format):
    state = mixed_state(torch)
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    tensors, skipped = read_torch_state_dict(path)
    assert skipped == ["step", "note", "nested"]
    assert_matches_torch(tensors, state)
    source = read_source(tmp_path)
    assert source.kind == "pytorch" and source.skipped == ["step", "note", "nested"]
    assert list(source.tensors) == list(tensors)
    module_state = torch.nn.Linear(3, 2).state_dict()  # an OrderedDict that carries _metadata
    torch.save(module_state, path, _use_new_zipfile_serialization=zip_format)
    assert_matches_torch(read_torch_state_dict(path)[0], module_state)


def test_uint16_tensor_written_with_rebuild_v3(torch, tmp_path):
    state = {"u16": torch.tensor([1, 2, 60000], dtype=torch.int32).to(torch.uint16), "w": torch.ones(2)}
    torch.save(state, tmp_path / "v3.bin")
    assert b"_rebuild_tensor_v3" in zipfile.ZipFile(tmp_path / "v3.bin").read("v3/data.pkl")
    assert_matches_torch(read_torch_state_dict(tmp_path / "v3.bin")[0], state)


def rewrite_zip(src, dst, edit):
    """Copy a zip archive member by member (stored), `edit(name, data)` giving the new data or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def test_big_endian_archive(torch, tmp_path):
    state = {"f32": torch.randn(3, 4), "i64": torch.arange(5), "f16": torch.randn(3).half(),
             "bf16": torch.randn(2, 3).bfloat16()}
    torch.save(state, tmp_path / "little.bin")
    itemsize = {str(i): t.element_size() for i, t in enumerate(state.values())}  # storage keys in pickling order

    def to_big(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/data/", 1)[-1] if "/data/" in name else None
        return np.frombuffer(data, f"<u{itemsize[key]}").byteswap().tobytes() if key in itemsize else data

    rewrite_zip(tmp_path / "little.bin", tmp_path / "big.bin", to_big)
    assert_matches_torch(read_torch_state_dict(tmp_path / "big.bin")[0], torch.load(tmp_path / "big.bin"))
    assert_matches_torch(read_torch_state_dict(tmp_path / "big.bin")[0], state)


def test_hf_bert_weights_as_transformers_writes_them(torch, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=24)
    model = transformers.BertForMaskedLM(config)
    model.save_pretrained(tmp_path, safe_serialization=False)
    if not (tmp_path / "pytorch_model.bin").exists():
        # transformers 5 writes only safetensors; 4.x save_pretrained(safe_serialization=False) was torch.save of
        # a plain dict of the state dict's tensors, tied weights sharing one storage
        torch.save(dict(model.state_dict()), tmp_path / "pytorch_model.bin")
        (tmp_path / "model.safetensors").unlink()
    state = model.state_dict()
    embeddings, decoder = state["bert.embeddings.word_embeddings.weight"], state["cls.predictions.decoder.weight"]
    source = read_source(tmp_path)
    assert source.kind == "pytorch" and source.skipped == [] and embeddings.data_ptr() == decoder.data_ptr()
    assert sorted(source.tensors) == sorted(k for k in state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(source.tensors[name], reference(tensor), err_msg=name)


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


def torch_zip(path, data_pkl: bytes, members=(), root="archive"):
    """A zip laid out as torch.save lays it out, with any data.pkl and storage members."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", data_pkl)
        z.writestr(f"{root}/byteorder", "little")
        for key, data in dict(members).items():
            z.writestr(f"{root}/data/{key}", data)
        z.writestr(f"{root}/version", "3\n")


def legacy_file(path, obj_pickle: bytes, keys=(), storages=b""):
    """The legacy (non-zip) torch.save layout around a given object pickle."""
    sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    path.write_bytes(b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, LEGACY_PROTOCOL, sys_info))
                     + obj_pickle + pickle.dumps(list(keys), protocol=2) + storages)


@pytest.mark.parametrize("hostile, name", [(_System, r"(posix|os|nt)\.system"),
                                           (_Eval, r"(__builtin__|builtins)\.eval")])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, hostile, name, zip_format):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": hostile(marker)}, protocol=2)
    path = tmp_path / "evil.bin"
    torch_zip(path, payload) if zip_format else legacy_file(path, payload)
    with pytest.raises(CheckpointFormatError, match=r"evil.bin: not a safe PyTorch state dict: refusing to load "
                                                    + name):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_storage_member_shorter_than_claimed_names_file_and_tensor(torch, tmp_path):
    torch.save({"bias": torch.zeros(2), "w": torch.ones(4)}, tmp_path / "short.bin")
    rewrite_zip(tmp_path / "short.bin", tmp_path / "cut.bin",
                lambda name, data: data[:-4] if name == "short/data/1" else data)
    with pytest.raises(CheckpointFormatError, match=r"cut.bin: tensor w: storage member short/data/1 holds 12 bytes, "
                                                    r"but the pickle claims 4 float32 elements \(16 bytes\)"):
        read_torch_state_dict(tmp_path / "cut.bin")


def test_truncated_empty_or_foreign_files_are_clear_errors(torch, tmp_path):
    torch.save({"w": torch.randn(64, 64)}, tmp_path / "full.bin")
    data = (tmp_path / "full.bin").read_bytes()
    (tmp_path / "half.bin").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointFormatError, match=r"half.bin: truncated or corrupt torch.save zip archive"):
        read_torch_state_dict(tmp_path / "half.bin")
    (tmp_path / "text.bin").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    (tmp_path / "empty.bin").write_bytes(b"")
    for name in ("text.bin", "empty.bin"):
        with pytest.raises(CheckpointFormatError, match=rf"{name}: not a safe PyTorch state dict: not a PyTorch "
                                                        "checkpoint"):
            read_torch_state_dict(tmp_path / name)


class _Storage:
    """A storage the pickle names by persistent id, as torch.save does."""

    def __init__(self, pid):
        self.pid = pid


class _Tensor:
    """Pickles as torch.save pickles a tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        import torch._utils
        return torch._utils._rebuild_tensor_v2, self.args + (False, OrderedDict())


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def torch_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


@pytest.mark.parametrize("size, stride, offset, message", [
    ((3, 3), (3, 1), 0, r"shape \[3, 3\], stride \[3, 1\] at offset 0 reach past the 4-element storage 0"),
    ((2,), (1,), 3, r"shape \[2\], stride \[1\] at offset 3 reach past the 4-element storage 0"),
    ((10**9,), (0,), 0, r"float32 tensor of shape \[1000000000\] claims 4000000000 bytes, more than the whole file"),
    ((2, 2), (-1, 1), 2, r"stride \[-1, 1\] does not fit shape \[2, 2\]"),
])
def test_tensor_views_outside_their_storage_are_refused(torch, tmp_path, size, stride, offset, message):
    storage = _Storage(("storage", torch.FloatStorage, "0", "cpu", 4))
    torch_zip(tmp_path / "view.bin", torch_pickle({"w": _Tensor(storage, offset, size, stride)}),
              {"0": np.arange(4, dtype="<f4").tobytes()})
    with pytest.raises(CheckpointFormatError, match=r"view.bin: tensor w: " + message):
        read_torch_state_dict(tmp_path / "view.bin")


def test_one_storage_reused_by_many_tensors_is_refused(torch, tmp_path):
    storage = _Storage(("storage", torch.FloatStorage, "0", "cpu", 1024))
    members = {"0": np.arange(1024, dtype="<f4").tobytes()}
    torch_zip(tmp_path / "tied.bin", torch_pickle({"a": _Tensor(storage, 0, (1024,), (1,)),
                                                    "b": _Tensor(storage, 0, (32, 32), (32, 1))}), members)
    tensors, _ = read_torch_state_dict(tmp_path / "tied.bin")  # tied weights: two tensors, one storage
    np.testing.assert_array_equal(tensors["b"].ravel(), tensors["a"])
    many = {f"w{i}": _Tensor(storage, 0, (1024,), (1,)) for i in range(64)}
    torch_zip(tmp_path / "many.bin", torch_pickle(many), members)
    with pytest.raises(CheckpointFormatError, match=r"many.bin: tensor w\d+: float32 tensor: the arrays built so far "
                                                    r"would exceed the \d+-byte file's budget"):
        read_torch_state_dict(tmp_path / "many.bin")


def test_legacy_storage_views_match_torch(torch, tmp_path):
    # pre-1.0 torch.save could name a view of a storage:
    # ('storage', type, root key, location, numel, (view key, offset, size))
    root = ("storage", torch.FloatStorage, "root", "cpu", 6, None)
    view = ("storage", torch.FloatStorage, "root", "cpu", 6, ("view", 2, 3))
    obj = {"whole": _Tensor(_Storage(root), 0, (2, 3), (3, 1)), "part": _Tensor(_Storage(view), 1, (2,), (1,))}
    storages = np.int64(6).astype("<i8").tobytes() + np.arange(6, dtype="<f4").tobytes()
    legacy_file(tmp_path / "old.bin", torch_pickle(obj), ["root"], storages)
    expected = torch.load(tmp_path / "old.bin", weights_only=True)
    assert expected["part"].tolist() == [3.0, 4.0]
    assert_matches_torch(read_torch_state_dict(tmp_path / "old.bin")[0], expected)
    legacy_file(tmp_path / "lying.bin", torch_pickle(obj), ["root"], storages[:-4])
    with pytest.raises(CheckpointFormatError, match=r"lying.bin: not a safe PyTorch state dict: storage root claims 6 "
                                                    "elements, past the end of the file"):
        read_torch_state_dict(tmp_path / "lying.bin")


def test_read_source_works_where_torch_cannot_be_imported(torch, tmp_path):
    # SageMaker training containers have no torch: the reader must not need it
    for fmt, zip_format in (("zip", True), ("legacy", False)):
        (tmp_path / fmt).mkdir()
        torch.save({"bert.embeddings.word_embeddings.weight": torch.ones(3, 2), "step": 5},
                   tmp_path / fmt / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    code = ("import sys\nsys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
            "from albert_ner.weights.sources import read_source\n"
            "for d in sys.argv[1:]:\n"
            "    s = read_source(d)\n"
            "    print(s.kind, {k: v.tolist() for k, v in s.tensors.items()}, s.skipped)\n"
            "assert sys.modules['torch'] is None\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "zip"), str(tmp_path / "legacy")], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    line = "pytorch {'bert.embeddings.word_embeddings.weight': [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]} ['step']"
    assert result.stdout.splitlines() == [line, line]
