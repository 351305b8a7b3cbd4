//! The cluster hub (`trawl hub --worker URL …`): the API of
//! [`crate::api`] served over workers (`trawl worker`, or any `trawl tap`
//! with a reachable API), each of which captures its own node into its own
//! raw store and indexes its own part of a snapshot. [`routes`] has the
//! same (method, path) list as [`crate::api::routes`] (a test checks it);
//! its handlers send the request to every worker with reqwest and merge:
//!
//! - boundaries and `/nodes`: every worker's nodes, plus the overall span;
//! - snapshots: one id and one window (resolved here, once) cut on every
//!   worker under that same id, each part a creation job of its worker; the
//!   hub keeps a manifest (`<data>/cluster/snapshots/<id>.json`) naming the
//!   parts and the nodes that failed, `creating` until every reachable part
//!   is done (manifests of older hubs name each part's own id, still read);
//! - dissection: started (and cancelled) on every node's part; status adds
//!   progress and counts and lists each node's;
//! - calls and flows: each node's page from its position, merged in sort
//!   order (`timestamp`, then the call `id`, which starts with the node
//!   name, or for flows the node and `conn_id`); the cursor holds every
//!   node's position, so pages neither repeat nor skip;
//! - stats and flow stats: each node returns its counters and HdrHistograms
//!   (`mergeable=true`), which add up exactly: percentiles are those of the
//!   union, never averages;
//! - SQL: each node's rows with a `node` column (aggregates are per node);
//! - PCAP: each node's filtered export spooled here, then merged in time
//!   order into one stream by `trawl_rawstore::export`.
//!
//! A worker that is down, times out or fails (5xx) leaves the answer
//! `partial: true` with it in `missing_nodes`, never a 5xx for the whole
//! request; a 4xx of a worker (a bad filter) is the caller's mistake and
//! is returned as it is. Routes that run where the index is and are not
//! fanned out answer 501 saying so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trawl_index::flow_stats::FlowStatsResult;
use trawl_index::stats::StatsResult;
use trawl_model::catalogue::{FieldDef, FieldType, call_fields};
use trawl_model::time::rfc3339_micros;
use trawl_rawstore::snapshot::{CreateProgress, MANIFEST_FORMAT, new_snapshot_id};
use trawl_rawstore::{
    Boundaries, ExportOptions, Snapshot, SnapshotFile, SnapshotManifest, SnapshotNode,
    SnapshotStatus, Window, parse_time, parse_window,
};

use crate::api::{
    self, CallsQuery, CreateQuery, CreateSnapshot, FlowStatsQuery, FlowsQuery, PageQuery,
    PcapQuery, Route, SqlRequest, StatsQuery, blocking, check_call_id, check_limit, json_body,
    now_ns, offset_cursor, split_list,
};
use crate::error::Position;
use crate::{ApiError, Hub, StartError};

/// How long one worker request may take unless `--worker-timeout` says
/// otherwise: a stats or SQL query over a large snapshot on a busy worker
/// takes seconds; a worker that is down is noticed sooner (connection
/// refused, or [`CONNECT_TIMEOUT`]).
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for a worker's TCP connection: a worker on the same
/// network answers in milliseconds, so seconds mean it is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Time a liveness probe (`/nodes`, snapshot listings) waits per worker:
/// it only reads counters.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most workers one hub takes: every list cursor holds each node's
/// position, and each request is sent to every worker.
pub const MAX_WORKERS: usize = 256;

/// Largest JSON answer read from a worker: a page of
/// [`api::MAX_LIMIT`] calls is tens of MB.
const MAX_WORKER_ANSWER: usize = 256 << 20;

/// Longest cursor accepted: a node name (≤ 64 bytes) and an offset per
/// worker, base64.
const MAX_CURSOR: usize = 64 * 1024;

/// Largest hub snapshot manifest read: a few hundred bytes per node.
const MAX_MANIFEST: u64 = 4 << 20;

/// Where the hub keeps its snapshot manifests, under the data directory.
pub const MANIFEST_DIR: &str = "cluster/snapshots";

/// Where worker PCAP exports are spooled before they are merged.
const SPOOL_DIR: &str = "cluster/spool";

/// What `trawl hub` is given.
#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// Base URLs of the workers' APIs (`http://10.0.0.5:9900`).
    pub workers: Vec<String>,
    /// Bearer token the workers want; `None` sends none.
    pub worker_token: Option<String>,
    /// Per-request timeout; `None` is [`DEFAULT_WORKER_TIMEOUT`].
    pub timeout: Option<Duration>,
}

/// The workers of a hub and the client that reaches them.
#[derive(Debug)]
pub struct Cluster {
    http: reqwest::Client,
    workers: Vec<Worker>,
    token: Option<String>,
    timeout: Duration,
    data_dir: PathBuf,
}

#[derive(Debug)]
struct Worker {
    url: String,
    state: Mutex<WorkerState>,
}

/// What the hub last learned of a worker.
#[derive(Clone, Debug, Default)]
struct WorkerState {
    /// Its node name (from its `/health`), once it answered.
    node: Option<String>,
    up: Option<bool>,
    last_seen_ns: Option<i64>,
    error: Option<String>,
}

impl Cluster {
    pub(crate) fn new(cfg: ClusterConfig, data_dir: &FsPath) -> Result<Cluster, StartError> {
        if cfg.workers.is_empty() {
            return Err(StartError::Cluster(
                "a hub needs at least one worker: --worker http://HOST:9900".into(),
            ));
        }
        if cfg.workers.len() > MAX_WORKERS {
            return Err(StartError::Cluster(format!(
                "{} workers; a hub takes at most {MAX_WORKERS}",
                cfg.workers.len()
            )));
        }
        let mut workers: Vec<Worker> = Vec::new();
        for raw in &cfg.workers {
            let url = raw.trim().trim_end_matches('/').to_owned();
            let parsed = reqwest::Url::parse(&url).map_err(|e| {
                StartError::Cluster(format!(
                    "worker URL {raw:?}: {e}; give it as http://HOST:PORT"
                ))
            })?;
            if parsed.scheme() != "http" || parsed.host_str().is_none() {
                return Err(StartError::Cluster(format!(
                    "worker URL {raw:?}: give it as http://HOST:PORT (trawl's API speaks plain HTTP; put TLS in front of the hub)"
                )));
            }
            if workers.iter().any(|w| w.url == url) {
                return Err(StartError::Cluster(format!("worker {url} is given twice")));
            }
            workers.push(Worker {
                url,
                state: Mutex::new(WorkerState::default()),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| StartError::Cluster(format!("cannot build the HTTP client: {e}")))?;
        Ok(Cluster {
            http,
            workers,
            token: cfg.worker_token.filter(|t| !t.is_empty()),
            timeout: cfg.timeout.unwrap_or(DEFAULT_WORKER_TIMEOUT),
            data_dir: data_dir.to_owned(),
        })
    }

    fn state(&self, i: usize) -> WorkerState {
        self.workers
            .get(i)
            .and_then(|w| w.state.lock().ok().map(|g| g.clone()))
            .unwrap_or_default()
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut WorkerState)) {
        if let Some(w) = self.workers.get(i)
            && let Ok(mut g) = w.state.lock()
        {
            f(&mut g);
        }
    }

    /// A worker's name in answers: its node name once known, else its URL.
    fn label(&self, i: usize) -> String {
        self.state(i)
            .node
            .or_else(|| self.workers.get(i).map(|w| w.url.clone()))
            .unwrap_or_default()
    }

    fn url(&self, i: usize) -> String {
        self.workers
            .get(i)
            .map(|w| w.url.clone())
            .unwrap_or_default()
    }

    fn index_of_url(&self, url: &str) -> Option<usize> {
        self.workers.iter().position(|w| w.url == url)
    }

    /// Sends one request to worker `i`.
    async fn send(&self, i: usize, req: &Req) -> Reply {
        let Some(w) = self.workers.get(i) else {
            return Reply::Down("no such worker".into());
        };
        let mut rb = self
            .http
            .request(req.method.clone(), format!("{}{}", w.url, req.path))
            .timeout(req.timeout.unwrap_or(self.timeout));
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = &req.body {
            rb = rb.json(b);
        }
        let reply = match rb.send().await {
            Err(e) => Reply::Down(describe(&e)),
            Ok(r) => {
                let status = r.status();
                match read_json(r).await {
                    Err(e) => Reply::Down(e),
                    Ok(v) if status.is_success() => Reply::Ok(v),
                    Ok(v) if status.is_server_error() => Reply::Down(format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        v["error"]["message"].as_str().unwrap_or("server error")
                    )),
                    Ok(v) => Reply::Refused(worker_error(status, &v)),
                }
            }
        };
        let now = now_ns();
        self.update(i, |s| match &reply {
            Reply::Down(e) => {
                s.up = Some(false);
                s.error = Some(e.clone());
            }
            Reply::Ok(_) | Reply::Refused(_) => {
                s.up = Some(true);
                s.last_seen_ns = Some(now);
                s.error = None;
            }
        });
        reply
    }

