//! HTTP/2 (h2c): agreement with tshark 4.0 on the shared `http2-*`
//! captures (each HEADERS frame tshark reports, by sender, stream id and
//! method/path or status, found among trawl's calls; and the HTTP/1.1
//! messages of h2c upgrades), and live tests with curl against real h2c
//! servers: nghttpd (apt `nghttp2-server`) with prior knowledge, and a
//! small server on python's `h2` package (`h2c_server.py`) for
//! `Upgrade: h2c`, which nghttpd does not implement.
//!
//! Also holds the key functions the gRPC module reuses ([`h2_call_keys`],
//! [`h2_truth_key`]). Uses ../shared/pcaps, curl and nghttpd; skips
//! loudly when they are absent.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trawl_model::{AttrValue, Call};

use crate::common::{LiveCapture, Row, ep};
use crate::redis::agreement;

/// TLS captures need a key log to decrypt; decryption is not in scope yet.
pub const TLS_EXCLUDED: &str =
    "HTTP/2 inside TLS; needs its key log (decryption is not supported yet)";

/// Keys of one call: one per HEADERS frame it stands for (request,
/// interim and final response, trailers), each with the endpoint that
/// sent the frame, and its HTTP/1.1 messages for an upgrade's handshake.
pub fn h2_call_keys(c: &Call) -> Vec<String> {
    let (client, server) = (ep(c.src.ip, c.src.port), ep(c.dst.ip, c.dst.port));
    let mut keys = Vec::new();
    if c.http_version.starts_with("HTTP/1") {
        if c.has_request {
            keys.push(format!("h1req|{client}|{}|{}", c.method, c.url));
        }
        if c.has_response {
            keys.push(format!("h1resp|{server}|{}", c.status_code));
        }
        return keys;
    }
    let Some(AttrValue::Int(stream)) = c.attrs.get("http2_stream_id") else {
        return keys;
    };
    if c.has_request {
        keys.push(format!("req|{client}|{stream}|{}|{}", c.method, c.url));
    }
    if c.has_response {
        for code in &c.interim_status_codes {
            keys.push(format!("resp|{server}|{stream}|{code}"));
        }
        if c.status_code != 0 {
            keys.push(format!("resp|{server}|{stream}|{}", c.status_code));
        }
        // Trailers: the key without a status always, and with it when a
        // grpc-status was read.
        keys.push(format!("trail|{server}|{stream}"));
        if let Some(s) = c.response.headers.get("grpc-status") {
            keys.push(format!("trail|{server}|{stream}|{s}"));
        }
    }
    keys
}

/// A tshark row's key (see [`h2_call_keys`]); None for rows that are not
/// HEADERS frames or HTTP/1.1 messages.
pub fn h2_truth_key(r: &Row) -> Option<String> {
    let sender = format!("{}|{}", r.get("src"), r.get("sport"));
    let stream = r.get("http2.streamid");
    Some(match r.get("kind") {
        "request" => format!(
            "req|{sender}|{stream}|{}|{}",
            r.get("http2.headers.method"),
            r.get("http2.headers.path")
        ),
        "response" => format!("resp|{sender}|{stream}|{}", r.get("http2.headers.status")),
        "trailers" if !r.get("grpc-status").is_empty() => {
            format!("trail|{sender}|{stream}|{}", r.get("grpc-status"))
        }
        "trailers" => format!("trail|{sender}|{stream}"),
        "h1-request" => format!(
            "h1req|{sender}|{}|{}",
            r.get("http2.headers.method"),
            r.get("http2.headers.path")
        ),
        "h1-response" => format!("h1resp|{sender}|{}", r.get("http2.headers.status")),
        _ => return None,
    })
}

#[test]
fn http2_agrees_with_tshark() {
    agreement(
        "HTTP2",
        "http2-",
        &[("http2-wireshark-samples-http2-16-ssl.pcapng", TLS_EXCLUDED)],
        &h2_call_keys,
        &h2_truth_key,
        &|_| None,
    );
}

