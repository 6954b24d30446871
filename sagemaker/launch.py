"""Launch albert-ner training on Amazon SageMaker: script mode (BYOS) or our own container (BYOC).

    python sagemaker/launch.py byos --role ARN --train data/msra/ --vocab data/vocab.txt \\
        --instance-type ml.g4dn.xlarge --spot --hp epochs=3 --hp init=albert_base_zh
    python sagemaker/launch.py byoc --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/albert-ner:latest ...

Both run the same entry point (sagemaker/train.py -> albert_ner.sagemaker_env). BYOS uses the
SageMaker TensorFlow training container (2.14, py310: the newest Keras-2 one) with the package
shipped as source plus requirements.txt; BYOC uses the image built by sagemaker/build_and_push.sh.
Local paths given for channels are uploaded to S3 first; s3:// URIs are used as they are.
`--instance-type local` / `local_gpu` runs in local mode (needs Docker and `sagemaker[local]`).
Needs the SageMaker Python SDK v2 (`pip install -e ".[sagemaker]"`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK_VERSION, PY_VERSION = "2.14", "py310"
# The packages the TensorFlow container lacks (it has TensorFlow 2.14 and numpy).
BYOS_REQUIREMENTS = ("tensorflow-addons==0.23.0", "numpy<2", "sentencepiece", "jieba>=0.42", "seqeval>=1.2.2", "tqdm")
# What SageMaker reads from the job's log into CloudWatch metrics (the lines albert-ner prints).
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"train_loss = ([0-9.eE+-]+)"},
    {"Name": "train:samples_per_sec", "Regex": r"samples_per_sec = ([0-9.]+)"},
    {"Name": "dev:f1", "Regex": r"dev_f1 = ([0-9.]+)"},
    {"Name": "eval:precision", "Regex": r"eval_precision = ([0-9.]+)"},
    {"Name": "eval:recall", "Regex": r"eval_recall = ([0-9.]+)"},
    {"Name": "eval:f1", "Regex": r"eval_f1 = ([0-9.]+)"},
]
CHANNELS = ("train", "validation", "test", "vocab", "pretrained")


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

    probe = "ml.m5.xlarge" if instance_type.startswith("local") and instance_type != "local_gpu" else (
        "ml.g4dn.xlarge" if instance_type == "local_gpu" else instance_type)
    try:
        return image_uris.retrieve("tensorflow", region=region, version=version, py_version=py_version,
                                   instance_type=probe, image_scope="training")
    except ValueError as exc:
        raise SystemExit(f"error: TensorFlow {version} ({py_version}) has no SageMaker training image in this "
                         f"SDK: {exc}") from None


def parse_hyperparameters(items: Sequence[str]) -> Dict[str, str]:
    """KEY=VALUE pairs (keys as `albert-ner train` flags, with - or _)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --hp expects KEY=VALUE, got {item!r}")
        out[key.strip().lstrip("-").replace("-", "_")] = value
    return out


def upload_channels(session, channels: Dict[str, Optional[str]], prefix: str) -> Dict[str, str]:
    """S3 URIs for every channel: local files/directories uploaded under s3://bucket/prefix/<channel>."""
    out = {}
    for name, path in channels.items():
        if not path:
            continue
        if path.startswith("s3://") or path.startswith("file://"):
            out[name] = path
        else:
            local = Path(path)
            if not local.exists():
                raise SystemExit(f"error: --{name} {path}: no such file or directory")
            out[name] = session.upload_data(str(local), key_prefix=f"{prefix}/{name}")
    return out


