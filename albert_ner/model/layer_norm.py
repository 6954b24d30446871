"""LayerNorm over the last axis as one XLA kernel forward and one backward, for the train step in graph mode.

Keras' LayerNormalization (epsilon below 1.001e-5 rules out its fused path) is moments plus
batch_normalization, about six passes forward and a dozen backward; on CPU the fused pair took half the
time. Math as Keras': statistics and normalisation in float32, the output in the input's dtype, gamma
and beta float32. Inside an XLA-compiled step the kernels are inlined.
"""
from __future__ import annotations

import tensorflow as tf


@tf.function(jit_compile=True)
def _forward(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: tf.Tensor):
    x32 = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
    centred = x32 - mean
    inv = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True) + epsilon)
    return tf.cast(centred * inv * gamma + beta, x.dtype), inv


@tf.function(jit_compile=True)
def _backward(x: tf.Tensor, inv: tf.Tensor, gamma: tf.Tensor, dy: tf.Tensor):
    x32 = tf.cast(x, tf.float32)
    dy32 = tf.cast(dy, tf.float32)
    normed = (x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)) * inv
    d_normed = dy32 * gamma
    dx = inv * (d_normed - tf.reduce_mean(d_normed, axis=-1, keepdims=True)
                - normed * tf.reduce_mean(d_normed * normed, axis=-1, keepdims=True))
    rows = list(range(len(x.shape) - 1))
    return tf.cast(dx, x.dtype), tf.reduce_sum(dy32 * normed, axis=rows), tf.reduce_sum(dy32, axis=rows)


@tf.custom_gradient
def _layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: tf.Tensor):
    y, inv = _forward(x, gamma, beta, epsilon)

    def grad(dy):
        dx, d_gamma, d_beta = _backward(x, inv, gamma, dy)
        return dx, d_gamma, d_beta, tf.zeros_like(epsilon)

    return y, grad


def layer_norm(x: tf.Tensor, layer: tf.keras.layers.LayerNormalization) -> tf.Tensor:
    """What `layer(x)` computes for a built, last-axis, scaled and centred Keras LayerNormalization."""
    return _layer_norm(x, tf.convert_to_tensor(layer.gamma), tf.convert_to_tensor(layer.beta),
                       tf.constant(layer.epsilon, tf.float32))