/// nghttpd serving `dir` on `port` without TLS, or None (skipped loudly).
pub fn start_nghttpd(port: u16, dir: &std::path::Path) -> Option<Child> {
    let child = Command::new("nghttpd")
        .args(["--no-tls", "-d"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("SKIPPED: nghttpd is not installed (apt nghttp2-server)");
        return None;
    };
    wait_for_port(port);
    Some(child)
}

/// A tiny h2c server on the `h2` package (pip), for the Upgrade test:
/// nghttpd does not implement `Upgrade: h2c`.
const H2C_SERVER_PY: &str = include_str!("h2c_server.py");

/// `python3 h2c_server.py PORT`, or None (skipped loudly).
fn start_python_h2c(port: u16, dir: &std::path::Path) -> Option<Child> {
    let ok = Command::new("python3")
        .args(["-c", "import h2"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with the h2 package is not installed (pip install h2)");
        return None;
    }
    let script = dir.join("h2c_server.py");
    std::fs::write(&script, H2C_SERVER_PY).unwrap();
    let child = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    Some(child)
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no server came up on port {port}");
}

/// curl with `mode` fetching `paths`: on one connection (`--http2`,
/// where the first request carries the Upgrade), or one connection per
/// path (`--http2-prior-knowledge`: curl 7.88 does not reuse a prior
/// knowledge connection for a second URL). The status of each, as curl
/// saw it.
fn curl_h2(mode: &str, port: u16, paths: &[&str]) -> Option<Vec<i32>> {
    let groups: Vec<Vec<&str>> = if mode == "--http2" {
        vec![paths.to_vec()]
    } else {
        paths.iter().map(|p| vec![*p]).collect()
    };
    let mut statuses = Vec::new();
    for group in groups {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", mode, "-w", "%{http_code}\\n"]);
        for p in group {
            cmd.args(["-o", "/dev/null", &format!("http://127.0.0.1:{port}{p}")]);
        }
        let Ok(out) = cmd.output() else {
            eprintln!("SKIPPED: curl is not installed");
            return None;
        };
        statuses.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().parse::<i32>().unwrap()),
        );
    }
    Some(statuses)
}

fn live_h2(mode: &str, port: u16) {
    let dir = std::env::temp_dir().join(format!("trawl-live-h2-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello over h2\n").unwrap();
    let Some(cap) = LiveCapture::start("lo", &format!("tcp port {port}")) else {
        return;
    };
    let server = if mode == "--http2" {
        start_python_h2c(port, &dir)
    } else {
        start_nghttpd(port, &dir)
    };
    let Some(mut server) = server else {
        return;
    };
    let paths = ["/hello.txt", "/missing", "/hello.txt?x=1"];
    let statuses = curl_h2(mode, port, &paths);
    let calls = cap.stop();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let Some(statuses) = statuses else {
        return;
    };
    assert_eq!(statuses, [200, 404, 200], "curl's own view");
    let h2: Vec<(String, String, i32, i64)> = calls
        .iter()
        .filter(|c| c.http_version == "HTTP/2")
        .map(|c| {
            (
                c.method.clone(),
                c.url.clone(),
                c.status_code,
                c.attrs.int("http2_stream_id"),
            )
        })
        .collect();
    let want: Vec<(String, String, i32, i64)> = paths
        .iter()
        .zip(&statuses)
        .enumerate()
        .map(|(i, (p, s))| {
            let stream = if mode == "--http2" {
                1 + 2 * i as i64
            } else {
                1
            };
            ("GET".to_owned(), (*p).to_owned(), *s, stream)
        })
        .collect();
    assert_eq!(h2, want, "{mode}");
    for c in calls.iter().filter(|c| c.http_version == "HTTP/2") {
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        if c.status_code == 200 {
            assert_eq!(c.response.body.as_ref().unwrap().data, b"hello over h2\n");
        }
    }
    let h1: Vec<(String, i32)> = calls
        .iter()
        .filter(|c| c.http_version == "HTTP/1.1")
        .map(|c| (c.url.clone(), c.status_code))
        .collect();
    if mode == "--http2" {
        // The upgrade request itself, answered 101, comes first.
        assert_eq!(h1, [("/hello.txt".to_owned(), 101)]);
    } else {
        assert!(h1.is_empty(), "{h1:?}");
    }
}

#[test]
fn live_h2c_prior_knowledge_with_curl_and_nghttpd() {
    live_h2("--http2-prior-knowledge", 18_082);
}

#[test]
fn live_h2c_upgrade_with_curl_and_python_h2() {
    live_h2("--http2", 18_083);
}
