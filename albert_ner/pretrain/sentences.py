"""One document -> pretraining chunks: sentences, character ids, jieba word starts, packed to a length limit.

A chunk is a run of consecutive whole sentences of one document with at most `max_tokens` tokens; a
sentence longer than that is cut at a jieba word start where one lies in reach, else mid-word (counted;
the rest of the cut word then starts a word of its own). Word starts come from jieba over each sentence.
Whitespace (and control/format characters, which the vocabulary treats as blank) is dropped and counted,
except that one space is kept between two ASCII letters/digits ("iPhone 14"), as the NER featurizer sees it.
"""
from __future__ import annotations

import dataclasses
import logging
import unicodedata
from collections import Counter
from typing import Iterator, List, Optional, Tuple

import numpy as np

from albert_ner.data.vocab import Vocab

SENTENCE_ENDS = frozenset("。！？!?；;")
# Closing quotes and brackets that stay with the sentence they end: 他说："好！" -> one sentence.
CLOSERS = frozenset("”’\"'」』）)】]》〉」〕｝}")
_BLANK_CATEGORIES = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


def is_blank(ch: str) -> bool:
    """Whitespace, control and format characters (the vocabulary maps them all to its whitespace token)."""
    return ch.isspace() or unicodedata.category(ch) in _BLANK_CATEGORIES


def _ascii_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def split_sentences(text: str) -> List[str]:
    """`text` cut after each run of sentence ends and the closing quotes/brackets after it, and at newlines.

    The pieces (newlines dropped) concatenate to `text` without its newlines; blank pieces are kept (the
    caller drops them after cleaning)."""
    out: List[str] = []
    start, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            out.append(text[start:i])
            i += 1
            start = i
            continue
        i += 1
        if ch in SENTENCE_ENDS:
            while i < n and (text[i] in SENTENCE_ENDS or text[i] in CLOSERS):
                i += 1
            out.append(text[start:i])
            start = i
    if start < n:
        out.append(text[start:])
    return out


def clean_blanks(sentence: str) -> Tuple[str, int]:
    """(the sentence with blank characters dropped, how many were dropped). A run of blanks between two ASCII
    letters/digits becomes one space; every other blank is dropped."""
    kept: List[str] = []
    dropped = 0
    i, n = 0, len(sentence)
    while i < n:
        if not is_blank(sentence[i]):
            kept.append(sentence[i])
            i += 1
            continue
        j = i
        while j < n and is_blank(sentence[j]):
            j += 1
        if kept and j < n and _ascii_word_char(kept[-1]) and _ascii_word_char(sentence[j]):
            kept.append(" ")
            dropped += j - i - 1
        else:
            dropped += j - i
        i = j
    return "".join(kept), dropped


@dataclasses.dataclass
class Chunk:
    """One stored example: equal-length token ids, word-start and sentence-start marks (no specials)."""

    token_ids: np.ndarray  # int32 [L]
    word_starts: np.ndarray  # int8 [L]
    sentence_starts: np.ndarray  # int8 [L]


@dataclasses.dataclass
class _Piece:
    """A sentence, or a part of an over-long one, ready to pack."""

    ids: np.ndarray
    word_starts: np.ndarray
    starts_sentence: bool


def word_start_marks(words: List[str], length: int, sentence: str) -> np.ndarray:
    """int8 [length]: 1 at the first character of each word. Errors if the words do not cover the sentence."""
    marks = np.zeros(length, dtype=np.int8)
    pos = 0
    for word in words:
        if pos < length:
            marks[pos] = 1
        pos += len(word)
    if pos != length:
        raise RuntimeError(f"jieba's words cover {pos} of the {length} characters of {sentence[:40]!r}")
    return marks


def cut_points(word_starts: np.ndarray, limit: int) -> Tuple[List[int], int]:
    """Where to cut a sentence of len(word_starts) tokens into pieces of at most `limit`: the last word start in
    reach of each piece's start, else `limit` tokens on (a cut inside a word). Returns (cut offsets, how many
    cuts fell inside a word)."""
    n = len(word_starts)
    cuts: List[int] = []
    inside = 0
    start = 0
    while n - start > limit:
        window = np.flatnonzero(word_starts[start + 1:start + limit + 1])
        if len(window):
            end = start + 1 + int(window[-1])
        else:
            end = start + limit
            inside += 1
        cuts.append(end)
        start = end
    return cuts, inside


