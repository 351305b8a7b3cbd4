//! PCAP export of a snapshot: the packets of its files, optionally cut to a
//! time window, some nodes and a packet predicate, merged across files and
//! nodes in time order (a k-way merge) and written as pcap or pcapng.
//!
//! Called by `trawl export pcap` and the hub's export job. The tcpdump-
//! syntax filter is compiled elsewhere (the capture crate's BPF compiler);
//! here it is any predicate over a [`RawPacket`].
//!
//! Speed: files are read through 1 MiB buffers and records are copied as
//! stored (pcap output is byte-for-byte the snapshot's record format), the
//! output goes through a 1 MiB buffer, and the merge touches its heap only
//! when another file's next packet is earlier: a single-node snapshot costs
//! one comparison per packet. Nothing is allocated per packet.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use trawl_packet::capfile::MAX_CAPLEN;
use trawl_packet::pcapng_writer::PcapNgWriter;
use trawl_packet::{LinkType, RawPacket};

use crate::segment::{self, SegmentScanner};
use crate::snapshot::Snapshot;

/// Output buffer: large writes keep syscalls rare.
const OUT_BUFFER: usize = 1 << 20;

/// Output container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// Classic pcap (nanosecond, little-endian): one link type per file.
    #[default]
    Pcap,
    /// pcapng: one interface per node and link type.
    PcapNg,
}

