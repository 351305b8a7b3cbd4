//! The routes of the API and their handlers. [`routes`] is the one list of
//! (method, path, handler): the router is built from it and nothing else,
//! and a test checks that `openapi.yaml` documents exactly these routes.
//!
//! Handlers validate their input, then do the disk and DataFusion work on
//! a blocking thread ([`blocking`]); answers are JSON, errors the one shape
//! of [`crate::error`]. Lists are bounded (`limit`, with a named maximum)
//! and paginated with an opaque `cursor`. Snapshot creation is a job
//! ([`crate::creations`]): answered once the id is claimed, copied in the
//! background. PCAP export is a streaming `GET` (an error found before the
//! first byte is a JSON error) or a job ([`crate::exports`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use trawl_capture::compile_filter;
use trawl_capture::filter::bpf::{self, Ancillary};
use trawl_index::flow_stats::{FlowGroupStats, FlowGrouping, FlowStatsResult};
use trawl_index::kfl::{MAX_QUERY_LIMIT, QueryOptions, query};
use trawl_index::schema::payload_ref_at;
use trawl_index::stats::{StatsOptions, stats};
use trawl_index::{MANIFEST_FILE, read_payload, run_sql};
use trawl_model::catalogue::{FLOW_FIELDS, FieldDef, call_fields};
use trawl_model::time::rfc3339_micros;
use trawl_packet::capfile::MAX_CAPLEN;
use trawl_packet::{LinkType, RawPacket};
use trawl_rawstore::snapshot::begin_snapshot;
use trawl_rawstore::{
    Boundaries, ExportFormat, ExportOptions, PacketFilter, Snapshot, SnapshotManifest,
    SnapshotRequest, delete_snapshot, export, get_snapshot, list_nodes, list_snapshots,
    parse_duration, parse_time, parse_window, read_node_dir,
};

use crate::Hub;
use crate::error::{ApiError, not_dissected};
use crate::jobs::index_dir;

/// Calls per page when the caller gives no `limit`: a screenful for a
/// person, a modest context for a model.
pub const DEFAULT_LIMIT: usize = 50;

/// Most calls one page returns. Each call is a few KB of JSON; 10 000 is
/// tens of MB, past which a caller should aggregate (`/stats`, `/sql`)
/// rather than page.
pub const MAX_LIMIT: usize = 10_000;

/// Most rows a SQL answer returns; more are cut and flagged `truncated`.
/// Same reasoning as [`MAX_LIMIT`].
pub const MAX_SQL_ROWS: usize = 10_000;

/// Most snapshots one list page returns.
pub const MAX_SNAPSHOT_PAGE: usize = 1_000;

/// Most body bytes returned per payload in one call's detail. Indexing
/// keeps 64 KiB per body by default; a store built with a larger cap (up
/// to 16 MiB) is cut here so that one answer stays small, with the full
/// kept size stated.
pub const MAX_BODY_RETURNED: usize = 1 << 20;

/// Longest call id accepted: `node/conn/index` with a node name of at most
/// 64 bytes and two decimal numbers fits well inside.
const MAX_CALL_ID: usize = 256;

/// Longest wait for the capture loop to flush before a snapshot: its poll
/// timeout is 200 ms, so this only trips when it is stuck on a slow disk.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Export chunks queued between the exporting thread and the response: a
/// few MB in flight, so a slow client slows the export instead of filling
/// memory.
const EXPORT_QUEUE: usize = 4;

/// One route: method, path (axum syntax) and handler.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub(crate) handler: MethodRouter<Hub>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Every route of the API, in one place.
pub fn routes() -> Vec<Route> {
    let r = |method, path, handler| Route {
        method,
        path,
        handler,
    };
    vec![
        r("GET", "/api/v1/health", get(health)),
        r("GET", "/api/v1/boundaries", get(boundaries)),
        r("GET", "/api/v1/nodes", get(nodes)),
        r("GET", "/api/v1/fields", get(fields)),
        r("GET", "/api/v1/snapshots", get(list_snapshots_h)),
        r("POST", "/api/v1/snapshots", post(create_snapshot_h)),
        r("GET", "/api/v1/snapshots/{id}", get(get_snapshot_h)),
        r(
            "DELETE",
            "/api/v1/snapshots/{id}",
            delete(delete_snapshot_h),
        ),
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
        r("GET", "/api/v1/snapshots/{id}/stats", get(get_stats)),
        r("GET", "/api/v1/snapshots/{id}/flows", get(list_flows)),
        r(
            "GET",
            "/api/v1/snapshots/{id}/flows/stats",
            get(get_flow_stats),
        ),
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
        r(
            "GET",
            "/api/v1/snapshots/{id}/insights/service",
            get(crate::insights::service),
        ),
        r(
            "GET",
            "/api/v1/snapshots/{id}/insights/anomalies",
            get(crate::insights::anomalies),
        ),
        r(
            "GET",
            "/api/v1/snapshots/{id}/insights/explain",
            get(crate::insights::explain),
        ),
    ]
}

