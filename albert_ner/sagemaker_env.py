"""The only SageMaker-aware module: turn a training container's environment into `albert-ner train` (or, with
the hyperparameter task=pretrain, `albert-ner pretrain`).

SageMaker passes hyperparameters as `--key value` strings (booleans as True/true, numbers as
strings; the v2 TensorFlow estimator adds `--model_dir s3://...`, which is accepted and ignored)
and describes data channels, output folders and hosts in SM_* variables. This module maps them
onto the same `train` command a notebook user runs, then puts the results where SageMaker
collects them:
  channels       training|train -> --data-dir (train.txt [dev.txt test.txt]) or --train-file;
                 validation|valid|dev -> --dev-file; test -> --test-file; pretrained -> --init;
                 vocab -> --vocab-file (vocab.txt or its only file); an `init` hyperparameter that
                 is an s3:// URI is downloaded first (boto3)
  recipe         the `recipe` hyperparameter (default auto: albert_ner/recipes.py's "pretrained" with an
                 init, else "random-init"), the settings ./run_train.sh trains with; every other
                 hyperparameter overrides it ("none": TrainConfig's plain defaults)
  working dir    $SAGEMAKER_BASE_DIR/checkpoints (/opt/ml/checkpoints: the checkpoint_s3_uri sync
                 folder), so a job restarted after a spot interruption resumes where it stopped. A
                 checkpoint there of another run (other settings or data, by content: a reused
                 checkpoint_s3_uri) is refused before training, naming each difference (exit status 2)
  SM_MODEL_DIR   laid out so that the job's model.tar.gz deploys as it is on a SageMaker TensorFlow
                 Serving endpoint, and still holds the trainable model:
                   1/                  the SavedModel (TensorFlow Serving's model "model", version 1)
                   code/               the handler: inference.py, lib/, model/ (`albert-ner export`)
                   albert-ner-model/   the trained model folder (config, vocab, weights, manifest,
                                       train_config.json, eval_results.json): `train --init` for
                                       incremental training, `tag`, `evaluate`, `export`
                 (export=false: albert-ner-model/ only)
  SM_OUTPUT_DATA_DIR  eval_results.json, train_config.json and the TensorBoard logs
  several hosts  one model is trained by all (MultiWorkerMirroredStrategy, albert_ner/train/distribute.py):
                 TF_CONFIG as the TensorFlow container sets it, or built here from SM_HOSTS/SM_CURRENT_HOST
                 (port ALBERT_NER_PORT, default 8890). Only the chief (algo-1) writes the checkpoint folder
                 and SM_MODEL_DIR / SM_OUTPUT_DATA_DIR; the other hosts' are left empty
task=pretrain   the same job runs `albert-ner pretrain` (hyperparameters: PretrainConfig fields, see
                 `albert-ner pretrain --help`, and model_dir, config; train-only keys are refused):
  channels       training|train -> the text (every file in the folder, plain or .gz/.xz/.bz2); pretrained -> --init
                 (an encoder, or the model.tar.gz of an earlier job: continual pretraining); vocab -> --vocab-file;
                 an `init` hyperparameter that is an s3:// URI is downloaded as above; no validation or test
                 channel (the held-out text is heldout_fraction of the documents)
  working dir    the checkpoint sync folder as above (shards, checkpoints): a restarted job resumes
  SM_MODEL_DIR   pretrained/  the encoder and its MLM/SOP heads: SageMaker hands the job's model.tar.gz to the next
                              job's `pretrained` channel as it is, and `train --init` (or `pretrain --init`) finds
                              this folder inside it (albert_ner/weights/convert.py pretraining_output)
                 hf/          the Hugging Face export (config.json, model.safetensors, vocab.txt)
                 pretrain_results.json
  SM_OUTPUT_DATA_DIR  pretrain_results.json, pretrain_config.json, heldout_before.json and the TensorBoard logs
Outside SageMaker the same flags work with local paths (the SM_* defaults are then not used).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from albert_ner import recipes
from albert_ner.config import TrainConfig

log = logging.getLogger(__name__)

CHANNELS = {"train": ("training", "train"), "dev": ("validation", "valid", "dev"), "test": ("test",),
            "pretrained": ("pretrained",), "vocab": ("vocab",)}
TRAIN, PRETRAIN = "train", "pretrain"
TASKS = (TRAIN, PRETRAIN)  # the `task` hyperparameter: which albert-ner command the job runs
# Hyperparameters the entry point itself takes (beside every TrainConfig field).
ENTRY_KEYS = {"model_dir", "export", "data_dir", "train_file", "dev_file", "test_file", "vocab_file", "output_dir",
              "config", "recipe", "task"}
# With task=pretrain: beside every PretrainConfig field but `inputs` (the train channel is the text).
PRETRAIN_ENTRY_KEYS = {"model_dir", "config", "task"}
PRETRAIN_FROM_CHANNELS = ("inputs",)
MODEL_FILES = ("eval_results.json",)  # beside the published model's files (its train_config.json included)
TRAINED_MODEL_DIR = "albert-ner-model"  # SM_MODEL_DIR's sub-folder holding the trained model folder
EXPORT_ENTRIES = ("1", "code")  # what `albert-ner export` writes (SavedModel version, handler): SM_MODEL_DIR's top
EXPORT_STAGING = ".albert-ner-export"
OUTPUT_FILES = ("eval_results.json", "train_config.json", "tensorboard")
# task=pretrain: what `albert-ner pretrain` leaves in its output directory and where it is published.
PRETRAINED_DIR = "pretrained"  # the folder `train --init` looks for (weights/convert.py PRETRAINED_SUBDIR)
HF_DIR = "hf"  # the Hugging Face export
PRETRAIN_MODEL_FILES = ("pretrain_results.json",)
PRETRAIN_OUTPUT_FILES = ("pretrain_results.json", "pretrain_config.json", "heldout_before.json", "tensorboard")


@dataclasses.dataclass(frozen=True)
class SageMakerPaths:
    """Where this job reads and writes (from SM_* variables, or the /opt/ml layout under base)."""

    base: Path
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    channels: Dict[str, Path]
    num_gpus: int
    hosts: Tuple[str, ...]
    current_host: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SageMakerPaths":
        base = Path(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        channels = {k[len("SM_CHANNEL_"):].lower(): Path(v) for k, v in env.items() if k.startswith("SM_CHANNEL_")}
        if not channels and (base / "input" / "data").is_dir():
            channels = {p.name: p for p in (base / "input" / "data").iterdir() if p.is_dir()}
        hosts = tuple(h.strip(' "[]') for h in env.get("SM_HOSTS", '["algo-1"]').split(",") if h.strip(' "[]'))
        return cls(base=base, model_dir=Path(env.get("SM_MODEL_DIR", base / "model")),
                   output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", base / "output" / "data")),
                   checkpoint_dir=base / "checkpoints", channels=channels,
                   num_gpus=int(env.get("SM_NUM_GPUS", "0") or 0), hosts=hosts,
                   current_host=env.get("SM_CURRENT_HOST", hosts[0] if hosts else "algo-1"))

    def channel(self, role: str) -> Optional[Path]:
        """The directory of the first channel present under any of the role's names."""
        return next((self.channels[n] for n in CHANNELS[role] if n in self.channels), None)


