"""Sentences -> windows -> model runs -> merged per-character tags, with the model behind a callable.

The model is any `runner(inputs, confidence)` that maps a batch of numpy inputs (token_ids
[B,T], lengths [B], per-character features [B,C]) to {"tags": [B,C]} (and "confidence": [B,C]
when asked): an in-process Keras model or a loaded SavedModel. It does not import TensorFlow (the
exported serving handler has its own standard-library windowing in serving.py, tested equal to this
one). Evaluation and file tagging predict through this one path (a WindowStream: windows
queued per length bucket, run in batches, merged back per sentence), so every character of every
sentence gets a tag, however long the sentence.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.data.corpus import Sentence
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import CHAR_FEATURES, EncodedCorpus, bucket_lengths, empty_batch, put_window
from albert_ner.data.windows import merge_spans, window_spans

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


def inference_buckets(max_seq_len: int) -> Tuple[int, ...]:
    """Padded row lengths for tagging: training's powers of two plus the midpoint (1.5x) between each
    pair, capped by max_seq_len (32, 48, 64, 96, 128 for 128). Finer than training's, because
    tagging pays for every padding position and its programs are cheaper to compile."""
    sizes = set()
    for size in bucket_lengths(max_seq_len):
        sizes.update((size, size * 3 // 2))
    return tuple(sorted(s for s in sizes if s < max_seq_len)) + (max_seq_len,)


@dataclasses.dataclass
class _SentenceState:
    """A sentence being tagged: its windows and, as they are decoded, their output rows."""

    length: int
    spans: List[Tuple[int, int]]
    rows: List[Optional[np.ndarray]]
    waiting: int
    error: Optional[str] = None

    def merged(self):
        """One decoded item per character, or the error message if a batch of it failed."""
        return self.error if self.error is not None else merge_spans(self.length, self.spans, self.rows)


@dataclasses.dataclass
class _QueuedWindow:
    state: _SentenceState
    index: int  # which of the sentence's windows
    generation: int  # which `add` call queued it
    token_ids: np.ndarray
    features: Dict[str, np.ndarray]


class WindowStream:
    """Decodes the windows of sentences added over many calls, in full batches per bucket length.

    Windows wait in a queue per bucket until `batch_size` of them are there, so a long stream of
    chunks pays for padding rows only when a queue is flushed: `flush(before=g)` runs the queues
    still holding windows added before call g (the caller bounds memory and latency with it),
    `flush()` runs them all. Results come out in the order sentences were added (`ready`).
    With `record_errors`, a batch the runner fails on is retried window by window and a window
    that still fails marks its sentence with the error (tagging goes on); otherwise it raises.
    """

    def __init__(self, tagger: "WindowedTagger", confidence: bool, record_errors: bool = False):
        self.tagger = tagger
        self.confidence = confidence
        self.record_errors = record_errors
        self.buckets = inference_buckets(tagger.max_seq_len)
        self.queues: Dict[int, Deque[_QueuedWindow]] = {b: collections.deque() for b in self.buckets}
        self.sentences: Deque[_SentenceState] = collections.deque()
        self.generation = 0

    def add(self, corpus: EncodedCorpus) -> int:
        """Queue every window of the encoded sentences and run the batches that are full; returns
        this call's generation number (for `flush(before=...)`)."""
        generation = self.generation
        self.generation += 1
        t = self.tagger
        for i, ids in enumerate(corpus.token_ids):
            spans = window_spans(len(ids), t.max_chars, t.overlap)
            state = _SentenceState(len(ids), spans, [None] * len(spans), len(spans))
            self.sentences.append(state)
            for k, (a, b) in enumerate(spans):
                bucket = self.buckets[bisect.bisect_left(self.buckets, b - a + 2)]
                features = {name: values[i][a:b] for name, values in corpus.features.items()}
                self.queues[bucket].append(_QueuedWindow(state, k, generation, ids[a:b], features))
        for bucket, queue in self.queues.items():
            while len(queue) >= t.batch_size:
                self._run(bucket, [queue.popleft() for _ in range(t.batch_size)])
        return generation

    def flush(self, before: Optional[int] = None) -> None:
        """Run queued windows, in batches as full as the queue allows: all of them, or (with `before`)
        until no window added before generation `before` is left waiting."""
        for bucket, queue in self.queues.items():
            while queue and (before is None or queue[0].generation < before):  # newer windows fill the batch
                self._run(bucket, [queue.popleft() for _ in range(min(len(queue), self.tagger.batch_size))])

    def ready(self) -> List:
        """Merged results (or error messages) of the sentences whose every window is decoded, in order."""
        out = []
        while self.sentences and self.sentences[0].waiting == 0:
            out.append(self.sentences.popleft().merged())
        return out

    def pending(self) -> int:
        """Sentences added but not yet returned by `ready`."""
        return len(self.sentences)

    def _run(self, bucket: int, items: List[_QueuedWindow]) -> None:
        vocab = self.tagger.featurizer.vocab
        batch = empty_batch(inference_rows(len(items), self.tagger.batch_size), bucket, items[0].features, vocab.pad_id)
        for row, item in enumerate(items):
            put_window(batch, row, item.token_ids, item.features, vocab.cls_id, vocab.sep_id)
        try:
            result = self.tagger.runner(batch, self.confidence)
        except Exception as exc:
            if not self.record_errors:
                raise
            if len(items) > 1:  # find the window it fails on, so the other sentences still get tagged
                for item in items:
                    self._run(bucket, [item])
                return
            item = items[0]
            item.state.error = f"prediction failed: {type(exc).__name__}: {exc}"
            item.state.waiting -= 1
            return
        tags = np.asarray(result["tags"])
        out = np.stack([tags.astype(np.float64), np.asarray(result["confidence"])], -1) if self.confidence else tags
        for row, item in enumerate(items):
            item.state.rows[item.index] = out[row, :len(item.token_ids)]
            item.state.waiting -= 1