    /// Sends each request to its worker at once; answers in the same order.
    async fn fan(&self, reqs: Vec<(usize, Req)>) -> Vec<(usize, Reply)> {
        let futs = reqs.iter().map(|(i, r)| self.send(*i, r));
        let replies = futures::future::join_all(futs).await;
        reqs.into_iter().map(|(i, _)| i).zip(replies).collect()
    }

    /// Asks the workers whose node name is unknown for it (`/health`).
    async fn discover(&self) {
        let unknown: Vec<(usize, Req)> = (0..self.workers.len())
            .filter(|&i| self.state(i).node.is_none())
            .map(|i| (i, Req::get("/api/v1/health").timeout(PROBE_TIMEOUT)))
            .collect();
        if unknown.is_empty() {
            return;
        }
        for (i, r) in self.fan(unknown).await {
            if let Reply::Ok(v) = r
                && let Some(n) = v["node"].as_str()
            {
                let taken = (0..self.workers.len())
                    .any(|j| j != i && self.state(j).node.as_deref() == Some(n));
                if taken {
                    tracing::warn!(node = n, url = %self.url(i), "Two workers report the same node name; give each `--node NAME`.");
                }
                let name = n.to_owned();
                self.update(i, |s| s.node = Some(name));
            }
        }
    }

    fn all(&self) -> Vec<usize> {
        (0..self.workers.len()).collect()
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.data_dir.join(MANIFEST_DIR).join(format!("{id}.json"))
    }
}

/// One request to a worker.
#[derive(Clone, Debug)]
struct Req {
    method: reqwest::Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    timeout: Option<Duration>,
}

impl Req {
    fn get(path: impl Into<String>) -> Req {
        Req {
            method: reqwest::Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    fn post(path: impl Into<String>, body: Option<Value>) -> Req {
        Req {
            method: reqwest::Method::POST,
            body,
            ..Req::get(path)
        }
    }

    fn delete(path: impl Into<String>) -> Req {
        Req {
            method: reqwest::Method::DELETE,
            ..Req::get(path)
        }
    }

    fn q(mut self, k: &str, v: Option<impl Into<String>>) -> Req {
        if let Some(v) = v {
            self.query.push((k.to_owned(), v.into()));
        }
        self
    }

    fn timeout(mut self, t: Duration) -> Req {
        self.timeout = Some(t);
        self
    }
}

/// What a worker answered.
#[derive(Debug)]
enum Reply {
    Ok(Value),
    /// Unreachable, timed out, or failed on its side (5xx): missing.
    Down(String),
    /// A 4xx: the request itself is wrong (or the thing is not there).
    Refused(ApiError),
}

/// A transport error, said shortly (reqwest's chain without the URL).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

/// Reads a JSON answer of at most [`MAX_WORKER_ANSWER`] bytes.
async fn read_json(mut r: reqwest::Response) -> Result<Value, String> {
    if r.content_length()
        .is_some_and(|n| n > MAX_WORKER_ANSWER as u64)
    {
        return Err(format!("answer over {MAX_WORKER_ANSWER} bytes"));
    }
    let mut buf = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > MAX_WORKER_ANSWER {
                    return Err(format!("answer over {MAX_WORKER_ANSWER} bytes"));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => return Err(describe(&e)),
        }
    }
    serde_json::from_slice(&buf).map_err(|e| format!("not JSON ({e}); is this a trawl API?"))
}

/// The error codes a worker may send, as the `&'static str` of
/// [`ApiError::code`]; anything else becomes `worker_error`.
const KNOWN_CODES: &[&str] = &[
    "bad_request",
    "bad_filter",
    "unsupported_filter",
    "unknown_field",
    "bad_window",
    "bad_json",
    "bad_query",
    "bad_packet_filter",
    "not_found",
    "not_dissected",
    "dissection_running",
    "not_running",
    "not_ready",
    "no_raw_store",
    "empty_snapshot",
    "snapshot_exists",
    "snapshot_creating",
    "unauthorized",
    "not_implemented",
];

/// A worker's error answer, passed on as it came.
fn worker_error(status: reqwest::StatusCode, v: &Value) -> ApiError {
    let e = &v["error"];
    let code = e["code"].as_str().unwrap_or_default();
    let code = KNOWN_CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("worker_error");
    let mut out = ApiError::new(
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
        code,
        e["message"]
            .as_str()
            .map_or_else(|| format!("a worker answered {status}"), str::to_owned),
    );
    if status == reqwest::StatusCode::UNAUTHORIZED {
        out.message = format!("a worker refused the hub's token: {}", out.message);
        out.suggestion =
            Some("start the hub with --worker-token TOKEN (the workers' --token)".into());
        return out;
    }
    out.suggestion = e["suggestion"].as_str().map(str::to_owned);
    let p = &e["position"];
    if let (Some(line), Some(column), Some(start), Some(end)) = (
        p["line"].as_u64(),
        p["column"].as_u64(),
        p["start"].as_u64(),
        p["end"].as_u64(),
    ) {
        let u = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
        out.position = Some(Position {
            line: u(line),
            column: u(column),
            start: u(start),
            end: u(end),
        });
    }
    out
}

/// The nodes an answer lacks, and why.
#[derive(Debug, Default)]
pub(crate) struct Missing {
    pub(crate) nodes: BTreeMap<String, String>,
}

impl Missing {
    fn add(&mut self, node: String, why: String) {
        self.nodes.insert(node, why);
    }

    /// Adds `partial`, `missing_nodes` and `node_errors` to `v`.
    pub(crate) fn tag(&self, mut v: Value) -> Value {
        if let Some(o) = v.as_object_mut() {
            o.insert("partial".into(), json!(!self.nodes.is_empty()));
            o.insert(
                "missing_nodes".into(),
                json!(self.nodes.keys().collect::<Vec<_>>()),
            );
            if !self.nodes.is_empty() {
                o.insert("node_errors".into(), json!(self.nodes));
            }
        }
        v
    }
}

/// The first 4xx among the replies other than a missing part (404),
/// which is the caller's to fix: every worker would say the same.
fn refusal(replies: &[(usize, Reply)]) -> Option<ApiError> {
    replies.iter().find_map(|(_, r)| match r {
        Reply::Refused(e) if e.code != "not_found" => Some(e.clone()),
        _ => None,
    })
}

fn cluster_of(hub: &Hub) -> Result<&Cluster, ApiError> {
    hub.cluster()
        .ok_or_else(|| ApiError::internal("this route needs a cluster hub"))
}

/// Every route of [`crate::api::routes`], fanned out; those not fanned
/// out answer 501.
pub fn routes() -> Vec<Route> {
    let r = |method, path, handler| Route {
        method,
        path,
        handler,
    };
    let mut out = vec![
        r("GET", "/api/v1/health", get(health)),
        r("GET", "/api/v1/boundaries", get(boundaries)),
        r("GET", "/api/v1/nodes", get(nodes)),
        r("GET", "/api/v1/fields", get(api::fields)),
        r("GET", "/api/v1/snapshots", get(list_snapshots)),
        r("POST", "/api/v1/snapshots", post(create_snapshot)),
        r("GET", "/api/v1/snapshots/{id}", get(get_snapshot)),
        r("DELETE", "/api/v1/snapshots/{id}", delete(delete_snapshot)),
        r(
            "POST",
            "/api/v1/snapshots/{id}/dissection",
            post(start_dissection),
        ),
        r(
            "GET",
            "/api/v1/snapshots/{id}/dissection",
            get(dissection_status),
        ),
        r(
            "DELETE",
            "/api/v1/snapshots/{id}/dissection",
            delete(cancel_dissection),
        ),
        r("GET", "/api/v1/snapshots/{id}/calls", get(list_calls)),
        r(
            "GET",
            "/api/v1/snapshots/{id}/calls/{*call_id}",
            get(get_call),
        ),
        r("GET", "/api/v1/snapshots/{id}/stats", get(stats)),
        r("GET", "/api/v1/snapshots/{id}/flows", get(list_flows)),
        r("GET", "/api/v1/snapshots/{id}/flows/stats", get(flow_stats)),
        r("POST", "/api/v1/snapshots/{id}/sql", post(sql)),
        r("GET", "/api/v1/snapshots/{id}/pcap", get(pcap)),
        r(
            "POST",
            "/api/v1/snapshots/{id}/exports",
            post(crate::exports::start),
        ),
        r(
            "GET",
            "/api/v1/snapshots/{id}/exports/{export_id}",
            get(crate::exports::status),
        ),
        r(
            "DELETE",
            "/api/v1/snapshots/{id}/exports/{export_id}",
            delete(crate::exports::cancel),
        ),
        r(
            "GET",
            "/api/v1/snapshots/{id}/exports/{export_id}/file",
            get(crate::exports::download),
        ),
    ];
    for n in api::routes() {
        if !out.iter().any(|m| m.method == n.method && m.path == n.path) {
            out.push(r(n.method, n.path, not_fanned_out(n.method)));
        }
    }
    out
}

fn not_fanned_out(method: &str) -> MethodRouter<Hub> {
    let h = || async {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "this route runs where the index is and the hub does not fan it out yet",
        )
        .with_suggestion("ask a worker directly: GET /api/v1/nodes lists their URLs")
    };
    match method {
        "POST" => post(h),
        "DELETE" => delete(h),
        _ => get(h),
    }
}

