//! The `trawl-lab` binary: command-line access to the lab's tools. Two
//! verbs: `gen-pcap`, which writes a synthetic capture with
//! [`trawl_lab::pcapgen`] and prints its ground truth as JSON (stdout, or
//! `--summary FILE`), used by `bench/dissect-vs-tshark.sh` and by hand; and
//! `scenario`, which hands its arguments to the scenario lab's Python runner
//! (`lab/runner.py`: real services in network namespaces, faults on a
//! timeline; see lab/README.md), used by people, `trawl demo` and
//! crates/lab/tests/scenario.rs.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trawl_lab::pcapgen::{GenConfig, generate};

#[derive(Debug, Parser)]
#[command(
    name = "trawl-lab",
    version,
    about = "Reproducible traffic for trawl's tests and benchmarks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic synthetic HTTP/1.1 + DNS capture (Ethernet,
    /// IPv4, nanosecond pcap) and print what it holds as JSON.
    GenPcap(GenPcapArgs),
    /// Run a scenario of the checkout lab: `scenario run FILE --out DIR
    /// [--short] [--duration 90s] [--pcap FILE]`, `scenario check FILE…`,
    /// `scenario preflight`. Everything after `scenario` goes to
    /// lab/runner.py (python3); `scenario --help` shows its help.
    #[command(disable_help_flag = true)]
    Scenario(ScenarioArgs),
}

#[derive(Debug, clap::Args)]
struct ScenarioArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// Where the lab's Python code lives: `$TRAWL_LAB_DIR`, else the `lab/`
/// directory of the checkout this binary was built from (an installed
/// `trawl-lab` keeps pointing at it, as `scripts/setup.sh` installs it).
fn lab_dir() -> PathBuf {
    match std::env::var_os("TRAWL_LAB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab")),
    }
}

/// Replaces this process with `python3 lab/runner.py ARGS…`, so that
/// Ctrl-C and SIGTERM reach the runner, which tears the lab down.
fn scenario(args: ScenarioArgs) -> anyhow::Result<()> {
    let runner = lab_dir().join("runner.py");
    if !runner.is_file() {
        anyhow::bail!(
            "the lab runner is not at {}; set TRAWL_LAB_DIR to the lab/ directory of a trawl checkout",
            runner.display()
        );
    }
    let python = std::env::var_os("TRAWL_LAB_PYTHON").unwrap_or_else(|| "python3".into());
    let err = std::process::Command::new(&python)
        .arg(&runner)
        .args(&args.args)
        .exec();
    Err(err).with_context(|| {
        format!(
            "running {} {}: is Python 3 installed? (set TRAWL_LAB_PYTHON to use another interpreter)",
            python.to_string_lossy(),
            runner.display()
        )
    })
}

#[derive(Debug, clap::Args)]
struct GenPcapArgs {
    /// Packets to generate; open connections finish after this count is
    /// reached, so the file holds a few hundred more.
    #[arg(long)]
    packets: u64,
    /// Seed of the random stream: same seed and options, same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output pcap file.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Write the summary JSON to this file instead of stdout.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Client addresses (10.1.0.0/16).
    #[arg(long, default_value_t = GenConfig::default().clients)]
    clients: u32,
    /// HTTP server addresses (10.2.0.0/24).
    #[arg(long, default_value_t = GenConfig::default().servers)]
    servers: u32,
    /// Fraction of DNS transactions among all calls, 0 to 1.
    #[arg(long, default_value_t = GenConfig::default().dns_share)]
    dns_share: f64,
    /// Conversations open at once.
    #[arg(long, default_value_t = GenConfig::default().concurrency)]
    concurrency: u32,
    /// Fewest and most HTTP requests per TCP connection, as LOW-HIGH.
    #[arg(long, default_value = "1-20", value_parser = parse_range)]
    requests_per_conn: (u32, u32),
}

fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("expected LOW-HIGH such as 1-20, got {s:?}"))?;
    let lo = lo
        .trim()
        .parse()
        .map_err(|e| format!("low end {lo:?}: {e}"))?;
    let hi = hi
        .trim()
        .parse()
        .map_err(|e| format!("high end {hi:?}: {e}"))?;
    Ok((lo, hi))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::GenPcap(args) => gen_pcap(args),
        Command::Scenario(args) => scenario(args),
    }
}

fn gen_pcap(args: GenPcapArgs) -> anyhow::Result<()> {
    let cfg = GenConfig {
        packets: args.packets,
        seed: args.seed,
        clients: args.clients,
        servers: args.servers,
        dns_share: args.dns_share,
        concurrency: args.concurrency,
        requests_per_conn: args.requests_per_conn,
        ..GenConfig::default()
    };
    let file = File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let started = Instant::now();
    let summary =
        generate(file, &cfg).with_context(|| format!("writing {}", args.output.display()))?;
    let elapsed = started.elapsed();
    let json = serde_json::to_string_pretty(&summary)?;
    match &args.summary {
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{json}")?;
        }
    }
    eprintln!(
        "Wrote {} packets ({} bytes) to {} in {:.2} s ({:.0} packets/s).",
        summary.packets,
        summary.bytes,
        args.output.display(),
        elapsed.as_secs_f64(),
        summary.packets as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}
