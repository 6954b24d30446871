"""Training on from a model `albert-ner train` wrote: find it, check it fits the new run, restore its weights.

`--init` may name such a model: its output directory (CURRENT -> model-N/), a model folder (the flat
layout of older versions, or a published folder), or an archive of one such as a SageMaker job's
model.tar.gz (pretrained/cache.py unpacks archives first). The model is looked for in the folder
itself, then in its sub-folders one level down (a job's archive may keep it in one). Its vocabulary,
character lookup and encoder config define the new run's ids and encoder. The whole model continues
when the new run has the same labels (always stored in one canonical order, so the same set is the
same order) and the same head shape; otherwise only the encoder does and the head starts fresh.
Weights continue; optimizer state and the learning-rate schedule start afresh.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import tensorflow as tf

from albert_ner.config import MODEL_CONFIG_FILE, EncoderConfig, ModelConfig, load_json
from albert_ner.data.vocab import Vocab
from albert_ner.model import modeldir, store
from albert_ner.model.modeldir import ModelDirError, ModelFiles

log = logging.getLogger(__name__)

TRAIN_CONFIG_FILE = "train_config.json"  # the run settings a published folder keeps beside the model
# Head fields that shape its weights: all must match for the head to continue.
HEAD_SHAPE_FIELDS = ("lstm_units", "lexicon_dim", "pos_dim", "bigram_dim", "bigram_vocab_size")
# Encoder fields that do not shape weights (a run may set its own dropout).
ENCODER_FREE_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")
CONTINUED_ALL = "encoder+head"


def _is_model_folder(folder: Path) -> bool:
    """A folder holding a trained model's config (not a pretrained encoder's config.json) and its weights."""
    config = folder / MODEL_CONFIG_FILE
    if not config.is_file() or not (folder / (store.WEIGHTS_PREFIX + ".index")).is_file():
        return False
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True  # claims to be one: open_files names what is wrong with it
    return isinstance(raw, dict) and {"encoder", "head", "labels"} <= set(raw)


def _holds_model(folder: Path) -> bool:
    return (folder / modeldir.CURRENT_FILE).is_file() or _is_model_folder(folder)


def find_trained_model(path: str | Path) -> Optional[Path]:
    """The model directory at `path` or in one of its sub-folders, or None when `path` holds no trained model.

    Several sub-folders holding one is ambiguous: an error naming them."""
    path = Path(path)
    if not path.is_dir():
        return None
    if _holds_model(path):
        return path
    found = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and _holds_model(p))
    if len(found) > 1:
        raise ModelDirError(f"{path}: holds several trained models ({', '.join(p.name for p in found)}); pass "
                            "the one to continue from")
    return found[0] if found else None


def open_trained(path: str | Path) -> Optional[ModelFiles]:
    """The checked files (config, vocabulary, manifest) of the trained model at `path`, or None if there is none."""
    where = find_trained_model(path)
    return modeldir.open_files(where) if where is not None else None


def vocab_file(files: ModelFiles) -> Path:
    """The vocabulary file of a model folder (vocab.txt, or vocab.model for a SentencePiece one)."""
    from albert_ner.data.features import SPM_VOCAB_FILE, VOCAB_FILE

    txt = files.folder / VOCAB_FILE
    return txt if txt.is_file() else files.folder / SPM_VOCAB_FILE


def check_vocab(vocab: Vocab, files: ModelFiles) -> None:
    """The run's vocabulary must be the init model's: its ids index the model's embedding rows."""
    mine, theirs = vocab.tokens, files.featurizer.vocab.tokens
    if mine == theirs:
        return
    first = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
    a = repr(mine[first]) if first < len(mine) else "none"
    b = repr(theirs[first]) if first < len(theirs) else "none"
    raise ValueError(f"{vocab.source}: not the vocabulary of the model to continue from ({vocab_file(files)}): "
                     f"{len(mine):,} against {len(theirs):,} tokens, id {first} is {a} against {b}; leave out "
                     "--vocab-file to use the model's")


