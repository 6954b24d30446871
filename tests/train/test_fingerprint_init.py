"""The resume fingerprint of --init covers the files initialisation reads: a lock, TensorBoard events, checkpoints
or shards beside the encoder never stop a resume; a change to the weights, config or vocabulary does."""
import dataclasses
import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from albert_ner.config import TrainConfig
from albert_ner.train.fingerprint import ResumeMismatch, differences, path_fingerprint, run_fingerprint
from albert_ner.train.loop import Trainer, train
from tests.train.test_loop import tiny_config


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _busy_folder_noise(folder: Path, pid: int) -> None:
    """What another process leaves in a folder without touching the model: its lock, logs, checkpoints, shards."""
    (folder / "train.lock").write_text(json.dumps({"pid": pid, "host": "h", "since": f"2024-01-0{pid % 9 + 1}"}))
    for rel in (f"tensorboard/events.out.tfevents.{pid}.host", f"checkpoints/ckpt-{pid}.index",
                f"data/shard-{pid:05d}.tfrecord"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"noise %d" % pid)


def _fake_pretraining_output(folder: Path, vocab_path: Path) -> Path:
    """An `albert-ner pretrain` output folder: pretrained/ (a converted tiny ALBERT and fake heads) plus noise."""
    from albert_ner.weights.convert import convert
    from tests.train.test_init import write_tiny_google_albert

    write_tiny_google_albert(folder.parent / "src", vocab_path)
    convert(folder.parent / "src", folder / "pretrained")
    (folder / "pretrained/heads").mkdir()
    (folder / "pretrained/heads/ckpt.index").write_bytes(b"heads, not read by train")
    _busy_folder_noise(folder, 1)
    return folder


@pytest.fixture(scope="module")
def init_run(tmp_path_factory, msra_dir, vocab_path):
    """A pretraining output folder and a finished 1-epoch tiny fine-tune started from it (--init FOLDER)."""
    from tests.train.conftest import write_slice

    root = tmp_path_factory.mktemp("init_fp")
    pre = _fake_pretraining_output(root / "pre", vocab_path)
    data = write_slice(msra_dir / "train.txt", root / "train.txt", 8)
    cfg = tiny_config(data, root / "run", pre / "pretrained/vocab.txt", init=str(pre),
                      encoder_preset="unused-with-init", jit=False)
    steps = train(cfg)["steps"]
    return root, cfg, steps


def _copies(init_run, tmp_path):
    root, cfg, steps = init_run
    for name in ("pre", "run"):
        shutil.copytree(root / name, tmp_path / name)
    cfg = dataclasses.replace(cfg, output_dir=str(tmp_path / "run"), init=str(tmp_path / "pre"),
                              vocab_file=str(tmp_path / "pre/pretrained/vocab.txt"))
    return tmp_path / "pre", cfg, steps


def test_resume_from_a_pretraining_output_survives_its_lock_logs_and_shards_but_not_new_weights(init_run, tmp_path):
    pre, cfg, steps = _copies(init_run, tmp_path)  # the same content in another place: still the same run
    _busy_folder_noise(pre, 2)  # a second `albert-ner pretrain` on the folder: new lock, events, shards
    (pre / "pretrained/heads/ckpt.index").write_bytes(b"other heads")  # pretraining heads: train never reads them
    results = train(dataclasses.replace(cfg, epochs=2))
    assert results["epochs_run"] == 2 and results["steps"] == 2 * steps  # resumed, not started over

    run_json = Path(cfg.output_dir) / "checkpoints/run.json"
    init = json.loads(run_json.read_text())["fingerprint"]["files"]["init"]  # recorded by the first run
    assert Path(init["read_from"]).parts[-2:] == ("pre", "pretrained") and init["scheme"] == "files read"
    before = run_json.read_bytes()
    _flip_last_byte(next((pre / "pretrained/encoder").glob("ckpt.data-*")))
    with pytest.raises(ResumeMismatch, match=r"init: .*pre \(sha256 [0-9a-f]{12}\.\.\.\) \(checkpoint\) vs "):
        Trainer(dataclasses.replace(cfg, epochs=3)).run()
    assert run_json.read_bytes() == before


