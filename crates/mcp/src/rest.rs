//! [`RouterBackend`]: the [`Backend`] of any axum router that speaks the
//! hub's HTTP API (`crates/hub/openapi.yaml`). Each method builds the
//! route's request and sends it through the router in process (no socket,
//! no second copy of the handlers), so an MCP tool gets exactly what the
//! REST route answers, errors included. The hub mounts MCP with it:
//! `router.route_service(MCP_PATH, http_service(Arc::new(RouterBackend::new(rest_router, dir)), cfg))`.
//!
//! PCAP export is the one route whose answer is not JSON: the streamed
//! file is written under the export directory (the newest
//! [`MAX_EXPORT_FILES`] are kept) and its packets counted, and the tool
//! answers with the path.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tower_service::Service as _;

use crate::backend::{
    Backend, BackendError, BackendResult, CallsQuery, PcapExport, SnapshotWindow, StatsQuery,
};

/// Largest JSON answer read from a route. The tools ask for at most a few
/// hundred rows; the API's own maximum page (10 000 calls) is tens of MB.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// PCAP exports kept in the export directory; older ones are deleted
/// when a new one is written. An agent reads an export soon after asking
/// for it, and each can be as large as its snapshot.
pub const MAX_EXPORT_FILES: usize = 16;

/// Deletes all but the newest [`MAX_EXPORT_FILES`] files of `dir` (names
/// end in the export's time in ms, so name order is age order within one
/// snapshot; modification time orders across snapshots).
fn prune_exports(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p.is_file())
        .collect();
    files.sort();
    let extra = files.len().saturating_sub(MAX_EXPORT_FILES);
    for (_, p) in files.into_iter().take(extra) {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "Cannot delete an old PCAP export.");
        }
    }
}

/// The hub's API, in process.
#[derive(Clone, Debug)]
pub struct RouterBackend {
    router: axum::Router,
    export_dir: PathBuf,
    token: Option<String>,
}

impl RouterBackend {
    /// Over `router` (the API's routes, without `/mcp`), writing PCAP
    /// exports into `export_dir` (created when needed).
    pub fn new(router: axum::Router, export_dir: PathBuf) -> RouterBackend {
        RouterBackend {
            router,
            export_dir,
            token: None,
        }
    }

    /// Sends `Authorization: Bearer token` with every request, for a router
    /// that checks it.
    pub fn with_token(mut self, token: Option<String>) -> RouterBackend {
        self.token = token;
        self
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<axum::http::Response<Body>, BackendError> {
        let mut uri = path.to_owned();
        if !query.is_empty() {
            let q = serde_urlencoded::to_string(query)
                .map_err(|e| BackendError::internal(format!("cannot encode the query: {e}")))?;
            uri.push('?');
            uri.push_str(&q);
        }
        let mut req = Request::builder().method(method).uri(&uri);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .map_err(|e| BackendError::internal(format!("bad request for {uri}: {e}")))?;
        // An axum router is always ready (its `poll_ready` returns Ready),
        // so it can be called without polling readiness first.
        let mut router = self.router.clone();
        match router.call(req).await {
            Ok(r) => Ok(r),
            Err(e) => match e {},
        }
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> BackendResult {
        let r = self.send(method, path, query, body).await?;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                BackendError::internal(format!("cannot read the answer of {path}: {e}"))
            })?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            json!({"error": {"code": format!("http_{}", status.as_u16()),
                "message": String::from_utf8_lossy(&bytes).into_owned()}})
        });
        if status.is_success() {
            Ok(v)
        } else {
            Err(BackendError::from_api_body(status.as_u16(), &v))
        }
    }
}

