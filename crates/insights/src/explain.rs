//! `explain_errors`: for the failing calls a KFL filter selects, what the
//! serving workload was doing downstream while each of them ran, and so on
//! down: a causal chain (root cause last), the timeouts inferred from
//! clustered durations of unanswered calls, and a timeline.
//!
//! A downstream call is attributed to a failing call when it was in flight
//! while the failing call ran and either failed, took at least
//! [`SLOW_SHARE`] of the failing call's time, or spanned it whole (a fast
//! failure while every pooled connection waits on a slow dependency); a
//! busy server makes other fast calls meanwhile, for other requests, and
//! those are not the cause.
//! The callee endpoint that covers the most failing calls is the next
//! link; the chain ends at a callee that waits on nothing. When that last
//! service's own DNS look-ups failed during its failing calls (NXDOMAIN,
//! SERVFAIL, no answer for the name it needed), the failing look-up is the
//! root cause: it never got as far as calling anything.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::anomalies::{self, call_end, change_point, ends};
use crate::load::{self, CallRow};
use crate::util::{self, call_evidence, clock, dur, share, template, time};
use crate::{
    ChainLink, ExplainQuery, Explanation, InsightsError, ServerCount, TimeRange, TimelineEvent,
    Timeout, check_limit,
};

/// Links followed down at most: deeper call chains exist, but past eight
/// hops the attribution by overlapping time is guesswork.
pub const MAX_DEPTH: usize = 8;

/// A downstream call that took at least this share of the failing call's
/// time is what it waited on.
pub const SLOW_SHARE: f64 = 0.5;

/// A callee endpoint is the next link when it covers at least this share
/// of the failing calls.
pub const MIN_COVERAGE: f64 = 0.2;

/// Unanswered calls whose durations agree within this fraction share one
/// timeout (a client timer fires within a few ms of its setting).
pub const TIMEOUT_TOLERANCE: f64 = 0.02;

/// Fewest unanswered calls at one duration to infer a timeout.
pub const MIN_TIMEOUT_CALLS: usize = 3;

/// Longest a downstream call can have been in flight before a failing
/// call started and still count for it: past a minute a client has given
/// up on it.
pub const MAX_IN_FLIGHT_NS: i64 = 60_000_000_000;

/// Downstream calls looked at per failing call: bounds the work on a
/// server with thousands of calls in flight.
const MAX_OVERLAP_SCAN: usize = 10_000;

/// Calls around the failing ones read for context: downstream calls and
/// the baseline before a latency change.
const CONTEXT_NS: i64 = 120_000_000_000;