async fn health(State(hub): State<Hub>) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    Ok(Json(json!({
        "service": "trawl",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": "hub",
        "node": null,
        "workers": c.workers.iter().map(|w| w.url.clone()).collect::<Vec<_>>(),
        "data_dir": hub.config().data_dir.display().to_string(),
    })))
}

/// Every worker's raw-store nodes, as [`Boundaries`].
async fn worker_boundaries(
    c: &Cluster,
    timeout: Duration,
) -> (Vec<(usize, Vec<Boundaries>)>, Missing) {
    c.discover().await;
    let reqs = c
        .all()
        .into_iter()
        .map(|i| (i, Req::get("/api/v1/boundaries").timeout(timeout)))
        .collect();
    let mut out = Vec::new();
    let mut missing = Missing::default();
    for (i, r) in c.fan(reqs).await {
        match r {
            Reply::Ok(v) => {
                let nodes: Vec<Boundaries> = v["nodes"]
                    .as_array()
                    .map(|a| a.iter().map(boundaries_from_json).collect())
                    .unwrap_or_default();
                out.push((i, nodes));
            }
            Reply::Down(e) => missing.add(c.label(i), e),
            Reply::Refused(e) => missing.add(c.label(i), e.message),
        }
    }
    (out, missing)
}

/// A node's boundaries as its API sent them (`api::boundaries_json`);
/// read field by field, so that a worker of another version still counts.
fn boundaries_from_json(v: &Value) -> Boundaries {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Boundaries {
        node: v["node"].as_str().unwrap_or_default().to_owned(),
        oldest_ts: v["oldest_ts"].as_i64(),
        newest_ts: v["newest_ts"].as_i64(),
        packets: n("packets"),
        bytes: n("bytes"),
        segments: n("segments"),
        drops: n("drops"),
        store_drops: n("store_drops"),
        ..Boundaries::default()
    }
}

async fn boundaries(State(hub): State<Hub>) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let (per, missing) = worker_boundaries(c, c.timeout).await;
    let all: Vec<Boundaries> = per.into_iter().flat_map(|(_, b)| b).collect();
    Ok(Json(missing.tag(json!({
        "nodes": all.iter().map(api::boundaries_json).collect::<Vec<_>>(),
        "overall": api::overall_boundaries(&all),
    }))))
}

/// The workers, up or down, with what they hold.
async fn nodes(State(hub): State<Hub>) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let (per, missing) = worker_boundaries(c, PROBE_TIMEOUT).await;
    let nodes: Vec<Value> = c
        .all()
        .into_iter()
        .map(|i| {
            let s = c.state(i);
            let b = per.iter().find(|(j, _)| *j == i).map(|(_, b)| b);
            json!({
                "node": c.label(i),
                "url": c.url(i),
                "status": if b.is_some() { "up" } else { "down" },
                "last_seen": s.last_seen_ns.map(rfc3339_micros),
                "error": s.error,
                "boundaries": b.map(|b| b.iter().map(api::boundaries_json).collect::<Vec<_>>()),
            })
        })
        .collect();
    Ok(Json(missing.tag(json!({ "mode": "hub", "nodes": nodes }))))
}

/// A hub snapshot: one window cut on several workers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSnapshot {
    pub id: String,
    pub name: String,
    /// `creating` until every reachable part is `ready` or `failed`, then
    /// `ready` when at least one part is, else `failed`.
    pub status: SnapshotStatus,
    pub window: Window,
    pub created_ns: i64,
    pub created: String,
    /// Always `cluster`.
    pub source: String,
    pub packets: u64,
    pub bytes: u64,
    pub nodes: Vec<Part>,
    /// Nodes asked whose part could not be cut, and why.
    #[serde(default)]
    pub failed_nodes: Vec<FailedPart>,
}

/// One node's part of a hub snapshot: a snapshot on its worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub node: String,
    pub worker: String,
    /// The part's id on its worker when it differs from the hub's: only in
    /// manifests written before the hub gave every worker its own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedPart {
    pub node: String,
    pub worker: String,
    pub error: String,
}

/// Same rule as the raw store's snapshot ids: a plain file name.
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("invalid snapshot id {id:?}")))
    }
}

fn read_manifest(path: &FsPath) -> Result<ClusterSnapshot, ApiError> {
    let len = std::fs::metadata(path)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
        .len();
    if len > MAX_MANIFEST {
        return Err(ApiError::internal(format!(
            "{}: {len} bytes, over {MAX_MANIFEST}: not a hub manifest",
            path.display()
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let mut m: ClusterSnapshot = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::internal(format!("{}: invalid hub manifest: {e}", path.display()))
    })?;
    // Parts without an id of their own carry the hub's.
    for p in &mut m.nodes {
        if p.snapshot_id.is_none() {
            p.snapshot_id = Some(m.id.clone());
        }
    }
    Ok(m)
}

/// The manifest as stored and answered: a part's id only where it is not
/// the hub's (manifests of older hubs).
fn stored(m: &ClusterSnapshot) -> ClusterSnapshot {
    let mut out = m.clone();
    for p in &mut out.nodes {
        if p.snapshot_id.as_deref() == Some(m.id.as_str()) {
            p.snapshot_id = None;
        }
    }
    out
}

/// Writes the manifest whole (temporary file, then rename).
fn write_manifest(path: &FsPath, m: &ClusterSnapshot) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", path.display()));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes =
        serde_json::to_vec_pretty(&stored(m)).map_err(|e| ApiError::internal(e.to_string()))?;
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

async fn manifest_of(c: &Cluster, id: &str) -> Result<ClusterSnapshot, ApiError> {
    check_id(id)?;
    let path = c.manifest_path(id);
    blocking(move || {
        if !path.is_file() {
            return Err(ApiError::not_found(format!(
                "snapshot {:?} not found on this hub",
                path.file_stem().unwrap_or_default()
            ))
            .with_suggestion("GET /api/v1/snapshots lists the snapshots"));
        }
        read_manifest(&path)
    })
    .await
}

/// The manifest as answered: the stored one, plus `warnings` naming the
/// nodes whose part failed (clients of a node's manifest show those).
fn manifest_json(m: &ClusterSnapshot) -> Value {
    let mut v = serde_json::to_value(stored(m)).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let w: Vec<String> = m
            .failed_nodes
            .iter()
            .map(|f| format!("node {} is not in this snapshot: {}", f.node, f.error))
            .collect();
        o.insert("warnings".into(), json!(w));
    }
    v
}

/// The workers of a snapshot's parts; parts whose worker is no longer
/// configured are missing.
fn part_workers<'a>(
    c: &Cluster,
    m: &'a ClusterSnapshot,
    missing: &mut Missing,
) -> Vec<(usize, &'a Part)> {
    let mut out = Vec::new();
    for p in &m.nodes {
        match c.index_of_url(&p.worker) {
            Some(i) => out.push((i, p)),
            None => missing.add(
                p.node.clone(),
                format!("its worker {} is not one of this hub's", p.worker),
            ),
        }
    }
    out
}

fn part_path(p: &Part, rest: &str) -> String {
    // Manifests read from disk carry the id in every part (read_manifest).
    format!(
        "/api/v1/snapshots/{}{rest}",
        p.snapshot_id.as_deref().unwrap_or_default()
    )
}

