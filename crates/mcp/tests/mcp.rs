//! The MCP server end to end: a data directory whose raw store holds a
//! trawl-lab capture (node "lab", its summary the ground truth) is served
//! by the hub's own server (`trawl_hub::spawn_server`, as `trawl tap` runs
//! it, with `/mcp` mounted by `trawl_hub::mcp`), and the official MCP Python SDK
//! (`mcp_e2e.py`) walks the investigation over Streamable HTTP and, through
//! `trawl mcp`, over stdio; plus the Host and Origin checks of `/mcp`.
//! Needs python3 with the `mcp` package (and the `trawl` binary for
//! stdio); prints SKIPPED when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use trawl_hub::{Hub, HubConfig, ServerHandle};
use trawl_lab::pcapgen::{GenConfig, generate};
use trawl_rawstore::{RawStore, StoreConfig};

/// A raw store for node "lab" holding a generated capture that started
/// ten minutes ago; returns its packet count.
fn raw_store(data: &Path) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let cfg = GenConfig {
        packets: 3_000,
        seed: 5,
        start_ns: now - 600_000_000_000,
        ..GenConfig::default()
    };
    let pcap = data.join("gen.pcap");
    let summary = generate(std::fs::File::create(&pcap).unwrap(), &cfg).unwrap();
    let mut store = RawStore::open(data, "lab", StoreConfig::default()).unwrap();
    let mut r = trawl_packet::CaptureReader::open(&pcap).unwrap();
    while let Some(p) = r.next_packet().unwrap() {
        store.append(p.ts_ns, p.link, p.data, p.orig_len).unwrap();
    }
    store.close().unwrap();
    std::fs::remove_file(&pcap).unwrap();
    summary.packets
}

/// The hub's API server (as `trawl tap` starts it, `/mcp` included) on a
/// loopback port, over `data`.
fn serve(data: &Path, token: Option<&str>) -> ServerHandle {
    let hub = Hub::new(
        HubConfig {
            data_dir: data.to_owned(),
            token: token.map(str::to_owned),
            index_threads: 2,
            tools: trawl_mcp::ToolPolicy::default(),
            workloads: None,
        },
        None,
    );
    let listener = trawl_hub::bind("127.0.0.1:0".parse().unwrap(), token).unwrap();
    trawl_hub::spawn_server(listener, hub).unwrap()
}

fn python_with_mcp() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp.client.streamable_http"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: python3 with the MCP SDK is missing (python3 -m pip install mcp); the MCP end-to-end tests did not run"
        );
    }
    ok
}

/// The `trawl` binary next to this test's target directory, if built.
fn trawl_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("trawl");
    if bin.is_file() {
        Some(bin)
    } else {
        eprintln!(
            "SKIPPED: {} is not built (cargo build -p trawl-cli); the stdio tests through `trawl mcp` did not run",
            bin.display()
        );
        None
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_e2e.py")
}

fn run_python(args: &[&str]) {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("PASSED"),
        "mcp_e2e.py {args:?} failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn investigation_with_the_python_sdk_over_http_and_stdio() {
    if !python_with_mcp() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let packets = raw_store(tmp.path());
    let server = serve(tmp.path(), None);
    let url = format!("http://{}/mcp", server.addr());
    let packets = packets.to_string();
    run_python(&["--http", &url, "--packets", &packets]);
    if let Some(trawl) = trawl_binary() {
        let trawl = trawl.display().to_string();
        run_python(&["--stdio", &trawl, "--url", &url, "--packets", &packets]);
        // Nothing listens on port 1: the proxy says so and how to fix it.
        run_python(&[
            "--stdio",
            &trawl,
            "--url",
            "http://127.0.0.1:1/mcp",
            "--no-hub",
        ]);
        let out = Command::new(&trawl)
            .args(["mcp", "--list-tools", "--url", &url])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listing}");
        assert_eq!(listing.lines().count(), 20, "{listing}");
        assert!(
            listing.lines().any(
                |l| l.starts_with("delete_snapshot") && l.contains("[destructive, idempotent]")
            ),
            "{listing}"
        );
        println!("{listing}");
        token_is_passed_on(tmp.path(), &trawl);
    }
}

/// A hub with a token: `trawl mcp` without it says so, with it lists.
fn token_is_passed_on(data: &Path, trawl: &str) {
    let server = serve(data, Some("s3cret"));
    let url = format!("http://{}/mcp", server.addr());
    let out = Command::new(trawl)
        .args(["mcp", "--list-tools", "--url", &url])
        .env_remove("TRAWL_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--token"), "{err}");
    let out = Command::new(trawl)
        .args(["mcp", "--list-tools", "--url", &url, "--token", "s3cret"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20);
}

#[test]
fn mcp_refuses_foreign_hosts_and_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(tmp.path(), None);
    let addr = server.addr();
    let url = format!("http://{addr}/mcp");
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |headers: &[(&str, &str)]| {
        let mut r = reqwest::blocking::Client::new()
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .json(&init);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post(&[]), 200);
    assert_eq!(post(&[("Origin", &format!("http://{addr}"))]), 200);
    // DNS rebinding: a page on another name reaching the loopback port.
    assert_eq!(post(&[("Host", "attacker.example")]), 403);
    assert_eq!(post(&[("Origin", "https://attacker.example")]), 403);
}
