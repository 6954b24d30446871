"""Markdown rows of MSRA fine-tuning results for BENCHMARKS.md, one per run, from either side's result file.

A run is LABEL=PATH, PATH an `albert-ner train` output directory (its eval_results.json) or a bench/hf_finetune.py
output directory (its results.json), or either file itself. Used by bench/hf_finetune_pair.sh and
bench/m3e_ablation.sh, so both print the same columns.

    python bench/result_rows.py "full=runs/ablation-8k/full" "HF=runs/hf-8k" [--compare] [--json-out FILE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

TYPES = ("LOC", "ORG", "PER")
OURS_FILE, HF_FILE = "eval_results.json", "results.json"


def read_result(path: Path) -> Dict[str, Any]:
    """{"dev", "test", "best_epoch", "train_samples_per_sec"} of one run, whichever side wrote it."""
    if path.is_dir():
        path = path / OURS_FILE if (path / OURS_FILE).is_file() else path / HF_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("side") == "hf":
        return {"dev": raw["dev"], "test": raw["test"], "best_epoch": None,
                "train_samples_per_sec": raw["train"]["samples_per_s"]}
    return {"dev": raw["dev"], "test": raw["test"], "best_epoch": raw["best_epoch"],
            "train_samples_per_sec": raw["train_samples_per_sec"]}


def markdown(rows: List[Tuple[str, Dict[str, Any]]]) -> str:
    """Header and one row per (label, result)."""
    lines = ["| run | dev F1 (best epoch) | test P | test R | test F1 | test F1 LOC / ORG / PER | train samples/s |",
             "|---|---|---|---|---|---|---|"]
    for label, r in rows:
        t = r["test"]
        per = " / ".join(f"{t['per_type'][k]['f1']:.4f}" if k in t["per_type"] else "-" for k in TYPES)
        best = f" ({r['best_epoch']})" if r["best_epoch"] is not None else ""
        speed = r["train_samples_per_sec"]  # None in a rerun of a finished run by code before the timing checkpoint
        lines.append(f"| {label} | {r['dev']['f1']:.4f}{best} | {t['precision']:.4f} | {t['recall']:.4f} | "
                     f"**{t['f1']:.4f}** | {per} | {'-' if speed is None else f'{speed:.1f}'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=PATH")
    p.add_argument("--compare", action="store_true", help="also print the first run's speed and F1 against the second")
    p.add_argument("--json-out", type=Path, default=None, help="write {label: result} here")
    args = p.parse_args(argv)
    rows = []
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            p.error(f"{spec!r}: expected LABEL=PATH")
        rows.append((label, read_result(Path(path))))
    print(markdown(rows))
    (a_label, a), (b_label, b) = (rows + [(None, None)])[:2]
    if args.compare and b is not None and a["train_samples_per_sec"] and b["train_samples_per_sec"]:
        print(f"# {a_label}: {a['train_samples_per_sec'] / b['train_samples_per_sec']:.2f}x the samples/s of "
              f"{b_label}; test F1 {a['test']['f1'] - b['test']['f1']:+.4f}")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(dict(rows), indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
