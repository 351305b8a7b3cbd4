//! `trawl dissect FILE`: run a capture file through the pipeline and print
//! its calls as JSON lines or a table, and optionally the run's statistics.
//! Output streams: calls are written as they complete, so memory stays
//! bounded by the connections in flight, not by the file.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::ValueEnum;
use trawl_dissect::protocols::dns::parser::rcode_name;
use trawl_dissect::{Pipeline, PipelineConfig, PipelineStats};
use trawl_model::{Call, Protocol};
use trawl_packet::CaptureReader;

use trawl_model::time::rfc3339_micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per call and line, keyed by KFL field names.
    Jsonl,
    /// A fixed-width table for people.
    Table,
    /// No calls; useful with --stats.
    None,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Capture file (pcap or pcapng).
    file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print packets, bytes, flows, calls by protocol, gaps, anomalies and
    /// the rate to standard error when done.
    #[arg(long)]
    stats: bool,
    /// Include kept request/response bodies in JSON output.
    #[arg(long)]
    payloads: bool,
    /// Node name stamped on calls and their ids.
    #[arg(long, default_value = "local")]
    node: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut reader = CaptureReader::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut config = PipelineConfig {
        node: args.node.clone(),
        ..PipelineConfig::default()
    };
    if !args.payloads {
        // Bodies are only shown with --payloads: don't keep or decode them.
        config.limits.max_body_bytes = 0;
    }
    let mut pipeline = Pipeline::new(config);
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 20, stdout);
    let mut write_err: Option<io::Error> = None;
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    if args.format == Format::Table {
        write_err = writeln!(out, "{}", table_header()).err();
    }
    let mut sink = |call: Call| {
        if write_err.is_some() {
            return;
        }
        let r = match args.format {
            // Serialising into a reused buffer and writing it whole is
            // cheaper than many small writes through the BufWriter.
            Format::Jsonl => {
                line.clear();
                serde_json::to_writer(&mut line, &call)
                    .map_err(io::Error::from)
                    .and_then(|()| {
                        line.push(b'\n');
                        out.write_all(&line)
                    })
            }
            Format::Table => writeln!(out, "{}", table_row(&call)),
            Format::None => Ok(()),
        };
        write_err = r.err();
    };
    // A damaged file still yields every packet before the damage: dissect
    // those, then report where the file went wrong.
    let capture_error = loop {
        match reader.next_packet() {
            Ok(Some(pkt)) => pipeline.packet(&pkt, &mut sink),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    pipeline.finish(&mut sink);
    match write_err {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Some(e) => return Err(e).context("cannot write output"),
        None => {}
    }
    if let Err(e) = out.flush() {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(e).context("cannot write output");
    }
    if args.stats {
        print_stats(&pipeline.stats(), started.elapsed().as_secs_f64());
    }
    if let Some(e) = capture_error {
        eprintln!("error: {e} (the packets before it were dissected)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn table_header() -> String {
    format!(
        "{:<27} {:<5} {:<21} {:<21} {:<7} {:>8} {:>10}  {}",
        "TIMESTAMP", "PROTO", "SRC", "DST", "METHOD", "STATUS", "ELAPSED", "PATH"
    )
}

fn table_row(c: &Call) -> String {
    let proto = c.protocol.map_or("?", |p| p.as_str());
    let src = std::net::SocketAddr::new(c.src.ip, c.src.port).to_string();
    let dst = std::net::SocketAddr::new(c.dst.ip, c.dst.port).to_string();
    let rcode_name = || {
        u16::try_from(c.status_code)
            .ok()
            .and_then(rcode_name)
            .map(str::to_owned)
    };
    let status = if c.has_response {
        match c.protocol {
            Some(Protocol::Dns) => rcode_name().unwrap_or_else(|| c.status_code.to_string()),
            _ => c.status_code.to_string(),
        }
    } else {
        "-".to_owned()
    };
    let elapsed = if c.has_request && c.has_response {
        format!("{:.3}ms", c.elapsed_time as f64 / 1000.0)
    } else {
        "-".to_owned()
    };
    let mut path = if c.url.is_empty() {
        c.path.clone()
    } else {
        c.url.clone()
    };
    if !c.dns_question_types.is_empty() {
        path = format!(
            "{} {}",
            c.dns_question_types.join(","),
            c.dns_questions.join(",")
        );
    }
    if !c.errors.is_empty() {
        path.push_str(&format!("  [{}]", c.errors.join(",")));
    }
    format!(
        "{:<27} {:<5} {:<21} {:<21} {:<7} {:>8} {:>10}  {}",
        rfc3339_micros(c.timestamp),
        proto,
        src,
        dst,
        c.method,
        status,
        elapsed,
        path
    )
}

fn print_stats(s: &PipelineStats, wall_secs: f64) {
    let mut e = io::stderr().lock();
    let span = match (s.first_ts, s.last_ts) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let list = |m: Vec<(String, u64)>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let f = &s.flows;
    let _ = writeln!(
        e,
        "packets      {} ({} not IP, {} undecodable)",
        s.packets,
        s.non_ip,
        s.decode_errors.values().sum::<u64>()
    );
    let _ = writeln!(e, "bytes        {}", s.bytes);
    let _ = writeln!(e, "capture span {span:.3} s");
    let _ = writeln!(
        e,
        "flows        {} ({} TCP packets, {} UDP packets)",
        f.connections, f.tcp_packets, f.udp_packets
    );
    let _ = writeln!(
        e,
        "connections  {}; undetected {}",
        list(
            s.connections_by_protocol
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        ),
        s.undetected_connections
    );
    let _ = writeln!(
        e,
        "calls        {}",
        list(
            s.calls_by_protocol
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        )
    );
    let _ = writeln!(e, "gaps         {} ({} bytes)", f.gaps, f.gap_bytes);
    let _ = writeln!(
        e,
        "tcp          {} retransmitted, {} overlapping, {} out-of-order segments",
        f.retransmitted_segments, f.overlapping_segments, f.out_of_order_segments
    );
    let _ = writeln!(
        e,
        "anomalies    {}",
        list(
            s.anomalies
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect()
        )
    );
    if !s.decode_errors.is_empty() {
        let _ = writeln!(
            e,
            "decode       {}",
            list(
                s.decode_errors
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            )
        );
    }
    let rate = if wall_secs > 0.0 {
        s.packets as f64 / wall_secs
    } else {
        0.0
    };
    let _ = writeln!(
        e,
        "rate         {:.0} packets/s, {:.1} MB/s ({wall_secs:.3} s)",
        rate,
        s.bytes as f64 / wall_secs.max(1e-9) / 1e6
    );
}
