//! `analyze_service`: one service's health over a window — the calls it
//! served (latency percentiles, status mix, endpoints ranked by errors
//! then p95), the TCP handshake time of connections to it (flows table),
//! who called it and whom it called. Exact quantiles over the calls read.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::load::{self, CallRow, Side};
use crate::util::{self, call_evidence, dur, pct, quantile, quote, share, template};
use crate::{
    EndpointHealth, InsightsError, Latency, Peer, ServiceQuery, ServiceReport, StatusMix,
    TcpConnect, TimeRange, Window, check_limit,
};

/// KFL of the calls a name serves (`side` = `dst`) or makes (`src`).
pub(crate) fn side_kfl(side: &str, name: &str) -> String {
    let q = quote(name);
    format!(
        "{side}.service.name == {q} || {side}.name == {q} || {side}.dns == {q} || {side}.ip == {q}"
    )
}

/// Adds a call's outcome to a status mix.
pub(crate) fn count_status(mix: &mut StatusMix, c: &CallRow) {
    if !c.has_response {
        mix.failed += 1;
    } else if c.is_http() {
        match c.status {
            200..=299 => mix.s2xx += 1,
            300..=399 => mix.s3xx += 1,
            400..=499 => mix.s4xx += 1,
            500..=599 => mix.s5xx += 1,
            // 1xx-only or an unparsable status: it did not succeed.
            _ => mix.failed += 1,
        }
    } else if c.status == 0 {
        mix.s2xx += 1;
    } else {
        mix.failed += 1;
    }
}

fn latencies(calls: &[&CallRow]) -> Vec<i64> {
    let mut v: Vec<i64> = calls
        .iter()
        .filter(|c| c.has_response && c.elapsed_us > 0)
        .map(|c| c.elapsed_us)
        .collect();
    v.sort_unstable();
    v
}

fn peer(name: String, calls: &[&CallRow]) -> Peer {
    let l = latencies(calls);
    Peer {
        name,
        calls: calls.len() as u64,
        errors: calls.iter().filter(|c| c.failed()).count() as u64,
        p50_us: quantile(&l, 0.5),
        p95_us: quantile(&l, 0.95),
    }
}

fn peers<'a>(
    calls: impl Iterator<Item = (&'a Side, &'a CallRow)>,
    limit: usize,
) -> (Vec<Peer>, bool) {
    let mut by: BTreeMap<String, Vec<&CallRow>> = BTreeMap::new();
    for (side, c) in calls {
        by.entry(side.display().to_owned()).or_default().push(c);
    }
    let mut out: Vec<Peer> = by.into_iter().map(|(n, cs)| peer(n, &cs)).collect();
    out.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
    let cut = out.len() > limit;
    out.truncate(limit);
    (out, cut)
}