def known_hyperparameters(task: str) -> Set[str]:
    """The hyperparameter names a job of this task takes: its command's config fields and the entry point's own."""
    if task == PRETRAIN:
        from albert_ner.pretrain.config import PretrainConfig

        return {f.name for f in dataclasses.fields(PretrainConfig)} - set(PRETRAIN_FROM_CHANNELS) | PRETRAIN_ENTRY_KEYS
    return {f.name for f in dataclasses.fields(TrainConfig)} | ENTRY_KEYS


def unknown_message(task: str, unknown: Sequence[str]) -> str:
    """The error for hyperparameters this task does not take, naming those that are the other task's."""
    if task == PRETRAIN:
        head = (f"unknown hyperparameter(s) for task=pretrain: {', '.join(unknown)} (known: PretrainConfig fields, see "
                f"`albert-ner pretrain --help`, and {', '.join(sorted(PRETRAIN_ENTRY_KEYS))})")
    else:
        head = (f"unknown hyperparameter(s): {', '.join(unknown)} (known: TrainConfig fields, see `albert-ner train "
                f"--help`, and {', '.join(sorted(ENTRY_KEYS))})")
    other = PRETRAIN if task == TRAIN else TRAIN
    theirs = [k for k in unknown if k in known_hyperparameters(other)]
    if theirs:
        head += f"; {', '.join(theirs)}: setting(s) of task={other}, not of task={task}"
    return head


