"""`albert-ner train`: the NER task (train/ner_task.py) on the generic runner (train/runner.py).

Trainer keeps the names callers and tests have always used (the task's data and model, the runner's
optimizers and step); the runner's and the task's public names are importable from here too.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from albert_ner.config import TrainConfig
from albert_ner.data.corpus import Sentence
from albert_ner.data.pipeline import EncodedCorpus
from albert_ner.train.ner_task import (PRETRAINED_ENCODER_LR, RESULTS_FILE, TRAIN_CONFIG_FILE, NerTask,
                                       NerTrainable, build_model_config, run_settings)
from albert_ner.train.runner import (CHECKPOINT_DIR, Runner, StopRequest, TrainingInterrupted, TrainState, emit,
                                     stop_on_signals)

__all__ = ["CHECKPOINT_DIR", "PRETRAINED_ENCODER_LR", "RESULTS_FILE", "TRAIN_CONFIG_FILE", "NerTask", "NerTrainable",
           "StopRequest", "TrainState", "Trainer", "TrainingInterrupted", "build_model_config", "emit",
           "stop_on_signals", "train"]


def _from_task(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.task, name), doc=doc)


class Trainer(Runner):
    """Runs one TrainConfig end to end and writes a self-contained model directory."""

    # What the NER task prepared and built, under the names the Trainer always had.
    model_config = _from_task("model_config", "the ModelConfig (after _setup)")
    vocab = _from_task("vocab", "the run's Vocab")
    splits = _from_task("splits", "train/dev/test sentences")
    featurizer = _from_task("featurizer", "the run's Featurizer")
    planner = _from_task("planner", "the training BatchPlanner")
    char_init = _from_task("char_init", "pretrained character vectors placed in the table, or None")
    init_report = _from_task("init_report", "what --init loaded, or None")
    init_files = _from_task("init_files", "the albert-ner model --init continues, or None")
    predictor = _from_task("predictor", "the Predictor used for evaluation")

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        super().__init__(NerTask(cfg), run_settings(cfg))

    @property
    def encoder_opt(self):
        return self.optimizers["encoder"]

    @property
    def head_opt(self):
        return self.optimizers["head"]

    def evaluate(self, sentences: List[Sentence], corpus: Optional[EncodedCorpus] = None) -> Dict:
        """Entity-level report over every character of every sentence."""
        return self.task.evaluate_sentences(sentences, corpus)


def train(cfg: TrainConfig) -> Dict:
    """Run one training configuration; see Trainer."""
    return Trainer(cfg).run()