/// The explanation of the failing calls `q.kfl` selects.
pub fn explain_errors(dir: &Path, q: &ExplainQuery) -> Result<Explanation, InsightsError> {
    let limit = check_limit(q.limit)?;
    let matched = load::calls(dir, &q.kfl, &TimeRange::default())?;
    let mut failing: Vec<&CallRow> = matched.rows.iter().filter(|c| c.failed()).collect();
    if failing.is_empty() {
        failing = matched.rows.iter().collect();
    }
    let (Some(t0), Some(t1)) = (
        failing.iter().map(|c| c.ts).min(),
        failing.iter().map(|c| c.end_ns()).max(),
    ) else {
        return Ok(Explanation {
            kfl: q.kfl.clone(),
            summary: format!(
                "No calls match {:?}; widen the filter (e.g. status_code >= 500) or check names with trawl stats.",
                q.kfl
            ),
            ..Explanation::default()
        });
    };
    let window = TimeRange {
        from_ns: Some(t0.saturating_sub(CONTEXT_NS)),
        to_ns: Some(t1.saturating_add(CONTEXT_NS)),
    };
    let all = load::calls(dir, "", &window)?;
    let flows = load::flows(dir, &window)?;
    let ends = ends(&flows.rows);
    let truncated = matched.truncated || all.truncated || flows.truncated;

    // Failing calls per server.
    let mut per_server: BTreeMap<&str, Vec<&CallRow>> = BTreeMap::new();
    for c in &failing {
        per_server.entry(c.dst.display()).or_default().push(c);
    }
    let mut servers: Vec<ServerCount> = per_server
        .iter()
        .map(|(n, v)| ServerCount {
            name: (*n).to_owned(),
            calls: v.len() as u64,
        })
        .collect();
    servers.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
    // The chain starts at the failing server no other failing server calls
    // (the one users see); the others fail because they are on its path.
    let edges: std::collections::HashSet<(&str, &str)> = all
        .rows
        .iter()
        .map(|c| (c.src.display(), c.dst.display()))
        .collect();
    let called_by_failing = |s: &str| {
        servers
            .iter()
            .any(|o| o.name != s && edges.contains(&(o.name.as_str(), s)))
    };
    let main = servers
        .iter()
        .find(|s| !called_by_failing(&s.name))
        .or(servers.first())
        .map(|s| s.name.clone())
        .unwrap_or_default();
    servers.truncate(limit);

    // Outgoing calls per client, in time order.
    let mut outgoing: HashMap<&str, Vec<&CallRow>> = HashMap::new();
    for c in &all.rows {
        outgoing.entry(c.src.display()).or_default().push(c);
    }

    let top: Vec<&CallRow> = per_server.get(main.as_str()).cloned().unwrap_or_default();
    let mut chain = vec![failing_link(&main, &top, &q.kfl)];
    let mut current = top;
    let mut service = main.clone();
    let mut visited = vec![main.clone()];
    while chain.len() < MAX_DEPTH {
        let Some(next) = next_link(&service, &current, &outgoing, &ends) else {
            break;
        };
        if visited.contains(&next.callee) {
            break;
        }
        visited.push(next.callee.clone());
        chain.push(next.link);
        current = next.calls;
        service = next.callee;
    }
    // The last service waits on nothing: did its name look-ups fail?
    let lookups = anomalies::dns_lookups(&all.rows);
    let dns = dns_link(&service, &current, &lookups, &ends);
    if let Some((link, _)) = &dns {
        chain.push(link.clone());
    }

    // Timeouts: unanswered calls between the chain's services (all pairs
    // in the window when the chain is one link) ending at one duration.
    let mut timeouts = infer_timeouts(&all.rows, &ends, &visited);
    timeouts.truncate(limit);

    // The root cause: the last link, with its latency change.
    let mut timeline = Vec::new();
    let mut shift = None;
    if chain.len() > 1
        && let Some(root) = chain.last_mut()
    {
        root.role = "root cause".into();
        if let Some((method, path)) = root.endpoint.split_once(' ') {
            let calls: Vec<&CallRow> = all
                .rows
                .iter()
                .filter(|c| {
                    c.dst.display() == root.service
                        && c.method == method
                        && template(&c.path) == path
                })
                .filter(|c| anomalies::latency_us(c, &ends).is_some())
                .collect();
            let lat: Vec<i64> = calls
                .iter()
                .filter_map(|c| anomalies::latency_us(c, &ends))
                .collect();
            if let Some(at) = change_point(&lat) {
                let w = anomalies::shift_window(lat.len());
                let mut before: Vec<i64> = lat
                    .get(at.saturating_sub(3 * w)..at)
                    .unwrap_or_default()
                    .to_vec();
                let mut after: Vec<i64> = lat
                    .get(at..(at + 3 * w).min(lat.len()))
                    .unwrap_or_default()
                    .to_vec();
                let (b, a) = (util::median(&mut before), util::median(&mut after));
                if let Some(first) = calls.get(at) {
                    shift = Some((first.ts, b, a));
                    root.detail.push_str(&format!(
                        "; its latency went {} → {} at {}",
                        dur(b),
                        dur(a),
                        clock(first.ts)
                    ));
                    let kfl = util::and(&[
                        &first.dst.kfl("dst"),
                        &util::endpoint_kfl(method, path),
                        &format!("timestamp >= timestamp({})", util::quote(&time(first.ts))),
                    ]);
                    timeline.push(TimelineEvent {
                        time: time(first.ts),
                        kind: "latency_shift".into(),
                        event: format!(
                            "{} {} latency {} → {}",
                            root.service,
                            root.endpoint,
                            dur(b),
                            dur(a)
                        ),
                        evidence: call_evidence(
                            kfl,
                            calls.get(at..).unwrap_or_default().iter().copied(),
                        ),
                    });
                }
            }
        }
    }

    if let Some((link, first)) = &dns {
        timeline.push(TimelineEvent {
            time: time(first.first_ts()),
            kind: "dns_failure".into(),
            event: format!(
                "first DNS failure: {service}'s look-up of {} got {}",
                first.name(),
                first.failure.as_deref().unwrap_or_default()
            ),
            evidence: link.evidence.clone(),
        });
    }
    // The first timeout of each inferred one.
    for t in &timeouts {
        if let Some(first) = t.evidence.call_ids.first()
            && let Some(c) = all.rows.iter().find(|c| &c.id == first)
        {
            timeline.push(TimelineEvent {
                time: time(call_end(c, &ends)),
                kind: "timeout".into(),
                event: format!(
                    "first timeout: {} gives up on {} after {} ms",
                    t.service, t.callee, t.timeout_ms
                ),
                evidence: t.evidence.clone(),
            });
        }
    }
    // The first failing call, when its answer came.
    if let Some(first) = failing.iter().min_by_key(|c| call_end(c, &ends)) {
        let what = if first.has_response {
            first.status.to_string()
        } else {
            "unanswered call".into()
        };
        timeline.push(TimelineEvent {
            time: time(call_end(first, &ends)),
            kind: "failing_call".into(),
            event: format!(
                "first failing call: {what} from {} on {} {}",
                first.dst.display(),
                first.method,
                first.path
            ),
            evidence: call_evidence(q.kfl.clone(), failing.iter().copied()),
        });
    }
    // Pool exhaustion and resets among the chain's services.
    for f in anomalies::pool_exhaustion(&all.rows) {
        if f.subject
            .server
            .as_ref()
            .is_some_and(|s| visited.contains(s))
        {
            timeline.push(TimelineEvent {
                time: f.first.clone(),
                kind: "pool_exhaustion".into(),
                event: format!("first fast failure: {}", f.summary),
                evidence: f.evidence,
            });
        }
    }
    for f in anomalies::resets(&flows.rows) {
        let in_chain = |s: &Option<String>| s.as_ref().is_some_and(|s| visited.contains(s));
        if in_chain(&f.subject.client) && in_chain(&f.subject.server) {
            timeline.push(TimelineEvent {
                time: f.first.clone(),
                kind: "resets".into(),
                event: format!("first RST: {}", f.summary),
                evidence: f.evidence,
            });
        }
    }
    timeline.sort_by(|a, b| a.time.cmp(&b.time));
    let timeline_cut = timeline.len() > limit;
    timeline.truncate(limit);

    let mut summary = summarize(&failing, &chain, &timeouts, shift);
    if let Some((link, _)) = &dns {
        summary.push_str(&format!(" Root cause: DNS: {}.", link.detail));
    }
    Ok(Explanation {
        kfl: q.kfl.clone(),
        failing_calls: failing.len() as u64,
        servers,
        timeouts,
        chain,
        timeline,
        summary,
        truncated: truncated || timeline_cut,
    })
}

