//! `trawl tap`: live capture into the rolling raw store. Opens an AF_PACKET
//! capture (`trawl-capture`), appends every packet of each ring block to the
//! node's `RawStore` (`trawl-rawstore`), flushes at least once a second so
//! that `trawl boundaries` and `trawl snapshot create` run from another
//! process see recent packets, reports kernel drops to the store and
//! enforces retention. It also serves trawl's HTTP API (`trawl-hub`) on
//! 127.0.0.1:[`DEFAULT_API_PORT`] (`--listen`; any other address with a
//! bearer token, generated and printed when none is given) on a thread of
//! its own: the capture loop publishes its boundaries there and flushes
//! when the API is about to cut a snapshot; the API's own traffic is
//! excluded from capture. Called from `main.rs`, also as `trawl worker` (the same, for a
//! `trawl hub` to reach; see `cluster.rs`).
//!
//! Output: on a terminal, a status line on stderr refreshed every second
//! (packets/s, MB/s, kernel drops, buffer window); otherwise (a service, a
//! test) one log line every [`LOG_EVERY`] so that a journal is not flooded.
//! SIGINT or SIGTERM stop the API (in-flight requests finish) and capture,
//! flush and close the store, print a summary and exit 0; a second SIGINT/SIGTERM exits at once (status 1).

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use trawl_capture::{Capture, CaptureConfig, exclude_api_traffic};
use trawl_hub::{Hub, HubConfig, LiveNode};
use trawl_rawstore::{Boundaries, RawStore, StoreConfig, parse_duration};

use crate::snapshot::default_data_dir;
use trawl_model::time::rfc3339_micros;

/// trawl's default API port. `trawl tap` serves the HTTP API there (on
/// 127.0.0.1); its traffic is excluded from capture so that trawl does not
/// record itself being queried.
pub const DEFAULT_API_PORT: u16 = 9900;

/// Where `trawl tap` serves its API unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9900";

/// Longest time packets stay in the store's write buffer: a snapshot taken
/// from another process sees everything older than this.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How often the terminal status line is redrawn.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How often a status line is logged when stderr is not a terminal: often
/// enough to see a tap is alive in a journal, rare enough not to fill it.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Longest wait for a ring block: bounds how late a signal or a flush is
/// noticed when the interface is quiet (a signal also interrupts the wait).
const POLL_TIMEOUT: Duration = Duration::from_millis(200);

/// Largest `--ring-mb`: the capture crate refuses rings over 4 GiB anyway,
/// this only gives the message earlier.
const MAX_RING_MB: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interface to capture on; repeat for several [default: any].
    #[arg(long = "interface", short = 'i')]
    interfaces: Vec<String>,
    /// Capture filter in tcpdump syntax (trawl's API port on localhost is
    /// always excluded).
    #[arg(long)]
    filter: Option<String>,
    /// Bytes kept of each packet [default: 262144].
    #[arg(long)]
    snaplen: Option<u32>,
    /// Kernel ring size per interface, in MiB [default: 64].
    #[arg(long)]
    ring_mb: Option<usize>,
    /// Put the interfaces in promiscuous mode.
    #[arg(long)]
    promiscuous: bool,
    /// Node name of this store [default: the host name].
    #[arg(long)]
    node: Option<String>,
    /// Total size of the raw store, e.g. 1GiB, 500MiB [default: 1GiB].
    #[arg(long, value_parser = parse_size)]
    max_bytes: Option<u64>,
    /// Oldest packets kept, e.g. 24h, 30m, 7d [default: 24h].
    #[arg(long)]
    max_age: Option<String>,
    /// Size of one segment file, in MiB [default: 64].
    #[arg(long)]
    segment_mb: Option<u64>,
    /// Data directory [default: $TRAWL_DATA, else ~/.local/share/trawl].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address of the HTTP API. Any address but loopback needs a token
    /// (one is generated and printed when none is given).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Bearer token the API requires [default: $TRAWL_TOKEN; none on
    /// loopback].
    #[arg(long)]
    token: Option<String>,
    /// Capture only: serve no HTTP API.
    #[arg(long)]
    no_api: bool,
    /// Let MCP clients run destructive tools (`delete_snapshot`); off by
    /// default, so an agent cannot delete evidence.
    #[arg(long)]
    allow_destructive: bool,
    /// Show agents credentials in headers and cookies (Authorization,
    /// Cookie, API keys, …); redacted by default.
    #[arg(long)]
    no_redact: bool,
    /// Workloads file (YAML or JSON, as `trawl index --workloads` reads)
    /// naming pods, services and external endpoints in the API's
    /// dissections; read when each dissection starts, so it may change
    /// (or appear) while the tap runs.
    #[arg(long, value_name = "FILE")]
    workloads: Option<PathBuf>,
}

