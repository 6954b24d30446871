"""The SageMaker entry point under an emulated /opt/ml tree: hyperparameters as SageMaker passes them,
channels, artifacts where SageMaker collects them (a model.tar.gz that deploys as it is on a TensorFlow
Serving endpoint and holds the trainable model), metric lines, and resume after SIGTERM."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from albert_ner.model.modeldir import open_files
from albert_ner.model.warm_start import find_trained_model
from albert_ner.sagemaker_env import SageMakerPaths, parse_hyperparameters, train_argv
from tests.infer.container import emulated_container, fake_serving, invoke, unpack_like_sagemaker
from tests.train.conftest import write_slice

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "sagemaker" / "train.py"
# What a metric_definitions regex in the launcher picks up.
METRIC_RES = {"eval_f1": r"eval_f1 = ([0-9.]+)", "train_loss": r"train_loss = ([0-9.]+)",
              "samples_per_sec": r"samples_per_sec = ([0-9.]+)"}


def test_hyperparameters_as_sagemaker_passes_them():
    hp = parse_hyperparameters(["--epochs", "3", "--head_lr", "0.001", "--jit", "True", "--model_dir",
                                "s3://bucket/job/model", "--lexicon-dim", "16", "--strict_tags=false"])
    assert hp == {"epochs": "3", "head_lr": "0.001", "jit": "True", "model_dir": "s3://bucket/job/model",
                  "lexicon_dim": "16", "strict_tags": "false"}
    with pytest.raises(ValueError, match="unknown hyperparameter\\(s\\): learning_rate, max_len"):
        parse_hyperparameters(["--learning_rate", "5e-5", "--max_len", "128", "--epochs", "1"])


def test_channels_map_onto_train_flags(tmp_path):
    for name, files in (("training", ["train.txt", "dev.txt"]), ("test", ["msra_test.txt"]), ("pretrained", [])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_text("x\tO\n")
    env = {"SM_CHANNEL_TRAINING": str(tmp_path / "training"), "SM_CHANNEL_TEST": str(tmp_path / "test"),
           "SM_CHANNEL_PRETRAINED": str(tmp_path / "pretrained"), "SM_MODEL_DIR": "/m", "SAGEMAKER_BASE_DIR": "/b",
           "SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2", "SM_NUM_GPUS": "1"}
    paths = SageMakerPaths.from_env(env)
    assert paths.hosts == ("algo-1", "algo-2") and paths.current_host == "algo-2" and paths.num_gpus == 1
    argv = train_argv({"epochs": "2", "model_dir": "s3://x"}, paths)
    assert argv == ["train", "--data-dir", str(tmp_path / "training"), "--test-file",
                    str(tmp_path / "test/msra_test.txt"), "--init", str(tmp_path / "pretrained"),
                    "--epochs", "2", "--output-dir", "/b/checkpoints"]


def container_tree(tmp_path, msra_dir, vocab_path, sentences):
    """An /opt/ml-style root with config files and data channels, and the SM_* env the toolkit sets."""
    base = tmp_path / "opt_ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    data = base / "input" / "data"
    for channel in ("training", "validation", "vocab"):
        (data / channel).mkdir(parents=True)
    write_slice(msra_dir / "train.txt", data / "training" / "train.txt", sentences)
    write_slice(msra_dir / "test.txt", data / "validation" / "msra_dev.txt", 6)
    shutil.copy(vocab_path, data / "vocab" / "vocab.txt")
    (config / "inputdataconfig.json").write_text(json.dumps({c: {"TrainingInputMode": "File"} for c in
                                                             ("training", "validation", "vocab")}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SM_MODEL_DIR=str(base / "model"),
               SM_OUTPUT_DATA_DIR=str(base / "output" / "data"), SM_CHANNEL_TRAINING=str(data / "training"),
               SM_CHANNEL_VALIDATION=str(data / "validation"), SM_CHANNEL_VOCAB=str(data / "vocab"),
               SM_HOSTS='["algo-1"]', SM_CURRENT_HOST="algo-1", SM_NUM_GPUS="0", PYTHONUNBUFFERED="1",
               TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    return base, env


def hyperparameter_args(hp):
    """Sorted `--key value` strings with booleans as True/False, as sagemaker-training builds them."""
    out = []
    for key in sorted(hp):
        value = hp[key]
        out += [f"--{key}", str(value) if not isinstance(value, bool) else ("True" if value else "False")]
    return out


TINY = {"encoder_preset": "tiny", "lstm_units": 8, "max_seq_len": 64, "batch_size": 4, "eval_batch_size": 8,
        "jit": False, "model_dir": "s3://bucket/job/model", "lexicon_dim": 4, "head_lr": 0.01, "warmup_ratio": 0.0}


def test_entry_point_writes_model_export_and_reports_where_sagemaker_collects(tmp_path, msra_dir, vocab_path):
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 12)
    hp = dict(TINY, epochs=1, log_every=1)
    (base / "input/config/hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hp.items()}))
    proc = subprocess.run([sys.executable, str(ENTRY), *hyperparameter_args(hp)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name, regex in METRIC_RES.items():
        assert re.search(regex, proc.stdout), f"no {name} metric line"
    assert (base / "output/data/eval_results.json").is_file() and (base / "output/data/tensorboard").is_dir()
    assert (base / "checkpoints/checkpoints").is_dir()  # the checkpoint_s3_uri sync folder
    results = json.loads((base / "output/data/eval_results.json").read_text())
    assert results["dev_source"].endswith("msra_dev.txt")

    # SageMaker uploads SM_MODEL_DIR as model.tar.gz; an endpoint unpacks it into /opt/ml/model
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted((base / "model").iterdir()):
            tar.add(item, arcname=item.name)
    root = unpack_like_sagemaker(archive, tmp_path / "endpoint")
    assert sorted(p.name for p in root.iterdir()) == ["1", "albert-ner-model", "code"]
    assert (root / "1" / "saved_model.pb").is_file() and (root / "code" / "inference.py").is_file()
    trained = open_files(root / "albert-ner-model")  # the model folder, checked: for --init, tag, evaluate
    assert find_trained_model(root) == root / "albert-ner-model"  # what `train --init model.tar.gz` continues
    assert trained.folder == root / "albert-ner-model" and trained.config.head.lexicon_dim == 4
    assert (root / "albert-ner-model" / "weights" / "model.index").is_file()
    assert (root / "albert-ner-model" / "eval_results.json").is_file()
    with fake_serving(root / "1") as port, emulated_container(root, port) as (url, _):  # deploys as it is
        status, ctype, body = invoke(url, {"instances": ["张三在北京工作。"]})
    assert (status, ctype) == (200, "application/json"), body[:2000]
    assert json.loads(body)[0]["text"] == "张三在北京工作。"


def test_sigterm_saves_a_checkpoint_and_the_next_job_resumes(tmp_path, msra_dir, vocab_path):
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 200)
    hp = dict(TINY, epochs=3, log_every=2, checkpoint_every=100000, export=False)
    proc = subprocess.Popen([sys.executable, str(ENTRY), *hyperparameter_args(hp)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("step = 6;"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-4000:]
    assert "checkpoint saved to" in err and "run again to resume" in err
    assert not (base / "model" / "albert-ner-model").exists()  # nothing published for an interrupted job

    second = subprocess.run([sys.executable, str(ENTRY), *hyperparameter_args(hp)], env=env, capture_output=True,
                            text=True, timeout=600, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-4000:]
    resumed = re.search(r"resumed from .* at epoch 0, batch (\d+)", second.stderr)
    assert resumed and int(resumed.group(1)) >= 6
    assert (base / "model" / "albert-ner-model" / "weights" / "model.index").is_file()
    assert not (base / "model" / "code").exists()  # export=false: the trained model only
    results = json.loads((base / "model" / "albert-ner-model" / "eval_results.json").read_text())
    assert results["epochs_run"] == 3