fn outcome_mix(calls: &[&CallRow]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls {
        let k = if c.has_response {
            c.status.to_string()
        } else {
            "unanswered".into()
        };
        *by.entry(k).or_insert(0) += 1;
    }
    let mut v: Vec<(String, usize)> = by.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v.iter()
        .take(3)
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main_endpoint(calls: &[&CallRow]) -> (String, String) {
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in calls {
        *by.entry((c.method.clone(), template(&c.path))).or_insert(0) += 1;
    }
    by.into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(k, _)| k)
        .unwrap_or_default()
}

fn elapsed_p50(calls: &[&CallRow]) -> u64 {
    let mut v: Vec<i64> = calls
        .iter()
        .filter(|c| c.has_response)
        .map(|c| c.elapsed_us)
        .collect();
    util::median(&mut v)
}

fn failing_link(service: &str, calls: &[&CallRow], kfl: &str) -> ChainLink {
    let (method, path) = main_endpoint(calls);
    ChainLink {
        service: service.to_owned(),
        endpoint: format!("{method} {path}"),
        role: "failing".into(),
        detail: format!(
            "{} failing calls ({}), p50 {}",
            calls.len(),
            outcome_mix(calls),
            dur(elapsed_p50(calls))
        ),
        evidence: call_evidence(kfl.to_owned(), calls.iter().copied()),
    }
}

struct Next<'a> {
    callee: String,
    link: ChainLink,
    calls: Vec<&'a CallRow>,
}

