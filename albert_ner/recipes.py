"""Named training recipes: the TrainConfig settings ./run_train.sh and a SageMaker job train with, kept here once.

A recipe is the lowest layer of a run's settings: a --config file and every flag (or hyperparameter) given
override it. "auto" picks "pretrained" when the run fine-tunes an encoder (--init) and "random-init"
otherwise; "none" leaves TrainConfig's own defaults, which `albert-ner train` uses unless told --recipe.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

from albert_ner.config import TrainConfig

AUTO = "auto"
NONE = "none"
RECIPES: Mapping[str, Mapping[str, Any]] = {
    # From random initialisation: run H3 of BENCHMARKS.md (character embeddings + jieba word boundaries,
    # dropout 0.5 on them, BiLSTM-CRF learning BIOES). --pos-dim 16 (run H1) gains 0.1 F1 point and tags
    # about a quarter slower.
    "random-init": {"encoder_preset": "embedding-only", "lexicon_dim": 16, "input_dropout": 0.5,
                    "tag_scheme": "BIOES", "lstm_units": 128, "epochs": 10, "head_lr": 2e-3, "batch_size": 32},
    # Fine-tuning a pretrained encoder: the original recipe's 3 epochs, encoder LR 5e-5 (TrainConfig's default
    # with --init), dropout 0.1 inside the encoder (albert_zh configs ship 0.0).
    "pretrained": {"epochs": 3, "encoder_dropout": 0.1, "lexicon_dim": 16, "lstm_units": 128, "head_lr": 1e-3,
                   "batch_size": 32},
}
CHOICES = (AUTO, NONE, *RECIPES)


def _check_recipes() -> None:
    """Every recipe setting is a TrainConfig field (a typo would otherwise be dropped by nobody)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, settings in RECIPES.items():
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise ValueError(f"recipe {name!r}: unknown TrainConfig field(s) {', '.join(unknown)}")


_check_recipes()


def check_choice(choice: str) -> str:
    """`choice` if it names a recipe (or auto/none), else a ValueError listing the choices."""
    if choice not in CHOICES:
        raise ValueError(f"recipe must be one of {', '.join(CHOICES)}, got {choice!r}")
    return choice


def recipe_for(init: Optional[str]) -> Dict[str, Any]:
    """The TrainConfig overrides of the "auto" recipe: "pretrained" with an --init, else "random-init"."""
    return dict(RECIPES["pretrained" if init else "random-init"])


def resolve(choice: str, init: Optional[str]) -> Tuple[str, Dict[str, Any]]:
    """(recipe name, its TrainConfig overrides) for a --recipe choice; ("none", {}) for none."""
    check_choice(choice)
    if choice == NONE:
        return NONE, {}
    name = ("pretrained" if init else "random-init") if choice == AUTO else choice
    return name, dict(RECIPES[name])


def describe(name: str, overrides: Mapping[str, Any]) -> str:
    """One line for the log: the recipe and its settings."""
    settings = ", ".join(f"{k}={v}" for k, v in overrides.items())
    return f"recipe {name}: {settings or 'TrainConfig defaults'} (flags and --config override these)"
