"""deploy and transform against the real SageMaker Python SDK (v2) and a local AWS double (moto, 127.0.0.1).

Asserts the CreateModel / CreateEndpointConfig / CreateEndpoint and CreateTransformJob requests (the
TensorFlow Serving 2.14 image of the region and instance kind, model data, instance types, content types,
split, strategy, accept), and the archive that is served: a training job's model.tar.gz holds the
SavedModel and handler at its top, where the container looks, and is served as it is; one from an older job,
with them under export/, is repacked with them at the top.
"""
import json

import pytest

from tests.sagemaker_launch.conftest import (BUCKET, ROLE, load_launcher, record_requests, s3_keys, tar_bytes,
                                             tar_names)

pytest.importorskip("sagemaker", reason="the [sagemaker] extra is not installed")
pytest.importorskip("moto.server", reason="the [sagemaker] extra is not installed")

CPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.14-cpu"
GPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.14-gpu"
EXPORT = {"1/saved_model.pb": b"pb", "1/variables/variables.index": b"ix", "code/inference.py": b"def handler(): pass",
          "code/lib/albert_ner/__init__.py": b"", "code/model/model_config.json": b"{}"}
# what a training job leaves in model.tar.gz (albert_ner/sagemaker_env.py): the export at the top, the trained model
# in albert-ner-model/
TRAINED = {"model_config.json": b"{}", "weights/model.index": b"w", "eval_results.json": b"{}"}
JOB_ARCHIVE = {**EXPORT, **{f"albert-ner-model/{k}": v for k, v in TRAINED.items()}}
# what jobs of older versions left: the model's files at the top, the export under export/
OLD_JOB_ARCHIVE = {**{f"export/{k}": v for k, v in EXPORT.items()}, **TRAINED}


@pytest.fixture
def serving(session):
    sm, _ = session
    return sm, record_requests(sm, "CreateModel", "CreateEndpointConfig", "CreateEndpoint", "CreateTransformJob")


def run(argv, sm, capsys):
    code = load_launcher().main(argv, session=sm)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, (json.loads(out) if code == 0 else None), err


