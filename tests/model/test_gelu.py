"""model/gelu.py: the fused GELU kernels give tf.nn.gelu's values and gradients, in graph mode, under XLA and in
bfloat16; the encoder uses them only when training."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import preset_encoder
from albert_ner.model.encoder import TransformerBlock, training_activation
from albert_ner.model.gelu import gelu_exact, gelu_tanh

CASES = [(gelu_exact, False), (gelu_tanh, True)]
X = np.concatenate([np.linspace(-8.0, 8.0, 800), np.random.default_rng(0).normal(0.0, 2.0, 1200)]).astype(np.float32)


def _value_and_grad(fn, x, dy, jit: bool):
    @tf.function(jit_compile=jit)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, x, output_gradients=dy)

    y, g = run(x)
    return y.numpy(), g.numpy()


@pytest.mark.parametrize("fn, approximate", CASES, ids=["exact", "tanh"])
@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_matches_tf_gelu_values_and_gradients(fn, approximate, jit):
    x = tf.constant(X.reshape(40, 50))
    dy = tf.constant(np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32))
    y_ref, g_ref = _value_and_grad(lambda t: tf.nn.gelu(t, approximate=approximate), x, dy, jit=False)
    y, g = _value_and_grad(fn, x, dy, jit=jit)
    # XLA's tanh is a rational approximation within a few 1e-6 (tf.nn.gelu under XLA differs as much).
    atol = 1e-5 if approximate else 1e-6
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("fn, approximate", CASES, ids=["exact", "tanh"])
def test_bfloat16_stays_bfloat16_and_close(fn, approximate):
    x = tf.constant(X, tf.bfloat16)
    y, g = _value_and_grad(fn, x, tf.ones_like(x), jit=False)
    assert y.dtype == g.dtype == tf.bfloat16.as_numpy_dtype
    y_ref, g_ref = _value_and_grad(lambda t: tf.nn.gelu(t, approximate=approximate), tf.cast(x, tf.float32),
                                   tf.ones([X.size]), jit=False)
    np.testing.assert_allclose(y.astype(np.float32), y_ref, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(g.astype(np.float32), g_ref, rtol=2e-2, atol=2e-2)


def test_training_activation_by_config_name():
    assert training_activation("gelu") is gelu_exact
    assert training_activation("gelu_tanh") is gelu_tanh
    assert training_activation("relu") is tf.nn.relu
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        training_activation("swish")


def test_encoder_block_uses_the_fused_kernel_only_when_training():
    """Inference (and exported SavedModels) keep plain TensorFlow ops; the train step gets the XLA kernels."""
    block = TransformerBlock(preset_encoder("tiny", 50, hidden_act="gelu"), name="group_0")
    x = tf.constant(np.random.default_rng(2).normal(size=(6, 32)).astype(np.float32))
    bias = tf.zeros([2, 1, 1, 3])

    def ops(training):
        graph = tf.function(lambda x: block(x, bias, 2, training=training)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    infer_ops, train_ops = ops(False), ops(True)
    assert "Erf" in infer_ops  # tf.nn.gelu inline
    assert "Erf" not in train_ops and train_ops & {"PartitionedCall", "StatefulPartitionedCall"}  # the kernels
    np.testing.assert_allclose(block(x, bias, 2, training=True).numpy(), block(x, bias, 2, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
