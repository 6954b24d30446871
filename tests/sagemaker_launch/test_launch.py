"""The launcher against the real SageMaker Python SDK (v2) and a local AWS double (moto, 127.0.0.1).

Asserts the CreateTrainingJob request the SDK sends (image, hyperparameters, channels, metric
definitions, checkpoint and spot settings, output path) and what was uploaded to S3. Nothing leaves
this machine: every AWS endpoint is the moto server, and proxies point nowhere for anything else
(the SDK's failure telemetry included).
"""
import importlib.util
import io
import os
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("sagemaker", reason="the [sagemaker] extra is not installed")
moto_server = pytest.importorskip("moto.server", reason="the [sagemaker] extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "albert-ner-test"


def load_launcher():
    spec = importlib.util.spec_from_file_location("albert_ner_launch", ROOT / "sagemaker" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def aws():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_EC2_METADATA_DISABLED="true",
                      HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
                      NO_PROXY="127.0.0.1,localhost", SAGEMAKER_SUPPRESS_V2_WARNING="1")
    try:
        yield f"http://{host}:{port}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


@pytest.fixture
def session(aws):
    import boto3
    import sagemaker

    boto_session = boto3.Session(region_name="us-east-1")
    boto_session.client("s3").create_bucket(Bucket=BUCKET)
    sm = sagemaker.Session(boto_session, default_bucket=BUCKET)
    requests = []
    sm.sagemaker_client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **kw: requests.append(params))
    return sm, requests


def channel_data(tmp_path):
    (tmp_path / "msra").mkdir()
    (tmp_path / "msra" / "train.txt").write_text("张\tB-PER\n三\tI-PER\n\n", encoding="utf-8")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", encoding="utf-8")
    return tmp_path


def s3_keys(sm, prefix=""):
    return [o["Key"] for o in sm.boto_session.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get(
        "Contents", [])]


def test_byos_request_and_uploads(session, tmp_path):
    sm, requests = session
    data = channel_data(tmp_path)
    launcher = load_launcher()
    code = launcher.main(["byos", "--role", ROLE, "--train", str(data / "msra"), "--vocab", str(data / "vocab.txt"),
                          "--test", "s3://public-bucket/msra/test.txt", "--hp", "epochs=3", "--hp", "init=albert_base_zh",
                          "--hp", "jit=true", "--spot", "--checkpoint-s3-uri", f"s3://{BUCKET}/checkpoints/run1",
                          "--instance-type", "ml.g4dn.xlarge", "--output-path", f"s3://{BUCKET}/models"], session=sm)
    assert code == 0 and len(requests) == 1
    req = requests[0]
    image = req["AlgorithmSpecification"]["TrainingImage"]
    assert image.endswith("/tensorflow-training:2.14-gpu-py310") and image.startswith("763104351884.dkr.ecr.us-east-1")
    hp = {k: v.strip('"') for k, v in req["HyperParameters"].items()}
    assert hp["epochs"] == "3" and hp["init"] == "albert_base_zh" and hp["jit"] == "true"
    assert hp["sagemaker_program"] == "train.py" and hp["sagemaker_submit_directory"].startswith(f"s3://{BUCKET}/")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/albert-ner/train"
    assert channels["vocab"] == f"s3://{BUCKET}/albert-ner/vocab/vocab.txt"
    assert channels["test"] == "s3://public-bucket/msra/test.txt"
    metrics = {m["Name"]: m["Regex"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics["eval:f1"] == r"eval_f1 = ([0-9.]+)" and "train:loss" in metrics
    assert req["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/checkpoints/run1"
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"]["MaxWaitTimeInSeconds"] >= req["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert req["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/models"
    assert req["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge" and req["RoleArn"] == ROLE
    # uploads: the data, and the source bundle with train.py at its root and the packages beside it
    assert "albert-ner/train/train.txt" in s3_keys(sm, "albert-ner/")
    bundle_key = hp["sagemaker_submit_directory"][len(f"s3://{BUCKET}/"):]
    body = sm.boto_session.client("s3").get_object(Bucket=BUCKET, Key=bundle_key)["Body"].read()
    names = tarfile.open(fileobj=io.BytesIO(body)).getnames()
    assert "train.py" in names and "requirements.txt" in names and "albert_ner/sagemaker_env.py" in names


def test_byoc_uses_the_given_image_and_no_source_bundle(session, tmp_path):
    sm, requests = session
    data = channel_data(tmp_path)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/albert-ner:latest"
    assert load_launcher().main(["byoc", "--role", ROLE, "--image-uri", image, "--train", str(data / "msra"),
                                 "--instance-type", "ml.g5.xlarge", "--hp", "epochs=1"], session=sm) == 0
    req = requests[-1]
    assert req["AlgorithmSpecification"]["TrainingImage"] == image
    assert "sagemaker_submit_directory" not in req["HyperParameters"]
    assert req["HyperParameters"]["epochs"].strip('"') == "1"
    assert "EnableManagedSpotTraining" not in req or req["EnableManagedSpotTraining"] is False


def test_spot_without_checkpoints_and_unknown_versions_are_refused(session, tmp_path):
    sm, _ = session
    data = channel_data(tmp_path)
    launcher = load_launcher()
    with pytest.raises(SystemExit, match="--spot needs --checkpoint-s3-uri"):
        launcher.main(["byos", "--role", ROLE, "--train", str(data / "msra"), "--spot"], session=sm)
    with pytest.raises(SystemExit, match="TensorFlow 2.15 \\(py310\\) has no SageMaker training image"):
        launcher.main(["byos", "--role", ROLE, "--train", str(data / "msra"), "--framework-version", "2.15"],
                      session=sm)


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
