//! `trawl flows DIR 'KFL'`: the L4 flows (TCP connections, UDP
//! conversations) of an index that match a KFL filter over the flow
//! catalogue (`tcp && retransmissions > 0`, `conn_state == "refused"`),
//! as a table or as JSON lines keyed by the field names with `src`/`dst`
//! nested as in calls; and the `--flows` part of `trawl stats`: per
//! service pair or per server, connections per minute, failed handshakes,
//! resets, retransmission rate and RTT percentiles. The rows and numbers
//! come from `trawl_index::flow_stats`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use trawl_index::flow_stats::{FlowGroupStats, FlowGrouping, flow_stats, query_flows};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per flow, keyed by field names, `src`/`dst` nested.
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// The KFL filter over flow fields, e.g. 'tcp && rst_count > 0'; '' matches every flow.
    #[arg(default_value = "")]
    filter: String,
    /// Flows to print, earliest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Columns of the table view.
const TABLE_FIELDS: [&str; 13] = [
    "conn_id",
    "transport",
    "src.ip",
    "src.port",
    "dst.ip",
    "dst.port",
    "protocol",
    "conn_state",
    "flow_packets",
    "retransmissions",
    "rst_count",
    "initial_rtt_us",
    "rtt_avg_us",
];

/// `{"src.pod.name": v}` → `{"src": {"pod": {"name": v}}}`.
fn nest(flat: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    for (key, v) in flat {
        let parts: Vec<&str> = key.split('.').collect();
        insert_path(&mut root, &parts, v);
    }
    serde_json::Value::Object(root)
}

fn insert_path(
    map: &mut serde_json::Map<String, serde_json::Value>,
    path: &[&str],
    v: serde_json::Value,
) {
    match path {
        [] => {}
        [last] => {
            map.insert((*last).to_string(), v);
        }
        [first, rest @ ..] => {
            let e = map
                .entry((*first).to_string())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !e.is_object() {
                *e = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(m) = e {
                insert_path(m, rest, v);
            }
        }
    }
}

fn rows_json(
    batches: &[arrow::array::RecordBatch],
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    let buf = w.into_inner();
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&buf)?)
}

fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// Prints aligned columns: the first `nkeys` left-aligned, the rest right.
fn print_table(
    out: &mut dyn std::io::Write,
    header: &[String],
    rows: &[Vec<String>],
    nkeys: usize,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < nkeys {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// Runs `write` on a buffered stdout; a closed pipe is a normal end.
fn to_stdout(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> anyhow::Result<bool> {
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        r => r.context("cannot write the result").map(|()| true),
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let page = query_flows(&args.dir, &args.filter, args.limit)?;
    let rows = rows_json(&page.batches)?;
    let printed = to_stdout(|out| match args.format {
        Format::Jsonl => {
            for r in rows {
                writeln!(out, "{}", nest(r))?;
            }
            Ok(())
        }
        Format::Table => {
            let header: Vec<String> = TABLE_FIELDS.iter().map(|s| s.to_string()).collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| TABLE_FIELDS.iter().map(|f| cell(r.get(*f))).collect())
                .collect();
            print_table(out, &header, &cells, 8)
        }
    })?;
    if printed {
        eprintln!(
            "{} of {} matching flows",
            page.num_rows(),
            page.total_matching
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(us: Option<u64>) -> String {
    us.map(|u| format!("{:.3}", u as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// `trawl stats DIR 'KFL' --flows [--by pair|server]`.
pub fn stats(
    dir: &Path,
    filter: &str,
    by: &[String],
    limit: usize,
    jsonl: bool,
) -> anyhow::Result<ExitCode> {
    let grouping = match by {
        [] => FlowGrouping::Pair,
        [one] if one == "pair" => FlowGrouping::Pair,
        [one] if one == "server" => FlowGrouping::Server,
        _ => bail!(
            "--by {}: with --flows, group by `pair` (client → server, the default) or `server`",
            by.join(",")
        ),
    };
    if limit == 0 {
        bail!("--limit 0 prints nothing; ask for at least 1 group");
    }
    let result = flow_stats(dir, filter, grouping)?;
    let span = result.span_ns();
    let key_names: Vec<String> = match grouping {
        FlowGrouping::Pair => vec!["client".into(), "server".into()],
        FlowGrouping::Server => vec!["server".into()],
    };
    let q = FlowGroupStats::quantile;
    let printed = to_stdout(|out| {
        let shown = result.groups.iter().take(limit);
        if jsonl {
            for g in shown {
                let mut o = serde_json::Map::new();
                for (name, v) in key_names.iter().zip(&g.key) {
                    o.insert(name.clone(), v.clone().into());
                }
                o.insert("opened_per_min".into(), g.opened_per_minute(span).into());
                o.insert("failed_handshakes".into(), g.failed_handshakes().into());
                o.insert("retransmission_rate".into(), g.retransmission_rate().into());
                for (k, qq) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                    o.insert(
                        format!("handshake_rtt_{k}_us"),
                        q(&g.handshake_rtt_us, qq).into(),
                    );
                    o.insert(format!("data_rtt_{k}_us"), q(&g.data_rtt_us, qq).into());
                }
                let full = serde_json::to_value(g).map_err(std::io::Error::other)?;
                if let serde_json::Value::Object(m) = full {
                    o.extend(m);
                }
                writeln!(out, "{}", serde_json::Value::Object(o))?;
            }
            return Ok(());
        }
        let mut header = key_names.clone();
        header.extend(
            [
                "conns",
                "per_min",
                "refused",
                "timeout",
                "rst",
                "retr%",
                "hs_p50_ms",
                "hs_p99_ms",
                "rtt_p50_ms",
                "rtt_p99_ms",
            ]
            .map(String::from),
        );
        let rows: Vec<Vec<String>> = shown
            .map(|g| {
                let mut r = g.key.clone();
                r.extend([
                    g.connections.to_string(),
                    format!("{:.1}", g.opened_per_minute(span)),
                    g.refused.to_string(),
                    g.unanswered.to_string(),
                    g.rst_segments.to_string(),
                    format!("{:.2}", g.retransmission_rate() * 100.0),
                    ms(q(&g.handshake_rtt_us, 0.5)),
                    ms(q(&g.handshake_rtt_us, 0.99)),
                    ms(q(&g.data_rtt_us, 0.5)),
                    ms(q(&g.data_rtt_us, 0.99)),
                ]);
                r
            })
            .collect();
        print_table(out, &header, &rows, key_names.len())
    })?;
    if printed {
        eprintln!(
            "{} of {} groups",
            result.groups.len().min(limit),
            result.groups.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_nest_like_calls() {
        let flat: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"conn_id": 3, "src.ip": "10.0.0.1", "src.pod.name": "a", "dst.port": 80}"#,
        )
        .unwrap();
        assert_eq!(
            nest(flat),
            serde_json::json!({
                "conn_id": 3,
                "src": {"ip": "10.0.0.1", "pod": {"name": "a"}},
                "dst": {"port": 80}
            })
        );
    }
}
