"""task=pretrain on the SageMaker entry point under an emulated /opt/ml tree, and the job chain SageMaker runs:
a pretraining job's SM_MODEL_DIR, packed as its model.tar.gz, is the next (fine-tuning) job's `pretrained`
channel as it is; a restarted pretraining job resumes from the checkpoint folder; the launcher's pretraining
metric regexes against the lines the job really prints."""
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from albert_ner import sagemaker_env
from albert_ner.sagemaker_env import SageMakerPaths, parse_hyperparameters
from tests.sagemaker_launch.conftest import load_launcher
from tests.test_sagemaker_entry import ENTRY, TINY, container_tree, hyperparameter_args

# A tiny encoder, a handful of steps; seed 7 (fine-tuning's is 42): the encoder a fine-tuning job starts from can
# only equal this job's by being loaded from it.
PRETRAIN_HP = {"task": "pretrain", "encoder_preset": "tiny", "max_seq_len": 64, "batch_size": 8, "epochs": 2,
               "max_steps": 6, "heldout_fraction": 0.1, "workers": 1, "log_every": 2, "eval_batches": 0, "sop": "on",
               "jit": False, "learning_rate": 0.05, "warmup_ratio": 0.0, "seed": 7,
               "model_dir": "s3://bucket/job/model"}


# The printed field each pretraining metric reads (heldout:X is heldout_X, final:X is pretrain_heldout_X).
METRIC_FIELDS = {"train:loss": "train_loss", "train:samples_per_sec": "samples_per_sec",
                 "train:epoch_loss": "epoch_train_loss", "train:mlm_accuracy": "mlm_accuracy",
                 "train:sop_accuracy": "sop_accuracy"}


def job_env(base, channels, cache):
    """The SM_* environment sagemaker-training sets for a job whose channels are base/input/data/NAME."""
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SM_MODEL_DIR=str(base / "model"),
               SM_OUTPUT_DATA_DIR=str(base / "output" / "data"), SM_HOSTS='["algo-1"]', SM_CURRENT_HOST="algo-1",
               SM_NUM_GPUS="0", PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", ALBERT_NER_CACHE=str(cache))
    env.pop("PYTHONPATH", None)
    for name in channels:
        env[f"SM_CHANNEL_{name.upper()}"] = str(base / "input" / "data" / name)
    return env


