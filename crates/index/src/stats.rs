//! `trawl stats`: per group of calls (and per time bucket) the count,
//! status classes, error rate and latency percentiles of the calls that
//! match a KFL filter. Called by the CLI (`trawl stats`); later by the hub,
//! which merges the answers of several nodes with [`StatsResult::merge`].
//!
//! DataFusion filters the `calls` table with the compiled KFL and streams
//! the group columns with the few columns stats need; the aggregation runs
//! here, in one pass, into a map from group key to [`GroupStats`].
//!
//! Latency is an HdrHistogram of `elapsed_time` (microseconds) with
//! [`SIGNIFICANT_DIGITS`] = 3: every reported percentile and maximum is
//! within 0.1 % (relative) of the exact value of the same rank. Histograms
//! merge exactly (bucket counts add), so percentiles of merged results are
//! those of the union — never averages of percentiles. They serialise as
//! base64 of HdrHistogram's V2 format, which other HdrHistogram
//! implementations read too.
//!
//! What counts (kept simple on purpose):
//! - HTTP: the final status code's class, `1xx` to `5xx`; an error is a
//!   `5xx`.
//! - DNS: the response code: `rcode 0` is ok, any other is an error
//!   (`dns_error`).
//! - Any protocol: a call without a response (`has_response` false) is an
//!   error too, and is counted in `no_response`.
//! - Latency is recorded only for calls with both a request and a
//!   response: for the others `elapsed_time` is 0 by convention and would
//!   drag the percentiles down.

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use base64::Engine as _;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, cast};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde::{Deserialize, Serialize};
use trawl_model::catalogue::{FieldDef, FieldType, call_fields};

use crate::IndexError;
use crate::kfl::{KflQueryError, catalogue_for_kfl, to_datafusion};
use crate::sql::session;

/// Significant decimal digits the latency histograms keep: 3 bounds the
/// relative error of any percentile to 0.1 % at about 2 × 2048 counters
/// per power of two of range, small enough to ship one per group.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Most `--by` fields: each adds a column to every group key; more than a
/// handful makes groups of one call, which `trawl query` shows better.
pub const MAX_GROUP_FIELDS: usize = 8;

/// What to group by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsOptions {
    /// KFL field names or aliases (scalar fields only); empty puts every
    /// matching call in one group.
    pub by: Vec<String>,
    /// Width of the time buckets in nanoseconds (`floor(timestamp /
    /// interval)`); `None` for no buckets.
    pub interval_ns: Option<i64>,
}

/// The statistics of one group (and bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupStats {
    /// The group's values of the `by` fields, as strings, in their order.
    pub key: Vec<String>,
    /// Start of the time bucket (ns since the epoch), when buckets were asked.
    pub bucket_start_ns: Option<i64>,
    pub count: u64,
    /// HTTP final status classes: index 0 is `1xx`, … 4 is `5xx`.
    pub http_classes: [u64; 5],
    /// DNS responses with rcode 0 / any other rcode.
    pub dns_ok: u64,
    pub dns_error: u64,
    /// Calls without a response (of any protocol).
    pub no_response: u64,
    /// `5xx` + DNS errors + calls without a response.
    pub errors: u64,
    /// `elapsed_time` (µs) of the calls with both a request and a response.
    #[serde(with = "histogram_b64")]
    pub latency_us: Histogram<u64>,
}

fn new_histogram() -> Histogram<u64> {
    #[expect(
        clippy::expect_used,
        reason = "3 significant digits is a valid setting"
    )]
    Histogram::new(SIGNIFICANT_DIGITS).expect("valid histogram settings")
}

impl GroupStats {
    fn new(key: Vec<String>, bucket_start_ns: Option<i64>) -> GroupStats {
        GroupStats {
            key,
            bucket_start_ns,
            count: 0,
            http_classes: [0; 5],
            dns_ok: 0,
            dns_error: 0,
            no_response: 0,
            errors: 0,
            latency_us: new_histogram(),
        }
    }

