//! trawl's filter compiler against tcpdump's, on the real captures in
//! ../shared/pcaps: for each expression in the table, (a) the packets our
//! program accepts (run by `trawl_capture::filter::bpf::run`) are exactly the
//! packets `tcpdump -r FILE -w - EXPR` writes, and (b) tcpdump's own program
//! (`tcpdump -r FILE -ddd EXPR`) run through the same interpreter accepts the
//! same packets as ours. Packets of each link type (Ethernet, Linux cooked
//! v1, v2) from every capture are first merged into one pcap, so tcpdump runs
//! once per expression and link type.
//!
//! Skips with a loud message when tcpdump or the captures are absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use trawl_capture::filter::bpf::{Ancillary, run};
use trawl_capture::{LinkType, SockFilter, compile_filter};
use trawl_packet::capfile::{CaptureReader, PcapWriter};

/// Expressions for Ethernet, chosen so that each matches some packets of the
/// corpus and most match a strict subset (addresses and ports from it).
const ETHERNET_EXPRS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "host 10.0.0.138",
    "src host 10.0.0.1",
    "dst host 10.0.0.138",
    "host 127.0.0.1",
    "ip host 10.0.0.1",
    "arp host 10.0.0.138",
    "net 10.0.0.0/8",
    "src net 212.199.202.0/24",
    "dst net 173.194.0.0/16",
    "net 0.0.0.0/0",
    "host ::1",
    "ip6 src host ::1",
    "net fe80::/10",
    "net 2001:470:765b::/48",
    "dst net ff02::/16",
    "port 80",
    "port 53",
    "tcp port 443",
    "udp port 53",
    "src port 80",
    "dst port 6379",
    "tcp dst port 3306",
    "portrange 8000-8999",
    "udp portrange 1-1024",
    "src and dst port 8080",
    "src or dst port 53",
    "port 80 or 443",
    "host 10.0.0.1 or 10.0.0.138",
    "tcp and not port 80",
    "not ip",
    "!tcp && !udp",
    "(tcp or udp) and host 127.0.0.1",
    "tcp or udp and ip6",
    "not (port 80 or port 443) and ip",
    "host 10.0.0.1 and (port 53 or port 80)",
    "vlan",
    "vlan and tcp",
    "vlan 257 and tcp",
    "vlan 118 and vlan 10 and icmp",
    "less 100",
    "greater 1000",
    "tcp and greater 500",
    "icmp or arp",
    "ip and not net 10.0.0.0/8",
    "udp port 1900 or host ff02::c",
    "port 1883 and ip6",
    "tcp port 80 and (src net 10.0.0.0/8 or dst net 10.0.0.0/8)",
];

/// For cooked captures: no `vlan` (an Ethernet-only primitive).
fn cooked_exprs() -> Vec<&'static str> {
    ETHERNET_EXPRS
        .iter()
        .copied()
        .filter(|e| !e.contains("vlan"))
        .collect()
}

struct Pkt {
    ts_ns: i64,
    data: Vec<u8>,
    orig_len: u32,
}

fn tcpdump_present() -> bool {
    Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps");
    dir.is_dir().then_some(dir)
}

/// Every packet of link type `link` in the corpus, in file order.
fn collect(dir: &Path, link: LinkType) -> Vec<Pkt> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(mut r) = CaptureReader::open(&f) else {
            continue;
        };
        // A damaged tail ends that file; the packets before it count.
        while let Ok(Some(p)) = r.next_packet() {
            if p.link == link {
                out.push(Pkt {
                    ts_ns: p.ts_ns,
                    data: p.data.to_vec(),
                    orig_len: p.orig_len,
                });
            }
        }
    }
    out
}

fn write_merged(pkts: &[Pkt], link: LinkType, name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("trawl-capture-{}-{name}.pcap", std::process::id()));
    let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = PcapWriter::new(f, link, 262_144).unwrap();
    for p in pkts {
        w.write_packet(p.ts_ns, &p.data, p.orig_len).unwrap();
    }
    drop(w);
    path
}

