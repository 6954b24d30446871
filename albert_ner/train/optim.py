"""Optimisation: warmup + linear decay, AdamW per parameter group, dynamic loss scaling.

Two AdamW optimizers (encoder and head) give each group its own learning rate; one shared
dynamic loss scale keeps float16 gradients finite. Written here rather than with
tfa.optimizers.MultiOptimizer: tfa is end-of-life and its optimizers are the legacy kind.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import tensorflow as tf

NO_DECAY = ("LayerNorm", "layer_norm", "bias")


class WarmupLinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to peak over warmup_steps, then linear decay to 0 at total_steps."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.cast(self.warmup_steps, tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        down = tf.maximum(total - step, 0.0) / tf.maximum(total - warm, 1.0)
        if self.warmup_steps == 0:
            return self.peak * down
        factor = tf.where(step < warm, step / warm, down)
        return self.peak * factor

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def make_optimizer(peak_lr: float, weight_decay: float, warmup_steps: int, total_steps: int,
                   variables: Sequence[tf.Variable], name: str) -> tf.keras.optimizers.Optimizer:
    """AdamW with the schedule; no weight decay on LayerNorm parameters and biases; slots built."""
    opt = tf.keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(peak_lr, warmup_steps, total_steps),
        weight_decay=weight_decay, epsilon=1e-6, name=name)
    opt.exclude_from_weight_decay(var_names=list(NO_DECAY))
    opt.build(list(variables))
    return opt


class DynamicLossScale(tf.Module):
    """Loss scale for float16: halve on non-finite gradients, double after `period` finite steps."""

    def __init__(self, initial: float = 2.0 ** 15, period: int = 2000):
        super().__init__(name="loss_scale")
        self.scale = tf.Variable(initial, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.period = period

    def unscale(self, grads: Sequence) -> Tuple[List, tf.Tensor]:
        """Divide gradients by the scale; also say whether all of them are finite."""
        inv = 1.0 / self.scale
        out, finite = [], tf.constant(True)
        for g in grads:
            if g is None:
                out.append(None)
                continue
            if isinstance(g, tf.IndexedSlices):
                g = tf.IndexedSlices(g.values * tf.cast(inv, g.values.dtype), g.indices, g.dense_shape)
                values = g.values
            else:
                g = g * tf.cast(inv, g.dtype)
                values = g
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(values)))
            out.append(g)
        return out, finite

    def update(self, finite: tf.Tensor) -> None:
        """Adjust the scale after a step, without control flow (XLA-friendly)."""
        grown = self.good_steps + 1 >= self.period
        new_scale = tf.where(finite, tf.where(grown, self.scale * 2.0, self.scale),
                             tf.maximum(self.scale / 2.0, 1.0))
        new_good = tf.where(finite, tf.where(grown, tf.constant(0, tf.int64), self.good_steps + 1),
                            tf.constant(0, tf.int64))
        self.scale.assign(new_scale)
        self.good_steps.assign(new_good)
