"""`albert-ner pretrain` end to end on a tiny corpus: it learns, publishes a directory `train --init` reads,
exports for Hugging Face, resumes exactly across passes over the data, and refuses another run's checkpoint."""
import json
import lzma
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.cli import main
from albert_ner.config import EncoderConfig, HeadConfig, ModelConfig
from albert_ner.model.tagger import NerTagger
from albert_ner.pretrain.config import PretrainConfig
from albert_ner.pretrain.task import PretrainTask, pretrain
from albert_ner.train.fingerprint import ResumeMismatch
from albert_ner.train.runner import TrainingInterrupted
from albert_ner.weights.convert import load_pretrained


@pytest.fixture(scope="module")
def corpus(shared_dir, tmp_path_factory):
    """120 documents of the shared pretraining corpus (read by path, written only into a temp folder)."""
    with lzma.open(shared_dir / "corpus" / "zh-009.txt.xz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(120)]
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "few.txt").write_text("".join(lines[:25]), encoding="utf-8")  # a few batches per pass
    path = folder / "docs.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def config(corpus, vocab_path, out, **kw):
    values = dict(inputs=[str(corpus)], output_dir=str(out), vocab_file=str(vocab_path), encoder_preset="tiny",
                  max_seq_len=64, batch_size=8, epochs=2, max_steps=10, learning_rate=3e-3, warmup_ratio=0.0,
                  heldout_fraction=0.1, workers=1, log_every=1, checkpoint_every=1000, sop="on", eval_batches=0,
                  shuffle_buffer=50)
    values.update(kw)
    return PretrainConfig(**values)


def published_weights(out):
    reader = tf.train.load_checkpoint(str(out / "pretrained" / "encoder" / "ckpt"))
    names = sorted(n for n in reader.get_variable_to_shape_map() if "VARIABLE_VALUE" in n)
    return {n: reader.get_tensor(n) for n in names}


def test_pretraining_learns_and_publishes_what_train_init_reads(corpus, vocab_path, tmp_path):
    cfg = config(corpus, vocab_path, tmp_path / "out", max_steps=30, epochs=2, learning_rate=5e-2)
    results = pretrain(cfg)
    before, after = results["heldout_before"], results["heldout_after"]
    assert after["heldout_mlm_loss"] < before["heldout_mlm_loss"] - 1.0  # from ~ln(21128) towards unigram stats
    assert after["heldout_mlm_accuracy"] > before["heldout_mlm_accuracy"]
    assert results["steps"] == 30 and results["sop"] is True
    saved = json.loads((tmp_path / "out" / "pretrain_results.json").read_text(encoding="utf-8"))
    assert saved["heldout_after"] == pytest.approx(after) and saved["corpus"]
    # `train --init OUT` takes the output directory itself: the NER encoder gets exactly the published weights.
    enc = EncoderConfig(**json.loads((tmp_path / "out" / "pretrained" / "encoder_config.json").read_text()))
    tagger = NerTagger(ModelConfig(encoder=enc, head=HeadConfig(lstm_units=0), labels=("O", "B-X", "I-X"),
                                   max_seq_len=64))
    tagger.build_weights()
    load_pretrained(tagger.encoder, tmp_path / "out")
    word = tagger.encoder.embeddings.word_embeddings.numpy()
    table = [v for k, v in published_weights(tmp_path / "out").items() if "word_embeddings/" in k]
    assert any(t.shape == word.shape and np.array_equal(t, word) for t in table)
    assert (tmp_path / "out" / "hf" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "out" / "hf" / "config.json").read_text())["architectures"]


def test_batches_per_pass_is_exact(corpus, vocab_path, tmp_path):
    cfg = config(corpus, vocab_path, tmp_path / "out")
    task = PretrainTask(cfg)
    task.prepare()
    task.prepare_batches()
    counted = sum(1 for _ in task._pass_batches("train", 0, shuffle=True))
    assert counted == task.batches_per_pass


