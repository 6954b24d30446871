"""The `albert-ner` command line, as a user runs it."""
import builtins
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from albert_ner.cli import build_parser, main, str2bool, train_config_from_args
from tests.train.conftest import write_slice


def run_cli(*args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "albert_ner.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_train_help_lists_the_flags():
    proc = run_cli("train", "--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--data-dir", "--vocab-file", "--lstm-units", "--lexicon-dim", "--precision", "--jit",
                 "--encoder-config", "--max-seq-len", "--patience"):
        assert flag in proc.stdout


@pytest.mark.parametrize("text, value", [("True", True), ("true", True), ("1", True), ("False", False),
                                         ("0", False), ("no", False)])
def test_booleans_as_launchers_pass_them(text, value):
    assert str2bool(text) is value


def test_flags_override_config_file(tmp_path, msra_dir, vocab_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epochs": 7, "lstm_units": 5, "batch_size": 3}))
    args = build_parser().parse_args(["train", "--data-dir", str(msra_dir), "--vocab-file", str(vocab_path),
                                      "--config", str(cfg_file), "--epochs", "2", "--jit", "false"])
    cfg = train_config_from_args(args)
    assert (cfg.epochs, cfg.lstm_units, cfg.batch_size, cfg.jit) == (2, 5, 3, False)
    assert cfg.train_file.endswith("train.txt") and cfg.test_file.endswith("test.txt") and cfg.dev_file is None


def test_unknown_config_key_and_missing_files_are_clear_errors(tmp_path, msra_dir, vocab_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epoch": 7}))
    args = build_parser().parse_args(["train", "--data-dir", str(msra_dir), "--vocab-file", str(vocab_path),
                                      "--config", str(cfg_file)])
    with pytest.raises(SystemExit, match="unknown setting.*epoch"):
        train_config_from_args(args)
    args = build_parser().parse_args(["train", "--train-file", str(tmp_path / "nope.txt"),
                                      "--vocab-file", str(vocab_path)])
    with pytest.raises(SystemExit, match="nope.txt: no such file"):
        train_config_from_args(args)


def test_bad_corpus_line_is_reported_with_file_and_line(tmp_path, vocab_path, caplog):
    bad = tmp_path / "bad.txt"
    bad.write_text("我\tO\n们\tB-PER\n好\n", encoding="utf-8")
    code = main(["train", "--train-file", str(bad), "--vocab-file", str(vocab_path),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert f"{bad}:3: missing tag" in caplog.text


@pytest.mark.slow
def test_one_epoch_cli_run_then_evaluate(tmp_path, msra_dir, vocab_path):
    data = tmp_path / "data"
    data.mkdir()
    write_slice(msra_dir / "train.txt", data / "train.txt", 60, max_chars=30)  # short: one bucket, one trace
    write_slice(msra_dir / "test.txt", data / "test.txt", 20, with_entities=False, max_chars=30)
    out = tmp_path / "model"
    proc = run_cli("train", "--data-dir", str(data), "--vocab-file", str(vocab_path), "--output-dir", str(out),
                   "--encoder-preset", "tiny", "--epochs", "1", "--max-seq-len", "64", "--batch-size", "8",
                   "--lstm-units", "8", "--dev-fraction", "0.2", "--log-every", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval_f1 = " in proc.stdout and "dev_f1 = " in proc.stdout and "train_loss = " in proc.stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["test"]["sentences"] == 20 and results["dev"]["sentences"] == 12
    published = out / (out / "CURRENT").read_text().strip()  # config, vocab and weights are published together
    for name in ("model_config.json", "vocab.txt", "train_config.json", "weights/model.index", "manifest.json"):
        assert (published / name).exists(), name
    assert list((out / "tensorboard").iterdir())

    # evaluate in this process (the train run above started the command line in its own)
    assert main(["evaluate", str(out), str(data / "test.txt"), "--output", str(tmp_path / "r.json")]) == 0
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["f1"] == pytest.approx(results["test"]["f1"])


# --- `tag`: ordinary mistakes are one clear line and exit 2, checked before the model is loaded --------------

@pytest.mark.parametrize("extra, message", [
    (["--encoding", "bogus"], "unknown encoding 'bogus' (--encoding)"),
    (["--encoding", "rot13"], "'rot13' is not a text encoding"),
    (["-o", "{tmp}"], "is a directory; -o takes a file name"),
    (["-o", "{tmp}/no/such/dir/out.jsonl"], "does not exist"),
    (["--glob", "*.nothing"], "nothing to tag"),
])
def test_tag_mistakes_are_one_line_and_exit_2(tmp_path, capsys, caplog, extra, message):
    (tmp_path / "f.txt").write_text("张三\n", encoding="utf-8")
    not_a_model = tmp_path / "no-model"  # never reached: the mistake is found first
    code = main(["tag", str(not_a_model), str(tmp_path), *[x.format(tmp=tmp_path) for x in extra]])
    told = capsys.readouterr().err + caplog.text
    assert code == 2
    assert message in told and "no-model" not in told and "Traceback" not in told


def test_tag_batch_size_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["tag", "model", "f.txt", "--batch-size", "0"])
    assert exc.value.code == 2
    assert "--batch-size: must be at least 1, got 0" in capsys.readouterr().err


def test_tag_options_may_come_before_or_between_inputs():
    args = build_parser().parse_args(["tag", "model", "--format", "conll", "a.txt", "-o", "out", "b.txt"])
    assert (args.model_dir, args.inputs, args.format, args.output) == ("model", ["a.txt", "b.txt"], "conll", "out")
    args = build_parser().parse_args(["tag", "model"])
    assert args.inputs == ["-"]


# --- ordinary mistakes: one line `albert-ner: error: ...` and exit 2, found before TensorFlow or the model load;
# --- a full disk cleans up after itself; TensorFlow's start-up noise is hidden unless asked for

def final_message(caplog):
    """The line main() ended with (rendered as `albert-ner: <it>` on stderr), or None."""
    lines = [r.getMessage() for r in caplog.records if getattr(r, "cli_final", False)]
    assert len(lines) <= 1, lines
    return lines[0] if lines else None


@pytest.fixture
def small_files(tmp_path):
    """A tiny corpus, a vocabulary file, a plain file and a non-empty folder to misuse as outputs."""
    (tmp_path / "train.txt").write_text("张\tB-PER\n三\tI-PER\n好\tO\n", encoding="utf-8")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n张\n三\n好\n", encoding="utf-8")
    (tmp_path / "afile").write_text("keep me", encoding="utf-8")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "{t}/no-model", "{t}"], "error: DATA_FILE {t}: is a directory, not a file"),
    (["evaluate", "{t}/no-model", "{t}/missing.txt"], "error: DATA_FILE {t}/missing.txt: no such file"),
    (["evaluate", "{t}/no-model", "{t}/train.txt", "--output", "{t}/full"],
     "error: --output {t}/full: is a directory, not a file"),
    (["evaluate", "{t}/no-model", "{t}/train.txt", "--output", "{t}/afile/r.json"],
     "error: --output {t}/afile/r.json: {t}/afile is a file, not a directory"),
    (["train", "--train-file", "{t}/train.txt", "--vocab-file", "{t}/vocab.txt", "--output-dir", "{t}/afile"],
     "error: --output-dir {t}/afile: exists and is not a directory"),
    (["train", "--train-file", "{t}/train.txt", "--vocab-file", "{t}/vocab.txt", "--output-dir", "{t}/afile/run"],
     "error: --output-dir {t}/afile/run: {t}/afile is a file, not a directory"),
    (["train", "--train-file", "{t}/train.txt", "--vocab-file", "{t}/nope.txt"],
     "error: --vocab-file {t}/nope.txt: no such file"),
    (["export", "{t}/no-model", "{t}/afile"], "error: export OUT {t}/afile: exists and is not a directory"),
    (["export", "{t}/no-model", "{t}/afile/out"], "error: export OUT {t}/afile/out: {t}/afile is a file, not a "
                                                  "directory"),
    (["export", "{t}/no-model", "{t}/full"], "error: export OUT {t}/full: exists and is not empty"),
])
def test_ordinary_mistakes_are_one_line_and_exit_2(small_files, caplog, argv, message):
    t = str(small_files)
    code = main([a.format(t=t) for a in argv])
    assert code == 2
    assert final_message(caplog) == message.format(t=t)
    assert (small_files / "afile").read_text(encoding="utf-8") == "keep me"  # nothing written anywhere
    assert sorted(p.name for p in small_files.iterdir()) == ["afile", "full", "train.txt", "vocab.txt"]
    assert [p.name for p in (small_files / "full").iterdir()] == ["x"]


def refuse(monkeypatch, path, how):
    """Make `path` unreadable as for an unprivileged user: the permission check says no (`access`), or the
    kernel refuses the open itself (`open`: what root, who passes every check, sees on e.g. a root-squashed NFS)."""
    target = os.path.realpath(path)
    if how == "access":
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if (
            os.path.realpath(p) == target and mode & os.R_OK) else real_access(p, mode, *a, **k))
        return
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(file)) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)


