"""Windows: spans cover every position within size/overlap limits; merge picks the most-context span."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albert_ner.data.windows import best_span_for_positions, merge_spans, window_spans


@st.composite
def layouts(draw):
    """(length, window, overlap) with 1 <= window and 0 <= overlap < window."""
    window = draw(st.integers(1, 40))
    overlap = draw(st.integers(0, window - 1))
    length = draw(st.integers(0, 200))
    return length, window, overlap


def _context(pos, start, end, length):
    left = float("inf") if start == 0 else pos - start
    right = float("inf") if end == length else end - 1 - pos
    return min(left, right)


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_spans_cover_respect_window_and_overlap(layout):
    length, window, overlap = layout
    spans = window_spans(length, window, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(0 <= a <= b <= length and b - a <= window for a, b in spans)
    covered = np.zeros(length, dtype=int)
    for a, b in spans:
        covered[a:b] += 1
    assert (covered >= 1).all()
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert a0 < a1 and b0 < b1  # strictly advancing
        assert b0 - a1 >= overlap  # shared positions
        assert b1 - a1 == window  # only a sentence that fits in one window has a shorter span
    if len(spans) > 2:
        strides = {a1 - a0 for (a0, _), (a1, _) in zip(spans[:-1], spans[1:-1])}
        assert strides == {window - overlap}


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_merge_round_trip_and_most_context(layout):
    length, window, overlap = layout
    spans = window_spans(length, window, overlap)
    merged = merge_spans(length, spans, [np.arange(a, b) for a, b in spans])
    assert merged.tolist() == list(range(length))
    pairs = merge_spans(length, spans, [np.stack([np.arange(a, b), -np.arange(a, b)], -1) for a, b in spans])
    assert pairs.shape == (length, 2) and (pairs[:, 0] == -pairs[:, 1]).all()
    best = best_span_for_positions(length, spans)
    assert best.shape == (length,)
    for pos, chosen in enumerate(best.tolist()):
        a, b = spans[chosen]
        assert a <= pos < b
        contexts = [_context(pos, s, e, length) if s <= pos < e else -1 for s, e in spans]
        assert contexts[chosen] == max(contexts)
        assert chosen == contexts.index(max(contexts))  # ties go to the earlier span


@given(st.integers(0, 60), st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), min_size=1, max_size=6))
def test_best_span_on_arbitrary_covering_spans(length, raw):
    spans = [(min(a, length), min(a + n, length)) for a, n in raw] + [(0, length)]
    best = best_span_for_positions(length, spans)
    for pos, chosen in enumerate(best.tolist()):
        contexts = [_context(pos, s, e, length) if s <= pos < e else -1 for s, e in spans]
        assert chosen == contexts.index(max(contexts))


@pytest.mark.parametrize("length, window, overlap, expected", [
    (0, 4, 1, [(0, 0)]),
    (1, 4, 1, [(0, 1)]),
    (4, 4, 1, [(0, 4)]),
    (5, 4, 1, [(0, 4), (1, 5)]),
    (5, 4, 0, [(0, 4), (1, 5)]),
    (8, 4, 0, [(0, 4), (4, 8)]),
    (9, 4, 0, [(0, 4), (4, 8), (5, 9)]),
    (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),
    (11, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]),
    (3, 1, 0, [(0, 1), (1, 2), (2, 3)]),
])
def test_window_spans_edge_cases(length, window, overlap, expected):
    assert window_spans(length, window, overlap) == expected


@pytest.mark.parametrize("window, overlap", [(0, 0), (4, -1), (4, 4), (4, 5)])
def test_window_spans_rejects_bad_arguments(window, overlap):
    with pytest.raises(ValueError):
        window_spans(10, window, overlap)


def test_window_spans_rejects_negative_length():
    with pytest.raises(ValueError):
        window_spans(-1, 4, 1)


def test_merge_takes_the_middle_of_each_window():
    # spans (0,6) and (4,10) of a 10-char sentence: positions 4 and 5 are in both
    spans = window_spans(10, 6, 2)
    assert spans == [(0, 6), (4, 10)]
    merged = merge_spans(10, spans, [np.array(list("aaaaaa")), np.array(list("bbbbbb"))])
    # pos 4: context 1 in span 0 (right 1), 0 in span 1 (left 0) -> a; pos 5: 0 vs 1 -> b
    assert "".join(merged) == "aaaaabbbbb"
    assert best_span_for_positions(10, spans).tolist() == [0] * 5 + [1] * 5


def test_merge_of_one_window_and_of_empty_sentences():
    assert merge_spans(0, [(0, 0)], [np.zeros(0, dtype=np.int32)]).tolist() == []
    assert merge_spans(3, [(0, 3)], [np.array([7, 8, 9])]).tolist() == [7, 8, 9]


def test_merge_rejects_mismatched_values():
    with pytest.raises(ValueError, match="values"):
        merge_spans(5, [(0, 4), (1, 5)], [[0, 1, 2, 3], [1, 2, 3]])
    with pytest.raises(ValueError, match="value arrays"):
        merge_spans(5, [(0, 4), (1, 5)], [[0, 1, 2, 3]])


def test_best_span_rejects_gaps_and_out_of_range_spans():
    with pytest.raises(ValueError, match="not covered"):
        best_span_for_positions(6, [(0, 2), (3, 6)])
    with pytest.raises(ValueError, match="not inside"):
        best_span_for_positions(6, [(0, 7)])
