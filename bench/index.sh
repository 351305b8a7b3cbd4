#!/usr/bin/env bash
# Indexing throughput: `trawl index` (pcap → Parquet calls/flows + payload
# store) with 1 thread and with 2 threads on the same synthetic capture.
#
# Builds trawl and trawl-lab in release, generates (or reuses) a capture of
# PACKETS packets with `trawl-lab gen-pcap` (the same file
# dissect-vs-tshark.sh uses), then times RUNS runs of
#   trawl index FILE --out DIR --threads 1
#   trawl index FILE --out DIR --threads 2
# (DIR removed before each run, outside the timing), once keeping bodies
# (--max-body-bytes MAX_BODY, the default) and once without a payload store
# (--max-body-bytes 0), checks that every index holds exactly the generated
# calls, prints packets/s for each, the speed-ups and peak RSS, and records the block in bench/RESULTS.md (newest
# first; RECORD=0 to only print it). Goal (issue 3): ≥ 1 M packets/s on 2
# cores.
#
# Needs: cargo, python3, and optionally /usr/bin/time (package `time`: peak
# RSS). Installs nothing.
#
# Environment:
#   BENCH_DIR    where captures and indexes go     (/tmp/trawl-bench)
#   PACKETS      packets to generate               (1000000)
#   SEED         generator seed                    (1)
#   RUNS         timed runs per thread count       (3; the median is kept)
#   MAX_BODY     --max-body-bytes                  (65536)
#   RECORD=0     do not write bench/RESULTS.md
#   TRAWL_BIN    use this trawl binary instead of building trawl-cli
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/trawl-bench}"
PACKETS="${PACKETS:-1000000}"
SEED="${SEED:-1}"
RUNS="${RUNS:-3}"
MAX_BODY="${MAX_BODY:-65536}"
RECORD="${RECORD:-1}"
TRAWL_BIN="${TRAWL_BIN:-}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)."
command -v python3 >/dev/null || die "python3 not found: it parses the JSON summaries (apt-get install -y python3)."
HAVE_TIME=1
if [[ ! -x /usr/bin/time ]]; then
    HAVE_TIME=0
    log "missing: /usr/bin/time (apt-get install -y time): no peak RSS"
fi

cd "$ROOT"
if [[ -z "$TRAWL_BIN" ]]; then
    log "Building trawl and trawl-lab (release)."
    cargo build --release -p trawl-cli -p trawl-lab
else
    cargo build --release -p trawl-lab
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
TRAWL="${TRAWL_BIN:-$TARGET_DIR/release/trawl}"
LAB="$TARGET_DIR/release/trawl-lab"

mkdir -p "$BENCH_DIR"
PCAP="$BENCH_DIR/gen-p${PACKETS}-s${SEED}.pcap"
SUMMARY="$BENCH_DIR/gen-p${PACKETS}-s${SEED}.summary.json"
if [[ ! -s "$PCAP" || ! -s "$SUMMARY" || "$LAB" -nt "$PCAP" ]]; then
    log "Generating $PCAP."
    "$LAB" gen-pcap --packets "$PACKETS" --seed "$SEED" -o "$PCAP.tmp" --summary "$SUMMARY"
    mv "$PCAP.tmp" "$PCAP"
else
    log "Reusing $PCAP."
fi
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
N_PACKETS="$(json_field "$SUMMARY" packets)"
N_BYTES="$(json_field "$SUMMARY" bytes)"
N_CALLS=$(( $(json_field "$SUMMARY" http_calls) + $(json_field "$SUMMARY" dns_calls) ))
echo "capture: $PCAP ($N_PACKETS packets, $N_BYTES bytes, $N_CALLS calls)"
cat "$PCAP" >/dev/null # into the page cache