class _StopAt:
    """SIGTERM to this process once `step` train batches were counted (the runner then checkpoints and stops)."""

    def __init__(self, task, step):
        self.task, self.step, self.seen = task, step, 0
        self.inner = task.batch_size

    def __call__(self, batch):
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.inner(batch)


def test_resume_after_sigterm_gives_the_uninterrupted_weights(corpus, vocab_path, tmp_path):
    from albert_ner.pretrain.task import run_settings
    from albert_ner.train.runner import Runner

    # 16 steps in 2 epochs of 8 cross passes over the data (a pass is a few batches): the resume position is
    # a batch inside a later pass, whose order and masks must be the uninterrupted run's.
    few = corpus.parent / "few.txt"
    straight = config(few, vocab_path, tmp_path / "straight", max_steps=16, shuffle_buffer=20)
    pretrain(straight)
    cut = config(few, vocab_path, tmp_path / "cut", max_steps=16, shuffle_buffer=20)
    task = PretrainTask(cut)
    task.batch_size = _StopAt(task, 11)
    with pytest.raises(TrainingInterrupted):
        Runner(task, run_settings(cut)).run()
    assert task.batches_per_pass < 11  # the cut lies beyond the first pass
    pretrain(cut)
    a, b = published_weights(tmp_path / "straight"), published_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_checkpoint_of_other_settings_is_refused(corpus, vocab_path, tmp_path):
    first = config(corpus, vocab_path, tmp_path / "out", max_steps=2, epochs=1)
    task = PretrainTask(first)
    task.batch_size = _StopAt(task, 1)
    from albert_ner.pretrain.task import run_settings
    from albert_ner.train.runner import Runner

    with pytest.raises(TrainingInterrupted):
        Runner(task, run_settings(first)).run()
    with pytest.raises(ResumeMismatch, match="mask_prob"):
        pretrain(config(corpus, vocab_path, tmp_path / "out", max_steps=2, epochs=1, mask_prob=0.2))


def test_a_checkpoint_resumes_after_the_corpus_is_copied_elsewhere(corpus, vocab_path, tmp_path, caplog):
    """A new SageMaker job downloads its channels afresh (new paths or mtimes): the interrupted run continues."""
    from albert_ner.pretrain.task import run_settings
    from albert_ner.train.runner import Runner

    first = config(corpus, vocab_path, tmp_path / "out", max_steps=3, epochs=1)
    task = PretrainTask(first)
    task.batch_size = _StopAt(task, 2)
    with pytest.raises(TrainingInterrupted):
        Runner(task, run_settings(first)).run()
    moved = tmp_path / "download" / corpus.name
    moved.parent.mkdir()
    moved.write_bytes(corpus.read_bytes())  # a fresh copy: another path, a new mtime
    with caplog.at_level("INFO"):
        results = pretrain(config(moved, vocab_path, tmp_path / "out", max_steps=3, epochs=1))
    assert results["steps"] == 3
    assert "resumed from" in caplog.text


def test_cli_runs_and_bad_settings_are_one_error_line(corpus, vocab_path, tmp_path, capsys, caplog):
    assert main(["pretrain", str(corpus), "--output-dir", str(tmp_path / "bad"), "--vocab-file", str(vocab_path),
                 "--mask-prob", "1.5"]) == 2
    assert "mask_prob must be in (0, 1), got 1.5" in caplog.text
    assert not (tmp_path / "bad").exists()
    assert main(["pretrain", str(corpus), "--output-dir", str(tmp_path / "cli"), "--vocab-file", str(vocab_path),
                 "--encoder-preset", "tiny", "--max-seq-len", "64", "--batch-size", "8", "--max-steps", "2",
                 "--epochs", "1", "--workers", "1", "--sop", "off"]) == 0
    out = capsys.readouterr().out
    assert "pretrain_heldout_mlm_accuracy = " in out and "epoch = 1; epoch_train_loss = " in out
    assert (tmp_path / "cli" / "pretrained" / "encoder_config.json").is_file()
