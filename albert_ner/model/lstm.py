"""A bidirectional LSTM over right-padded sequences that projects every time step at once and loops only over
h·U, both directions in one loop, with a hand-written backward pass (one loop, no per-step weight gradients).

Keras' RNN(LSTMCell) multiplies x_t·W inside its time loop and differentiates the loop step by step; here
x·W is one [B*T,in]x[in,8u] matmul, the loop does one batched [2,B,u]x[2,u,4u] matmul a step, and the
gradients of W, U and x are three big matmuls after the backward loop. The layer subclasses Keras'
Bidirectional(RNN(LSTMCell)) so its variables, their names and checkpoint paths are Keras'; the math is
Keras' LSTMCell (gates i, f, c, o; sigmoid and tanh) with zero outputs past each row's length, as
Bidirectional gives with return_sequences. It compiles under XLA (static T there) and runs in graph mode.

Shapes: B batch, T time, u units, G = 4u gate pre-activations, 2 directions (forward, backward).
"""
from __future__ import annotations

from typing import Tuple

import tensorflow as tf


def _recurrence_forward(zx: tf.Tensor, valid: tf.Tensor, recurrent: tf.Tensor
                        ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The LSTM loop. zx [T,2,B,G] = x·W + b, valid [T,1,B,1] (1.0 while t < length), recurrent [2,u,G].

    Returns (h [T,2,B,u] state after each step, carried over padding; c [T,2,B,u] likewise;
    gates [T,2,B,G] = sigmoid(i), sigmoid(f), tanh(c~), sigmoid(o))."""
    steps = tf.shape(zx)[0]
    units = recurrent.shape[1]
    zeros = tf.zeros_like(zx[0, :, :, :units])  # [2,B,u]
    arrays = [tf.TensorArray(zx.dtype, size=steps, element_shape=shape)
              for shape in (zeros.shape, zeros.shape, zx.shape[1:])]

    def body(t, h, c, h_acc, c_acc, g_acc):
        z = zx[t] + tf.matmul(h, recurrent)  # [2,B,G]
        i, f, g, o = tf.split(z, 4, axis=-1)
        i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        keep = valid[t]  # [1,B,1]: padding carries the state
        h = tf.where(keep > 0, h_new, h)
        c = tf.where(keep > 0, c_new, c)
        return (t + 1, h, c, h_acc.write(t, h), c_acc.write(t, c),
                g_acc.write(t, tf.concat([i, f, g, o], axis=-1)))

    _, _, _, h_acc, c_acc, g_acc = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), zeros, zeros, *arrays))
    return h_acc.stack(), c_acc.stack(), g_acc.stack()


@tf.custom_gradient
def lstm_recurrence(zx: tf.Tensor, valid: tf.Tensor, recurrent: tf.Tensor):
    """Outputs h [T,2,B,u] (zero where not valid) of the LSTM loop; see _recurrence_forward for the inputs."""
    h, c, gates = _recurrence_forward(zx, valid, recurrent)
    outputs = h * valid

    def grad(d_outputs):
        steps = tf.shape(zx)[0]
        zeros = tf.zeros_like(h[0])
        c_prev_all = tf.concat([zeros[tf.newaxis], c[:-1]], axis=0)  # the cell state each step starts from
        d_outputs = d_outputs * valid
        recurrent_t = tf.transpose(recurrent, [0, 2, 1])  # [2,G,u]
        dz_acc = tf.TensorArray(zx.dtype, size=steps, element_shape=zx.shape[1:])

        def body(t, dh_in, dc_in, dz_acc):
            # dh_in, dc_in: gradient reaching the state after step t from later steps.
            i, f, g, o = tf.split(gates[t], 4, axis=-1)
            keep = valid[t]
            dh = dh_in + d_outputs[t]
            tanh_c = tf.tanh(c[t])
            dc = dc_in + dh * o * (1.0 - tanh_c * tanh_c)
            dz = tf.concat([dc * g * i * (1.0 - i), dc * c_prev_all[t] * f * (1.0 - f), dc * i * (1.0 - g * g),
                            dh * tanh_c * o * (1.0 - o)], axis=-1) * keep  # [2,B,G]
            # A step past the length carried the state unchanged: so does its gradient.
            dh_in = tf.where(keep > 0, tf.matmul(dz, recurrent_t), dh_in)
            dc_in = tf.where(keep > 0, dc * f, dc_in)
            return t - 1, dh_in, dc_in, dz_acc.write(t, dz)

        _, _, _, dz_acc = tf.while_loop(lambda t, *_: t >= 0, body, (steps - 1, zeros, zeros, dz_acc))
        dz = dz_acc.stack()  # [T,2,B,G]
        h_prev = tf.concat([tf.zeros_like(h[:1]), h[:-1]], axis=0)  # [T,2,B,u]
        # dU[d] = sum over t, b of h_prev[t,d,b]^T dz[t,d,b]: one batched matmul over the directions.
        flat = lambda x: tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [2, -1, x.shape[-1]])  # [2,T*B,.]
        d_recurrent = tf.matmul(flat(h_prev), flat(dz), transpose_a=True)  # [2,u,G]
        return dz, tf.zeros_like(valid), d_recurrent

    return outputs, grad


class BiLSTM(tf.keras.layers.Bidirectional):
    """Bidirectional(RNN(LSTMCell(units), return_sequences=True)) computed by `bilstm`; call(x, mask) with a
    prefix mask [B,T] (True for a row's first `length` steps) -> [B,T,2u], zero past each length."""

    def __init__(self, units: int, name: str = "bilstm", **kwargs):
        cell = tf.keras.layers.LSTMCell(units, name="lstm_cell")
        super().__init__(tf.keras.layers.RNN(cell, return_sequences=True, name="rnn"), name=name, **kwargs)
        self.units = units

    def get_config(self):
        config = tf.keras.layers.Layer.get_config(self)  # name, trainable, dtype
        config["units"] = self.units
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)

    def call(self, inputs, training=None, mask=None, initial_state=None, constants=None):
        if initial_state is not None or constants is not None:
            raise ValueError(f"{self.name}: initial_state and constants are not supported")
        if mask is None:
            mask = tf.ones(tf.shape(inputs)[:2], tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        return bilstm(inputs, lengths, self.forward_layer.cell, self.backward_layer.cell)


def bilstm(x: tf.Tensor, lengths: tf.Tensor, forward_cell: tf.keras.layers.LSTMCell,
           backward_cell: tf.keras.layers.LSTMCell) -> tf.Tensor:
    """x [B,T,in], lengths [B] -> [B,T,2u]: forward then backward hidden states, zero at t >= length."""
    u = forward_cell.units
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    kernel = tf.concat([forward_cell.kernel, backward_cell.kernel], axis=1)  # [in,2G]
    bias = tf.concat([forward_cell.bias, backward_cell.bias], axis=0)
    zx = tf.nn.bias_add(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel), bias)
    zx_forward, zx_backward = tf.split(tf.reshape(zx, [batch, steps, 8 * u]), 2, axis=-1)  # [B,T,G] each
    lengths = tf.cast(lengths, tf.int32)
    # The backward direction reads each row's real steps in reverse from t = 0: padding stays at the end.
    zx_backward = tf.reverse_sequence(zx_backward, lengths, seq_axis=1, batch_axis=0)
    zx = tf.transpose(tf.stack([zx_forward, zx_backward]), [2, 0, 1, 3])  # [T,2,B,G]
    valid = tf.cast(tf.sequence_mask(lengths, steps), x.dtype)  # [B,T]
    valid = tf.transpose(valid)[:, tf.newaxis, :, tf.newaxis]  # [T,1,B,1]
    recurrent = tf.stack([forward_cell.recurrent_kernel, backward_cell.recurrent_kernel])  # [2,u,G]
    h = lstm_recurrence(zx, valid, recurrent)  # [T,2,B,u]
    h_forward, h_backward = tf.unstack(tf.transpose(h, [1, 2, 0, 3]))  # [B,T,u] each
    h_backward = tf.reverse_sequence(h_backward, lengths, seq_axis=1, batch_axis=0)
    return tf.concat([h_forward, h_backward], axis=-1)
