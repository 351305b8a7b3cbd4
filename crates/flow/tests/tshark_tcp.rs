//! Agreement of the TCP expert analysis ([`trawl_flow::Expert`]) with
//! tshark 4.0's `tcp.analysis.*` on the shared captures in ../shared/pcaps
//! that have retransmissions, resets, zero windows, out-of-order and lost
//! segments (MANIFEST.md's `tcp_*` counts).
//!
//! Per tshark stream (matched to trawl's connection by address pair and
//! time), the counts of `retransmission`, `fast_retransmission`,
//! `out_of_order`, `duplicate_ack`, `zero_window`, `lost_segment` and RST
//! flags are compared, and with tshark installed also the handshake RTT
//! (`initial_rtt`) and the mean `ack_rtt`. tshark's own values come from
//! running tshark when it is installed, else from the `*.truth.tsv` rows
//! (counts only; the RTT part then skips loudly). Every disagreement is
//! listed with its reason; with `TRAWL_WRITE_REPORT=1` the listing is
//! written to docs/tcp-agreement.md.
//!
//! Uses data from ../shared/pcaps; skips loudly when it is absent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use trawl_flow::{
    CloseReason, ConnInfo, Direction, EndKind, Expert, FlowConfig, FlowHandler, FlowTable, Nanos,
    TransportKind,
};
use trawl_model::flow::FlowMetrics;
use trawl_packet::{CaptureReader, Transport, decode};

/// Flag kinds compared, in report order: tshark's field and trawl's count.
const KINDS: [&str; 7] = [
    "retransmission",
    "fast_retransmission",
    "out_of_order",
    "duplicate_ack",
    "zero_window",
    "lost_segment",
    "rst",
];

fn ours(m: &FlowMetrics, kind: &str) -> u64 {
    match kind {
        "retransmission" => m.retransmissions,
        "fast_retransmission" => m.fast_retransmissions,
        "out_of_order" => m.out_of_order,
        "duplicate_ack" => m.dup_acks,
        "zero_window" => m.zero_window_events,
        "lost_segment" => m.missing_segments,
        "rst" => m.rst_count,
        _ => 0,
    }
}

fn shared_pcaps() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps");
    p.join("MANIFEST.md").is_file().then_some(p)
}

/// Files whose MANIFEST row counts TCP anomalies (`tcp_retrans=…`, …).
fn tcp_captures(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 8 || cols[1].parse::<u32>().is_err() {
            continue;
        }
        let file = cols[2].trim_matches('`');
        if file.starts_with("tcp-") || line.contains("tcp_") {
            out.push(dir.join(file));
        }
    }
    out.sort();
    out
}

/// trawl's view of one connection.
struct Conn {
    a: SocketAddr,
    b: SocketAddr,
    first: Nanos,
    last: Nanos,
    m: FlowMetrics,
}

#[derive(Default)]
struct Recorder {
    conns: Vec<Conn>,
}

impl FlowHandler for Recorder {
    type State = ();
    fn open(&mut self, _: &ConnInfo) {}
    fn data(&mut self, _: &mut (), _: &ConnInfo, _: Direction, _: Nanos, _: &[u8]) {}
    fn gap(&mut self, _: &mut (), _: &ConnInfo, _: Direction, _: Nanos, _: u64) {}
    fn end(&mut self, _: &mut (), _: &ConnInfo, _: Direction, _: Nanos, _: EndKind) {}
    fn close(&mut self, _: (), _: &ConnInfo, _: Nanos, _: CloseReason) {}
    fn retire(&mut self, c: &ConnInfo, e: &Expert) {
        if c.transport == TransportKind::Tcp {
            let (first, last) = e.span();
            self.conns.push(Conn {
                a: c.client,
                b: c.server,
                first,
                last,
                m: e.metrics(0, true),
            });
        }
    }
}

fn analyse(path: &Path) -> Vec<Conn> {
    let mut reader = CaptureReader::open(path).unwrap();
    let mut table = FlowTable::new(FlowConfig::default());
    let mut rec = Recorder::default();
    while let Some(pkt) = reader.next_packet().unwrap() {
        let Ok(ip) = decode::decode_link(pkt.link, pkt.data) else {
            continue;
        };
        if ip.fragment.is_some() {
            continue;
        }
        if let Ok(Transport::Tcp(seg)) =
            decode::decode_transport(ip.protocol, ip.payload, ip.payload_len)
        {
            table.tcp(&mut rec, pkt.ts_ns, ip.src, ip.dst, &seg);
        }
    }
    table.finish(&mut rec);
    rec.conns
}

