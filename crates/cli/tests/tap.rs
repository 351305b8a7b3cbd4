//! End-to-end tests of `trawl tap` on real traffic: two network namespaces
//! joined by a veth pair, a real HTTP server (python3's http.server) in one
//! and a real client (curl) in the other; `trawl tap` captures on the
//! server's veth end, then `trawl snapshot create`, `trawl export pcap` and
//! `trawl dissect` must find exactly the calls the client logged. A second
//! test kills a running tap with SIGKILL and checks that the store reopens
//! with every flushed record readable. A third runs the whole loop through
//! the tap's HTTP API: real HTTP (python3 + curl) and DNS (dnsmasq + dig)
//! across the namespaces, a snapshot taken with `trawl snapshot create
//! --url`, dissected through the API, whose calls must equal the clients'
//! logs, and a PCAP export through the API holding exactly the packets of
//! the window.
//!
//! Needs root, `ip netns`, python3 and curl (and dnsmasq and dig for the
//! API test); prints SKIPPED otherwise.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TRAWL: &str = env!("CARGO_BIN_EXE_trawl");

/// Why the test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        return Some("needs root (network namespaces, AF_PACKET)".into());
    }
    for tool in ["ip", "python3", "curl"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!("needs {tool} on PATH"));
        }
    }
    None
}

fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces `srv` and `cli` joined by a veth pair, with
/// 10.201.`net`.1 (server) and 10.201.`net`.2 (client); processes started
/// in them and the namespaces themselves go away on drop, also on panic.
struct Lab {
    srv: String,
    cli: String,
    srv_if: String,
    srv_addr: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str, net: u8) -> Self {
        let pid = std::process::id();
        let srv = format!("trawl-{tag}-{pid}-s");
        let cli = format!("trawl-{tag}-{pid}-c");
        // Interface names are limited to 15 bytes.
        let srv_if = format!("tw{tag}{}s", pid % 100_000);
        let cli_if = format!("tw{tag}{}c", pid % 100_000);
        let dir = std::env::temp_dir().join(format!("trawl-tap-test-{tag}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Self {
            srv: srv.clone(),
            cli: cli.clone(),
            srv_if: srv_if.clone(),
            srv_addr: format!("10.201.{net}.1"),
            dir,
            children: Vec::new(),
        };
        sh(&["ip", "netns", "add", &srv]);
        sh(&["ip", "netns", "add", &cli]);
        sh(&[
            "ip", "link", "add", &srv_if, "netns", &srv, "type", "veth", "peer", "name", &cli_if,
            "netns", &cli,
        ]);
        for (ns, ifname, addr) in [
            (&srv, &srv_if, format!("10.201.{net}.1/24")),
            (&cli, &cli_if, format!("10.201.{net}.2/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", ifname]);
            sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts python3's http.server in the server namespace, serving files
    /// `path-0` … `path-{n-1}`, and waits until it answers (over the
    /// server namespace's own loopback route, so not on the captured veth).
    fn start_http(&mut self, port: u16, n: usize) {
        let www = self.dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        for i in 0..n {
            std::fs::write(www.join(format!("path-{i}")), format!("body {i}\n")).unwrap();
        }
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv, "python3", "-m", "http.server"])
            .arg(port.to_string())
            .args(["--bind", &self.srv_addr, "--directory"])
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        let url = format!("http://{}:{port}/", self.srv_addr);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.srv,
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    &url,
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `trawl tap` in the server namespace on its veth end; returns
    /// its index in `children` once it says it is capturing.
    fn start_tap(&mut self, log: &str) -> usize {
        let iface = self.srv_if.clone();
        self.start_tap_on(log, &iface)
    }

    /// [`Lab::start_tap`] on interface `iface` (`any` for all of the
    /// server namespace's, loopback included).
    fn start_tap_on(&mut self, log: &str, iface: &str) -> usize {
        let log = self.dir.join(log);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv, TRAWL, "tap", "--interface"])
            .arg(iface)
            .args(["--node", "testnode", "--ring-mb", "4", "--data"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("capturing on")
        {
            let idx = self.children.len() - 1;
            if let Some(st) = self.children[idx].try_wait().unwrap() {
                panic!(
                    "trawl tap exited early ({st}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "trawl tap did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.children.len() - 1
    }

    /// Sends SIGTERM to child `i` and returns its exit status.
    fn term(&mut self, i: usize) -> std::process::ExitStatus {
        let pid = self.children[i].id().to_string();
        sh(&["kill", "-TERM", &pid]);
        self.children[i].wait().unwrap()
    }

    /// The client's log: one line per request, `EXIT CODE URL`.
    fn requests(&self, port: u16, range: std::ops::Range<usize>) -> Vec<String> {
        range
            .map(|i| {
                let url = format!("http://{}:{port}/path-{i}", self.srv_addr);
                let out = Command::new("ip")
                    .args(["netns", "exec", &self.cli, "curl", "-s", "-o", "/dev/null"])
                    .args(["-w", "%{http_code} %{url_effective}", &url])
                    .output()
                    .unwrap();
                format!(
                    "{} {}",
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout)
                )
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn trawl(args: &[&str], data: &Path) -> String {
    let out = Command::new(TRAWL)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trawl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// Snapshots `[from, to)`, exports it and dissects it: the HTTP calls.
fn http_calls(lab: &Lab, from: jiff::Timestamp, to: jiff::Timestamp) -> Vec<serde_json::Value> {
    let data = lab.data();
    let (from, to) = (rfc3339(from), rfc3339(to));
    let id = trawl(&["snapshot", "create", "--from", &from, "--to", &to], &data);
    let id = id.trim();
    assert!(!id.is_empty());
    let pcap = lab.dir.join(format!("{id}.pcap"));
    trawl(&["export", "pcap", id, "-o", pcap.to_str().unwrap()], &data);
    let out = Command::new(TRAWL)
        .args(["dissect", pcap.to_str().unwrap(), "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|c| c["protocol"] == "http")
        .collect()
}

fn assert_calls(calls: &[serde_json::Value], log: &[String], port: u16, lab: &Lab) {
    // The client's own log: every request succeeded with 200.
    let mut sent = BTreeSet::new();
    for (i, line) in log.iter().enumerate() {
        assert_eq!(
            line,
            &format!("0 200 http://{}:{port}/path-{i}", lab.srv_addr),
            "client log"
        );
        sent.insert(format!("/path-{i}"));
    }
    assert_eq!(calls.len(), log.len(), "calls: {calls:#?}");
    let seen: BTreeSet<String> = calls
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, sent);
    for c in calls {
        assert_eq!(c["status_code"], 200, "{c}");
        assert_eq!(c["method"], "GET", "{c}");
    }
}

#[test]
fn tap_captures_exactly_the_http_calls_sent() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED: tap_captures_exactly_the_http_calls_sent {why}");
        return;
    }
    const N: usize = 12;
    const PORT: u16 = 18080;
    let mut lab = Lab::new("a", 1);
    lab.start_http(PORT, N);
    let tap = lab.start_tap("tap.log");
    let from = jiff::Timestamp::now();
    let log = lab.requests(PORT, 0..N);
    std::thread::sleep(Duration::from_millis(1500));
    let to = jiff::Timestamp::now();
    // Another process sees the flushed packets while the tap still runs.
    let b: serde_json::Value =
        serde_json::from_str(&trawl(&["boundaries", "--json"], &lab.data())).unwrap();
    assert!(b[0]["packets"].as_u64().unwrap() > 0, "{b}");
    let status = lab.term(tap);
    let tap_log = std::fs::read_to_string(lab.dir.join("tap.log")).unwrap();
    assert!(status.success(), "trawl tap: {status}: {tap_log}");
    assert!(tap_log.contains("stopped;"), "{tap_log}");

    let calls = http_calls(&lab, from, to);
    assert_calls(&calls, &log, PORT, &lab);
}

#[test]
fn tap_killed_with_sigkill_leaves_a_readable_store() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED: tap_killed_with_sigkill_leaves_a_readable_store {why}");
        return;
    }
    const N: usize = 6;
    const PORT: u16 = 18081;
    let mut lab = Lab::new("b", 2);
    lab.start_http(PORT, N);
    let tap = lab.start_tap("tap1.log");
    let from = jiff::Timestamp::now();
    let log = lab.requests(PORT, 0..N);
    // More than the tap's flush interval (1 s): these records are on disk.
    std::thread::sleep(Duration::from_millis(1500));
    let to = jiff::Timestamp::now();
    lab.children[tap].kill().unwrap();
    lab.children[tap].wait().unwrap();

    // Reopen: a tap starts again on the killed store and stops cleanly.
    let tap2 = lab.start_tap("tap2.log");
    std::thread::sleep(Duration::from_millis(300));
    let status = lab.term(tap2);
    assert!(status.success(), "second trawl tap: {status}");

    let b: serde_json::Value =
        serde_json::from_str(&trawl(&["boundaries", "--json"], &lab.data())).unwrap();
    let node = b
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "testnode")
        .unwrap_or_else(|| panic!("no testnode in {b}"));
    let (oldest, newest) = (
        node["oldest_ts"].as_i64().unwrap(),
        node["newest_ts"].as_i64().unwrap(),
    );
    assert!(node["packets"].as_u64().unwrap() > 0, "{node}");
    assert!(oldest <= newest, "{node}");
    let (f, t) = (from.as_nanosecond() as i64, to.as_nanosecond() as i64);
    assert!(oldest <= t && newest >= f, "{node} outside [{f}, {t}]");

    let calls = http_calls(&lab, from, to);
    assert_calls(&calls, &log, PORT, &lab);
}

/// Why the API test cannot run here (beyond [`missing_prerequisite`]).
fn missing_dns_tools() -> Option<String> {
    for tool in ["dnsmasq", "dig"] {
        let ok = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!(
                "needs {tool} (apt-get install dnsmasq-base dnsutils)"
            ));
        }
    }
    None
}

/// The tap's API, as seen from inside the server namespace.
const API: &str = "http://127.0.0.1:9900";

impl Lab {
    /// Starts dnsmasq in the server namespace, authoritative for
    /// `trawl.test` with `records` (name → IPv4), and waits until it
    /// answers (over the namespace's loopback route, before any capture).
    fn start_dns(&mut self, records: &[(String, String)]) {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.srv,
            "dnsmasq",
            "--keep-in-foreground",
        ])
        .args([
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .arg(format!("--listen-address={}", self.srv_addr))
        .args([
            "--port=53",
            "--local=/trawl.test/",
            "--pid-file",
            "--user=root",
        ]);
        for (name, ip) in records {
            cmd.arg(format!("--host-record={name},{ip}"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let (name, ip) = &records[0];
        loop {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &self.srv, "dig", "+short", "+time=1", "+tries=1",
                ])
                .arg(format!("@{}", self.srv_addr))
                .arg(name)
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).trim() == ip {
                return;
            }
            assert!(Instant::now() < deadline, "dnsmasq did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One DNS query from the client namespace with dig; its own log:
    /// (name, status, answers).
    fn dig(&self, name: &str) -> (String, String, Vec<String>) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.cli, "dig", "+time=2", "+tries=1"])
            .arg(format!("@{}", self.srv_addr))
            .args([name, "A"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("no status in dig's output: {text}"))
            .to_owned();
        let mut answers = Vec::new();
        let mut in_answers = false;
        for line in text.lines() {
            if line.starts_with(";; ANSWER SECTION") {
                in_answers = true;
            } else if in_answers && line.trim().is_empty() {
                in_answers = false;
            } else if in_answers {
                answers.push(line.split_whitespace().last().unwrap().to_owned());
            }
        }
        (name.to_owned(), status, answers)
    }

    /// One HTTP request from the client namespace with curl; its own log:
    /// (method, path, status).
    fn http(&self, port: u16, method: &str, path: &str) -> (String, String, u16) {
        let url = format!("http://{}:{port}{path}", self.srv_addr);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.cli, "curl", "-s", "-o", "/dev/null"]);
        match method {
            "HEAD" => cmd.arg("--head"),
            "GET" => &mut cmd,
            m => cmd.args(["-X", m, "--data", "x=1"]),
        };
        let out = cmd.args(["-w", "%{http_code}", &url]).output().unwrap();
        let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        (method.to_owned(), path.to_owned(), code)
    }

    /// `trawl ARGS --url API` run inside the server namespace.
    fn trawl_api(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.srv, TRAWL])
            .args(args)
            .args(["--url", API])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "trawl {args:?} --url: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A request to the tap's API with curl inside the server namespace.
    fn api(&self, method: &str, path: &str) -> serde_json::Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.srv, "curl", "-s", "-X", method])
            .arg(format!("{API}{path}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {method} {path}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// Packets in pcap/pcapng `file` (and, with a window, those inside it).
fn count_packets(file: &Path, window: Option<(i64, i64)>) -> u64 {
    let mut r = trawl_packet::CaptureReader::open(file).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        if window.is_none_or(|(f, t)| p.ts_ns >= f && p.ts_ns < t) {
            n += 1;
        }
    }
    n
}

#[test]
fn tap_api_snapshot_dissection_and_export_match_the_clients() {
    if let Some(why) = missing_prerequisite().or_else(missing_dns_tools) {
        eprintln!("SKIPPED: tap_api_snapshot_dissection_and_export_match_the_clients {why}");
        return;
    }
    const PORT: u16 = 18082;
    let mut lab = Lab::new("m", 3);
    lab.start_http(PORT, 4);
    let records: Vec<(String, String)> = (0..4)
        .map(|i| (format!("svc-{i}.trawl.test"), format!("10.9.0.{}", i + 1)))
        .collect();
    lab.start_dns(&records);
    // Every interface of the server namespace, loopback too: the CLI's and
    // curl's requests to the API below cross it and must not be captured.
    let tap = lab.start_tap_on("tap.log", "any");
    let b: serde_json::Value =
        serde_json::from_str(&lab.trawl_api(&["boundaries", "--json"])).unwrap();
    assert!(b.is_array(), "{b}");

    let from = jiff::Timestamp::now();
    let mut http_log = Vec::new();
    for (m, p) in [
        ("GET", "/path-0"),
        ("GET", "/path-1"),
        ("GET", "/missing"),
        ("HEAD", "/path-2"),
        ("POST", "/path-3"),
        ("GET", "/path-3"),
    ] {
        http_log.push(lab.http(PORT, m, p));
    }
    // API traffic inside the window: excluded from capture.
    lab.trawl_api(&["boundaries"]);
    let mut dns_log = Vec::new();
    for (name, _) in &records {
        dns_log.push(lab.dig(name));
    }
    dns_log.push(lab.dig("nope.trawl.test"));
    // The clients' own view: what the server answered.
    let codes: Vec<u16> = http_log.iter().map(|(_, _, c)| *c).collect();
    assert_eq!(codes, [200, 200, 404, 200, 501, 200], "{http_log:?}");
    for ((name, status, answers), (rname, ip)) in dns_log.iter().zip(&records) {
        assert_eq!((name, status.as_str()), (rname, "NOERROR"));
        assert_eq!(answers, std::slice::from_ref(ip));
    }
    assert_eq!(dns_log[4].1, "NXDOMAIN", "{dns_log:?}");
    // A ring block retires within its timeout; then the window closes.
    std::thread::sleep(Duration::from_millis(500));
    let to = jiff::Timestamp::now();

    // Snapshot through the API (the tap flushes first), then dissect it.
    let id = lab.trawl_api(&[
        "snapshot",
        "create",
        "--from",
        &rfc3339(from),
        "--to",
        &rfc3339(to),
        "--name",
        "must-show",
    ]);
    let id = id.trim().to_owned();
    let started = lab.api("POST", &format!("/api/v1/snapshots/{id}/dissection"));
    assert!(
        started["status"] == "running" || started["status"] == "done",
        "{started}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let st = lab.api("GET", &format!("/api/v1/snapshots/{id}/dissection"));
        if st["status"] == "done" {
            break st;
        }
        assert_eq!(st["status"], "running", "{st}");
        assert!(Instant::now() < deadline, "dissection did not finish: {st}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let page = lab.api("GET", &format!("/api/v1/snapshots/{id}/calls?limit=1000"));
    let calls = page["calls"].as_array().unwrap();
    assert_eq!(page["total"], done["counts"]["calls"], "{page}");

    let mut http_seen: Vec<(String, String, u16)> = calls
        .iter()
        .filter(|c| c["protocol"] == "http")
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["status_code"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    let mut http_sent = http_log.clone();
    http_seen.sort();
    http_sent.sort();
    assert_eq!(http_seen, http_sent, "calls: {calls:#?}");

    let rcode = |s: &str| match s {
        "NOERROR" => 0,
        "NXDOMAIN" => 3,
        other => panic!("rcode {other}"),
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap().trim_end_matches('.').to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut dns_seen: Vec<(String, u64, Vec<String>)> = calls
        .iter()
        .filter(|c| c["protocol"] == "dns")
        .map(|c| {
            let q = strings(&c["dns_questions"]);
            assert_eq!(q.len(), 1, "{c}");
            (
                q[0].clone(),
                c["status_code"].as_u64().unwrap(),
                strings(&c["dns_answers"]),
            )
        })
        .collect();
    let mut dns_sent: Vec<(String, u64, Vec<String>)> = dns_log
        .iter()
        .map(|(n, s, a)| (n.clone(), rcode(s), a.clone()))
        .collect();
    dns_seen.sort();
    dns_sent.sort();
    assert_eq!(dns_seen, dns_sent, "calls: {calls:#?}");
    assert_eq!(
        calls.len(),
        http_log.len() + dns_log.len(),
        "calls: {calls:#?}"
    );

    // Export through the API: exactly the packets of the window.
    let snap: serde_json::Value =
        serde_json::from_str(&lab.trawl_api(&["snapshot", "show", &id])).unwrap();
    let pcap = lab.dir.join("window.pcap");
    lab.trawl_api(&["export", "pcap", &id, "-o", pcap.to_str().unwrap()]);
    let exported = count_packets(&pcap, None);
    assert_eq!(exported, snap["packets"].as_u64().unwrap(), "{snap}");
    assert_eq!(
        exported,
        done["counts"]["packets"].as_u64().unwrap(),
        "{done}"
    );

    let status = lab.term(tap);
    let tap_log = std::fs::read_to_string(lab.dir.join("tap.log")).unwrap();
    assert!(status.success(), "trawl tap: {status}: {tap_log}");
    assert!(
        tap_log.contains("API on http://127.0.0.1:9900"),
        "{tap_log}"
    );
    // The raw store, read independently, holds the same packets in the
    // window.
    let (f, t) = (from.as_nanosecond() as i64, to.as_nanosecond() as i64);
    let raw = lab.data().join("raw/testnode");
    let in_window: u64 = std::fs::read_dir(&raw)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .map(|p| count_packets(&p, Some((f, t))))
        .sum();
    assert_eq!(exported, in_window);
    assert!(exported > 0);
    eprintln!(
        "tap API test: {} HTTP and {} DNS calls as logged; {exported} packets in the window",
        http_log.len(),
        dns_log.len()
    );
}

/// A management link from the host into `lab`'s server namespace: the host
/// at 10.202.`net`.1, the namespace at 10.202.`net`.2. Deleting the
/// namespace (the lab's drop) deletes both ends.
fn mgmt_link(lab: &Lab, net: u8) -> String {
    let pid = std::process::id() % 100_000;
    let host_if = format!("twm{net}{pid}h");
    let ns_if = format!("twm{net}{pid}n");
    sh(&[
        "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &lab.srv,
    ]);
    sh(&[
        "ip",
        "addr",
        "add",
        &format!("10.202.{net}.1/24"),
        "dev",
        &host_if,
    ]);
    sh(&["ip", "link", "set", &host_if, "up"]);
    sh(&[
        "ip",
        "-n",
        &lab.srv,
        "addr",
        "add",
        &format!("10.202.{net}.2/24"),
        "dev",
        &ns_if,
    ]);
    sh(&["ip", "-n", &lab.srv, "link", "set", &ns_if, "up"]);
    format!("10.202.{net}.2")
}

/// Starts `trawl worker` in `lab`'s server namespace, capturing its veth
/// to the client and serving its API on the management address.
fn start_worker(lab: &mut Lab, node: &str, api: &str, token: &str) -> usize {
    let log = lab.dir.join("worker.log");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.srv,
            TRAWL,
            "worker",
            "--interface",
            &lab.srv_if,
        ])
        .args(["--node", node, "--ring-mb", "4", "--token", token])
        .args(["--listen", &format!("{api}:9900"), "--data"])
        .arg(lab.data())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    lab.children.push(child);
    wait_for_log(lab, &log, "capturing on");
    lab.children.len() - 1
}

fn wait_for_log(lab: &mut Lab, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
    {
        let idx = lab.children.len() - 1;
        if let Some(st) = lab.children[idx].try_wait().unwrap() {
            panic!(
                "{} exited early ({st}): {}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{} did not start", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct HubClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl HubClient {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let rb = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or_default()),
            _ => self.http.get(url),
        };
        let r = rb.bearer_auth(&self.token).send().unwrap();
        let s = r.status().as_u16();
        (s, r.json().unwrap())
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (s, v) = self.call("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
}

/// The Must show: a hub over two workers, each in its own network
/// namespace capturing its own client's HTTP calls. A snapshot covers
/// both, dissection runs on both, the calls list merges both in time order
/// over pages without duplicates or gaps, the stats equal those of the
/// union (the hub's merged PCAP indexed as one capture with `trawl index`
/// and `trawl stats`), and with one worker killed the answers still come,
/// flagged partial with the node named.
#[test]
fn hub_merges_two_workers_in_namespaces_and_flags_a_dead_one() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED: hub_merges_two_workers_in_namespaces_and_flags_a_dead_one {why}");
        return;
    }
    const PORT: u16 = 18084;
    const TOKEN: &str = "cluster-test-token";
    let (na, nb) = (9usize, 14usize);
    let mut a = Lab::new("p", 6);
    let mut b = Lab::new("q", 7);
    let api_a = mgmt_link(&a, 6);
    let api_b = mgmt_link(&b, 7);
    a.start_http(PORT, na);
    b.start_http(PORT, nb);
    start_worker(&mut a, "node-a", &api_a, TOKEN);
    let worker_b = start_worker(&mut b, "node-b", &api_b, TOKEN);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub_log = a.dir.join("hub.log");
    let hub = Command::new(TRAWL)
        .args(["hub", "--worker", &format!("http://{api_a}:9900")])
        .args(["--worker", &format!("http://{api_b}:9900")])
        .args([
            "--token",
            TOKEN,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(a.dir.join("hub"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&hub_log).unwrap())
        .spawn()
        .unwrap();
    a.children.push(hub);
    wait_for_log(&mut a, &hub_log, "serving");
    let c = HubClient {
        base: format!("http://127.0.0.1:{port}"),
        token: TOKEN.into(),
        http: reqwest::blocking::Client::new(),
    };

    let from = jiff::Timestamp::now();
    let log_a = a.requests(PORT, 0..na);
    let log_b = b.requests(PORT, 0..nb);
    std::thread::sleep(Duration::from_millis(1500));
    let to = jiff::Timestamp::now();
    assert!(
        log_a.iter().chain(&log_b).all(|l| l.starts_with("0 200 ")),
        "{log_a:?} {log_b:?}"
    );

    let nodes = c.get("/api/v1/nodes");
    let up: BTreeSet<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "up")
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(up, BTreeSet::from(["node-a", "node-b"]), "{nodes}");
    let bounds = c.get("/api/v1/boundaries");
    for n in bounds["nodes"].as_array().unwrap() {
        assert!(n["packets"].as_u64().unwrap() > 0, "{bounds}");
    }
    assert_eq!(bounds["nodes"].as_array().unwrap().len(), 2, "{bounds}");

    let (s, snap) = c.call(
        "POST",
        "/api/v1/snapshots?wait=true",
        Some(serde_json::json!({"from": rfc3339(from), "to": rfc3339(to), "name": "cluster"})),
    );
    assert_eq!(s, 201, "{snap}");
    let parts: BTreeSet<&str> = snap["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap())
        .collect();
    assert_eq!(parts, BTreeSet::from(["node-a", "node-b"]), "{snap}");
    let id = snap["id"].as_str().unwrap().to_owned();
    // The CLI's verbs talk to a hub as to a tap.
    let out = Command::new(TRAWL)
        .args(["snapshot", "list", "--url", &c.base, "--token", TOKEN])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains(&id),
        "{listed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, v) = c.call("POST", &format!("/api/v1/snapshots/{id}/dissection"), None);
    assert!(s == 200 || s == 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let st = c.get(&format!("/api/v1/snapshots/{id}/dissection"));
        if st["status"] == "done" {
            break st;
        }
        assert_eq!(st["status"], "running", "{st}");
        assert!(Instant::now() < deadline, "dissection did not finish: {st}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["nodes"].as_array().unwrap().len(), 2, "{done}");

    // The calls of both, merged by time over pages of 4.
    let mut calls = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut path = format!("/api/v1/snapshots/{id}/calls?filter=http&limit=4");
        if !cursor.is_empty() {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = c.get(&path);
        assert_eq!(page["partial"], false, "{page}");
        assert_eq!(page["total"], (na + nb) as u64, "{page}");
        calls.extend(page["calls"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(n) => cursor = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(calls.len(), na + nb);
    let ids: BTreeSet<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), na + nb, "a call came twice");
    let ts: Vec<i64> = calls
        .iter()
        .map(|c| trawl_rawstore_time(c["timestamp"].as_str().unwrap()))
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "not in time order: {ts:?}"
    );
    for (node, lab, n) in [("node-a", &a, na), ("node-b", &b, nb)] {
        let paths: BTreeSet<String> = calls
            .iter()
            .filter(|c| c["id"].as_str().unwrap().starts_with(&format!("{node}/")))
            .map(|c| {
                assert_eq!(c["dst.ip"], lab.srv_addr.as_str(), "{c}");
                c["path"].as_str().unwrap().to_owned()
            })
            .collect();
        let sent: BTreeSet<String> = (0..n).map(|i| format!("/path-{i}")).collect();
        assert_eq!(paths, sent, "{node}");
    }

    // Stats of the union: the hub's merged PCAP, indexed as one capture.
    let stats = c.get(&format!("/api/v1/snapshots/{id}/stats?filter=http"));
    assert_eq!(stats["total_calls"], (na + nb) as u64, "{stats}");
    let r = c
        .http
        .get(format!("{}/api/v1/snapshots/{id}/pcap", c.base))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let pcap = a.dir.join("union.pcap");
    std::fs::write(&pcap, r.bytes().unwrap()).unwrap();
    let idx = a.dir.join("union-idx");
    let out = Command::new(TRAWL)
        .args([
            "index",
            pcap.to_str().unwrap(),
            "--out",
            idx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(TRAWL)
        .args(["stats", idx.to_str().unwrap(), "http", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let union: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let g = &stats["groups"][0];
    assert_eq!(g["count"], union["count"], "{g} vs {union}");
    for (hub_k, union_k) in [
        ("p50", "p50_us"),
        ("p95", "p95_us"),
        ("p99", "p99_us"),
        ("max", "max_us"),
    ] {
        assert_eq!(
            g["latency_us"][hub_k], union[union_k],
            "{hub_k}: {g} vs {union}"
        );
    }

    // One worker killed: lists and stats still answer, flagged partial.
    let pid = b.children[worker_b].id().to_string();
    sh(&["kill", "-KILL", &pid]);
    let _ = b.children[worker_b].wait();
    let page = c.get(&format!(
        "/api/v1/snapshots/{id}/calls?filter=http&limit=50"
    ));
    assert_eq!(page["partial"], true, "{page}");
    assert_eq!(
        page["missing_nodes"],
        serde_json::json!(["node-b"]),
        "{page}"
    );
    assert_eq!(page["total"], na as u64, "{page}");
    let stats = c.get(&format!("/api/v1/snapshots/{id}/stats?filter=http"));
    assert_eq!(stats["partial"], true, "{stats}");
    assert_eq!(stats["total_calls"], na as u64, "{stats}");
    let bounds = c.get("/api/v1/boundaries");
    assert_eq!(
        bounds["missing_nodes"],
        serde_json::json!(["node-b"]),
        "{bounds}"
    );
    let nodes = c.get("/api/v1/nodes");
    assert!(
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == "node-b" && n["status"] == "down"),
        "{nodes}"
    );
}

/// RFC 3339 with any number of fractional digits → ns.
fn trawl_rawstore_time(s: &str) -> i64 {
    let t: jiff::Timestamp = s.parse().unwrap();
    i64::try_from(t.as_nanosecond()).unwrap()
}