def encoder_differences(now: EncoderConfig, init: EncoderConfig) -> List[str]:
    """'field: X (init model) vs Y (now)' for each weight-shaping encoder field that differs."""
    a, b = dataclasses.asdict(init), dataclasses.asdict(now)
    return [f"{k}: {a[k]!r} (init model) vs {b[k]!r} (now)" for k in a
            if k not in ENCODER_FREE_FIELDS and a[k] != b[k]]


def head_differences(now: ModelConfig, init: ModelConfig) -> List[str]:
    """Why the head cannot continue (labels or head shape differ); empty when it can."""
    reasons = []
    if now.labels != init.labels:
        added = [t for t in now.labels if t not in init.labels]
        removed = [t for t in init.labels if t not in now.labels]
        if added or removed:
            parts = ([f"new {', '.join(added)}"] if added else []) + ([f"gone {', '.join(removed)}"] if removed else [])
            reasons.append("labels differ: " + "; ".join(parts))
        else:
            reasons.append("labels in another order")
    a, b = dataclasses.asdict(init.head), dataclasses.asdict(now.head)
    shape = [f"{k} {a[k]} (init model) vs {b[k]} (now)" for k in HEAD_SHAPE_FIELDS if a[k] != b[k]]
    if shape:
        reasons.append("head differs: " + ", ".join(shape))
    return reasons


def trained_encoder_lr(files: ModelFiles, pretrained_lr: float) -> Optional[float]:
    """The peak learning rate the init model's encoder was trained at (its train_config.json), or None."""
    path = files.folder / TRAIN_CONFIG_FILE
    if not path.is_file():
        return None
    raw = load_json(path)
    value = raw.get("encoder_lr") if isinstance(raw, dict) else None
    if value is None and isinstance(raw, dict):
        value = pretrained_lr if raw.get("init") else raw.get("head_lr")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None
    return float(value)


def _restore_encoder(encoder, files: ModelFiles) -> None:
    """Only the encoder's weights from the model folder's checkpoint, every encoder variable matched."""
    prefix = str(files.folder / store.WEIGHTS_PREFIX)
    try:
        status = tf.train.Checkpoint(model=tf.train.Checkpoint(encoder=encoder)).read(prefix)
        status.assert_existing_objects_matched().expect_partial()
    except (tf.errors.OpError, IndexError, EOFError, OSError) as exc:
        raise ModelDirError(f"{prefix}.data-*: cannot read the encoder weights ({exc}); the file is truncated "
                            "or damaged") from None
    except (AssertionError, ValueError) as exc:
        raise ModelDirError(f"{prefix}: the encoder weights do not fit {files.folder / MODEL_CONFIG_FILE} "
                            f"({str(exc).splitlines()[0][:300]})") from None


def restore_encoder(encoder, path: str | Path) -> Dict[str, Any]:
    """Fill a built TransformerEncoder from a trained model's encoder weights; returns a short report."""
    files = open_trained(path)
    if files is None:
        raise ModelDirError(f"{path}: no trained model found")
    _restore_encoder(encoder, files)
    return {"source": str(path), "model": str(files.folder), "kind": "albert-ner model", "continued": "encoder"}


def continue_from(model, files: ModelFiles, source: str) -> Dict[str, Any]:
    """Load a built NerTagger from the init model: everything when the labels and head shape match, else the
    encoder only. Returns the report for eval_results.json (`continued` says which, and why)."""
    reasons = head_differences(model.config, files.config)
    if reasons:
        _restore_encoder(model.encoder, files)
        continued = f"encoder; head new ({'; '.join(reasons)})"
    else:
        store.restore_weights(model, files.folder)
        continued = CONTINUED_ALL
    manifest = files.manifest or {}
    log.info("continued: %s, from %s", continued, files.folder)
    return {"source": source, "model": str(files.folder), "kind": "albert-ner model", "continued": continued,
            "run_id": manifest.get("run_id"), "epoch": manifest.get("epoch"), "dev_f1": manifest.get("dev_f1")}

