#!/usr/bin/env bash
# The Python package's tests: builds the abi3 wheel with maturin, installs it into a venv with
# the pinned test packages (python/requirements-test.txt: maturin, pytest, ray[data]), and runs
# pytest on SmolLM2 (the engine, streaming, batches, perplexity, errors, the GIL, and the Ray
# Data example on a local 2-actor Ray). scripts/test.sh calls it; it also runs on its own.
#
#   scripts/test-python.sh [pytest arguments ...]
#
# The venv lives at ${SLUICE_PYTHON_VENV:-$SLUICE_HOME/python-venv} and is rebuilt only when the
# pins or the base Python change. Anything it cannot set up gets one sentence naming the missing
# piece and the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE_HOME="${SLUICE_HOME:-$HOME/.cache/sluice}"
venv="${SLUICE_PYTHON_VENV:-$SLUICE_HOME/python-venv}"
reqs="python/requirements-test.txt"
base="${PYTHON:-python3}"

die() { echo "test-python: $*" >&2; exit 1; }

command -v "$base" >/dev/null 2>&1 \
  || die "no $base on PATH: the Python tests need Python 3.9 or newer (Debian: apt-get install python3 python3-venv)"

want="$(sha256sum "$reqs" | cut -d' ' -f1) $("$base" -c 'import sys; print(sys.version.split()[0])')"
stamp="$venv/.sluice-python-pins"
if ! { [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$base" -m venv "$venv" >/dev/null 2>&1 \
    || { rm -rf "$venv"; die "$base cannot create a virtual environment: install it with 'apt-get install python3-venv' (Debian)"; }
  echo "test-python: installing $reqs into $venv ..." >&2
  log="$(mktemp)"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >"$log" 2>&1; then
    tail -n 5 "$log" | sed 's/^/  pip: /' >&2
    rm -rf "$venv" "$log"
    die "pip could not install the pinned packages of $reqs (is PyPI reachable?); run scripts/test-python.sh again once it is"
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi

scripts/fetch-models.sh >/dev/null
# The CLI the tests compare with, and the wheel (maturin shares cargo's release build).
cargo build --release --quiet --bin sluice
rm -rf target/wheels
"$venv/bin/maturin" build --release --quiet --manifest-path python/Cargo.toml \
  --interpreter "$venv/bin/python" --out target/wheels >/dev/null
wheel="$(ls target/wheels/sluice-*-abi3-*.whl 2>/dev/null | head -n 1)"
[ -n "$wheel" ] || die "maturin built no abi3 wheel in target/wheels"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
echo "test-python: installed $(basename "$wheel")" >&2

cd python
SLUICE_BIN="$PWD/../target/release/sluice" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
