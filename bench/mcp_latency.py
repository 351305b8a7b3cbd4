"""Latency of MCP tools against the REST routes they call, on one running hub.

Usage: python3 bench/mcp_latency.py BASE_URL SNAPSHOT_ID [RUNS [TRAWL INDEX_DIR]]
(BASE_URL like http://127.0.0.1:9900; the snapshot must be dissected).
Times, with the official MCP Python SDK over Streamable HTTP and with
urllib against /api/v1, RUNS calls each (after one warm-up) of: a filtered
`list_api_calls` (20 compact calls) and `get_api_stats` by method; prints the
medians in ms. Given the `trawl` binary and the snapshot's index directory,
also times the same query as a `trawl query` / `trawl stats` process on the
index (the index query alone, process start-up included), which tells the
hub's share of the REST time. Run by bench/mcp.sh.
"""

import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

FILTER = 'http && status_code >= 500 && method == "POST"'


def rest(base, path, query):
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read())


async def main():
    base, sid = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    trawl, index = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
    fields = "id,timestamp,protocol,src.ip,src.port,src.name,dst.ip,dst.port,dst.name,method,path,status_code,elapsed_time,dns_questions"
    cases = {
        "list_api_calls": (
            {"snapshot_id": sid, "filter": FILTER, "limit": 20},
            f"/api/v1/snapshots/{sid}/calls", {"filter": FILTER, "limit": 20, "fields": fields},
            ["query", index, FILTER, "--limit", "20", "--fields", fields, "--format", "jsonl"],
        ),
        "get_api_stats": (
            {"snapshot_id": sid, "filter": "http", "by": ["method"]},
            f"/api/v1/snapshots/{sid}/stats", {"filter": "http", "by": "method"},
            ["stats", index, "http", "--by", "method", "--format", "jsonl"],
        ),
    }
    rows = []
    async with streamable_http_client(f"{base}/mcp") as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            for name, (args, path, query, cli) in cases.items():
                times = {"mcp": [], "rest": [], "cli": []}
                for i in range(runs + 1):
                    t = time.perf_counter()
                    r = await s.call_tool(name, args)
                    if r.is_error:
                        raise SystemExit(f"{name}: {r.content[0].text}")
                    if i:
                        times["mcp"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    rest(base, path, query)
                    if i:
                        times["rest"].append(time.perf_counter() - t)
                    if trawl:
                        t = time.perf_counter()
                        subprocess.run([trawl, *cli], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        if i:
                            times["cli"].append(time.perf_counter() - t)
                total = r.structured_content.get("total", r.structured_content.get("total_calls"))
                med = {k: statistics.median(v) * 1e3 if v else float("nan") for k, v in times.items()}
                rows.append((name, total, med["mcp"], med["rest"], med["cli"]))
    print("| tool | matching calls | MCP median ms | REST median ms | index query alone (trawl process) median ms |")
    print("|---|---|---|---|---|")
    for name, total, m, r, c in rows:
        print(f"| `{name}` | {total} | {m:.1f} | {r:.1f} | {c:.1f} |")


asyncio.run(main())