class WindowedTagger:
    """Tags sentences through a runner; windows long ones and merges them back."""

    def __init__(self, runner: Runner, featurizer: Featurizer, labels: Sequence[str], max_seq_len: int,
                 batch_size: int = 64, window_overlap: Optional[int] = None):
        self.runner = runner
        self.featurizer = featurizer
        self.labels = tuple(labels)
        self._label_array = np.array(self.labels, dtype=object)
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.max_chars = max_seq_len - 2
        self.overlap = window_overlap if window_overlap is not None else self.max_chars // 4

    def stream(self, confidence: bool, record_errors: bool = False) -> WindowStream:
        """A WindowStream over this tagger (for tagging many chunks of documents)."""
        return WindowStream(self, confidence, record_errors)

    def _merged(self, sentences: Sequence[Sentence], corpus: Optional[EncodedCorpus], confidence: bool) -> List:
        """Per sentence, one decoded item per character, each from the window where it has most context."""
        if corpus is None:
            corpus = self.featurizer.encode(sentences)
        stream = self.stream(confidence)
        stream.add(corpus)
        stream.flush()
        return stream.ready()

    def readable(self, merged: np.ndarray, confidence: bool) -> Tuple[List[str], Optional[List[float]]]:
        """A stream result as (tag strings, per-character CRF marginals or None)."""
        if confidence:
            return self._label_array[merged[:, 0].astype(np.int64)].tolist(), merged[:, 1].tolist()
        return self._label_array[merged.astype(np.int64)].tolist(), None

    def predict_sentences(self, sentences: Sequence[Sentence],
                          corpus: Optional[EncodedCorpus] = None) -> List[List[str]]:
        """One tag string per character of every sentence (`corpus`: their encoding, if already made)."""
        return [self.readable(merged, False)[0] for merged in self._merged(sentences, corpus, False)]

    def predict_with_confidence(self, sentences: Sequence[Sentence], corpus: Optional[EncodedCorpus] = None
                                ) -> List[Tuple[List[str], List[float]]]:
        """(tags, per-character CRF marginal of each tag) for every sentence (`corpus`: their encoding)."""
        return [self.readable(merged, True) for merged in self._merged(sentences, corpus, True)]

    def predict_texts(self, texts: Sequence[str]) -> List[List[str]]:
        """Tags for raw strings, one per character."""
        return self.predict_sentences([Sentence(tuple(t), None, "<text>", i + 1) for i, t in enumerate(texts)])