/// What `service` waited on during `failing`: the callee endpoint whose
/// failed or slow calls overlap the most failing calls.
fn next_link<'a>(
    service: &str,
    failing: &[&'a CallRow],
    outgoing: &HashMap<&str, Vec<&'a CallRow>>,
    ends: &HashMap<(String, i64), i64>,
) -> Option<Next<'a>> {
    let out = outgoing.get(service)?;
    // callee endpoint → (failing calls covered, downstream calls).
    let mut by: HashMap<(String, String, String), (usize, Vec<&CallRow>)> = HashMap::new();
    for f in failing {
        let (start, end) = (f.ts, call_end(f, ends));
        let span = (end - start).max(1);
        let i = out.partition_point(|d| d.ts < start.saturating_sub(MAX_IN_FLIGHT_NS));
        // What it called during the failing call first; only a call that
        // called nothing (a fast refusal) is laid to what was in flight
        // across it.
        let window: Vec<&CallRow> = out
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|d| d.ts <= end)
            .take(MAX_OVERLAP_SCAN)
            .copied()
            .filter(|d| d.protocol != "dns")
            .collect();
        let waited_on = |d: &&CallRow| {
            let d_end = call_end(d, ends);
            let took = d_end - d.ts;
            d.failed() || took as f64 >= SLOW_SHARE * span as f64 || (d.ts <= start && d_end >= end)
        };
        let mut picked: Vec<&CallRow> = window
            .iter()
            .copied()
            .filter(|d| d.ts >= start)
            .filter(waited_on)
            .collect();
        if picked.is_empty() {
            picked = window
                .iter()
                .copied()
                .filter(|d| d.ts < start && call_end(d, ends) >= start)
                .filter(waited_on)
                .collect();
        }
        let mut seen: Vec<(String, String, String)> = Vec::new();
        for d in picked {
            let key = (
                d.dst.display().to_owned(),
                d.method.clone(),
                template(&d.path),
            );
            let e = by.entry(key.clone()).or_default();
            e.1.push(d);
            if !seen.contains(&key) {
                seen.push(key);
                e.0 += 1;
            }
        }
    }
    let ((callee, method, path), (covered, mut calls)) = by
        .into_iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(&a.0)))?;
    if (covered as f64) < MIN_COVERAGE * failing.len() as f64 {
        return None;
    }
    calls.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
    calls.dedup_by(|a, b| a.id == b.id);
    let unanswered = calls.iter().filter(|c| !c.has_response).count();
    let failed = calls.iter().filter(|c| c.failed()).count();
    let sample = calls.first()?;
    let kfl = util::and(&[
        &sample.src.kfl("src"),
        &sample.dst.kfl("dst"),
        &util::endpoint_kfl(&method, &path),
    ]);
    let mut detail = format!(
        "{service} had calls to it in flight during {covered} of the {} calls above ({}): {} of {} failed ({}), {unanswered} unanswered; answered p50 {}",
        failing.len(),
        util::pct(share(covered as u64, failing.len() as u64)),
        failed,
        calls.len(),
        outcome_mix(&calls),
        dur(elapsed_p50(&calls))
    );
    if unanswered > 0 {
        let mut waits: Vec<i64> = calls
            .iter()
            .filter(|c| !c.has_response)
            .map(|c| (call_end(c, ends) - c.ts) / 1000)
            .collect();
        detail.push_str(&format!(
            ", unanswered ones ended after {} (p50)",
            dur(util::median(&mut waits))
        ));
    }
    let link = ChainLink {
        service: callee.clone(),
        endpoint: format!("{method} {path}"),
        role: "waits on".into(),
        detail,
        evidence: call_evidence(kfl, calls.iter().copied()),
    };
    Some(Next {
        callee,
        link,
        calls,
    })
}