/// The health of one service over a window.
pub fn analyze_service(dir: &Path, q: &ServiceQuery) -> Result<ServiceReport, InsightsError> {
    let limit = check_limit(q.limit)?;
    let name = q.service.trim();
    if name.is_empty() {
        return Err(InsightsError::BadInput(
            "no service named: give a service, pod or DNS name as it appears in dst.service.name or dst.name (trawl stats DIR 'http' --by dst.name lists them)".into(),
        ));
    }
    let kfl = format!("({}) || ({})", side_kfl("dst", name), side_kfl("src", name));
    let window = TimeRange::parse(q.from.as_deref(), q.to.as_deref())?;
    let loaded = load::calls(dir, &kfl, &window)?;
    let served: Vec<&CallRow> = loaded.rows.iter().filter(|c| c.dst.matches(name)).collect();
    let made: Vec<&CallRow> = loaded
        .rows
        .iter()
        .filter(|c| c.src.matches(name) && !c.dst.matches(name))
        .collect();
    let mut truncated = loaded.truncated;

    let lat = latencies(&served);
    let latency_us = Latency {
        p50: quantile(&lat, 0.5),
        p95: quantile(&lat, 0.95),
        p99: quantile(&lat, 0.99),
        max: quantile(&lat, 1.0),
    };
    let mut status = StatusMix::default();
    for c in &served {
        count_status(&mut status, c);
    }
    let calls = served.len() as u64;

    // TCP connect time: handshake RTT of connections to the service.
    let flows = load::flows(dir, &window)?;
    let mut rtts: Vec<i64> = flows
        .rows
        .iter()
        .filter(|f| f.tcp && f.dst.matches(name) && f.initial_rtt_us > 0)
        .map(|f| f.initial_rtt_us)
        .collect();
    rtts.sort_unstable();
    let tcp_connect_us = TcpConnect {
        p50: quantile(&rtts, 0.5),
        p95: quantile(&rtts, 0.95),
        samples: rtts.len() as u64,
    };

    // Endpoints.
    let mut by_ep: HashMap<(String, String), Vec<&CallRow>> = HashMap::new();
    for c in &served {
        by_ep
            .entry((c.method.clone(), template(&c.path)))
            .or_default()
            .push(c);
    }
    let dst_kfl = served
        .first()
        .map(|c| c.dst.kfl("dst"))
        .unwrap_or_else(|| side_kfl("dst", name));
    let mut endpoints: Vec<EndpointHealth> = by_ep
        .into_iter()
        .map(|((method, path), cs)| {
            let l = latencies(&cs);
            let errors = cs.iter().filter(|c| c.failed()).count() as u64;
            let mut status_5xx = BTreeMap::new();
            for c in cs
                .iter()
                .filter(|c| c.has_response && c.is_http() && c.status >= 500)
            {
                *status_5xx.entry(c.status.to_string()).or_insert(0) += 1;
            }
            let ep = util::endpoint_kfl(&method, &path);
            let failing: Vec<&CallRow> = cs.iter().copied().filter(|c| c.failed()).collect();
            let evidence = if failing.is_empty() {
                call_evidence(util::and(&[&dst_kfl, &ep]), cs.iter().copied())
            } else {
                let mut e = call_evidence(
                    util::and(&[&dst_kfl, &ep, "(status_code >= 500 || !has_response)"]),
                    failing.iter().copied(),
                );
                e.total = errors;
                e
            };
            EndpointHealth {
                calls: cs.len() as u64,
                errors,
                error_rate: share(errors, cs.len() as u64),
                status_5xx,
                p50_us: quantile(&l, 0.5),
                p95_us: quantile(&l, 0.95),
                p99_us: quantile(&l, 0.99),
                method,
                path,
                evidence,
            }
        })
        .collect();
    endpoints.sort_by(|a, b| {
        b.errors
            .cmp(&a.errors)
            .then(b.p95_us.cmp(&a.p95_us))
            .then(a.path.cmp(&b.path))
    });
    if endpoints.len() > limit {
        endpoints.truncate(limit);
        truncated = true;
    }
    let (callers, cut1) = peers(served.iter().map(|c| (&c.src, *c)), limit);
    let (callees, cut2) = peers(made.iter().map(|c| (&c.dst, *c)), limit);
    truncated |= cut1 || cut2;

    let window = Window {
        from: util::time(
            window
                .from_ns
                .unwrap_or_else(|| loaded.rows.first().map_or(0, |c| c.ts)),
        ),
        to: util::time(
            window
                .to_ns
                .unwrap_or_else(|| loaded.rows.iter().map(CallRow::end_ns).max().unwrap_or(0)),
        ),
    };
    let share_2xx = share(status.s2xx, calls);
    let summary = summary(
        name,
        calls,
        &latency_us,
        &tcp_connect_us,
        &status,
        share_2xx,
        &endpoints,
        &callers,
        &callees,
    );
    Ok(ServiceReport {
        service: name.to_owned(),
        window,
        calls,
        latency_us,
        tcp_connect_us,
        status,
        share_2xx,
        endpoints,
        callers,
        callees,
        summary,
        truncated,
    })
}

