#!/usr/bin/env bash
# The test command: fetches the small reference models (idempotent), then runs every test.
# Tests that need a model read it from the cache; they fail with a how-to message if it is
# missing rather than skipping silently.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh all
cargo test --workspace "$@"
