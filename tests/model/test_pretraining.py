"""PretrainingModel: tied MLM head per layout, the loss and metrics against a numpy reference, the gathered
(masked-positions-only) path against the dense one, SOP, XLA compilation on CPU and mixed precision."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import EncoderConfig
from albert_ner.model.pretraining import METRIC_NAMES, PretrainingModel

V, H, E = 97, 32, 8
LAYOUTS = {
    "none": dict(embedding_size=H, embedding_layout="none", num_layer_groups=2),
    "project_first": dict(embedding_size=E, embedding_layout="project_first", num_layer_groups=1),
    "project_last": dict(embedding_size=E, embedding_layout="project_last", num_layer_groups=2),
}


def encoder_config(layout="none", **overrides):
    values = dict(vocab_size=V, hidden_size=H, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=64,
                  **LAYOUTS[layout])
    values.update(overrides)
    return EncoderConfig(**values)


def random_model(layout="none", sop=True, seed=0, **kwargs):
    """A built model whose every weight is random (output bias and LayerNorms included)."""
    model = PretrainingModel(encoder_config(layout), sop=sop, **kwargs)
    model.build_weights()
    rng = np.random.default_rng(seed)
    for var in model.weights:
        base = 1.0 if "gamma" in var.name else 0.0
        var.assign(base + rng.normal(size=var.shape).astype(np.float32) * 0.2)
    return model


def make_batch(b=4, t=12, seed=1, mask_share=0.15, sop=True):
    """A batch as the example builder makes it: last row padding, -1 labels except at masked positions."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(t // 2, t + 1, b).astype(np.int32)
    lengths[-1] = 0
    real = np.arange(t)[None, :] < lengths[:, None]
    ids = np.where(real, rng.integers(4, V, (b, t)), 0).astype(np.int32)
    segments = np.where(real & (np.arange(t)[None, :] >= (lengths[:, None] // 2)), 1, 0).astype(np.int32)
    inner = real & (np.arange(t)[None, :] > 0) & (np.arange(t)[None, :] < lengths[:, None] - 1)
    masked = inner & (rng.random((b, t)) < mask_share)
    masked[0, 1] = True  # at least one masked token
    labels = np.where(masked, rng.integers(4, V, (b, t)), -1).astype(np.int32)
    batch = {"token_ids": ids, "segment_ids": segments, "lengths": lengths, "mlm_labels": labels}
    if sop:
        batch["sop_labels"] = rng.integers(0, 2, b).astype(np.int32)
    return {k: tf.constant(v) for k, v in batch.items()}


def numpy_loss(model, batch):
    """The loss and metrics written out from dense logits with numpy."""
    out = {k: v.numpy().astype(np.float64) for k, v in model(batch, training=False).items()}
    labels = batch["mlm_labels"].numpy()
    where = labels >= 0
    logits = out["mlm_logits"][where]
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    ce = logz - logits[np.arange(len(logits)), labels[where]]
    result = {"mlm_loss": ce.mean(), "mlm_accuracy": (logits.argmax(-1) == labels[where]).mean(),
              "masked_tokens": where.sum(), "mlm_overflow": 0.0, "sop_loss": 0.0, "sop_accuracy": 0.0}
    if model.sop:
        # Rows with a sentence pair only: not padding, not a 1-token chunk without a B segment.
        rows = (batch["lengths"].numpy() > 0) & (batch["segment_ids"].numpy() == 1).any(axis=1)
        s = out["sop_logits"][rows]
        y = batch["sop_labels"].numpy()[rows]
        sz = np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1)) + s.max(-1)
        result.update(sop_loss=(sz - s[np.arange(len(s)), y]).mean(), sop_accuracy=(s.argmax(-1) == y).mean())
    return result["mlm_loss"] + result["sop_loss"], result


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_mlm_logits_are_tied_to_the_word_table(layout):
    """logits = LN(act(h K + c)) . (P^T) . W^T + b with the encoder's own W (and brightmart's P): no separate
    decoder matrix exists, and the transform is H -> E for Google ALBERT, H -> H otherwise."""
    model = random_model(layout)
    hidden = tf.constant(np.random.default_rng(2).normal(size=(5, H)).astype(np.float32))
    t = model.mlm_transform
    x = t.layer_norm(t.dense(hidden)).numpy()
    emb = model.encoder.embeddings
    if layout == "project_first":
        x = x @ emb.word_projection.numpy().T
    want = x @ emb.word_embeddings.numpy().T + model.mlm_decoder.output_bias.numpy()
    np.testing.assert_allclose(model.mlm_logits(hidden).numpy(), want, rtol=1e-5, atol=1e-5)
    assert t.dense.kernel.shape.as_list() == [H, E if layout == "project_last" else H]
    head_shapes = [v.shape.as_list() for v in model.head_variables]
    assert [V] in head_shapes and not any(V in s and len(s) == 2 for s in head_shapes)
    with tf.GradientTape() as tape:  # the MLM loss trains the shared word table
        loss, _ = model.loss_and_metrics(make_batch(), training=True)
    grad = tape.gradient(loss, emb.word_embeddings)
    assert np.abs(tf.convert_to_tensor(grad).numpy()).sum() > 0


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_loss_and_metrics_match_a_numpy_reference(layout):
    model = random_model(layout, seed=3)
    batch = make_batch(seed=4)
    loss, metrics = model.loss_and_metrics(batch, training=False)
    want_loss, want = numpy_loss(model, batch)
    assert set(metrics) == set(METRIC_NAMES)
    assert all(v.dtype == tf.float32 and v.shape == [] for v in metrics.values())
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5)
    for key, value in want.items():
        np.testing.assert_allclose(metrics[key].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_gathered_positions_score_exactly_what_dense_scoring_does():
    """Scoring only the gathered masked positions gives the dense path's loss, metrics and gradients."""
    model = random_model(seed=5)
    batch = make_batch(b=6, t=16, seed=6)
    results, capacity = {}, {}
    for share in (0.25, 1.0):
        model.prediction_share = share
        capacity[share] = model.prediction_capacity(6, 16)
        with tf.GradientTape() as tape:
            loss, metrics = model.loss_and_metrics(batch, training=False)
        grads = tape.gradient(loss, model.trainable_variables)
        results[share] = (loss.numpy(), {k: v.numpy() for k, v in metrics.items()},
                          [tf.convert_to_tensor(g).numpy() for g in grads])
    assert capacity == {0.25: 24, 1.0: 96}
    (l1, m1, g1), (l2, m2, g2) = results[0.25], results[1.0]
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    assert m1 == pytest.approx(m2, rel=1e-6)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_masked_positions_beyond_the_capacity_are_counted_not_hidden():
    model = random_model(sop=False, seed=7)
    batch = make_batch(b=2, t=10, seed=8, sop=False)
    labels = np.where(np.arange(10)[None, :] < 9, 5, -1).astype(np.int32).repeat(2, 0)
    batch["mlm_labels"] = tf.constant(labels)  # 18 masked of 20 positions
    _, metrics = model.loss_and_metrics(batch, training=False)  # share 0.25: K = 5
    assert metrics["masked_tokens"].numpy() == 5 and metrics["mlm_overflow"].numpy() == 13
    capped = PretrainingModel(encoder_config(), sop=False, max_predictions=3)
    capped.build_weights()
    assert capped.prediction_capacity(2, 10) == 6
    _, metrics = capped.loss_and_metrics(batch, training=False)
    assert metrics["masked_tokens"].numpy() == 6 and metrics["mlm_overflow"].numpy() == 12
    batch["mlm_labels"] = tf.fill([2, 10], -1)  # nothing masked: zero loss, no NaN
    loss, metrics = model.loss_and_metrics(batch, training=False)
    assert loss.numpy() == 0.0 and metrics["masked_tokens"].numpy() == 0 and metrics["mlm_accuracy"].numpy() == 0


def test_without_sop_there_is_no_pooler_and_sop_metrics_are_zero():
    model = random_model(sop=False)
    assert model.pooler is None and model.sop_classifier is None
    assert not any("pooler" in v.name or "sop" in v.name for v in model.weights)
    loss, metrics = model.loss_and_metrics(make_batch(sop=False), training=False)
    assert metrics["sop_loss"].numpy() == 0.0 and metrics["sop_accuracy"].numpy() == 0.0
    assert loss.numpy() == metrics["mlm_loss"].numpy()
    with pytest.raises(KeyError, match="no sop_labels"):
        random_model(sop=True).loss_and_metrics(make_batch(sop=False), training=False)


def test_bad_capacity_settings_are_errors():
    with pytest.raises(ValueError, match="max_predictions must be a positive integer"):
        PretrainingModel(encoder_config(), sop=False, max_predictions=0)
    with pytest.raises(ValueError, match="prediction_share must be a number > 0"):
        PretrainingModel(encoder_config(), sop=False, prediction_share=0.0)


def test_train_step_compiles_with_xla_on_cpu():
    """loss, metrics and gradients under tf.function(jit_compile=True) equal the eager ones (gather and SOP)."""
    model = random_model("project_first", seed=9)
    model.prediction_share = 0.3
    batch = make_batch(b=4, t=16, seed=10)

    def step(b):
        with tf.GradientTape() as tape:
            loss, metrics = model.loss_and_metrics(b, training=False)
        return loss, metrics, tape.gradient(loss, model.trainable_variables)

    compiled = tf.function(step, jit_compile=True)
    loss, metrics, grads = compiled(batch)
    assert compiled.experimental_get_compiler_ir(batch)(stage="hlo")  # it really went through XLA
    want_loss, want_metrics, want_grads = step(batch)
    np.testing.assert_allclose(loss.numpy(), want_loss.numpy(), rtol=1e-5)
    for key in METRIC_NAMES:
        np.testing.assert_allclose(metrics[key].numpy(), want_metrics[key].numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, want_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(),
                                   rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_logits_and_metrics_are_float32_under_mixed_precision(policy):
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        model = PretrainingModel(encoder_config("project_first"), sop=True)
        model.build_weights()
        batch = make_batch()
        out = model(batch, training=False)
        assert model.encode(batch).dtype != tf.float32  # the encoder really runs in half precision
        assert out["mlm_logits"].dtype == tf.float32 and out["sop_logits"].dtype == tf.float32
        assert model.mlm_decoder.output_bias.dtype == tf.float32
        loss, metrics = tf.function(model.loss_and_metrics, jit_compile=True)(batch, training=True)
        assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
        assert all(v.dtype == tf.float32 for v in metrics.values())
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def test_encoder_weights_have_the_ner_taggers_names():
    """The encoder is built as NerTagger builds it, so stores and loaders address the same variables."""
    from albert_ner.config import HeadConfig, ModelConfig
    from albert_ner.model.tagger import NerTagger

    model = random_model("project_last")
    tagger = NerTagger(ModelConfig(encoder=model.config, head=HeadConfig(), labels=("O",)))
    tagger.build_weights()
    strip = lambda v: v.name.split("/", 1)[1]
    assert sorted(strip(v) for v in model.encoder.weights) == sorted(strip(v) for v in tagger.encoder.weights)
    assert model.encoder.name == "encoder"


def test_sop_scores_only_rows_with_a_sentence_pair():
    """A 1-token chunk ([CLS] x [SEP], no B segment) carries sop label 0 but must not teach "in order"."""
    model = random_model(seed=11)
    batch = {k: v.numpy().copy() for k, v in make_batch(b=4, t=12, seed=12).items()}
    batch["lengths"][1] = 3
    batch["token_ids"][1, 3:] = 0
    batch["segment_ids"][1, :] = 0
    batch["mlm_labels"][1, :] = -1
    batch = {k: tf.constant(v) for k, v in batch.items()}
    _, expected = numpy_loss(model, batch)
    _, metrics = model.loss_and_metrics(batch, training=False)
    assert abs(metrics["sop_loss"].numpy() - expected["sop_loss"]) < 1e-5
    flipped = {**batch, "sop_labels": tf.tensor_scatter_nd_update(batch["sop_labels"], [[1]], [1 - int(batch["sop_labels"][1])])}
    _, changed = model.loss_and_metrics(flipped, training=False)
    assert changed["sop_loss"].numpy() == metrics["sop_loss"].numpy()  # row 1 has no say
