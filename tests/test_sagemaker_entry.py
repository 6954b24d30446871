"""The SageMaker entry point under an emulated /opt/ml tree: hyperparameters as SageMaker passes them,
channels, artifacts where SageMaker collects them (a model.tar.gz that deploys as it is on a TensorFlow
Serving endpoint and holds the trainable model), metric lines, and resume after SIGTERM."""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
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
    assert argv == ["train", "--recipe", "auto", "--data-dir", str(tmp_path / "training"), "--test-file",
                    str(tmp_path / "test/msra_test.txt"), "--init", str(tmp_path / "pretrained"),
                    "--epochs", "2", "--output-dir", "/b/checkpoints"]


def test_several_hosts_get_a_tf_config_from_sm_hosts_and_only_the_chief_publishes(tmp_path, monkeypatch):
    """BYOC: the entry point builds TF_CONFIG from SM_HOSTS (algo-1 is worker 0, the chief); a TF_CONFIG the
    TensorFlow container set (BYOS) is kept; a worker host trains but leaves SM_MODEL_DIR to the chief."""
    import albert_ner.cli
    from albert_ner import sagemaker_env

    monkeypatch.delenv("TF_CONFIG", raising=False)
    hosts = {"SM_HOSTS": '["algo-1","algo-2"]', "SAGEMAKER_BASE_DIR": str(tmp_path)}
    worker = dict(hosts, SM_CURRENT_HOST="algo-2")
    assert sagemaker_env.set_cluster(worker, SageMakerPaths.from_env(worker)) is False
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": ["algo-1:8890", "algo-2:8890"]},
                                                   "task": {"type": "worker", "index": 1}}
    chief = dict(hosts, SM_CURRENT_HOST="algo-1")
    assert sagemaker_env.set_cluster(chief, SageMakerPaths.from_env(chief)) is True
    given = json.dumps({"cluster": {"worker": ["h1:2222", "h2:2222"]}, "task": {"type": "worker", "index": 0}})
    monkeypatch.setenv("TF_CONFIG", given)
    assert sagemaker_env.set_cluster(dict(worker, TF_CONFIG=given), SageMakerPaths.from_env(worker)) is True
    assert os.environ["TF_CONFIG"] == given  # the container's own is kept
    monkeypatch.delenv("TF_CONFIG")
    assert sagemaker_env.set_cluster({}, SageMakerPaths.from_env({})) is True and "TF_CONFIG" not in os.environ
    with pytest.raises(ValueError, match="SM_CURRENT_HOST 'algo-7' is not one of SM_HOSTS"):
        sagemaker_env.set_cluster(dict(hosts, SM_CURRENT_HOST="algo-7"), SageMakerPaths.from_env(hosts))

    # A worker's job: training runs (here: a stand-in that succeeds), nothing is published.
    published = []
    monkeypatch.setattr(albert_ner.cli, "main", lambda args: 0)
    monkeypatch.setattr(sagemaker_env, "publish", lambda *a: published.append(a))
    (tmp_path / "input" / "data" / "training").mkdir(parents=True)
    (tmp_path / "input" / "data" / "training" / "train.txt").write_text("x\tO\n")
    assert sagemaker_env.main([], env=worker) == 0 and published == []
    monkeypatch.delenv("TF_CONFIG")
    assert sagemaker_env.main([], env=chief) == 0 and len(published) == 1


def container_tree(tmp_path, msra_dir, vocab_path, sentences, max_chars=0):
    """An /opt/ml-style root with config files and data channels, and the SM_* env the toolkit sets. max_chars: only
    sentences that short (30: one bucket, one trace of each step function), in both channels."""
    base = tmp_path / "opt_ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    data = base / "input" / "data"
    for channel in ("training", "validation", "vocab"):
        (data / channel).mkdir(parents=True)
    write_slice(msra_dir / "train.txt", data / "training" / "train.txt", sentences, max_chars=max_chars)
    write_slice(msra_dir / "test.txt", data / "validation" / "msra_dev.txt", 6, max_chars=max_chars)
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
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 12, max_chars=30)
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
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 200)  # 50 steps per epoch: SIGTERM lands in the first
    hp = dict(TINY, epochs=2, log_every=2, checkpoint_every=100000, export=False)
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
    assert results["epochs_run"] == 2  # resumed in the first epoch, then on through the second


