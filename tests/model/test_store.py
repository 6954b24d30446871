"""Reading a model directory: published folders, the flat layout of older versions, and damaged directories,
which every reader (Python API, tag, evaluate, export, the serving handler) refuses naming the file and field."""
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from albert_ner.cli import main
from albert_ner.model.store import load_model
from albert_ner.train.loop import train
from tests.train.test_loop import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, msra_dir, vocab_path):
    """A 1-epoch tiny model (with bigram features) and the 8 (short) sentences it was trained on."""
    from tests.train.conftest import write_slice

    root = tmp_path_factory.mktemp("store")
    data = write_slice(msra_dir / "train.txt", root / "train.txt", 8, max_chars=30)
    train(tiny_config(data, root / "run", vocab_path, jit=False, bigram_dim=4, bigram_min_count=1))
    return root / "run", data


def _model_folder(out: Path) -> Path:
    """Where the model files are: the folder CURRENT names (or `out` itself, as older versions wrote it)."""
    pointer = out / "CURRENT"
    return out / pointer.read_text().strip() if pointer.exists() else out


def _copy(trained, tmp_path, flat=False):
    """A copy of the trained output directory; flat: as older versions laid it out (no CURRENT, no manifest)."""
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    folder = _model_folder(out)
    if flat and folder != out:
        for path in folder.iterdir():
            if path.name != "manifest.json":
                shutil.move(str(path), str(out / path.name))
        shutil.rmtree(folder)
        (out / "CURRENT").unlink()
        folder = out
    return out, folder


def _edit_config(change):
    def edit(folder):
        path = folder / "model_config.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return edit


def _swap_loc_per(config):
    labels = config["labels"]
    i, j = labels.index("B-LOC"), labels.index("B-PER")
    labels[i], labels[j] = labels[j], labels[i]
    return config


def _truncate(name):
    def edit(folder):
        path = folder / name
        path.write_bytes(path.read_bytes()[:100])
    return edit


# (damage, the file named, what the message says); each applies to new and flat layouts alike.
DAMAGE = {
    "truncated weights": (_truncate("weights/model.data-00000-of-00001"), "weights/model.data-00000-of-00001",
                          r"(truncated|cannot read the weights)"),
    "garbage index": (lambda f: (f / "weights/model.index").write_bytes(b"\x00garbage" * 40), "weights/model.index",
                      r"(truncated, edited or replaced|not a readable weights index)"),
    "config is a JSON array": (lambda f: (f / "model_config.json").write_text("[1, 2]"), "model_config.json",
                               r"expected a JSON object, got list"),
    "config lacks labels": (_edit_config(lambda c: {k: v for k, v in c.items() if k != "labels"}),
                            "model_config.json", r"missing field\(s\) labels"),
    "config lacks max_seq_len": (_edit_config(lambda c: {k: v for k, v in c.items() if k != "max_seq_len"}),
                                 "model_config.json", r"missing field\(s\) max_seq_len"),
    "max_seq_len 2": (_edit_config(lambda c: dict(c, max_seq_len=2)), "model_config.json",
                      r"max_seq_len 2 is smaller than the supported 3"),
    "labels swapped": (_edit_config(_swap_loc_per), "model_config.json",
                       r"labels are not in the order training writes them.*'B-PER' where 'B-LOC' belongs"),
    "invalid label": (_edit_config(lambda c: dict(c, labels=[t.replace("B-LOC", "X-LOC") for t in c["labels"]])),
                      "model_config.json", r"'X-LOC' is not a tag"),
    "4-token vocab": (lambda f: (f / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n"), "vocab.txt",
                      r"4 tokens.*the vocabulary is not the model's"),
    "bigram list of another model": (lambda f: (f / "bigrams.txt").write_text("中国\n"), "bigrams.txt",
                                     r"1 bigrams \(\+2 reserved ids\), but .*head.bigram_vocab_size is"),
}


@pytest.mark.parametrize("flat", [False, True], ids=["published", "flat"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_model_dir_is_refused_naming_file_and_field(trained, tmp_path, damage, flat):
    out, folder = _copy(trained, tmp_path, flat)
    edit, name, message = DAMAGE[damage]
    edit(folder)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_model(out)
    text = str(info.value)
    assert str(folder / name) in text and "\n" not in text, text
    assert re.search(message, text), text


def test_published_and_flat_layouts_load_the_same_model(trained, tmp_path):
    published, _ = load_model(trained[0])
    out, _ = _copy(trained, tmp_path, flat=True)
    flat, featurizer = load_model(out)
    assert flat.config == published.config and featurizer.bigrams is not None
    for a, b in zip(published.weights, flat.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert load_model(_model_folder(trained[0]))[0].config == published.config  # a published folder on its own


def test_weights_of_another_model_are_told_from_the_model(trained, tmp_path):
    """A mix of two: the config and vocabulary of one publish with the weights of another (same shapes)."""
    from albert_ner.model.store import save_weights

    out, folder = _copy(trained, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(trained[0], other)
    model, _ = load_model(other)
    model.crf.transitions.assign(model.crf.transitions + 1.0)
    save_weights(model, _model_folder(other))
    shutil.copytree(_model_folder(other) / "weights", folder / "weights", dirs_exist_ok=True)
    with pytest.raises(ValueError, match=r"weights/model\.\S+: sha256 differs from .*manifest\.json.*a mix of two"):
        load_model(out)
    (folder / "weights" / "model.extra").write_bytes(b"x")
    shutil.copytree(_model_folder(trained[0]) / "weights", folder / "weights", dirs_exist_ok=True)
    with pytest.raises(ValueError, match=r"weights/model\.extra: not listed in .*manifest\.json.*mixes files"):
        load_model(out)


def test_serving_handler_checks_the_exported_files(trained, tmp_path):
    """The TF-free handler reads an export's code/model/serving.json (made from the checked model) and refuses
    it, naming the file, once it no longer matches the manifest beside it (labels swapped by hand)."""
    from albert_ner.infer.serving import ServingPipeline
    from albert_ner.infer.serving_tables import write_tables
    from albert_ner.model import modeldir

    files = tmp_path / "code_model"
    files.mkdir()
    checked = modeldir.open_files(_model_folder(trained[0]))
    write_tables(files, checked.config, checked.featurizer)
    modeldir.write_manifest(files, {"vocab_tokens": 21128})
    assert ServingPipeline.from_dir(files, runner=None).max_chars == 62
    tables = files / "serving.json"
    tables.write_text(json.dumps(_swap_loc_per(json.loads(tables.read_text()))))
    with pytest.raises(ValueError, match=rf"{files}/serving\.json: .*{files}/manifest\.json"):
        ServingPipeline.from_dir(files, runner=None)


@pytest.mark.parametrize("damage", ["labels swapped", "4-token vocab", "truncated weights"])
@pytest.mark.parametrize("command", ["tag", "evaluate", "export"])
def test_every_command_refuses_a_damaged_model_with_one_line_and_exit_2(trained, tmp_path, caplog, damage, command):
    out, folder = _copy(trained, tmp_path)
    edit, name, _ = DAMAGE[damage]
    edit(folder)
    args = {"tag": ["tag", str(out), str(trained[1])],
            "evaluate": ["evaluate", str(out), str(trained[1])],
            "export": ["export", str(out), str(tmp_path / "exported")]}[command]
    with caplog.at_level(logging.ERROR):
        assert main(args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0] and str(folder / name) in errors[0], errors
    assert not (tmp_path / "exported").exists()
