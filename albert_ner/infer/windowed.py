"""Sentences -> windows -> model runs -> merged per-character tags, with the model behind a callable.

The model is any `runner(inputs, confidence)` that maps a batch of numpy inputs (token_ids
[B,T], lengths [B], per-character features [B,C]) to {"tags": [B,C]} (and "confidence": [B,C]
when asked): an in-process Keras model, a loaded SavedModel, or TensorFlow Serving over HTTP.
This module does not import TensorFlow, so serving handlers can use it as is. Evaluation,
file tagging and the export checks all predict through this one path, so every character of
every sentence gets a tag, however long the sentence.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.data.corpus import Sentence
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import CHAR_FEATURES, BatchPlanner, EncodedCorpus, make_windows
from albert_ner.data.windows import merge_spans

INPUT_KEYS = ("token_ids", "lengths") + CHAR_FEATURES
Runner = Callable[[Dict[str, np.ndarray], bool], Dict[str, np.ndarray]]


def inference_rows(needed: int, batch_size: int, smallest: int = 16) -> int:
    """Rows to run for a batch holding `needed` windows: the next power of two (at least `smallest`),
    at most batch_size. A bucket's last batch is seldom full; a few row counts per bucket keep the
    padding small while XLA compiles only a handful of programs."""
    rows = smallest
    while rows < needed:
        rows *= 2
    return min(rows, batch_size)


class WindowedTagger:
    """Tags sentences through a runner; windows long ones and merges them back."""

    def __init__(self, runner: Runner, featurizer: Featurizer, labels: Sequence[str], max_seq_len: int,
                 batch_size: int = 64, window_overlap: Optional[int] = None):
        self.runner = runner
        self.featurizer = featurizer
        self.labels = tuple(labels)
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.max_chars = max_seq_len - 2
        self.overlap = window_overlap if window_overlap is not None else self.max_chars // 4

    def decode_batches(self, planner: BatchPlanner, confidence: bool = False) -> List[np.ndarray]:
        """Per window of the planner (indexed like planner.windows): tag ids [n], or with `confidence`
        an array [n, 2] of (tag id, CRF marginal of that tag)."""
        out: List[np.ndarray] = [np.zeros(0, np.int32)] * len(planner.windows)
        for bucket_len, indices in planner.plan(shuffle=False):
            batch = planner.materialize(bucket_len, indices)
            n_rows = inference_rows(len(indices), self.batch_size)
            result = self.runner({k: batch[k][:n_rows] for k in INPUT_KEYS if k in batch}, confidence)
            tags = np.asarray(result["tags"])
            rows = np.stack([tags.astype(np.float64), np.asarray(result["confidence"])], -1) if confidence else tags
            for row, wi in enumerate(indices):
                out[wi] = rows[row, : planner.windows[wi].length]
        return out

    def _merged(self, sentences: Sequence[Sentence], corpus: Optional[EncodedCorpus], confidence: bool) -> List[list]:
        """Per sentence, one decoded item per character, each from the window where it has most context."""
        if corpus is None:
            corpus = self.featurizer.encode(sentences)
        windows = make_windows([len(s.chars) for s in sentences], self.max_chars, self.overlap)
        planner = self.featurizer.planner(corpus, windows, self.batch_size, self.max_seq_len)
        window_rows = self.decode_batches(planner, confidence)
        per_sentence: List[List[tuple]] = [[] for _ in sentences]
        for w, rows in zip(windows, window_rows):
            per_sentence[w.sentence].append(((w.start, w.end), rows))
        return [merge_spans(len(s.chars), [p[0] for p in parts], [p[1] for p in parts])
                for s, parts in zip(sentences, per_sentence)]

    def predict_sentences(self, sentences: Sequence[Sentence],
                          corpus: Optional[EncodedCorpus] = None) -> List[List[str]]:
        """One tag string per character of every sentence (`corpus`: their encoding, if already made)."""
        return [[self.labels[int(i)] for i in merged] for merged in self._merged(sentences, corpus, False)]

    def predict_with_confidence(self, sentences: Sequence[Sentence], corpus: Optional[EncodedCorpus] = None
                                ) -> List[Tuple[List[str], List[float]]]:
        """(tags, per-character CRF marginal of each tag) for every sentence (`corpus`: their encoding)."""
        return [([self.labels[int(r[0])] for r in merged], [float(r[1]) for r in merged])
                for merged in self._merged(sentences, corpus, True)]

    def predict_texts(self, texts: Sequence[str]) -> List[List[str]]:
        """Tags for raw strings, one per character."""
        return self.predict_sentences([Sentence(tuple(t), None, "<text>", i + 1) for i, t in enumerate(texts)])
