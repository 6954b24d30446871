"""Weights saved by the model code before the fused encoder, BiLSTM and GELU (data/legacy_tagger, written by
make_legacy_fixture.py at commit 7557a16) restore into today's NerTagger, every object matched, and give the
potentials and Viterbi tags that code computed."""
from pathlib import Path

import numpy as np
import tensorflow as tf

from albert_ner.config import ModelConfig, load_json
from albert_ner.model.store import restore_weights
from albert_ner.model.tagger import NerTagger

FIXTURE = Path(__file__).resolve().parent / "data" / "legacy_tagger"


def _restored():
    model = NerTagger(ModelConfig.from_dict(load_json(FIXTURE / "model_config.json")))
    model.build_weights()
    restore_weights(model, FIXTURE)  # asserts every existing object of the model was matched
    return model


def test_fixture_is_what_the_test_expects():
    config = ModelConfig.from_dict(load_json(FIXTURE / "model_config.json"))
    assert config.head.lstm_units == 6 and config.head.lexicon_dim == 3
    assert config.encoder.num_layer_groups == 2 and config.encoder.hidden_act == "gelu"


def test_old_weights_restore_and_give_the_same_potentials():
    model = _restored()
    expected = np.load(FIXTURE / "expected.npz")
    inputs = {k: tf.constant(expected[k]) for k in ("token_ids", "lengths", "word_boundaries")}
    potentials = model(inputs, training=False).numpy()
    np.testing.assert_allclose(potentials, expected["potentials"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.decode(inputs).numpy(),
                                  model.crf(tf.constant(expected["potentials"]), inputs["lengths"]).numpy())


def test_every_checkpoint_variable_is_read():
    model = _restored()
    reader = tf.train.load_checkpoint(str(FIXTURE / "weights" / "model"))
    saved = {k for k in reader.get_variable_to_shape_map() if k.startswith("model/") and "OPTIMIZER" not in k}
    status = tf.train.Checkpoint(model=model).read(str(FIXTURE / "weights" / "model"))
    status.assert_consumed()  # nothing in the file left unread, nothing in the model left unset
    assert len(saved) >= len(model.weights)