impl Args {
    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("TRAWL_TOKEN").ok())
            .filter(|t| !t.is_empty())
    }
}

/// A size such as `1GiB`, `500MiB`, `64M`, `2G`, `4096` (bytes). Units are
/// binary (K/KiB = 1024), as for ring and store sizes everywhere in trawl.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let err = || format!("invalid size {s:?}: use a number and a unit such as 1GiB, 500MiB or 64M");
    let n: u64 = num.parse().map_err(|_| err())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err()),
    };
    n.checked_mul(1 << shift).ok_or_else(err)
}

/// The host name, as the kernel has it; the node name by default.
fn hostname() -> anyhow::Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading the host name from /proc/sys/kernel/hostname; give --node NAME")?;
    Ok(h.trim().to_string())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn capture_config(args: &Args) -> anyhow::Result<CaptureConfig> {
    let mut cfg = CaptureConfig::default();
    if !args.interfaces.is_empty() {
        cfg.interfaces.clone_from(&args.interfaces);
    }
    if let Some(s) = args.snaplen {
        cfg.snaplen = s;
    }
    if let Some(mb) = args.ring_mb {
        if mb == 0 || mb > MAX_RING_MB {
            anyhow::bail!("--ring-mb {mb} must be in 1-{MAX_RING_MB}");
        }
        // Whole blocks of the default size; at least one.
        cfg.block_count = (mb << 20).div_ceil(cfg.block_size).max(1);
    }
    cfg.promiscuous = args.promiscuous;
    cfg.filter = Some(api_excluded(
        args.filter.as_deref(),
        (!args.no_api).then_some(args.listen),
    ));
    Ok(cfg)
}

/// The capture filter: the user's, less trawl's own API traffic. The
/// default port on loopback is always left out (a CLI or agent may query
/// another trawl on it); an API on another address is left out too: on a
/// wildcard address every TCP packet of its port, else those to and from
/// that address and port.
fn api_excluded(user: Option<&str>, listen: Option<SocketAddr>) -> String {
    let mut f = exclude_api_traffic(user, DEFAULT_API_PORT);
    if let Some(addr) = listen {
        let port = addr.port();
        match addr.ip() {
            ip if ip.is_unspecified() => f = format!("{f} and not tcp port {port}"),
            ip if ip.is_loopback() => {
                if port != DEFAULT_API_PORT {
                    f = format!("{f} and not (tcp port {port} and (host 127.0.0.1 or host ::1))");
                }
            }
            IpAddr::V4(ip) => f = format!("{f} and not (tcp port {port} and host {ip})"),
            IpAddr::V6(ip) => f = format!("{f} and not (tcp port {port} and host {ip})"),
        }
    }
    f
}

fn store_config(args: &Args) -> anyhow::Result<StoreConfig> {
    let mut cfg = StoreConfig::default();
    if let Some(b) = args.max_bytes {
        cfg.max_bytes = b;
    }
    if let Some(a) = &args.max_age {
        let ns = parse_duration(a).context("--max-age")?;
        cfg.max_age_secs = u64::try_from(ns / 1_000_000_000).unwrap_or(0).max(1);
    }
    if let Some(mb) = args.segment_mb {
        cfg.segment_bytes = mb
            .checked_mul(1 << 20)
            .context("--segment-mb is too large")?;
    }
    if let Some(s) = args.snaplen {
        // The store cannot keep more than a pcap record holds; capture may.
        cfg.snaplen = s.min(cfg.snaplen);
    }
    Ok(cfg)
}

