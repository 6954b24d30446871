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

"$py" "$here/bench/result_rows.py" --compare --json-out "$run/pair.json" \
  "albert-ner (m3e-small + BiLSTM-CRF)=$run/ours" "HF BertForTokenClassification (m3e-small + linear)=$run/hf"
