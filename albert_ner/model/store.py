"""A trained model directory: config, featurizer files and weights, written and read in one place.

    MODEL_DIR/model_config.json   ModelConfig (encoder, head, labels, max_seq_len)
    MODEL_DIR/vocab.txt           the vocabulary the character ids were made with
    MODEL_DIR/bigrams.txt         the bigram vocabulary (only with bigram features)
    MODEL_DIR/weights/model.*     a TF checkpoint of the model weights
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import tensorflow as tf

from albert_ner.config import MODEL_CONFIG_FILE, ModelConfig, load_json, save_json
from albert_ner.data.features import Featurizer
from albert_ner.model.tagger import NerTagger

WEIGHTS_PREFIX = "weights/model"


def write_model_files(model_dir: str | Path, config: ModelConfig, featurizer: Featurizer,
                      vocab_file: str | Path) -> None:
    """Config and featurizer files beside the weights, so the directory is self-contained."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    save_json(config, model_dir / MODEL_CONFIG_FILE)
    featurizer.save(model_dir, vocab_file)


def save_weights(model: NerTagger, model_dir: str | Path) -> str:
    """Write the model weights (no optimizer state); returns the checkpoint path."""
    return tf.train.Checkpoint(model=model).write(str(Path(model_dir) / WEIGHTS_PREFIX))


def load_model(model_dir: str | Path) -> Tuple[NerTagger, Featurizer]:
    """Rebuild a trained NerTagger and its featurizer from a model directory."""
    model_dir = Path(model_dir)
    config_path = model_dir / MODEL_CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a model directory (no {MODEL_CONFIG_FILE})")
    config = ModelConfig.from_dict(load_json(config_path))
    featurizer = Featurizer.for_head(model_dir, config.head)
    model = NerTagger(config)
    model.build_weights()
    prefix = str(model_dir / WEIGHTS_PREFIX)
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(f"{prefix}.index: model weights are missing")
    tf.train.Checkpoint(model=model).read(prefix).assert_existing_objects_matched().expect_partial()
    return model, featurizer
