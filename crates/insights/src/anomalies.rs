//! `find_anomalies`: the detectors, each a plain pass over the calls and
//! flows of a scope and window, each finding citing its calls or flows.
//!
//! - error bursts: 5xx or failed calls of a server endpoint, grouped while
//!   less than [`BURST_GAP_NS`] apart;
//! - latency shifts: a single change point per server endpoint on the log
//!   of answered calls' latencies, in call order: the split where the
//!   medians of the [`shift_window`] calls on each side differ most,
//!   refined to the split of least absolute deviation, kept when the
//!   level moves by [`SHIFT_FACTOR`] and stays there;
//! - retry storms: a client trying the same method and path again within
//!   [`RETRY_WINDOW_NS`] of a failed try's end, [`MIN_TRIES`] or more tries
//!   in a row;
//! - connection churn: new TCP connections per minute to a server with few
//!   calls each;
//! - resets: connections with an RST per client and server;
//! - pool exhaustion: fast 5xx a server answers without calling anything,
//!   far below its usual latency, beside slow failures;
//! - DNS failures: NXDOMAIN, SERVFAIL, REFUSED or unanswered queries per
//!   name, leaving out the search-path expansions of names that resolved.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::load::{self, CallRow, FlowRow};
use crate::util::{
    self, call_evidence, clock, dur, flow_evidence, pct, quote, share, template, time,
};
use crate::{Anomalies, AnomalyQuery, Finding, InsightsError, Subject, TimeRange, check_limit};

/// Failures of one endpoint further apart than this are separate bursts:
/// a burst is an episode, and half a minute of quiet ends one.
pub const BURST_GAP_NS: i64 = 30_000_000_000;

/// Fewest failures that make a burst (fewer are noise, not a pattern).
pub const MIN_BURST: usize = 3;

/// How far a latency level must move (up or down) to be a shift: a
/// doubling is past the jitter of a healthy service and well inside the
/// 20x of a dependency that stalls.
pub const SHIFT_FACTOR: f64 = 2.0;

/// Smallest move of a median latency worth reporting: below a
/// millisecond nobody waits on it (a DNS server going from 30 to 70 µs).
pub const MIN_SHIFT_US: u64 = 1_000;

/// Fewest answered calls on each side of a change point.
pub const MIN_SHIFT_CALLS: usize = 5;

/// Longest gap between a failed try's end and the next try of the same
/// client, method and path for it to count as a retry: client retry loops
/// back off for tens of ms; independent requests that close together are
/// rare at the rates a retry storm matters at.
pub const RETRY_WINDOW_NS: i64 = 100_000_000;

/// Fewest tries in a row that make a storm (a first try and two retries).
pub const MIN_TRIES: usize = 3;

/// New connections per minute to one server above which churn is reported
/// (one a second), when they live at most [`CHURN_MAX_LIFETIME_US`].
pub const CHURN_MIN_PER_MINUTE: f64 = 60.0;

/// Median connection lifetime at or below which opening connections is
/// churn (a connection per request or query) rather than load: pooled
/// connections live for minutes.
pub const CHURN_MAX_LIFETIME_US: u64 = 5_000_000;

/// A 5xx faster than this share of the endpoint's usual (successful) p50
/// did not do the work: it was refused, typically by an exhausted pool.
pub const FAST_FAILURE_SHARE: f64 = 0.2;

/// Calls on each side of a candidate change point: a tenth of the
/// endpoint's calls, at least [`MIN_SHIFT_CALLS`], at most 50.
pub fn shift_window(n: usize) -> usize {
    (n / 10).clamp(MIN_SHIFT_CALLS, 50)
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    }
}

fn metrics(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Time bounds as KFL, for evidence that covers one episode.
pub(crate) fn between(first: i64, last: i64) -> String {
    format!(
        "timestamp >= timestamp({}) && timestamp <= timestamp({})",
        quote(&time(first)),
        quote(&time(last.max(first)))
    )
}

/// The anomalies of a scope (KFL over calls) and window, most severe first.
pub fn find_anomalies(dir: &Path, q: &AnomalyQuery) -> Result<Anomalies, InsightsError> {
    let limit = check_limit(q.limit)?;
    let window = TimeRange::parse(q.from.as_deref(), q.to.as_deref())?;
    let calls = load::calls(dir, &q.scope, &window)?;
    let mut flows = load::flows(dir, &window)?;
    if !q.scope.trim().is_empty() {
        // Flows of the servers the scoped calls went to.
        let servers: HashSet<&str> = calls.rows.iter().map(|c| c.dst.ip.as_str()).collect();
        flows.rows.retain(|f| servers.contains(f.dst.ip.as_str()));
    }
    let mut findings = Vec::new();
    findings.extend(error_bursts(&calls.rows));
    findings.extend(latency_shifts(&calls.rows, &flows.rows));
    findings.extend(retry_storms(&calls.rows, &flows.rows));
    findings.extend(churn(&flows.rows, &window));
    findings.extend(resets(&flows.rows));
    findings.extend(pool_exhaustion(&calls.rows));
    findings.extend(dns_failures(&calls.rows));
    findings.sort_by(|a, b| {
        severity_rank(&a.severity)
            .cmp(&severity_rank(&b.severity))
            .then(b.evidence.total.cmp(&a.evidence.total))
            .then(a.first.cmp(&b.first))
    });
    let truncated = findings.len() > limit || calls.truncated || flows.truncated;
    let total = findings.len();
    findings.truncate(limit);
    let summary = summarize(&findings, total, calls.rows.len(), flows.rows.len());
    Ok(Anomalies {
        findings,
        truncated,
        calls_analyzed: calls.rows.len() as u64,
        flows_analyzed: flows.rows.len() as u64,
        summary,
    })
}

fn summarize(findings: &[Finding], total: usize, calls: usize, flows: usize) -> String {
    if findings.is_empty() {
        return format!("No anomalies in {calls} calls and {flows} flows.");
    }
    let high = findings.iter().filter(|f| f.severity == "high").count();
    let mut s = format!("{total} findings in {calls} calls and {flows} flows ({high} high)",);
    if total > findings.len() {
        s.push_str(&format!(", the first {} shown", findings.len()));
    }
    s.push_str(": ");
    let titles: Vec<&str> = findings.iter().take(5).map(|f| f.title.as_str()).collect();
    s.push_str(&titles.join("; "));
    s.push('.');
    s
}

/// Calls grouped by server and endpoint (path template), in time order.
fn by_endpoint(
    calls: &[CallRow],
    keep: impl Fn(&CallRow) -> bool,
) -> BTreeMap<(String, String, String), Vec<&CallRow>> {
    let mut g: BTreeMap<(String, String, String), Vec<&CallRow>> = BTreeMap::new();
    for c in calls.iter().filter(|c| keep(c)) {
        g.entry((
            c.dst.display().to_owned(),
            c.method.clone(),
            template(&c.path),
        ))
        .or_default()
        .push(c);
    }
    g
}

fn endpoint_subject(server: &str, method: &str, path: &str) -> Subject {
    Subject {
        client: None,
        server: Some(server.to_owned()),
        method: (!method.is_empty()).then(|| method.to_owned()),
        path: (!path.is_empty()).then(|| path.to_owned()),
    }
}

fn endpoint_name(method: &str, path: &str) -> String {
    format!("{method} {path}").trim().to_owned()
}

fn failure_kfl(c: &CallRow) -> &'static str {
    if c.is_http() {
        "status_code >= 500 || !has_response"
    } else {
        "status_code != 0 || !has_response"
    }
}

