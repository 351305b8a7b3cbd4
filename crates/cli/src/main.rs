//! The `trawl` binary: a thin layer of verbs over the library crates.
//! Each verb lives in its own module; this file only parses arguments and
//! dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cluster;
mod demo;
mod dissect;
mod fields;
mod flows;
mod hub_client;
mod index;
mod insights;
mod mcp;
mod query;
mod snapshot;
mod sql;
mod stats;
mod tap;

/// Eyes on the network traffic of Kubernetes clusters and Linux hosts.
#[derive(Debug, Parser)]
#[command(name = "trawl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// CLI verbs, in one place.
#[derive(Debug, Subcommand)]
enum Command {
    /// Dissect a capture file (pcap or pcapng) into API calls.
    Dissect(dissect::Args),
    /// Index a capture file into Parquet tables (calls, flows) and a payload store.
    Index(index::Args),
    /// Print the field catalogue: every field of calls and flows.
    Fields(fields::Args),
    /// Run a read-only SQL query over an index's tables `calls` and `flows`.
    Sql(sql::Args),
    /// List the calls of an index that match a KFL filter, a page at a time.
    Query(query::Args),
    /// Per group of matching calls: count, status classes, error rate, latency percentiles.
    Stats(stats::Args),
    /// List the L4 flows (TCP connections, UDP conversations) of an index that match a KFL filter.
    Flows(flows::Args),
    /// Turn a capture file into a snapshot (prints its id).
    Import(snapshot::ImportArgs),
    /// Create, list, show and delete snapshots of the raw store.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Export a snapshot's packets.
    #[command(subcommand)]
    Export(snapshot::ExportCommand),
    /// Per node: the time span, packets and bytes the raw store holds.
    Boundaries(snapshot::BoundariesArgs),
    /// Capture live traffic into the rolling raw store of this node.
    Tap(tap::Args),
    /// A cluster node: `tap` for a hub to reach (`--listen 0.0.0.0:9900 --token T --node NAME`).
    Worker(cluster::WorkerArgs),
    /// Serve the API over workers: fan requests out, merge the answers (`--worker URL`, repeated).
    Hub(cluster::HubArgs),
    /// Stdio MCP server for AI agents, forwarding to a hub's /mcp (`--list-tools` prints them).
    Mcp(mcp::Args),
    /// Reproduce the checkout incident in a lab on this machine, capture it and investigate it over MCP (root).
    Demo(demo::Args),
    /// A service's health: calls, latency, TCP connect time, status mix, endpoints, callers, callees.
    Analyze(insights::AnalyzeArgs),
    /// Error bursts, latency shifts, retry storms, churn, resets, pool exhaustion, DNS failures.
    Anomalies(insights::AnomaliesArgs),
    /// Why calls fail: what the serving workloads waited on downstream, timeouts, chain, timeline.
    Explain(insights::ExplainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dissect(args) => dissect::run(&args),
        Command::Index(args) => index::run(&args),
        Command::Fields(args) => fields::run(&args),
        Command::Sql(args) => sql::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Stats(args) => stats::run(&args),
        Command::Flows(args) => flows::run(&args),
        Command::Import(args) => snapshot::import(&args).map(|()| ExitCode::SUCCESS),
        Command::Snapshot(cmd) => snapshot::snapshot(&cmd).map(|()| ExitCode::SUCCESS),
        Command::Export(cmd) => snapshot::export_cmd(&cmd).map(|()| ExitCode::SUCCESS),
        Command::Boundaries(args) => snapshot::boundaries(&args).map(|()| ExitCode::SUCCESS),
        Command::Tap(args) => tap::run(&args),
        Command::Worker(args) => cluster::worker(&args),
        Command::Hub(args) => cluster::hub(&args),
        Command::Mcp(args) => mcp::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Analyze(args) => insights::analyze(&args),
        Command::Anomalies(args) => insights::anomalies(&args),
        Command::Explain(args) => insights::explain(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

// A dissection allocates a few dozen small strings per call: with glibc's
// malloc, allocation and free were a fifth of `trawl dissect`'s profile,
// and mimalloc took a 1 M-packet run from 0.73 s to 0.57 s (bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
