"""One Keras Transformer encoder for ALBERT (factorised embedding, shared layers), BERT and ERNIE.

Shapes: B batch, T time (tokens incl. [CLS]/[SEP]), E embedding width, H hidden size,
N attention heads, D = H / N head size, I intermediate (FFN) size.
Weight names follow the TF1 BERT/ALBERT scopes where they can, so checkpoint readers map
published tensors onto them with a flat table.
"""
from __future__ import annotations

import math
from typing import Optional

import tensorflow as tf

from albert_ner.config import EncoderConfig
from albert_ner.model.noise import SeededDropout

# Large negative added to attention logits of padded keys. Applied in float32, so it is safe
# under mixed precision (a -1e9 in float16 would overflow).
MASK_ADDER = -10000.0


def activation(name: str):
    """The activation function for a config's hidden_act."""
    if name == "gelu":
        return lambda x: tf.nn.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: tf.nn.gelu(x, approximate=True)
    if name == "relu":
        return tf.nn.relu
    raise ValueError(f"unknown activation {name!r}")


def _init(config: EncoderConfig) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.TruncatedNormal(stddev=config.initializer_range)


class Embeddings(tf.keras.layers.Layer):
    """Word + position + token-type embeddings, LayerNorm and dropout; ALBERT projection if set."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        c = config
        # Width at which position/type embeddings are added and normalised.
        self.width = c.embedding_size if c.embedding_layout == "project_last" else c.hidden_size
        self.layer_norm = tf.keras.layers.LayerNormalization(epsilon=c.layer_norm_eps, name="LayerNorm")
        self.dropout = SeededDropout(c.hidden_dropout_prob)
        self.projection_out: Optional[tf.keras.layers.Dense] = None
        if c.embedding_layout == "project_last":
            # Google ALBERT: bert/encoder/embedding_hidden_mapping_in (kernel [E,H] + bias [H]).
            self.projection_out = tf.keras.layers.Dense(
                c.hidden_size, kernel_initializer=_init(c), name="embedding_hidden_mapping_in")

    def build(self, input_shape):
        c = self.config
        self.word_embeddings = self.add_weight(
            "word_embeddings", shape=[c.vocab_size, c.embedding_size], initializer=_init(c))
        if c.embedding_layout == "project_first":
            # brightmart albert_zh: bert/embeddings/word_embeddings_2 [E,H], no bias.
            self.word_projection = self.add_weight(
                "word_embeddings_2", shape=[c.embedding_size, c.hidden_size], initializer=_init(c))
        self.position_embeddings = self.add_weight(
            "position_embeddings", shape=[c.max_position_embeddings, self.width], initializer=_init(c))
        self.token_type_embeddings = self.add_weight(
            "token_type_embeddings", shape=[c.type_vocab_size, self.width], initializer=_init(c))
        self.task_type_embeddings = None
        if c.task_type_vocab_size:
            # ERNIE 3.0: task id 0 for every token, as PaddleNLP and Hugging Face do by default.
            self.task_type_embeddings = self.add_weight(
                "task_type_embeddings", shape=[c.task_type_vocab_size, self.width], initializer=_init(c))
        super().build(input_shape)

    def call(self, token_ids: tf.Tensor, segment_ids: tf.Tensor, training=None) -> tf.Tensor:
        c = self.config
        x = tf.gather(self.word_embeddings, token_ids)  # [B,T,E]
        if c.embedding_layout == "project_first":
            x = tf.einsum("bte,eh->bth", x, self.word_projection)  # [B,T,H]
        seq_len = tf.shape(token_ids)[1]
        x = x + self.position_embeddings[None, :seq_len, :]
        x = x + tf.gather(self.token_type_embeddings, segment_ids)
        if self.task_type_embeddings is not None:
            x = x + self.task_type_embeddings[0]
        x = self.layer_norm(x)
        x = self.dropout(x, training=training)
        if self.projection_out is not None:
            x = self.projection_out(x)  # [B,T,H]
        return x


class SelfAttention(tf.keras.layers.Layer):
    """Multi-head scaled dot-product self-attention with flat [H,H] q/k/v/output kernels."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.num_heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        dense = lambda name: tf.keras.layers.Dense(c.hidden_size, kernel_initializer=_init(c), name=name)
        self.query, self.key, self.value = dense("query"), dense("key"), dense("value")
        self.output_dense = dense("output_dense")
        self.attention_dropout = SeededDropout(c.attention_probs_dropout_prob)

    def _heads(self, x: tf.Tensor) -> tf.Tensor:
        b, t = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(x, [b, t, self.num_heads, self.head_size])  # [B,T,N,D]

    def call(self, x: tf.Tensor, attention_bias: tf.Tensor, training=None) -> tf.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = tf.einsum("btnd,bsnd->bnts", q, k)  # [B,N,T,T]
        # Softmax in float32: stable under float16 and the mask constant cannot overflow.
        scores = tf.cast(scores, tf.float32) * (1.0 / math.sqrt(self.head_size)) + attention_bias
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), x.dtype)
        probs = self.attention_dropout(probs, training=training)
        context = tf.einsum("bnts,bsnd->btnd", probs, v)
        context = tf.reshape(context, tf.shape(x))  # [B,T,H]
        return self.output_dense(context)