pub(crate) fn error_bursts(calls: &[CallRow]) -> Vec<Finding> {
    let mut out = Vec::new();
    for ((server, method, path), cs) in by_endpoint(calls, |c| c.protocol != "dns") {
        let failing: Vec<&CallRow> = cs.iter().copied().filter(|c| c.failed()).collect();
        let mut start = 0;
        while start < failing.len() {
            let mut end = start + 1;
            while end < failing.len()
                && failing.get(end).map(|c| c.ts).unwrap_or(0)
                    - failing.get(end - 1).map(|c| c.ts).unwrap_or(0)
                    <= BURST_GAP_NS
            {
                end += 1;
            }
            let burst = failing.get(start..end).unwrap_or_default();
            start = end;
            let (Some(first), Some(last)) = (burst.first(), burst.last()) else {
                continue;
            };
            if burst.len() < MIN_BURST {
                continue;
            }
            let during = cs
                .iter()
                .filter(|c| c.ts >= first.ts && c.ts <= last.ts)
                .count();
            let sh = share(burst.len() as u64, during as u64);
            let mut status: BTreeMap<String, u64> = BTreeMap::new();
            for c in burst {
                let k = if c.has_response {
                    c.status.to_string()
                } else {
                    "no response".into()
                };
                *status.entry(k).or_insert(0) += 1;
            }
            let severity = if burst.len() >= 20 && sh >= 0.1 {
                "high"
            } else if burst.len() >= 5 || sh >= 0.05 {
                "medium"
            } else {
                "low"
            };
            let codes: Vec<String> = status.iter().map(|(k, n)| format!("{n}× {k}")).collect();
            let ep = endpoint_name(&method, &path);
            let kfl = util::and(&[
                &first.dst.kfl("dst"),
                &util::endpoint_kfl(&method, &path),
                failure_kfl(first),
                &between(first.ts, last.ts),
            ]);
            out.push(Finding {
                kind: "error_burst".into(),
                severity: severity.into(),
                title: format!("errors on {server} {ep}"),
                summary: format!(
                    "{server} {ep}: {} failed calls ({}) of {during} ({}) from {} to {}.",
                    burst.len(),
                    codes.join(", "),
                    pct(sh),
                    clock(first.ts),
                    clock(last.ts)
                ),
                first: time(first.ts),
                last: time(last.ts),
                subject: endpoint_subject(&server, &method, &path),
                metrics: metrics(json!({
                    "count": burst.len(), "calls": during, "share": sh, "status": status,
                })),
                evidence: call_evidence(kfl, burst.iter().copied()),
            });
        }
    }
    out
}

fn median_of(xs: &[f64]) -> f64 {
    // Selection, not a sort: this runs for every split of every endpoint.
    let mut v = xs.to_vec();
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let (_, hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        return hi;
    }
    let lo = v
        .get(..n / 2)
        .unwrap_or_default()
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(hi);
    (lo + hi) / 2.0
}

fn l1(xs: &[f64], m: f64) -> f64 {
    xs.iter().map(|x| (x - m).abs()).sum()
}

/// `out[j]` = the median of `xs[j..j + w]`, for every j: a sorted copy of
/// the window, one value out and one in per step (a binary search and a
/// short move each), instead of a selection per window.
fn sliding_medians(xs: &[f64], w: usize) -> Vec<f64> {
    let n = xs.len();
    if w == 0 || n < w {
        return Vec::new();
    }
    let mut sorted: Vec<f64> = xs.get(..w).unwrap_or_default().to_vec();
    sorted.sort_by(f64::total_cmp);
    let med = |s: &[f64]| -> f64 {
        let k = s.len();
        let hi = s.get(k / 2).copied().unwrap_or(0.0);
        if k % 2 == 1 {
            hi
        } else {
            (s.get(k / 2 - 1).copied().unwrap_or(hi) + hi) / 2.0
        }
    };
    let mut out = Vec::with_capacity(n - w + 1);
    out.push(med(&sorted));
    for j in w..n {
        let (Some(&gone), Some(&new)) = (xs.get(j - w), xs.get(j)) else {
            break;
        };
        let i = sorted.partition_point(|v| v.total_cmp(&gone).is_lt());
        if i < sorted.len() {
            sorted.remove(i);
        }
        let k = sorted.partition_point(|v| v.total_cmp(&new).is_lt());
        sorted.insert(k, new);
        out.push(med(&sorted));
    }
    out
}

