"""Featurizer: everything that turns characters into model inputs, saved beside the model.

Character ids (the encoder vocab, looked up in the model's `char_lookup` order), optional jieba
word-boundary and part-of-speech ids, optional character-bigram ids, and the label ids for training data.
Training, evaluation and tagging all encode through this one object, so the inputs of a saved model are
rebuilt exactly.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from albert_ner.config import DEFAULT_CHAR_LOOKUP, HeadConfig
from albert_ner.data.bigrams import BigramVocab
from albert_ner.data.corpus import Sentence
from albert_ner.data.lexicon import word_boundaries_and_pos_for, word_boundaries_for
from albert_ner.data.pipeline import BatchPlanner, EncodedCorpus, Window, label_index
from albert_ner.data.vocab import Vocab, vocab_file_bytes

VOCAB_FILE = "vocab.txt"
SPM_VOCAB_FILE = "vocab.model"  # when the encoder's vocabulary is a SentencePiece model
BIGRAM_FILE = "bigrams.txt"
FEATURIZER_FILES = (VOCAB_FILE, SPM_VOCAB_FILE, BIGRAM_FILE)  # those a model directory may hold


@dataclasses.dataclass
class Featurizer:
    """Vocabulary plus the optional lexicon, POS and bigram features of one model.

    With `pos`, word boundaries come from the same POS segmentation (jieba.posseg) as the tags;
    without it, from jieba's default segmentation (what models trained without POS expect).
    How characters find their ids (`char_lookup`) is the vocabulary's; a model directory keeps it in
    its head config.
    """

    vocab: Vocab
    lexicon: bool = False
    bigrams: Optional[BigramVocab] = None
    pos: bool = False

    def encode(self, sentences: Sequence[Sentence], labels: Optional[Sequence[str]] = None) -> EncodedCorpus:
        """Per-sentence id arrays; with labels, unknown tags are an error naming file:line."""
        token_ids = [self.vocab.encode(s.chars) for s in sentences]
        label_ids = None
        if labels is not None:
            index = label_index(labels)
            label_ids = [_label_ids(s, index) for s in sentences]
        features: Dict[str, List[np.ndarray]] = {}
        if self.pos:
            boundaries, pos_ids = word_boundaries_and_pos_for(s.text for s in sentences)
            features["pos_ids"] = pos_ids
            if self.lexicon:
                features["word_boundaries"] = boundaries
        elif self.lexicon:
            features["word_boundaries"] = word_boundaries_for(s.text for s in sentences)
        if self.bigrams is not None:
            features["bigram_ids"] = [self.bigrams.encode(s.chars) for s in sentences]
        return EncodedCorpus(token_ids, label_ids, features)

    @property
    def char_lookup(self) -> str:
        """The order in which a character's forms are looked up in the vocabulary (config.CHAR_LOOKUPS)."""
        return self.vocab.char_lookup

    def planner(self, corpus: EncodedCorpus, windows: Sequence[Window], batch_size: int,
                max_seq_len: int) -> BatchPlanner:
        """A BatchPlanner with this vocabulary's special ids."""
        v = self.vocab
        return BatchPlanner(corpus, windows, batch_size, max_seq_len, v.cls_id, v.sep_id, v.pad_id)

    def save(self, model_dir: str | Path, vocab_file: str | Path) -> None:
        """Copy the vocab (a tokenizer.json's as vocab.txt) and write the bigram list into the model directory."""
        model_dir = Path(model_dir)
        dest = model_dir / (SPM_VOCAB_FILE if str(vocab_file).endswith(".model") else VOCAB_FILE)
        if Path(vocab_file).resolve() != dest.resolve():
            dest.write_bytes(vocab_file_bytes(vocab_file))
        if self.bigrams is not None:
            self.bigrams.save(model_dir / BIGRAM_FILE)

    @classmethod
    def load(cls, model_dir: str | Path, lexicon: bool, bigrams: bool, pos: bool = False,
             char_lookup: str = DEFAULT_CHAR_LOOKUP) -> "Featurizer":
        """The featurizer a model directory was trained with (which features and lookup: from its head config)."""
        model_dir = Path(model_dir)
        spm = model_dir / SPM_VOCAB_FILE
        vocab = Vocab.from_file(spm if spm.is_file() and not (model_dir / VOCAB_FILE).is_file()
                                else model_dir / VOCAB_FILE, char_lookup)
        return cls(vocab, lexicon, BigramVocab.load(model_dir / BIGRAM_FILE) if bigrams else None, pos)

    @classmethod
    def for_head(cls, model_dir: str | Path, head: HeadConfig) -> "Featurizer":
        """The featurizer of a model directory whose head uses the features and character lookup `head` says."""
        return cls.load(model_dir, lexicon=head.lexicon_dim > 0, bigrams=head.bigram_dim > 0, pos=head.pos_dim > 0,
                        char_lookup=head.char_lookup)


def _label_ids(sentence: Sentence, index: Dict[str, int]) -> np.ndarray:
    if sentence.tags is None:
        raise ValueError(f"{sentence.source}:{sentence.line}: sentence has no tags")
    try:
        return np.fromiter((index[t] for t in sentence.tags), dtype=np.int32, count=len(sentence.tags))
    except KeyError as exc:
        offset = next(i for i, t in enumerate(sentence.tags) if t not in index)
        raise ValueError(f"{sentence.source}:{sentence.line + offset}: tag {exc.args[0]!r} is not in the model's "
                         f"label set {list(index)}") from None
