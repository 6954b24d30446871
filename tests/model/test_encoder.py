"""Encoder: config mapping, variable layout per format, masking, XLA and mixed precision."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import EncoderConfig, preset_encoder
from albert_ner.model.encoder import TransformerEncoder

PRETRAINED = "pretrained"


def _names(enc):
    return sorted(v.name.split("/", 1)[1] for v in enc.trainable_variables)


def _run(enc, ids, mask, training=False):
    return enc(tf.constant(ids), tf.constant(mask), training=training)


@pytest.mark.parametrize("path, layout, groups, act, eps", [
    ("albert_config/albert_config_base.json", "project_first", 1, "gelu_tanh", 1e-12),
    ("albert_config/albert_config_tiny_google.json", "project_last", 1, "gelu_tanh", 1e-12),
    ("albert_base_zh_google/albert_config.json", "project_last", 1, "relu", 1e-12),
    ("albert_config/albert_config_base_google_fast.json", "project_last", 12, "gelu_tanh", 1e-12),
    ("bert-base-chinese/bert_config.json", "none", 12, "gelu_tanh", 1e-12),
    ("ernie-1.0/ernie_config.json", "none", 12, "relu", 1e-5),
])
def test_published_configs_map_to_the_right_flavour(shared_dir, path, layout, groups, act, eps):
    cfg = EncoderConfig.from_pretrained_json(shared_dir / PRETRAINED / path)
    assert (cfg.embedding_layout, cfg.num_layer_groups, cfg.hidden_act, cfg.layer_norm_eps) == (layout, groups, act, eps)
    if "ernie" in path:
        assert (cfg.vocab_size, cfg.max_position_embeddings, cfg.intermediate_size) == (18000, 513, 3072)


def test_xxlarge_is_pre_ln(shared_dir):
    cfg = EncoderConfig.from_pretrained_json(shared_dir / PRETRAINED / "albert_config/albert_config_xxlarge.json")
    assert cfg.ln_type == "preln"


def test_bad_config_names_the_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"hidden_size": 10}')
    with pytest.raises(ValueError, match=str(p) + ".*num_hidden_layers"):
        EncoderConfig.from_pretrained_json(p)
    with pytest.raises(ValueError, match="divisible"):
        EncoderConfig(hidden_size=10, num_attention_heads=3, embedding_size=10)


def test_albert_sharing_gives_one_block_and_bert_one_per_layer():
    albert = TransformerEncoder(preset_encoder("tiny", 50, num_hidden_layers=3, num_layer_groups=1))
    bert = TransformerEncoder(preset_encoder("tiny", 50, num_hidden_layers=3, num_layer_groups=3,
                                             embedding_layout="none", embedding_size=32))
    ids, mask = np.ones((1, 5), np.int32), np.ones((1, 5), bool)
    _run(albert, ids, mask), _run(bert, ids, mask)
    assert len([n for n in _names(albert) if "query/kernel" in n]) == 1
    assert len([n for n in _names(bert) if "query/kernel" in n]) == 3
    assert "embeddings/word_embeddings_2:0" in _names(albert)
    assert [bert.group_of_layer(i) for i in range(3)] == [0, 1, 2]


def test_google_layout_projects_after_layer_norm():
    enc = TransformerEncoder(preset_encoder("tiny", 50, embedding_layout="project_last"))
    _run(enc, np.ones((1, 4), np.int32), np.ones((1, 4), bool))
    shapes = {v.name.split("/", 1)[1]: tuple(v.shape) for v in enc.trainable_variables}
    assert shapes["embeddings/position_embeddings:0"] == (512, 16)  # added at width E
    assert shapes["embeddings/LayerNorm/gamma:0"] == (16,)
    assert shapes["embeddings/embedding_hidden_mapping_in/kernel:0"] == (16, 32)


def test_padding_does_not_change_real_positions():
    enc = TransformerEncoder(preset_encoder("tiny", 50))
    ids = np.array([[2, 3, 4, 5, 0, 0]], np.int32)
    full = _run(enc, ids, np.array([[1, 1, 1, 1, 0, 0]], bool)).numpy()
    short = _run(enc, ids[:, :4], np.ones((1, 4), bool)).numpy()
    np.testing.assert_allclose(full[:, :4], short, atol=1e-5)
    # Changing a padded token changes nothing for the real ones.
    ids2 = ids.copy()
    ids2[0, 5] = 7
    other = _run(enc, ids2, np.array([[1, 1, 1, 1, 0, 0]], bool)).numpy()
    np.testing.assert_allclose(full[:, :4], other[:, :4], atol=1e-6)


@pytest.mark.parametrize("ln_type", ["postln", "preln"])
def test_xla_matches_eager_and_gradients_compile(ln_type):
    enc = TransformerEncoder(preset_encoder("tiny", 50, ln_type=ln_type))
    ids = np.random.default_rng(0).integers(1, 50, (3, 7)).astype(np.int32)
    mask = np.arange(7)[None, :] < np.array([[7], [4], [1]])
    eager = _run(enc, ids, mask).numpy()

    @tf.function(jit_compile=True)
    def step(ids, mask):
        with tf.GradientTape() as tape:
            y = enc(ids, mask, training=False)
            loss = tf.reduce_sum(y ** 2)
        return y, tape.gradient(loss, enc.trainable_variables)

    y, grads = step(tf.constant(ids), tf.constant(mask))
    np.testing.assert_allclose(y.numpy(), eager, atol=1e-4)
    assert all(g is not None for g in grads)


def test_mixed_float16_runs_under_xla():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        enc = TransformerEncoder(preset_encoder("tiny", 50))
        ids = np.ones((2, 6), np.int32)
        y = tf.function(lambda i, m: enc(i, m), jit_compile=True)(tf.constant(ids), tf.constant(np.ones((2, 6), bool)))
        assert y.dtype == tf.float16
        assert np.isfinite(y.numpy()).all()
        assert all(v.dtype == tf.float32 for v in enc.weights)  # variables stay float32
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
