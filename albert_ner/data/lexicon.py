"""Word-boundary features: each character's B/M/E/S position in jieba's segmentation of its sentence.

A cheap lexicon signal for a character tagger: entity boundaries mostly coincide with word
boundaries, which a randomly initialised encoder cannot know.
"""
from __future__ import annotations

import logging
from typing import Iterable, List

import numpy as np

B, M, E, S = 1, 2, 3, 4  # 0 is padding
PAD = 0


def _jieba():
    import jieba  # imported lazily: building its prefix dictionary takes ~0.7 s

    jieba.setLogLevel(logging.WARNING)
    return jieba


def word_boundary_ids(text: str) -> np.ndarray:
    """B/M/E/S ids [len(text)] for one sentence; exactly one id per character."""
    out = np.empty(len(text), dtype=np.int32)
    pos = 0
    for word in _jieba().cut(text, HMM=True):
        n = len(word)
        if n == 1:
            out[pos] = S
        elif n > 1:
            out[pos] = B
            out[pos + 1:pos + n - 1] = M
            out[pos + n - 1] = E
        pos += n
    if pos != len(text):  # jieba's pieces always concatenate to the input; guard the alignment anyway
        raise RuntimeError(f"jieba segmentation covered {pos} of {len(text)} characters of {text[:40]!r}")
    return out


def word_boundaries_for(texts: Iterable[str]) -> List[np.ndarray]:
    """word_boundary_ids for many sentences."""
    return [word_boundary_ids(t) for t in texts]