#[allow(clippy::too_many_arguments)]
fn summary(
    name: &str,
    calls: u64,
    lat: &Latency,
    tcp: &TcpConnect,
    status: &StatusMix,
    share_2xx: f64,
    endpoints: &[EndpointHealth],
    callers: &[Peer],
    callees: &[Peer],
) -> String {
    if calls == 0 && callees.is_empty() {
        return format!(
            "{name}: no calls to or from it in this window; check the name with `trawl stats DIR 'http' --by dst.service.name,dst.name`"
        );
    }
    let mut s = format!(
        "{name} served {calls} calls: p50 {}, p95 {}, p99 {}; {} 2xx",
        dur(lat.p50),
        dur(lat.p95),
        dur(lat.p99),
        pct(share_2xx)
    );
    if status.s5xx + status.failed > 0 {
        s.push_str(&format!(", {} 5xx, {} failed", status.s5xx, status.failed));
    }
    if tcp.samples > 0 {
        s.push_str(&format!(
            "; TCP connect p50 {} over {} connections",
            dur(tcp.p50),
            tcp.samples
        ));
    }
    s.push('.');
    if let Some(e) = endpoints.iter().find(|e| e.errors > 0) {
        s.push_str(&format!(
            " Worst endpoint: {} {} fails {} of {} calls ({}), p95 {}.",
            e.method,
            e.path,
            e.errors,
            e.calls,
            pct(e.error_rate),
            dur(e.p95_us)
        ));
    }
    if !callers.is_empty() {
        let names: Vec<&str> = callers.iter().take(3).map(|p| p.name.as_str()).collect();
        s.push_str(&format!(" Called by {}.", names.join(", ")));
    }
    if !callees.is_empty() {
        let names: Vec<String> = callees
            .iter()
            .take(4)
            .map(|p| {
                if p.errors > 0 {
                    format!("{} ({} errors)", p.name, p.errors)
                } else {
                    p.name.clone()
                }
            })
            .collect();
        s.push_str(&format!(" Calls {}.", names.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::shop;

    #[test]
    fn frontend_health_has_its_endpoints_callers_and_callees() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = shop(tmp.path());
        let r = analyze_service(
            &dir,
            &ServiceQuery {
                service: "frontend".into(),
                ..ServiceQuery::default()
            },
        )
        .unwrap();
        // 120 checkouts, 120 product pages, 15 cart tries.
        assert_eq!(r.calls, 255);
        assert_eq!(r.status.s5xx, 20 + 15);
        assert_eq!(r.status.s2xx, 220);
        assert!((r.share_2xx - 220.0 / 255.0).abs() < 1e-9);
        // Worst first: the checkout (20 errors), then the cart (15).
        let eps: Vec<(&str, &str, u64)> = r
            .endpoints
            .iter()
            .map(|e| (e.method.as_str(), e.path.as_str(), e.errors))
            .collect();
        assert_eq!(
            eps,
            [
                ("POST", "/api/v1/checkout", 20),
                ("POST", "/api/v1/cart", 15),
                ("GET", "/api/v1/products/{id}", 0)
            ]
        );
        assert_eq!(r.endpoints[0].status_5xx.get("503"), Some(&20));
        assert_eq!(r.endpoints[0].p50_us, 220_000);
        let callers: Vec<&str> = r.callers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(callers, ["loadgen", "cart"]);
        assert_eq!(r.callees.len(), 1);
        assert_eq!(
            (r.callees[0].name.as_str(), r.callees[0].errors),
            ("payment", 20)
        );
        assert!(
            r.summary.contains("frontend served 255 calls"),
            "{}",
            r.summary
        );
        // The endpoint's evidence selects its failing calls.
        let page = trawl_index::kfl::query(
            &dir,
            &r.endpoints[1].evidence.kfl,
            &trawl_index::kfl::QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(page.total_matching, 15);
        // An unknown name is an empty report, not an error; no name is one.
        let r = analyze_service(
            &dir,
            &ServiceQuery {
                service: "nope".into(),
                ..ServiceQuery::default()
            },
        )
        .unwrap();
        assert_eq!(r.calls, 0);
        assert!(analyze_service(&dir, &ServiceQuery::default()).is_err());
    }
}
