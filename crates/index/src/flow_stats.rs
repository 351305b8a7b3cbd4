//! Flows over an index: [`query_flows`] pages through the rows of the
//! `flows` table that match a KFL filter (the flow catalogue's fields:
//! `tcp && retransmissions > 0`, `conn_state == "refused"`), and
//! [`flow_stats`] aggregates the matching connections per service pair
//! (client → server) or per server: connections opened per minute
//! (churn), failed handshakes (refused: a RST answered the SYN; timed
//! out: the SYN was never answered), resets, the retransmission rate, and
//! handshake and data RTT percentiles. Called by `trawl flows` and
//! `trawl stats --flows`; later by the hub, which merges several nodes'
//! answers with [`FlowStatsResult::merge`].
//!
//! A side is named by its resolved name (pod, service, external entry or
//! DNS name, see `trawl_identity`) and falls back to its IP address.
//! RTTs are HdrHistograms with the same settings and serialisation as the
//! call latencies of [`crate::stats`], so merged percentiles are exact
//! for the union.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, cast};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use trawl_model::catalogue::FLOW_FIELDS;

use crate::IndexError;
use crate::kfl::{KflQueryError, MAX_QUERY_LIMIT, catalogue_for_kfl, to_datafusion};
use crate::sql::session;
use crate::stats::SIGNIFICANT_DIGITS;

const MINUTE_NS: i64 = 60_000_000_000;

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn runtime(dir: &Path, name: &str) -> Result<tokio::runtime::Runtime, IndexError> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .build()
        .map_err(IndexError::io(dir))
}

/// One page of flows: every flow field, columns named by KFL names.
#[derive(Debug)]
pub struct FlowPage {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub total_matching: u64,
}

impl FlowPage {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The flows of the index in `dir` that match `kfl`, in order of first
/// packet (then `conn_id`), at most `limit` (1 to [`MAX_QUERY_LIMIT`]).
pub fn query_flows(dir: &Path, kfl: &str, limit: usize) -> Result<FlowPage, KflQueryError> {
    if limit == 0 || limit > MAX_QUERY_LIMIT {
        return Err(KflQueryError::BadLimit(limit));
    }
    let cat = catalogue_for_kfl(FLOW_FIELDS);
    let filter = trawl_kfl::compile(kfl, &cat)?;
    let predicate = to_datafusion(&filter, FLOW_FIELDS)?;
    let select: Vec<Expr> = FLOW_FIELDS
        .iter()
        .map(|f| column(f.column).alias(f.name))
        .collect();
    runtime(dir, "trawl-flows")?.block_on(async {
        let ctx = session(dir).await?;
        let df = ctx.table("flows").await?.filter(predicate)?;
        let total = df.clone().count().await?;
        let page = df
            .sort(vec![
                column("timestamp").sort(true, false),
                column("conn_id").sort(true, false),
            ])?
            .limit(0, Some(limit))?
            .select(select)?;
        let schema: SchemaRef = Arc::new(page.schema().as_arrow().clone());
        let batches = page.collect().await?;
        Ok(FlowPage {
            schema,
            batches,
            total_matching: u64::try_from(total).unwrap_or(u64::MAX),
        })
    })
}

/// How flows are grouped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowGrouping {
    /// Client → server (key: client, server).
    #[default]
    Pair,
    /// Server only (key: server).
    Server,
}

/// The connections of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowGroupStats {
    /// Client and server names (pair), or the server's (server).
    pub key: Vec<String>,
    pub connections: u64,
    pub tcp_connections: u64,
    /// TCP connections whose SYN a RST answered.
    pub refused: u64,
    /// TCP connections whose SYN was never answered (timed out).
    pub unanswered: u64,
    /// Connections with a RST, and RST segments.
    pub reset_connections: u64,
    pub rst_segments: u64,
    pub retransmissions: u64,
    pub data_segments: u64,
    pub bytes: u64,
    /// First packet of the earliest and of the latest connection (ns).
    pub first_open_ns: i64,
    pub last_open_ns: i64,
    /// Handshake RTT (`initial_rtt_us`) of each connection that had one.
    #[serde(with = "crate::stats::histogram_b64")]
    pub handshake_rtt_us: Histogram<u64>,
    /// Mean data RTT (`rtt_avg_us`) of each connection with samples.
    #[serde(with = "crate::stats::histogram_b64")]
    pub data_rtt_us: Histogram<u64>,
}

