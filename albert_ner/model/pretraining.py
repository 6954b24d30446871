"""The pretraining model: the NER encoder plus a tied MLM head and an optional pooler + SOP classifier.

Shapes: B batch, T tokens ([CLS] A [SEP] B [SEP], 0-padded), H hidden size, E embedding size,
W the MLM transform's width (E for Google ALBERT's project_last layout, else H), V vocab size,
K scored positions per batch. Batch fields (pretrain/examples.py):
  token_ids   [B,T] int32  masked input ids          segment_ids [B,T] int32  0 for A, 1 for B
  lengths     [B]   int32  real tokens incl. specials (0: a padding row)
  mlm_labels  [B,T] int32  original id where masked, -1 elsewhere
  sop_labels  [B]   int32  1 when A and B were swapped (only with SOP)

The decoder is tied to the encoder's word table (brightmart's layout: through its projection,
h . P^T . W^T), as in BERT/ALBERT/ERNIE pretraining. Vocab logits are computed only for the masked
positions: the first K masked positions of the batch are gathered into a static [K,H] block, so
shapes stay static under XLA while the [*, V] matmul (the largest part of a small encoder's step)
shrinks to the ~15% of positions that are scored. K = B x max_predictions when the masker caps
predictions per row, else ceil(prediction_share x B x T); masked positions beyond K (none with
15% masking and share 0.25) are not scored and are counted in the `mlm_overflow` metric.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import tensorflow as tf

from albert_ner.config import EncoderConfig
from albert_ner.model.encoder import Embeddings, TransformerEncoder, activation

DEFAULT_PREDICTION_SHARE = 0.25  # of B x T positions scored when the masker states no per-row cap
METRIC_NAMES = ("mlm_loss", "mlm_accuracy", "masked_tokens", "mlm_overflow", "sop_loss", "sop_accuracy")


def _init(config: EncoderConfig) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def mlm_width(config: EncoderConfig) -> int:
    """Width of the MLM transform: E for Google ALBERT (decoded by W^T directly), else H."""
    return config.embedding_size if config.embedding_layout == "project_last" else config.hidden_size


class MaskedLmTransform(tf.keras.layers.Layer):
    """The MLM head's transform: dense H -> W, the encoder's activation, LayerNorm (compute dtype)."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.dense = tf.keras.layers.Dense(mlm_width(config), activation=activation(config.hidden_act),
                                           kernel_initializer=_init(config), name="transform")
        self.layer_norm = tf.keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="LayerNorm")

    def call(self, hidden: tf.Tensor) -> tf.Tensor:
        return self.layer_norm(self.dense(hidden))


