"""jieba.posseg's segmentation and part-of-speech tags, about five times faster, with identical output.

jieba.posseg spends most of its time in the Viterbi search of its character-level HMM (for runs
of characters the dictionary does not know), trying every pair of (previous, next) states. Almost
all of those pairs have no transition (log probability -inf), so they can never win the max: this
module keeps jieba's algorithm and tables but visits, for each next state, only the previous
states that can reach it. Scores are summed in jieba's order and ties are broken as jieba breaks
them (the larger state tuple), so the result equals `jieba.posseg.cut` exactly; tests check that
on corpus text and on generated strings.

The dictionary steps (DAG, best route) and the regular expressions are jieba's own objects.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Tuple

State = Tuple[str, str]  # (B|M|E|S, POS tag)
MIN_FLOAT = -3.14e100  # jieba's emission score of a character a state never emits


class _Tables:
    """jieba.posseg's HMM and dictionary tables, with the predecessor index this search needs."""

    def __init__(self) -> None:
        import jieba
        import jieba.posseg as posseg

        jieba.setLogLevel(logging.WARNING)
        self.posseg = posseg
        self.tokenizer = posseg.dt.tokenizer
        self.tokenizer.check_initialized()
        self.start = posseg.start_P
        self.trans = posseg.trans_P
        self.emit = posseg.emit_P
        self.char_states = posseg.char_state_tab_P
        self.all_states = tuple(self.trans.keys())
        self.has_next = {state: bool(nxt) for state, nxt in self.trans.items()}
        # predecessors[y] = [(y0, log P(y | y0)), ...] for every y0 with a transition to y
        self.predecessors: Dict[State, List[Tuple[State, float]]] = {y: [] for y in self.all_states}
        for y0, nxt in self.trans.items():
            for y, logp in nxt.items():
                self.predecessors.setdefault(y, []).append((y0, logp))

    @property
    def word_tags(self) -> Dict[str, str]:
        self.posseg.dt.makesure_userdict_loaded()  # words added with jieba.add_word / load_userdict
        return self.posseg.dt.word_tag_tab


_TABLES: Optional[_Tables] = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


def _step(char: str, states, prev: Dict[State, float], tb: _Tables) -> Tuple[Dict[State, float], Dict[State, State]]:
    """Scores and back-pointers of the `states` that a state in `prev` can reach, for one character."""
    scores: Dict[State, float] = {}
    pointers: Dict[State, State] = {}
    emit, predecessors = tb.emit, tb.predecessors
    for y in states:
        # Pairs without a transition score -inf in jieba and lose to any reachable one, so only
        # reachable pairs compete; sums in jieba's order; ties: the larger y0 wins, as in jieba.
        candidates = [(prev[y0] + logp, y0) for y0, logp in predecessors[y] if y0 in prev]
        if candidates:
            em = emit[y].get(char, MIN_FLOAT)
            scores[y], pointers[y] = max((s + em, y0) for s, y0 in candidates)
    return scores, pointers


def _viterbi(obs: str, tb: _Tables) -> List[State]:
    """The best HMM state path for a run of Han characters (jieba.posseg.viterbi's result)."""
    emit, char_states = tb.emit, tb.char_states
    first = obs[0]
    scores = {y: tb.start[y] + emit[y].get(first, MIN_FLOAT) for y in char_states.get(first, tb.all_states)}
    back: List[Dict[State, State]] = [{}]
    for char in obs[1:]:
        prev = {y0: s for y0, s in scores.items() if tb.has_next[y0]}
        known = char_states.get(char)
        # jieba's candidates: the character's states that some previous state can reach (for a
        # character outside its table: every reachable state); if none, every reachable state.
        new_scores, pointers = _step(char, known, prev, tb) if known is not None else ({}, {})
        if not new_scores:
            reachable = {y for y0 in prev for y in tb.trans[y0]}
            new_scores, pointers = _step(char, reachable if reachable else tb.all_states, prev, tb)
        scores = new_scores
        back.append(pointers)
    _, state = max((s, y) for y, s in scores.items())
    route: List[State] = [state] * len(obs)
    for i in range(len(obs) - 1, 0, -1):
        state = back[i][state]
        route[i - 1] = state
    return route


def _cut_hmm(sentence: str, tb: _Tables) -> Iterator[Tuple[str, str]]:
    """jieba.posseg's __cut: words and tags from the HMM path."""
    route = _viterbi(sentence, tb)
    begin, next_i = 0, 0
    for i, char in enumerate(sentence):
        position, tag = route[i]
        if position == "B":
            begin = i
        elif position == "E":
            yield sentence[begin:i + 1], tag
            next_i = i + 1
        elif position == "S":
            yield char, tag
            next_i = i + 1
    if next_i < len(sentence):
        yield sentence[next_i:], route[next_i][1]


def _cut_detail(sentence: str, tb: _Tables) -> Iterator[Tuple[str, str]]:
    """jieba.posseg's __cut_detail: an unknown run, split into Han (HMM) and other pieces."""
    ps = tb.posseg
    for block in ps.re_han_detail.split(sentence):
        if ps.re_han_detail.match(block):
            yield from _cut_hmm(block, tb)
        else:
            for piece in ps.re_skip_detail.split(block):
                if piece:
                    yield piece, ("m" if ps.re_num.match(piece) else "eng" if ps.re_eng.match(piece) else "x")


def _cut_buffer(buf: str, tb: _Tables, word_tags: Dict[str, str]) -> Iterator[Tuple[str, str]]:
    if len(buf) == 1:
        yield buf, word_tags.get(buf, "x")
    elif not tb.tokenizer.FREQ.get(buf):
        yield from _cut_detail(buf, tb)
    else:
        for char in buf:
            yield char, word_tags.get(char, "x")


def _cut_dag(sentence: str, tb: _Tables, word_tags: Dict[str, str]) -> Iterator[Tuple[str, str]]:
    """jieba.posseg's __cut_DAG: dictionary route; runs of single characters go to the HMM."""
    tokenizer = tb.tokenizer
    dag = tokenizer.get_DAG(sentence)
    route: Dict[int, Tuple[float, int]] = {}
    tokenizer.calc(sentence, dag, route)
    x, n, buf = 0, len(sentence), ""
    while x < n:
        y = route[x][1] + 1
        word = sentence[x:y]
        if y - x == 1:
            buf += word
        else:
            if buf:
                yield from _cut_buffer(buf, tb, word_tags)
                buf = ""
            yield word, word_tags.get(word, "x")
        x = y
    if buf:
        yield from _cut_buffer(buf, tb, word_tags)


def cut(sentence: str) -> Iterator[Tuple[str, str]]:
    """(word, POS tag) pairs, equal to `[(p.word, p.flag) for p in jieba.posseg.cut(sentence)]`."""
    tb = _tables()
    ps = tb.posseg
    word_tags = tb.word_tags
    for block in ps.re_han_internal.split(sentence):
        if ps.re_han_internal.match(block):
            yield from _cut_dag(block, tb, word_tags)
            continue
        for piece in ps.re_skip_internal.split(block):
            if ps.re_skip_internal.match(piece):
                yield piece, "x"
                continue
            for char in piece:
                # jieba tests the whole piece against its Latin pattern here, not the character
                yield char, ("m" if ps.re_num.match(char) else "eng" if ps.re_eng.match(piece) else "x")