def build_estimator(args: argparse.Namespace, session, source_dir: Optional[Path] = None):
    """The Estimator for this mode, fully configured (nothing is started)."""
    hyperparameters = parse_hyperparameters(args.hp)
    common = dict(role=args.role, instance_count=args.instance_count, instance_type=args.instance_type,
                  hyperparameters=hyperparameters, metric_definitions=METRIC_DEFINITIONS,
                  base_job_name=args.job_name, max_run=args.max_run, output_path=args.output_path,
                  checkpoint_s3_uri=args.checkpoint_s3_uri, volume_size=args.volume_size)
    if args.instance_type.startswith("local"):
        common.pop("checkpoint_s3_uri")  # not supported in local mode
    else:
        common["sagemaker_session"] = session
    if args.spot:
        common.update(use_spot_instances=True, max_wait=args.max_wait or args.max_run * 2)
        if not args.checkpoint_s3_uri:
            raise SystemExit("error: --spot needs --checkpoint-s3-uri, so that an interrupted job can resume")
    if args.mode == "byos":
        from sagemaker.tensorflow import TensorFlow

        check_framework_version(session.boto_region_name, args.framework_version, args.py_version,
                                args.instance_type)
        return TensorFlow(entry_point="train.py", source_dir=str(source_dir), framework_version=args.framework_version,
                          py_version=args.py_version, **common)
    from sagemaker.estimator import Estimator

    if not args.image_uri:
        raise SystemExit("error: byoc needs --image-uri (see sagemaker/build_and_push.sh)")
    return Estimator(image_uri=args.image_uri, **common)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("byos", "byoc"), help="byos: TensorFlow script mode; byoc: our container")
    ap.add_argument("--role", required=True, help="SageMaker execution role ARN")
    for name in CHANNELS:
        ap.add_argument(f"--{name}", help=f"{name} channel: a local file/directory (uploaded) or an s3:// URI")
    ap.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                    help="hyperparameter for `albert-ner train`, e.g. epochs=3 (repeatable)")
    ap.add_argument("--instance-type", default="ml.g4dn.xlarge",
                    help="e.g. ml.g4dn.xlarge (T4, cheapest GPU), ml.g5.xlarge (A10G), ml.p3.2xlarge (V100); "
                         "local or local_gpu for local mode")
    ap.add_argument("--instance-count", type=int, default=1)
    ap.add_argument("--spot", action="store_true", help="managed spot training (up to ~70%% cheaper; resumes "
                                                        "from --checkpoint-s3-uri after an interruption)")
    ap.add_argument("--checkpoint-s3-uri", help="where /opt/ml/checkpoints is synced (needed with --spot)")
    ap.add_argument("--max-run", type=int, default=24 * 3600, help="seconds before SageMaker stops the job")
    ap.add_argument("--max-wait", type=int, help="spot: seconds to wait for capacity plus run (default 2x max-run)")
    ap.add_argument("--volume-size", type=int, default=30, help="GB of instance storage")
    ap.add_argument("--output-path", help="s3:// URI for model.tar.gz (default: the session bucket)")
    ap.add_argument("--job-name", default="albert-ner", help="job name prefix")
    ap.add_argument("--framework-version", default=FRAMEWORK_VERSION)
    ap.add_argument("--py-version", default=PY_VERSION)
    ap.add_argument("--image-uri", help="byoc: the ECR image")
    ap.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    ap.add_argument("--s3-prefix", default="albert-ner", help="key prefix for uploaded channels")
    ap.add_argument("--wait", action="store_true", help="stream the job's logs until it ends")
    ap.add_argument("--dry-run", action="store_true", help="print the job configuration and start nothing")
    return ap


def main(argv: Optional[List[str]] = None, session=None) -> int:
    args = build_parser().parse_args(argv)
    import sagemaker

    if session is None:
        import boto3

        session = sagemaker.Session(boto3.Session(region_name=args.region)) if not args.instance_type.startswith(
            "local") else sagemaker.LocalSession()
    with tempfile.TemporaryDirectory(prefix="albert-ner-src-") as tmp:
        source_dir = source_bundle(Path(tmp) / "src") if args.mode == "byos" else None
        estimator = build_estimator(args, session, source_dir)
        channels = {name: getattr(args, name) for name in CHANNELS}
        if not channels["train"]:
            raise SystemExit("error: --train is required")
        if args.dry_run:
            print(json.dumps({"mode": args.mode, "image_uri": estimator.training_image_uri(),
                              "hyperparameters": estimator.hyperparameters(), "channels": channels,
                              "metric_definitions": METRIC_DEFINITIONS}, indent=2, default=str))
            return 0
        inputs = upload_channels(session, channels, args.s3_prefix)
        estimator.fit(inputs=inputs, wait=args.wait, logs="All" if args.wait else "None")
        print(f"training job: {estimator.latest_training_job.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
