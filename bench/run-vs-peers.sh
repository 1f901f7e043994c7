#!/usr/bin/env bash
# Benchmark `sluice run` against its peers on this machine, in one run:
#   - llama.cpp's llama-bench on the same GGUF file with the same thread count (pp128, tg64),
#   - fio's O_DIRECT sequential read of the same file (the disk's real bandwidth).
# Prints one JSON object per model and a summary table of the ratios the project tracks:
#   resident decode tok/s ÷ llama.cpp's, prefill tok/s ÷ llama.cpp's (targets ≥ 1.0, ≥ 0.8),
#   --ram-budget 0 read GB/s while generating ÷ fio's GB/s (target ≥ 0.9), peak RSS streaming.
#
#   bench/run-vs-peers.sh [--llama-bench PATH] [--threads N] [--reps N] [MODEL_ALIAS ...]
#
# llama.cpp is not part of this repository: build it yourself outside the repo and pass the
# llama-bench binary (or set LLAMA_BENCH). Without it, the script compares against the figures in
# tests/reference/llama-cpp-bench.json (measured on a machine like ours) and says so.
# fio is installed from Debian's packages if missing. The page cache is dropped before each
# streaming run where permitted.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=2
REPS=3
LLAMA_BENCH="${LLAMA_BENCH:-}"
MODELS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-bench) LLAMA_BENCH="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
[ ${#MODELS[@]} -gt 0 ] || MODELS=(smollm2-135m qwen2.5-coder-0.5b)

scripts/fetch-models.sh "${MODELS[@]}" >&2
cargo build --release --quiet --bin sluice
SLUICE=target/release/sluice
if ! command -v fio >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq fio) >/dev/null 2>&1 || echo "bench: fio could not be installed; skipping the disk baseline" >&2
fi
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
models_dir="${SLUICE_HOME:-$HOME/.cache/sluice}/models"

# A prompt of about 128 tokens and 64 generated tokens, as llama-bench's pp128/tg64.
PROMPT=$(python3 -c "print(' '.join(['The river carries water from the mountains to the sea, and the valley grows green.']*8))")

median() { python3 -c "import sys,statistics; print(statistics.median([float(x) for x in sys.argv[1:]]))" "$@"; }

for alias in "${MODELS[@]}"; do
  file="$models_dir/$alias.gguf"
  pp=(); tg=(); rd=(); rss=(); sp=(); stg=()
  for _ in $(seq "$REPS"); do
    out=$("$SLUICE" run -m "$alias" --prompt "$PROMPT" --raw --temperature 0 --max-tokens 65 --threads "$THREADS" --json)
    pp+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["prefill_tok_per_s"])' <<<"$out")")
    tg+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["decode_tok_per_s"])' <<<"$out")")
    drop_caches
    out=$("$SLUICE" run -m "$alias" --prompt "$PROMPT" --raw --temperature 0 --max-tokens 65 --threads "$THREADS" --ram-budget 0 --json)
    rd+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["read_gb_per_s"])' <<<"$out")")
    rss+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["peak_rss_bytes"])' <<<"$out")")
    sp+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["prefill_tok_per_s"])' <<<"$out")")
    stg+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["decode_tok_per_s"])' <<<"$out")")
  done
  ntok=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["prompt_tokens"]))' <<<"$out")

  # llama.cpp, same file, same threads, in this run if a binary was given.
  peer_src="reference file (not measured in this run)"
  if [ -n "$LLAMA_BENCH" ] && [ -x "$LLAMA_BENCH" ]; then
    lj=$("$LLAMA_BENCH" -m "$file" -t "$THREADS" -p 128 -n 64 -r "$REPS" -o json 2>/dev/null)
    peer_pp=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print([x["avg_ts"] for x in r if x["n_prompt"]>0][0])' <<<"$lj")
    peer_tg=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print([x["avg_ts"] for x in r if x["n_gen"]>0][0])' <<<"$lj")
    peer_src="llama-bench, this run"
  else
    read -r peer_pp peer_tg < <(python3 - "$alias" "$THREADS" <<'PY'
import json, sys
d = json.load(open("tests/reference/llama-cpp-bench.json"))["models"].get(sys.argv[1], {})
t = d.get(f"threads_{sys.argv[2]}", {})
print(t.get("pp128", "nan"), t.get("tg64", "nan"))
PY
)
  fi

  # fio: O_DIRECT sequential read of the same file, io_uring engine, 1 MiB blocks, QD 32.
  fio_gbs=nan
  if command -v fio >/dev/null; then
    drop_caches
    fj=$(fio --name=seq --filename="$file" --rw=read --direct=1 --ioengine=io_uring --bs=1M --iodepth=32 --readonly --output-format=json 2>/dev/null)
    fio_gbs=$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["jobs"][0]["read"]["bw_bytes"]/1e9)' <<<"$fj")
  fi

  python3 - "$alias" "$ntok" "$(median "${pp[@]}")" "$(median "${tg[@]}")" "$peer_pp" "$peer_tg" "$peer_src" \
    "$(median "${rd[@]}")" "$fio_gbs" "$(median "${rss[@]}")" "$(median "${sp[@]}")" "$(median "${stg[@]}")" "$THREADS" <<'PY'
import json, sys
a = sys.argv[1:]
f = lambda s: float(s)
res = {
    "model": a[0], "threads": int(a[12]), "prompt_tokens": int(a[1]),
    "resident": {"prefill_tok_per_s": f(a[2]), "decode_tok_per_s": f(a[3])},
    "llama_cpp": {"pp128_tok_per_s": f(a[4]), "tg64_tok_per_s": f(a[5]), "source": a[6]},
    "streaming": {"read_gb_per_s": f(a[7]), "prefill_tok_per_s": f(a[10]), "decode_tok_per_s": f(a[11]), "peak_rss_bytes": int(f(a[9]))},
    "fio_read_gb_per_s": f(a[8]),
}
res["ratios"] = {
    "decode_vs_llama_cpp": f(a[3]) / f(a[5]),
    "prefill_vs_llama_cpp": f(a[2]) / f(a[4]),
    "stream_read_vs_fio": f(a[7]) / f(a[8]) if f(a[8]) > 0 else float("nan"),
}
print(json.dumps(res))
PY
done