@pytest.mark.parametrize("how, message", [("access", "error: {flag} {f}: no permission to read it"),
                                          ("open", "error: {f}: Permission denied")])
def test_unreadable_evaluate_file_is_one_line(small_files, caplog, monkeypatch, how, message):
    f = small_files / "train.txt"
    refuse(monkeypatch, f, how)
    assert main(["evaluate", str(small_files / "no-model"), str(f)]) == 2
    assert final_message(caplog) == message.format(flag="DATA_FILE", f=f)


@pytest.mark.parametrize("how, message", [("access", "error: {flag} {f}: no permission to read it"),
                                          ("open", "error: {f}: Permission denied")])
def test_unreadable_train_file_is_one_line(small_files, vocab_path, caplog, monkeypatch, how, message):
    f = small_files / "train.txt"
    refuse(monkeypatch, f, how)
    code = main(["train", "--train-file", str(f), "--vocab-file", str(vocab_path),
                 "--output-dir", str(small_files / "run"), "--encoder-preset", "tiny"])
    assert code == 2
    assert final_message(caplog) == message.format(flag="--train-file", f=f)


def temp_leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*_temp"))


def test_full_disk_while_training_is_one_line_and_removes_unfinished_checkpoints(tmp_path, msra_dir, vocab_path,
                                                                                  caplog, monkeypatch):
    """The first checkpoint write of a real run fails as TensorFlow's SaveV2 does on a full disk: it has
    created PREFIX_temp/ and a part of the data file, then raises ResourceExhaustedError."""
    import tensorflow as tf
    from tensorflow.python.ops import io_ops

    def save_v2_on_full_disk(prefix, *args, **kwargs):
        prefix = prefix.numpy().decode() if hasattr(prefix, "numpy") else os.fsdecode(prefix)
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        with open(prefix + ".data-00000-of-00001", "wb") as part:
            part.write(b"\0" * 1000)
        raise tf.errors.ResourceExhaustedError(None, None, f"{{{{function_node __wrapped__SaveV2_dtypes_105}}}} "
                                                           f"{prefix}.data-00000-of-00001.tempstate1; No space "
                                                           f"left on device [Op:SaveV2]")
    monkeypatch.setattr(io_ops, "save_v2", save_v2_on_full_disk)
    data = write_slice(msra_dir / "train.txt", tmp_path / "train.txt", 8)
    out = tmp_path / "run"
    code = main(["train", "--train-file", str(data), "--dev-file", str(data), "--vocab-file", str(vocab_path),
                 "--output-dir", str(out), "--encoder-preset", "tiny", "--epochs", "1", "--max-seq-len", "64",
                 "--window-overlap", "8", "--batch-size", "8", "--lstm-units", "4", "--jit", "false",
                 "--checkpoint-every", "1"])
    assert code == 2
    message = final_message(caplog)
    assert message.startswith(f"error: no space left on device while writing to {out}; the unfinished "
                              "checkpoint files were removed; free some space and run the same command again")
    assert "\n" not in message
    assert out.is_dir() and temp_leftovers(out) == []