/// The change point of a latency series (in call order): the index of the
/// first call at the new level, or `None` when the level does not move by
/// [`SHIFT_FACTOR`] and stay.
pub(crate) fn change_point(lat_us: &[i64]) -> Option<usize> {
    let n = lat_us.len();
    let w = shift_window(n);
    if n < 2 * w {
        return None;
    }
    let x: Vec<f64> = lat_us.iter().map(|&v| (v.max(1) as f64).ln()).collect();
    let win = |a: usize, b: usize| x.get(a..b).unwrap_or_default();
    // The median of every window of w calls, in one sliding pass (the
    // split at i compares the window starting at i with the one at i - w).
    let m = sliding_medians(&x, w);
    let diffs: Vec<(usize, f64)> = (w..=n - w)
        .map(|i| {
            let (r, l) = (m.get(i), m.get(i - w));
            (i, r.copied().unwrap_or(0.0) - l.copied().unwrap_or(0.0))
        })
        .collect();
    let (_, best) = diffs
        .iter()
        .copied()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
    if best.abs() < SHIFT_FACTOR.ln() {
        return None;
    }
    // Among the splits nearly as good, the one the two levels fit best,
    // over one span of calls for all of them (so that every candidate
    // pays for the same outliers).
    let near: Vec<usize> = diffs
        .iter()
        .filter(|(_, d)| d.signum() == best.signum() && d.abs() >= 0.8 * best.abs())
        .map(|&(i, _)| i)
        .collect();
    let lo = near.first()?.saturating_sub(w);
    let hi = (near.last()? + w).min(n);
    let (at, _) = near
        .iter()
        .map(|&i| {
            let (l, r) = (win(lo, i), win(i, hi));
            (i, l1(l, median_of(l)) + l1(r, median_of(r)))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    // It stays: three windows after against three before.
    let before = median_of(win(at.saturating_sub(3 * w), at));
    let after = median_of(win(at, (at + 3 * w).min(n)));
    ((after - before).signum() == best.signum()
        && (after - before).abs() >= 0.75 * SHIFT_FACTOR.ln())
    .then_some(at)
}

/// Latency of a call in µs: its elapsed time, or for an unanswered call
/// the time until its client gave up (a lower bound, and the one that
/// shows a stalled dependency); `None` when unknown.
pub(crate) fn latency_us(c: &CallRow, ends: &HashMap<(String, i64), i64>) -> Option<i64> {
    if c.has_response {
        (c.elapsed_us > 0).then_some(c.elapsed_us)
    } else if c.one_way() {
        None
    } else {
        let took = (call_end(c, ends) - c.ts) / 1000;
        (took > 0).then_some(took)
    }
}

/// Shifts of calls whose `at` lie closer than this are one episode seen
/// at several hops; the hop that calls none of the others is reported, the
/// rest are named in it.
pub const SHIFT_MERGE_NS: i64 = 2_000_000_000;

pub(crate) fn latency_shifts(calls: &[CallRow], flows: &[FlowRow]) -> Vec<Finding> {
    let ends = ends(flows);
    let mut found: Vec<(i64, bool, Finding)> = Vec::new();
    for ((server, method, path), cs) in by_endpoint(calls, |c| latency_us(c, &ends).is_some()) {
        let lat: Vec<i64> = cs.iter().filter_map(|c| latency_us(c, &ends)).collect();
        let Some(at) = change_point(&lat) else {
            continue;
        };
        let w = shift_window(lat.len());
        let mut before: Vec<i64> = lat
            .get(at.saturating_sub(3 * w)..at)
            .unwrap_or_default()
            .to_vec();
        let mut after: Vec<i64> = lat
            .get(at..(at + 3 * w).min(lat.len()))
            .unwrap_or_default()
            .to_vec();
        let (b, a) = (util::median(&mut before), util::median(&mut after));
        let factor = a as f64 / b.max(1) as f64;
        if a.abs_diff(b) < MIN_SHIFT_US {
            continue;
        }
        let (Some(first), Some(last)) = (cs.get(at), cs.last()) else {
            continue;
        };
        let up = factor > 1.0;
        let severity = if up && factor >= 10.0 {
            "high"
        } else if up && factor >= 4.0 {
            "medium"
        } else {
            "low"
        };
        let ep = endpoint_name(&method, &path);
        let kfl = util::and(&[
            &first.dst.kfl("dst"),
            &util::endpoint_kfl(&method, &path),
            &format!("timestamp >= timestamp({})", quote(&time(first.ts))),
        ]);
        let after_calls = cs.get(at..).unwrap_or_default();
        found.push((first.ts, up, Finding {
            kind: "latency_shift".into(),
            severity: severity.into(),
            title: format!(
                "latency of {server} {ep} {} {factor:.1}x",
                if up { "up" } else { "down" }
            ),
            summary: format!(
                "{server} {ep}: median latency {} → {} ({factor:.1}x) at {}, over {} calls before and {} after.",
                dur(b),
                dur(a),
                clock(first.ts),
                at,
                lat.len() - at
            ),
            first: time(first.ts),
            last: time(last.ts),
            subject: endpoint_subject(&server, &method, &path),
            metrics: metrics(json!({
                "at": time(first.ts), "before_p50_us": b, "after_p50_us": a,
                "factor": factor, "before_calls": at, "after_calls": lat.len() - at,
            })),
            evidence: call_evidence(kfl, after_calls.iter().copied()),
        }));
    }
    merge_shifts(found, calls)
}

/// Folds shifts of one episode (same direction, `at` within
/// [`SHIFT_MERGE_NS`] of the previous one) into the shifts of the hops
/// that call none of the episode's other servers: upstream callers slow
/// down because they wait on them.
fn merge_shifts(mut found: Vec<(i64, bool, Finding)>, calls: &[CallRow]) -> Vec<Finding> {
    let edges: HashSet<(&str, &str)> = calls
        .iter()
        .map(|c| (c.src.display(), c.dst.display()))
        .collect();
    found.sort_by_key(|(at, _, _)| *at);
    let mut episodes: Vec<Vec<(i64, bool, Finding)>> = Vec::new();
    for f in found {
        // The open episode of the same direction, if this one is close.
        let open = episodes
            .iter_mut()
            .rev()
            .find(|ep| ep.last().is_some_and(|(_, up, _)| *up == f.1));
        match open {
            Some(ep)
                if ep
                    .last()
                    .is_some_and(|(at, _, _)| f.0 - at <= SHIFT_MERGE_NS) =>
            {
                ep.push(f)
            }
            _ => episodes.push(vec![f]),
        }
    }
    let mut out = Vec::new();
    for ep in episodes {
        let servers: Vec<String> = ep
            .iter()
            .filter_map(|(_, _, f)| f.subject.server.clone())
            .collect();
        let calls_other = |s: &str| {
            servers
                .iter()
                .any(|o| o != s && edges.contains(&(s, o.as_str())))
        };
        let (roots, upstream): (Vec<_>, Vec<_>) = ep
            .into_iter()
            .partition(|(_, _, f)| f.subject.server.as_deref().is_none_or(|s| !calls_other(s)));
        let also: Vec<String> = upstream
            .iter()
            .map(|(_, _, f)| {
                format!(
                    "{} {}",
                    f.subject.server.as_deref().unwrap_or_default(),
                    endpoint_name(
                        f.subject.method.as_deref().unwrap_or_default(),
                        f.subject.path.as_deref().unwrap_or_default()
                    )
                )
            })
            .collect();
        for (_, _, mut f) in roots {
            if !also.is_empty() {
                f.summary.push_str(&format!(
                    " Seen upstream too, at the same time: {}.",
                    also.join(", ")
                ));
                f.metrics.insert("upstream".into(), json!(also));
            }
            out.push(f);
        }
    }
    out
}

/// When an unanswered call ended: its connection's last packet (the RST or
/// FIN the client gave up with), else its start.
pub(crate) fn ends(flows: &[FlowRow]) -> HashMap<(String, i64), i64> {
    flows
        .iter()
        .map(|f| ((f.node.clone(), f.conn_id), f.last_ts))
        .collect()
}

pub(crate) fn call_end(c: &CallRow, ends: &HashMap<(String, i64), i64>) -> i64 {
    if c.has_response {
        c.end_ns()
    } else {
        ends.get(&c.flow_key())
            .copied()
            .filter(|&e| e > c.ts)
            .unwrap_or(c.ts)
    }
}

/// Incoming calls scanned back per containment check: a server with more
/// calls in flight than this at once is not waiting on one retry loop.
const MAX_IN_FLIGHT_SCAN: usize = 10_000;

pub(crate) fn retry_storms(calls: &[CallRow], flows: &[FlowRow]) -> Vec<Finding> {
    let ends = ends(flows);
    // Calls each workload served, to tell its own retries (two tries
    // inside one call it served) from the tries of its callers passing
    // through it (each inside a call of its own).
    let mut incoming: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for c in calls {
        incoming
            .entry(c.dst.display())
            .or_default()
            .push((c.ts, call_end(c, &ends)));
    }
    for v in incoming.values_mut() {
        v.sort_unstable();
    }
    // The served call a try belongs to: the latest one that started
    // before it and was still running when it ended.
    let parent = |client: &str, c: &CallRow| -> Option<usize> {
        let v = incoming.get(client)?;
        let end = call_end(c, &ends);
        let i = v.partition_point(|(ts, _)| *ts <= c.ts);
        (0..i)
            .rev()
            .take(MAX_IN_FLIGHT_SCAN)
            .find(|&j| v.get(j).is_some_and(|(_, e)| *e >= end))
    };
    let same_request = |client: &str, a: &CallRow, b: &CallRow| -> bool {
        if !incoming.contains_key(client) {
            // Serves nothing (a load generator, a job): every retry is its own.
            return true;
        }
        // `b` is a retry of the chain that `a` started when the call `a`
        // served was still running after `b` ended (cart-service's one
        // request spans its three tries; checkout-service's call for try
        // 1 ended with try 1). `a` is a chain's first try: its parent is
        // the call that started just before it, not a later concurrent one.
        let end_b = call_end(b, &ends);
        parent(client, a)
            .and_then(|j| incoming.get(client).and_then(|v| v.get(j)))
            .is_some_and(|(_, e)| *e >= end_b)
    };
    let mut groups: BTreeMap<(String, String, String, String), Vec<&CallRow>> = BTreeMap::new();
    for c in calls
        .iter()
        .filter(|c| c.protocol != "dns" && !c.method.is_empty())
    {
        groups
            .entry((
                c.src.display().to_owned(),
                c.dst.display().to_owned(),
                c.method.clone(),
                c.path.clone(),
            ))
            .or_default()
            .push(c);
    }
    // Storms per (client, server, method, path template): one finding for
    // all of a client's storms on one endpoint.
    let mut storms: BTreeMap<(String, String, String, String), Vec<Vec<&CallRow>>> =
        BTreeMap::new();
    for ((client, server, method, path), cs) in groups {
        // Chains of tries: each try attaches to the open chain whose last
        // try failed and ended at most RETRY_WINDOW_NS before it.
        let mut chains: Vec<Vec<&CallRow>> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for c in cs {
            let mut pick: Option<(usize, i64)> = None;
            for &ci in &open {
                let (Some(first), Some(last)) = (
                    chains.get(ci).and_then(|ch| ch.first()),
                    chains.get(ci).and_then(|ch| ch.last()),
                ) else {
                    continue;
                };
                let end = call_end(last, &ends);
                let gap = c.ts - end;
                if last.failed()
                    && (0..=RETRY_WINDOW_NS).contains(&gap)
                    && pick.is_none_or(|(_, e)| end > e)
                    && same_request(c.src.display(), first, c)
                {
                    pick = Some((ci, end));
                }
            }
            match pick {
                Some((ci, _)) => {
                    if let Some(ch) = chains.get_mut(ci) {
                        ch.push(c);
                    }
                }
                None => {
                    chains.push(vec![c]);
                    open.push(chains.len() - 1);
                }
            }
            // Forget chains that can no longer grow.
            open.retain(|&ci| {
                chains
                    .get(ci)
                    .and_then(|ch| ch.last())
                    .is_some_and(|l| call_end(l, &ends) + RETRY_WINDOW_NS >= c.ts)
            });
        }
        let long: Vec<Vec<&CallRow>> = chains
            .into_iter()
            .filter(|ch| ch.len() >= MIN_TRIES)
            .collect();
        if !long.is_empty() {
            storms
                .entry((client, server, method, template(&path)))
                .or_default()
                .extend(long);
        }
    }
    let mut out = Vec::new();
    for ((client, server, method, path), chains) in storms {
        let bursts = chains.len();
        let max_tries = chains.iter().map(Vec::len).max().unwrap_or(0);
        let tries: usize = chains.iter().map(Vec::len).sum();
        let first = chains
            .iter()
            .filter_map(|c| c.first())
            .map(|c| c.ts)
            .min()
            .unwrap_or(0);
        let last = chains
            .iter()
            .filter_map(|c| c.last())
            .map(|c| c.ts)
            .max()
            .unwrap_or(0);
        let severity = if bursts >= 10 {
            "high"
        } else if bursts >= 3 {
            "medium"
        } else {
            "low"
        };
        let Some(sample) = chains.first().and_then(|c| c.first()) else {
            continue;
        };
        let ep = endpoint_name(&method, &path);
        let kfl = util::and(&[
            &sample.src.kfl("src"),
            &sample.dst.kfl("dst"),
            &util::endpoint_kfl(&method, &path),
            &between(first, last),
        ]);
        let mut ev = call_evidence(kfl, chains.iter().flatten().copied());
        ev.total = tries as u64;
        out.push(Finding {
            kind: "retry_storm".into(),
            severity: severity.into(),
            title: format!("retry storm from {client} to {server} {ep}"),
            summary: format!(
                "{client} retried {ep} on {server} in {bursts} bursts of {MIN_TRIES}+ tries (up to {max_tries}, {tries} tries in all), each try within {} ms of the previous one failing, {} to {}.",
                RETRY_WINDOW_NS / 1_000_000,
                clock(first),
                clock(last)
            ),
            first: time(first),
            last: time(last),
            subject: Subject {
                client: Some(client.clone()),
                ..endpoint_subject(&server, &method, &path)
            },
            metrics: metrics(json!({
                "bursts": bursts, "max_tries": max_tries, "tries": tries,
                "window_ms": RETRY_WINDOW_NS / 1_000_000,
            })),
            evidence: ev,
        });
    }
    out
}

pub(crate) fn churn(flows: &[FlowRow], window: &crate::TimeRange) -> Vec<Finding> {
    let opened: Vec<&FlowRow> = flows
        .iter()
        .filter(|f| f.tcp && f.handshake == "complete")
        .filter(|f| {
            window.from_ns.is_none_or(|t| f.ts >= t) && window.to_ns.is_none_or(|t| f.ts < t)
        })
        .collect();
    let (Some(t0), Some(t1)) = (
        window.from_ns.or_else(|| opened.iter().map(|f| f.ts).min()),
        window.to_ns.or_else(|| opened.iter().map(|f| f.ts).max()),
    ) else {
        return Vec::new();
    };
    // At least a minute, so that a short window does not inflate rates.
    let minutes = ((t1 - t0) as f64 / 60e9).max(1.0);
    let mut by: BTreeMap<String, Vec<&FlowRow>> = BTreeMap::new();
    for f in &opened {
        by.entry(f.dst.display().to_owned()).or_default().push(f);
    }
    let rates: Vec<f64> = by.values().map(|v| v.len() as f64 / minutes).collect();
    let baseline = median_of(&rates);
    let mut out = Vec::new();
    for (server, fs) in by {
        let n = fs.len();
        let per_minute = n as f64 / minutes;
        let calls: i64 = fs.iter().map(|f| f.calls).sum();
        let cpc = calls as f64 / n as f64;
        let mut lifetimes: Vec<i64> = fs.iter().map(|f| (f.last_ts - f.ts) / 1000).collect();
        let lifetime_p50 = util::median(&mut lifetimes);
        if per_minute < CHURN_MIN_PER_MINUTE || lifetime_p50 > CHURN_MAX_LIFETIME_US {
            continue;
        }
        let mut per_min: BTreeMap<i64, u64> = BTreeMap::new();
        for f in &fs {
            *per_min.entry((f.ts - t0) / 60_000_000_000).or_insert(0) += 1;
        }
        let peak = per_min.values().copied().max().unwrap_or(0);
        let mut clients: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &fs {
            *clients.entry(f.src.display()).or_insert(0) += 1;
        }
        let client = clients
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(c, _)| (*c).to_owned());
        let severity = if per_minute >= 600.0 {
            "high"
        } else if per_minute >= 120.0 {
            "medium"
        } else {
            "low"
        };
        let (Some(first), Some(last)) = (fs.first(), fs.last()) else {
            continue;
        };
        let cond = format!(
            "tcp AND handshake = 'complete' AND {}",
            first.dst.sql("dst")
        );
        out.push(Finding {
            kind: "connection_churn".into(),
            severity: severity.into(),
            title: format!("connection churn to {server}"),
            summary: format!(
                "{n} new TCP connections to {server} ({per_minute:.0} a minute, peak {peak}; the median server gets {baseline:.0}), each open {} (p50) for {cpc:.1} calls{}.",
                dur(lifetime_p50),
                client.as_deref().map(|c| format!(", mostly from {c}")).unwrap_or_default()
            ),
            first: time(first.ts),
            last: time(last.ts),
            subject: Subject {
                client,
                server: Some(server.clone()),
                method: None,
                path: None,
            },
            metrics: metrics(json!({
                "new_per_minute": per_minute, "peak_per_minute": peak,
                "baseline_per_minute": baseline, "calls_per_connection": cpc, "connections": n,
                "lifetime_p50_us": lifetime_p50,
            })),
            evidence: flow_evidence(cond, fs.iter().map(|f| f.id())),
        });
    }
    out
}

pub(crate) fn resets(flows: &[FlowRow]) -> Vec<Finding> {
    let mut by: BTreeMap<(String, String), Vec<&FlowRow>> = BTreeMap::new();
    for f in flows.iter().filter(|f| f.tcp && f.rst_count > 0) {
        by.entry((f.src.display().to_owned(), f.dst.display().to_owned()))
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for ((client, server), fs) in by {
        let n = fs.len();
        let segments: i64 = fs.iter().map(|f| f.rst_count).sum();
        // The RST is the last thing on a reset connection.
        let first = fs.iter().map(|f| f.last_ts).min().unwrap_or(0);
        let last = fs.iter().map(|f| f.last_ts).max().unwrap_or(0);
        let mut by_side: BTreeMap<String, u64> = BTreeMap::new();
        for f in &fs {
            let who = if f.closed_by.is_empty() {
                "unknown"
            } else {
                f.closed_by.as_str()
            };
            *by_side.entry(who.to_owned()).or_insert(0) += 1;
        }
        let severity = if n >= 20 {
            "high"
        } else if n >= 5 {
            "medium"
        } else {
            "low"
        };
        let Some(sample) = fs.first() else {
            continue;
        };
        let cond = format!(
            "rst_count > 0 AND {} AND {}",
            sample.src.sql("src"),
            sample.dst.sql("dst")
        );
        let sides: Vec<String> = by_side
            .iter()
            .map(|(k, v)| format!("{v} by the {k}"))
            .collect();
        out.push(Finding {
            kind: "resets".into(),
            severity: severity.into(),
            title: format!("connection resets {client} → {server}"),
            summary: format!(
                "{n} connections from {client} to {server} ended with an RST ({segments} RST segments; closed {}), first at {}, last at {}.",
                sides.join(", "),
                clock(first),
                clock(last)
            ),
            first: time(first),
            last: time(last),
            subject: Subject {
                client: Some(client.clone()),
                server: Some(server.clone()),
                method: None,
                path: None,
            },
            metrics: metrics(json!({
                "count": n, "first": time(first), "connections": n,
                "rst_segments": segments, "reset_by": by_side,
            })),
            evidence: flow_evidence(cond, fs.iter().map(|f| f.id())),
        });
    }
    out
}

pub(crate) fn pool_exhaustion(calls: &[CallRow]) -> Vec<Finding> {
    // Outgoing calls per client name, in time order, to tell a failure a
    // server passed on (it called something) from one it made itself.
    let mut outgoing: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for c in calls {
        outgoing
            .entry(c.src.display())
            .or_default()
            .push((c.ts, c.end_ns()));
    }
    let calls_during = |who: &str, from: i64, to: i64| -> bool {
        outgoing.get(who).is_some_and(|v| {
            let i = v.partition_point(|(ts, _)| *ts < from);
            v.get(i).is_some_and(|(ts, _)| *ts <= to)
        })
    };
    let mut out = Vec::new();
    for ((server, method, path), cs) in by_endpoint(calls, CallRow::is_http) {
        let mut ok: Vec<i64> = cs
            .iter()
            .filter(|c| c.has_response && (200..400).contains(&c.status) && c.elapsed_us > 0)
            .map(|c| c.elapsed_us)
            .collect();
        if ok.len() < MIN_SHIFT_CALLS {
            continue;
        }
        let usual = util::median(&mut ok);
        let cut = (usual as f64 * FAST_FAILURE_SHARE) as i64;
        let five: Vec<&CallRow> = cs
            .iter()
            .copied()
            .filter(|c| c.has_response && c.status >= 500)
            .collect();
        let fast: Vec<&CallRow> = five
            .iter()
            .copied()
            .filter(|c| c.elapsed_us < cut && !calls_during(c.dst.display(), c.ts, c.end_ns()))
            .collect();
        let slow = five.len() - fast.len() + cs.iter().filter(|c| !c.has_response).count();
        if fast.len() < MIN_BURST || slow == 0 {
            continue;
        }
        let mut fl: Vec<i64> = fast.iter().map(|c| c.elapsed_us).collect();
        let fast_p50 = util::median(&mut fl);
        let (Some(first), Some(last)) = (fast.first(), fast.last()) else {
            continue;
        };
        let severity = if fast.len() >= 20 {
            "high"
        } else if fast.len() >= 5 {
            "medium"
        } else {
            "low"
        };
        let ep = endpoint_name(&method, &path);
        let kfl = util::and(&[
            &first.dst.kfl("dst"),
            &util::endpoint_kfl(&method, &path),
            "status_code >= 500",
            &format!("elapsed_time < {cut}"),
        ]);
        out.push(Finding {
            kind: "pool_exhaustion".into(),
            severity: severity.into(),
            title: format!("{server} refuses {ep} fast (pool exhausted?)"),
            summary: format!(
                "{server} answered {} {ep} calls with 5xx in {} (p50) without calling anything, against {} usually, beside {slow} slow failures: a full pool or queue, from {} to {}.",
                fast.len(),
                dur(fast_p50),
                dur(usual),
                clock(first.ts),
                clock(last.ts)
            ),
            first: time(first.ts),
            last: time(last.ts),
            subject: endpoint_subject(&server, &method, &path),
            metrics: metrics(json!({
                "fast_failures": fast.len(), "fast_p50_us": fast_p50,
                "usual_p50_us": usual, "slow_failures": slow,
            })),
            evidence: call_evidence(kfl, fast.iter().copied()),
        });
    }
    out
}

fn rcode_name(rcode: i64) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

/// How long a resolver's search-domain walk takes at most: each step is
/// one round trip to the cluster's DNS server.
pub const SEARCH_WALK_NS: i64 = 2_000_000_000;

fn first_label(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Longest quiet time between two queries of one resolution. A stub
/// resolver sends A and AAAA together and the next search domain as soon
/// as both answer, so the steps of one look-up follow within a round trip
/// to the cluster's DNS server: under a millisecond on an idle node, but
/// hundreds of ms on a loaded one (the lab on two busy cores sees 100 ms
/// steps). Interleaved look-ups are told apart by the walk itself (see
/// [`dns_lookups`]), so this only has to end a look-up, not separate them.
pub const LOOKUP_GAP_NS: i64 = 500_000_000;

/// One resolution by a client: its A/AAAA queries and the search-domain
/// walk, as the application saw it (one `getaddrinfo`).
#[derive(Debug)]
pub(crate) struct Lookup<'a> {
    pub client: &'a str,
    /// In time order; the first asks the name the walk starts at.
    pub queries: Vec<&'a CallRow>,
    /// `None` when one of its queries got an answer; else the failure
    /// (`NXDOMAIN`, `SERVFAIL`, …, `no answer`) most of them got.
    pub failure: Option<String>,
}

impl Lookup<'_> {
    /// The name the look-up started with.
    pub fn name(&self) -> &str {
        self.queries.first().map_or("", |q| q.question.as_str())
    }

    pub fn first_ts(&self) -> i64 {
        self.queries.first().map_or(0, |q| q.ts)
    }

    pub fn last_ts(&self) -> i64 {
        self.queries.iter().map(|q| q.ts).max().unwrap_or(0)
    }

    fn asked(&self, c: &CallRow) -> bool {
        self.queries
            .iter()
            .any(|q| q.question == c.question && q.qtype == c.qtype)
    }

    fn has_name(&self, name: &str) -> bool {
        self.queries.iter().any(|q| q.question == name)
    }

    fn names(&self) -> usize {
        let mut v: Vec<&str> = self.queries.iter().map(|q| q.question.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    }

    fn resolved(&self) -> bool {
        self.queries.iter().any(|q| query_outcome(q).is_none())
    }
}

fn query_outcome(c: &CallRow) -> Option<String> {
    if !c.has_response {
        Some("no answer".to_owned())
    } else if c.status != 0 {
        Some(rcode_name(c.status))
    } else {
        None
    }
}

/// Groups the DNS queries of `calls` (in time order) into look-ups: same
/// client, same first label, each query within [`LOOKUP_GAP_NS`] of the
/// look-up's previous one, and no (name, type) asked twice (a repeat is
/// the next look-up). Concurrent look-ups of one name interleave; a query
/// joins the open look-up that asked its name with the other type (the
/// AAAA beside an A), else the unresolved one furthest along its walk
/// that has not asked the name (the next search domain), oldest first.
/// A failed look-up followed within [`SEARCH_WALK_NS`] by an answer for
/// the same first label from the same client is a walk that went on after
/// a pause: it resolved, and counts as resolved.
pub(crate) fn dns_lookups(calls: &[CallRow]) -> Vec<Lookup<'_>> {
    let mut lookups: Vec<Lookup> = Vec::new();
    // (client, first label) → open look-ups (indexes into `lookups`).
    let mut open: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for c in calls
        .iter()
        .filter(|c| c.protocol == "dns" && !c.question.is_empty())
    {
        let key = (c.src.display(), first_label(&c.question));
        let ids = open.entry(key).or_default();
        ids.retain(|&i| {
            lookups
                .get(i)
                .is_some_and(|l| c.ts <= l.last_ts().saturating_add(LOOKUP_GAP_NS))
        });
        let candidates = ids
            .iter()
            .copied()
            .filter(|&i| lookups.get(i).is_some_and(|l| !l.asked(c)));
        let pair = candidates
            .clone()
            .find(|&i| lookups.get(i).is_some_and(|l| l.has_name(&c.question)));
        let next_step = || {
            candidates
                .clone()
                .filter(|&i| lookups.get(i).is_some_and(|l| !l.resolved()))
                .max_by_key(|&i| {
                    (
                        lookups.get(i).map_or(0, Lookup::names),
                        std::cmp::Reverse(i),
                    )
                })
        };
        match pair.or_else(next_step) {
            Some(i) => {
                if let Some(l) = lookups.get_mut(i) {
                    l.queries.push(c);
                }
            }
            None => {
                ids.push(lookups.len());
                lookups.push(Lookup {
                    client: key.0,
                    queries: vec![c],
                    failure: None,
                });
            }
        }
    }
    // Answered queries per client: (time, first label, name).
    let mut answered: HashMap<&str, Vec<(i64, &str, &str)>> = HashMap::new();
    for l in &lookups {
        for q in l.queries.iter().filter(|q| query_outcome(q).is_none()) {
            answered.entry(l.client).or_default().push((
                q.ts,
                first_label(&q.question),
                q.question.as_str(),
            ));
        }
    }
    for v in answered.values_mut() {
        v.sort_unstable();
    }
    for l in &mut lookups {
        let outcomes: Vec<Option<String>> = l.queries.iter().map(|q| query_outcome(q)).collect();
        if outcomes.iter().any(Option::is_none) {
            continue;
        }
        // Only a name this look-up did not ask continues its walk; the
        // same name answered later is the next look-up, after a fix.
        let (last, label) = (l.last_ts(), first_label(l.name()));
        let asked: Vec<&str> = l.queries.iter().map(|q| q.question.as_str()).collect();
        let walked_on = answered.get(l.client).is_some_and(|v| {
            let i = v.partition_point(|(ts, _, _)| *ts <= last);
            v.get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|(ts, _, _)| *ts <= last.saturating_add(SEARCH_WALK_NS))
                .any(|(_, l, n)| *l == label && !asked.contains(n))
        });
        if walked_on {
            continue;
        }
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for o in outcomes.iter().flatten() {
            *count.entry(o.as_str()).or_insert(0) += 1;
        }
        let first = outcomes.first().cloned().flatten().unwrap_or_default();
        let most = count.values().copied().max().unwrap_or(0);
        l.failure = Some(if count.get(first.as_str()) == Some(&most) {
            first
        } else {
            count
                .iter()
                .find(|(_, n)| **n == most)
                .map(|(k, _)| (*k).to_owned())
                .unwrap_or(first)
        });
    }
    lookups
}

