#!/usr/bin/env bash
# Train a Chinese NER model on a notebook GPU (or CPU) with sensible defaults.
#
#   ./run_train.sh                              # MSRA in data/msra (downloaded if missing)
#   ./run_train.sh --data-dir my_data --epochs 5 --output-dir runs/mine
#
# Every flag is passed through to `albert-ner train` (see `albert-ner train --help`).
# Environment: VENV (virtualenv dir, default .venv), PYTHON (interpreter that creates it),
# ALBERT_NER_DATA_DIR, ALBERT_NER_VOCAB.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# shellcheck source=scripts/ensure-venv.sh
source scripts/ensure-venv.sh

# Defaults for training from random initialisation (the best CPU-sized recipe in BENCHMARKS.md);
# any flag given on the command line comes later and wins.
defaults=(--encoder-preset embedding-only --lexicon-dim 16 --bigram-dim 64 --lstm-units 128
          --epochs 10 --head-lr 2e-3 --batch-size 32)
args=("$@")
has_flag() {
  local flag
  for flag in "${args[@]+"${args[@]}"}"; do
    case "$flag" in "$1"|"$1"=*) return 0 ;; esac
  done
  return 1
}

# The character vocabulary: a flag, the env var, data/vocab.txt, or a download.
if ! has_flag --vocab-file && [ -z "${ALBERT_NER_VOCAB:-}" ]; then
  if [ ! -f data/vocab.txt ]; then
    "$venv/bin/python" -c 'from albert_ner.data.download import WORDPIECE_VOCAB, fetch; fetch(WORDPIECE_VOCAB, "data")' || {
      echo "error: no vocabulary. Put the Chinese WordPiece vocab.txt at data/vocab.txt or pass --vocab-file." >&2
      exit 2
    }
  fi
  args+=(--vocab-file data/vocab.txt)
fi

echo "no pretrained encoder configured: training from random initialisation" >&2
exec "$venv/bin/albert-ner" train "${defaults[@]}" "${args[@]}"
