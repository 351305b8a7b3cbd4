//! The scenario lab end to end: `trawl-lab scenario check` on the shipped
//! scenario files (and a broken one), then a short run of the checkout
//! incident on a real bridge with real namespaces, dnsmasq and PostgreSQL,
//! captured with tcpdump. The run's own ground truth must show the fault as
//! scripted (503s on /api/v1/checkout only after it, cart-service retries,
//! payment-service timeouts and resets, a new catalogue-db connection per
//! query), the capture must hold payment-service's RSTs, and `trawl index
//! --workloads` over it must name the pods the lab says it ran.
//!
//! Then issue 7's end-to-end proof, one test per shipped scenario: `trawl
//! demo` captures the short version with `trawl tap` and investigates it
//! over MCP with the official Python SDK; lab/e2e_check.py holds the
//! findings against the run's ground truth (these also need the MCP SDK).
//!
//! The run needs root, dnsmasq, PostgreSQL, pg8000 and tcpdump
//! (`lab/runner.py preflight` decides) and prints `SKIPPED: …` otherwise;
//! the trawl part needs the `trawl` binary next to this test's (built by
//! `cargo test --workspace`, or `cargo build -p trawl-cli`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const LAB: &str = env!("CARGO_BIN_EXE_trawl-lab");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lab(args: &[&str]) -> Output {
    Command::new(LAB)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running trawl-lab")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The runner needs Python 3 with PyYAML even to check files.
fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn shipped_scenarios_check_and_a_typo_is_named() {
    if !python_ready() {
        eprintln!("SKIPPED: python3 with PyYAML is missing (python3 -m pip install pyyaml)");
        return;
    }
    let files = [
        "scenarios/checkout-incident.yaml",
        "scenarios/dns-failure.yaml",
        "scenarios/slow-database.yaml",
    ];
    let mut args = vec!["scenario", "check"];
    args.extend(files);
    let out = lab(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for f in files {
        // Every file has a short version of at most 3 minutes.
        let short = stdout
            .lines()
            .find(|l| l.starts_with(f) && l.contains("(short)"))
            .unwrap_or_else(|| panic!("no short version of {f}:\n{stdout}"));
        let secs: f64 = short
            .split(", ")
            .nth(1)
            .and_then(|d| d.strip_suffix('s'))
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no duration in {short:?}"));
        assert!(secs <= 180.0, "{short}");
    }
    assert!(
        stdout.contains("gateway-slow at 30s (payment-gateway)"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nduration: 90s\nfaults:\n  - at: 10s\n    target: payment-gateway\n    change: {latncy: 4s}\n",
    )
    .unwrap();
    let out = lab(&["scenario", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("faults[0].change.latncy") && stderr.contains("did you mean 'latency'"),
        "{stderr}"
    );
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The `trawl` binary of this build (target/<profile>/trawl), if built.
fn trawl_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRAWL_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("trawl");
    bin.is_file().then_some(bin)
}

#[test]
fn checkout_incident_short_run_matches_its_ground_truth() {
    if !python_ready() {
        eprintln!("SKIPPED: python3 with PyYAML is missing (python3 -m pip install pyyaml)");
        return;
    }
    let pre = lab(&["scenario", "preflight", "--pcap"]);
    if pre.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: the scenario lab cannot run here: {}",
            String::from_utf8_lossy(&pre.stdout).trim()
        );
        return;
    }
    assert!(pre.status.success(), "{}", text(&pre));

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let pcap = dir.path().join("lab.pcap");
    // The short version with its fault at T+30 s, cut to 70 s: 40 s of
    // incident is plenty for timeouts, retries and an exhausted pool.
    let run = lab(&[
        "scenario",
        "run",
        "scenarios/checkout-incident.yaml",
        "--short",
        "--duration",
        "70s",
        "--out",
        out_dir.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run));

    // The fault happened when the file says.
    let faults: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("faults.json")).unwrap())
            .unwrap();
    let fault = &faults[0];
    assert_eq!(s(fault, "name"), "gateway-slow");
    let offset = fault["offset_s"].as_f64().unwrap();
    assert!((offset - 30.0).abs() < 1.0, "fault at T+{offset}s");
    let fault_ns = fault["ts_ns"].as_i64().unwrap();

    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    // The capture stops after `end_ns`; a call a service was still making
    // then (the lab waits for quiet, but only so long) is not in it.
    let end_ns = run_json["end_ns"].as_i64().unwrap();
    let captured = |r: &Value| r["end_ns"].as_i64().unwrap() <= end_ns;
    let truth = lines(&out_dir.join("ground-truth.jsonl"));
    let by = |svc: &str, side: &str| -> Vec<&Value> {
        truth
            .iter()
            .filter(|r| s(r, "recorded_by") == svc && s(r, "side") == side)
            .collect()
    };

    // 503s on the frontend's /api/v1/checkout: none before the fault, some after.
    let checkout: Vec<&Value> = by("frontend", "server")
        .into_iter()
        .filter(|r| s(r, "path") == "/api/v1/checkout")
        .collect();
    let is_503 = |r: &&Value| r["response_status"] == 503;
    let before = checkout
        .iter()
        .filter(|r| r["ts_ns"].as_i64().unwrap() < fault_ns)
        .count();
    let before_503 = checkout
        .iter()
        .filter(|r| r["ts_ns"].as_i64().unwrap() < fault_ns && is_503(r))
        .count();
    let after_503 = checkout
        .iter()
        .filter(|r| r["ts_ns"].as_i64().unwrap() >= fault_ns && is_503(r))
        .count();
    assert!(before > 10, "{before} checkouts before the fault");
    assert_eq!(before_503, 0, "503s before the gateway slowed down");
    assert!(after_503 > 0, "no 503 on /api/v1/checkout after the fault");

    // payment-service: timeouts after 5 s, each connection reset.
    let pay = by("payment-service", "client");
    let timeouts: Vec<&&Value> = pay.iter().filter(|r| r["timeout"] == true).collect();
    assert!(!timeouts.is_empty(), "no gateway timeout");
    for t in &timeouts {
        let ms = t["elapsed_ms"].as_f64().unwrap();
        assert!((4990.0..5500.0).contains(&ms), "timeout after {ms} ms");
        assert_eq!(t["reset"], true);
    }
    let resets = pay
        .iter()
        .filter(|r| r["reset"] == true && captured(r))
        .count();

    // cart-service retries: tries 2 and 3 of the same request.
    let cart = by("cart-service", "client");
    let mut tries: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in &cart {
        tries
            .entry(s(r, "request_id"))
            .or_default()
            .push(r["attempt"].as_i64().unwrap());
    }
    let retried = tries.values().filter(|a| a.contains(&2)).count();
    assert!(retried > 0, "no cart-service retry");
    assert!(
        tries.values().any(|a| a.contains(&3)),
        "no third try from cart-service"
    );

    // catalogue-db churn: a new connection, from a new port, per query.
    let db: Vec<&Value> = truth
        .iter()
        .filter(|r| s(r, "protocol") == "postgres")
        .collect();
    assert!(db.len() > 100, "{} catalogue queries", db.len());
    assert!(db.iter().all(|r| r["new_connection"] == true));
    let ports: BTreeSet<(i64, i64)> = db
        .iter()
        .filter_map(|r| {
            Some((
                r["client_port"].as_i64()?,
                r["ts_ns"].as_i64()? / 60_000_000_000,
            ))
        })
        .collect();
    assert!(
        ports.len() * 10 >= db.len() * 9,
        "{} distinct client ports for {} queries",
        ports.len(),
        db.len()
    );

    // The capture holds payment-service's RSTs towards the gateway.
    let rst = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .arg("src host 10.244.1.13 and dst host 203.0.113.10 and tcp[tcpflags] & tcp-rst != 0")
        .output()
        .expect("running tcpdump");
    let rst_count = String::from_utf8_lossy(&rst.stdout).lines().count();
    assert!(
        rst_count >= resets,
        "{rst_count} RSTs in the capture, {resets} resets in the ground truth"
    );

    // trawl names the pods from the lab's workloads file.
    let Some(trawl) = trawl_bin() else {
        eprintln!(
            "SKIPPED (part): no trawl binary next to this test; `cargo build -p trawl-cli` or set TRAWL_BIN"
        );
        return;
    };
    let pod = |svc: &str| -> String {
        run_json["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| s(p, "service") == svc)
            .map(|p| s(p, "pod").to_owned())
            .unwrap()
    };
    let idx = dir.path().join("idx");
    let out = Command::new(&trawl)
        .arg("index")
        .arg(&pcap)
        .arg("--out")
        .arg(&idx)
        .arg("--workloads")
        .arg(out_dir.join("workloads.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(&trawl)
        .arg("query")
        .arg(&idx)
        .arg(r#"dst.service.name == "payment-service" && status_code == 503"#)
        .args(["--format", "jsonl", "--limit", "100000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let calls: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let truth_503 = by("payment-service", "server")
        .iter()
        .filter(|r| r["response_status"] == 503 && captured(r))
        .count();
    assert!(!calls.is_empty(), "trawl found no 503 from payment-service");
    // Calls still open when the capture stopped may be missing, no more.
    assert!(
        calls.len() <= truth_503 && calls.len() + 3 >= truth_503,
        "trawl: {} 503s from payment-service, ground truth: {truth_503}",
        calls.len()
    );
    for c in &calls {
        assert_eq!(s(c, "dst.name"), pod("payment-service"));
        assert_eq!(s(c, "src.name"), pod("checkout-service"));
        assert_eq!(s(c, "src.namespace"), "shop");
        assert_eq!(s(c, "path"), "/api/v1/payments");
    }
    let out = Command::new(&trawl)
        .arg("query")
        .arg(&idx)
        .arg(r#"dst.name == "payment-gateway" && src.service.name == "payment-service""#)
        .args(["--format", "jsonl", "--limit", "1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/v1/charges"),
        "{}",
        text(&out)
    );

    insights_match_ground_truth(&trawl, &idx, &truth, fault_ns, &captured);
}

/// `2026-11-28T22:19:01.420497Z` (as trawl's insights write times) to ns.
fn rfc3339_ns(t: &str) -> i64 {
    let num = |a: usize, b: usize| -> i64 {
        t.get(a..b)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad time {t:?}"))
    };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let frac = t.get(20..t.len() - 1).unwrap_or("");
    let frac_ns: i64 = format!("{frac:0<9}")
        .get(..9)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    ((days * 86_400 + num(11, 13) * 3600 + num(14, 16) * 60 + num(17, 19)) * 1_000_000_000)
        + frac_ns
}

fn trawl_json(trawl: &Path, args: &[&str]) -> Value {
    let out = Command::new(trawl)
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "trawl {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("trawl {args:?}: {e}: {}", text(&out)))
}

/// Issue 7's analyses over the run's index (`trawl anomalies`, `explain`,
/// `analyze` with `--format json`), held against the lab's own log: the
/// gateway's latency shift within 2 s of the fault, the 5 s timeout of
/// payment-service, the causal chain down to the gateway, the retry storm
/// from cart-service, the churn towards catalogue-db, the RSTs from
/// payment-service, and the 503 share of the frontend's checkout within
/// half a percentage point.
fn insights_match_ground_truth(
    trawl: &Path,
    idx: &Path,
    truth: &[Value],
    fault_ns: i64,
    captured: &dyn Fn(&Value) -> bool,
) {
    let idx = idx.to_str().unwrap();
    let near_fault = |t: &str, what: &str| {
        let d = (rfc3339_ns(t) - fault_ns).abs();
        assert!(
            d <= 2_000_000_000,
            "{what} at {t}, {} ms from the fault",
            d / 1_000_000
        );
    };

    let a = trawl_json(trawl, &["anomalies", idx, "--limit", "100"]);
    let findings = a["findings"].as_array().unwrap();
    let find = |kind: &str, client: Option<&str>, server: &str| -> &Value {
        findings
            .iter()
            .find(|f| {
                f["kind"] == kind
                    && f["subject"]["server"] == server
                    && client.is_none_or(|c| f["subject"]["client"] == c)
            })
            .unwrap_or_else(|| panic!("no {kind} finding for {client:?} → {server}:\n{a:#}"))
    };
    let shift = find("latency_shift", None, "payment-gateway");
    near_fault(s(&shift["metrics"], "at"), "the gateway's latency shift");
    let (before, after) = (
        shift["metrics"]["before_p50_us"].as_f64().unwrap(),
        shift["metrics"]["after_p50_us"].as_f64().unwrap(),
    );
    assert!(before < 400_000.0 && after > 3_000_000.0, "{shift:#}");
    let storm = find("retry_storm", Some("cart-service"), "checkout-service");
    assert_eq!(storm["subject"]["path"], "/api/v1/checkout");
    assert!(
        storm["metrics"]["max_tries"].as_u64().unwrap() >= 3,
        "{storm:#}"
    );
    let churn = find(
        "connection_churn",
        Some("catalogue-service"),
        "catalogue-db",
    );
    assert!(
        churn["metrics"]["new_per_minute"].as_f64().unwrap() > 60.0,
        "{churn:#}"
    );
    let resets = find("resets", Some("payment-service"), "payment-gateway");
    let truth_resets = truth
        .iter()
        .filter(|r| s(r, "recorded_by") == "payment-service" && s(r, "side") == "client")
        .filter(|r| r["reset"] == true && captured(r))
        .count() as u64;
    assert!(
        resets["metrics"]["count"].as_u64().unwrap() >= truth_resets,
        "{resets:#} vs {truth_resets} in the ground truth"
    );
    // Three refusals make a pattern (trawl_insights' MIN_BURST).
    let refused = truth
        .iter()
        .filter(|r| s(r, "recorded_by") == "payment-service" && s(r, "side") == "server")
        .filter(|r| r["pool_exhausted"] == true && captured(r))
        .count();
    if refused >= 3 {
        find("pool_exhaustion", None, "payment-service");
    }
    // Every finding cites evidence, at most ten ids.
    for f in findings {
        let e = &f["evidence"];
        assert!(e["total"].as_u64().unwrap() > 0, "{f:#}");
        assert!(
            e["call_ids"].as_array().unwrap().len() <= 10
                && e["flow_ids"].as_array().unwrap().len() <= 10
        );
    }

    let x = trawl_json(
        trawl,
        &[
            "explain",
            idx,
            r#"dst.service.name == "frontend" && path == "/api/v1/checkout" && status_code == 503"#,
        ],
    );
    let chain: Vec<&str> = x["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| s(l, "service"))
        .collect();
    assert_eq!(
        chain,
        [
            "frontend",
            "cart-service",
            "checkout-service",
            "payment-service",
            "payment-gateway"
        ],
        "{x:#}"
    );
    assert_eq!(x["chain"][4]["role"], "root cause");
    let timeout = x["timeouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["service"] == "payment-service" && t["callee"] == "payment-gateway")
        .unwrap_or_else(|| panic!("no payment-service timeout:\n{x:#}"));
    let ms = timeout["timeout_ms"].as_f64().unwrap();
    assert!((ms - 5000.0).abs() <= 100.0, "timeout {ms} ms");
    let timeline = x["timeline"].as_array().unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| s(e, "kind")).collect();
    assert_eq!(kinds.first(), Some(&"latency_shift"), "{x:#}");
    near_fault(s(&timeline[0], "time"), "the timeline's latency shift");
    for k in ["timeout", "failing_call", "resets"] {
        assert!(kinds.contains(&k), "no {k} in the timeline {kinds:?}");
    }
    let times: Vec<i64> = timeline.iter().map(|e| rfc3339_ns(s(e, "time"))).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // The 503 share of the frontend's checkout, against the lab's log.
    let r = trawl_json(trawl, &["analyze", idx, "frontend"]);
    let ep = r["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == "/api/v1/checkout")
        .unwrap_or_else(|| panic!("no checkout endpoint:\n{r:#}"));
    let share = ep["status_5xx"]["503"].as_f64().unwrap_or(0.0) / ep["calls"].as_f64().unwrap();
    let served: Vec<&Value> = truth
        .iter()
        .filter(|r| s(r, "recorded_by") == "frontend" && s(r, "side") == "server")
        .filter(|r| s(r, "path") == "/api/v1/checkout" && captured(r))
        .collect();
    let truth_share = served
        .iter()
        .filter(|r| r["response_status"] == 503)
        .count() as f64
        / served.len() as f64;
    assert!(
        (share - truth_share).abs() <= 0.005,
        "trawl: {:.2}% 503 on /api/v1/checkout, ground truth: {:.2}%",
        share * 100.0,
        truth_share * 100.0
    );
    assert!(
        r["tcp_connect_us"]["samples"].as_u64().unwrap() > 0,
        "{r:#}"
    );
}

/// Serialises the `trawl demo` runs of this binary: each is a whole lab
/// plus indexing, and two at once on a small machine slow each other's
/// services enough to blur the timings the checks compare.
static DEMO_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Issue 7's end-to-end proof for one scenario: `trawl demo` runs its
/// short version under `trawl tap`, serves the capture and drives the
/// investigation through MCP with the official Python SDK
/// (lab/investigate.py --json); lab/e2e_check.py then holds what the
/// agent found against the lab's own ground truth (its output is shown on
/// failure, and with --nocapture).
fn demo_matches_ground_truth(scenario: &str, name: &str) {
    if !python_ready() {
        eprintln!("SKIPPED: python3 with PyYAML is missing (python3 -m pip install pyyaml)");
        return;
    }
    let pre = lab(&["scenario", "preflight"]);
    if pre.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: the scenario lab cannot run here: {}",
            String::from_utf8_lossy(&pre.stdout).trim()
        );
        return;
    }
    assert!(pre.status.success(), "{}", text(&pre));
    let sdk = Command::new("python3")
        .args(["-c", "import mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !sdk {
        eprintln!("SKIPPED: the MCP Python SDK is missing (python3 -m pip install mcp)");
        return;
    }
    let Some(trawl) = trawl_bin() else {
        eprintln!(
            "SKIPPED: no trawl binary next to this test; `cargo build -p trawl-cli` or set TRAWL_BIN"
        );
        return;
    };
    let has_demo = Command::new(&trawl)
        .args(["demo", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_demo {
        eprintln!(
            "SKIPPED: {} has no `demo` verb (an old build); `cargo build -p trawl-cli`",
            trawl.display()
        );
        return;
    }
    let _one_at_a_time = DEMO_LOCK.lock().unwrap_or_else(|e| e.into_inner());

    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let json = dir.path().join("investigation.json");
    let demo = Command::new(&trawl)
        .args(["demo", "--scenario", scenario, "--keep"])
        .arg(&keep)
        .arg("--json")
        .arg(&json)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(demo.status.success(), "trawl demo:\n{}", text(&demo));
    let story = String::from_utf8_lossy(&demo.stdout);
    for said in [
        "What can you tell me about my frontend service?",
        "» create_snapshot",
        "» start_snapshot_dissection",
        "What really happened",
    ] {
        assert!(
            story.contains(said),
            "the demo does not say {said:?}:\n{story}"
        );
    }

    let check = Command::new("python3")
        .arg("lab/e2e_check.py")
        .args(["--require-analysis", "--scenario", name])
        .arg(keep.join("run"))
        .arg(&json)
        .current_dir(repo())
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&check.stdout));
    assert!(
        check.status.success(),
        "{}\n--- what trawl demo printed:\n{story}",
        text(&check)
    );
}

#[test]
fn demo_checkout_incident_investigation_matches_ground_truth() {
    demo_matches_ground_truth("scenarios/checkout-incident.yaml", "checkout-incident");
}

#[test]
fn demo_dns_failure_investigation_matches_ground_truth() {
    demo_matches_ground_truth("scenarios/dns-failure.yaml", "dns-failure");
}

#[test]
fn demo_slow_database_investigation_matches_ground_truth() {
    demo_matches_ground_truth("scenarios/slow-database.yaml", "slow-database");
}
