"""bench/pretrain_compare.py end to end on a tiny random encoder: our pretraining step and Hugging Face's
*ForMaskedLM / *ForPreTraining time real steps on the very same masked batches made from corpus text."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("ALBERT_NER_REQUIRE_REFERENCE"):  # CI: these checks must run, never skip
    import torch  # noqa: F401
    import transformers  # noqa: F401
else:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "pretrain_compare.py"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The environment block both bench/hf_compare.py and bench/pretrain_compare.py write (their shared module).
ENVIRONMENT_KEYS = {"cpu", "logical_cpus", "usable_cpus", "python", "platform", "versions", "threads",
                    "inter_op_threads", "loadavg", "env"}
LINES = ["我们今天去北京。上海的天气很好！", "中国人民银行发布新政策。", "这家酒店服务很好，房间干净。",
         "新华社记者报道：经济发展很快。", "张三在北京工作，李四去上海。"] * 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_compare")
    chars = sorted({c for line in LINES for c in line})
    (root / "vocab.txt").write_text("\n".join(SPECIALS + chars) + "\n", encoding="utf-8")
    (root / "corpus.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    bert = {"vocab_size": len(SPECIALS) + len(chars), "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu", "max_position_embeddings": 64,
            "type_vocab_size": 2, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    (root / "bert_config.json").write_text(json.dumps(bert), encoding="utf-8")
    return root


def run(files, *args):
    out = files / f"report_{len(list(files.glob('report_*')))}.json"
    cmd = [sys.executable, str(SCRIPT), "--vocab-file", files / "vocab.txt", "--corpus", files / "corpus.txt",
           "--batch-size", 2, "--seq-len", 16, "--warmup", 1, "--steps", 1, "--threads", 1,
           "--hf-variants", "float32", "--json-out", out, "--work-dir", files / f"work_{out.stem}", *args]
    proc = subprocess.run([str(a) for a in cmd], cwd=files, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"# wrote {out}" in proc.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    check_tables(report, proc.stdout)
    return report, proc.stdout, files / f"work_{out.stem}"


def check_tables(report, stdout):
    """The step and ratio tables, cell for cell as BENCHMARKS.md quotes them, from the numbers in the JSON."""
    lines = stdout.splitlines()
    assert ("| side | variant | precision | XLA | B x T | threads | first step | ms/step median | ms/step mean "
            "| samples/s | tokens/s | masked tokens/s |") in lines and "|---" * 12 + "|" in lines
    for r in report["results"]:
        name = "albert-ner" if r["side"] == "ours" else "HF " + r["model_class"]
        assert (f"| {name} | {r['variant']} | {r['precision']} | {'on' if r['jit'] else 'off'} | 2x16 | 1 | "
                f"{r['first_step_s']:.1f} s | {r['ms_median']:,.0f} | {r['ms_mean']:,.0f} | "
                f"{r['samples_per_s']:.1f} | {r['tokens_per_s']:,.0f} | {r['masked_tokens_per_s']:,.0f} |") in lines
    assert "| albert-ner variant | HF variant | speed ratio (HF ms / our ms) |" in lines
    for row in report["ratios"]:
        assert f"| {row['ours']} | {row['hf']} | {row['speedup']:.2f}x |" in lines


def check_common(report, work):
    prepared = report["prepared"]
    assert report["failures"] == []
    by_side = {r["side"]: r for r in reversed(report["results"])}  # the first HF run: the class's own forward
    assert set(by_side) == {"ours", "hf"}
    assert by_side["hf"]["scoring"] == "all"
    # The batches: our masking of real corpus text, the same for both sides (each child counts what it fed).
    with np.load(work / "batches.npz") as data:
        labels, lengths = data["mlm_labels"], data["lengths"]
    assert labels.shape == (2, 2, 16)
    masked = int(np.count_nonzero(labels >= 0))
    assert prepared["fed"]["masked_labels"] == masked > 0 and prepared["fed"]["tokens"] == int(lengths.sum())
    for r in report["results"]:
        side = r["side"]
        assert r["fed"] == prepared["fed"], side
        assert len(r["step_ms"]) == 1 and len(r["losses"]) == 2 and r["step_ms"][0] > 0, side
        assert r["tokens_per_s"] == pytest.approx(lengths[1].sum() / (r["step_ms"][0] / 1000)), side
        assert r["masked_tokens_per_s"] == pytest.approx(np.count_nonzero(labels[1] >= 0) / (r["step_ms"][0] / 1000))
        assert r["samples_per_s"] == pytest.approx(2 * 1000 / r["ms_mean"])
        assert r["threads"]["intra_op"] == 1
    row = report["ratios"][0]
    assert row["speedup"] == pytest.approx(by_side["hf"]["ms_mean"] / by_side["ours"]["ms_mean"])
    assert 0.05 < prepared["batches"]["masked_share"] < 0.4
    assert prepared["corpus"]["lines"] == len(LINES)
    assert set(report["environment"]) == ENVIRONMENT_KEYS
    assert report["environment"]["threads"] == report["environment"]["inter_op_threads"] == 1
    assert all(len(r["loadavg_before"]) == len(r["loadavg_after"]) == 3 for r in report["results"])
    assert len(report["ratios"]) == len(report["results"]) - 1  # one ours variant against each HF run
    assert row["tokens_per_s_ratio"] == pytest.approx(by_side["ours"]["tokens_per_s"] / by_side["hf"]["tokens_per_s"])
    return by_side


def test_alberts_layout_runs_sentence_order_on_both_sides(files):
    report, stdout, work = run(files, "--encoder-preset", "tiny", "--ours-variants", "graph", "--hf-scoring", "both")
    by_side = check_common(report, work)
    # HF scored at the masked positions only computes the class's own loss (no dropout in the tiny preset).
    full, masked = [r for r in report["results"] if r["side"] == "hf"]
    assert masked["scoring"] == "masked" and masked["variant"] == "float32, masked only"
    assert masked["losses"][0] == pytest.approx(full["losses"][0], rel=1e-5)
    assert len(report["ratios"]) == 2
    assert report["prepared"]["sop"] is True  # the tiny preset is brightmart's ALBERT layout: SOP as pretrain runs it
    assert by_side["hf"]["model_class"] == "BertForPreTraining"
    with np.load(work / "batches.npz") as data:
        assert set(data.files) == {"token_ids", "segment_ids", "lengths", "mlm_labels", "sop_labels"}
        assert np.any(data["segment_ids"] == 1)
    assert "| albert-ner | graph |" in stdout and "| HF BertForPreTraining | float32 |" in stdout


def test_bert_layout_is_masked_lm_only(files):
    report, stdout, work = run(files, "--encoder-config", files / "bert_config.json", "--ours-variants", "xla")
    by_side = check_common(report, work)
    assert report["prepared"]["sop"] is False and report["prepared"]["hf_kind"] == "bert"
    assert by_side["hf"]["model_class"] == "BertForMaskedLM" and by_side["ours"]["jit"] is True
    with np.load(work / "batches.npz") as data:
        assert "sop_labels" not in data.files and not np.any(data["segment_ids"])
    assert "| HF BertForMaskedLM | float32 |" in stdout
