//! trawl's analyses over an index directory (the directories `trawl index`
//! writes and the hub keeps at `snapshots/<id>/index/`): the answers an
//! engineer or an agent wants first when something is wrong, each backed
//! by the calls and flows that show it.
//!
//! - [`analyze_service`]: a service's health — calls, latency, TCP connect
//!   time, status mix, endpoints by errors and latency, callers, callees;
//! - [`find_anomalies`]: error bursts, latency change points, retry storms,
//!   connection churn, resets, pool exhaustion and DNS failures;
//! - [`explain_errors`]: for failing calls, what the serving workloads were
//!   waiting on downstream, inferred timeouts, a causal chain and a
//!   timeline.
//!
//! Everything is synchronous (DataFusion runs on a runtime of its own, as in
//! `trawl_index::kfl::query`) and bounded: at most [`MAX_ROWS`] calls and
//! flows are read per analysis, at most `limit` findings come back, each
//! with at most [`MAX_EVIDENCE_IDS`] ids and the KFL (or flows SQL) that
//! reproduces it. Called by `trawl analyze|anomalies|explain` (crates/cli),
//! the hub's `/insights/*` routes and, through them, the MCP tools.

mod anomalies;
mod explain;
mod load;
mod service;
mod util;

use std::path::Path;

use serde::{Deserialize, Serialize};
use trawl_index::IndexError;
use trawl_index::kfl::KflQueryError;

pub use anomalies::find_anomalies;
pub use explain::explain_errors;
pub use service::analyze_service;
/// A duration in µs as the summaries write it (`850 µs`, `212 ms`, `4.20 s`).
pub use util::dur as format_duration_us;

/// Findings (endpoints, callers, …) returned when the caller gives no
/// limit: about a screen, and a few thousand tokens for a model.
pub const DEFAULT_LIMIT: usize = 20;

/// Most findings one answer may ask for: past this, a caller should narrow
/// the scope (a KFL filter, a window) rather than read more.
pub const MAX_LIMIT: usize = 200;

/// Call or flow ids cited per finding: enough to open a few examples; the
/// finding's `kfl` finds all of them.
pub const MAX_EVIDENCE_IDS: usize = 10;

/// Most calls (and, separately, flows) one analysis reads into memory,
/// about 300 bytes each: 2 M rows is well under a GB, and hours of a busy
/// service. A larger window is analysed up to this many rows (the earliest
/// ones, as they come from the index) and the answer says so (`truncated`).
pub const MAX_ROWS: usize = 2_000_000;

/// What can go wrong: the caller's input (a KFL filter, a time, a limit)
/// or the index.
#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    /// The KFL filter does not compile, or the index cannot be read.
    #[error(transparent)]
    Query(#[from] KflQueryError),
    /// A parameter other than the filter is wrong; the message says which
    /// and how to fix it.
    #[error("{0}")]
    BadInput(String),
}

impl From<IndexError> for InsightsError {
    fn from(e: IndexError) -> Self {
        InsightsError::Query(KflQueryError::Index(e))
    }
}

impl From<datafusion::error::DataFusionError> for InsightsError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        InsightsError::Query(KflQueryError::from(e))
    }
}

/// A time window `[from, to)`; either side may be open. RFC 3339 text in
/// queries (`2026-11-28T22:18:30Z`), nanoseconds here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
}

impl TimeRange {
    /// Parses optional RFC 3339 bounds; a bad one is [`InsightsError::BadInput`].
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<TimeRange, InsightsError> {
        let one = |name: &str, v: Option<&str>| -> Result<Option<i64>, InsightsError> {
            let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            let ts: jiff::Timestamp = v.parse().map_err(|e| {
                InsightsError::BadInput(format!(
                    "{name} {v:?} is not an RFC 3339 time ({e}); write e.g. 2026-11-28T22:18:30Z"
                ))
            })?;
            Ok(Some(i64::try_from(ts.as_nanosecond()).map_err(|_| {
                InsightsError::BadInput(format!("{name} {v:?} is out of range"))
            })?))
        };
        let r = TimeRange {
            from_ns: one("from", from)?,
            to_ns: one("to", to)?,
        };
        if let (Some(f), Some(t)) = (r.from_ns, r.to_ns)
            && f >= t
        {
            return Err(InsightsError::BadInput(format!(
                "from ({}) is not before to ({}); swap them",
                from.unwrap_or_default(),
                to.unwrap_or_default()
            )));
        }
        Ok(r)
    }
}

