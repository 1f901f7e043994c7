#!/usr/bin/env bash
# Prints the path of a Python that can run the test fixture scripts (tests/fixtures/*.py): a
# virtual environment under the cache with the pinned packages of tests/fixtures/requirements.txt,
# never the system's site-packages.
#
#   PY="$(scripts/fixture-python.sh)"   # venv at ${SLUICE_FIXTURE_VENV:-$SLUICE_HOME/fixture-venv}
#
# Idempotent and silent on a second run: the venv is rebuilt only when the requirements file or
# the Python that made it changes. Anything it cannot set up gets one sentence on stderr naming
# the missing piece and the command that installs it, and exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE_HOME="${SLUICE_HOME:-$HOME/.cache/sluice}"
venv="${SLUICE_FIXTURE_VENV:-$SLUICE_HOME/fixture-venv}"
reqs="tests/fixtures/requirements.txt"
base="${PYTHON:-python3}"

die() { echo "fixture-python: $*" >&2; exit 1; }

command -v "$base" >/dev/null 2>&1 \
  || die "no $base on PATH: the test fixtures need Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
"$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
  || die "$base is $("$base" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown); the pinned numpy needs Python 3.11 or newer (set PYTHON to one)"

# What the venv was made from: the pins and the base interpreter's version.
want="$(sha256sum "$reqs" | cut -d' ' -f1) $("$base" -c 'import sys; print(sys.version.split()[0])')"
stamp="$venv/.sluice-fixture-pins"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi

rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if ! "$base" -m venv "$venv" >/dev/null 2>&1; then
  rm -rf "$venv"
  die "$base cannot create a virtual environment (its venv/ensurepip module is missing): install it with 'apt-get install python3-venv' (Debian), then run this again"
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "fixture-python: installing the fixture scripts' packages ($reqs) into $venv ..." >&2
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >"$log" 2>&1; then
  tail -n 5 "$log" | sed 's/^/  pip: /' >&2
  rm -rf "$venv"
  die "pip could not install the pinned packages of $reqs into $venv (is PyPI reachable?); run 'scripts/fixture-python.sh' again once it is"
fi
"$venv/bin/python" -c 'import gguf, numpy, safetensors, openai' 2>/dev/null \
  || { rm -rf "$venv"; die "the packages of $reqs installed but do not import in $venv"; }
echo "$want" > "$stamp"
echo "$venv/bin/python"
