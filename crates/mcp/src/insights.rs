//! The insights tools — `analyze_service`, `find_anomalies`,
//! `explain_errors` — over the hub's `/insights/*` routes
//! ([`Backend::insights`]): their definitions ([`ANALYZE_SERVICE`],
//! [`FIND_ANOMALIES`], [`EXPLAIN_ERRORS`], listed in
//! [`crate::tools::TOOLS`]) and handlers (dispatched by
//! [`crate::tools::call`]). The hub's answer is the structured content as
//! is (it is already sized for a model: at most `limit` findings, ten ids
//! per finding, `truncated`); the text is its one-paragraph summary.

use rmcp::handler::server::common::{schema_for_output, schema_for_type};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::Backend;
use crate::tools::{ToolDef, ToolError, ToolOutput};

/// Findings, endpoints or timeline events per answer by default, and at
/// most (the hub's limits: trawl_insights::DEFAULT_LIMIT and MAX_LIMIT).
pub const DEFAULT_FINDINGS: usize = 20;
pub const MAX_FINDINGS: usize = 200;

pub const ANALYZE_SERVICE: ToolDef = ToolDef {
    name: "analyze_service",
    title: "Analyze service",
    description: "Health of one service over a dissected snapshot (or a window of it): calls it served, latency p50/p95/p99/max and TCP connect time in microseconds, status mix and share of 2xx, endpoints ranked by errors then p95 (with 5xx codes and error rate), callers and callees. Each endpoint carries evidence: a KFL filter for list_api_calls and example call ids. Start here for \"what is wrong with service X?\"; then find_anomalies and explain_errors.",
    read_only: true,
    destructive: false,
    idempotent: true,
    input_schema: schema_for_type::<AnalyzeServiceArgs>,
    output_schema: schema_for_output::<ServiceReportOut>,
};

pub const FIND_ANOMALIES: ToolDef = ToolDef {
    name: "find_anomalies",
    title: "Find anomalies",
    description: "Anomalies in a dissected snapshot, most severe first: error_burst (5xx/failed calls clustered per server endpoint, first and last), latency_shift (change point: time, median before and after), retry_storm (same client retrying the same method+path within 100 ms of a failure, 3+ tries), connection_churn (new TCP connections per minute per server), resets (RSTs per client/server), pool_exhaustion (fast 5xx without downstream work beside slow failures), dns_failures (NXDOMAIN/SERVFAIL/no answer per name). Each finding has a one-line summary with numbers, metrics, and evidence: a KFL filter over calls (or flows_where, an SQL condition over the flows table) and up to 10 call or flow ids. Narrow with kfl (scope) and from/to.",
    read_only: true,
    destructive: false,
    idempotent: true,
    input_schema: schema_for_type::<FindAnomaliesArgs>,
    output_schema: schema_for_output::<AnomaliesOut>,
};

