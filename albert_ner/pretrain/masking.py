"""Whole-word MLM masking of one chunk in tf ops: which tokens to predict and what they turn into.

Every draw comes from the caller's stateless key, so a chunk's masks are a pure function of that key
(new each epoch, identical on a rerun); all ops are graph-safe, for use inside `tf.data` map.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import tensorflow as tf

if TYPE_CHECKING:  # the spec lives with the example builder; masking reads its fields only
    from albert_ner.pretrain.examples import ExampleSpec

_NO_CAP = 2**28  # "no limit" for the per-chunk number of predictions (and a cost no real prefix reaches)


def mask_target(num_tokens: tf.Tensor, mask_prob: float) -> tf.Tensor:
    """How many tokens to mask in a chunk of `num_tokens` real tokens: round(mask_prob * n), at least 1."""
    n = tf.cast(num_tokens, tf.float64)
    return tf.maximum(tf.cast(tf.floor(n * mask_prob + 0.5), tf.int32), 1)


def unit_starts(word_starts: tf.Tensor, char_draws: tf.Tensor, whole_word: bool,
                char_mask_share: float) -> tf.Tensor:
    """bool [L]: where a masking unit starts. Units are jieba words (position 0 always starts one);
    each word is split into single characters with probability `char_mask_share` (ERNIE's mix of
    word- and character-level masking), decided by the draw at its first character. Without
    whole-word masking every character is a unit."""
    length = tf.size(word_starts)
    if not whole_word or char_mask_share >= 1.0:
        return tf.ones([length], tf.bool)
    starts = tf.logical_or(tf.not_equal(word_starts, 0), tf.equal(tf.range(length), 0))
    if char_mask_share <= 0.0:
        return starts
    word_of = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    char_level_word = tf.boolean_mask(char_draws, starts) < char_mask_share
    return tf.logical_or(starts, tf.gather(char_level_word, word_of))


def choose_masked(starts: tf.Tensor, priorities: tf.Tensor, target: tf.Tensor, tie_draw: tf.Tensor,
                  max_predictions: Optional[int] = None) -> tf.Tensor:
    """bool [L]: the tokens of the units taken in random order (priority = the draw at a unit's first
    token) up to the prefix whose token count is closest to `target`; a tie between one count below
    and one above goes either way with odds 1/2 (`tie_draw`), so coverage is not biased. At least one
    unit, and never more than `max_predictions` tokens (a first unit longer than that keeps its first
    `max_predictions` tokens). An empty chunk masks nothing."""
    cap = _NO_CAP if max_predictions is None else int(max_predictions)
    unit_of = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    unit_len = tf.math.segment_sum(tf.ones_like(unit_of), unit_of)
    order = tf.argsort(tf.boolean_mask(priorities, starts), stable=True)
    covered = tf.cumsum(tf.gather(unit_len, order))
    above_first = tf.cast(tie_draw < 0.5, tf.int32)
    tie_break = tf.where(covered > target, 1 - above_first, above_first)
    cost = 2 * tf.abs(covered - target) + tie_break + tf.where(covered > cap, _NO_CAP, 0)
    # The sentinel keeps argmin defined for an empty chunk; otherwise it is never the minimum.
    k = tf.argmin(tf.concat([cost, [4 * _NO_CAP]], 0), output_type=tf.int32) + 1
    rank = tf.math.invert_permutation(order)
    chosen = tf.gather(rank, unit_of) < k
    if max_predictions is not None:
        chosen = tf.logical_and(chosen, tf.cumsum(tf.cast(chosen, tf.int32)) <= cap)
    return chosen


def replace_tokens(token_ids: tf.Tensor, chosen: tf.Tensor, replace_draws: tf.Tensor, random_ids: tf.Tensor,
                   mask_id: int, replace_probs: Tuple[float, float, float]) -> Tuple[tf.Tensor, tf.Tensor]:
    """(input ids, mlm labels): each chosen token independently becomes [MASK], a random id or stays
    itself with `replace_probs`; labels hold the original id where chosen, -1 elsewhere."""
    p_mask, p_random, _ = replace_probs
    replaced = tf.where(replace_draws < p_mask, tf.cast(mask_id, token_ids.dtype),
                        tf.where(replace_draws < p_mask + p_random, random_ids, token_ids))
    inputs = tf.where(chosen, replaced, token_ids)
    labels = tf.where(chosen, token_ids, tf.constant(-1, token_ids.dtype))
    return inputs, labels


def mask_chunk(token_ids: tf.Tensor, word_starts: tf.Tensor, key: tf.Tensor,
               spec: "ExampleSpec") -> Tuple[tf.Tensor, tf.Tensor]:
    """(input ids, mlm labels) int32 [L] for one chunk of real tokens (no specials) and its word-start
    marks, with every random choice drawn from the stateless `key` (int64 [2])."""
    token_ids = tf.cast(token_ids, tf.int32)
    length = tf.size(token_ids)
    keys = tf.random.experimental.stateless_split(key, num=3)
    draws = tf.random.stateless_uniform([3, length], keys[0])
    tie_draw = tf.random.stateless_uniform([], keys[2])
    low, high = spec.random_ids
    random_ids = tf.random.stateless_uniform([length], keys[1], minval=low, maxval=high, dtype=tf.int32)
    starts = unit_starts(word_starts, draws[0], spec.whole_word, spec.char_mask_share)
    chosen = choose_masked(starts, draws[1], mask_target(length, spec.mask_prob), tie_draw,
                           spec.max_predictions)
    return replace_tokens(token_ids, chosen, draws[2], random_ids, spec.mask_id, spec.replace_probs)
