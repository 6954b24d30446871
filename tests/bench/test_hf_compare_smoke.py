"""bench/hf_compare.py end to end on a tiny random BERT: both step sides time real steps, and the HF fine-tune
tags every test character, resumes a finished run without training again and refuses other settings."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "hf_compare.py"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
OOV = "龘"  # in the corpus, not in the vocabulary: must come out as [UNK]
TRAIN = [("张三在北京工作", "B-PER I-PER O B-LOC I-LOC O O"),
         ("李四去上海", "B-PER I-PER O B-LOC I-LOC"),
         ("新华社报道", "B-ORG I-ORG I-ORG O O"),
         ("王五在新华社", "B-PER I-PER O B-ORG I-ORG I-ORG")] * 3
TEST = [("张三去北京", "B-PER I-PER O B-LOC I-LOC"),
        ("李四在上海新华社工作张三去北京李四在上海新华社工作龘", " ".join(
            "B-PER I-PER O B-LOC I-LOC B-ORG I-ORG I-ORG O O B-PER I-PER O B-LOC I-LOC "
            "B-PER I-PER O B-LOC I-LOC B-ORG I-ORG I-ORG O O O".split()))]
# The environment block both bench/hf_compare.py and bench/pretrain_compare.py write (their shared module).
ENVIRONMENT_KEYS = {"cpu", "logical_cpus", "usable_cpus", "python", "platform", "versions", "threads",
                    "inter_op_threads", "loadavg", "env"}


def write_corpus(path: Path, rows) -> int:
    lines = []
    for chars, tags in rows:
        tags = tags.split()
        assert len(chars) == len(tags)
        lines += [f"{c}\t{t}" for c, t in zip(chars, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(c) for c, _ in rows)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random BertModel with its tokenizer, and an MSRA-shaped data folder."""
    root = tmp_path_factory.mktemp("hf_compare")
    ckpt, data = root / "bert", root / "data"
    ckpt.mkdir()
    data.mkdir()
    chars = sorted({c for s, _ in TRAIN + TEST for c in s} - {OOV})
    # The layout of a Hugging Face snapshot without vocab.txt (as m3e-small ships): tokenizer.json + its config.
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(
        {t: i for i, t in enumerate(SPECIALS + chars)}, unk_token="[UNK]"))
    tokenizer.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tokenizer.save(str(ckpt / "tokenizer.json"))
    (ckpt / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "unk_token": "[UNK]", "cls_token": "[CLS]",
         "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]"}), encoding="utf-8")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(SPECIALS) + len(chars), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(str(ckpt))
    n_test = write_corpus(data / "test.txt", TEST)
    write_corpus(data / "train.txt", TRAIN)
    return {"root": root, "ckpt": ckpt, "data": data, "test_chars": n_test}


