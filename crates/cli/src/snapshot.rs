//! The raw-store verbs: `trawl import`, `trawl snapshot
//! create|list|show|delete`, `trawl export pcap` and `trawl boundaries`.
//!
//! `snapshot`, `export` and `boundaries` work against a running `trawl tap`
//! through its HTTP API (`--url`, or the default address when a tap
//! answers there; see `hub_client.rs`), or directly on a data directory
//! (`--data DIR`, or the default directory when no tap answers). A running
//! tap owns the same directory; working on it directly only reads its raw
//! store (snapshots copy segments, never change them), so it is safe
//! beside it, but misses the last second the tap has not flushed yet.
//! `trawl import` always works on a data directory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use trawl_hub::api::packet_filter;
use trawl_rawstore::snapshot::begin_snapshot;
use trawl_rawstore::{
    ExportFormat, ExportOptions, ImportRequest, SnapshotManifest, SnapshotRequest, delete_snapshot,
    export, get_snapshot, import_pcap, list_nodes, list_snapshots, parse_time, parse_window,
    read_node_dir,
};

use crate::hub_client::{DEFAULT_URL, HubClient};

/// Pause between looks at a snapshot being created by the API: a local
/// one takes a fraction of a second to seconds.
const CREATE_POLL: std::time::Duration = std::time::Duration::from_millis(200);

use trawl_model::time::rfc3339_micros;

/// Where trawl keeps raw captures and snapshots when `--data` is not given:
/// `$TRAWL_DATA`, else `$XDG_DATA_HOME/trawl`, else `~/.local/share/trawl`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRAWL_DATA") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("trawl");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/trawl")
}

#[derive(Debug, clap::Args)]
pub struct DataArg {
    /// Data directory (raw store and snapshots) [default: the API of a
    /// running `trawl tap` if one answers at http://127.0.0.1:9900, else
    /// $TRAWL_DATA, else ~/.local/share/trawl].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// The API of a running `trawl tap` (e.g. http://127.0.0.1:9900).
    #[arg(long, global = true, conflicts_with = "data")]
    url: Option<String>,
    /// Bearer token of that API [default: $TRAWL_TOKEN].
    #[arg(long, global = true)]
    token: Option<String>,
}

/// What a verb works on.
enum Target {
    Dir(PathBuf),
    Api(HubClient),
}

impl DataArg {
    fn dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(default_data_dir)
    }

    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("TRAWL_TOKEN").ok())
            .filter(|t| !t.is_empty())
    }

    /// `--data` wins, then `--url`, then a tap answering at the default
    /// address, then the default data directory.
    fn target(&self) -> anyhow::Result<Target> {
        if let Some(d) = &self.data {
            return Ok(Target::Dir(d.clone()));
        }
        if let Some(u) = &self.url {
            return Ok(Target::Api(HubClient::connect(u, self.token())?));
        }
        if let Some(c) = HubClient::probe(DEFAULT_URL, self.token()) {
            return Ok(Target::Api(c));
        }
        Ok(Target::Dir(default_data_dir()))
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Capture file (pcap or pcapng).
    file: PathBuf,
    /// Snapshot name [default: the file's name].
    #[arg(long)]
    name: Option<String>,
    /// Node the packets are filed under.
    #[arg(long, default_value = "import")]
    node: String,
    #[command(flatten)]
    data: DataArg,
}