def parse_hyperparameters(argv: Sequence[str]) -> Dict[str, str]:
    """`--key value` pairs as SageMaker passes them; keys with - or _ alike; keys the job's task (the `task`
    hyperparameter, default train) does not take are an error."""
    values: Dict[str, str] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        key = args[i]
        if not key.startswith("--"):
            raise ValueError(f"hyperparameters: expected --key value, got {key!r}")
        name = key[2:].replace("-", "_")
        if "=" in name:
            name, value = name.split("=", 1)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 2
        else:
            value, i = "true", i + 1
        values[name] = value
    task = values.get("task", TRAIN)
    if task not in TASKS:
        raise ValueError(f"hyperparameter task must be one of {', '.join(TASKS)}, got {task!r}")
    unknown = sorted(set(values) - known_hyperparameters(task))
    if unknown:
        raise ValueError(unknown_message(task, unknown))
    return values


def _data_file(directory: Path, preferred: str) -> Path:
    """`preferred` inside a channel directory, else its only file."""
    if (directory / preferred).is_file():
        return directory / preferred
    files = [p for p in sorted(directory.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    if len(files) != 1:
        raise ValueError(f"channel {directory}: expected {preferred} or exactly one file, found "
                         f"{len(files)}: {', '.join(p.name for p in files[:10])}")
    return files[0]


def _common_flags(hp: Dict[str, str], paths: SageMakerPaths) -> List[str]:
    """The flags both tasks take alike: vocab and pretrained channels (unless a hyperparameter names them), the
    output dir (default: the checkpoint sync folder), then every remaining hyperparameter as --key value."""
    argv: List[str] = []
    vocab = paths.channel("vocab")
    if vocab is not None and "vocab_file" not in hp:
        argv += ["--vocab-file", str(_data_file(vocab, "vocab.txt"))]
    pretrained = paths.channel("pretrained")
    if pretrained is not None and "init" not in hp:
        argv += ["--init", str(pretrained)]
    hp = dict(hp, output_dir=hp.get("output_dir", str(paths.checkpoint_dir)))
    for key, value in hp.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return argv


def train_argv(hyperparameters: Dict[str, str], paths: SageMakerPaths) -> List[str]:
    """The `albert-ner train` arguments for this job."""
    hp = dict(hyperparameters)
    hp.pop("model_dir", None)  # the v2 estimator's S3 model_dir: artifacts go to SM_MODEL_DIR instead
    hp.pop("export", None)
    hp.pop("task", None)
    argv = ["train", "--recipe", hp.pop("recipe", recipes.AUTO)]  # what ./run_train.sh trains
    train_dir = paths.channel("train")
    if train_dir is not None and "train_file" not in hp and "data_dir" not in hp:
        if (train_dir / "train.txt").is_file():
            argv += ["--data-dir", str(train_dir)]
        else:
            argv += ["--train-file", str(_data_file(train_dir, "train.txt"))]
    for role, flag, preferred in (("dev", "dev_file", "dev.txt"), ("test", "test_file", "test.txt")):
        directory = paths.channel(role)
        if directory is not None and flag not in hp:
            argv += [f"--{flag.replace('_', '-')}", str(_data_file(directory, preferred))]
    return argv + _common_flags(hp, paths)


def pretrain_argv(hyperparameters: Dict[str, str], paths: SageMakerPaths) -> List[str]:
    """The `albert-ner pretrain` arguments for this job: the train channel's folder is the text."""
    hp = dict(hyperparameters)
    hp.pop("model_dir", None)
    hp.pop("task", None)
    text = paths.channel("train")
    if text is None:
        raise ValueError(f"task=pretrain reads its text from the {' or '.join(CHANNELS['train'])} channel, and this "
                         f"job has none (channels: {', '.join(sorted(paths.channels)) or 'none'})")
    unused = sorted(n for role in ("dev", "test") for n in CHANNELS[role] if n in paths.channels)
    if unused:
        raise ValueError(f"task=pretrain reads no {', '.join(unused)} channel (its held-out text is heldout_fraction "
                         f"of the {text.name} channel's documents); launch without it")
    argv = ["pretrain", str(text)]
    return argv + _common_flags(hp, paths)


def job_argv(hyperparameters: Dict[str, str], paths: SageMakerPaths) -> List[str]:
    """The albert-ner command line of this job's task (train or pretrain)."""
    if hyperparameters.get("task", TRAIN) == PRETRAIN:
        return pretrain_argv(hyperparameters, paths)
    return train_argv(hyperparameters, paths)


def fetch_s3_prefix(uri: str, dest: Path, client=None) -> Path:
    """Download every object under an s3://bucket/prefix into dest (keeping relative paths); returns dest."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if client is None:
        import boto3  # present in SageMaker containers; not a dependency of the package

        client = boto3.client("s3")
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            rel = key[len(prefix):].lstrip("/") or Path(key).name
            if key.endswith("/") or ".." in Path(rel).parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))
            count += 1
    if not count:
        raise FileNotFoundError(f"{uri}: no objects under this prefix")
    log.info("downloaded %d objects from %s to %s", count, uri, dest)
    return dest


def run_config(args: Sequence[str]) -> Optional[TrainConfig]:
    """The TrainConfig `albert-ner ARGS` will train; None when the command line has a problem, which the command
    itself then reports."""
    from albert_ner.cli import build_parser, train_config_from_args

    with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage text: the command prints it
        try:
            return train_config_from_args(build_parser().parse_args(list(args)))
        except (SystemExit, ValueError, OSError):
            return None


def resume_conflict(cfg: TrainConfig) -> Optional[str]:
    """Why the checkpoint in cfg.output_dir is another run's (the trainer's own rule: settings and file contents,
    albert_ner/train/fingerprint.py), or None: no checkpoint there, resume off, or the same run."""
    work = Path(cfg.output_dir)
    if not cfg.resume or not work.is_dir() or not any(work.iterdir()):
        return None
    import tensorflow as tf  # the trainer loads it next anyway

    from albert_ner.train import fingerprint
    from albert_ner.train.loop import CHECKPOINT_DIR

    ckpt_dir = work / CHECKPOINT_DIR
    if not ckpt_dir.is_dir() or not tf.train.latest_checkpoint(str(ckpt_dir)):
        return None  # nothing to resume: the trainer starts afresh
    try:
        record = fingerprint.load_run_record(ckpt_dir)
    except ValueError as exc:  # no or no readable run.json (fingerprint.ResumeMismatch is a ValueError)
        return str(exc)
    return "; ".join(fingerprint.differences(record["fingerprint"], fingerprint.run_fingerprint(cfg))) or None


def resume_refusal(problem: str, work_dir: Path, paths: SageMakerPaths) -> str:
    """The job's error for a checkpoint of another run: what differs, and what to launch instead."""
    synced = work_dir.resolve() == paths.checkpoint_dir.resolve()
    where = (f"{work_dir}, which SageMaker fills from the job's --checkpoint-s3-uri (CheckpointConfig S3Uri)"
             if synced else f"{work_dir} (the output_dir hyperparameter)")
    fresh = ("launch each run with its own --checkpoint-s3-uri (new data or settings: a new URI)" if synced
             else "give this run its own output_dir")
    return (f"this job does not resume the checkpoint in {where}: it is another run's ({problem}), and resuming it "
            f"would mix the two. Nothing was trained. To train this job's settings and data, {fresh}; or add "
            f"--hp resume=false to start over in that place (its checkpoint is discarded)")


def publish(work_dir: Path, paths: SageMakerPaths, export: bool) -> None:
    """Put the model into SM_MODEL_DIR (the trained model folder in albert-ner-model/, and with `export` the
    SavedModel and handler at the top, where the TensorFlow Serving container looks) and reports/logs into
    SM_OUTPUT_DATA_DIR. What an earlier publish of this job left there is replaced."""
    from albert_ner.model.modeldir import open_files

    model_dir, trained = paths.model_dir, paths.model_dir / TRAINED_MODEL_DIR
    model_dir.mkdir(parents=True, exist_ok=True)
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    for name in (TRAINED_MODEL_DIR, EXPORT_STAGING) + EXPORT_ENTRIES:
        if (model_dir / name).is_dir():
            shutil.rmtree(model_dir / name)
    shutil.copytree(open_files(work_dir).folder, trained)  # checked, as published
    copy_entries(work_dir, trained, MODEL_FILES)
    copy_entries(work_dir, paths.output_data_dir, OUTPUT_FILES)
    if export:
        from albert_ner.infer.export import export as export_model

        staging = model_dir / EXPORT_STAGING
        try:
            export_model(trained, staging)
            for item in sorted(staging.iterdir()):
                if (model_dir / item.name).exists():  # e.g. a new top-level entry of export named as ours
                    raise FileExistsError(f"{model_dir / item.name}: exists; the export would replace it")
                os.replace(item, model_dir / item.name)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    log.info("model written to %s (%s%s), reports and logs to %s", model_dir, TRAINED_MODEL_DIR,
             ", SavedModel and handler at the top" if export else "", paths.output_data_dir)


def copy_entries(src: Path, dest: Path, names: Sequence[str]) -> None:
    """Copy the files and folders of src named `names` (those present) into dest."""
    for name in names:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, dirs_exist_ok=True)
        elif (src / name).is_file():
            shutil.copyfile(src / name, dest / name)


