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
from albert_ner.model.gelu import gelu_exact, gelu_tanh
from albert_ner.model.layer_norm import layer_norm
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


def training_activation(name: str):
    """The same function for the train step: GELU as fused XLA kernels (model/gelu.py); graph-only ops at inference,
    so exported models need no XLA."""
    return {"gelu": gelu_exact, "gelu_tanh": gelu_tanh}.get(name) or activation(name)


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


def build_sublayer(layer: tf.keras.layers.Layer, input_dim: int) -> None:
    """Create a Dense or LayerNormalization layer's variables under its own name scope, as calling it would,
    without calling it: the encoder computes with the variables itself (2-D, fused) while names, shapes and
    checkpoints stay Keras'."""
    if not layer.built:
        with tf.name_scope(layer.name):
            layer.build(tf.TensorShape([None, input_dim]))


def dense(x: tf.Tensor, layer: tf.keras.layers.Dense) -> tf.Tensor:
    """x [M,in] @ kernel + bias as one MatMul + BiasAdd (which grappler fuses), and the layer's activation."""
    with tf.name_scope(layer.name):
        return layer.activation(tf.nn.bias_add(tf.matmul(x, layer.kernel), layer.bias))


class SelfAttention(tf.keras.layers.Layer):
    """Multi-head scaled dot-product self-attention with flat [H,H] q/k/v/output kernels.

    Activations are 2-D [B*T,H]. q, k and v come from one [H,3H] matmul whose kernel is the three kernels
    concatenated each step (the variables stay separate: loaders and checkpoints address them), with the
    1/sqrt(D) scale folded into the query part; scores and context are batched matmuls over [B,N,T,D], with
    one 4-D transpose for q, k and v together (a 5-D one, or einsum, measured slower on CPU)."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.hidden_size = c.hidden_size
        self.num_heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        dense_layer = lambda name: tf.keras.layers.Dense(c.hidden_size, kernel_initializer=_init(c), name=name)
        self.query, self.key, self.value = dense_layer("query"), dense_layer("key"), dense_layer("value")
        self.output_dense = dense_layer("output_dense")
        self.attention_dropout = SeededDropout(c.attention_probs_dropout_prob)

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value, self.output_dense):
            build_sublayer(layer, self.hidden_size)
        super().build(input_shape)

    def call(self, x: tf.Tensor, attention_bias: tf.Tensor, batch: tf.Tensor, training=None) -> tf.Tensor:
        """x [B*T,H] (rows of `batch` sequences), attention_bias [B,1,1,T] float32 -> [B*T,H]."""
        n, d = self.num_heads, self.head_size
        scale = 1.0 / math.sqrt(d)  # a Python float: the kernels are read in the compute dtype
        kernel = tf.concat([self.query.kernel * scale, self.key.kernel, self.value.kernel], axis=1)  # [H,3H]
        bias = tf.concat([self.query.bias * scale, self.key.bias, self.value.bias], axis=0)
        qkv = tf.nn.bias_add(tf.matmul(x, kernel), bias)  # [B*T,3H]
        qkv = tf.transpose(tf.reshape(qkv, [batch, -1, 3 * n, d]), [0, 2, 1, 3])  # [B,3N,T,D]
        q, k, v = tf.split(qkv, 3, axis=1)  # [B,N,T,D] each
        scores = tf.matmul(q, k, transpose_b=True)  # [B,N,T,T], already scaled
        # Softmax in float32: stable under float16 and the mask constant cannot overflow.
        probs = tf.cast(tf.nn.softmax(tf.cast(scores, tf.float32) + attention_bias, axis=-1), x.dtype)
        probs = self.attention_dropout(probs, training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B,T,N,D]
        return dense(tf.reshape(context, [-1, self.hidden_size]), self.output_dense)


class TransformerBlock(tf.keras.layers.Layer):
    """Attention + feed-forward sub-blocks, post-LN (BERT) or pre-LN (albert_zh xxlarge)."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        c = self.config = config
        self.pre_ln = c.ln_type == "preln"
        self.attention = SelfAttention(c, name="attention")
        # In pre-LN checkpoints the same two LayerNorms are applied before each sub-block.
        self.attention_layer_norm = tf.keras.layers.LayerNormalization(
            epsilon=c.layer_norm_eps, name="attention_LayerNorm")
        self.intermediate = tf.keras.layers.Dense(
            c.intermediate_size, activation=activation(c.hidden_act), kernel_initializer=_init(c),
            name="intermediate")
        self.train_activation = training_activation(c.hidden_act)
        self.ffn_output = tf.keras.layers.Dense(c.hidden_size, kernel_initializer=_init(c), name="ffn_output")
        self.output_layer_norm = tf.keras.layers.LayerNormalization(
            epsilon=c.layer_norm_eps, name="output_LayerNorm")
        self.dropout = SeededDropout(c.hidden_dropout_prob)

    def build(self, input_shape):
        c = self.config
        for layer, width in ((self.intermediate, c.hidden_size), (self.ffn_output, c.intermediate_size),
                             (self.attention_layer_norm, c.hidden_size), (self.output_layer_norm, c.hidden_size)):
            build_sublayer(layer, width)
        super().build(input_shape)

    def call(self, x: tf.Tensor, attention_bias: tf.Tensor, batch: tf.Tensor, training=None) -> tf.Tensor:
        """x [B*T,H] -> [B*T,H]. Training uses the fused XLA kernels for LayerNorm and GELU (model/layer_norm.py,
        model/gelu.py); inference the plain ops, so exported models need no XLA."""
        if training is True:
            norm = layer_norm
        else:
            norm = lambda h, layer: layer(h)  # noqa: E731
        if self.pre_ln:
            h = self.attention(norm(x, self.attention_layer_norm), attention_bias, batch, training=training)
            x = x + self.dropout(h, training=training)
            h = self.feed_forward(norm(x, self.output_layer_norm), training)
            return x + self.dropout(h, training=training)
        h = self.attention(x, attention_bias, batch, training=training)
        x = norm(x + self.dropout(h, training=training), self.attention_layer_norm)
        h = self.feed_forward(x, training)
        return norm(x + self.dropout(h, training=training), self.output_layer_norm)

    def feed_forward(self, x: tf.Tensor, training) -> tf.Tensor:
        """[M,H] -> [M,H]: intermediate dense, activation, output dense."""
        layer = self.intermediate
        with tf.name_scope(layer.name):
            h = tf.nn.bias_add(tf.matmul(x, layer.kernel), layer.bias)
            h = self.train_activation(h) if training is True else layer.activation(h)
        return dense(h, self.ffn_output)


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
        if not self.config.num_hidden_layers:
            return x
        shape = tf.shape(x)
        x = tf.reshape(x, [-1, self.config.hidden_size])  # [B*T,H]: every matmul of the blocks is 2-D
        for i in range(self.config.num_hidden_layers):
            x = self.groups[self.group_of_layer(i)](x, bias, shape[0], training=training)
        return tf.reshape(x, shape)
