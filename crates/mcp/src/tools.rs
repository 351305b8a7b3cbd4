//! The MCP tools, defined once: [`TOOLS`] is the plain list (name,
//! description, annotations, input and output schemas) and [`call`] the one
//! dispatch. Each tool checks its input, asks the [`Backend`] (the hub's
//! routes) and shapes the answer for a model: compact records unless asked
//! for more, explicit limits with named maxima, `total`/`truncated`/cursor,
//! payloads capped with their full size stated, PCAP files as links. Input
//! mistakes come back as [`ToolError`]s (`isError: true`) that say how to
//! fix the call.
//!
//! Flows, workloads and IPs are SQL over the snapshot's tables through
//! [`Backend::sql`]; every value spliced into that SQL is validated (an
//! IP, a port, a catalogue column) or quoted ([`sql_string`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::handler::server::common::{schema_for_output, schema_for_type};
use rmcp::model::{JsonObject, ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trawl_model::catalogue::{FLOW_FIELDS, FieldDef, FieldType, lookup};
use trawl_model::time::rfc3339_micros;

use crate::backend::{
    Backend, BackendError, CallsQuery, ErrorKind, PcapExport, SnapshotWindow, StatsQuery,
};
use crate::reference::{FieldInfo, KFL_REFERENCE, field_tables};

/// Calls per `list_api_calls` page when the agent gives no `limit`: enough
/// to see a pattern, small enough to leave the context for reasoning.
pub const DEFAULT_CALLS: usize = 20;
/// Most compact calls per page: ~200 B each, so 200 is ~40 KB of context.
pub const MAX_CALLS: usize = 200;
/// Most calls per page with `fields: ["*"]`: a full call with headers is a
/// few KB, so 25 keeps a page under ~100 KB.
pub const MAX_FULL_CALLS: usize = 25;
/// Body bytes `get_api_call` returns per payload by default.
pub const DEFAULT_BODY_BYTES: usize = 2048;
/// Most body bytes per payload: 64 KiB is the indexer's default keep cap,
/// so asking for the maximum returns every kept byte of most bodies.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Statistics groups returned by default, and at most.
pub const DEFAULT_GROUPS: usize = 20;
pub const MAX_GROUPS: usize = 500;
/// SQL rows returned by default, and at most (a wide row is ~1 KB).
pub const DEFAULT_SQL_ROWS: usize = 100;
pub const MAX_SQL_ROWS: usize = 1000;
/// Flows, workloads and IPs per page by default, and at most.
pub const DEFAULT_ROWS: usize = 20;
pub const MAX_ROWS: usize = 500;
/// Snapshots per page by default, and at most.
pub const DEFAULT_SNAPSHOTS: usize = 20;
pub const MAX_SNAPSHOTS: usize = 1000;
/// Most bytes of one string value in a list or SQL answer; longer ones are
/// cut with their length stated (a URL or header can be kilobytes).
pub const MAX_CELL_CHARS: usize = 512;
/// How long `start_snapshot_dissection` waits by default, and at most,
/// before answering with the job still running (MCP clients time out
/// tool calls after a minute or more).
pub const DEFAULT_WAIT_SECS: u64 = 50;
pub const MAX_WAIT_SECS: u64 = 600;
/// Interval of dissection status polls and of progress heartbeats.
const POLL: Duration = Duration::from_millis(500);
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Rows read to learn the names of IPs for `list_ips`.
const MAX_NAMED_IPS: usize = 10_000;

/// Fields of a call in `list_api_calls` unless `fields` says otherwise.
pub const DEFAULT_CALL_FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "protocol",
    "src.ip",
    "src.port",
    "src.name",
    "dst.ip",
    "dst.port",
    "dst.name",
    "method",
    "path",
    "status_code",
    "elapsed_time",
    "dns_questions",
];

/// Fields of a flow in `list_l4_flows` unless `fields` says otherwise
/// (those the catalogue has).
pub const DEFAULT_FLOW_FIELDS: &[&str] = &[
    "conn_id",
    "node",
    "transport",
    "src.ip",
    "src.port",
    "src.name",
    "dst.ip",
    "dst.port",
    "dst.name",
    "protocol",
    "calls",
    "timestamp",
    "last_timestamp",
    "close_reason",
    "conn_state",
    "flow_packets",
    "flow_bytes",
    "retransmissions",
    "rst_count",
    "rtt_avg_us",
];

/// Headers and cookies whose values are replaced by `[redacted]` (the
/// credentials of the security list).
pub const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
];

// ----------------------------------------------------------------------
// The registry.

/// One tool: what `tools/list` shows.
#[derive(Debug)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub input_schema: SchemaFn,
    pub output_schema: SchemaFn,
}

impl ToolDef {
    /// The rmcp tool.
    pub fn tool(&self) -> rmcp::model::Tool {
        let ann = rmcp::model::ToolAnnotations::with_title(self.title)
            .read_only(self.read_only)
            .destructive(self.destructive)
            .idempotent(self.idempotent)
            .open_world(false);
        rmcp::model::Tool::new(self.name, self.description, (self.input_schema)())
            .with_title(self.title)
            .with_raw_output_schema((self.output_schema)())
            .with_annotations(ann)
    }
}

/// Builds a tool's JSON schema (on each `tools/list`; rmcp caches them).
pub type SchemaFn = fn() -> Arc<JsonObject>;

/// The input and output schemas of a tool with argument type `I` and
/// answer type `O`.
const fn io<I: JsonSchema + 'static, O: JsonSchema + 'static>() -> (SchemaFn, SchemaFn) {
    (schema_for_type::<I>, schema_for_output::<O>)
}

const fn def(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    (read_only, destructive, idempotent): (bool, bool, bool),
    (input_schema, output_schema): (SchemaFn, SchemaFn),
) -> ToolDef {
    ToolDef {
        name,
        title,
        description,
        read_only,
        destructive,
        idempotent,
        input_schema,
        output_schema,
    }
}

/// (read-only, destructive, idempotent) of a tool that only reads.
const READS: (bool, bool, bool) = (true, false, true);

/// Every tool, in the order of an investigation.
pub static TOOLS: &[ToolDef] = &[
    def(
        "get_data_boundaries",
        "Data boundaries",
        "Per node: the time window of raw packets its rolling buffer holds (oldest, newest, RFC 3339 UTC), packets, bytes and capture drops. Call first: snapshots can only cover this window.",
        READS,
        io::<NoArgs, BoundariesOut>(),
    ),
    def(
        "list_snapshots",
        "List snapshots",
        "Snapshots (immutable copies of a time window of raw packets), oldest first, with their window, packet count and dissection state. Paginated: pass next_cursor back as cursor.",
        READS,
        io::<ListSnapshotsArgs, SnapshotsOut>(),
    ),
    def(
        "create_snapshot",
        "Create snapshot",
        "Copy a time window of raw packets into a new immutable snapshot, from every node or some. Give last (\"15m\", \"1h\") or from/to (RFC 3339). Waits while the packets are copied (up to 600 s), sending progress; if still creating, poll get_snapshot. Next: start_snapshot_dissection on the returned id.",
        (false, false, false),
        io::<CreateSnapshotArgs, SnapshotOut>(),
    ),
    def(
        "get_snapshot",
        "Get snapshot",
        "One snapshot: window, nodes, packets, bytes, status, warnings and dissection state (null = not dissected yet).",
        READS,
        io::<SnapshotIdArgs, SnapshotOut>(),
    ),
    def(
        "delete_snapshot",
        "Delete snapshot",
        "Delete a snapshot, its packets and its index. Irreversible. Refused while it is being dissected, and unless the server allows destructive tools.",
        (false, true, true),
        io::<SnapshotIdArgs, DeletedOut>(),
    ),
    def(
        "start_snapshot_dissection",
        "Dissect snapshot",
        "Index a snapshot into L7 API calls and L4 flows so that it can be queried. Waits up to wait_seconds (default 50) sending progress notifications; if still running, poll get_snapshot_dissection_status. Calling it on a dissected snapshot returns its counts at once.",
        (false, false, true),
        io::<DissectArgs, DissectionOut>(),
    ),
    def(
        "get_snapshot_dissection_status",
        "Dissection status",
        "State of a snapshot's dissection: running (with fraction done), done (with packets, calls, flows and calls per protocol) or failed (with the error).",
        READS,
        io::<SnapshotIdArgs, DissectionOut>(),
    ),
    def(
        "list_api_calls",
        "List API calls",
        "API calls (HTTP requests, DNS queries, …) of a dissected snapshot matching a KFL filter, e.g. `http && status_code >= 500 && dst.service.name == \"checkout\"`. elapsed_time is in microseconds; timestamps are RFC 3339 UTC. Compact records by default (id, time, endpoints, method, path, status, latency); ask for more with fields. Gives total matches; pass next_cursor back as cursor for the next page. Filter syntax and field names: describe_fields.",
        READS,
        io::<ListCallsArgs, CallsOut>(),
    ),
    def(
        "get_api_call",
        "Get API call",
        "One call by id (from list_api_calls) with every non-empty field and its request and response bodies (decoded from chunked/gzip/br), cut to max_body_bytes with the full size stated. Credentials in headers and cookies are redacted.",
        READS,
        io::<GetCallArgs, CallOut>(),
    ),
    def(
        "get_api_stats",
        "API statistics",
        "Statistics of the calls matching a KFL filter, grouped by any fields (e.g. by [\"dst.name\", \"path\"]) and optionally per time bucket (interval \"1m\"): count, HTTP status classes, DNS errors, calls without response, error rate, latency p50/p95/p99/max in microseconds. Exact over all calls (no sampling). Groups sorted by count, largest first (by time with interval).",
        READS,
        io::<StatsArgs, StatsOut>(),
    ),
    def(
        "list_l4_flows",
        "List L4 flows",
        "TCP and UDP connections of a dissected snapshot: endpoints, transport, detected protocol, number of calls, first and last packet (RFC 3339), how they closed, packets, bytes, retransmissions, resets and RTT (times in microseconds); any other flow field with fields. Filter by ip, port and a KFL filter over the flow fields (filter: \"tcp && retransmissions > 0\"), which on a hub merges every node's flows in time order; or by an SQL condition on the flows table (where: \"close_reason = 'rst'\") or with sort, which go through SQL (per node on a hub). Field names: describe_fields table=flows.",
        READS,
        io::<ListFlowsArgs, FlowsOut>(),
    ),
    def(
        "get_l4_flow_summary",
        "L4 flow summary",
        "Totals over the flows of a dissected snapshot (optionally filtered): flow and call counts, time span, TCP metric sums and maxima, flows per transport/protocol and per close reason, and the top client/server pairs by flow count.",
        READS,
        io::<FlowSummaryArgs, FlowSummaryOut>(),
    ),
    def(
        "list_workloads",
        "List workloads",
        "Named endpoints (pods, services, external or DNS names as resolved) seen in the calls of a dissected snapshot, with calls as client and as server and their IP count; busiest first.",
        READS,
        io::<ListWorkloadsArgs, RowsOut>(),
    ),
    def(
        "list_ips",
        "List IPs",
        "IP addresses seen in the flows of a dissected snapshot, with flows as client and as server, first and last seen, and their resolved name when calls named them; busiest first.",
        READS,
        io::<ListIpsArgs, RowsOut>(),
    ),
    def(
        "export_snapshot_pcap",
        "Export PCAP",
        "Write a snapshot's packets (optionally a time range, some nodes, a tcpdump-syntax filter such as \"tcp port 443 and host 10.0.0.7\") to a pcap or pcapng file on the server for Wireshark/tshark. Returns a file link and the packet count, not the bytes. Sends progress while writing.",
        (false, false, false),
        io::<ExportArgs, ExportOut>(),
    ),
    def(
        "query_sql",
        "SQL query",
        "Read-only SQL (DataFusion dialect) over a dissected snapshot's tables `calls` and `flows`; columns are the field names with . replaced by _ (src.pod.name -> src_pod_name; describe_fields lists them). For aggregations the other tools lack, e.g. SELECT dst_name, count(*) AS n FROM calls WHERE status_code >= 500 GROUP BY dst_name ORDER BY n DESC. On a cluster hub the query runs on every node and the rows come back with a `node` column: aggregates are per node (add them up, or use get_api_stats, which merges exactly).",
        READS,
        io::<SqlArgs, SqlOut>(),
    ),
    def(
        "describe_fields",
        "Describe fields and KFL",
        "The KFL filter language reference (operators, functions, units, examples) and the field catalogue of calls and flows: KFL name, type, aliases, SQL column, meaning, example. Narrow with table and search.",
        READS,
        io::<DescribeArgs, DescribeOut>(),
    ),
    crate::insights::ANALYZE_SERVICE,
    crate::insights::FIND_ANOMALIES,
    crate::insights::EXPLAIN_ERRORS,
];