/// Checks a caller's limit: `None` is [`DEFAULT_LIMIT`].
pub fn check_limit(limit: Option<usize>) -> Result<usize, InsightsError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(InsightsError::BadInput(format!(
            "limit {n} out of range: ask for 1 to {MAX_LIMIT} findings"
        ))),
    }
}

/// The question of [`analyze_service`].
#[derive(Clone, Debug, Default)]
pub struct ServiceQuery {
    /// Matches `dst.service.name`, else `dst.name` (pod or DNS name), else
    /// `dst.dns` or `dst.ip` (`src.*` for callees).
    pub service: String,
    /// Window start and end (exclusive), RFC 3339; `None`: open.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Endpoints, callers and callees each; `None` is [`DEFAULT_LIMIT`].
    pub limit: Option<usize>,
}

/// The question of [`find_anomalies`].
#[derive(Clone, Debug, Default)]
pub struct AnomalyQuery {
    /// KFL over calls; empty looks at every call.
    pub scope: String,
    /// Window start and end (exclusive), RFC 3339; `None`: open.
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
}

/// The question of [`explain_errors`].
#[derive(Clone, Debug, Default)]
pub struct ExplainQuery {
    /// KFL over calls selecting the failing calls (e.g.
    /// `path == "/api/v1/checkout" && status_code == 503`); of the calls it
    /// matches, those that failed (5xx, or no response) are explained.
    pub kfl: String,
    pub limit: Option<usize>,
}

/// The calls and flows behind a finding, and how to find all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// A KFL filter over calls that selects the calls behind the finding
    /// (`trawl query DIR KFL`); empty when the evidence is flows only.
    pub kfl: String,
    /// An SQL condition over the `flows` table
    /// (`SELECT * FROM flows WHERE …`), when flows are the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows_where: Option<String>,
    /// Up to [`MAX_EVIDENCE_IDS`] call ids (`node/conn/index`).
    pub call_ids: Vec<String>,
    /// Up to [`MAX_EVIDENCE_IDS`] flow ids (`node/conn_id`).
    pub flow_ids: Vec<String>,
    /// How many calls (or flows) are behind the finding in all.
    pub total: u64,
}

/// `[from, to]` as RFC 3339 with microseconds; empty when unknown.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpConnect {
    pub p50: u64,
    pub p95: u64,
    /// Connections with a measured handshake.
    pub samples: u64,
}

/// Calls by outcome. HTTP and gRPC-over-HTTP by status class; other
/// protocols count as `2xx` when answered without an error code. `failed`:
/// no response (timeouts, resets) or a non-HTTP error (a DNS rcode, …).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusMix {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    pub failed: u64,
}

/// One endpoint a service serves (paths with ids folded: `/carts/{id}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointHealth {
    pub method: String,
    pub path: String,
    pub calls: u64,
    /// 5xx and failed calls.
    pub errors: u64,
    pub error_rate: f64,
    /// 5xx responses by status code (`{"503": 12}`).
    pub status_5xx: std::collections::BTreeMap<String, u64>,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub evidence: Evidence,
}

/// A caller of the service, or a callee it calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p95_us: u64,
}

/// The answer of [`analyze_service`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    pub service: String,
    /// The window asked for, else the first and last call seen.
    pub window: Window,
    /// Calls the service served (as the server).
    pub calls: u64,
    /// Over answered calls (unanswered ones have no latency).
    pub latency_us: Latency,
    /// Handshake RTT of connections to the service (flows table).
    pub tcp_connect_us: TcpConnect,
    pub status: StatusMix,
    pub share_2xx: f64,
    /// Top endpoints by errors, then by p95.
    pub endpoints: Vec<EndpointHealth>,
    pub callers: Vec<Peer>,
    pub callees: Vec<Peer>,
    pub summary: String,
    /// True when a list was cut to the limit or the window held more than
    /// [`MAX_ROWS`] calls.
    pub truncated: bool,
}

/// Who a finding is about; absent parts are not part of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One anomaly. `kind` is one of [`KINDS`]; `metrics` holds the numbers
/// of that kind (documented there).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    pub title: String,
    pub summary: String,
    /// First and last occurrence, RFC 3339 with microseconds.
    pub first: String,
    pub last: String,
    pub subject: Subject,
    pub metrics: serde_json::Map<String, serde_json::Value>,
    pub evidence: Evidence,
}

