//! The raw-store verbs that work directly on a data directory:
//! `trawl import`, `trawl snapshot create|list|show|delete`,
//! `trawl export pcap` and `trawl boundaries`. A running `trawl tap` owns
//! the same directory; these verbs only read its raw store (snapshots copy
//! segments, never change them), so they are safe beside it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use trawl_capture::compile_filter;
use trawl_capture::filter::bpf::{self, Ancillary};
use trawl_packet::capfile::MAX_CAPLEN;
use trawl_packet::{LinkType, RawPacket};
use trawl_rawstore::{
    ExportFormat, ExportOptions, ImportRequest, PacketFilter, SnapshotManifest, SnapshotRequest,
    create_snapshot, delete_snapshot, export, get_snapshot, import_pcap, list_nodes,
    list_snapshots, parse_time, parse_window, read_node_dir,
};

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
    /// Data directory (raw store and snapshots) [default: $TRAWL_DATA,
    /// else ~/.local/share/trawl].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

impl DataArg {
    fn dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(default_data_dir)
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
    match cmd {
        SnapshotCommand::Create {
            last,
            from,
            to,
            name,
            nodes,
            data,
        } => {
            let dir = data.dir();
            let window = parse_window(last.as_deref(), from.as_deref(), to.as_deref(), now_ns())?;
            let mut names = list_nodes(&dir)?;
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
                .map(|n| read_node_dir(&dir, n))
                .collect::<Result<Vec<_>, _>>()?;
            let snap = create_snapshot(
                &dir,
                &sources,
                &SnapshotRequest {
                    name: name.clone(),
                    window,
                    created_ns: now_ns(),
                },
            )?;
            for w in &snap.manifest.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", snap.manifest.id);
        }
        SnapshotCommand::List { json, data } => {
            let all = list_snapshots(&data.dir())?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_list(&all);
            }
        }
        SnapshotCommand::Show { id, data } => {
            let snap = get_snapshot(&data.dir(), id)?;
            println!("{}", serde_json::to_string_pretty(&snap.manifest)?);
        }
        SnapshotCommand::Delete { id, data } => {
            delete_snapshot(&data.dir(), id)?;
            eprintln!("Deleted snapshot {id}.");
        }
    }
    Ok(())
}

fn print_list(all: &[SnapshotManifest]) {
    println!(
        "{:<30} {:<8} {:<27} {:<27} {:>10} {:>12}  NAME",
        "ID", "STATUS", "FROM", "TO", "PACKETS", "BYTES"
    );
    for m in all {
        println!(
            "{:<30} {:<8} {:<27} {:<27} {:>10} {:>12}  {}",
            m.id,
            format!("{:?}", m.status).to_lowercase(),
            rfc3339_micros(m.window.from_ns),
            rfc3339_micros(m.window.to_ns),
            m.packets,
            m.bytes,
            m.name
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
    let snap = get_snapshot(&data.dir(), id)?;
    let filter = filter
        .as_deref()
        .map(|expr| packet_filter(expr, &snap.manifest))
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

/// Compile `expr` once for each link type in the snapshot and run the
/// classic BPF program on every packet, as the kernel would at capture.
fn packet_filter(expr: &str, m: &SnapshotManifest) -> anyhow::Result<PacketFilter> {
    let mut links: Vec<u32> = m
        .nodes
        .iter()
        .flat_map(|n| n.files.iter().map(|f| f.link))
        .collect();
    links.sort_unstable();
    links.dedup();
    let mut programs = Vec::new();
    for l in links {
        let link = LinkType::from_linktype(l);
        let prog =
            compile_filter(expr, link, MAX_CAPLEN).with_context(|| format!("filter {expr:?}"))?;
        programs.push((link, prog));
    }
    Ok(Box::new(move |p: &RawPacket<'_>| {
        programs
            .iter()
            .find(|(l, _)| *l == p.link)
            .is_some_and(|(_, prog)| bpf::run(prog, p.data, p.orig_len, Ancillary::default()) != 0)
    }))
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
    let dir = args.data.dir();
    let mut rows = Vec::new();
    for node in list_nodes(&dir)? {
        let src = read_node_dir(&dir, &node)?;
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("No raw store in {}.", dir.display());
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
