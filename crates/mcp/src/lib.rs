//! trawl's MCP server: the tools an AI agent investigates traffic with,
//! defined once ([`tools::TOOLS`]) over a [`Backend`] that the hub
//! implements with the functions of its HTTP API; the KFL and field
//! resources and investigation prompts ([`reference`]); Streamable HTTP at
//! `/mcp` for the hub to mount ([`http_service`]); and the stdio proxy of
//! `trawl mcp` ([`proxy`]), which discovers the hub's tools and forwards
//! calls, so nothing is defined twice.
//!
//! rmcp changes fast: it is pinned to an exact version in the workspace
//! and only this crate uses it.

pub mod backend;
pub mod insights;
pub mod proxy;
pub mod reference;
pub mod rest;
pub mod server;
pub mod tools;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub use backend::{
    Backend, BackendError, BackendResult, CallsQuery, ErrorKind, PcapExport, SnapshotWindow,
    StatsQuery,
};
pub use rest::RouterBackend;
pub use server::TrawlMcp;
pub use tools::ToolPolicy;

/// The path the hub serves MCP at.
pub const MCP_PATH: &str = "/mcp";

/// How the hub serves MCP.
#[derive(Clone, Debug)]
pub struct McpConfig {
    /// `Host` header values accepted (DNS-rebinding defence). `None` keeps
    /// rmcp's loopback-only default, right for `trawl tap` on 127.0.0.1;
    /// a hub reached through a Kubernetes Service must list the names
    /// clients use, or `Some(vec![])` to accept any (then the bearer token
    /// is the defence).
    pub allowed_hosts: Option<Vec<String>>,
    /// `Origin` values accepted from browsers; requests without `Origin`
    /// (every non-browser client) pass. Default: loopback origins only.
    pub allowed_origins: Vec<String>,
    pub policy: ToolPolicy,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            allowed_hosts: None,
            allowed_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
            policy: ToolPolicy::default(),
        }
    }
}

/// The Streamable HTTP service for `backend`, to mount at [`MCP_PATH`]
/// (`router.route_service(MCP_PATH, http_service(…))`).
pub fn http_service<B: Backend>(
    backend: Arc<B>,
    cfg: McpConfig,
) -> StreamableHttpService<TrawlMcp<B>, LocalSessionManager> {
    let mut http = StreamableHttpServerConfig::default()
        .with_allowed_origins(cfg.allowed_origins.clone())
        .enforce_origin_validation();
    if let Some(hosts) = &cfg.allowed_hosts {
        http = if hosts.is_empty() {
            http.disable_allowed_hosts()
        } else {
            http.with_allowed_hosts(hosts.clone())
        };
    }
    let server = TrawlMcp::new(backend, cfg.policy);
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        http,
    )
}

/// An axum router serving only MCP at [`MCP_PATH`].
pub fn http_router<B: Backend>(backend: Arc<B>, cfg: McpConfig) -> axum::Router {
    axum::Router::new().route_service(MCP_PATH, http_service(backend, cfg))
}