fn new_histogram() -> Histogram<u64> {
    #[expect(
        clippy::expect_used,
        reason = "3 significant digits is a valid setting"
    )]
    Histogram::new(SIGNIFICANT_DIGITS).expect("valid histogram settings")
}

impl FlowGroupStats {
    fn new(key: Vec<String>) -> FlowGroupStats {
        FlowGroupStats {
            key,
            connections: 0,
            tcp_connections: 0,
            refused: 0,
            unanswered: 0,
            reset_connections: 0,
            rst_segments: 0,
            retransmissions: 0,
            data_segments: 0,
            bytes: 0,
            first_open_ns: i64::MAX,
            last_open_ns: i64::MIN,
            handshake_rtt_us: new_histogram(),
            data_rtt_us: new_histogram(),
        }
    }

    /// Retransmitted share of the data segments, 0 to 1.
    pub fn retransmission_rate(&self) -> f64 {
        if self.data_segments == 0 {
            0.0
        } else {
            self.retransmissions as f64 / self.data_segments as f64
        }
    }

    /// Connections opened per minute over `span_ns` (the result's window,
    /// at least a minute, so that a burst is not extrapolated).
    pub fn opened_per_minute(&self, span_ns: i64) -> f64 {
        let minutes = span_ns.max(MINUTE_NS) as f64 / MINUTE_NS as f64;
        self.connections as f64 / minutes
    }

    /// Refused plus unanswered handshakes.
    pub fn failed_handshakes(&self) -> u64 {
        self.refused + self.unanswered
    }

    pub fn quantile(h: &Histogram<u64>, q: f64) -> Option<u64> {
        (!h.is_empty()).then(|| h.value_at_quantile(q))
    }

    fn merge(&mut self, o: &FlowGroupStats) -> Result<(), IndexError> {
        self.connections += o.connections;
        self.tcp_connections += o.tcp_connections;
        self.refused += o.refused;
        self.unanswered += o.unanswered;
        self.reset_connections += o.reset_connections;
        self.rst_segments += o.rst_segments;
        self.retransmissions += o.retransmissions;
        self.data_segments += o.data_segments;
        self.bytes += o.bytes;
        self.first_open_ns = self.first_open_ns.min(o.first_open_ns);
        self.last_open_ns = self.last_open_ns.max(o.last_open_ns);
        let bad = |e| IndexError::InvalidOption(format!("cannot merge RTT histograms: {e:?}"));
        self.handshake_rtt_us
            .add(&o.handshake_rtt_us)
            .map_err(bad)?;
        self.data_rtt_us.add(&o.data_rtt_us).map_err(bad)
    }
}

/// Every group, most connections first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowStatsResult {
    pub by: FlowGrouping,
    /// First packet of the first matching flow to the last packet of the
    /// last (ns); churn is per minute of this window.
    pub window_start_ns: i64,
    pub window_end_ns: i64,
    pub groups: Vec<FlowGroupStats>,
}

impl FlowStatsResult {
    pub fn span_ns(&self) -> i64 {
        self.window_end_ns
            .saturating_sub(self.window_start_ns)
            .max(0)
    }

