#!/usr/bin/env bash
# The test command: fetches the small reference models (idempotent), then runs every test.
# Tests that need a model read it from the cache; they fail with a how-to message if it is
# missing rather than skipping silently.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh all
# F16 copies of SmolLM2 (GGUF and HF safetensors), made by an independent script from PyPI's
# gguf package; the unquantised-weights tests compare sluice's tokens on both.
models="${SLUICE_HOME:-$HOME/.cache/sluice}/models"
if [ ! -f "$models/smollm2-135m-f16.gguf" ] || [ ! -f "$models/smollm2-135m-f16-hf/model.safetensors" ]; then
  python3 tests/fixtures/make_f16_models.py
fi
cargo test --workspace "$@"