/// The router of [`routes`], with the bearer-token check and a JSON 404,
/// plus MCP at `/mcp` over those routes ([`crate::mcp::mount`]). A
/// cluster hub serves the same paths with the fan-out handlers of
/// [`crate::cluster::routes`] instead.
pub fn router(hub: Hub) -> Router {
    let mut router = Router::new();
    let list = if hub.cluster().is_some() {
        crate::cluster::routes()
    } else {
        routes()
    };
    for r in list {
        router = router.route(r.path, r.handler);
    }
    let rest = router
        .fallback(|| async {
            ApiError::not_found("no such route")
                .with_suggestion("the API is under /api/v1; see openapi.yaml")
        })
        .layer(middleware::from_fn_with_state(hub.clone(), authorize))
        .with_state(hub.clone());
    crate::mcp::mount(rest, &hub)
}

/// Refuses requests without the configured bearer token.
async fn authorize(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    if let Some(token) = hub.config().token.as_deref() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this API needs `Authorization: Bearer TOKEN` with the token the server was started with",
            )
            .with_suggestion("pass --token TOKEN or set TRAWL_TOKEN")
            .into_response();
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so the time taken does not tell how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs disk or DataFusion work off the runtime's workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a worker thread failed: {e}")))?
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(crate) fn data_dir(hub: &Hub) -> PathBuf {
    hub.config().data_dir.clone()
}

/// Parses a JSON body strictly; an empty body is `T::default()`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("invalid request body: {e}"),
        )
    })
}

pub(crate) fn split_list(s: Option<&str>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

async fn health(State(hub): State<Hub>) -> Json<Value> {
    Json(json!({
        "service": "trawl",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": "node",
        "node": hub.live().map(|l| l.node().to_owned()),
        "data_dir": hub.config().data_dir.display().to_string(),
    }))
}

pub(crate) fn boundaries_json(b: &Boundaries) -> Value {
    json!({
        "node": b.node,
        "oldest_ts": b.oldest_ts,
        "newest_ts": b.newest_ts,
        "oldest": b.oldest_ts.map(rfc3339_micros),
        "newest": b.newest_ts.map(rfc3339_micros),
        "packets": b.packets,
        "bytes": b.bytes,
        "segments": b.segments,
        "drops": b.drops,
        "store_drops": b.store_drops,
    })
}

/// Per node of the data directory: what its raw store holds. The node a
/// tap in this process writes reports its live counters (drops included).
async fn local_boundaries(hub: &Hub) -> Result<Vec<Boundaries>, ApiError> {
    let dir = data_dir(hub);
    let live = hub.live().map(|l| l.boundaries());
    blocking(move || {
        let mut out = Vec::new();
        for node in list_nodes(&dir)? {
            if let Some(b) = live.as_ref().filter(|b| b.node == node) {
                out.push(b.clone());
                continue;
            }
            let src = read_node_dir(&dir, &node)?;
            let b = Boundaries {
                node: node.clone(),
                oldest_ts: src.segments.iter().map(|s| s.min_ts).min(),
                newest_ts: src.segments.iter().map(|s| s.max_ts).max(),
                packets: src.segments.iter().map(|s| s.packets).sum(),
                bytes: src.segments.iter().map(|s| s.bytes).sum(),
                segments: src.segments.len() as u64,
                ..Boundaries::default()
            };
            out.push(b);
        }
        Ok(out)
    })
    .await
}

/// The span of every node together: oldest and newest packet of any,
/// packets, bytes and drops summed. The hub computes it the same way over
/// its workers' nodes.
pub(crate) fn overall_boundaries(nodes: &[Boundaries]) -> Value {
    let all = Boundaries {
        node: String::new(),
        oldest_ts: nodes.iter().filter_map(|b| b.oldest_ts).min(),
        newest_ts: nodes.iter().filter_map(|b| b.newest_ts).max(),
        packets: nodes.iter().map(|b| b.packets).sum(),
        bytes: nodes.iter().map(|b| b.bytes).sum(),
        segments: nodes.iter().map(|b| b.segments).sum(),
        drops: nodes.iter().map(|b| b.drops).sum(),
        store_drops: nodes.iter().map(|b| b.store_drops).sum(),
        ..Boundaries::default()
    };
    let mut v = boundaries_json(&all);
    if let Some(o) = v.as_object_mut() {
        o.remove("node");
    }
    v
}

async fn boundaries(State(hub): State<Hub>) -> Result<Json<Value>, ApiError> {
    let nodes = local_boundaries(&hub).await?;
    Ok(Json(json!({
        "nodes": nodes.iter().map(boundaries_json).collect::<Vec<_>>(),
        "overall": overall_boundaries(&nodes),
        "partial": false,
        "missing_nodes": [],
    })))
}

/// The nodes this API answers for: here only the local ones (the tap's
/// live node, and any other raw store of the data directory), always up.
/// A cluster hub lists its workers instead ([`crate::cluster`]).
async fn nodes(State(hub): State<Hub>) -> Result<Json<Value>, ApiError> {
    let now = rfc3339_micros(now_ns());
    let nodes: Vec<Value> = local_boundaries(&hub)
        .await?
        .iter()
        .map(|b| {
            json!({
                "node": b.node,
                "url": null,
                "status": "up",
                "last_seen": now,
                "local": hub.live().is_some_and(|l| l.node() == b.node),
                "boundaries": boundaries_json(b),
            })
        })
        .collect();
    Ok(Json(json!({ "mode": "node", "nodes": nodes })))
}

fn field_json(d: &FieldDef) -> Value {
    json!({
        "name": d.name,
        "aliases": d.aliases,
        "type": d.ty.as_str(),
        "column": d.column,
        "example": d.example,
        "doc": d.doc,
    })
}

pub(crate) async fn fields() -> Json<Value> {
    Json(json!({
        "calls": call_fields().iter().map(field_json).collect::<Vec<_>>(),
        "flows": FLOW_FIELDS.iter().map(field_json).collect::<Vec<_>>(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

async fn list_snapshots_h(
    State(hub): State<Hub>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(MAX_SNAPSHOT_PAGE);
    if limit == 0 || limit > MAX_SNAPSHOT_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit {limit} out of range: ask for 1 to {MAX_SNAPSHOT_PAGE}"
        )));
    }
    let dir = data_dir(&hub);
    let all = blocking(move || Ok(list_snapshots(&dir)?)).await?;
    // Ids sort by creation time; the cursor is the last id returned.
    let rest: Vec<SnapshotManifest> = all
        .into_iter()
        .filter(|m| q.cursor.as_ref().is_none_or(|c| m.id.as_str() > c.as_str()))
        .collect();
    let total = rest.len();
    let page: Vec<SnapshotManifest> = rest.into_iter().take(limit).collect();
    let next = (total > page.len())
        .then(|| page.last().map(|m| m.id.clone()))
        .flatten();
    Ok(Json(json!({
        "snapshots": page,
        "next_cursor": next,
        "truncated": next.is_some(),
    })))
}

/// `POST /api/v1/snapshots`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSnapshot {
    /// The last D ending now (`15m`, `1h30m`).
    pub(crate) last: Option<String>,
    /// RFC 3339 window; `to` defaults to now.
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    #[serde(default)]
    pub(crate) name: String,
    /// Only these nodes; empty for all.
    #[serde(default)]
    pub(crate) nodes: Vec<String>,
    /// The id to give it (a cluster hub gives its workers its own);
    /// generated when absent.
    pub(crate) id: Option<String>,
}

/// `?wait=true`: answer when the snapshot is ready (or failed) instead of
/// at once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateQuery {
    #[serde(default)]
    pub(crate) wait: bool,
}

