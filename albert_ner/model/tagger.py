"""The NER model: Transformer encoder -> [word-boundary features] -> [BiLSTM] -> dense -> CRF.

Shapes: B batch, T padded tokens incl. [CLS] and [SEP], C = T - 2 character positions,
H encoder width, K tags. Inputs are a dict of
  token_ids       [B,T] int32   [CLS] c_1 .. c_n [SEP] 0 ..
  lengths         [B]   int32   n, the number of characters (0 for a padding row)
  word_boundaries [B,C] int32   jieba B/M/E/S ids 1..4, 0 for padding (only if lexicon_dim > 0)
  pos_ids         [B,C] int32   jieba POS id of each char's word, 0 for padding (only if pos_dim > 0)
  bigram_ids      [B,C] int32   id of each char's bigram with its right neighbour (only if bigram_dim > 0)
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from albert_ner.config import ModelConfig
from albert_ner.data.lexicon import NUM_BOUNDARY_IDS, NUM_POS_IDS
from albert_ner.data.pipeline import CHAR_FEATURES
from albert_ner.model.encoder import TransformerEncoder
from albert_ner.model.lstm import BiLSTM
from albert_ner.model.noise import SeededDropout
from crf import CRF, crf_marginals


class NerTagger(tf.keras.Model):
    """Encoder plus BiLSTM-CRF head; `call` returns float32 CRF potentials [B,C,K]."""

    def __init__(self, config: ModelConfig, **kwargs):
        kwargs.setdefault("name", "ner_tagger")  # stable variable names across instances
        super().__init__(**kwargs)
        self.config = config
        head = config.head
        self.encoder = TransformerEncoder(config.encoder, name="encoder")

        def embedding(rows: int, dim: int, name: str):
            return tf.keras.layers.Embedding(rows, dim, name=name) if dim else None

        self.lexicon_embedding = embedding(NUM_BOUNDARY_IDS, head.lexicon_dim, "word_boundary_embedding")
        self.pos_embedding = embedding(NUM_POS_IDS, head.pos_dim, "pos_embedding")
        self.bigram_embedding = embedding(head.bigram_vocab_size, head.bigram_dim, "bigram_embedding")
        self.bilstm = None
        if head.lstm_units:
            # Keras' Bidirectional(RNN(LSTMCell)) variables and checkpoint paths, computed by model/lstm.py.
            self.bilstm = BiLSTM(head.lstm_units, name="bilstm")
        self.input_dropout = SeededDropout(head.input_dropout)
        self.head_dropout = SeededDropout(head.dropout)
        # Potentials in float32 whatever the precision policy: the CRF needs the range.
        self.classifier = tf.keras.layers.Dense(len(config.labels), dtype="float32", name="classifier")
        self.crf = CRF(len(config.labels), name="crf")

    def feature_embeddings(self):
        """(input name, embedding layer) for every per-character feature this model uses, in concat order."""
        layers = {"word_boundaries": self.lexicon_embedding, "pos_ids": self.pos_embedding,
                  "bigram_ids": self.bigram_embedding}
        return [(name, layers[name]) for name in CHAR_FEATURES if layers[name] is not None]

    @property
    def encoder_variables(self):
        return self.encoder.trainable_variables

    @property
    def head_variables(self):
        encoder_ids = {id(v) for v in self.encoder.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in encoder_ids]

    def call(self, inputs: Dict[str, tf.Tensor], training=None) -> tf.Tensor:
        token_ids = inputs["token_ids"]
        lengths = tf.cast(inputs["lengths"], tf.int32)
        total = tf.shape(token_ids)[1]
        token_mask = tf.sequence_mask(lengths + 2, total)  # [B,T]: [CLS] chars [SEP]
        x = self.encoder(token_ids, token_mask, training=training)[:, 1:-1, :]  # [B,C,H]
        char_mask = tf.sequence_mask(lengths, total - 2)  # [B,C]
        features = [tf.cast(layer(inputs[name]), x.dtype) for name, layer in self.feature_embeddings()]
        if features:
            x = tf.concat([x] + features, axis=-1)
        x = self.input_dropout(x, training=training)
        if self.bilstm is not None:
            x = self.bilstm(x, mask=char_mask, training=training)
        x = self.head_dropout(x, training=training)
        return self.classifier(x)  # [B,C,K] float32

    def nll_loss(self, inputs: Dict[str, tf.Tensor], labels: tf.Tensor, training: bool = True) -> tf.Tensor:
        """Mean CRF negative log-likelihood over the real rows of the batch."""
        lengths = tf.cast(inputs["lengths"], tf.int32)
        potentials = self(inputs, training=training)
        nll = -self.crf.log_likelihood(potentials, labels, lengths)  # [B]
        real_rows = tf.reduce_sum(tf.cast(lengths > 0, tf.float32))
        return tf.reduce_sum(nll) / tf.maximum(real_rows, 1.0)

    def decode(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Viterbi tag ids [B,C] (0 beyond each row's length)."""
        potentials = self(inputs, training=False)
        return self.crf(potentials, tf.cast(inputs["lengths"], tf.int32))

    def decode_with_confidence(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Viterbi tag ids [B,C] and each tag's CRF marginal probability [B,C] (0 beyond each length)."""
        potentials = self(inputs, training=False)
        lengths = tf.cast(inputs["lengths"], tf.int32)
        tags = self.crf(potentials, lengths)
        marginals = crf_marginals(potentials, lengths, self.crf.transitions)  # [B,C,K]
        confidence = tf.gather(marginals, tags[:, :, tf.newaxis], batch_dims=2)[:, :, 0]
        return {"tags": tags, "confidence": confidence}

    def dummy_inputs(self, batch: int = 1, chars: int = 4) -> Dict[str, tf.Tensor]:
        """A minimal batch used to build all weights before restoring a checkpoint."""
        inputs = {
            "token_ids": tf.zeros([batch, chars + 2], tf.int32),
            "lengths": tf.fill([batch], chars),
        }
        for name, _ in self.feature_embeddings():
            inputs[name] = tf.zeros([batch, chars], tf.int32)
        return inputs

    def build_weights(self) -> None:
        """Create every variable (encoder, head and CRF) by running a dummy batch."""
        inputs = self.dummy_inputs()
        potentials = self(inputs, training=False)
        self.crf.log_likelihood(potentials, tf.zeros(tf.shape(potentials)[:2], tf.int32), inputs["lengths"])
