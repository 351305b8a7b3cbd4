//! `trawl demo`: the checkout incident of issue 7, reproduced and
//! investigated on this machine in a few minutes. Called from `main.rs`.
//!
//! Three acts. (1) The scenario lab (`lab/runner.py`, the same runner
//! `trawl-lab scenario` execs) builds a small shop in network namespaces
//! and runs the scenario's short version while `trawl tap` (this binary)
//! captures its bridge into a data directory. (2) The lab stops its capture
//! command and deletes the bridge when the run ends, so the demo then
//! serves that data directory with the same hub the tap runs (HTTP API and
//! MCP, in this process, on a free loopback port). (3) `lab/investigate.py`
//! asks, over MCP with the official Python SDK, what an engineer would ask
//! an assistant — "what can you tell me about my frontend service?", then
//! "tell me more about those checkout 503 errors" — and prints each tool
//! call with its findings. The lab's own record of what happened comes last,
//! to compare.
//!
//! It needs what the lab needs (root, iproute2, dnsmasq, PostgreSQL, Python
//! with PyYAML and pg8000: `trawl-lab scenario preflight` decides) plus the
//! MCP Python SDK, and says what to install when something is missing.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use serde_json::Value;
use trawl_hub::{Hub, HubConfig};

/// The scenario played when none is given.
const DEFAULT_SCENARIO: &str = "scenarios/checkout-incident.yaml";

/// The node name the tap records under: the one the lab's workloads file
/// gives its pods, so that snapshots and workloads agree.
const NODE: &str = "lab-node-1";

/// What to run to install everything the demo needs (README, "Set up").
const SETUP: &str = "bash scripts/setup.sh --dev";

/// Counters of the lab's summary per printed line: fits 100 columns.
const SUMMARY_PER_LINE: usize = 4;

/// Exit status of `runner.py preflight` when the machine cannot run the lab.
const PREFLIGHT_CANNOT: i32 = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario file to play (its short version).
    #[arg(long, default_value = DEFAULT_SCENARIO)]
    scenario: PathBuf,
    /// Keep the lab's outputs, the raw store and the index in this
    /// directory (`run/`, `data/`) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Write the investigation's structured results to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The service asked about.
    #[arg(long, default_value = "frontend")]
    service: String,
    /// Override the short version's length (e.g. 70s).
    #[arg(long)]
    duration: Option<String>,
}

/// Where the lab's Python code lives: `$TRAWL_LAB_DIR`, else the `lab/`
/// directory of the checkout this binary was built from (as for
/// `trawl-lab`; `scripts/setup.sh` installs from a checkout).
fn lab_dir() -> PathBuf {
    match std::env::var_os("TRAWL_LAB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab")),
    }
}

fn python() -> std::ffi::OsString {
    std::env::var_os("TRAWL_LAB_PYTHON").unwrap_or_else(|| "python3".into())
}

/// The scenario file: as given, else relative to the checkout (so that the
/// default works from any directory).
fn scenario_path(given: &Path) -> anyhow::Result<PathBuf> {
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let beside = lab_dir().join("..").join(given);
    if given.is_relative() && beside.is_file() {
        return Ok(beside);
    }
    anyhow::bail!(
        "no scenario file {}; give --scenario FILE (the shipped ones are in scenarios/)",
        given.display()
    )
}

/// Quotes `s` for the runner's `shlex.split` when it needs quoting.
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,@{}".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A loopback port free now, for the tap's API during the run.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Checks that the lab and the investigation can run here; the message
/// says what is missing and how to install it.
fn preflight(lab: &Path) -> anyhow::Result<()> {
    let out = Command::new(python())
        .arg(lab.join("runner.py"))
        .arg("preflight")
        .output()
        .with_context(|| {
            format!(
                "running python3 {}/runner.py: is Python 3 installed? ({SETUP})",
                lab.display()
            )
        })?;
    let said = [&out.stdout, &out.stderr]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    match out.status.code() {
        Some(0) => {}
        Some(PREFLIGHT_CANNOT) => anyhow::bail!(
            "trawl demo cannot run on this machine: {said}\nInstall what it needs with `{SETUP}` from a trawl checkout, then run `sudo trawl demo`."
        ),
        _ => anyhow::bail!(
            "the lab's preflight failed: {said}\n(`{SETUP}` installs what the lab needs)"
        ),
    }
    let sdk = Command::new(python())
        .args(["-c", "import mcp.client.streamable_http"])
        .stderr(Stdio::null())
        .status()
        .context("running python3")?;
    if !sdk.success() {
        anyhow::bail!(
            "trawl demo drives trawl's MCP server with the official MCP Python SDK, which is missing: `python3 -m pip install mcp` (or `{SETUP}`)"
        );
    }
    Ok(())
}

