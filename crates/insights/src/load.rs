//! Reads the columns the analyses need from an index: calls selected by a
//! KFL filter (compiled by `trawl_index::kfl` to a DataFusion predicate,
//! so it pushes down into the Parquet scan) and a time window, and flows
//! by an SQL-free window. Rows come back as small structs sorted by time;
//! at most [`crate::MAX_ROWS`] of each.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_nested::expr_fn::array_element;
use datafusion::logical_expr::{Expr, lit};
use trawl_index::kfl::{KflQueryError, catalogue_for_kfl, to_datafusion};
use trawl_model::catalogue::call_fields;

use crate::{InsightsError, MAX_ROWS, TimeRange};

/// One end of a call or flow, as the analyses name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Side {
    pub ip: String,
    pub port: i64,
    pub name: String,
    pub service: String,
    pub dns: String,
}

impl Side {
    /// The name people use: the service, else the pod or external name,
    /// else the DNS name, else the IP.
    pub fn display(&self) -> &str {
        [&self.service, &self.name, &self.dns]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or(&self.ip)
    }

    /// KFL that selects this end (`side` is `src` or `dst`).
    pub fn kfl(&self, side: &str) -> String {
        let (field, v) = self.key();
        format!("{side}.{field} == {}", crate::util::quote(v))
    }

    /// SQL over `flows` that selects this end.
    pub fn sql(&self, side: &str) -> String {
        let (field, v) = self.key();
        format!(
            "{side}_{} = {}",
            field.replace('.', "_"),
            crate::util::sql_quote(v)
        )
    }

    fn key(&self) -> (&'static str, &str) {
        if !self.service.is_empty() {
            ("service.name", &self.service)
        } else if !self.name.is_empty() {
            ("name", &self.name)
        } else if !self.dns.is_empty() {
            ("dns", &self.dns)
        } else {
            ("ip", &self.ip)
        }
    }

    /// True when `name` is this end's service, name, DNS name or IP.
    pub fn matches(&self, name: &str) -> bool {
        !name.is_empty()
            && (self.service == name || self.name == name || self.dns == name || self.ip == name)
    }
}

/// The columns of a call the analyses read.
#[derive(Clone, Debug, Default)]
pub struct CallRow {
    pub id: String,
    pub node: String,
    pub conn_id: i64,
    pub ts: i64,
    pub elapsed_us: i64,
    pub protocol: String,
    pub src: Side,
    pub dst: Side,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub has_response: bool,
    /// The first DNS question, for DNS calls.
    pub question: String,
    /// Its type (`A`, `AAAA`, …).
    pub qtype: String,
}

impl CallRow {
    pub fn is_http(&self) -> bool {
        self.protocol == "http" || self.protocol == "grpc"
    }

    /// A 5xx, or no answer (to a message that has one), or a non-HTTP
    /// error code (DNS rcode, …).
    pub fn failed(&self) -> bool {
        (!self.has_response && !self.one_way())
            || (self.is_http() && self.status >= 500)
            || (!self.is_http() && self.status != 0)
    }

    /// A message no server answers (PostgreSQL's Terminate, MySQL's
    /// QUIT): its missing response is not a failure.
    pub fn one_way(&self) -> bool {
        ONE_WAY
            .iter()
            .any(|(p, m)| self.protocol == *p && self.method == *m)
    }

    pub fn end_ns(&self) -> i64 {
        self.ts.saturating_add(self.elapsed_us.saturating_mul(1000))
    }

    pub fn flow_key(&self) -> (String, i64) {
        (self.node.clone(), self.conn_id)
    }
}

/// (protocol, method) of messages that have no response by design.
pub const ONE_WAY: &[(&str, &str)] = &[
    ("postgresql", "Terminate"),
    ("mysql", "QUIT"),
    ("mysql", "COM_QUIT"),
];

/// The columns of a flow the analyses read.
#[derive(Clone, Debug, Default)]
pub struct FlowRow {
    pub node: String,
    pub conn_id: i64,
    pub ts: i64,
    pub last_ts: i64,
    pub tcp: bool,
    pub src: Side,
    pub dst: Side,
    pub calls: i64,
    pub handshake: String,
    pub closed_by: String,
    pub rst_count: i64,
    pub initial_rtt_us: i64,
}

impl FlowRow {
    pub fn id(&self) -> String {
        format!("{}/{}", self.node, self.conn_id)
    }
}

/// Rows read and whether [`MAX_ROWS`] cut them.
#[derive(Debug, Default)]
pub struct Loaded<T> {
    pub rows: Vec<T>,
    pub truncated: bool,
}

fn col(name: &str) -> Expr {
    Expr::Column(Column::from_name(name))
}

fn ts_lit(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

fn window_expr(w: &TimeRange, column: &str) -> Option<Expr> {
    let from = w.from_ns.map(|f| col(column).gt_eq(ts_lit(f)));
    let to = w.to_ns.map(|t| col(column).lt(ts_lit(t)));
    match (from, to) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, b) => a.or(b),
    }
}

