"""Linear-chain CRF ops (score, forward algorithm, Viterbi) that compile under XLA.

Shape legend used throughout this module:
    B  batch size
    T  (padded) sequence length, i.e. the time axis
    K  number of tags

    potentials   [B, T, K]  unary scores; float16 / bfloat16 / float32 (cast to float32)
    tags         [B, T]     integer tag ids
    lengths      [B]        integer number of valid positions per row (0 <= lengths[b] <= T)
    transitions  [K, K]     transitions[i, j] = score of moving from tag i to tag j
                            (tensor or tf.Variable)

Semantics match ``tensorflow_addons.text`` (no start/end transition vectors). All
arithmetic is done in float32. Positions at or beyond ``lengths[b]`` never contribute;
a row of length 0 has score 0, log-normaliser 0, log-likelihood 0 and decodes to zeros.

XLA notes: the time recursion uses ``tf.scan`` (never a Python-unrolled loop), there is no
``tf.cond`` on shapes (length-1 and length-0 rows are handled by masking), and a
``tf.Variable`` for ``transitions`` is converted to a tensor before any indexing.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

TensorLike = Union[tf.Tensor, tf.Variable, np.ndarray, Sequence]

__all__ = [
    "crf_sequence_score",
    "crf_log_norm",
    "crf_log_likelihood",
    "crf_decode",
    "crf_marginals",
]


# --------------------------------------------------------------------------- helpers


def _prepare(potentials: TensorLike, lengths: TensorLike, transitions: TensorLike):
    """Cast inputs to (float32 [B,T,K], int32 [B], float32 [K,K])."""
    potentials = tf.cast(tf.convert_to_tensor(potentials), tf.float32)
    lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int32)
    # convert_to_tensor reads a tf.Variable (gather/gather_nd on a resource variable
    # has no XLA kernel); the read stays differentiable.
    transitions = tf.cast(tf.convert_to_tensor(transitions), tf.float32)
    return potentials, lengths, transitions


def _num_tags(potentials: tf.Tensor, transitions: tf.Tensor):
    """Static K when known, otherwise a dynamic scalar."""
    k = transitions.shape[-1]
    if k is None:
        k = potentials.shape[-1]
    if k is None:
        k = tf.shape(potentials)[-1]
    return k


def _time_major(x: tf.Tensor) -> tf.Tensor:
    """[B, T, ...] -> [T, B, ...]."""
    rank = x.shape.rank
    perm = [1, 0] + list(range(2, rank))
    return tf.transpose(x, perm)


def _update_mask(lengths: tf.Tensor, max_len) -> tf.Tensor:
    """[T, B] bool: True where position t (t >= 1) is a valid step of the recursion."""
    valid = tf.sequence_mask(lengths, max_len)  # [B, T]
    not_first = tf.range(max_len) > 0  # [T]
    return tf.transpose(tf.logical_and(valid, not_first[tf.newaxis, :]))


# --------------------------------------------------------------------------- public API


def crf_sequence_score(
    potentials: TensorLike, tags: TensorLike, lengths: TensorLike, transitions: TensorLike
) -> tf.Tensor:
    """Unary + transition score [B] (float32) of the tag path `tags` over the first `lengths` positions."""
    potentials, lengths, transitions = _prepare(potentials, lengths, transitions)
    tags = tf.cast(tf.convert_to_tensor(tags), tf.int32)
    num_tags = _num_tags(potentials, transitions)
    max_len = tf.shape(potentials)[1]

    mask = tf.sequence_mask(lengths, max_len, dtype=tf.float32)  # [B, T]
    # one_hot of an out-of-range / negative padding tag is all zeros, so padding is harmless.
    one_hot = tf.one_hot(tags, num_tags, dtype=tf.float32)  # [B, T, K]

    unary = tf.reduce_sum(tf.reduce_sum(potentials * one_hot, axis=-1) * mask, axis=1)

    prev, nxt = one_hot[:, :-1, :], one_hot[:, 1:, :]  # [B, T-1, K]
    pair = tf.reduce_sum(tf.einsum("btk,kj->btj", prev, transitions) * nxt, axis=-1)  # [B, T-1]
    binary = tf.reduce_sum(pair * mask[:, 1:], axis=1)
    return unary + binary


def crf_log_norm(potentials: TensorLike, lengths: TensorLike, transitions: TensorLike) -> tf.Tensor:
    """Log partition function [B] (float32) by the forward algorithm; 0 for rows of length 0."""
    potentials, lengths, transitions = _prepare(potentials, lengths, transitions)
    alphas = _forward_alphas(potentials, lengths, transitions)  # [T, B, K]
    log_norm = tf.reduce_logsumexp(alphas[-1], axis=1)
    return tf.where(lengths > 0, log_norm, tf.zeros_like(log_norm))


def _forward_alphas(potentials: tf.Tensor, lengths: tf.Tensor, transitions: tf.Tensor) -> tf.Tensor:
    """Forward log-scores alpha_t [T, B, K]; beyond a row's length the last valid alpha is carried."""
    max_len = tf.shape(potentials)[1]
    elems = (_time_major(potentials), _update_mask(lengths, max_len))
    trans = transitions[tf.newaxis, :, :]  # [1, K, K]

    def step(alpha, inputs):
        unary_t, update_t = inputs  # [B, K], [B]
        # alpha[b, i] + trans[i, j], reduced over the previous tag i.
        new_alpha = tf.reduce_logsumexp(alpha[:, :, tf.newaxis] + trans, axis=1) + unary_t
        return tf.where(update_t[:, tf.newaxis], new_alpha, alpha)

    # Step t = 0 is always masked, so the state after it is potentials[:, 0]; this keeps
    # the scan non-empty for T == 1 without any tf.cond.
    return tf.scan(step, elems, initializer=potentials[:, 0, :])