class TransformerBlock(tf.keras.layers.Layer):
    """Attention + feed-forward sub-blocks, post-LN (BERT) or pre-LN (albert_zh xxlarge)."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.pre_ln = c.ln_type == "preln"
        self.attention = SelfAttention(c, name="attention")
        # In pre-LN checkpoints the same two LayerNorms are applied before each sub-block.
        self.attention_layer_norm = tf.keras.layers.LayerNormalization(
            epsilon=c.layer_norm_eps, name="attention_LayerNorm")
        self.intermediate = tf.keras.layers.Dense(
            c.intermediate_size, activation=activation(c.hidden_act), kernel_initializer=_init(c),
            name="intermediate")
        self.ffn_output = tf.keras.layers.Dense(c.hidden_size, kernel_initializer=_init(c), name="ffn_output")
        self.output_layer_norm = tf.keras.layers.LayerNormalization(
            epsilon=c.layer_norm_eps, name="output_LayerNorm")
        self.dropout = SeededDropout(c.hidden_dropout_prob)

    def call(self, x: tf.Tensor, attention_bias: tf.Tensor, training=None) -> tf.Tensor:
        if self.pre_ln:
            h = self.attention(self.attention_layer_norm(x), attention_bias, training=training)
            x = x + self.dropout(h, training=training)
            h = self.ffn_output(self.intermediate(self.output_layer_norm(x)))
            return x + self.dropout(h, training=training)
        h = self.attention(x, attention_bias, training=training)
        x = self.attention_layer_norm(x + self.dropout(h, training=training))
        h = self.ffn_output(self.intermediate(x))
        return self.output_layer_norm(x + self.dropout(h, training=training))


class TransformerEncoder(tf.keras.layers.Layer):
    """Token ids -> contextual vectors [B,T,H]; layers share weights by group as configured."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = Embeddings(config, name="embeddings")
        n_groups = config.num_layer_groups if config.num_hidden_layers else 0
        self.groups = [TransformerBlock(config, name=f"group_{g}") for g in range(n_groups)]

    def group_of_layer(self, layer_index: int) -> int:
        """Which weight group layer `layer_index` uses (Google ALBERT's contiguous grouping)."""
        return int(layer_index * len(self.groups) / self.config.num_hidden_layers)

    def call(self, token_ids: tf.Tensor, attention_mask: tf.Tensor, segment_ids: Optional[tf.Tensor] = None,
             training=None) -> tf.Tensor:
        if segment_ids is None:
            segment_ids = tf.zeros_like(token_ids)
        x = self.embeddings(token_ids, segment_ids, training=training)
        # [B,1,1,T] additive bias: 0 for real keys, MASK_ADDER for padding.
        bias = (1.0 - tf.cast(attention_mask, tf.float32))[:, None, None, :] * MASK_ADDER
        for i in range(self.config.num_hidden_layers):
            x = self.groups[self.group_of_layer(i)](x, bias, training=training)
        return x
