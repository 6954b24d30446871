"""Resume continues only the same run and continues it exactly; the output directory is published as a whole
and locked while training."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from albert_ner.model.store import load_model
from albert_ner.train.loop import Trainer, TrainingInterrupted, train
from tests.signalling import SigtermAtStep
from tests.train.test_loop import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(out: Path):
    """Every file under out (but the lock) with its bytes: to show that nothing was touched."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "train.lock"}


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, msra_dir, vocab_path):
    """A finished 1-epoch run (seed 1, batch 4) on 8 short MSRA sentences (PER and LOC), its data and its config."""
    from tests.train.conftest import write_slice

    root = tmp_path_factory.mktemp("resume")
    data = write_slice(msra_dir / "train.txt", root / "train.txt", 8, max_chars=30)
    cfg = tiny_config(data, root / "run", vocab_path, seed=1, jit=False)
    steps = train(cfg)["steps"]
    return root, data, cfg, steps


def _copy_run(one_epoch_run, tmp_path):
    root, data, cfg, _ = one_epoch_run
    out = tmp_path / "run"
    shutil.copytree(root / "run", out)
    return out, data, cfg


def test_resume_refuses_another_seed_batch_size_or_data_and_says_what_differs(one_epoch_run, tmp_path):
    out, data, cfg = _copy_run(one_epoch_run, tmp_path)
    before = _snapshot(out)
    changed = dict(cfg.__dict__, output_dir=str(out), seed=2, batch_size=8, head_lr=0.02)
    with pytest.raises(ValueError) as info:
        Trainer(type(cfg)(**changed)).run()
    message = str(info.value)
    for line in ("seed: 1 (checkpoint) vs 2 (now)", "batch_size: 4 (checkpoint) vs 8 (now)",
                 "head_lr: 0.01 (checkpoint) vs 0.02 (now)", "--no-resume", "another --output-dir"):
        assert line in message, message
    assert "\n" not in message and "epochs" not in message

    other = tmp_path / "other.txt"  # the same corpus with one character changed
    text = data.read_text(encoding="utf-8")
    other.write_text(text.replace(text[0], "丁", 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"train_file: .*train\.txt \(sha256 [0-9a-f]{12}\.\.\.\) \(checkpoint\) vs "
                                         r".*other\.txt \(sha256 [0-9a-f]{12}\.\.\.\) \(now\)"):
        Trainer(type(cfg)(**dict(cfg.__dict__, output_dir=str(out), train_file=str(other),
                                 dev_file=str(other)))).run()
    assert _snapshot(out) == before  # stopped before writing anything

    # The same corpus elsewhere, and more epochs: the same run, continued.
    moved = tmp_path / "moved.txt"
    shutil.copyfile(data, moved)
    results = train(type(cfg)(**dict(cfg.__dict__, output_dir=str(out), train_file=str(moved), dev_file=str(moved),
                                     epochs=2)))
    assert results["epochs_run"] == 2 and results["steps"] == 2 * one_epoch_run[3]


def test_checkpoint_without_run_record_is_not_resumed(one_epoch_run, tmp_path):
    out, _, cfg = _copy_run(one_epoch_run, tmp_path)
    (out / "checkpoints" / "run.json").unlink()  # as left by an older version
    with pytest.raises(ValueError, match="has no run.json.*--no-resume"):
        Trainer(type(cfg)(**dict(cfg.__dict__, output_dir=str(out)))).run()


class SignalledTrainer(SigtermAtStep, Trainer):
    """Sends itself SIGTERM during train step `at` (as a spot interruption would), once."""

    def __init__(self, cfg, at):
        super().__init__(cfg)
        self.sigterm_at = at


def _epoch_losses(text):
    return [float(x) for x in re.findall(r"epoch_train_loss = ([0-9.]+)", text)]


def test_stop_and_resume_with_dropout_equals_the_uninterrupted_run(msra_slice, tmp_path, vocab_path, capsys):
    data = msra_slice(24)
    # Dropout everywhere: encoder (0.1), features (0.2), head (0.3). 18 train sentences -> 12 batches of windows per
    # epoch; max_seq_len 32 is one bucket, so XLA compiles one program per step function (two buckets took twice).
    common = dict(epochs=2, dev_file=None, dev_fraction=0.25, encoder_dropout=0.1, input_dropout=0.2,
                  head_dropout=0.3, lexicon_dim=4, checkpoint_every=100000, max_seq_len=32)
    expected = train(tiny_config(data, tmp_path / "straight", vocab_path, **common))
    straight_losses = _epoch_losses(capsys.readouterr().out)

    cfg = tiny_config(data, tmp_path / "resumed", vocab_path, **common)
    with pytest.raises(TrainingInterrupted, match="at epoch 2, batch 3: checkpoint saved"):
        SignalledTrainer(cfg, at=15).run()  # the checkpoint is written at that step
    first = capsys.readouterr().out
    results = train(cfg)
    resumed_losses = _epoch_losses(first + capsys.readouterr().out)

    assert results["steps"] == expected["steps"] == 24
    assert resumed_losses == pytest.approx(straight_losses, abs=2e-4)  # printed with 4 decimals
    assert results["dev"]["f1"] == expected["dev"]["f1"]
    a, b = load_model(tmp_path / "straight")[0], load_model(tmp_path / "resumed")[0]
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-6, err_msg=va.name)


