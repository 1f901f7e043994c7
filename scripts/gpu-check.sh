#!/usr/bin/env bash
# Everything that needs a GPU, in one command (issue 5): installs the CUDA compiler, builds with
# the kernels required, then runs the GPU tests (kernels' device checks, greedy tokens on the
# device equal to the CPU's on both models in every tier) and prints the H2D and decode figures.
#
#   scripts/gpu-check.sh            # needs a CUDA driver and a GPU; the models in the cache
#
# Without a GPU the tests print "skipped: no CUDA device (reason)" and pass.
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC="$(scripts/install-cuda.sh)"
export NVCC SLUICE_REQUIRE_NVCC=1
if [ -x scripts/fetch-models.sh ]; then
  scripts/fetch-models.sh all >&2 || echo "gpu-check: fetching models failed; model tests will skip" >&2
fi

echo "== probe" >&2
cargo run --release --quiet -- run --device cuda --prompt "Hello" --max-tokens 4 --temperature 0 \
  || echo "gpu-check: sluice cannot use a GPU here (above); the GPU tests will say why they skip" >&2

echo "== GPU tests" >&2
cargo test --release --features gpu-tests --test gpu_e2e -- --nocapture --test-threads 1
echo "== GPU figures" >&2
cargo test --release --features gpu-tests --test gpu_bench -- --nocapture --test-threads 1
