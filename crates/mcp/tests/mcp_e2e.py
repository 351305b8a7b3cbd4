"""trawl's MCP server end to end with the official MCP Python SDK as the client.

Run by crates/mcp/tests/mcp.rs against a hub serving a data directory with a
raw store of a trawl-lab capture (node "lab"); also runnable by hand:

    python3 crates/mcp/tests/mcp_e2e.py --http http://127.0.0.1:9900/mcp
    python3 crates/mcp/tests/mcp_e2e.py --stdio target/debug/trawl --url http://127.0.0.1:9900/mcp
    python3 crates/mcp/tests/mcp_e2e.py --stdio target/debug/trawl --url http://127.0.0.1:1/mcp --no-hub

It lists the tools (each with described parameters, an output schema and
annotations), then walks the investigation: boundaries -> snapshot ->
dissection with progress -> calls with a KFL filter -> stats -> one call with
its payload -> flows, workloads, IPs, SQL -> a PCAP export that tshark reads
back with the expected packet count; and checks that input mistakes come back
as isError results that say how to fix the call. Exits non-zero on the first
failed check.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "get_data_boundaries", "list_snapshots", "create_snapshot", "get_snapshot",
    "delete_snapshot", "start_snapshot_dissection", "get_snapshot_dissection_status",
    "list_api_calls", "get_api_call", "get_api_stats", "list_l4_flows",
    "get_l4_flow_summary", "list_workloads", "list_ips", "export_snapshot_pcap",
    "query_sql", "describe_fields",
    "analyze_service", "find_anomalies", "explain_errors",
}


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def call(s, name, args, progress=None):
    r = await s.call_tool(name, args, progress_callback=progress)
    check(not r.is_error, f"{name} succeeds: {text_of(r)[:200]}")
    if os.environ.get("MCP_E2E_VERBOSE"):
        print(json.dumps(r.structured_content)[:1500])
    check(isinstance(r.structured_content, dict), f"{name} has structured content")
    check(text_of(r).strip() != "", f"{name} has a text summary")
    return r.structured_content, r


async def fails(s, name, args, *needles):
    r = await s.call_tool(name, args)
    t = text_of(r)
    check(r.is_error, f"{name} {json.dumps(args)} is a tool error")
    for n in needles:
        check(n in t, f"{name} error mentions {n!r}: {t[:300]}")
    return t


async def tools_are_described(s):
    tools = (await s.list_tools()).tools
    names = {t.name for t in tools}
    check(names == EXPECTED_TOOLS, f"the 20 tools are listed (missing {EXPECTED_TOOLS - names}, extra {names - EXPECTED_TOOLS})")
    for t in tools:
        check(t.description and len(t.description) > 40, f"{t.name} is described")
        props = t.input_schema.get("properties", {})
        for p, schema in props.items():
            assert schema.get("description"), f"{t.name}.{p} has no description"
        check(t.output_schema and t.output_schema.get("type") == "object", f"{t.name} has an object output schema")
        a = t.annotations
        check(a is not None and a.read_only_hint is not None and a.destructive_hint is not None
              and a.idempotent_hint is not None, f"{t.name} has annotations")
    by = {t.name: t for t in tools}
    check(by["list_api_calls"].annotations.read_only_hint, "list_api_calls is read-only")
    check(by["delete_snapshot"].annotations.destructive_hint, "delete_snapshot is destructive")
    check("microseconds" in by["list_api_calls"].description, "list_api_calls says elapsed_time is in microseconds")


async def investigation(s, args):
    await tools_are_described(s)

    res = (await s.list_resources()).resources
    check({str(r.uri) for r in res} >= {"trawl://kfl", "trawl://fields/calls"}, "KFL and field resources are listed")
    kfl = await s.read_resource("trawl://kfl")
    check("elapsed_time" in kfl.contents[0].text, "the KFL reference reads")
    prompts = (await s.list_prompts()).prompts
    check(any(p.name == "find_errors" for p in prompts), "investigation prompts are listed")
    p = await s.get_prompt("latency_analysis", {"service": "checkout"})
    check("checkout" in p.messages[0].content.text, "a prompt takes its argument")

    b, _ = await call(s, "get_data_boundaries", {})
    check(len(b["nodes"]) == 1 and b["nodes"][0]["node"] == "lab", f"one node, lab: {b}")
    held = b["nodes"][0]["packets"]
    check(held == args.packets, f"the raw store holds the capture's {args.packets} packets")

    updates = []

    async def progress(p, total, message):
        updates.append((p, total, message))

    snap, _ = await call(s, "create_snapshot", {"last": "1h", "name": "e2e"}, progress)
    snap = snap["snapshot"]
    sid = snap["id"]
    check(snap["packets"] == held, f"the snapshot holds every packet ({snap['packets']})")
    check(len(updates) >= 1, f"create_snapshot sent progress ({len(updates)})")

    listed, _ = await call(s, "list_snapshots", {})
    check(any(x["id"] == sid for x in listed["snapshots"]), "list_snapshots shows it")

    await fails(s, "list_api_calls", {"snapshot_id": sid}, "start_snapshot_dissection")

    updates.clear()
    d, _ = await call(s, "start_snapshot_dissection", {"snapshot_id": sid, "wait_seconds": 120}, progress)
    check(d["status"] == "done", f"dissection done: {d}")
    check(d["calls"] and d["calls"] > 0 and d["flows"] > 0, f"calls and flows indexed: {d['calls']}, {d['flows']}")
    check(len(updates) >= 1 and updates[-1][1] == 1.0, f"dissection sent progress: {updates[-3:]}")
    st, _ = await call(s, "get_snapshot_dissection_status", {"snapshot_id": sid})
    check(st["status"] == "done", "dissection status is done")

    calls, r = await call(s, "list_api_calls", {"snapshot_id": sid, "filter": "http && status_code >= 200", "limit": 5})
    check(calls["returned"] == 5 and calls["total"] > 5 and calls["truncated"] and calls["next_cursor"],
          f"a page of 5 HTTP calls out of {calls['total']}, with a cursor")
    c0 = calls["calls"][0]
    check({"id", "method", "path", "status_code", "elapsed_time"} <= set(c0), f"compact call fields: {sorted(c0)}")
    check("request.headers" not in c0, "compact records leave headers out")
    page2, _ = await call(s, "list_api_calls", {"snapshot_id": sid, "filter": "http && status_code >= 200",
                                                "limit": 5, "cursor": calls["next_cursor"]})
    check({c["id"] for c in page2["calls"]}.isdisjoint({c["id"] for c in calls["calls"]}), "the next page is new calls")
    dns, _ = await call(s, "list_api_calls", {"snapshot_id": sid, "filter": "dns", "limit": 3,
                                              "fields": ["id", "dns_questions", "status_code"]})
    check(dns["total"] > 0 and set(dns["calls"][0]) <= {"id", "dns_questions", "status_code"}, f"fields narrows records: {dns['calls'][:1]}")
    full, _ = await call(s, "list_api_calls", {"snapshot_id": sid, "filter": "http", "limit": 2, "fields": ["*"]})
    check("request.headers" in full["calls"][0], "fields [*] returns every non-empty field")

    # Input mistakes are tool errors that say how to fix the call.
    await fails(s, "list_api_calls", {"snapshot_id": sid, "filter": "http && response.statuss == 200"},
                "did you mean", "response.status", "Position: line 1")
    await fails(s, "list_api_calls", {"snapshot_id": sid, "limit": 100000}, "1 to 200")
    await fails(s, "list_api_calls", {"snapshot_id": "no-such-snapshot"}, "list_snapshots")
    await fails(s, "list_api_calls", {"snapshot_id": sid, "limt": 5}, "limt")
    await fails(s, "list_l4_flows", {"snapshot_id": sid, "ip": "10.0.0.1' OR 1=1"}, "not an IP address")
    await fails(s, "delete_snapshot", {"snapshot_id": sid}, "--allow-destructive")

    stats, _ = await call(s, "get_api_stats", {"snapshot_id": sid, "filter": "http", "by": ["method"]})
    check(stats["total_calls"] == sum(g["count"] for g in stats["groups"]), "stats groups add up")
    check(stats["groups"][0]["latency_us"]["p95"] is not None, "stats give latency percentiles")
    http_total = (await call(s, "list_api_calls", {"snapshot_id": sid, "filter": "http", "limit": 1}))[0]["total"]
    check(stats["total_calls"] == http_total, f"stats count every HTTP call ({http_total})")

    one, r = await call(s, "get_api_call", {"snapshot_id": sid, "call_id": full["calls"][0]["id"], "max_body_bytes": 16})
    check(one["call"]["id"] == full["calls"][0]["id"], "get_api_call returns the call")
    bodies = [b for b in (one["request_body"], one["response_body"]) if b]
    check(bodies, "the call has a body")
    for b in bodies:
        check(b["returned_bytes"] <= 16 and b["size"] >= b["returned_bytes"], f"body capped at 16 bytes of {b['size']}")

    flows, _ = await call(s, "list_l4_flows", {"snapshot_id": sid, "limit": 3, "sort": "-calls"})
    check(flows["returned"] == 3 and flows["total"] >= 3 and flows["next_cursor"], f"a page of flows: {flows['flows'][:1]}")
    check({"src.ip", "dst.port", "transport"} <= set(flows["flows"][0]), "flows keyed by KFL names")
    summ, _ = await call(s, "get_l4_flow_summary", {"snapshot_id": sid})
    check(summ["totals"]["flows"] == flows["total"], "the flow summary counts every flow")
    # Without where/sort the flows route answers (KFL; a hub merges it).
    p1, _ = await call(s, "list_l4_flows", {"snapshot_id": sid, "limit": 2})
    check(p1["total"] == flows["total"] and p1["returned"] == 2 and p1["next_cursor"].startswith("k"), f"flows by KFL: {p1}")
    p2, _ = await call(s, "list_l4_flows", {"snapshot_id": sid, "limit": 2, "cursor": p1["next_cursor"]})
    key = lambda f: (f["src.ip"], f["src.port"], f["dst.ip"], f["dst.port"], f["timestamp"])
    check(not {key(f) for f in p1["flows"]} & {key(f) for f in p2["flows"]}, "the next page of flows is disjoint")
    tcp, _ = await call(s, "list_l4_flows", {"snapshot_id": sid, "filter": "tcp", "limit": 1})
    tcp_sql, _ = await call(s, "list_l4_flows", {"snapshot_id": sid, "where": "transport = 'tcp'", "limit": 1})
    check(tcp["total"] == tcp_sql["total"] > 0, f"a KFL filter counts as its SQL twin: {tcp['total']} vs {tcp_sql['total']}")
    ips, _ = await call(s, "list_ips", {"snapshot_id": sid, "limit": 5})
    check(ips["returned"] == 5 and ips["total"] > 5, f"IPs listed: {ips['rows'][:1]}")
    await call(s, "list_workloads", {"snapshot_id": sid})
    sql, _ = await call(s, "query_sql", {"snapshot_id": sid, "query": "SELECT protocol, count(*) AS n FROM calls GROUP BY protocol ORDER BY n DESC"})
    check(sql["total"] >= 2 and sql["columns"] == ["protocol", "n"], f"SQL answers: {sql['rows']}")
    await fails(s, "query_sql", {"snapshot_id": sid, "query": "SELECT nope FROM calls"}, "bad_query")
    fields, _ = await call(s, "describe_fields", {"table": "calls", "search": "microseconds"})
    check(any(f["name"] == "elapsed_time" for f in fields["calls"]) and fields["flows"] == [], "describe_fields searches")

    # The analyses: structured, bounded, and bad input told how to fix.
    server_ip = tcp["flows"][0]["dst.ip"]
    svc, r = await call(s, "analyze_service", {"snapshot_id": sid, "service": server_ip})
    check(svc["calls"] > 0 and svc["summary"] in r.content[0].text and svc["endpoints"],
          f"analyze_service by IP: {svc['summary']}")
    an, _ = await call(s, "find_anomalies", {"snapshot_id": sid, "limit": 5})
    check(len(an["findings"]) <= 5 and all(len(f["evidence"]["call_ids"]) <= 10 for f in an["findings"]),
          f"find_anomalies is bounded: {an['summary']}")
    ex, _ = await call(s, "explain_errors", {"snapshot_id": sid, "kfl": "http && status_code >= 500"})
    check(isinstance(ex["chain"], list) and "summary" in ex, f"explain_errors answers: {ex['summary']}")
    await fails(s, "explain_errors", {"snapshot_id": sid, "kfl": "http && response.statuss == 500"},
                "did you mean", "response.status", "Position: line 1")
    await fails(s, "find_anomalies", {"snapshot_id": sid, "from": "yesterday"}, "RFC 3339")
    await fails(s, "analyze_service", {"snapshot_id": sid, "service": ""}, "list_workloads")

    updates.clear()
    exp, r = await call(s, "export_snapshot_pcap", {"snapshot_id": sid}, progress)
    links = [c for c in r.content if getattr(c, "type", "") == "resource_link"]
    check(len(links) == 1 and str(links[0].uri).startswith("file://"), "the PCAP comes as a file link, not bytes")
    check(exp["packets"] == snap["packets"], f"the export holds the snapshot's {snap['packets']} packets")
    check(len(updates) >= 1, "export sent progress")
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", exp["path"], "-T", "fields", "-e", "frame.number"],
                             capture_output=True, text=True, check=True).stdout
        check(len(out.split()) == exp["packets"], f"tshark reads {exp['packets']} packets back")
    else:
        print("  SKIPPED: tshark not installed; the export was not read back with tshark")
    await fails(s, "export_snapshot_pcap", {"snapshot_id": sid, "filter": "tcp portt 80"}, "tcpdump")


async def no_hub(s, stderr_path):
    tools = (await s.list_tools()).tools
    check([t.name for t in tools] == ["hub_status"], "without a hub, one hub_status tool is listed")
    check("trawl tap" in tools[0].description, "its description says how to start a hub")
    t = await fails(s, "list_api_calls", {"snapshot_id": "x"}, "trawl tap")
    with open(stderr_path) as f:
        err = f.read()
    check("no trawl hub answers" in err and "trawl tap" in err, f"stderr says so: {err.strip()[:200]}")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", help="MCP endpoint to test over Streamable HTTP")
    ap.add_argument("--stdio", help="trawl binary: test `trawl mcp --url URL` over stdio")
    ap.add_argument("--url", help="the hub endpoint `trawl mcp` forwards to")
    ap.add_argument("--no-hub", action="store_true", help="expect no hub at --url")
    ap.add_argument("--packets", type=int, required=False, default=0, help="packets of the raw store")
    args = ap.parse_args()
    if args.http:
        print(f"Streamable HTTP at {args.http}")
        async with streamable_http_client(args.http) as streams:
            async with ClientSession(streams[0], streams[1]) as s:
                await s.initialize()
                await investigation(s, args)
    if args.stdio:
        print(f"stdio through `{args.stdio} mcp --url {args.url}`")
        params = StdioServerParameters(command=args.stdio, args=["mcp", "--url", args.url])
        with tempfile.NamedTemporaryFile("w+", suffix=".stderr", delete=False) as errlog:
            async with stdio_client(params, errlog=errlog) as streams:
                async with ClientSession(streams[0], streams[1]) as s:
                    await s.initialize()
                    if args.no_hub:
                        errlog.flush()
                        await no_hub(s, errlog.name)
                    else:
                        await investigation(s, args)
        os.unlink(errlog.name)
    print("PASSED")


if __name__ == "__main__":
    asyncio.run(main())
