"""Local mode: local channel paths are mounted as file:// URIs (nothing goes to S3), the code is mounted too,
and the extra that local mode needs is part of the [sagemaker] extra and installed with it."""
import configparser
import json
from importlib import metadata

import pytest

from tests.sagemaker_launch.conftest import ROLE, ROOT, channel_data, load_launcher

pytest.importorskip("sagemaker", reason="the [sagemaker] extra is not installed")
pytest.importorskip("moto.server", reason="the [sagemaker] extra is not installed")


def test_local_mode_mounts_local_channels_and_uploads_nothing(aws, tmp_path, monkeypatch, capsys):
    """The request the SDK hands to local mode's own client (which would start Docker) is recorded instead."""
    import boto3
    from sagemaker.local.local_session import LocalSagemakerClient

    requests = []
    monkeypatch.setattr(LocalSagemakerClient, "create_training_job",
                        lambda self, **request: requests.append(request), raising=True)
    monkeypatch.chdir(tmp_path)
    data = channel_data(tmp_path)
    s3 = boto3.client("s3")

    def everything_in_s3():
        return {b["Name"]: [o["Key"] for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])]
                for b in s3.list_buckets()["Buckets"]}

    before = everything_in_s3()
    code = load_launcher().main(["byos", "--role", ROLE, "--instance-type", "local", "--train", str(data / "msra"),
                                 "--vocab", str(data / "vocab.txt"), "--test", "s3://public/msra/test.txt",
                                 "--hp", "epochs=1"])
    out, err = capsys.readouterr()
    assert code == 0 and len(requests) == 1, err
    req = requests[0]
    sources = {c["ChannelName"]: c["DataSource"] for c in req["InputDataConfig"]}
    channels = {name: (s.get("FileDataSource") or {}).get("FileUri") or s["S3DataSource"]["S3Uri"]
                for name, s in sources.items()}
    assert channels == {"train": (data / "msra").resolve().as_uri(), "vocab": (data / "vocab.txt").resolve().as_uri(),
                        "test": "s3://public/msra/test.txt"}
    assert req["HyperParameters"]["sagemaker_submit_directory"].strip('"').startswith("file://")
    job = req["TrainingJobName"]
    assert req["OutputDataConfig"]["S3OutputPath"] == (tmp_path / "runs" / "sagemaker-local" / job).as_uri()
    assert req["ResourceConfig"]["InstanceType"] == "local"
    assert everything_in_s3() == before  # no bucket made, nothing uploaded
    assert json.loads(out)["channels"]["train"]["uri"] == channels["train"]


def test_local_mode_refuses_spot(tmp_path, capsys):
    data = channel_data(tmp_path)
    assert load_launcher().main(["byos", "--role", ROLE, "--instance-type", "local_gpu", "--train", str(data / "msra"),
                                 "--spot", "--checkpoint-s3-uri", "s3://b/c"]) == 2
    assert capsys.readouterr().err.strip() == "error: --spot is not available in local mode"


def test_the_sagemaker_extra_brings_local_mode():
    from packaging.requirements import Requirement

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    extra = [Requirement(line) for line in cfg["options.extras_require"]["sagemaker"].splitlines() if line.strip()]
    sdk = [r for r in extra if r.name == "sagemaker"]
    assert len(sdk) == 1 and "local" in sdk[0].extras, sdk
    assert sdk[0].specifier.contains(metadata.version("sagemaker"))
    needed = [Requirement(r) for r in metadata.requires("sagemaker")
              if Requirement(r).marker is not None and Requirement(r).marker.evaluate({"extra": "local"})]
    assert needed, "sagemaker declares no [local] extra"
    for req in needed:
        assert req.specifier.contains(metadata.version(req.name), prereleases=True), req
