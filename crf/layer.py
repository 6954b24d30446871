"""Keras layer holding a float32 CRF transition matrix; decodes in call(), scores via log_likelihood()."""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf

from .ops import TensorLike, crf_decode, crf_log_likelihood


class CRF(tf.keras.layers.Layer):
    """Linear-chain CRF over [B, T, K] potentials with a learned [K, K] `transitions` weight.

    The layer always runs in float32 (its dtype policy is pinned to "float32"), so under a
    global ``mixed_float16`` policy the transitions are a plain float32 variable (not an
    AutoCastVariable) and float16 potentials are cast to float32 before any CRF math.
    """

    def __init__(self, num_tags: int, **kwargs: Any) -> None:
        # Any dtype / policy passed in (e.g. from a serialized config) is overridden:
        # CRF math is float32 only.
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if int(num_tags) < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = int(num_tags)
        self.transitions: tf.Variable | None = None

    def build(self, input_shape: Any = None) -> None:
        """Create the float32 [K, K] transitions weight."""
        if input_shape is not None:
            last = tf.TensorShape(input_shape)[-1] if tf.TensorShape(input_shape).rank else None
            if last is not None and int(last) != self.num_tags:
                raise ValueError(f"potentials have {last} tags but the CRF was built for {self.num_tags}")
        self.transitions = self.add_weight(
            name="transitions",
            shape=(self.num_tags, self.num_tags),
            dtype="float32",
            initializer="glorot_uniform",
            trainable=True,
        )
        super().build(input_shape)

    def _ensure_built(self, potentials: TensorLike) -> None:
        if not self.built:
            shape = getattr(potentials, "shape", None)
            with tf.init_scope():
                self.build(tf.TensorShape(shape) if shape is not None else None)

    def call(self, potentials: TensorLike, lengths: TensorLike) -> tf.Tensor:
        """Viterbi-decode potentials [B,T,K] -> tags [B,T] int32 (zero past each length)."""
        tags, _ = crf_decode(potentials, lengths, self.transitions)
        return tags

    def log_likelihood(self, potentials: TensorLike, tags: TensorLike, lengths: TensorLike) -> tf.Tensor:
        """Per-sequence log-likelihood [B] (float32) of gold `tags`; builds the layer if needed."""
        self._ensure_built(potentials)
        return crf_log_likelihood(potentials, tags, lengths, self.transitions)

    def get_config(self) -> Dict[str, Any]:
        """Serializable config (includes num_tags)."""
        config = super().get_config()
        config.update({"num_tags": self.num_tags})
        return config
