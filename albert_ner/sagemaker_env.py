"""The only SageMaker-aware module: turn a training container's environment into `albert-ner train`.

SageMaker passes hyperparameters as `--key value` strings (booleans as True/true, numbers as
strings; the v2 TensorFlow estimator adds `--model_dir s3://...`, which is accepted and ignored)
and describes data channels, output folders and hosts in SM_* variables. This module maps them
onto the same `train` command a notebook user runs, then puts the results where SageMaker
collects them:
  channels       training|train -> --data-dir (train.txt [dev.txt test.txt]) or --train-file;
                 validation|valid|dev -> --dev-file; test -> --test-file; pretrained -> --init;
                 vocab -> --vocab-file (vocab.txt or its only file); an `init` hyperparameter that
                 is an s3:// URI is downloaded first (boto3)
  working dir    $SAGEMAKER_BASE_DIR/checkpoints (/opt/ml/checkpoints: the checkpoint_s3_uri sync
                 folder), so a job restarted after a spot interruption resumes where it stopped
  SM_MODEL_DIR   the published model's files (config, vocab, weights, manifest), eval_results.json and
                 the SavedModel export (export/)
  SM_OUTPUT_DATA_DIR  eval_results.json, train_config.json and the TensorBoard logs
Outside SageMaker the same flags work with local paths (the SM_* defaults are then not used).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from albert_ner.config import TrainConfig

log = logging.getLogger(__name__)

CHANNELS = {"train": ("training", "train"), "dev": ("validation", "valid", "dev"), "test": ("test",),
            "pretrained": ("pretrained",), "vocab": ("vocab",)}
# Hyperparameters the entry point itself takes (beside every TrainConfig field).
ENTRY_KEYS = {"model_dir", "export", "data_dir", "train_file", "dev_file", "test_file", "vocab_file", "output_dir",
              "config"}
MODEL_FILES = ("eval_results.json",)  # beside the published model's files (its train_config.json included)
OUTPUT_FILES = ("eval_results.json", "train_config.json", "tensorboard")


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


def parse_hyperparameters(argv: Sequence[str]) -> Dict[str, str]:
    """`--key value` pairs as SageMaker passes them; keys with - or _ alike; unknown keys are an error."""
    known = {f.name for f in dataclasses.fields(TrainConfig)} | ENTRY_KEYS
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
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s): {', '.join(unknown)} (known: TrainConfig fields, "
                         f"see `albert-ner train --help`, and {', '.join(sorted(ENTRY_KEYS))})")
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


def train_argv(hyperparameters: Dict[str, str], paths: SageMakerPaths) -> List[str]:
    """The `albert-ner train` arguments for this job."""
    hp = dict(hyperparameters)
    hp.pop("model_dir", None)  # the v2 estimator's S3 model_dir: artifacts go to SM_MODEL_DIR instead
    hp.pop("export", None)
    argv = ["train"]
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
    vocab = paths.channel("vocab")
    if vocab is not None and "vocab_file" not in hp:
        argv += ["--vocab-file", str(_data_file(vocab, "vocab.txt"))]
    pretrained = paths.channel("pretrained")
    if pretrained is not None and "init" not in hp:
        argv += ["--init", str(pretrained)]
    hp.setdefault("output_dir", str(paths.checkpoint_dir))
    for key, value in hp.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return argv


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


def publish(work_dir: Path, paths: SageMakerPaths, export: bool) -> None:
    """Copy the model to SM_MODEL_DIR (plus a SavedModel export) and reports/logs to SM_OUTPUT_DATA_DIR."""
    from albert_ner.model.modeldir import open_files

    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(open_files(work_dir).folder, paths.model_dir, dirs_exist_ok=True)  # checked, as published
    for dest, names in ((paths.model_dir, MODEL_FILES), (paths.output_data_dir, OUTPUT_FILES)):
        for name in names:
            src = work_dir / name
            if src.is_dir():
                shutil.copytree(src, dest / name, dirs_exist_ok=True)
            elif src.is_file():
                shutil.copyfile(src, dest / name)
    if export:
        from albert_ner.infer.export import export as export_model

        target = paths.model_dir / "export"
        if target.exists():
            shutil.rmtree(target)
        export_model(work_dir, target)
    log.info("model written to %s, reports and logs to %s", paths.model_dir, paths.output_data_dir)


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
    export = str2bool(hp.get("export", "true"))
    if hp.get("init", "").startswith("s3://"):  # pretrained weights by S3 URI instead of a channel
        hp["init"] = str(fetch_s3_prefix(hp["init"], paths.base / "input" / "pretrained-s3"))
    args = train_argv(hp, paths)
    log.info("host %s of %s, %d GPU(s); running: albert-ner %s", paths.current_host, ",".join(paths.hosts),
             paths.num_gpus, " ".join(args))
    if len(paths.hosts) > 1:
        log.warning("%d hosts: training runs on each independently (no distribution strategy); use one instance",
                    len(paths.hosts))
    code = cli_main(args)
    if code == 0:
        work_dir = Path(args[args.index("--output-dir") + 1])
        publish(work_dir, paths, export)
    return code
