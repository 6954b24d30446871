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

"$here/.venv/bin/python" "$here/bench/result_rows.py" "full (recipe)=$run/full" \
  "no BiLSTM (--lstm-units 0)=$run/no-bilstm" "no word boundaries (--lexicon-dim 0)=$run/no-word-boundaries"
