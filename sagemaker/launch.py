"""Train, deploy and batch-tag with albert-ner on Amazon SageMaker.

    python sagemaker/launch.py byos --role ARN --train data/msra/ --vocab data/vocab.txt \\
        --instance-type ml.g4dn.xlarge --spot --checkpoint-s3-uri s3://BUCKET/ckpt --hp epochs=3
    python sagemaker/launch.py byoc --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/albert-ner:latest ...
    python sagemaker/launch.py byos --role ARN --train corpus/ --vocab vocab.txt --hp task=pretrain --hp max_steps=20000
    python sagemaker/launch.py byos --role ARN --train data/msra/ --pretrained-job PRETRAINING_JOB_NAME
    python sagemaker/launch.py deploy --role ARN --training-job JOB_NAME       # a real-time endpoint
    python sagemaker/launch.py transform --role ARN --model-data ner.tar.gz --input s3://BUCKET/texts/

Training runs one entry point (sagemaker/train.py -> albert_ner.sagemaker_env). BYOS uses the SageMaker
TensorFlow training container (2.14, py310: the newest Keras-2 one) with the package shipped as source
plus requirements.txt; BYOC uses the image built by sagemaker/build_and_push.sh. Hyperparameters are
checked against `albert-ner train`'s settings before anything is created. `--hp task=pretrain` makes the job
`albert-ner pretrain` instead (hyperparameters checked against its settings, PretrainConfig; the text in the
train channel; its own metric definitions); the job's model.tar.gz holds the pretrained encoder, and a following
job takes it as its `pretrained` channel with `--pretrained-job JOB_NAME` (a Completed job's ModelArtifacts:
fine-tuning, or more pretraining), the incremental flow. Each launch keeps its files
under its own prefix, s3://BUCKET/<--s3-prefix>/<job name>/ (input/<channel>, output/, source/), so no
earlier launch's files are ever read. `--instance-type local|local_gpu` runs in local mode (Docker and
`sagemaker[local]`): local channel paths are mounted as file:// URIs, nothing is uploaded.
deploy and transform serve a model with the SageMaker TensorFlow Serving 2.14 container and the
handler that `albert-ner export` writes (code/inference.py). A training job's model.tar.gz holds them at
its top (1/, code/, beside the trained model in albert-ner-model/) and is served as it is; one from an
older job, with the export under export/, is repacked with the SavedModel and handler at its top first.
Spot jobs checkpoint every SPOT_CHECKPOINT_EVERY steps unless --hp checkpoint_every says otherwise: the
periodic checkpoint is what a spot interruption is sure to leave (see SPOT_CHECKPOINT_EVERY).
`--dry-run` prints the full plan as JSON on stdout and creates nothing; stdout carries only that
JSON (the plan of what was started, without --dry-run), everything else goes to stderr.
A problem you can fix is one `error: ...` line on stderr and exit status 2.
Needs the SageMaker Python SDK v2 (`pip install -e ".[sagemaker]"`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # albert_ner, whose settings the hyperparameters are checked against

FRAMEWORK_VERSION, PY_VERSION = "2.14", "py310"
SERVING_VERSION = "2.14"  # TensorFlow Serving container for deploy/transform
# The packages the TensorFlow container lacks (it has TensorFlow 2.14 and numpy).
BYOS_REQUIREMENTS = ("tensorflow-addons==0.23.0", "numpy<2", "sentencepiece", "jieba>=0.42", "seqeval>=1.2.2", "tqdm")
# What SageMaker reads from the job's log into CloudWatch metrics. Each regex matches only its own line
# as albert-ner prints it (train/loop.py `emit`, train/report.py `metric_lines`); `\b` keeps
# `train_loss` out of `epoch_train_loss` and `eval_f1` out of a `*_eval_f1` per-type line.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"\bstep = [0-9]+; train_loss = ([0-9.eE+-]+);"},
    {"Name": "train:samples_per_sec", "Regex": r"\bstep = [0-9]+; train_loss = [^;]*; samples_per_sec = ([0-9.]+)"},
    {"Name": "train:epoch_loss", "Regex": r"\bepoch = [0-9]+; epoch_train_loss = ([0-9.eE+-]+);"},
    {"Name": "dev:f1", "Regex": r"\bepoch = [0-9]+; epoch_train_loss = [^;]*; dev_f1 = ([0-9.]+)"},
    {"Name": "eval:precision", "Regex": r"\beval_precision = ([0-9.]+)"},
    {"Name": "eval:recall", "Regex": r"\beval_recall = ([0-9.]+)"},
    {"Name": "eval:f1", "Regex": r"\beval_f1 = ([0-9.]+)"},
]
# A pretraining job's lines (the runner's step and epoch lines with pretrain/task.py's metrics, then its closing
# `pretrain_heldout_*` lines): tests/test_sagemaker_pretrain.py runs a job and checks each against its stdout.
_EPOCH = r"\bepoch = [0-9]+; epoch_train_loss = [^;]*;"
PRETRAIN_METRIC_DEFINITIONS = METRIC_DEFINITIONS[:3] + [
    {"Name": "train:mlm_accuracy", "Regex": r"\bstep = [0-9]+; train_loss = [^;]*; samples_per_sec = [^;]*; "
                                            r"mlm_accuracy = ([0-9.]+)"},
    {"Name": "train:sop_accuracy", "Regex": r"\bstep = [0-9]+; train_loss = .*; sop_accuracy = ([0-9.]+)"},
    {"Name": "heldout:mlm_loss", "Regex": _EPOCH + r" heldout_mlm_loss = ([0-9.eE+-]+);"},
    {"Name": "heldout:mlm_accuracy", "Regex": _EPOCH + r".* heldout_mlm_accuracy = ([0-9.]+);"},
    {"Name": "heldout:perplexity", "Regex": _EPOCH + r".* heldout_perplexity = ([0-9.eE+-]+);"},
    {"Name": "heldout:sop_accuracy", "Regex": _EPOCH + r".* heldout_sop_accuracy = ([0-9.]+);"},
    {"Name": "final:mlm_loss", "Regex": r"\bpretrain_heldout_mlm_loss = ([0-9.eE+-]+)"},
    {"Name": "final:mlm_accuracy", "Regex": r"\bpretrain_heldout_mlm_accuracy = ([0-9.]+)"},
    {"Name": "final:perplexity", "Regex": r"\bpretrain_heldout_perplexity = ([0-9.eE+-]+)"},
]
METRIC_DEFINITIONS_BY_TASK = {"train": METRIC_DEFINITIONS, "pretrain": PRETRAIN_METRIC_DEFINITIONS}
CHANNELS = ("train", "validation", "test", "vocab", "pretrained")
LOCAL_INSTANCE_TYPES = ("local", "local_gpu")
# transform --input-format: (content type, split type). Line-split input is sent in batches of lines.
INPUT_FORMATS = {"text": ("text/plain", "Line"), "jsonl": ("application/jsonlines", "Line"),
                 "json": ("application/json", None)}
ACCEPT_TYPES = ("application/jsonlines", "application/json")
SERVING_INSTANCE_TYPE = "ml.m5.xlarge"
# Steps between checkpoints of a --spot job (the trainer's default is 500). In script mode the SageMaker
# TensorFlow container's toolkit passes no signal on to the entry point, so an interrupted job's trainer gets no
# SIGTERM and leaves only its last periodic checkpoint; the custom image's PID 1 (sagemaker/signal_relay.py)
# passes SIGTERM on, and the trainer checkpoints at once, if SageMaker leaves it the seconds to. Either way the
# periodic checkpoint is the guarantee, and this bounds what an interruption can lose.
SPOT_CHECKPOINT_EVERY = 200

log = logging.getLogger("albert_ner.launch")


class LaunchError(Exception):
    """A problem the user can fix, found before anything is created: one `error:` line and exit status 2."""


# ---------------------------------------------------------------------------------------------- settings


def parse_hyperparameters(items: Sequence[str]) -> Dict[str, str]:
    """KEY=VALUE pairs (keys as `albert-ner train` flags, with - or _); a key given twice is an error."""
    out: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name = key.strip().lstrip("-").replace("-", "_")
        if not sep or not name:
            raise LaunchError(f"--hp expects KEY=VALUE, got {item!r}")
        if name in out:
            raise LaunchError(f"--hp {name} is given twice ({out[name]!r} and {value!r})")
        out[name] = value
    return out


class TaskSettings(NamedTuple):
    """How a task's hyperparameters are checked: its config class, the command's flags, the placeholder values of
    the config's required fields, and the prefix its config puts before the problems it lists."""

    config: Any
    add_flags: Callable[[argparse.ArgumentParser], None]
    flag_prefix: List[str]  # what precedes `--name value` on a command line the parser accepts
    required: Dict[str, Any]
    error_prefix: str