/// A packet predicate (e.g. a compiled tcpdump filter); `true` keeps it.
pub type PacketFilter = Box<dyn Fn(&RawPacket<'_>) -> bool + Send + Sync>;

/// What to export.
#[derive(Default)]
pub struct ExportOptions {
    /// Keep packets with `from <= ts`; `None`: from the start.
    pub from: Option<i64>,
    /// Keep packets with `ts < to`; `None`: to the end.
    pub to: Option<i64>,
    /// Only these nodes; `None` or empty: all.
    pub nodes: Option<Vec<String>>,
    pub filter: Option<PacketFilter>,
    pub format: ExportFormat,
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("nodes", &self.nodes)
            .field("filter", &self.filter.as_ref().map(|_| "…"))
            .field("format", &self.format)
            .finish()
    }
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub packets: u64,
    /// Packets in the window that the filter dropped.
    pub filtered_out: u64,
    /// Files of the snapshot that were read.
    pub files: u64,
}

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "the selected packets have {0} link types ({1}); classic pcap holds one: export as pcapng or pick fewer nodes"
    )]
    MixedLinkTypes(usize, String),
    #[error("node {0:?} is not in snapshot {1}; its nodes are: {2}")]
    UnknownNode(String, String, String),
    #[error("snapshot {0} is not ready (status {1:?})")]
    NotReady(String, crate::snapshot::SnapshotStatus),
    #[error("{path}: {op}")]
    Read {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: damaged snapshot file at byte {offset} ({why}); the snapshot must be recreated"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    #[error("writing the export")]
    Write(#[source] io::Error),
}

/// One input file.
struct Input {
    path: PathBuf,
    link: LinkType,
    min_ts: i64,
    /// pcapng interface id.
    iface: u32,
}

enum Sink<W: Write> {
    Pcap(BufWriter<W>),
    PcapNg(PcapNgWriter<BufWriter<W>>),
}

/// Exports `snapshot` per `opts` into `out`; see the module doc.
pub fn export<W: Write>(
    snapshot: &Snapshot,
    opts: &ExportOptions,
    out: W,
) -> Result<ExportStats, ExportError> {
    let m = &snapshot.manifest;
    if m.status != crate::snapshot::SnapshotStatus::Ready {
        return Err(ExportError::NotReady(m.id.clone(), m.status));
    }
    let from = opts.from.unwrap_or(i64::MIN);
    let to = opts.to.unwrap_or(i64::MAX);
    let wanted = opts.nodes.as_ref().filter(|n| !n.is_empty());
    if let Some(w) = wanted {
        for n in w {
            if !m.nodes.iter().any(|x| &x.node == n) {
                let have: Vec<&str> = m.nodes.iter().map(|x| x.node.as_str()).collect();
                return Err(ExportError::UnknownNode(
                    n.clone(),
                    m.id.clone(),
                    have.join(", "),
                ));
            }
        }
    }
    // Interfaces (node, link) in manifest order, and the inputs.
    let mut ifaces: Vec<(String, LinkType)> = Vec::new();
    let mut inputs = Vec::new();
    for n in &m.nodes {
        if wanted.is_some_and(|w| !w.contains(&n.node)) {
            continue;
        }
        for f in &n.files {
            if f.packets == 0 || f.max_ts < from || f.min_ts >= to {
                continue;
            }
            let link = LinkType::from_linktype(f.link);
            let iface = match ifaces
                .iter()
                .position(|(nn, l)| nn == &n.node && *l == link)
            {
                Some(i) => i,
                None => {
                    ifaces.push((n.node.clone(), link));
                    ifaces.len() - 1
                }
            };
            inputs.push(Input {
                path: snapshot.dir.join(&f.path),
                link,
                min_ts: f.min_ts,
                iface: u32::try_from(iface).unwrap_or(u32::MAX),
            });
        }
    }
    let out = BufWriter::with_capacity(OUT_BUFFER, out);
    let mut sink = match opts.format {
        ExportFormat::Pcap => {
            let mut links: Vec<LinkType> = Vec::new();
            for (_, l) in &ifaces {
                if !links.contains(l) {
                    links.push(*l);
                }
            }
            if links.len() > 1 {
                let names: Vec<String> = links.iter().map(|l| format!("{l:?}")).collect();
                return Err(ExportError::MixedLinkTypes(links.len(), names.join(", ")));
            }
            let link = links.first().copied().unwrap_or(LinkType::Ethernet);
            let mut out = out;
            out.write_all(&segment::file_header(link, MAX_CAPLEN))
                .map_err(ExportError::Write)?;
            Sink::Pcap(out)
        }
        ExportFormat::PcapNg => {
            let mut w = PcapNgWriter::new(out, "trawl").map_err(ExportError::Write)?;
            for (node, link) in &ifaces {
                w.add_interface(*link, MAX_CAPLEN, node)
                    .map_err(ExportError::Write)?;
            }
            Sink::PcapNg(w)
        }
    };
    let mut stats = ExportStats::default();
    merge(
        inputs,
        from,
        to,
        opts.filter.as_ref(),
        &mut sink,
        &mut stats,
    )?;
    match sink {
        Sink::Pcap(mut w) => w.flush().map_err(ExportError::Write)?,
        Sink::PcapNg(mut w) => w.get_mut().flush().map_err(ExportError::Write)?,
    }
    Ok(stats)
}

/// The k-way merge: files are opened when the merge reaches their earliest
/// packet, so only files that overlap in time are open together.
fn merge<W: Write>(
    mut pending: Vec<Input>,
    from: i64,
    to: i64,
    filter: Option<&PacketFilter>,
    sink: &mut Sink<W>,
    stats: &mut ExportStats,
) -> Result<(), ExportError> {
    // Latest first, so that `pop` yields the next file to open.
    pending.sort_by_key(|i| Reverse(i.min_ts));
    let mut open: Vec<(Input, SegmentScanner<File>)> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let read_err = |p: &PathBuf, op| {
        let p = p.clone();
        move |source| ExportError::Read {
            path: p,
            op,
            source,
        }
    };
    loop {
        // Open every file that may hold a packet before the current head.
        while let Some(next) = pending.last() {
            let head = heap.peek().map(|Reverse((ts, _))| *ts);
            if head.is_some_and(|h| next.min_ts > h) {
                break;
            }
            let Some(input) = pending.pop() else { break };
            let mut sc = SegmentScanner::open(&input.path, false, None, None)
                .map_err(read_err(&input.path, "open snapshot file"))?;
            stats.files += 1;
            if sc
                .advance()
                .map_err(read_err(&input.path, "read snapshot file"))?
                && let Some(r) = sc.current()
            {
                heap.push(Reverse((r.ts_ns, open.len())));
            }
            open.push((input, sc));
        }
        let Some(Reverse((_, i))) = heap.pop() else {
            break;
        };
        // Emit from file `i` while it stays ahead of every other file and
        // of the next file to open.
        let limit = heap.peek().map_or(i64::MAX, |Reverse((ts, _))| *ts).min(
            pending
                .last()
                .map_or(i64::MAX, |p| p.min_ts.saturating_sub(1)),
        );
        let Some((input, sc)) = open.get_mut(i) else {
            continue;
        };
        while let Some(r) = sc.current() {
            if r.ts_ns > limit {
                heap.push(Reverse((r.ts_ns, i)));
                break;
            }
            if r.ts_ns >= from && r.ts_ns < to {
                let keep = filter.is_none_or(|f| {
                    f(&RawPacket {
                        ts_ns: r.ts_ns,
                        link: input.link,
                        interface: input.iface,
                        data: r.data(),
                        orig_len: r.orig_len,
                    })
                });
                if keep {
                    stats.packets += 1;
                    match sink {
                        Sink::Pcap(w) => w.write_all(r.raw),
                        Sink::PcapNg(w) => {
                            w.write_packet(input.iface, r.ts_ns, r.data(), r.orig_len)
                        }
                    }
                    .map_err(ExportError::Write)?;
                } else {
                    stats.filtered_out += 1;
                }
            }
            if !sc
                .advance()
                .map_err(read_err(&input.path, "read snapshot file"))?
            {
                if let Some(stop) = sc.stop() {
                    return Err(ExportError::Damaged {
                        path: input.path.clone(),
                        offset: sc.offset(),
                        why: format!("{stop:?}"),
                    });
                }
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ImportRequest, SnapshotRequest, create_snapshot, import_pcap};
    use crate::store::{RawStore, StoreConfig};
    use crate::testutil::{Pkt, T0, frame};
    use crate::window::Window;
    use trawl_packet::CaptureReader;

    const MS: i64 = 1_000_000;

    fn read_bytes(b: &[u8]) -> Vec<(Pkt, u32)> {
        let mut r = CaptureReader::new(b, "export").unwrap();
        let mut out = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            out.push(((p.ts_ns, p.link, p.data.to_vec(), p.orig_len), p.interface));
        }
        out
    }

    /// Two nodes with interleaved packets (node a at even ms, node b at odd
    /// ms), small segments so that each node has many files.
    fn two_node_snapshot(data: &std::path::Path) -> (Snapshot, Vec<Pkt>) {
        let cfg = StoreConfig {
            segment_bytes: 64 * 1024,
            ..StoreConfig::default()
        };
        let mut sent = Vec::new();
        let mut sources = Vec::new();
        for (k, node) in ["a", "b"].into_iter().enumerate() {
            let mut s = RawStore::open(data, node, cfg.clone()).unwrap();
            for i in 0..3000u64 {
                let ts = T0 + (2 * i as i64 + k as i64) * MS;
                let f = frame(2 * i + k as u64);
                s.append(ts, LinkType::Ethernet, &f, 1514).unwrap();
                sent.push((ts, LinkType::Ethernet, f, 1514));
            }
            sources.push(s.source().unwrap());
        }
        sent.sort_by_key(|p| p.0);
        let snap = create_snapshot(
            data,
            &sources,
            &SnapshotRequest {
                name: "two".into(),
                window: Window {
                    from_ns: T0,
                    to_ns: T0 + 10_000 * MS,
                },
                created_ns: T0,
            },
        )
        .unwrap();
        (snap, sent)
    }

    #[test]
    fn pcap_export_merges_nodes_in_time_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (snap, sent) = two_node_snapshot(tmp.path());
        assert!(snap.manifest.nodes.iter().all(|n| n.files.len() > 3));
        let mut out = Vec::new();
        let stats = export(&snap, &ExportOptions::default(), &mut out).unwrap();
        assert_eq!(stats.packets, 6000);
        let got: Vec<Pkt> = read_bytes(&out).into_iter().map(|(p, _)| p).collect();
        assert!(got == sent, "export differs from what was stored");
    }

    #[test]
    fn pcapng_export_has_an_interface_per_node_and_filters() {
        let tmp = tempfile::tempdir().unwrap();
        let (snap, sent) = two_node_snapshot(tmp.path());
        let opts = ExportOptions {
            from: Some(T0 + 100 * MS),
            to: Some(T0 + 2000 * MS),
            nodes: None,
            // Keep frames longer than 200 bytes.
            filter: Some(Box::new(|p: &RawPacket<'_>| p.data.len() > 200)),
            format: ExportFormat::PcapNg,
        };
        let mut out = Vec::new();
        let stats = export(&snap, &opts, &mut out).unwrap();
        let got = read_bytes(&out);
        let want: Vec<&Pkt> = sent
            .iter()
            .filter(|p| p.0 >= T0 + 100 * MS && p.0 < T0 + 2000 * MS && p.2.len() > 200)
            .collect();
        assert_eq!(got.len(), want.len());
        assert_eq!(stats.packets, want.len() as u64);
        assert_eq!(stats.filtered_out, 1900 - want.len() as u64);
        for ((p, iface), w) in got.iter().zip(&want) {
            assert_eq!(p, *w);
            // Node a sent the even milliseconds.
            let odd = ((p.0 - T0) / MS) % 2 == 1;
            assert_eq!(*iface, u32::from(odd));
        }
        // Only node b.
        let opts = ExportOptions {
            nodes: Some(vec!["b".into()]),
            ..ExportOptions::default()
        };
        let mut out = Vec::new();
        assert_eq!(export(&snap, &opts, &mut out).unwrap().packets, 3000);
        let opts = ExportOptions {
            nodes: Some(vec!["c".into()]),
            ..ExportOptions::default()
        };
        let e = export(&snap, &opts, Vec::new()).unwrap_err().to_string();
        assert!(
            e.contains("\"c\" is not in snapshot") && e.contains("a, b"),
            "{e}"
        );
    }

    #[test]
    fn mixed_link_types_need_pcapng() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = PcapNgWriter::new(Vec::new(), "test").unwrap();
        let eth = w.add_interface(LinkType::Ethernet, 0, "e").unwrap();
        let raw = w.add_interface(LinkType::Raw, 0, "r").unwrap();
        for i in 0..10u64 {
            let iface = if i % 2 == 0 { eth } else { raw };
            w.write_packet(iface, T0 + i as i64, &frame(i), 1000)
                .unwrap();
        }
        let file = tmp.path().join("m.pcapng");
        std::fs::write(&file, w.into_inner()).unwrap();
        let snap = import_pcap(
            tmp.path(),
            &file,
            &ImportRequest {
                name: "m".into(),
                node: "import".into(),
                created_ns: T0,
            },
        )
        .unwrap();
        assert_eq!(snap.manifest.nodes[0].files.len(), 10);
        let e = export(&snap, &ExportOptions::default(), Vec::new()).unwrap_err();
        assert!(matches!(e, ExportError::MixedLinkTypes(2, _)), "{e}");
        let mut out = Vec::new();
        let opts = ExportOptions {
            format: ExportFormat::PcapNg,
            ..ExportOptions::default()
        };
        export(&snap, &opts, &mut out).unwrap();
        let got = read_bytes(&out);
        assert_eq!(got.len(), 10);
        for (i, (p, _)) in got.iter().enumerate() {
            assert_eq!(p.0, T0 + i as i64);
            assert_eq!(
                p.1,
                if i % 2 == 0 {
                    LinkType::Ethernet
                } else {
                    LinkType::Raw
                }
            );
        }
    }

    #[test]
    fn tshark_reads_the_exports() {
        if std::process::Command::new("tshark")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: tshark_reads_the_exports: tshark not installed");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (snap, sent) = two_node_snapshot(tmp.path());
        for (format, name) in [
            (ExportFormat::Pcap, "x.pcap"),
            (ExportFormat::PcapNg, "x.pcapng"),
        ] {
            let path = tmp.path().join(name);
            let f = File::create(&path).unwrap();
            let opts = ExportOptions {
                format,
                ..ExportOptions::default()
            };
            export(&snap, &opts, f).unwrap();
            let out = std::process::Command::new("tshark")
                .args(["-r"])
                .arg(&path)
                .args(["-T", "fields", "-e", "frame.number"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let lines = String::from_utf8_lossy(&out.stdout).lines().count();
            assert_eq!(lines, sent.len(), "{name}");
        }
    }
}
