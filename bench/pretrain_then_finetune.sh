#!/usr/bin/env bash
# Benchmark (issue 13): pretrain an encoder on ../shared/corpus for a fixed step budget, then fine-tune MSRA
# NER on it with the recipe of run M1 (m3e-small fine-tuned directly), and report test F1 and held-out MLM
# accuracy before/after (RUN/pretrain/pretrain_results.json, RUN/ner/eval_results.json).
# Both stages resume when the same command runs again (checkpoints every 200 steps), so a budget longer than
# a session is finished by rerunning it.
#
#   bench/pretrain_then_finetune.sh RUN_DIR continual   # continue m3e-small (needs `albert-ner download m3e-small`)
#   bench/pretrain_then_finetune.sh RUN_DIR scratch     # the cpu-small preset from random initialisation
#   bench/pretrain_then_finetune.sh RUN_DIR random      # no pretraining: fine-tune cpu-small from random init,
#                                                       # the baseline `scratch` is measured against
# Env: STEPS (default 2400, about 2 hours of m3e-small steps on a 2-core CPU), SHARED (default ../shared),
# FINETUNE_ARGS (extra `albert-ner train` flags, e.g. "--encoder-lr 2e-4"; give `scratch` and `random` the same).
set -euo pipefail
usage="usage: $0 RUN_DIR continual|scratch|random"
run=${1:?$usage}
mode=${2:?$usage}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
steps=${STEPS:-2400}
cli="$here/.venv/bin/albert-ner"
small=(--encoder-preset cpu-small --vocab-file "$shared/pretrained/vocab.txt")  # `scratch` and `random`
case $mode in
  continual) encoder=(--init m3e-small --learning-rate 1e-4) ;;
  scratch) encoder=("${small[@]}" --learning-rate 5e-4) ;;
  random) ;;
  *) echo "mode must be continual, scratch or random" >&2; exit 2 ;;
esac
read -r -a finetune_args <<< "${FINETUNE_ARGS:-}"
mkdir -p "$run"
if [ "$mode" = random ]; then  # the same encoder as `scratch`, not pretrained
  start=("${small[@]}")
else
  "$cli" pretrain "$shared"/corpus/zh-*.txt.xz --output-dir "$run/pretrain" "${encoder[@]}" \
    --max-seq-len 128 --batch-size 32 --max-steps "$steps" --epochs 4 --warmup-ratio 0.06 \
    --heldout-fraction 0.01 --eval-batches 50 --checkpoint-every 200 --log-every 50
  start=(--init "$run/pretrain")
fi
"$cli" train "${start[@]}" --recipe pretrained --data-dir "$shared/data/msra" --output-dir "$run/ner" \
  --checkpoint-every 200 "${finetune_args[@]}"