def task_settings(task: str) -> TaskSettings:
    """The settings of `albert-ner train` or `albert-ner pretrain` (none of these modules imports TensorFlow)."""
    if task == "pretrain":
        from albert_ner.pretrain import cli as pretrain_cli
        from albert_ner.pretrain.config import PretrainConfig

        return TaskSettings(PretrainConfig, pretrain_cli.add_arguments, ["corpus", "--output-dir", "out"],
                            dict(inputs=["corpus"], output_dir="output", vocab_file="vocab.txt"),
                            "invalid pretraining config: ")
    from albert_ner import cli
    from albert_ner.config import TrainConfig

    return TaskSettings(TrainConfig, cli.add_train_config_flags, [],
                        dict(train_file="train.txt", output_dir="output", vocab_file="vocab.txt"),
                        "invalid training config: ")


def check_hyperparameters(hp: Dict[str, str]) -> None:
    """Every problem the training job would find in these hyperparameters, in one LaunchError.

    Uses the entry point's own rules for the job's task (`task`: train, the default, or pretrain): the names
    albert_ner.sagemaker_env accepts (the task's config fields and the entry point's keys), the flag types of its
    command (albert_ner.cli, albert_ner.pretrain.cli) and its config's value checks. None of these modules imports
    TensorFlow."""
    try:
        from albert_ner import cli, sagemaker_env
    except ImportError as exc:
        raise LaunchError(f"cannot check hyperparameters: albert_ner does not import here ({exc}); run the "
                          f"launcher from the repository with the package's dependencies installed") from None
    task = hp.get("task", sagemaker_env.TRAIN)
    if task not in sagemaker_env.TASKS:
        raise LaunchError(f"--hp task={task}: one of {', '.join(sagemaker_env.TASKS)}")
    settings = task_settings(task)
    known = sorted(sagemaker_env.known_hyperparameters(task))
    other = sagemaker_env.known_hyperparameters("pretrain" if task == "train" else "train")
    parser = argparse.ArgumentParser(prog=task, add_help=False, allow_abbrev=False, exit_on_error=False)
    settings.add_flags(parser)
    problems: List[str] = []
    values: Dict[str, Any] = {}
    for name, value in hp.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            problems.append(f"unknown hyperparameter {name!r}" + (f" for task={task}" if task != "train" else "")
                            + (f" (did you mean {close[0]!r}?)" if close else "")
                            + (f" (a setting of task={'pretrain' if task == 'train' else 'train'})"
                               if name in other else ""))
        elif value.startswith("--"):
            problems.append(f"{name}={value!r}: a value starting with -- is read by the job as the next flag")
        elif name == "task":
            continue
        elif name == "export":
            try:
                cli.str2bool(value)
            except argparse.ArgumentTypeError as exc:
                problems.append(f"export: {exc}")
        elif name == "recipe":
            from albert_ner import recipes

            try:
                recipes.check_choice(value)
            except ValueError as exc:
                problems.append(str(exc))
        else:
            try:  # `--name value`, exactly as the job hands it to `albert-ner TASK`
                parsed, rest = parser.parse_known_args(settings.flag_prefix + ["--" + name.replace("_", "-"), value])
            except argparse.ArgumentError as exc:
                problems.append(f"{name}={value!r}: {exc}")
                continue
            if not rest and name in {f.name for f in dataclasses.fields(settings.config)}:
                values[name] = getattr(parsed, name)  # a typed config flag (data paths are the entry point's own)
    try:
        settings.config(**{**settings.required, **values})
    except (TypeError, ValueError) as exc:  # the configs list their problems as "invalid ... config: a; b"
        problems += str(exc).split(settings.error_prefix, 1)[-1].split("; ")
    if problems:
        raise LaunchError(f"{len(problems)} problem(s) with --hp, nothing was started: " + "; ".join(problems))


