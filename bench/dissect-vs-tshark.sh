#!/usr/bin/env bash
# Throughput of `trawl dissect` against tshark on the same synthetic capture.
#
# Builds trawl and trawl-lab in release, generates (or reuses) a capture of
# PACKETS packets of HTTP/1.1 keep-alive + DNS traffic with
# `trawl-lab gen-pcap`, then times, in the same run:
#   (a) trawl dissect FILE --format jsonl > /dev/null   pinned to one core
#   (b) tshark -r FILE -T fields -e … > /dev/null       the same fields a
#       user would ask tshark for, with its default TCP reassembly (which it
#       needs to find HTTP messages), pinned to the same core
# and prints packets/s for each, the ratio, peak RSS, and a block to paste
# into bench/RESULTS.md.
#
# Needs: cargo, python3, taskset (util-linux), tshark, and optionally
# hyperfine (several runs, mean and spread) and /usr/bin/time (package
# `time`: peak RSS). Installs nothing; says what is missing.
#
# Environment:
#   BENCH_DIR     where captures and results go      (/tmp/trawl-bench)
#   PACKETS       packets to generate                (1000000)
#   SEED          generator seed                     (1)
#   CPU           core to pin both tools to          (0)
#   TRAWL_RUNS    hyperfine runs for trawl           (3)
#   TSHARK_RUNS   hyperfine runs for tshark          (1; tshark is slow)
#   SKIP_TSHARK=1 measure trawl only
#   SKIP_TRAWL=1  measure tshark only (e.g. before `trawl dissect` exists)
#   REGENERATE=1  regenerate the capture even if a cached one is present
#   TRAWL_BIN     use this trawl binary instead of building trawl-cli
#   USE_HYPERFINE=0  time single runs with the shell clock even if
#                 hyperfine is installed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/trawl-bench}"
PACKETS="${PACKETS:-1000000}"
SEED="${SEED:-1}"
CPU="${CPU:-0}"
TRAWL_RUNS="${TRAWL_RUNS:-3}"
TSHARK_RUNS="${TSHARK_RUNS:-1}"
SKIP_TSHARK="${SKIP_TSHARK:-0}"
SKIP_TRAWL="${SKIP_TRAWL:-0}"
REGENERATE="${REGENERATE:-0}"
TRAWL_BIN="${TRAWL_BIN:-}"
USE_HYPERFINE="${USE_HYPERFINE:-1}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---- tools -----------------------------------------------------------------
missing=()
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)."
command -v python3 >/dev/null || die "python3 not found: it parses the JSON summaries (apt-get install -y python3)."
command -v taskset >/dev/null || die "taskset not found: it pins the tools to one core (apt-get install -y util-linux)."
HAVE_TSHARK=1
if ! command -v tshark >/dev/null; then
    HAVE_TSHARK=0
    missing+=("tshark (apt-get install -y tshark): the baseline is skipped")
fi
HAVE_HYPERFINE="$USE_HYPERFINE"
if [[ "$HAVE_HYPERFINE" == 1 ]] && ! command -v hyperfine >/dev/null; then
    HAVE_HYPERFINE=0
    missing+=("hyperfine (apt-get install -y hyperfine, or cargo install hyperfine): one run per tool, no spread")
fi
HAVE_TIME=1
if [[ ! -x /usr/bin/time ]]; then
    HAVE_TIME=0
    missing+=("/usr/bin/time (apt-get install -y time): no peak RSS")
fi
for m in "${missing[@]}"; do log "missing: $m"; done
if [[ "$SKIP_TSHARK" == 1 || "$HAVE_TSHARK" == 0 ]]; then RUN_TSHARK=0; else RUN_TSHARK=1; fi
if [[ "$SKIP_TRAWL" == 1 ]]; then RUN_TRAWL=0; else RUN_TRAWL=1; fi

# ---- build -----------------------------------------------------------------
cd "$ROOT"
if [[ "$RUN_TRAWL" == 1 && -z "$TRAWL_BIN" ]]; then
    log "Building trawl and trawl-lab (release)."
    cargo build --release -p trawl-cli -p trawl-lab
