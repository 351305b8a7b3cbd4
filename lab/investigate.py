"""An investigation the way an AI agent makes it, over trawl's MCP server.

`trawl demo` runs it after a lab scenario, and the end-to-end tests in
crates/lab/tests/scenario.rs run it with --json to check its findings
against the lab's ground truth (lab/e2e_check.py); it is also runnable by
hand against any hub:

    python3 lab/investigate.py --url http://127.0.0.1:9900/mcp [--token T]
        [--service frontend] [--from RFC3339 --to RFC3339] [--json FILE]

It uses the official MCP Python SDK (`pip install mcp`) over Streamable
HTTP and answers two questions, printing every tool call and a short
rendering of what came back:

1. "What can you tell me about my <service> service?"
   get_data_boundaries -> create_snapshot over the window -> start_snapshot_
   dissection (with progress) -> analyze_service -> find_anomalies.
2. "Tell me more about those <path> <code> errors" (the endpoint with the
   most server errors in the answer to 1, or --errors KFL):
   explain_errors -> list_api_calls / get_api_call for one failing call ->
   list_l4_flows for connections closed by RST.

A hub without the analysis tools (analyze_service, find_anomalies,
explain_errors) gets the same questions answered with get_api_stats and
list_api_calls, and says so. Exit status: 0 when every tool call
succeeded, 1 when one failed (its error is printed), 2 on usage errors.
"""

import argparse
import asyncio
import datetime
import json
import logging
import sys
import textwrap

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

# Rows a listing tool is asked for: enough to show, small enough to read.
PAGE = 5
# Body bytes of the one call shown: the start of a JSON error is enough.
BODY_BYTES = 300
# Longest wait for the dissection (the hub caps wait_seconds at 600).
DISSECTION_WAIT_S = 600
# Width of the wrapped text; the output is meant for a terminal.
WIDTH = 100

ANALYSIS_TOOLS = ("analyze_service", "find_anomalies", "explain_errors")


def rfc3339_plus(t, seconds):
    """`t` (RFC 3339, UTC) plus `seconds`, as RFC 3339 with microseconds."""
    d = datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) + datetime.timedelta(seconds=seconds)
    return d.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ToolFailed(Exception):
    pass


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def say(line="", indent=0):
    pad = " " * indent
    for i, part in enumerate(textwrap.wrap(line, WIDTH - indent, subsequent_indent="  ", break_on_hyphens=False,
                                             break_long_words=False) or [""]):
        print(pad + part)
    sys.stdout.flush()


def ms(us):
    """Microseconds as a short human duration."""
    if us is None:
        return "-"
    if us >= 1_000_000:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    return f"{us} µs"


def pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


class Agent:
    """One MCP session and the record of every step."""

    def __init__(self, session, quiet):
        self.s = session
        self.quiet = quiet
        self.steps = []
        self.tools = set()

    async def call(self, name, args, progress=False):
        shown = json.dumps(args, ensure_ascii=False)
        say(f"» {name} {shown}", 2)
        last = {"fraction": -1.0}

        async def on_progress(p, total, message):
            frac = p / total if total else 0.0
            # One line per quarter, not one per update.
            if frac - last["fraction"] >= 0.25 or frac >= 1.0 > last["fraction"]:
                last["fraction"] = frac
                say(f"… {100 * frac:.0f} % {message or ''}".rstrip(), 4)

        r = await self.s.call_tool(name, args, progress_callback=on_progress if progress else None)
        text = text_of(r)
        self.steps.append({"tool": name, "args": args, "is_error": bool(r.is_error), "text": text[:2000]})
        if r.is_error:
            raise ToolFailed(f"{name} failed: {text}")
        return r.structured_content or {}


def show_finding(f, indent=4):
    say(f"[{f.get('severity', '?')}] {f.get('kind')}: {f.get('summary') or f.get('title')}", indent)
    ev = f.get("evidence") or {}
    if ev.get("kfl"):
        say(f"evidence: {ev.get('total', 0)} calls/flows, {ev['kfl']}", indent + 4)


