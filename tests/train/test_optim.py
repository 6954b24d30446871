"""Learning-rate schedule and dynamic loss scaling."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.train.optim import DynamicLossScale, WarmupLinearDecay, make_optimizer


def test_warmup_then_linear_decay():
    s = WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=110)
    values = [float(s(i)) for i in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)
    no_warmup = WarmupLinearDecay(1e-3, 0, 100)
    assert float(no_warmup(0)) == pytest.approx(1e-3)


def test_loss_scale_halves_on_overflow_and_grows_after_period_under_xla():
    ls = DynamicLossScale(initial=8.0, period=3)

    @tf.function(jit_compile=True)
    def step(g):
        grads, finite = ls.unscale([g, tf.IndexedSlices(g[:1], tf.constant([0]), tf.constant([2]))])
        ls.update(finite)
        return grads[0], finite

    g, finite = step(tf.constant([8.0, 16.0]))
    np.testing.assert_allclose(g.numpy(), [1.0, 2.0])
    assert bool(finite) and float(ls.scale) == 8.0
    _, finite = step(tf.constant([np.inf, 1.0], tf.float32))
    assert not bool(finite) and float(ls.scale) == 4.0 and int(ls.good_steps) == 0
    for _ in range(3):
        step(tf.constant([1.0, 1.0]))
    assert float(ls.scale) == 8.0


def test_no_weight_decay_on_layer_norm_and_bias():
    dense = tf.keras.layers.Dense(2, name="d")
    ln = tf.keras.layers.LayerNormalization(name="LayerNorm")
    x = tf.ones([1, 2])
    ln(dense(x))
    variables = dense.trainable_variables + ln.trainable_variables
    opt = make_optimizer(0.0, weight_decay=0.5, warmup_steps=0, total_steps=10, variables=variables, name="t")
    before = [v.numpy().copy() + 1.0 for v in variables]
    for v, b in zip(variables, before):
        v.assign(b)
    opt.apply_gradients(zip([tf.zeros_like(v) for v in variables], variables))
    # lr 0 => nothing moves at all; now with lr > 0 and zero gradients only decay can move weights.
    opt2 = make_optimizer(0.1, weight_decay=0.5, warmup_steps=0, total_steps=10, variables=variables, name="t2")
    opt2.apply_gradients(zip([tf.zeros_like(v) for v in variables], variables))
    moved = {v.name: not np.allclose(v.numpy(), b) for v, b in zip(variables, before)}
    assert moved["d/kernel:0"]
    assert not moved["d/bias:0"] and not moved["LayerNorm/gamma:0"] and not moved["LayerNorm/beta:0"]
