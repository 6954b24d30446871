"""The `albert-ner` command line, as a user runs it."""
import json
import os
import subprocess
import sys

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
    write_slice(msra_dir / "train.txt", data / "train.txt", 60)
    write_slice(msra_dir / "test.txt", data / "test.txt", 20, with_entities=False)
    out = tmp_path / "model"
    proc = run_cli("train", "--data-dir", str(data), "--vocab-file", str(vocab_path), "--output-dir", str(out),
                   "--encoder-preset", "tiny", "--epochs", "1", "--max-seq-len", "64", "--batch-size", "8",
                   "--lstm-units", "8", "--dev-fraction", "0.2", "--log-every", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval_f1 = " in proc.stdout and "dev_f1 = " in proc.stdout and "train_loss = " in proc.stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["test"]["sentences"] == 20 and results["dev"]["sentences"] == 12
    for name in ("model_config.json", "vocab.txt", "train_config.json", "weights/model.index"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").iterdir())

    proc = run_cli("evaluate", str(out), str(data / "test.txt"), "--output", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["f1"] == pytest.approx(results["test"]["f1"])
