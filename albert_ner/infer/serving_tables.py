"""serving.json: what the serving handler needs to featurize texts and read tags, computed at export time.

The handler (infer/serving_features.py) must not depend on numpy, and must give every character the
id the model was trained with, even in a Python with other Unicode tables. So the character lookup
is evaluated here, by the model's own Vocab, for every character whose id could differ from [UNK],
and written as data; likewise the bigram forms (full-width folding, lower-casing, spaces), jieba's
word-boundary and POS id tables, the labels and the window settings of the in-process tagger.
"""
from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import Any, Dict, Iterator

from albert_ner.config import ModelConfig
from albert_ner.data import lexicon
from albert_ner.data.bigrams import END, UNK as BIGRAM_UNKNOWN, _bigrams
from albert_ner.data.features import Featurizer
from albert_ner.data.vocab import SPM_WORD_START
from albert_ner.infer.serving_features import TABLES_FILE, TABLES_FORMAT
from albert_ner.infer.windowed import INPUT_KEYS, WindowedTagger, inference_buckets

# Characters of these categories have no case, width or decomposition: each maps to itself in every
# lookup form, so its id is the vocabulary's entry for it (or [UNK]); those entries are added separately.
_SELF_ONLY = frozenset(("Cn", "Co", "Cs"))  # unassigned, private use, surrogates


def candidate_chars(featurizer: Featurizer) -> Iterator[str]:
    """Every character whose vocabulary id may differ from [UNK] (or whose bigram form may differ from itself)."""
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) not in _SELF_ONLY:
            yield ch
    for token in featurizer.vocab.tokens:
        bare = token[len(SPM_WORD_START):] if token.startswith(SPM_WORD_START) else token
        if len(bare) == 1 and unicodedata.category(bare) in _SELF_ONLY:
            yield bare


def build_tables(config: ModelConfig, featurizer: Featurizer) -> Dict[str, Any]:
    """The serving.json object of a model (see serving_features.ServingFeatures for its fields)."""
    vocab = featurizer.vocab
    char_ids: Dict[str, int] = {}
    bigram_forms: Dict[str, str] = {}
    for ch in candidate_chars(featurizer):
        idx = vocab.char_to_id(ch)
        if idx != vocab.unk_id:
            char_ids[ch] = idx
        form = _bigrams([ch])[0][0]
        if form != ch:
            bigram_forms[ch] = form
    tagger = WindowedTagger(None, featurizer, config.labels, config.max_seq_len)  # the in-process settings
    features: Dict[str, Any] = {}
    segmenter = "posseg" if featurizer.pos else "jieba"
    if featurizer.lexicon:
        features["word_boundaries"] = {"segmenter": segmenter, "ids": {"B": lexicon.B, "M": lexicon.M,
                                                                        "E": lexicon.E, "S": lexicon.S}}
    if featurizer.pos:
        features["pos_ids"] = {"segmenter": segmenter, "ids": dict(lexicon._POS_IDS), "unknown": lexicon.POS_UNKNOWN}
    if featurizer.bigrams is not None:
        features["bigram_ids"] = {"forms": bigram_forms, "end": END, "unknown": BIGRAM_UNKNOWN, "first_id": 2,
                                  "bigrams": list(featurizer.bigrams.bigrams)}
    return {"format": TABLES_FORMAT, "inputs": list(INPUT_KEYS), "labels": list(config.labels),
            "max_seq_len": config.max_seq_len, "window_overlap": tagger.overlap,
            "buckets": list(inference_buckets(config.max_seq_len)),
            "special_ids": {"pad": vocab.pad_id, "unk": vocab.unk_id, "cls": vocab.cls_id, "sep": vocab.sep_id},
            "char_ids": char_ids, "features": features}


def write_tables(folder: str | Path, config: ModelConfig, featurizer: Featurizer) -> Path:
    """folder/serving.json (ASCII JSON: lone surrogates and every other character survive the round trip)."""
    path = Path(folder) / TABLES_FILE
    path.write_text(json.dumps(build_tables(config, featurizer), ensure_ascii=True, sort_keys=True), encoding="ascii")
    return path