class Segmenter:
    """Turns documents into chunks of at most `max_tokens` tokens with one jieba tokenizer (HMM on) and one vocab.

    `user_dict` (a jieba user dictionary file: `word [freq] [tag]` per line, UTF-8) makes its words whole."""

    def __init__(self, vocab: Vocab, max_tokens: int, user_dict: Optional[str] = None):
        if max_tokens < 1:
            raise ValueError(f"a chunk must hold at least one token, got max_tokens={max_tokens}")
        import jieba  # imported lazily: loading its dictionary takes about a second

        jieba.setLogLevel(logging.WARNING)
        self.vocab, self.max_tokens = vocab, max_tokens
        self._jieba = jieba.Tokenizer()
        self._jieba.initialize()
        if user_dict:
            try:
                self._jieba.load_userdict(user_dict)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"{user_dict}: cannot be read as a jieba user dictionary (word [freq] [tag] "
                                 f"per line, UTF-8): {exc}") from None

    def words(self, sentence: str) -> List[str]:
        """jieba's words of one sentence (with the user dictionary, HMM on)."""
        return list(self._jieba.cut(sentence, HMM=True))

    def _pieces(self, text: str, counts: Counter) -> Iterator[_Piece]:
        for raw in split_sentences(text):
            sentence, dropped = clean_blanks(raw)
            counts["blank_chars_dropped"] += dropped
            if not sentence:
                continue
            counts["sentences"] += 1
            ids = self.vocab.encode(sentence)
            marks = word_start_marks(self.words(sentence), len(sentence), sentence)
            cuts, inside = cut_points(marks, self.max_tokens)
            if cuts:
                counts["sentences_cut"] += 1
                counts["cuts_inside_word"] += inside
            for k, (a, b) in enumerate(zip([0] + cuts, cuts + [len(sentence)])):
                piece_marks = marks[a:b].copy()
                piece_marks[0] = 1  # a word cut by the length limit: its rest is a word of its own
                yield _Piece(ids[a:b], piece_marks, k == 0)

    def chunks(self, text: str, counts: Counter, unk_chars: Counter) -> List[Chunk]:
        """The chunks of one document; none if it has no character the vocabulary knows (all blank or [UNK]).

        Adds to `counts` blank_chars_dropped and, for the chunks returned, sentences, sentences_cut,
        cuts_inside_word and unk_tokens; and to `unk_chars` each character behind such an [UNK] token."""
        own: Counter = Counter()
        pieces = list(self._pieces(text, own))
        unk = self.vocab.unk_id
        if not any(np.any(p.ids != unk) for p in pieces):
            counts["blank_chars_dropped"] += own["blank_chars_dropped"]
            return []
        counts.update(own)
        out: List[Chunk] = []
        group: List[_Piece] = []
        size = 0
        for piece in pieces:
            if group and size + len(piece.ids) > self.max_tokens:
                out.append(_join(group))
                group, size = [], 0
            group.append(piece)
            size += len(piece.ids)
        if group:
            out.append(_join(group))
        unknown = sum(int(np.count_nonzero(chunk.token_ids == unk)) for chunk in out)
        if unknown:
            counts["unk_tokens"] += unknown
            unk_chars.update(ch for ch in text if not is_blank(ch) and self.vocab.char_to_id(ch) == unk)
        return out


def _join(group: List[_Piece]) -> Chunk:
    """The pieces as one chunk: a sentence start where a sentence begins, and at position 0 whatever begins there."""
    starts = np.zeros(sum(len(p.ids) for p in group), dtype=np.int8)
    pos = 0
    for k, piece in enumerate(group):
        if piece.starts_sentence or k == 0:
            starts[pos] = 1
        pos += len(piece.ids)
    return Chunk(np.concatenate([p.ids for p in group]).astype(np.int32),
                 np.concatenate([p.word_starts for p in group]).astype(np.int8), starts)