/// The (µs timestamp, bytes) of the packets tcpdump keeps; tcpdump writes
/// microsecond pcap, so times are compared at that precision.
fn tcpdump_matches(file: &Path, expr: &str) -> Vec<(i64, Vec<u8>)> {
    let out = Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(["-w", "-", expr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tcpdump rejected `{expr}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = CaptureReader::new(std::io::Cursor::new(out.stdout), "tcpdump output").unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        v.push((p.ts_ns / 1000, p.data.to_vec()));
    }
    v
}

/// tcpdump's own program for `expr` on this file's link type (`-ddd`).
fn tcpdump_program(file: &Path, expr: &str) -> Vec<SockFilter> {
    let out = Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(["-ddd", expr])
        .output()
        .unwrap();
    assert!(out.status.success(), "tcpdump -ddd `{expr}` failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let n: usize = lines.next().unwrap().trim().parse().unwrap();
    let prog: Vec<SockFilter> = lines
        .map(|l| {
            let f: Vec<u32> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            SockFilter::new(f[0] as u16, f[1] as u8, f[2] as u8, f[3])
        })
        .collect();
    assert_eq!(prog.len(), n);
    prog
}

fn check_link(link: LinkType, name: &str, exprs: &[&str]) -> usize {
    let Some(dir) = corpus() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; filter comparison with tcpdump not run");
        return 0;
    };
    if !tcpdump_present() {
        eprintln!(
            "SKIPPED: tcpdump is not installed (apt-get install -y tcpdump); filter comparison not run"
        );
        return 0;
    }
    let pkts = collect(&dir, link);
    if pkts.is_empty() {
        eprintln!("SKIPPED: no {name} packets in {}", dir.display());
        return 0;
    }
    let file = write_merged(&pkts, link, name);
    // Read back what was written: the writer clamps times pcap cannot hold
    // (one capture has bogus ones), and tcpdump sees the written times.
    let mut pkts = Vec::new();
    let mut r = CaptureReader::open(&file).unwrap();
    while let Some(p) = r.next_packet().unwrap() {
        pkts.push(Pkt {
            ts_ns: p.ts_ns,
            data: p.data.to_vec(),
            orig_len: p.orig_len,
        });
    }
    let mut failures = Vec::new();
    let mut some_match = 0;
    for &expr in exprs {
        let ours = compile_filter(expr, link, 262_144).unwrap_or_else(|e| panic!("{e}"));
        let theirs = tcpdump_program(&file, expr);
        let mut ours_kept = Vec::new();
        for (i, p) in pkts.iter().enumerate() {
            let a = run(&ours, &p.data, p.orig_len, Ancillary::default()) != 0;
            let b = run(&theirs, &p.data, p.orig_len, Ancillary::default()) != 0;
            if a != b {
                failures.push(format!(
                    "`{expr}`: packet {i} ours={a} tcpdump -ddd={b} ({:02x?})",
                    &p.data[..p.data.len().min(64)]
                ));
            }
            if a {
                ours_kept.push((p.ts_ns / 1000, p.data.clone()));
            }
        }
        let tcpdump_kept = tcpdump_matches(&file, expr);
        if ours_kept != tcpdump_kept {
            let first = ours_kept
                .iter()
                .zip(&tcpdump_kept)
                .position(|(a, b)| a != b);
            let detail = first.map(|i| {
                let (a, b) = (&ours_kept[i], &tcpdump_kept[i]);
                format!(
                    "first difference at kept packet {i}: ours ts {} len {}, tcpdump ts {} len {}",
                    a.0,
                    a.1.len(),
                    b.0,
                    b.1.len()
                )
            });
            failures.push(format!(
                "`{expr}`: ours kept {} packets, tcpdump -w kept {}; {detail:?}",
                ours_kept.len(),
                tcpdump_kept.len()
            ));
        }
        if !tcpdump_kept.is_empty() && tcpdump_kept.len() < pkts.len() {
            some_match += 1;
        }
        eprintln!(
            "{name} `{expr}`: {} of {} packets",
            ours_kept.len(),
            pkts.len()
        );
    }
    let _ = std::fs::remove_file(&file);
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    some_match
}

#[test]
fn ethernet_filters_agree_with_tcpdump() {
    assert!(ETHERNET_EXPRS.len() >= 40);
    let discriminating = check_link(LinkType::Ethernet, "ethernet", ETHERNET_EXPRS);
    if discriminating > 0 {
        // Most expressions must select a strict, non-empty subset, or the
        // comparison shows little.
        assert!(
            discriminating >= 35,
            "only {discriminating} expressions select a strict subset"
        );
    }
}

#[test]
fn linux_cooked_filters_agree_with_tcpdump() {
    check_link(LinkType::LinuxSll, "sll", &cooked_exprs());
}

#[test]
fn linux_cooked_v2_filters_agree_with_tcpdump() {
    check_link(LinkType::LinuxSll2, "sll2", &cooked_exprs());
}
