"""Dropout whose masks are a function of a per-step seed, so a resumed run draws the masks it would have drawn.

Keras' Dropout draws from an op-level random state that no checkpoint holds: a run stopped and
resumed continues with other masks than an uninterrupted one. Inside `step_seed(seed)` every
SeededDropout call instead uses a stateless mask seeded by `seed` folded with the call's position
in the forward pass (the n-th dropout call of the trace gets n), which the trainer derives from the
run seed and the checkpointed step. Outside `step_seed` (or with training off) it is Keras' Dropout.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional

import tensorflow as tf

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("albert_ner_step_seed", default=None)


class _StepNoise:
    """The step's seed and how many dropout calls have drawn from it in this trace."""

    def __init__(self, seed: tf.Tensor):
        self.seed = seed
        self.calls = 0

    def next_seed(self) -> tf.Tensor:
        self.calls += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.calls)


@contextlib.contextmanager
def step_seed(seed: tf.Tensor) -> Iterator[None]:
    """Seed every SeededDropout called (traced) inside the block with `seed` (shape [2], int32/int64)."""
    token = _ACTIVE.set(_StepNoise(tf.convert_to_tensor(seed)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _active() -> Optional[_StepNoise]:
    return _ACTIVE.get()


class SeededDropout(tf.keras.layers.Dropout):
    """tf.keras.layers.Dropout with a stateless mask inside `step_seed`; no weights, same config."""

    def call(self, inputs, training=None):
        noise = _active()
        if noise is None or not isinstance(training, bool) or not self.rate:
            return super().call(inputs, training=training)
        if not training:
            return tf.identity(inputs)
        return tf.nn.experimental.stateless_dropout(inputs, self.rate, seed=noise.next_seed(),
                                                    noise_shape=self._get_noise_shape(inputs))
