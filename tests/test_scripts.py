"""The shell entry points pass shellcheck (skipped where shellcheck is not installed)."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["run_train.sh", "run_tests.sh", ".ci/run", "scripts/ensure-venv.sh"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    proc = subprocess.run(["shellcheck", "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_train_passes_user_flags_after_its_defaults():
    text = (ROOT / "run_train.sh").read_text()
    assert '"${defaults[@]}" "${args[@]+"${args[@]}"}"' in text  # argparse: the later flag wins
