//! [`TrawlMcp`], the rmcp `ServerHandler` of trawl: tools from
//! [`crate::tools::TOOLS`], the KFL and field-catalogue resources, and the
//! investigation prompts of [`crate::reference::PLAYBOOKS`], over any
//! [`Backend`]. The hub serves it over Streamable HTTP
//! ([`crate::http_service`]); `trawl mcp` forwards to that
//! ([`crate::proxy`]).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    GetPromptResult, Implementation, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::backend::Backend;
use crate::reference::{KFL_REFERENCE, PLAYBOOKS, field_tables, fields_markdown, playbook};
use crate::tools::{self, Progress, TOOLS, ToolPolicy};

/// What the agent is told when it connects.
pub const INSTRUCTIONS: &str = "trawl shows the network traffic of this host or cluster as API calls and L4 flows. \
Investigate in this order: get_data_boundaries (what raw packets each node holds) -> create_snapshot (a time window) -> \
start_snapshot_dissection (index it; waits with progress) -> list_api_calls with a KFL filter / get_api_stats / get_api_call \
-> list_l4_flows, get_l4_flow_summary, list_workloads, list_ips -> export_snapshot_pcap for Wireshark. \
elapsed_time is in microseconds; timestamps are RFC 3339 UTC in answers and compare with timestamp(\"...\") in KFL. describe_fields (or the trawl://kfl resource) explains KFL and every field.";

/// URI of the KFL reference resource.
pub const KFL_URI: &str = "trawl://kfl";

/// URI of a table's field catalogue resource.
fn fields_uri(table: &str) -> String {
    format!("trawl://fields/{table}")
}

/// The MCP server over backend `B`. Cheap to clone (one per session).
#[derive(Debug)]
pub struct TrawlMcp<B> {
    backend: Arc<B>,
    policy: ToolPolicy,
}

impl<B> Clone for TrawlMcp<B> {
    fn clone(&self) -> Self {
        TrawlMcp {
            backend: self.backend.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<B: Backend> TrawlMcp<B> {
    pub fn new(backend: Arc<B>, policy: ToolPolicy) -> Self {
        TrawlMcp { backend, policy }
    }
}

/// The server's identity and capabilities (shared with the proxy, which
/// announces the same).
pub fn server_config() -> ServerConfig {
    let caps = ServerCapabilities::builder()
        .enable_tools()
        .enable_resources()
        .enable_prompts()
        .build();
    ServerConfig::new(caps)
        .with_server_info(Implementation::new("trawl", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
}

/// The resources: the KFL reference and one field catalogue per table.
pub fn resources() -> Vec<Resource> {
    let mut out = vec![
        Resource::new(KFL_URI, "kfl")
            .with_title("KFL reference")
            .with_description("The filter language of list_api_calls and get_api_stats: operators, functions, units, examples.")
            .with_mime_type("text/plain"),
    ];
    for (table, _) in field_tables() {
        out.push(
            Resource::new(fields_uri(table), format!("{table}-fields"))
                .with_title(format!("{table} fields"))
                .with_description(format!(
                    "Every field of {table}: KFL name, type, SQL column, meaning, example."
                ))
                .with_mime_type("text/markdown"),
        );
    }
    out
}

/// The text of resource `uri`.
pub fn read_resource_text(uri: &str) -> Option<String> {
    if uri == KFL_URI {
        return Some(KFL_REFERENCE.to_owned());
    }
    field_tables()
        .into_iter()
        .find(|(t, _)| fields_uri(t) == uri)
        .map(|(t, f)| fields_markdown(t, f))
}

/// The prompts, one per playbook.
pub fn prompts() -> Vec<Prompt> {
    PLAYBOOKS
        .iter()
        .map(|p| {
            let args = p.argument.map(|(name, doc)| {
                vec![
                    PromptArgument::new(name)
                        .with_description(doc)
                        .with_required(false),
                ]
            });
            Prompt::new(p.name, Some(p.description), args)
        })
        .collect()
}

/// Prompt `name` with its argument filled in.
pub fn get_prompt(
    name: &str,
    args: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<GetPromptResult> {
    let p = playbook(name)?;
    let arg = p
        .argument
        .and_then(|(a, _)| args.and_then(|m| m.get(a)).and_then(|v| v.as_str()))
        .filter(|v| !v.is_empty())
        .unwrap_or(match name {
            "analyze_traffic" => "15m",
            _ => "all services",
        });
    let text = p.text.replace("{arg}", arg);
    Some(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(p.description),
    )
}

impl<B: Backend> ServerHandler for TrawlMcp<B> {
    fn get_info(&self) -> ServerConfig {
        server_config()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            TOOLS.iter().map(|t| t.tool()).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let progress = Progress::new(context.peer.clone(), context.meta.get_progress_token());
        let name = request.name.to_string();
        tracing::debug!(tool = %name, "MCP tool call.");
        let r = tools::call(
            self.backend.as_ref(),
            &self.policy,
            &progress,
            &name,
            request.arguments,
        )
        .await;
        Ok(match r {
            Ok(out) => out.into_result(),
            Err(e) => e.into_result(),
        }
        .into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match read_resource_text(&request.uri) {
            Some(text) => {
                Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
            }
            None => Err(ErrorData::resource_not_found(
                format!("no resource {:?}; resources/list lists them", request.uri),
                None,
            )),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        match get_prompt(&request.name, request.arguments.as_ref()) {
            Some(p) => Ok(p.into()),
            None => Err(ErrorData::invalid_params(
                format!(
                    "no prompt {:?}; the prompts are {}",
                    request.name,
                    PLAYBOOKS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            )),
        }
    }
}
