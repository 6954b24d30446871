"""jieba lexicon features: each character's B/M/E/S position in its word, and that word's POS tag.

Cheap lexicon signals for a character tagger: entity boundaries mostly coincide with word
boundaries, and jieba's part-of-speech tags mark person (nr), place (ns) and organisation (nt)
names from its dictionary and HMM, which a randomly initialised encoder cannot know.
"""
from __future__ import annotations

import logging
from typing import Iterable, List, Sequence, Tuple

import numpy as np

from albert_ner.data import posseg

B, M, E, S = 1, 2, 3, 4  # 0 is padding
PAD = 0
NUM_BOUNDARY_IDS = 5  # padding + B, M, E, S

# jieba's part-of-speech inventory (dictionary, HMM and posseg's own "eng"/"un"/"x"). A fixed
# table, never built from data, so that a saved model's POS ids mean the same thing in every
# version: append new tags at the end only.
POS_TAGS: Tuple[str, ...] = (
    "a", "ad", "ag", "an", "b", "bg", "c", "d", "df", "dg", "e", "en", "eng", "f", "g", "h", "i", "in", "j",
    "jn", "k", "l", "ln", "m", "mg", "mq", "n", "ng", "nr", "nrfg", "nrt", "ns", "nt", "nz", "o", "p", "q",
    "qe", "qg", "r", "rg", "rr", "rz", "s", "t", "tg", "u", "ud", "ug", "uj", "ul", "un", "uv", "uz", "v",
    "vd", "vg", "vi", "vn", "vq", "w", "x", "y", "yg", "z", "zg",
)
POS_UNKNOWN = 1  # a tag outside POS_TAGS; 0 is padding
_POS_IDS = {tag: i + 2 for i, tag in enumerate(POS_TAGS)}
NUM_POS_IDS = len(POS_TAGS) + 2


def _jieba():
    import jieba  # imported lazily: building its prefix dictionary takes ~0.7 s

    jieba.setLogLevel(logging.WARNING)
    return jieba


def _boundaries(words: Sequence[str], length: int, text: str) -> np.ndarray:
    """B/M/E/S ids [length] for a segmentation whose words concatenate to `text`."""
    out = np.empty(length, dtype=np.int32)
    pos = 0
    for word in words:
        n = len(word)
        if n == 1:
            out[pos] = S
        elif n > 1:
            out[pos] = B
            out[pos + 1:pos + n - 1] = M
            out[pos + n - 1] = E
        pos += n
    if pos != length:  # jieba's pieces always concatenate to the input; guard the alignment anyway
        raise RuntimeError(f"jieba segmentation covered {pos} of {length} characters of {text[:40]!r}")
    return out


def word_boundary_ids(text: str) -> np.ndarray:
    """B/M/E/S ids [len(text)] from jieba's default segmentation; exactly one id per character."""
    return _boundaries(list(_jieba().cut(text, HMM=True)), len(text), text)


def word_boundary_and_pos_ids(text: str) -> Tuple[np.ndarray, np.ndarray]:
    """B/M/E/S ids and POS ids [len(text)] from jieba's POS segmentation (jieba.posseg's exact output,
    computed by albert_ner.data.posseg, which is faster)."""
    pairs = list(posseg.cut(text))
    boundaries = _boundaries([word for word, _ in pairs], len(text), text)
    pos = np.repeat(np.fromiter((_POS_IDS.get(tag, POS_UNKNOWN) for _, tag in pairs), dtype=np.int32,
                                count=len(pairs)),
                    [len(word) for word, _ in pairs])
    return boundaries, pos


def word_boundaries_for(texts: Iterable[str]) -> List[np.ndarray]:
    """word_boundary_ids for many sentences."""
    return [word_boundary_ids(t) for t in texts]


def word_boundaries_and_pos_for(texts: Iterable[str]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """word_boundary_and_pos_ids for many sentences, as two lists."""
    pairs = [word_boundary_and_pos_ids(t) for t in texts]
    return [p[0] for p in pairs], [p[1] for p in pairs]