async fn list_snapshots(
    State(hub): State<Hub>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let limit = q.limit.unwrap_or(api::MAX_SNAPSHOT_PAGE);
    if limit == 0 || limit > api::MAX_SNAPSHOT_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit {limit} out of range: ask for 1 to {}",
            api::MAX_SNAPSHOT_PAGE
        )));
    }
    let dir = c.data_dir.join(MANIFEST_DIR);
    let all = blocking(move || {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ApiError::internal(format!("{}: {e}", dir.display()))),
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match read_manifest(&p) {
                    Ok(m) => out.push(m),
                    Err(e) => tracing::warn!(error = %e.message, "Skipping a hub manifest."),
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    })
    .await?;
    // Which workers answer: a snapshot with a part on a silent one is
    // only partly reachable.
    let probes = c
        .all()
        .into_iter()
        .map(|i| (i, Req::get("/api/v1/health").timeout(PROBE_TIMEOUT)))
        .collect();
    let mut missing = Missing::default();
    let mut down = BTreeSet::new();
    for (i, r) in c.fan(probes).await {
        if let Reply::Down(e) = r {
            down.insert(c.url(i));
            missing.add(c.label(i), e);
        }
    }
    let mut rest: Vec<ClusterSnapshot> = all
        .into_iter()
        .filter(|m| {
            q.cursor
                .as_ref()
                .is_none_or(|cur| m.id.as_str() > cur.as_str())
        })
        .collect();
    // Snapshots being created: their state is the workers' (few at once).
    for m in rest
        .iter_mut()
        .take(limit)
        .filter(|m| m.status == SnapshotStatus::Creating)
    {
        let mut ignored = Missing::default();
        if let Ok((now, _, _)) = refresh(c, m.clone(), &mut ignored).await {
            *m = now;
        }
    }
    let total = rest.len();
    let page: Vec<Value> = rest
        .iter()
        .take(limit)
        .map(|m| {
            let mut v = manifest_json(m);
            let unreachable: Vec<&str> = m
                .nodes
                .iter()
                .filter(|p| down.contains(&p.worker))
                .map(|p| p.node.as_str())
                .collect();
            if let Some(o) = v.as_object_mut() {
                o.insert("unreachable_nodes".into(), json!(unreachable));
            }
            v
        })
        .collect();
    let next = (total > page.len())
        .then(|| rest.get(page.len().saturating_sub(1)).map(|m| m.id.clone()))
        .flatten();
    Ok(Json(missing.tag(json!({
        "snapshots": page,
        "next_cursor": next,
        "truncated": next.is_some(),
    }))))
}

/// Creates a hub snapshot as a job: the window is resolved here once, one
/// id (the caller's or a new one) is claimed on every worker with the same
/// `POST` (each copies its own node's packets as a job of its own), and the
/// hub's manifest is `creating` until every reachable part is `ready` or
/// `failed` ([`refresh`]). Answers 202 with the summed progress, or 201
/// when the parts were already done; `?wait=true` waits for them (at most
/// [`MAX_CREATE_WAIT`]).
async fn create_snapshot(
    State(hub): State<Hub>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = cluster_of(&hub)?;
    let req: CreateSnapshot = json_body(&body)?;
    req.check()?;
    let now = now_ns();
    let w = parse_window(
        req.last.as_deref(),
        req.from.as_deref(),
        req.to.as_deref(),
        now,
    )?;
    // One window for every worker, resolved here once and sent as RFC 3339
    // (to the microsecond, which is what is kept too).
    let (from, to) = (rfc3339_micros(w.from_ns), rfc3339_micros(w.to_ns));
    let window = Window {
        from_ns: parse_time(&from)?,
        to_ns: parse_time(&to)?,
    };
    let id = match &req.id {
        Some(id) => {
            check_id(id)?;
            id.clone()
        }
        None => new_snapshot_id(now),
    };
    let path = c.manifest_path(&id);
    let probe = path.clone();
    if blocking(move || Ok(probe.exists())).await? {
        return Err(ApiError::conflict(
            "snapshot_exists",
            format!(
                "snapshot {id:?} exists already on this hub; choose another id or delete it first"
            ),
        ));
    }
    c.discover().await;
    let mut targets = c.all();
    if !req.nodes.is_empty() {
        let names: Vec<String> = targets.iter().map(|&i| c.label(i)).collect();
        for n in &req.nodes {
            if !names.contains(n) {
                return Err(ApiError::bad_request(format!(
                    "node {n:?} is not a worker of this hub; nodes: {}",
                    names.join(", ")
                ))
                .with_suggestion("GET /api/v1/nodes lists them"));
            }
        }
        targets.retain(|&i| req.nodes.contains(&c.label(i)));
    }
    let reqs = targets
        .iter()
        .map(|&i| {
            let mut body = json!({"from": from, "to": to, "name": req.name, "id": id});
            // A worker snapshots its own node only (its data directory may
            // hold imported nodes too), so that it can dissect its part.
            if let Some(n) = c.state(i).node {
                body["nodes"] = json!([n]);
            }
            (i, Req::post("/api/v1/snapshots", Some(body)))
        })
        .collect();
    let replies = c.fan(reqs).await;
    let mut parts = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in &replies {
        let fail = |error: String| FailedPart {
            node: c.label(*i),
            worker: c.url(*i),
            error,
        };
        match r {
            Reply::Ok(v) => match serde_json::from_value::<SnapshotManifest>(without_progress(v)) {
                Ok(m) if m.status == SnapshotStatus::Failed => failed.push(fail(
                    m.error
                        .unwrap_or_else(|| format!("its snapshot {} failed", m.id)),
                )),
                Ok(m) => parts.push(Part {
                    node: m
                        .nodes
                        .first()
                        .map_or_else(|| c.label(*i), |n| n.node.clone()),
                    worker: c.url(*i),
                    snapshot_id: Some(m.id),
                    packets: m.packets,
                    bytes: m.bytes,
                }),
                Err(e) => failed.push(fail(format!("unexpected answer: {e}"))),
            },
            Reply::Down(e) => failed.push(fail(e.clone())),
            Reply::Refused(e) => failed.push(fail(e.message.clone())),
        }
    }
    if parts.is_empty() {
        if let Some(e) = refusal(&replies) {
            return Err(e);
        }
        let why: Vec<String> = failed
            .iter()
            .map(|f| format!("{}: {}", f.node, f.error))
            .collect();
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_worker",
            format!("no worker could cut the snapshot ({})", why.join("; ")),
        )
        .with_suggestion("GET /api/v1/nodes shows which workers are up"));
    }
    let mut m = ClusterSnapshot {
        id,
        name: req.name,
        status: SnapshotStatus::Creating,
        window,
        created_ns: now,
        created: rfc3339_micros(now),
        source: "cluster".into(),
        packets: parts.iter().map(|p| p.packets).sum(),
        bytes: parts.iter().map(|p| p.bytes).sum(),
        nodes: parts,
        failed_nodes: failed,
    };
    let saved = m.clone();
    blocking(move || write_manifest(&path, &saved)).await?;
    let deadline = std::time::Instant::now() + MAX_CREATE_WAIT;
    let (mut missing, progress) = loop {
        let mut missing = Missing::default();
        let (now_m, _, progress) = refresh(c, m, &mut missing).await?;
        m = now_m;
        if !q.wait || m.status != SnapshotStatus::Creating || std::time::Instant::now() >= deadline
        {
            break (missing, progress);
        }
        tokio::time::sleep(CREATE_POLL).await;
    };
    for f in &m.failed_nodes {
        missing.add(f.node.clone(), f.error.clone());
    }
    let mut v = manifest_json(&m);
    if let Some(o) = v.as_object_mut() {
        o.insert("progress".into(), progress);
    }
    let code = if m.status == SnapshotStatus::Creating {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((code, Json(missing.tag(v))))
}

/// A node's manifest answer without the `progress` the API adds to it.
fn without_progress(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("progress");
    }
    v
}

/// Longest a `?wait=true` creation is waited for at the hub; past it the
/// answer is the `creating` snapshot (202) and the caller polls. Copying
/// runs at disk speed, so ten minutes is tens of GB per worker.
const MAX_CREATE_WAIT: Duration = Duration::from_secs(600);

/// Pause between looks at the workers while waiting for a creation.
const CREATE_POLL: Duration = Duration::from_millis(200);

/// Each part's manifest from its worker (`GET /api/v1/snapshots/{id}`), the
/// summed creation progress, and — while the hub's manifest is `creating`
/// — its new state: once no reachable part is `creating`, parts that
/// failed move to `failed_nodes` and the snapshot is `ready` (at least one
/// part is) or `failed`. That is stored once every part has answered; with
/// a worker unreachable it is only answered, and looked at again next time.
async fn refresh(
    c: &Cluster,
    mut m: ClusterSnapshot,
    missing: &mut Missing,
) -> Result<(ClusterSnapshot, Vec<(Part, Value)>, Value), ApiError> {
    let answers = fan_parts(c, &m, |p| Req::get(part_path(p, "")), missing).await?;
    let mut sum = CreateProgress::default();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    for (_, v) in &answers {
        let p = &v["progress"];
        if p.is_object() {
            sum.segments_done += n(&p["segments_done"]);
            sum.segments_total += n(&p["segments_total"]);
            sum.bytes_done += n(&p["bytes_done"]);
            sum.bytes_total += n(&p["bytes_total"]);
        } else if v["status"] == "ready" {
            // Made by another process (or before a restart): complete.
            let files = v["nodes"].as_array().map_or(0, |a| {
                a.iter()
                    .map(|x| x["files"].as_array().map_or(0, Vec::len))
                    .sum::<usize>()
            });
            sum.segments_done += files as u64;
            sum.segments_total += files as u64;
            sum.bytes_done += n(&v["bytes"]);
            sum.bytes_total += n(&v["bytes"]);
        }
    }
    let creating = answers.iter().any(|(_, v)| v["status"] == "creating");
    if m.status == SnapshotStatus::Creating && !creating && !answers.is_empty() {
        let all_answered = answers.len() == m.nodes.len();
        for (p, v) in &answers {
            if v["status"] == "failed" {
                m.failed_nodes.push(FailedPart {
                    node: p.node.clone(),
                    worker: p.worker.clone(),
                    error: v["error"].as_str().unwrap_or("its part failed").to_owned(),
                });
                m.nodes.retain(|q| q.node != p.node);
            } else if let Some(q) = m.nodes.iter_mut().find(|q| q.node == p.node) {
                q.packets = n(&v["packets"]);
                q.bytes = n(&v["bytes"]);
            }
        }
        m.packets = m.nodes.iter().map(|p| p.packets).sum();
        m.bytes = m.nodes.iter().map(|p| p.bytes).sum();
        m.status = if m.nodes.is_empty() {
            SnapshotStatus::Failed
        } else {
            SnapshotStatus::Ready
        };
        if all_answered {
            let path = c.manifest_path(&m.id);
            let saved = m.clone();
            blocking(move || write_manifest(&path, &saved)).await?;
        }
    }
    let progress = crate::creations::progress_json(&sum, m.status != SnapshotStatus::Creating);
    Ok((m, answers, progress))
}

