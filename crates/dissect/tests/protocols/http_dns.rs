//! Agreement with tshark 4.0 on the real captures in ../shared/pcaps: for
//! every HTTP/1 and DNS capture (those that need a TLS key log aside), the
//! messages tshark reports (`*.truth.tsv`, made by `make_truth.py`) are
//! looked up among trawl's calls by endpoints and identifying fields:
//! method and URI (HTTP requests), status (HTTP responses), question name,
//! type and rcode (DNS). Prints a per-file table and every disagreement
//! with its explanation; fails below 99% agreement per file.
//!
//! Uses data from ../shared/pcaps; skips loudly when it is absent.

use std::collections::HashMap;
use std::path::PathBuf;

use trawl_model::{Call, Protocol};

use crate::common::{Row, dissect, ep, read_truth, shared_pcaps};

/// DNS type mnemonic → number, for comparing with tshark's `dns.qry.type`.
fn qtype_number(t: &str) -> String {
    let n = match t {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "NULL" => 10,
        "WKS" => 11,
        "PTR" => 12,
        "HINFO" => 13,
        "LOC" => 29,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "NAPTR" => 35,
        "OPT" => 41,
        "DS" => 43,
        "RRSIG" => 46,
        "NSEC" => 47,
        "DNSKEY" => 48,
        "SVCB" => 64,
        "HTTPS" => 65,
        "AXFR" => 252,
        "ANY" => 255,
        "CAA" => 257,
        other => return other.trim_start_matches("TYPE").to_owned(),
    };
    n.to_string()
}

fn norm_name(n: &str) -> String {
    let n = n.trim_end_matches('.');
    if n.is_empty() || n == "<Root>" {
        "<Root>".to_owned()
    } else {
        n.to_ascii_lowercase()
    }
}

/// The keys under which each call can match a tshark row. A call holds up
/// to two messages (request and response), so it yields up to two keys.
fn call_keys(c: &Call) -> Vec<String> {
    let mut keys = Vec::new();
    let client = ep(c.src.ip, c.src.port);
    let server = ep(c.dst.ip, c.dst.port);
    match c.protocol {
        Some(Protocol::Http) => {
            if c.has_request {
                keys.push(format!("req {client} {server} {} {}", c.method, c.url));
            }
            for s in &c.interim_status_codes {
                keys.push(format!("resp {server} {client} {s}"));
            }
            if c.has_response {
                keys.push(format!("resp {server} {client} {}", c.status_code));
            }
        }
        Some(Protocol::Dns) => {
            let name = c
                .dns_questions
                .first()
                .map_or("<Root>".to_owned(), |n| norm_name(n));
            let qtype = c
                .dns_question_types
                .first()
                .map_or(String::new(), |t| qtype_number(t));
            if c.dns_request {
                keys.push(format!("query {client} {server} {name} {qtype}"));
            }
            if c.dns_response {
                keys.push(format!(
                    "response {server} {client} {name} {qtype} {}",
                    c.status_code
                ));
            }
        }
        // Other protocols are compared by their own tests.
        _ => {}
    }
    keys
}

fn truth_key(proto: &str, r: &Row) -> Option<String> {
    let src = format!("{}|{}", r.get("src"), r.get("sport"));
    let dst = format!("{}|{}", r.get("dst"), r.get("dport"));
    match proto {
        "http" => match r.get("kind") {
            "request" => Some(format!(
                "req {src} {dst} {} {}",
                r.get("http.request.method"),
                r.get("http.request.uri")
            )),
            "response" => Some(format!("resp {src} {dst} {}", r.get("http.response.code"))),
            _ => None,
        },
        "dns" => {
            let name = norm_name(r.get("dns.qry.name"));
            let qtype = r.get("dns.qry.type");
            if r.get("dns.flags.response") == "1" {
                Some(format!(
                    "response {src} {dst} {name} {qtype} {}",
                    r.get("dns.flags.rcode")
                ))
            } else {
                Some(format!("query {src} {dst} {name} {qtype}"))
            }
        }
        _ => None,
    }
}

