"""Pretraining batches from stored chunks: SOP pairs, whole-word masks, fixed-shape bucketed batches.

A chunk becomes `[CLS] A [SEP] B [SEP]` (A and B swapped with probability 0.5 for sentence-order
prediction) or `[CLS] chunk [SEP]`. Every random choice is a stateless function of (seed, epoch,
example_index), so masks change each epoch, repeat on a rerun and are the same after a resume at any
batch. All of it is tf ops (no py_function), run inside `tf.data` map.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from albert_ner.data.pipeline import bucket_lengths
from albert_ner.pretrain.masking import mask_chunk

if TYPE_CHECKING:
    from albert_ner.data.vocab import Vocab

MASK_TOKEN = "[MASK]"
# The stored-chunk fields make_batches reads (design: albert_ner.pretrain.shards.read_examples).
CHUNK_FIELDS = ("token_ids", "word_starts", "sentence_starts", "example_index")
# Vocabulary entries that are not text: [PAD], [unused7], [CLS], <S>, <pad>, ...
_SPECIAL_TOKEN = re.compile(r"^(\[[^\[\]\s]+\]|<[^<>\s]+>)$")
_NOT_DRAWN = -1  # mlm_labels where nothing is predicted
_BIG = 2**28


def _whole(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"ExampleSpec.{name} must be a whole number >= {low}, got {value!r}")
    return value


def _number(name: str, value: object, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value > high or value < low or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ValueError(f"ExampleSpec.{name} must be a number in {bound}, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExampleSpec:
    """How chunks become training examples. `random_ids` is the id range [low, high) that random
    replacements draw from (no specials, no [unused]); `buckets` are the padded row lengths (default:
    the NER planner's, powers of two from 32 up to max_seq_len); `max_predictions` caps the masked
    tokens per row (None: no cap) so that a model may gather a static [B, max_predictions] slice."""

    max_seq_len: int
    cls_id: int
    sep_id: int
    mask_id: int
    random_ids: Tuple[int, int]
    pad_id: int = 0
    mask_prob: float = 0.15
    replace_probs: Tuple[float, float, float] = (0.8, 0.1, 0.1)  # [MASK] / random id / kept
    whole_word: bool = True
    char_mask_share: float = 0.0
    sop: bool = True
    buckets: Tuple[int, ...] = ()
    max_predictions: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("whole_word", "sop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ExampleSpec.{name} must be true or false, got {getattr(self, name)!r}")
        _whole("max_seq_len", self.max_seq_len, 4 if self.sop else 3)
        if self.pad_id != 0:
            raise ValueError(f"ExampleSpec.pad_id must be 0 (the padding the model ignores), got {self.pad_id!r}")
        specials = {name: _whole(name, getattr(self, name), 0) for name in ("pad_id", "cls_id", "sep_id", "mask_id")}
        if len(set(specials.values())) < len(specials):
            raise ValueError(f"ExampleSpec: special ids must differ, got {specials}")
        self._check_random_ids(specials)
        _number("mask_prob", self.mask_prob, 0.0, 1.0, low_open=True)
        _number("char_mask_share", self.char_mask_share, 0.0, 1.0)
        probs = tuple(self.replace_probs) if isinstance(self.replace_probs, (tuple, list)) else ()
        if len(probs) != 3:
            raise ValueError(f"ExampleSpec.replace_probs must be three probabilities ([MASK], random, kept), "
                             f"got {self.replace_probs!r}")
        probs = tuple(_number(f"replace_probs[{i}]", p, 0.0, 1.0) for i, p in enumerate(probs))
        if abs(sum(probs) - 1.0) > 1e-6:
            raise ValueError(f"ExampleSpec.replace_probs must sum to 1, got {self.replace_probs!r} (sum {sum(probs)})")
        object.__setattr__(self, "replace_probs", probs)
        if self.max_predictions is not None:
            _whole("max_predictions", self.max_predictions, 1)
        object.__setattr__(self, "buckets", self._checked_buckets())

    def _check_random_ids(self, specials: Dict[str, int]) -> None:
        ids = self.random_ids
        whole = isinstance(ids, (tuple, list)) and len(ids) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in ids)
        if not whole or not 0 <= ids[0] < ids[1]:
            raise ValueError(f"ExampleSpec.random_ids must be an id range (low, high) with 0 <= low < high, "
                             f"got {ids!r}")
        inside = {name: v for name, v in specials.items() if ids[0] <= v < ids[1]}
        if inside:
            raise ValueError(f"ExampleSpec.random_ids {tuple(ids)} holds special id(s) {inside}; random "
                             f"replacements must never be specials")
        object.__setattr__(self, "random_ids", (ids[0], ids[1]))

    def _checked_buckets(self) -> Tuple[int, ...]:
        if not self.buckets:
            return bucket_lengths(self.max_seq_len)
        buckets = tuple(self.buckets)
        for i, size in enumerate(buckets):
            _whole(f"buckets[{i}]", size, 3)
        if any(b >= a for b, a in zip(buckets, buckets[1:])) or buckets[-1] != self.max_seq_len:
            raise ValueError(f"ExampleSpec.buckets must increase strictly and end at max_seq_len "
                             f"{self.max_seq_len}, got {buckets}")
        return buckets

    @property
    def max_chunk_len(self) -> int:
        """The most real tokens a stored chunk may hold: room for [CLS] A [SEP] B [SEP] (or [CLS] chunk [SEP])."""
        return self.max_seq_len - (3 if self.sop else 2)

    @classmethod
    def for_vocab(cls, vocab: "Vocab", max_seq_len: int, **options) -> "ExampleSpec":
        """A spec with the vocabulary's special ids and random-replacement range (see random_id_range);
        `options` sets (or overrides) any other field."""
        mask_id = vocab.token_to_id(MASK_TOKEN)
        if mask_id is None:
            raise ValueError(f"{vocab.source}: the vocabulary has no {MASK_TOKEN} token, which masked-language-model "
                             f"pretraining needs")
        if vocab.pad_id != 0:
            raise ValueError(f"{vocab.source}: [PAD] has id {vocab.pad_id}; pretraining needs it at id 0")
        fields = dict(max_seq_len=max_seq_len, pad_id=vocab.pad_id, cls_id=vocab.cls_id, sep_id=vocab.sep_id,
                      mask_id=mask_id)
        if "random_ids" not in options:
            specials = (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, mask_id)
            fields["random_ids"] = random_id_range(vocab.tokens, vocab.source, exclude=specials)
        return cls(**fields, **options)


def random_id_range(tokens: Sequence[str], source: str, exclude: Sequence[int] = ()) -> Tuple[int, int]:
    """The longest run [low, high) of ids whose tokens are text: not specials ([CLS], [unused3], <S>),
    not '##' word pieces (character-level input never holds them), not unused ids or `exclude`.
    A Chinese BERT vocab gives its 8,000-odd characters (106..8118)."""
    excluded = set(exclude)
    best, start = (0, 0), None
    for i, token in enumerate(list(tokens) + [""]):
        if token and i not in excluded and not _SPECIAL_TOKEN.match(token) and not token.startswith("##"):
            start = i if start is None else start
        elif start is not None:
            best = max(best, (start, i), key=lambda r: r[1] - r[0])
            start = None
    if best[1] - best[0] < 2:
        raise ValueError(f"{source}: no run of ordinary (non-special) tokens to draw random replacements from")
    return best


def example_key(seed: int, epoch: int, example_index: tf.Tensor) -> tf.Tensor:
    """The stateless key (int64 [2]) of one example's random choices: a function of (seed, epoch, index) only."""
    base = tf.constant([seed, epoch], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(example_index, tf.int64))


def sop_split(sentence_starts: tf.Tensor, word_starts: tf.Tensor, draw: tf.Tensor) -> tf.Tensor:
    """Where B starts in a chunk of >= 2 tokens: a sentence start other than 0 picked by `draw` (uniform
    in [0, 1)), else the word start nearest the middle (ties: the earlier), else the middle itself."""
    length = tf.size(sentence_starts)
    pos = tf.range(length)
    inner = pos >= 1
    sentences = tf.boolean_mask(pos, tf.logical_and(tf.not_equal(sentence_starts, 0), inner))
    n_sentences = tf.size(sentences)
    pick = tf.minimum(tf.cast(draw * tf.cast(n_sentences, tf.float32), tf.int32), tf.maximum(n_sentences - 1, 0))
    by_sentence = tf.gather(tf.concat([sentences, [0]], 0), pick)
    words = tf.logical_and(tf.not_equal(word_starts, 0), inner)
    distance = tf.abs(2 * pos - length) + tf.where(words, 0, _BIG)
    nearest = tf.argmin(tf.concat([distance, [2 * _BIG]], 0), output_type=tf.int32)
    middle = tf.where(tf.reduce_any(words), nearest, length // 2)
    return tf.where(n_sentences > 0, by_sentence, middle)


def build_example(chunk: Dict[str, tf.Tensor], spec: ExampleSpec, seed: int, epoch: int) -> Dict[str, tf.Tensor]:
    """One training example (unpadded) from one stored chunk: token_ids, segment_ids, mlm_labels [n],
    lengths (= n, scalar) and, with SOP, sop_labels: 1 swapped, 0 in order. A chunk of fewer than 2
    tokens has no pair: it becomes [CLS] chunk [SEP] with label 0 (labels stay 0/1 for the loss) and no
    segment 1, which is how sop_rows tells it apart, to leave it out of the SOP loss."""
    tokens = tf.cast(chunk["token_ids"], tf.int32)
    word_starts = tf.cast(chunk["word_starts"], tf.int32)
    sentence_starts = tf.cast(chunk["sentence_starts"], tf.int32)
    index = chunk["example_index"]
    length = tf.size(tokens)
    same = tf.debugging.Assert(
        tf.logical_and(tf.equal(tf.size(word_starts), length), tf.equal(tf.size(sentence_starts), length)),
        ["pretraining chunk: token_ids, word_starts and sentence_starts differ in length; example_index",
         index, "lengths", length, tf.size(word_starts), tf.size(sentence_starts)])
    pair_key, mask_key = tf.unstack(tf.random.experimental.stateless_split(example_key(seed, epoch, index), 2))
    pos = tf.range(length)
    if spec.sop:
        draws = tf.random.stateless_uniform([2], pair_key)
        paired = length >= 2
        with tf.control_dependencies([same]):
            split = tf.where(paired, sop_split(sentence_starts, word_starts, draws[0]), length)
        swapped = tf.logical_and(paired, draws[1] < 0.5)
    else:
        paired = swapped = tf.constant(False)
        split = length
    # B starts a masking unit, so no unit spans the two segments.
    starts = tf.cast(tf.logical_or(tf.not_equal(word_starts, 0), tf.equal(pos, split)), tf.int32)
    with tf.control_dependencies([same]):
        inputs, labels = mask_chunk(tokens, starts, mask_key, spec)
    order = tf.where(swapped, (pos + split) % tf.maximum(length, 1), pos)
    first = tf.where(swapped, length - split, split)
    inputs, labels = tf.gather(inputs, order), tf.gather(labels, order)
    last_sep = tf.cast(paired, tf.int32)
    cls, sep, none = [spec.cls_id], [spec.sep_id], [_NOT_DRAWN]
    token_ids = tf.concat([cls, inputs[:first], sep, inputs[first:], tf.fill([last_sep], spec.sep_id)], 0)
    mlm_labels = tf.concat([none, labels[:first], none, labels[first:], tf.fill([last_sep], _NOT_DRAWN)], 0)
    segment_ids = tf.concat([tf.zeros([first + 2], tf.int32), tf.ones([length - first + last_sep], tf.int32)], 0)
    total = length + 2 + last_sep
    fits = tf.debugging.Assert(
        total <= spec.max_seq_len,
        [f"pretraining chunk too long: with max_seq_len {spec.max_seq_len} a chunk holds at most "
         f"{spec.max_chunk_len} tokens; example_index", index, "tokens", length])
    with tf.control_dependencies([fits]):
        example = {"token_ids": tf.identity(token_ids), "segment_ids": segment_ids, "mlm_labels": mlm_labels,
                   "lengths": total}
    if spec.sop:
        example["sop_labels"] = tf.cast(swapped, tf.int32)
    return example


def _check_chunks(examples_ds: tf.data.Dataset) -> None:
    """Clear errors for a dataset that is not one of stored chunks (design: shards.read_examples)."""
    element = examples_ds.element_spec
    if not isinstance(element, dict):
        raise ValueError(f"make_batches: expected a dataset of dicts with {', '.join(CHUNK_FIELDS)}, "
                         f"got elements {element}")
    missing = [name for name in CHUNK_FIELDS if name not in element]
    if missing:
        raise ValueError(f"make_batches: the chunk dataset lacks field(s) {', '.join(missing)} "
                         f"(has {', '.join(sorted(element))})")
    for name in CHUNK_FIELDS:
        spec = element[name]
        rank = 0 if name == "example_index" else 1
        if not isinstance(spec, tf.TensorSpec) or not spec.dtype.is_integer or spec.shape.rank != rank:
            raise ValueError(f"make_batches: chunk field {name} must be an integer tensor of rank {rank}, got {spec}")


def _padding_values(spec: ExampleSpec) -> Dict[str, tf.Tensor]:
    values = {"token_ids": spec.pad_id, "segment_ids": 0, "mlm_labels": _NOT_DRAWN, "lengths": 0}
    if spec.sop:
        values["sop_labels"] = 0
    return {name: tf.constant(v, tf.int32) for name, v in values.items()}


def make_batches(examples_ds: tf.data.Dataset, spec: ExampleSpec, seed: int, epoch: int, batch_size: int,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of `batch_size` rows of one bucket each, padded to the smallest bucket length that fits
    its examples; a batch comes out when its bucket fills (partial ones at the end), so the order is
    fixed by the input order.
    A bucket's last partial batch is filled with empty rows (lengths 0, mlm_labels -1, sop_labels 0) so
    every example is used and shapes stay static; `drop_remainder` drops it instead. Fields: see
    build_example."""
    _check_chunks(examples_ds)
    _whole("batch_size (make_batches)", batch_size, 1)
    for name, value in (("seed", seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"make_batches: {name} must be a whole number, got {value!r}")
    buckets = tf.constant(spec.buckets, tf.int64)
    padding = _padding_values(spec)

    def bucket_of(example: Dict[str, tf.Tensor]) -> tf.Tensor:
        return tf.reduce_sum(tf.cast(buckets < tf.cast(example["lengths"], tf.int64), tf.int64))

    def batch_bucket(bucket: tf.Tensor, window: tf.data.Dataset) -> tf.data.Dataset:
        width = tf.reshape(tf.gather(buckets, bucket), [1])
        shapes = {name: (tf.TensorShape([]) if name in ("lengths", "sop_labels") else width) for name in padding}
        return window.padded_batch(batch_size, padded_shapes=shapes, padding_values=padding,
                                   drop_remainder=drop_remainder)

    def fill_rows(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        missing = batch_size - tf.shape(batch["lengths"])[0]
        out = {}
        for name, value in batch.items():
            pad = [[0, missing]] + [[0, 0]] * (value.shape.rank - 1)
            out[name] = tf.ensure_shape(tf.pad(value, pad, constant_values=padding[name]),
                                        [batch_size] + [None] * (value.shape.rank - 1))
        return out

    ds = examples_ds.map(lambda chunk: build_example(chunk, spec, seed, epoch),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.group_by_window(bucket_of, batch_bucket, window_size=batch_size)
    return ds.map(fill_rows)


def sop_rows(batch: Dict[str, tf.Tensor]) -> tf.Tensor:
    """bool [B]: the rows that hold a sentence pair (a B segment), i.e. those the SOP loss should score;
    padding rows and chunks of 1 token are not among them."""
    return tf.logical_and(batch["lengths"] > 0, tf.reduce_any(tf.equal(batch["segment_ids"], 1), axis=1))


def batch_counts(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """int32 counts of one batch for metrics: examples (non-empty rows), tokens (incl. specials),
    masked_tokens (MLM predictions) and, with SOP, sop_pairs and sop_unpaired (rows of 1 token)."""
    real = batch["lengths"] > 0
    counts = {"examples": tf.reduce_sum(tf.cast(real, tf.int32)),
              "tokens": tf.reduce_sum(batch["lengths"]),
              "masked_tokens": tf.reduce_sum(tf.cast(batch["mlm_labels"] >= 0, tf.int32))}
    if "sop_labels" in batch:
        pairs = tf.reduce_sum(tf.cast(sop_rows(batch), tf.int32))
        counts["sop_pairs"] = pairs
        counts["sop_unpaired"] = counts["examples"] - pairs
    return counts