/// `trawl import FILE`: a capture file becomes a snapshot; prints its id.
pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    if args.data.url.is_some() {
        bail!("trawl import works on a data directory: give --data DIR instead of --url");
    }
    let name = args.name.clone().unwrap_or_else(|| {
        args.file
            .file_name()
            .map_or_else(|| "import".to_owned(), |n| n.to_string_lossy().into_owned())
    });
    let snap = import_pcap(
        &args.data.dir(),
        &args.file,
        &ImportRequest {
            name,
            node: args.node.clone(),
            created_ns: now_ns(),
        },
    )
    .with_context(|| format!("cannot import {}", args.file.display()))?;
    for w in &snap.manifest.warnings {
        eprintln!("warning: {w}");
    }
    println!("{}", snap.manifest.id);
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Freeze a time window of the raw store into a snapshot; prints its id.
    Create {
        /// The last D of capture, ending now (e.g. 15m, 1h30m).
        #[arg(long, conflicts_with = "from")]
        last: Option<String>,
        /// Window start, RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Window end, RFC 3339 [default: now].
        #[arg(long, requires = "from")]
        to: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        /// Only these nodes (comma-separated) [default: all].
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// The snapshot's id (letters, digits, '.', '_', '-') [default: the
        /// creation time and a random suffix]; an id in use is refused.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// List snapshots, oldest first.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Show one snapshot's manifest (JSON).
    Show {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete a snapshot.
    Delete {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
}

pub fn snapshot(cmd: &SnapshotCommand) -> anyhow::Result<()> {
    let data = match cmd {
        SnapshotCommand::Create { data, .. }
        | SnapshotCommand::List { data, .. }
        | SnapshotCommand::Show { data, .. }
        | SnapshotCommand::Delete { data, .. } => data,
    };
    match data.target()? {
        Target::Api(c) => snapshot_api(cmd, &c),
        Target::Dir(dir) => snapshot_dir(cmd, &dir),
    }
}

/// The snapshot verbs through a tap's API.
fn snapshot_api(cmd: &SnapshotCommand, c: &HubClient) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Create {
            last,
            from,
            to,
            name,
            nodes,
            id,
            ..
        } => {
            let mut body = json!({ "name": name, "nodes": nodes });
            for (k, v) in [("last", last), ("from", from), ("to", to), ("id", id)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            // Creation is a job on the server: answered at once while the
            // packets are copied; poll until it is ready or failed.
            let mut m = c.post("/api/v1/snapshots", &body)?;
            let path = format!("/api/v1/snapshots/{}", m["id"].as_str().unwrap_or_default());
            while m["status"] == "creating" {
                std::thread::sleep(CREATE_POLL);
                m = c.get(&path)?;
            }
            if m["status"] == "failed" {
                bail!(
                    "snapshot {} failed: {}",
                    m["id"].as_str().unwrap_or_default(),
                    m["error"].as_str().unwrap_or("no reason given")
                );
            }
            for w in m["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            println!("{}", m["id"].as_str().unwrap_or_default());
        }
        SnapshotCommand::List { json, .. } => {
            // As JSON: a cluster hub's manifests name each node's part,
            // which a node's manifest type does not hold.
            let mut all: Vec<serde_json::Value> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(cur) => format!("/api/v1/snapshots?cursor={cur}"),
                    None => "/api/v1/snapshots".to_owned(),
                };
                let page = c.get(&path)?;
                let items = page["snapshots"]
                    .as_array()
                    .context("the API's snapshot list has no \"snapshots\"")?;
                all.extend(items.iter().cloned());
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_rows(&all);
            }
        }
        SnapshotCommand::Show { id, .. } => {
            check_id_arg(id)?;
            let v = c.get(&format!("/api/v1/snapshots/{id}"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        SnapshotCommand::Delete { id, .. } => {
            check_id_arg(id)?;
            c.delete(&format!("/api/v1/snapshots/{id}"))?;
            eprintln!("Deleted snapshot {id}.");
        }
    }
    Ok(())
}

/// Snapshot ids go into URL paths: refuse what is not an id before it can
/// turn into another path.
fn check_id_arg(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        bail!("invalid snapshot id {id:?}; `trawl snapshot list` shows the ids");
    }
    Ok(())
}

/// The snapshot verbs on a data directory.
fn snapshot_dir(cmd: &SnapshotCommand, dir: &Path) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Create {
            last,
            from,
            to,
            name,
            nodes,
            id,
            ..
        } => {
            let window = parse_window(last.as_deref(), from.as_deref(), to.as_deref(), now_ns())?;
            let mut names = list_nodes(dir)?;
            if !nodes.is_empty() {
                for n in nodes {
                    if !names.contains(n) {
                        bail!(
                            "node {n:?} has no raw store in {}; nodes there: {}",
                            dir.display(),
                            names.join(", ")
                        );
                    }
                }
                names.retain(|n| nodes.contains(n));
            }
            if names.is_empty() {
                bail!(
                    "no raw store in {}: start `trawl tap --data {0}` first, or use `trawl import FILE`",
                    dir.display()
                );
            }
            let sources = names
                .iter()
                .map(|n| read_node_dir(dir, n))
                .collect::<Result<Vec<_>, _>>()?;
            let snap = begin_snapshot(
                dir,
                &SnapshotRequest {
                    name: name.clone(),
                    window,
                    created_ns: now_ns(),
                },
                id.as_deref(),
            )?
            .fill(&sources, &mut |_| {})?;
            for w in &snap.manifest.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", snap.manifest.id);
        }
        SnapshotCommand::List { json, .. } => {
            let all = list_snapshots(dir)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_list(&all);
            }
        }
        SnapshotCommand::Show { id, .. } => {
            let snap = get_snapshot(dir, id)?;
            println!("{}", serde_json::to_string_pretty(&snap.manifest)?);
        }
        SnapshotCommand::Delete { id, .. } => {
            delete_snapshot(dir, id)?;
            eprintln!("Deleted snapshot {id}.");
        }
    }
    Ok(())
}