/// Percent-encodes a path segment; `/` is kept when `keep_slash` (call ids
/// go to a wildcard route).
fn segment(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn snap(id: &str) -> String {
    format!("/api/v1/snapshots/{}", segment(id, false))
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Counts the packets of the capture file at `path`.
fn count_packets(path: &std::path::Path) -> Result<u64, BackendError> {
    let mut r = trawl_packet::CaptureReader::open(path)
        .map_err(|e| BackendError::internal(format!("cannot read the export back: {e}")))?;
    let mut n = 0u64;
    while r
        .next_packet()
        .map_err(|e| BackendError::internal(format!("cannot read the export back: {e}")))?
        .is_some()
    {
        n += 1;
    }
    Ok(n)
}

impl Backend for RouterBackend {
    async fn boundaries(&self) -> BackendResult {
        self.json(Method::GET, "/api/v1/boundaries", &[], None)
            .await
    }

    async fn list_snapshots(&self, limit: usize, cursor: Option<String>) -> BackendResult {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            q.push(("cursor", c));
        }
        self.json(Method::GET, "/api/v1/snapshots", &q, None).await
    }

    async fn create_snapshot(&self, req: SnapshotWindow) -> BackendResult {
        let mut body = json!({"name": req.name, "nodes": req.nodes});
        for (k, v) in [("last", req.last), ("from", req.from), ("to", req.to)] {
            if let Some(v) = v {
                body[k] = json!(v);
            }
        }
        self.json(Method::POST, "/api/v1/snapshots", &[], Some(body))
            .await
    }

    async fn get_snapshot(&self, id: String) -> BackendResult {
        self.json(Method::GET, &snap(&id), &[], None).await
    }

    async fn delete_snapshot(&self, id: String) -> BackendResult {
        self.json(Method::DELETE, &snap(&id), &[], None).await
    }

    async fn start_dissection(&self, id: String) -> BackendResult {
        let path = format!("{}/dissection", snap(&id));
        self.json(Method::POST, &path, &[], None).await
    }

    async fn dissection_status(&self, id: String) -> BackendResult {
        let path = format!("{}/dissection", snap(&id));
        self.json(Method::GET, &path, &[], None).await
    }

    async fn list_calls(&self, id: String, q: CallsQuery) -> BackendResult {
        let mut query = vec![("filter", q.filter), ("limit", q.limit.to_string())];
        if let Some(c) = q.cursor {
            query.push(("cursor", c));
        }
        if !q.sort.is_empty() {
            let keys: Vec<String> = q
                .sort
                .iter()
                .map(|(k, desc)| if *desc { format!("-{k}") } else { k.clone() })
                .collect();
            query.push(("sort", keys.join(",")));
        }
        if let Some(f) = q.fields {
            query.push(("fields", f.join(",")));
        }
        let path = format!("{}/calls", snap(&id));
        self.json(Method::GET, &path, &query, None).await
    }

    async fn get_call(&self, id: String, call_id: String) -> BackendResult {
        let path = format!("{}/calls/{}", snap(&id), segment(&call_id, true));
        self.json(Method::GET, &path, &[], None).await
    }

    async fn stats(&self, id: String, q: StatsQuery) -> BackendResult {
        let mut query = vec![("filter", q.filter)];
        if !q.by.is_empty() {
            query.push(("by", q.by.join(",")));
        }
        if let Some(i) = q.interval {
            query.push(("interval", i));
        }
        let path = format!("{}/stats", snap(&id));
        self.json(Method::GET, &path, &query, None).await
    }

    async fn sql(&self, id: String, query: String, limit: usize) -> BackendResult {
        let path = format!("{}/sql", snap(&id));
        let body = json!({"query": query, "limit": limit});
        self.json(Method::POST, &path, &[], Some(body)).await
    }

    async fn insights(
        &self,
        id: String,
        analysis: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> BackendResult {
        let path = format!("{}/insights/{analysis}", snap(&id));
        self.json(Method::GET, &path, &query, None).await
    }

    async fn list_flows(
        &self,
        id: String,
        filter: String,
        limit: usize,
        cursor: Option<String>,
    ) -> BackendResult {
        let mut query = vec![("filter", filter), ("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        let path = format!("{}/flows", snap(&id));
        self.json(Method::GET, &path, &query, None).await
    }

    async fn export_pcap(&self, id: String, req: PcapExport) -> BackendResult {
        let ext = if req.pcapng { "pcapng" } else { "pcap" };
        let mut query = vec![("format", ext.to_owned())];
        for (k, v) in [("from", req.from), ("to", req.to), ("filter", req.filter)] {
            if let Some(v) = v {
                query.push((k, v));
            }
        }
        if !req.nodes.is_empty() {
            query.push(("nodes", req.nodes.join(",")));
        }
        let path = format!("{}/pcap", snap(&id));
        let r = self.send(Method::GET, &path, &query, None).await?;
        if r.status() != StatusCode::OK {
            let status = r.status().as_u16();
            let bytes = axum::body::to_bytes(r.into_body(), MAX_ANSWER_BYTES)
                .await
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(BackendError::from_api_body(status, &v));
        }
        let io =
            |e: std::io::Error| BackendError::internal(format!("cannot write the export: {e}"));
        tokio::fs::create_dir_all(&self.export_dir)
            .await
            .map_err(io)?;
        let file = self
            .export_dir
            .join(format!("{}-{}.{ext}", segment(&id, false), now_ms()));
        let mut out = tokio::fs::File::create(&file).await.map_err(io)?;
        let mut stream = r.into_body().into_data_stream();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| BackendError::internal(format!("the export stopped: {e}")))?;
            bytes += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        drop(out);
        let counted = file.clone();
        let dir = self.export_dir.clone();
        let packets = tokio::task::spawn_blocking(move || {
            prune_exports(&dir);
            count_packets(&counted)
        })
        .await
        .map_err(|e| BackendError::internal(format!("a worker thread failed: {e}")))??;
        let path = std::path::absolute(&file).unwrap_or(file);
        Ok(json!({
            "path": path.display().to_string(),
            "bytes": bytes,
            "packets": packets,
            "format": ext,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("lab/3/0", true), "lab/3/0");
        assert_eq!(segment("a b/c?", false), "a%20b%2Fc%3F");
    }
}
