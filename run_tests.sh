#!/usr/bin/env bash
# Run the test suite (CPU, a few minutes): creates or reuses .venv with the [dev,reference,sagemaker]
# extras (reference = torch + transformers, whose models the pretrained-weight loaders are checked
# against; sagemaker = the SageMaker SDK and moto, the local AWS double the launcher is tested on).
# Extra arguments go to pytest, e.g. ./run_tests.sh tests/crf -x
# Tests read MSRA and the vocab from ../shared (override with ALBERT_NER_SHARED).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PIP_CONSTRAINT="${PIP_CONSTRAINT:-$PWD/scripts/test-constraints.txt}"
# shellcheck source=scripts/ensure-venv.sh
source scripts/ensure-venv.sh dev,reference,sagemaker
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$venv/bin/python" -m pytest "$@"
