"""The generic runner with a tiny fake task (linear regression): it learns, prints the task's metrics in step
lines and TensorBoard, checkpoints on SIGTERM and resumes at the exact batch, reports the train speed of the whole
run across resumes, calls the gradient hook, stops on patience, refuses another run's checkpoint; and checkpoints of
older code (the loop before the split, the runner before the step timing) resume under it."""
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.model.noise import SeededDropout
from albert_ner.train.fingerprint import ResumeMismatch
from albert_ner.train.runner import (EpochEval, ParamGroup, Runner, RunSettings, Task, Trainable, Training,
                                     TrainingInterrupted, build_training)

ROOT = Path(__file__).resolve().parents[2]
DIM, ROWS, BATCH = 4, 64, 8  # 8 batches per epoch
TRUE_W, TRUE_B = np.array([[1.5], [-2.0], [0.5], [3.0]], np.float32), 0.5


class LinearModel(tf.Module):
    """y = dropout(x) W + b; the dropout makes every step depend on the runner's per-step seed."""

    def __init__(self):
        super().__init__(name="linear")
        self.kernel = tf.Variable(tf.zeros([DIM, 1]), name="kernel")
        self.bias = tf.Variable(tf.zeros([1]), name="bias")  # "bias": no weight decay (optim.NO_DECAY)
        self.dropout = SeededDropout(0.2)

    def __call__(self, x, training: bool):
        return self.dropout(x, training=training) @ self.kernel + self.bias


class LinearTrainable(Trainable):
    def __init__(self, model, with_metrics=True, freeze_bias=False):
        self.model, self.with_metrics, self.freeze_bias = model, with_metrics, freeze_bias

    def parameter_groups(self):
        return (ParamGroup("weights", (self.model.kernel,), 0.3), ParamGroup("bias", (self.model.bias,), 0.1))

    def loss_and_metrics(self, batch, training):
        err = self.model(batch["x"], training) - batch["y"]
        loss = tf.reduce_mean(tf.square(err))
        if not self.with_metrics:
            return loss, {}
        return loss, {"abs_error": tf.reduce_mean(tf.abs(err)), "rows": tf.cast(tf.shape(err)[0], tf.float32)}

    def adjust_gradients(self, grads, variables):
        if not self.freeze_bias:
            return grads
        return [tf.zeros_like(g) if v is self.model.bias else g for g, v in zip(grads, variables)]


class LinearTask(Task):
    """Regression on 64 fixed rows; the score is minus the mean squared error over them (or a scripted list)."""

    score_name = "fake score"

    def __init__(self, lr_tag=0.05, with_metrics=True, freeze_bias=False, signal_at=None, scores=None, dim=DIM):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(ROWS, DIM)).astype(np.float32)
        self.y = (self.x @ TRUE_W + TRUE_B + 0.01 * rng.normal(size=(ROWS, 1))).astype(np.float32)
        self.lr_tag, self.with_metrics, self.freeze_bias = lr_tag, with_metrics, freeze_bias
        self.signal_at, self.scores, self.dim = signal_at, scores, dim
        self.published, self.started = [], None

    def fingerprint(self):
        return {"settings": {"lr": self.lr_tag}, "files": {}}

    def fingerprint_differences(self, saved, now):
        a, b = saved["settings"]["lr"], now["settings"]["lr"]
        return [] if a == b else [f"lr: {a} (checkpoint) vs {b} (now)"]

    def prepare(self):
        return {"dim": self.dim}

    def prepare_batches(self):
        return ROWS // BATCH

    def build(self, jit):
        self.model = LinearModel()
        return LinearTrainable(self.model, self.with_metrics, self.freeze_bias)

    def train_batches(self, epoch, skip):
        order = np.random.default_rng([7, epoch]).permutation(ROWS)
        for i in range(skip, ROWS // BATCH):
            if self.signal_at == (epoch, i):
                os.kill(os.getpid(), signal.SIGTERM)  # as a spot interruption: arrives during this step
            rows = order[i * BATCH:(i + 1) * BATCH]
            yield {"x": tf.constant(self.x[rows]), "y": tf.constant(self.y[rows])}

    def batch_size(self, batch):
        return BATCH, BATCH * DIM

    def start(self, run_id):
        self.started = run_id

    def evaluate(self, epoch):
        mse = float(tf.reduce_mean(tf.square(self.model(self.x, False) - self.y)))
        score = self.scores[epoch - 1] if self.scores else -mse
        return EpochEval(score=score, line={"dev_mse": mse}, summaries={"dev/mse": mse})

    def publish(self, epoch, score, step):
        self.published.append(epoch)
        return Path(f"published-{epoch}")

    def final_report(self, summary):
        return dict(dataclasses.asdict(summary), kernel=self.model.kernel.numpy(), bias=self.model.bias.numpy(),
                    published=self.published)


def settings(out, **kw):
    values = dict(output_dir=str(out), epochs=3, seed=7, precision="float32", jit=False, weight_decay=0.0,
                  warmup_ratio=0.0, clip_norm=10.0, log_every=2, checkpoint_every=1000)
    values.update(kw)
    return RunSettings(**values)


STEP_LINE = re.compile(r"^step = (\d+); train_loss = ([0-9.]+); samples_per_sec = [0-9.]+(.*)$", re.M)
EPOCH_LINE = re.compile(r"^epoch = (\d+); epoch_train_loss = ([0-9.]+); dev_mse = ([0-9.]+); epoch_seconds = "
                        r"[0-9.]+$", re.M)


def tensorboard_scalars(folder: Path):
    """{tag: [(step, value)]} from the event files under folder."""
    out = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, float(tf.make_ndarray(v.tensor))))
    return out


