//! WebSocket: agreement with tshark 4.0 on the shared `websocket-*`
//! captures (each frame tshark reports, by sender, FIN, opcode, mask,
//! payload length and close code, found among the frames of trawl's
//! message calls), and a live test with the `websockets` package (pip):
//! `ws_live.py` as server and client, sending text, binary, a fragmented
//! message, a ping and a close while trawl captures loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use trawl_model::{AttrValue, Call, Protocol};

use crate::common::{LiveCapture, Row, ep};
use crate::redis::agreement;

const WS_LIVE_PY: &str = include_str!("ws_live.py");

fn opcode_number(name: &str) -> i64 {
    match name {
        "continuation" => 0,
        "text" => 1,
        "binary" => 2,
        "close" => 8,
        "ping" => 9,
        "pong" => 10,
        other => other.trim_start_matches("op").parse().unwrap_or(-1),
    }
}

/// One key per frame of a message call: the first frame carries the
/// message's opcode, the others 0 (continuation); only the last has FIN.
fn ws_call_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Ws) {
        return Vec::new();
    }
    let sender = if c.attrs.get("ws_request") == Some(&AttrValue::Bool(true)) {
        ep(c.src.ip, c.src.port)
    } else {
        ep(c.dst.ip, c.dst.port)
    };
    let Some(AttrValue::IntList(lengths)) = c.attrs.get("ws_frame_lengths") else {
        return Vec::new();
    };
    let op = opcode_number(c.attrs.str("ws_opcode"));
    let fin = c.attrs.get("ws_fin") == Some(&AttrValue::Bool(true));
    let mask = u8::from(c.attrs.get("ws_masked") == Some(&AttrValue::Bool(true)));
    let code = match c.attrs.int("ws_close_code") {
        0 => String::new(),
        n => n.to_string(),
    };
    let last = lengths.len().saturating_sub(1);
    lengths
        .iter()
        .enumerate()
        .map(|(i, len)| {
            let frame_op = if i == 0 { op } else { 0 };
            let frame_fin = u8::from(i == last && fin);
            let frame_code = if frame_op == 8 { code.as_str() } else { "" };
            format!("ws|{sender}|{frame_fin}|{frame_op}|{mask}|{len}|{frame_code}")
        })
        .collect()
}

fn ws_truth_key(r: &Row) -> Option<String> {
    let flag = |v: &str| u8::from(v == "1" || v == "True");
    Some(format!(
        "ws|{}|{}|{}|{}|{}|{}|{}",
        r.get("src"),
        r.get("sport"),
        flag(r.get("websocket.fin")),
        r.get("websocket.opcode"),
        flag(r.get("websocket.mask")),
        r.get("payload_length"),
        r.get("websocket.payload.close.status_code")
    ))
}

#[test]
fn websocket_agrees_with_tshark() {
    agreement(
        "WebSocket",
        "websocket-",
        &[],
        &ws_call_keys,
        &ws_truth_key,
        &|_| None,
    );
}

/// Runs `ws_live.py` server and client in `mode` on `port` while trawl
/// captures; returns the client's log and trawl's calls, or None (skipped).
fn live_ws(port: u16, mode: &str) -> Option<(Vec<String>, Vec<Call>)> {
    let ok = Command::new("python3")
        .args(["-c", "import websockets.sync.server"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with websockets is not installed (pip install websockets)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("trawl-live-ws-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("ws_live.py");
    std::fs::write(&script, WS_LIVE_PY).unwrap();
    let cap = LiveCapture::start("lo", &format!("tcp port {port}"))?;
    let mut server = Command::new("python3")
        .arg(&script)
        .args(["server", &port.to_string(), mode])
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
        .args(["client", &port.to_string(), mode])
        .output()
        .unwrap();
    let calls = cap.stop();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up, "the websocket server did not start");
    let log: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        log.len(),
        10,
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The handshake (GET /echo answered 101) comes first.
    let h1: Vec<(&str, i32)> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Http))
        .map(|c| (c.path.as_str(), c.status_code))
        .collect();
    assert_eq!(h1, [("/echo", 101)]);
    Some((log, calls))
}

fn ws_line(c: &Call, with_length: bool) -> String {
    let client = c.attrs.get("ws_request") == Some(&AttrValue::Bool(true));
    let len = c.attrs.int("ws_request_payload_length") + c.attrs.int("ws_response_payload_length");
    let mut line = format!(
        "{} {}",
        if client { "C" } else { "S" },
        c.attrs.str("ws_opcode")
    );
    if with_length {
        line.push_str(&format!(" {len} {}", c.attrs.int("ws_frames")));
    }
    if c.attrs.str("ws_opcode") == "close" {
        if with_length {
            line.push_str(&format!(" {}", c.attrs.int("ws_close_code")));
        }
        assert_eq!(c.attrs.str("ws_close_reason"), "bye");
    }
    assert_eq!(c.path, "/echo");
    assert!(c.errors.is_empty(), "{line}: {:?}", c.errors);
    // Client frames are masked, server frames are not.
    assert_eq!(c.attrs.get("ws_masked"), Some(&AttrValue::Bool(client)));
    line
}

#[test]
fn live_websocket_with_python_websockets() {
    let Some((log, calls)) = live_ws(18_085, "plain") else {
        return;
    };
    // One call per message, in the order they crossed the wire.
    let seen: Vec<String> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Ws))
        .map(|c| ws_line(c, true))
        .collect();
    assert_eq!(seen, log);
    let frag = calls
        .iter()
        .find(|c| c.attrs.int("ws_frames") == 4)
        .unwrap();
    assert_eq!(frag.request.body.as_ref().unwrap().data, b"fragmented");
    assert_eq!(
        frag.attrs.get("ws_frame_lengths"),
        Some(&AttrValue::IntList(vec![4, 4, 2, 0]))
    );
    assert_eq!(frag.attrs.str("ws_request_payload_data"), "fragmented");
}

/// websockets' default permessage-deflate: the messages come out
/// inflated (window kept across messages), whatever their wire size.
#[test]
fn live_websocket_with_permessage_deflate() {
    let Some((log, calls)) = live_ws(18_086, "deflate") else {
        return;
    };
    let ws: Vec<&Call> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Ws))
        .collect();
    let seen: Vec<String> = ws.iter().map(|c| ws_line(c, false)).collect();
    let want: Vec<String> = log
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(seen, want);
    let bodies: Vec<&[u8]> = ws
        .iter()
        .take(6)
        .map(|c| {
            let b = c
                .request
                .body
                .as_ref()
                .or(c.response.body.as_ref())
                .unwrap();
            b.data.as_slice()
        })
        .collect();
    assert_eq!(
        bodies,
        [
            &b"hello"[..],
            b"hello",
            b"\x00\x01\x02",
            b"\x00\x01\x02",
            b"fragmented",
            b"fragmented"
        ]
    );
    assert!(
        ws.iter().take(6).any(|c| {
            let b = c
                .request
                .body
                .as_ref()
                .or(c.response.body.as_ref())
                .unwrap();
            b.decoded_from == Some("deflate")
        }),
        "no message was compressed"
    );
}
