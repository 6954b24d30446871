"""Training launches against the real SageMaker Python SDK (v2) and a local AWS double (moto, 127.0.0.1).

Asserts the CreateTrainingJob request the SDK sends (image, hyperparameters, channels, metric
definitions, checkpoint and spot settings, output path), what was uploaded to S3 and where, and what is
refused before anything is created (hyperparameters, region, role partition, spot settings).
"""
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.sagemaker_launch.conftest import BUCKET, OFFLINE, ROLE, ROOT, channel_data, load_launcher, s3_keys

pytest.importorskip("sagemaker", reason="the [sagemaker] extra is not installed")
pytest.importorskip("moto.server", reason="the [sagemaker] extra is not installed")


def launch(argv, sm, capsys):
    """(exit status, printed plan or None, stderr) of one launcher run."""
    code = load_launcher().main(argv, session=sm)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_byos_request_and_uploads(session, tmp_path, capsys):
    sm, requests = session
    data = channel_data(tmp_path)
    code, plan, err = launch(["byos", "--role", ROLE, "--train", str(data / "msra"), "--vocab", str(data / "vocab.txt"),
                              "--test", "s3://public-bucket/msra/test.txt", "--hp", "epochs=3", "--hp",
                              "init=albert_base_zh", "--hp", "jit=true", "--spot", "--checkpoint-s3-uri",
                              f"s3://{BUCKET}/checkpoints/run1", "--instance-type", "ml.g4dn.xlarge",
                              "--output-path", f"s3://{BUCKET}/models"], sm, capsys)
    assert code == 0 and len(requests) == 1, err
    req = requests[0]
    job = req["TrainingJobName"]
    assert plan["job_name"] == plan["training_job"] == job and job.startswith("albert-ner-")
    image = req["AlgorithmSpecification"]["TrainingImage"]
    assert image.endswith("/tensorflow-training:2.14-gpu-py310") and image.startswith("763104351884.dkr.ecr.us-east-1")
    hp = {k: v.strip('"') for k, v in req["HyperParameters"].items()}
    assert hp["epochs"] == "3" and hp["init"] == "albert_base_zh" and hp["jit"] == "true"
    assert hp["sagemaker_program"] == "train.py"
    assert hp["sagemaker_submit_directory"] == f"s3://{BUCKET}/albert-ner/{job}/source/sourcedir.tar.gz"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/albert-ner/{job}/input/train"
    assert channels["vocab"] == f"s3://{BUCKET}/albert-ner/{job}/input/vocab/vocab.txt"
    assert channels["test"] == "s3://public-bucket/msra/test.txt"
    assert {k: v["uri"] for k, v in plan["channels"].items()} == channels
    metrics = {m["Name"]: m["Regex"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics == {m["Name"]: m["Regex"] for m in load_launcher().METRIC_DEFINITIONS}
    assert req["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/checkpoints/run1"
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"]["MaxWaitTimeInSeconds"] == 2 * req["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert req["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/models"
    assert req["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge" and req["RoleArn"] == ROLE
    # uploads: the data under this launch's prefix, and the source bundle (train.py at its root)
    assert s3_keys(sm, f"albert-ner/{job}/input/") == [f"albert-ner/{job}/input/train/train.txt",
                                                       f"albert-ner/{job}/input/vocab/vocab.txt"]
    body = sm.boto_session.client("s3").get_object(Bucket=BUCKET, Key=f"albert-ner/{job}/source/sourcedir.tar.gz")
    names = tarfile.open(fileobj=io.BytesIO(body["Body"].read())).getnames()
    assert "train.py" in names and "requirements.txt" in names and "albert_ner/sagemaker_env.py" in names


def test_byoc_uses_the_given_image_and_no_source_bundle(session, tmp_path, capsys):
    sm, requests = session
    data = channel_data(tmp_path)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/albert-ner:latest"
    code, plan, err = launch(["byoc", "--role", ROLE, "--image-uri", image, "--train", str(data / "msra"),
                              "--instance-type", "ml.g5.xlarge", "--hp", "epochs=1"], sm, capsys)
    assert code == 0, err
    req = requests[-1]
    assert req["AlgorithmSpecification"]["TrainingImage"] == image == plan["image_uri"]
    assert "sagemaker_submit_directory" not in req["HyperParameters"]
    assert req["HyperParameters"]["epochs"].strip('"') == "1"
    assert "EnableManagedSpotTraining" not in req or req["EnableManagedSpotTraining"] is False
    # the model lands under the launch's own prefix too (the SDK adds <job>/output/model.tar.gz)
    assert req["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/albert-ner"


def test_each_launch_reads_only_its_own_uploads(session, tmp_path, capsys):
    """An earlier launch's dev.txt must not turn up in a later launch's train channel (it would drive model
    selection and the reported scores)."""
    sm, requests = session
    first = channel_data(tmp_path / "a", files=("train.txt", "dev.txt", "test.txt"))
    second = channel_data(tmp_path / "b", files=("train.txt",))
    uris = []
    for data in (first, second):
        assert load_launcher().main(["byoc", "--role", ROLE, "--image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws"
                                     ".com/x:1", "--train", str(data / "msra")], session=sm) == 0
        uris.append({c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
                     for c in requests[-1]["InputDataConfig"]}["train"])
    assert uris[0] != uris[1]
    second_prefix = uris[1][len(f"s3://{BUCKET}/"):] + "/"
    assert [k.rsplit("/", 1)[-1] for k in s3_keys(sm, second_prefix)] == ["train.txt"]
    assert sorted(k.rsplit("/", 1)[-1] for k in s3_keys(sm, uris[0][len(f"s3://{BUCKET}/"):] + "/")) == [
        "dev.txt", "test.txt", "train.txt"]


class NoAWS:
    """A session stand-in that fails the test if the launcher touches AWS at all."""

    def __getattr__(self, name):
        raise AssertionError(f"the launcher used the AWS session ({name}) before refusing")


def test_bad_hyperparameters_are_all_named_before_anything_is_created(tmp_path, capsys):
    data = channel_data(tmp_path)
    code = load_launcher().main(["byos", "--role", ROLE, "--train", str(data / "msra"), "--hp", "epoch=3",
                                 "--hp", "lstm-units=big", "--hp", "jit=maybe", "--hp", "precision=fp8",
                                 "--hp", "export=perhaps", "--hp", "max_seq_len=5000", "--hp", "warmup_ratio=0.1",
                                 "--hp", "recipe=fast"],
                                session=NoAWS())
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 7 problem(s) with --hp, nothing was started: "), err
    for part in ("unknown hyperparameter 'epoch' (did you mean 'epochs'?)", "lstm_units='big': argument --lstm-units: "
                 "invalid int value: 'big'", "jit='maybe': argument --jit: expected a boolean, got 'maybe'",
                 "export: expected a boolean, got 'perhaps'", "precision must be one of",
                 "max_seq_len must be in 3..4096, got 5000",
                 "recipe must be one of auto, none, random-init, pretrained, got 'fast'"):
        assert part in lines[0], (part, lines[0])
    assert "warmup_ratio" not in lines[0]


def test_good_hyperparameters_pass_the_check():
    launcher = load_launcher()
    hp = launcher.parse_hyperparameters(["epochs=3", "lstm-units=256", "jit=true", "init=s3://b/albert",
                                         "--encoder-lr=2e-5", "export=false", "data_dir=/opt/ml/input/data/x",
                                         "patience=0", "resume=False", "recipe=pretrained"])
    launcher.check_hyperparameters(hp)  # no error
    with pytest.raises(launcher.LaunchError, match="--hp epochs is given twice"):
        launcher.parse_hyperparameters(["epochs=3", "epochs=4"])


def offline_env(**extra):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true", "HTTPS_PROXY": OFFLINE,
           "HTTP_PROXY": OFFLINE, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
           "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def dry_run(argv, cwd):
    """The launcher as a user runs it, offline (no AWS endpoint is reachable)."""
    return subprocess.run([sys.executable, str(ROOT / "sagemaker" / "launch.py"), *argv, "--dry-run"], cwd=cwd,
                          env=offline_env(AWS_DEFAULT_REGION="eu-west-1"), capture_output=True, text=True, timeout=120)


def test_several_instances_train_one_model_with_multi_worker_mirrored_strategy(session, tmp_path, capsys):
    """byos: the TensorFlow estimator's multi_worker_mirrored_strategy distribution (the container writes
    TF_CONFIG); byoc: the request asks for the instances and the entry point derives TF_CONFIG from SM_HOSTS."""
    sm, requests = session
    data = channel_data(tmp_path)
    code, plan, err = launch(["byos", "--role", ROLE, "--train", str(data / "msra"), "--instance-count", "2",
                              "--instance-type", "ml.p3.8xlarge", "--checkpoint-s3-uri", f"s3://{BUCKET}/ckpt/a"],
                             sm, capsys)
    assert code == 0, err
    req = requests[-1]
    assert req["ResourceConfig"]["InstanceCount"] == 2 and req["ResourceConfig"]["InstanceType"] == "ml.p3.8xlarge"
    hp = {k: v.strip('"') for k, v in req["HyperParameters"].items()}
    assert hp["sagemaker_multi_worker_mirrored_strategy_enabled"] == "true"
    assert plan["distribution"] == {"multi_worker_mirrored_strategy": {"enabled": True}}
    assert plan["instance_count"] == 2

    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/albert-ner:v1"
    code, plan, err = launch(["byoc", "--role", ROLE, "--image-uri", image, "--train", "s3://data/msra/",
                              "--instance-count", "3", "--output-path", f"s3://{BUCKET}/models"], sm, capsys)
    assert code == 0, err
    req = requests[-1]
    assert req["ResourceConfig"]["InstanceCount"] == 3
    assert not any(k.startswith("sagemaker_") for k in req.get("HyperParameters", {}))
    assert plan["distribution"] == {"tf_config_from": "SM_HOSTS"}

    code, plan, err = launch(["byos", "--role", ROLE, "--train", str(data / "msra"), "--instance-count", "1"],
                             sm, capsys)
    assert code == 0 and plan["distribution"] is None, err
    assert "sagemaker_multi_worker_mirrored_strategy_enabled" not in requests[-1]["HyperParameters"]


def test_dry_run_prints_every_cost_setting_as_clean_json(tmp_path):
    """stdout is one JSON document (the SDK's own notices go to stderr), and nothing is sent anywhere."""
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/albert-ner:v1"
    proc = dry_run(["byoc", "--role", ROLE, "--image-uri", image, "--train", "s3://data/msra/", "--spot",
                    "--checkpoint-s3-uri", "s3://my-bucket/ckpt", "--max-run", "3600", "--instance-type",
                    "ml.g5.xlarge", "--instance-count", "1", "--output-path", "s3://my-bucket/models", "--hp",
                    "epochs=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert {k: plan[k] for k in ("instance_type", "instance_count", "use_spot_instances", "max_run", "max_wait",
                                 "checkpoint_s3_uri", "output_path", "role", "region", "image_uri", "dry_run")} == {
        "instance_type": "ml.g5.xlarge", "instance_count": 1, "use_spot_instances": True, "max_run": 3600,
        "max_wait": 7200, "checkpoint_s3_uri": "s3://my-bucket/ckpt", "output_path": "s3://my-bucket/models",
        "role": ROLE, "region": "eu-west-1", "image_uri": image, "dry_run": True}
    # a spot job checkpoints every SPOT_CHECKPOINT_EVERY steps: its periodic checkpoint is what is sure to be left
    assert plan["hyperparameters"] == {"epochs": "2", "checkpoint_every": "200"} and plan["metric_definitions"]
    assert plan["channels"] == {"train": {"source": "s3://data/msra/", "uri": "s3://data/msra/"}}
    # local data: the plan names this launch's own prefix in the bucket, and the TensorFlow image
    data = channel_data(tmp_path)
    proc = dry_run(["byos", "--role", ROLE, "--train", str(data / "msra"), "--bucket", "my-bucket"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["image_uri"] == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-training:2.14-gpu-py310"
    assert plan["output_path"] == "s3://my-bucket/albert-ner" and plan["use_spot_instances"] is False
    assert plan["channels"] == {"train": {"source": str(data / "msra"),
                                          "uri": f"s3://my-bucket/albert-ner/{plan['job_name']}/input/train"}}


def test_missing_region_is_one_clear_line(tmp_path):
    data = channel_data(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "sagemaker" / "launch.py"), "byos", "--role", ROLE,
                           "--train", str(data / "msra"), "--dry-run"], cwd=tmp_path,
                          env=offline_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ("error: no AWS region: pass --region REGION, set "
                                                    "AWS_DEFAULT_REGION, or run `aws configure set region REGION`")


def test_china_regions_use_their_partition(aws, tmp_path, capsys):
    data = channel_data(tmp_path)
    launcher = load_launcher()
    argv = ["byos", "--train", str(data / "msra"), "--region", "cn-north-1", "--dry-run", "--role"]
    assert launcher.main(argv + [ROLE]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --role {ROLE} is in partition aws, but region cn-north-1 is "
                                               "in aws-cn (arn:aws-cn:iam::...)")
    assert launcher.main(argv + ["arn:aws-cn:iam::123456789012:role/SageMakerRole"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["channels"]["train"]["uri"].startswith("s3://sagemaker-cn-north-1-123456789012/albert-ner/")
    assert plan["image_uri"] == "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/tensorflow-training:2.14-gpu-py310"


def test_spot_and_version_mistakes_are_refused(session, tmp_path, capsys):
    sm, requests = session
    data = channel_data(tmp_path)
    before = len(requests)
    base = ["byos", "--role", ROLE, "--train", str(data / "msra")]
    for extra, message in ((["--spot"], "--spot needs --checkpoint-s3-uri, so that an interrupted job can resume"),
                           (["--spot", "--checkpoint-s3-uri", "s3://b/c", "--max-run", "100", "--max-wait", "50"],
                            "--max-wait 50 is shorter than --max-run 100"),
                           (["--checkpoint-s3-uri", "/tmp/ckpt"], "--checkpoint-s3-uri /tmp/ckpt: expected s3://..."),
                           (["--framework-version", "2.15"],
                            "TensorFlow 2.15 (py310) has no SageMaker training image")):
        code, _, err = launch(base + extra, sm, capsys)
        assert code == 2 and err.startswith(f"error: {message}") and "Traceback" not in err, err
    assert len(requests) == before


def test_pretrained_weights_by_s3_uri_are_downloaded(aws, tmp_path):
    import boto3

    from albert_ner.sagemaker_env import fetch_s3_prefix

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="weights")
    for key, body in (("albert_base_zh/albert_model.ckpt.index", b"i"), ("albert_base_zh/sub/vocab.txt", b"v"),
                      ("other/x", b"x")):
        s3.put_object(Bucket="weights", Key=key, Body=body)
    dest = fetch_s3_prefix("s3://weights/albert_base_zh", tmp_path / "pretrained", s3)
    assert (dest / "albert_model.ckpt.index").read_bytes() == b"i" and (dest / "sub/vocab.txt").read_bytes() == b"v"
    assert not (dest / "x").exists()
    with pytest.raises(FileNotFoundError, match="no objects under this prefix"):
        fetch_s3_prefix("s3://weights/missing", tmp_path / "none", s3)


def test_spot_jobs_checkpoint_more_often_unless_told(session, capsys):
    """Script mode's toolkit passes no SIGTERM on to the trainer: a spot job's guarantee is its periodic checkpoint,
    so --spot sets checkpoint_every (a value given with --hp wins); on-demand jobs keep the trainer's default.
    (Dry runs in this process: test_dry_run_prints_every_cost_setting_as_clean_json runs the command itself.)"""
    sm, requests = session
    common = ["--role", ROLE, "--train", "s3://data/msra/", "--bucket", "my-bucket"]
    spot = ["--spot", "--checkpoint-s3-uri", "s3://my-bucket/ckpt/run-1"]
    for argv, expected in ((["byos", *common, *spot], {"checkpoint_every": "200"}),
                           (["byos", *common, *spot, "--hp", "checkpoint_every=50"], {"checkpoint_every": "50"}),
                           (["byos", *common], {})):
        code, plan, err = launch(argv + ["--dry-run"], sm, capsys)
        assert code == 0, err
        assert plan["hyperparameters"] == expected and plan["dry_run"] is True, argv
    assert requests == []  # a dry run sends nothing
    from albert_ner.config import TrainConfig

    default = TrainConfig.__dataclass_fields__["checkpoint_every"].default
    assert load_launcher().SPOT_CHECKPOINT_EVERY < default  # more often than the trainer's own default


def test_a_pretraining_job_is_launched_with_its_settings_and_metric_lines(session, tmp_path, capsys):
    """--hp task=pretrain: the hyperparameters checked against PretrainConfig, the text in the train channel, the
    pretraining metric definitions in the request (each checked against a real job's stdout in
    tests/test_sagemaker_pretrain.py); --dry-run shows the same and creates nothing."""
    sm, requests = session
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "news.txt").write_text("今天天气很好。\n", encoding="utf-8")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")
    launcher = load_launcher()
    argv = ["byos", "--role", ROLE, "--train", str(tmp_path / "corpus"), "--vocab", str(tmp_path / "vocab.txt"),
            "--hp", "task=pretrain", "--hp", "max_steps=20000", "--hp", "whole_word=true", "--hp", "init=m3e-small",
            "--spot", "--checkpoint-s3-uri", f"s3://{BUCKET}/ckpt/pretrain-1", "--job-name", "albert-ner-pretrain"]
    code, plan, err = launch(argv + ["--dry-run"], sm, capsys)
    assert code == 0 and requests == [], err
    assert plan["hyperparameters"] == {"task": "pretrain", "max_steps": "20000", "whole_word": "true",
                                       "init": "m3e-small", "checkpoint_every": "200"}
    assert plan["metric_definitions"] == launcher.PRETRAIN_METRIC_DEFINITIONS != launcher.METRIC_DEFINITIONS
    assert set(plan["channels"]) == {"train", "vocab"} and plan["pretrained_job"] is None
    code, plan, err = launch(argv, sm, capsys)
    assert code == 0 and len(requests) == 1, err
    req = requests[0]
    hp = {k: v.strip('"') for k, v in req["HyperParameters"].items()}
    assert hp["task"] == "pretrain" and hp["max_steps"] == "20000" and hp["checkpoint_every"] == "200"
    metrics = {m["Name"]: m["Regex"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics == {m["Name"]: m["Regex"] for m in launcher.PRETRAIN_METRIC_DEFINITIONS}
    assert {"heldout:mlm_accuracy", "heldout:perplexity", "train:mlm_accuracy"} <= set(metrics)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/albert-ner/{plan['job_name']}/input/train"
    assert s3_keys(sm, f"albert-ner/{plan['job_name']}/input/train/") == [
        f"albert-ner/{plan['job_name']}/input/train/news.txt"]


def test_bad_pretraining_hyperparameters_are_named_before_anything_is_created(tmp_path, capsys):
    data = channel_data(tmp_path)
    code = load_launcher().main(["byos", "--role", ROLE, "--train", str(data / "msra"), "--hp", "task=pretrain",
                                 "--hp", "lstm_units=8", "--hp", "recipe=auto", "--hp", "mask_prob=1.5", "--hp",
                                 "whole_word=maybe", "--hp", "max_step=10", "--hp", "export=false", "--hp",
                                 "sop=sometimes"], session=NoAWS())
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 7 problem(s) with --hp, nothing was started: "), err
    for part in ("unknown hyperparameter 'lstm_units' for task=pretrain (a setting of task=train)",
                 "unknown hyperparameter 'recipe' for task=pretrain",
                 "unknown hyperparameter 'export' for task=pretrain",
                 "unknown hyperparameter 'max_step' for task=pretrain (did you mean 'max_steps'?)",
                 "whole_word='maybe': argument --whole-word: expected a boolean, got 'maybe'",
                 "mask_prob must be in (0, 1), got 1.5", "sop must be one of auto, on, off, got 'sometimes'"):
        assert part in lines[0], (part, lines[0])
    good = load_launcher()
    good.check_hyperparameters({"task": "pretrain", "max_steps": "100", "whole_word": "False", "init": "m3e-small",
                                "checkpoint_every": "200", "config": "settings.json", "vocab_file": "v.txt"})
    for argv, message in ((["--hp", "task=tag"], "error: --hp task=tag: one of train, pretrain"),
                          (["--hp", "task=pretrain", "--validation", "s3://b/dev.txt"],
                           "error: --hp task=pretrain reads no --validation channel"),
                          (["--pretrained", "s3://b/m.tar.gz", "--pretrained-job", "job-1"],
                           "error: --pretrained and --pretrained-job both give the pretrained channel; use one"),
                          (["--pretrained-job", "job_1"], "error: --pretrained-job 'job_1': not a training job name")):
        code = good.main(["byos", "--role", ROLE, "--train", str(data / "msra"), *argv], session=NoAWS())
        out, err = capsys.readouterr()
        assert code == 2 and err.startswith(message), (argv, err)


def test_a_fine_tuning_job_takes_a_completed_pretraining_jobs_model_as_its_pretrained_channel(session, tmp_path,
                                                                                             capsys):
    """--pretrained-job: the job is described, must be Completed, and its ModelArtifacts (model.tar.gz) becomes the
    pretrained channel; the plan names it (with --dry-run too). A job still running is refused, nothing created."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    from tests.sagemaker_launch.test_serving import training_job

    sm, requests = session
    data = channel_data(tmp_path)
    job, artifact = training_job(sm, {"pretrained/encoder_config.json": b"{}", "hf/config.json": b"{}"})
    running, _ = training_job(sm, {"pretrained/encoder_config.json": b"{}"})
    sagemaker_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].training_jobs[running].training_job_status = "InProgress"
    del requests[:]  # the two jobs made above
    argv = ["byoc", "--role", ROLE, "--image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/albert-ner:1",
            "--train", str(data / "msra"), "--pretrained-job", job]
    code, plan, err = launch(argv + ["--dry-run"], sm, capsys)
    assert code == 0 and requests == [], err
    assert plan["pretrained_job"] == {"name": job, "model_artifacts": artifact}
    assert plan["channels"]["pretrained"] == {"source": artifact, "uri": artifact}
    code, plan, err = launch(argv, sm, capsys)
    assert code == 0 and len(requests) == 1, err
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in requests[0]["InputDataConfig"]}
    assert channels["pretrained"] == artifact and artifact.endswith("/output/model.tar.gz")
    assert plan["metric_definitions"] == load_launcher().METRIC_DEFINITIONS  # a fine-tuning job: train's lines

    for extra in ([], ["--dry-run"]):
        code, _, err = launch(argv[:-1] + [running] + extra, sm, capsys)
        assert code == 2 and err.strip() == (f"error: --pretrained-job {running}: the training job is InProgress, not "
                                             "Completed: it has no model yet"), err
    assert len(requests) == 1