impl CreateSnapshot {
    /// The checks both the node and the hub make before any work.
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if self.last.is_some() && (self.from.is_some() || self.to.is_some()) {
            return Err(ApiError::bad_request(
                "give either \"last\" or \"from\"/\"to\", not both",
            ));
        }
        if self.last.is_none() && self.from.is_none() {
            return Err(ApiError::bad_request("say which window to snapshot")
                .with_suggestion("{\"last\": \"15m\"} or {\"from\": \"…\", \"to\": \"…\"}"));
        }
        Ok(())
    }
}

/// A manifest as answered, with the creation's `progress` when this
/// process ran (or runs) it.
fn manifest_with_progress(hub: &Hub, m: &SnapshotManifest) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(m).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(c) = hub.creations().get(&m.id)
        && let Some(o) = v.as_object_mut()
    {
        o.insert(
            "progress".into(),
            crate::creations::progress_json(&c.progress, !c.running),
        );
    }
    Ok(v)
}

/// Creates a snapshot as a job: the id is claimed and the `creating`
/// manifest written before the answer (202), then the packets are copied
/// on a blocking thread; `GET /api/v1/snapshots/{id}` shows the progress
/// until the status is `ready` or `failed`. With `?wait=true` the answer
/// (201) waits for the copy, as it always did before creation was a job.
async fn create_snapshot_h(
    State(hub): State<Hub>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateSnapshot = json_body(&body)?;
    req.check()?;
    if let Some(live) = hub.live()
        && !live.flush(FLUSH_TIMEOUT).await
    {
        tracing::warn!(
            "The capture loop did not flush in time; the snapshot may miss the last second."
        );
    }
    let dir = data_dir(&hub);
    let (pending, sources) = blocking(move || {
        let now = now_ns();
        let window = parse_window(
            req.last.as_deref(),
            req.from.as_deref(),
            req.to.as_deref(),
            now,
        )?;
        let mut names = list_nodes(&dir)?;
        for n in &req.nodes {
            if !names.contains(n) {
                return Err(ApiError::bad_request(format!(
                    "node {n:?} has no raw store here; nodes: {}",
                    names.join(", ")
                )));
            }
        }
        if !req.nodes.is_empty() {
            names.retain(|n| req.nodes.contains(n));
        }
        if names.is_empty() {
            return Err(ApiError::conflict(
                "no_raw_store",
                format!(
                    "no raw store in {}: nothing is captured here",
                    dir.display()
                ),
            )
            .with_suggestion("start `trawl tap`, or import a capture with `trawl import FILE`"));
        }
        let sources = names
            .iter()
            .map(|n| read_node_dir(&dir, n))
            .collect::<Result<Vec<_>, _>>()?;
        let pending = begin_snapshot(
            &dir,
            &SnapshotRequest {
                name: req.name,
                window,
                created_ns: now,
            },
            req.id.as_deref(),
        )?;
        Ok((pending, sources))
    })
    .await?;
    let Some(first) = pending.manifest().cloned() else {
        return Err(ApiError::internal("the new snapshot has no manifest"));
    };
    let job = hub.creations().start(&first.id);
    let copier = std::sync::Arc::clone(&job);
    let task = tokio::task::spawn_blocking(move || {
        let res = pending.fill(&sources, &mut |p| {
            crate::creations::update(&copier, |c| c.progress = p);
        });
        crate::creations::update(&copier, |c| c.running = false);
        if let Err(e) = &res {
            tracing::warn!(error = %e, "Snapshot creation failed.");
        }
        res
    });
    if q.wait {
        let snap = task
            .await
            .map_err(|e| ApiError::internal(format!("the snapshot thread failed: {e}")))??;
        let v = manifest_with_progress(&hub, &snap.manifest)?;
        return Ok((StatusCode::CREATED, Json(v)));
    }
    let v = manifest_with_progress(&hub, &first)?;
    Ok((StatusCode::ACCEPTED, Json(v)))
}

