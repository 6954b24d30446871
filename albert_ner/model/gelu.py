"""GELU (exact, and its tanh approximation) as one XLA kernel forward and one backward, also in graph mode.

TensorFlow's tf.nn.gelu is four element-wise ops forward and about eight backward, each a pass over the
[B*T, intermediate] activations: on CPU the feed-forward GELU cost about three times a fused pass. Here the
forward and the hand-written derivative are each a small jit-compiled function (XLA fuses it into one
loop), joined by tf.custom_gradient; inside an XLA-compiled step they are simply inlined.
"""
from __future__ import annotations

import math

import tensorflow as tf

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715


@tf.function(jit_compile=True)
def _exact_forward(x: tf.Tensor) -> tf.Tensor:
    return 0.5 * x * (1.0 + tf.math.erf(x * _SQRT_HALF))


@tf.function(jit_compile=True)
def _exact_backward(x: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    # d/dx [x * Phi(x)] = Phi(x) + x * phi(x)
    cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))
    return dy * (cdf + x * (tf.exp(-0.5 * x * x) * _INV_SQRT_2PI))


@tf.function(jit_compile=True)
def _tanh_forward(x: tf.Tensor) -> tf.Tensor:
    return 0.5 * x * (1.0 + tf.tanh(_SQRT_2_OVER_PI * (x + _CUBIC * x * x * x)))


@tf.function(jit_compile=True)
def _tanh_backward(x: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    t = tf.tanh(_SQRT_2_OVER_PI * (x + _CUBIC * x * x * x))
    inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _CUBIC * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner)


@tf.custom_gradient
def gelu_exact(x: tf.Tensor):
    """x * Phi(x), as tf.nn.gelu(x, approximate=False)."""
    return _exact_forward(x), lambda dy: _exact_backward(x, dy)


@tf.custom_gradient
def gelu_tanh(x: tf.Tensor):
    """The tanh approximation, as tf.nn.gelu(x, approximate=True)."""
    return _tanh_forward(x), lambda dy: _tanh_backward(x, dy)
