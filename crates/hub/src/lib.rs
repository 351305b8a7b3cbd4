//! trawl's HTTP API: nodes, data boundaries, snapshots, dissection
//! (indexing) jobs on snapshots, KFL call and flow listings, one call with
//! its payloads, statistics, SQL, the field catalogue and PCAP export
//! (streamed, or as a job: [`exports`]), as JSON under `/api/v1` ([`api`]
//! lists every route; `openapi.yaml` next to this crate documents them and
//! a test keeps the two equal).
//!
//! `trawl tap` and `trawl worker` serve it next to live capture with
//! [`spawn_server`]; `trawl hub` serves the same routes over workers
//! ([`Hub::new_cluster`], [`cluster`]): it fans each request out to them
//! with reqwest and merges the answers (lists by time with a cursor
//! holding every node's position, statistics exactly from their
//! histograms), flagging `partial` when a worker is down. Disk and
//! DataFusion work runs on blocking threads (`spawn_blocking`, or a thread
//! of its own for a dissection job), never on the runtime's workers.
//!
//! Security: the API gives packet payloads away, so it listens on loopback
//! unless a bearer token is configured ([`check_bind`]); with a token every
//! request must carry `Authorization: Bearer <token>`.

pub mod api;
pub mod cluster;
mod creations;
pub mod error;
pub mod exports;
mod insights;
pub mod jobs;
pub mod live;
pub mod mcp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use cluster::ClusterConfig;
pub use error::ApiError;
pub use live::LiveNode;

/// What the API serves and how.
#[derive(Clone, Debug, Default)]
pub struct HubConfig {
    /// The data directory: `raw/<node>/` stores and `snapshots/`.
    pub data_dir: PathBuf,
    /// Bearer token every request must carry; `None` serves without one
    /// (allowed on loopback only, see [`check_bind`]).
    pub token: Option<String>,
    /// Indexing threads of a dissection job; 0 uses every core.
    pub index_threads: usize,
    /// What the operator allows MCP tools: destructive ones
    /// (`delete_snapshot`) off and credentials in headers and cookies
    /// redacted unless asked otherwise (`trawl tap --allow-destructive`,
    /// `--no-redact`).
    pub tools: trawl_mcp::ToolPolicy,
    /// A workloads file (YAML or JSON, as `trawl index --workloads` reads)
    /// naming pods, services and external endpoints in dissections; read
    /// when each dissection starts, so a file rewritten meanwhile counts.
    pub workloads: Option<PathBuf>,
}

/// The shared state of the API: configuration, the live node (when a tap
/// captures in this process) and the dissection jobs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: HubConfig,
    live: Option<Arc<LiveNode>>,
    jobs: jobs::Jobs,
    exports: exports::Exports,
    creations: creations::Creations,
    cluster: Option<cluster::Cluster>,
}

impl Hub {
    /// An API over `cfg.data_dir`; `live` is the node a tap in this process
    /// captures into (its boundaries carry kernel drops, and snapshots ask
    /// it to flush first).
    pub fn new(cfg: HubConfig, live: Option<Arc<LiveNode>>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                jobs: jobs::Jobs::new(cfg.workloads.clone()),
                cfg,
                live,
                exports: exports::Exports::default(),
                creations: creations::Creations::default(),
                cluster: None,
            }),
        }
    }

    /// A hub over workers: every route fans out to `cluster.workers`
    /// (their own APIs) and merges the answers; `cfg.data_dir` holds the
    /// hub's snapshot manifests and MCP's PCAP exports.
    pub fn new_cluster(cfg: HubConfig, cluster: ClusterConfig) -> Result<Hub, StartError> {
        let c = cluster::Cluster::new(cluster, &cfg.data_dir)?;
        Ok(Hub {
            inner: Arc::new(Inner {
                cfg,
                live: None,
                jobs: jobs::Jobs::default(),
                exports: exports::Exports::default(),
                creations: creations::Creations::default(),
                cluster: Some(c),
            }),
        })
    }

    /// The workers, when this is a cluster hub.
    pub fn cluster(&self) -> Option<&cluster::Cluster> {
        self.inner.cluster.as_ref()
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.cfg
    }

    pub fn live(&self) -> Option<&Arc<LiveNode>> {
        self.inner.live.as_ref()
    }

    pub(crate) fn jobs(&self) -> &jobs::Jobs {
        &self.inner.jobs
    }

    pub(crate) fn exports(&self) -> &exports::Exports {
        &self.inner.exports
    }

    pub(crate) fn creations(&self) -> &creations::Creations {
        &self.inner.creations
    }
}

/// Why the API refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to serve the API on {0} without a token: it hands out captured traffic. Give --token TOKEN (or set TRAWL_TOKEN) and send `Authorization: Bearer TOKEN`, or listen on 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("cannot start the API's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Cluster(String),
}

/// Checks that serving on `addr` is allowed: loopback always, any other
/// address only with a non-empty token.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), StartError> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(StartError::TokenRequired(addr))
    }
}

/// Binds `addr` (after [`check_bind`]) and returns the listener, so that a
/// caller learns of a port in use before it starts anything else.
pub fn bind(addr: SocketAddr, token: Option<&str>) -> Result<std::net::TcpListener, StartError> {
    check_bind(addr, token)?;
    let l = std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
        addr,
        hint: if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another trawl tap? stop it, or give --listen 127.0.0.1:PORT)"
        } else {
            ""
        },
        source,
    })?;
    l.set_nonblocking(true).map_err(|source| StartError::Bind {
        addr,
        source,
        hint: "",
    })?;
    Ok(l)
}

/// Worker threads of the API's runtime: requests only parse, dispatch and
/// serialise there (the work runs on blocking threads), so two are plenty
/// and leave the cores to capture and indexing.
const RUNTIME_WORKERS: usize = 2;

/// A running API server on a thread of its own; [`ServerHandle::stop`]
/// shuts it down gracefully (in-flight requests finish).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl ServerHandle {
    /// The address it listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for in-flight requests, joins the thread.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the API thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Serves `hub` on `listener` (from [`bind`]) on a new thread with its own
/// small tokio runtime; for synchronous callers such as `trawl tap`.
pub fn spawn_server(listener: std::net::TcpListener, hub: Hub) -> Result<ServerHandle, StartError> {
    let addr = listener.local_addr().map_err(StartError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .thread_name("trawl-api")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("trawl-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve(listener, hub, async {
                    let _ = rx.await;
                })
                .await
            })
        })
        .map_err(StartError::Runtime)?;
    tracing::info!(%addr, "API listening.");
    Ok(ServerHandle {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Serves `hub` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Hub,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router(hub))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_other_addresses_do() {
        let lo: SocketAddr = "127.0.0.1:9900".parse().unwrap();
        let lo6: SocketAddr = "[::1]:9900".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9900".parse().unwrap();
        assert!(check_bind(lo, None).is_ok());
        assert!(check_bind(lo6, None).is_ok());
        let e = check_bind(any, None).unwrap_err().to_string();
        assert!(e.contains("--token") && e.contains("TRAWL_TOKEN"), "{e}");
        assert!(check_bind(any, Some("")).is_err());
        assert!(check_bind(any, Some("s3cret")).is_ok());
    }
}
