#!/usr/bin/env bash
# Query latency over 10 M calls: trawl (KFL through DataFusion over the
# index's Parquet files) against DuckDB (Python `duckdb`) on the same
# files in the same run, and indexing throughput (pcap → Parquet).
#
# 1. Builds trawl and the index crate's `gen_index` example (release) and
#    writes an index of CALLS generated calls straight from `Call` records
#    (crates/index/examples/gen_index.rs; 10 M calls' worth of pcap would
#    not fit the benchmark machine's free disk). Reused when present.
# 2. Times, with hyperfine (RUNS runs after a warm-up; the median kept),
#    (a) a selective filter, (b) a broad filter, 100 rows sorted by time,
#    (c) stats by endpoint (service, path) with p50/p95/p99 — each the
#    whole `trawl` process, start-up included;
#    then the same three in DuckDB, in one Python process (RUNS runs each,
#    the median; start-up excluded, so the comparison favours DuckDB).
#    For (a) and (b) DuckDB also counts the matches, as `trawl query`
#    reports the total.
# 3. Times `trawl index --threads 2` on a PACKETS-packet generated capture.
# 4. Prints the table with trawl/DuckDB ratios and records it in
#    bench/RESULTS.md (newest first; RECORD=0 to only print it).
#
# Goals (issue 3): each query within 1.5x DuckDB; (a), (b) < 100 ms;
# (c) < 500 ms; indexing >= 1 M packets/s on 2 cores.
#
# Needs: cargo, python3 with duckdb (pip install duckdb), hyperfine.
#
# Environment:
#   BENCH_DIR  where the index and capture go  (/tmp/trawl-bench)
#   CALLS      generated calls                 (10000000)
#   PACKETS    packets of the indexing capture (1000000)
#   RUNS       timed runs per query            (10)
#   RECORD=0   do not write bench/RESULTS.md
#   TRAWL_BIN, LAB_BIN, GEN_BIN  use these binaries instead of building
#              (all three given: nothing is built)
#   REPLICATE_FROM=IDX  build the CALLS-call index by replicating the calls
#              of index IDX (bench/replicate-index.py, needs pyarrow)
#              instead of running gen_index
#   BY         stats group fields, the "endpoint"  (dst.service.name,method)
#   FIELDS     the fields (a) and (b) return       (DuckDB's 9 columns;
#              empty for every field)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/trawl-bench}"
CALLS="${CALLS:-10000000}"
PACKETS="${PACKETS:-1000000}"
RUNS="${RUNS:-10}"
RECORD="${RECORD:-1}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)."
command -v hyperfine >/dev/null || die "hyperfine not found (apt-get install -y hyperfine)."
python3 -c 'import duckdb' 2>/dev/null || die "python3 with duckdb not found (pip install duckdb)."

cd "$ROOT"
if [[ -z "${TRAWL_BIN:-}" || -z "${LAB_BIN:-}" || -z "${GEN_BIN:-}" ]]; then
    log "Building trawl, trawl-lab and gen_index (release)."
    cargo build --release -p trawl-cli -p trawl-lab
    cargo build --release -p trawl-index --example gen_index
    TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
fi
TRAWL="${TRAWL_BIN:-$TARGET_DIR/release/trawl}"
LAB="${LAB_BIN:-$TARGET_DIR/release/trawl-lab}"
GEN="${GEN_BIN:-$TARGET_DIR/release/examples/gen_index}"

mkdir -p "$BENCH_DIR"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
IDX="$BENCH_DIR/calls-$CALLS"
BY="${BY:-dst.service.name,method}"
if [[ ! -s "$IDX/manifest.json" && -n "${REPLICATE_FROM:-}" ]]; then
    log "Replicating the calls of $REPLICATE_FROM to $CALLS calls in $IDX."
    python3 "$ROOT/bench/replicate-index.py" "$REPLICATE_FROM" "$IDX" "$CALLS"