/// Each part's answer to the same request (`rest` after the part's
/// snapshot path); a missing part or worker goes to `missing`.
async fn fan_parts(
    c: &Cluster,
    m: &ClusterSnapshot,
    make: impl Fn(&Part) -> Req,
    missing: &mut Missing,
) -> Result<Vec<(Part, Value)>, ApiError> {
    let targets = part_workers(c, m, missing);
    let reqs = targets.iter().map(|(i, p)| (*i, make(p))).collect();
    let replies = c.fan(reqs).await;
    if let Some(e) = refusal(&replies) {
        return Err(e);
    }
    let mut out = Vec::new();
    for ((_, p), (_, r)) in targets.into_iter().zip(replies) {
        match r {
            Reply::Ok(v) => out.push((p.clone(), v)),
            Reply::Down(e) => missing.add(p.node.clone(), e),
            Reply::Refused(e) => missing.add(p.node.clone(), e.message),
        }
    }
    Ok(out)
}

async fn get_snapshot(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let (m, answers, progress) = refresh(c, m, &mut missing).await?;
    let states: Vec<Option<&str>> = answers
        .iter()
        .map(|(_, v)| v["dissection"].as_str())
        .collect();
    let dissection = if states.is_empty() {
        None
    } else if states.contains(&Some("failed")) {
        Some("failed")
    } else if states.contains(&Some("running")) {
        Some("running")
    } else if states.contains(&Some("cancelled")) {
        Some("cancelled")
    } else if states.iter().all(|s| *s == Some("done")) {
        Some("done")
    } else {
        None
    };
    let mut v = manifest_json(&m);
    if let Some(o) = v.as_object_mut() {
        o.insert("progress".into(), progress);
        o.insert("dissection".into(), json!(dissection));
        o.insert(
            "node_snapshots".into(),
            json!(
                answers
                    .iter()
                    .map(|(p, v)| json!({"node": p.node, "snapshot": v}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    Ok(Json(missing.tag(v)))
}

async fn delete_snapshot(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let mut m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let targets = part_workers(c, &m, &mut missing);
    let reqs = targets
        .iter()
        .map(|(i, p)| (*i, Req::delete(part_path(p, ""))))
        .collect();
    let replies = c.fan(reqs).await;
    let mut gone = BTreeSet::new();
    for ((_, p), (_, r)) in targets.iter().zip(&replies) {
        match r {
            Reply::Ok(_) => {
                gone.insert(p.node.clone());
            }
            Reply::Refused(e) if e.code == "not_found" => {
                gone.insert(p.node.clone());
            }
            Reply::Refused(e) => missing.add(p.node.clone(), e.message.clone()),
            Reply::Down(e) => missing.add(p.node.clone(), e.clone()),
        }
    }
    if gone.is_empty()
        && let Some(e) = refusal(&replies)
    {
        return Err(e);
    }
    m.nodes.retain(|p| !gone.contains(&p.node));
    let path = c.manifest_path(&m.id);
    let left = m.nodes.iter().map(|p| p.node.clone()).collect::<Vec<_>>();
    blocking(move || {
        if m.nodes.is_empty() {
            std::fs::remove_file(&path)
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))
        } else {
            // Parts on workers that did not answer stay listed, so that a
            // second delete can finish the job.
            write_manifest(&path, &m)
        }
    })
    .await?;
    Ok(Json(missing.tag(json!({
        "deleted": id,
        "complete": left.is_empty(),
        "remaining_nodes": left,
    }))))
}

/// Sums the nodes' dissection statuses into one.
fn aggregate_dissection(id: &str, answers: &[(Part, Value)], missing: &Missing) -> Value {
    let st: Vec<&str> = answers
        .iter()
        .map(|(_, v)| v["status"].as_str().unwrap_or("failed"))
        .collect();
    let status = if answers.is_empty() || st.contains(&"failed") {
        "failed"
    } else if st.contains(&"running") {
        "running"
    } else if st.contains(&"cancelled") {
        // One node's part without an index leaves the snapshot without one.
        "cancelled"
    } else {
        "done"
    };
    let phases: Vec<&str> = answers
        .iter()
        .map(|(_, v)| v["phase"].as_str().unwrap_or("done"))
        .collect();
    let phase = ["merging", "indexing"]
        .into_iter()
        .find(|p| phases.contains(p))
        .unwrap_or("done");
    let sum = |f: &dyn Fn(&Value) -> u64| answers.iter().map(|(_, v)| f(v)).sum::<u64>();
    let packets = sum(&|v| v["progress"]["packets"].as_u64().unwrap_or(0));
    let read = sum(&|v| v["progress"]["bytes_read"].as_u64().unwrap_or(0));
    let total = sum(&|v| v["progress"]["total_bytes"].as_u64().unwrap_or(0));
    let fraction = if status == "done" {
        1.0
    } else if total == 0 {
        0.0
    } else {
        (read as f64 / total as f64).min(1.0)
    };
    let mut by_protocol: BTreeMap<String, u64> = BTreeMap::new();
    for (_, v) in answers {
        if let Some(m) = v["counts"]["calls_by_protocol"].as_object() {
            for (k, n) in m {
                *by_protocol.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    let counts = (status == "done").then(|| {
        json!({
            "packets": sum(&|v| v["counts"]["packets"].as_u64().unwrap_or(0)),
            "calls": sum(&|v| v["counts"]["calls"].as_u64().unwrap_or(0)),
            "flows": sum(&|v| v["counts"]["flows"].as_u64().unwrap_or(0)),
            "calls_by_protocol": by_protocol,
        })
    });
    let errors: Vec<String> = answers
        .iter()
        .filter_map(|(p, v)| v["error"].as_str().map(|e| format!("{}: {e}", p.node)))
        .collect();
    let error = if answers.is_empty() {
        Some("no node of this snapshot answered".to_owned())
    } else {
        (!errors.is_empty()).then(|| errors.join("; "))
    };
    let mut v = json!({
        "snapshot_id": id,
        "status": status,
        "phase": phase,
        "progress": {
            "packets": packets,
            "bytes_read": read,
            "total_bytes": total,
            "fraction": fraction,
        },
        "nodes": answers.iter().map(|(p, v)| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert("node".into(), json!(p.node));
            }
            v
        }).collect::<Vec<_>>(),
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(c) = counts {
            o.insert("counts".into(), c);
        }
        if let Some(e) = error {
            o.insert("error".into(), json!(e));
        }
    }
    missing.tag(v)
}

async fn start_dissection(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = cluster_of(&hub)?;
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let answers = fan_parts(
        c,
        &m,
        |p| Req::post(part_path(p, "/dissection"), None),
        &mut missing,
    )
    .await?;
    let v = aggregate_dissection(&m.id, &answers, &missing);
    let code = if v["status"] == "running" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(v)))
}

/// Cancels the dissection on every node where it runs: 202 with the
/// aggregated status (nodes turn `cancelled` shortly), 409 `not_running`
/// when it runs on none. A node whose job already ended answers
/// `not_running` and keeps its state.
async fn cancel_dissection(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = cluster_of(&hub)?;
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let targets = part_workers(c, &m, &mut missing);
    let reqs = targets
        .iter()
        .map(|(i, p)| (*i, Req::delete(part_path(p, "/dissection"))))
        .collect();
    let replies = c.fan(reqs).await;
    let mut cancelled = 0usize;
    for ((_, p), (_, r)) in targets.iter().zip(replies) {
        match r {
            Reply::Ok(_) => cancelled += 1,
            // Not running there (ended, never started) or no part there.
            Reply::Refused(e) if matches!(e.code, "not_running" | "not_found") => {}
            Reply::Refused(e) => return Err(e),
            Reply::Down(e) => missing.add(p.node.clone(), e),
        }
    }
    if cancelled == 0 && missing.nodes.is_empty() {
        return Err(ApiError::conflict(
            "not_running",
            format!(
                "no dissection of snapshot {} runs on any node; nothing to cancel",
                m.id
            ),
        )
        .with_suggestion(format!(
            "GET /api/v1/snapshots/{}/dissection shows its state; POST it to start one",
            m.id
        )));
    }
    let answers = fan_parts(
        c,
        &m,
        |p| Req::get(part_path(p, "/dissection")),
        &mut missing,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(aggregate_dissection(&m.id, &answers, &missing)),
    ))
}

async fn dissection_status(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let answers = fan_parts(
        c,
        &m,
        |p| Req::get(part_path(p, "/dissection")),
        &mut missing,
    )
    .await?;
    Ok(Json(aggregate_dissection(&m.id, &answers, &missing)))
}

/// A hub list cursor: each node's offset into its own matches.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubCursor {
    /// Node → rows of its list already returned.
    o: BTreeMap<String, usize>,
}

fn encode_hub_cursor(c: &HubCursor) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_hub_cursor(s: &str) -> Result<HubCursor, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid cursor {:?}: pass the next_cursor of the previous page as it is",
            s.get(..40).unwrap_or(s)
        ))
    };
    if s.len() > MAX_CURSOR {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// How a merged list orders rows: by each key (descending when asked),
/// then by the tie-breakers.
#[derive(Clone, Debug)]
struct Order {
    /// (field name as rows carry it, descending, is a timestamp).
    keys: Vec<(String, bool, bool)>,
}

/// A JSON value's place in an order; timestamps (RFC 3339 strings) by
/// their instant, numbers by value, strings by bytes (as DataFusion sorts).
fn cmp_values(a: &Value, b: &Value, timestamp: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if timestamp
        && let (Some(x), Some(y)) = (a.as_str(), b.as_str())
        && let (Ok(x), Ok(y)) = (parse_time(x), parse_time(y))
    {
        return x.cmp(&y);
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let int = |n: &serde_json::Number| {
                n.as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
            };
            match (int(x), int(y)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => x
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&y.as_f64().unwrap_or(0.0)),
            }
        }
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

impl Order {
    fn cmp(
        &self,
        a: &Map<String, Value>,
        b: &Map<String, Value>,
        ties: &[&str],
    ) -> std::cmp::Ordering {
        for (k, desc, ts) in &self.keys {
            let o = cmp_values(
                a.get(k).unwrap_or(&Value::Null),
                b.get(k).unwrap_or(&Value::Null),
                *ts,
            );
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        for k in ties {
            let o = cmp_values(
                a.get(*k).unwrap_or(&Value::Null),
                b.get(*k).unwrap_or(&Value::Null),
                false,
            );
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }
}

/// Takes the first `limit` rows of the nodes' sorted lists in `order`:
/// returns them and how many came from each list.
fn merge_sorted(
    lists: Vec<Vec<Map<String, Value>>>,
    order: &Order,
    ties: &[&str],
    limit: usize,
) -> (Vec<Map<String, Value>>, Vec<usize>) {
    let mut taken = vec![0usize; lists.len()];
    let mut out = Vec::new();
    while out.len() < limit {
        // The smallest head of the lists; few lists, so a scan suffices.
        let mut best: Option<(usize, &Map<String, Value>)> = None;
        for (i, l) in lists.iter().enumerate() {
            let Some(row) = l.get(taken.get(i).copied().unwrap_or(usize::MAX)) else {
                continue;
            };
            if best.is_none_or(|(_, cur)| order.cmp(row, cur, ties).is_lt()) {
                best = Some((i, row));
            }
        }
        let Some((b, row)) = best else { break };
        out.push(row.clone());
        if let Some(t) = taken.get_mut(b) {
            *t += 1;
        }
    }
    (out, taken)
}

/// A call field by KFL name or alias.
fn call_field(name: &str) -> Option<&'static FieldDef> {
    call_fields()
        .iter()
        .find(|f| f.name == name || f.aliases.contains(&name))
}

/// One page of a merged list: each part asked for `limit` rows from its
/// offset, merged, the offsets advanced by what was taken.
struct MergedPage {
    rows: Vec<Map<String, Value>>,
    total: u64,
    next: Option<String>,
}

/// What a merged list is made of.
struct ListSpec<'a> {
    /// The key of the rows in a node's answer (`calls`, `flows`).
    rows_key: &'a str,
    order: Order,
    /// Keys after the order's, which make it total across nodes.
    ties: &'a [&'a str],
    limit: usize,
    cursor: Option<&'a str>,
}

