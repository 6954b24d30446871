"""Overlapping windows over long sentences, and merging per-window outputs so no character is dropped."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

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


def merge_spans(length: int, spans: Sequence[Span], values: Sequence[np.ndarray]) -> np.ndarray:
    """Per-position rows of a sentence [length, ...], each taken from the span where that position has
    the most context. `values[i]` holds span i's rows (an array whose first axis is its positions)."""
    if len(values) != len(spans):
        raise ValueError(f"{len(values)} value arrays for {len(spans)} spans")
    arrays = [np.asarray(v) for v in values]
    for (start, end), rows in zip(spans, arrays):
        if len(rows) != end - start:
            raise ValueError(f"span {(start, end)} has {end - start} positions but {len(rows)} values")
    if len(spans) == 1 and spans[0] == (0, length):
        return arrays[0]  # the common case: the sentence fits one window
    best = best_span_for_positions(length, spans)
    out = np.empty((length,) + arrays[0].shape[1:], dtype=np.result_type(*arrays))
    for i, ((start, end), rows) in enumerate(zip(spans, arrays)):
        chosen = best[start:end] == i
        out[start:end][chosen] = rows[chosen]
    return out