fn runtime(dir: &Path) -> Result<tokio::runtime::Runtime, InsightsError> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("trawl-insights")
        .build()
        .map_err(|source| {
            InsightsError::from(trawl_index::IndexError::Io {
                path: dir.to_path_buf(),
                source,
            })
        })
}

/// Compiles `kfl` (empty = every call) to a predicate over `calls`.
pub fn calls_predicate(kfl: &str) -> Result<Option<Expr>, InsightsError> {
    if kfl.trim().is_empty() {
        return Ok(None);
    }
    let cat = catalogue_for_kfl(call_fields());
    let filter = trawl_kfl::compile(kfl, &cat).map_err(KflQueryError::from)?;
    let e = to_datafusion(&filter, call_fields()).map_err(KflQueryError::from)?;
    Ok(Some(e))
}

async fn collect(
    ctx: &datafusion::prelude::SessionContext,
    table: &str,
    filter: Option<Expr>,
    select: Vec<Expr>,
) -> Result<(Vec<RecordBatch>, bool), InsightsError> {
    let mut df = ctx.table(table).await?;
    if let Some(f) = filter {
        df = df.filter(f)?;
    }
    let df = df.select(select)?;
    // Unsorted: the rows are sorted by time once they are structs (an
    // index sort), which costs a fraction of DataFusion sorting every
    // string column. Only when the rows are too many does DataFusion
    // pick the earliest MAX_ROWS.
    let batches = df.clone().limit(0, Some(MAX_ROWS + 1))?.collect().await?;
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if n <= MAX_ROWS {
        return Ok((batches, false));
    }
    let batches = df
        .sort(vec![col("timestamp").sort(true, false)])?
        .limit(0, Some(MAX_ROWS))?
        .collect()
        .await?;
    Ok((batches, true))
}

/// Calls matching `kfl` inside `window`, in time order.
pub fn calls(dir: &Path, kfl: &str, window: &TimeRange) -> Result<Loaded<CallRow>, InsightsError> {
    let pred = calls_predicate(kfl)?;
    calls_where(dir, pred, window)
}

/// Calls matching an already compiled predicate inside `window`.
pub fn calls_where(
    dir: &Path,
    pred: Option<Expr>,
    window: &TimeRange,
) -> Result<Loaded<CallRow>, InsightsError> {
    crate::check_index(dir)?;
    let filter = match (pred, window_expr(window, "timestamp")) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, b) => a.or(b),
    };
    let mut select: Vec<Expr> = CALL_COLUMNS.iter().map(|c| col(c)).collect();
    select.push(
        coalesce(vec![
            array_element(col("dns_questions"), lit(1i64)),
            lit(""),
        ])
        .alias("question"),
    );
    select.push(
        coalesce(vec![
            array_element(col("dns_question_types"), lit(1i64)),
            lit(""),
        ])
        .alias("qtype"),
    );
    let rt = runtime(dir)?;
    let (batches, truncated) = rt.block_on(async {
        let ctx = trawl_index::session(dir).await?;
        collect(&ctx, "calls", filter, select).await
    })?;
    let mut rows = Vec::new();
    for b in &batches {
        let c = Cols::new(b)?;
        let (id, node, conn_id, ts, elapsed, protocol) = (
            c.col("id"),
            c.col("node"),
            c.col("conn_id"),
            c.col("timestamp"),
            c.col("elapsed_time"),
            c.col("protocol"),
        );
        let (src, dst, method, path, status, has_response, question) = (
            c.side("src"),
            c.side("dst"),
            c.col("method"),
            c.col("path"),
            c.col("status_code"),
            c.col("has_response"),
            c.col("question"),
        );
        let qtype = c.col("qtype");
        for i in 0..b.num_rows() {
            if rows.len() >= MAX_ROWS {
                break;
            }
            rows.push(CallRow {
                id: id.s(i),
                node: node.s(i),
                conn_id: conn_id.i(i),
                ts: ts.i(i),
                elapsed_us: elapsed.i(i),
                protocol: protocol.s(i),
                src: src.at(i),
                dst: dst.at(i),
                method: method.s(i),
                path: path.s(i),
                status: status.i(i),
                has_response: has_response.b(i),
                question: question.s(i),
                qtype: qtype.s(i),
            });
        }
    }
    rows.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
    Ok(Loaded { rows, truncated })
}

const CALL_COLUMNS: &[&str] = &[
    "id",
    "node",
    "conn_id",
    "timestamp",
    "elapsed_time",
    "protocol",
    "src_ip",
    "src_port",
    "src_name",
    "src_service_name",
    "src_dns",
    "dst_ip",
    "dst_port",
    "dst_name",
    "dst_service_name",
    "dst_dns",
    "method",
    "path",
    "status_code",
    "has_response",
];

const FLOW_COLUMNS: &[&str] = &[
    "node",
    "conn_id",
    "timestamp",
    "last_timestamp",
    "tcp",
    "src_ip",
    "src_port",
    "src_name",
    "src_service_name",
    "src_dns",
    "dst_ip",
    "dst_port",
    "dst_name",
    "dst_service_name",
    "dst_dns",
    "calls",
    "handshake",
    "closed_by",
    "rst_count",
    "initial_rtt_us",
];

