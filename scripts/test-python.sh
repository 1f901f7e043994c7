#!/usr/bin/env bash
# The Python package's tests: builds the abi3 wheel with maturin, installs it into a venv with
# the pinned test packages (python/requirements-test.txt: maturin, pytest, ray[data]), and runs
# pytest on SmolLM2 (the engine, streaming, batches, perplexity, errors, the GIL, and the Ray
# Data example on a local 2-actor Ray). scripts/test.sh calls it; it also runs on its own.
#
#   scripts/test-python.sh [pytest arguments ...]
#
# The venv lives at ${SLUICE_PYTHON_VENV:-$SLUICE_HOME/python-venv} (scripts/python-venv.sh makes
# it, and remakes it only when the pins or the base Python change). Anything it cannot set up gets
# one sentence naming the missing piece and the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE_HOME="${SLUICE_HOME:-$HOME/.cache/sluice}"
py="$(scripts/python-venv.sh test-python python/requirements-test.txt \
  "${SLUICE_PYTHON_VENV:-$SLUICE_HOME/python-venv}" 9 maturin pytest ray)"
bin="$(dirname "$py")"

die() { echo "test-python: $*" >&2; exit 1; }

scripts/fetch-models.sh >/dev/null
# The CLI the tests compare with, and the wheel (maturin shares cargo's release build).
cargo build --release --quiet --bin sluice
rm -rf target/wheels
"$bin/maturin" build --release --quiet --manifest-path python/Cargo.toml \
  --interpreter "$py" --out target/wheels >/dev/null
wheel="$(ls target/wheels/sluice-*-abi3-*.whl 2>/dev/null | head -n 1)"
[ -n "$wheel" ] || die "maturin built no abi3 wheel in target/wheels"
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
echo "test-python: installed $(basename "$wheel")" >&2

cd python
SLUICE_BIN="$PWD/../target/release/sluice" "$py" -m pytest -q -p no:cacheprovider tests "$@"