/// Runs `python3 lab/runner.py ARGS…`, its log lines indented on stderr.
fn run_lab(lab: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut child = Command::new(python())
        .arg(lab.join("runner.py"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the lab runner")?;
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let line = line.unwrap_or_default();
            println!("  {line}");
        }
    }
    let status = child.wait().context("waiting for the lab runner")?;
    if !status.success() {
        anyhow::bail!("the lab run failed ({status}); its log is above");
    }
    Ok(())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The lab's own record of the run, to compare with what the agent found.
fn print_truth(run_dir: &Path) -> anyhow::Result<()> {
    let run = read_json(&run_dir.join("run.json"))?;
    let faults = read_json(&run_dir.join("faults.json"))?;
    println!();
    println!(
        "What really happened (the lab's own log, {}):",
        run_dir.display()
    );
    for f in faults.as_array().map(Vec::as_slice).unwrap_or_default() {
        println!(
            "  T+{:.1} s ({}): {} on {}: {}",
            f["offset_s"].as_f64().unwrap_or(0.0),
            f["time"].as_str().unwrap_or(""),
            f["name"].as_str().unwrap_or(""),
            f["target"].as_str().unwrap_or(""),
            f["note"].as_str().unwrap_or("")
        );
    }
    if let Some(summary) = run["summary"].as_object() {
        let items: Vec<String> = summary
            .iter()
            .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
            .collect();
        for line in items.chunks(SUMMARY_PER_LINE) {
            println!("  {}", line.join(", "));
        }
    }
    Ok(())
}

/// `trawl demo`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let lab = lab_dir();
    if !lab.join("runner.py").is_file() {
        anyhow::bail!(
            "the scenario lab is not at {}; run trawl demo from a trawl build of a checkout, or set TRAWL_LAB_DIR to its lab/ directory",
            lab.display()
        );
    }
    let scenario = scenario_path(&args.scenario)?;
    preflight(&lab)?;

    let (_tmp, dir) = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (None, std::path::absolute(d)?)
        }
        None => {
            let t = TempDir::new()?;
            let p = t.0.clone();
            (Some(t), p)
        }
    };
    let run_dir = dir.join("run");
    let data = dir.join("data");
    if run_dir.join("ground-truth.jsonl").exists() || data.join("raw").exists() {
        anyhow::bail!(
            "{} already holds a demo run; give --keep another directory",
            dir.display()
        );
    }

    // Act 1: the lab, captured by trawl tap.
    let check = Command::new(python())
        .arg(lab.join("runner.py"))
        .arg("check")
        .arg(&scenario)
        .output()
        .context("checking the scenario file")?;
    if !check.status.success() {
        anyhow::bail!(
            "{}: {}",
            scenario.display(),
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }
    let timeline = String::from_utf8_lossy(&check.stdout)
        .lines()
        .find(|l| l.contains("(short)"))
        .map(|l| l.split_once(": ").map_or(l, |(_, t)| t).to_owned())
        .unwrap_or_default();
    let me = std::env::current_exe().context("finding the trawl binary")?;
    let port = free_port()?;
    let capture = format!(
        "{} tap --data {} --node {NODE} --interface {{bridge}} --listen 127.0.0.1:{port}",
        sh_quote(&me.to_string_lossy()),
        sh_quote(&data.to_string_lossy())
    );
    println!("trawl demo: {timeline}");
    println!();
    println!("1. A shop on this machine: a network namespace per pod on a bridge, real services,");
    println!("   dnsmasq and PostgreSQL, users at a steady rate, the fault on a timeline.");
    println!("   Captured by: {capture}");
    let mut lab_args: Vec<String> = vec![
        "run".into(),
        scenario.to_string_lossy().into_owned(),
        "--short".into(),
        "--out".into(),
        run_dir.to_string_lossy().into_owned(),
        "--capture-cmd".into(),
        capture,
    ];
    if let Some(d) = &args.duration {
        lab_args.extend(["--duration".into(), d.clone()]);
    }
    run_lab(&lab, &lab_args)?;

    // Act 2: the captured data, served as the tap serves it.
    let listener = trawl_hub::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)?;
    let hub = Hub::new(
        HubConfig {
            data_dir: data.clone(),
            // The lab writes its pods, services and the external gateway
            // there at the end of the run; the dissection names them.
            workloads: Some(run_dir.join("workloads.yaml")),
            ..HubConfig::default()
        },
        None,
    );
    let server = trawl_hub::spawn_server(listener, hub)?;
    let url = format!("http://{}/mcp", server.addr());
    println!();
    println!(
        "2. The lab is gone; its traffic is in {} (node {NODE}).",
        data.display()
    );
    println!("   trawl serves it as the tap does: HTTP API and MCP at {url}.");
    println!();
    println!(
        "3. The investigation an agent makes over MCP (lab/investigate.py, the official MCP Python SDK):"
    );
    println!();

    // Act 3: the investigation.
    let mut inv = Command::new(python());
    inv.arg(lab.join("investigate.py"))
        .args(["--url", &url, "--service", &args.service]);
    if let Some(j) = &args.json {
        inv.arg("--json").arg(j);
    }
    let status = inv.status().context("running lab/investigate.py")?;
    if let Err(e) = server.stop() {
        eprintln!("warning: the API stopped with an error: {e}");
    }
    print_truth(&run_dir)?;
    if args.keep.is_some() {
        println!();
        println!(
            "Kept in {}: run/ (workloads.yaml, ground-truth.jsonl, faults.json, run.json, logs), data/ (raw store, snapshot and index).",
            dir.display()
        );
        if let Some(idx) = first_index(&data) {
            println!(
                "Ask more: trawl analyze {} {}; trawl query {} 'http && status_code >= 500'",
                idx.display(),
                args.service,
                idx.display()
            );
        }
    }
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The index of the snapshot the investigation dissected.
fn first_index(data: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data.join("snapshots"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("index"))
        .find(|p| p.is_dir())
}

/// A temporary directory removed on drop (the cli has no tempfile
/// dependency, and one directory does not warrant it).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = base.join(format!("trawl-demo-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_command_quotes_what_shlex_would_split() {
        assert_eq!(sh_quote("/usr/local/bin/trawl"), "/usr/local/bin/trawl");
        assert_eq!(sh_quote("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_default_scenario_is_found_from_anywhere() {
        let p = scenario_path(Path::new(DEFAULT_SCENARIO)).unwrap();
        assert!(p.ends_with("checkout-incident.yaml"), "{}", p.display());
        let err = scenario_path(Path::new("scenarios/nope.yaml")).unwrap_err();
        assert!(err.to_string().contains("--scenario FILE"), "{err}");
    }
}