def show_service(rep):
    say(rep.get("summary", ""), 4)
    lat = rep.get("latency_us") or {}
    tcp = rep.get("tcp_connect_us") or {}
    st = rep.get("status") or {}
    say(f"calls {rep.get('calls')}, latency p50 {ms(lat.get('p50'))} p95 {ms(lat.get('p95'))} "
        f"p99 {ms(lat.get('p99'))}; TCP connect p50 {ms(tcp.get('p50'))} ({tcp.get('samples', 0)} handshakes); "
        f"2xx {pct(rep.get('share_2xx'))}, 5xx {st.get('5xx', 0)}, failed {st.get('failed', 0)}", 4)
    for e in (rep.get("endpoints") or [])[:PAGE]:
        codes = ", ".join(f"{k}×{v}" for k, v in (e.get("status_5xx") or {}).items())
        say(f"{e.get('method')} {e.get('path')}: {e.get('calls')} calls, {e.get('errors')} errors "
            f"({pct(e.get('error_rate'))}{'; ' + codes if codes else ''}), p50 {ms(e.get('p50_us'))}, "
            f"p95 {ms(e.get('p95_us'))}", 6)
    for label, key in (("callers", "callers"), ("callees", "callees")):
        peers = rep.get(key) or []
        if peers:
            say(f"{label}: " + "; ".join(f"{p.get('name') or '?'} ({p.get('calls')} calls, {p.get('errors')} errors, "
                                         f"p95 {ms(p.get('p95_us'))})" for p in peers[:PAGE]), 4)


def show_explanation(ex):
    say(ex.get("summary", ""), 4)
    for t in ex.get("timeouts") or []:
        say(f"timeout: {t.get('service')} → {t.get('callee')} gives up after {t.get('timeout_ms')} ms "
            f"({t.get('count')} calls)", 4)
    if ex.get("chain"):
        say("causal chain:", 4)
        for link in ex["chain"]:
            say(f"{link.get('role')}: {link.get('service')} {link.get('endpoint')} — {link.get('detail')}", 6)
    if ex.get("timeline"):
        say("timeline:", 4)
        for ev in ex["timeline"]:
            say(f"{ev.get('time')}  {ev.get('event')}", 6)


def pick_errors(service, report, stats):
    """The follow-up question's subject: the endpoint of `service` with the
    most server errors, and its most frequent 5xx code. From the service
    report when there is one, else from get_api_stats groups."""
    best = None
    for e in (report or {}).get("endpoints") or []:
        codes = e.get("status_5xx") or {}
        if not codes:
            continue
        code, n = max(codes.items(), key=lambda kv: kv[1])
        if best is None or n > best[3]:
            best = (e.get("method"), e.get("path"), int(code), n)
    if best is None:
        # get_api_stats of the 5xx grouped by method, path, status_code.
        for g in (stats or {}).get("groups") or []:
            key = g.get("key") or []
            if len(key) == 3 and g.get("count") and (best is None or g["count"] > best[3]):
                best = (key[0], key[1], int(key[2]), g["count"])
    if best is None:
        return None, None
    method, path, code, _ = best
    parts = [f'dst.service.name == "{service}"']
    if method:
        parts.append(f'method == "{method}"')
    if path and "{" not in path:
        parts.append(f'path == "{path}"')
    elif path:
        # A folded path (/carts/{id}/items): match its fixed prefix.
        parts.append(f'path.startsWith("{path.split("{")[0]}")')
    parts.append(f"status_code == {code}" if code else "status_code >= 500")
    return " && ".join(parts), (path, code)


