"""In-process prediction with a NerTagger: the windowed tagger over compiled decode functions."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from albert_ner.data.features import Featurizer
from albert_ner.infer.windowed import INPUT_KEYS, WindowedTagger
from albert_ner.model.tagger import NerTagger

__all__ = ["INPUT_KEYS", "Predictor"]


class Predictor(WindowedTagger):
    """Tags sentences with an in-memory NerTagger (optionally XLA-compiled)."""

    def __init__(self, model: NerTagger, featurizer: Featurizer, batch_size: int = 64,
                 window_overlap: Optional[int] = None, jit: bool = True):
        decode = tf.function(model.decode, jit_compile=jit, reduce_retracing=True)
        decode_confidence = tf.function(model.decode_with_confidence, jit_compile=jit, reduce_retracing=True)

        def run(inputs: Dict[str, np.ndarray], confidence: bool) -> Dict[str, np.ndarray]:
            tensors = {k: tf.constant(v) for k, v in inputs.items()}
            if confidence:
                return {k: v.numpy() for k, v in decode_confidence(tensors).items()}
            return {"tags": decode(tensors).numpy()}

        super().__init__(run, featurizer, model.config.labels, model.config.max_seq_len, batch_size, window_overlap)
        self.model = model