def resolve_region(explicit: Optional[str]) -> str:
    """--region, else $AWS_DEFAULT_REGION, $AWS_REGION, else the AWS profile's region."""
    region = explicit or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if not region:
        import boto3

        region = boto3.Session().region_name
    if not region:
        raise LaunchError("no AWS region: pass --region REGION, set AWS_DEFAULT_REGION, or run "
                          "`aws configure set region REGION`")
    return region


def partition_of(region: str) -> str:
    """The AWS partition of a region: aws, aws-cn (cn-*) or aws-us-gov (us-gov-*)."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def check_role(role: str, region: str) -> None:
    """A role ARN must be an IAM role of the region's partition (a bare role name is left to the SDK)."""
    if not role.startswith("arn:"):
        return
    match = re.fullmatch(r"arn:([a-z-]+):iam::[0-9]{12}:role/\S+", role)
    if not match:
        raise LaunchError(f"--role {role}: not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)")
    if match.group(1) != partition_of(region):
        raise LaunchError(f"--role {role} is in partition {match.group(1)}, but region {region} is in "
                          f"{partition_of(region)} (arn:{partition_of(region)}:iam::...)")


def check_uri(flag: str, uri: Optional[str], schemes: Tuple[str, ...] = ("s3://",)) -> None:
    if uri and not uri.startswith(schemes):
        raise LaunchError(f"{flag} {uri}: expected {' or '.join(s + '...' for s in schemes)}")


# ----------------------------------------------------------------------------------------- AWS session


def is_local(instance_type: str) -> bool:
    return instance_type in LOCAL_INSTANCE_TYPES


def make_session(region: str, local: bool, bucket: Optional[str]):
    """A SageMaker session for the region; local mode mounts local code and data instead of uploading."""
    import boto3
    import sagemaker

    boto_session = boto3.Session(region_name=region)
    if local:
        session = sagemaker.LocalSession(boto_session=boto_session, default_bucket=bucket)
        session.config = {"local": {"local_code": True}}
        return session
    return sagemaker.Session(boto_session, default_bucket=bucket)


def plan_bucket(session, args: argparse.Namespace) -> str:
    """The bucket a launch writes to; a dry run names the session's default bucket without creating it."""
    if args.bucket:
        return args.bucket
    if not args.dry_run:
        return session.default_bucket()
    named = getattr(session, "_default_bucket_name_override", None)  # from default_bucket= or the SDK config
    if named:
        return named
    try:
        account = session.boto_session.client("sts").get_caller_identity()["Account"]
    except Exception as exc:  # noqa: BLE001 - botocore's credential and endpoint errors alike
        if not _aws_error(exc):
            raise
        raise LaunchError(f"cannot name the default bucket ({exc}); pass --bucket") from None
    return f"sagemaker-{session.boto_region_name}-{account}"


def check_name(flag: str, base: str) -> None:
    """A job or endpoint name base SageMaker accepts once the SDK's 24-character timestamp is appended."""
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", base) or len(base) > 39:
        raise LaunchError(f"{flag} {base!r}: letters, digits and hyphens, at most 39 characters "
                          "(a timestamp is appended)")


def launch_name(base: str) -> str:
    """A unique job/endpoint name from a base (timestamped, as the SDK names jobs)."""
    from sagemaker.utils import name_from_base

    return name_from_base(base)


def s3_join(first: str, *parts: str) -> str:
    """s3://first/part/...: first is a bucket name or an s3:// URI; empty parts are left out."""
    first = first[len("s3://"):] if first.startswith("s3://") else first
    return "s3://" + "/".join(p.strip("/") for p in (first, *parts) if p and p.strip("/"))


def split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


# -------------------------------------------------------------------------------------------- training


