#!/usr/bin/env bash
# Time of the three analyses (issue 7) over a large generated index: the
# whole `trawl analyze | anomalies | explain` process each, JSON output to
# /dev/null, best of RUNS, with the load average before each command.
#
# 1. Generates a PACKETS-packet capture with `trawl-lab gen-pcap` and
#    indexes it with `trawl index` (2 M packets: 278 k calls, 76 k flows).
#    Both are reused when present.
# 2. Runs, for each binary in TRAWL_BINS (default: target/debug/trawl):
#      trawl anomalies IDX --format json
#      trawl explain IDX 'status_code >= 500' --format json
#      trawl analyze IDX frontend --format json
#    and prints `binary command best_s loadavg` lines.
#
# The load average matters: the benchmark machine has 2 cores shared with
# builds; compare numbers taken one after the other (TRAWL_BINS="old new").
#
# Environment:
#   BENCH_DIR   where the capture and index go  (/tmp/trawl-bench/insights)
#   PACKETS     packets of the capture           (2000000)
#   RUNS        timed runs per command           (2)
#   TRAWL_BINS  binaries to compare              (target/debug/trawl)
#   LAB_BIN     trawl-lab binary                 (target/debug/trawl-lab)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/trawl-bench/insights}
PACKETS=${PACKETS:-2000000}
RUNS=${RUNS:-2}
TRAWL_BINS=${TRAWL_BINS:-target/debug/trawl}
LAB_BIN=${LAB_BIN:-target/debug/trawl-lab}
mkdir -p "$BENCH_DIR"
PCAP="$BENCH_DIR/gen-$PACKETS.pcap"
IDX="$BENCH_DIR/index-$PACKETS"
first=${TRAWL_BINS%% *}
if [ ! -f "$PCAP" ]; then
    "$LAB_BIN" gen-pcap --packets "$PACKETS" --output "$PCAP" --summary "$PCAP.summary.json"
fi
if [ ! -f "$IDX/manifest.json" ]; then
    "$first" index "$PCAP" --out "$IDX"
fi

best() {
    local b=""
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" > /dev/null
        t1=$(date +%s.%N)
        b=$(python3 -c "import sys; a=float(sys.argv[1])-float(sys.argv[2]); b=sys.argv[3]; print(f'{min(a, float(b)) if b else a:.2f}')" "$t1" "$t0" "$b")
    done
    echo "$b"
}

for bin in $TRAWL_BINS; do
    for cmd in "anomalies" "explain" "analyze"; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        case $cmd in
            anomalies) s=$(best "$bin" anomalies "$IDX" --format json) ;;
            explain) s=$(best "$bin" explain "$IDX" 'status_code >= 500' --format json) ;;
            analyze) s=$(best "$bin" analyze "$IDX" frontend --format json) ;;
        esac
        echo "$bin $cmd ${s}s load $load"
    done
done