async fn merged_page(
    c: &Cluster,
    m: &ClusterSnapshot,
    spec: &ListSpec<'_>,
    make: impl Fn(&Part, Option<String>) -> Req,
    missing: &mut Missing,
) -> Result<MergedPage, ApiError> {
    let rows_key = spec.rows_key;
    let mut pos = spec
        .cursor
        .map(decode_hub_cursor)
        .transpose()?
        .unwrap_or_default();
    let answers = fan_parts(
        c,
        m,
        |p| {
            let off = pos.o.get(&p.node).copied().unwrap_or(0);
            make(p, (off > 0).then(|| offset_cursor(off)))
        },
        missing,
    )
    .await?;
    let mut totals = Vec::new();
    let mut lists = Vec::new();
    for (p, v) in &answers {
        let mut rows: Vec<Map<String, Value>> = v[rows_key]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default();
        for r in &mut rows {
            r.entry("node").or_insert_with(|| json!(p.node));
        }
        totals.push(v["total"].as_u64().unwrap_or(0));
        lists.push(rows);
    }
    let (rows, taken) = merge_sorted(lists, &spec.order, spec.ties, spec.limit);
    let mut more = false;
    for (((p, _), n), total) in answers.iter().zip(&taken).zip(&totals) {
        let off = pos.o.entry(p.node.clone()).or_insert(0);
        *off += n;
        if (*off as u64) < *total {
            more = true;
        }
    }
    Ok(MergedPage {
        rows,
        total: totals.iter().sum(),
        next: more.then(|| encode_hub_cursor(&pos)),
    })
}

async fn list_calls(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<CallsQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let limit = check_limit(q.limit)?;
    let m = manifest_of(c, &id).await?;
    let mut keys = Vec::new();
    for s in split_list(q.sort.as_deref()) {
        let (name, desc) = match s.strip_prefix('-') {
            Some(n) => (n.to_owned(), true),
            None => (s, false),
        };
        // An unknown name is left for the workers to refuse with their
        // did-you-mean.
        let (name, ts) = call_field(&name).map_or((name.clone(), false), |f| {
            (f.name.to_owned(), f.ty == FieldType::Timestamp)
        });
        keys.push((name, desc, ts));
    }
    if keys.is_empty() {
        keys.push(("timestamp".to_owned(), false, true));
    }
    // The merge needs the sort keys and the id in every row: ask for them
    // and drop those the caller did not want.
    let asked = q.fields.as_deref().map(|f| split_list(Some(f)));
    let mut extra = Vec::new();
    let fields = asked.as_ref().map(|a| {
        let mut f = a.clone();
        let canon: Vec<String> = a
            .iter()
            .map(|n| call_field(n).map_or(n.clone(), |d| d.name.to_owned()))
            .collect();
        for k in keys.iter().map(|k| k.0.clone()).chain(["id".to_owned()]) {
            if !canon.contains(&k) && !f.contains(&k) {
                f.push(k.clone());
                extra.push(k);
            }
        }
        f.join(",")
    });
    let spec = ListSpec {
        rows_key: "calls",
        order: Order { keys },
        ties: &["id"],
        limit,
        cursor: q.cursor.as_deref(),
    };
    let mut missing = Missing::default();
    let page = merged_page(
        c,
        &m,
        &spec,
        |p, cursor| {
            Req::get(part_path(p, "/calls"))
                .q("filter", q.filter.clone())
                .q("limit", Some(limit.to_string()))
                .q("sort", q.sort.clone())
                .q("fields", fields.clone())
                .q("cursor", cursor)
        },
        &mut missing,
    )
    .await?;
    let mut rows = page.rows;
    for r in &mut rows {
        // Call ids already start with their node; rows carry no extra key.
        r.remove("node");
        for k in &extra {
            r.remove(k);
        }
    }
    Ok(Json(missing.tag(json!({
        "total": page.total,
        "returned": rows.len(),
        "truncated": page.next.is_some(),
        "next_cursor": page.next,
        "calls": rows,
    }))))
}