def test_init_fingerprint_of_a_trained_model_covers_its_published_model_only(init_run, tmp_path):
    shutil.copytree(init_run[0] / "run", tmp_path / "model")
    model = tmp_path / "model"
    cfg = TrainConfig(train_file=init_run[1].train_file, output_dir=str(tmp_path / "next"),
                      vocab_file=init_run[1].vocab_file, init=str(model))
    saved = run_fingerprint(cfg)
    _busy_folder_noise(model, 3)  # the run that wrote it resumed: lock, events and checkpoints beside the model
    (model / "checkpoints/run.json").write_text("{}")
    (model / "eval_results.json").write_text("{}")
    assert differences(saved, run_fingerprint(cfg)) == []
    published = model / (model / "CURRENT").read_text().strip()
    manifest = json.loads((published / "manifest.json").read_text())
    assert saved["files"]["init"]["read_from"] == str(published)
    assert saved["files"]["init"]["files"] == len(manifest["files"]) + 1  # the listed files and the manifest

    _flip_last_byte(next((published / "weights").glob("model.data-*")))
    assert [d.split(":")[0] for d in differences(saved, run_fingerprint(cfg))] == ["init"]


def test_init_fingerprint_of_a_tf1_checkpoint_covers_prefix_config_and_vocab(tmp_path):
    from tests.weights.test_tensor_files import write_tf1_checkpoint

    src = tmp_path / "src"
    src.mkdir()
    write_tf1_checkpoint(src / "albert_model.ckpt", {"bert/embeddings/word_embeddings": np.ones((4, 2), np.float32)})
    (src / "albert_config.json").write_text(json.dumps({"hidden_size": 2}))
    (src / "vocab_chinese.txt").write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    (tmp_path / "train.txt").write_text("张\tB-PER\n", encoding="utf-8")
    as_dir = TrainConfig(train_file=str(tmp_path / "train.txt"), output_dir=str(tmp_path / "run"),
                         vocab_file=str(src / "vocab_chinese.txt"), init=str(src))
    as_index = dataclasses.replace(as_dir, init=str(src / "albert_model.ckpt.index"))
    saved = run_fingerprint(as_dir)
    _busy_folder_noise(src, 4)
    (src / "README.md").write_text("release notes")
    assert differences(saved, run_fingerprint(as_dir)) == []
    assert differences(saved, run_fingerprint(as_index)) == []  # the prefix's .index names the same files
    assert saved["files"]["init"]["files"] == 4  # .index, .data-00000-of-00001, config, vocabulary

    (src / "albert_config.json").write_text(json.dumps({"hidden_size": 4}))
    assert [d.split(":")[0] for d in differences(saved, run_fingerprint(as_index))] == ["init"]


def _whole_folder_sha256(folder: Path) -> str:
    """The init fingerprint of older run.json files: every file under the folder, as the old scheme listed it."""
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    lines = [f"{f.relative_to(folder).as_posix()}\t{f.stat().st_size}\t"
             f"{hashlib.sha256(f.read_bytes()).hexdigest()}" for f in files]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def test_a_run_record_of_the_old_whole_folder_scheme_still_resumes_on_the_same_content(init_run, tmp_path):
    pre, cfg, _ = _copies(init_run, tmp_path)
    now = run_fingerprint(cfg)
    old_sha = _whole_folder_sha256(pre)
    assert now["files"]["init"]["sha256"] != old_sha  # the two schemes differ here: the fallback is what matches
    older = json.loads(json.dumps(now))
    older["files"]["init"] = {"path": str(pre), "bytes": 1, "sha256": old_sha, "files": 1}
    assert differences(older, now) == []
    _flip_last_byte(next((pre / "pretrained/encoder").glob("ckpt.data-*")))
    assert [d.split(":")[0] for d in differences(older, run_fingerprint(cfg))] == ["init"]


def test_an_archive_of_the_init_folder_fingerprints_as_the_folder(init_run, tmp_path, monkeypatch):
    monkeypatch.setenv("ALBERT_NER_CACHE", str(tmp_path / "cache"))
    pre, cfg, _ = _copies(init_run, tmp_path)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for item in sorted(pre.iterdir()):
            tar.add(item, arcname=item.name)
    from_archive = run_fingerprint(dataclasses.replace(cfg, init=str(tmp_path / "model.tar.gz")))
    assert from_archive["files"]["init"]["sha256"] == run_fingerprint(cfg)["files"]["init"]["sha256"]


def test_directory_fingerprints_leave_out_lock_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.txt").write_text("a")
    saved = path_fingerprint(str(tmp_path / "d"))
    (tmp_path / "d/train.lock").write_text('{"pid": 1}')
    assert path_fingerprint(str(tmp_path / "d"))["sha256"] == saved["sha256"]
    (tmp_path / "d/a.txt").write_text("b")
    assert path_fingerprint(str(tmp_path / "d"))["sha256"] != saved["sha256"]
