"""Optimisation: warmup + linear decay, AdamW per parameter group, dynamic loss scaling.

Two AdamW optimizers (encoder and head) give each group its own learning rate; one shared
dynamic loss scale keeps float16 gradients finite. Written here rather than with
tfa.optimizers.MultiOptimizer: tfa is end-of-life and its optimizers are the legacy kind.
The AdamW is Keras' with each variable's update (weight decay, both moments, the step) fused into one
XLA kernel: Keras runs it as about ten separate passes over every variable, the larger part of the
optimizer's time on CPU (the 21128 x 512 embedding table alone is 43 MB).
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


@tf.function(jit_compile=True)
def _adamw_dense(variable, m, v, gradient, decay, alpha, beta_1, beta_2, epsilon):
    """Keras AdamW's dense update in one kernel: decay (lr * weight_decay, or 0), moments, step."""
    variable.assign_sub(variable * decay)
    m.assign_add((gradient - m) * (1 - beta_1))
    v.assign_add((tf.square(gradient) - v) * (1 - beta_2))
    variable.assign_sub((m * alpha) / (tf.sqrt(v) + epsilon))


@tf.function(jit_compile=True)
def _adamw_sparse(variable, m, v, values, indices, decay, alpha, beta_1, beta_2, epsilon):
    """Keras AdamW's update for an IndexedSlices gradient (every row's moments decay; repeated rows add up)."""
    variable.assign_sub(variable * decay)
    m.assign_add(-m * (1 - beta_1))
    m.scatter_add(tf.IndexedSlices(values * (1 - beta_1), indices))
    v.assign_add(-v * (1 - beta_2))
    v.scatter_add(tf.IndexedSlices(tf.square(values) * (1 - beta_2), indices))
    variable.assign_sub((m * alpha) / (tf.sqrt(v) + epsilon))


def _local_copy(slot, variable):
    """Under a distribution strategy, the slot's copy on the device of `variable` (the copy being updated); the
    fused kernels are traced once, so a mirrored slot passed whole would resolve to one device's copy for all."""
    if isinstance(slot, tf.distribute.DistributedValues):
        return next(c for c in slot.values if c.device == variable.device)
    return slot


class FusedAdamW(tf.keras.optimizers.AdamW):
    """tf.keras AdamW (same slots, checkpoints, hyper-parameters and arithmetic) whose weight decay and
    update of a variable run as one XLA-compiled kernel instead of separate ops (amsgrad not supported)."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("FusedAdamW does not implement amsgrad")
        super().__init__(*args, **kwargs)

    def _apply_weight_decay(self, variables):
        """Nothing here: update_step decays each variable just before its update, as Keras' order gives."""

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), local_step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        decay = lr * tf.cast(self.weight_decay, dtype) if self.weight_decay and self._use_weight_decay(variable) \
            else tf.zeros([], dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = _local_copy(self._momentums[index], variable), _local_copy(self._velocities[index], variable)
        hyper = [tf.cast(x, dtype) for x in (self.beta_1, self.beta_2, self.epsilon)]
        if isinstance(gradient, tf.IndexedSlices):
            _adamw_sparse(variable, m, v, gradient.values, gradient.indices, decay, alpha, *hyper)
        else:
            _adamw_dense(variable, m, v, gradient, decay, alpha, *hyper)


def make_optimizer(peak_lr: float, weight_decay: float, warmup_steps: int, total_steps: int,
                   variables: Sequence[tf.Variable], name: str) -> tf.keras.optimizers.Optimizer:
    """AdamW (FusedAdamW) with the schedule; no weight decay on LayerNorm parameters and biases; slots built."""
    opt = FusedAdamW(
        learning_rate=WarmupLinearDecay(peak_lr, warmup_steps, total_steps),
        weight_decay=weight_decay, epsilon=1e-6, jit_compile=False, name=name)
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
