//! End-to-end tests of the `trawl` binary on captures made by the lab's
//! generator (whose summary is the ground truth) and on damaged files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trawl_lab::pcapgen::{GenConfig, GenSummary, generate};

fn trawl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(args)
        .output()
        .expect("run trawl")
}

/// Run trawl and fail the test, with its standard error, unless it succeeds.
fn trawl_ok(args: &[&str]) -> Output {
    let out = trawl(args);
    assert!(
        out.status.success(),
        "trawl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trawl-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn generated(name: &str, packets: u64, seed: u64) -> (PathBuf, GenSummary) {
    let path = tmp(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let cfg = GenConfig {
        packets,
        seed,
        ..GenConfig::default()
    };
    let summary = generate(file, &cfg).unwrap();
    (path, summary)
}

fn jsonl(path: &Path) -> (Vec<serde_json::Value>, Output) {
    let out = trawl(&["dissect", path.to_str().unwrap(), "--format", "jsonl"]);
    let calls = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (calls, out)
}

#[test]
fn generated_capture_yields_exactly_the_generated_calls() {
    let (path, summary) = generated("gen.pcap", 20_000, 7);
    let (calls, out) = jsonl(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let http: Vec<_> = calls.iter().filter(|c| c["protocol"] == "http").collect();
    let dns: Vec<_> = calls.iter().filter(|c| c["protocol"] == "dns").collect();
    assert_eq!(http.len() as u64, summary.http_calls);
    assert_eq!(dns.len() as u64, summary.dns_calls);
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    for c in &http {
        assert!(c["errors"].is_null(), "unexpected errors in {c}");
        assert!(c["elapsed_time"].as_i64().unwrap() > 0);
        *by_status
            .entry(c["status_code"].as_u64().unwrap() as u16)
            .or_default() += 1;
    }
    assert_eq!(by_status, summary.by_status);
    // Ids are unique and shaped node/conn/index.
    let mut ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), calls.len());
    assert!(
        ids.iter()
            .all(|id| id.starts_with("local/") && id.split('/').count() == 3)
    );
}

#[test]
fn truncated_capture_reports_offset_and_keeps_earlier_calls() {
    let (path, _) = generated("whole.pcap", 3_000, 11);
    let bytes = std::fs::read(&path).unwrap();
    let cut = bytes.len() * 2 / 3 + 5;
    let short = tmp("cut.pcap");
    std::fs::write(&short, &bytes[..cut]).unwrap();
    let (whole, _) = jsonl(&path);
    let (part, out) = jsonl(&short);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap"), "{err}");
    assert!(err.contains("byte"), "{err}");
    assert!(
        !part.is_empty() && part.len() < whole.len() + 64,
        "{} vs {}",
        part.len(),
        whole.len()
    );
}

#[test]
fn not_a_capture_is_a_clear_error() {
    let path = tmp("notes.txt");
    std::fs::write(&path, b"these are not packets\n").unwrap();
    let out = trawl(&["dissect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a pcap"),
        "{err}"
    );
    let missing = trawl(&["dissect", "/nonexistent/x.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn table_and_stats_describe_the_capture() {
    let (path, summary) = generated("table.pcap", 2_000, 3);
    let out = trawl(&["dissect", path.to_str().unwrap(), "--stats"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let rows = table.lines().count() as u64;
    assert_eq!(rows, 1 + summary.http_calls + summary.dns_calls);
    assert!(table.lines().next().unwrap().starts_with("TIMESTAMP"));
    let stats = String::from_utf8(out.stderr).unwrap();
    assert!(
        stats.contains(&format!("packets      {}", summary.packets)),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("http {}", summary.http_calls)),
        "{stats}"
    );
    assert!(stats.contains("packets/s"), "{stats}");
}

#[test]
fn import_list_export_round_trip() {
    let (path, summary) = generated("snap.pcap", 3_000, 5);
    let data = tmp("data");
    let data = data.to_str().unwrap();
    let out = trawl(&[
        "import",
        path.to_str().unwrap(),
        "--name",
        "lab",
        "--data",
        data,
    ]);
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let list = trawl(&["snapshot", "list", "--json", "--data", data]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("imported snapshot listed");
    assert_eq!(entry["packets"].as_u64(), Some(summary.packets));
    assert_eq!(entry["name"], "lab");

    // Exported packets dissect to the same calls as the original file.
    let exported = tmp("exported.pcap");
    trawl_ok(&[
        "export",
        "pcap",
        &id,
        "-o",
        exported.to_str().unwrap(),
        "--data",
        data,
    ]);
    let (before, _) = jsonl(&path);
    let (after, _) = jsonl(&exported);
    assert_eq!(before, after);

    let del = trawl(&["snapshot", "delete", &id, "--data", data]);
    assert!(del.status.success());
    let gone = trawl(&["snapshot", "show", &id, "--data", data]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
}

#[test]
fn filtered_export_keeps_what_tcpdump_keeps() {
    let (path, summary) = generated("filt.pcap", 3_000, 9);
    let data = tmp("data-filter");
    let data = data.to_str().unwrap();
    let out = trawl_ok(&["import", path.to_str().unwrap(), "--data", data]);
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let filtered = tmp("only-dns.pcap");
    trawl_ok(&[
        "export",
        "pcap",
        &id,
        "--filter",
        "udp port 53",
        "-o",
        filtered.to_str().unwrap(),
        "--data",
        data,
    ]);
    // Only DNS is left, all of it.
    let (calls, _) = jsonl(&filtered);
    assert_eq!(calls.len() as u64, summary.dns_calls);
    assert!(calls.iter().all(|c| c["protocol"] == "dns"));
    if let Ok(tcpdump) = Command::new("tcpdump")
        .args(["-r", path.to_str().unwrap(), "-w", "-", "udp port 53"])
        .output()
    {
        // tcpdump writes µs pcap; compare packet counts through our reader.
        let theirs = tcpdump.stdout;
        let count = |bytes: &[u8]| {
            let mut r = trawl_packet::CaptureReader::new(bytes, "x").unwrap();
            let mut n = 0;
            while r.next_packet().unwrap().is_some() {
                n += 1;
            }
            n
        };
        assert_eq!(count(&std::fs::read(&filtered).unwrap()), count(&theirs));
    } else {
        eprintln!("SKIPPED: tcpdump not installed; filtered export not compared with it");
    }
    // A bad filter is a clear error with its position.
    let bad = trawl(&[
        "export",
        "pcap",
        &id,
        "--filter",
        "tcp prot 80",
        "-o",
        "/dev/null",
        "--data",
        data,
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("filter"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn index_then_query_with_kfl() {
    let (path, summary) = generated("query.pcap", 4_000, 13);
    let idx = tmp("query-index");
    let idx = idx.to_str().unwrap();
    trawl_ok(&["index", path.to_str().unwrap(), "--out", idx]);

    let ok = summary.by_status.get(&200).copied().unwrap_or(0);
    assert!(ok > 0);
    let out = trawl_ok(&[
        "query",
        idx,
        "http && status_code == 200",
        "--limit",
        "100000",
        "--format",
        "jsonl",
    ]);
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, ok);
    assert!(
        rows.iter()
            .all(|r| r["status_code"] == 200 && r["protocol"] == "http")
    );

    // KFL1 spelling, and SQL over the same index agree.
    let alias = trawl(&[
        "query",
        idx,
        "response.status == 200 && http",
        "--limit",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&alias.stderr).contains(&format!("of {ok} matching")));
    let sql = trawl(&[
        "sql",
        idx,
        "SELECT count(*) AS n FROM calls WHERE protocol = 'dns'",
        "--format",
        "jsonl",
    ]);
    let n: serde_json::Value = serde_json::from_slice(&sql.stdout).unwrap();
    assert_eq!(n["n"].as_u64(), Some(summary.dns_calls));

    let bad = trawl(&["query", idx, "response.statuss == 200"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("at 1:1") && err.contains("did you mean \"response.status\""),
        "{err}"
    );
}

/// Runs `cmd` (a shell line) and returns whether it succeeded.
fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .status()
        .is_ok_and(|s| s.success())
}

/// Real TCP in two network namespaces joined by a veth pair, the server's
/// side shaped by netem (20 ms delay, 3% loss): a 2 MB download, a refused
/// connection (closed port) and a reset one (the server closes with
/// SO_LINGER 0), captured by tcpdump on the client's side, indexed, and
/// read back with `trawl flows` and `trawl stats --flows`.
#[test]
fn live_flows_show_rtt_loss_refused_and_reset() {
    let tools = ["ip", "tc", "tcpdump", "python3", "curl"];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !sh(&format!("command -v {t} >/dev/null")))
        .collect();
    if !missing.is_empty() || !sh("[ \"$(id -u)\" = 0 ]") {
        eprintln!("SKIPPED: needs root and {tools:?} (missing: {missing:?})");
        return;
    }
    let id = std::process::id() % 100_000;
    let (ca, sb) = (format!("trc{id}"), format!("trs{id}"));
    let net = format!("10.{}.{}", 100 + id % 100, id % 250);
    let (cip, sip) = (format!("{net}.1"), format!("{net}.2"));
    let setup = [
        format!("ip netns add {ca}"),
        format!("ip netns add {sb}"),
        format!("ip link add v{id}c netns {ca} type veth peer name v{id}s netns {sb}"),
        format!("ip -n {ca} addr add {cip}/24 dev v{id}c"),
        format!("ip -n {sb} addr add {sip}/24 dev v{id}s"),
        format!("ip -n {ca} link set v{id}c up"),
        format!("ip -n {sb} link set v{id}s up"),
        format!("ip -n {ca} link set lo up"),
        format!("ip -n {sb} link set lo up"),
    ];
    let cleanup = || {
        sh(&format!(
            "ip netns pids {sb} | xargs -r kill; ip netns pids {ca} | xargs -r kill"
        ));
        sh(&format!("ip netns del {ca}; ip netns del {sb}"));
    };
    if !setup.iter().all(|c| sh(c)) {
        cleanup();
        eprintln!("SKIPPED: cannot build the namespaces");
        return;
    }
    let shaped = sh(&format!(
        "ip netns exec {sb} tc qdisc add dev v{id}s root netem delay 20ms loss 3% 2>/dev/null"
    ));
    if !shaped {
        eprintln!(
            "SKIPPED (part): netem is not available (kernel module sch_netem); \
             RTT and loss are not checked, refused and reset connections are"
        );
    }
    let dir = tmp("live-flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big"), vec![b'x'; 2 << 20]).unwrap();
    let pcap = tmp("live-flows.pcap");
    let d = dir.to_str().unwrap();
    let p = pcap.to_str().unwrap();
    let run = || -> bool {
        let reset_server = format!(
            "import socket,struct\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{sip}',7000))\ns.listen()\nc,_=s.accept()\n\
             c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0))\nc.close()"
        );
        std::fs::write(dir.join("reset.py"), reset_server).unwrap();
        sh(&format!(
            "ip netns exec {sb} python3 -m http.server 8000 --bind {sip} --directory {d} >/dev/null 2>&1 &"
        )) && sh(&format!("ip netns exec {sb} python3 {d}/reset.py >/dev/null 2>&1 &"))
            && sh(&format!(
                "ip netns exec {ca} tcpdump -U -i v{id}c -w {p} tcp >/dev/null 2>&1 & sleep 1.5"
            ))
            && sh(&format!(
                "ip netns exec {ca} curl -s -o /dev/null --retry 3 --retry-connrefused --max-time 60 http://{sip}:8000/big"
            ))
            // Refused (nothing listens on 9) and reset: curl fails, as meant.
            && !sh(&format!("ip netns exec {ca} curl -s --max-time 5 http://{sip}:9/"))
            && !sh(&format!("ip netns exec {ca} curl -s --max-time 5 http://{sip}:7000/"))
            && sh("sleep 1")
    };
    let ok = run();
    cleanup();
    assert!(ok, "traffic in the namespaces failed");
    let idx = tmp("live-flows-index");
    let idx = idx.to_str().unwrap();
    trawl_ok(&["index", p, "--out", idx]);
    let out = trawl_ok(&["flows", idx, "tcp", "--format", "jsonl"]);
    let flows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let on = |port: u64| -> Vec<&serde_json::Value> {
        flows
            .iter()
            .filter(|f| f["dst"]["port"].as_u64() == Some(port))
            .collect()
    };
    let n = |f: &serde_json::Value, k: &str| f[k].as_i64().unwrap();
    let big = on(8000)
        .into_iter()
        .find(|f| n(f, "flow_server_bytes") > 1_000_000)
        .expect("the download's flow");
    // The server's packets reach the capture 20 ms late: the handshake RTT
    // is 20 ms, data RTTs reach it, and 3% of its segments go missing.
    let irtt = n(big, "initial_rtt_us");
    if shaped {
        assert!((19_000..40_000).contains(&irtt), "initial RTT {irtt} µs");
        assert!(n(big, "rtt_max_us") >= 19_000, "{big}");
        assert!(n(big, "missing_segments") > 0, "{big}");
        assert!(
            n(big, "retransmissions") + n(big, "out_of_order") > 0,
            "{big}"
        );
    } else {
        assert!(irtt > 0 && n(big, "rtt_samples") > 0, "{big}");
    }
    assert_eq!(big["handshake"], "complete");
    assert_eq!(big["src"]["ip"], cip.as_str());
    let refused = on(9);
    assert!(!refused.is_empty() && refused.iter().all(|f| f["conn_state"] == "refused"));
    assert_eq!(refused[0]["closed_by"], "server");
    let reset = on(7000);
    assert_eq!(reset.len(), 1);
    assert_eq!(
        (&reset[0]["conn_state"], &reset[0]["handshake"]),
        (&"reset".into(), &"complete".into())
    );

    let stats = trawl_ok(&[
        "stats", idx, "", "--flows", "--by", "server", "--format", "jsonl",
    ]);
    let groups: Vec<serde_json::Value> = String::from_utf8(stats.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let server = groups.iter().find(|g| g["key"][0] == sip.as_str()).unwrap();
    assert!(server["refused"].as_u64() >= Some(1));
    assert!(server["reset_connections"].as_u64() >= Some(1));
    let floor = if shaped { 19_000 } else { 1 };
    assert!(server["handshake_rtt_p50_us"].as_u64() >= Some(floor));
}
