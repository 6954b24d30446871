"""Overlapping windows over long sentences, and merging per-window outputs so no character is dropped."""
from __future__ import annotations

from typing import List, Sequence, Tuple, TypeVar

import numpy as np

T = TypeVar("T")
Span = Tuple[int, int]


def window_spans(length: int, window: int, overlap: int) -> List[Span]:
    """Half-open spans of at most `window` covering [0, length); neighbours share >= `overlap` positions."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window={window}), got {overlap}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length <= window:
        return [(0, length)]
    stride = window - overlap
    spans: List[Span] = []
    start = 0
    while start + window < length:
        spans.append((start, start + window))
        start += stride
    spans.append((length - window, length))  # right-aligned: may share more than `overlap`
    return spans


def best_span_for_positions(length: int, spans: Sequence[Span]) -> np.ndarray:
    """[length] index of the span giving each position the most context min(left, right); ties -> earlier span."""
    best = np.full(length, -1, dtype=np.int64)
    best_context = np.full(length, -1, dtype=np.int64)
    unbounded = length + 1  # more than any finite context
    for i, (start, end) in enumerate(spans):
        if not 0 <= start <= end <= length:
            raise ValueError(f"span {(start, end)} is not inside [0, {length})")
        pos = np.arange(start, end)
        left = pos - start if start > 0 else np.full(end - start, unbounded)
        right = end - 1 - pos if end < length else np.full(end - start, unbounded)
        context = np.minimum(left, right)
        better = context > best_context[start:end]
        best[start:end][better] = i
        best_context[start:end][better] = context[better]
    uncovered = np.flatnonzero(best < 0)
    if uncovered.size:
        raise ValueError(f"position {int(uncovered[0])} of {length} is not covered by any span")
    return best


def merge_spans(length: int, spans: Sequence[Span], values: Sequence[Sequence[T]]) -> List[T]:
    """Per-position items of a sentence, each taken from the span where that position has the most context."""
    if len(values) != len(spans):
        raise ValueError(f"{len(values)} value lists for {len(spans)} spans")
    for (start, end), vals in zip(spans, values):
        if len(vals) != end - start:
            raise ValueError(f"span {(start, end)} has {end - start} positions but {len(vals)} values")
    best = best_span_for_positions(length, spans)
    return [values[s][p - spans[s][0]] for p, s in enumerate(best.tolist())]
