#!/usr/bin/env bash
# MCP tool latency at the hub against the REST routes they wrap.
#
# Generates a PACKETS-packet capture (trawl-lab gen-pcap), imports it as a
# snapshot of a fresh data directory, starts `trawl tap` on the loopback
# interface with that data directory (it serves the API and /mcp on
# 127.0.0.1:PORT), dissects the snapshot through MCP, and runs
# bench/mcp_latency.py: RUNS calls of a filtered list_api_calls and of
# get_api_stats, through MCP (official Python SDK, Streamable HTTP) and
# through the REST route, medians in ms. Goals (issue 5, at 1 M calls):
# list_api_calls < 200 ms, get_api_stats < 500 ms.
#
# Needs: root (trawl tap), cargo, python3 with mcp (pip install mcp).
# Environment: BENCH_DIR (/tmp/trawl-bench-mcp), PACKETS (1000000),
# RUNS (20), PORT (9911), PROFILE (release; debug for a quick smoke run),
# BUILD=0 to use the binaries already built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/trawl-bench-mcp}"
PACKETS="${PACKETS:-1000000}"
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
rm -rf "$BENCH_DIR/data"
mkdir -p "$BENCH_DIR/data"
pcap="$BENCH_DIR/gen-$PACKETS.pcap"
[ -f "$pcap" ] || "$target/trawl-lab" gen-pcap --packets "$PACKETS" --seed 1 -o "$pcap" >/dev/null
sid=$("$target/trawl" import "$pcap" --name bench --data "$BENCH_DIR/data" | tail -n 1)
"$target/trawl" tap --interface lo --data "$BENCH_DIR/data" --listen "127.0.0.1:$PORT" \
  --max-bytes 256MiB >"$BENCH_DIR/tap.log" 2>&1 &
tap=$!
trap 'kill -INT $tap 2>/dev/null; wait $tap 2>/dev/null || true' EXIT
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
asyncio.run(main())
PY
echo "Input: $PACKETS packets ($pcap), snapshot $sid; $(nproc) cores."
python3 bench/mcp_latency.py "http://127.0.0.1:$PORT" "$sid" "$RUNS"