def source_bundle(dest: Path) -> Path:
    """The script-mode source_dir: train.py at its root, the packages beside it, requirements.txt."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "sagemaker" / "train.py", dest / "train.py")
    for package in ("albert_ner", "crf", "pretrained"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "requirements.txt").write_text("\n".join(BYOS_REQUIREMENTS) + "\n", encoding="utf-8")
    return dest


def check_framework_version(region: str, version: str, py_version: str, instance_type: str) -> str:
    """The training image URI for this TF version, or a clear error if the installed SDK has none."""
    from sagemaker import image_uris

    probe = {"local": "ml.m5.xlarge", "local_gpu": "ml.g4dn.xlarge"}.get(instance_type, instance_type)
    try:
        return image_uris.retrieve("tensorflow", region=region, version=version, py_version=py_version,
                                   instance_type=probe, image_scope="training")
    except ValueError as exc:
        raise LaunchError(f"TensorFlow {version} ({py_version}) has no SageMaker training image in this "
                          f"SDK: {exc}") from None


def serving_image(region: str, version: str, instance_type: str) -> str:
    """The TensorFlow Serving image URI for this version, region and instance type (CPU or GPU)."""
    from sagemaker import image_uris

    try:
        return image_uris.retrieve("tensorflow", region=region, version=version, instance_type=instance_type,
                                   image_scope="inference")
    except ValueError as exc:
        raise LaunchError(f"TensorFlow Serving {version} has no SageMaker image for {instance_type} in "
                          f"{region} in this SDK: {exc}") from None


def channel_uris(channels: Dict[str, Optional[str]], job_prefix: str, local: bool) -> Dict[str, str]:
    """Where each channel's data will be read: s3:// and file:// URIs as given; a local path becomes this
    launch's own s3://.../input/<channel> prefix (or a file:// URI in local mode)."""
    out = {}
    for name, path in channels.items():
        if not path:
            continue
        if path.startswith(("s3://", "file://")):
            out[name] = path
            continue
        local_path = Path(path)
        if local:
            out[name] = local_path.resolve().as_uri()
        else:  # a single file keeps its name under the channel prefix
            out[name] = f"{job_prefix}/input/{name}" + (f"/{local_path.name}" if local_path.is_file() else "")
    return out


def upload_channels(session, channels: Dict[str, Optional[str]], uris: Dict[str, str]) -> Dict[str, str]:
    """Upload the local channel paths to their planned s3:// prefixes; returns every channel's URI."""
    out = {}
    for name, uri in uris.items():
        source = channels[name]
        if uri == source or uri.startswith("file://"):
            out[name] = uri
            continue
        bucket, key = split_s3(uri)
        prefix = key.rsplit("/", 1)[0] if Path(source).is_file() else key
        out[name] = session.upload_data(str(source), bucket=bucket, key_prefix=prefix)
    return out


def job_hyperparameters(args: argparse.Namespace) -> Dict[str, str]:
    """The job's hyperparameters: --hp as given, and for --spot checkpoint_every SPOT_CHECKPOINT_EVERY unless set."""
    hp = parse_hyperparameters(args.hp)
    if args.spot and "checkpoint_every" not in hp:
        hp["checkpoint_every"] = str(SPOT_CHECKPOINT_EVERY)
    return hp


def job_task(args: argparse.Namespace) -> str:
    """The job's task: --hp task (train by default)."""
    return parse_hyperparameters(args.hp).get("task", "train")


def metric_definitions(args: argparse.Namespace) -> List[Dict[str, str]]:
    """The regexes for the lines this job's task prints."""
    return METRIC_DEFINITIONS_BY_TASK[job_task(args)]


def spot_max_wait(args: argparse.Namespace) -> Optional[int]:
    """Seconds a spot job may wait for capacity plus run (None without --spot)."""
    return (args.max_wait or args.max_run * 2) if args.spot else None


def build_estimator(args: argparse.Namespace, session, source_dir: Optional[Path] = None,
                    output_path: Optional[str] = None, code_location: Optional[str] = None):
    """The Estimator for this mode, fully configured (nothing is started)."""
    common = dict(role=args.role, instance_count=args.instance_count, instance_type=args.instance_type,
                  hyperparameters=job_hyperparameters(args), metric_definitions=metric_definitions(args),
                  base_job_name=args.job_name, max_run=args.max_run, output_path=output_path or args.output_path,
                  volume_size=args.volume_size, sagemaker_session=session)
    if not is_local(args.instance_type):
        common.update(checkpoint_s3_uri=args.checkpoint_s3_uri, code_location=code_location)
    if args.spot:
        common.update(use_spot_instances=True, max_wait=spot_max_wait(args))
    if args.mode == "byos":
        from sagemaker.tensorflow import TensorFlow

        check_framework_version(session.boto_region_name, args.framework_version, args.py_version,
                                args.instance_type)
        return TensorFlow(entry_point="train.py", source_dir=str(source_dir), framework_version=args.framework_version,
                          py_version=args.py_version, distribution=byos_distribution(args.instance_count), **common)
    from sagemaker.estimator import Estimator

    return Estimator(image_uri=args.image_uri, **common)


def byos_distribution(instance_count: int) -> Optional[Dict[str, Any]]:
    """The TensorFlow estimator's distribution for several instances: MultiWorkerMirroredStrategy (the container
    sets TF_CONFIG on every host; albert_ner/train/distribute.py reads it). One instance: none (its GPUs are
    used through MirroredStrategy without any setting)."""
    return {"multi_worker_mirrored_strategy": {"enabled": True}} if instance_count > 1 else None