pub(crate) async fn snapshot_of(hub: &Hub, id: String) -> Result<Snapshot, ApiError> {
    let dir = data_dir(hub);
    blocking(move || Ok(get_snapshot(&dir, &id)?)).await
}

async fn get_snapshot_h(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snap = snapshot_of(&hub, id).await?;
    let h = hub.clone();
    // The dissection status may read the index manifest: disk work.
    blocking(move || {
        let dissection = h.jobs().status(&snap).ok().map(|s| s.status);
        let mut v = manifest_with_progress(&h, &snap.manifest)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("dissection".into(), json!(dissection));
        }
        Ok(Json(v))
    })
    .await
}

async fn delete_snapshot_h(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if hub.jobs().running(&id) {
        return Err(ApiError::conflict(
            "dissection_running",
            format!("snapshot {id} is being dissected; delete it when the job is done"),
        ));
    }
    let dir = data_dir(&hub);
    let gone = id.clone();
    blocking(move || Ok(delete_snapshot(&dir, &gone)?)).await?;
    hub.jobs().forget(&id);
    hub.creations().forget(&id);
    Ok(Json(json!({ "deleted": id })))
}

async fn start_dissection(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let snap = snapshot_of(&hub, id).await?;
    let jobs = hub.clone();
    let threads = hub.config().index_threads;
    // Starting reads the index manifest, if any: disk work.
    let st = blocking(move || jobs.jobs().start(snap, threads)).await?;
    let code = if st.status == crate::jobs::JobState::Running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!(st))))
}

async fn dissection_status(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snap = snapshot_of(&hub, id).await?;
    let h = hub.clone();
    let st = blocking(move || h.jobs().status(&snap)).await?;
    Ok(Json(json!(st)))
}

/// Cancels a running dissection: 202 with its status (still `running`;
/// it turns `cancelled` at the indexer's next check), 409 `not_running`
/// when no job runs.
async fn cancel_dissection(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let snap = snapshot_of(&hub, id).await?;
    let st = hub.jobs().cancel(&snap)?;
    Ok((StatusCode::ACCEPTED, Json(json!(st))))
}

