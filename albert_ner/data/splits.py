"""Train / dev / test corpora for a run, with a seeded dev hold-out when no dev file is given."""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.data.corpus import (CorpusStats, Sentence, entity_counts, read_corpus, unseen_entity_types,
                                   unseen_type_messages)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Splits:
    """The sentences of each split and how the dev split was made."""

    train: List[Sentence]
    dev: List[Sentence]
    test: Optional[List[Sentence]]
    dev_source: str
    stats: List[CorpusStats]
    # Entity types of dev/test that the training sentences never contain, with their counts: {"dev": {"GPE": 3}}.
    unseen_types: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)


def hold_out(sentences: Sequence[Sentence], fraction: float, seed: int) -> Tuple[List[Sentence], List[Sentence]]:
    """Split off round(fraction * n) sentences (seeded random choice) as dev; order is preserved."""
    n_dev = int(round(fraction * len(sentences)))
    if n_dev == 0 or n_dev >= len(sentences):
        raise ValueError(f"dev_fraction {fraction} of {len(sentences)} sentences leaves no train or no dev data")
    chosen = np.zeros(len(sentences), dtype=bool)
    chosen[np.random.default_rng(seed).choice(len(sentences), n_dev, replace=False)] = True
    train = [s for s, c in zip(sentences, chosen) if not c]
    dev = [s for s, c in zip(sentences, chosen) if c]
    return train, dev


def load_splits(train_file: str, dev_file: Optional[str], test_file: Optional[str], dev_fraction: float,
                seed: int, strict: bool = False, max_train_sentences: int = 0) -> Splits:
    """Read and validate every file, logging its counts; hold out dev from train if needed.

    Entity types of dev or test that never occur in the training sentences get one warning each."""
    stats = []

    def read(path: str) -> List[Sentence]:
        sentences, st = read_corpus(path, strict=strict)
        log.info(st.summary())
        stats.append(st)
        return sentences

    train = read(train_file)
    if max_train_sentences and max_train_sentences < len(train):
        log.info("using the first %d of %d training sentences (max_train_sentences)", max_train_sentences, len(train))
        train = train[:max_train_sentences]
    if dev_file:
        dev, source = read(dev_file), dev_file
    else:
        train, dev = hold_out(train, dev_fraction, seed)
        source = f"{len(dev)} sentences ({dev_fraction:.1%}) held out of {train_file} with seed {seed}"
        log.info("dev set: %s", source)
    test = read(test_file) if test_file else None
    unseen = unseen_entity_types(entity_counts(train), {"dev": dev, "test": test or []})
    for message in unseen_type_messages(unseen):
        log.warning("%s", message)
    return Splits(train, dev, test, source, stats, unseen)
