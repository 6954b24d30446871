"""`albert-ner pretrain` under tf.distribute gives one device's run: two logical CPU devices (MirroredStrategy) and
two local worker processes (MultiWorkerMirroredStrategy over localhost) pretrain with the same losses (MLM + SOP)
and weights as one device with the same global batch and seed, stop together on a signal to any worker and resume
exactly. With two workers only the chief writes the output directory: the other reads the chief's preprocessed
shards when it sees them (one machine) or makes its own private copy (a host with its own disk), and the two
must hold the same chunks in the same order.

Dropout is 0 in the equivalence runs (each replica draws its own dropout masks). MLM masks and sentence-order
swaps are drawn per chunk in the input pipeline, before the global batch is split, so they do not depend on the
replicas. Each strategy runs in fresh processes (tests/pretrain/distribute_driver.py).
"""
import json
import lzma
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train.test_distribute import _assert_same_weights, _env, _free_ports, _losses, _write

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8       # 2 epochs of 4 steps, global batch 4
SIGNAL_AT = 6   # epoch 2, batch 2


@pytest.fixture(scope="module")
def corpus(shared_dir, tmp_path_factory):
    """12 documents of the shared pretraining corpus (~45 chunks of up to 61 tokens), in a temp folder."""
    with lzma.open(shared_dir / "corpus" / "zh-009.txt.xz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(12)]
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _config(corpus: Path, out: Path, vocab_path: Path, batch_size: int, **kw):
    from albert_ner.pretrain.config import PretrainConfig

    values = dict(inputs=[str(corpus)], output_dir=str(out), vocab_file=str(vocab_path), encoder_preset="tiny",
                  encoder_dropout=0.0, max_seq_len=64, batch_size=batch_size, epochs=2, max_steps=STEPS,
                  learning_rate=1e-2, warmup_ratio=0.0, heldout_fraction=0.2, workers=1, log_every=1,
                  checkpoint_every=1000, sop="on", eval_batches=2, shuffle_buffer=20, jit=False)
    values.update(kw)
    return PretrainConfig(**values)


def _run(config_files, envs, signal_at=(), timeout=600):
    """One driver process per (config, environment), started at once; (returncode, stdout, stderr) of each."""
    procs = []
    for i, (config, env) in enumerate(zip(config_files, envs)):
        at = signal_at[i] if i < len(signal_at) else None
        args = [sys.executable, "-m", "tests.pretrain.distribute_driver", config] + ([str(at)] if at else [])
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        return [(p.wait(timeout=timeout), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def _writes(stdout: str):
    lines = [l for l in stdout.splitlines() if l.startswith("WRITES ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("WRITES "):])


def _results(stdout: str):
    return json.loads(stdout.splitlines()[-1][len("RESULTS "):])


def _tf_config(hosts, index):
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})


# ---- in one process: the batches and masks of a split global batch ------------------------------------------------
def test_global_batches_and_masks_do_not_depend_on_the_replica_split(corpus, vocab_path, tmp_path):
    """2 per replica x 2 replicas reads exactly the rows (ids, masks, labels, SOP swaps) of 4 on one device, in the
    same order, in every pass; each row also carries the global batch's counts that weigh a replica's SOP loss."""
    from albert_ner.pretrain.task import GLOBAL_COUNTS, PretrainTask

    def batches(batch_size, replicas, epoch):
        task = PretrainTask(_config(corpus, tmp_path / f"out{replicas}", vocab_path, batch_size,
                                    data_dir=str(tmp_path / "data")))
        task.prepare()
        task.replicas = replicas
        task.prepare_batches()
        return task, list(task.train_batches(epoch, 0))

    for epoch in (0, 1):
        one_task, one = batches(4, 1, epoch)
        two_task, two = batches(2, 2, epoch)
        assert one_task.steps_per_epoch == two_task.steps_per_epoch == STEPS // 2
        assert len(one) == len(two) == STEPS // 2
        for a, b in zip(one, two):
            assert GLOBAL_COUNTS not in a and set(b) == set(a) | {GLOBAL_COUNTS}
            for name in a:
                np.testing.assert_array_equal(a[name].numpy(), b[name].numpy(), err_msg=name)
            counts = b[GLOBAL_COUNTS].numpy()
            masked = np.sum(a["mlm_labels"].numpy() >= 0)
            pairs = np.sum((a["lengths"].numpy() > 0) & np.any(a["segment_ids"].numpy() == 1, axis=1))
            assert masked > 0 and pairs > 0
            np.testing.assert_array_equal(counts, np.tile([[masked, pairs]], [4, 1]))


# ---- one device, two logical devices, two worker processes --------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus, vocab_path):
    """One device, global batch 4, two epochs, uninterrupted: its step losses and output."""
    root = tmp_path_factory.mktemp("pretrain_distribute")
    cfg = _config(corpus, root / "one", vocab_path, batch_size=4)
    (code, out, err), = _run([_write(cfg, root / "one.json")], [_env()])
    assert code == 0, err[-3000:]
    assert len(_losses(out)) == len(_step_metrics(out)) == STEPS
    return root, out, _results(out)


def _step_metrics(stdout: str):
    """(mlm_accuracy, sop_accuracy) of every step line."""
    return [tuple(map(float, m)) for m in
            re.findall(r"^step = .*; mlm_accuracy = ([0-9.]+); sop_accuracy = ([0-9.]+)$", stdout, re.M)]


def _assert_same_run(out: Path, root: Path, stdout: str, want_stdout: str, reference_results, results):
    losses, want_losses = _losses(stdout), _losses(want_stdout)
    assert len(losses) == len(want_losses) == STEPS
    np.testing.assert_allclose(losses, want_losses, rtol=1e-4, atol=2e-4)  # printed to 4 decimals
    np.testing.assert_allclose(_step_metrics(stdout), _step_metrics(want_stdout), atol=2e-4)
    _assert_same_weights(out, root / "one")
    for key, value in reference_results["heldout_after"].items():  # the chief's evaluation of the same weights
        assert results["heldout_after"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert results["best_epoch"] == reference_results["best_epoch"]


def test_two_cpu_replicas_pretrain_and_resume_as_one_device(reference, corpus, vocab_path):
    root, want, want_results = reference
    out = root / "mirrored"
    config = _write(_config(corpus, out, vocab_path, batch_size=2), root / "mirrored.json")  # 2 per replica
    env = _env(ALBERT_NER_DEVICES="2")
    (code, first, err), = _run([config], [env], signal_at=[SIGNAL_AT])
    assert code == 3, err[-3000:]
    assert "INTERRUPTED signal 15 at epoch 2, batch 2" in first
    (code, second, err), = _run([config], [env])
    assert code == 0, err[-3000:]
    _assert_same_run(out, root, first + second, want, want_results, _results(second))
    assert json.loads((out / "checkpoints" / "run.json").read_text())["distribution"] == {"replicas": 2, "workers": 1}


def test_two_workers_pretrain_stop_together_and_resume_as_one_device(reference, corpus, vocab_path, tmp_path):
    """Run 1: both workers share OUTPUT_DIR/data (one machine): the non-chief reads the chief's shards and writes
    nothing there; SIGTERM reaches the non-chief only and both stop after the same step. Run 2 (the resume): the
    non-chief's data_dir is a folder of its own, empty (a host with its own disk): it preprocesses into a private
    temporary folder, never into its output or data folder, and deletes it at the end."""
    root, want, want_results = reference
    out = root / "workers"
    shared = _write(_config(corpus, out, vocab_path, batch_size=2), root / "workers.json")
    own_disk = tmp_path / "worker1-disk"
    own_disk.mkdir()
    separate = _write(_config(corpus, out, vocab_path, batch_size=2, data_dir=str(own_disk / "data")),
                      root / "workers-own-disk.json")
    hosts = [f"localhost:{p}" for p in _free_ports(2)]
    scratch = tmp_path / "tmp"  # the non-chief's temporary folders (checkpoint copies, private shards) go here
    scratch.mkdir()
    envs = [_env(TMPDIR=str(scratch), TF_CONFIG=_tf_config(hosts, i)) for i in range(2)]

    (code0, first, err0), (code1, out1, err1) = _run([shared, shared], envs, signal_at=[None, SIGNAL_AT])
    assert (code0, code1) == (3, 3), err0[-2000:] + err1[-2000:]
    assert "INTERRUPTED signal 15 on another worker at epoch 2, batch 2" in first
    assert "INTERRUPTED signal 15 at epoch 2, batch 2" in out1
    assert not _losses(out1)  # metric lines come from the chief only
    assert (out / "checkpoints" / f"ckpt-{SIGNAL_AT}.index").is_file()
    assert any("/data/train-00000.npz" in w for w in _writes(first))  # the audit sees the chief's writes
    assert _writes(out1) == []  # the non-chief wrote nothing under the output directory
    assert "this worker reads the chief's preprocessed corpus" in err1

    hosts = [f"localhost:{p}" for p in _free_ports(2)]
    envs = [_env(TMPDIR=str(scratch), TF_CONFIG=_tf_config(hosts, i)) for i in range(2)]
    (code0, second, err0), (code1, out1, err1) = _run([shared, separate], envs)
    assert (code0, code1) == (0, 0), err0[-2000:] + err1[-2000:]
    _assert_same_run(out, root, first + second, want, want_results, _results(second))
    assert _results(out1)["chief"] is False
    assert _writes(out1) == []
    private = re.search(r"into a private folder (\S+), deleted at the end", err1)
    assert private and Path(private.group(1)).parent == scratch, err1[-2000:]
    assert list(own_disk.iterdir()) == []  # nothing in the non-chief's own data folder either
    # Its private shards and checkpoint copies were deleted (jieba keeps its dictionary cache there).
    assert [p.name for p in scratch.iterdir() if p.name != "jieba.cache"] == []
    assert json.loads((out / "checkpoints" / "run.json").read_text())["distribution"] == {"replicas": 2, "workers": 2}


def test_a_chief_that_cannot_preprocess_stops_the_other_worker(corpus, vocab_path, tmp_path):
    """The chief's data folder holds another corpus's shards: it fails before training, and the other worker
    fails with it at once (it would otherwise wait for the chief in the first collective for ever)."""
    from albert_ner.pretrain.preprocess import FINGERPRINT

    data = tmp_path / "data"
    data.mkdir()
    (data / FINGERPRINT).write_text('{"inputs": "another corpus"}', encoding="utf-8")
    cfg = _config(corpus, tmp_path / "out", vocab_path, batch_size=2, data_dir=str(data))
    config = _write(cfg, tmp_path / "cfg.json")
    hosts = [f"localhost:{p}" for p in _free_ports(2)]
    envs = [_env(TMPDIR=str(tmp_path), TF_CONFIG=_tf_config(hosts, i)) for i in range(2)]
    (code0, _, err0), (code1, _, err1) = _run([config, config], envs, timeout=240)
    assert code0 != 0 and "holds shards of other inputs or settings" in err0, err0[-2000:]
    assert code1 != 0 and "the chief could not preprocess the corpus" in err1, err1[-2000:]
    assert json.loads((data / FINGERPRINT).read_text()) == {"inputs": "another corpus"}  # nothing overwritten