/// KFL selecting the failed queries of look-ups that start at `name`
/// between `first` and `last`: the name itself, or every name of its
/// search walk (same first label) when the walk asked several.
pub(crate) fn lookup_kfl(name: &str, walk: bool, first: i64, last: i64) -> String {
    let label = first_label(name);
    let names = if walk {
        format!(
            "dns_questions.exists(q, q == {} || q.startsWith({}))",
            quote(label),
            quote(&format!("{label}."))
        )
    } else {
        format!("dns_questions.exists(q, q == {})", quote(name))
    };
    util::and(&[
        "dns",
        &names,
        "(status_code != 0 || !has_response)",
        &between(first, last),
    ])
}

pub(crate) fn dns_failures(calls: &[CallRow]) -> Vec<Finding> {
    let lookups = dns_lookups(calls);
    let mut by: BTreeMap<(String, String), Vec<&Lookup>> = BTreeMap::new();
    for l in &lookups {
        if let Some(f) = &l.failure {
            by.entry((l.name().to_owned(), f.clone()))
                .or_default()
                .push(l);
        }
    }
    let mut out = Vec::new();
    for ((name, rcode), ls) in by {
        let n = ls.len();
        let (Some(first), Some(last)) = (ls.first(), ls.last()) else {
            continue;
        };
        let queries: Vec<&CallRow> = ls.iter().flat_map(|l| l.queries.iter().copied()).collect();
        let walk = queries.iter().any(|q| q.question != name);
        let (t0, t1) = (first.first_ts(), last.last_ts());
        let severity = if n >= 20 {
            "high"
        } else if n >= 5 {
            "medium"
        } else {
            "low"
        };
        let clients: HashSet<&str> = ls.iter().map(|l| l.client).collect();
        let mut clients: Vec<&str> = clients.into_iter().collect();
        clients.sort_unstable();
        let server = first
            .queries
            .first()
            .map(|q| q.dst.display().to_owned())
            .unwrap_or_default();
        out.push(Finding {
            kind: "dns_failures".into(),
            severity: severity.into(),
            title: format!("DNS {rcode} for {name}"),
            summary: format!(
                "{n} look-ups of {name} failed with {rcode} ({} queries{}), from {}, {} to {}.",
                queries.len(),
                if walk {
                    ", A/AAAA and the search-domain walk"
                } else {
                    ""
                },
                clients
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
                clock(t0),
                clock(t1)
            ),
            first: time(t0),
            last: time(t1),
            subject: Subject {
                client: (clients.len() == 1)
                    .then(|| clients.first().map(|c| (*c).to_owned()))
                    .flatten(),
                server: Some(server),
                method: None,
                path: Some(name.clone()),
            },
            metrics: metrics(json!({
                "count": n, "queries": queries.len(), "rcode": rcode, "name": name,
            })),
            evidence: call_evidence(lookup_kfl(&name, walk, t0, t1), queries.iter().copied()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnomalyQuery;
    use crate::testutil::{MS, T0, shop};

    fn of<'a>(a: &'a Anomalies, kind: &str) -> Vec<&'a Finding> {
        a.findings.iter().filter(|f| f.kind == kind).collect()
    }

    fn ns(rfc: &str) -> i64 {
        let t: jiff::Timestamp = rfc.parse().unwrap();
        i64::try_from(t.as_nanosecond()).unwrap()
    }

    #[test]
    fn the_shop_incident_is_found_with_evidence_that_reproduces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = shop(tmp.path());
        let a = find_anomalies(&dir, &AnomalyQuery::default()).unwrap();

        // One latency shift, at the gateway (the hop that calls no one),
        // with the upstream hops folded into it.
        let shifts = of(&a, "latency_shift");
        assert_eq!(shifts.len(), 1, "{:#?}", a.findings);
        let s = shifts[0];
        assert_eq!(s.subject.server.as_deref(), Some("gateway"));
        let at = ns(s.metrics["at"].as_str().unwrap());
        assert_eq!(at, T0 + 30_002 * MS, "the first slow call");
        assert_eq!(s.metrics["before_p50_us"], 200_000);
        assert_eq!(s.metrics["after_p50_us"], 4_000_000);
        let upstream = s.metrics["upstream"].to_string();
        assert!(
            upstream.contains("payment POST /v1/pay")
                && upstream.contains("frontend POST /api/v1/checkout"),
            "{upstream}"
        );
        assert_eq!(s.severity, "high");

        // Error bursts on frontend and payment (and the cart's 503s), each
        // with a KFL that selects exactly the calls it counts.
        let bursts = of(&a, "error_burst");
        let front = bursts
            .iter()
            .find(|f| {
                f.subject.server.as_deref() == Some("frontend")
                    && f.subject.path.as_deref() == Some("/api/v1/checkout")
            })
            .unwrap();
        assert_eq!(front.metrics["count"], 20);
        let page = trawl_index::kfl::query(
            &dir,
            &front.evidence.kfl,
            &trawl_index::kfl::QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(page.total_matching, front.evidence.total);
        assert_eq!(front.evidence.call_ids.len(), crate::MAX_EVIDENCE_IDS);

        // The cart's five storms of three tries.
        let storms = of(&a, "retry_storm");
        assert_eq!(storms.len(), 1, "{storms:#?}");
        assert_eq!(storms[0].subject.client.as_deref(), Some("cart"));
        assert_eq!(storms[0].metrics["bursts"], 5);
        assert_eq!(storms[0].metrics["max_tries"], 3);

        // The fast 503s of the cart endpoint are not pool exhaustion (no
        // slow failures beside them), nor are the payment's (slow).
        assert!(
            of(&a, "pool_exhaustion").is_empty(),
            "{:#?}",
            of(&a, "pool_exhaustion")
        );

        // DNS: the name that never resolves, not the search walk.
        let dns = of(&a, "dns_failures");
        assert_eq!(dns.len(), 1, "{dns:#?}");
        assert_eq!(dns[0].metrics["name"], "missing.example");
        assert_eq!(dns[0].metrics["count"], 5);
        assert_eq!(dns[0].metrics["rcode"], "NXDOMAIN");
        let page = trawl_index::kfl::query(
            &dir,
            &dns[0].evidence.kfl,
            &trawl_index::kfl::QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(page.total_matching, 5);

        // Most severe first.
        let ranks: Vec<u8> = a
            .findings
            .iter()
            .map(|f| severity_rank(&f.severity))
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
    }

    #[test]
    fn dns_failures_count_look_ups_not_queries() {
        use crate::testutil::{Calls, ep};
        let tmp = tempfile::tempdir().unwrap();
        let cat = ep("10.0.0.3", 40000, "catalogue", false);
        let web = ep("10.0.0.6", 40000, "web", false);
        let dns = ep("10.0.0.53", 53, "kube-dns", false);
        let mut c = Calls::default();
        for i in 0..12i64 {
            // Two look-ups 3 ms apart (two requests at once) walk the
            // search list with A and AAAA: each one look-up, not four.
            for start in [i * 1_000_000, i * 1_000_000 + 3_000] {
                let mut at = start;
                for name in ["db.shop.svc.cluster.local", "db"] {
                    c.dns_q(at, &cat, &dns, name, "A", 3);
                    c.dns_q(at + 10, &cat, &dns, name, "AAAA", 3);
                    at += 400;
                }
            }
            // A walk that resolves at its second step is no failure.
            c.dns_q(
                i * 1_000_000 + 500_000,
                &web,
                &dns,
                "api.shop.svc.cluster.local",
                "A",
                3,
            );
            c.dns_q(
                i * 1_000_000 + 500_400,
                &web,
                &dns,
                "api.svc.cluster.local",
                "A",
                0,
            );
        }
        let dir = c.index(tmp.path());
        let a = find_anomalies(&dir, &AnomalyQuery::default()).unwrap();
        let dns = of(&a, "dns_failures");
        assert_eq!(dns.len(), 1, "{dns:#?}");
        let m = &dns[0].metrics;
        assert_eq!(m["name"], "db.shop.svc.cluster.local");
        assert_eq!(
            (m["count"].as_u64(), m["queries"].as_u64()),
            (Some(24), Some(96))
        );
        assert_eq!(dns[0].subject.client.as_deref(), Some("catalogue"));
        let page = trawl_index::kfl::query(
            &dir,
            &dns[0].evidence.kfl,
            &trawl_index::kfl::QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(page.total_matching, 96, "{}", dns[0].evidence.kfl);
    }

    #[test]
    fn scope_window_and_limit_narrow_the_answer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = shop(tmp.path());
        // Before the fault there is nothing but the DNS failures.
        let q = AnomalyQuery {
            to: Some(trawl_model::time::rfc3339_micros(T0 + 29_000 * MS)),
            ..AnomalyQuery::default()
        };
        let a = find_anomalies(&dir, &q).unwrap();
        assert!(
            a.findings.iter().all(|f| f.kind == "dns_failures"),
            "{:#?}",
            a.findings
        );
        // A scope of one client's calls.
        let q = AnomalyQuery {
            scope: r#"src.service.name == "cart""#.into(),
            limit: Some(1),
            ..AnomalyQuery::default()
        };
        let a = find_anomalies(&dir, &q).unwrap();
        assert_eq!(a.findings.len(), 1);
        assert!(a.truncated, "the burst and the storm, one shown");
        assert_eq!(a.calls_analyzed, 15);
        // A bad filter is the KFL error, with its position.
        let q = AnomalyQuery {
            scope: "http && status_cod == 503".into(),
            ..AnomalyQuery::default()
        };
        match find_anomalies(&dir, &q) {
            Err(InsightsError::Query(trawl_index::kfl::KflQueryError::Kfl(k))) => {
                assert_eq!((k.line, k.col), (1, 9));
                assert_eq!(k.suggestion.as_deref(), Some("status_code"));
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            find_anomalies(
                &dir,
                &AnomalyQuery {
                    limit: Some(0),
                    ..AnomalyQuery::default()
                }
            ),
            Err(InsightsError::BadInput(_))
        ));
    }

    #[test]
    fn sliding_medians_equal_a_median_per_window() {
        let xs: Vec<f64> = (0..200).map(|i| ((i * 7919) % 101) as f64).collect();
        for w in [1, 2, 5, 50] {
            let m = sliding_medians(&xs, w);
            assert_eq!(m.len(), xs.len() - w + 1);
            for (j, v) in m.iter().enumerate() {
                assert_eq!(*v, median_of(&xs[j..j + w]), "w {w} j {j}");
            }
        }
        assert!(sliding_medians(&xs[..3], 5).is_empty());
    }

    #[test]
    fn a_change_point_is_where_the_level_moves_and_stays() {
        let mut v = vec![200_000i64; 40];
        v.extend(vec![4_000_000i64; 40]);
        assert_eq!(change_point(&v), Some(40));
        // Jitter and a few outliers on both sides do not move it.
        let mut j: Vec<i64> = (0..40).map(|i| 180_000 + (i % 7) * 10_000).collect();
        j[10] = 3_000_000;
        j.extend((0..40).map(|i| 3_800_000 + (i % 5) * 100_000));
        j[60] = 10_000;
        assert_eq!(change_point(&j), Some(40));
        // A spike that does not stay is no shift; neither is jitter.
        let mut s = vec![200_000i64; 80];
        for x in s.iter_mut().skip(40).take(3) {
            *x = 5_000_000;
        }
        assert_eq!(change_point(&s), None);
        let n: Vec<i64> = (0..100)
            .map(|i| 150_000 + (i * 7919 % 100) * 1_000)
            .collect();
        assert_eq!(change_point(&n), None);
        assert_eq!(change_point(&[1, 2, 3]), None);
    }
}