@pytest.mark.parametrize("failure, code, message", [
    (OSError(errno.ENOSPC, "No space left on device"), 2, "error: no space left on device while writing to {out}"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_a_failed_run_removes_only_unfinished_checkpoint_writes(small_files, caplog, monkeypatch, failure, code,
                                                                 message):
    import albert_ner.train.loop

    out = small_files / "run"

    def failing_train(cfg):
        for temp in (out / "weights" / "model_temp", out / "checkpoints" / "ckpt-3_temp"):
            temp.mkdir(parents=True)
            (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 10)
        (out / "checkpoints" / "ckpt-2.index").write_bytes(b"kept")  # a finished checkpoint: resumable
        (out / "notes_temp").mkdir()
        (out / "notes_temp" / "mine.txt").write_text("the user's", encoding="utf-8")  # not TensorFlow's
        raise failure
    monkeypatch.setattr(albert_ner.train.loop, "train", failing_train)
    got = main(["train", "--train-file", str(small_files / "train.txt"), "--vocab-file",
                str(small_files / "vocab.txt"), "--output-dir", str(out), "--encoder-preset", "tiny"])
    assert got == code
    assert final_message(caplog).startswith(message.format(out=out))
    assert temp_leftovers(out) == ["notes_temp"]
    assert (out / "checkpoints" / "ckpt-2.index").read_bytes() == b"kept"


def test_unexpected_errors_keep_their_traceback(small_files, monkeypatch):
    """A bug is not dressed up as a user error: it propagates (the interpreter prints it, exit status 1)."""
    import albert_ner.train.loop

    def buggy_train(cfg):
        raise KeyError("a bug")
    monkeypatch.setattr(albert_ner.train.loop, "train", buggy_train)
    with pytest.raises(KeyError, match="a bug"):
        main(["train", "--train-file", str(small_files / "train.txt"), "--vocab-file",
              str(small_files / "vocab.txt"), "--output-dir", str(small_files / "run"), "--encoder-preset", "tiny"])


# TensorFlow's C++ log lines: "2026-01-01 10:00:00.123456: E external/.../cuda_dnn.cc:9261] ..." (and the absl
# form "E0000 00:00:1700000000.123456   123 cuda_dnn.cc:8310] ..." of later versions).
TF_CPP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ )"
                         r"\S+:\d+\]", re.MULTILINE)


def test_tensorflow_start_up_noise_is_hidden_unless_verbose(tmp_path):
    """`evaluate` loads TensorFlow before it finds that the model directory is missing."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("张\tB-PER\n三\tI-PER\n", encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ALBERT_NER_VERBOSE")}
    argv = [sys.executable, "-m", "albert_ner.cli"]
    evaluate = ["evaluate", str(tmp_path / "no-model"), str(corpus)]

    def run(args, **env):
        return subprocess.run(args, capture_output=True, text=True, env=dict(base, **env), timeout=300)

    quiet = run(argv + evaluate)
    assert quiet.returncode == 2
    assert not TF_CPP_LINE.search(quiet.stderr), quiet.stderr
    last = quiet.stderr.splitlines()[-1]
    assert last.startswith("albert-ner: error: ") and "no-model" in last and "Traceback" not in quiet.stderr
    for shown in (run(argv + ["--verbose"] + evaluate), run(argv + evaluate, ALBERT_NER_VERBOSE="1")):
        assert shown.returncode == 2
        assert TF_CPP_LINE.search(shown.stderr), shown.stderr  # TensorFlow's own logging is not suppressed
        assert "Traceback" in shown.stderr and shown.stderr.splitlines()[-1] == last
    api = run([sys.executable, "-c", "import albert_ner.model.store, tensorflow as tf; tf.constant(1) + 1"])
    assert api.returncode == 0 and not TF_CPP_LINE.search(api.stderr), api.stderr


def test_a_tensorflow_log_level_the_user_set_is_kept(monkeypatch):
    import albert_ner

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    albert_ner.quiet_tensorflow(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    albert_ner.quiet_tensorflow(verbose=True)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    albert_ner.quiet_tensorflow(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    albert_ner.quiet_tensorflow(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_evaluate_warns_of_entity_types_the_model_has_no_label_for(tmp_path, vocab_path, caplog, monkeypatch):
    """A GPE-annotated file against a PER/LOC model: GPE can only score 0, and the log says so once."""
    import albert_ner.model.store
    from albert_ner.config import HeadConfig, ModelConfig, preset_encoder
    from albert_ner.data.features import Featurizer
    from albert_ner.data.vocab import Vocab
    from albert_ner.model.tagger import NerTagger

    vocab = Vocab.from_file(vocab_path)
    config = ModelConfig(preset_encoder("tiny", vocab_size=len(vocab)), HeadConfig(lstm_units=4),
                         labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC"), max_seq_len=32)
    model = NerTagger(config)
    model.build_weights()  # untrained: the warning is about the labels, not the predictions
    monkeypatch.setattr(albert_ner.model.store, "load_model", lambda model_dir: (model, Featurizer(vocab)))
    corpus = tmp_path / "gpe.txt"
    corpus.write_text("美\tB-GPE\n国\tI-GPE\n张\tB-PER\n\n法\tB-GPE\n国\tI-GPE\n", encoding="utf-8")
    assert main(["evaluate", str(tmp_path / "model"), str(corpus), "--jit", "false"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "entity type" in r.getMessage()]
    assert warned == [f"entity type GPE is not in the model's labels but occurs in {corpus} (2 entities): the model "
                      "cannot predict it, so it scores 0 there"]


@pytest.mark.parametrize("out_exists", [False, True])
def test_a_failed_export_leaves_out_as_it_was(tmp_path, caplog, monkeypatch, out_exists):
    """E.g. a full disk halfway through the SavedModel: OUT (new, or empty) and OUT.tar.gz are not left half-written,
    so the next try is not refused for a non-empty OUT."""
    import albert_ner.infer.export

    out = tmp_path / "ner"
    if out_exists:
        out.mkdir()

    def export_on_full_disk(model_dir, out_dir, archive=False):
        (out / "1" / "variables").mkdir(parents=True)
        (out / "1" / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 100)
        Path(f"{out}.tar.gz").write_bytes(b"\x1f\x8b")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "1" / "variables"))
    monkeypatch.setattr(albert_ner.infer.export, "export", export_on_full_disk)
    assert main(["export", str(tmp_path / "model"), str(out), "--archive"]) == 2
    assert final_message(caplog) == f"error: {out / '1' / 'variables'}: {os.strerror(errno.ENOSPC)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == (["ner"] if out_exists else [])
    assert not out_exists or list(out.iterdir()) == []
