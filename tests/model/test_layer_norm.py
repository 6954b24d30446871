"""model/layer_norm.py: the fused LayerNorm kernels give Keras LayerNormalization's values and gradients (input,
gamma, beta) in graph mode, under XLA and for bfloat16 inputs."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.model.layer_norm import layer_norm


def _layer(width: int, epsilon: float, seed: int = 0):
    layer = tf.keras.layers.LayerNormalization(epsilon=epsilon, name="LayerNorm")
    layer.build([None, width])
    rng = np.random.default_rng(seed)
    layer.gamma.assign(1.0 + rng.normal(0.0, 0.3, width).astype(np.float32))
    layer.beta.assign(rng.normal(0.0, 0.3, width).astype(np.float32))
    return layer


def _run(fn, layer, x, dy, jit: bool):
    @tf.function(jit_compile=jit)
    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=dy)

    y, grads = f(x)
    return [y.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("epsilon", [1e-12, 1e-5])
@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_matches_keras_layer_norm(epsilon, jit):
    layer = _layer(48, epsilon)
    rng = np.random.default_rng(1)
    x = tf.constant((rng.normal(size=(64, 48)) * 3.0 + 1.5).astype(np.float32))
    dy = tf.constant(rng.normal(size=(64, 48)).astype(np.float32))
    want = _run(layer, layer, x, dy, jit=False)
    got = _run(lambda t: layer_norm(t, layer), layer, x, dy, jit=jit)
    for g, w, what in zip(got, want, ("y", "dx", "dgamma", "dbeta")):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(w).max())), err_msg=what)


def test_bfloat16_input_keeps_its_dtype_and_float32_parameters():
    layer = _layer(32, 1e-12)
    x32 = tf.constant(np.random.default_rng(2).normal(size=(16, 32)).astype(np.float32))
    x = tf.cast(x32, tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer_norm(x, layer)
    dx, d_gamma = tape.gradient(y, [x, layer.gamma])
    assert y.dtype == dx.dtype == tf.bfloat16 and d_gamma.dtype == tf.float32
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), layer(tf.cast(x, tf.float32)).numpy(), atol=0.05)
