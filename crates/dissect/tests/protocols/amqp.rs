//! AMQP 0-9-1 against tshark 4.0 on the shared captures (one row per
//! frame), and a live test with RabbitMQ and pika over loopback,
//! captured by trawl.
//!
//! A call holds several frames: the request method and its content
//! header and body frames, and the answering method. Request methods are
//! keyed with the arguments tshark shows (exchange, routing key, queue),
//! answers by their name, content frames by channel.
//!
//! Uses data from ../shared/pcaps; skips loudly when it is absent.

use trawl_dissect::protocols::amqp::parser::{answers, method_name};
use trawl_model::{Call, Protocol};

use crate::common::{Row, ep, shared_pcaps};
use crate::tls::{Keys, agree, load};

fn call_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Amqp) {
        return Vec::new();
    }
    let from = ep(c.src.ip, c.src.port);
    let to = ep(c.dst.ip, c.dst.port);
    let a = &c.attrs;
    let ch = a.int("amqp_channel");
    let mut keys = Vec::new();
    if c.has_request {
        let method = a.str("amqp_method");
        // tshark shows the request's own arguments (for queue.declare
        // trawl keeps the name declare-ok returned: the same unless the
        // server named the queue).
        keys.push(format!(
            "method {from} {to} ch={ch} {method} ex={} rk={} q={}",
            a.str("amqp_exchange"),
            a.str("amqp_routing_key"),
            a.str("amqp_queue"),
        ));
        let content_in_request =
            a.get("amqp_body_size").is_some() && a.str("amqp_response_method") != "basic.get-ok";
        if content_in_request {
            keys.push(format!("content-header {from} {to} ch={ch}"));
            if a.int("amqp_body_size") > 0 {
                keys.push(format!("content-body {from} {to} ch={ch}"));
            }
        }
    }
    if c.has_response {
        keys.push(format!(
            "answer {to} {from} ch={ch} {}",
            a.str("amqp_response_method")
        ));
        if a.str("amqp_response_method") == "basic.get-ok" {
            keys.push(format!("content-header {to} {from} ch={ch}"));
            if a.int("amqp_body_size") > 0 {
                keys.push(format!("content-body {to} {from} ch={ch}"));
            }
        }
    }
    keys
}

fn row_key(r: &Row) -> Option<String> {
    let src = format!("{}|{}", r.get("src"), r.get("sport"));
    let dst = format!("{}|{}", r.get("dst"), r.get("dport"));
    let ch = r.get("amqp.channel");
    match r.get("amqp.type") {
        "1" => {
            let class: u16 = r.get("amqp.method.class").parse().ok()?;
            let method: u16 = r.get("amqp.method.method").parse().ok()?;
            let name = method_name(class, method)?;
            if answers(class, method).is_some() {
                return Some(format!("answer {src} {dst} ch={ch} {name}"));
            }
            Some(format!(
                "method {src} {dst} ch={ch} {name} ex={} rk={} q={}",
                r.get("amqp.method.arguments.exchange"),
                r.get("amqp.method.arguments.routing_key"),
                r.get("amqp.method.arguments.queue"),
            ))
        }
        "2" => Some(format!("content-header {src} {dst} ch={ch}")),
        "3" => Some(format!("content-body {src} {dst} ch={ch}")),
        _ => None,
    }
}

fn explain(_key: &str, _row: &Row) -> Option<&'static str> {
    None
}

const KEYS: Keys = Keys {
    protocol: "amqp",
    call_keys,
    row_key,
    explain,
    notes: "A tshark row is one AMQP frame. A trawl call holds several: the request method (keyed with \
        the exchange, routing key and queue arguments tshark shows), its content header and \
        body frames (keyed by channel; one body key per message, which the single-frame bodies \
        of these captures match), and the answering method (keyed by its name).",
};

#[test]
fn amqp_agrees_with_tshark() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; AMQP agreement not checked.");
        return;
    };
    let caps = load(&dir, "amqp-");
    assert_eq!(caps.len(), 2);
    agree(&KEYS, caps);
}

