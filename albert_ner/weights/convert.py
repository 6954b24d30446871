"""Pretrained encoders in and out: any published source -> loaded encoder -> converted TF2 directory.

A converted directory holds what the trainer needs and nothing framework-specific:
    DIR/encoder_config.json   EncoderConfig (layout, activation, epsilon, sizes)
    DIR/vocab.txt             the source's vocabulary, as published (WordPiece or ERNIE token<TAB>id)
    DIR/encoder/ckpt.*        a TF2 checkpoint of the TransformerEncoder
    DIR/conversion_report.json  what was loaded, skipped or left random
`albert-ner train --init` accepts such a directory, any source `read_source` understands, or a model
`albert-ner train` wrote (model/warm_start.py), each also as a local archive.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from albert_ner.config import EncoderConfig, from_dict, load_json, save_json
from albert_ner.data.features import VOCAB_FILE
from albert_ner.data.vocab import vocab_file_bytes
from albert_ner.model import warm_start
from albert_ner.model.encoder import TransformerEncoder
from albert_ner.weights.loader import LoadReport, assign_encoder_weights
from albert_ner.weights.sources import locate_source, read_source
from pretrained.cache import unpacked_local

log = logging.getLogger(__name__)

ENCODER_CONFIG = "encoder_config.json"
ENCODER_PREFIX = "encoder/ckpt"
REPORT_FILE = "conversion_report.json"


PRETRAINED_SUBDIR = "pretrained"  # where `albert-ner pretrain` publishes inside its output directory


def is_converted(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / ENCODER_CONFIG).is_file()


def pretraining_output(path: str | Path) -> Path:
    """An `albert-ner pretrain` output directory stands for the encoder it published (OUT/pretrained); any
    other path is returned as it is."""
    path = Path(path)
    inner = path / PRETRAINED_SUBDIR
    if path.is_dir() and not is_converted(path) and is_converted(inner):
        return inner
    return path


def _build(encoder: TransformerEncoder) -> None:
    """Create the encoder's variables with a dummy call."""
    ids = tf.zeros([1, 4], tf.int32)
    encoder(ids, tf.ones([1, 4], tf.bool), training=False)


def pretrained_encoder_config(path: str | Path, **overrides: Any) -> Tuple[EncoderConfig, Optional[Path]]:
    """(EncoderConfig, vocab file) of a converted directory, a model `albert-ner train` wrote or a published
    source, without reading weights; a local archive of any of them is unpacked into the cache first."""
    path = pretraining_output(unpacked_local(path))
    trained = warm_start.open_trained(path)
    if trained is not None:
        encoder = dataclasses.replace(trained.config.encoder, **overrides) if overrides else trained.config.encoder
        return encoder, warm_start.vocab_file(trained)
    if is_converted(path):
        raw = load_json(path / ENCODER_CONFIG)
        raw.update(overrides)
        vocabs = [path / VOCAB_FILE] + sorted(path.glob("*.model"))
        vocab = next((v for v in vocabs if v.is_file()), None)
        return from_dict(EncoderConfig, raw, str(path / ENCODER_CONFIG)), vocab
    source = locate_source(path)  # file names only: the weights are read once, by whoever loads them
    if source.config_file is None:
        raise FileNotFoundError(f"{path}: no config file beside the weights (looked for config.json, "
                                "albert_config*.json, bert_config.json, ernie_config.json, model_config.json)")
    return EncoderConfig.from_pretrained_json(source.config_file, **overrides), source.vocab_file or source.spm_file


def load_pretrained(encoder: TransformerEncoder, path: str | Path) -> Dict[str, Any]:
    """Fill a built encoder from a converted directory, a trained model's encoder or a published source;
    returns the load report."""
    path = pretraining_output(unpacked_local(path))
    if warm_start.find_trained_model(path) is not None:
        return warm_start.restore_encoder(encoder, path)
    if is_converted(path):
        status = tf.train.Checkpoint(encoder=encoder).read(str(path / ENCODER_PREFIX))
        status.assert_existing_objects_matched().expect_partial()
        log.info("%s: encoder weights restored from a converted checkpoint", path)
        report = load_json(path / REPORT_FILE) if (path / REPORT_FILE).is_file() else {"source": str(path)}
        return report
    source = read_source(path)
    return assign_encoder_weights(encoder, source.tensors, str(source.path), source.skipped_by_kind()).to_dict()


def convert(src: str | Path, out_dir: str | Path) -> LoadReport:
    """Read any supported source, load it into an encoder, and write a converted directory."""
    config, vocab = pretrained_encoder_config(src)
    if is_converted(src):
        raise ValueError(f"{src}: already a converted directory")
    source = read_source(src)
    encoder = TransformerEncoder(config, name="encoder")
    _build(encoder)
    report = assign_encoder_weights(encoder, source.tensors, str(source.path), source.skipped_by_kind())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_json(config, out / ENCODER_CONFIG)
    if vocab is None:
        log.warning("%s: no vocab file found beside the weights; pass --vocab-file when training", src)
    elif vocab.suffix == ".model":  # the SentencePiece model under its own name
        shutil.copyfile(vocab, out / vocab.name)
    else:  # vocab.txt as published, or a tokenizer.json's vocabulary written as vocab.txt
        (out / VOCAB_FILE).write_bytes(vocab_file_bytes(vocab))
    tf.train.Checkpoint(encoder=encoder).write(str(out / ENCODER_PREFIX))
    (out / REPORT_FILE).write_text(json.dumps(dict(report.to_dict(), kind=source.kind,
                                                   config_file=str(source.config_file)),
                                              indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report
