//! `trawl worker` and `trawl hub`: the two halves of a cluster. A worker
//! is `trawl tap` under another name (live capture on its node into its
//! raw store, and the node API for a hub to reach: `--listen 0.0.0.0:9900
//! --token T`, `--node NAME`); the hub captures nothing and serves the same
//! API by fanning every request out to its workers (`trawl_hub::cluster`),
//! plus MCP at `/mcp` over it. Called from `main.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use trawl_hub::{ClusterConfig, Hub, HubConfig};

use crate::snapshot::default_data_dir;
use crate::tap::DEFAULT_LISTEN;

/// How often the hub's main thread looks whether a signal asked it to stop.
const SIGNAL_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    tap: crate::tap::Args,
}

/// `trawl worker`: a tap meant to be reached by a hub.
pub fn worker(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    crate::tap::run(&args.tap)
}

#[derive(Debug, clap::Args)]
pub struct HubArgs {
    /// A worker's API, e.g. http://10.0.0.5:9900; repeat for each worker.
    #[arg(long = "worker", required = true)]
    workers: Vec<String>,
    /// Address of the hub's API. Any address but loopback needs a token
    /// (one is generated and printed when none is given).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Bearer token the hub's API requires [default: $TRAWL_TOKEN; none on
    /// loopback].
    #[arg(long)]
    token: Option<String>,
    /// Bearer token the workers require [default: $TRAWL_WORKER_TOKEN,
    /// else the hub's token].
    #[arg(long)]
    worker_token: Option<String>,
    /// Longest wait for one worker's answer before it counts as missing,
    /// e.g. 10s, 2m [default: 30s].
    #[arg(long)]
    worker_timeout: Option<String>,
    /// Where the hub keeps its snapshot manifests and MCP's PCAP exports
    /// [default: $TRAWL_DATA, else ~/.local/share/trawl].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Let MCP clients run destructive tools (`delete_snapshot`).
    #[arg(long)]
    allow_destructive: bool,
    /// Show agents credentials in headers and cookies; redacted by default.
    #[arg(long)]
    no_redact: bool,
}

fn env_token(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.is_empty())
}

/// Bytes of randomness in a generated token: 192 bits, past guessing.
const TOKEN_BYTES: usize = 24;

/// The token to serve with on `listen`: the one given, or, when the
/// address is not loopback and none was given, a new random one, printed
/// on stderr so that the operator can hand it to clients (the API gives
/// captured payloads away; it never serves a network without a token).
pub fn token_for(
    listen: SocketAddr,
    given: Option<String>,
    what: &str,
) -> anyhow::Result<Option<String>> {
    if given.is_some() || listen.ip().is_loopback() {
        return Ok(given);
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom for a token")?,
        &mut bytes,
    )
    .context("reading /dev/urandom for a token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!(
        "{what}: no --token given for {listen}; generated one: {token}\n  (clients send `Authorization: Bearer {token}`; pass --token or TRAWL_TOKEN to choose it)"
    );
    Ok(Some(token))
}

/// `trawl hub`.
pub fn hub(args: &HubArgs) -> anyhow::Result<ExitCode> {
    let token = args
        .token
        .clone()
        .or_else(|| env_token("TRAWL_TOKEN"))
        .filter(|t| !t.is_empty());
    let worker_token = args
        .worker_token
        .clone()
        .or_else(|| env_token("TRAWL_WORKER_TOKEN"))
        .or_else(|| token.clone());
    let timeout = args
        .worker_timeout
        .as_deref()
        .map(trawl_rawstore::parse_duration)
        .transpose()
        .context("--worker-timeout")?
        .map(|ns| Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
        .filter(|d| !d.is_zero());
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let token = token_for(args.listen, token, "trawl hub")?;
    let listener = trawl_hub::bind(args.listen, token.as_deref())?;
    let hub = Hub::new_cluster(
        HubConfig {
            data_dir: data.clone(),
            token,
            index_threads: 0,
            tools: trawl_mcp::ToolPolicy {
                allow_destructive: args.allow_destructive,
                redact: !args.no_redact,
            },
            workloads: None,
        },
        ClusterConfig {
            workers: args.workers.clone(),
            worker_token,
            timeout,
        },
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    let server = trawl_hub::spawn_server(listener, hub)?;
    eprintln!(
        "trawl hub: serving http://{} over {} worker(s) ({}); manifests in {}; stop with Ctrl-C or SIGTERM",
        server.addr(),
        args.workers.len(),
        args.workers.join(", "),
        data.display()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(SIGNAL_POLL);
    }
    server.stop().context("stopping the API")?;
    eprintln!("trawl hub: stopped");
    Ok(ExitCode::SUCCESS)
}
