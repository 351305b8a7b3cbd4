//! The `trawl` binary: a thin layer of verbs over the library crates.
//! Each verb lives in its own module; this file only parses arguments and
//! dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dissect;
mod fields;
mod flows;
mod hub_client;
mod index;
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
    /// Stdio MCP server for AI agents, forwarding to a hub's /mcp (`--list-tools` prints them).
    Mcp(mcp::Args),
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
        Command::Mcp(args) => mcp::run(&args),
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