else
    log "Building trawl-lab (release)."
    cargo build --release -p trawl-lab
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
TRAWL="${TRAWL_BIN:-$TARGET_DIR/release/trawl}"
LAB="$TARGET_DIR/release/trawl-lab"

# ---- capture ---------------------------------------------------------------
mkdir -p "$BENCH_DIR"
PCAP="$BENCH_DIR/gen-p${PACKETS}-s${SEED}.pcap"
SUMMARY="$BENCH_DIR/gen-p${PACKETS}-s${SEED}.summary.json"
# A rebuilt generator may write different bytes: regenerate when it is newer.
if [[ "$REGENERATE" == 1 || ! -s "$PCAP" || ! -s "$SUMMARY" || "$LAB" -nt "$PCAP" ]]; then
    log "Generating $PCAP."
    "$LAB" gen-pcap --packets "$PACKETS" --seed "$SEED" -o "$PCAP.tmp" --summary "$SUMMARY"
    mv "$PCAP.tmp" "$PCAP"
else
    log "Reusing $PCAP."
fi
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SUMMARY" "$1"; }
N_PACKETS="$(json_field packets)"
N_BYTES="$(json_field bytes)"
N_HTTP="$(json_field http_calls)"
N_DNS="$(json_field dns_calls)"
N_CALLS=$((N_HTTP + N_DNS))
echo "capture: $PCAP"
echo "packets: $N_PACKETS  bytes: $N_BYTES  http calls: $N_HTTP  dns calls: $N_DNS"
# Read it once so that every measured run finds it in the page cache.
cat "$PCAP" >/dev/null

# ---- measuring -------------------------------------------------------------
# measure NAME RUNS COMMAND: runs COMMAND (a shell string) RUNS times, each
# under /usr/bin/time -v when available, and writes NAME.mean / NAME.stddev
# (seconds), NAME.runs and NAME.rss (KiB, last run) into $BENCH_DIR. Without
# hyperfine it runs COMMAND once.
measure() {
    local name="$1" runs="$2" cmd="$3"
    local timefile="$BENCH_DIR/$name.time" wrapped="$cmd"
    rm -f "$BENCH_DIR/$name".{mean,stddev,runs,rss,time,hyperfine.json}
    if [[ "$HAVE_TIME" == 1 ]]; then
        wrapped="/usr/bin/time -v -o $timefile $cmd"
    fi
    if [[ "$HAVE_HYPERFINE" == 1 ]]; then
        hyperfine --style basic --runs "$runs" --export-json "$BENCH_DIR/$name.hyperfine.json" \
            --command-name "$name" "$wrapped" >&2
        python3 - "$BENCH_DIR/$name.hyperfine.json" "$BENCH_DIR/$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
open(sys.argv[2] + ".mean", "w").write(f'{r["mean"]:.6f}\n')
open(sys.argv[2] + ".stddev", "w").write(f'{(r.get("stddev") or 0.0):.6f}\n')
open(sys.argv[2] + ".runs", "w").write(f'{len(r["times"])}\n')
PY
    else
        local t0 t1
        t0=$(date +%s%N)
        bash -c "$wrapped"
        t1=$(date +%s%N)
        python3 -c "print(f'{($t1 - $t0) / 1e9:.6f}')" >"$BENCH_DIR/$name.mean"
        echo "0" >"$BENCH_DIR/$name.stddev"
        echo "1" >"$BENCH_DIR/$name.runs"
    fi
    if [[ -s "$timefile" ]]; then
        awk -F': ' '/Maximum resident set size/ {print $2}' "$timefile" >"$BENCH_DIR/$name.rss"
        if grep -q 'Exit status: [1-9]' "$timefile"; then
            die "$name exited with an error: $(grep 'Exit status' "$timefile")"
        fi
    fi
}