def test_the_runner_learns_and_logs_the_tasks_metrics(tmp_path, capsys):
    task = LinearTask()
    results = Runner(task, settings(tmp_path / "run")).run()
    out = capsys.readouterr().out
    epochs = EPOCH_LINE.findall(out)
    assert [int(e) for e, _, _ in epochs] == [1, 2, 3]
    losses = [float(l) for _, l, _ in epochs]
    untrained = float(np.mean(np.square(task.y)))  # the MSE of the zero model
    assert losses[0] > losses[1] > losses[2] and float(epochs[-1][2]) < 0.05 * untrained
    steps = STEP_LINE.findall(out)
    assert [int(s) for s, _, _ in steps] == list(range(2, 25, 2))
    for _, _, extra in steps:  # the task's metrics, after the usual three, averaged over the 2 steps
        assert re.fullmatch(r"; abs_error = [0-9.]+; rows = 8\.0000", extra), extra
    assert results["steps"] == 24 and results["epochs_run"] == 3 and results["best_epoch"] == 3
    assert results["published"] == [1, 2, 3] and results["run_id"] == task.started
    assert results["train_tokens_per_sec"] == pytest.approx(DIM * results["train_samples_per_sec"])
    np.testing.assert_allclose(results["kernel"], TRUE_W, atol=0.35)

    scalars = tensorboard_scalars(tmp_path / "run" / "tensorboard")
    assert {"train/loss", "train/grad_norm", "train/weights_lr", "train/bias_lr", "train/samples_per_sec",
            "train/tokens_per_sec", "train/abs_error", "train/rows", "dev/mse"} <= set(scalars)
    assert [s for s, _ in scalars["train/rows"]] == list(range(2, 25, 2))
    assert {v for _, v in scalars["train/rows"]} == {8.0}
    # The rate step 2's update used (the schedule at iteration 1): linear decay over 24 steps, no warmup.
    assert scalars["train/weights_lr"][0][1] == pytest.approx(0.3 * (1 - 1 / 24))
    assert scalars["train/bias_lr"][0][1] == pytest.approx(0.1 * (1 - 1 / 24))
    assert [s for s, _ in scalars["dev/mse"]] == [8, 16, 24]
    names = {n.split("/")[0] for n, _ in tf.train.list_variables(str(tmp_path / "run" / "checkpoints"))}
    assert names == {"model", "weights_optimizer", "bias_optimizer", "state", "timing", "save_counter",
                     "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_a_task_without_metrics_keeps_the_plain_step_line(tmp_path, capsys):
    Runner(LinearTask(with_metrics=False), settings(tmp_path / "run", epochs=1)).run()
    steps = STEP_LINE.findall(capsys.readouterr().out)
    assert len(steps) == 4 and all(extra == "" for _, _, extra in steps)


def test_sigterm_mid_epoch_checkpoints_and_the_resume_equals_the_uninterrupted_run(tmp_path, capsys):
    straight = Runner(LinearTask(), settings(tmp_path / "straight", log_every=1)).run()
    straight_out = capsys.readouterr().out

    out = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted, match=r"signal 15 at epoch 2, batch 3: checkpoint saved to .*ckpt-11"):
        Runner(LinearTask(signal_at=(1, 2)), settings(out, log_every=1)).run()
    reader = tf.train.load_checkpoint(str(out / "checkpoints"))
    assert reader.get_tensor("state/epoch/.ATTRIBUTES/VARIABLE_VALUE") == 1
    assert reader.get_tensor("state/batch_in_epoch/.ATTRIBUTES/VARIABLE_VALUE") == 3
    run_id = json.loads((out / "checkpoints" / "run.json").read_text())["run_id"]
    first = capsys.readouterr().out

    task = LinearTask()
    resumed = Runner(task, settings(out, log_every=1)).run()
    assert task.started == run_id and resumed["steps"] == 24
    np.testing.assert_array_equal(resumed["kernel"], straight["kernel"])  # the same batches and dropout masks
    np.testing.assert_array_equal(resumed["bias"], straight["bias"])
    lines = first + capsys.readouterr().out  # epoch number, train loss and dev MSE as printed
    assert EPOCH_LINE.findall(lines) == EPOCH_LINE.findall(straight_out)
    assert [s[:2] for s in STEP_LINE.findall(lines)] == [s[:2] for s in STEP_LINE.findall(straight_out)]