/// Why a tshark row has no call of its own, when the reason is known and
/// intended. `matched_before` says whether an identical message was
/// matched earlier in the same file.
fn explain(key: &str, matched_before: bool) -> Option<&'static str> {
    if key.starts_with("query ") && matched_before {
        return Some(
            "retransmitted query (same id, same question): folded into the first \
             copy's call and counted as a duplicate_query anomaly",
        );
    }
    None
}

#[test]
fn http_and_dns_agree_with_tshark() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; tshark agreement not checked.");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.starts_with("http-") || name.starts_with("dns-"))
                && (name.ends_with(".pcap") || name.ends_with(".pcapng"))
                // Needs TLS decryption with its key log: not yet supported.
                && !p.with_extension("keylog").exists()
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());

    let mut failures = Vec::new();
    println!(
        "{:<52} {:>6} {:>6} {:>8}",
        "file", "tshark", "found", "agree"
    );
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let proto = if name.starts_with("http-") {
            "http"
        } else {
            "dns"
        };
        let stem = name.rsplit_once('.').unwrap().0;
        let truth = read_truth(&dir.join(format!("{stem}.truth.tsv")));
        let calls = dissect(file);
        let mut available: HashMap<String, usize> = HashMap::new();
        for c in &calls {
            for k in call_keys(c) {
                *available.entry(k).or_default() += 1;
            }
        }
        let mut total = 0usize;
        let mut found = 0usize;
        let mut explained = 0usize;
        let mut misses = Vec::new();
        for row in &truth {
            let Some(key) = truth_key(proto, row) else {
                continue;
            };
            total += 1;
            match available.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    found += 1;
                }
                Some(_) => match explain(&key, true) {
                    Some(why) => {
                        explained += 1;
                        misses.push(format!("  frame {}: {key}: {why}", row.get("frame.number")));
                    }
                    None => misses.push(format!(
                        "  frame {}: {key}: NOT FOUND (all such calls already matched)",
                        row.get("frame.number")
                    )),
                },
                None => match explain(&key, false) {
                    Some(why) => {
                        explained += 1;
                        misses.push(format!("  frame {}: {key}: {why}", row.get("frame.number")));
                    }
                    None => misses.push(format!(
                        "  frame {}: {key}: NOT FOUND (unexplained)",
                        row.get("frame.number")
                    )),
                },
            }
        }
        let agree = if total == 0 {
            1.0
        } else {
            found as f64 / total as f64
        };
        println!("{name:<52} {total:>6} {found:>6} {:>7.1}%", agree * 100.0);
        for m in &misses {
            println!("{m}");
        }
        let extra: usize = available.values().sum();
        if extra > 0 {
            println!("  ({extra} messages trawl found that tshark's rows don't list)");
        }
        if agree < 0.99 {
            failures.push(format!(
                "{name}: {found}/{total} ({explained} explained misses)"
            ));
        }
    }
    assert!(failures.is_empty(), "below 99% agreement: {failures:#?}");
}

/// Real HTTP/1.1 over loopback: python's http.server and curl, captured
/// live by trawl; every request curl made is a call with its status.
#[test]
fn live_http_over_loopback() {
    use std::process::{Command, Stdio};
    let port = 18_081;
    let dir = tempfile_dir();
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    let Some(cap) = crate::common::LiveCapture::start("lo", &format!("tcp port {port}")) else {
        return;
    };
    let Ok(mut server) = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let mut ok = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "http.server did not start");
    let mut sent = Vec::new();
    for path in ["/hello.txt", "/missing", "/hello.txt?x=1"] {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url(path)])
            .output();
        let Ok(out) = out else {
            eprintln!("SKIPPED: curl is not installed");
            let _ = server.kill();
            return;
        };
        sent.push((
            path,
            String::from_utf8_lossy(&out.stdout).parse::<i32>().unwrap(),
        ));
    }
    let calls = cap.stop();
    let _ = server.kill();
    let _ = std::fs::remove_dir_all(&dir);
    let seen: Vec<(String, i32)> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Http))
        .map(|c| (c.url.clone(), c.status_code))
        .collect();
    let want: Vec<(String, i32)> = sent.iter().map(|(p, s)| ((*p).to_owned(), *s)).collect();
    assert_eq!(seen, want);
    assert_eq!(want[1].1, 404);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trawl-live-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