/// The kinds of [`Finding`], and the metrics each carries:
///
/// - `error_burst`: 5xx or failed calls clustered in time per server and
///   endpoint — `count`, `calls`, `share`, `status` (`{"503": n}`);
/// - `latency_shift`: a change point of a server endpoint's latency —
///   `at`, `before_p50_us`, `after_p50_us`, `factor`, `before_calls`,
///   `after_calls`;
/// - `retry_storm`: one client trying the same method and path again
///   within `window_ms` of a failed try, 3 or more tries in a row —
///   `bursts`, `max_tries`, `window_ms`, `tries`;
/// - `connection_churn`: new TCP connections per minute to a server with
///   few calls each — `new_per_minute`, `peak_per_minute`,
///   `calls_per_connection`, `connections`;
/// - `resets`: connections closed by RST per client and server —
///   `count`, `first`, `connections`, `reset_by`;
/// - `pool_exhaustion`: fast 5xx (far below the endpoint's usual latency)
///   beside slow failures — `fast_failures`, `fast_p50_us`,
///   `usual_p50_us`, `slow_failures`;
/// - `dns_failures`: failed look-ups (a client's A/AAAA queries and
///   search-domain walk for one name, grouped) per name and failure
///   (NXDOMAIN, SERVFAIL, `no answer`) — `count` (look-ups), `queries`,
///   `rcode`, `name`.
pub const KINDS: &[&str] = &[
    "error_burst",
    "latency_shift",
    "retry_storm",
    "connection_churn",
    "resets",
    "pool_exhaustion",
    "dns_failures",
];

/// The answer of [`find_anomalies`]: the findings, most severe first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Anomalies {
    pub findings: Vec<Finding>,
    /// More findings than the limit (or more rows than [`MAX_ROWS`]).
    pub truncated: bool,
    /// Calls and flows looked at.
    pub calls_analyzed: u64,
    pub flows_analyzed: u64,
    pub summary: String,
}

/// Calls of a failing set per server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerCount {
    pub name: String,
    pub calls: u64,
}

/// A timeout inferred from clustered elapsed times of unanswered calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeout {
    /// The client that gives up.
    pub service: String,
    /// The server it waits on.
    pub callee: String,
    pub timeout_ms: u64,
    /// Unanswered (or reset) calls that ended at that duration ±2%.
    pub count: u64,
    pub evidence: Evidence,
}

/// One link of a causal chain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainLink {
    pub service: String,
    /// `METHOD /path` (ids folded).
    pub endpoint: String,
    /// `failing`, `waits on` or `root cause`.
    pub role: String,
    pub detail: String,
    pub evidence: Evidence,
}

/// One event of a timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub time: String,
    /// `latency_shift`, `timeout`, `failing_call`, `pool_exhaustion`,
    /// `resets`, `dns_failure`.
    pub kind: String,
    pub event: String,
    pub evidence: Evidence,
}

/// The answer of [`explain_errors`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub kfl: String,
    pub failing_calls: u64,
    pub servers: Vec<ServerCount>,
    pub timeouts: Vec<Timeout>,
    /// From the failing service down, the root cause last.
    pub chain: Vec<ChainLink>,
    /// In time order.
    pub timeline: Vec<TimelineEvent>,
    pub summary: String,
    pub truncated: bool,
}

/// The index in `dir` exists (a manifest), before anything is read.
fn check_index(dir: &Path) -> Result<(), InsightsError> {
    trawl_index::open_index(dir)?;
    Ok(())
}

