"""Benchmark: train on the full MSRA train set and evaluate on the full test set (CPU-sized config).

Not a test: it takes a long time. Prints a Markdown row for BENCHMARKS.md and writes
OUTPUT_DIR/eval_results.json. Any `albert-ner train` flag can be appended to override the defaults:

    python bench/msra_cpu.py --output-dir bench/runs/cpu-small [--epochs 4 --lexicon-dim 16 ...]
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("ALBERT_NER_SHARED", HERE.parent.parent / "shared"))

DEFAULTS = [
    "--data-dir", str(SHARED / "data" / "msra"),
    "--vocab-file", str(SHARED / "pretrained" / "vocab.txt"),
    "--encoder-preset", "embedding-only",
    "--lexicon-dim", "16",
    "--bigram-dim", "64",
    "--lstm-units", "128",
    "--epochs", "10",
    "--batch-size", "32",
    "--head-lr", "2e-3",
    "--max-seq-len", "128",
    "--log-every", "200",
]


def main(argv: list[str]) -> int:
    from albert_ner.cli import main as cli_main
    from albert_ner.config import load_json

    args = DEFAULTS + argv  # later flags win in argparse
    out = args[args.index("--output-dir") + 1] if "--output-dir" in args else "bench/runs/msra-cpu"
    if "--output-dir" not in args:
        args += ["--output-dir", out]
    started = time.time()
    code = cli_main(["train", *args])
    if code:
        return code
    wall = time.time() - started
    r = load_json(Path(out) / "eval_results.json")
    t = r["test"]
    per_type = " ".join(f"{k} {v['f1']:.4f}" for k, v in sorted(t["per_type"].items()))
    print(f"\ncommand: python bench/msra_cpu.py {' '.join(argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| config | test P | test R | test F1 | per type F1 | best epoch/run | train samples/s | wall |")
    print(f"| {' '.join(argv) or 'defaults'} | {t['precision']:.4f} | {t['recall']:.4f} | {t['f1']:.4f} | "
          f"{per_type} | {r['best_epoch']}/{r['epochs_run']} | {r['train_samples_per_sec'] or 0:.0f} | "
          f"{wall / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
