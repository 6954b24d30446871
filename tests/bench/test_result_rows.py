"""bench/result_rows.py: the same Markdown row from albert-ner's eval_results.json and bench/hf_finetune.py's
results.json (the two sides of hf_finetune_pair.sh), and the comparison line."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "result_rows.py"


def _module():
    spec = importlib.util.spec_from_file_location("result_rows_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(f1, per_type):
    return {"precision": f1 + 0.01, "recall": f1 - 0.01, "f1": f1,
            "per_type": {k: {"precision": v, "recall": v, "f1": v, "support": 1} for k, v in per_type.items()}}


def test_rows_from_both_sides_and_the_comparison(tmp_path, capsys):
    ours, hf = tmp_path / "ours", tmp_path / "hf"
    ours.mkdir()
    hf.mkdir()
    (ours / "eval_results.json").write_text(json.dumps({
        "dev": _report(0.8, {}), "test": _report(0.7, {"LOC": 0.75, "ORG": 0.5, "PER": 0.72}), "best_epoch": 3,
        "train_samples_per_sec": 30.0}))
    (hf / "results.json").write_text(json.dumps({
        "side": "hf", "dev": _report(0.6, {}), "test": _report(0.55, {"LOC": 0.6, "PER": 0.7}),
        "train": {"samples_per_s": 12.0}}))
    out = tmp_path / "pair.json"
    assert _module().main(["--compare", "--json-out", str(out), f"ours={ours}", f"HF={hf / 'results.json'}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| ours | 0.8000 (3) | 0.7100 | 0.6900 | **0.7000** | 0.7500 / 0.5000 / 0.7200 | 30.0 |"
    assert lines[3] == "| HF | 0.6000 | 0.5600 | 0.5400 | **0.5500** | 0.6000 / - / 0.7000 | 12.0 |"
    assert lines[4] == "# ours: 2.50x the samples/s of HF; test F1 +0.1500"
    saved = json.loads(out.read_text())
    assert list(saved) == ["ours", "HF"] and saved["HF"]["train_samples_per_sec"] == 12.0


def test_a_run_whose_last_process_trained_no_steps_has_no_speed(tmp_path, capsys):
    """Before the step timing was checkpointed, re-running a finished `albert-ner train` recorded
    train_samples_per_sec None; such files still print."""
    (tmp_path / "eval_results.json").write_text(json.dumps({
        "dev": _report(0.8, {}), "test": _report(0.7, {}), "best_epoch": 1, "train_samples_per_sec": None}))
    assert _module().main(["--compare", f"ours={tmp_path}", f"again={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].endswith("| **0.7000** | - / - / - | - |") and len(lines) == 4  # no comparison line
