"""The serving contract of an exported model: raw texts in, tags and entities out, in plain Python.

An export holds a SavedModel whose `serving_default` signature maps window batches
(token_ids [B,T], lengths [B], word_boundaries/pos_ids/bigram_ids [B,T-2]; unused features are
zeros) to {"tags": int32 [B,T-2], "confidence": float32 [B,T-2]}, plus code/model/serving.json.
This module does the rest around it as the in-process tagger does (infer/windowed.py: windows of
at most max_seq_len-2 characters grouped by the same row lengths, each character's tag taken from
the window where it has the most context, entities and their scores), calling the model through
any runner: TensorFlow Serving's REST API (`rest_runner`, what the SageMaker handler uses) or a
loaded SavedModel. Standard library only (Python 3.10 and later), so the handler runs in the
TensorFlow Serving container's Python, which has neither numpy nor TensorFlow.
"""
from __future__ import annotations

import bisect
import json
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from albert_ner.data.tags import entities_from_tags
from albert_ner.infer.serving_features import ServingFeatures

SIGNATURE = "serving_default"
Span = Tuple[int, int]
Batch = Dict[str, List]  # input name -> rows (lists of ints)
Runner = Callable[[Batch], Dict[str, List]]  # -> {"tags": rows of label ids, "confidence": rows of floats}


class ServingError(RuntimeError):
    """The model server failed or answered something other than the signature's outputs."""


def window_spans(length: int, window: int, overlap: int) -> List[Span]:
    """Half-open spans of at most `window` covering [0, length); neighbours share >= `overlap` positions
    (the last one is right-aligned); as data.windows.window_spans."""
    if window < 1 or not 0 <= overlap < window or length < 0:
        raise ValueError(f"window_spans: need window >= 1, 0 <= overlap < window, length >= 0; "
                         f"got {window}, {overlap}, {length}")
    if length <= window:
        return [(0, length)]
    spans: List[Span] = []
    start = 0
    while start + window < length:
        spans.append((start, start + window))
        start += window - overlap
    spans.append((length - window, length))
    return spans


def merge_windows(length: int, spans: Sequence[Span], rows: Sequence[Sequence]) -> List:
    """Per position, the item of the span where it has the most context min(left, right) (a sentence edge
    counts as unbounded); ties go to the earlier span; as data.windows.merge_spans."""
    if len(spans) == 1 and spans[0] == (0, length):
        return list(rows[0])
    unbounded = length + 1
    best: List = [None] * length
    best_context = [-1] * length
    for (start, end), row in zip(spans, rows):
        for pos in range(start, end):
            left = pos - start if start > 0 else unbounded
            right = end - 1 - pos if end < length else unbounded
            context = min(left, right)
            if context > best_context[pos]:
                best_context[pos], best[pos] = context, row[pos - start]
    missing = next((i for i, c in enumerate(best_context) if c < 0), None)
    if missing is not None:
        raise ValueError(f"position {missing} of {length} is not covered by any window")
    return best


