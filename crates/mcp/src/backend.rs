//! The seam between the MCP tools and the node or hub that answers them:
//! [`Backend`], one async method per route of the hub's HTTP API
//! (`crates/hub/openapi.yaml`), taking the route's parameters and
//! returning the JSON body the route answers. The hub implements it by
//! calling the functions its REST handlers use, so a tool and its route can
//! never disagree; the tools in [`crate::tools`] shape those answers for a
//! model (compact records, caps, summaries).
//!
//! Flows, workloads and IPs have no route of their own yet: their tools
//! are SQL over the snapshot's `flows` and `calls` tables through
//! [`Backend::sql`].

use std::future::Future;

use serde_json::Value;

/// What a backend method answers: the JSON body of the matching route.
pub type BackendResult = Result<Value, BackendError>;

/// `GET /api/v1/snapshots/{id}/calls`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallsQuery {
    /// KFL; empty matches every call.
    pub filter: String,
    /// Calls per page, already range-checked by the tool.
    pub limit: usize,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// (KFL field name, descending); empty sorts by timestamp.
    pub sort: Vec<(String, bool)>,
    /// KFL field names to return; `None` returns every non-payload field.
    pub fields: Option<Vec<String>>,
}

/// `GET /api/v1/snapshots/{id}/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsQuery {
    /// KFL; empty matches every call.
    pub filter: String,
    /// KFL field names to group by.
    pub by: Vec<String>,
    /// Time bucket width (`1m`, `30s`).
    pub interval: Option<String>,
}

/// `POST /api/v1/snapshots`: the window, as `last` or `from`/`to`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotWindow {
    pub last: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub name: String,
    /// Empty for every node.
    pub nodes: Vec<String>,
}

/// `GET /api/v1/snapshots/{id}/pcap`, written to a file on the backend's
/// side instead of streamed (a model gets a link, not bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcapExport {
    /// RFC 3339 bounds within the snapshot's window.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Empty for every node.
    pub nodes: Vec<String>,
    /// tcpdump syntax.
    pub filter: Option<String>,
    /// `pcapng` instead of `pcap`.
    pub pcapng: bool,
}

/// The node or hub behind the tools. Each method returns what its route
/// answers (the JSON of `openapi.yaml`), or the route's error.
/// [`Backend::export_pcap`] answers
/// `{"path", "bytes", "packets", "filtered_out", "format", "url"?}`.
pub trait Backend: Send + Sync + 'static {
    /// `GET /api/v1/boundaries`.
    fn boundaries(&self) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots?limit=&cursor=`.
    fn list_snapshots(
        &self,
        limit: usize,
        cursor: Option<String>,
    ) -> impl Future<Output = BackendResult> + Send;
    /// `POST /api/v1/snapshots`; answers the manifest at once, usually
    /// with status `creating` and `progress` (creation is a job: poll
    /// [`Backend::get_snapshot`]).
    fn create_snapshot(&self, req: SnapshotWindow) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}`.
    fn get_snapshot(&self, id: String) -> impl Future<Output = BackendResult> + Send;
    /// `DELETE /api/v1/snapshots/{id}`.
    fn delete_snapshot(&self, id: String) -> impl Future<Output = BackendResult> + Send;
    /// `POST /api/v1/snapshots/{id}/dissection`.
    fn start_dissection(&self, id: String) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}/dissection`.
    fn dissection_status(&self, id: String) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}/calls`.
    fn list_calls(&self, id: String, q: CallsQuery) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}/calls/{call_id}`.
    fn get_call(&self, id: String, call_id: String) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}/stats`.
    fn stats(&self, id: String, q: StatsQuery) -> impl Future<Output = BackendResult> + Send;
    /// `POST /api/v1/snapshots/{id}/sql`.
    fn sql(
        &self,
        id: String,
        query: String,
        limit: usize,
    ) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}/pcap`, into a file the backend names.
    fn export_pcap(
        &self,
        id: String,
        req: PcapExport,
    ) -> impl Future<Output = BackendResult> + Send;
    /// `GET /api/v1/snapshots/{id}/flows?filter=&limit=&cursor=`: flows
    /// matching a KFL filter over the flow fields, by first packet. A hub
    /// merges every node's. A backend without the route says so.
    fn list_flows(
        &self,
        id: String,
        filter: String,
        limit: usize,
        cursor: Option<String>,
    ) -> impl Future<Output = BackendResult> + Send {
        let _ = (id, filter, limit, cursor);
        async { Err(BackendError::internal("this backend does not list flows")) }
    }
    /// `GET /api/v1/snapshots/{id}/insights/{analysis}` (`service`,
    /// `anomalies` or `explain`) with its query parameters.
    fn insights(
        &self,
        id: String,
        analysis: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> impl Future<Output = BackendResult> + Send;
}

/// Which kind of failure, for the hint the agent gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong (HTTP 400).
    BadInput,
    /// No such snapshot, call or node (404).
    NotFound,
    /// Not now: not dissected yet, a job running (409).
    Conflict,
    /// The backend failed (5xx).
    Internal,
}

impl ErrorKind {
    /// The kind of an HTTP status.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            400..=499 => ErrorKind::BadInput,
            _ => ErrorKind::Internal,
        }
    }
}

/// Where in a KFL filter the mistake is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ErrorPosition {
    /// 1-based line and column (in characters).
    pub line: usize,
    pub column: usize,
}

/// A route's error: the API's one error shape
/// (`{"error": {"code", "message", "position"?, "suggestion"?}}`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BackendError {
    pub kind: ErrorKind,
    /// Stable, machine-readable: `bad_filter`, `not_found`, `not_dissected`, …
    pub code: String,
    pub message: String,
    pub position: Option<ErrorPosition>,
    pub suggestion: Option<String>,
}

impl BackendError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            code: code.into(),
            message: message.into(),
            position: None,
            suggestion: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        BackendError::new(ErrorKind::Internal, "internal", message)
    }

    pub fn with_suggestion(mut self, s: impl Into<String>) -> Self {
        self.suggestion = Some(s.into());
        self
    }

    /// Reads the API's error body (as `ApiError::body` writes it) answered
    /// with HTTP `status`.
    pub fn from_api_body(status: u16, body: &Value) -> Self {
        let e = &body["error"];
        let text = |k: &str| e[k].as_str().map(str::to_owned);
        let position = e["position"]["line"].as_u64().and_then(|line| {
            Some(ErrorPosition {
                line: usize::try_from(line).ok()?,
                column: usize::try_from(e["position"]["column"].as_u64()?).ok()?,
            })
        });
        BackendError {
            kind: ErrorKind::from_status(status),
            code: text("code").unwrap_or_else(|| format!("http_{status}")),
            message: text("message").unwrap_or_else(|| body.to_string()),
            position,
            suggestion: text("suggestion"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_api_error_shape() {
        let body = json!({"error": {"code": "bad_filter", "message": "unknown field \"statuss\" at 1:1",
            "position": {"line": 1, "column": 9, "start": 8, "end": 15}, "suggestion": "status_code"}});
        let e = BackendError::from_api_body(400, &body);
        assert_eq!(e.kind, ErrorKind::BadInput);
        assert_eq!(e.code, "bad_filter");
        assert_eq!(e.position, Some(ErrorPosition { line: 1, column: 9 }));
        assert_eq!(e.suggestion.as_deref(), Some("status_code"));
        let e = BackendError::from_api_body(502, &json!("gateway"));
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Internal, "http_502"));
    }
}