    /// Adds another node's answer to the same question; groups with the
    /// same key merge exactly.
    pub fn merge(&mut self, other: &FlowStatsResult) -> Result<(), IndexError> {
        if self.by != other.by {
            return Err(IndexError::InvalidOption(format!(
                "cannot merge flow stats by {:?} with flow stats by {:?}",
                self.by, other.by
            )));
        }
        if self.groups.is_empty() {
            self.window_start_ns = other.window_start_ns;
            self.window_end_ns = other.window_end_ns;
        } else if !other.groups.is_empty() {
            self.window_start_ns = self.window_start_ns.min(other.window_start_ns);
            self.window_end_ns = self.window_end_ns.max(other.window_end_ns);
        }
        let mut at: HashMap<Vec<String>, usize> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.key.clone(), i))
            .collect();
        for g in &other.groups {
            match at.get(&g.key) {
                Some(&i) => {
                    if let Some(mine) = self.groups.get_mut(i) {
                        mine.merge(g)?;
                    }
                }
                None => {
                    at.insert(g.key.clone(), self.groups.len());
                    self.groups.push(g.clone());
                }
            }
        }
        sort_groups(&mut self.groups);
        Ok(())
    }
}

fn sort_groups(groups: &mut [FlowGroupStats]) {
    groups.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// Columns the aggregation reads, in order.
const STAT_COLUMNS: [&str; 13] = [
    "src_name",
    "src_ip",
    "dst_name",
    "dst_ip",
    "transport",
    "conn_state",
    "rst_count",
    "retransmissions",
    "data_segments",
    "flow_bytes",
    "initial_rtt_us",
    "rtt_avg_us",
    "timestamp",
];

/// Aggregates the flows of the index in `dir` that match `kfl`, grouped
/// as `by` says, blocking the calling thread.
pub fn flow_stats(
    dir: &Path,
    kfl: &str,
    by: FlowGrouping,
) -> Result<FlowStatsResult, KflQueryError> {
    let cat = catalogue_for_kfl(FLOW_FIELDS);
    let filter = trawl_kfl::compile(kfl, &cat)?;
    let predicate = to_datafusion(&filter, FLOW_FIELDS)?;
    let mut select: Vec<Expr> = STAT_COLUMNS.iter().map(|c| column(c)).collect();
    if let Some(ts) = select.last_mut() {
        *ts = cast(column("timestamp"), DataType::Int64).alias("timestamp");
    }
    select.push(cast(column("last_timestamp"), DataType::Int64).alias("last_timestamp"));
    let batches = runtime(dir, "trawl-flow-stats")?.block_on(async {
        let ctx = session(dir).await.map_err(KflQueryError::Index)?;
        let df = ctx
            .table("flows")
            .await?
            .filter(predicate)?
            .select(select)?;
        Ok::<_, KflQueryError>(df.collect().await?)
    })?;
    let mut agg = Aggregator::default();
    for b in &batches {
        agg.add(b, by)?;
    }
    let mut groups = agg.groups;
    sort_groups(&mut groups);
    Ok(FlowStatsResult {
        by,
        window_start_ns: if groups.is_empty() { 0 } else { agg.start },
        window_end_ns: if groups.is_empty() { 0 } else { agg.end },
        groups,
    })
}

fn bad_column(name: &str) -> IndexError {
    IndexError::InvalidOption(format!("flow stats: unexpected type of column {name}"))
}

struct Aggregator {
    at: HashMap<Vec<String>, usize>,
    groups: Vec<FlowGroupStats>,
    start: i64,
    end: i64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator {
            at: HashMap::new(),
            groups: Vec::new(),
            start: i64::MAX,
            end: i64::MIN,
        }
    }
}