/// Small hand-built indexes for the analyses' tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::net::IpAddr;

    use trawl_model::{Call, Endpoint, NamedRef, Protocol};

    /// The test clock's start: 2026-01-01T00:00:00Z.
    pub const T0: i64 = 1_767_225_600_000_000_000;
    pub const MS: i64 = 1_000_000;

    /// An endpoint named by a service (or, with `external`, a plain name).
    pub fn ep(ip: &str, port: u16, name: &str, external: bool) -> Endpoint {
        let mut e = Endpoint::new(ip.parse::<IpAddr>().unwrap(), port);
        e.name = name.to_owned();
        if !external {
            e.service = NamedRef {
                name: name.to_owned(),
                namespace: "shop".into(),
            };
        }
        e
    }

    /// Builds calls with distinct ids, one connection each.
    #[derive(Default)]
    pub struct Calls {
        pub calls: Vec<Call>,
    }

    impl Calls {
        #[allow(clippy::too_many_arguments)]
        pub fn http(
            &mut self,
            at_ms: i64,
            took_ms: i64,
            src: &Endpoint,
            dst: &Endpoint,
            method: &str,
            path: &str,
            status: i32,
        ) {
            let n = self.calls.len() as u64;
            let answered = status != 0;
            self.calls.push(Call {
                id: format!("t/{n}/0"),
                node: "t".into(),
                conn_id: n,
                timestamp: T0 + at_ms * MS,
                elapsed_time: if answered { took_ms * 1000 } else { 0 },
                protocol: Some(Protocol::Http),
                src: src.clone(),
                dst: dst.clone(),
                method: method.into(),
                path: path.into(),
                status_code: status,
                has_request: true,
                has_response: answered,
                ..Call::default()
            });
        }

        pub fn dns(&mut self, at_ms: i64, src: &Endpoint, dst: &Endpoint, name: &str, rcode: i32) {
            self.dns_q(at_ms * 1000, src, dst, name, "A", rcode);
        }

        /// A DNS query of type `qtype` at `at_us` µs, answered in 300 µs.
        pub fn dns_q(
            &mut self,
            at_us: i64,
            src: &Endpoint,
            dst: &Endpoint,
            name: &str,
            qtype: &str,
            rcode: i32,
        ) {
            let n = self.calls.len() as u64;
            self.calls.push(Call {
                id: format!("t/{n}/0"),
                node: "t".into(),
                conn_id: n,
                timestamp: T0 + at_us * 1000,
                elapsed_time: 300,
                protocol: Some(Protocol::Dns),
                src: src.clone(),
                dst: dst.clone(),
                method: "QUERY".into(),
                path: name.into(),
                status_code: rcode,
                has_request: true,
                has_response: true,
                dns_questions: vec![name.into()],
                dns_question_types: vec![qtype.into()],
                dns_request: true,
                dns_response: true,
                ..Call::default()
            });
        }

        /// Writes the index (calls in time order) under `dir/idx`.
        pub fn index(mut self, dir: &std::path::Path) -> std::path::PathBuf {
            self.calls.sort_by_key(|c| c.timestamp);
            let out = dir.join("idx");
            trawl_index::indexer::index_calls(self.calls.into_iter(), &out, "test", false).unwrap();
            out
        }
    }

    /// The checkout shop of the tests: every 500 ms for 60 s, loadgen →
    /// frontend `POST /api/v1/checkout` → payment `POST /v1/pay` → gateway
    /// `POST /v1/charges`. The gateway takes 200 ms, then from T0+30 s
    /// 4 s; from then on every third payment answers 503 (at 4.01 s) and
    /// frontend passes it on. From T0+40 s, a cart client tries
    /// `POST /api/v1/cart` three times 20 ms apart, each failing fast,
    /// every 2 s (5 storms). DNS: a search walk that resolves, and a name
    /// that never does (5 NXDOMAIN).
    pub fn shop(dir: &std::path::Path) -> std::path::PathBuf {
        let load = ep("10.0.0.9", 40000, "loadgen", false);
        let front = ep("10.0.0.1", 8080, "frontend", false);
        let pay = ep("10.0.0.2", 8080, "payment", false);
        let gw = ep("203.0.113.10", 80, "gateway", true);
        let cart = ep("10.0.0.5", 41000, "cart", false);
        let dns = ep("10.0.0.53", 53, "kube-dns", false);
        let mut c = Calls::default();
        for i in 0..120i64 {
            let t = i * 500;
            let slow = t >= 30_000;
            let gw_ms = if slow { 4_000 } else { 200 };
            let fail = slow && i % 3 == 0;
            c.http(t + 2, gw_ms, &pay, &gw, "POST", "/v1/charges", 201);
            c.http(
                t + 1,
                gw_ms + 10,
                &front,
                &pay,
                "POST",
                "/v1/pay",
                if fail { 503 } else { 201 },
            );
            c.http(
                t,
                gw_ms + 20,
                &load,
                &front,
                "POST",
                "/api/v1/checkout",
                if fail { 503 } else { 200 },
            );
            // Browsing, unaffected.
            c.http(
                t + 100,
                30,
                &load,
                &front,
                "GET",
                &format!("/api/v1/products/{}", 1000 + i),
                200,
            );
        }
        for k in 0..5i64 {
            let t = 40_000 + k * 2_000;
            for a in 0..3 {
                c.http(t + a * 30, 10, &cart, &front, "POST", "/api/v1/cart", 503);
            }
        }
        for k in 0..5i64 {
            c.dns(
                k * 7_000,
                &pay,
                &dns,
                "gw.example.shop.svc.cluster.local",
                3,
            );
            c.dns(k * 7_000 + 1, &pay, &dns, "gw.example", 0);
            c.dns(k * 7_000 + 500, &pay, &dns, "missing.example", 3);
        }
        c.index(dir)
    }
}
