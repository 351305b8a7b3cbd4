#!/usr/bin/env bash
# MCP tool latency at the hub against the REST routes they wrap, over a
# snapshot of at least 1 M calls (issue 5's Must show).
#
# Generates PACKETS packets (trawl-lab gen-pcap, DNS_SHARE of the calls
# DNS) straight into `trawl import` through a named pipe (so the capture is
# stored once, as the snapshot), starts `trawl tap` on the loopback
# interface with that data directory (it serves the API and /mcp on
# 127.0.0.1:PORT), dissects the snapshot through MCP, and runs
# bench/mcp_latency.py: RUNS calls of a filtered list_api_calls and of
# get_api_stats, through MCP (official Python SDK, Streamable HTTP), through
# the REST route, and as the `trawl query` / `trawl stats` process on the
# index directory (the index query alone, process start-up included), medians
# in ms. Goals (issue 5, at 1 M calls): list_api_calls < 200 ms,
# get_api_stats < 500 ms.
#
# Size: gen-pcap makes ~0.154 calls per packet at DNS_SHARE=0.3 (~4.4 KB of
# capture per call; 0.137 and ~6.3 KB at its default 0.2), so 6.6 M packets
# give ~1.01 M calls: ~4.4 GB of snapshot and ~2.9 GB of index. The script
# refuses to start with less free disk than that plus 1 GB, and deletes
# the data directory when done (KEEP=1 keeps it).
#
# Needs: root (trawl tap), cargo, python3 with mcp (pip install mcp).
# Environment: BENCH_DIR (/tmp/trawl-bench-mcp), PACKETS (6600000),
# DNS_SHARE (0.3), RUNS (20), PORT (9911), PROFILE (release; debug for a
# quick smoke run with PACKETS=100000), BUILD=0 to use the binaries already
# built, KEEP=1 to keep the data directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/trawl-bench-mcp}"
PACKETS="${PACKETS:-6600000}"
DNS_SHARE="${DNS_SHARE:-0.3}"
RUNS="${RUNS:-20}"
PORT="${PORT:-9911}"
PROFILE="${PROFILE:-release}"
cd "$ROOT"
if [ "${BUILD:-1}" = 0 ]; then
  :
elif [ "$PROFILE" = release ]; then
  cargo build --release -p trawl-cli -p trawl-lab
else
  cargo build -p trawl-cli -p trawl-lab
fi
target=${CARGO_TARGET_DIR:-target}/$PROFILE
mkdir -p "$BENCH_DIR"
# ~670 bytes of snapshot and ~440 of index per packet, plus 1 GB to spare.
need_kb=$(( PACKETS * 1110 / 1024 + 1024 * 1024 ))
free_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt "$need_kb" ]; then
  echo "bench/mcp.sh: $PACKETS packets need ~$((need_kb / 1024 / 1024)) GB free in $BENCH_DIR; $((free_kb / 1024 / 1024)) GB are. Give fewer PACKETS or another BENCH_DIR." >&2
  exit 1
fi
rm -rf "$BENCH_DIR/data" "$BENCH_DIR/gen.pipe"
mkdir -p "$BENCH_DIR/data"
tap=
cleanup() {
  [ -n "$tap" ] && { kill -INT "$tap" 2>/dev/null; wait "$tap" 2>/dev/null || true; }
  rm -f "$BENCH_DIR/gen.pipe"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$BENCH_DIR/data"
}
trap cleanup EXIT
mkfifo "$BENCH_DIR/gen.pipe"
"$target/trawl-lab" gen-pcap --packets "$PACKETS" --dns-share "$DNS_SHARE" --seed 1 \
  -o "$BENCH_DIR/gen.pipe" --summary "$BENCH_DIR/gen.summary.json" >/dev/null &
gen=$!
sid=$("$target/trawl" import "$BENCH_DIR/gen.pipe" --name bench --node bench \
  --data "$BENCH_DIR/data" | tail -n 1)
wait "$gen"
"$target/trawl" tap --interface lo --data "$BENCH_DIR/data" --listen "127.0.0.1:$PORT" \
  --max-bytes 256MiB >"$BENCH_DIR/tap.log" 2>&1 &
tap=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break
  sleep 0.2
done
python3 - "$PORT" "$sid" <<'PY'
import asyncio, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
async def main():
    async with streamable_http_client(f"http://127.0.0.1:{sys.argv[1]}/mcp") as st:
        async with ClientSession(st[0], st[1]) as s:
            await s.initialize()
            r = await s.call_tool("start_snapshot_dissection", {"snapshot_id": sys.argv[2], "wait_seconds": 600})
            print(r.content[0].text.splitlines()[0])
            if r.structured_content.get("status") != "done":
                raise SystemExit("the dissection did not finish")
asyncio.run(main())
PY
echo "Input: $PACKETS generated packets (DNS share $DNS_SHARE), snapshot $sid: $(du -sh "$BENCH_DIR/data/snapshots/$sid/nodes" | cut -f1) of packets, $(du -sh "$BENCH_DIR/data/snapshots/$sid/index" | cut -f1) of index."
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GB RAM; load:$(uptime | sed 's/.*load average://')"
python3 bench/mcp_latency.py "http://127.0.0.1:$PORT" "$sid" "$RUNS" \
  "$target/trawl" "$BENCH_DIR/data/snapshots/$sid/index"
echo "Load after:$(uptime | sed 's/.*load average://')"
