#!/usr/bin/env bash
# Sourced by run_train.sh and run_tests.sh: create or reuse the virtualenv and install the package.
# Usage: source scripts/ensure-venv.sh EXTRAS   (EXTRAS e.g. "dev,reference", or "" for none); sets $venv.
# Always pass EXTRAS: `source` without arguments hands the caller's own arguments to this script.
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"
extras="${1:-}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating virtualenv $venv" >&2
  "$python" -m venv "$venv"
fi
# Reinstall when the package metadata changed since the last install with these extras.
stamp="$venv/.albert-ner-installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || { [ -n "${PIP_CONSTRAINT:-}" ] && [ "$PIP_CONSTRAINT" -nt "$stamp" ]; }; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