/// tshark's view of one stream.
#[derive(Default)]
struct Stream {
    ends: Option<(SocketAddr, SocketAddr)>,
    first: Nanos,
    last: Nanos,
    counts: BTreeMap<&'static str, u64>,
    ack_rtt_sum: f64,
    ack_rtt_n: u64,
    initial_rtt: Option<f64>,
}

fn epoch_ns(s: &str) -> Nanos {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    let sec = sec.parse::<i64>().unwrap_or(0);
    sec.saturating_mul(1_000_000_000)
        .saturating_add(frac[..9].parse::<i64>().unwrap_or(0))
}

fn sock(ip: &str, port: &str) -> Option<SocketAddr> {
    Some(SocketAddr::new(
        ip.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    ))
}

fn tshark_installed() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Streams from running tshark on the capture.
fn tshark_streams(path: &Path) -> BTreeMap<u64, Stream> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-Y", "tcp", "-T", "fields", "-E", "occurrence=f"]);
    for f in [
        "tcp.stream",
        "frame.time_epoch",
        "ip.src",
        "ipv6.src",
        "tcp.srcport",
        "ip.dst",
        "ipv6.dst",
        "tcp.dstport",
        "tcp.analysis.retransmission",
        "tcp.analysis.fast_retransmission",
        "tcp.analysis.out_of_order",
        "tcp.analysis.duplicate_ack",
        "tcp.analysis.zero_window",
        "tcp.analysis.lost_segment",
        "tcp.flags.reset",
        "tcp.analysis.ack_rtt",
        "tcp.analysis.initial_rtt",
    ] {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "tshark failed on {}", path.display());
    let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 17 {
            continue;
        }
        let Ok(id) = c[0].parse::<u64>() else {
            continue;
        };
        let s = streams.entry(id).or_default();
        if s.ends.is_none() {
            let src = if c[2].is_empty() { c[3] } else { c[2] };
            let dst = if c[5].is_empty() { c[6] } else { c[5] };
            s.ends = sock(src, c[4]).zip(sock(dst, c[7]));
            s.first = epoch_ns(c[1]);
        }
        s.last = s.last.max(epoch_ns(c[1]));
        for (i, kind) in KINDS.iter().enumerate() {
            let v = c[8 + i];
            let set = if *kind == "rst" {
                v == "1" || v == "True"
            } else {
                !v.is_empty()
            };
            if set {
                *s.counts.entry(kind).or_default() += 1;
            }
        }
        if let Ok(r) = c[15].parse::<f64>() {
            s.ack_rtt_sum += r;
            s.ack_rtt_n += 1;
        }
        if let Ok(r) = c[16].parse::<f64>() {
            s.initial_rtt.get_or_insert(r);
        }
    }
    streams
}

/// Streams from the truth file's flagged rows (counts only).
fn truth_streams(path: &Path) -> BTreeMap<u64, Stream> {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    let truth = path.with_file_name(format!("{stem}.truth.tsv"));
    let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(truth) else {
        return streams;
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = |n: &str| header.iter().position(|h| *h == n);
    let (Some(st), Some(an)) = (col("tcp.stream"), col("analysis")) else {
        return streams;
    };
    for line in lines {
        let c: Vec<&str> = line.split('\t').collect();
        let Some(id) = c.get(st).and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let s = streams.entry(id).or_default();
        if s.ends.is_none() {
            s.ends = sock(c[2], c[3]).zip(sock(c[4], c[5]));
            s.first = epoch_ns(c[1]);
        }
        s.last = s.last.max(epoch_ns(c[1]));
        let flags = c.get(an).copied().unwrap_or("");
        for kind in KINDS {
            if flags.split(',').any(|f| f == kind) {
                *s.counts.entry(kind).or_default() += 1;
            }
        }
    }
    streams
}

fn same_pair(c: &Conn, (x, y): (SocketAddr, SocketAddr)) -> bool {
    (c.a == x && c.b == y) || (c.a == y && c.b == x)
}

/// The connection a tshark stream is: same address pair, its span holding
/// the stream's first packet (or else the nearest start).
fn matching(conns: &[Conn], s: &Stream) -> Option<usize> {
    let ends = s.ends?;
    let cands = conns.iter().enumerate().filter(|(_, c)| same_pair(c, ends));
    cands
        .min_by_key(|(_, c)| {
            let inside = c.first <= s.first && s.first <= c.last;
            (!inside, c.first.abs_diff(s.first))
        })
        .map(|(i, _)| i)
}

/// Captures whose every disagreement has one known cause.
const KNOWN: &[(&str, &str)] = &[(
    "mysql-pcapplusplus-pcapng-example.pcapng",
    "frame 2's timestamp is in 2061 (a damaged record): the flow table's clock, the \
     largest timestamp seen, jumps 46 years and idles every connection out, so tshark's \
     streams become several trawl connections",
)];

const UNEXPLAINED: &str = "not yet explained";

/// Why trawl and tshark differ on stream `s`, where the cause is known.
fn reason(file: &str, s: &Stream, conn: Option<&Conn>, rtt: Option<(u64, u64)>) -> &'static str {
    if let Some((_, why)) = KNOWN.iter().find(|(f, _)| *f == file) {
        return why;
    }
    let Some(c) = conn else {
        return "no connection in trawl: the flow table opens one on a SYN or on data, \
                and this stream has neither (a lone ACK, FIN or RST)";
    };
    if s.last > c.last && (c.m.fin_count > 0 || c.m.rst_count > 0) {
        return "frames after the finished connection left the flow table (it lingers \
                DEFAULT_CLOSED_LINGER, 10 s after its close, to count late packets); \
                later ones start nothing and count nowhere";
    }
    if let Some((theirs, ours)) = rtt
        && ours < theirs
    {
        return "fewer samples: more segments in flight than trawl remembers \
                (expert::UNACKED_SLOTS), so the ACKs of the oldest find nothing";
    }
    UNEXPLAINED
}

