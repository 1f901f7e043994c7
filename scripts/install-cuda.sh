#!/usr/bin/env bash
# Installs the CUDA 13.0 compiler toolchain from PyPI into a virtual environment and prints the
# path of nvcc. build.rs finds it there by itself (or set NVCC to the printed path).
#
#   scripts/install-cuda.sh            # venv at ${SLUICE_CUDA_VENV:-$HOME/.cache/sluice/cuda-venv}
#
# Idempotent: a second run with the same pins does no network work. Only the compiler is
# installed (nvcc, its crt headers, NVVM/cicc, the runtime headers and CCCL); no driver, no GPU
# needed. The pins are the newest 13.0.x of each package.
set -euo pipefail

venv="${SLUICE_CUDA_VENV:-$HOME/.cache/sluice/cuda-venv}"
pins=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
)
stamp="$venv/.sluice-cuda-pins"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${pins[*]}" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
  echo "${pins[*]}" > "$stamp"
fi

nvcc="$(find "$venv" -path '*/bin/nvcc' -type f | head -n 1)"
if [ -z "$nvcc" ]; then
  echo "install-cuda.sh: nvidia-cuda-nvcc installed into $venv but no bin/nvcc was found there" >&2
  exit 1
fi
chmod +x "$nvcc" 2>/dev/null || true
"$nvcc" --version >&2
echo "$nvcc"
