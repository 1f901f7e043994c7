#!/usr/bin/env bash
# Compares sluice's reader with fio on the same file: O_DIRECT sequential read through io_uring,
# same chunk (block) sizes and queue depths, page cache dropped before every run where permitted.
# Prints a table and the ratio best-sluice / best-fio (target >= 0.95).
#
# Usage: scripts/bench-io.sh [FILE]
#   FILE   a file of 2 GiB or more; without it a 2 GiB + 64 MiB file of random bytes is created
#          under target/bench-io/ and deleted at the end.
# Env:     SLUICE_BIN (default target/release/sluice, built if missing), CHUNKS, DEPTHS,
#          FIO_FIXED=0 to run fio without registered buffers and files,
#          REPEATS=N to run each cell N times and keep the best and the median of each; the runs
#          are interleaved (fio, then each ring, in an order that alternates between repeats),
#          FIO_MEM=shmhuge to give fio huge-page buffers like sluice's ring (fio's default is
#          malloc'd 4 KiB pages); the script reserves the huge pages fio needs (vm.nr_hugepages,
#          as root) and gives them back at the end,
#          RINGS: the sluice rings to try, each SIZExCOUNT slots (a slot is never smaller than
#          the chunk) or `fit`: 4 slots holding twice the bytes in flight (chunk x qd), i.e.
#          twice fio's buffer memory. Default "64Mx4 fit": the engine's kind of ring (slots of
#          layer size, 256 MiB) and one sized like fio's buffers. On a virtual disk whose host
#          copies into guest memory, a buffer that stays in the CPU caches reads faster than a
#          256 MiB ring swept end to end, so both are shown.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$ROOT/target/release/sluice}
read -r -a CHUNKS <<<"${CHUNKS:-256K 1M 4M}"
read -r -a DEPTHS <<<"${DEPTHS:-4 16 32}"
read -r -a RINGS <<<"${RINGS:-64Mx4 fit}"
FIO_FIXED=${FIO_FIXED:-1}
FIO_MEM=${FIO_MEM:-malloc}
REPEATS=${REPEATS:-1}
MIN_BYTES=$((2 << 30))
MIB=$((1 << 20))
HUGE_PAGE_BYTES=$((2 * MIB))
NR_HUGEPAGES=/proc/sys/vm/nr_hugepages

FILE=${1:-}
CREATED=""
HUGEPAGES_BEFORE=""
cleanup() {
    if [ -n "$CREATED" ]; then rm -f "$CREATED"; fi
    if [ -n "$HUGEPAGES_BEFORE" ]; then echo "$HUGEPAGES_BEFORE" >"$NR_HUGEPAGES" || true; fi
}
trap cleanup EXIT

to_bytes() { # 256K / 1M / 4M -> bytes
    local n=${1%[KkMmGg]} unit=${1: -1}
    case $unit in
        K | k) echo $((n << 10)) ;;
        M | m) echo $((n << 20)) ;;
        G | g) echo $((n << 30)) ;;
        *) echo "$1" ;;
    esac
}

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

# fio's shmhuge buffers come from the reserved huge-page pool: one segment of chunk x qd.
reserve_hugepages() {
    local most=0 bytes
    for chunk in "${CHUNKS[@]}"; do
        for qd in "${DEPTHS[@]}"; do
            bytes=$(($(to_bytes "$chunk") * qd))
            if [ "$bytes" -gt "$most" ]; then most=$bytes; fi
        done
    done
    local need=$((most / HUGE_PAGE_BYTES + 2)) free
    free=$(awk '/^HugePages_Free/ { print $2 }' /proc/meminfo)
    if [ "$free" -ge "$need" ]; then return; fi
    HUGEPAGES_BEFORE=$(cat "$NR_HUGEPAGES")
    if ! echo $((HUGEPAGES_BEFORE + need - free)) >"$NR_HUGEPAGES" 2>/dev/null; then
        HUGEPAGES_BEFORE=""
        echo "error: FIO_MEM=$FIO_MEM needs $need free huge pages; run as root or reserve them" >&2
        exit 1
    fi
}
case $FIO_MEM in shmhuge | mmaphuge*) reserve_hugepages ;; esac

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

fio_gbps() { # chunk qd
    local fixed=()
    if [ "$FIO_FIXED" = 1 ]; then fixed=(--fixedbufs=1 --registerfiles=1); fi
    drop_caches
    fio --name=seqread --filename="$FILE" --readonly --rw=read --bs="$1" --iodepth="$2" \
        --ioengine=io_uring --direct=1 --size="$FILE_BYTES" --numjobs=1 "${fixed[@]}" --mem="$FIO_MEM" \
        --output-format=json |
        jq -r '.jobs[0].read.bw_bytes / 1e9'
}

