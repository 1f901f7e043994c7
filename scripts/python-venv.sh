#!/usr/bin/env bash
# Prints the path of a Python in a virtual environment holding the pinned packages of a
# requirements file, never the system's site-packages. The scripts that need Python
# (fixture-python.sh for the test fixtures, test-python.sh for the Python package) call it.
#
#   PY="$(scripts/python-venv.sh NAME REQUIREMENTS VENV MIN_MINOR MODULE...)"
#
# NAME prefixes its messages; VENV is made from ${PYTHON:-python3}, which must be Python
# 3.MIN_MINOR or newer; every MODULE must import afterwards. Idempotent and silent on a second
# run: the venv is rebuilt only when the requirements file or the base Python changes. Anything
# it cannot set up gets one sentence on stderr naming the missing piece and the command that
# installs it, and exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" -ge 4 ] || { echo "usage: scripts/python-venv.sh NAME REQUIREMENTS VENV MIN_MINOR MODULE..." >&2; exit 2; }
name="$1" reqs="$2" venv="$3" min_minor="$4"
shift 4
base="${PYTHON:-python3}"

die() { echo "$name: $*" >&2; exit 1; }

command -v "$base" >/dev/null 2>&1 \
  || die "no $base on PATH: this needs Python 3.$min_minor or newer (Debian: apt-get install python3 python3-venv)"
"$base" -c "import sys; sys.exit(0 if sys.version_info >= (3, $min_minor) else 1)" 2>/dev/null \
  || die "$base is $("$base" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown); the pins of $reqs need Python 3.$min_minor or newer (set PYTHON to one)"

# What the venv was made from: the pins and the base interpreter's version.
want="$(sha256sum "$reqs" | cut -d' ' -f1) $("$base" -c 'import sys; print(sys.version.split()[0])')"
stamp="$venv/.sluice-pins"
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
echo "$name: installing the pinned packages of $reqs into $venv ..." >&2
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >"$log" 2>&1; then
  tail -n 5 "$log" | sed 's/^/  pip: /' >&2
  rm -rf "$venv"
  die "pip could not install the pinned packages of $reqs into $venv (is PyPI reachable?); run this again once it is"
fi
for m in "$@"; do
  "$venv/bin/python" -c "import $m" 2>/dev/null \
    || { rm -rf "$venv"; die "the packages of $reqs installed but $m does not import in $venv"; }
done
echo "$want" > "$stamp"
echo "$venv/bin/python"