/// Failed look-ups of `service` (as a DNS client) that started while one
/// of its failing calls ran: the root cause link when they cover at least
/// [`MIN_COVERAGE`] of those calls, with the earliest such look-up.
fn dns_link<'a>(
    service: &str,
    failing: &[&CallRow],
    lookups: &'a [anomalies::Lookup<'a>],
    ends: &HashMap<(String, i64), i64>,
) -> Option<(ChainLink, &'a anomalies::Lookup<'a>)> {
    let mut mine: Vec<&anomalies::Lookup> = lookups
        .iter()
        .filter(|l| l.client == service && l.failure.is_some())
        .collect();
    if mine.is_empty() || failing.is_empty() {
        return None;
    }
    mine.sort_by_key(|l| l.first_ts());
    let mut covered = 0usize;
    let mut used: Vec<bool> = vec![false; mine.len()];
    for f in failing {
        let (start, end) = (f.ts, call_end(f, ends));
        let i = mine.partition_point(|l| l.first_ts() < start);
        let mut hit = false;
        for (j, l) in mine.iter().enumerate().skip(i) {
            if l.first_ts() > end {
                break;
            }
            hit = true;
            if let Some(u) = used.get_mut(j) {
                *u = true;
            }
        }
        covered += usize::from(hit);
    }
    if (covered as f64) < MIN_COVERAGE * failing.len() as f64 {
        return None;
    }
    let during: Vec<&anomalies::Lookup> = mine
        .iter()
        .zip(&used)
        .filter(|(_, u)| **u)
        .map(|(l, _)| *l)
        .collect();
    // The name and failure most of them had.
    let mut by: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for l in &during {
        *by.entry((l.name(), l.failure.as_deref().unwrap_or_default()))
            .or_insert(0) += 1;
    }
    let ((name, failure), _) = by.into_iter().max_by_key(|(_, n)| *n)?;
    let of_name: Vec<&anomalies::Lookup> = during
        .iter()
        .copied()
        .filter(|l| l.name() == name && l.failure.as_deref() == Some(failure))
        .collect();
    let first = *of_name.first()?;
    let last = *of_name.last()?;
    let queries: Vec<&CallRow> = of_name
        .iter()
        .flat_map(|l| l.queries.iter().copied())
        .collect();
    let walk = queries.iter().any(|q| q.question != name);
    let server = first
        .queries
        .first()
        .map(|q| q.dst.display().to_owned())
        .unwrap_or_default();
    let kfl = util::and(&[
        &first.queries.first()?.src.kfl("src"),
        &anomalies::lookup_kfl(name, walk, first.first_ts(), last.last_ts()),
    ]);
    let detail = format!(
        "{service}'s look-ups of {name} failed with {failure} during {covered} of the {} calls above ({}): {} look-ups ({} queries) from {} to {}",
        failing.len(),
        util::pct(share(covered as u64, failing.len() as u64)),
        of_name.len(),
        queries.len(),
        clock(first.first_ts()),
        clock(last.last_ts())
    );
    let link = ChainLink {
        service: server,
        endpoint: format!("DNS {name}"),
        role: "root cause".into(),
        detail,
        evidence: call_evidence(kfl, queries.iter().copied()),
    };
    Some((link, first))
}

/// Timeouts from unanswered calls per (client, server) whose durations
/// cluster within [`TIMEOUT_TOLERANCE`]; pairs among `chain` first.
fn infer_timeouts(
    calls: &[CallRow],
    ends: &HashMap<(String, i64), i64>,
    chain: &[String],
) -> Vec<Timeout> {
    let mut by: BTreeMap<(String, String), Vec<(i64, &CallRow)>> = BTreeMap::new();
    for c in calls
        .iter()
        .filter(|c| !c.has_response && c.protocol != "dns")
    {
        let took = call_end(c, ends) - c.ts;
        if took > 0 {
            by.entry((c.src.display().to_owned(), c.dst.display().to_owned()))
                .or_default()
                .push((took, c));
        }
    }
    let mut out = Vec::new();
    for ((client, server), mut v) in by {
        v.sort_by_key(|(d, _)| *d);
        // The largest cluster: for each duration, the calls within ±2%.
        let mut best: (usize, usize) = (0, 0);
        for (d, _) in &v {
            let lo = (*d as f64 * (1.0 - TIMEOUT_TOLERANCE)) as i64;
            let hi = (*d as f64 * (1.0 + TIMEOUT_TOLERANCE)) as i64;
            let a = v.partition_point(|(x, _)| *x < lo);
            let b = v.partition_point(|(x, _)| *x <= hi);
            if b - a > best.1 - best.0 {
                best = (a, b);
            }
        }
        let cluster = v.get(best.0..best.1).unwrap_or_default();
        if cluster.len() < MIN_TIMEOUT_CALLS || cluster.len() * 2 < v.len() {
            continue;
        }
        let mut ds: Vec<i64> = cluster.iter().map(|(d, _)| *d).collect();
        let ms = (util::median(&mut ds) as f64 / 1e6).round() as u64;
        let mut calls: Vec<&CallRow> = cluster.iter().map(|(_, c)| *c).collect();
        calls.sort_by_key(|c| c.ts);
        let Some(sample) = calls.first() else {
            continue;
        };
        let kfl = util::and(&[
            &sample.src.kfl("src"),
            &sample.dst.kfl("dst"),
            "!has_response",
        ]);
        out.push(Timeout {
            service: client,
            callee: server,
            timeout_ms: ms,
            count: calls.len() as u64,
            evidence: call_evidence(kfl, calls.iter().copied()),
        });
    }
    let rank = |t: &Timeout| !(chain.contains(&t.service) && chain.contains(&t.callee));
    out.sort_by(|a, b| rank(a).cmp(&rank(b)).then(b.count.cmp(&a.count)));
    out
}

