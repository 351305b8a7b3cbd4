//! The stdio MCP server of `trawl mcp`: it connects, as an MCP client, to a
//! hub's Streamable HTTP endpoint (`http://127.0.0.1:9900/mcp` by default),
//! lists the hub's tools, resources and prompts as its own and forwards
//! every call, relaying progress notifications. Tools are defined once, in
//! the hub ([`crate::tools`]); this file defines none.
//!
//! When no hub answers it says so on stderr and, to the agent, through a
//! single `hub_status` tool whose description names the URL, the error and
//! how to start a hub (`trawl tap`); any call retries the connection, and
//! once the hub is up the client is told the tool list changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientRequest, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Request, ResourceContents,
    ServerCapabilities, ServerConfig, ServerResult, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt};

use crate::server;

/// The hub `trawl tap` serves, as `trawl mcp` assumes without `--url`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9900/mcp";

/// How long connecting to the hub may take: it is local or one hop away,
/// so seconds mean nobody answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Progress notifications kept for a call whose relay is not registered
/// yet (they can arrive before the request handle is returned); older ones
/// are dropped.
const MAX_PENDING_PROGRESS: usize = 64;

/// The one tool listed while no hub answers.
pub const HUB_STATUS_TOOL: &str = "hub_status";

/// Why `trawl mcp` could not reach its hub.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "no trawl hub answers at {url}: {reason}. Start one with `sudo trawl tap` (it serves MCP at http://127.0.0.1:9900/mcp), or point --url at a running hub"
    )]
    Unreachable { url: String, reason: String },
    #[error("the trawl hub at {url} failed: {reason}")]
    Upstream { url: String, reason: String },
    #[error("stdio: {0}")]
    Stdio(String),
}

/// Where a hub's progress notifications go: the stdio client's token.
type Route = (Peer<RoleServer>, ProgressToken);

#[derive(Debug, Default)]
struct Relay {
    routes: HashMap<ProgressToken, Route>,
    pending: Vec<ProgressNotificationParam>,
}

/// The MCP client side: relays progress from the hub to the stdio client.
#[derive(Clone, Debug, Default)]
struct HubClient {
    relay: Arc<Mutex<Relay>>,
}

impl HubClient {
    fn lock(&self) -> std::sync::MutexGuard<'_, Relay> {
        self.relay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Routes `token`'s notifications to `route`, sending those that came
    /// early.
    async fn register(&self, token: ProgressToken, route: Route) {
        let early: Vec<ProgressNotificationParam> = {
            let mut r = self.lock();
            r.routes.insert(token.clone(), route.clone());
            let (mine, rest) = std::mem::take(&mut r.pending)
                .into_iter()
                .partition(|p| p.progress_token == token);
            r.pending = rest;
            mine
        };
        for p in early {
            forward(&route, p).await;
        }
    }

    fn unregister(&self, token: &ProgressToken) {
        let mut r = self.lock();
        r.routes.remove(token);
        r.pending.retain(|p| &p.progress_token != token);
    }
}

async fn forward(route: &Route, mut p: ProgressNotificationParam) {
    p.progress_token = route.1.clone();
    if let Err(e) = route.0.notify_progress(p).await {
        tracing::debug!(error = %e, "Progress not relayed.");
    }
}

impl ClientHandler for HubClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        let route = {
            let mut r = self.lock();
            match r.routes.get(&params.progress_token) {
                Some(route) => Some(route.clone()),
                None => {
                    if r.pending.len() >= MAX_PENDING_PROGRESS {
                        r.pending.remove(0);
                    }
                    r.pending.push(params.clone());
                    None
                }
            }
        };
        if let Some(route) = route {
            forward(&route, params).await;
        }
    }
}

/// A live connection to the hub.
type Upstream = RunningService<RoleClient, HubClient>;

