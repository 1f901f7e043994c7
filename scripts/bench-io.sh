#!/usr/bin/env bash
# Compares sluice's reader with fio on the same file: O_DIRECT sequential read through io_uring,
# same chunk (block) sizes and queue depths, page cache dropped between runs where permitted.
# Prints a table and the ratio best-sluice / best-fio (target >= 0.95).
#
# Usage: scripts/bench-io.sh [FILE]
#   FILE   a file of 2 GiB or more; without it a 2 GiB + 64 MiB file of random bytes is created
#          under target/bench-io/ and deleted at the end.
# Env:     SLUICE_BIN (default target/release/sluice, built if missing), CHUNKS, DEPTHS,
#          FIO_FIXED=0 to run fio without registered buffers and files,
#          REPEATS=N to run each cell N times (interleaved) and keep the best of each,
#          FIO_MEM=shmhuge to give fio huge-page buffers like sluice's ring (needs
#          vm.nr_hugepages reserved; fio's default is malloc'd 4 KiB pages).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$ROOT/target/release/sluice}
read -r -a CHUNKS <<<"${CHUNKS:-256K 1M 4M}"
read -r -a DEPTHS <<<"${DEPTHS:-4 16 32}"
FIO_FIXED=${FIO_FIXED:-1}
FIO_MEM=${FIO_MEM:-malloc}
REPEATS=${REPEATS:-1}
MIN_BYTES=$((2 << 30))
MIB=$((1 << 20))

FILE=${1:-}
CREATED=""
cleanup() { if [ -n "$CREATED" ]; then rm -f "$CREATED"; fi; }
trap cleanup EXIT

if [ -z "$FILE" ]; then
    mkdir -p "$ROOT/target/bench-io"
    FILE=$ROOT/target/bench-io/bench-io.bin
    CREATED=$FILE
    echo "creating $FILE (2 GiB + 64 MiB of random bytes)" >&2
    dd if=/dev/urandom of="$FILE" bs=4M count=528 iflag=fullblock status=none
    sync
fi
FILE_BYTES=$(stat -c %s "$FILE")
if [ "$FILE_BYTES" -lt "$MIN_BYTES" ]; then
    echo "warning: $FILE is smaller than 2 GiB; figures will be optimistic" >&2
fi

if ! command -v fio >/dev/null 2>&1; then
    echo "installing fio from Debian" >&2
    apt-get install -y fio >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y fio >/dev/null; }
fi
if [ ! -x "$SLUICE" ]; then
    (cd "$ROOT" && cargo build --release --bin sluice)
fi

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

to_bytes() { # 256K / 1M / 4M -> bytes
    local n=${1%[KkMmGg]} unit=${1: -1}
    case $unit in
        K | k) echo $((n << 10)) ;;
        M | m) echo $((n << 20)) ;;
        G | g) echo $((n << 30)) ;;
        *) echo "$1" ;;
    esac
}

fio_gbps() { # chunk qd
    local fixed=()
    if [ "$FIO_FIXED" = 1 ]; then fixed=(--fixedbufs=1 --registerfiles=1); fi
    fio --name=seqread --filename="$FILE" --readonly --rw=read --bs="$1" --iodepth="$2" \
        --ioengine=io_uring --direct=1 --size="$FILE_BYTES" --numjobs=1 "${fixed[@]}" --mem="$FIO_MEM" \
        --output-format=json |
        jq -r '.jobs[0].read.bw_bytes / 1e9'
}

sluice_gbps() { # chunk qd
    local slot=$((64 * MIB)) chunk
    chunk=$(to_bytes "$1")
    if [ "$chunk" -gt "$slot" ]; then slot=$chunk; fi
    "$SLUICE" bench io --file "$FILE" --reader uring --chunk "$1" --queue-depth "$2" \
        --slot "$slot" --slots 4 --json |
        jq -r '.read_gb_per_s'
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

printf '%-6s %4s %10s %12s %7s\n' chunk qd fio_GB/s sluice_GB/s ratio
best_fio=0 best_fio_at="" best_ours=0 best_ours_at=""
for chunk in "${CHUNKS[@]}"; do
    for qd in "${DEPTHS[@]}"; do
        f=0 s=0
        for _ in $(seq "$REPEATS"); do
            drop_caches
            f=$(max "$f" "$(fio_gbps "$chunk" "$qd")")
            drop_caches
            s=$(max "$s" "$(sluice_gbps "$chunk" "$qd")")
        done
        r=$(echo "$s $f" | awk '{ printf "%.3f", ($2 > 0 ? $1 / $2 : 0) }')
        printf '%-6s %4s %10.3f %12.3f %7s\n' "$chunk" "$qd" "$f" "$s" "$r"
        if awk "BEGIN { exit !($f > $best_fio) }"; then best_fio=$f best_fio_at="chunk $chunk qd $qd"; fi
        if awk "BEGIN { exit !($s > $best_ours) }"; then best_ours=$s best_ours_at="chunk $chunk qd $qd"; fi
    done
done
ratio=$(echo "$best_ours $best_fio" | awk '{ printf "%.3f", ($2 > 0 ? $1 / $2 : 0) }')
echo
echo "file: $FILE ($((FILE_BYTES / MIB)) MiB); fio fixedbufs+registerfiles=$FIO_FIXED mem=$FIO_MEM; best of $REPEATS"
echo "best fio:    $best_fio GB/s ($best_fio_at)"
echo "best sluice: $best_ours GB/s ($best_ours_at)"
echo "ratio best-sluice / best-fio: $ratio (target >= 0.95)"