def check_training_args(args: argparse.Namespace) -> None:
    """Everything about a training launch that can be checked without AWS."""
    local = is_local(args.instance_type)
    if not args.train:
        raise LaunchError("--train is required")
    if args.mode == "byoc" and not args.image_uri:
        raise LaunchError("byoc needs --image-uri (see sagemaker/build_and_push.sh)")
    if local and args.spot:
        raise LaunchError("--spot is not available in local mode")
    if args.spot and not args.checkpoint_s3_uri:
        raise LaunchError("--spot needs --checkpoint-s3-uri, so that an interrupted job can resume")
    if args.spot and args.max_wait is not None and args.max_wait < args.max_run:
        raise LaunchError(f"--max-wait {args.max_wait} is shorter than --max-run {args.max_run}")
    if args.max_wait is not None and not args.spot:
        raise LaunchError("--max-wait applies to --spot jobs only")
    for name in CHANNELS:
        path = getattr(args, name)
        if path and not path.startswith(("s3://", "file://")) and not Path(path).exists():
            raise LaunchError(f"--{name} {path}: no such file or directory")
    if args.pretrained_job:
        if args.pretrained:
            raise LaunchError("--pretrained and --pretrained-job both give the pretrained channel; use one")
        if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", args.pretrained_job):
            raise LaunchError(f"--pretrained-job {args.pretrained_job!r}: not a training job name")
    check_name("--job-name", args.job_name)
    check_uri("--checkpoint-s3-uri", args.checkpoint_s3_uri)
    check_uri("--output-path", args.output_path, ("s3://", "file://") if local else ("s3://",))
    hp = parse_hyperparameters(args.hp)
    check_hyperparameters(hp)
    unused = [f"--{name}" for name in ("validation", "test") if getattr(args, name)]
    if hp.get("task") == "pretrain" and unused:
        raise LaunchError(f"--hp task=pretrain reads no {' or '.join(unused)} channel (its held-out text is "
                          "heldout_fraction of the --train documents)")


def cmd_train(args: argparse.Namespace, session) -> Dict[str, Any]:
    """byos / byoc: the plan of a training job, started unless --dry-run (check_training_args ran first)."""
    local = is_local(args.instance_type)
    session = session or make_session(resolve_region(args.region), local, args.bucket)
    region = session.boto_region_name
    check_role(args.role, region)
    job_name = launch_name(args.job_name)
    channels = {name: getattr(args, name) for name in CHANNELS}
    pretrained_job = None
    if args.pretrained_job:  # the incremental flow: an earlier job's model.tar.gz is this job's pretrained channel
        channels["pretrained"] = completed_job_artifact(session, args.pretrained_job, "--pretrained-job")
        pretrained_job = {"name": args.pretrained_job, "model_artifacts": channels["pretrained"]}
    needs_bucket = not local and (any(p and not p.startswith(("s3://", "file://")) for p in channels.values())
                                  or not args.output_path or args.mode == "byos")
    bucket = plan_bucket(session, args) if needs_bucket else None
    launch_prefix = s3_join(bucket, args.s3_prefix) if bucket else ""  # this launch: launch_prefix/job_name/
    uris = channel_uris(channels, s3_join(launch_prefix, job_name) if bucket else "", local)
    if local:
        # local mode copies model.tar.gz and output.tar.gz into this folder itself: one folder per job
        output_path = args.output_path or Path("runs", "sagemaker-local", job_name).resolve().as_uri()
    else:
        output_path = args.output_path or launch_prefix  # the SDK adds <job name>/output/model.tar.gz
    with tempfile.TemporaryDirectory(prefix="albert-ner-src-") as tmp:
        source_dir = source_bundle(Path(tmp) / "src") if args.mode == "byos" else None
        estimator = build_estimator(args, session, source_dir, output_path,
                                    launch_prefix if args.mode == "byos" and not local else None)
        plan = {"command": args.mode, "job_name": job_name, "region": region, "role": args.role,
                "image_uri": estimator.training_image_uri(),
                "framework_version": args.framework_version if args.mode == "byos" else None,
                "instance_type": args.instance_type, "instance_count": args.instance_count,
                # several instances train one model (MultiWorkerMirroredStrategy): byos through the estimator's
                # distribution, byoc with a TF_CONFIG the container derives from SM_HOSTS
                "distribution": (byos_distribution(args.instance_count) if args.mode == "byos" else
                                 {"tf_config_from": "SM_HOSTS"} if args.instance_count > 1 else None),
                "use_spot_instances": bool(args.spot), "max_run": args.max_run, "max_wait": spot_max_wait(args),
                "volume_size": args.volume_size,
                "checkpoint_s3_uri": None if local else args.checkpoint_s3_uri,
                "output_path": output_path,
                "hyperparameters": job_hyperparameters(args),
                "channels": {name: {"source": channels[name], "uri": uri} for name, uri in uris.items()},
                "pretrained_job": pretrained_job,
                "metric_definitions": metric_definitions(args), "dry_run": bool(args.dry_run)}
        if args.dry_run:
            return plan
        inputs = upload_channels(session, channels, uris)
        estimator.fit(inputs=inputs, job_name=job_name, wait=args.wait, logs="All" if args.wait else "None")
        plan["training_job"] = estimator.latest_training_job.name
    return plan


# ------------------------------------------------------------------------------- serving: model archives


def _member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def servable_root(names: Sequence[str]) -> Optional[str]:
    """The folder inside a model archive that TensorFlow Serving can load with the albert-ner handler:
    "" for N/saved_model.pb and code/inference.py at the top (`albert-ner export --archive`, and a training
    job's model.tar.gz), "export/" for the model.tar.gz of a job trained by an older albert-ner; None when
    there is neither."""
    present = set(names)
    for root in ("", "export/"):
        version = re.compile(re.escape(root) + r"[0-9]+/saved_model\.pb")
        if f"{root}code/inference.py" in present and any(version.fullmatch(n) for n in present):
            return root
    return None