/// A private RabbitMQ node (its own data directory, port and node name),
/// stopped when dropped.
struct Rabbit {
    node: String,
    launcher: std::process::Child,
    dir: std::path::PathBuf,
    /// Erlang's port mapper was started by this node (not running
    /// before): stop it too.
    stop_epmd: bool,
}

impl Rabbit {
    /// Starts one on `port`; None (the caller skips loudly) when
    /// rabbitmq-server is not installed or does not come up in 60 s.
    fn start(port: u16) -> Option<Rabbit> {
        use std::process::{Command, Stdio};
        if Command::new("which")
            .arg("rabbitmq-server")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| !s.success())
        {
            eprintln!(
                "SKIPPED: rabbitmq-server is not installed (apt-get install rabbitmq-server)"
            );
            return None;
        }
        let epmd_running = Command::new("epmd")
            .arg("-names")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let dir = std::env::temp_dir().join(format!("trawl-rabbit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The Debian script drops to the rabbitmq user when run as root.
        let _ = Command::new("chown").arg("rabbitmq:").arg(&dir).status();
        let node = format!("trawltest{}@localhost", std::process::id());
        let d = |name: &str| dir.join(name);
        let launcher = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", (port + 20_000).to_string())
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let rabbit = Rabbit {
            node,
            launcher,
            dir,
            stop_epmd: !epmd_running,
        };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(rabbit);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("SKIPPED: rabbitmq-server did not listen on {port} within 60 s");
        None
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
        // epmd refuses to die while the halting node is still registered.
        for _ in 0..50 {
            if !self.stop_epmd {
                break;
            }
            let out = std::process::Command::new("epmd").arg("-kill").output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Killed")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// RabbitMQ (apt) and pika (pip) over loopback, captured live by trawl:
/// every operation the client logged is a call with the same method,
/// exchange, routing key, queue, answer and content (publish bodies,
/// get-ok bodies), and the passive declare of a missing queue is
/// answered by the broker's channel.close with 404.
#[test]
fn live_rabbitmq_and_pika_over_loopback() {
    use std::process::{Command, Stdio};
    let port = 18_672;
    let have = Command::new("python3")
        .args(["-c", "import pika"])
        .stderr(Stdio::null())
        .status();
    if !have.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: python3 with pika is not installed (pip install pika)");
        return;
    }
    let Some(rabbit) = Rabbit::start(port) else {
        return;
    };
    let Some(cap) = crate::common::LiveCapture::start("lo", &format!("tcp port {port}")) else {
        return;
    };
    let client =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/amqp/client.py");
    let out = Command::new("python3")
        .arg(client)
        .arg(port.to_string())
        .output()
        .unwrap();
    let calls = cap.stop();
    drop(rabbit);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(logged.len(), 9, "{logged:?}");
    let ops = [
        "exchange.declare",
        "queue.declare",
        "queue.bind",
        "basic.publish",
        "basic.get",
    ];
    let body = |b: &Option<trawl_model::Body>| {
        b.as_ref().map_or(String::new(), |b| {
            String::from_utf8_lossy(&b.data).into_owned()
        })
    };
    let seen: Vec<String> = calls
        .iter()
        .filter(|c| c.protocol == Some(Protocol::Amqp) && ops.contains(&c.method.as_str()))
        .map(|c| {
            let a = &c.attrs;
            let answer = a.str("amqp_response_method");
            let detail = match answer {
                "channel.close" => a.int("amqp_reply_code").to_string(),
                "basic.get-ok" => body(&c.response.body),
                _ => body(&c.request.body),
            };
            format!(
                "{}\t{}\t{}\t{}\t{answer}\t{detail}",
                c.method,
                a.str("amqp_exchange"),
                a.str("amqp_routing_key"),
                a.str("amqp_queue"),
            )
        })
        .collect();
    assert_eq!(seen, logged);
    let publish = calls.iter().find(|c| c.method == "basic.publish").unwrap();
    assert_eq!(publish.attrs.str("amqp_content_type"), "text/plain");
    assert!(publish.errors.is_empty(), "{:?}", publish.errors);
}