def pretraining_job(tmp_path, shared_dir, vocab_path, lines=300):
    """/opt/ml with the text (a few hundred corpus lines, in two files) in `training` and the vocabulary in `vocab`."""
    base = tmp_path / "pretrain_ml"
    data = base / "input" / "data"
    (data / "training").mkdir(parents=True)
    (data / "vocab").mkdir()
    with lzma.open(shared_dir / "corpus" / "zh-009.txt.xz", "rt", encoding="utf-8") as f:
        text = [next(f) for _ in range(lines)]
    (data / "training" / "news.txt").write_text("".join(text[: lines // 2]), encoding="utf-8")
    (data / "training" / "more.txt").write_text("".join(text[lines // 2:]), encoding="utf-8")
    (data / "vocab" / "vocab.txt").write_bytes(Path(vocab_path).read_bytes())
    return base, job_env(base, ("training", "vocab"), tmp_path / "cache")


def pack_model_dir(model_dir, archive):
    """SM_MODEL_DIR as SageMaker uploads it: a model.tar.gz of the folder's content."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return archive


def tensors(checkpoint_prefix):
    reader = tf.train.load_checkpoint(str(checkpoint_prefix))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.endswith("VARIABLE_VALUE")
            and "OPTIMIZER_SLOT" not in n}


def word_embeddings(checkpoint_prefix, vocab_size):
    """The one [vocab size, embedding size] table of a checkpoint (the encoder's word embeddings)."""
    found = [v for k, v in tensors(checkpoint_prefix).items() if v.ndim == 2 and v.shape[0] == vocab_size]
    assert len(found) == 1, sorted(tensors(checkpoint_prefix))
    return found[0]


def test_pretraining_job_publishes_what_the_next_jobs_pretrained_channel_fine_tunes(tmp_path, shared_dir, msra_dir,
                                                                                    vocab_path):
    base, env = pretraining_job(tmp_path, shared_dir, vocab_path)
    proc = subprocess.run([sys.executable, str(ENTRY), *hyperparameter_args(PRETRAIN_HP)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"running: albert-ner pretrain {base / 'input/data/training'} --vocab-file" in proc.stderr
    # CloudWatch: each pretraining metric regex picks exactly its field's values out of the job's own stdout
    printed = [dict(part.split(" = ", 1) for part in line.split("; ")) for line in proc.stdout.splitlines()
               if " = " in line]
    for metric in load_launcher().METRIC_DEFINITIONS_BY_TASK["pretrain"]:
        field = METRIC_FIELDS.get(metric["Name"]) or metric["Name"].replace("heldout:", "heldout_").replace(
            "final:", "pretrain_heldout_")
        expected = [fields[field] for fields in printed if field in fields]
        assert expected, f"{metric['Name']}: no {field} in\n{proc.stdout}"
        assert re.findall(metric["Regex"], proc.stdout) == expected, (metric, proc.stdout)
    model = base / "model"
    assert sorted(p.name for p in model.iterdir()) == ["hf", "pretrain_results.json", "pretrained"]
    assert (model / "pretrained" / "encoder_config.json").is_file() and (model / "pretrained" / "vocab.txt").is_file()
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in (model / "hf").iterdir()}
    results = json.loads((model / "pretrain_results.json").read_text())
    assert results["steps"] == 6 and results["sop"] is True and results["corpus"]
    output = base / "output" / "data"
    assert {"pretrain_results.json", "pretrain_config.json", "tensorboard"} <= {p.name for p in output.iterdir()}
    assert json.loads((output / "pretrain_config.json").read_text())["inputs"] == [str(base / "input/data/training")]
    assert (base / "checkpoints" / "checkpoints").is_dir()  # the checkpoint_s3_uri sync folder: a restart resumes
    vocab_size = json.loads((model / "pretrained" / "encoder_config.json").read_text())["vocab_size"]
    pretrained_table = word_embeddings(model / "pretrained" / "encoder" / "ckpt", vocab_size)

    # The job restarted (spot): a new, empty SM_MODEL_DIR, the checkpoint folder as SageMaker restores it. The run
    # resumes where it ended and publishes the same encoder.
    shutil.rmtree(model)
    again = subprocess.run([sys.executable, str(ENTRY), *hyperparameter_args(PRETRAIN_HP)], env=env,
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    assert re.search(r"resumed from .* at epoch 2, batch 0", again.stderr), again.stderr[-4000:]
    assert not re.search(r"\bstep = [0-9]+;", again.stdout)  # nothing trained twice
    np.testing.assert_array_equal(word_embeddings(model / "pretrained" / "encoder" / "ckpt", vocab_size),
                                  pretrained_table)

    # The next job: MSRA in `training`, this job's model.tar.gz as SageMaker hands a file channel (no vocab channel:
    # the vocabulary comes with the pretrained encoder). encoder_lr=0 keeps the encoder as it was loaded.
    tune_root = tmp_path / "finetune"
    tune_root.mkdir()
    tune_base, _ = container_tree(tune_root, msra_dir, vocab_path, 12, max_chars=30)
    pack_model_dir(model, tune_base / "input" / "data" / "pretrained" / "model.tar.gz")
    tune_env = job_env(tune_base, ("training", "validation", "pretrained"), tmp_path / "cache")
    hp = dict(TINY, epochs=1, export=False, encoder_lr=0.0)
    tune = subprocess.run([sys.executable, str(ENTRY), *hyperparameter_args(hp)], env=tune_env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert tune.returncode == 0, tune.stderr[-4000:]
    assert f"--init {tune_base / 'input/data/pretrained'}" in tune.stderr
    restored = re.search(r"(\S+): encoder weights restored from a converted checkpoint", tune.stderr)
    assert restored and Path(restored.group(1)).name == "pretrained", tune.stderr[-4000:]
    assert Path(restored.group(1)).parent.parent.parent == tmp_path / "cache"  # the job's archive, unpacked once
    assert "vocabulary from the pretrained encoder" in tune.stderr
    trained = tune_base / "model" / "albert-ner-model"
    tuned_table = word_embeddings(trained / "weights" / "model", vocab_size)
    np.testing.assert_array_equal(tuned_table, pretrained_table)  # the encoder came from the pretraining job
    config = json.loads((trained / "model_config.json").read_text())
    assert config["encoder"]["hidden_size"] == json.loads(
        (model / "pretrained" / "encoder_config.json").read_text())["hidden_size"]


def test_pretrain_hyperparameters_are_checked_against_pretrain_config(tmp_path):
    hp = parse_hyperparameters(["--task", "pretrain", "--max_steps", "100", "--whole-word", "False", "--model_dir",
                                "s3://b/m", "--init", "m3e-small"])
    assert hp == {"task": "pretrain", "max_steps": "100", "whole_word": "False", "model_dir": "s3://b/m",
                  "init": "m3e-small"}
    with pytest.raises(ValueError) as caught:
        parse_hyperparameters(["--task", "pretrain", "--mask_prob", "0.2", "--mask_rate", "0.2", "--lstm_units", "8",
                               "--recipe", "auto"])
    message = str(caught.value)
    assert message.startswith("unknown hyperparameter(s) for task=pretrain: lstm_units, mask_rate, recipe (known: "
                              "PretrainConfig fields, see `albert-ner pretrain --help`"), message
    assert message.endswith("; lstm_units, recipe: setting(s) of task=train, not of task=pretrain"), message
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\): mask_prob .*; mask_prob: setting\(s\) of "
                                         r"task=pretrain, not of task=train"):
        parse_hyperparameters(["--mask_prob", "0.2"])
    with pytest.raises(ValueError, match="hyperparameter task must be one of train, pretrain, got 'tag'"):
        parse_hyperparameters(["--task", "tag"])

    for name in ("training", "pretrained", "vocab", "validation"):
        (tmp_path / name).mkdir()
    (tmp_path / "vocab" / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    env = {f"SM_CHANNEL_{n.upper()}": str(tmp_path / n) for n in ("training", "pretrained", "vocab")}
    paths = SageMakerPaths.from_env(dict(env, SAGEMAKER_BASE_DIR="/b"))
    assert sagemaker_env.pretrain_argv({"task": "pretrain", "max_steps": "5", "model_dir": "s3://x"}, paths) == [
        "pretrain", str(tmp_path / "training"), "--vocab-file", str(tmp_path / "vocab/vocab.txt"), "--init",
        str(tmp_path / "pretrained"), "--max-steps", "5", "--output-dir", "/b/checkpoints"]
    with pytest.raises(ValueError, match="task=pretrain reads no validation channel"):
        sagemaker_env.pretrain_argv({}, SageMakerPaths.from_env(dict(env, SM_CHANNEL_VALIDATION=str(
            tmp_path / "validation"))))
    with pytest.raises(ValueError, match="task=pretrain reads its text from the training or train channel, and this "
                                         "job has none"):
        sagemaker_env.pretrain_argv({}, SageMakerPaths.from_env({"SM_CHANNEL_VOCAB": str(tmp_path / "vocab")}))
    # the folder a pretraining output stands for, as the loaders and the pretrain command name it
    from albert_ner.pretrain.task import HF_DIR, PRETRAINED_DIR
    from albert_ner.weights.convert import PRETRAINED_SUBDIR

    assert sagemaker_env.PRETRAINED_DIR == PRETRAINED_DIR == PRETRAINED_SUBDIR and sagemaker_env.HF_DIR == HF_DIR


@pytest.mark.parametrize("extra, message", [
    (["--lstm_units", "8"], "unknown hyperparameter(s) for task=pretrain: lstm_units (known: PretrainConfig fields"),
    (["--mask_rate", "0.2"], "unknown hyperparameter(s) for task=pretrain: mask_rate (known: PretrainConfig fields"),
])
def test_a_pretraining_job_with_a_bad_hyperparameter_exits_2_before_any_work(tmp_path, extra, message):
    base = tmp_path / "opt_ml"
    (base / "input" / "data" / "training").mkdir(parents=True)
    (base / "input" / "data" / "training" / "text.txt").write_text("今天天气很好。\n", encoding="utf-8")
    env = job_env(base, ("training",), tmp_path / "cache")
    proc = subprocess.run([sys.executable, str(ENTRY), "--task", "pretrain", "--max_steps", "2", *extra], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-4000:]
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr and not (base / "checkpoints").exists() and not (base / "model").exists()