/// Connects `client` to the hub at `url`, with `token` as bearer token.
async fn connect(
    url: &str,
    token: Option<&str>,
    client: HubClient,
) -> Result<Upstream, ProxyError> {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(t) = token {
        cfg = cfg.auth_header(t.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(cfg);
    let reason = match tokio::time::timeout(CONNECT_TIMEOUT, client.serve(transport)).await {
        Ok(Ok(s)) => return Ok(s),
        Ok(Err(e)) => short_reason(&e.to_string()),
        Err(_) => format!("no answer in {} s", CONNECT_TIMEOUT.as_secs()),
    };
    Err(ProxyError::Unreachable {
        url: url.to_owned(),
        reason,
    })
}

/// rmcp's transport errors name its worker types; a person needs to know
/// whether anything answered at all.
fn short_reason(e: &str) -> String {
    if e.contains("error sending request") {
        "the connection failed (nothing listens there?)".to_owned()
    } else if e.contains("Auth required")
        || e.contains("authorization required")
        || e.contains("HTTP 401")
    {
        "the hub wants a bearer token: pass --token TOKEN or set TRAWL_TOKEN".to_owned()
    } else {
        e.to_owned()
    }
}

/// The tools of the hub at `url` (for `trawl mcp --list-tools`).
pub async fn list_tools(url: &str, token: Option<&str>) -> Result<Vec<Tool>, ProxyError> {
    let up = connect(url, token, HubClient::default()).await?;
    let tools = up
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| ProxyError::Upstream {
            url: url.to_owned(),
            reason: e.to_string(),
        });
    let _ = up.cancel().await;
    tools
}

/// One line per tool: name, annotations, first sentence of its description.
pub fn tool_line(t: &Tool) -> String {
    let a = t.annotations.clone().unwrap_or_default();
    let mut hints = Vec::new();
    if a.read_only_hint == Some(true) {
        hints.push("read-only");
    }
    if a.destructive_hint == Some(true) {
        hints.push("destructive");
    }
    if a.idempotent_hint == Some(true) {
        hints.push("idempotent");
    }
    let desc = t.description.as_deref().unwrap_or("");
    // The first sentence: up to the first ". " that does not end "e.g.".
    let mut end = desc.len();
    let mut from = 0;
    while let Some(i) = desc.get(from..).and_then(|rest| rest.find(". ")) {
        let at = from + i;
        if !desc
            .get(..at)
            .is_some_and(|d| d.ends_with("e.g") || d.ends_with("i.e"))
        {
            end = at;
            break;
        }
        from = at + 2;
    }
    let first = desc.get(..end).unwrap_or(desc).trim_end_matches('.');
    format!("{:<32} [{}] {first}.", t.name, hints.join(", "))
}

/// The stdio server: the hub's tools, forwarded.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<ProxyInner>,
}

#[derive(Debug)]
struct ProxyInner {
    url: String,
    token: Option<String>,
    client: HubClient,
    upstream: tokio::sync::Mutex<Option<Upstream>>,
    /// The last connection error, for the `hub_status` tool.
    last_error: Mutex<Option<String>>,
}