/// The tool named `name`.
pub fn find(name: &str) -> Option<&'static ToolDef> {
    TOOLS.iter().find(|t| t.name == name)
}

// ----------------------------------------------------------------------
// Results, errors and progress.

/// A tool's answer: a one-line summary, the structured content (matching
/// the tool's output schema) and resource links.
#[derive(Debug)]
pub struct ToolOutput {
    pub summary: String,
    pub structured: Value,
    pub links: Vec<rmcp::model::Resource>,
}

impl ToolOutput {
    fn new<T: Serialize>(summary: String, out: &T) -> Result<ToolOutput, ToolError> {
        let structured = serde_json::to_value(out)
            .map_err(|e| ToolError::internal(format!("cannot render the answer: {e}")))?;
        Ok(ToolOutput {
            summary,
            structured,
            links: Vec::new(),
        })
    }

    /// The MCP result: the summary and the JSON as text (what most clients
    /// show the model), the JSON as structured content, then the links.
    pub fn into_result(self) -> rmcp::model::CallToolResult {
        let text = format!("{}\n{}", self.summary, self.structured);
        let mut content = vec![rmcp::model::ContentBlock::text(text)];
        content.extend(
            self.links
                .into_iter()
                .map(rmcp::model::ContentBlock::resource_link),
        );
        let mut r = rmcp::model::CallToolResult::success(content);
        r.structured_content = Some(self.structured);
        r
    }
}

/// A failed call, told to the agent (`isError: true`) with how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolError {
    pub code: String,
    pub message: String,
    pub position: Option<(usize, usize)>,
    pub fix: Option<String>,
}

impl ToolError {
    pub fn input(message: impl Into<String>, fix: impl Into<String>) -> ToolError {
        ToolError {
            code: "bad_input".into(),
            message: message.into(),
            position: None,
            fix: Some(fix.into()),
        }
    }

    pub fn internal(message: impl Into<String>) -> ToolError {
        ToolError {
            code: "internal".into(),
            message: message.into(),
            position: None,
            fix: None,
        }
    }

    /// The text the agent reads.
    pub fn text(&self) -> String {
        let mut s = format!("Error ({}): {}", self.code, self.message);
        if let Some((line, col)) = self.position {
            s.push_str(&format!(
                "\nPosition: line {line}, column {col} of the filter."
            ));
        }
        if let Some(fix) = &self.fix {
            s.push_str(&format!("\nHow to fix: {fix}"));
        }
        s
    }

    pub fn into_result(self) -> rmcp::model::CallToolResult {
        rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(self.text())])
    }

    /// A backend error, with the fix said in terms of tools (the API's
    /// suggestions name routes).
    pub(crate) fn from_backend(e: BackendError, snapshot: Option<&str>) -> ToolError {
        let id = snapshot.unwrap_or("SNAPSHOT_ID");
        let fix = match (e.code.as_str(), e.kind) {
            ("not_dissected", _) => Some(format!(
                "call start_snapshot_dissection with snapshot_id \"{id}\" first; it waits for the index"
            )),
            ("dissection_running", _) => Some(format!(
                "wait: call get_snapshot_dissection_status with snapshot_id \"{id}\" until status is \"done\""
            )),
            ("bad_filter" | "unknown_field", _) => Some(match &e.suggestion {
                Some(s) => format!(
                    "did you mean \"{s}\"? describe_fields lists every field; KFL strings are double-quoted"
                ),
                None => "see describe_fields for the KFL syntax and field names".into(),
            }),
            ("unsupported_filter", _) => Some(
                "rewrite the filter without that construct, or use query_sql".into(),
            ),
            ("bad_query", _) => Some(
                "check the SQL: tables calls and flows, columns are field names with . replaced by _ (describe_fields shows them)".into(),
            ),
            ("no_raw_store", _) => Some(
                "nothing is captured on this server: start `trawl tap`, or import a capture with `trawl import FILE`".into(),
            ),
            (_, ErrorKind::NotFound) if snapshot.is_some() => Some(
                "list_snapshots lists the snapshot ids; list_api_calls gives call ids".into(),
            ),
            _ => e.suggestion.clone(),
        };
        ToolError {
            code: e.code,
            message: e.message,
            position: e.position.map(|p| (p.line, p.column)),
            fix,
        }
    }
}

/// Where progress notifications go: the calling client, when it asked for
/// them with a progress token.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    target: Option<(Peer<RoleServer>, ProgressToken)>,
}

impl Progress {
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Progress {
        Progress {
            target: token.map(|t| (peer, t)),
        }
    }

    pub async fn notify(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some((peer, token)) = &self.target {
            let mut p = ProgressNotificationParam::new(token.clone(), progress)
                .with_message(message.into());
            if let Some(t) = total {
                p = p.with_total(t);
            }
            // A client that went away is not the tool's failure.
            if let Err(e) = peer.notify_progress(p).await {
                tracing::debug!(error = %e, "Progress notification not sent.");
            }
        }
    }

    /// Runs `fut`, notifying every [`HEARTBEAT`] (and once at the start)
    /// that `what` is still going, then once more, as complete, with
    /// `done` when it is over (progress only grows, as MCP asks).
    async fn heartbeat<F: Future>(&self, what: &str, done: &str, fut: F) -> F::Output {
        let start = Instant::now();
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut n = 0u32;
        tokio::pin!(fut);
        let out = loop {
            tokio::select! {
                out = &mut fut => break out,
                _ = tick.tick() => {
                    self.notify(f64::from(n), None, format!("{what}: {} s", start.elapsed().as_secs())).await;
                    n += 1;
                }
            }
        };
        self.notify(f64::from(n), Some(f64::from(n)), done).await;
        out
    }
}

/// What the server operator allowed and asked for.
#[derive(Clone, Debug)]
pub struct ToolPolicy {
    /// Whether `delete_snapshot` may run.
    pub allow_destructive: bool,
    /// Whether credentials in headers and cookies are redacted.
    pub redact: bool,
}

impl Default for ToolPolicy {
    fn default() -> Self {
        ToolPolicy {
            allow_destructive: false,
            redact: true,
        }
    }
}