class TiedDecoder(tf.keras.layers.Layer):
    """Vocab logits from the transform's output: x [.., W] -> x . (P^T) . W^T + output_bias, float32.

    The tied tables belong to the encoder; this layer holds only the output bias. It runs in float32,
    so under a mixed policy the tables are read in float32 and the logits (and softmax) keep their range.
    """

    def __init__(self, embeddings: Embeddings, config: EncoderConfig, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.config = config
        self._tied = lambda: embeddings  # a function, so the encoder's tables are not tracked twice

    def build(self, input_shape):
        self.output_bias = self.add_weight("output_bias", shape=[self.config.vocab_size],
                                           initializer="zeros")
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        embeddings = self._tied()
        if self.config.embedding_layout == "project_first":
            x = tf.matmul(x, embeddings.word_projection, transpose_b=True)  # [K,H] -> [K,E]
        return tf.matmul(x, embeddings.word_embeddings, transpose_b=True) + self.output_bias  # [K,V]


class PretrainingModel(tf.keras.Model):
    """TransformerEncoder "encoder" + tied MLM head (+ pooler and SOP classifier when `sop`).

    `max_predictions`: the masker's per-row cap on masked tokens, if it has one (then no masked
    position is ever left unscored); `prediction_share` sizes the scored block otherwise, and a share
    >= 1 scores every position (dense, no gather).
    """

    def __init__(self, encoder_config: EncoderConfig, sop: bool, max_predictions: Optional[int] = None,
                 prediction_share: float = DEFAULT_PREDICTION_SHARE, **kwargs):
        kwargs.setdefault("name", "pretraining_model")  # stable variable names across instances
        super().__init__(**kwargs)
        if max_predictions is not None and (isinstance(max_predictions, bool) or not isinstance(max_predictions, int)
                                            or max_predictions < 1):
            raise ValueError(f"max_predictions must be a positive integer or None, got {max_predictions!r}")
        if not (isinstance(prediction_share, (int, float)) and 0.0 < prediction_share):
            raise ValueError(f"prediction_share must be a number > 0, got {prediction_share!r}")
        self.config = encoder_config
        self.sop = bool(sop)
        self.max_predictions = max_predictions
        self.prediction_share = float(prediction_share)
        self.encoder = TransformerEncoder(encoder_config, name="encoder")
        self.mlm_transform = MaskedLmTransform(encoder_config, name="mlm_transform")
        self.mlm_decoder = TiedDecoder(self.encoder.embeddings, encoder_config, name="mlm_decoder")
        self.pooler: Optional[tf.keras.layers.Dense] = None
        self.sop_classifier: Optional[tf.keras.layers.Dense] = None
        if self.sop:
            self.pooler = tf.keras.layers.Dense(encoder_config.hidden_size, activation="tanh",
                                                kernel_initializer=_init(encoder_config), name="pooler")
            # kernel [H,2]; float32 logits
            self.sop_classifier = tf.keras.layers.Dense(2, kernel_initializer=_init(encoder_config),
                                                        dtype="float32", name="sop_classifier")

    # ---- forward pieces ----------------------------------------------------------------------
    def encode(self, batch: Dict[str, tf.Tensor], training=None) -> tf.Tensor:
        """Encoder output [B,T,H] for a batch's token_ids, segment_ids and lengths."""
        token_ids = batch["token_ids"]
        mask = tf.sequence_mask(tf.cast(batch["lengths"], tf.int32), tf.shape(token_ids)[1])
        segment_ids = batch.get("segment_ids")
        return self.encoder(token_ids, mask, segment_ids, training=training)

    def mlm_logits(self, hidden: tf.Tensor) -> tf.Tensor:
        """Vocab logits, float32 [..., V], for encoder vectors [..., H] of any leading shape."""
        flat = tf.reshape(hidden, [-1, self.config.hidden_size])  # the head's layers always see rank 2
        logits = self.mlm_decoder(self.mlm_transform(flat))  # [N,V]
        return tf.reshape(logits, tf.concat([tf.shape(hidden)[:-1], [self.config.vocab_size]], 0))

    def pooled(self, hidden: tf.Tensor) -> tf.Tensor:
        """tanh(dense([CLS] vector)) [B,H]."""
        self._need_sop()
        return self.pooler(hidden[:, 0, :])

    def sop_logits(self, hidden: tf.Tensor) -> tf.Tensor:
        """Sentence-order logits [B,2] float32 from the encoder output."""
        return self.sop_classifier(self.pooled(hidden))

    def call(self, inputs: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """Logits at every position (inference and checks): mlm_logits [B,T,V] (+ sop_logits [B,2])."""
        hidden = self.encode(inputs, training=training)
        out = {"mlm_logits": self.mlm_logits(hidden)}
        if self.sop:
            out["sop_logits"] = self.sop_logits(hidden)
        return out

    # ---- loss --------------------------------------------------------------------------------
    def prediction_capacity(self, batch_size: int, seq_len: int) -> int:
        """K, how many masked positions a [batch_size, seq_len] batch scores (all when K = B*T)."""
        positions = batch_size * seq_len
        if self.max_predictions is not None:
            return min(positions, batch_size * self.max_predictions)
        if self.prediction_share >= 1.0:
            return positions
        return max(1, min(positions, math.ceil(self.prediction_share * positions)))

    def _mlm_terms(self, hidden: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(sum of CE, sum of correct, count) over the positions of hidden [K,H] whose label is >= 0."""
        logits = self.mlm_logits(hidden)  # [K,V] float32
        scored = tf.cast(labels >= 0, tf.float32)
        safe = tf.maximum(labels, 0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), safe), tf.float32)
        return tf.reduce_sum(ce * scored), tf.reduce_sum(correct * scored), tf.reduce_sum(scored)

    def _masked_positions(self, labels: tf.Tensor, capacity: int) -> tf.Tensor:
        """Flat indices [capacity] of the batch's masked positions in order, then unmasked ones."""
        order = tf.argsort(tf.cast(labels < 0, tf.int32), stable=True)
        return order[:capacity]

    def loss_and_metrics(self, batch: Dict[str, tf.Tensor], training: bool
                         ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """(mean MLM cross-entropy over scored masked tokens + SOP cross-entropy when on, float32 metrics)."""
        hidden = self.encode(batch, training=training)  # [B,T,H]
        labels = tf.cast(batch["mlm_labels"], tf.int32)
        b, t = hidden.shape[0], hidden.shape[1]
        if b is None or t is None:  # no static shape: fall back to the run-time one (never under XLA)
            b, t = tf.shape(hidden)[0], tf.shape(hidden)[1]
        flat_hidden = tf.reshape(hidden, [-1, hidden.shape[-1]])  # [B*T,H]
        flat_labels = tf.reshape(labels, [-1])
        masked_total = tf.reduce_sum(tf.cast(flat_labels >= 0, tf.float32))
        if isinstance(b, int) and isinstance(t, int) and self.prediction_capacity(b, t) < b * t:
            index = self._masked_positions(flat_labels, self.prediction_capacity(b, t))
            flat_hidden, flat_labels = tf.gather(flat_hidden, index), tf.gather(flat_labels, index)
        ce_sum, correct, scored = self._mlm_terms(flat_hidden, flat_labels)
        denominator = tf.maximum(scored, 1.0)
        mlm_loss = ce_sum / denominator
        metrics = {"mlm_loss": mlm_loss, "mlm_accuracy": correct / denominator, "masked_tokens": scored,
                   "mlm_overflow": masked_total - scored}
        loss = mlm_loss
        if self.sop:
            if "sop_labels" not in batch:
                raise KeyError("the model predicts sentence order (sop=True), but the batch has no sop_labels")
            logits = self.sop_logits(hidden)  # [B,2] float32
            sop_labels = tf.cast(batch["sop_labels"], tf.int32)
            # Only rows holding a sentence pair are scored: padding rows and 1-token chunks (no B segment)
            # would otherwise teach the trivial "in order".
            pairs = tf.logical_and(tf.cast(batch["lengths"], tf.int32) > 0,
                                   tf.reduce_any(tf.equal(tf.cast(batch["segment_ids"], tf.int32), 1), axis=1))
            rows = tf.cast(pairs, tf.float32)
            n_rows = tf.maximum(tf.reduce_sum(rows), 1.0)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sop_labels, logits=logits)
            hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), sop_labels), tf.float32)
            sop_loss = tf.reduce_sum(ce * rows) / n_rows
            metrics.update(sop_loss=sop_loss, sop_accuracy=tf.reduce_sum(hits * rows) / n_rows)
            loss = loss + sop_loss
        else:
            metrics.update(sop_loss=tf.zeros([], tf.float32), sop_accuracy=tf.zeros([], tf.float32))
        return loss, {k: tf.cast(v, tf.float32) for k, v in metrics.items()}

    # ---- building ----------------------------------------------------------------------------
    def dummy_batch(self, batch: int = 1, seq_len: int = 4) -> Dict[str, tf.Tensor]:
        """A minimal batch that creates every weight."""
        zeros = tf.zeros([batch, seq_len], tf.int32)
        return {"token_ids": zeros, "segment_ids": zeros, "lengths": tf.fill([batch], seq_len)}

    def build_weights(self) -> None:
        """Create every variable (encoder and heads) by running a dummy batch."""
        self(self.dummy_batch(), training=False)

    def _need_sop(self) -> None:
        if not self.sop:
            raise ValueError("this pretraining model has no SOP head (built with sop=False)")

    @property
    def head_variables(self):
        """Trainable variables of the heads (the tied word table is the encoder's)."""
        encoder_ids = {id(v) for v in self.encoder.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in encoder_ids]