fn summarize(
    failing: &[&CallRow],
    chain: &[ChainLink],
    timeouts: &[Timeout],
    shift: Option<(i64, u64, u64)>,
) -> String {
    let Some(top) = chain.first() else {
        return String::new();
    };
    let mut s = format!("{} failing calls ({})", failing.len(), outcome_mix(failing));
    if top.evidence.total as usize == failing.len() {
        s.push_str(&format!(" on {} {}.", top.service, top.endpoint));
    } else {
        s.push_str(&format!(
            "; the first hop is {} {} ({} of them).",
            top.service, top.endpoint, top.evidence.total
        ));
    }
    if chain.len() > 1 {
        let names: Vec<&str> = chain.iter().map(|l| l.service.as_str()).collect();
        s.push_str(&format!(
            " Causal chain: {} (root cause last).",
            names.join(" → ")
        ));
    } else {
        s.push_str(" No downstream call explains them: look at the service itself (its logs, CPU, its own limits).");
    }
    if let Some(t) = timeouts.first() {
        s.push_str(&format!(
            " {} times out on {} after {} ms ({} calls).",
            t.service, t.callee, t.timeout_ms, t.count
        ));
    }
    if let (Some((at, before, after)), Some(root)) = (shift, chain.last()) {
        s.push_str(&format!(
            " {}'s latency went {} → {} at {}.",
            root.service,
            dur(before),
            dur(after),
            clock(at)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::shop;

    #[test]
    fn the_checkout_503s_wait_on_the_gateway() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = shop(tmp.path());
        let q = ExplainQuery {
            kfl: "status_code == 503".into(),
            limit: None,
        };
        let e = explain_errors(&dir, &q).unwrap();
        // frontend's, payment's and the cart's 503s.
        assert_eq!(e.failing_calls, 20 + 20 + 15);
        let names: Vec<(&str, &str)> = e
            .chain
            .iter()
            .map(|l| (l.service.as_str(), l.role.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("frontend", "failing"),
                ("payment", "waits on"),
                ("gateway", "root cause")
            ],
            "{:#?}",
            e.chain
        );
        assert_eq!(e.chain[0].endpoint, "POST /api/v1/checkout");
        assert_eq!(e.chain[2].endpoint, "POST /v1/charges");
        assert!(
            e.chain[2].detail.contains("200 ms → 4.00 s"),
            "{}",
            e.chain[2].detail
        );
        // The latency shift comes first, then the first 503.
        let kinds: Vec<&str> = e.timeline.iter().map(|t| t.kind.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"latency_shift"), "{kinds:?}");
        assert!(kinds.contains(&"failing_call"));
        assert!(e.timeline.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(
            e.summary.contains("frontend → payment → gateway"),
            "{}",
            e.summary
        );
        // Calls alone (no flows here) give no timeout durations.
        assert!(e.timeouts.is_empty());
    }

    #[test]
    fn a_fast_refusal_is_laid_to_the_slow_calls_holding_the_pool() {
        use crate::testutil::{Calls, ep};
        let tmp = tempfile::tempdir().unwrap();
        let front = ep("10.0.0.1", 40000, "frontend", false);
        let pay = ep("10.0.0.2", 8080, "payment", false);
        let gw = ep("203.0.113.10", 80, "gateway", true);
        let mut c = Calls::default();
        // Two charges hold the pool for 4 s each; meanwhile payment
        // refuses three payments in 10 ms without calling anything.
        for t in [0, 100] {
            c.http(t, 4_010, &front, &pay, "POST", "/v1/pay", 201);
            c.http(t + 1, 4_000, &pay, &gw, "POST", "/v1/charges", 201);
        }
        for t in [1_000, 2_000, 3_000] {
            c.http(t, 10, &front, &pay, "POST", "/v1/pay", 503);
        }
        let dir = c.index(tmp.path());
        let e = explain_errors(
            &dir,
            &ExplainQuery {
                kfl: "status_code == 503".into(),
                limit: None,
            },
        )
        .unwrap();
        let names: Vec<&str> = e.chain.iter().map(|l| l.service.as_str()).collect();
        assert_eq!(names, ["payment", "gateway"], "{:#?}", e.chain);
        assert_eq!(e.chain[1].evidence.total, 2);
    }

    /// catalogue answers 503 in 5 ms while its resolver walks the search
    /// domains for catalogue-db (A and AAAA each, all NXDOMAIN); frontend
    /// passes the 503s on. 30 failing requests, one look-up each.
    fn dns_outage(dir: &std::path::Path) -> std::path::PathBuf {
        use crate::testutil::{Calls, ep};
        let load = ep("10.0.0.9", 40000, "loadgen", false);
        let front = ep("10.0.0.1", 8080, "frontend", false);
        let cat = ep("10.0.0.3", 8080, "catalogue", false);
        let db = ep("10.0.0.4", 5432, "catalogue-db", false);
        let dns = ep("10.0.0.53", 53, "kube-dns", false);
        let walk = [
            "catalogue-db.shop.svc.cluster.local",
            "catalogue-db.svc.cluster.local",
            "catalogue-db.cluster.local",
            "catalogue-db",
        ];
        let mut c = Calls::default();
        for i in 0..60i64 {
            let t = i * 200;
            let broken = i >= 30;
            c.http(
                t,
                8,
                &load,
                &front,
                "GET",
                "/api/v1/products",
                if broken { 503 } else { 200 },
            );
            c.http(
                t + 1,
                6,
                &front,
                &cat,
                "GET",
                "/products",
                if broken { 503 } else { 200 },
            );
            // The look-up, inside catalogue's call.
            let mut at = (t + 1) * 1000 + 200;
            for (k, name) in walk.iter().enumerate() {
                let rcode = if broken { 3 } else { 0 };
                c.dns_q(at, &cat, &dns, name, "A", rcode);
                c.dns_q(at + 20, &cat, &dns, name, "AAAA", rcode);
                at += 400;
                if !broken && k == 0 {
                    break;
                }
            }
            if !broken {
                c.http(t + 4, 2, &cat, &db, "SELECT", "", 200);
            }
        }
        c.index(dir)
    }

    #[test]
    fn a_failing_name_look_up_is_the_root_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dns_outage(tmp.path());
        let e = explain_errors(
            &dir,
            &ExplainQuery {
                kfl: "status_code == 503".into(),
                limit: None,
            },
        )
        .unwrap();
        let names: Vec<(&str, &str)> = e
            .chain
            .iter()
            .map(|l| (l.service.as_str(), l.role.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("frontend", "failing"),
                ("catalogue", "waits on"),
                ("kube-dns", "root cause")
            ],
            "{:#?}",
            e.chain
        );
        let root = &e.chain[2];
        assert_eq!(root.endpoint, "DNS catalogue-db.shop.svc.cluster.local");
        assert!(
            root.detail.contains("NXDOMAIN") && root.detail.contains("30 look-ups (240 queries)"),
            "{}",
            root.detail
        );
        // The evidence selects exactly the failed queries.
        assert_eq!(root.evidence.total, 240);
        let page = trawl_index::kfl::query(
            &dir,
            &root.evidence.kfl,
            &trawl_index::kfl::QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(page.total_matching, 240, "{}", root.evidence.kfl);
        // The first failed look-up precedes the first failing answer.
        let kinds: Vec<&str> = e.timeline.iter().map(|t| t.kind.as_str()).collect();
        let dns = kinds.iter().position(|k| *k == "dns_failure");
        let failing = kinds.iter().position(|k| *k == "failing_call");
        assert!(dns.is_some() && dns < failing, "{:#?}", e.timeline);
        assert!(
            e.summary.contains("DNS") && e.summary.contains("catalogue-db"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn nothing_matching_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = shop(tmp.path());
        let e = explain_errors(
            &dir,
            &ExplainQuery {
                kfl: "status_code == 418".into(),
                limit: None,
            },
        )
        .unwrap();
        assert_eq!(e.failing_calls, 0);
        assert!(
            e.chain.is_empty() && e.summary.starts_with("No calls match"),
            "{e:?}"
        );
    }
}