def publish_pretraining(work_dir: Path, paths: SageMakerPaths) -> None:
    """Put a pretraining run's result into SM_MODEL_DIR: pretrained/ (encoder and heads, the folder `train --init`
    finds in the job's model.tar.gz) and hf/ (the Hugging Face export) beside pretrain_results.json; its reports and
    TensorBoard logs into SM_OUTPUT_DATA_DIR. What an earlier publish of this job left there is replaced."""
    encoder, hf = work_dir / PRETRAINED_DIR, work_dir / HF_DIR
    for folder, marker in ((encoder, "encoder_config.json"), (hf, "config.json")):
        if not (folder / marker).is_file():
            raise FileNotFoundError(f"{folder / marker}: missing; `albert-ner pretrain` finished without publishing "
                                    f"its {folder.name}/ folder")
    model_dir = paths.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    for folder in (encoder, hf):
        if (model_dir / folder.name).is_dir():
            shutil.rmtree(model_dir / folder.name)
        shutil.copytree(folder, model_dir / folder.name)
    copy_entries(work_dir, model_dir, PRETRAIN_MODEL_FILES)
    copy_entries(work_dir, paths.output_data_dir, PRETRAIN_OUTPUT_FILES)
    log.info("pretrained encoder written to %s (%s/: the next job's `pretrained` channel takes this job's "
             "model.tar.gz; %s/: Hugging Face), reports and logs to %s", model_dir, PRETRAINED_DIR, HF_DIR,
             paths.output_data_dir)


