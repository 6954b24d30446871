"""Training on from a model `albert-ner train` wrote (`--init` a model directory or a model.tar.gz): the whole
model continues with the same labels and head, only the encoder with others; vocabulary and lookup come along."""
import json
import logging
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from albert_ner.cli import main
from albert_ner.model.store import load_model
from albert_ner.train.loop import Trainer, train
from tests.train.test_loop import tiny_config

# An extra sentence whose entity type the first model never saw.
EXTRA = "在\tO\n故\tB-TIME\n宫\tI-TIME\n。\tO\n"


@pytest.fixture(scope="module")
def first(tmp_path_factory, msra_dir, vocab_path):
    """A tiny model trained for one epoch (lexicon features on), its output dir and its training data."""
    from tests.train.conftest import write_slice

    root = tmp_path_factory.mktemp("incremental")
    data = write_slice(msra_dir / "train.txt", root / "train.txt", 8)
    train(tiny_config(data, root / "first", vocab_path, jit=False, lexicon_dim=4, head_lr=3e-3))
    return root / "first", data


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALBERT_NER_CACHE", str(tmp_path / "cache"))  # where archives are unpacked


def _setup(cfg):
    trainer = Trainer(cfg)
    trainer._setup()
    return trainer


def _weights(model, part=None):
    layers = {"encoder": model.encoder, "bilstm": model.bilstm, "classifier": model.classifier, "crf": model.crf,
              "lexicon": model.lexicon_embedding}
    variables = layers[part].weights if part else model.weights
    return {v.name: v.numpy() for v in variables}


def _assert_same(a, b):
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _continue_config(first, tmp_path, vocab_path, init, data=None, **kw):
    out, default_data = first
    return tiny_config(data or default_data, tmp_path / "next", vocab_path, jit=False, lexicon_dim=4, init=str(init),
                       **kw)


def test_same_labels_continue_the_whole_model(first, tmp_path, vocab_path, caplog):
    caplog.set_level(logging.INFO)
    trainer = _setup(_continue_config(first, tmp_path, vocab_path, first[0]))
    before, _ = load_model(first[0])
    _assert_same(_weights(trainer.model), _weights(before))  # at step 0: encoder, BiLSTM, dense, CRF, features
    assert trainer.init_report["continued"] == "encoder+head"
    assert trainer.init_report["model"] == str(first[0] / "model-1")
    assert "continued: encoder+head" in caplog.text
    # the ids are the first model's: its lookup (fold: it was trained from scratch), not exact_first
    assert trainer.vocab.char_lookup == "fold" and trainer.model_config.head.char_lookup == "fold"
    # the encoder goes on at the rate it was trained at (--head-lr 3e-3, no --encoder-lr), not 5e-5
    assert float(trainer.encoder_opt.learning_rate) == pytest.approx(3e-3)


def test_other_labels_continue_the_encoder_and_start_a_fresh_head(first, tmp_path, vocab_path, caplog):
    caplog.set_level(logging.INFO)
    data = tmp_path / "more.txt"
    data.write_text(first[1].read_text(encoding="utf-8").rstrip("\n") + "\n\n" + EXTRA, encoding="utf-8")
    trainer = _setup(_continue_config(first, tmp_path, vocab_path, first[0], data=data))
    before, _ = load_model(first[0])
    _assert_same(_weights(trainer.model, "encoder"), _weights(before, "encoder"))
    old, new = _weights(before, "bilstm"), _weights(trainer.model, "bilstm")
    assert old.keys() == new.keys()
    assert not any(np.array_equal(old[k], new[k]) for k in old if old[k].std() > 0)  # fresh, not continued
    assert trainer.model.classifier.kernel.shape[-1] == len(before.config.labels) + 2
    reason = "labels differ: new B-TIME, I-TIME"
    assert trainer.init_report["continued"] == f"encoder; head new ({reason})"
    assert f"continued: encoder; head new ({reason})" in caplog.text


def test_another_head_shape_continues_the_encoder_only(first, tmp_path, vocab_path):
    trainer = _setup(_continue_config(first, tmp_path, vocab_path, first[0], lstm_units=8))
    before, _ = load_model(first[0])
    _assert_same(_weights(trainer.model, "encoder"), _weights(before, "encoder"))
    assert trainer.init_report["continued"] == ("encoder; head new (head differs: lstm_units 16 (init model) vs "
                                                "8 (now))")