/// Runs tool `name` with JSON `args`.
pub async fn call<B: Backend>(
    backend: &B,
    policy: &ToolPolicy,
    progress: &Progress,
    name: &str,
    args: Option<JsonObject>,
) -> Result<ToolOutput, ToolError> {
    let args = Value::Object(args.unwrap_or_default());
    match name {
        "get_data_boundaries" => boundaries(backend, parse(name, args)?).await,
        "list_snapshots" => list_snapshots(backend, parse(name, args)?).await,
        "create_snapshot" => create_snapshot(backend, progress, parse(name, args)?).await,
        "get_snapshot" => get_snapshot(backend, parse(name, args)?).await,
        "delete_snapshot" => delete_snapshot(backend, policy, parse(name, args)?).await,
        "start_snapshot_dissection" => dissect(backend, progress, parse(name, args)?).await,
        "get_snapshot_dissection_status" => dissection_status(backend, parse(name, args)?).await,
        "list_api_calls" => list_calls(backend, policy, parse(name, args)?).await,
        "get_api_call" => get_call(backend, policy, parse(name, args)?).await,
        "get_api_stats" => get_stats(backend, parse(name, args)?).await,
        "list_l4_flows" => list_flows(backend, parse(name, args)?).await,
        "get_l4_flow_summary" => flow_summary(backend, parse(name, args)?).await,
        "list_workloads" => list_workloads(backend, parse(name, args)?).await,
        "list_ips" => list_ips(backend, parse(name, args)?).await,
        "export_snapshot_pcap" => export_pcap(backend, progress, parse(name, args)?).await,
        "query_sql" => query_sql(backend, parse(name, args)?).await,
        "describe_fields" => describe_fields(parse(name, args)?),
        "analyze_service" => crate::insights::analyze_service(backend, parse(name, args)?).await,
        "find_anomalies" => crate::insights::find_anomalies(backend, parse(name, args)?).await,
        "explain_errors" => crate::insights::explain_errors(backend, parse(name, args)?).await,
        _ => Err(ToolError::input(
            format!("no tool named {name:?}"),
            format!(
                "{}the tools are: {}",
                closest(name, TOOLS.iter().map(|t| t.name))
                    .map(|c| format!("did you mean \"{c}\"? "))
                    .unwrap_or_default(),
                TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| {
        ToolError::input(
            format!("invalid arguments for {tool}: {e}"),
            "check the parameter names and types against the tool's input schema",
        )
    })
}

fn check_limit(
    given: Option<usize>,
    default: usize,
    max: usize,
    more: &str,
) -> Result<usize, ToolError> {
    let l = given.unwrap_or(default);
    if l == 0 || l > max {
        return Err(ToolError::input(
            format!("limit {l} is out of range"),
            format!("give a limit from 1 to {max} (default {default}); {more}"),
        ));
    }
    Ok(l)
}

fn check_id(what: &str, id: &str) -> Result<(), ToolError> {
    if id.trim().is_empty() {
        return Err(ToolError::input(
            format!("{what} is empty"),
            format!("give the {what}; list_snapshots lists snapshot ids"),
        ));
    }
    Ok(())
}

/// `v[key]` as a string, or "".
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

fn time_of(v: &Value) -> Option<String> {
    v.as_i64().map(rfc3339_micros)
}

/// Drops null, "", [] and {} members: absent fields read as zero values,
/// so leaving them out loses nothing and halves a call's size.
fn compact(m: &mut Map<String, Value>) {
    m.retain(|_, v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    });
}

/// Cuts long strings to [`MAX_CELL_CHARS`], saying how long they were.
fn cap_cells(m: &mut Map<String, Value>) {
    for v in m.values_mut() {
        if let Value::String(s) = v
            && s.len() > MAX_CELL_CHARS
        {
            let mut end = MAX_CELL_CHARS;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let total = s.len();
            s.truncate(end);
            s.push_str(&format!("… [{total} bytes in all]"));
        }
    }
}

/// Replaces credential values in header and cookie maps.
fn redact(m: &mut Map<String, Value>) {
    for key in ["request.headers", "response.headers"] {
        if let Some(Value::Object(h)) = m.get_mut(key) {
            for (k, v) in h.iter_mut() {
                if REDACTED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                    *v = json!("[redacted]");
                }
            }
        }
    }
    for key in ["request.cookies", "response.cookies"] {
        if let Some(Value::Object(c)) = m.get_mut(key) {
            for v in c.values_mut() {
                *v = json!("[redacted]");
            }
        }
    }
}

/// Quotes a string for an SQL literal.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The closest name in `names` to `wrong`, for did-you-mean.
fn closest<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (edit_distance(wrong, n), n))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// A flow field by KFL name or alias.
fn flow_field(name: &str) -> Result<&'static FieldDef, ToolError> {
    lookup(FLOW_FIELDS, name).ok_or_else(|| {
        let hint = closest(name, FLOW_FIELDS.iter().map(|d| d.name))
            .map(|c| format!("did you mean \"{c}\"? "))
            .unwrap_or_default();
        ToolError::input(
            format!("unknown flow field {name:?}"),
            format!("{hint}describe_fields with table \"flows\" lists them"),
        )
    })
}

// ----------------------------------------------------------------------
// Inputs and outputs. Doc comments are the parameter descriptions the
// agent reads.

