"""`albert-ner` command line: train and evaluate Chinese NER models."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from albert_ner.config import PRECISIONS, PRESETS, TrainConfig
from albert_ner.data.download import DownloadError

log = logging.getLogger("albert_ner")

# Help for every TrainConfig field; the flags themselves are generated from the dataclass.
FIELD_HELP: Dict[str, str] = {
    "train_file": "training corpus (char<TAB>tag per line, BIO or BIOES)",
    "output_dir": "where the model, checkpoints, reports and TensorBoard logs go",
    "vocab_file": "WordPiece vocab.txt (or ERNIE token<TAB>id vocab) that maps characters to ids",
    "dev_file": "dev corpus for model selection (default: hold out --dev-fraction of train)",
    "test_file": "test corpus, evaluated once with the best model (never used for selection)",
    "dev_fraction": "fraction of train sentences held out as dev when no dev file is given",
    "init": "pretrained encoder: a known name (see `albert-ner download --list`; downloaded once into "
            "$ALBERT_NER_CACHE), a directory from `albert-ner convert`, or a published checkpoint directory or "
            "file (brightmart/Google ALBERT TF1, Hugging Face, ERNIE params/, .pdparams); brings its config and vocab",
    "encoder_config": "published encoder config JSON (albert_zh, Google ALBERT, BERT, ERNIE)",
    "encoder_preset": f"encoder size when no --encoder-config is given: {', '.join(PRESETS)}",
    "encoder_dropout": "dropout inside the encoder (overrides the config's values)",
    "max_seq_len": "tokens per row incl. [CLS]/[SEP]; longer sentences are windowed, never cut",
    "window_overlap": "characters shared by consecutive windows of a long sentence",
    "lstm_units": "BiLSTM units per direction (0 disables the BiLSTM)",
    "lexicon_dim": "size of jieba word-boundary (B/M/E/S) feature embeddings (0 disables)",
    "pos_dim": "size of jieba part-of-speech embeddings (each char gets its word's tag, e.g. nr/ns/nt; 0 disables)",
    "bigram_dim": "size of character-bigram embeddings (0 disables); the bigram vocabulary comes from train",
    "bigram_min_count": "bigrams seen fewer times in train map to the unknown bigram",
    "head_dropout": "dropout before the classifier",
    "input_dropout": "dropout on the encoder output and feature embeddings, before the BiLSTM",
    "batch_size": "training rows per step",
    "eval_batch_size": "rows per step when predicting",
    "epochs": "training epochs",
    "encoder_lr": "peak learning rate of the encoder (default: 5e-5 with --init, else --head-lr; Transformer "
                  "layers from random init want 2e-4 or lower, see BENCHMARKS.md)",
    "head_lr": "peak learning rate of the BiLSTM/dense/CRF head",
    "weight_decay": "AdamW decoupled weight decay (not on LayerNorm or biases)",
    "warmup_ratio": "fraction of steps with linear warmup; then linear decay to 0",
    "clip_norm": "global gradient-norm clip",
    "precision": f"{', '.join(PRECISIONS)}; auto = bfloat16 on Ampere+, float16 on older GPUs, float32 on CPU",
    "jit": "XLA-compile the train and predict steps (default: on with a GPU, off on CPU)",
    "seed": "random seed (init, shuffling, dev hold-out)",
    "patience": "stop after this many epochs without dev F1 improvement (0: never)",
    "strict_tags": "make an I-X that does not follow B-X/I-X an error instead of repairing it",
    "tag_scheme": "scheme the model learns: keep (the training corpus's), BIO or BIOES (often a little better); "
                  "entities and reports are the same either way",
    "resume": "resume from the last checkpoint in --output-dir if there is one",
    "max_train_sentences": "use only the first N training sentences (0: all)",
    "checkpoint_every": "steps between resumable checkpoints",
    "log_every": "steps between metric lines",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def str2bool(value: str) -> bool:
    """Booleans as launchers pass them: true/True/1/yes and false/False/0/no."""
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "on"):
        return True
    if v in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def add_train_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the field's default."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("train_file", "output_dir", "vocab_file", "dev_file", "test_file"):
            continue  # resolved from --data-dir and friends
        help_text = FIELD_HELP.get(f.name, "")
        default = f.default
        if isinstance(default, bool) or f.name == "jit":
            shown = "" if default is None else f" (default: {default})"
            parser.add_argument(_flag(f.name), type=str2bool, nargs="?", const=True, default=None,
                                metavar="BOOL", help=help_text + shown)
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                help=argparse.SUPPRESS)
            continue
        kind: Any = type(default) if default is not None else (float if "lr" in f.name or "dropout" in f.name
                                                                 else str)
        shown = "" if default is None else f" (default: {default})"
        parser.add_argument(_flag(f.name), type=kind, default=None, help=help_text + shown)


def resolve_data_files(args: argparse.Namespace, configured: Dict[str, Any]) -> Dict[str, Optional[str]]:
    """train/dev/test paths: flags, then the --config file, then --data-dir (train.txt, dev.txt, test.txt).

    With none of these, data/msra/ is used and MSRA is downloaded there if it is missing.
    """
    keys = ("train_file", "dev_file", "test_file")
    files: Dict[str, Optional[str]] = {k: getattr(args, k) or configured.get(k) for k in keys}
    data_dir = args.data_dir or os.environ.get("ALBERT_NER_DATA_DIR")
    if data_dir is None and not files["train_file"]:
        data_dir = "data/msra"
        if not Path(data_dir, "train.txt").is_file():
            from albert_ner.data.download import ensure_msra

            log.info("no --data-dir given and %s/train.txt is missing: fetching MSRA", data_dir)
            ensure_msra(data_dir)
    if data_dir:
        d = Path(data_dir)
        if not d.is_dir():
            raise SystemExit(f"error: --data-dir {d} is not a directory")
        for key, name in zip(keys, ("train.txt", "dev.txt", "test.txt")):
            if files[key] is None and (d / name).is_file():
                files[key] = str(d / name)
        if files["train_file"] is None:
            raise SystemExit(f"error: {d / 'train.txt'} not found (or pass --train-file)")
    for key, path in files.items():
        if path and not Path(path).is_file():
            raise SystemExit(f"error: --{key.replace('_', '-')} {path}: no such file")
    return files


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from --config JSON (if any) overlaid with every flag given."""
    values: Dict[str, Any] = {}
    if args.config:
        from albert_ner.config import load_json

        values.update(load_json(args.config))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise SystemExit(f"error: {args.config}: unknown setting(s) {', '.join(unknown)}")
    values.update(resolve_data_files(args, values))
    vocab = args.vocab_file or values.get("vocab_file") or os.environ.get("ALBERT_NER_VOCAB")
    init = args.init or values.get("init")
    if init:
        from pretrained import resolve_pretrained

        init = values["init"] = str(resolve_pretrained(init))
    if not vocab and init:
        from albert_ner.weights.convert import pretrained_encoder_config

        _, found = pretrained_encoder_config(init)
        vocab = str(found) if found else None
        if vocab:
            log.info("vocabulary from the pretrained encoder: %s", vocab)
    if not vocab:
        raise SystemExit("error: no vocabulary: pass --vocab-file PATH (a WordPiece vocab.txt) "
                         "or set ALBERT_NER_VOCAB")
    if not Path(vocab).is_file():
        raise SystemExit(f"error: --vocab-file {vocab}: no such file")
    values["vocab_file"] = vocab
    values["output_dir"] = args.output_dir or values.get("output_dir") or "runs/latest"
    for name in names - {"train_file", "output_dir", "vocab_file", "dev_file", "test_file"}:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"error: {exc}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="albert-ner", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and report entity-level P/R/F1")
    t.add_argument("--data-dir", help="directory with train.txt [dev.txt] [test.txt] (env ALBERT_NER_DATA_DIR; "
                                      "default data/msra, downloaded if missing)")
    t.add_argument("--train-file", help=FIELD_HELP["train_file"])
    t.add_argument("--dev-file", help=FIELD_HELP["dev_file"])
    t.add_argument("--test-file", help=FIELD_HELP["test_file"])
    t.add_argument("--vocab-file", help=FIELD_HELP["vocab_file"] + " (env ALBERT_NER_VOCAB)")
    t.add_argument("--output-dir", help=FIELD_HELP["output_dir"] + " (default runs/latest)")
    t.add_argument("--config", help="JSON file of TrainConfig settings; flags override it")
    add_train_config_flags(t)

    c = sub.add_parser("convert", help="convert a pretrained ALBERT/BERT/ERNIE checkpoint into a TF2 directory "
                                       "that `train --init` reads")
    c.add_argument("src", help="checkpoint directory, weights file or known name (format detected from tensor "
                                "names)")
    c.add_argument("--out", required=True, help="output directory")

    d = sub.add_parser("download", help="download a known pretrained checkpoint into the cache")
    d.add_argument("name", nargs="?", help="checkpoint name (see --list)")
    d.add_argument("--list", action="store_true", help="list the known checkpoints")
    d.add_argument("--cache-dir", help="cache directory (default $ALBERT_NER_CACHE or ~/.cache/albert-ner/pretrained)")

    g = sub.add_parser("tag", help="tag text files (one document per line, or per file) with a trained model")
    g.add_argument("model_dir", help="a directory written by `albert-ner train`")
    g.add_argument("inputs", nargs="*", default=["-"], help="files, directories (recursive) or - for stdin "
                                                           "(default: stdin)")
    g.add_argument("-o", "--output", help="output file (default: stdout)")
    g.add_argument("--format", choices=("jsonl", "conll", "inline"), default="jsonl",
                   help="jsonl: a record per document with entities (type, start, end, text, score); "
                        "conll: char<TAB>tag lines; inline: [张三](PER) marks (default: jsonl)")
    g.add_argument("--glob", default="*", help="file-name pattern inside directories (default: *)")
    g.add_argument("--encoding", default="auto", help="auto (BOM, UTF-8, else GB18030), or any Python codec "
                                                      "name, e.g. utf-16, gbk")
    g.add_argument("--whole-file", action="store_true", help="tag each file as one document instead of per line")
    g.add_argument("--scores", type=str2bool, default=True, metavar="BOOL",
                   help="compute each entity's score (CRF marginals); false is faster and writes null scores")
    g.add_argument("--batch-size", type=int, default=64,
                   help="rows per model call (default: 64, the fastest on CPU: windows of consecutive chunks "
                        "share batches; try 256 or more on a GPU)")
    g.add_argument("--jit", type=str2bool, default=True, metavar="BOOL",
                   help="XLA-compile the decode function (default: true; faster than graph mode on CPU too)")

    x = sub.add_parser("export", help="export a trained model as a TF SavedModel with a SageMaker TFS handler")
    x.add_argument("model_dir", help="a directory written by `albert-ner train`")
    x.add_argument("out", help="output directory (must not exist or be empty)")
    x.add_argument("--archive", action="store_true", help="also write OUT.tar.gz for a SageMaker endpoint")

    e = sub.add_parser("evaluate", help="evaluate a trained model on a labelled corpus")
    e.add_argument("model_dir", help="a directory written by `albert-ner train`")
    e.add_argument("data_file", help="labelled corpus (char<TAB>tag per line)")
    e.add_argument("--output", help="write the report as JSON here")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--jit", type=str2bool, default=None, metavar="BOOL",
                   help="XLA-compile prediction (default: on with a GPU, off on CPU)")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from albert_ner.train.loop import TrainingInterrupted, train

    cfg = train_config_from_args(args)
    try:
        train(cfg)
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        return 128 + exc.signum  # the shell's convention for "ended by signal N"
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from pretrained import resolve_pretrained
    from pretrained.registry import listing

    if args.list or not args.name:
        print(listing())  # per file: published size, what its download is checked against, source URL
        return 0
    print(resolve_pretrained(args.name, args.cache_dir))  # a known name (fetched once) or a local path
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from albert_ner.weights.convert import convert
    from pretrained import resolve_pretrained

    report = convert(resolve_pretrained(args.src), args.out)
    print(report.summary())
    print(f"converted encoder written to {args.out} (use: albert-ner train --init {args.out} ...)")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from albert_ner.infer.predictor import Predictor
    from albert_ner.infer.tagging import tag_documents
    from albert_ner.infer.textfiles import expand_inputs, read_documents
    from albert_ner.model.store import load_model

    inputs = expand_inputs(args.inputs, args.glob)
    model, featurizer = load_model(args.model_dir)
    predictor = Predictor(model, featurizer, batch_size=args.batch_size, jit=args.jit)
    docs = read_documents(inputs, args.encoding, args.whole_file)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    bar = tqdm(unit=" docs", disable=None, mininterval=1.0, file=sys.stderr)
    state = {"chars": 0}

    def progress(n_docs: int, n_chars: int) -> None:
        state["chars"] += n_chars
        bar.update(n_docs)
        elapsed = bar.format_dict["elapsed"] or 1e-9
        bar.set_postfix_str(f"{state['chars'] / elapsed:,.0f} chars/s", refresh=False)

    try:
        summary = tag_documents(predictor, docs, out, args.format, on_progress=progress, scores=args.scores)
    finally:
        bar.close()
        if args.output:
            out.close()
    log.info("%s", summary.line())
    return 1 if summary.failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from albert_ner.infer.export import export

    out = export(args.model_dir, args.out, archive=args.archive)
    print(f"SavedModel and SageMaker handler written to {out}" + (f" and {out}.tar.gz" if args.archive else ""))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from albert_ner.data.corpus import read_corpus
    from albert_ner.infer.predictor import Predictor
    from albert_ner.model.store import load_model
    from albert_ner.train.report import entity_report, format_table, metric_lines

    model, featurizer = load_model(args.model_dir)
    sentences, stats = read_corpus(args.data_file)
    log.info(stats.summary())
    from albert_ner.train.precision import resolve_jit

    predictor = Predictor(model, featurizer, batch_size=args.batch_size, jit=resolve_jit(args.jit))
    report = entity_report([s.tags for s in sentences], predictor.predict_sentences(sentences))
    print(format_table(report))
    for line in metric_lines("eval", report):
        print(line)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    commands = {"train": cmd_train, "convert": cmd_convert, "download": cmd_download, "tag": cmd_tag,
                "export": cmd_export, "evaluate": cmd_evaluate}
    try:
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, DownloadError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
