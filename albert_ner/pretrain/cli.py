"""`albert-ner pretrain`: its flags (one per PretrainConfig field) and the command."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

from albert_ner.pretrain.config import DOC_MODES, SOP_CHOICES, PretrainConfig

log = logging.getLogger(__name__)

HELP: Dict[str, str] = {
    "data_dir": "folder for the preprocessed shards (default OUTPUT_DIR/data); reused when inputs and settings match",
    "init": "continue pretraining this encoder: a known name (e.g. m3e-small), a checkpoint directory or file, "
            "a converted or pretrained directory; its config and vocabulary come with it, its MLM/SOP heads too "
            "where it has them",
    "encoder_config": "from scratch: a published albert/bert/ernie config JSON",
    "encoder_preset": "from scratch without --encoder-config: a named preset",
    "encoder_dropout": "dropout inside the encoder (overrides the config's)",
    "doc_per": f"one document per {' or per '.join(DOC_MODES)}",
    "encoding": "auto (per file: BOM, UTF-16, else UTF-8 or GB18030) or a Python codec name",
    "user_dict": "jieba user dictionary (word [freq] [tag] per line): its words are masked whole",
    "workers": "preprocessing processes (0: one per core)",
    "heldout_fraction": "share of documents held out to measure MLM accuracy and perplexity after each epoch",
    "mask_prob": "share of tokens to predict",
    "whole_word": "mask jieba words whole (ERNIE / BERT-wwm) instead of single characters",
    "char_mask_share": "share of masking units taken at character level (ERNIE's word/character mix)",
    "sop": f"sentence-order prediction: {', '.join(SOP_CHOICES)} (auto: on for ALBERT layouts)",
    "max_steps": "a fixed budget of steps, spread over --epochs evaluation rounds (0: --epochs passes over the data)",
    "learning_rate": "peak learning rate of encoder and heads (warmup, then linear decay)",
    "eval_batches": "held-out batches per evaluation (0: all)",
    "shuffle_buffer": "chunks shuffled together while reading (0: stored order)",
}
_POSITIONAL = ("inputs", "output_dir", "vocab_file")


def _str2bool(value: str) -> bool:
    from albert_ner.cli import str2bool

    return str2bool(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, --output-dir, --vocab-file, --config, then one flag per other PretrainConfig field."""
    parser.add_argument("inputs", nargs="+", help="text files, directories or glob patterns (plain, .gz, .xz, .bz2)")
    parser.add_argument("--output-dir", required=True, help="where checkpoints, shards and the result go")
    parser.add_argument("--vocab-file", help="WordPiece vocab.txt (default: the --init encoder's; env ALBERT_NER_VOCAB)")
    parser.add_argument("--config", help="JSON file of PretrainConfig settings; flags override it")
    for f in dataclasses.fields(PretrainConfig):
        if f.name in _POSITIONAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        shown = "" if f.default is None else f" (default: {f.default})"
        help_text = HELP.get(f.name, "") + shown
        if isinstance(f.default, bool) or f.name == "jit":
            parser.add_argument(flag, type=_str2bool, nargs="?", const=True, default=None, metavar="BOOL",
                                help=help_text)
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                help=argparse.SUPPRESS)
            continue
        kind: Any = type(f.default) if f.default is not None else (float if f.name == "encoder_dropout" else str)
        parser.add_argument(flag, type=kind, default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """A PretrainConfig from --config JSON (if any) overlaid with every flag given."""
    values: Dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    if args.config:
        from albert_ner.config import load_json

        values.update(load_json(args.config))
        unknown = sorted(set(values) - names)
        if unknown:
            raise SystemExit(f"error: {args.config}: unknown setting(s) {', '.join(unknown)}")
    for name in names - set(_POSITIONAL):
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    values["inputs"] = list(args.inputs)
    values["output_dir"] = args.output_dir
    init = values.get("init")
    if init:
        from pretrained import resolve_pretrained

        init = values["init"] = str(resolve_pretrained(init))
    vocab: Optional[str] = args.vocab_file or values.get("vocab_file") or os.environ.get("ALBERT_NER_VOCAB")
    if not vocab and init:
        from albert_ner.weights.convert import pretrained_encoder_config

        found = pretrained_encoder_config(init)[1]
        vocab = str(found) if found else None
        if vocab:
            log.info("vocabulary from the pretrained encoder: %s", vocab)
    if not vocab:
        raise SystemExit("error: no vocabulary: pass --vocab-file PATH (a WordPiece vocab.txt with [MASK]) "
                         "or --init an encoder that has one")
    if not Path(vocab).is_file():
        raise SystemExit(f"error: --vocab-file {vocab}: no such file")
    values["vocab_file"] = vocab
    try:
        return PretrainConfig(**values)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"error: {exc}")


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Run `albert-ner pretrain`; a stop signal leaves a checkpoint and returns 128 + the signal."""
    from albert_ner.writable import check_output_dir

    cfg = config_from_args(args)
    check_output_dir(cfg.output_dir, "--output-dir")
    from albert_ner.pretrain.task import pretrain  # TensorFlow loads only once the paths are fine
    from albert_ner.train.runner import TrainingInterrupted

    try:
        pretrain(cfg)
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        return 128 + exc.signum
    return 0