/// Counters of this run, for the status line and the summary.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    packets: u64,
    bytes: u64,
}

/// `trawl tap`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let cap_cfg = capture_config(args)?;
    let store_cfg = store_config(args)?;
    let node = match &args.node {
        Some(n) => n.clone(),
        None => hostname()?,
    };
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let token = if args.no_api {
        args.token()
    } else {
        crate::cluster::token_for(args.listen, args.token(), "trawl tap")?
    };
    // Bound first, so that a port in use (another tap) is reported before
    // anything is captured.
    let listener = if args.no_api {
        None
    } else {
        Some(trawl_hub::bind(args.listen, token.as_deref())?)
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal sets `stop`; a second one, with `stop` already
        // set, exits at once — for a flush stuck on a dead disk.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }

    let mut capture = match Capture::open(&cap_cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: opening capture on {}: {e}",
                cap_cfg.interfaces.join(",")
            );
            return Ok(ExitCode::from(2));
        }
    };
    // After the capture, so that a capture refused (no permission, no such
    // interface) leaves no empty node directory behind.
    let mut store = RawStore::open(&data, &node, store_cfg)
        .with_context(|| format!("opening the raw store in {}", data.display()))?;
    let live = Arc::new(LiveNode::new(&node));
    live.publish(store.boundaries());
    let server = match listener {
        Some(l) => {
            let hub = Hub::new(
                HubConfig {
                    data_dir: data.clone(),
                    token,
                    index_threads: 0,
                    tools: trawl_mcp::ToolPolicy {
                        allow_destructive: args.allow_destructive,
                        redact: !args.no_redact,
                    },
                    // Absolute, so the file named on the command line is
                    // the one read however long the tap runs.
                    workloads: args
                        .workloads
                        .as_deref()
                        .map(std::path::absolute)
                        .transpose()
                        .context("--workloads")?,
                },
                Some(Arc::clone(&live)),
            );
            Some(trawl_hub::spawn_server(l, hub)?)
        }
        None => None,
    };
    let api = server.as_ref().map_or_else(
        || "no API".to_owned(),
        |s| format!("API on http://{}", s.addr()),
    );
    eprintln!(
        "trawl tap: capturing on {} into {} (node {node}, {api}); stop with Ctrl-C or SIGTERM",
        cap_cfg.interfaces.join(","),
        store.dir().display()
    );

    let terminal = std::io::stderr().is_terminal();
    let report_every = if terminal { STATUS_EVERY } else { LOG_EVERY };
    let mut totals = Totals::default();
    let mut last_report = (Instant::now(), totals);
    let mut last_flush = Instant::now();
    let mut write_error_logged = false;

    while !stop.load(Ordering::Relaxed) {
        let failed = match capture.next_batch(POLL_TIMEOUT) {
            Ok(Some(batch)) => {
                let link = batch.link_type();
                for p in batch.packets() {
                    totals.packets += 1;
                    totals.bytes += u64::from(p.caplen);
                    if let Err(e) = store.append(p.ts_ns, link, p.data, p.origlen) {
                        // The store counts what it lost and carries on; say
                        // so once rather than per packet.
                        if !write_error_logged {
                            eprintln!("warning: raw store: {e:#} (later errors are counted)");
                            write_error_logged = true;
                        }
                    }
                }
                None
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            // Poll failures other than EINTR are not transient.
            stop_api(server);
            finish(store, &mut capture, totals, terminal)?;
            return Err(e).context("reading the capture ring");
        }
        // The API is about to cut a snapshot: write what was captured.
        let wanted = live.flush_wanted();
        if wanted.is_some() || last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = store.flush() {
                eprintln!("warning: raw store flush: {e:#}");
            }
            store.set_capture_drops(capture.stats().drops);
            store.enforce_retention(Some(now_ns()));
            live.publish(store.boundaries());
            if let Some(g) = wanted {
                live.flushed(g);
            }
            last_flush = Instant::now();
        }
        let (at, before) = last_report;
        let elapsed = at.elapsed();
        if elapsed >= report_every {
            let line = status_line(&store.boundaries(), totals, before, elapsed);
            if terminal {
                eprint!("\r{line}\x1b[K");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("trawl tap: {line}");
            }
            last_report = (Instant::now(), totals);
        }
    }
    stop_api(server);
    finish(store, &mut capture, totals, terminal)?;
    Ok(ExitCode::SUCCESS)
}

