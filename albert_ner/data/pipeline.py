"""Sentences -> windows -> fixed-shape padded batches -> tf.data.

Every window becomes one row `[CLS] chars [SEP]`, padded to the smallest of a few bucket
lengths, and every batch has exactly `batch_size` rows (short batches are filled with empty
rows of length 0, which the loss ignores). So XLA compiles one program per bucket, and no
window is ever dropped.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.data.corpus import Sentence
from albert_ner.data.windows import window_spans

Batch = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Window:
    """Characters [start, end) of sentence number `sentence`."""

    sentence: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


# Optional per-character integer features, in model-input order (each [B,C] int32 in a batch).
CHAR_FEATURES = ("word_boundaries", "pos_ids", "bigram_ids")


@dataclasses.dataclass
class EncodedCorpus:
    """Per-sentence id arrays (one entry per character), computed once per corpus.

    `features` maps names from CHAR_FEATURES to one array per sentence; absent names are off.
    """

    token_ids: List[np.ndarray]
    label_ids: Optional[List[np.ndarray]]
    features: Dict[str, List[np.ndarray]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(CHAR_FEATURES)
        if unknown:
            raise ValueError(f"unknown character feature(s) {sorted(unknown)}; known: {CHAR_FEATURES}")

    def __len__(self) -> int:
        return len(self.token_ids)

    @classmethod
    def concat(cls, parts: Sequence["EncodedCorpus"]) -> "EncodedCorpus":
        """The sentences of several encodings (made by one featurizer), in order."""
        labelled = [p.label_ids is not None for p in parts]
        if any(labelled) and not all(labelled):
            raise ValueError("cannot concatenate labelled and unlabelled encodings")
        names = sorted({name for p in parts for name in p.features})
        return cls([ids for p in parts for ids in p.token_ids],
                   [ids for p in parts for ids in p.label_ids] if parts and all(labelled) else None,
                   {name: [v for p in parts for v in p.features[name]] for name in names})


def label_index(labels: Sequence[str]) -> Dict[str, int]:
    """Tag string -> id."""
    return {tag: i for i, tag in enumerate(labels)}


def labels_from_sentences(sentences: Sequence[Sentence]) -> Tuple[str, ...]:
    """The label vocabulary of a training corpus: "O" first, then the rest sorted by type then prefix."""
    seen = {tag for s in sentences for tag in (s.tags or ())}
    seen.discard("O")
    rest = sorted(seen, key=lambda t: (t[2:], t[:1]))
    return ("O",) + tuple(rest)


def make_windows(lengths: Sequence[int], max_chars: int, overlap: int) -> List[Window]:
    """Split every sentence into overlapping windows of at most max_chars characters."""
    return [Window(i, a, b) for i, n in enumerate(lengths) for a, b in window_spans(n, max_chars, overlap)]


def bucket_lengths(max_seq_len: int) -> Tuple[int, ...]:
    """Padded row lengths (incl. [CLS]/[SEP]): powers of two from 32, capped by max_seq_len."""
    sizes = []
    size = 32
    while size < max_seq_len:
        sizes.append(size)
        size *= 2
    sizes.append(max_seq_len)
    return tuple(sizes)


def empty_batch(rows: int, bucket_len: int, feature_names: Iterable[str], pad_id: int) -> Batch:
    """A batch of `rows` empty rows (length 0) padded to bucket_len tokens, with the named features."""
    batch: Batch = {"token_ids": np.full((rows, bucket_len), pad_id, dtype=np.int32),
                    "lengths": np.zeros(rows, dtype=np.int32)}
    for name in feature_names:
        batch[name] = np.zeros((rows, bucket_len - 2), dtype=np.int32)
    return batch


def put_window(batch: Batch, row: int, token_ids: np.ndarray, features: Dict[str, np.ndarray],
               cls_id: int, sep_id: int) -> None:
    """Write one window into `row` of a batch: [CLS] ids [SEP], its length and its per-character features."""
    n = len(token_ids)
    batch["lengths"][row] = n
    ids = batch["token_ids"]
    ids[row, 0] = cls_id
    ids[row, 1:n + 1] = token_ids
    ids[row, n + 1] = sep_id
    for name, values in features.items():
        batch[name][row, :n] = values


class BatchPlanner:
    """Groups windows into fixed-shape batches by bucket; deterministic per (seed, epoch)."""

    def __init__(self, corpus: EncodedCorpus, windows: Sequence[Window], batch_size: int, max_seq_len: int,
                 cls_id: int, sep_id: int, pad_id: int = 0):
        self.corpus = corpus
        self.windows = list(windows)
        self.batch_size = batch_size
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.buckets = bucket_lengths(max_seq_len)
        too_long = [w for w in self.windows if w.length + 2 > max_seq_len]
        if too_long:
            raise ValueError(f"{len(too_long)} windows exceed max_seq_len {max_seq_len}")
        lengths = np.array([w.length + 2 for w in self.windows], dtype=np.int64)
        self.bucket_of = np.searchsorted(np.array(self.buckets), lengths) if len(lengths) else lengths

    def plan(self, shuffle: bool, seed: int = 0, epoch: int = 0) -> List[Tuple[int, np.ndarray]]:
        """(bucket length, window indices) per batch; shuffled within buckets and across batches."""
        rng = np.random.default_rng([seed, epoch])
        batches: List[Tuple[int, np.ndarray]] = []
        for b, bucket_len in enumerate(self.buckets):
            members = np.flatnonzero(self.bucket_of == b)
            if shuffle:
                members = rng.permutation(members)
            for i in range(0, len(members), self.batch_size):
                batches.append((bucket_len, members[i:i + self.batch_size]))
        if shuffle:
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    def num_batches(self) -> int:
        return len(self.plan(shuffle=False))

    def materialize(self, bucket_len: int, indices: np.ndarray) -> Batch:
        """Numpy arrays for one batch of windows, padded to [batch_size, bucket_len]."""
        c = self.corpus
        batch = empty_batch(self.batch_size, bucket_len, c.features, self.pad_id)
        labels = np.zeros((self.batch_size, bucket_len - 2), dtype=np.int32)
        for row, wi in enumerate(indices):
            w = self.windows[wi]
            put_window(batch, row, c.token_ids[w.sentence][w.start:w.end],
                       {name: values[w.sentence][w.start:w.end] for name, values in c.features.items()},
                       self.cls_id, self.sep_id)
            if c.label_ids is not None:
                labels[row, :w.length] = c.label_ids[w.sentence][w.start:w.end]
        if c.label_ids is not None:
            batch["labels"] = labels
        return batch

    def iterate(self, shuffle: bool, seed: int = 0, epoch: int = 0, skip: int = 0) -> Iterator[Batch]:
        """Materialised batches of one epoch, starting after `skip` batches (for resume)."""
        for bucket_len, indices in self.plan(shuffle, seed, epoch)[skip:]:
            yield self.materialize(bucket_len, indices)

    def dataset(self, shuffle: bool, seed: int = 0, epoch: int = 0, skip: int = 0):
        """A prefetching tf.data.Dataset over `iterate` (batch assembly overlaps the train step)."""
        import tensorflow as tf

        spec = {"token_ids": tf.TensorSpec([self.batch_size, None], tf.int32),
                "lengths": tf.TensorSpec([self.batch_size], tf.int32)}
        for name in self.corpus.features:
            spec[name] = tf.TensorSpec([self.batch_size, None], tf.int32)
        if self.corpus.label_ids is not None:
            spec["labels"] = tf.TensorSpec([self.batch_size, None], tf.int32)
        ds = tf.data.Dataset.from_generator(lambda: self.iterate(shuffle, seed, epoch, skip), output_signature=spec)
        return ds.prefetch(tf.data.AUTOTUNE)