def weights_of(model_dir):
    """{file name: bytes} of a published model's weights."""
    return {p.name: p.read_bytes() for p in sorted((model_dir / "weights").iterdir())}


def test_a_reused_checkpoint_uri_with_other_data_stops_before_training(tmp_path, msra_dir, vocab_path):
    """/opt/ml/checkpoints is what SageMaker syncs from --checkpoint-s3-uri: a second job launched with the same
    URI and a new train.txt must not resume (and republish) the first job's finished run. The same job run again
    resumes it and publishes the same model."""
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 12, max_chars=30)
    hp = hyperparameter_args(dict(TINY, epochs=1, export=False))
    first = subprocess.run([sys.executable, str(ENTRY), *hp], env=env, capture_output=True, text=True, timeout=600,
                           cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-4000:]
    published = weights_of(base / "model" / "albert-ner-model")
    assert (base / "checkpoints" / "checkpoints" / "run.json").is_file()

    train_txt = base / "input" / "data" / "training" / "train.txt"
    original = train_txt.read_bytes()
    write_slice(msra_dir / "train.txt", train_txt, 13, max_chars=30)  # the second job's data: one sentence more
    shutil.rmtree(base / "model")  # a new job starts with an empty SM_MODEL_DIR
    second = subprocess.run([sys.executable, str(ENTRY), *hp], env=env, capture_output=True, text=True, timeout=600,
                            cwd=tmp_path)
    assert second.returncode == 2, second.stderr[-4000:]
    error = [line for line in second.stderr.splitlines() if "does not resume the checkpoint" in line]
    assert len(error) == 1, second.stderr[-4000:]
    assert f"{base / 'checkpoints'}, which SageMaker fills from the job's --checkpoint-s3-uri" in error[0]
    assert f"train_file: {train_txt} (sha256 " in error[0]  # the same path, other content
    assert "Nothing was trained" in error[0] and "its own --checkpoint-s3-uri" in error[0]
    assert "--hp resume=false" in error[0]
    assert not re.search(r"\bstep = [0-9]+;", second.stdout)  # stopped before the first step
    assert not (base / "model").exists()  # nothing published

    train_txt.write_bytes(original)  # the first job's data again: its run, finished, republished as it was
    third = subprocess.run([sys.executable, str(ENTRY), *hp], env=env, capture_output=True, text=True, timeout=600,
                           cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-4000:]
    assert re.search(r"resumed from .* at epoch 1, batch 0", third.stderr), third.stderr[-4000:]
    assert weights_of(base / "model" / "albert-ner-model") == published


def test_a_job_trains_the_recipe_run_train_sh_trains(tmp_path):
    """Without hyperparameters beyond the data, the job's settings are albert_ner/recipes.py's, chosen by whether
    it fine-tunes a pretrained encoder; a hyperparameter given wins over the recipe."""
    from albert_ner.cli import build_parser, train_config_from_args

    for name in ("training", "vocab", "pretrained"):
        (tmp_path / name).mkdir()
    (tmp_path / "training" / "train.txt").write_text("张\tB-PER\n三\tI-PER\n\n", encoding="utf-8")
    (tmp_path / "vocab" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n张\n三\n", encoding="utf-8")
    env = {"SM_CHANNEL_TRAINING": str(tmp_path / "training"), "SM_CHANNEL_VOCAB": str(tmp_path / "vocab"),
           "SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml")}

    def config(hp, channels):
        paths = SageMakerPaths.from_env({k: v for k, v in env.items() if k[len("SM_CHANNEL_"):].lower() in channels
                                         or not k.startswith("SM_CHANNEL_")})
        return train_config_from_args(build_parser().parse_args(train_argv(hp, paths)))

    random_init = config({}, ("training", "vocab"))
    assert (random_init.encoder_preset, random_init.lexicon_dim, random_init.input_dropout, random_init.tag_scheme,
            random_init.lstm_units, random_init.epochs, random_init.head_lr, random_init.batch_size) == (
        "embedding-only", 16, 0.5, "BIOES", 128, 10, 2e-3, 32)
    env["SM_CHANNEL_PRETRAINED"] = str(tmp_path / "pretrained")
    pretrained = config({}, ("training", "vocab", "pretrained"))
    assert pretrained.init == str(tmp_path / "pretrained")
    assert (pretrained.encoder_preset, pretrained.encoder_dropout, pretrained.lexicon_dim, pretrained.epochs,
            pretrained.head_lr, pretrained.tag_scheme, pretrained.input_dropout) == (
        "cpu-small", 0.1, 16, 3, 1e-3, "keep", 0.0)
    mine = config({"epochs": "2", "lexicon_dim": "0"}, ("training", "vocab"))
    assert (mine.epochs, mine.lexicon_dim, mine.encoder_preset) == (2, 0, "embedding-only")
    bare = config({"recipe": "none"}, ("training", "vocab"))
    assert (bare.encoder_preset, bare.lexicon_dim, bare.epochs) == ("cpu-small", 0, 3)
    settings = tmp_path / "settings.json"  # a config file overrides the recipe too, and a flag the file
    settings.write_text(json.dumps({"epochs": 4, "tag_scheme": "BIO"}))
    layered = config({"config": str(settings), "tag_scheme": "keep"}, ("training", "vocab"))
    assert (layered.epochs, layered.tag_scheme, layered.input_dropout) == (4, "keep", 0.5)