fn print_list(all: &[SnapshotManifest]) {
    let rows: Vec<serde_json::Value> = all
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();
    print_rows(&rows);
}

/// The snapshot table, from manifests as JSON (a node's or a hub's).
fn print_rows(all: &[serde_json::Value]) {
    println!(
        "{:<30} {:<8} {:<27} {:<27} {:>10} {:>12}  NAME",
        "ID", "STATUS", "FROM", "TO", "PACKETS", "BYTES"
    );
    for m in all {
        let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
        let ts = |k: &str| {
            m["window"][k]
                .as_i64()
                .map(rfc3339_micros)
                .unwrap_or_default()
        };
        println!(
            "{:<30} {:<8} {:<27} {:<27} {:>10} {:>12}  {}",
            s("id"),
            s("status"),
            ts("from_ns"),
            ts("to_ns"),
            m["packets"].as_u64().unwrap_or(0),
            m["bytes"].as_u64().unwrap_or(0),
            s("name")
        );
    }
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a snapshot's packets, merged in time order, as pcap or pcapng.
    Pcap {
        /// Snapshot id.
        id: String,
        /// Keep packets at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Keep packets before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Only these nodes (comma-separated).
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Keep only packets matching this tcpdump-syntax filter
        /// (e.g. 'tcp port 80 and host 10.0.0.1').
        #[arg(long)]
        filter: Option<String>,
        /// Write pcapng (one interface per node and link type).
        #[arg(long)]
        pcapng: bool,
        /// Output file ("-" for standard output).
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
}

pub fn export_cmd(cmd: &ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Pcap {
        id,
        from,
        to,
        nodes,
        filter,
        pcapng,
        output,
        data,
    } = cmd;
    let dir = match data.target()? {
        Target::Dir(dir) => dir,
        Target::Api(c) => return export_api(cmd, &c),
    };
    let snap = get_snapshot(&dir, id)?;
    let filter = filter
        .as_deref()
        .map(|expr| packet_filter(expr, &snap.manifest).with_context(|| format!("filter {expr:?}")))
        .transpose()?;
    let opts = ExportOptions {
        from: from.as_deref().map(parse_time).transpose()?,
        to: to.as_deref().map(parse_time).transpose()?,
        nodes: (!nodes.is_empty()).then(|| nodes.clone()),
        filter,
        format: if *pcapng {
            ExportFormat::PcapNg
        } else {
            ExportFormat::Pcap
        },
    };
    let stats = if output == Path::new("-") {
        export(&snap, &opts, io::stdout().lock())?
    } else {
        let file =
            File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
        let mut w = BufWriter::new(file);
        let stats = export(&snap, &opts, &mut w)?;
        w.flush()
            .with_context(|| format!("cannot write {}", output.display()))?;
        stats
    };
    eprintln!(
        "Exported {} packets from {} files of snapshot {id}.",
        stats.packets, stats.files
    );
    Ok(())
}

/// `trawl export pcap` through a tap's API: the server exports (and
/// filters), this streams the answer to the output.
fn export_api(cmd: &ExportCommand, c: &HubClient) -> anyhow::Result<()> {
    let ExportCommand::Pcap {
        id,
        from,
        to,
        nodes,
        filter,
        pcapng,
        output,
        ..
    } = cmd;
    check_id_arg(id)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [("from", from), ("to", to), ("filter", filter)] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    if !nodes.is_empty() {
        query.push(("nodes", nodes.join(",")));
    }
    if *pcapng {
        query.push(("format", "pcapng".to_owned()));
    }
    let path = format!("/api/v1/snapshots/{id}/pcap");
    let bytes = if output == Path::new("-") {
        c.download(&path, &query, &mut io::stdout().lock())?
    } else {
        // Written beside the output and renamed, so that a failed download
        // leaves no file that looks whole.
        let tmp = output.with_extension("part");
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        let res = c
            .download(&path, &query, &mut w)
            .and_then(|n| w.flush().map(|()| n).map_err(Into::into));
        match res {
            Ok(n) => {
                std::fs::rename(&tmp, output)
                    .with_context(|| format!("cannot write {}", output.display()))?;
                n
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    };
    eprintln!("Exported snapshot {id} ({bytes} bytes) from {}.", c.url());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct BoundariesArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataArg,
}

/// `trawl boundaries`: per node, the time span, packets and bytes the raw
/// store holds.
pub fn boundaries(args: &BoundariesArgs) -> anyhow::Result<()> {
    let (rows, place) = match args.data.target()? {
        Target::Api(c) => {
            let v = c.get("/api/v1/boundaries")?;
            let rows = v["nodes"].as_array().cloned().unwrap_or_default();
            (rows, c.url().to_owned())
        }
        Target::Dir(dir) => (boundaries_dir(&dir)?, dir.display().to_string()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("No raw store in {place}.");
        return Ok(());
    }
    println!(
        "{:<16} {:<27} {:<27} {:>10} {:>12} {:>8}",
        "NODE", "OLDEST", "NEWEST", "PACKETS", "BYTES", "SEGMENTS"
    );
    for r in rows {
        let ts = |k: &str| r[k].as_i64().map_or_else(|| "-".to_owned(), rfc3339_micros);
        println!(
            "{:<16} {:<27} {:<27} {:>10} {:>12} {:>8}",
            r["node"].as_str().unwrap_or(""),
            ts("oldest_ts"),
            ts("newest_ts"),
            r["packets"],
            r["bytes"],
            r["segments"]
        );
    }
    Ok(())
}

/// Per node of a data directory: what its raw store holds.
fn boundaries_dir(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    for node in list_nodes(dir)? {
        let src = read_node_dir(dir, &node)?;
        let oldest = src.segments.iter().map(|s| s.min_ts).min();
        let newest = src.segments.iter().map(|s| s.max_ts).max();
        let packets: u64 = src.segments.iter().map(|s| s.packets).sum();
        let bytes: u64 = src.segments.iter().map(|s| s.bytes).sum();
        rows.push(serde_json::json!({
            "node": node,
            "oldest_ts": oldest,
            "newest_ts": newest,
            "packets": packets,
            "bytes": bytes,
            "segments": src.segments.len(),
        }));
    }
    Ok(rows)
}