/// The index directory of snapshot `id`, once dissected.
async fn index_of(hub: &Hub, id: String) -> Result<PathBuf, ApiError> {
    let snap = snapshot_of(hub, id.clone()).await?;
    let dir = index_dir(&snap.dir);
    if dir.join(MANIFEST_FILE).is_file() {
        return Ok(dir);
    }
    if hub.jobs().running(&id) {
        return Err(ApiError::conflict(
            "dissection_running",
            format!("snapshot {id} is being dissected"),
        )
        .with_suggestion(format!(
            "poll GET /api/v1/snapshots/{id}/dissection until status is \"done\""
        )));
    }
    Err(not_dissected())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallsQuery {
    /// KFL; empty matches every call.
    pub(crate) filter: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
    /// Comma-separated KFL names; `-name` sorts descending.
    pub(crate) sort: Option<String>,
    /// Comma-separated KFL names to return.
    pub(crate) fields: Option<String>,
}

pub(crate) fn check_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let l = limit.unwrap_or(DEFAULT_LIMIT);
    if l == 0 || l > MAX_LIMIT.min(MAX_QUERY_LIMIT) {
        return Err(ApiError::bad_request(format!(
            "limit {l} out of range: ask for 1 to {MAX_LIMIT} calls; aggregate with /stats or /sql for more"
        )));
    }
    Ok(l)
}

async fn list_calls(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<CallsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = check_limit(q.limit)?;
    let dir = index_of(&hub, id).await?;
    let sort = split_list(q.sort.as_deref())
        .into_iter()
        .map(|s| match s.strip_prefix('-') {
            Some(n) => (n.to_owned(), true),
            None => (s, false),
        })
        .collect();
    let fields = q.fields.as_deref().map(|f| split_list(Some(f)));
    let opts = QueryOptions {
        limit,
        sort,
        fields,
        cursor: q.cursor,
    };
    let filter = q.filter.unwrap_or_default();
    blocking(move || {
        let page = query(&dir, &filter, &opts)?;
        let rows = page.rows_json()?;
        Ok(Json(json!({
            "total": page.total_matching,
            "returned": rows.len(),
            "truncated": page.next_cursor.is_some(),
            "next_cursor": page.next_cursor,
            "calls": rows,
        })))
    })
    .await
}

/// A call id as the indexer writes them (`node/conn/index`): checked so
/// that it can be quoted into KFL and SQL literals as it is.
pub(crate) fn check_call_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CALL_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid call id {id:?}: call ids look like node/conn/index"
        )))
    }
}

fn payload_json(bytes: &[u8], r: &trawl_index::PayloadRef) -> Value {
    let shown = bytes.get(..MAX_BODY_RETURNED).unwrap_or(bytes);
    let (encoding, body) = match std::str::from_utf8(shown) {
        Ok(s) => ("utf-8", s.to_owned()),
        Err(_) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(shown),
        ),
    };
    json!({
        "size": r.size,
        "returned_bytes": shown.len(),
        "truncated": r.truncated || shown.len() < bytes.len(),
        "decoded_from": r.decoded_from,
        "encoding": encoding,
        "body": body,
    })
}