ring_geometry() { # ring chunk qd -> "slot_bytes slots"
    local chunk qd=$3 slot slots
    chunk=$(to_bytes "$2")
    if [ "$1" = fit ]; then
        slot=$((chunk * qd / 2)) slots=4
    else
        slot=$(to_bytes "${1%x*}") slots=${1#*x}
    fi
    if [ "$slot" -lt "$chunk" ]; then slot=$chunk; fi
    echo "$slot $slots"
}

sluice_gbps() { # ring chunk qd
    local slot slots out
    read -r slot slots <<<"$(ring_geometry "$@")"
    drop_caches
    out=$("$SLUICE" bench io --file "$FILE" --reader uring --chunk "$2" --queue-depth "$3" \
        --slot "$slot" --slots "$slots" --json)
    if [ "$(jq -r '.fixed_buffers and .direct' <<<"$out")" != true ]; then
        echo "warning: sluice ran without fixed buffers or O_DIRECT: $out" >&2
    fi
    jq -r '.read_gb_per_s' <<<"$out"
}

best() { tr ' ' '\n' | awk 'NF && $1 > m { m = $1 } END { print m + 0 }'; }
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

printf '%-6s %4s %15s' chunk qd "fio_GB/s"
for ring in "${RINGS[@]}"; do printf ' %15s' "sluice_$ring"; done
printf ' %7s\n' ratio
printf '%-6s %4s %15s' "" "" "best (median)"
for _ in "${RINGS[@]}"; do printf ' %15s' "best (median)"; done
printf '\n'

best_fio=0 best_fio_at="" best_ours=0 best_ours_at=""
declare -A ring_best ring_best_at
for chunk in "${CHUNKS[@]}"; do
    for qd in "${DEPTHS[@]}"; do
        f=""
        declare -A s=()
        for r in $(seq "$REPEATS"); do
            # Alternate who goes first, so a machine getting busier or quieter favours neither.
            if [ $((r % 2)) = 1 ]; then f+=" $(fio_gbps "$chunk" "$qd")"; fi
            for ring in "${RINGS[@]}"; do s[$ring]+=" $(sluice_gbps "$ring" "$chunk" "$qd")"; done
            if [ $((r % 2)) = 0 ]; then f+=" $(fio_gbps "$chunk" "$qd")"; fi
        done
        fb=$(best <<<"$f")
        printf '%-6s %4s %7.3f (%5.3f)' "$chunk" "$qd" "$fb" "$(median <<<"$f")"
        cell_ours=0
        for ring in "${RINGS[@]}"; do
            sb=$(best <<<"${s[$ring]}")
            printf ' %7.3f (%5.3f)' "$sb" "$(median <<<"${s[$ring]}")"
            if gt "$sb" "$cell_ours"; then cell_ours=$sb; fi
            if gt "$sb" "${ring_best[$ring]:-0}"; then
                ring_best[$ring]=$sb ring_best_at[$ring]="chunk $chunk qd $qd"
            fi
            if gt "$sb" "$best_ours"; then
                read -r slot slots <<<"$(ring_geometry "$ring" "$chunk" "$qd")"
                best_ours=$sb best_ours_at="chunk $chunk qd $qd, ring $ring: $slots slots of $((slot / MIB)) MiB"
            fi
        done
        printf ' %7s\n' "$(awk -v s="$cell_ours" -v f="$fb" 'BEGIN { printf "%.3f", (f > 0 ? s / f : 0) }')"
        if gt "$fb" "$best_fio"; then best_fio=$fb best_fio_at="chunk $chunk qd $qd"; fi
        unset s
    done
done
ratio=$(awk -v s="$best_ours" -v f="$best_fio" 'BEGIN { printf "%.3f", (f > 0 ? s / f : 0) }')
echo
echo "file: $FILE ($((FILE_BYTES / MIB)) MiB); fio fixedbufs+registerfiles=$FIO_FIXED mem=$FIO_MEM; best and median of $REPEATS"
echo "best fio:    $best_fio GB/s ($best_fio_at)"
echo "best sluice: $best_ours GB/s ($best_ours_at)"
for ring in "${RINGS[@]}"; do
    echo "  ring $ring: ${ring_best[$ring]:-0} GB/s (${ring_best_at[$ring]:-}), $(awk -v s="${ring_best[$ring]:-0}" -v f="$best_fio" 'BEGIN { printf "%.3f", (f > 0 ? s / f : 0) }') of best fio"
done
echo "ratio best-sluice / best-fio: $ratio (target >= 0.95)"