    /// Share of the calls that are errors (see the module doc), 0 to 1.
    pub fn error_rate(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.errors as f64 / self.count as f64
    }

    /// Latency (µs) at quantile `q` (0 to 1), nearest rank, within 0.1 %;
    /// `None` when no call of the group had a latency.
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q))
    }

    /// Largest latency (µs), within 0.1 %.
    pub fn latency_max_us(&self) -> Option<u64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.max())
    }

    fn merge(&mut self, o: &GroupStats) -> Result<(), IndexError> {
        self.count += o.count;
        for (a, b) in self.http_classes.iter_mut().zip(o.http_classes) {
            *a += b;
        }
        self.dns_ok += o.dns_ok;
        self.dns_error += o.dns_error;
        self.no_response += o.no_response;
        self.errors += o.errors;
        self.latency_us
            .add(&o.latency_us)
            .map_err(|e| IndexError::InvalidOption(format!("cannot merge histograms: {e:?}")))
    }
}

/// The statistics of every group, ordered by count (descending), then key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsResult {
    /// The KFL names of the `by` fields.
    pub by: Vec<String>,
    pub interval_ns: Option<i64>,
    pub groups: Vec<GroupStats>,
}

impl StatsResult {
    /// Adds `other` (e.g. another node's answer to the same question):
    /// groups with the same key and bucket merge exactly.
    pub fn merge(&mut self, other: &StatsResult) -> Result<(), IndexError> {
        if self.by != other.by || self.interval_ns != other.interval_ns {
            return Err(IndexError::InvalidOption(format!(
                "cannot merge stats by {:?} every {:?} ns with stats by {:?} every {:?} ns",
                self.by, self.interval_ns, other.by, other.interval_ns
            )));
        }
        let mut at: HashMap<(Vec<String>, Option<i64>), usize> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| ((g.key.clone(), g.bucket_start_ns), i))
            .collect();
        for g in &other.groups {
            match at.get(&(g.key.clone(), g.bucket_start_ns)) {
                Some(&i) => {
                    if let Some(mine) = self.groups.get_mut(i) {
                        mine.merge(g)?;
                    }
                }
                None => {
                    at.insert((g.key.clone(), g.bucket_start_ns), self.groups.len());
                    self.groups.push(g.clone());
                }
            }
        }
        sort_groups(&mut self.groups);
        Ok(())
    }
}

