"""Character-bigram vocabulary: each character's bigram with its right neighbour, as an id.

Bigrams carry word-like context that a character model from random init learns slowly; the
vocabulary comes from the training data (frequent bigrams only) and is saved with the model.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np

from albert_ner.data.vocab import normalize_char

PAD, UNK = 0, 1
END = "\u2403"  # stands for "after the last character"; never a normalised input character


def _bigrams(chars: Sequence[str]) -> List[str]:
    norm = [" " if c.isspace() else normalize_char(c) for c in chars]
    return [a + b for a, b in zip(norm, norm[1:] + [END])]


class BigramVocab:
    """Bigram string -> id (0 padding, 1 unknown, then by descending training frequency)."""

    def __init__(self, bigrams: Sequence[str]):
        self.bigrams = list(bigrams)
        self._ids: Dict[str, int] = {b: i + 2 for i, b in enumerate(self.bigrams)}
        if len(self._ids) != len(self.bigrams):
            raise ValueError("duplicate bigrams in vocabulary")

    def __len__(self) -> int:
        """Rows the embedding table needs (padding and unknown included)."""
        return len(self.bigrams) + 2

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 2, max_size: int = 200_000) -> "BigramVocab":
        """The bigrams seen at least min_count times, most frequent first, at most max_size."""
        counts: Counter = Counter()
        for chars in sentences:
            counts.update(_bigrams(chars))
        kept = [b for b, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
        return cls(kept[:max_size])

    def encode(self, chars: Sequence[str]) -> np.ndarray:
        """Bigram ids [len(chars)], one per character."""
        ids = self._ids
        return np.fromiter((ids.get(b, UNK) for b in _bigrams(chars)), dtype=np.int32, count=len(chars))

    def save(self, path: str | Path) -> None:
        """One bigram per line, in id order (ids 2, 3, ...); the END marker written as is."""
        Path(path).write_text("".join(b + "\n" for b in self.bigrams), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "BigramVocab":
        text = Path(path).read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for n, line in enumerate(lines, 1):
            if len(line) != 2:
                raise ValueError(f"{path}:{n}: expected a two-character bigram, got {line!r}")
        return cls(lines)
