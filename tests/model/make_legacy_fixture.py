"""Writes tests/model/data/legacy_tagger/: weights of a small NerTagger (BiLSTM, word-boundary features, two
Transformer groups) saved by an older version of the model code, its config, fixed inputs and the potentials
that version computed. test_legacy_checkpoint.py checks that today's code restores them and computes the same.

Run it with an older checkout first on the path (it was made at commit 7557a16, before the fused encoder,
BiLSTM and GELU):  PYTHONPATH=/path/to/old/checkout python tests/model/make_legacy_fixture.py OUT_DIR
"""
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from albert_ner.config import HeadConfig, ModelConfig, preset_encoder, save_json
from albert_ner.model.store import save_weights
from albert_ner.model.tagger import NerTagger

LABELS = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")


def config() -> ModelConfig:
    encoder = preset_encoder("tiny", 60, hidden_act="gelu", embedding_layout="none", embedding_size=32,
                             num_hidden_layers=2, num_layer_groups=2)
    return ModelConfig(encoder, HeadConfig(lstm_units=6, lexicon_dim=3), LABELS, max_seq_len=16)


def inputs():
    rng = np.random.default_rng(11)
    lengths = np.array([10, 6, 1, 0], np.int32)
    ids = np.zeros((4, 12), np.int32)
    boundaries = np.zeros((4, 10), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n + 2] = [2] + list(rng.integers(5, 60, n)) + [3]
        boundaries[row, :n] = rng.integers(1, 5, n)
    return {"token_ids": ids, "lengths": lengths, "word_boundaries": boundaries}


def main(out: Path) -> None:
    model = NerTagger(config())
    model.build_weights()
    rng = np.random.default_rng(5)
    for v in model.weights:
        v.assign(rng.normal(0.0, 0.3, v.shape).astype(np.float32) + (1.0 if "gamma" in v.name else 0.0))
    x = inputs()
    potentials = model({k: tf.constant(v) for k, v in x.items()}, training=False).numpy()
    out.mkdir(parents=True, exist_ok=True)
    save_json(model.config, out / "model_config.json")
    save_weights(model, out)
    np.savez(out / "expected.npz", potentials=potentials, **x)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
