//! The API's one error shape,
//! `{"error": {"code", "message", "position"?, "suggestion"?}}`, and the
//! mapping of library errors onto it and onto HTTP statuses. Every handler
//! in [`crate::api`] returns [`ApiError`]; clients (the CLI, the MCP
//! server) show `message` and branch on `code`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use trawl_index::IndexError;
use trawl_index::kfl::KflQueryError;
use trawl_rawstore::{ExportError, SnapshotError, StoreError, WindowError};

/// Where in the caller's input (a KFL filter) the mistake is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    /// 1-based line and column (in characters).
    pub line: usize,
    pub column: usize,
    /// Byte offsets of the offending part.
    pub start: usize,
    pub end: usize,
}

/// An API error: an HTTP status and the JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `bad_request`, `bad_filter`, `not_found`, …
    pub code: &'static str,
    pub message: String,
    pub position: Option<Position>,
    pub suggestion: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<&'a Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggestion: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            position: None,
            suggestion: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn with_suggestion(mut self, s: impl Into<String>) -> ApiError {
        self.suggestion = Some(s.into());
        self
    }

    /// The JSON body, as sent.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                position: self.position.as_ref(),
                suggestion: self.suggestion.as_deref(),
            },
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "API request failed.");
        }
        (self.status, Json(self.body())).into_response()
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> ApiError {
        match &e {
            SnapshotError::NotFound(_) => ApiError::not_found(e.to_string())
                .with_suggestion("GET /api/v1/snapshots lists the snapshots"),
            SnapshotError::BadId(_) => ApiError::bad_request(e.to_string()),
            SnapshotError::Exists(_) => ApiError::conflict("snapshot_exists", e.to_string()),
            SnapshotError::Creating(_) => ApiError::conflict("snapshot_creating", e.to_string()),
            SnapshotError::DuplicateNode(_) => ApiError::bad_request(e.to_string()),
            SnapshotError::Store(StoreError::NodeName(_)) => ApiError::bad_request(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NodeName(_) => ApiError::bad_request(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<WindowError> for ApiError {
    fn from(e: WindowError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_window", e.to_string()).with_suggestion(
            "give {\"last\": \"15m\"} or {\"from\": \"2026-01-02T15:04:05Z\", \"to\": …}",
        )
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match &e {
            ExportError::MixedLinkTypes(..) => {
                ApiError::bad_request(e.to_string()).with_suggestion("add format=pcapng")
            }
            ExportError::UnknownNode(..) => ApiError::bad_request(e.to_string()),
            ExportError::NotReady(..) => ApiError::conflict("not_ready", e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> ApiError {
        match &e {
            // SQL and options come from the caller: their mistakes are 400s.
            IndexError::Query(_) | IndexError::InvalidOption(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.to_string())
            }
            IndexError::NotAnIndex(_) => not_dissected(),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<KflQueryError> for ApiError {
    fn from(e: KflQueryError) -> ApiError {
        match e {
            KflQueryError::Kfl(k) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "bad_filter",
                message: k.to_string(),
                position: Some(Position {
                    line: k.line,
                    column: k.col,
                    start: k.span.start,
                    end: k.span.end,
                }),
                suggestion: k.suggestion,
            },
            KflQueryError::Unsupported(u) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_filter",
                message: u.to_string(),
                position: Some(Position {
                    line: u.line,
                    column: u.col,
                    start: u.span.start,
                    end: u.span.end,
                }),
                suggestion: None,
            },
            KflQueryError::UnknownField { name, suggestion } => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "unknown_field",
                message: format!("unknown field {name:?}"),
                position: None,
                suggestion,
            },
            e @ (KflQueryError::BadCursor(_) | KflQueryError::BadLimit(_)) => {
                ApiError::bad_request(e.to_string())
            }
            KflQueryError::Index(i) => i.into(),
        }
    }
}

/// A query on a snapshot that has no index yet.
pub fn not_dissected() -> ApiError {
    ApiError::conflict(
        "not_dissected",
        "this snapshot is not dissected (indexed) yet",
    )
    .with_suggestion(
        "POST /api/v1/snapshots/{id}/dissection, then poll GET on it until status is \"done\"",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_kfl_has_position_and_suggestion() {
        let cat = trawl_index::kfl::catalogue_for_kfl(trawl_model::catalogue::call_fields());
        let k = trawl_kfl::compile("http && response.statuss == 200", &cat).unwrap_err();
        let e = ApiError::from(KflQueryError::Kfl(k));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let b = e.body();
        assert_eq!(b["error"]["code"], "bad_filter");
        assert_eq!(b["error"]["position"]["line"], 1);
        assert_eq!(b["error"]["position"]["column"], 9);
        assert_eq!(b["error"]["suggestion"], "response.status");
    }

    #[test]
    fn optional_parts_are_left_out() {
        let b = ApiError::not_found("snapshot \"x\" not found").body();
        assert_eq!(
            b,
            serde_json::json!({"error": {"code": "not_found", "message": "snapshot \"x\" not found"}})
        );
    }
}
