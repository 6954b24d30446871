"""Runs one `albert-ner pretrain` configuration in its own process, for tests/pretrain/test_distribute.py: a
distribution strategy (ALBERT_NER_DEVICES, TF_CONFIG) can only be set up before TensorFlow starts.

    python -m tests.pretrain.distribute_driver CONFIG.json [SIGNAL_AT]

CONFIG.json holds PretrainConfig fields. With SIGNAL_AT the process sends itself SIGTERM during its SIGNAL_AT-th
train step and exits 3 after the resumable checkpoint. Before exiting it prints 'WRITES ' + a JSON list of what
this process wrote, created, renamed or removed under the output directory through Python (TensorFlow's own C++
writes, i.e. checkpoints and summaries, are not seen), and on success the results as 'RESULTS ' + JSON.
"""
import json
import logging
import os
import sys
from pathlib import Path
from typing import List

from albert_ner.pretrain.config import PretrainConfig
from albert_ner.pretrain.task import PretrainTask, run_settings
from albert_ner.train.runner import Runner, TrainingInterrupted
from tests.signalling import SigtermAtStep

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHANGES = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate",
            "os.symlink", "os.link", "os.chmod", "shutil.copyfile", "shutil.move"}


def watch_writes(root: Path) -> List[str]:
    """Record (event, path) of every Python-level change under `root` made by this process from now on."""
    root_text = os.path.realpath(root)
    seen: List[str] = []

    def inside(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(root_text)
        except (TypeError, ValueError):
            return False

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                       else bool(isinstance(flags, int) and flags & _WRITE_FLAGS))
            if writing and path is not None and not isinstance(path, int) and inside(path):
                seen.append(f"open {os.fsdecode(path)}")
        elif event in _CHANGES and args and not isinstance(args[0], int) and inside(args[0]):
            seen.append(f"{event} {os.fsdecode(args[0])}")

    sys.addaudithook(hook)
    return seen


class SignalledRunner(SigtermAtStep, Runner):
    """Sends itself SIGTERM during train step `at` (counted in this process), once."""

    def __init__(self, task, settings, at: int):
        super().__init__(task, settings)
        self.sigterm_at = at


def main(argv) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = PretrainConfig(**json.loads(open(argv[0], encoding="utf-8").read()))
    writes = watch_writes(Path(cfg.output_dir))
    task = PretrainTask(cfg)
    runner = SignalledRunner(task, run_settings(cfg), int(argv[1])) if len(argv) > 1 else \
        Runner(task, run_settings(cfg))
    try:
        results = runner.run()
    except TrainingInterrupted as exc:
        print(f"INTERRUPTED {exc}", flush=True)
        print("WRITES " + json.dumps(writes), flush=True)
        return 3
    print("WRITES " + json.dumps(writes), flush=True)
    print("RESULTS " + json.dumps({k: results.get(k) for k in ("steps", "epochs_run", "best_epoch", "chief",
                                                                "heldout_after")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
