#!/usr/bin/env bash
# Benchmark (issue 12): what the head's parts add to m3e-small on MSRA. Fine-tunes the `pretrained` recipe three
# times on the same sentences, one after the other: as it is (BiLSTM 128 + jieba word boundaries 16 wide + CRF),
# without the BiLSTM (--lstm-units 0) and without the word boundaries (--lexicon-dim 0); prints one Markdown row
# each (test P/R/F1 per type, train samples/s). Each run resumes when the same command runs again.
#
#   bench/m3e_ablation.sh RUN_DIR
# Env: MAX_TRAIN_SENTENCES (0: all of MSRA train), EPOCHS (3), SHARED (default ../shared), TRAIN_ARGS (extra
# `albert-ner train` flags for all three). Needs m3e-small in the cache (`albert-ner download m3e-small`).
set -euo pipefail
run=${1:?usage: $0 RUN_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
read -r -a extra <<< "${TRAIN_ARGS:-}"
variants=("full:" "no-bilstm:--lstm-units 0" "no-word-boundaries:--lexicon-dim 0")
mkdir -p "$run"
for v in "${variants[@]}"; do
  name=${v%%:*}
  read -r -a flags <<< "${v#*:}"
  "$here/.venv/bin/albert-ner" train --init m3e-small --recipe pretrained --data-dir "$shared/data/msra" \
    --output-dir "$run/$name" --epochs "${EPOCHS:-3}" --max-train-sentences "${MAX_TRAIN_SENTENCES:-0}" \
    --checkpoint-every 200 "${flags[@]}" "${extra[@]}"
done

"$here/.venv/bin/python" - "$run" "${variants[@]}" <<'EOF'
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
print("| variant | flags | dev F1 (best epoch) | test P | test R | test F1 | test F1 LOC / ORG / PER | train samples/s |")
print("|---|---|---|---|---|---|---|---|")
for v in sys.argv[2:]:
    name, flags = v.split(":", 1)
    r = json.loads((run / name / "eval_results.json").read_text(encoding="utf-8"))
    t = r["test"]
    per = " / ".join(f"{t['per_type'][k]['f1']:.4f}" if k in t["per_type"] else "-" for k in ("LOC", "ORG", "PER"))
    print(f"| {name} | `{flags or '(recipe)'}` | {r['dev']['f1']:.4f} ({r['best_epoch']}) | {t['precision']:.4f} | "
          f"{t['recall']:.4f} | **{t['f1']:.4f}** | {per} | {r['train_samples_per_sec']:.1f} |")
EOF