/// One call: its id starts with its node, whose worker has it.
async fn get_call(
    State(hub): State<Hub>,
    Path((id, call_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    check_call_id(&call_id)?;
    let m = manifest_of(c, &id).await?;
    let node = call_id.split('/').next().unwrap_or_default();
    let Some(p) = m.nodes.iter().find(|p| p.node == node) else {
        let have: Vec<&str> = m.nodes.iter().map(|p| p.node.as_str()).collect();
        return Err(ApiError::not_found(format!(
            "no node {node:?} in snapshot {id} (nodes: {}); call ids look like node/conn/index",
            have.join(", ")
        )));
    };
    let Some(i) = c.index_of_url(&p.worker) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_down",
            format!("node {node}'s worker {} is not one of this hub's", p.worker),
        ));
    };
    match c
        .send(i, &Req::get(part_path(p, &format!("/calls/{call_id}"))))
        .await
    {
        Reply::Ok(v) => Ok(Json(v)),
        Reply::Refused(e) => Err(e),
        Reply::Down(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_down",
            format!("node {node} does not answer: {e}"),
        )
        .with_suggestion("GET /api/v1/nodes shows which workers are up; try again when it is")),
    }
}

async fn stats(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let answers = fan_parts(
        c,
        &m,
        |p| {
            Req::get(part_path(p, "/stats"))
                .q("filter", q.filter.clone())
                .q("by", q.by.clone())
                .q("interval", q.interval.clone())
                .q("mergeable", Some("true"))
        },
        &mut missing,
    )
    .await?;
    let mut merged: Option<StatsResult> = None;
    merge_answers(
        answers,
        &mut missing,
        "stats",
        |r: StatsResult| match &mut merged {
            None => {
                merged = Some(r);
                Ok(())
            }
            Some(all) => all.merge(&r),
        },
    )?;
    let merged = merged.unwrap_or_else(|| StatsResult {
        by: split_list(q.by.as_deref()),
        interval_ns: None,
        groups: Vec::new(),
    });
    if q.mergeable {
        return Ok(Json(missing.tag(json!({ "mergeable": merged }))));
    }
    Ok(Json(missing.tag(api::stats_json(&merged))))
}

async fn list_flows(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<FlowsQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let limit = q.limit.unwrap_or(api::DEFAULT_FLOW_LIMIT);
    if limit == 0 || limit > api::MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit {limit} out of range: ask for 1 to {} flows",
            api::MAX_LIMIT
        )));
    }
    let m = manifest_of(c, &id).await?;
    let spec = ListSpec {
        rows_key: "flows",
        order: Order {
            keys: vec![("timestamp".to_owned(), false, true)],
        },
        ties: &["node", "conn_id"],
        limit,
        cursor: q.cursor.as_deref(),
    };
    let mut missing = Missing::default();
    let page = merged_page(
        c,
        &m,
        &spec,
        |p, cursor| {
            Req::get(part_path(p, "/flows"))
                .q("filter", q.filter.clone())
                .q("limit", Some(limit.to_string()))
                .q("cursor", cursor)
        },
        &mut missing,
    )
    .await?;
    Ok(Json(missing.tag(json!({
        "total": page.total,
        "returned": page.rows.len(),
        "truncated": page.next.is_some(),
        "next_cursor": page.next,
        "flows": page.rows,
    }))))
}

/// Adds each node's `mergeable` answer with `add` (histograms and
/// counters, exactly); a node whose answer has none is missing, not an
/// error for the whole request. Deserialised histograms resize as they
/// merge (`stats::histogram_b64`).
fn merge_answers<T: serde::de::DeserializeOwned>(
    answers: Vec<(Part, Value)>,
    missing: &mut Missing,
    what: &str,
    mut add: impl FnMut(T) -> Result<(), trawl_index::IndexError>,
) -> Result<(), ApiError> {
    for (p, mut v) in answers {
        match serde_json::from_value::<T>(v["mergeable"].take()) {
            Ok(r) => add(r).map_err(|e| ApiError::internal(e.to_string()))?,
            Err(e) => missing.add(
                p.node,
                format!("no mergeable {what} in its answer ({e}); is it an older trawl?"),
            ),
        }
    }
    Ok(())
}

async fn flow_stats(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<FlowStatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let by = api::flow_grouping(q.by.as_deref())?;
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let answers = fan_parts(
        c,
        &m,
        |p| {
            Req::get(part_path(p, "/flows/stats"))
                .q("filter", q.filter.clone())
                .q("by", q.by.clone())
                .q("mergeable", Some("true"))
        },
        &mut missing,
    )
    .await?;
    let mut merged = FlowStatsResult {
        by,
        ..FlowStatsResult::default()
    };
    merge_answers(answers, &mut missing, "flow stats", |r: FlowStatsResult| {
        merged.merge(&r)
    })?;
    if q.mergeable {
        return Ok(Json(missing.tag(json!({ "mergeable": merged }))));
    }
    Ok(Json(missing.tag(api::flow_stats_json(&merged))))
}

/// SQL on every node; rows concatenated with a `node` column. Aggregates
/// are per node: `count(*)` gives one row per node.
async fn sql(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let c = cluster_of(&hub)?;
    let req: SqlRequest = json_body(&body)?;
    if req.query.trim().is_empty() {
        return Err(ApiError::bad_request("give {\"query\": \"SELECT …\"}"));
    }
    let limit = req.limit.unwrap_or(api::MAX_SQL_ROWS);
    if limit == 0 || limit > api::MAX_SQL_ROWS {
        return Err(ApiError::bad_request(format!(
            "limit {limit} out of range: ask for 1 to {} rows",
            api::MAX_SQL_ROWS
        )));
    }
    let m = manifest_of(c, &id).await?;
    let mut missing = Missing::default();
    let answers = fan_parts(
        c,
        &m,
        |p| {
            Req::post(
                part_path(p, "/sql"),
                Some(json!({"query": req.query, "limit": limit})),
            )
        },
        &mut missing,
    )
    .await?;
    let mut columns = vec![json!("node")];
    if let Some(cols) = answers.first().and_then(|(_, v)| v["columns"].as_array()) {
        columns.extend(cols.iter().cloned());
    }
    let mut total = 0u64;
    let mut rows = Vec::new();
    for (p, v) in &answers {
        total += v["total"].as_u64().unwrap_or(0);
        for r in v["rows"].as_array().into_iter().flatten() {
            if rows.len() >= limit {
                break;
            }
            let mut row = Map::new();
            row.insert("node".into(), json!(p.node));
            if let Some(o) = r.as_object() {
                row.extend(o.clone());
            }
            rows.push(Value::Object(row));
        }
    }
    Ok(Json(missing.tag(json!({
        "columns": columns,
        "per_node": true,
        "total": total,
        "returned": rows.len(),
        "truncated": (rows.len() as u64) < total,
        "rows": rows,
    }))))
}

/// Each node's filtered export, spooled here, then merged in time order.
async fn pcap(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<PcapQuery>,
) -> Result<Response, ApiError> {
    let c = cluster_of(&hub)?;
    let format = api::export_format(&q)?;
    let m = export_manifest(c, &id, &q).await?;
    let spooled = spool_export(c, m, &q).await?;
    let opts = ExportOptions {
        format,
        ..ExportOptions::default()
    };
    let mut headers = HeaderMap::new();
    if !spooled.missing.nodes.is_empty() {
        let names: Vec<String> = spooled.missing.nodes.keys().cloned().collect();
        if let Ok(v) = HeaderValue::from_str(&names.join(",")) {
            headers.insert("x-trawl-missing-nodes", v);
        }
    }
    let files = spooled.files;
    api::export_response(spooled.snap, opts, &id, headers, move || {
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    })
    .await
}

/// A hub snapshot's manifest for an export, checked against `q` (format,
/// nodes) and narrowed to the nodes asked for.
pub(crate) async fn export_manifest(
    c: &Cluster,
    id: &str,
    q: &PcapQuery,
) -> Result<ClusterSnapshot, ApiError> {
    api::export_format(q)?;
    let mut m = manifest_of(c, id).await?;
    let wanted = split_list(q.nodes.as_deref());
    for n in &wanted {
        if !m.nodes.iter().any(|p| &p.node == n) {
            let have: Vec<&str> = m.nodes.iter().map(|p| p.node.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "node {n:?} is not in snapshot {id}; its nodes are: {}",
                have.join(", ")
            )));
        }
    }
    if !wanted.is_empty() {
        m.nodes.retain(|p| wanted.contains(&p.node));
    }
    Ok(m)
}

/// The nodes' exports spooled on the hub's disk, as a snapshot that
/// `trawl_rawstore::export` merges in time order; `files` are deleted by
/// the caller once merged.
pub(crate) struct Spooled {
    pub(crate) snap: Snapshot,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) missing: Missing,
}

