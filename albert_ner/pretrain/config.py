"""PretrainConfig: one pretraining run (corpus, encoder, masking, optimisation), saved beside its output as JSON."""
from __future__ import annotations

import dataclasses
from typing import List, Optional

from albert_ner.config import PRECISIONS

DOC_MODES = ("line", "file")
SOP_CHOICES = ("auto", "on", "off")


@dataclasses.dataclass
class PretrainConfig:
    """MLM (+ sentence-order) pretraining of an encoder on unlabelled text; the result is a directory that
    `albert-ner train --init` reads, plus a Hugging Face export."""

    inputs: List[str]  # text files, directories and globs (plain, .gz, .xz, .bz2)
    output_dir: str
    vocab_file: str
    # Preprocessed shards go here; None: OUTPUT_DIR/data. Same inputs and settings -> reused.
    data_dir: Optional[str] = None
    # Continual pretraining from any checkpoint the loaders read (its config and vocab come with it);
    # else from scratch with encoder_config / encoder_preset.
    init: Optional[str] = None
    encoder_config: Optional[str] = None
    encoder_preset: str = "cpu-small"
    encoder_dropout: Optional[float] = None  # overrides the config's dropouts
    # Corpus
    doc_per: str = "line"  # one document per line, or per file
    encoding: str = "auto"
    user_dict: Optional[str] = None  # jieba user dictionary: its words are masked whole
    workers: int = 0  # preprocessing processes; 0 = one per core
    heldout_fraction: float = 0.01  # documents held out for MLM accuracy / perplexity
    max_seq_len: int = 128
    # Masking
    mask_prob: float = 0.15
    whole_word: bool = True
    char_mask_share: float = 0.0  # ERNIE's mix: this share of masking units are single characters
    sop: str = "auto"  # sentence-order prediction: auto = on for ALBERT layouts, off for BERT/ERNIE
    # Optimisation
    batch_size: int = 32
    epochs: int = 1
    max_steps: int = 0  # 0 = epochs x steps per epoch; else a fixed budget of steps (the schedule spans it)
    learning_rate: float = 1e-4  # encoder and heads
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    clip_norm: float = 1.0
    precision: str = "auto"
    jit: Optional[bool] = None
    seed: int = 42
    shuffle_buffer: int = 10_000
    resume: bool = True
    checkpoint_every: int = 500
    log_every: int = 50
    eval_batches: int = 100  # held-out batches per evaluation, after every epoch (0 = all)

    def __post_init__(self) -> None:
        errors = []
        if not self.inputs:
            errors.append("inputs: give at least one text file, directory or glob")
        if self.precision not in PRECISIONS:
            errors.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.doc_per not in DOC_MODES:
            errors.append(f"doc_per must be one of {', '.join(DOC_MODES)}, got {self.doc_per!r}")
        if self.sop not in SOP_CHOICES:
            errors.append(f"sop must be one of {', '.join(SOP_CHOICES)}, got {self.sop!r}")
        if not 0.0 < self.mask_prob < 1.0:
            errors.append(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if not 0.0 <= self.char_mask_share <= 1.0:
            errors.append(f"char_mask_share must be in [0, 1], got {self.char_mask_share}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            errors.append(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if not 8 <= self.max_seq_len <= 4096:
            errors.append(f"max_seq_len must be in 8..4096, got {self.max_seq_len}")
        for name in ("batch_size", "epochs", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "workers", "eval_batches", "shuffle_buffer"):
            if getattr(self, name) < 0:
                errors.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            errors.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.init and self.encoder_config:
            errors.append("init and encoder_config both give the encoder (init brings its own config); use one")
        if errors:
            raise ValueError("invalid pretraining config: " + "; ".join(errors))