/// Stops the API before the store closes, so that no snapshot is cut from
/// a store being closed.
fn stop_api(server: Option<trawl_hub::ServerHandle>) {
    if let Some(s) = server
        && let Err(e) = s.stop()
    {
        eprintln!("warning: the API stopped with an error: {e}");
    }
}

/// Flushes and closes the store and prints the summary.
fn finish(
    mut store: RawStore,
    capture: &mut Capture,
    totals: Totals,
    terminal: bool,
) -> anyhow::Result<()> {
    let stats = capture.stats();
    store.set_capture_drops(stats.drops);
    let b = store.boundaries();
    store.close().context("closing the raw store")?;
    if terminal {
        eprintln!();
    }
    eprintln!(
        "trawl tap: stopped; {} packets ({}) captured, {} dropped by the kernel, {} lost by the store; buffer {} ({} packets, {})",
        totals.packets,
        human_bytes(totals.bytes),
        stats.drops,
        b.store_drops,
        window(&b),
        b.packets,
        human_bytes(b.bytes)
    );
    Ok(())
}

/// `packets/s, MB/s, drops, window` since the previous report.
fn status_line(b: &Boundaries, now: Totals, before: Totals, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let pps = (now.packets - before.packets) as f64 / secs;
    let mbps = (now.bytes - before.bytes) as f64 / secs / 1e6;
    format!(
        "{pps:.0} pkt/s  {mbps:.2} MB/s  drops {}  buffer {} ({} packets, {})",
        b.drops,
        window(b),
        b.packets,
        human_bytes(b.bytes)
    )
}

fn window(b: &Boundaries) -> String {
    match (b.oldest_ts, b.newest_ts) {
        (Some(o), Some(n)) => format!("{} → {}", rfc3339_micros(o), rfc3339_micros(n)),
        _ => "empty".to_string(),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2 g").unwrap(), 2 << 30);
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("1PiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }

    #[test]
    fn filter_always_excludes_the_api_port() {
        let args = Args {
            interfaces: vec![],
            filter: Some("tcp port 80".into()),
            snaplen: None,
            ring_mb: Some(8),
            promiscuous: false,
            node: None,
            max_bytes: None,
            max_age: None,
            segment_mb: None,
            data: None,
            listen: DEFAULT_LISTEN.parse().unwrap(),
            token: None,
            no_api: false,
            allow_destructive: false,
            no_redact: false,
            workloads: None,
        };
        let c = capture_config(&args).unwrap();
        assert_eq!(c.interfaces, vec!["any".to_string()]);
        assert_eq!(c.block_count * c.block_size, 8 << 20);
        let f = c.filter.unwrap();
        assert!(f.starts_with("(tcp port 80) and "), "{f}");
        assert!(f.contains("9900"), "{f}");
        assert_eq!(f.matches("9900").count(), 1, "{f}");
    }

    #[test]
    fn an_api_elsewhere_is_excluded_too() {
        let on = |a: &str| api_excluded(None, Some(a.parse().unwrap()));
        assert!(
            on("127.0.0.1:7000")
                .ends_with("and not (tcp port 7000 and (host 127.0.0.1 or host ::1))")
        );
        assert!(on("0.0.0.0:9900").ends_with("and not tcp port 9900"));
        assert!(on("10.0.0.5:9900").ends_with("and not (tcp port 9900 and host 10.0.0.5)"));
        // Every one compiles for the link types a tap captures.
        for a in [
            "127.0.0.1:7000",
            "0.0.0.0:9900",
            "10.0.0.5:9900",
            "[fd00::1]:9900",
        ] {
            let f = on(a);
            for link in [
                trawl_packet::LinkType::Ethernet,
                trawl_packet::LinkType::LinuxSll2,
            ] {
                trawl_capture::compile_filter(&f, link, 65535)
                    .unwrap_or_else(|e| panic!("{f}: {e}"));
            }
        }
    }
}
