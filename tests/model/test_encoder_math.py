"""The encoder's fused computation (2-D activations, one q/k/v matmul, batched-matmul attention) against the plain
per-layer formulation written out here: same outputs and gradients, same dropout masks, same variable names."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import preset_encoder
from albert_ner.model.encoder import MASK_ADDER, TransformerEncoder
from albert_ner.model.noise import step_seed

VOCAB = 50


def _dense3(x, layer):
    return tf.einsum("bti,io->bto", x, layer.kernel) + layer.bias


def _layer_norm(x, layer):
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, layer.beta, layer.gamma, layer.epsilon)


def reference(enc: TransformerEncoder, ids, mask, training: bool):
    """The encoder as BERT defines it, one layer at a time on [B,T,H], with the encoder's own variables and
    dropout layers (called in the same order, so under one step seed they draw the same masks)."""
    c = enc.config
    x = enc.embeddings(ids, tf.zeros_like(ids), training=training)
    bias = (1.0 - tf.cast(mask, tf.float32))[:, None, None, :] * MASK_ADDER
    b, t = ids.shape
    n, d = c.num_attention_heads, c.hidden_size // c.num_attention_heads

    def attention(block, h):
        a = block.attention
        q, k, v = (tf.reshape(_dense3(h, layer), [b, t, n, d]) for layer in (a.query, a.key, a.value))
        scores = tf.einsum("btnd,bsnd->bnts", q, k) / np.sqrt(d) + bias
        probs = a.attention_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        context = tf.reshape(tf.einsum("bnts,bsnd->btnd", probs, v), [b, t, c.hidden_size])
        return _dense3(context, a.output_dense)

    def ffn(block, h):
        return _dense3(block.intermediate.activation(_dense3(h, block.intermediate)), block.ffn_output)

    for i in range(c.num_hidden_layers):
        block = enc.groups[enc.group_of_layer(i)]
        if c.ln_type == "preln":
            x = x + block.dropout(attention(block, _layer_norm(x, block.attention_layer_norm)), training=training)
            x = x + block.dropout(ffn(block, _layer_norm(x, block.output_layer_norm)), training=training)
        else:
            x = _layer_norm(x + block.dropout(attention(block, x), training=training), block.attention_layer_norm)
            x = _layer_norm(x + block.dropout(ffn(block, x), training=training), block.output_layer_norm)
    return x


CONFIGS = {
    "bert_postln": dict(embedding_layout="none", embedding_size=32, num_layer_groups=2, num_hidden_layers=2),
    "albert_shared_gelu": dict(hidden_act="gelu"),
    "albert_preln": dict(ln_type="preln"),
    "google_project_last_relu": dict(embedding_layout="project_last", hidden_act="relu"),
    "groups_over_layers": dict(embedding_layout="none", embedding_size=32, num_hidden_layers=3, num_layer_groups=2,
                               num_attention_heads=8),
}


def _encoder(overrides):
    enc = TransformerEncoder(preset_encoder("tiny", VOCAB, **overrides), name="encoder")
    rng = np.random.default_rng(3)
    ids = tf.constant(rng.integers(1, VOCAB, (3, 7)).astype(np.int32))
    mask = tf.constant(np.arange(7)[None, :] < np.array([[7], [4], [1]]))
    enc(ids, mask)
    for v in enc.weights:  # random, not initial, LayerNorm and bias values too
        v.assign(rng.normal(0.0, 0.3, v.shape).astype(np.float32) + (1.0 if "gamma" in v.name else 0.0))
    return enc, ids, mask


def _both(enc, ids, mask, training: bool, jit: bool = False):
    def run(fn):
        @tf.function(jit_compile=jit)
        def f(ids, mask):
            with tf.GradientTape() as tape, step_seed(tf.constant([5, 9], tf.int64)):
                y = fn(ids, mask)
                loss = tf.reduce_sum(tf.sin(y) * tf.range(1.0, 1.0 + y.shape[-1]))
            return y, tape.gradient(loss, enc.trainable_variables)
        y, grads = f(ids, mask)
        return y.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]

    return (run(lambda i, m: enc(i, m, training=training)),
            run(lambda i, m: reference(enc, i, m, training)))


def _assert_close(got, want, variables):
    """Outputs to 1e-5; each gradient to 1e-5 of its own largest entry. The key bias has an exact gradient of 0
    (softmax ignores a constant added to every score of a row), so there both sides must be rounding noise."""
    (y, grads), (y_ref, grads_ref) = got, want
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    assert len(grads) == len(grads_ref) == len(variables)
    scale = max(float(np.abs(r).max()) for r in grads_ref)
    for g, r, v in zip(grads, grads_ref, variables):
        if "attention/key/bias" in v.name:
            assert max(np.abs(g).max(), np.abs(r).max()) <= 1e-6 * scale, v.name
            continue
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()), err_msg=v.name)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_outputs_and_gradients_match_the_plain_formulation(name):
    enc, ids, mask = _encoder(CONFIGS[name])
    _assert_close(*_both(enc, ids, mask, training=False), enc.trainable_variables)


def test_dropout_draws_the_same_masks_as_the_plain_formulation():
    """Resumed and older runs keep their masks: same dropout calls, in the same order, with the same shapes."""
    enc, ids, mask = _encoder(dict(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3))
    got, want = _both(enc, ids, mask, training=True)
    _assert_close(got, want, enc.trainable_variables)
    eval_y = enc(ids, mask, training=False).numpy()
    assert np.abs(got[0] - eval_y).max() > 1e-2  # dropout did act


def test_xla_matches_the_plain_formulation():
    enc, ids, mask = _encoder(CONFIGS["bert_postln"])
    got, _ = _both(enc, ids, mask, training=False, jit=True)
    _, want = _both(enc, ids, mask, training=False)
    _assert_close(got, want, enc.trainable_variables)


def test_variable_names_and_shapes_are_the_checkpoints():
    """Loaders, AdamW's no-decay rule and saved models address the variables by these names and shapes."""
    enc, _, _ = _encoder(CONFIGS["bert_postln"])
    names = {v.name: tuple(v.shape) for v in enc.weights}
    group = {"attention/query/kernel:0": (32, 32), "attention/query/bias:0": (32,),
             "attention/key/kernel:0": (32, 32), "attention/key/bias:0": (32,),
             "attention/value/kernel:0": (32, 32), "attention/value/bias:0": (32,),
             "attention/output_dense/kernel:0": (32, 32), "attention/output_dense/bias:0": (32,),
             "attention_LayerNorm/gamma:0": (32,), "attention_LayerNorm/beta:0": (32,),
             "intermediate/kernel:0": (32, 64), "intermediate/bias:0": (64,),
             "ffn_output/kernel:0": (64, 32), "ffn_output/bias:0": (32,),
             "output_LayerNorm/gamma:0": (32,), "output_LayerNorm/beta:0": (32,)}
    want = {f"encoder/group_{g}/{k}": v for g in (0, 1) for k, v in group.items()}
    want.update({"encoder/embeddings/word_embeddings:0": (VOCAB, 32),
                 "encoder/embeddings/position_embeddings:0": (512, 32),
                 "encoder/embeddings/token_type_embeddings:0": (2, 32),
                 "encoder/embeddings/LayerNorm/gamma:0": (32,), "encoder/embeddings/LayerNorm/beta:0": (32,)})
    assert names == want


