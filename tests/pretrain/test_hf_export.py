"""Hugging Face export: transformers loads the directory with AutoModelForMaskedLM, with no missing or
unexpected weights, and computes our MLM logits (random weights, padded two-segment batch) to 1e-4 for
BERT, brightmart (projection folded into the word table), Google ALBERT with 1 and 2 layer groups and
ERNIE 3.0 (task-type row 0 folded into the token-type table). Also the numpy safetensors writer."""
import json
import struct

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import EncoderConfig
from albert_ner.data.vocab import Vocab
from albert_ner.model.pretraining import PretrainingModel
from albert_ner.pretrain.hf_export import export_hf
from albert_ner.weights.safetensors_write import safetensors_bytes, write_safetensors
from albert_ner.weights.tensor_files import read_safetensors

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ATOL = 1e-4
COMMON = dict(vocab_size=21128, hidden_size=64, num_attention_heads=4, intermediate_size=128,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CASES = {
    # name: (encoder config, the transformers class expected)
    "bert": (dict(num_hidden_layers=2, embedding_size=64, num_layer_groups=2, hidden_act="gelu"), "BertForMaskedLM"),
    "brightmart": (dict(num_hidden_layers=3, embedding_size=16, embedding_layout="project_first", num_layer_groups=1,
                        hidden_act="gelu_tanh"), "BertForMaskedLM"),
    "albert-1-group": (dict(num_hidden_layers=3, embedding_size=16, embedding_layout="project_last",
                            num_layer_groups=1, hidden_act="relu"), "AlbertForMaskedLM"),
    "albert-2-groups": (dict(num_hidden_layers=4, embedding_size=16, embedding_layout="project_last",
                             num_layer_groups=2, hidden_act="gelu_tanh"), "AlbertForMaskedLM"),
    "ernie-3.0": (dict(num_hidden_layers=2, embedding_size=64, num_layer_groups=2, hidden_act="gelu",
                       layer_norm_eps=1e-5, type_vocab_size=4, max_position_embeddings=2048, task_type_vocab_size=3),
                  "BertForMaskedLM"),
}


def random_model(config, seed=0):
    """Every weight random (LayerNorm gains near 1, output bias too), so a misplaced tensor cannot pass."""
    model = PretrainingModel(config, sop=True)
    model.build_weights()
    rng = np.random.default_rng(seed)
    for var in model.weights:
        base = 1.0 if "gamma" in var.name else 0.0
        var.assign(base + rng.normal(size=var.shape).astype(np.float32) * 0.1)
    return model


def two_segment_batch(vocab_size, lengths=(13, 7), seed=1):
    rng = np.random.default_rng(seed)
    t = max(lengths)
    mask = (np.arange(t)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
    ids = np.where(mask, rng.integers(5, vocab_size, (len(lengths), t)), 0).astype(np.int32)
    segments = np.where(mask & (np.arange(t)[None, :] >= np.array(lengths)[:, None] // 2), 1, 0).astype(np.int32)
    return ids, mask, segments


@pytest.mark.parametrize("case", sorted(CASES))
def test_transformers_loads_the_export_and_computes_our_mlm_logits(case, vocab_path, tmp_path):
    fields, class_name = CASES[case]
    config = EncoderConfig(**COMMON, **fields)
    model = random_model(config, seed=len(case))
    out_dir = export_hf(model, vocab_path, tmp_path / "hf")
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    hf_config = json.loads((out_dir / "config.json").read_text())
    assert hf_config["hidden_act"] == {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[config.hidden_act]

    hf, info = transformers.AutoModelForMaskedLM.from_pretrained(str(out_dir), output_loading_info=True)
    assert type(hf).__name__ == class_name
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids, mask, segments = two_segment_batch(config.vocab_size)
    ours = model({"token_ids": tf.constant(ids), "segment_ids": tf.constant(segments),
                  "lengths": tf.constant(mask.sum(1), tf.int32)}, training=False)["mlm_logits"].numpy()
    with torch.no_grad():
        ref = hf.eval()(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(segments, dtype=torch.long)).logits.numpy()
    real = mask.astype(bool)
    assert np.abs(ref[real]).max() > 0.1
    np.testing.assert_allclose(ours[real], ref[real], atol=ATOL, rtol=0)


def test_folds_are_exact_where_they_apply(vocab_path, tmp_path):
    """brightmart's table is W @ P; ERNIE 3.0's type table carries task row 0; ALBERT groups stay groups."""
    config = EncoderConfig(**COMMON, **CASES["brightmart"][0])
    model = random_model(config, seed=3)
    tensors = read_safetensors(export_hf(model, vocab_path, tmp_path / "b") / "model.safetensors")
    emb = model.encoder.embeddings
    np.testing.assert_allclose(tensors["bert.embeddings.word_embeddings.weight"],
                               emb.word_embeddings.numpy() @ emb.word_projection.numpy(), rtol=1e-5, atol=1e-6)
    assert sum(k.endswith("attention.self.query.weight") for k in tensors) == 3  # the shared layer, 3 times

    config = EncoderConfig(**COMMON, **CASES["ernie-3.0"][0])
    model = random_model(config, seed=4)
    tensors = read_safetensors(export_hf(model, vocab_path, tmp_path / "e") / "model.safetensors")
    emb = model.encoder.embeddings
    np.testing.assert_allclose(tensors["bert.embeddings.token_type_embeddings.weight"],
                               emb.token_type_embeddings.numpy() + emb.task_type_embeddings.numpy()[0])
    assert not any("task_type" in k for k in tensors)

    config = EncoderConfig(**COMMON, **CASES["albert-2-groups"][0])
    tensors = read_safetensors(export_hf(random_model(config), vocab_path, tmp_path / "a") / "model.safetensors")
    assert {k.split(".")[3] for k in tensors if ".albert_layer_groups." in k} == {"0", "1"}


def test_ernie_vocab_is_written_one_token_per_line_and_tokenizes_alike(shared_dir, tmp_path):
    """ERNIE 1.0's `token<TAB>id` vocab (17,964 tokens, 18,000 rows) becomes a plain vocab.txt whose
    BertTokenizer ids are the ones our vocabulary gives each character."""
    vocab_file = shared_dir / "pretrained/ernie-1.0/vocab.txt"
    config = EncoderConfig(**dict(COMMON, vocab_size=18000), **CASES["bert"][0])
    out_dir = export_hf(random_model(config), vocab_file, tmp_path / "hf")
    lines = (out_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = Vocab.from_file(vocab_file)
    assert len(lines) == len(vocab) == 17964 and lines[:4] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert not any("\t" in line for line in lines)
    assert json.loads((out_dir / "config.json").read_text())["pad_token_id"] == 0
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out_dir))
    text = "中国人民银行在北京"
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == [vocab.char_to_id(c) for c in text]


def test_pre_ln_encoder_is_a_clear_error(vocab_path, tmp_path):
    config = EncoderConfig(**COMMON, **dict(CASES["brightmart"][0], ln_type="preln"))
    with pytest.raises(ValueError, match="cannot export a pre-LN encoder"):
        export_hf(random_model(config), vocab_path, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_vocabulary_larger_than_the_table_is_an_error(vocab_path, tmp_path):
    config = EncoderConfig(**dict(COMMON, vocab_size=1000), **CASES["bert"][0])
    with pytest.raises(ValueError, match=r"vocab.txt: 21128 token ids, more than the model's 1000 embedding rows"):
        export_hf(random_model(config), vocab_path, tmp_path / "hf")


def test_safetensors_writer_round_trips_and_is_what_the_format_says(tmp_path):
    from safetensors.numpy import load_file  # the reference reader, in tests only

    rng = np.random.default_rng(5)
    tensors = {"b.weight": rng.normal(size=(3, 5)).astype(np.float32), "a.half": rng.normal(size=7).astype(np.float16),
               "c.ids": np.arange(6, dtype=np.int64).reshape(2, 3), "d.flag": np.array([True, False]),
               "e.big_endian": np.arange(4, dtype=">f4"), "f.empty": np.zeros((0, 3), np.float32)}
    path = write_safetensors(tmp_path / "t.safetensors", tensors, metadata={"format": "pt"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["__metadata__"] == {"format": "pt"}
    for loaded in (load_file(str(path)), read_safetensors(path)):
        assert sorted(loaded) == sorted(tensors)
        for name, array in tensors.items():
            assert loaded[name].shape == array.shape
            np.testing.assert_array_equal(loaded[name], array)
    assert not (tmp_path / "t.safetensors.tmp").exists()
    with pytest.raises(ValueError, match="tensor 'z': dtype complex64 cannot be written"):
        safetensors_bytes({"z": np.zeros(2, np.complex64)})
    with pytest.raises(ValueError, match="metadata must map strings to strings"):
        safetensors_bytes({"x": np.zeros(1, np.float32)}, metadata={"step": 3})
