"""The launcher's tests: a local AWS double (moto on 127.0.0.1) and helpers.

Nothing leaves this machine: every AWS endpoint is the moto server, and proxies point nowhere for anything
else (the SDK's failure telemetry included).
"""
import importlib.util
import io
import os
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "albert-ner-test"
OFFLINE = "http://127.0.0.1:9"  # the discard port: connections are refused at once


def load_launcher():
    spec = importlib.util.spec_from_file_location("albert_ner_launch", ROOT / "sagemaker" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def aws():
    moto_server = pytest.importorskip("moto.server", reason="the [sagemaker] extra is not installed")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_EC2_METADATA_DISABLED="true",
                      HTTPS_PROXY=OFFLINE, HTTP_PROXY=OFFLINE, NO_PROXY="127.0.0.1,localhost",
                      SAGEMAKER_SUPPRESS_V2_WARNING="1")
    try:
        yield f"http://{host}:{port}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def record_requests(sm, *operations):
    """{operation: [request params, ...]} filled as the SDK sends them."""
    seen = {op: [] for op in operations}
    for op in operations:
        sm.sagemaker_client.meta.events.register(f"provide-client-params.sagemaker.{op}",
                                                 lambda params, _op=op, **kw: seen[_op].append(params))
    return seen


@pytest.fixture
def session(aws):
    import boto3
    import sagemaker

    boto_session = boto3.Session(region_name="us-east-1")
    boto_session.client("s3").create_bucket(Bucket=BUCKET)
    sm = sagemaker.Session(boto_session, default_bucket=BUCKET)
    return sm, record_requests(sm, "CreateTrainingJob")["CreateTrainingJob"]


def channel_data(tmp_path, files=("train.txt",)):
    (tmp_path / "msra").mkdir(parents=True, exist_ok=True)
    for name in files:
        (tmp_path / "msra" / name).write_text("张\tB-PER\n三\tI-PER\n\n", encoding="utf-8")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", encoding="utf-8")
    return tmp_path


def s3_keys(sm, prefix="", bucket=BUCKET):
    return sorted(o["Key"] for o in sm.boto_session.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get(
        "Contents", []))


def tar_bytes(files):
    """A .tar.gz holding {name: bytes}, directories implied."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_names(data):
    return sorted(m.name for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers())