/// Downloads every part's filtered pcap (a worker that is down is left
/// out and named in `missing`; a worker's 4xx fails the export).
pub(crate) async fn spool_export(
    c: &Cluster,
    m: ClusterSnapshot,
    q: &PcapQuery,
) -> Result<Spooled, ApiError> {
    let id = m.id.clone();
    let spool = c.data_dir.join(SPOOL_DIR);
    tokio::fs::create_dir_all(&spool)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", spool.display())))?;
    let mut missing = Missing::default();
    let targets = part_workers(c, &m, &mut missing);
    let stamp = now_ns();
    let downloads = targets.iter().map(|(i, p)| {
        let file = spool.join(format!("{id}-{}-{stamp}.pcap", p.node));
        let req = Req::get(part_path(p, "/pcap"))
            .q("from", q.from.clone())
            .q("to", q.to.clone())
            .q("filter", q.filter.clone())
            .q("format", Some("pcap"));
        async move {
            let r = spool_pcap(c, *i, &req, &file).await;
            (file, r)
        }
    });
    let results = futures::future::join_all(downloads).await;
    let mut files = Vec::new();
    let mut inputs = Vec::new();
    for ((_, p), (file, r)) in targets.iter().zip(results) {
        match r {
            Ok(Some(link)) => {
                inputs.push(SnapshotNode {
                    node: p.node.clone(),
                    packets: 1,
                    bytes: 0,
                    oldest_ts: None,
                    newest_ts: None,
                    files: vec![SnapshotFile {
                        path: file
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        link,
                        packets: 1,
                        bytes: 0,
                        min_ts: i64::MIN,
                        max_ts: i64::MAX,
                    }],
                });
                files.push(file);
            }
            Ok(None) => files.push(file),
            Err(SpoolError::Down(e)) => {
                let _ = tokio::fs::remove_file(&file).await;
                missing.add(p.node.clone(), e);
            }
            Err(SpoolError::Refused(e)) => {
                for f in files.iter().chain([&file]) {
                    let _ = tokio::fs::remove_file(f).await;
                }
                return Err(e);
            }
        }
    }
    let snap = Snapshot {
        dir: spool,
        manifest: SnapshotManifest {
            format: MANIFEST_FORMAT,
            id: m.id.clone(),
            name: m.name.clone(),
            status: SnapshotStatus::Ready,
            window: m.window,
            created_ns: m.created_ns,
            created: m.created.clone(),
            source: "cluster".into(),
            packets: 0,
            bytes: 0,
            nodes: inputs,
            warnings: Vec::new(),
            error: None,
        },
    };
    Ok(Spooled {
        snap,
        files,
        missing,
    })
}

enum SpoolError {
    Down(String),
    Refused(ApiError),
}

/// Downloads one worker's pcap export into `file`; returns its link type
/// (`None` for an empty answer without a header).
async fn spool_pcap(
    c: &Cluster,
    i: usize,
    req: &Req,
    file: &FsPath,
) -> Result<Option<u32>, SpoolError> {
    use tokio::io::AsyncWriteExt as _;
    let Some(w) = c.workers.get(i) else {
        return Err(SpoolError::Down("no such worker".into()));
    };
    // No overall timeout: an export streams for as long as it is large;
    // the connection timeout still catches a dead worker.
    let mut rb = c
        .http
        .get(format!("{}{}", w.url, req.path))
        .query(&req.query);
    if let Some(t) = &c.token {
        rb = rb.bearer_auth(t);
    }
    let mut r = rb
        .send()
        .await
        .map_err(|e| SpoolError::Down(describe(&e)))?;
    let status = r.status();
    if !status.is_success() {
        let v = read_json(r).await.unwrap_or(Value::Null);
        return Err(if status.is_server_error() {
            SpoolError::Down(format!("HTTP {}", status.as_u16()))
        } else {
            SpoolError::Refused(worker_error(status, &v))
        });
    }
    let io = |e: std::io::Error| SpoolError::Down(format!("{}: {e}", file.display()));
    let mut out = tokio::fs::File::create(file).await.map_err(io)?;
    let mut head = Vec::with_capacity(PCAP_HEADER);
    loop {
        match r.chunk().await {
            Ok(Some(chunk)) => {
                if head.len() < PCAP_HEADER {
                    let need = PCAP_HEADER - head.len();
                    head.extend_from_slice(chunk.get(..need.min(chunk.len())).unwrap_or_default());
                }
                out.write_all(&chunk).await.map_err(io)?;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(SpoolError::Down(format!(
                    "the export stopped: {}",
                    describe(&e)
                )));
            }
        }
    }
    out.flush().await.map_err(io)?;
    Ok(pcap_link(&head))
}

/// Bytes of a pcap file header.
const PCAP_HEADER: usize = 24;

/// The link type of a little-endian pcap header (what trawl writes).
fn pcap_link(head: &[u8]) -> Option<u32> {
    let b: [u8; 4] = head.get(20..24)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: &str, id: &str) -> Map<String, Value> {
        json!({"timestamp": ts, "id": id})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn merge_follows_time_then_id_and_counts_what_it_took() {
        let order = Order {
            keys: vec![("timestamp".into(), false, true)],
        };
        let a = vec![
            row("2026-01-01T00:00:00Z", "a/1/0"),
            row("2026-01-01T00:00:00.5Z", "a/2/0"),
            row("2026-01-01T00:00:02Z", "a/3/0"),
        ];
        // Fewer fractional digits must not sort after more (as text would).
        let b = vec![
            row("2026-01-01T00:00:00.25Z", "b/1/0"),
            row("2026-01-01T00:00:00.5Z", "b/2/0"),
            row("2026-01-01T00:00:01Z", "b/3/0"),
        ];
        let (rows, taken) = merge_sorted(vec![a, b], &order, &["id"], 4);
        let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a/1/0", "b/1/0", "a/2/0", "b/2/0"]);
        assert_eq!(taken, [2, 2]);
        let desc = Order {
            keys: vec![("timestamp".into(), true, true)],
        };
        let (rows, _) = merge_sorted(
            vec![
                vec![row("2026-01-01T00:00:02Z", "a/3/0")],
                vec![row("2026-01-01T00:00:03Z", "b/9/0")],
            ],
            &desc,
            &["id"],
            1,
        );
        assert_eq!(rows[0]["id"], "b/9/0");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_400() {
        let mut c = HubCursor::default();
        c.o.insert("node-a".into(), 10);
        c.o.insert("node-b".into(), 0);
        assert_eq!(decode_hub_cursor(&encode_hub_cursor(&c)).unwrap(), c);
        let e = decode_hub_cursor("!!!").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(decode_hub_cursor(&"A".repeat(MAX_CURSOR + 1)).is_err());
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(cmp_values(&json!(9), &json!(10), false).is_lt());
        assert!(cmp_values(&json!(u64::MAX), &json!(-1), false).is_gt());
        assert!(cmp_values(&json!(1.5), &json!(1), false).is_gt());
        assert!(cmp_values(&json!("b"), &json!("a"), false).is_gt());
    }

    #[test]
    fn a_worker_error_keeps_its_code_position_and_suggestion() {
        let v = json!({"error": {"code": "bad_filter", "message": "m", "suggestion": "s",
            "position": {"line": 1, "column": 9, "start": 8, "end": 12}}});
        let e = worker_error(reqwest::StatusCode::BAD_REQUEST, &v);
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "bad_filter"));
        assert_eq!(e.position.unwrap().column, 9);
        assert_eq!(e.suggestion.as_deref(), Some("s"));
        let e = worker_error(
            reqwest::StatusCode::CONFLICT,
            &json!({"error": {"code": "odd"}}),
        );
        assert_eq!(e.code, "worker_error");
    }

    #[test]
    fn the_hub_serves_every_path_of_the_node_api() {
        let node: BTreeSet<String> = api::routes()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let hub: Vec<String> = routes()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(hub.len(), node.len(), "a route is listed twice");
        assert_eq!(hub.into_iter().collect::<BTreeSet<_>>(), node);
    }

    #[test]
    fn worker_urls_are_checked() {
        let dir = std::path::Path::new("/nonexistent");
        let cfg = |w: &[&str]| ClusterConfig {
            workers: w.iter().map(|s| (*s).to_owned()).collect(),
            ..ClusterConfig::default()
        };
        assert!(Cluster::new(cfg(&[]), dir).is_err());
        assert!(Cluster::new(cfg(&["10.0.0.1:9900"]), dir).is_err());
        assert!(Cluster::new(cfg(&["http://a:1", "http://a:1/"]), dir).is_err());
        let c = Cluster::new(cfg(&["http://a:1/", "http://b:2"]), dir).unwrap();
        assert_eq!(c.url(0), "http://a:1");
        assert_eq!(c.label(1), "http://b:2");
    }

    #[test]
    fn pcap_link_is_read_from_the_header() {
        let mut h = vec![0u8; 24];
        h[20] = 1;
        assert_eq!(pcap_link(&h), Some(1));
        assert_eq!(pcap_link(&h[..10]), None);
    }
}
