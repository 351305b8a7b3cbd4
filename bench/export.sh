#!/usr/bin/env bash
# Speed of PCAP export from a snapshot against reading the snapshot's files
# with `cat`, in the same run (issue 4: export at >= 50% of cat's speed).
#
# Builds trawl-lab and the rawstore example `snapshot_tool` in release,
# generates (or reuses) a ~1 GiB capture with `trawl-lab gen-pcap`, imports
# it as a snapshot (trawl_rawstore::import_pcap), warms the page cache, then
# times, both writing to /dev/null:
#   (a) cat SNAPSHOT/nodes/*/*.pcap
#   (b) snapshot_tool export DATA ID            (pcap)
#   (c) snapshot_tool export DATA ID --pcapng   (pcapng)
# and prints MB/s for each and the ratios export / cat.
#
# Needs: cargo; hyperfine if present (else single runs timed by bash).
# Environment:
#   BENCH_DIR   where the capture and the data directory go  (/tmp/trawl-bench)
#   PACKETS     packets to generate                          (1500000: ~1.05 GB)
#   SEED        generator seed                               (1)
#   RUNS        hyperfine runs per command                   (5)
#   VIA=import  how the snapshot is made: `import` (one file) or `store`
#               (the capture appended to a raw store, 64 MiB segments, and
#               a snapshot of its whole window: many files, merged)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/trawl-bench}"
PACKETS="${PACKETS:-1500000}"
SEED="${SEED:-1}"
RUNS="${RUNS:-5}"
VIA="${VIA:-import}"
log() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$BENCH_DIR"
log "Building trawl-lab and snapshot_tool (release)."
(cd "$ROOT" && cargo build -q --release -p trawl-lab && cargo build -q --release -p trawl-rawstore --example snapshot_tool)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
LAB="$TARGET/trawl-lab"
TOOL="$TARGET/examples/snapshot_tool"

CAP="$BENCH_DIR/export-$PACKETS-$SEED.pcap"
if [[ ! -s "$CAP" ]]; then
    log "Generating $CAP ($PACKETS packets)."
    "$LAB" gen-pcap --packets "$PACKETS" --seed "$SEED" -o "$CAP" --summary "$CAP.summary.json"
fi

DATA="$BENCH_DIR/export-data"
rm -rf "$DATA"
if [[ "$VIA" == store ]]; then
    log "Appending to a raw store in $DATA and snapshotting it."
    ID="$("$TOOL" ingest "$DATA" "$CAP")"
else
    log "Importing into $DATA."
    ID="$("$TOOL" import "$DATA" "$CAP")"
fi
FILES=("$DATA"/snapshots/"$ID"/nodes/*/*.pcap)
BYTES=$(cat "${FILES[@]}" | wc -c)
log "Snapshot $ID: $BYTES bytes in ${#FILES[@]} file(s)."

# Warm the page cache so that both sides read memory, not the disk.
cat "${FILES[@]}" > /dev/null
"$TOOL" export "$DATA" "$ID" > /dev/null 2>&1

secs() { # mean seconds of a command
    if command -v hyperfine > /dev/null; then
        local json="$BENCH_DIR/hf.json"
        hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$json" "$1" > /dev/null 2>&1 ||
            hyperfine --warmup 1 --runs "$RUNS" --export-json "$json" "$1" > /dev/null
        python3 -c "import json;print(json.load(open('$json'))['results'][0]['mean'])"
    else
        local t0 t1
        t0=$(date +%s.%N); bash -c "$1"; t1=$(date +%s.%N)
        echo "$t1 - $t0" | bc -l
    fi
}

CAT_S=$(secs "bash -c 'cat ${FILES[*]} > /dev/null'")
PCAP_S=$(secs "bash -c '$TOOL export $DATA $ID > /dev/null 2>&1'")
NG_S=$(secs "bash -c '$TOOL export $DATA $ID --pcapng > /dev/null 2>&1'")

python3 - "$BYTES" "$CAT_S" "$PCAP_S" "$NG_S" "$VIA" "${#FILES[@]}" <<'PY'
import sys
b, cat, pcap, ng = int(sys.argv[1]), *map(float, sys.argv[2:5])
via, nfiles = sys.argv[5], sys.argv[6]
mb = b / 1e6
print(f"snapshot: {mb:.1f} MB in {nfiles} file(s), made by {via}")
print(f"{'command':<28} {'s':>8} {'MB/s':>9} {'vs cat':>8}")
for name, s in [("cat FILES > /dev/null", cat), ("export pcap > /dev/null", pcap), ("export pcapng > /dev/null", ng)]:
    print(f"{name:<28} {s:8.3f} {mb/s:9.0f} {cat/s:8.2f}")
print(f"export pcap / cat speed: {cat/pcap:.2f} (goal >= 0.50)")
PY
