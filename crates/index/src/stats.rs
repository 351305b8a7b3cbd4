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
use trawl_model::catalogue::{CALL_FIELDS, FieldDef, FieldType};

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
    let cat = catalogue_for_kfl(CALL_FIELDS);
    let fields: Vec<&FieldDef> = CALL_FIELDS
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
    let predicate = to_datafusion(&filter, CALL_FIELDS)?;
    let mut select: Vec<Expr> = by
        .iter()
        .enumerate()
        .map(|(i, f)| cast(column(f.column), DataType::Utf8).alias(format!("g{i}")))
        .collect();
    select.extend([
        cast(column("timestamp"), DataType::Int64).alias("ts"),
        column("elapsed_time"),
        column("status_code"),
        column("protocol"),
        column("has_request"),
        column("has_response"),
    ]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("trawl-stats")
        .build()
        .map_err(IndexError::io(dir))?;
    let mut groups: HashMap<(Vec<String>, Option<i64>), GroupStats> = HashMap::new();
    runtime.block_on(async {
        let ctx = session(dir).await.map_err(KflQueryError::Index)?;
        let df = ctx
            .table("calls")
            .await?
            .filter(predicate)?
            .select(select)?;
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            aggregate(&batch?, by.len(), opts.interval_ns, &mut groups)?;
        }
        Ok::<_, KflQueryError>(())
    })?;
    let mut groups: Vec<GroupStats> = groups.into_values().collect();
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

/// Adds the rows of one batch (columns g0.., ts, elapsed_time,
/// status_code, protocol, has_request, has_response) to `groups`.
fn aggregate(
    b: &RecordBatch,
    nkeys: usize,
    interval_ns: Option<i64>,
    groups: &mut HashMap<(Vec<String>, Option<i64>), GroupStats>,
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
    let ts = col("ts")?;
    let ts = ts
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| bad_column("ts"))?;
    let elapsed = col("elapsed_time")?;
    let elapsed = elapsed
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| bad_column("elapsed_time"))?;
    let status = col("status_code")?;
    let status = status
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| bad_column("status_code"))?;
    let protocol = col("protocol")?;
    let protocol = protocol
        .as_string_opt::<i32>()
        .ok_or_else(|| bad_column("protocol"))?;
    let has_req = col("has_request")?;
    let has_req = has_req
        .as_boolean_opt()
        .ok_or_else(|| bad_column("has_request"))?;
    let has_resp = col("has_response")?;
    let has_resp = has_resp
        .as_boolean_opt()
        .ok_or_else(|| bad_column("has_response"))?;
    for row in 0..b.num_rows() {
        let key: Vec<String> = keys
            .iter()
            .map(|k| {
                if k.is_null(row) {
                    String::new()
                } else {
                    k.value(row).to_string()
                }
            })
            .collect();
        let bucket = interval_ns.map(|i| ts.value(row).div_euclid(i).saturating_mul(i));
        let g = groups
            .entry((key.clone(), bucket))
            .or_insert_with(|| GroupStats::new(key, bucket));
        g.count += 1;
        let answered = has_resp.value(row);
        let code = status.value(row);
        if !answered {
            g.no_response += 1;
            g.errors += 1;
        } else {
            match protocol.value(row) {
                "http" => {
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
                }
                "dns" if code == 0 => g.dns_ok += 1,
                "dns" => {
                    g.dns_error += 1;
                    g.errors += 1;
                }
                _ => {}
            }
            if has_req.value(row) {
                let us = u64::try_from(elapsed.value(row)).unwrap_or(0);
                g.latency_us.record(us).map_err(|e| {
                    IndexError::InvalidOption(format!("cannot record latency {us} µs: {e:?}"))
                })?;
            }
        }
    }
    Ok(())
}

/// Serde of a histogram as base64 of its V2 serialisation.
mod histogram_b64 {
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
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("bad latency histogram: {e:?}")))
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
    }
}