impl Aggregator {
    fn add(&mut self, b: &RecordBatch, by: FlowGrouping) -> Result<(), IndexError> {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| bad_column(name));
        let text = |name: &str| {
            col(name)?
                .as_string_opt::<i32>()
                .cloned()
                .ok_or_else(|| bad_column(name))
        };
        let int = |name: &str| {
            col(name)?
                .as_primitive_opt::<Int64Type>()
                .cloned()
                .ok_or_else(|| bad_column(name))
        };
        let (src_name, src_ip, dst_name, dst_ip) = (
            text("src_name")?,
            text("src_ip")?,
            text("dst_name")?,
            text("dst_ip")?,
        );
        let (transport, state) = (text("transport")?, text("conn_state")?);
        let (rst, retr, data, bytes) = (
            int("rst_count")?,
            int("retransmissions")?,
            int("data_segments")?,
            int("flow_bytes")?,
        );
        let (irtt, drtt, ts, last) = (
            int("initial_rtt_us")?,
            int("rtt_avg_us")?,
            int("timestamp")?,
            int("last_timestamp")?,
        );
        let name = |n: &arrow::array::StringArray, ip: &arrow::array::StringArray, row| {
            let v = if n.is_null(row) { "" } else { n.value(row) };
            if v.is_empty() { ip.value(row) } else { v }.to_string()
        };
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        for row in 0..b.num_rows() {
            let server = name(&dst_name, &dst_ip, row);
            let key = match by {
                FlowGrouping::Pair => vec![name(&src_name, &src_ip, row), server],
                FlowGrouping::Server => vec![server],
            };
            let i = match self.at.get(&key) {
                Some(&i) => i,
                None => {
                    self.groups.push(FlowGroupStats::new(key.clone()));
                    self.at.insert(key, self.groups.len() - 1);
                    self.groups.len() - 1
                }
            };
            let Some(g) = self.groups.get_mut(i) else {
                continue;
            };
            let t = ts.value(row);
            self.start = self.start.min(t);
            self.end = self.end.max(last.value(row)).max(t);
            g.connections += 1;
            g.first_open_ns = g.first_open_ns.min(t);
            g.last_open_ns = g.last_open_ns.max(t);
            g.bytes += u(bytes.value(row));
            if transport.value(row) != "tcp" {
                continue;
            }
            g.tcp_connections += 1;
            match state.value(row) {
                "refused" => g.refused += 1,
                "unanswered" => g.unanswered += 1,
                _ => {}
            }
            let r = u(rst.value(row));
            g.rst_segments += r;
            g.reset_connections += u64::from(r > 0);
            g.retransmissions += u(retr.value(row));
            g.data_segments += u(data.value(row));
            let record = |h: &mut Histogram<u64>, v: i64| {
                if v > 0 {
                    h.record(u(v)).map_err(|e| {
                        IndexError::InvalidOption(format!("cannot record RTT {v} µs: {e:?}"))
                    })
                } else {
                    Ok(())
                }
            };
            record(&mut g.handshake_rtt_us, irtt.value(row))?;
            record(&mut g.data_rtt_us, drtt.value(row))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(key: &str, conns: u64, rtts: &[u64]) -> FlowGroupStats {
        let mut g = FlowGroupStats::new(vec![key.to_string()]);
        g.connections = conns;
        g.refused = 1;
        g.first_open_ns = 10;
        g.last_open_ns = 20;
        for r in rtts {
            g.handshake_rtt_us.record(*r).unwrap();
        }
        g
    }

    #[test]
    fn results_merge_exactly_and_serde_round_trips() {
        let mut a = FlowStatsResult {
            by: FlowGrouping::Server,
            window_start_ns: 0,
            window_end_ns: 60 * MINUTE_NS,
            groups: vec![group("db", 2, &[100, 200])],
        };
        let b = FlowStatsResult {
            by: FlowGrouping::Server,
            window_start_ns: 30 * MINUTE_NS,
            window_end_ns: 120 * MINUTE_NS,
            groups: vec![group("db", 3, &[300, 400, 500]), group("web", 9, &[])],
        };
        a.merge(&b).unwrap();
        assert_eq!(a.groups[0].key, vec!["web"], "most connections first");
        let db = &a.groups[1];
        assert_eq!((db.connections, db.refused), (5, 2));
        assert_eq!(
            FlowGroupStats::quantile(&db.handshake_rtt_us, 0.5),
            Some(300)
        );
        assert_eq!(a.span_ns(), 120 * MINUTE_NS);
        assert!((db.opened_per_minute(a.span_ns()) - 5.0 / 120.0).abs() < 1e-9);
        let json = serde_json::to_string(&a).unwrap();
        let back: FlowStatsResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let other = FlowStatsResult {
            by: FlowGrouping::Pair,
            ..FlowStatsResult::default()
        };
        assert!(a.merge(&other).is_err());
    }
}
