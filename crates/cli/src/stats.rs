//! `trawl stats DIR 'KFL' --by path,dst.name [--interval 1m]`: per group
//! of matching calls (and per time bucket) the count, status classes,
//! error rate and latency p50/p95/p99/max, as a table or JSON lines. The
//! numbers come from `trawl_index::stats::stats` (see its module doc for
//! what counts as an error and the 0.1 % bound on percentiles); groups are
//! ordered by count, the largest `--limit` printed. The JSON lines carry
//! each group's latency histogram (base64 HdrHistogram V2) so that answers
//! from several nodes can be merged exactly.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use trawl_index::stats::{GroupStats, StatsOptions, stats};
use trawl_model::time::rfc3339_micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per group, with its histogram for merging.
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// The KFL filter, e.g. 'http'; '' matches every call.
    filter: String,
    /// Fields to group by, comma-separated KFL names (none: one group).
    #[arg(long, value_delimiter = ',')]
    by: Vec<String>,
    /// Time buckets of this width, e.g. 10s, 1m, 1h (units ns, us, ms, s, m, h, d).
    #[arg(long, value_parser = parse_interval)]
    interval: Option<i64>,
    /// Groups to print, largest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Statistics of flows instead of calls: per client → server pair
    /// (`--by pair`, the default) or per server (`--by server`), the
    /// connections per minute, failed handshakes, RSTs, retransmission
    /// rate and RTT percentiles; the filter is over flow fields.
    #[arg(long)]
    flows: bool,
}

/// `10s`, `1m`, `250ms` → nanoseconds.
fn parse_interval(s: &str) -> Result<i64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?}: give a whole number and a unit, e.g. 1m"))?;
    let scale: i64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(format!("{s:?}: unknown unit; use ns, us, ms, s, m, h or d")),
    };
    match n.checked_mul(scale) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("{s:?}: give a positive interval under 292 years")),
    }
}

fn ms(us: Option<u64>) -> String {
    us.map(|u| format!("{:.3}", u as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn row(g: &GroupStats, bucketed: bool) -> Vec<String> {
    let mut r = g.key.clone();
    if bucketed {
        r.push(g.bucket_start_ns.map(rfc3339_micros).unwrap_or_default());
    }
    let [_, c2, _, c4, c5] = g.http_classes;
    r.extend([
        g.count.to_string(),
        c2.to_string(),
        c4.to_string(),
        c5.to_string(),
        format!("{:.2}", g.error_rate() * 100.0),
        ms(g.latency_quantile_us(0.5)),
        ms(g.latency_quantile_us(0.95)),
        ms(g.latency_quantile_us(0.99)),
        ms(g.latency_max_us()),
    ]);
    r
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.flows {
        let jsonl = args.format == Format::Jsonl;
        return crate::flows::stats(&args.dir, &args.filter, &args.by, args.limit, jsonl);
    }
    if args.limit == 0 {
        bail!("--limit 0 prints nothing; ask for at least 1 group");
    }
    let opts = StatsOptions {
        by: args.by.clone(),
        interval_ns: args.interval,
    };
    let result = stats(&args.dir, &args.filter, &opts)?;
    let shown = result.groups.iter().take(args.limit);
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    let written: std::io::Result<()> = (|| {
        match args.format {
            Format::Table => {
                let bucketed = result.interval_ns.is_some();
                let mut header: Vec<String> = result.by.clone();
                if bucketed {
                    header.push("bucket".into());
                }
                header.extend(
                    [
                        "count", "2xx", "4xx", "5xx", "err%", "p50_ms", "p95_ms", "p99_ms",
                        "max_ms",
                    ]
                    .map(String::from),
                );
                let rows: Vec<Vec<String>> = shown.map(|g| row(g, bucketed)).collect();
                let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
                for r in &rows {
                    for (w, c) in widths.iter_mut().zip(r) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let nkeys = header.len() - 9;
                for r in std::iter::once(&header).chain(&rows) {
                    let cells: Vec<String> = r
                        .iter()
                        .zip(&widths)
                        .enumerate()
                        .map(|(i, (c, w))| {
                            // Keys left-aligned, numbers right-aligned.
                            if i < nkeys {
                                format!("{c:<w$}")
                            } else {
                                format!("{c:>w$}")
                            }
                        })
                        .collect();
                    writeln!(out, "{}", cells.join("  ").trim_end())?;
                }
            }
            Format::Jsonl => {
                for g in shown {
                    let mut o = serde_json::Map::new();
                    for (name, v) in result.by.iter().zip(&g.key) {
                        o.insert(name.clone(), v.clone().into());
                    }
                    if let Some(b) = g.bucket_start_ns {
                        o.insert("bucket_start".into(), rfc3339_micros(b).into());
                    }
                    o.insert("error_rate".into(), g.error_rate().into());
                    for (k, q) in [("p50_us", 0.5), ("p95_us", 0.95), ("p99_us", 0.99)] {
                        o.insert(k.into(), g.latency_quantile_us(q).into());
                    }
                    o.insert("max_us".into(), g.latency_max_us().into());
                    let full = serde_json::to_value(g).map_err(std::io::Error::other)?;
                    if let serde_json::Value::Object(m) = full {
                        o.extend(m);
                    }
                    writeln!(out, "{}", serde_json::Value::Object(o))?;
                }
            }
        }
        out.flush()
    })();
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r.context("cannot write the result")?,
    }
    eprintln!(
        "{} of {} groups",
        result.groups.len().min(args.limit),
        result.groups.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units_and_reject_nonsense() {
        assert_eq!(parse_interval("1m"), Ok(60_000_000_000));
        assert_eq!(parse_interval("250ms"), Ok(250_000_000));
        assert_eq!(parse_interval("10s"), Ok(10_000_000_000));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("m").is_err());
        assert!(parse_interval("99999999999d").is_err());
    }
}
