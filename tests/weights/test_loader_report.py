"""The load report accounts for what readers skip, and a damaged checkpoint stops `convert` with one line."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from albert_ner.config import EncoderConfig
from albert_ner.model.encoder import TransformerEncoder
from albert_ner.weights.loader import assign_encoder_weights
from albert_ner.weights.tensor_files import TF1_SKIPPED_KIND, read_tf1_checkpoint_entries
from tests.weights.test_tensor_files import write_tf1_checkpoint

# A TF1 BERT config small enough to build in a blink.
TINY_BERT = {"vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 16, "max_position_embeddings": 12, "type_vocab_size": 2, "hidden_act": "gelu"}


def tiny_bert_tensors(seed=0):
    """Every weight of TINY_BERT under Google BERT's TF1 names, plus a pretraining head."""
    rng = np.random.default_rng(seed)
    v, h, i, p = (TINY_BERT[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings"))
    shapes = {"bert/embeddings/word_embeddings": (v, h), "bert/embeddings/position_embeddings": (p, h),
              "bert/embeddings/token_type_embeddings": (2, h),
              "bert/embeddings/LayerNorm/gamma": (h,), "bert/embeddings/LayerNorm/beta": (h,),
              "cls/predictions/output_bias": (v,)}
    for n in range(TINY_BERT["num_hidden_layers"]):
        layer = f"bert/encoder/layer_{n}/"
        for x in ("query", "key", "value"):
            shapes[layer + f"attention/self/{x}/kernel"] = (h, h)
            shapes[layer + f"attention/self/{x}/bias"] = (h,)
        for scope, (a, b) in (("attention/output/dense", (h, h)), ("intermediate/dense", (h, i)),
                              ("output/dense", (i, h))):
            shapes[layer + scope + "/kernel"] = (a, b)
            shapes[layer + scope + "/bias"] = (b,)
        for scope in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[layer + scope + "/gamma"] = (h,)
            shapes[layer + scope + "/beta"] = (h,)
    return {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}


def built_encoder():
    encoder = TransformerEncoder(EncoderConfig.from_pretrained_dict(TINY_BERT), name="encoder")
    encoder(tf.zeros([1, 4], tf.int32), tf.ones([1, 4], tf.bool))
    return encoder


def test_optimizer_slots_are_counted_not_loaded(tmp_path):
    tensors = tiny_bert_tensors()
    slots = {"bert/embeddings/word_embeddings/adam_m": np.zeros((30, 8), np.float32),
             "bert/embeddings/word_embeddings/adam_v": np.zeros((30, 8), np.float32),
             "global_step": np.array(1000, np.int64)}
    write_tf1_checkpoint(tmp_path / "model.ckpt", {**tensors, **slots})
    weights, skipped = read_tf1_checkpoint_entries(tmp_path)
    assert sorted(weights) == sorted(tensors) and sorted(skipped) == sorted(slots)
    encoder = built_encoder()
    report = assign_encoder_weights(encoder, weights, "ckpt", skipped={TF1_SKIPPED_KIND: skipped})
    assert report.skipped == {"optimizer/bookkeeping": sorted(slots)}
    assert report.expected_leftovers == ["cls/predictions/output_bias"]
    assert not report.not_used and not report.left_random and len(report.loaded) == 37
    assert report.summary() == ("ckpt: TF1 BERT/brightmart albert_zh checkpoint: loaded 37 encoder weights; "
                                "1 pretraining-head/pooler tensors and 3 optimizer/bookkeeping entries "
                                "skipped as expected")
    assert report.to_dict()["skipped"] == {"optimizer/bookkeeping": sorted(slots)}
    np.testing.assert_array_equal(encoder.embeddings.word_embeddings.numpy(),
                                  tensors["bert/embeddings/word_embeddings"])
    # Several kinds are listed one by one; without `skipped` the report reads as before.
    report = assign_encoder_weights(encoder, weights, "ckpt", skipped={"non-tensor": ["_metadata"], "x": []})
    assert "1 pretraining-head/pooler tensors and 1 non-tensor entries skipped as expected" in report.summary()
    report = assign_encoder_weights(encoder, weights, "ckpt")
    assert report.skipped == {} and report.summary().endswith("1 pretraining-head/pooler tensors skipped as expected")


def test_convert_of_a_truncated_checkpoint_exits_with_one_line(tmp_path):
    src = tmp_path / "bert"
    src.mkdir()
    (src / "bert_config.json").write_text(json.dumps(TINY_BERT))
    write_tf1_checkpoint(src / "bert_model.ckpt", tiny_bert_tensors())
    data = src / "bert_model.ckpt.data-00000-of-00001"
    size = data.stat().st_size
    os.truncate(data, size // 2)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "albert_ner.cli", "convert", str(src), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]  # the one line, nothing else
    assert len(errors) == 1 and errors[0].startswith("albert-ner: error: "), proc.stderr
    assert f"{src / 'bert_model.ckpt'}: tensor bert/" in errors[0]
    assert f"declares {size} bytes" in errors[0] and f"has {size // 2} bytes" in errors[0]
    assert not (tmp_path / "out").exists()