def test_mixed_bfloat16_training_computes_in_bfloat16():
    """The fused kernels (q/k/v concat with the scale, GELU) take the compute dtype, the variables stay float32."""
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        enc, ids, mask = _encoder(dict(hidden_act="gelu", hidden_dropout_prob=0.1))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    with tf.GradientTape() as tape, step_seed(tf.constant([1, 2], tf.int64)):
        y = enc(ids, mask, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
    grads = tape.gradient(loss, enc.trainable_variables)
    assert y.dtype == tf.bfloat16 and all(v.dtype == tf.float32 for v in enc.weights)
    assert all(g is not None and bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(g)))) for g in grads)


def test_one_qkv_matmul_and_batched_matmul_attention():
    """What makes the step faster on CPU: q, k and v from a single [H,3H] MatMul on 2-D activations, attention as
    BatchMatMul (no Einsum), no per-layer tensordot reshapes of 3-D activations."""
    enc, ids, mask = _encoder(CONFIGS["bert_postln"])
    graph = tf.function(lambda i, m: enc(i, m, training=True)).get_concrete_function(ids, mask).graph
    ops = graph.get_operations()
    types = [op.type for op in ops]
    hidden = enc.config.hidden_size
    qkv = [op for op in ops if op.type == "MatMul" and op.outputs[0].shape[-1] == 3 * hidden]
    assert len(qkv) == enc.config.num_hidden_layers
    assert "Einsum" not in types and "BatchMatMulV2" in types
    assert all(op.inputs[0].shape.rank == 2 for op in ops if op.type == "MatMul")