elif [[ ! -s "$IDX/manifest.json" ]]; then
    log "Writing $CALLS generated calls to $IDX."
    "$GEN" --calls "$CALLS" --out "$IDX" | tee "$BENCH_DIR/gen-index.json"
else
    log "Reusing $IDX."
fi
cat "$IDX"/calls/*.parquet >/dev/null # into the page cache
INDEX_BYTES="$(du -sb "$IDX" | cut -f1)"

QA='dst.service.name == "payments" && method == "POST" && status_code == 503 && path == "/api/v1/checkout"'
QB='http && status_code < 500'
QC='http'
# The columns DuckDB's (a) and (b) return, so that both sides fetch the
# same 9 columns of the 100 rows (without --fields, jsonl is every one of
# ~200 columns). FIELDS= (empty) measures trawl with every column.
FIELDS="${FIELDS-timestamp,protocol,src.ip,dst.ip,method,path,status_code,elapsed_time,id}"
FIELDS_ARG="${FIELDS:+ --fields $FIELDS}"
declare -A CMD=(
    [a]="$TRAWL query $IDX '$QA' --limit 100 --format jsonl$FIELDS_ARG"
    [b]="$TRAWL query $IDX '$QB' --limit 100 --sort timestamp --format jsonl$FIELDS_ARG"
    [c]="$TRAWL stats $IDX '$QC' --by $BY --limit 1000 --format jsonl"
)
for q in a b c; do
    log "trawl ($q): ${CMD[$q]}"
    hyperfine --warmup 1 --runs "$RUNS" --export-json "$BENCH_DIR/query-$q.json" --output=null "${CMD[$q]}" >&2
done

log "DuckDB: the same three, $RUNS runs each."
python3 - "$IDX" "$RUNS" "$BY" >"$BENCH_DIR/query-duckdb.json" <<'PY'
import duckdb, json, statistics, sys, time
idx, runs = sys.argv[1], int(sys.argv[2])
by = ", ".join(b.replace(".", "_") for b in sys.argv[3].split(","))
con = duckdb.connect()
con.execute(f"CREATE VIEW calls AS SELECT * FROM read_parquet('{idx}/calls/*.parquet')")
cols = "timestamp, protocol, src_ip, dst_ip, method, path, status_code, elapsed_time, id"
qa = ("dst_service_name = 'payments' AND method = 'POST' AND status_code = 503 "
      "AND path = '/api/v1/checkout'")
qb = "http AND status_code < 500"
queries = {
    "a": [f"SELECT {cols} FROM calls WHERE {qa} ORDER BY timestamp, id LIMIT 100",
          f"SELECT count(*) FROM calls WHERE {qa}"],
    "b": [f"SELECT {cols} FROM calls WHERE {qb} ORDER BY timestamp, id LIMIT 100",
          f"SELECT count(*) FROM calls WHERE {qb}"],
    "c": [f"""SELECT {by}, count(*),
               count(*) FILTER (status_code BETWEEN 500 AND 599 OR NOT has_response),
               quantile_disc(elapsed_time, [0.5, 0.95, 0.99]) FILTER (has_request AND has_response),
               max(elapsed_time) FILTER (has_request AND has_response)
             FROM calls WHERE http GROUP BY ALL ORDER BY count(*) DESC LIMIT 1000"""],
}
out = {}
for name, stmts in queries.items():
    for s in stmts:
        con.execute(s).fetchall()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for s in stmts:
            con.execute(s).fetchall()
        times.append(time.perf_counter() - t0)
    out[name] = statistics.median(times)
print(json.dumps(out))
PY

log "Indexing throughput: trawl index --threads 2 on a $PACKETS-packet capture."
PCAP="$BENCH_DIR/gen-p${PACKETS}-s1.pcap"
SUMMARY="$BENCH_DIR/gen-p${PACKETS}-s1.summary.json"
if [[ ! -s "$PCAP" || ! -s "$SUMMARY" ]]; then
    "$LAB" gen-pcap --packets "$PACKETS" --seed 1 -o "$PCAP.tmp" --summary "$SUMMARY"
    mv "$PCAP.tmp" "$PCAP"
fi
cat "$PCAP" >/dev/null
rm -rf "$BENCH_DIR/index-q"
hyperfine --runs 3 --export-json "$BENCH_DIR/query-index.json" --output=null \
    --prepare "rm -rf $BENCH_DIR/index-q" "$TRAWL index $PCAP --out $BENCH_DIR/index-q --threads 2" >&2
rm -rf "$BENCH_DIR/index-q"

REV="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
CPU_MODEL="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)"
LOAD="$LOAD_START → $(cut -d' ' -f1-3 /proc/loadavg)"
BLOCK="$(python3 - "$BENCH_DIR" "$CALLS" "$RUNS" "$REV" "$CPU_MODEL" "$(nproc)" "$INDEX_BYTES" "$SUMMARY" "$PACKETS" \
    "$QA" "$QB" "$QC" "$LOAD" "$BY" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["source"])' "$IDX/manifest.json")" "$FIELDS" <<'PY'
import datetime, json, os, sys
(d, calls, runs, rev, cpu, cores, index_bytes, summary, gen_packets, qa, qb, qc, load, by, source, fields) = sys.argv[1:]
fields = f" --fields {fields}" if fields else ""
duck = json.load(open(os.path.join(d, "query-duckdb.json")))
def median(name):
    return json.load(open(os.path.join(d, name)))["results"][0]["median"]
goals = {"a": 0.100, "b": 0.100, "c": 0.500}
what = {
    "a": f"(a) selective: `trawl query IDX '{qa}' --limit 100{fields}`",
    "b": f"(b) broad, 100 by time: `trawl query IDX '{qb}' --limit 100 --sort timestamp{fields}`",
    "c": f"(c) stats by endpoint: `trawl stats IDX '{qc}' --by {by}` (p50/p95/p99/max)",
}
rows = []
for q in "abc":
    t = median(f"query-{q}.json")
    dk = duck[q]
    ok = t < goals[q] and t <= 1.5 * dk
    rows.append(f"| {what[q]} | {t * 1000:,.1f} | {dk * 1000:,.1f} | **{t / dk:.2f}×** | < {goals[q] * 1000:.0f} ms, ≤ 1.5× | {'met' if ok else 'not met'} |")
packets = json.load(open(summary))["packets"]
secs = median("query-index.json")
pps = packets / secs
lines = [
    f"## query — {datetime.date.today().isoformat()}, trawl {rev}",
    "",
    "Command: `bash bench/query.sh` (hyperfine, median of "
    f"{runs} runs after a warm-up, whole `trawl` process; DuckDB {__import__('duckdb').__version__} in one",
    "Python process, median of the same number of runs, start-up excluded; for (a) and (b) both",
    "compute the page and the total count).",
    "",
    f"Machine: {cpu}, {cores} cores; files in the page cache; load average (1, 5, 15 min) {load}.",
    "",
    f"Input: an index of {int(calls):,} calls ({int(index_bytes) / 1e9:,.2f} GB), source: {source}.",
    "",
    "| query | trawl ms | DuckDB ms | trawl / DuckDB | goal | |",
    "|---|---|---|---|---|---|",
    *rows,
    "",
    f"Indexing: `trawl index FILE --threads 2` on `trawl-lab gen-pcap --packets {gen_packets}` "
    f"({packets:,} packets): {secs:.3f} s, **{pps / 1e6:.2f} M packets/s** (goal ≥ 1 M: "
    + ("met" if pps >= 1e6 else "not met") + ").",
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
i = text.find("\n## ")
text = text + "\n" + block + "\n" if i < 0 else text[: i + 1] + block + "\n\n" + text[i + 1 :]
open(path, "w").write(text)
PY
    log "Recorded in bench/RESULTS.md."
fi