def set_cluster(env: Mapping[str, str], paths: SageMakerPaths) -> bool:
    """With several hosts, make sure the trainer finds its cluster: a TF_CONFIG already set (the TensorFlow
    container's multi_worker_mirrored_strategy distribution) is kept, else one is built from SM_HOSTS and
    SM_CURRENT_HOST (port ALBERT_NER_PORT, default 8890) into os.environ. Returns whether this host is the chief,
    the one that writes checkpoints and publishes (worker 0: algo-1)."""
    from albert_ner.train import distribute  # loads TensorFlow, which training does next anyway

    config = distribute.read_tf_config(env)
    if config is None:
        config = distribute.tf_config_from_sagemaker(env)
        if config is not None:
            os.environ["TF_CONFIG"] = json.dumps(config)
            log.info("TF_CONFIG from SM_HOSTS: %s", os.environ["TF_CONFIG"])
    if config is None:
        return True
    task = config["task"]
    return task["type"] == "chief" or (task["type"] == "worker" and int(task["index"]) == 0
                                       and not config["cluster"].get("chief"))


def main(argv: Sequence[str], env: Optional[Mapping[str, str]] = None) -> int:
    """The entry point for local, script-mode (BYOS) and custom-container (BYOC) jobs alike."""
    from albert_ner.cli import main as cli_main, str2bool

    env = os.environ if env is None else env
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths = SageMakerPaths.from_env(env)
    try:
        hp = parse_hyperparameters(argv)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    task = hp.get("task", TRAIN)
    export = str2bool(hp.get("export", "true"))
    if hp.get("init", "").startswith("s3://"):  # pretrained weights by S3 URI instead of a channel
        hp["init"] = str(fetch_s3_prefix(hp["init"], paths.base / "input" / "pretrained-s3"))
    try:
        args = job_argv(hp, paths)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    log.info("host %s of %s, %d GPU(s); running: albert-ner %s", paths.current_host, ",".join(paths.hosts),
             paths.num_gpus, " ".join(args))
    try:
        chief = set_cluster(env, paths)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    work_dir = Path(args[args.index("--output-dir") + 1])
    # A restarted job, or a reused checkpoint_s3_uri (pretraining's runner checks its checkpoint itself).
    if task == TRAIN and work_dir.is_dir() and any(work_dir.iterdir()):
        cfg = run_config(args)
        problem = resume_conflict(cfg) if cfg is not None else None
        if problem:
            log.error("%s", resume_refusal(problem, work_dir, paths))
            return 2
    code = cli_main(args)
    if code == 0 and chief and task == PRETRAIN:
        publish_pretraining(work_dir, paths)
    elif code == 0 and chief:
        publish(work_dir, paths, export)
    elif code == 0:
        log.info("host %s is a worker: the chief (%s) publishes the model", paths.current_host, paths.hosts[0])
    return code
