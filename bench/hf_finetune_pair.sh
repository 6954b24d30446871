#!/usr/bin/env bash
# Benchmark (issue 12): m3e-small fine-tuned on MSRA twice, one after the other on the same CPU: by albert-ner
# (BiLSTM-CRF head, the `pretrained` recipe) and by Hugging Face BertForTokenClassification with a plain PyTorch
# loop (bench/hf_compare.py --mode finetune). Same training sentences and dev hold-out, epochs, encoder LR, batch
# size and sequence length; the full test set scored with the same seqeval report. Prints one Markdown row per side
# (test P/R/F1 per type, train samples/s) and writes RUN_DIR/pair.json. Both sides resume when re-run.
#
#   bench/hf_finetune_pair.sh RUN_DIR
# Env: EPOCHS (3), LR (5e-5, the encoder's on our side, every parameter's on HF's), MAX_TRAIN_SENTENCES (0: all
# of MSRA train), THREADS (2), SHARED (default ../shared), OURS_ARGS / HF_ARGS (extra flags for each side).
# Needs m3e-small in the cache (`albert-ner download m3e-small`) and the [reference] extra (torch, transformers).
set -euo pipefail
run=${1:?usage: $0 RUN_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
epochs=${EPOCHS:-3}
lr=${LR:-5e-5}
max_train=${MAX_TRAIN_SENTENCES:-0}
threads=${THREADS:-2}
py="$here/.venv/bin/python"
read -r -a ours_args <<< "${OURS_ARGS:-}"
read -r -a hf_args <<< "${HF_ARGS:-}"
checkpoint=$("$py" -c "from pretrained.cache import resolve_pretrained; print(resolve_pretrained('m3e-small'))")
mkdir -p "$run"

"$here/.venv/bin/albert-ner" train --init m3e-small --recipe pretrained --data-dir "$shared/data/msra" \
  --output-dir "$run/ours" --epochs "$epochs" --encoder-lr "$lr" --batch-size 32 --max-seq-len 128 \
  --max-train-sentences "$max_train" --checkpoint-every 200 "${ours_args[@]}"
"$py" "$here/bench/hf_compare.py" --mode finetune --checkpoint "$checkpoint" --data-dir "$shared/data/msra" \
  --output-dir "$run/hf" --epochs "$epochs" --lr "$lr" --batch-size 32 --max-seq-len 128 \
  --max-train-sentences "$max_train" --threads "$threads" "${hf_args[@]}"

"$py" - "$run" <<'EOF'
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
ours = json.loads((run / "ours" / "eval_results.json").read_text(encoding="utf-8"))
hf = json.loads((run / "hf" / "results.json").read_text(encoding="utf-8"))
rows = [("albert-ner (m3e-small + BiLSTM-CRF)", ours["test"], ours["train_samples_per_sec"]),
        (f"HF {hf['model_class']} (m3e-small + linear)", hf["test"], hf["train"]["samples_per_s"])]
print("| side | test P | test R | test F1 | F1 LOC / ORG / PER | train samples/s |")
print("|---|---|---|---|---|---|")
for name, t, speed in rows:
    per = " / ".join(f"{t['per_type'][k]['f1']:.4f}" if k in t["per_type"] else "-" for k in ("LOC", "ORG", "PER"))
    print(f"| {name} | {t['precision']:.4f} | {t['recall']:.4f} | **{t['f1']:.4f}** | {per} | {speed:.1f} |")
print(f"# our train step: {rows[0][2] / rows[1][2]:.2f}x HF's samples/s; test F1 {rows[0][1]['f1'] - rows[1][1]['f1']:+.4f}")
(run / "pair.json").write_text(json.dumps({"ours": {"test": ours["test"], "train_samples_per_sec": rows[0][2]},
                                           "hf": {"test": hf["test"], "train_samples_per_sec": rows[1][2]}},
                                          indent=1), encoding="utf-8")
EOF