def _timed_rows(out: Path) -> int:
    reader = tf.train.load_checkpoint(str(out / "checkpoints"))
    return int(reader.get_tensor("timing/rows/.ATTRIBUTES/VARIABLE_VALUE"))


def test_the_speed_spans_resumes_and_a_finished_run_run_again_keeps_it(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        Runner(LinearTask(signal_at=(1, 2)), settings(out)).run()
    assert _timed_rows(out) == 10 * BATCH  # 11 steps, the first (compiling) one untimed
    resumed = Runner(LinearTask(), settings(out)).run()
    assert resumed["steps"] == 24 and _timed_rows(out) == 22 * BATCH  # 13 more, again without the first
    again = Runner(LinearTask(), settings(out)).run()  # trains no step: evaluates and reports only
    assert again["steps"] == 24 and again["train_samples_per_sec"] is not None
    assert again["train_samples_per_sec"] == resumed["train_samples_per_sec"]
    assert again["train_tokens_per_sec"] == resumed["train_tokens_per_sec"]


def test_a_checkpoint_written_before_the_step_timing_resumes(tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    straight = Runner(LinearTask(), settings(tmp_path / "straight")).run()
    checkpoint = Training.checkpoint
    with monkeypatch.context() as patch:  # the code before TrainTiming: no `timing` in the checkpoint
        patch.setattr(Training, "checkpoint", lambda self, timing=True: checkpoint(self, timing=False))
        with pytest.raises(TrainingInterrupted):
            Runner(LinearTask(signal_at=(1, 2)), settings(out)).run()
    names = {n.split("/")[0] for n, _ in tf.train.list_variables(str(out / "checkpoints"))}
    assert "timing" not in names and "state" in names
    with caplog.at_level("INFO", logger="albert_ner.train.runner"):
        resumed = Runner(LinearTask(), settings(out)).run()
    assert "predates the checkpointed step timing" in caplog.text
    assert resumed["steps"] == 24 and _timed_rows(out) == 12 * BATCH  # this process's steps only
    np.testing.assert_array_equal(resumed["kernel"], straight["kernel"])


def test_the_gradient_hook_is_applied(tmp_path):
    results = Runner(LinearTask(freeze_bias=True), settings(tmp_path / "run", epochs=1)).run()
    assert results["bias"].tolist() == [0.0]  # no gradient and no decay: untouched
    assert np.all(results["kernel"] != 0.0)


def test_patience_stops_and_only_better_epochs_are_published(tmp_path, caplog):
    task = LinearTask(scores=[0.5, 0.7, 0.6, 0.4, 0.9])
    with caplog.at_level("INFO", logger="albert_ner.train.runner"):
        results = Runner(task, settings(tmp_path / "run", epochs=5, patience=2)).run()
    assert results["epochs_run"] == 4 and results["best_epoch"] == 2 and results["published"] == [1, 2]
    assert "early stopping: no fake score improvement for 2 epochs" in caplog.text
    assert "new best fake score 0.7000 at epoch 2: model published as published-2" in caplog.text


def test_another_runs_checkpoint_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    Runner(LinearTask(), settings(out, epochs=1)).run()
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "train.lock"}
    with pytest.raises(ResumeMismatch, match=r"lr: 0.05 \(checkpoint\) vs 0.1 \(now\).*--no-resume"):
        Runner(LinearTask(lr_tag=0.1), settings(out, epochs=2)).run()
    with pytest.raises(ResumeMismatch, match=r"model configuration \(model_config in run.json\) differs"):
        Runner(LinearTask(dim=5), settings(out, epochs=2)).run()
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "train.lock"} == before
    results = Runner(LinearTask(lr_tag=0.1), settings(out, epochs=1, resume=False)).run()  # starts over
    assert results["steps"] == 8


