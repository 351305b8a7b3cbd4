//! gRPC over h2c: agreement with tshark 4.0 on the shared `grpc-*`
//! captures (each HEADERS frame, as for HTTP/2, and each length-prefixed
//! message by sender and length), and a live test with grpcio (pip):
//! a server and a client from `grpc_live.py` (generic handlers, messages
//! built by hand, no protoc) making a unary call, a failing one and a
//! server-streaming one, while trawl captures loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use trawl_model::{AttrValue, Call, Protocol};

use crate::common::{LiveCapture, Row, ep};
use crate::http2::{h2_call_keys, h2_truth_key};
use crate::redis::agreement;

const GRPC_LIVE_PY: &str = include_str!("grpc_live.py");

fn sizes(c: &Call, field: &str) -> Vec<i64> {
    match c.attrs.get(field) {
        Some(AttrValue::IntList(v)) => v.clone(),
        _ => Vec::new(),
    }
}

/// HTTP/2 keys plus one per message: `msg|sender|length`.
fn grpc_call_keys(c: &Call) -> Vec<String> {
    let mut keys = h2_call_keys(c);
    let (client, server) = (ep(c.src.ip, c.src.port), ep(c.dst.ip, c.dst.port));
    for len in sizes(c, "grpc_request_message_sizes") {
        keys.push(format!("msg|{client}|{len}"));
    }
    for len in sizes(c, "grpc_response_message_sizes") {
        keys.push(format!("msg|{server}|{len}"));
    }
    keys
}

fn grpc_truth_key(r: &Row) -> Option<String> {
    if r.get("kind") == "grpc-message" {
        return Some(format!(
            "msg|{}|{}|{}",
            r.get("src"),
            r.get("sport"),
            r.get("grpc.message_length")
        ));
    }
    h2_truth_key(r)
}

#[test]
fn grpc_agrees_with_tshark() {
    agreement(
        "gRPC",
        "grpc-",
        &[],
        &grpc_call_keys,
        &grpc_truth_key,
        &|_| None,
    );
}

#[test]
fn live_grpc_with_grpcio() {
    let port = 18_084;
    let ok = Command::new("python3")
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with grpcio is not installed (pip install grpcio)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("trawl-live-grpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("grpc_live.py");
    std::fs::write(&script, GRPC_LIVE_PY).unwrap();
    let Some(cap) = LiveCapture::start("lo", &format!("tcp port {port}")) else {
        return;
    };
    let mut server = Command::new("python3")
        .arg(&script)
        .args(["server", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("python3")
        .arg(&script)
        .args(["client", &port.to_string()])
        .output()
        .unwrap();
    let calls = cap.stop();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up, "the grpc server did not start");
    // The client's own log: method, status, messages received.
    let log: Vec<(String, i64, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_owned(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        log.len(),
        3,
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grpc: Vec<&Call> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Grpc))
        .collect();
    let seen: Vec<(String, i64, i64)> = grpc
        .iter()
        .map(|c| {
            (
                c.attrs.str("grpc_method").to_owned(),
                c.attrs.int("grpc_status"),
                c.attrs.int("grpc_response_messages"),
            )
        })
        .collect();
    assert_eq!(seen, log);
    for c in &grpc {
        assert_eq!(c.attrs.str("grpc_service"), "helloworld.Greeter");
        assert_eq!(
            (c.method.as_str(), c.status_code, c.http_version.as_str()),
            ("POST", 200, "HTTP/2")
        );
        assert_eq!(c.attrs.int("grpc_request_messages"), 1);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
    }
    assert_eq!(grpc[0].attrs.str("grpc_request_protobuf"), r#"1: "world""#);
    assert_eq!(
        grpc[0].attrs.str("grpc_response_protobuf"),
        r#"1: "hello world""#
    );
    assert_eq!(sizes(grpc[0], "grpc_response_message_sizes"), [13]);
    assert_eq!(grpc[1].attrs.str("grpc_message"), "no such user: é");
    assert_eq!(sizes(grpc[2], "grpc_response_message_sizes"), [2, 2, 2]);
    assert_eq!(grpc[2].attrs.str("grpc_response_protobuf"), "1: 1");
}
