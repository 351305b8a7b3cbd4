//! Checks a generated capture against Wireshark's own reading of it: tshark
//! must find no malformed packet, no bad checksum, no TCP anomaly, and
//! exactly the HTTP requests, responses (by status) and DNS queries and
//! responses that the generator's summary reports. This is what makes the
//! generator's ground truth trustworthy for trawl's end-to-end tests and for
//! the tshark comparison in `bench/dissect-vs-tshark.sh`.
//!
//! Skipped (loudly) when `tshark` is not installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use trawl_lab::pcapgen::{GenConfig, generate};

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs tshark on `file` with checksum validation on, returns stdout lines.
fn tshark(file: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(["-o", "udp.check_checksum:TRUE", "-r"])
        .arg(file)
        .args(args)
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn tshark_reads_the_capture_cleanly_and_finds_the_same_calls() {
    if !tshark_available() {
        eprintln!(
            "SKIPPED: tshark is not installed (apt-get install -y tshark); generated captures were not checked against Wireshark."
        );
        return;
    }
    let path = TempFile(
        std::env::temp_dir().join(format!("trawl-lab-tshark-{}.pcap", std::process::id())),
    );
    let cfg = GenConfig {
        packets: 5_000,
        seed: 42,
        ..GenConfig::default()
    };
    let summary = generate(std::fs::File::create(&path.0).unwrap(), &cfg).unwrap();

    let problems = tshark(
        &path.0,
        &[
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning || tcp.analysis.flags \
             || ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" \
             || udp.checksum.status == \"Bad\"",
        ],
    );
    assert!(
        problems.is_empty(),
        "tshark complains about:\n{}",
        problems.join("\n")
    );

    // One line per frame: method, status, DNS response flag, TCP SYN-only.
    let rows = tshark(
        &path.0,
        &[
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "http.request.method",
            "-e",
            "http.response.code",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.flags.rcode",
        ],
    );
    assert_eq!(rows.len() as u64, summary.packets);
    let mut methods = BTreeMap::<String, u64>::new();
    let mut statuses = BTreeMap::<u16, u64>::new();
    let (mut queries, mut responses) = (0u64, 0u64);
    let mut rcodes = BTreeMap::<u16, u64>::new();
    for row in &rows {
        let f: Vec<&str> = row.split('\t').collect();
        if !f[0].is_empty() {
            *methods.entry(f[0].to_owned()).or_default() += 1;
        }
        if !f[1].is_empty() {
            *statuses.entry(f[1].parse().unwrap()).or_default() += 1;
        }
        match f[2] {
            "0" | "False" => queries += 1,
            "1" | "True" => {
                responses += 1;
                *rcodes.entry(f[3].parse().unwrap()).or_default() += 1;
            }
            _ => {}
        }
    }
    assert_eq!(methods, summary.http_by_method);
    assert_eq!(statuses, summary.by_status);
    assert_eq!(queries, summary.dns_calls);
    assert_eq!(responses, summary.dns_calls);
    assert_eq!(rcodes, summary.dns_by_rcode);

    let syns = tshark(&path.0, &["-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0"]);
    assert_eq!(syns.len() as u64, summary.tcp_connections);
}