def test_parameter_groups_are_checked():
    model = LinearModel()
    kw = dict(seed=0, policy="float32", clip_norm=1.0, weight_decay=0.0, warmup_steps=0, total_steps=10)

    class Groups(LinearTrainable):
        def __init__(self, groups):
            super().__init__(model)
            self.groups = groups

        def parameter_groups(self):
            return self.groups

    with pytest.raises(ValueError, match=r"variable kernel:0 is in parameter groups 'a' and 'b'"):
        build_training(Groups([ParamGroup("a", (model.kernel,), 1.0), ParamGroup("b", (model.kernel,), 1.0)]), **kw)
    with pytest.raises(ValueError, match=r"parameter group 'a' has no variables"):
        build_training(Groups([ParamGroup("a", (), 1.0)]), **kw)
    with pytest.raises(ValueError, match=r"parameter group name 'Head': must be unique"):
        build_training(Groups([ParamGroup("Head", (model.kernel,), 1.0)]), **kw)
    with pytest.raises(ValueError, match=r"gave no parameter groups"):
        build_training(Groups([]), **kw)


def test_a_float16_overflow_skips_the_update_and_halves_the_scale():
    model = LinearModel()

    class Overflowing(LinearTrainable):
        def loss_and_metrics(self, batch, training):
            loss, metrics = super().loss_and_metrics(batch, training)
            return loss * batch["factor"], metrics

    training = build_training(Overflowing(model), seed=0, policy="mixed_float16", clip_norm=1.0, weight_decay=0.0,
                              warmup_steps=0, total_steps=10)
    assert training.loss_scale is not None and set(training.checkpoint()._trackable_children()) >= {"loss_scale"}
    step = tf.function(training.step)
    batch = {"x": tf.ones([BATCH, DIM]), "y": tf.ones([BATCH, 1])}
    result = step(dict(batch, factor=tf.constant(np.inf)))
    assert not bool(result.finite) and int(training.iterations) == 0
    assert float(training.loss_scale.scale) == 2.0 ** 14 and not np.any(model.kernel.numpy())
    result = step(dict(batch, factor=tf.constant(1.0)))
    assert bool(result.finite) and int(training.iterations) == 1 and np.any(model.kernel.numpy())
    assert set(result.metrics) == {"abs_error", "rows"} and result.metrics["rows"].dtype == tf.float32


# ---- a checkpoint written by the loop before the split ------------------------------------------------------------
OLD_COMMIT = "a81c8cb4660ecc5de39f0d391a4635188720ebf0"  # the last commit with the single-file loop
RUN_MARK = "=== old loop run"  # printed before each run of OLD_RUN, with its index
OLD_RUN = """import json, os, signal, sys
import albert_ner.train.loop
from albert_ner.config import TrainConfig
from albert_ner.train.loop import Trainer, TrainingInterrupted
print("loop:", albert_ner.train.loop.__file__, flush=True)

class Signalled(Trainer):
    def __init__(self, cfg, at):
        super().__init__(cfg)
        self.at = at

    def _setup(self):
        super()._setup()
        step, calls = self.train_step, [0]

        def signalled(batch):
            calls[0] += 1
            if calls[0] == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            return step(batch)
        self.train_step = signalled

for i, (config, at) in enumerate(json.loads(sys.argv[1])):
    print(RUN_MARK, i, flush=True)
    try:
        Signalled(TrainConfig(**config), at).run()
    except TrainingInterrupted as exc:
        print("interrupted:", exc, flush=True)
""".replace("RUN_MARK", repr(RUN_MARK))


def _old_code(dest: Path) -> Path:
    """The packages at OLD_COMMIT, from this checkout's git history."""
    known = shutil.which("git") and not subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", OLD_COMMIT + "^{commit}"], capture_output=True).returncode
    if not known:
        pytest.skip(f"git history with commit {OLD_COMMIT} not available: the old-checkpoint check is not run")
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", OLD_COMMIT, "albert_ner", "pretrained",
                          "crf"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest, filter="data")
    (dest / "old_run.py").write_text(OLD_RUN, encoding="utf-8")
    return dest