fn sort_groups(groups: &mut [GroupStats]) {
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.bucket_start_ns.cmp(&b.bucket_start_ns))
    });
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Computes the statistics of the calls in `dir` that match `kfl`,
/// blocking the calling thread.
pub fn stats(dir: &Path, kfl: &str, opts: &StatsOptions) -> Result<StatsResult, KflQueryError> {
    if opts.by.len() > MAX_GROUP_FIELDS {
        return Err(IndexError::InvalidOption(format!(
            "{} group fields; group by at most {MAX_GROUP_FIELDS}",
            opts.by.len()
        ))
        .into());
    }
    if let Some(i) = opts.interval_ns
        && i <= 0
    {
        return Err(IndexError::InvalidOption(format!(
            "interval {i} ns: give a positive interval, e.g. 1m"
        ))
        .into());
    }
    let cat = catalogue_for_kfl(call_fields());
    let fields: Vec<&FieldDef> = call_fields()
        .iter()
        .filter(|f| f.ty != FieldType::PayloadRef)
        .collect();
    let mut by = Vec::new();
    for name in &opts.by {
        let f = cat
            .lookup(name)
            .and_then(|i| fields.get(i).copied())
            .ok_or_else(|| KflQueryError::UnknownField {
                name: name.clone(),
                suggestion: cat.suggest(name),
            })?;
        if matches!(
            f.ty,
            FieldType::StringList | FieldType::IntList | FieldType::StringMap
        ) {
            return Err(IndexError::InvalidOption(format!(
                "cannot group by {} (a {}): group by a scalar field",
                f.name,
                f.ty.as_str()
            ))
            .into());
        }
        by.push(f);
    }
    let filter = trawl_kfl::compile(kfl, &cat)?;
    let predicate = to_datafusion(&filter, call_fields())?;
    let mut select: Vec<Expr> = by
        .iter()
        .enumerate()
        .map(|(i, f)| cast(column(f.column), DataType::Utf8).alias(format!("g{i}")))
        .collect();
    // The time only when there are buckets: it is the widest column
    // stats reads (every value distinct), and without buckets unused.
    if opts.interval_ns.is_some() {
        select.push(cast(column("timestamp"), DataType::Int64).alias("ts"));
    }
    select.extend([
        column("elapsed_time"),
        column("status_code"),
        // The protocol flags rather than `protocol`: booleans, not a string
        // per row.
        column("http"),
        column("dns"),
        column("has_request"),
        column("has_response"),
    ]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("trawl-stats")
        .build()
        .map_err(IndexError::io(dir))?;
    let groups = runtime.block_on(async {
        let ctx = session(dir).await.map_err(KflQueryError::Index)?;
        let df = ctx
            .table("calls")
            .await?
            .filter(predicate)?
            .select(select)?;
        // One aggregator per partition of the scan, on the runtime's
        // threads (one per core), merged at the end: exact, as merging is.
        let streams = df.execute_stream_partitioned().await?;
        let nkeys = by.len();
        let interval_ns = opts.interval_ns;
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|mut stream| {
                tokio::spawn(async move {
                    let mut agg = Aggregator::default();
                    while let Some(batch) = stream.next().await {
                        agg.add(&batch?, nkeys, interval_ns)?;
                    }
                    agg.flush_latencies()?;
                    Ok::<_, KflQueryError>(agg)
                })
            })
            .collect();
        let mut total = Aggregator::default();
        for t in tasks {
            let agg = t
                .await
                .map_err(|e| IndexError::Worker(format!("a stats task failed: {e}")))??;
            total.merge(agg)?;
        }
        Ok::<_, KflQueryError>(total.groups)
    })?;
    let mut groups = groups;
    sort_groups(&mut groups);
    Ok(StatsResult {
        by: by.iter().map(|f| f.name.to_string()).collect(),
        interval_ns: opts.interval_ns,
        groups,
    })
}

fn bad_column(name: &str) -> IndexError {
    IndexError::InvalidOption(format!("stats: unexpected type of column {name}"))
}

/// Latencies a group buffers before they go into its histogram. Recording
/// straight into the histograms of many groups row by row missed the cache
/// on nearly every row (a 3-digit histogram spans a few hundred KB, and
/// tens of them do not fit); buffered, one group's values go in together
/// while its histogram is in cache. 4096 values are 32 KB per group.
const PENDING_LATENCIES: usize = 4096;

/// Groups being aggregated. A row finds its group by its key encoded into
/// a reused buffer (each key value length-prefixed, then the bucket), so
/// only a new group allocates: millions of rows cost a hash and a lookup
/// each.
#[derive(Default)]
struct Aggregator {
    at: HashMap<Vec<u8>, usize, foldhash::fast::RandomState>,
    groups: Vec<GroupStats>,
    /// Per group, latencies (µs) not yet in its histogram.
    pending: Vec<Vec<u64>>,
    buf: Vec<u8>,
}

fn record_all(g: &mut GroupStats, values: &mut Vec<u64>) -> Result<(), IndexError> {
    for &us in values.iter() {
        g.latency_us.record(us).map_err(|e| {
            IndexError::InvalidOption(format!("cannot record latency {us} µs: {e:?}"))
        })?;
    }
    values.clear();
    Ok(())
}

fn encode_key<'a>(buf: &mut Vec<u8>, key: impl Iterator<Item = &'a str>, bucket: Option<i64>) {
    buf.clear();
    for k in key {
        buf.extend_from_slice(&(k.len() as u64).to_le_bytes());
        buf.extend_from_slice(k.as_bytes());
    }
    if let Some(b) = bucket {
        buf.extend_from_slice(&b.to_le_bytes());
    }
}

