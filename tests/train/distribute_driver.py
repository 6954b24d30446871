"""Runs one `albert-ner train` configuration in its own process, for tests/train/test_distribute.py: a
distribution strategy (ALBERT_NER_DEVICES, TF_CONFIG) can only be set up before TensorFlow starts.

    python -m tests.train.distribute_driver CONFIG.json [SIGNAL_AT]

CONFIG.json holds TrainConfig fields. With SIGNAL_AT the process sends itself SIGTERM during its SIGNAL_AT-th
train step (a spot interruption) and exits 3 after the resumable checkpoint. The results dict is printed as the
last line, prefixed 'RESULTS '.
"""
import json
import sys

from albert_ner.config import TrainConfig
from albert_ner.train.loop import Trainer, TrainingInterrupted
from tests.signalling import SigtermAtStep


class SignalledTrainer(SigtermAtStep, Trainer):
    """Sends itself SIGTERM during train step `at` (counted in this process), once."""

    def __init__(self, cfg: TrainConfig, at: int):
        super().__init__(cfg)
        self.sigterm_at = at


def main(argv) -> int:
    cfg = TrainConfig(**json.loads(open(argv[0], encoding="utf-8").read()))
    trainer = SignalledTrainer(cfg, int(argv[1])) if len(argv) > 1 else Trainer(cfg)
    try:
        results = trainer.run()
    except TrainingInterrupted as exc:
        print(f"INTERRUPTED {exc}", flush=True)
        return 3
    print("RESULTS " + json.dumps({k: results.get(k) for k in ("steps", "epochs_run", "replicas", "workers",
                                                                "global_batch_size", "chief")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
