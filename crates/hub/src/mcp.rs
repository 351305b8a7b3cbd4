//! MCP at `/mcp` (Streamable HTTP): trawl-mcp's tools, resources and
//! prompts over this API's own routes, which `trawl_mcp::RouterBackend`
//! calls in process, so a tool answers exactly what its route does (same
//! validation, same errors). [`crate::api::router`] mounts it; `trawl tap`
//! therefore serves MCP next to the REST API, and `trawl mcp` forwards
//! to it.
//!
//! Security: `/mcp` takes the same bearer token as the API. rmcp checks
//! the `Host` header against loopback names (DNS rebinding); with a token
//! the API may listen on any address under any name (a Kubernetes
//! Service), so the token, not the name, guards it and the check is off.
//! Browser `Origin`s other than loopback are refused. Destructive tools
//! are off and credentials in headers are redacted unless the operator's
//! `HubConfig::tools` says otherwise.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use trawl_mcp::{MCP_PATH, McpConfig, RouterBackend};

use crate::{ApiError, Hub};

/// Where `export_snapshot_pcap` writes its files, under the data
/// directory (the newest `trawl_mcp::rest::MAX_EXPORT_FILES` are kept).
pub const EXPORT_DIR: &str = "exports";

/// `rest` (the API's routes, finished) plus `/mcp` over them.
pub fn mount(rest: Router, hub: &Hub) -> Router {
    let cfg = hub.config();
    let backend = RouterBackend::new(rest.clone(), cfg.data_dir.join(EXPORT_DIR))
        .with_token(cfg.token.clone());
    let mcp = McpConfig {
        allowed_hosts: cfg.token.is_some().then(Vec::new),
        policy: cfg.tools.clone(),
        ..McpConfig::default()
    };
    let token = cfg.token.clone();
    let service = trawl_mcp::http_service(Arc::new(backend), mcp);
    rest.merge(
        Router::new()
            .route_service(MCP_PATH, service)
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let token = token.clone();
                async move { bearer(token.as_deref(), req, next).await }
            })),
    )
}

/// The API's bearer-token check, for `/mcp`.
async fn bearer(token: Option<&str>, req: Request, next: Next) -> Response {
    if let Some(token) = token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // No early exit: the time taken does not tell how much was right.
        let ok = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0
        });
        if !ok {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "/mcp needs `Authorization: Bearer TOKEN` with the token the server was started with",
            )
            .with_suggestion("run `trawl mcp --token TOKEN` (or set TRAWL_TOKEN)")
            .into_response();
        }
    }
    next.run(req).await
}
