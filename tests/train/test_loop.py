"""End-to-end training: overfitting a slice, resume after interruption, save/restore, mixed precision."""
import json

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import TrainConfig
from albert_ner.data.corpus import read_corpus
from albert_ner.infer.predictor import Predictor
from albert_ner.model.modeldir import resolve
from albert_ner.model.store import load_model
from albert_ner.train.loop import Trainer, train


def tiny_config(train_file, out, vocab_path, **kw):
    values = dict(train_file=str(train_file), dev_file=str(train_file), output_dir=str(out),
                  vocab_file=str(vocab_path), encoder_preset="tiny", lstm_units=16, head_dropout=0.0,
                  max_seq_len=64, window_overlap=8, batch_size=4, eval_batch_size=8, epochs=1,
                  head_lr=1e-2, warmup_ratio=0.0, weight_decay=0.0, patience=0, log_every=1000, jit=True)
    values.update(kw)
    return TrainConfig(**values)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["keep", "BIOES"])
def test_tiny_model_overfits_20_msra_sentences(msra_slice, tmp_path, vocab_path, scheme):
    data = msra_slice(20)
    # At most 40 epochs; it stops after 8 without a better dev F1 (1.0 cannot be beaten: it stops 8 epochs after
    # reaching it; before, no plateau was longer than 2). The final report scores the best epoch's weights.
    cfg = tiny_config(data, tmp_path / "run", vocab_path, epochs=40, patience=8, lexicon_dim=4, tag_scheme=scheme)
    results = train(cfg)
    labels = json.loads((resolve(tmp_path / "run") / "model_config.json").read_text())["labels"]
    assert ("S-PER" in labels and "E-LOC" in labels) == (scheme == "BIOES")
    assert results["dev"]["f1"] == 1.0  # BIOES predictions scored against the BIO gold as entities
    assert results["dev"]["sentences"] == 20
    saved = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert saved["dev"]["f1"] == 1.0 and saved["best_epoch"] >= 1


class InterruptedTrainer(Trainer):
    """Raises after a given number of train steps, as a killed job would stop."""

    def __init__(self, cfg, stop_after):
        super().__init__(cfg)
        self.stop_after = stop_after

    def _setup(self):
        super()._setup()
        step, calls = self.train_step, [0]

        def counted(batch):
            calls[0] += 1
            if calls[0] > self.stop_after:
                raise KeyboardInterrupt("simulated interruption")
            return step(batch)

        self.train_step = counted


def _weights(out):
    model, _ = load_model(out)
    return {v.name: v.numpy() for v in model.weights}


def test_resume_after_interruption_gives_the_same_model(msra_slice, tmp_path, vocab_path):
    data = msra_slice(24, max_chars=30)
    # 24 short sentences, 6 held out as dev; 2 epochs; checkpoints every 4 steps. Graph mode: resume under XLA
    # (with dropout) is tests/train/test_resume.py's.
    common = dict(epochs=2, checkpoint_every=4, dev_file=None, dev_fraction=0.25, jit=False)
    straight = tiny_config(data, tmp_path / "straight", vocab_path, **common)
    expected = train(straight)

    resumed = tiny_config(data, tmp_path / "resumed", vocab_path, **common)
    with pytest.raises(KeyboardInterrupt):
        InterruptedTrainer(resumed, stop_after=8).run()  # dies in step 9 (epoch 2), after the step-8 checkpoint
    results = train(resumed)
    assert results["steps"] == expected["steps"] == 2 * 5  # 18 sentences -> 5 batches (one bucket) per epoch
    assert results["best_epoch"] == expected["best_epoch"]
    assert results["dev"]["f1"] == expected["dev"]["f1"]
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-5, err_msg=name)


def test_saved_model_restores_and_predicts_identically(msra_slice, tmp_path, vocab_path):
    data = msra_slice(12)
    # max_seq_len 32: one bucket, so XLA compiles one program per step function (windows of longer sentences)
    cfg = tiny_config(data, tmp_path / "run", vocab_path, epochs=2, lexicon_dim=4, pos_dim=4, bigram_dim=4,
                      bigram_min_count=1, max_seq_len=32)
    trainer = Trainer(cfg)
    trainer.run()
    sentences, _ = read_corpus(data)
    before = trainer.predictor.predict_sentences(sentences)
    model, featurizer = load_model(tmp_path / "run")
    assert featurizer.lexicon and featurizer.pos and featurizer.bigrams is not None
    after = Predictor(model, featurizer, batch_size=8).predict_sentences(sentences)
    assert before == after
    for v_saved, v_live in zip(model.weights, trainer.model.weights):
        np.testing.assert_array_equal(v_saved.numpy(), v_live.numpy())


def test_mixed_float16_train_step_compiles_and_runs_on_cpu(msra_slice, tmp_path, vocab_path):
    data = msra_slice(8)
    # max_seq_len 32: one bucket, so XLA compiles one program for the train step and one for prediction
    cfg = tiny_config(data, tmp_path / "run", vocab_path, precision="mixed_float16", epochs=1, max_seq_len=32)
    try:
        trainer = Trainer(cfg)
        results = trainer.run()
        assert results["precision_policy"] == "mixed_float16"
        assert trainer.loss_scale is not None and float(trainer.loss_scale.scale) > 1.0
        assert trainer.model.crf.transitions.dtype == tf.float32
        assert np.isfinite(results["dev"]["f1"])
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def test_long_sentences_are_windowed_and_every_char_is_evaluated(msra_dir, tmp_path, vocab_path):
    # One 300-char sentence with max_seq_len 64 => several windows; evaluation covers all 300 chars.
    sentences, _ = read_corpus(msra_dir / "test.txt")
    long_one = next(s for s in sentences if 300 <= len(s.chars) <= 600)
    path = tmp_path / "long.txt"
    path.write_text("".join(f"{c}\t{t}\n" for c, t in zip(long_one.chars, long_one.tags)), encoding="utf-8")
    cfg = tiny_config(path, tmp_path / "run", vocab_path, epochs=1, jit=False)
    results = train(cfg)
    assert results["dev"]["chars"] == len(long_one.chars)