/// Flows that were open at some point of `window`, in time order.
pub fn flows(dir: &Path, window: &TimeRange) -> Result<Loaded<FlowRow>, InsightsError> {
    crate::check_index(dir)?;
    let from = window
        .from_ns
        .map(|f| col("last_timestamp").gt_eq(ts_lit(f)));
    let to = window.to_ns.map(|t| col("timestamp").lt(ts_lit(t)));
    let filter = match (from, to) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, b) => a.or(b),
    };
    let select = FLOW_COLUMNS.iter().map(|c| col(c)).collect();
    let rt = runtime(dir)?;
    let (batches, truncated) = rt.block_on(async {
        let ctx = trawl_index::session(dir).await?;
        collect(&ctx, "flows", filter, select).await
    })?;
    let mut rows = Vec::new();
    for b in &batches {
        let c = Cols::new(b)?;
        let (node, conn_id, ts, last_ts, tcp, src, dst) = (
            c.col("node"),
            c.col("conn_id"),
            c.col("timestamp"),
            c.col("last_timestamp"),
            c.col("tcp"),
            c.side("src"),
            c.side("dst"),
        );
        let (calls, handshake, closed_by, rst_count, initial_rtt_us) = (
            c.col("calls"),
            c.col("handshake"),
            c.col("closed_by"),
            c.col("rst_count"),
            c.col("initial_rtt_us"),
        );
        for i in 0..b.num_rows() {
            if rows.len() >= MAX_ROWS {
                break;
            }
            rows.push(FlowRow {
                node: node.s(i),
                conn_id: conn_id.i(i),
                ts: ts.i(i),
                last_ts: last_ts.i(i),
                tcp: tcp.b(i),
                src: src.at(i),
                dst: dst.at(i),
                calls: calls.i(i),
                handshake: handshake.s(i),
                closed_by: closed_by.s(i),
                rst_count: rst_count.i(i),
                initial_rtt_us: initial_rtt_us.i(i),
            });
        }
    }
    rows.sort_by(|a, b| (a.ts, &a.node, a.conn_id).cmp(&(b.ts, &b.node, b.conn_id)));
    Ok(Loaded { rows, truncated })
}

/// A batch's columns cast to the three types the rows use (Utf8, Int64,
/// Boolean), looked up by name once per batch; a missing column reads as
/// its zero value.
struct Cols {
    names: Vec<String>,
    arrays: Vec<ArrayRef>,
}

/// One column, typed.
enum Col<'a> {
    S(&'a arrow::array::StringArray),
    I(&'a arrow::array::Int64Array),
    B(&'a arrow::array::BooleanArray),
    Missing,
}

impl Col<'_> {
    fn s(&self, i: usize) -> String {
        match self {
            Col::S(a) if i < a.len() && a.is_valid(i) => a.value(i).to_owned(),
            _ => String::new(),
        }
    }

    fn i(&self, i: usize) -> i64 {
        match self {
            Col::I(a) if i < a.len() && a.is_valid(i) => a.value(i),
            _ => 0,
        }
    }

    fn b(&self, i: usize) -> bool {
        match self {
            Col::B(a) if i < a.len() && a.is_valid(i) => a.value(i),
            _ => false,
        }
    }
}

/// The five columns of one end.
struct SideCols<'a> {
    ip: Col<'a>,
    port: Col<'a>,
    name: Col<'a>,
    service: Col<'a>,
    dns: Col<'a>,
}

impl SideCols<'_> {
    fn at(&self, i: usize) -> Side {
        Side {
            ip: self.ip.s(i),
            port: self.port.i(i),
            name: self.name.s(i),
            service: self.service.s(i),
            dns: self.dns.s(i),
        }
    }
}

impl Cols {
    fn new(b: &RecordBatch) -> Result<Cols, InsightsError> {
        let mut names = Vec::new();
        let mut arrays = Vec::new();
        for (f, a) in b.schema().fields().iter().zip(b.columns()) {
            let to = match f.data_type() {
                DataType::Boolean => DataType::Boolean,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                _ => DataType::Int64,
            };
            let a = cast(a, &to).map_err(trawl_index::IndexError::from)?;
            names.push(f.name().clone());
            arrays.push(a);
        }
        Ok(Cols { names, arrays })
    }

    fn col(&self, name: &str) -> Col<'_> {
        let Some(a) = self
            .names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.arrays.get(i))
        else {
            return Col::Missing;
        };
        if let Some(s) = a.as_string_opt::<i32>() {
            Col::S(s)
        } else if let Some(p) = a.as_primitive_opt::<Int64Type>() {
            Col::I(p)
        } else if let Some(b) = a.as_boolean_opt() {
            Col::B(b)
        } else {
            Col::Missing
        }
    }

    fn side(&self, side: &str) -> SideCols<'_> {
        SideCols {
            ip: self.col(&format!("{side}_ip")),
            port: self.col(&format!("{side}_port")),
            name: self.col(&format!("{side}_name")),
            service: self.col(&format!("{side}_service_name")),
            dns: self.col(&format!("{side}_dns")),
        }
    }
}