def _run_old(old: Path, runs) -> list:
    """The stdout of each (config, SIGTERM at step; 0: never) run, one after another in one process of the old code
    (one TensorFlow start for all of them)."""
    env = dict(os.environ, PYTHONPATH=str(old), TF_CPP_MIN_LOG_LEVEL="2")
    argv = json.dumps([[dataclasses.asdict(cfg), at] for cfg, at in runs])
    proc = subprocess.run([sys.executable, str(old / "old_run.py"), argv], cwd=old, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    head, *outputs = re.split(rf"^{re.escape(RUN_MARK)} \d+\n", proc.stdout, flags=re.M)
    assert f"loop: {old / 'albert_ner'}" in head  # the old code ran, not this checkout's
    assert len(outputs) == len(runs), proc.stdout[-3000:]
    return outputs


def _lines(text: str, what: str):
    """Step lines without the speed ('step = N; train_loss = X'), or epoch lines without the time."""
    if what == "step":
        return re.findall(r"^(step = \d+; train_loss = [0-9.]+); samples_per_sec = [0-9.]+$", text, re.M)
    return re.findall(r"^(epoch = \d+; epoch_train_loss = [0-9.]+; dev_f1 = [0-9.]+); epoch_seconds = [0-9.]+$",
                      text, re.M)


def _assert_same_run(got, expected, loss_tolerance: float = 5e-4):
    """Metric lines of two runs agree: the same counters and dev F1, losses within `loss_tolerance`."""
    def parse(line: str):
        return dict((k.strip(), float(v)) for k, v in (part.split("=") for part in line.split(";")))

    assert len(got) == len(expected) and len(expected) > 0, (got, expected)
    for g, e in zip(map(parse, got), map(parse, expected)):
        assert g.keys() == e.keys(), (g, e)
        for key in e:
            tolerance = loss_tolerance if key.endswith("loss") else 0.0
            assert g[key] == pytest.approx(e[key], abs=tolerance), (key, g, e)


@pytest.mark.slow
def test_a_checkpoint_of_the_old_loop_resumes_under_the_runner(msra_slice, tmp_path, vocab_path, capsys):
    from albert_ner.model.store import load_model
    from albert_ner.train.loop import train
    from tests.train.test_loop import tiny_config

    old = _old_code(tmp_path / "old")
    data = msra_slice(24, max_chars=30)
    # Dropout everywhere and features: 18 short train sentences -> 5 batches (one bucket) per epoch; SIGTERM in
    # step 8 (epoch 2).
    common = dict(epochs=2, dev_file=None, dev_fraction=0.25, encoder_dropout=0.1, input_dropout=0.2,
                  head_dropout=0.3, lexicon_dim=4, checkpoint_every=100000, log_every=1, jit=False)
    cfg = tiny_config(data, tmp_path / "resumed", vocab_path, **common)
    straight_out, first = _run_old(old, [(tiny_config(data, tmp_path / "straight", vocab_path, **common), 0),
                                         (cfg, 8)])
    assert "interrupted" not in straight_out and "interrupted: signal 15 at epoch 2, batch 3" in first
    ckpt = tmp_path / "resumed" / "checkpoints"
    record = json.loads((ckpt / "run.json").read_text())
    old_variables = tf.train.list_variables(str(ckpt))

    capsys.readouterr()
    results = train(cfg)  # the new code, resuming the old code's checkpoint
    second = capsys.readouterr().out
    # The same steps on the same batches with the same dropout masks: equal losses up to float32 rounding (the
    # old and the new code order a few float ops differently, which can flip the printed 4th decimal; another
    # batch or mask moves the loss by far more).
    _assert_same_run(_lines(first, "step") + _lines(second, "step"), _lines(straight_out, "step"))
    _assert_same_run(_lines(first, "epoch") + _lines(second, "epoch"), _lines(straight_out, "epoch"))
    assert results["steps"] == 10
    after = json.loads((ckpt / "run.json").read_text())
    assert (after["run_id"], after["fingerprint"], after["model_config"]) == (
        record["run_id"], record["fingerprint"], record["model_config"])
    # The same object graph, names and shapes, plus the step timing the new code checkpoints.
    timing = [(f"timing/{name}/.ATTRIBUTES/VARIABLE_VALUE", []) for name in ("rows", "seconds", "tokens")]
    assert tf.train.list_variables(str(ckpt)) == sorted(old_variables + timing)
    assert results["train_samples_per_sec"] > 0  # the steps of the resuming process
    old_results = json.loads((tmp_path / "straight" / "eval_results.json").read_text())
    new_results = json.loads((tmp_path / "resumed" / "eval_results.json").read_text())
    added = ("batch_size_per_replica", "replicas", "workers", "global_batch_size")  # the runner's distribution
    assert [k for k in new_results if k not in added] == list(old_results)
    assert new_results["dev"] == old_results["dev"] and new_results["replicas"] == 1
    a, b = load_model(tmp_path / "straight")[0], load_model(tmp_path / "resumed")[0]
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-6, err_msg=va.name)