async def investigate(agent, args, out):
    s = agent.s
    out["service"] = args.service
    agent.tools = {t.name for t in (await s.list_tools()).tools}
    missing = [t for t in ANALYSIS_TOOLS if t not in agent.tools]
    out["analysis_tools"] = not missing

    say(f'Q: "What can you tell me about my {args.service} service?"')
    b = await agent.call("get_data_boundaries", {})
    nodes = b.get("nodes") or []
    for n in nodes:
        say(f"node {n.get('node')}: {n.get('oldest')} → {n.get('newest')}, {n.get('packets')} packets, "
            f"{n.get('drops', 0)} kernel drops", 4)
    if not nodes or not any(n.get("packets") for n in nodes):
        raise ToolFailed("the hub holds no packets; capture something first (trawl tap)")
    frm = args.frm or min(n["oldest"] for n in nodes if n.get("oldest"))
    # The newest packet's time is cut to microseconds, and a window's end
    # is exclusive: one second more keeps the last packets in.
    to = args.to or rfc3339_plus(max(n["newest"] for n in nodes if n.get("newest")), 1.0)
    out["boundaries"] = b

    snap = await agent.call("create_snapshot", {"from": frm, "to": to, "name": args.name}, progress=True)
    snap = snap.get("snapshot", snap)
    sid = snap["id"]
    say(f"snapshot {sid}: {snap.get('packets')} packets, {snap.get('from', frm)} → {snap.get('to', to)}", 4)
    out["snapshot"] = snap

    d = await agent.call("start_snapshot_dissection", {"snapshot_id": sid, "wait_seconds": DISSECTION_WAIT_S},
                         progress=True)
    if d.get("status") != "done":
        raise ToolFailed(f"the dissection did not finish: {json.dumps(d)[:500]}")
    by_proto = ", ".join(f"{k} {v}" for k, v in sorted((d.get("calls_by_protocol") or {}).items()))
    say(f"dissected: {d.get('calls')} calls ({by_proto}), {d.get('flows')} flows", 4)
    out["dissection"] = d

    report = stats = None
    if not missing:
        report = await agent.call("analyze_service", {"snapshot_id": sid, "service": args.service})
        show_service(report)
        out["service_report"] = report
        an = await agent.call("find_anomalies", {"snapshot_id": sid})
        say(an.get("summary") or f"{len(an.get('findings') or [])} findings", 4)
        shown = [f for f in an.get("findings") or [] if f.get("severity") != "low"][:args.findings]
        for f in shown:
            show_finding(f)
        rest = len(an.get("findings") or []) - len(shown)
        if rest:
            say(f"(and {rest} more of low severity or past --findings; all in --json)", 4)
        out["anomalies"] = an
    else:
        say(f"(this hub has no {', '.join(missing)}; answering with get_api_stats)", 4)
    # The plain statistics too: the tests compare them with the ground truth,
    # and they answer the question on a hub without analysis tools.
    stats = await agent.call("get_api_stats", {"snapshot_id": sid, "filter": f'http && dst.service.name == "{args.service}"',
                                               "by": ["method", "path"], "limit": 50})
    out["stats"] = stats
    groups = stats.get("groups") or []
    say(f"{stats.get('total_calls')} calls in {stats.get('total_groups')} method+path groups; "
        f"{sum(g.get('errors', 0) for g in groups)} errors in the {len(groups)} busiest", 4)
    errors = None
    if missing:
        for g in (stats.get("groups") or [])[:PAGE]:
            lat = g.get("latency_us") or {}
            say(f"{' '.join(map(str, g.get('key') or []))}: {g.get('count')} calls, {g.get('errors')} errors "
                f"({pct(g.get('error_rate'))}), p50 {ms(lat.get('p50'))}, p95 {ms(lat.get('p95'))}", 6)
        errors = await agent.call("get_api_stats", {
            "snapshot_id": sid, "filter": f'http && dst.service.name == "{args.service}" && status_code >= 500',
            "by": ["method", "path", "status_code"], "limit": 20})
        out["error_stats"] = errors

    kfl, subject = (args.errors, None) if args.errors else pick_errors(args.service, report, errors)
    out["errors_kfl"] = kfl
    if not kfl:
        say(f"{args.service} answered no server errors in this window; nothing to explain.", 4)
        return
    path, code = subject or (None, None)
    say()
    say(f'Q: "Tell me more about those {path or ""} {code or ""} errors"'.replace("  ", " "))
    if not missing:
        ex = await agent.call("explain_errors", {"snapshot_id": sid, "kfl": kfl})
        show_explanation(ex)
        out["explanation"] = ex

    calls = await agent.call("list_api_calls", {"snapshot_id": sid, "filter": kfl, "limit": PAGE})
    say(f"{calls.get('total')} calls match; the first:", 4)
    for c in calls.get("calls") or []:
        say(f"{c.get('id')} {c.get('timestamp')} {c.get('src.name') or c.get('src.ip')} → "
            f"{c.get('dst.name') or c.get('dst.ip')} {c.get('method')} {c.get('path')} {c.get('status_code')} "
            f"in {ms(c.get('elapsed_time'))}", 6)
    out["failing_calls"] = calls
    if calls.get("calls"):
        one = await agent.call("get_api_call", {"snapshot_id": sid, "call_id": calls["calls"][0]["id"],
                                                "max_body_bytes": BODY_BYTES})
        body = (one.get("response_body") or {}).get("body")
        rid = ((one.get("call") or {}).get("request.headers") or {}).get("x-request-id")
        if body or rid:
            say(f"request {rid or '-'}; response body: {str(body or '')[:BODY_BYTES]}", 6)
        out["call"] = one

    flows = await agent.call("list_l4_flows", {
        "snapshot_id": sid, "where": "rst_count > 0", "sort": "last_timestamp", "limit": PAGE,
        "fields": ["conn_id", "timestamp", "last_timestamp", "src.name", "src.ip", "src.port", "dst.name", "dst.ip",
                   "dst.port", "calls", "closed_by", "rst_count"]})
    say(f"{flows.get('total')} connections ended with an RST; the first:", 4)
    for f in flows.get("flows") or []:
        say(f"{f.get('last_timestamp')} RST from the {f.get('closed_by') or '?'}: "
            f"{f.get('src.name') or f.get('src.ip')}:{f.get('src.port')} → "
            f"{f.get('dst.name') or f.get('dst.ip')}:{f.get('dst.port')} (open since {f.get('timestamp')}, "
            f"{f.get('calls')} calls)", 6)
    out["rst_flows"] = flows
    rst_by_pair = await agent.call("query_sql", {
        "snapshot_id": sid,
        "query": "SELECT src_name, dst_name, dst_ip, count(*) AS flows, min(last_timestamp) AS first_rst, "
                 "max(last_timestamp) AS last_rst FROM flows WHERE rst_count > 0 GROUP BY 1, 2, 3 "
                 "ORDER BY flows DESC LIMIT 10"})
    for row in (rst_by_pair.get("rows") or [])[:PAGE]:
        say(f"{row.get('src_name') or '?'} → {row.get('dst_name') or row.get('dst_ip')}: {row.get('flows')} "
            f"connections reset, {row.get('first_rst')} to {row.get('last_rst')}", 6)
    out["rst_by_pair"] = rst_by_pair


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:9900/mcp", help="the hub's MCP endpoint")
    ap.add_argument("--token", help="bearer token of a hub that requires one")
    ap.add_argument("--service", default="frontend", help="the service asked about (default frontend)")
    ap.add_argument("--errors", help="KFL of the errors to explain (default: the service's endpoint with the "
                                     "most server errors, its most frequent code)")
    ap.add_argument("--from", dest="frm", help="window start, RFC 3339 (default: the oldest packet held)")
    ap.add_argument("--to", help="window end, RFC 3339 (default: the newest packet held)")
    ap.add_argument("--name", default="investigation", help="name of the snapshot made")
    ap.add_argument("--findings", type=int, default=12, help="anomaly findings printed (all go to --json)")
    ap.add_argument("--json", help="write every structured result to this file")
    ap.add_argument("--quiet", action="store_true", help="print the tool calls only")
    args = ap.parse_args()
    # The SDK warns when the server ends the session itself; not news here.
    logging.getLogger("mcp.client.streamable_http").setLevel(logging.ERROR)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    # The dissection answers only when done (progress comes meanwhile):
    # reads may wait as long as it may take.
    client = create_mcp_http_client(headers=headers,
                                    timeout=httpx2.Timeout(30.0, read=DISSECTION_WAIT_S + 60.0))
    status = 0
    result = {}
    agent = None
    async with client, streamable_http_client(args.url, http_client=client) as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            agent = Agent(s, args.quiet)
            try:
                await investigate(agent, args, result)
            except ToolFailed as e:
                print(f"error: {e}", file=sys.stderr)
                status = 1
    if args.json:
        result["steps"] = agent.steps if agent else []
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