def run(args, cwd: Path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(SCRIPT)] + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_step_mode_times_both_sides(tiny):
    out = tiny["root"] / "step.json"
    proc = run(["--mode", "step", "--checkpoint", tiny["ckpt"], "--batch-size", 2, "--seq-len", 12, "--warmup", 1,
                "--steps", 2, "--threads", 1, "--lstm-units", 4, "--ours-variants", "graph",
                "--hf-variants", "float32", "--json-out", out], tiny["root"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["failures"] == []
    by_side = {r["side"]: r for r in report["results"]}
    assert set(by_side) == {"ours", "hf"}
    for side, r in by_side.items():
        assert len(r["step_ms"]) == 2 and len(r["losses"]) == 3, side
        assert all(ms > 0 for ms in r["step_ms"]), side
        assert min(r["step_ms"]) <= r["ms_median"] <= max(r["step_ms"])
        assert r["samples_per_s"] == pytest.approx(2 * 1000 / r["ms_mean"])
        assert r["threads"]["intra_op"] == 1
    assert by_side["ours"]["head"] == {"lstm_units": 4, "crf": True, "dropout": 0.1}
    assert by_side["ours"]["pretrained"]["left_random"] == 0 and by_side["ours"]["pretrained"]["loaded"] > 0
    (row,) = report["speedups"]
    assert row["speedup"] == pytest.approx(by_side["hf"]["ms_mean"] / by_side["ours"]["ms_mean"])
    assert isinstance(report["environment"]["cpu"]["amx"], bool)
    assert report["environment"]["versions"]["torch"]
    assert set(report["environment"]) == ENVIRONMENT_KEYS
    assert report["environment"]["threads"] == report["environment"]["inter_op_threads"] == 1
    assert all(len(r["loadavg_before"]) == len(r["loadavg_after"]) == 3 for r in report["results"])
    assert "| albert-ner | graph |" in proc.stdout and "| HF | float32 |" in proc.stdout
    # The tables, cell for cell as BENCHMARKS.md quotes them, from the numbers in the JSON.
    lines = proc.stdout.splitlines()
    assert ("| side | variant | precision | XLA | B x T | threads | first step | ms/step median | ms/step mean "
            "| samples/s |") in lines and "|---" * 10 + "|" in lines
    for name, r in (("albert-ner", by_side["ours"]), ("HF", by_side["hf"])):
        assert (f"| {name} | {r['variant']} | float32 | off | 2x12 | 1 | {r['first_step_s']:.1f} s | "
                f"{r['ms_median']:,.0f} | {r['ms_mean']:,.0f} | {r['samples_per_s']:.1f} |") in lines
    assert "| albert-ner variant | HF variant | speedup (HF ms / our ms) | >= target |" in lines
    assert f"| graph | float32 | {row['speedup']:.2f}x | {'yes' if row['meets_target'] else 'no'} (1.5x) |" in lines
    assert row["meets_target"] == (row["speedup"] >= 1.5) and f"# wrote {out}" in proc.stderr


@pytest.fixture(scope="module")
def hf_compare():
    """The script as a module: fine-tune mode imports no TensorFlow, so it runs in this process (fast)."""
    spec = importlib.util.spec_from_file_location("hf_compare_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def test_finetune_tags_every_test_char_and_resumes(tiny, hf_compare, capsys):
    out = tiny["root"] / "ft"
    args = ["--mode", "finetune", "--checkpoint", tiny["ckpt"], "--data-dir", tiny["data"], "--output-dir", out,
            "--epochs", 1, "--batch-size", 4, "--max-seq-len", 16, "--window-overlap", 4, "--threads", 1,
            "--dev-fraction", 0.25, "--checkpoint-every", 2]
    args = [str(a) for a in args]
    assert hf_compare.main(args) == 0
    first = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    test = res["test"]
    assert test["sentences"] == len(TEST) and test["chars"] == tiny["test_chars"]
    assert test["windows"] > len(TEST)  # the long sentence was split, none of it dropped
    assert 0.0 <= test["f1"] <= 1.0 and set(test["per_type"]) == {"PER", "LOC", "ORG"}
    assert "eval_f1 = " in first and "samples_per_sec = " in first
    train = res["train"]
    assert train["sentences"] == 9 and train["steps"] == 3 and train["samples"] == 9
    assert train["samples_per_s"] > 0 and train["sessions"] == 1 and len(train["epoch_losses"]) == 1
    assert res["tokenization"]["unk"]["occurrences"] == 1 and res["tokenization"]["unk"]["examples"] == [[OOV, 1]]
    assert res["labels"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]

    assert hf_compare.main(args) == 0  # finished: nothing left to train, evaluation only
    again = capsys.readouterr().out
    assert "at step 3/3 (training complete" in again
    res2 = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res2["train"] == train and res2["test"]["f1"] == test["f1"]

    with pytest.raises(SystemExit, match=r"state\.pt: holds a run with other settings \(lr: saved 5e-05, now 0\.001\)"):
        hf_compare.main(args + ["--lr", "1e-3"])


def test_finetune_stopped_by_sigterm_resumes_to_the_same_weights(tiny, hf_compare, capsys, monkeypatch):
    """A run stopped mid-epoch and re-run ends with the weights of an uninterrupted run, bit for bit."""
    common = ["--mode", "finetune", "--checkpoint", tiny["ckpt"], "--data-dir", tiny["data"], "--epochs", 2,
              "--batch-size", 2, "--max-seq-len", 16, "--window-overlap", 4, "--threads", 1, "--dev-fraction",
              0.25, "--checkpoint-every", 100, "--max-test-sentences", 1]
    whole, parts = tiny["root"] / "whole", tiny["root"] / "parts"
    assert hf_compare.main([str(a) for a in common + ["--output-dir", whole]]) == 0
    module = sys.modules["hf_finetune"]
    collate, calls = module.collate, []

    def collate_then_stop(*a, **k):  # SIGTERM arrives during the 4th training step
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return collate(*a, **k)

    monkeypatch.setattr(module, "collate", collate_then_stop)
    assert hf_compare.main([str(a) for a in common + ["--output-dir", parts]]) == 3
    assert "stopped by signal 15 at step 4/10" in capsys.readouterr().out
    monkeypatch.setattr(module, "collate", collate)
    assert hf_compare.main([str(a) for a in common + ["--output-dir", parts]]) == 0
    assert "resumed from" in capsys.readouterr().out
    a = torch.load(whole / "state.pt", weights_only=True)
    b = torch.load(parts / "state.pt", weights_only=True)
    assert b["progress"]["sessions"] == 2 and b["progress"]["step"] == a["progress"]["step"] == 10
    assert b["progress"]["epoch_losses"] == a["progress"]["epoch_losses"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
