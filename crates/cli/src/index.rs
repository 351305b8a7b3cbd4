//! `trawl index FILE --out DIR`: index a capture file into Parquet tables
//! (`calls`, `flows`) and a payload store, with a progress bar when
//! standard error is a terminal and a one-line summary when done.
//! `--workloads FILE` names endpoints by pods and services; names from the
//! capture's DNS answers are learned in a pre-scan unless `--no-dns`. The work
//! is `trawl_index::index_capture`; this verb only wires options and output.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use trawl_index::indexer::DEFAULT_MAX_BODY_BYTES;
use trawl_index::{IndexOptions, Progress, index_capture};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Capture file (pcap or pcapng).
    file: PathBuf,
    /// Index directory to create. It is written next to itself as
    /// DIR.tmp-PID and renamed into place when complete.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (shards of the capture's flows); 0 uses every core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Node name stamped on calls, flows and call ids.
    #[arg(long, default_value = "local")]
    node: String,
    /// Body bytes kept per message in the payload store; 0 keeps none.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Replace an existing index at --out.
    #[arg(long)]
    overwrite: bool,
    /// Workloads file (YAML or JSON: pods, services, IPs) naming the
    /// capture's endpoints.
    #[arg(long, value_name = "FILE")]
    workloads: Option<PathBuf>,
    /// Skip the pre-scan that learns names from the capture's DNS answers.
    #[arg(long)]
    no_dns: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let workloads = args
        .workloads
        .as_deref()
        .map(trawl_identity::Workloads::load)
        .transpose()
        .context("cannot load --workloads")?;
    let opts = IndexOptions {
        node: args.node.clone(),
        threads: args.threads,
        max_body_bytes: args.max_body_bytes,
        overwrite: args.overwrite,
        workloads,
        learn_dns: !args.no_dns,
        ..IndexOptions::default()
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let total = std::fs::metadata(&args.file).map_or(0, |m| m.len());
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |p: Progress| {
        if let Some(bar) = &bar {
            bar.set_position(p.bytes_read);
            bar.set_message(format!("{} packets", p.packets));
        }
    };
    let result = index_capture(&args.file, &args.out, &opts, &progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = result.with_context(|| {
        format!(
            "cannot index {} into {}",
            args.file.display(),
            args.out.display()
        )
    })?;
    let m = &summary.manifest;
    let secs = started.elapsed().as_secs_f64();
    let by_protocol: Vec<String> = summary
        .calls_by_protocol
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    println!(
        "indexed {}: {} packets, {} calls ({}), {} flows in {:.2} s ({:.0} packets/s, {} threads) -> {}",
        args.file.display(),
        m.packets,
        m.calls,
        by_protocol.join(", "),
        m.flows,
        secs,
        m.packets as f64 / secs.max(1e-9),
        m.shards,
        summary.dir.display()
    );
    if let Some(d) = &summary.dns_prescan {
        println!(
            "identities: {} workloads; DNS pre-scan: {} of {} packets, {} DNS calls, {} addresses named",
            summary.workloads, d.dns_packets, d.packets, d.dns_calls, d.addresses
        );
    } else if summary.workloads > 0 {
        println!("identities: {} workloads", summary.workloads);
    }
    if let Some(e) = &m.capture_error {
        eprintln!("error: {e} (the packets before it were indexed)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