TRAWL_CMD="taskset -c $CPU $TRAWL dissect $PCAP --format jsonl > /dev/null"
TSHARK_FIELDS="-e frame.time_epoch -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport -e http.request.method -e http.request.uri -e http.response.code -e dns.qry.name -e dns.qry.type -e dns.flags.rcode"
TSHARK_CMD="taskset -c $CPU tshark -n -r $PCAP -T fields $TSHARK_FIELDS > /dev/null 2>/dev/null"

TRAWL_FOUND="n/a"
if [[ "$RUN_TRAWL" == 1 ]]; then
    [[ -x "$TRAWL" ]] || die "$TRAWL was not built."
    log "Checking what trawl finds (one unmeasured run, which also warms up)."
    TRAWL_FOUND="$("$TRAWL" dissect "$PCAP" --format jsonl | wc -l)"
    echo "trawl found $TRAWL_FOUND calls; the capture holds $N_CALLS"
    log "Timing trawl ($TRAWL_RUNS runs, core $CPU)."
    measure trawl "$TRAWL_RUNS" "$TRAWL_CMD"
fi
TSHARK_VERSION="n/a"
if [[ "$RUN_TSHARK" == 1 ]]; then
    TSHARK_VERSION="$(tshark --version 2>/dev/null | head -1 | sed -E 's/^TShark \(Wireshark\) ([^ ]+).*/tshark \1/')"
    log "Timing tshark ($TSHARK_RUNS run(s), core $CPU); about 45 s per million packets."
    measure tshark "$TSHARK_RUNS" "$TSHARK_CMD"
fi

# ---- report ----------------------------------------------------------------
REV="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
CPU_MODEL="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)"
python3 - "$BENCH_DIR" "$N_PACKETS" "$N_BYTES" "$N_HTTP" "$N_DNS" "$TRAWL_FOUND" "$RUN_TRAWL" "$RUN_TSHARK" \
    "$REV" "$CPU_MODEL" "$(nproc)" "$TSHARK_VERSION" "$PACKETS" "$SEED" "$CPU" <<'PY'
import datetime, os, sys
(d, packets, nbytes, http, dns, found, run_trawl, run_tshark, rev, cpu_model, cores, tshark_version, gen_packets, seed, core) = sys.argv[1:]
packets = int(packets)

def read(name, ext):
    p = os.path.join(d, f"{name}.{ext}")
    return open(p).read().strip() if os.path.exists(p) and open(p).read().strip() else None

def row(name, label):
    mean = read(name, "mean")
    runs = read(name, "runs") or "?"
    if mean is None:
        return None, f"| {label} | – | – | – | – |"
    mean, sd = float(mean), float(read(name, "stddev") or 0)
    rss = read(name, "rss")
    rss = f"{int(rss) / 1024:,.0f}" if rss else "n/a"
    pps = packets / mean
    return pps, f"| {label} | {runs} | {mean:.3f} ± {sd:.3f} | {pps:,.0f} | {rss} |"

lines = [
    f"### dissect-vs-tshark, {datetime.date.today().isoformat()}, trawl {rev}",
    "",
    f"Host: {cpu_model}, {cores} cores; both tools pinned to core {core} (`taskset -c {core}`).",
    f"Capture: `trawl-lab gen-pcap --packets {gen_packets} --seed {seed}`: {packets:,} packets, "
    f"{int(nbytes) / 1e6:,.1f} MB, {int(http):,} HTTP calls, {int(dns):,} DNS calls"
    + (f"; trawl output {int(found):,} lines." if found != "n/a" else "."),
    "",
    "| tool | runs | wall s (mean ± sd) | packets/s | peak RSS MiB |",
    "|---|---|---|---|---|",
]
trawl_pps = tshark_pps = None
if run_trawl == "1":
    trawl_pps, r = row("trawl", "`trawl dissect FILE --format jsonl`")
    lines.append(r)
if run_tshark == "1":
    tshark_pps, r = row("tshark", f"`tshark -T fields` (11 fields, TCP reassembly on; {tshark_version})")
    lines.append(r)
lines.append("")
if trawl_pps and tshark_pps:
    lines.append(f"trawl / tshark: **{trawl_pps / tshark_pps:.1f}×** packets/s on one core.")
print()
print("\n".join(lines))
PY
