#!/usr/bin/env bash
# Throughput and latency of `sluice serve` under concurrent streaming clients, resident and with
# every layer streamed from disk (--ram-budget 0), in one run: aggregate tokens/s, time to first
# token and inter-token latency p50/p99 at 1, 4 and 16 clients, and each row's speedup over one
# client. The clients are the real `openai` Python client (bench/serve_load.py, from the fixture
# venv). Speed is compared within this run only; the CPU is printed with the table.
#
#   bench/serve-load.sh [-m MODEL] [--clients "1 4 16"] [--requests N] [--max-tokens N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=smollm2-135m
CLIENTS="1 4 16"
REQUESTS=2
MAX_TOKENS=64
THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    -m|--model) MODEL="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    *) echo "serve-load: unknown option $1" >&2; exit 2 ;;
  esac
done

PY="$(scripts/fixture-python.sh)"
cargo build --release --quiet
BIN=target/release/sluice
max_clients=$(echo $CLIENTS | tr ' ' '\n' | sort -n | tail -n 1)
log="$(mktemp)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), model $MODEL, $THREADS threads, $MAX_TOKENS tokens per request, $REQUESTS requests per client"
printf '%-9s %7s %10s %8s %9s %9s %8s %8s\n' mode clients tok/s speedup ttft_p50 ttft_p99 itl_p50 itl_p99
for mode in resident streamed; do
  budget=()
  [ "$mode" = streamed ] && budget=(--ram-budget 0)
  "$BIN" serve -m "$MODEL" --port 0 --threads "$THREADS" --parallel "$max_clients" \
    --max-queue 1024 "${budget[@]}" 2>"$log" &
  pid=$!
  base=""
  for _ in $(seq 1 600); do
    base=$(grep -o 'listening on http://[^ ]*' "$log" | head -n 1 | cut -d' ' -f3 || true)
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$base" ] || { echo "serve-load: the server did not start" >&2; cat "$log" >&2; exit 1; }
  one=""
  for c in $CLIENTS; do
    j=$("$PY" bench/serve_load.py "$base" "$c" "$REQUESTS" "$MAX_TOKENS")
    tps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tok_per_s"])' "$j")
    [ -z "$one" ] && one="$tps"
    python3 - "$mode" "$j" "$one" <<'PY'
import json, sys
mode, j, one = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
print(f"{mode:<9} {j['clients']:>7} {j['tok_per_s']:>10.1f} {j['tok_per_s'] / one:>7.2f}x "
      f"{j['ttft_ms_p50']:>8.0f}m {j['ttft_ms_p99']:>8.0f}m {j['itl_ms_p50']:>7.1f}m {j['itl_ms_p99']:>7.1f}m")
PY
  done
  kill -TERM "$pid"; wait "$pid" || true; pid=""
done
