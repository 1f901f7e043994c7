#!/usr/bin/env bash
# The test command. On a fresh machine it installs what the tests need, then runs every test:
#   - the small reference models (scripts/fetch-models.sh, verified by sha256);
#   - the test scripts' pinned Python packages (gguf, numpy, safetensors, openai), in a venv under the cache
#     (scripts/fixture-python.sh), and the F16 copies of SmolLM2 they make;
#   - a C++ compiler (build.rs host-compiles the CUDA headers for their tests; the C ABI test
#     compiles capi/examples/generate.c) and a TrueType font (the bench plots), from Debian's
#     packages when running as root;
#   - the Python package's test venv (maturin, pytest, ray[data]; scripts/test-python.sh), which
#     builds the wheel and runs pytest after the cargo tests.
# Every step is idempotent and quiet on a second run. What it cannot install gets one sentence
# naming the missing piece and the command that installs it. Tests that need a model read it from
# the cache; they fail with a how-to message if it is missing rather than skipping silently.
#
#   scripts/test.sh [cargo test arguments ...]
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "test.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 \
  || die "no cargo on PATH: install Rust with rustup (https://rustup.rs), then run scripts/test.sh again"

# Debian packages: (what must exist, the package that provides it). As root they are installed;
# otherwise the sentence names the command.
apt_updated=0
need_deb() {
  local have="$1" pkg="$2" what="$3"
  if eval "$have" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing $pkg ($what) from Debian's packages ..." >&2
    if [ "$apt_updated" = 0 ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
      || die "apt-get could not install $pkg ($what); install it by hand: apt-get install $pkg"
    eval "$have" >/dev/null 2>&1 || die "$pkg was installed but $what is still missing"
  else
    die "$what is missing: install it with 'sudo apt-get install $pkg' (Debian/Ubuntu), then run scripts/test.sh again"
  fi
}
need_deb "command -v c++" g++ "a C++ compiler (build.rs compiles the CUDA headers for the host tests)"
need_deb "command -v cc" gcc "a C compiler (tests/c_abi.rs compiles capi/examples/generate.c)"
# The same lookup as bench/harness/plot.rs: SLUICE_FONT, else any TrueType font under /usr/share/fonts.
need_deb '[ -n "${SLUICE_FONT:-}" ] && [ -f "$SLUICE_FONT" ] || [ -n "$(find /usr/share/fonts -name "*.ttf" -print -quit 2>/dev/null)" ]' \
  fonts-dejavu-core "a TrueType font (the PNG and SVG plots of sluice bench)"

scripts/fetch-models.sh all

# The test scripts' Python (the pinned gguf, numpy, safetensors and openai packages in a venv
# under the cache; a no-op once made). The F16 copies of SmolLM2 (GGUF and HF safetensors) are
# made by an independent script from PyPI's gguf package; the unquantised-weights tests compare
# sluice's tokens on both. tests/serve_openai.rs drives `sluice serve` with the openai client.
py="$(scripts/fixture-python.sh)"
models="${SLUICE_HOME:-$HOME/.cache/sluice}/models"
if [ ! -f "$models/smollm2-135m-f16.gguf" ] || [ ! -f "$models/smollm2-135m-f16-hf/model.safetensors" ]; then
  "$py" tests/fixtures/make_f16_models.py
fi

cargo test --workspace "$@"

# The Python package (wheel, pytest, the Ray Data example): with no arguments only, since the
# arguments above are cargo's.
if [ "$#" -eq 0 ]; then
  scripts/test-python.sh
else
  echo "test.sh: cargo test arguments were given, so the Python tests did not run (run scripts/test-python.sh)" >&2
fi
