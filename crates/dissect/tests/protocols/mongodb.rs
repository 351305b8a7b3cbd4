//! MongoDB against tshark 4.0 on the shared captures (one row per wire
//! message: opcode, requestID, responseTo, full collection name, first
//! element), and a live test: pymongo against a minimal OP_MSG server
//! written here, over loopback, captured by trawl.
//!
//! Uses data from ../shared/pcaps; skips loudly when it is absent.

use trawl_model::{Call, Protocol};

use crate::common::{Row, ep, shared_pcaps};
use crate::tls::{Keys, agree, load};

fn opcode_number(name: &str) -> i64 {
    match name {
        "OP_REPLY" => 1,
        "OP_UPDATE" => 2001,
        "OP_INSERT" => 2002,
        "OP_QUERY" => 2004,
        "OP_GET_MORE" => 2005,
        "OP_DELETE" => 2006,
        "OP_KILL_CURSORS" => 2007,
        "OP_COMPRESSED" => 2012,
        "OP_MSG" => 2013,
        _ => 0,
    }
}

/// Request: opcode, requestID, the legacy full collection name (tshark
/// shows it for OP_QUERY only) and the command (the first element of a
/// command document; legacy finds are keyed without it). Reply:
/// responseTo.
fn call_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Mongodb) {
        return Vec::new();
    }
    let client = ep(c.src.ip, c.src.port);
    let server = ep(c.dst.ip, c.dst.port);
    let a = &c.attrs;
    let id = a.int("mongodb_request_id");
    let mut keys = Vec::new();
    if c.has_request {
        let op = opcode_number(a.str("mongodb_opcode"));
        let ns = if op == 2004 {
            a.str("mongodb_namespace")
        } else {
            ""
        };
        let legacy_find = op == 2004 && !ns.ends_with(".$cmd");
        let cmd = if legacy_find {
            ""
        } else {
            a.str("mongodb_command")
        };
        keys.push(format!(
            "req {client} {server} op={op} id={id} ns={ns} cmd={cmd}"
        ));
    }
    if c.has_response {
        keys.push(format!("resp {server} {client} to={id}"));
    }
    keys
}

fn hex_i64(s: &str) -> i64 {
    i64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(-1) as i32 as i64
}

fn row_key(r: &Row) -> Option<String> {
    let src = format!("{}|{}", r.get("src"), r.get("sport"));
    let dst = format!("{}|{}", r.get("dst"), r.get("dport"));
    let op: i64 = r.get("mongo.opcode").parse().ok()?;
    let to = hex_i64(r.get("mongo.response_to"));
    if op == 1 || to != 0 {
        return Some(format!("resp {src} {dst} to={to}"));
    }
    let id = hex_i64(r.get("mongo.request_id"));
    let ns = r.get("mongo.full_collection_name");
    let legacy_find = op == 2004 && !ns.ends_with(".$cmd");
    let cmd = if legacy_find {
        ""
    } else {
        r.get("first_element")
    };
    Some(format!("req {src} {dst} op={op} id={id} ns={ns} cmd={cmd}"))
}

fn explain(_key: &str, _row: &Row) -> Option<&'static str> {
    None
}

const KEYS: Keys = Keys {
    protocol: "mongodb",
    call_keys,
    row_key,
    explain,
    notes: "A tshark row is one MongoDB wire message. Requests are keyed by endpoints, opcode, \
        requestID, OP_QUERY's full collection name and the command (the first element of the \
        command document; legacy finds on a collection are keyed without it, their first \
        element being a query field); replies by endpoints and responseTo.",
};

#[test]
fn mongodb_agrees_with_tshark() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; MongoDB agreement not checked.");
        return;
    };
    let caps = load(&dir, "mongo-");
    assert_eq!(caps.len(), 4);
    agree(&KEYS, caps);
}

/// pymongo (pip) against `tests/fixtures/mongodb/minimal_server.py` over
/// loopback, captured live by trawl: the commands the driver's own
/// command monitoring logged are the calls trawl found (handshakes,
/// which the driver does not log, left aside), with database,
/// collection and the error code of the failed one.
#[test]
fn live_pymongo_over_loopback() {
    use std::process::{Command, Stdio};
    let port = 27_117;
    let have = Command::new("python3")
        .args(["-c", "import pymongo"])
        .stderr(Stdio::null())
        .status();
    if !have.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: python3 with pymongo is not installed (pip install pymongo)");
        return;
    }
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mongodb");
    let Some(cap) = crate::common::LiveCapture::start("lo", &format!("tcp port {port}")) else {
        return;
    };
    let mut server = Command::new("python3")
        .arg(fixtures.join("minimal_server.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "minimal_server.py did not start");
    let out = Command::new("python3")
        .arg(fixtures.join("client.py"))
        .arg(port.to_string())
        .output()
        .unwrap();
    let calls = cap.stop();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(logged.len() >= 4, "{logged:?}");
    let seen: Vec<String> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Mongodb))
        .filter(|c| !["hello", "isMaster", "ismaster"].contains(&c.attrs.str("mongodb_command")))
        .map(|c| {
            let a = &c.attrs;
            let outcome = if a.get("mongodb_success") == Some(&trawl_model::AttrValue::Bool(true)) {
                "ok".to_owned()
            } else {
                a.int("mongodb_error_code").to_string()
            };
            format!(
                "{}\t{}\t{}\t{outcome}",
                a.str("mongodb_command"),
                a.str("mongodb_database"),
                a.str("mongodb_collection")
            )
        })
        .collect();
    assert_eq!(seen, logged);
    let failed = calls
        .iter()
        .find(|c| c.attrs.str("mongodb_command") == "bogusCommand")
        .unwrap();
    assert_eq!(
        failed.attrs.str("mongodb_error_code_name"),
        "CommandNotFound"
    );
}