RELAY = ROOT / "sagemaker" / "signal_relay.py"
# sagemaker-training's own `train` (4.9.0, what the Dockerfile installs), when a virtualenv holding it is at hand:
#   python3 -m venv V && V/bin/pip install sagemaker-training==4.9.0 && export ALBERT_NER_TOOLKIT_TRAIN=V/bin/train
TOOLKIT_TRAIN = os.environ.get("ALBERT_NER_TOOLKIT_TRAIN")
# Otherwise a stand-in with the toolkit's process tree: the entry point is its child (same process group), run as
# `python PROGRAM --key value ...` from the code folder, and no signal is handled or passed on.
EMULATED_TOOLKIT = '''import json, os, subprocess, sys
base = os.environ["SAGEMAKER_BASE_DIR"]
with open(os.path.join(base, "input", "config", "hyperparameters.json")) as f:
    hp = json.load(f)
args = [a for key in sorted(hp) for a in ("--" + key, hp[key])]
code = subprocess.Popen([sys.executable, os.environ["SAGEMAKER_PROGRAM"], *args],
                        cwd=os.environ["SAGEMAKER_SUBMIT_DIRECTORY"]).wait()
sys.exit(1 if code else 0)
'''
TOOLKITS = [pytest.param("emulated", id="emulated-toolkit"),
            pytest.param("sagemaker-training", id="sagemaker-training-4.9.0", marks=pytest.mark.skipif(
                not TOOLKIT_TRAIN, reason="ALBERT_NER_TOOLKIT_TRAIN (sagemaker-training's `train`) is not set"))]


def toolkit_job(tmp_path, base, env, hp, program):
    """The toolkit's view of the job (its config files, code folder, program) and the command that starts it.
    `program` is the code folder's train.py; the toolkit runs it with its own interpreter."""
    config = base / "input" / "config"
    (config / "hyperparameters.json").write_text(json.dumps({k[2:]: v for k, v in zip(hp[::2], hp[1::2])}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "localhost", "hosts": ["localhost"]}))
    (base / "output" / "data").mkdir(parents=True, exist_ok=True)  # where the toolkit reports failure or success
    code = base / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(program)
    env = dict(env, SAGEMAKER_PROGRAM="train.py", SAGEMAKER_SUBMIT_DIRECTORY=str(code), SM_HOSTS='["localhost"]',
               SM_CURRENT_HOST="localhost")
    return env


def toolkit_command(kind, tmp_path):
    if kind == "sagemaker-training":
        return [TOOLKIT_TRAIN]
    (tmp_path / "toolkit_train.py").write_text(EMULATED_TOOLKIT)
    return [sys.executable, str(tmp_path / "toolkit_train.py")]


# The code folder's train.py: notes its process group, then becomes sagemaker/train.py in this interpreter (which
# has TensorFlow; the toolkit's may not): the same process, where the toolkit started it. The PYTHONPATH the
# toolkit sets names its own interpreter's packages (in the image, the same interpreter's), so it is dropped.
ENTRY_SHIM = f'''import os, sys
with open(os.environ["ENTRY_GROUP_FILE"], "w") as f:
    f.write(str(os.getpgid(0)))
env = {{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}}
os.execve({str(sys.executable)!r}, [{str(sys.executable)!r}, {str(ENTRY)!r}, *sys.argv[1:]], env)
'''
# A stand-in entry point that notes the signals it gets (and its pid), for the control without the relay.
RECORDING_ENTRY = '''import os, signal, sys, time
out = os.environ["ENTRY_RECORD"]
def note(signum, frame):
    with open(out, "a") as f:
        f.write("signal %d\\n" % signum)
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, note)
with open(out, "a") as f:
    f.write("started %d\\n" % os.getpid())
while True:
    time.sleep(0.05)
'''