impl Aggregator {
    /// The index of the group of `key` and `bucket`, created when new.
    fn group<'a>(
        &mut self,
        key: impl Iterator<Item = &'a str> + Clone,
        bucket: Option<i64>,
    ) -> usize {
        encode_key(&mut self.buf, key.clone(), bucket);
        if let Some(&i) = self.at.get(self.buf.as_slice()) {
            return i;
        }
        let i = self.groups.len();
        self.groups
            .push(GroupStats::new(key.map(str::to_string).collect(), bucket));
        self.pending.push(Vec::new());
        self.at.insert(self.buf.clone(), i);
        i
    }

    /// Moves every buffered latency into its group's histogram.
    fn flush_latencies(&mut self) -> Result<(), IndexError> {
        for (g, p) in self.groups.iter_mut().zip(self.pending.iter_mut()) {
            record_all(g, p)?;
        }
        Ok(())
    }

    /// Adds another partition's groups (whose latencies are flushed).
    fn merge(&mut self, other: Aggregator) -> Result<(), IndexError> {
        for g in other.groups {
            let i = self.group(g.key.iter().map(String::as_str), g.bucket_start_ns);
            if let Some(mine) = self.groups.get_mut(i) {
                mine.merge(&g)?;
            }
        }
        Ok(())
    }

    /// Adds the rows of one batch (columns g0.., ts when `interval_ns` is
    /// set, elapsed_time, status_code, http, dns, has_request,
    /// has_response).
    fn add(
        &mut self,
        b: &RecordBatch,
        nkeys: usize,
        interval_ns: Option<i64>,
    ) -> Result<(), IndexError> {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| bad_column(name))
                .cloned()
        };
        let keys = (0..nkeys)
            .map(|i| {
                let name = format!("g{i}");
                let c = col(&name)?;
                c.as_string_opt::<i32>()
                    .cloned()
                    .ok_or_else(|| bad_column(&name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ts = match interval_ns {
            Some(_) => Some(col("ts")?),
            None => None,
        };
        let ts = match &ts {
            Some(ts) => Some(
                ts.as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| bad_column("ts"))?,
            ),
            None => None,
        };
        let elapsed = col("elapsed_time")?;
        let elapsed = elapsed
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad_column("elapsed_time"))?;
        let status = col("status_code")?;
        let status = status
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad_column("status_code"))?;
        let http = col("http")?;
        let http = http.as_boolean_opt().ok_or_else(|| bad_column("http"))?;
        let dns = col("dns")?;
        let dns = dns.as_boolean_opt().ok_or_else(|| bad_column("dns"))?;
        let has_req = col("has_request")?;
        let has_req = has_req
            .as_boolean_opt()
            .ok_or_else(|| bad_column("has_request"))?;
        let has_resp = col("has_response")?;
        let has_resp = has_resp
            .as_boolean_opt()
            .ok_or_else(|| bad_column("has_response"))?;
        for row in 0..b.num_rows() {
            let key = keys
                .iter()
                .map(|k| if k.is_null(row) { "" } else { k.value(row) });
            let bucket = match (interval_ns, ts) {
                (Some(i), Some(ts)) => Some(ts.value(row).div_euclid(i).saturating_mul(i)),
                _ => None,
            };
            let i = self.group(key, bucket);
            let Some(g) = self.groups.get_mut(i) else {
                continue;
            };
            g.count += 1;
            let answered = has_resp.value(row);
            let code = status.value(row);
            if !answered {
                g.no_response += 1;
                g.errors += 1;
            } else {
                if http.value(row) {
                    if let Some(c) = usize::try_from(code / 100)
                        .ok()
                        .and_then(|c| c.checked_sub(1))
                        .and_then(|c| g.http_classes.get_mut(c))
                    {
                        *c += 1;
                    }
                    if (500..600).contains(&code) {
                        g.errors += 1;
                    }
                } else if dns.value(row) {
                    if code == 0 {
                        g.dns_ok += 1;
                    } else {
                        g.dns_error += 1;
                        g.errors += 1;
                    }
                }
                if has_req.value(row)
                    && let Some(p) = self.pending.get_mut(i)
                {
                    p.push(u64::try_from(elapsed.value(row)).unwrap_or(0));
                    if p.len() >= PENDING_LATENCIES {
                        record_all(g, p)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Serde of a histogram as base64 of its V2 serialisation.
pub(crate) mod histogram_b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(h, &mut buf)
            .map_err(|e| serde::ser::Error::custom(format!("{e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(buf))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("bad latency histogram: {e:?}")))?;
        // V2 does not carry auto-resize; without it, merging a histogram
        // with a larger range into this one fails (another node's slower
        // calls).
        h.auto(true);
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(key: &str, latencies: &[u64]) -> GroupStats {
        let mut g = GroupStats::new(vec![key.to_string()], None);
        for &l in latencies {
            g.count += 1;
            g.latency_us.record(l).unwrap();
        }
        g
    }

    #[test]
    fn keys_encode_unambiguously_and_partitions_merge() {
        let enc = |k: &[&str], b: Option<i64>| {
            let mut buf = Vec::new();
            encode_key(&mut buf, k.iter().copied(), b);
            buf
        };
        assert_ne!(enc(&["a", "bc"], None), enc(&["ab", "c"], None));
        assert_ne!(enc(&["a"], Some(0)), enc(&["a"], None));
        let mut a = Aggregator::default();
        let mut b = Aggregator::default();
        let i = a.group(["/x", "GET"].into_iter(), None);
        a.groups[i].count = 2;
        let j = b.group(["/x", "GET"].into_iter(), None);
        b.groups[j].count = 3;
        b.group(["/y", "GET"].into_iter(), None);
        a.merge(b).unwrap();
        assert_eq!(a.groups.len(), 2);
        assert_eq!(a.groups[i].count, 5);
        assert_eq!(a.groups[i].key, ["/x", "GET"]);
    }

    #[test]
    fn serde_round_trips_and_merge_adds_histograms() {
        let mut a = StatsResult {
            by: vec!["path".into()],
            interval_ns: None,
            groups: vec![group("/a", &[100, 200, 300])],
        };
        let b = StatsResult {
            by: vec!["path".into()],
            interval_ns: None,
            groups: vec![group("/a", &[1_000_000]), group("/b", &[5])],
        };
        let json = serde_json::to_string(&b).unwrap();
        let back: StatsResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        a.merge(&back).unwrap();
        assert_eq!(a.groups.len(), 2);
        assert_eq!(a.groups[0].count, 4);
        assert_eq!(
            a.groups[0].latency_us,
            group("/a", &[100, 200, 300, 1_000_000]).latency_us
        );
        let max = a.groups[0].latency_max_us().unwrap();
        assert!(max.abs_diff(1_000_000) <= 1_000, "{max}");
        let other = StatsResult {
            by: vec!["method".into()],
            ..StatsResult::default()
        };
        assert!(a.merge(&other).is_err());

        // A deserialised result (a node's answer at the hub) takes in a
        // slower node's calls: its histogram grows instead of refusing.
        let small = StatsResult {
            by: vec!["path".into()],
            interval_ns: None,
            groups: vec![group("/a", &[10])],
        };
        let mut at_hub: StatsResult =
            serde_json::from_str(&serde_json::to_string(&small).unwrap()).unwrap();
        let slow = StatsResult {
            by: vec!["path".into()],
            interval_ns: None,
            groups: vec![group("/a", &[3_600_000_000])],
        };
        at_hub.merge(&slow).unwrap();
        assert_eq!(at_hub.groups[0].count, 2);
    }
}