/// No parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotIdArgs {
    /// Snapshot id, as list_snapshots or create_snapshot return it.
    pub snapshot_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSnapshotsArgs {
    /// Snapshots per page, 1 to 1000 (default 20).
    pub limit: Option<usize>,
    /// next_cursor of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotArgs {
    /// Window ending now, as a duration: "30s", "15m", "1h30m". Give this or from.
    pub last: Option<String>,
    /// Window start, RFC 3339 (e.g. "2026-01-02T15:04:05Z"). Give this or last.
    pub from: Option<String>,
    /// Window end, RFC 3339; default now. Only with from.
    pub to: Option<String>,
    /// A name to find it by later, e.g. "slow-checkout".
    #[serde(default)]
    pub name: String,
    /// Only these nodes (from get_data_boundaries); default all.
    #[serde(default)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DissectArgs {
    /// Snapshot id to dissect.
    pub snapshot_id: String,
    /// Seconds to wait for the dissection to finish, 0 to 600 (default 50); 0 returns at once.
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCallsArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// KFL filter; empty or absent matches every call. Example: http && status_code >= 500 && elapsed_time > 100000 (elapsed_time in microseconds).
    #[serde(default)]
    pub filter: String,
    /// Calls per page, 1 to 200 (default 20); at most 25 with fields ["*"].
    pub limit: Option<usize>,
    /// next_cursor of the previous page (same filter and sort).
    pub cursor: Option<String>,
    /// Sort keys, KFL field names; prefix "-" for descending. Default ["timestamp"]. Example: ["-elapsed_time"].
    #[serde(default)]
    pub sort: Vec<String>,
    /// Fields to return (KFL names), or ["*"] for every non-empty field. Default: id, timestamp, protocol, src/dst ip, port and name, method, path, status_code, elapsed_time, dns_questions.
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetCallArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// Call id from list_api_calls, "node/conn/index".
    pub call_id: String,
    /// Body bytes returned per payload, 0 to 65536 (default 2048); the full size is always stated.
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// KFL filter of the calls counted; empty for all.
    #[serde(default)]
    pub filter: String,
    /// Fields to group by (KFL names, at most 8), e.g. ["dst.name", "path"]; empty for one total group.
    #[serde(default)]
    pub by: Vec<String>,
    /// Time bucket width, e.g. "1m", "30s"; absent for no time buckets.
    pub interval: Option<String>,
    /// Groups returned, 1 to 500 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFlowsArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// Only flows with this IP at either end.
    pub ip: Option<String>,
    /// Only flows with this port at either end.
    pub port: Option<u16>,
    /// KFL filter over the flow fields, e.g. "tcp && retransmissions > 0" or "close_reason == \"rst\"". Not with where.
    pub filter: Option<String>,
    /// SQL condition over the flows table's columns, e.g. "transport = 'tcp' AND calls = 0".
    #[serde(rename = "where")]
    pub where_sql: Option<String>,
    /// Sort key, a flow field name; prefix "-" for descending. Default "timestamp".
    pub sort: Option<String>,
    /// Flows per page, 1 to 500 (default 20).
    pub limit: Option<usize>,
    /// next_cursor of the previous page.
    pub cursor: Option<String>,
    /// Flow fields to return (KFL names), or ["*"] for all. Default: endpoints, transport, protocol, calls, times, close reason, TCP metrics.
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowSummaryArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// SQL condition over the flows table to summarise only some flows, e.g. "dst_port = 443".
    #[serde(rename = "where")]
    pub where_sql: Option<String>,
    /// Entries in each top list, 1 to 50 (default 10).
    pub top: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkloadsArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// Only workloads of this Kubernetes namespace.
    pub namespace: Option<String>,
    /// Workloads returned, 1 to 500 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIpsArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// IPs returned, 1 to 500 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Snapshot id.
    pub snapshot_id: String,
    /// Start, RFC 3339, within the snapshot's window; default its start.
    pub from: Option<String>,
    /// End, RFC 3339; default the snapshot's end.
    pub to: Option<String>,
    /// Only these nodes; default all.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// tcpdump-syntax packet filter, e.g. "tcp port 80 and host 10.0.0.7".
    pub filter: Option<String>,
    /// "pcap" (default) or "pcapng" (needed when nodes have different link types).
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// One read-only SQL statement over the tables calls and flows.
    pub query: String,
    /// Rows returned, 1 to 1000 (default 100); total says how many the query produced.
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeArgs {
    /// "calls" or "flows"; default both.
    pub table: Option<String>,
    /// Only fields whose name or meaning contains this text (case-insensitive), e.g. "dns" or "latency".
    pub search: Option<String>,
    /// Include the KFL reference text (default true).
    pub include_reference: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeBoundary {
    pub node: String,
    /// Oldest and newest packet held, RFC 3339 UTC (null when empty).
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    /// Packets the kernel dropped during live capture, when known.
    pub drops: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BoundariesOut {
    pub nodes: Vec<NodeBoundary>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SnapshotInfo {
    pub id: String,
    pub name: String,
    /// ready, creating or failed.
    pub status: String,
    /// Window [from, to), RFC 3339 UTC.
    pub from: Option<String>,
    pub to: Option<String>,
    pub created: String,
    pub packets: u64,
    pub bytes: u64,
    pub nodes: Vec<String>,
    /// Dissection state: null (not started), running, done, failed.
    pub dissection: Option<String>,
    /// While creating: fraction of the bytes copied, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SnapshotInfo {
    fn of(m: &Value) -> SnapshotInfo {
        SnapshotInfo {
            id: s(m, "id").to_owned(),
            name: s(m, "name").to_owned(),
            status: s(m, "status").to_owned(),
            from: time_of(&m["window"]["from_ns"]),
            to: time_of(&m["window"]["to_ns"]),
            created: s(m, "created").to_owned(),
            packets: u(m, "packets"),
            bytes: u(m, "bytes"),
            nodes: m["nodes"]
                .as_array()
                .map(|a| a.iter().map(|n| s(n, "node").to_owned()).collect())
                .unwrap_or_default(),
            dissection: m["dissection"].as_str().map(str::to_owned),
            progress: m["progress"]["fraction"]
                .as_f64()
                .filter(|_| m["status"] == "creating"),
            warnings: m["warnings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            error: m["error"].as_str().map(str::to_owned),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SnapshotsOut {
    pub snapshots: Vec<SnapshotInfo>,
    pub returned: usize,
    pub truncated: bool,
    /// Pass as cursor for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SnapshotOut {
    pub snapshot: SnapshotInfo,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeletedOut {
    pub deleted: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DissectionOut {
    pub snapshot_id: String,
    /// running, done or failed.
    pub status: String,
    /// merging, indexing or done.
    pub phase: String,
    /// Fraction of the packet bytes read, 0 to 1.
    pub fraction: f64,
    pub packets: u64,
    /// Counts once done: calls and flows indexed, calls per protocol.
    pub calls: Option<u64>,
    pub flows: Option<u64>,
    pub calls_by_protocol: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to do next.
    pub next: String,
}

impl DissectionOut {
    fn of(v: &Value) -> DissectionOut {
        let status = s(v, "status").to_owned();
        let id = s(v, "snapshot_id").to_owned();
        let counts = &v["counts"];
        let next = match status.as_str() {
            "done" => format!("query it: list_api_calls / get_api_stats with snapshot_id \"{id}\""),
            "running" => format!("poll get_snapshot_dissection_status with snapshot_id \"{id}\""),
            "cancelled" => format!(
                "the dissection was cancelled; start_snapshot_dissection with snapshot_id \"{id}\" starts it again"
            ),
            _ => "dissection failed (see error); start_snapshot_dissection tries again".into(),
        };
        DissectionOut {
            snapshot_id: id,
            status,
            phase: s(v, "phase").to_owned(),
            fraction: v["progress"]["fraction"].as_f64().unwrap_or(0.0),
            packets: counts["packets"]
                .as_u64()
                .unwrap_or_else(|| u(&v["progress"], "packets")),
            calls: counts["calls"].as_u64(),
            flows: counts["flows"].as_u64(),
            calls_by_protocol: counts["calls_by_protocol"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
            error: v["error"]
                .as_str()
                .or(counts["capture_error"].as_str())
                .map(str::to_owned),
            next,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallsOut {
    /// Calls matching the filter in all pages.
    pub total: u64,
    pub returned: usize,
    /// True when more pages follow.
    pub truncated: bool,
    /// Pass as cursor for the next page; null on the last.
    pub next_cursor: Option<String>,
    /// Calls keyed by KFL field name; empty fields left out.
    pub calls: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Body {
    /// Bytes of the body as kept by the indexer (after decoding).
    pub size: u64,
    /// Bytes returned here.
    pub returned_bytes: usize,
    /// True when body holds less than size (cut here, or when indexing).
    pub truncated: bool,
    /// utf-8 or base64.
    pub encoding: String,
    /// Content-Encoding it was decoded from (gzip, br, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_from: Option<String>,
    pub body: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallOut {
    /// The call keyed by KFL field name; empty fields left out.
    pub call: Map<String, Value>,
    /// Request and response bodies (null when none was kept).
    pub request_body: Option<Body>,
    pub response_body: Option<Body>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatsOut {
    pub by: Vec<String>,
    /// Bucket width in ns, when interval was given.
    pub interval_ns: Option<i64>,
    /// Calls counted over all groups.
    pub total_calls: u64,
    /// Groups in all; returned may be fewer.
    pub total_groups: usize,
    pub returned: usize,
    pub truncated: bool,
    /// key (values of by), bucket_start_ns, count, http_classes, dns_ok, dns_error, no_response, errors, error_rate, latency_us {p50, p95, p99, max}.
    pub groups: Vec<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FlowsOut {
    /// Flows matching in all pages.
    pub total: u64,
    pub returned: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
    /// Flows keyed by KFL field name.
    pub flows: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FlowSummaryOut {
    /// flows, calls, first and last packet, then per TCP metric its sum (counters) or avg (times) and max.
    pub totals: Map<String, Value>,
    /// transport, protocol, flows.
    pub by_protocol: Vec<Value>,
    /// close_reason, flows.
    pub by_close_reason: Vec<Value>,
    /// src_ip, dst_ip, dst_port, flows.
    pub top_pairs: Vec<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RowsOut {
    /// Rows in all; returned may be fewer.
    pub total: u64,
    pub returned: usize,
    pub truncated: bool,
    pub rows: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportOut {
    /// Absolute path of the written file on the server.
    pub path: String,
    /// file:// URI of it (also sent as a resource link).
    pub uri: String,
    /// pcap or pcapng.
    pub format: String,
    pub packets: u64,
    /// Packets in range the packet filter dropped, when known.
    pub filtered_out: Option<u64>,
    pub bytes: u64,
    /// HTTP download URL, when the server has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SqlOut {
    pub columns: Vec<String>,
    /// Rows the query produced; returned may be fewer.
    pub total: u64,
    pub returned: usize,
    pub truncated: bool,
    pub rows: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DescribeOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kfl_reference: Option<&'static str>,
    pub calls: Vec<FieldInfo>,
    pub flows: Vec<FieldInfo>,
}

// ----------------------------------------------------------------------
// The tools.

async fn boundaries<B: Backend>(b: &B, _: NoArgs) -> Result<ToolOutput, ToolError> {
    let v = b
        .boundaries()
        .await
        .map_err(|e| ToolError::from_backend(e, None))?;
    let nodes: Vec<NodeBoundary> = v["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| NodeBoundary {
                    node: s(n, "node").to_owned(),
                    oldest: time_of(&n["oldest_ts"]),
                    newest: time_of(&n["newest_ts"]),
                    packets: u(n, "packets"),
                    bytes: u(n, "bytes"),
                    drops: n["drops"].as_u64(),
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = if nodes.is_empty() {
        "No raw packets here: start `trawl tap` to capture, or import a capture with `trawl import FILE`.".to_owned()
    } else {
        let parts: Vec<String> = nodes
            .iter()
            .map(|n| {
                format!(
                    "{}: {} packets from {} to {}",
                    n.node,
                    n.packets,
                    n.oldest.as_deref().unwrap_or("-"),
                    n.newest.as_deref().unwrap_or("-")
                )
            })
            .collect();
        format!("{} node(s). {}", nodes.len(), parts.join("; "))
    };
    ToolOutput::new(summary, &BoundariesOut { nodes })
}

async fn list_snapshots<B: Backend>(b: &B, a: ListSnapshotsArgs) -> Result<ToolOutput, ToolError> {
    let limit = check_limit(
        a.limit,
        DEFAULT_SNAPSHOTS,
        MAX_SNAPSHOTS,
        "page with cursor for more",
    )?;
    let v = b
        .list_snapshots(limit, a.cursor)
        .await
        .map_err(|e| ToolError::from_backend(e, None))?;
    let snapshots: Vec<SnapshotInfo> = v["snapshots"]
        .as_array()
        .map(|a| a.iter().map(SnapshotInfo::of).collect())
        .unwrap_or_default();
    let next_cursor = v["next_cursor"].as_str().map(str::to_owned);
    let summary = format!(
        "{} snapshot(s){}.",
        snapshots.len(),
        if next_cursor.is_some() {
            ", more with next_cursor"
        } else {
            ""
        }
    );
    ToolOutput::new(
        summary,
        &SnapshotsOut {
            returned: snapshots.len(),
            truncated: next_cursor.is_some(),
            snapshots,
            next_cursor,
        },
    )
}

async fn create_snapshot<B: Backend>(
    b: &B,
    p: &Progress,
    a: CreateSnapshotArgs,
) -> Result<ToolOutput, ToolError> {
    if a.last.is_none() && a.from.is_none() {
        return Err(ToolError::input(
            "no window given",
            "give last (e.g. \"15m\") or from (RFC 3339, e.g. \"2026-01-02T15:04:05Z\"); get_data_boundaries shows what is held",
        ));
    }
    let req = SnapshotWindow {
        last: a.last,
        from: a.from,
        to: a.to,
        name: a.name,
        nodes: a.nodes,
    };
    // Creation is a job: the answer comes at once with status "creating";
    // the snapshot is polled, reporting the bytes copied, until it is
    // ready or failed (or MAX_WAIT_SECS passed).
    let mut v = b
        .create_snapshot(req)
        .await
        .map_err(|e| ToolError::from_backend(e, None))?;
    let id = s(&v, "id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(MAX_WAIT_SECS);
    loop {
        let snap = SnapshotInfo::of(&v);
        p.notify(
            snap.progress.unwrap_or(0.0),
            Some(1.0),
            format!("snapshot {}: {}", snap.id, snap.status),
        )
        .await;
        if snap.status != "creating" || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
        v = b
            .get_snapshot(id.clone())
            .await
            .map_err(|e| ToolError::from_backend(e, Some(&id)))?;
    }
    let snap = SnapshotInfo::of(&v);
    let summary = match snap.status.as_str() {
        "creating" => format!(
            "Snapshot {} is still being created ({:.0}% copied). Poll get_snapshot with snapshot_id \"{}\" until status is \"ready\".",
            snap.id,
            snap.progress.unwrap_or(0.0) * 100.0,
            snap.id
        ),
        "failed" => format!(
            "Snapshot {} failed: {}",
            snap.id,
            snap.error.as_deref().unwrap_or("no reason given")
        ),
        _ => format!(
            "Snapshot {} ({} packets, {} to {}). Next: start_snapshot_dissection with snapshot_id \"{}\".",
            snap.id,
            snap.packets,
            snap.from.as_deref().unwrap_or("-"),
            snap.to.as_deref().unwrap_or("-"),
            snap.id
        ),
    };
    ToolOutput::new(summary, &SnapshotOut { snapshot: snap })
}

async fn get_snapshot<B: Backend>(b: &B, a: SnapshotIdArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let v = b
        .get_snapshot(a.snapshot_id.clone())
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let snap = SnapshotInfo::of(&v);
    let summary = format!(
        "Snapshot {} {}: {} packets, dissection {}.",
        snap.id,
        snap.status,
        snap.packets,
        snap.dissection.as_deref().unwrap_or("not started")
    );
    ToolOutput::new(summary, &SnapshotOut { snapshot: snap })
}

async fn delete_snapshot<B: Backend>(
    b: &B,
    policy: &ToolPolicy,
    a: SnapshotIdArgs,
) -> Result<ToolOutput, ToolError> {
    if !policy.allow_destructive {
        return Err(ToolError {
            code: "not_allowed".into(),
            message: "destructive tools are off on this server".into(),
            position: None,
            fix: Some("ask the operator to restart the server with --allow-destructive, or delete with `trawl snapshot delete ID`".into()),
        });
    }
    check_id("snapshot_id", &a.snapshot_id)?;
    let v = b
        .delete_snapshot(a.snapshot_id.clone())
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let deleted = s(&v, "deleted").to_owned();
    ToolOutput::new(
        format!("Deleted snapshot {deleted}."),
        &DeletedOut { deleted },
    )
}

async fn dissect<B: Backend>(b: &B, p: &Progress, a: DissectArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let wait = a.wait_seconds.unwrap_or(DEFAULT_WAIT_SECS);
    if wait > MAX_WAIT_SECS {
        return Err(ToolError::input(
            format!("wait_seconds {wait} is out of range"),
            format!(
                "give 0 to {MAX_WAIT_SECS}; poll get_snapshot_dissection_status for longer jobs"
            ),
        ));
    }
    let id = a.snapshot_id;
    let err = |e| ToolError::from_backend(e, Some(&id));
    let mut v = b.start_dissection(id.clone()).await.map_err(err)?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let st = DissectionOut::of(&v);
        p.notify(
            st.fraction,
            Some(1.0),
            format!("{} ({}): {} packets", st.status, st.phase, st.packets),
        )
        .await;
        if st.status != "running" || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
        v = b.dissection_status(id.clone()).await.map_err(err)?;
    }
    dissection_answer(&v)
}

fn dissection_answer(v: &Value) -> Result<ToolOutput, ToolError> {
    let st = DissectionOut::of(v);
    let summary = match st.status.as_str() {
        "done" => format!(
            "Dissected {}: {} packets, {} calls, {} flows.",
            st.snapshot_id,
            st.packets,
            st.calls.unwrap_or(0),
            st.flows.unwrap_or(0)
        ),
        "running" => format!(
            "Dissection of {} still running ({:.0}% of bytes read).",
            st.snapshot_id,
            st.fraction * 100.0
        ),
        other => format!(
            "Dissection of {} {other}: {}",
            st.snapshot_id,
            st.error.as_deref().unwrap_or("no reason given")
        ),
    };
    ToolOutput::new(summary, &st)
}

async fn dissection_status<B: Backend>(b: &B, a: SnapshotIdArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let v = b
        .dissection_status(a.snapshot_id.clone())
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    dissection_answer(&v)
}

/// Sort keys "-name" → (name, descending).
fn sort_keys(keys: &[String]) -> Vec<(String, bool)> {
    keys.iter()
        .map(|k| match k.strip_prefix('-') {
            Some(n) => (n.to_owned(), true),
            None => (k.clone(), false),
        })
        .collect()
}

async fn list_calls<B: Backend>(
    b: &B,
    policy: &ToolPolicy,
    a: ListCallsArgs,
) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let all = a
        .fields
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == "*"));
    let max = if all { MAX_FULL_CALLS } else { MAX_CALLS };
    let limit = check_limit(
        a.limit,
        DEFAULT_CALLS.min(max),
        max,
        "aggregate with get_api_stats or query_sql instead of paging through many calls",
    )?;
    let fields = match a.fields {
        _ if all => None,
        Some(f) if !f.is_empty() => Some(f),
        _ => Some(
            DEFAULT_CALL_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        ),
    };
    let q = CallsQuery {
        filter: a.filter,
        limit,
        cursor: a.cursor,
        sort: sort_keys(&a.sort),
        fields,
    };
    let v = b
        .list_calls(a.snapshot_id.clone(), q)
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let mut calls: Vec<Map<String, Value>> = v["calls"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_object().cloned()).collect())
        .unwrap_or_default();
    for c in &mut calls {
        compact(c);
        cap_cells(c);
        if policy.redact {
            redact(c);
        }
    }
    let total = u(&v, "total");
    let next_cursor = v["next_cursor"].as_str().map(str::to_owned);
    let summary = format!(
        "{} call(s) match; {} returned{}.",
        total,
        calls.len(),
        if next_cursor.is_some() {
            ", more with next_cursor"
        } else {
            ""
        }
    );
    ToolOutput::new(
        summary,
        &CallsOut {
            total,
            returned: calls.len(),
            truncated: next_cursor.is_some(),
            next_cursor,
            calls,
        },
    )
}

/// A payload of the API's call detail, cut to `max` bytes.
fn body_of(v: &Value, max: usize) -> Option<Body> {
    let o = v.as_object()?;
    let encoding = s(v, "encoding").to_owned();
    let mut body = s(v, "body").to_owned();
    let cut = match encoding.as_str() {
        // base64: 4 characters per 3 bytes, cut on a whole group.
        "base64" => (max / 3) * 4,
        _ => max,
    };
    let mut was_cut = false;
    if body.len() > cut {
        let mut end = cut;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
        was_cut = true;
    }
    let returned_bytes = match encoding.as_str() {
        "base64" => body.len() / 4 * 3,
        _ => body.len(),
    };
    Some(Body {
        size: u(v, "size"),
        returned_bytes,
        truncated: was_cut || o.get("truncated").and_then(Value::as_bool).unwrap_or(false),
        encoding,
        decoded_from: v["decoded_from"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        body,
    })
}

async fn get_call<B: Backend>(
    b: &B,
    policy: &ToolPolicy,
    a: GetCallArgs,
) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    check_id("call_id", &a.call_id)?;
    let max = a.max_body_bytes.unwrap_or(DEFAULT_BODY_BYTES);
    if max > MAX_BODY_BYTES {
        return Err(ToolError::input(
            format!("max_body_bytes {max} is out of range"),
            format!("give 0 to {MAX_BODY_BYTES}; export_snapshot_pcap gives whole conversations"),
        ));
    }
    let v = b
        .get_call(a.snapshot_id.clone(), a.call_id.clone())
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let mut call = v["call"].as_object().cloned().unwrap_or_default();
    compact(&mut call);
    if policy.redact {
        redact(&mut call);
    }
    let request_body = body_of(&v["payloads"]["request"], max);
    let response_body = body_of(&v["payloads"]["response"], max);
    let describe = |b: &Option<Body>| match b {
        Some(b) => format!("{} of {} bytes", b.returned_bytes, b.size),
        None => "none".to_owned(),
    };
    let summary = format!(
        "Call {}: {} {} {} -> {} in {} µs; request body {}, response body {}.",
        a.call_id,
        call.get("protocol").and_then(Value::as_str).unwrap_or(""),
        call.get("method").and_then(Value::as_str).unwrap_or(""),
        call.get("path").and_then(Value::as_str).unwrap_or(""),
        call.get("status_code").map_or("-".into(), Value::to_string),
        call.get("elapsed_time")
            .map_or("-".into(), Value::to_string),
        describe(&request_body),
        describe(&response_body),
    );
    ToolOutput::new(
        summary,
        &CallOut {
            call,
            request_body,
            response_body,
        },
    )
}

async fn get_stats<B: Backend>(b: &B, a: StatsArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let limit = check_limit(
        a.limit,
        DEFAULT_GROUPS,
        MAX_GROUPS,
        "group by fewer fields for fewer groups",
    )?;
    let timed = a.interval.is_some();
    let q = StatsQuery {
        filter: a.filter,
        by: a.by,
        interval: a.interval,
    };
    let v = b
        .stats(a.snapshot_id.clone(), q)
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let mut groups: Vec<Value> = v["groups"].as_array().cloned().unwrap_or_default();
    if !timed {
        groups.sort_by_key(|g| std::cmp::Reverse(u(g, "count")));
    }
    let total_groups = groups.len();
    groups.truncate(limit);
    let total_calls = u(&v, "total_calls");
    let top = groups
        .first()
        .map(|g| {
            format!(
                " Largest group {}: {} calls, error rate {:.3}, p95 {} µs.",
                g["key"],
                u(g, "count"),
                g["error_rate"].as_f64().unwrap_or(0.0),
                g["latency_us"]["p95"]
            )
        })
        .unwrap_or_default();
    let summary = format!(
        "{total_calls} call(s) in {total_groups} group(s); {} returned.{top}",
        groups.len()
    );
    ToolOutput::new(
        summary,
        &StatsOut {
            by: v["by"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            interval_ns: v["interval_ns"].as_i64(),
            total_calls,
            total_groups,
            returned: groups.len(),
            truncated: groups.len() < total_groups,
            groups,
        },
    )
}

/// Runs `sql` on the snapshot's tables and returns (rows, total).
async fn sql_rows<B: Backend>(
    b: &B,
    id: &str,
    sql: String,
    limit: usize,
) -> Result<(Vec<Map<String, Value>>, u64), ToolError> {
    let v = b
        .sql(id.to_owned(), sql, limit)
        .await
        .map_err(|e| ToolError::from_backend(e, Some(id)))?;
    let rows = v["rows"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    Ok((rows, u(&v, "total")))
}

/// The WHERE clause of a flows query.
fn flow_conditions(
    ip: Option<&str>,
    port: Option<u16>,
    where_sql: Option<&str>,
) -> Result<String, ToolError> {
    let mut conds = Vec::new();
    if let Some(ip) = ip {
        let addr: IpAddr = ip.parse().map_err(|_| {
            ToolError::input(
                format!("ip {ip:?} is not an IP address"),
                "give an IPv4 or IPv6 address, e.g. \"10.0.0.7\"",
            )
        })?;
        let q = sql_string(&addr.to_string());
        conds.push(format!("(src_ip = {q} OR dst_ip = {q})"));
    }
    if let Some(p) = port {
        conds.push(format!("(src_port = {p} OR dst_port = {p})"));
    }
    if let Some(w) = where_sql.filter(|w| !w.trim().is_empty()) {
        conds.push(format!("({w})"));
    }
    Ok(if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    })
}

fn decode_offset(cursor: Option<&str>) -> Result<usize, ToolError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .strip_prefix("o")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ToolError::input(format!("invalid cursor {c:?}"), "pass next_cursor from the previous answer as it is, or leave cursor out for the first page")),
    }
}

async fn list_flows<B: Backend>(b: &B, a: ListFlowsArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let limit = check_limit(
        a.limit,
        DEFAULT_ROWS,
        MAX_ROWS,
        "use get_l4_flow_summary or query_sql for aggregates",
    )?;
    let fields: Vec<&FieldDef> = match &a.fields {
        Some(f) if f.iter().any(|x| x == "*") => FLOW_FIELDS.iter().collect(),
        Some(f) if !f.is_empty() => f.iter().map(|n| flow_field(n)).collect::<Result<_, _>>()?,
        _ => DEFAULT_FLOW_FIELDS
            .iter()
            .filter_map(|n| lookup(FLOW_FIELDS, n))
            .collect(),
    };
    let select: Vec<String> = fields
        .iter()
        .map(|d| format!("{} AS \"{}\"", d.column, d.name))
        .collect();
    let order = match a.sort.as_deref() {
        Some(k) => {
            let (name, desc) = k.strip_prefix('-').map_or((k, false), |n| (n, true));
            let d = flow_field(name)?;
            format!("{} {}", d.column, if desc { "DESC" } else { "ASC" })
        }
        None => "timestamp ASC".to_owned(),
    };
    let by_sql = a.where_sql.as_deref().is_some_and(|w| !w.trim().is_empty())
        || a.sort.as_deref().is_some_and(|k| k != "timestamp");
    if !by_sql {
        return list_flows_kfl(b, a, limit, &fields).await;
    }
    if a.filter.as_deref().is_some_and(|f| !f.trim().is_empty()) {
        return Err(ToolError::input(
            "filter (KFL) cannot be combined with where or sort (SQL)",
            "say it all in filter (KFL), or all in where (SQL)",
        ));
    }
    let offset = decode_offset(a.cursor.as_deref())?;
    let cond = flow_conditions(a.ip.as_deref(), a.port, a.where_sql.as_deref())?;
    let id = a.snapshot_id;
    // A hub answers one count per node: add them up.
    let (count, _) = sql_rows(b, &id, format!("SELECT count(*) AS n FROM flows{cond}"), 1).await?;
    let total = count
        .iter()
        .filter_map(|r| r.get("n").and_then(Value::as_u64))
        .sum::<u64>();
    let sql = format!(
        "SELECT {} FROM flows{cond} ORDER BY {order}, conn_id ASC LIMIT {limit} OFFSET {offset}",
        select.join(", ")
    );
    let (mut flows, _) = sql_rows(b, &id, sql, limit).await?;
    for f in &mut flows {
        cap_cells(f);
    }
    let end = offset.saturating_add(flows.len());
    let next_cursor = (u64::try_from(end).unwrap_or(u64::MAX) < total).then(|| format!("o{end}"));
    flows_output(total, flows, next_cursor, "")
}

/// The answer of `list_l4_flows`, whichever way the page was read.
fn flows_output(
    total: u64,
    flows: Vec<Map<String, Value>>,
    next_cursor: Option<String>,
    note: &str,
) -> Result<ToolOutput, ToolError> {
    let summary = format!(
        "{total} flow(s) match; {} returned{}{note}.",
        flows.len(),
        if next_cursor.is_some() {
            ", more with next_cursor"
        } else {
            ""
        }
    );
    ToolOutput::new(
        summary,
        &FlowsOut {
            total,
            returned: flows.len(),
            truncated: next_cursor.is_some(),
            next_cursor,
            flows,
        },
    )
}

/// `list_l4_flows` through the flows route (KFL, merged across a hub's
/// nodes); its cursor is the route's, marked `k` to tell it from the SQL
/// path's offsets.
async fn list_flows_kfl<B: Backend>(
    b: &B,
    a: ListFlowsArgs,
    limit: usize,
    fields: &[&FieldDef],
) -> Result<ToolOutput, ToolError> {
    let mut conds = Vec::new();
    if let Some(ip) = a.ip.as_deref() {
        let addr: IpAddr = ip.parse().map_err(|_| {
            ToolError::input(
                format!("ip {ip:?} is not an IP address"),
                "give an IPv4 or IPv6 address, e.g. \"10.0.0.7\"",
            )
        })?;
        conds.push(format!("(src.ip == \"{addr}\" || dst.ip == \"{addr}\")"));
    }
    if let Some(p) = a.port {
        conds.push(format!("(src.port == {p} || dst.port == {p})"));
    }
    if let Some(f) = a.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        conds.push(format!("({f})"));
    }
    let cursor = match a.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.strip_prefix('k').map(str::to_owned).ok_or_else(|| {
            ToolError::input(
                format!("invalid cursor {c:?}"),
                "pass next_cursor from the previous answer as it is, with the same arguments",
            )
        })?),
    };
    let id = a.snapshot_id;
    let v = b
        .list_flows(id.clone(), conds.join(" && "), limit, cursor)
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&id)))?;
    let total = u(&v, "total");
    let mut flows: Vec<Map<String, Value>> = v["flows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(Value::as_object)
                .map(|r| {
                    fields
                        .iter()
                        .map(|d| {
                            (
                                d.name.to_owned(),
                                r.get(d.name).cloned().unwrap_or(Value::Null),
                            )
                        })
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    for f in &mut flows {
        cap_cells(f);
    }
    let next_cursor = v["next_cursor"].as_str().map(|c| format!("k{c}"));
    let partial = if v["partial"] == true {
        format!(" (partial: nodes {} did not answer)", v["missing_nodes"])
    } else {
        String::new()
    };
    flows_output(total, flows, next_cursor, &partial)
}

/// Whether a numeric flow metric is a time, rate or setting (averaged)
/// rather than a counter (summed).
fn averaged(name: &str) -> bool {
    name.ends_with("_us")
        || name.ends_with("_rate")
        || name.starts_with("avg_")
        || name.ends_with("window_scale")
        || name == "connection_completeness"
}

/// Rows asked of a hub whose per-node answers are merged here: the hub's
/// own SQL cap, so that no node's group is cut before the merge.
const MERGE_ROWS: usize = 10_000;

/// The top `top` rows of a `GROUP BY … count(*) AS flows` query. On a hub
/// (rows carry a `node` column) every node's groups are fetched and the
/// counts of equal groups added, so the top list is that of the union.
async fn flow_groups<B: Backend>(
    b: &B,
    id: &str,
    sql: String,
    top: usize,
) -> Result<Vec<Map<String, Value>>, ToolError> {
    let (rows, _) = sql_rows(b, id, sql.clone(), top).await?;
    if !rows.iter().any(|r| r.contains_key("node")) {
        return Ok(rows);
    }
    let (rows, _) = sql_rows(b, id, sql, MERGE_ROWS).await?;
    Ok(merge_flow_groups(rows, top))
}

/// Adds up the `flows` of rows equal in every other column (`node` left
/// out); most flows first, then by key.
fn merge_flow_groups(rows: Vec<Map<String, Value>>, top: usize) -> Vec<Map<String, Value>> {
    let mut groups: Vec<(Map<String, Value>, u64)> = Vec::new();
    for mut r in rows {
        r.remove("node");
        let n = r.remove("flows").and_then(|v| v.as_u64()).unwrap_or(0);
        match groups.iter_mut().find(|(k, _)| *k == r) {
            Some((_, total)) => *total += n,
            None => groups.push((r, n)),
        }
    }
    groups.sort_by(|(ka, a), (kb, b)| {
        b.cmp(a).then_with(|| {
            Value::Object(ka.clone())
                .to_string()
                .cmp(&Value::Object(kb.clone()).to_string())
        })
    });
    groups
        .into_iter()
        .take(top)
        .map(|(mut k, n)| {
            k.insert("flows".into(), json!(n));
            k
        })
        .collect()
}

/// One totals row from a node's (as it is) or from a hub's rows, one per
/// node: counts and sums add up, maxima take the largest, `first`/`last`
/// the earliest and latest, and averages are weighted by each node's
/// flows (every flow has a value: absent ones are stored as zero).
fn merge_flow_totals(rows: Vec<Map<String, Value>>) -> Map<String, Value> {
    if rows.len() <= 1 {
        return rows.into_iter().next().unwrap_or_default();
    }
    let flows = |r: &Map<String, Value>| r.get("flows").and_then(Value::as_u64).unwrap_or(0);
    let all_flows: u64 = rows.iter().map(flows).sum();
    let mut out = Map::new();
    let keys: Vec<String> = rows
        .iter()
        .flat_map(|r| r.keys().cloned())
        .filter(|k| k != "node")
        .fold(Vec::new(), |mut v, k| {
            if !v.contains(&k) {
                v.push(k);
            }
            v
        });
    for k in keys {
        let vals: Vec<(&Value, u64)> = rows
            .iter()
            .filter_map(|r| r.get(&k).map(|v| (v, flows(r))))
            .collect();
        let num = |v: &Value| v.as_f64().unwrap_or(0.0);
        let v = if k == "first" || k == "last" {
            let mut ts: Vec<&str> = vals
                .iter()
                .filter_map(|(v, _)| v.as_str())
                .filter(|s| !s.is_empty())
                .collect();
            ts.sort_by_key(|s| time_key(s));
            let pick = if k == "first" { ts.first() } else { ts.last() };
            pick.map_or(Value::Null, |s| json!(s))
        } else if k.ends_with(".max") {
            vals.iter()
                .map(|(v, _)| (*v).clone())
                .max_by(|a, b| num(a).total_cmp(&num(b)))
                .unwrap_or(Value::Null)
        } else if k.ends_with(".avg") {
            if all_flows == 0 {
                json!(0.0)
            } else {
                json!(vals.iter().map(|(v, n)| num(v) * *n as f64).sum::<f64>() / all_flows as f64)
            }
        } else if vals
            .iter()
            .all(|(v, _)| v.is_u64() || v.is_i64() || v.is_null())
        {
            json!(vals.iter().filter_map(|(v, _)| v.as_i64()).sum::<i64>())
        } else {
            json!(vals.iter().map(|(v, _)| num(v)).sum::<f64>())
        };
        out.insert(k, v);
    }
    out
}

/// A UTC RFC 3339 time's place in time: seconds as written, then the
/// fraction padded to nanoseconds, so that `…:00Z` sorts before `…:00.5Z`
/// (as text it would not).
fn time_key(s: &str) -> String {
    let (secs, rest) = match (s.get(..19), s.get(19..)) {
        (Some(a), Some(b)) => (a, b),
        _ => (s, ""),
    };
    let frac: String = rest
        .strip_prefix('.')
        .map(|f| f.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    format!("{secs}.{frac:0<9}")
}

async fn flow_summary<B: Backend>(b: &B, a: FlowSummaryArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let top = check_limit(a.top, 10, 50, "")?;
    let cond = flow_conditions(None, None, a.where_sql.as_deref())?;
    let id = a.snapshot_id;
    let mut aggs = vec![
        "count(*) AS flows".to_owned(),
        "sum(calls) AS calls".to_owned(),
        "min(timestamp) AS first".to_owned(),
        "max(last_timestamp) AS last".to_owned(),
    ];
    for d in FLOW_FIELDS {
        let numeric = matches!(d.ty, FieldType::Int | FieldType::Uint | FieldType::Double);
        if !numeric || ["src.port", "dst.port", "conn_id", "calls"].contains(&d.name) {
            continue;
        }
        let first = if averaged(d.name) { "avg" } else { "sum" };
        aggs.push(format!(
            "{first}({c}) AS \"{n}.{first}\"",
            c = d.column,
            n = d.name
        ));
        aggs.push(format!("max({c}) AS \"{n}.max\"", c = d.column, n = d.name));
    }
    // A hub answers one row per node (SQL runs on each): ask for every
    // node's and add them up.
    let (rows, _) = sql_rows(
        b,
        &id,
        format!("SELECT {} FROM flows{cond}", aggs.join(", ")),
        MERGE_ROWS,
    )
    .await?;
    let totals = merge_flow_totals(rows);
    let by_protocol = flow_groups(
        b,
        &id,
        format!("SELECT transport, protocol, count(*) AS flows FROM flows{cond} GROUP BY transport, protocol ORDER BY flows DESC, transport, protocol"),
        top,
    )
    .await?;
    let by_close = flow_groups(
        b,
        &id,
        format!("SELECT close_reason, count(*) AS flows FROM flows{cond} GROUP BY close_reason ORDER BY flows DESC, close_reason"),
        top,
    )
    .await?;
    let pairs = flow_groups(
        b,
        &id,
        format!("SELECT src_ip, dst_ip, dst_port, count(*) AS flows FROM flows{cond} GROUP BY src_ip, dst_ip, dst_port ORDER BY flows DESC, src_ip, dst_ip, dst_port"),
        top,
    )
    .await?;
    let summary = format!(
        "{} flow(s) carrying {} call(s); {} transport/protocol group(s).",
        totals.get("flows").and_then(Value::as_u64).unwrap_or(0),
        totals.get("calls").and_then(Value::as_u64).unwrap_or(0),
        by_protocol.len()
    );
    let objs = |v: Vec<Map<String, Value>>| v.into_iter().map(Value::Object).collect();
    ToolOutput::new(
        summary,
        &FlowSummaryOut {
            totals,
            by_protocol: objs(by_protocol),
            by_close_reason: objs(by_close),
            top_pairs: objs(pairs),
        },
    )
}

async fn list_workloads<B: Backend>(b: &B, a: ListWorkloadsArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let limit = check_limit(
        a.limit,
        DEFAULT_ROWS,
        MAX_ROWS,
        "filter by namespace for fewer",
    )?;
    let ns = a
        .namespace
        .as_deref()
        .map(|n| format!(" AND namespace = {}", sql_string(n)))
        .unwrap_or_default();
    let sql = format!(
        "SELECT name, namespace, max(resolved_by) AS resolved_by, sum(c) AS calls_as_client, sum(s) AS calls_as_server, \
         count(DISTINCT ip) AS ips, min(ip) AS an_ip FROM (\
         SELECT src_name AS name, src_namespace AS namespace, src_resolved_by AS resolved_by, src_ip AS ip, 1 AS c, 0 AS s FROM calls \
         UNION ALL SELECT dst_name, dst_namespace, dst_resolved_by, dst_ip, 0, 1 FROM calls) t \
         WHERE name <> ''{ns} GROUP BY name, namespace ORDER BY sum(c) + sum(s) DESC, name"
    );
    let (mut rows, total) = sql_rows(b, &a.snapshot_id, sql, limit).await?;
    for r in &mut rows {
        compact(r);
    }
    let summary = format!("{total} named workload(s); {} returned.", rows.len());
    ToolOutput::new(
        summary,
        &RowsOut {
            total,
            returned: rows.len(),
            truncated: (rows.len() as u64) < total,
            rows,
        },
    )
}

async fn list_ips<B: Backend>(b: &B, a: ListIpsArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let limit = check_limit(a.limit, DEFAULT_ROWS, MAX_ROWS, "use query_sql for more")?;
    let sql = "SELECT ip, sum(c) AS flows_as_client, sum(s) AS flows_as_server, min(f) AS first_seen, max(l) AS last_seen FROM (\
         SELECT src_ip AS ip, 1 AS c, 0 AS s, timestamp AS f, last_timestamp AS l FROM flows \
         UNION ALL SELECT dst_ip, 0, 1, timestamp, last_timestamp FROM flows) t \
         GROUP BY ip ORDER BY sum(c) + sum(s) DESC, ip"
        .to_owned();
    let (mut rows, total) = sql_rows(b, &a.snapshot_id, sql, limit).await?;
    let names_sql = "SELECT ip, max(name) AS name FROM (\
         SELECT src_ip AS ip, src_name AS name FROM calls UNION ALL SELECT dst_ip, dst_name FROM calls) t \
         WHERE name <> '' GROUP BY ip"
        .to_owned();
    let (names, _) = sql_rows(b, &a.snapshot_id, names_sql, MAX_NAMED_IPS).await?;
    let names: BTreeMap<&str, &Value> = names
        .iter()
        .filter_map(|r| Some((r.get("ip")?.as_str()?, r.get("name")?)))
        .collect();
    for r in &mut rows {
        let name = r
            .get("ip")
            .and_then(Value::as_str)
            .and_then(|ip| names.get(ip))
            .map(|n| (*n).clone());
        if let Some(n) = name {
            r.insert("name".into(), n);
        }
    }
    let summary = format!("{total} IP(s) in the flows; {} returned.", rows.len());
    ToolOutput::new(
        summary,
        &RowsOut {
            total,
            returned: rows.len(),
            truncated: (rows.len() as u64) < total,
            rows,
        },
    )
}

async fn export_pcap<B: Backend>(
    b: &B,
    p: &Progress,
    a: ExportArgs,
) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    let pcapng = match a.format.as_deref() {
        None | Some("pcap") => false,
        Some("pcapng") => true,
        Some(other) => {
            return Err(ToolError::input(
                format!("unknown format {other:?}"),
                "give \"pcap\" or \"pcapng\"",
            ));
        }
    };
    let req = PcapExport {
        from: a.from,
        to: a.to,
        nodes: a.nodes,
        filter: a.filter.filter(|f| !f.trim().is_empty()),
        pcapng,
    };
    let v = p
        .heartbeat(
            "writing packets",
            "file written",
            b.export_pcap(a.snapshot_id.clone(), req),
        )
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let path = s(&v, "path").to_owned();
    let uri = format!("file://{path}");
    let format = if pcapng { "pcapng" } else { "pcap" };
    let out = ExportOut {
        uri: uri.clone(),
        format: format.into(),
        packets: u(&v, "packets"),
        filtered_out: v["filtered_out"].as_u64(),
        bytes: u(&v, "bytes"),
        url: v["url"].as_str().map(str::to_owned),
        path: path.clone(),
    };
    let summary = format!(
        "Wrote {} packets ({} bytes) to {path}; open it with Wireshark or `tshark -r {path}`.",
        out.packets, out.bytes
    );
    let file_name = path.rsplit('/').next().unwrap_or(&path).to_owned();
    let link = rmcp::model::Resource::new(uri, file_name)
        .with_mime_type(if pcapng {
            "application/x-pcapng"
        } else {
            "application/vnd.tcpdump.pcap"
        })
        .with_size(out.bytes)
        .with_description(format!(
            "{} packets of snapshot {}",
            out.packets, a.snapshot_id
        ));
    let mut o = ToolOutput::new(summary, &out)?;
    o.links.push(link);
    Ok(o)
}

async fn query_sql<B: Backend>(b: &B, a: SqlArgs) -> Result<ToolOutput, ToolError> {
    check_id("snapshot_id", &a.snapshot_id)?;
    if a.query.trim().is_empty() {
        return Err(ToolError::input(
            "query is empty",
            "give one SELECT over calls or flows, e.g. SELECT protocol, count(*) FROM calls GROUP BY protocol",
        ));
    }
    let limit = check_limit(
        a.limit,
        DEFAULT_SQL_ROWS,
        MAX_SQL_ROWS,
        "aggregate in SQL (GROUP BY, LIMIT) for fewer rows",
    )?;
    let v = b
        .sql(a.snapshot_id.clone(), a.query, limit)
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&a.snapshot_id)))?;
    let mut rows: Vec<Map<String, Value>> = v["rows"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    for r in &mut rows {
        cap_cells(r);
    }
    let total = u(&v, "total");
    let summary = format!("{total} row(s); {} returned.", rows.len());
    ToolOutput::new(
        summary,
        &SqlOut {
            columns: v["columns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            total,
            returned: rows.len(),
            truncated: (rows.len() as u64) < total,
            rows,
        },
    )
}

fn describe_fields(a: DescribeArgs) -> Result<ToolOutput, ToolError> {
    let table = a.table.as_deref();
    if let Some(t) = table.filter(|t| !["calls", "flows"].contains(t)) {
        return Err(ToolError::input(
            format!("unknown table {t:?}"),
            "give \"calls\" or \"flows\", or leave table out for both",
        ));
    }
    let needle = a.search.as_deref().map(str::to_lowercase);
    let pick = |name: &str, fields: &[FieldDef]| -> Vec<FieldInfo> {
        if table.is_some_and(|t| t != name) {
            return Vec::new();
        }
        fields
            .iter()
            .filter(|d| d.ty != FieldType::PayloadRef)
            .filter(|d| {
                needle.as_ref().is_none_or(|n| {
                    d.name.to_lowercase().contains(n.as_str())
                        || d.doc.to_lowercase().contains(n.as_str())
                })
            })
            .map(FieldInfo::of)
            .collect()
    };
    let [(cn, cf), (fnm, ff)] = field_tables();
    let out = DescribeOut {
        kfl_reference: a.include_reference.unwrap_or(true).then_some(KFL_REFERENCE),
        calls: pick(cn, cf),
        flows: pick(fnm, ff),
    };
    let summary = format!(
        "{} call field(s), {} flow field(s){}.",
        out.calls.len(),
        out.flows.len(),
        if out.kfl_reference.is_some() {
            ", and the KFL reference"
        } else {
            ""
        }
    );
    ToolOutput::new(summary, &out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hubs_flow_groups_and_totals_add_up_per_node() {
        let rows = |v: Value| -> Vec<Map<String, Value>> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_object().unwrap().clone())
                .collect()
        };
        let groups = super::merge_flow_groups(
            rows(json!([
                {"node": "a", "close_reason": "fin", "flows": 5},
                {"node": "a", "close_reason": "rst", "flows": 1},
                {"node": "b", "close_reason": "rst", "flows": 7},
                {"node": "b", "close_reason": "fin", "flows": 2},
            ])),
            1,
        );
        assert_eq!(groups, rows(json!([{"close_reason": "rst", "flows": 8}])));
        let t = super::merge_flow_totals(rows(json!([
            {"node": "a", "flows": 1, "calls": 2, "first": "2026-01-01T00:00:01Z", "last": "2026-01-01T00:00:09Z",
             "rtt_avg_us.avg": 10.0, "rtt_avg_us.max": 10, "retransmissions.sum": 3},
            {"node": "b", "flows": 3, "calls": 4, "first": "2026-01-01T00:00:00.5Z", "last": "2026-01-01T00:00:10Z",
             "rtt_avg_us.avg": 30.0, "rtt_avg_us.max": 40, "retransmissions.sum": 1},
        ])));
        assert_eq!(t["flows"], 4);
        assert_eq!(t["calls"], 6);
        assert_eq!(t["first"], "2026-01-01T00:00:00.5Z");
        assert_eq!(t["last"], "2026-01-01T00:00:10Z");
        assert_eq!(t["rtt_avg_us.avg"], 25.0);
        assert_eq!(t["rtt_avg_us.max"], 40);
        assert_eq!(t["retransmissions.sum"], 4);
        assert!(!t.contains_key("node"));
    }

    use super::*;

    #[test]
    fn every_tool_has_described_parameters_and_an_object_output() {
        let mut names = std::collections::BTreeSet::new();
        for t in TOOLS {
            assert!(names.insert(t.name), "{} listed twice", t.name);
            let input = (t.input_schema)();
            assert_eq!(input["type"], "object", "{}", t.name);
            if let Some(props) = input.get("properties").and_then(Value::as_object) {
                for (p, schema) in props {
                    assert!(
                        schema
                            .get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|d| !d.is_empty()),
                        "{}.{p} has no description",
                        t.name
                    );
                }
            }
            let output = (t.output_schema)();
            assert_eq!(output["type"], "object", "{}", t.name);
            assert!(!(t.read_only && t.destructive), "{}", t.name);
        }
        assert_eq!(names.len(), 20);
    }

    /// A backend that fails every call: enough to see which tools
    /// dispatch.
    struct Down;

    impl Backend for Down {
        async fn boundaries(&self) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn list_snapshots(&self, _: usize, _: Option<String>) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn create_snapshot(&self, _: SnapshotWindow) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn get_snapshot(&self, _: String) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn delete_snapshot(&self, _: String) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn start_dissection(&self, _: String) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn dissection_status(&self, _: String) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn list_calls(&self, _: String, _: CallsQuery) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn get_call(&self, _: String, _: String) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn stats(&self, _: String, _: StatsQuery) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn sql(&self, _: String, _: String, _: usize) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn export_pcap(&self, _: String, _: PcapExport) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
        async fn insights(
            &self,
            _: String,
            _: &'static str,
            _: Vec<(&'static str, String)>,
        ) -> crate::BackendResult {
            Err(BackendError::internal("down"))
        }
    }

    #[tokio::test]
    async fn every_listed_tool_dispatches() {
        let policy = ToolPolicy::default();
        for t in TOOLS {
            let r = call(&Down, &policy, &Progress::default(), t.name, None).await;
            if let Err(e) = r {
                assert!(
                    !e.message.starts_with("no tool named"),
                    "{} is listed but not dispatched",
                    t.name
                );
            }
        }
        let e = call(&Down, &policy, &Progress::default(), "list_api_call", None)
            .await
            .unwrap_err();
        assert!(
            e.text().contains("did you mean \"list_api_calls\""),
            "{}",
            e.text()
        );
    }

    /// `delete_snapshot` is refused unless the operator allowed destructive
    /// tools (`trawl tap --allow-destructive`); allowed, it reaches the
    /// backend.
    #[tokio::test]
    async fn destructive_tools_follow_the_operator_policy() {
        let args = json!({"snapshot_id": "s1"}).as_object().cloned();
        let off = ToolPolicy::default();
        let e = call(
            &Down,
            &off,
            &Progress::default(),
            "delete_snapshot",
            args.clone(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "not_allowed", "{}", e.text());
        let on = ToolPolicy {
            allow_destructive: true,
            redact: true,
        };
        let e = call(&Down, &on, &Progress::default(), "delete_snapshot", args)
            .await
            .unwrap_err();
        assert_ne!(e.code, "not_allowed", "{}", e.text());
        assert!(e.text().contains("down"), "{}", e.text());
    }

    #[test]
    fn compact_and_redact() {
        let mut m = json!({"method": "GET", "path": "", "errors": [], "request.headers":
            {"Authorization": "Bearer x", "accept": "*/*"}, "request.cookies": {"sid": "1"}, "status_code": 0})
        .as_object()
        .cloned()
        .unwrap();
        compact(&mut m);
        redact(&mut m);
        assert!(!m.contains_key("path") && !m.contains_key("errors"));
        assert_eq!(m["status_code"], 0);
        assert_eq!(m["request.headers"]["Authorization"], "[redacted]");
        assert_eq!(m["request.headers"]["accept"], "*/*");
        assert_eq!(m["request.cookies"]["sid"], "[redacted]");
    }

    #[test]
    fn bodies_are_cut_with_their_size_kept() {
        let v = json!({"size": 10000, "returned_bytes": 10000, "truncated": false, "encoding": "utf-8", "body": "é".repeat(5000)});
        let b = body_of(&v, 101).unwrap();
        assert_eq!((b.size, b.returned_bytes, b.truncated), (10000, 100, true));
        let v =
            json!({"size": 9, "truncated": false, "encoding": "base64", "body": "AAAABBBBCCCC"});
        let b = body_of(&v, 6).unwrap();
        assert_eq!(
            (b.body.as_str(), b.returned_bytes, b.truncated),
            ("AAAABBBB", 6, true)
        );
        assert!(body_of(&Value::Null, 10).is_none());
    }

    #[test]
    fn flow_conditions_validate_what_they_splice() {
        assert_eq!(
            flow_conditions(Some("10.0.0.7"), Some(80), None).unwrap(),
            " WHERE (src_ip = '10.0.0.7' OR dst_ip = '10.0.0.7') AND (src_port = 80 OR dst_port = 80)"
        );
        let e = flow_conditions(Some("10.0.0.7' OR 1=1 --"), None, None).unwrap_err();
        assert!(e.text().contains("not an IP address"), "{}", e.text());
        assert_eq!(sql_string("o'brien"), "'o''brien'");
    }

    #[test]
    fn unknown_flow_fields_get_a_did_you_mean() {
        let e = flow_field("dst.prot").unwrap_err();
        assert!(
            e.text().contains("did you mean \"dst.port\""),
            "{}",
            e.text()
        );
    }

    #[test]
    fn limits_out_of_range_say_the_range() {
        let e = check_limit(Some(0), 20, 200, "aggregate").unwrap_err();
        assert!(e.text().contains("1 to 200 (default 20)"), "{}", e.text());
        assert_eq!(check_limit(None, 20, 200, "").unwrap(), 20);
    }
}