#[test]
fn tcp_analysis_agrees_with_tshark() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; TCP analysis agreement not checked.");
        return;
    };
    let tshark = tshark_installed();
    if !tshark {
        eprintln!(
            "SKIPPED (part): tshark is not installed; counts come from *.truth.tsv and \
             handshake RTT / ack_rtt are not compared."
        );
    }
    let mut report = String::new();
    // Per flag: tshark's total, all differences, unexplained differences.
    let mut totals: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut rtt_checked = 0u32;
    let mut rtt_off = Vec::new();
    for path in tcp_captures(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let conns = analyse(&path);
        let streams = if tshark {
            tshark_streams(&path)
        } else {
            truth_streams(&path)
        };
        let mut lines = Vec::new();
        let mut file_flags = 0u64;
        for (id, s) in &streams {
            let m = matching(&conns, s);
            let conn = m.and_then(|i| conns.get(i));
            for kind in KINDS {
                let theirs = s.counts.get(kind).copied().unwrap_or(0);
                let mine = conn.map_or(0, |c| ours(&c.m, kind));
                file_flags += theirs;
                let t = totals.entry(kind).or_default();
                t.0 += theirs;
                t.1 += mine.abs_diff(theirs);
                if mine != theirs {
                    let why = reason(&name, s, conn, None);
                    if why == UNEXPLAINED {
                        t.2 += mine.abs_diff(theirs);
                    }
                    lines.push(format!("| {id} | {kind} | {theirs} | {mine} | {why} |"));
                }
            }
            let Some(c) = conn.filter(|_| tshark) else {
                continue;
            };
            if let Some(init) = s.initial_rtt {
                let theirs = init * 1e6;
                let mine = c.m.initial_rtt_us as f64;
                rtt_checked += 1;
                if (mine - theirs).abs() > 0.05 * theirs.max(1.0) {
                    let why = reason(&name, s, conn, None);
                    rtt_off.push((format!("{name} stream {id} initial_rtt"), why));
                    lines.push(format!(
                        "| {id} | initial_rtt (µs) | {theirs:.0} | {mine:.0} | {why} |"
                    ));
                }
            }
            if s.ack_rtt_n > 0 {
                let theirs = s.ack_rtt_sum / s.ack_rtt_n as f64 * 1e6;
                let mine = c.m.rtt_avg_us as f64;
                rtt_checked += 1;
                // 1 µs of slack: trawl stores whole microseconds.
                if (mine - theirs).abs() > (0.05 * theirs).max(1.0) {
                    let why = reason(&name, s, conn, Some((s.ack_rtt_n, c.m.rtt_samples)));
                    rtt_off.push((format!("{name} stream {id} mean ack_rtt"), why));
                    lines.push(format!(
                        "| {id} | mean ack_rtt (µs, {} / {} samples) | {theirs:.0} | {mine:.0} | {why} |",
                        s.ack_rtt_n, c.m.rtt_samples
                    ));
                }
            }
        }
        let _ = writeln!(
            report,
            "### {name}\n\n{} tshark streams, {} trawl connections, {file_flags} flags; ",
            streams.len(),
            conns.len()
        );
        if lines.is_empty() {
            let _ = writeln!(report, "all agree.\n");
        } else {
            let _ = writeln!(
                report,
                "{} disagreements:\n\n| stream | what | tshark | trawl | reason |\n|---|---|---|---|---|",
                lines.len()
            );
            for l in lines {
                let _ = writeln!(report, "{l}");
            }
            report.push('\n');
        }
    }
    let mut summary = String::from(
        "| flag | tshark total | per-connection differences | share | of which unexplained |\n\
         |---|---|---|---|---|\n",
    );
    let pct = |d: u64, t: u64| {
        if t == 0 {
            0.0
        } else {
            d as f64 * 100.0 / t as f64
        }
    };
    for (kind, (total, diff, unexplained)) in &totals {
        let _ = writeln!(
            summary,
            "| {kind} | {total} | {diff} | {:.1}% | {unexplained} |",
            pct(*diff, *total)
        );
    }
    let rtt_unexplained: Vec<&String> = rtt_off
        .iter()
        .filter(|(_, why)| *why == UNEXPLAINED)
        .map(|(w, _)| w)
        .collect();
    eprintln!(
        "{summary}\nRTT values compared: {rtt_checked}, off by > 5%: {}, unexplained: {rtt_unexplained:?}",
        rtt_off.len()
    );
    if std::env::var_os("TRAWL_WRITE_REPORT").is_some() {
        let doc = format!(
            "# TCP analysis: trawl against tshark\n\n\
             Generated by `TRAWL_WRITE_REPORT=1 cargo test -p trawl-flow --test tshark_tcp` \
             (crates/flow/tests/tshark_tcp.rs) on the captures of ../shared/pcaps whose \
             MANIFEST counts TCP anomalies, with tshark {}. Per tshark stream (`tcp.stream`, \
             matched to trawl's connection by address pair and time), each count of \
             `tcp.analysis.*` flags and RSTs, the handshake RTT (`initial_rtt`) and the mean \
             `ack_rtt`; every disagreement is listed with its reason.\n\n\
             ## Summary\n\n{summary}\nRTT values compared: {rtt_checked}; off by more than \
             5%: {} ({} unexplained).\n\n\
             The test fails when a flag's unexplained differences exceed 2% of tshark's count \
             or an RTT is off by more than 5% without a known cause. Known causes are limits of \
             the flow table, not of the analysis: it forgets a finished connection 10 s after \
             its close, opens no connection for a lone ACK, FIN or RST, keeps 16 segments in \
             flight per direction for RTT, and its clock is the largest timestamp seen. \
             `acked_unseen_segments` (tshark's `ack_lost_segment`) is not compared: trawl \
             flags some ACKs tshark does not on captures with many unseen segments.\n\n\
             ## Per file\n\n{report}",
            if tshark {
                "4.0 run on each file"
            } else {
                "absent (counts from *.truth.tsv)"
            },
            rtt_off.len(),
            rtt_unexplained.len()
        );
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tcp-agreement.md");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, doc).unwrap();
        eprintln!("wrote {}", out.display());
    }
    // Disagreements with a known cause (above) are design limits of the
    // flow table, listed in the report; the analysis itself must agree.
    for (kind, (total, _, unexplained)) in &totals {
        assert!(
            (*unexplained as f64) <= 0.02 * (*total as f64),
            "{kind}: unexplained differences {unexplained} exceed 2% of tshark's {total}\n{report}"
        );
    }
    assert!(
        rtt_unexplained.is_empty(),
        "RTT off by more than 5%: {rtt_unexplained:?}\n{report}"
    );
}