def training_job(sm, files):
    """A completed training job (moto completes them at once) whose model.tar.gz holds `files`."""
    client = sm.sagemaker_client
    name = f"albert-ner-job-{len(client.list_training_jobs()['TrainingJobSummaries'])}"
    client.create_training_job(
        TrainingJobName=name, RoleArn=ROLE, AlgorithmSpecification={"TrainingImage": "x", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/jobs"}, StoppingCondition={"MaxRuntimeInSeconds": 60},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30})
    artifact = client.describe_training_job(TrainingJobName=name)["ModelArtifacts"]["S3ModelArtifacts"]
    sm.boto_session.client("s3").put_object(Bucket=BUCKET, Key=artifact[len(f"s3://{BUCKET}/"):], Body=tar_bytes(files))
    return name, artifact


def s3_body(sm, uri):
    bucket, _, key = uri[len("s3://"):].partition("/")
    return sm.boto_session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_deploy_a_training_job_serves_its_archive_as_it_is_and_creates_the_endpoint(serving, capsys):
    sm, seen = serving
    job, artifact = training_job(sm, JOB_ARCHIVE)
    keys = s3_keys(sm)
    code, plan, err = run(["deploy", "--role", ROLE, "--training-job", job, "--instance-type", "ml.c5.xlarge"],
                          sm, capsys)
    assert code == 0, err
    endpoint = plan["endpoint_name"]
    assert plan["model"] == {"source": artifact, "repacked_from": None, "model_data": artifact}
    assert s3_keys(sm) == keys  # nothing repacked, nothing uploaded
    (model,), (config,), (created,) = seen["CreateModel"], seen["CreateEndpointConfig"], seen["CreateEndpoint"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifact
    assert model["PrimaryContainer"]["Image"] == CPU_IMAGE == plan["image_uri"] and model["ExecutionRoleArn"] == ROLE
    variant = config["ProductionVariants"][0]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        model["ModelName"], "ml.c5.xlarge", 1)
    assert created["EndpointName"] == endpoint and created["EndpointConfigName"] == config["EndpointConfigName"]


def test_deploy_an_older_jobs_archive_repacks_its_export(serving, capsys):
    sm, seen = serving
    job, artifact = training_job(sm, OLD_JOB_ARCHIVE)
    code, plan, err = run(["deploy", "--role", ROLE, "--training-job", job], sm, capsys)
    assert code == 0, err
    model_data = f"s3://{BUCKET}/albert-ner/{plan['endpoint_name']}/model/model.tar.gz"
    assert plan["model"] == {"source": artifact, "repacked_from": "export/", "model_data": model_data}
    assert tar_names(s3_body(sm, model_data)) == sorted(EXPORT)  # the export at the top, the rest left out
    assert seen["CreateModel"][-1]["PrimaryContainer"]["ModelDataUrl"] == model_data


def test_deploy_an_exported_archive_as_it_is(serving, tmp_path, capsys):
    sm, seen = serving
    sm.boto_session.client("s3").put_object(Bucket=BUCKET, Key="exports/ner.tar.gz", Body=tar_bytes(EXPORT))
    code, plan, err = run(["deploy", "--role", ROLE, "--model-data", f"s3://{BUCKET}/exports/ner.tar.gz",
                           "--instance-type", "ml.g4dn.xlarge", "--instance-count", "2"], sm, capsys)
    assert code == 0, err
    model = seen["CreateModel"][-1]["PrimaryContainer"]
    assert model["Image"] == GPU_IMAGE and model["ModelDataUrl"] == f"s3://{BUCKET}/exports/ner.tar.gz"
    assert seen["CreateEndpointConfig"][-1]["ProductionVariants"][0]["InitialInstanceCount"] == 2
    assert plan["model"]["repacked_from"] is None
    # a local archive (`albert-ner export --archive`) is uploaded under the endpoint's prefix
    local = tmp_path / "ner.tar.gz"
    local.write_bytes(tar_bytes({f"./{k}": v for k, v in EXPORT.items()}))
    code, plan, err = run(["deploy", "--role", ROLE, "--model-data", str(local)], sm, capsys)
    assert code == 0, err
    assert s3_body(sm, plan["model"]["model_data"]) == local.read_bytes()
    assert seen["CreateModel"][-1]["PrimaryContainer"]["ModelDataUrl"] == plan["model"]["model_data"]


def test_deploy_dry_run_creates_nothing(serving, capsys):
    sm, seen = serving
    job, _ = training_job(sm, JOB_ARCHIVE)
    keys = s3_keys(sm)
    code, plan, err = run(["deploy", "--role", ROLE, "--training-job", job, "--dry-run"], sm, capsys)
    assert code == 0, err
    assert plan["dry_run"] is True and plan["instance_type"] == "ml.m5.xlarge" and plan["image_uri"] == CPU_IMAGE
    assert plan["model"]["model_data"] == plan["model"]["source"]
    old_job, _ = training_job(sm, OLD_JOB_ARCHIVE)  # would be repacked: the plan names where, nothing is written
    keys = s3_keys(sm)
    code, plan, err = run(["deploy", "--role", ROLE, "--training-job", old_job, "--dry-run"], sm, capsys)
    assert code == 0, err
    assert plan["model"]["model_data"] == f"s3://{BUCKET}/albert-ner/{plan['endpoint_name']}/model/model.tar.gz"
    assert s3_keys(sm) == keys and not any(seen.values())


def test_unservable_archives_are_refused(serving, tmp_path, capsys):
    sm, seen = serving
    job, artifact = training_job(sm, {f"albert-ner-model/{k}": v for k, v in TRAINED.items()})  # export=false
    code, _, err = run(["deploy", "--role", ROLE, "--training-job", job], sm, capsys)
    assert code == 2 and err.startswith(f"error: {artifact}: no servable model inside"), err
    junk = tmp_path / "model.tar.gz"
    junk.write_bytes(b"not a tar")
    code, _, err = run(["deploy", "--role", ROLE, "--model-data", str(junk)], sm, capsys)
    assert code == 2 and err.startswith(f"error: {junk}: not a readable .tar.gz"), err
    code, _, err = run(["deploy", "--role", ROLE, "--model-data", str(tmp_path / "missing.tar.gz")], sm, capsys)
    assert code == 2 and "no such file" in err
    code, _, err = run(["deploy", "--role", ROLE, "--model-data", str(junk), "--instance-type", "local"], sm, capsys)
    assert code == 2 and "an ml.* instance type" in err
    assert not any(seen.values())


def test_transform_json_lines(serving, capsys):
    sm, seen = serving
    job, artifact = training_job(sm, JOB_ARCHIVE)
    code, plan, err = run(["transform", "--role", ROLE, "--training-job", job, "--input", f"s3://{BUCKET}/texts/",
                           "--input-format", "jsonl", "--instance-type", "ml.c5.2xlarge", "--instance-count", "3",
                           "--max-payload", "20"], sm, capsys)
    assert code == 0, err
    (request,), (model,) = seen["CreateTransformJob"], seen["CreateModel"]
    name = plan["job_name"]
    assert request["TransformJobName"] == name and request["ModelName"] == model["ModelName"]
    assert model["PrimaryContainer"]["Image"] == CPU_IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifact  # served as it is
    source = request["TransformInput"]
    assert source["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/texts/"
    assert (source["ContentType"], source["SplitType"]) == ("application/jsonlines", "Line")
    assert request["TransformOutput"] == {"S3OutputPath": f"s3://{BUCKET}/albert-ner/{name}/output",
                                          "Accept": "application/jsonlines", "AssembleWith": "Line"}
    assert (request["BatchStrategy"], request["MaxPayloadInMB"]) == ("MultiRecord", 20)
    assert request["TransformResources"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 3}


def test_transform_json_files_from_a_local_folder(serving, tmp_path, capsys):
    sm, seen = serving
    sm.boto_session.client("s3").put_object(Bucket=BUCKET, Key="exports/ner.tar.gz", Body=tar_bytes(EXPORT))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text(json.dumps({"instances": ["张三在北京工作。"]}), encoding="utf-8")
    code, plan, err = run(["transform", "--role", ROLE, "--model-data", f"s3://{BUCKET}/exports/ner.tar.gz",
                           "--input", str(tmp_path / "in"), "--input-format", "json", "--output",
                           f"s3://{BUCKET}/tagged/"], sm, capsys)
    assert code == 0, err
    request = seen["CreateTransformJob"][-1]
    name = plan["job_name"]
    assert s3_keys(sm, f"albert-ner/{name}/input/") == [f"albert-ner/{name}/input/a.json"]
    source = request["TransformInput"]
    assert source["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/albert-ner/{name}/input"
    assert source["ContentType"] == "application/json" and source.get("SplitType", "None") == "None"
    assert request["TransformOutput"]["Accept"] == "application/json"
    assert request["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/tagged/"
    assert request["BatchStrategy"] == "SingleRecord"
    assert seen["CreateModel"][-1]["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/exports/ner.tar.gz"


def test_transform_settings_that_cannot_work_are_refused(serving, capsys):
    sm, seen = serving
    base = ["transform", "--role", ROLE, "--model-data", f"s3://{BUCKET}/x.tar.gz", "--input", f"s3://{BUCKET}/in/"]
    for extra, message in ((["--input-format", "json", "--strategy", "MultiRecord"],
                            "--strategy MultiRecord needs line-split input"),
                           (["--max-payload", "0"], "--max-payload 0: MB per request, 1 to 100"),
                           (["--output", "/tmp/out"], "--output /tmp/out: expected s3://...")):
        code, _, err = run(base + extra, sm, capsys)
        assert code == 2 and err.startswith(f"error: {message}"), err
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        load_launcher().main(base + ["--accept", "text/csv"], session=sm)
    assert not any(seen.values())