def _tar(source: Path, archive: Path, prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=prefix + path.relative_to(source).as_posix(), recursive=False)
    return archive


def _sagemaker_like(first, tmp_path, nested: bool) -> Path:
    """What a job leaves in SM_MODEL_DIR, as model.tar.gz. nested: the model folder in albert-ner-model/ beside
    a deployable export at the top (1/ and code/, whose model/ holds a config but no weights); else as older
    versions wrote it: the model folder's files at the top, with export/ beside them."""
    root = tmp_path / "sm_model"
    folder = first[0] / (first[0] / "CURRENT").read_text().strip()
    model = root / "albert-ner-model" if nested else root
    shutil.copytree(folder, model)
    shutil.copyfile(first[0] / "eval_results.json", model / "eval_results.json")
    export = root if nested else root / "export"
    (export / "1").mkdir(parents=True)
    (export / "1/saved_model.pb").write_bytes(b"not read")
    (export / "code/model").mkdir(parents=True)
    for name in ("model_config.json", "vocab.txt"):
        shutil.copyfile(folder / name, export / "code/model" / name)
    return _tar(root, tmp_path / "model.tar.gz")


@pytest.mark.parametrize("layout", ["output dir", "model at the top", "model in a sub-folder"])
def test_a_model_tar_gz_continues_like_its_directory(first, tmp_path, vocab_path, layout):
    if layout == "output dir":
        archive = _tar(first[0], tmp_path / "run.tar.gz", prefix="run/")
    else:
        archive = _sagemaker_like(first, tmp_path, nested=layout == "model in a sub-folder")
    trainer = _setup(_continue_config(first, tmp_path, vocab_path, archive))
    before, _ = load_model(first[0])
    _assert_same(_weights(trainer.model), _weights(before))
    assert trainer.init_report["continued"] == "encoder+head"
    assert str(tmp_path / "cache" / "unpacked") in trainer.init_report["model"]


def test_cli_continues_from_a_job_archive_with_the_models_vocabulary(first, tmp_path):
    """No --vocab-file: the model's own; the archive may also be the one file of a folder (an S3 prefix or
    SageMaker channel); the report says what continued."""
    archive = _sagemaker_like(first, tmp_path, nested=True)
    channel = tmp_path / "channel"
    channel.mkdir()
    shutil.move(str(archive), channel / "model.tar.gz")
    out = tmp_path / "cli"
    code = main(["train", "--train-file", str(first[1]), "--dev-file", str(first[1]), "--init", str(channel),
                 "--output-dir", str(out), "--epochs", "1", "--lstm-units", "16", "--lexicon-dim", "4",
                 "--max-seq-len", "64", "--batch-size", "4", "--jit", "false"])
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["pretrained_init"]["continued"] == "encoder+head"
    saved = json.loads((out / "train_config.json").read_text())
    assert Path(saved["vocab_file"]).read_bytes() == (first[0] / "model-1/vocab.txt").read_bytes()


def test_a_vocabulary_other_than_the_models_is_refused(first, tmp_path, vocab_path):
    tokens = vocab_path.read_text(encoding="utf-8").split("\n")
    tokens[200], tokens[201] = tokens[201], tokens[200]
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(tokens), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.txt: not the vocabulary of the model to continue from .*"
                                         r"id 200 is .* leave out --vocab-file"):
        _setup(_continue_config(first, tmp_path, other, first[0]))


def test_another_char_lookup_or_encoder_is_refused(first, tmp_path, vocab_path):
    with pytest.raises(ValueError, match=r"--char-lookup exact_first: the model to continue from .* made its ids "
                                         r"with fold"):
        _setup(_continue_config(first, tmp_path, vocab_path, first[0], char_lookup="exact_first"))
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps(dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=21128,
                                      intermediate_size=64)))
    with pytest.raises(ValueError, match=r"not the encoder of the model to continue from .*num_hidden_layers: 2 "
                                         r"\(init model\) vs 1 \(now\)"):
        _setup(_continue_config(first, tmp_path, vocab_path, first[0], encoder_config=str(config)))


def test_continuing_into_the_models_own_directory_is_refused(first, tmp_path, vocab_path):
    cfg = tiny_config(first[1], first[0], vocab_path, jit=False, lexicon_dim=4, init=str(first[0]))
    with pytest.raises(ValueError, match=r"overlap: this run would change the model it starts from"):
        _setup(cfg)
    assert (first[0] / "CURRENT").read_text().strip() == "model-1"  # untouched