def crf_marginals(potentials: TensorLike, lengths: TensorLike, transitions: TensorLike) -> tf.Tensor:
    """P(tag_t = k | sequence) [B, T, K] (float32) by forward-backward; 0 at and beyond each length."""
    potentials, lengths, transitions = _prepare(potentials, lengths, transitions)
    max_len = tf.shape(potentials)[1]
    alphas = _forward_alphas(potentials, lengths, transitions)  # [T, B, K]
    log_norm = tf.reduce_logsumexp(alphas[-1], axis=1)  # [B]

    # beta_t[i] = logsumexp_j(trans[i, j] + unary_{t+1}[j] + beta_{t+1}[j]) while t + 1 < length, else 0.
    # The (t + 1) inputs are shifted left by one and padded with an invalid step, so the reversed
    # scan has T elements (never empty) and beta_{T-1} = 0.
    valid = tf.sequence_mask(lengths, max_len)  # [B, T]
    next_unary = tf.concat([potentials[:, 1:], tf.zeros_like(potentials[:, :1])], axis=1)
    next_valid = tf.concat([valid[:, 1:], tf.zeros_like(valid[:, :1])], axis=1)

    def back(beta_next, inputs):
        unary_next, valid_next = inputs  # [B, K], [B]
        new_beta = tf.reduce_logsumexp(transitions[tf.newaxis] + (unary_next + beta_next)[:, tf.newaxis, :], axis=2)
        return tf.where(valid_next[:, tf.newaxis], new_beta, tf.zeros_like(new_beta))

    betas = tf.scan(back, (_time_major(next_unary), _time_major(next_valid)),
                    initializer=tf.zeros_like(potentials[:, 0, :]), reverse=True)  # [T, B, K]
    log_marginals = tf.transpose(alphas + betas, [1, 0, 2]) - log_norm[:, tf.newaxis, tf.newaxis]
    return tf.where(valid[:, :, tf.newaxis], tf.exp(log_marginals), tf.zeros_like(log_marginals))


def crf_log_likelihood(
    potentials: TensorLike, tags: TensorLike, lengths: TensorLike, transitions: TensorLike
) -> tf.Tensor:
    """Log-likelihood [B] (float32) of `tags`: sequence score minus log-normaliser."""
    potentials, lengths, transitions = _prepare(potentials, lengths, transitions)
    score = crf_sequence_score(potentials, tags, lengths, transitions)
    return score - crf_log_norm(potentials, lengths, transitions)


def crf_decode(
    potentials: TensorLike, lengths: TensorLike, transitions: TensorLike
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Viterbi decode: (best tags [B,T] int32, zero past each length; best score [B] float32)."""
    potentials, lengths, transitions = _prepare(potentials, lengths, transitions)
    num_tags = _num_tags(potentials, transitions)
    batch = tf.shape(potentials)[0]
    max_len = tf.shape(potentials)[1]

    identity = tf.broadcast_to(tf.range(num_tags, dtype=tf.int32)[tf.newaxis, :], [batch, num_tags])
    trans = transitions[tf.newaxis, :, :]  # [1, K, K]

    def forward(state, inputs):
        delta, _ = state
        unary_t, update_t = inputs
        scores = delta[:, :, tf.newaxis] + trans  # [B, K(prev), K(next)]
        best_prev = tf.argmax(scores, axis=1, output_type=tf.int32)  # [B, K]
        new_delta = tf.reduce_max(scores, axis=1) + unary_t
        upd = update_t[:, tf.newaxis]
        # Masked steps keep the state and get identity backpointers, so backtracking
        # through padding carries the last valid tag unchanged.
        return tf.where(upd, new_delta, delta), tf.where(upd, best_prev, identity)

    elems = (_time_major(potentials), _update_mask(lengths, max_len))
    deltas, backpointers = tf.scan(forward, elems, initializer=(potentials[:, 0, :], identity))
    # backpointers[t][b, j] = best tag at t-1 given tag j at t (identity for t = 0 / padding).

    final = deltas[-1]  # [B, K], the Viterbi scores at position lengths[b] - 1
    last_tag = tf.argmax(final, axis=1, output_type=tf.int32)
    best_score = tf.reduce_max(final, axis=1)

    # Element t of the reversed scan maps tag_{t+1} -> tag_t; append identity for t = T-1.
    shifted = tf.concat([backpointers[1:], identity[tf.newaxis]], axis=0)  # [T, B, K]

    def backward(next_tag, bp):
        return tf.gather(bp, next_tag[:, tf.newaxis], batch_dims=1)[:, 0]

    tags = tf.scan(backward, shifted, initializer=last_tag, reverse=True)  # [T, B]
    tags = tf.transpose(tags)  # [B, T]

    valid = tf.sequence_mask(lengths, max_len)
    tags = tf.where(valid, tags, tf.zeros_like(tags))
    best_score = tf.where(lengths > 0, best_score, tf.zeros_like(best_score))
    return tags, best_score