pub const EXPLAIN_ERRORS: ToolDef = ToolDef {
    name: "explain_errors",
    title: "Explain errors",
    description: "Why the calls a KFL filter selects fail (e.g. status_code == 503 && path == \"/api/v1/checkout\"): what each serving workload was waiting on downstream while they ran, followed hop by hop to a root cause (chain, root cause last, with evidence per link), timeouts inferred from unanswered calls ending at the same duration (e.g. 5000 ms), and a timeline in time order: the downstream latency shift, first timeout, first failing call, first fast failure (pool exhaustion), first RST.",
    read_only: true,
    destructive: false,
    idempotent: true,
    input_schema: schema_for_type::<ExplainErrorsArgs>,
    output_schema: schema_for_output::<ExplanationOut>,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeServiceArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// The service: a dst.service.name, or a pod, external or DNS name (dst.name); list_workloads lists them.
    pub service: String,
    /// Start of the window, RFC 3339 (e.g. "2026-11-28T22:18:30Z"); absent: the snapshot's start.
    pub from: Option<String>,
    /// End of the window (exclusive), RFC 3339; absent: the snapshot's end.
    pub to: Option<String>,
    /// Endpoints, callers and callees returned each, 1 to 200 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindAnomaliesArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// KFL scope over calls, e.g. "dst.namespace == \"shop\""; absent or empty: every call.
    pub kfl: Option<String>,
    /// Start of the window, RFC 3339.
    pub from: Option<String>,
    /// End of the window (exclusive), RFC 3339.
    pub to: Option<String>,
    /// Findings returned, 1 to 200 (default 20), most severe first.
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainErrorsArgs {
    /// Snapshot id (dissected).
    pub snapshot_id: String,
    /// KFL selecting the failing calls, e.g. "status_code == 503 && path == \"/api/v1/checkout\""; of the calls it matches, the failed ones (5xx, no response) are explained.
    pub kfl: String,
    /// Timeouts and timeline events returned, 1 to 200 (default 20).
    pub limit: Option<usize>,
}

/// Evidence is `{kfl, flows_where?, call_ids (≤10), flow_ids (≤10), total}`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServiceReportOut {
    pub service: String,
    /// {from, to}, RFC 3339.
    pub window: Value,
    /// Calls the service served.
    pub calls: u64,
    /// {p50, p95, p99, max} in µs over answered calls.
    pub latency_us: Value,
    /// {p50, p95, samples}: TCP handshake RTT of connections to the service, µs.
    pub tcp_connect_us: Value,
    /// {"2xx", "3xx", "4xx", "5xx", "failed"} counts (failed: no response).
    pub status: Value,
    pub share_2xx: f64,
    /// {method, path (ids folded to {id}), calls, errors, error_rate, status_5xx {code: n}, p50_us, p95_us, p99_us, evidence}, by errors then p95.
    pub endpoints: Vec<Value>,
    /// {name, calls, errors, p50_us, p95_us}.
    pub callers: Vec<Value>,
    /// {name, calls, errors, p50_us, p95_us}.
    pub callees: Vec<Value>,
    pub summary: String,
    pub truncated: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AnomaliesOut {
    /// {kind, severity (high|medium|low), title, summary, first, last (RFC 3339), subject {client?, server?, method?, path?}, metrics (per kind), evidence}.
    pub findings: Vec<Value>,
    pub truncated: bool,
    pub calls_analyzed: u64,
    pub flows_analyzed: u64,
    pub summary: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ExplanationOut {
    pub kfl: String,
    pub failing_calls: u64,
    /// {name, calls}: failing calls per server.
    pub servers: Vec<Value>,
    /// {service (the client that gives up), callee, timeout_ms, count, evidence}.
    pub timeouts: Vec<Value>,
    /// {service, endpoint, role (failing|waits on|root cause), detail, evidence}, root cause last.
    pub chain: Vec<Value>,
    /// {time (RFC 3339), kind (latency_shift|timeout|failing_call|pool_exhaustion|resets), event, evidence}, in time order.
    pub timeline: Vec<Value>,
    pub summary: String,
    pub truncated: bool,
}

fn check(snapshot_id: &str, limit: Option<usize>) -> Result<(), ToolError> {
    if snapshot_id.trim().is_empty() {
        return Err(ToolError::input(
            "snapshot_id is empty",
            "give the snapshot_id; list_snapshots lists snapshot ids",
        ));
    }
    if let Some(l) = limit
        && !(1..=MAX_FINDINGS).contains(&l)
    {
        return Err(ToolError::input(
            format!("limit {l} is out of range"),
            format!(
                "give a limit from 1 to {MAX_FINDINGS} (default {DEFAULT_FINDINGS}); narrow kfl or the window for fewer"
            ),
        ));
    }
    Ok(())
}

fn push(q: &mut Vec<(&'static str, String)>, k: &'static str, v: Option<String>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        q.push((k, v));
    }
}

async fn run<B: Backend, O: Serialize + for<'de> Deserialize<'de>>(
    b: &B,
    id: String,
    analysis: &'static str,
    query: Vec<(&'static str, String)>,
) -> Result<ToolOutput, ToolError> {
    let v = b
        .insights(id.clone(), analysis, query)
        .await
        .map_err(|e| ToolError::from_backend(e, Some(&id)))?;
    let summary = v["summary"].as_str().unwrap_or_default().to_owned();
    // Through the output type, so that the answer matches its schema.
    let out: O = serde_json::from_value(v)
        .map_err(|e| ToolError::internal(format!("unexpected answer from the hub: {e}")))?;
    let structured = serde_json::to_value(&out)
        .map_err(|e| ToolError::internal(format!("cannot render the answer: {e}")))?;
    Ok(ToolOutput {
        summary,
        structured,
        links: Vec::new(),
    })
}

pub async fn analyze_service<B: Backend>(
    b: &B,
    a: AnalyzeServiceArgs,
) -> Result<ToolOutput, ToolError> {
    check(&a.snapshot_id, a.limit)?;
    if a.service.trim().is_empty() {
        return Err(ToolError::input(
            "service is empty",
            "give a service name as in dst.service.name or dst.name; list_workloads lists them",
        ));
    }
    let mut q = vec![("service", a.service)];
    push(&mut q, "from", a.from);
    push(&mut q, "to", a.to);
    push(&mut q, "limit", a.limit.map(|l| l.to_string()));
    run::<B, ServiceReportOut>(b, a.snapshot_id, "service", q).await
}

pub async fn find_anomalies<B: Backend>(
    b: &B,
    a: FindAnomaliesArgs,
) -> Result<ToolOutput, ToolError> {
    check(&a.snapshot_id, a.limit)?;
    let mut q = Vec::new();
    push(&mut q, "kfl", a.kfl);
    push(&mut q, "from", a.from);
    push(&mut q, "to", a.to);
    push(&mut q, "limit", a.limit.map(|l| l.to_string()));
    run::<B, AnomaliesOut>(b, a.snapshot_id, "anomalies", q).await
}

pub async fn explain_errors<B: Backend>(
    b: &B,
    a: ExplainErrorsArgs,
) -> Result<ToolOutput, ToolError> {
    check(&a.snapshot_id, a.limit)?;
    if a.kfl.trim().is_empty() {
        return Err(ToolError::input(
            "kfl is empty",
            "give a KFL filter selecting the failing calls, e.g. status_code >= 500 && path == \"/api/v1/checkout\" (find_anomalies' error_burst findings carry one)",
        ));
    }
    let mut q = vec![("kfl", a.kfl)];
    push(&mut q, "limit", a.limit.map(|l| l.to_string()));
    run::<B, ExplanationOut>(b, a.snapshot_id, "explain", q).await
}