impl Proxy {
    pub fn new(url: &str, token: Option<&str>) -> Proxy {
        Proxy {
            inner: Arc::new(ProxyInner {
                url: url.to_owned(),
                token: token.map(str::to_owned),
                client: HubClient::default(),
                upstream: tokio::sync::Mutex::new(None),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// The hub's peer, connecting first when needed; `Ok((peer, fresh))`
    /// says whether this call made the connection.
    async fn peer(&self) -> Result<(Peer<RoleClient>, bool), ProxyError> {
        let mut up = self.inner.upstream.lock().await;
        if let Some(u) = up.as_ref()
            && !u.is_closed()
        {
            return Ok((u.peer().clone(), false));
        }
        match connect(
            &self.inner.url,
            self.inner.token.as_deref(),
            self.inner.client.clone(),
        )
        .await
        {
            Ok(s) => {
                let peer = s.peer().clone();
                *up = Some(s);
                *self.last_error() = None;
                Ok((peer, true))
            }
            Err(e) => {
                *self.last_error() = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the connection after a transport failure, so the next call
    /// reconnects (the hub may have restarted).
    async fn reset(&self) {
        if let Some(u) = self.inner.upstream.lock().await.take() {
            let _ = u.cancel().await;
        }
    }

    fn status_tool(&self) -> Tool {
        let why = self
            .last_error()
            .clone()
            .unwrap_or_else(|| format!("no trawl hub answers at {}", self.inner.url));
        let schema = serde_json::json!({"type": "object", "properties": {}});
        let schema = match schema {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        Tool::new(
            HUB_STATUS_TOOL,
            format!(
                "The trawl tools are unavailable: {why}. Ask the user to start a hub (`sudo trawl tap` on this host), then call this tool: it reconnects and the real tools appear."
            ),
            Arc::new(schema),
        )
        .with_annotations(ToolAnnotations::new().read_only(true).idempotent(true))
    }

    fn unavailable(&self, e: &ProxyError) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "Error (hub_unavailable): {e}\nHow to fix: start the hub (`sudo trawl tap`) and call the tool again; `trawl mcp` reconnects by itself."
        ))])
    }

    async fn forward_call(
        &self,
        peer: &Peer<RoleClient>,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, rmcp::ServiceError> {
        let mut request = request;
        // The hub gets its own progress token from our client; ours is
        // mapped back to the caller's below.
        request.meta = None;
        let handle = peer
            .send_cancellable_request(
                ClientRequest::CallToolRequest(Request::new(request)),
                PeerRequestOptions::no_options(),
            )
            .await?;
        let token = handle.progress_token.clone();
        if let Some(theirs) = context.meta.get_progress_token() {
            self.inner
                .client
                .register(token.clone(), (context.peer.clone(), theirs))
                .await;
        }
        let r = handle.await_response().await;
        self.inner.client.unregister(&token);
        match r? {
            ServerResult::CallToolResult(r) => Ok(r),
            _ => Err(rmcp::ServiceError::UnexpectedResponse),
        }
    }
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        let mut cfg = server::server_config();
        cfg.capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_prompts()
            .build();
        cfg
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = match self.peer().await {
            Ok((peer, _)) => match peer.list_all_tools().await {
                Ok(t) => t,
                Err(e) => {
                    self.reset().await;
                    *self.last_error() = Some(format!("the hub at {} failed: {e}", self.inner.url));
                    vec![self.status_tool()]
                }
            },
            Err(_) => vec![self.status_tool()],
        };
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (peer, fresh) = match self.peer().await {
            Ok(p) => p,
            Err(e) => return Ok(self.unavailable(&e).into()),
        };
        if fresh {
            // The tool list the client holds may be the hub_status one.
            let _ = context.peer.notify_tool_list_changed().await;
        }
        if request.name == HUB_STATUS_TOOL {
            return Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                "Connected to the trawl hub at {}; list the tools again.",
                self.inner.url
            ))])
            .into());
        }
        match self.forward_call(&peer, request, &context).await {
            Ok(r) => Ok(r.into()),
            Err(e) => {
                self.reset().await;
                let e = ProxyError::Upstream {
                    url: self.inner.url.clone(),
                    reason: e.to_string(),
                };
                Ok(self.unavailable(&e).into())
            }
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let items = match self.peer().await {
            Ok((peer, _)) => peer
                .list_all_resources()
                .await
                .unwrap_or_else(|_| server::resources()),
            Err(_) => server::resources(),
        };
        Ok(ListResourcesResult::with_all_items(items))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if let Ok((peer, _)) = self.peer().await
            && let Ok(r) = peer.read_resource(request.clone()).await
        {
            return Ok(r.into());
        }
        // The reference is static: serve this binary's copy without a hub.
        match server::read_resource_text(&request.uri) {
            Some(text) => {
                Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
            }
            None => Err(ErrorData::resource_not_found(
                format!("no resource {:?}", request.uri),
                None,
            )),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let items = match self.peer().await {
            Ok((peer, _)) => peer
                .list_all_prompts()
                .await
                .unwrap_or_else(|_| server::prompts()),
            Err(_) => server::prompts(),
        };
        Ok(ListPromptsResult::with_all_items(items))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if let Ok((peer, _)) = self.peer().await
            && let Ok(r) = peer.get_prompt(request.clone()).await
        {
            return Ok(r.into());
        }
        server::get_prompt(&request.name, request.arguments.as_ref())
            .map(Into::into)
            .ok_or_else(|| ErrorData::invalid_params(format!("no prompt {:?}", request.name), None))
    }
}

/// Serves the proxy on stdin/stdout until the client closes it. Says on
/// stderr whether the hub answered.
pub async fn run_stdio(url: &str, token: Option<&str>) -> Result<(), ProxyError> {
    let proxy = Proxy::new(url, token);
    match proxy.peer().await {
        Ok((peer, _)) => {
            let n = peer.list_all_tools().await.map(|t| t.len()).unwrap_or(0);
            eprintln!("trawl mcp: forwarding to the trawl hub at {url} ({n} tools).");
        }
        Err(e) => eprintln!(
            "trawl mcp: {e}.\ntrawl mcp: serving a single `{HUB_STATUS_TOOL}` tool until the hub answers; calls retry the connection."
        ),
    }
    let service = proxy
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ProxyError::Stdio(e.to_string()))?;
    service
        .waiting()
        .await
        .map_err(|e| ProxyError::Stdio(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lines_show_hints_and_the_first_sentence() {
        let t = Tool::new(
            "list_api_calls",
            "Calls matching a filter, e.g. `http`. More text.",
            Arc::new(serde_json::Map::new()),
        )
        .with_annotations(ToolAnnotations::new().read_only(true).idempotent(true));
        let l = tool_line(&t);
        assert!(l.starts_with("list_api_calls "), "{l}");
        assert!(
            l.ends_with("[read-only, idempotent] Calls matching a filter, e.g. `http`."),
            "{l}"
        );
    }
}