def rest_runner(url: str, timeout: float = 60.0) -> Runner:
    """A runner that posts window batches to a TensorFlow Serving REST `:predict` URL (columnar format)."""
    def run(inputs: Batch) -> Dict[str, List]:
        body = json.dumps({"signature_name": SIGNATURE, "inputs": inputs}).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                answer = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise ServingError(f"TensorFlow Serving at {url} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServingError(f"TensorFlow Serving at {url} is not reachable: {exc}") from None
        except ValueError as exc:
            raise ServingError(f"TensorFlow Serving at {url} answered something that is not JSON: {exc}") from None
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not isinstance(outputs, dict):
            raise ServingError(f"TensorFlow Serving at {url}: no 'outputs' object in the answer "
                               f"({str(answer)[:200]})")
        return outputs
    return run


class ServingPipeline:
    """Texts -> [{"text", "tags", "entities"}] around a model runner, with the export's featurizer tables."""

    def __init__(self, features: ServingFeatures, runner: Runner, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.features = features
        self.runner = runner
        self.batch_size = batch_size
        self.max_chars = features.max_seq_len - 2

    @classmethod
    def from_dir(cls, files_dir: str, runner: Runner, batch_size: int = 64) -> "ServingPipeline":
        """The pipeline of an export's code/model folder (serving.json, checked against its manifest)."""
        return cls(ServingFeatures.from_dir(files_dir), runner, batch_size)

    def predict(self, texts: Sequence[str]) -> List[Tuple[List[int], List[float]]]:
        """(label id, CRF marginal) lists, one entry per character of every text."""
        f = self.features
        encoded = [f.encode(text) for text in texts]
        spans = [window_spans(len(text), self.max_chars, f.window_overlap) for text in texts]
        outputs: List[List[Optional[Tuple[List, List]]]] = [[None] * len(s) for s in spans]
        queues: Dict[int, List[Tuple[int, int]]] = {b: [] for b in f.buckets}
        for i, text_spans in enumerate(spans):
            for k, (a, b) in enumerate(text_spans):
                queues[f.buckets[bisect.bisect_left(f.buckets, b - a + 2)]].append((i, k))
        for bucket, queue in queues.items():
            for start in range(0, len(queue), self.batch_size):
                self._run(bucket, queue[start:start + self.batch_size], encoded, spans, outputs)
        results = []
        for text, text_spans, rows in zip(texts, spans, outputs):
            tags = merge_windows(len(text), text_spans, [r[0] for r in rows])
            confidence = merge_windows(len(text), text_spans, [r[1] for r in rows])
            results.append((tags, confidence))
        return results

    def _run(self, bucket: int, items: List[Tuple[int, int]], encoded, spans, outputs) -> None:
        """One batch: a row [CLS] ids [SEP] padded to `bucket` per window, features zero-padded to bucket-2."""
        f = self.features
        chars = bucket - 2
        batch: Batch = {"token_ids": [], "lengths": []}
        names = f.inputs[2:]
        for name in names:
            batch[name] = []
        for i, k in items:
            a, b = spans[i][k]
            n = b - a
            batch["token_ids"].append([f.cls_id] + encoded[i]["token_ids"][a:b] + [f.sep_id]
                                      + [f.pad_id] * (chars - n))
            batch["lengths"].append(n)
            for name in names:
                values = encoded[i].get(name)
                batch[name].append((values[a:b] if values is not None else [0] * n) + [0] * (chars - n))
        result = self.runner(batch)
        tags, confidence = result.get("tags"), result.get("confidence")
        for name, value in (("tags", tags), ("confidence", confidence)):
            if not isinstance(value, list) or len(value) != len(items):
                raise ServingError(f"the model answered {name!r} with {len(value) if isinstance(value, list) else value!r}"
                                   f" rows for a batch of {len(items)} windows")
        labels = len(f.labels)
        for row, (i, k) in enumerate(items):
            a, b = spans[i][k]
            if not isinstance(tags[row], list) or not isinstance(confidence[row], list):
                raise ServingError(f"the model answered rows that are not lists: {str(tags[row])[:80]}")
            row_tags, row_conf = tags[row][:b - a], confidence[row][:b - a]
            if len(row_tags) != b - a or len(row_conf) != b - a:
                raise ServingError(f"the model answered {len(row_tags)} tags and {len(row_conf)} confidences for a "
                                   f"window of {b - a} characters")
            if not all(isinstance(t, int) and 0 <= t < labels for t in row_tags):
                raise ServingError(f"the model answered a tag id outside 0..{labels - 1}: {row_tags[:20]}")
            outputs[i][k] = (row_tags, row_conf)

    def tag(self, texts: Sequence[str]) -> List[Dict]:
        """Entities (type, start, end, text, score) of every text, offsets into that text; score: the smallest
        CRF marginal among the entity's characters (as `albert-ner tag`)."""
        labels = self.features.labels
        results = []
        for text, (ids, confidence) in zip(texts, self.predict(texts)):
            tags = [labels[i] for i in ids]
            entities = [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start:e.end],
                         "score": round(min(confidence[e.start:e.end]), 4)} for e in entities_from_tags(tags)]
            results.append({"text": text, "tags": tags, "entities": entities})
        return results