async fn get_call(
    State(hub): State<Hub>,
    Path((id, call_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_call_id(&call_id)?;
    let dir = index_of(&hub, id).await?;
    blocking(move || {
        let opts = QueryOptions {
            limit: 1,
            ..QueryOptions::default()
        };
        let page = query(&dir, &format!("id == \"{call_id}\""), &opts)?;
        let Some(call) = page.rows_json()?.into_iter().next() else {
            return Err(ApiError::not_found(format!(
                "no call {call_id:?} in this snapshot"
            )));
        };
        let refs = run_sql(
            &dir,
            &format!(
                "SELECT request_body_ref, response_body_ref FROM calls WHERE id = '{call_id}'"
            ),
        )?;
        let mut payloads = BTreeMap::new();
        if let Some(batch) = refs.batches.iter().find(|b| b.num_rows() > 0) {
            for (i, name) in ["request", "response"].into_iter().enumerate() {
                let v = match batch.columns().get(i).and_then(|c| payload_ref_at(c, 0)) {
                    Some(r) if !r.file.is_empty() => {
                        let bytes = read_payload(&dir, &r)?;
                        payload_json(&bytes, &r)
                    }
                    _ => Value::Null,
                };
                payloads.insert(name, v);
            }
        }
        Ok(Json(json!({ "call": call, "payloads": payloads })))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    pub(crate) filter: Option<String>,
    /// Comma-separated KFL names to group by.
    pub(crate) by: Option<String>,
    /// Time bucket width (`1m`, `30s`).
    pub(crate) interval: Option<String>,
    /// `true` answers `{"mergeable": StatsResult}`: the counters and the
    /// HdrHistograms themselves (V2, base64), which a hub adds up exactly
    /// across nodes before it takes percentiles.
    #[serde(default)]
    pub(crate) mergeable: bool,
}

async fn get_stats(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let interval_ns = q.interval.as_deref().map(parse_duration).transpose()?;
    let dir = index_of(&hub, id).await?;
    let opts = StatsOptions {
        by: split_list(q.by.as_deref()),
        interval_ns,
    };
    let filter = q.filter.unwrap_or_default();
    blocking(move || {
        let r = stats(&dir, &filter, &opts)?;
        if q.mergeable {
            return Ok(Json(json!({ "mergeable": r })));
        }
        Ok(Json(stats_json(&r)))
    })
    .await
}

/// The answer of the stats route: per group its counters, error rate and
/// latency percentiles (taken from the group's histogram, so a merged
/// result gives the union's percentiles).
pub(crate) fn stats_json(r: &trawl_index::stats::StatsResult) -> Value {
    {
        let groups: Vec<Value> = r
            .groups
            .iter()
            .map(|g| {
                json!({
                    "key": g.key,
                    "bucket_start_ns": g.bucket_start_ns,
                    "count": g.count,
                    "http_classes": {
                        "1xx": g.http_classes[0], "2xx": g.http_classes[1],
                        "3xx": g.http_classes[2], "4xx": g.http_classes[3],
                        "5xx": g.http_classes[4],
                    },
                    "dns_ok": g.dns_ok,
                    "dns_error": g.dns_error,
                    "no_response": g.no_response,
                    "errors": g.errors,
                    "error_rate": g.error_rate(),
                    "latency_us": {
                        "p50": g.latency_quantile_us(0.50),
                        "p95": g.latency_quantile_us(0.95),
                        "p99": g.latency_quantile_us(0.99),
                        "max": g.latency_max_us(),
                    },
                })
            })
            .collect();
        json!({
            "by": r.by,
            "interval_ns": r.interval_ns,
            "total_calls": r.groups.iter().map(|g| g.count).sum::<u64>(),
            "groups": groups,
        })
    }
}

/// Flows per page when the caller gives no `limit`.
pub const DEFAULT_FLOW_LIMIT: usize = 50;

/// Deepest flow a listing reaches (`offset + limit`): the index's flow
/// query returns a first page only, so a page further down reads the
/// rows before it too; past this a caller should narrow the filter or
/// aggregate (`/flows/stats`, `/sql`).
pub const MAX_FLOW_DEPTH: usize = trawl_index::kfl::MAX_QUERY_LIMIT;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowsQuery {
    /// KFL over the flow fields; empty matches every flow.
    pub(crate) filter: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

/// The cursor of a page that starts `offset` rows into the matches: the
/// shape `trawl_index::kfl::query` uses for calls (URL-safe base64 of
/// `o<offset>`), so that one decoder serves calls and flows and a hub can
/// address any position of a node's list.
pub(crate) fn offset_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

pub(crate) fn decode_offset_cursor(c: &str) -> Result<usize, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid cursor {c:?}: pass the next_cursor of the previous page as it is"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.strip_prefix('o'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

/// `GET /snapshots/{id}/flows`: the flows matching a KFL filter over the
/// flow fields, ordered by first packet then `conn_id`, a page at a time.
async fn list_flows(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<FlowsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_FLOW_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit {limit} out of range: ask for 1 to {MAX_LIMIT} flows"
        )));
    }
    let offset = q
        .cursor
        .as_deref()
        .map(decode_offset_cursor)
        .transpose()?
        .unwrap_or(0);
    let depth = offset.saturating_add(limit);
    if depth > MAX_FLOW_DEPTH {
        return Err(ApiError::bad_request(format!(
            "this page would end {depth} flows deep; listings stop at {MAX_FLOW_DEPTH}"
        ))
        .with_suggestion("narrow the filter, or aggregate with /flows/stats or /sql"));
    }
    let dir = index_of(&hub, id).await?;
    let filter = q.filter.unwrap_or_default();
    blocking(move || {
        let page = trawl_index::flow_stats::query_flows(&dir, &filter, depth)?;
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        let mut skip = offset;
        for b in &page.batches {
            let n = b.num_rows();
            if skip >= n {
                skip -= n;
                continue;
            }
            w.write(&b.slice(skip, n - skip))
                .map_err(|e| ApiError::internal(format!("cannot render flows: {e}")))?;
            skip = 0;
        }
        w.finish()
            .map_err(|e| ApiError::internal(format!("cannot render flows: {e}")))?;
        let buf = w.into_inner();
        let rows: Vec<Value> = if buf.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&buf).map_err(|e| ApiError::internal(e.to_string()))?
        };
        let total = usize::try_from(page.total_matching).unwrap_or(usize::MAX);
        let end = offset.saturating_add(rows.len());
        let next = (!rows.is_empty() && end < total).then(|| offset_cursor(end));
        Ok(Json(json!({
            "total": page.total_matching,
            "returned": rows.len(),
            "truncated": next.is_some(),
            "next_cursor": next,
            "flows": rows,
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowStatsQuery {
    pub(crate) filter: Option<String>,
    /// `pair` (client → server, the default) or `server`.
    pub(crate) by: Option<String>,
    /// `true` answers `{"mergeable": FlowStatsResult}` for a hub to add up.
    #[serde(default)]
    pub(crate) mergeable: bool,
}

pub(crate) fn flow_grouping(by: Option<&str>) -> Result<FlowGrouping, ApiError> {
    match by {
        None | Some("pair") => Ok(FlowGrouping::Pair),
        Some("server") => Ok(FlowGrouping::Server),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown grouping {other:?}: use pair or server"
        ))),
    }
}

/// `GET /snapshots/{id}/flows/stats`: per client → server pair (or per
/// server) churn, failed handshakes, resets, retransmission rate and RTT
/// percentiles.
async fn get_flow_stats(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<FlowStatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let by = flow_grouping(q.by.as_deref())?;
    let dir = index_of(&hub, id).await?;
    let filter = q.filter.unwrap_or_default();
    blocking(move || {
        let r = trawl_index::flow_stats::flow_stats(&dir, &filter, by)?;
        if q.mergeable {
            return Ok(Json(json!({ "mergeable": r })));
        }
        Ok(Json(flow_stats_json(&r)))
    })
    .await
}

/// The answer of the flow stats route; percentiles come from the merged
/// histograms, as for calls.
pub(crate) fn flow_stats_json(r: &FlowStatsResult) -> Value {
    let span = r.span_ns();
    let pct = |h: &hdrhistogram::Histogram<u64>| {
        json!({
            "p50": FlowGroupStats::quantile(h, 0.50),
            "p95": FlowGroupStats::quantile(h, 0.95),
            "p99": FlowGroupStats::quantile(h, 0.99),
            "max": (!h.is_empty()).then(|| h.max()),
        })
    };
    let groups: Vec<Value> = r
        .groups
        .iter()
        .map(|g| {
            json!({
                "key": g.key,
                "connections": g.connections,
                "tcp_connections": g.tcp_connections,
                "opened_per_minute": g.opened_per_minute(span),
                "refused": g.refused,
                "unanswered": g.unanswered,
                "failed_handshakes": g.failed_handshakes(),
                "reset_connections": g.reset_connections,
                "rst_segments": g.rst_segments,
                "retransmissions": g.retransmissions,
                "data_segments": g.data_segments,
                "retransmission_rate": g.retransmission_rate(),
                "bytes": g.bytes,
                "first_open": rfc3339_micros(g.first_open_ns),
                "last_open": rfc3339_micros(g.last_open_ns),
                "handshake_rtt_us": pct(&g.handshake_rtt_us),
                "data_rtt_us": pct(&g.data_rtt_us),
            })
        })
        .collect();
    json!({
        "by": r.by,
        "window_start_ns": r.window_start_ns,
        "window_end_ns": r.window_end_ns,
        "total_connections": r.groups.iter().map(|g| g.connections).sum::<u64>(),
        "groups": groups,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlRequest {
    pub(crate) query: String,
    /// Rows returned, at most [`MAX_SQL_ROWS`] (the default).
    pub(crate) limit: Option<usize>,
}

async fn sql(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: SqlRequest = json_body(&body)?;
    if req.query.trim().is_empty() {
        return Err(
            ApiError::bad_request("give {\"query\": \"SELECT …\"}").with_suggestion(
                "the tables are `calls` and `flows`; GET /api/v1/fields lists their columns",
            ),
        );
    }
    let limit = req.limit.unwrap_or(MAX_SQL_ROWS);
    if limit == 0 || limit > MAX_SQL_ROWS {
        return Err(ApiError::bad_request(format!(
            "limit {limit} out of range: ask for 1 to {MAX_SQL_ROWS} rows"
        )));
    }
    let dir = index_of(&hub, id).await?;
    blocking(move || {
        let r = run_sql(&dir, &req.query)?;
        let columns: Vec<&str> = r
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let total = r.num_rows();
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        let mut left = limit;
        for b in &r.batches {
            if left == 0 {
                break;
            }
            let take = b.num_rows().min(left);
            w.write(&b.slice(0, take))
                .map_err(|e| ApiError::internal(format!("cannot render rows: {e}")))?;
            left -= take;
        }
        w.finish()
            .map_err(|e| ApiError::internal(format!("cannot render rows: {e}")))?;
        let buf = w.into_inner();
        let rows: Vec<Value> = if buf.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&buf).map_err(|e| ApiError::internal(e.to_string()))?
        };
        Ok(Json(json!({
            "columns": columns,
            "total": total,
            "returned": rows.len(),
            "truncated": rows.len() < total,
            "rows": rows,
        })))
    })
    .await
}

/// Compiles a tcpdump-syntax filter once per link type of the snapshot
/// and runs the classic BPF program on each packet, as the kernel would
/// at capture. Shared with `trawl export pcap` on a data directory.
pub fn packet_filter(
    expr: &str,
    m: &SnapshotManifest,
) -> Result<PacketFilter, trawl_capture::FilterError> {
    let mut links: Vec<u32> = m
        .nodes
        .iter()
        .flat_map(|n| n.files.iter().map(|f| f.link))
        .collect();
    links.sort_unstable();
    links.dedup();
    let mut programs = Vec::new();
    for l in links {
        let link = LinkType::from_linktype(l);
        programs.push((link, compile_filter(expr, link, MAX_CAPLEN)?));
    }
    Ok(Box::new(move |p: &RawPacket<'_>| {
        programs
            .iter()
            .find(|(l, _)| *l == p.link)
            .is_some_and(|(_, prog)| bpf::run(prog, p.data, p.orig_len, Ancillary::default()) != 0)
    }))
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PcapQuery {
    /// RFC 3339 bounds within the snapshot's window.
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    /// Comma-separated node names.
    pub(crate) nodes: Option<String>,
    /// tcpdump syntax.
    pub(crate) filter: Option<String>,
    /// `pcap` (default) or `pcapng`.
    pub(crate) format: Option<String>,
}

/// What the exporting thread sends the response.
enum Chunk {
    Data(Bytes),
    Done(Result<(), ApiError>),
}

/// A `Write` that hands each write (the exporter's 1 MiB buffer) to the
/// response; a gone client turns into a write error that stops the export.
struct ChannelWriter(tokio::sync::mpsc::Sender<Chunk>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Chunk::Data(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn pcap(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(q): Query<PcapQuery>,
) -> Result<Response, ApiError> {
    let (snap, opts) = node_export(&hub, id.clone(), &q).await?;
    export_response(snap, opts, &id, HeaderMap::new(), || {}).await
}

/// The format a PCAP export asks for.
pub(crate) fn export_format(q: &PcapQuery) -> Result<ExportFormat, ApiError> {
    match q.format.as_deref() {
        None | Some("pcap") => Ok(ExportFormat::Pcap),
        Some("pcapng") => Ok(ExportFormat::PcapNg),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format {other:?}: use pcap or pcapng"
        ))),
    }
}

/// A node's snapshot and the export options of `q` (filter compiled).
pub(crate) async fn node_export(
    hub: &Hub,
    id: String,
    q: &PcapQuery,
) -> Result<(Snapshot, ExportOptions), ApiError> {
    let format = export_format(q)?;
    let from = q.from.as_deref().map(parse_time).transpose()?;
    let to = q.to.as_deref().map(parse_time).transpose()?;
    let snap = snapshot_of(hub, id).await?;
    let filter = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(expr) => Some(packet_filter(expr, &snap.manifest).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_packet_filter",
                format!("packet filter {expr:?}: {e}"),
            )
            .with_suggestion("tcpdump syntax, e.g. 'tcp port 80 and host 10.0.0.1'")
        })?),
        None => None,
    };
    let nodes = split_list(q.nodes.as_deref());
    let opts = ExportOptions {
        from,
        to,
        nodes: (!nodes.is_empty()).then_some(nodes),
        filter,
        format,
    };
    Ok((snap, opts))
}