def rebase_archive(src: Path, dest: Path, root: str) -> int:
    """Write dest.tar.gz with the members under root/ moved to the top; returns how many were skipped
    (links, devices, names leaving the folder)."""
    skipped = 0
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz") as tout:
        for member in tin:
            name = _member_name(member)
            if not name.startswith(root) or name == root.rstrip("/"):
                continue
            rel = name[len(root):]
            if rel.startswith("/") or ".." in rel.split("/") or not (member.isfile() or member.isdir()):
                skipped += 1
                continue
            copy = tarfile.TarInfo(rel)
            copy.size, copy.mode, copy.mtime, copy.type = member.size, member.mode, member.mtime, member.type
            tout.addfile(copy, tin.extractfile(member) if member.isfile() else None)
    return skipped


def fetch_archive(session, source: str, dest: Path) -> Path:
    """A model archive as a local file: downloaded from s3://, or the given path."""
    if source.startswith("s3://"):
        bucket, key = split_s3(source)
        session.boto_session.client("s3").download_file(bucket, key, str(dest))
        return dest
    path = Path(source)
    if not path.is_file():
        raise LaunchError(f"--model-data {source}: no such file")
    return path


def completed_job_artifact(session, job_name: str, flag: str) -> str:
    """The s3:// URI of a Completed training job's model.tar.gz (ModelArtifacts.S3ModelArtifacts)."""
    desc = session.sagemaker_client.describe_training_job(TrainingJobName=job_name)
    status = desc.get("TrainingJobStatus")
    if status != "Completed":
        raise LaunchError(f"{flag} {job_name}: the training job is {status}, not Completed: it has no model yet")
    artifact = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not artifact:
        raise LaunchError(f"{flag} {job_name}: the training job names no model artifact (ModelArtifacts)")
    return artifact


def model_source(args: argparse.Namespace, session) -> str:
    """The model.tar.gz to serve: a finished training job's artifact or --model-data."""
    if not args.training_job:
        return args.model_data
    return completed_job_artifact(session, args.training_job, "--training-job")


def servable_model(args: argparse.Namespace, session, name: str, launch_prefix: str,
                   tmp: Path) -> Dict[str, Any]:
    """Where the servable archive is (or will be): the source itself, or this launch's repacked copy.

    Reads the archive (one with the export under export/, from an older job, is rewritten with its SavedModel
    and handler at the top); uploads only outside a dry run."""
    source = model_source(args, session)
    archive = fetch_archive(session, source, tmp / "source.tar.gz")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            root = servable_root([_member_name(m) for m in tar])
    except (tarfile.TarError, OSError) as exc:
        raise LaunchError(f"{source}: not a readable .tar.gz ({exc})") from None
    if root is None:
        raise LaunchError(f"{source}: no servable model inside (N/saved_model.pb with code/inference.py, at the "
                          "top or, from older jobs, under export/): train with export=true, or run `albert-ner "
                          "export MODEL OUT --archive` (MODEL: the archive's albert-ner-model/) and pass OUT.tar.gz")
    info: Dict[str, Any] = {"source": source, "repacked_from": root or None}
    if root == "" and source.startswith("s3://"):
        info["model_data"] = source
        return info
    info["model_data"] = s3_join(launch_prefix, name, "model", "model.tar.gz")
    if args.dry_run:
        return info
    upload = archive
    if root:
        upload = tmp / "model.tar.gz"
        skipped = rebase_archive(archive, upload, root)
        if skipped:
            log.warning("%s: %d member(s) under %s skipped (links or names leaving the folder)", source, skipped,
                        root)
    bucket, key = split_s3(info["model_data"])
    session.boto_session.client("s3").upload_file(str(upload), bucket, key)
    return info


def serving_model(args: argparse.Namespace, session, model_data: str, name: str):
    """The TensorFlow Serving model for an archive (created in SageMaker by deploy/transformer)."""
    from sagemaker.tensorflow import TensorFlowModel

    return TensorFlowModel(model_data=model_data, role=args.role, framework_version=args.framework_version,
                           sagemaker_session=session, name=name)


class Serving(NamedTuple):
    """What deploy and transform share: the plan so far, the session, this launch's name and S3 prefix."""

    plan: Dict[str, Any]
    session: Any
    name: str
    launch_prefix: str


def check_serving_args(args: argparse.Namespace) -> None:
    """Everything about a deploy or transform that can be checked without AWS."""
    if not args.instance_type.startswith("ml."):
        raise LaunchError(f"--instance-type {args.instance_type}: an ml.* instance type, e.g. "
                          f"{SERVING_INSTANCE_TYPE}")
    if args.model_data and not args.model_data.startswith("s3://") and not Path(args.model_data).is_file():
        raise LaunchError(f"--model-data {args.model_data}: no such file (a local model.tar.gz or an s3:// URI)")
    check_name("--endpoint-name" if args.command == "deploy" else "--job-name",
               args.endpoint_name if args.command == "deploy" else args.job_name)
    if args.command == "transform":
        transform_settings(args)
        if not args.input.startswith("s3://") and not Path(args.input).exists():
            raise LaunchError(f"--input {args.input}: no such file or directory (or give an s3:// prefix)")