/// With `TRAWL_TCP_DEBUG=FILE` (a capture name in ../shared/pcaps): each
/// TCP frame with trawl's analysis flags, per address pair (no table), to
/// line up against `tshark -r FILE -Y tcp.analysis.flags`.
#[test]
fn debug_flags_per_frame() {
    let (Some(dir), Some(file)) = (shared_pcaps(), std::env::var_os("TRAWL_TCP_DEBUG")) else {
        return;
    };
    let mut reader = CaptureReader::open(&dir.join(file)).unwrap();
    let mut experts: BTreeMap<(SocketAddr, SocketAddr), Expert> = BTreeMap::new();
    let mut frame = 0u64;
    while let Some(pkt) = reader.next_packet().unwrap() {
        frame += 1;
        let Ok(ip) = decode::decode_link(pkt.link, pkt.data) else {
            println!("{frame} not decoded");
            continue;
        };
        if let Ok(Transport::Tcp(seg)) =
            decode::decode_transport(ip.protocol, ip.payload, ip.payload_len)
        {
            let src = SocketAddr::new(ip.src, seg.src_port);
            let dst = SocketAddr::new(ip.dst, seg.dst_port);
            let (key, dir) = if experts.contains_key(&(dst, src)) {
                ((dst, src), 1)
            } else {
                ((src, dst), 0)
            };
            let e = experts.entry(key).or_insert_with(|| Expert::new(pkt.ts_ns));
            let fl = e.tcp(dir, pkt.ts_ns, &seg);
            println!(
                "{frame} {src} > {dst} len {} flags {fl:#06x}",
                seg.payload_len
            );
        }
    }
}
