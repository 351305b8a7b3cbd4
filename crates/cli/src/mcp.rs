//! `trawl mcp`: the stdio MCP server an agent starts
//! (`claude mcp add trawl -- trawl mcp`). It forwards to a hub's `/mcp`
//! endpoint (`trawl tap` serves one on 127.0.0.1:9900), where the tools are
//! defined; `--list-tools` prints them instead. The work is in
//! `trawl_mcp::proxy`; stdout is the MCP channel, so everything for people
//! goes to stderr.

use std::process::ExitCode;

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The hub's MCP endpoint [default: $TRAWL_MCP_URL, or http://127.0.0.1:9900/mcp].
    #[arg(long)]
    url: Option<String>,
    /// Bearer token of a hub that requires one [default: $TRAWL_TOKEN].
    #[arg(long)]
    token: Option<String>,
    /// Print the hub's tools (name, annotations, summary) and exit.
    #[arg(long)]
    list_tools: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let url = args
        .url
        .clone()
        .or_else(|| std::env::var("TRAWL_MCP_URL").ok())
        .unwrap_or_else(|| trawl_mcp::proxy::DEFAULT_URL.to_owned());
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("TRAWL_TOKEN").ok())
        .filter(|t| !t.is_empty());
    runtime.block_on(async {
        if args.list_tools {
            let tools = trawl_mcp::proxy::list_tools(&url, token.as_deref()).await?;
            for t in &tools {
                println!("{}", trawl_mcp::proxy::tool_line(t));
            }
            eprintln!("{} tools at {url}", tools.len());
        } else {
            trawl_mcp::proxy::run_stdio(&url, token.as_deref()).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
