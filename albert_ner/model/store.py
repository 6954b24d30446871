"""A trained model directory: written (published as a whole) and read (checked) in one place.

Every command and API that reads a model goes through `load_model` / `open_model`: the files are
found and checked by model/modeldir.py (config fields, labels, vocabulary size, the manifest's
checksums), then the weights are restored with every failure named by file. Layout: see modeldir.

    model-N/model_config.json   ModelConfig (encoder, head, labels, max_seq_len)
    model-N/vocab.txt           the vocabulary the character ids were made with
    model-N/bigrams.txt         the bigram vocabulary (only with bigram features)
    model-N/weights/model.*     a TF checkpoint of the model weights
    model-N/manifest.json       size and sha256 of each file, the run and epoch it comes from
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple

import tensorflow as tf

from albert_ner.config import MODEL_CONFIG_FILE, ModelConfig, save_json
from albert_ner.data.features import Featurizer
from albert_ner.model import modeldir
from albert_ner.model.modeldir import ModelDirError, ModelFiles
from albert_ner.model.tagger import NerTagger

WEIGHTS_PREFIX = "weights/model"


def write_model_files(model_dir: str | Path, config: ModelConfig, featurizer: Featurizer,
                      vocab_file: str | Path) -> None:
    """Config and featurizer files beside the weights, so the folder is self-contained."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    save_json(config, model_dir / MODEL_CONFIG_FILE)
    featurizer.save(model_dir, vocab_file)


def save_weights(model: NerTagger, model_dir: str | Path) -> str:
    """Write the model weights (no optimizer state); returns the checkpoint path."""
    return tf.train.Checkpoint(model=model).write(str(Path(model_dir) / WEIGHTS_PREFIX))


def publish_model(out: str | Path, model: NerTagger, featurizer: Featurizer, vocab_file: str | Path,
                  info: Dict[str, Any], extra_files: Sequence[str | Path] = ()) -> Path:
    """Publish config, vocabularies, weights and `extra_files` together as OUT/model-N (see modeldir.publish)."""
    def fill(folder: Path) -> None:
        write_model_files(folder, model.config, featurizer, vocab_file)
        save_weights(model, folder)
        for path in extra_files:
            shutil.copyfile(path, folder / Path(path).name)

    return modeldir.publish(out, fill, dict(info, vocab_tokens=len(featurizer.vocab)))


@dataclasses.dataclass
class LoadedModel:
    """A model restored from a checked model folder."""

    model: NerTagger
    featurizer: Featurizer
    files: ModelFiles


def open_model(model_dir: str | Path) -> LoadedModel:
    """Check a model directory and rebuild its NerTagger; errors name the file and the field."""
    files = modeldir.open_files(model_dir)
    model = NerTagger(files.config)
    model.build_weights()
    restore_weights(model, files.folder)
    return LoadedModel(model, files.featurizer, files)


def load_model(model_dir: str | Path) -> Tuple[NerTagger, Featurizer]:
    """Rebuild a trained NerTagger and its featurizer from a model directory (see open_model)."""
    loaded = open_model(model_dir)
    return loaded.model, loaded.featurizer


def restore_weights(model: NerTagger, folder: str | Path) -> None:
    """Read `folder`'s weights into a built model; a missing, unreadable or mismatching checkpoint is a
    ModelDirError naming the file (and the variable)."""
    prefix = str(Path(folder) / WEIGHTS_PREFIX)
    index = prefix + ".index"
    if not tf.io.gfile.exists(index):
        raise FileNotFoundError(f"{index}: model weights are missing")
    config_path = Path(folder) / MODEL_CONFIG_FILE
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelDirError(f"{index}: not a readable weights index ({_first_line(exc)})") from None
    try:
        status = tf.train.Checkpoint(model=model).read(prefix)
        status.assert_existing_objects_matched().expect_partial()
    except (tf.errors.OpError, IndexError, EOFError, OSError) as exc:  # a truncated .data file: IndexError
        data = ", ".join(sorted(tf.io.gfile.glob(prefix + ".data-*"))) or prefix + ".data-*"
        raise ModelDirError(f"{data}: cannot read the weights ({_first_line(exc)}); the file is truncated or "
                            "damaged") from None
    except (AssertionError, ValueError) as exc:
        raise ModelDirError(f"{prefix}: the weights do not fit {config_path} ({_first_line(exc)}; "
                            f"{len(shapes)} tensors in the checkpoint)") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