/// Streams `export(snap, opts)` as the response, with `headers` added;
/// `done` runs on the exporting thread once the export has ended (the
/// hub deletes its spooled worker files there). An error before the
/// first byte is a JSON error.
pub(crate) async fn export_response(
    snap: Snapshot,
    opts: ExportOptions,
    id: &str,
    mut headers: HeaderMap,
    done: impl FnOnce() + Send + 'static,
) -> Result<Response, ApiError> {
    let format = opts.format;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(EXPORT_QUEUE);
    tokio::task::spawn_blocking(move || {
        let end = tx.clone();
        let r = export(&snap, &opts, ChannelWriter(tx));
        if let Err(e) = &r {
            tracing::debug!(error = %e, "Export stopped.");
        }
        done();
        let _ = end.blocking_send(Chunk::Done(r.map(|_| ()).map_err(ApiError::from)));
    });
    // An error before the first byte is a JSON error; after it, the body
    // is cut short (the client sees a truncated transfer).
    let first = match rx.recv().await {
        Some(Chunk::Done(Err(e))) => return Err(e),
        Some(c) => c,
        None => return Err(ApiError::internal("the export thread stopped")),
    };
    let stream = futures::stream::unfold((Some(first), rx), |(pending, mut rx)| async move {
        let next = match pending {
            Some(c) => Some(c),
            None => rx.recv().await,
        };
        match next {
            Some(Chunk::Data(b)) => Some((Ok::<Bytes, std::io::Error>(b), (None, rx))),
            Some(Chunk::Done(Err(e))) => Some((Err(std::io::Error::other(e.message)), (None, rx))),
            Some(Chunk::Done(Ok(()))) | None => None,
        }
    });
    let (ctype, ext) = match format {
        ExportFormat::Pcap => ("application/vnd.tcpdump.pcap", "pcap"),
        ExportFormat::PcapNg => ("application/x-pcapng", "pcapng"),
    };
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{id}.{ext}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, Body::from_stream(stream)).into_response())
}