OUT="$BENCH_DIR/index-bench"
# run THREADS BODY: RUNS timed runs; writes $BENCH_DIR/index-tTHREADS-bBODY.{secs,rss}
# (median seconds, peak RSS KiB of the last run).
run() {
    local threads="$1" body="$2" times=()
    local tag="t$threads-b$body"
    for ((i = 1; i <= RUNS; i++)); do
        rm -rf "$OUT"
        local cmd=("$TRAWL" index "$PCAP" --out "$OUT" --threads "$threads" --max-body-bytes "$body")
        local t0 t1
        t0=$(date +%s%N)
        if [[ "$HAVE_TIME" == 1 ]]; then
            /usr/bin/time -v -o "$BENCH_DIR/index-$tag.time" "${cmd[@]}" >"$BENCH_DIR/index-$tag.out"
        else
            "${cmd[@]}" >"$BENCH_DIR/index-$tag.out"
        fi
        t1=$(date +%s%N)
        times+=("$(( t1 - t0 ))")
        local calls
        calls="$(json_field "$OUT/manifest.json" calls)"
        [[ "$calls" == "$N_CALLS" ]] || die "--threads $threads indexed $calls calls; the capture holds $N_CALLS"
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.6f\n", a[int((NR+1)/2)]/1e9}' \
        >"$BENCH_DIR/index-$tag.secs"
    if [[ -s "$BENCH_DIR/index-$tag.time" ]]; then
        awk -F': ' '/Maximum resident set size/ {print $2}' "$BENCH_DIR/index-$tag.time" \
            >"$BENCH_DIR/index-$tag.rss"
    fi
    log "--threads $threads: $(cat "$BENCH_DIR/index-$tag.secs") s (median of $RUNS)"
}

for body in "$MAX_BODY" 0; do
    for threads in 1 2; do
        log "Timing trawl index, $threads thread(s), bodies up to $body bytes ($RUNS runs)."
        run "$threads" "$body"
        if [[ "$body" != 0 ]]; then INDEX_BYTES="$(du -sb "$OUT" | cut -f1)"; fi
    done
done
rm -rf "$OUT"

REV="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
CPU_MODEL="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)"
BLOCK="$(python3 - "$BENCH_DIR" "$N_PACKETS" "$N_BYTES" "$N_CALLS" "$RUNS" "$REV" "$CPU_MODEL" "$(nproc)" \
    "$PACKETS" "$SEED" "$MAX_BODY" "$INDEX_BYTES" <<'PY'
import datetime, os, sys
(d, packets, nbytes, calls, runs, rev, cpu, cores, gen_packets, seed, max_body, index_bytes) = sys.argv[1:]
packets = int(packets)
def read(name):
    p = os.path.join(d, name)
    return open(p).read().strip() if os.path.exists(p) else ""
rows, pps = [], {}
for b in (max_body, "0"):
    for t in (1, 2):
        secs = float(read(f"index-t{t}-b{b}.secs"))
        rss = read(f"index-t{t}-b{b}.rss")
        pps[(t, b)] = packets / secs
        rss = f"{int(rss) / 1024:,.0f}" if rss else "n/a"
        rows.append(f"| `trawl index FILE --out DIR --threads {t} --max-body-bytes {b}` | {runs} | {secs:.3f} | {pps[(t, b)]:,.0f} | {rss} |")
lines = [
    f"## index — {datetime.date.today().isoformat()}, trawl {rev}",
    "",
    "Command: `bash bench/index.sh` (median of the runs; the index directory is",
    f"removed before each run; bodies kept up to {int(max_body):,} bytes per message).",
    "",
    f"Machine: {cpu}, {cores} cores; capture read from the page cache.",
    "",
    f"Input: `trawl-lab gen-pcap --packets {gen_packets} --seed {seed}`: {packets:,} packets,",
    f"{int(nbytes) / 1e6:,.1f} MB, {int(calls):,} calls; every index holds exactly those calls;",
    f"index size with bodies {int(index_bytes) / 1e6:,.1f} MB.",
    "",
    "| command | runs | wall s (median) | packets/s | peak RSS MiB |",
    "|---|---|---|---|---|",
    *rows,
    "",
    f"2 threads / 1 thread: **{pps[(2, max_body)] / pps[(1, max_body)]:.2f}×** with bodies, "
    f"**{pps[(2, '0')] / pps[(1, '0')]:.2f}×** without; goal ≥ 1 M packets/s on 2 cores: "
    + ("met" if pps[(2, max_body)] >= 1e6 else "not met with bodies") + ", "
    + ("met" if pps[(2, "0")] >= 1e6 else "not met") + " without.",
]
print("\n".join(lines))
PY
)"
echo
echo "$BLOCK"
if [[ "$RECORD" == 1 ]]; then
    python3 - "$ROOT/bench/RESULTS.md" "$BLOCK" <<'PY'
import sys
path, block = sys.argv[1], sys.argv[2]
text = open(path).read()
# Newest first: insert before the first entry.
i = text.find("\n## ")
text = text + "\n" + block + "\n" if i < 0 else text[: i + 1] + block + "\n\n" + text[i + 1 :]
open(path, "w").write(text)
PY
    log "Recorded in bench/RESULTS.md."
fi