def test_an_interrupted_retrain_leaves_the_published_model_whole(one_epoch_run, tmp_path):
    """A retrain with other labels (LOC renamed GPE) stopped in its first epoch: readers still get the old
    config with the old weights, never the new labels with the old weights; its first epoch publishes both."""
    out, data, cfg = _copy_run(one_epoch_run, tmp_path)
    old_labels = load_model(out)[0].config.labels
    old_weights = {v.name: v.numpy() for v in load_model(out)[0].weights}
    gpe = tmp_path / "gpe.txt"
    gpe.write_text(data.read_text(encoding="utf-8").replace("-LOC", "-GPE"), encoding="utf-8")
    retrain = type(cfg)(**dict(cfg.__dict__, output_dir=str(out), train_file=str(gpe), dev_file=str(gpe),
                               resume=False))

    class Crashing(Trainer):
        def _setup(self):
            super()._setup()

            def crash(batch):
                raise KeyboardInterrupt("killed")
            self.train_step = crash

    with pytest.raises(KeyboardInterrupt):
        Crashing(retrain).run()
    model, _ = load_model(out)
    assert model.config.labels == old_labels and "B-LOC" in old_labels
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), old_weights[v.name])

    train(retrain)  # run again: its first epoch publishes config, vocabulary and weights together
    model, _ = load_model(out)
    assert "B-GPE" in model.config.labels and "B-LOC" not in model.config.labels
    assert (out / "CURRENT").read_text().strip() == "model-2"
    assert sorted(p.name for p in out.glob("model-*")) == ["model-1", "model-2"]  # the previous kept for readers


def test_a_second_training_into_a_locked_output_dir_fails_at_once(one_epoch_run, tmp_path):
    out, _, cfg = _copy_run(one_epoch_run, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom albert_ner.train.lock import hold_output_dir\n"
         f"with hold_output_dir({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(out)
        with pytest.raises(ValueError, match=rf"^{re.escape(str(out))} is being trained by pid {holder.pid} on .* "
                                             r"since .*train\.lock is locked.*another --output-dir"):
            Trainer(type(cfg)(**dict(cfg.__dict__, output_dir=str(out), epochs=2))).run()
        assert _snapshot(out) == before
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the lock file stays behind
        holder.wait()
    # A dead holder's lock does not block: the kernel released it with the process.
    results = train(type(cfg)(**dict(cfg.__dict__, output_dir=str(out), epochs=2)))
    assert results["epochs_run"] == 2
    assert json.loads((out / "train.lock").read_text())["pid"] == os.getpid()


def test_fingerprint_compares_file_contents_and_ignores_only_the_allowed_settings(tmp_path, vocab_path):
    from albert_ner.config import TrainConfig
    from albert_ner.train.fingerprint import MAY_DIFFER, differences, run_fingerprint

    data = tmp_path / "a.txt"
    data.write_text("张\tB-PER\n三\tI-PER\n", encoding="utf-8")
    base = dict(train_file=str(data), output_dir=str(tmp_path / "run"), vocab_file=str(vocab_path))
    saved = run_fingerprint(TrainConfig(**base))
    moved = tmp_path / "b.txt"
    shutil.copyfile(data, moved)
    allowed = dict(base, train_file=str(moved), output_dir="elsewhere", epochs=9, patience=0, eval_batch_size=7,
                   jit=True, strict_tags=True, log_every=3, checkpoint_every=5, resume=False)
    assert set(allowed) - set(base) <= set(MAY_DIFFER)
    assert differences(saved, run_fingerprint(TrainConfig(**allowed))) == []
    changed = dict(base, dev_fraction=0.1, max_train_sentences=5, tag_scheme="BIOES", precision="float32")
    assert [d.split(":")[0] for d in differences(saved, run_fingerprint(TrainConfig(**changed)))] == [
        "dev_fraction", "max_train_sentences", "precision", "tag_scheme"]
    # A setting added to TrainConfig after the checkpoint was written: the old run used its default.
    older = {"settings": {k: v for k, v in saved["settings"].items() if k != "seed"}, "files": saved["files"]}
    assert differences(older, run_fingerprint(TrainConfig(**base))) == []
    assert differences(older, run_fingerprint(TrainConfig(**dict(base, seed=7)))) == ["seed: 42 (checkpoint) vs 7 "
                                                                                       "(now)"]
    data.write_text("张\tB-PER\n四\tI-PER\n", encoding="utf-8")
    assert differences(saved, run_fingerprint(TrainConfig(**base)))[0].startswith(f"train_file: {data} (sha256 ")