def serving_plan(args: argparse.Namespace, session, base: str) -> Serving:
    """Name the launch and pick the serving image (nothing is created; check_serving_args ran first)."""
    session = session or make_session(resolve_region(args.region), False, args.bucket)
    region = session.boto_region_name
    check_role(args.role, region)
    name = launch_name(base)
    plan = {"command": args.command, "region": region, "role": args.role,
            "image_uri": serving_image(region, args.framework_version, args.instance_type),
            "framework_version": args.framework_version, "instance_type": args.instance_type,
            "instance_count": args.instance_count, "dry_run": bool(args.dry_run)}
    return Serving(plan, session, name, s3_join(plan_bucket(session, args), args.s3_prefix))


def cmd_deploy(args: argparse.Namespace, session) -> Dict[str, Any]:
    """A real-time endpoint serving the model; created unless --dry-run."""
    serving = serving_plan(args, session, args.endpoint_name)
    plan = serving.plan
    plan["endpoint_name"] = serving.name
    with tempfile.TemporaryDirectory(prefix="albert-ner-model-") as tmp:
        plan["model"] = servable_model(args, serving.session, serving.name, serving.launch_prefix, Path(tmp))
    if not args.dry_run:
        model = serving_model(args, serving.session, plan["model"]["model_data"], serving.name)
        model.deploy(initial_instance_count=args.instance_count, instance_type=args.instance_type,
                     endpoint_name=serving.name, wait=args.wait)
    return plan


def transform_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """Content type, split, strategy and accept of a transform job, checked against each other."""
    content_type, split = INPUT_FORMATS[args.input_format]
    strategy = args.strategy or ("MultiRecord" if split else "SingleRecord")
    if strategy == "MultiRecord" and not split:
        raise LaunchError("--strategy MultiRecord needs line-split input (--input-format text or jsonl); "
                          "each json file is one request")
    if not 1 <= args.max_payload <= 100:
        raise LaunchError(f"--max-payload {args.max_payload}: MB per request, 1 to 100")
    check_uri("--output", args.output)
    return {"content_type": content_type, "split_type": split, "strategy": strategy,
            "assemble_with": "Line" if split else None,
            "accept": args.accept or ("application/jsonlines" if split else "application/json"),
            "max_payload": args.max_payload, "max_concurrent_transforms": args.max_concurrent_transforms}


def cmd_transform(args: argparse.Namespace, session) -> Dict[str, Any]:
    """A batch transform job tagging every file under --input; started unless --dry-run."""
    settings = transform_settings(args)
    serving = serving_plan(args, session, args.job_name)
    plan, name = serving.plan, serving.name
    job_prefix = s3_join(serving.launch_prefix, name)
    plan.update(job_name=name, input={"source": args.input, "uri": args.input if args.input.startswith("s3://")
                                      else s3_join(job_prefix, "input")},
                output_path=args.output or s3_join(job_prefix, "output"), **settings)
    with tempfile.TemporaryDirectory(prefix="albert-ner-model-") as tmp:
        plan["model"] = servable_model(args, serving.session, name, serving.launch_prefix, Path(tmp))
    if args.dry_run:
        return plan
    data = plan["input"]["uri"]
    if data != args.input:
        bucket, key = split_s3(data)
        data = serving.session.upload_data(args.input, bucket=bucket, key_prefix=key)
        if Path(args.input).is_file():
            data = data.rsplit("/", 1)[0]  # the prefix, as for a folder
    model = serving_model(args, serving.session, plan["model"]["model_data"], name)
    transformer = model.transformer(instance_count=args.instance_count, instance_type=args.instance_type,
                                    strategy=settings["strategy"], assemble_with=settings["assemble_with"],
                                    output_path=plan["output_path"], accept=settings["accept"],
                                    max_payload=args.max_payload,
                                    max_concurrent_transforms=args.max_concurrent_transforms)
    transformer.transform(data=data, data_type="S3Prefix", content_type=settings["content_type"],
                          split_type=settings["split_type"], job_name=name, wait=args.wait, logs=args.wait)
    return plan