def wait_for_line(path, prefix, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            lines = [line for line in path.read_text().splitlines() if line.startswith(prefix)]
            if lines:
                return lines[0]
        time.sleep(0.1)
    raise AssertionError(f"no {prefix!r} line in {path} after {timeout} s")


@pytest.mark.parametrize("kind", TOOLKITS)
def test_the_toolkit_alone_passes_no_stop_signal_on(kind, tmp_path, msra_dir, vocab_path):
    """The premise: SIGTERM to the toolkit's `train` (what SageMaker signals when it is PID 1) never reaches the
    entry point, which goes on running (as PID 1 the toolkit would even ignore the signal)."""
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 2)
    record = tmp_path / "entry.log"
    env = dict(toolkit_job(tmp_path, base, env, ["--epochs", "1"], RECORDING_ENTRY), ENTRY_RECORD=str(record))
    toolkit = subprocess.Popen(toolkit_command(kind, tmp_path), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    entry_pid = int(wait_for_line(record, "started ").split()[1])
    try:
        toolkit.send_signal(signal.SIGTERM)
        toolkit.wait(timeout=60)
        time.sleep(2)
        assert record.read_text().splitlines() == [f"started {entry_pid}"]  # no signal arrived
        os.kill(entry_pid, 0)  # and it is still running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry_pid, signal.SIGKILL)


@pytest.mark.parametrize("kind", TOOLKITS)
def test_sigterm_to_the_image_reaches_the_trainer_through_the_toolkit(kind, tmp_path, msra_dir, vocab_path):
    """The image's PID 1 (sagemaker/signal_relay.py, ENTRYPOINT) runs `train`; SIGTERM to it reaches the trainer
    below the toolkit, which writes its checkpoint, and the relay stays until that process has ended."""
    base, env = container_tree(tmp_path, msra_dir, vocab_path, 200)
    hp = hyperparameter_args(dict(TINY, epochs=3, log_every=2, checkpoint_every=100000, export=False))
    group_file = tmp_path / "entry-group"
    env = dict(toolkit_job(tmp_path, base, env, hp, ENTRY_SHIM), ENTRY_GROUP_FILE=str(group_file))
    relay = subprocess.Popen([sys.executable, str(RELAY), *toolkit_command(kind, tmp_path)], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in relay.stdout:  # wait until training is under way
        seen.append(line)
        if line.startswith("step = 6;"):
            relay.send_signal(signal.SIGTERM)  # what SageMaker sends the container's PID 1
            break
    drain = threading.Thread(target=lambda: seen.extend(relay.stdout))  # the trainer may outlive the toolkit
    drain.start()
    relay.wait(timeout=300)
    with pytest.raises(ProcessLookupError):  # the relay left only once every process of the job had ended
        os.killpg(int(group_file.read_text()), 0)
    drain.join(timeout=60)
    out = "".join(seen)
    assert relay.returncode == 128 + signal.SIGTERM, out[-4000:]
    assert "received signal 15: stopping after this step with a checkpoint" in out, out[-4000:]
    assert "checkpoint saved to" in out and "run again to resume" in out
    assert tf_checkpoint_exists(base / "checkpoints" / "checkpoints")


def tf_checkpoint_exists(folder):
    state = folder / "checkpoint"
    return state.is_file() and any(folder.glob("ckpt-*.index"))


def test_the_relay_exits_as_its_command_did(tmp_path):
    relay = [sys.executable, str(RELAY)]
    assert subprocess.run([*relay, "sh", "-c", "exit 3"]).returncode == 3
    assert subprocess.run([*relay, "sh", "-c", "kill -KILL $$"]).returncode == 128 + signal.SIGKILL
    missing = subprocess.run([*relay, str(tmp_path / "no-such-command")], capture_output=True, text=True)
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    assert subprocess.run(relay, capture_output=True).returncode == 2
    # no stop signal: it leaves when the command does, not waiting for what the command left running
    started = time.monotonic()
    assert subprocess.run([*relay, "sh", "-c", "sleep 30 & exit 0"], timeout=20).returncode == 0
    assert time.monotonic() - started < 15
