//! `trawl analyze DIR SERVICE`, `trawl anomalies DIR [KFL]` and
//! `trawl explain DIR KFL`: the analyses of `trawl_insights` over an index
//! directory, printed as an engineer's finding list (numbers in each line,
//! the KFL that reproduces it underneath) or, with `--format json`, as the
//! structs the hub and the MCP tools return.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;
use trawl_insights::{
    AnomalyQuery, Evidence, ExplainQuery, ServiceQuery, analyze_service, explain_errors,
    find_anomalies,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A finding list for people.
    Text,
    /// The analysis as one JSON object (the hub's and MCP's shape).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// Service, pod or DNS name (dst.service.name, else dst.name).
    service: String,
    /// Start of the window, RFC 3339 (e.g. 2026-11-28T22:18:30Z).
    #[arg(long)]
    from: Option<String>,
    /// End of the window (exclusive), RFC 3339.
    #[arg(long)]
    to: Option<String>,
    /// Endpoints, callers and callees listed, each.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct AnomaliesArgs {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// KFL scope over calls, e.g. 'dst.namespace == "shop"'; '' or none: every call.
    #[arg(default_value = "")]
    kfl: String,
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    /// Findings listed, most severe first (default 20).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// KFL selecting the failing calls, e.g. 'path == "/api/v1/checkout" && status_code == 503'.
    kfl: String,
    /// Timeouts and timeline events listed (default 20).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn emit<T: Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let s = match format {
        Format::Json => serde_json::to_string_pretty(value).context("cannot render JSON")?,
        Format::Text => text(),
    };
    match writeln!(out, "{s}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("cannot write the result")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(us: u64) -> String {
    trawl_insights::format_duration_us(us)
}

fn evidence_line(e: &Evidence) -> String {
    let mut s = String::new();
    if !e.kfl.is_empty() {
        s.push_str(&format!("      kfl: {}\n", e.kfl));
    }
    if let Some(w) = &e.flows_where {
        s.push_str(&format!("      flows where: {w}\n"));
    }
    let ids = if e.call_ids.is_empty() {
        &e.flow_ids
    } else {
        &e.call_ids
    };
    if !ids.is_empty() {
        let more = e.total.saturating_sub(ids.len() as u64);
        s.push_str(&format!(
            "      e.g. {}{}\n",
            ids.iter().take(3).cloned().collect::<Vec<_>>().join(" "),
            if more > 0 || ids.len() > 3 {
                format!(
                    " (+{} more)",
                    e.total.saturating_sub(3.min(ids.len() as u64))
                )
            } else {
                String::new()
            }
        ));
    }
    s
}

pub fn analyze(a: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let q = ServiceQuery {
        service: a.service.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        limit: a.limit,
    };
    let r = analyze_service(&a.dir, &q)?;
    emit(a.format, &r, || {
        let mut s = format!("{}\n\n", r.summary);
        s.push_str(&format!(
            "window      {} .. {}\ncalls       {} (2xx {}, 3xx {}, 4xx {}, 5xx {}, failed {}; {:.1}% 2xx)\nlatency     p50 {}  p95 {}  p99 {}  max {}\ntcp connect p50 {}  p95 {}  ({} connections)\n",
            r.window.from, r.window.to, r.calls, r.status.s2xx, r.status.s3xx, r.status.s4xx,
            r.status.s5xx, r.status.failed, r.share_2xx * 100.0,
            ms(r.latency_us.p50), ms(r.latency_us.p95), ms(r.latency_us.p99), ms(r.latency_us.max),
            ms(r.tcp_connect_us.p50), ms(r.tcp_connect_us.p95), r.tcp_connect_us.samples,
        ));
        s.push_str("\nendpoints (by errors, then p95)\n");
        for e in &r.endpoints {
            let codes: Vec<String> = e
                .status_5xx
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect();
            s.push_str(&format!(
                "  {:<6} {:<40} {:>6} calls {:>5} errors ({:>5.1}%) p50 {:>9} p95 {:>9} p99 {:>9} {}\n",
                e.method, e.path, e.calls, e.errors, e.error_rate * 100.0,
                ms(e.p50_us), ms(e.p95_us), ms(e.p99_us), codes.join(" ")
            ));
        }
        for (title, peers) in [("callers", &r.callers), ("callees", &r.callees)] {
            s.push_str(&format!("\n{title}\n"));
            for p in peers {
                s.push_str(&format!(
                    "  {:<40} {:>6} calls {:>5} errors  p50 {:>9} p95 {:>9}\n",
                    p.name,
                    p.calls,
                    p.errors,
                    ms(p.p50_us),
                    ms(p.p95_us)
                ));
            }
        }
        if r.truncated {
            s.push_str("\n(lists cut to --limit)\n");
        }
        s
    })
}

pub fn anomalies(a: &AnomaliesArgs) -> anyhow::Result<ExitCode> {
    let q = AnomalyQuery {
        scope: a.kfl.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        limit: a.limit,
    };
    let r = find_anomalies(&a.dir, &q)?;
    emit(a.format, &r, || {
        let mut s = format!("{}\n", r.summary);
        for (i, f) in r.findings.iter().enumerate() {
            s.push_str(&format!(
                "\n{:>2}. [{}] {}: {}\n    {}\n",
                i + 1,
                f.severity,
                f.kind,
                f.title,
                f.summary
            ));
            s.push_str(&evidence_line(&f.evidence));
        }
        if r.truncated {
            s.push_str("\n(more findings: raise --limit or narrow the scope)\n");
        }
        s
    })
}

pub fn explain(a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let q = ExplainQuery {
        kfl: a.kfl.clone(),
        limit: a.limit,
    };
    let r = explain_errors(&a.dir, &q)?;
    emit(a.format, &r, || {
        let mut s = format!("{}\n", r.summary);
        if !r.chain.is_empty() {
            s.push_str("\ncausal chain (root cause last)\n");
            for (i, l) in r.chain.iter().enumerate() {
                s.push_str(&format!(
                    "  {}. {:<10} {} {}\n     {}\n",
                    i + 1,
                    l.role,
                    l.service,
                    l.endpoint,
                    l.detail
                ));
                s.push_str(&evidence_line(&l.evidence).replace("      ", "     "));
            }
        }
        if !r.timeouts.is_empty() {
            s.push_str("\ntimeouts (unanswered calls ending at one duration)\n");
            for t in &r.timeouts {
                s.push_str(&format!(
                    "  {} → {}: {} ms ({} calls)\n",
                    t.service, t.callee, t.timeout_ms, t.count
                ));
            }
        }
        if !r.timeline.is_empty() {
            s.push_str("\ntimeline\n");
            for e in &r.timeline {
                s.push_str(&format!("  {}  {}\n", e.time, e.event));
            }
        }
        s
    })
}