# ------------------------------------------------------------------------------------------ command line


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--role", required=True, help="SageMaker execution role: an IAM role ARN of the region's "
                                                      "partition (arn:aws-cn:... in China regions)")
    common.add_argument("--region", help="AWS region (default: $AWS_DEFAULT_REGION, $AWS_REGION, the AWS profile)")
    common.add_argument("--bucket", help="S3 bucket for this launch's files (default: the SageMaker session's "
                                         "default bucket, sagemaker-REGION-ACCOUNT)")
    common.add_argument("--s3-prefix", default="albert-ner", help="key prefix; each launch writes under "
                                                                  "PREFIX/<job or endpoint name>/")
    common.add_argument("--wait", action="store_true", help="wait for the job (or endpoint) to finish")
    common.add_argument("--dry-run", action="store_true", help="print the plan as JSON and create nothing")

    training = argparse.ArgumentParser(add_help=False)
    for name in CHANNELS:
        training.add_argument(f"--{name}", help=f"{name} channel: a local file/directory (uploaded; mounted in "
                                                f"local mode) or an s3:// URI")
    training.add_argument("--pretrained-job", metavar="JOB_NAME",
                          help="pretrained channel: this Completed training job's model.tar.gz (a pretraining job's, "
                               "to fine-tune or pretrain on; or a fine-tuning job's, to train on)")
    training.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                          help="hyperparameter for `albert-ner train`, e.g. epochs=3; task=pretrain runs `albert-ner "
                               "pretrain` instead, with its settings, e.g. max_steps=20000, and the text in --train "
                               "(repeatable; checked before the job is created)")
    training.add_argument("--instance-type", default="ml.g4dn.xlarge",
                          help="e.g. ml.g4dn.xlarge (T4, cheapest GPU), ml.g5.xlarge (A10G), ml.p3.2xlarge "
                               "(V100); local or local_gpu for local mode")
    training.add_argument("--instance-count", type=positive_int, default=1,
                          help="instances training one model together (MultiWorkerMirroredStrategy; --hp batch_size "
                               "is per GPU, a step trains batch_size x GPUs x instances rows)")
    training.add_argument("--spot", action="store_true", help="managed spot training (resumes from "
                                                              "--checkpoint-s3-uri after an interruption)")
    training.add_argument("--checkpoint-s3-uri", help="where /opt/ml/checkpoints is synced (needed with --spot)")
    training.add_argument("--max-run", type=positive_int, default=24 * 3600,
                          help="seconds before SageMaker stops the job")
    training.add_argument("--max-wait", type=positive_int,
                          help="spot: seconds to wait for capacity plus run (default 2x max-run)")
    training.add_argument("--volume-size", type=positive_int, default=30, help="GB of instance storage")
    training.add_argument("--output-path", help="s3:// URI for model.tar.gz (default: PREFIX in the bucket; "
                                                "file://.../runs/sagemaker-local/JOB_NAME in local mode)")
    training.add_argument("--job-name", default="albert-ner", help="job name base (a timestamp is appended)")
    training.add_argument("--framework-version", default=FRAMEWORK_VERSION)
    training.add_argument("--py-version", default=PY_VERSION)
    training.add_argument("--image-uri", help="byoc: the ECR image")

    serving = argparse.ArgumentParser(add_help=False)
    source = serving.add_mutually_exclusive_group(required=True)
    source.add_argument("--training-job", help="serve this completed training job's model")
    source.add_argument("--model-data", help="a model.tar.gz: s3:// URI or local file (`albert-ner export MODEL "
                                             "OUT --archive` writes OUT.tar.gz)")
    serving.add_argument("--instance-type", default=SERVING_INSTANCE_TYPE, help="ml.* instance type")
    serving.add_argument("--instance-count", type=positive_int, default=1)
    serving.add_argument("--framework-version", default=SERVING_VERSION, help="TensorFlow Serving version")

    sub = ap.add_subparsers(dest="command", required=True)
    for mode, text in (("byos", "train in the SageMaker TensorFlow container (script mode)"),
                       ("byoc", "train in our own container (sagemaker/build_and_push.sh)")):
        sub.add_parser(mode, parents=[common, training], help=text).set_defaults(
            mode=mode, check=check_training_args, func=cmd_train)
    d = sub.add_parser("deploy", parents=[common, serving], help="create a real-time endpoint")
    d.add_argument("--endpoint-name", default="albert-ner", help="name base (a timestamp is appended)")
    d.set_defaults(check=check_serving_args, func=cmd_deploy)
    t = sub.add_parser("transform", parents=[common, serving], help="batch-tag text files in S3")
    t.add_argument("--input", required=True, help="s3:// prefix of the input files, or a local file/folder "
                                                  "(uploaded)")
    t.add_argument("--output", help="s3:// prefix for the results (default: PREFIX/<job name>/output)")
    t.add_argument("--input-format", choices=sorted(INPUT_FORMATS), default="text",
                   help="text: one document per line (text/plain); jsonl: one JSON record per line "
                        "(application/jsonlines); json: each file one JSON request (application/json)")
    t.add_argument("--accept", choices=ACCEPT_TYPES,
                   help="result format (default: application/jsonlines for line input, else application/json)")
    t.add_argument("--strategy", choices=("MultiRecord", "SingleRecord"),
                   help="MultiRecord (default for line input) sends batches of lines up to --max-payload")
    t.add_argument("--max-payload", type=int, default=6, help="MB per request (1-100)")
    t.add_argument("--max-concurrent-transforms", type=positive_int, help="parallel requests per instance")
    t.add_argument("--job-name", default="albert-ner-tag", help="job name base (a timestamp is appended)")
    t.set_defaults(check=check_serving_args, func=cmd_transform)
    return ap


def _sdk_output_to_stderr(stdout) -> None:
    """The SDK logs its configuration notices to stdout; stdout is kept for the plan alone."""
    try:
        import sagemaker  # noqa: F401 - first imported here, under redirect_stdout, its handler writes to stderr
    except ImportError:
        raise LaunchError('the SageMaker Python SDK is not installed: pip install -e ".[sagemaker]"') from None
    for name in ("sagemaker", "sagemaker.config"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (stdout, sys.__stdout__):
                handler.setStream(sys.stderr)


def _aws_error(exc: BaseException) -> bool:
    """botocore's errors: credentials, permissions, missing resources, service-side validation."""
    errors = sys.modules.get("botocore.exceptions")
    return errors is not None and isinstance(exc, (errors.BotoCoreError, errors.ClientError))


def main(argv: Optional[List[str]] = None, session=None) -> int:
    """Run one command; prints its plan as JSON on stdout. `session` replaces the SageMaker session (tests)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # written for SDK v2 (setup.cfg pins <3)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials in ..." on every client
    stdout = sys.stdout
    command: Callable[[argparse.Namespace, Any], Dict[str, Any]] = args.func
    try:
        args.check(args)  # before the SDK is imported or AWS is asked anything
        with contextlib.redirect_stdout(sys.stderr):
            _sdk_output_to_stderr(stdout)
            plan = command(args, session)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - AWS's answers are the user's to act on; anything else is a bug
        if not _aws_error(exc):
            raise
        print(f"error: AWS: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(plan, indent=2, ensure_ascii=False), file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
