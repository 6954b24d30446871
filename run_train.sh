#!/usr/bin/env bash
# Train a Chinese NER model on a notebook GPU (or CPU) with sensible defaults.
#
#   ./run_train.sh                              # MSRA in data/msra (downloaded if missing)
#   ./run_train.sh --data-dir my_data --epochs 5 --output-dir runs/mine
#   ./run_train.sh --init ernie-1.0             # fine-tune another pretrained encoder
#
# The encoder is fine-tuned from ALBERT-base-zh (brightmart albert_zh, downloaded once into
# $ALBERT_NER_CACHE) when it can be had; otherwise the script says so and trains from random
# initialisation with the best CPU-sized recipe measured so far (BENCHMARKS.md).
# Every flag is passed through to `albert-ner train` (see `albert-ner train --help`); a flag you
# give wins over the defaults below.
# Environment: VENV (virtualenv dir, default .venv), PYTHON (interpreter that creates it),
# ALBERT_NER_DATA_DIR, ALBERT_NER_VOCAB, ALBERT_NER_CACHE, ALBERT_NER_INIT (a known name or a
# checkpoint path; default albert_base_zh; "none" trains from random initialisation).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# shellcheck source=scripts/ensure-venv.sh
source scripts/ensure-venv.sh ""  # no extras; an empty argument so that our own "$@" is not passed on

args=("$@")
has_flag() {
  local flag
  for flag in "${args[@]+"${args[@]}"}"; do
    case "$flag" in "$1"|"$1"=*) return 0 ;; esac
  done
  return 1
}

# Fine-tuning a pretrained encoder: the original recipe's 3 epochs, encoder LR 5e-5 (the default
# with --init), dropout 0.1 inside the encoder (albert_zh configs ship 0.0).
pretrained_defaults=(--epochs 3 --encoder-dropout 0.1 --lexicon-dim 16 --lstm-units 128 --head-lr 1e-3
                     --batch-size 32)
# From random initialisation: run H3 of BENCHMARKS.md, more accurate than Jiagu and faster at
# tagging on CPU. Adding --pos-dim 16 (jieba POS features, run H1) gains 0.1 F1 point and tags
# about a quarter slower.
random_defaults=(--encoder-preset embedding-only --lexicon-dim 16 --input-dropout 0.5
                 --tag-scheme BIOES --lstm-units 128 --epochs 10 --head-lr 2e-3 --batch-size 32)

if has_flag --help || has_flag -h; then
  exec "$venv/bin/albert-ner" train --help
fi

init="${ALBERT_NER_INIT:-albert_base_zh}"
if has_flag --init; then
  defaults=("${pretrained_defaults[@]}")
elif [ "$init" != none ] && path="$("$venv/bin/albert-ner" download "$init")"; then
  echo "fine-tuning the pretrained encoder $init ($path)" >&2
  defaults=("${pretrained_defaults[@]}" --init "$path")
else
  echo "no pretrained encoder available (ALBERT_NER_INIT=$init): training from random initialisation" >&2
  defaults=("${random_defaults[@]}")
  # The character vocabulary: a flag, the env var, data/vocab.txt, or a download.
  if ! has_flag --vocab-file && [ -z "${ALBERT_NER_VOCAB:-}" ]; then
    if [ ! -f data/vocab.txt ]; then
      # A failed download (offline) is told in one line, without a Python traceback; exit status 2.
      "$venv/bin/python" -c '
import sys
from albert_ner.data.download import WORDPIECE_VOCAB, DownloadError, fetch
try:
    fetch(WORDPIECE_VOCAB, "data")
except DownloadError:
    sys.exit("error: no vocabulary: data/vocab.txt is missing and could not be downloaded from "
             + WORDPIECE_VOCAB.urls[0] + ". Put the Chinese WordPiece vocab.txt at data/vocab.txt or pass "
             "--vocab-file.")' || exit 2
    fi
    args+=(--vocab-file data/vocab.txt)
  fi
fi

exec "$venv/bin/albert-ner" train "${defaults[@]}" "${args[@]+"${args[@]}"}"
