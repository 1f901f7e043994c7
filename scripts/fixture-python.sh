#!/usr/bin/env bash
# Prints the path of a Python that can run the test fixture scripts (tests/fixtures/*.py): a
# virtual environment under the cache with the pinned packages of tests/fixtures/requirements.txt
# (scripts/python-venv.sh makes it, or finds it made).
#
#   PY="$(scripts/fixture-python.sh)"   # venv at ${SLUICE_FIXTURE_VENV:-$SLUICE_HOME/fixture-venv}
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE_HOME="${SLUICE_HOME:-$HOME/.cache/sluice}"
# Python 3.11: the pinned numpy needs it.
exec scripts/python-venv.sh fixture-python tests/fixtures/requirements.txt \
  "${SLUICE_FIXTURE_VENV:-$SLUICE_HOME/fixture-venv}" 11 gguf numpy safetensors openai
