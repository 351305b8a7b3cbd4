//! KFL over an index: a filter checked by `trawl-kfl` is compiled once into
//! a DataFusion expression over the `calls` table ([`to_datafusion`]), so
//! it runs vectorised and pushes down into the Parquet scan, and [`query`]
//! pages through the matching calls. Called by `trawl query` and
//! `trawl stats`; later by the hub and the MCP server.
//!
//! Semantics follow the reference interpreter (`Filter::matches`): where
//! CEL raises an error (a missing map key, an index out of range, a
//! division by zero) the compiled expression yields SQL NULL, and NULL
//! behaves like a CEL error under `&&`, `||`, `!` and in the final filter
//! (false wins over it in `&&`, true wins in `||`, and a row whose filter
//! is NULL does not match).
//!
//! Each node is translated to native DataFusion where there is a direct
//! equivalent, macros included (`l.exists(x, x == c)` is `array_has`,
//! `l.all(x, x != c)` its negation, `l.exists_one(x, x == c)` counts
//! `array_positions`, `l.filter(x, x != c)` is `array_remove_all`). A
//! node with none (any other macro body, map literals, timestamp and
//! duration arithmetic, `timestamp()` of a field, …) is evaluated by the
//! interpreter through a scalar UDF over the columns it reads
//! (`udf::KflUdf`), at the smallest enclosing node that has no free macro
//! variable and an Arrow type; the rest of the filter stays native, so
//! `http && status_code >= 500 && headers.exists(k, k.startsWith("x-"))`
//! still prunes row groups by status code.
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use base64::Engine as _;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn::{
    character_length, coalesce, contains, ends_with, regexp_like, starts_with,
};
use datafusion::functions_nested::expr_fn::{
    array_element, array_has, cardinality, map_extract, map_keys,
};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, cast, lit, when};
use trawl_kfl::{
    ArithOp, Catalogue, CmpOp, Comprehension, ExprKind, FieldSpec, Filter, Function, KflError,
    MacroKind, Pattern, Span, Type, Value,
};
use trawl_model::catalogue::{FieldDef, FieldType, call_fields};

use crate::IndexError;
use crate::sql::session;

mod udf;

/// Most rows one page may ask for. A page is held in memory and printed;
/// 100 000 calls is already far more than a person reads, and an agent
/// should aggregate (`trawl sql`, `trawl stats`) rather than page through
/// more.
pub const MAX_QUERY_LIMIT: usize = 100_000;

/// Columns `trawl query` shows when no `--fields` are given.
pub const DEFAULT_FIELDS: &[&str] = &[
    "timestamp",
    "protocol",
    "src.ip",
    "dst.ip",
    "method",
    "path",
    "status_code",
    "elapsed_time",
];

/// A filter that checks but cannot (yet) be compiled to DataFusion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {line}:{col}")]
pub struct KflToSqlError {
    pub message: String,
    pub span: Span,
    pub line: usize,
    pub col: usize,
}

/// Everything a KFL query can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KflQueryError {
    /// The filter does not compile (syntax, unknown name, type).
    #[error(transparent)]
    Kfl(#[from] KflError),
    #[error(transparent)]
    Unsupported(#[from] KflToSqlError),
    #[error("unknown field {name:?} in the sort or field list{}", suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownField {
        name: String,
        suggestion: Option<String>,
    },
    #[error("bad cursor {0:?}: pass the cursor printed by the previous page unchanged")]
    BadCursor(String),
    #[error("limit {0} out of range: ask for 1 to {MAX_QUERY_LIMIT} rows")]
    BadLimit(usize),
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl From<datafusion::error::DataFusionError> for KflQueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        KflQueryError::Index(IndexError::from(e))
    }
}

/// The fields KFL can name, in the order of its catalogue: `fields` less
/// the payload references, which are not filterable.
fn kfl_fields(fields: &[FieldDef]) -> Vec<&FieldDef> {
    fields
        .iter()
        .filter(|f| f.ty != FieldType::PayloadRef)
        .collect()
}

fn kfl_type(ty: FieldType) -> Option<Type> {
    Some(match ty {
        FieldType::Bool => Type::Bool,
        FieldType::Int => Type::Int,
        FieldType::Uint => Type::Uint,
        FieldType::Double => Type::Double,
        FieldType::String => Type::String,
        FieldType::Bytes => Type::Bytes,
        FieldType::Timestamp => Type::Timestamp,
        FieldType::Duration => Type::Duration,
        FieldType::StringList => Type::List(Box::new(Type::String)),
        FieldType::IntList => Type::List(Box::new(Type::Int)),
        FieldType::StringMap => Type::Map(Box::new(Type::String), Box::new(Type::String)),
        FieldType::PayloadRef => return None,
    })
}

/// The KFL catalogue of `fields` (payload references left out). Field
/// index `i` of the result is the `i`-th non-payload field of `fields`.
///
/// # Panics
/// Never for the model's tables: their names and aliases are distinct
/// (checked by a test in `trawl-model`); a duplicate would panic here.
pub fn catalogue_for_kfl(fields: &[FieldDef]) -> Catalogue {
    let specs = kfl_fields(fields)
        .into_iter()
        .filter_map(|f| {
            Some(FieldSpec {
                name: f.name.to_string(),
                aliases: f.aliases.iter().map(|a| a.to_string()).collect(),
                ty: kfl_type(f.ty)?,
            })
        })
        .collect();
    #[expect(
        clippy::expect_used,
        reason = "the static catalogue's names are distinct"
    )]
    Catalogue::new(specs).expect("field catalogue names are distinct")
}

/// Compiles a checked filter to a DataFusion predicate over the table of
/// `fields`; the empty filter becomes `true`.
pub fn to_datafusion(filter: &Filter, fields: &[FieldDef]) -> Result<Expr, KflToSqlError> {
    let Some(e) = filter.expr() else {
        return Ok(lit(true));
    };
    let c = Compiler {
        src: filter.source(),
        fields: kfl_fields(fields),
        now: now_ns(),
    };
    c.expr(e)
}

struct Compiler<'a> {
    src: &'a str,
    fields: Vec<&'a FieldDef>,
    /// The value of `now()`, fixed once per query for both paths.
    now: i64,
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn binary(l: Expr, op: Operator, r: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)))
}

impl Compiler<'_> {
    fn unsupported(&self, span: Span, what: &str) -> KflToSqlError {
        let (line, col) = line_col(self.src, span.start);
        KflToSqlError {
            message: format!("{what} is not supported in queries yet"),
            span,
            line,
            col,
        }
    }

    /// The native translation of `e`, or, when it has none, the
    /// interpreter's evaluation of `e` as a UDF (when `e` can be cut out:
    /// no free variables and an Arrow type; else the error goes up to the
    /// parent, which tries the same).
    fn expr(&self, e: &trawl_kfl::Expr) -> Result<Expr, KflToSqlError> {
        match self.native(e) {
            Ok(x) => Ok(x),
            Err(err) => self.fallback(e).ok_or(err),
        }
    }

    /// `e` evaluated by the interpreter: a UDF over the columns it reads,
    /// or a constant when it reads none.
    fn fallback(&self, e: &trawl_kfl::Expr) -> Option<Expr> {
        if e.has_free_vars() {
            return None;
        }
        let ret = udf::arrow_of(&e.ty)?;
        let ctx = trawl_kfl::EvalContext { now: self.now };
        let read = e.fields_read();
        if read.is_empty() {
            struct NoFields;
            impl trawl_kfl::Record for NoFields {
                fn field(&self, _idx: usize) -> Value {
                    Value::Null
                }
            }
            let v = trawl_kfl::eval_expr(e, &NoFields, &ctx).ok();
            return udf::scalar_of(&e.ty, v).ok().map(lit);
        }
        let mut args = Vec::with_capacity(read.len());
        let mut cols = Vec::with_capacity(read.len());
        for idx in read {
            let f = self.fields.get(idx)?;
            args.push((idx, kfl_type(f.ty)?));
            cols.push(column(f.column));
        }
        let u = udf::KflUdf::new(self.src, e, args, ret, ctx);
        Some(datafusion::logical_expr::ScalarUDF::new_from_impl(u).call(cols))
    }

    fn native(&self, e: &trawl_kfl::Expr) -> Result<Expr, KflToSqlError> {
        use ExprKind as K;
        Ok(match &e.kind {
            K::Literal(v) => self.literal(v, e.span)?,
            K::Field(idx) => match self.fields.get(*idx) {
                Some(f) => column(f.column),
                None => return Err(self.unsupported(e.span, "a field outside the catalogue")),
            },
            K::Var(_) => return Err(self.unsupported(e.span, "a macro variable")),
            K::List(_) => return Err(self.unsupported(e.span, "a list literal outside `in`")),
            K::Map(_) => return Err(self.unsupported(e.span, "a map literal")),
            K::Not(x) => Expr::Not(Box::new(self.expr(x)?)),
            K::Neg(x) => Expr::Negative(Box::new(self.expr(x)?)),
            K::And(a, b) => self.expr(a)?.and(self.expr(b)?),
            K::Or(a, b) => self.expr(a)?.or(self.expr(b)?),
            K::Cond(c, t, f) => {
                // NULL (a CEL error) in the condition must stay NULL, not
                // pick the else branch.
                let c = self.expr(c)?;
                when(c.clone(), self.expr(t)?)
                    .when(Expr::Not(Box::new(c)), self.expr(f)?)
                    .end()
                    .map_err(|_| self.unsupported(e.span, "this conditional"))?
            }
            K::Arith(op, a, b) => self.arith(*op, a, b, e)?,
            K::Compare(op, a, b) => {
                let op = match op {
                    CmpOp::Eq => Operator::Eq,
                    CmpOp::Ne => Operator::NotEq,
                    CmpOp::Lt => Operator::Lt,
                    CmpOp::Le => Operator::LtEq,
                    CmpOp::Gt => Operator::Gt,
                    CmpOp::Ge => Operator::GtEq,
                };
                binary(self.expr(a)?, op, self.expr(b)?)
            }
            K::In(x, c) => self.in_(x, c)?,
            K::Index(c, k) => self.index(c, k, e.span)?,
            K::Call(f, args) => self.call(*f, args, e.span)?,
            K::Matches(s, p) => {
                let pat = match p {
                    Pattern::Compiled(re) => lit(re.as_str()),
                    Pattern::Dynamic(p) => self.expr(p)?,
                };
                regexp_like(self.expr(s)?, pat, None)
            }
            K::Comprehension(c) => self.comprehension(c, e.span)?,
        })
    }

    /// The macros that have a direct array function: a body comparing the
    /// variable with a literal or a field (which cannot fail, so CEL's
    /// error absorption over elements does not arise).
    fn comprehension(&self, c: &Comprehension, span: Span) -> Result<Expr, KflToSqlError> {
        let name = match c.kind {
            MacroKind::Exists => "`exists`",
            MacroKind::All => "`all`",
            MacroKind::ExistsOne => "`exists_one`",
            MacroKind::Filter => "`filter`",
            MacroKind::Map => "`map`",
        };
        let refuse = || self.unsupported(span, &format!("this {name}"));
        let (range, elem_ty) = match &c.range.ty {
            Type::List(t) => (self.native(&c.range)?, (**t).clone()),
            Type::Map(k, _) => (map_keys(self.native(&c.range)?), (**k).clone()),
            _ => return Err(refuse()),
        };
        if c.filter.is_some() {
            return Err(refuse());
        }
        let is_var = |x: &trawl_kfl::Expr| matches!(x.kind, ExprKind::Var(v) if v == c.var);
        // `x == e`, `e == x` (or `!=`) with `e` a literal or field of the
        // element's type.
        let operand = |op: CmpOp| -> Option<&trawl_kfl::Expr> {
            let ExprKind::Compare(o, a, b) = &c.body.kind else {
                return None;
            };
            let other = match (is_var(a), is_var(b)) {
                (true, false) => b,
                (false, true) => a,
                _ => return None,
            };
            let simple = matches!(other.kind, ExprKind::Literal(_) | ExprKind::Field(_));
            (*o == op && simple && other.ty == elem_ty && elem_ty != Type::Dyn).then_some(&**other)
        };
        use datafusion::functions_nested::expr_fn::{array_positions, array_remove_all};
        match c.kind {
            MacroKind::Exists => {
                if let Some(x) = operand(CmpOp::Eq) {
                    return Ok(array_has(range, self.native(x)?));
                }
            }
            MacroKind::All => {
                if let Some(x) = operand(CmpOp::Ne) {
                    return Ok(Expr::Not(Box::new(array_has(range, self.native(x)?))));
                }
            }
            MacroKind::ExistsOne => {
                if let Some(x) = operand(CmpOp::Eq) {
                    let n = cardinality(array_positions(range, self.native(x)?));
                    return Ok(n.eq(lit(1u64)));
                }
            }
            MacroKind::Filter => {
                if let Some(x) = operand(CmpOp::Ne) {
                    return Ok(array_remove_all(range, self.native(x)?));
                }
            }
            MacroKind::Map => {
                if is_var(&c.body) && matches!(c.range.ty, Type::List(_)) {
                    return Ok(range);
                }
            }
        }
        Err(refuse())
    }

    fn literal(&self, v: &Value, span: Span) -> Result<Expr, KflToSqlError> {
        Ok(lit(match v {
            // CEL's `null == null` is true, SQL's NULL = NULL is NULL: the
            // interpreter decides comparisons with null.
            Value::Null => return Err(self.unsupported(span, "null")),
            Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Value::Int(i) => ScalarValue::Int64(Some(*i)),
            Value::Uint(u) => ScalarValue::UInt64(Some(*u)),
            Value::Double(d) => ScalarValue::Float64(Some(*d)),
            Value::String(s) => ScalarValue::Utf8(Some(s.to_string())),
            Value::Bytes(b) => ScalarValue::Binary(Some(b.to_vec())),
            Value::Timestamp(t) => ScalarValue::TimestampNanosecond(Some(*t), Some("UTC".into())),
            Value::Duration(d) => ScalarValue::DurationNanosecond(Some(*d)),
            Value::List(_) => return Err(self.unsupported(span, "a list literal outside `in`")),
            Value::Map(_) => return Err(self.unsupported(span, "a map literal")),
        }))
    }

    fn arith(
        &self,
        op: ArithOp,
        a: &trawl_kfl::Expr,
        b: &trawl_kfl::Expr,
        e: &trawl_kfl::Expr,
    ) -> Result<Expr, KflToSqlError> {
        match e.ty {
            Type::Int | Type::Uint | Type::Double => {}
            Type::String if op == ArithOp::Add => {
                return Ok(binary(self.expr(a)?, Operator::StringConcat, self.expr(b)?));
            }
            _ => return Err(self.unsupported(e.span, &format!("arithmetic on {}", e.ty))),
        }
        let (l, r) = (self.expr(a)?, self.expr(b)?);
        let op = match op {
            ArithOp::Add => Operator::Plus,
            ArithOp::Sub => Operator::Minus,
            ArithOp::Mul => Operator::Multiply,
            ArithOp::Div => Operator::Divide,
            ArithOp::Rem => Operator::Modulo,
        };
        if matches!(op, Operator::Divide | Operator::Modulo) && e.ty != Type::Double {
            // CEL: integer division by zero is an error (NULL here);
            // DataFusion would fail the whole query instead.
            return when(r.clone().eq(lit(0)), lit(ScalarValue::Null))
                .otherwise(binary(l, op, r))
                .map_err(|_| self.unsupported(e.span, "this division"));
        }
        if e.ty == Type::Int && matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
        {
            // CEL: int overflow is an error (NULL here); DataFusion's Int64
            // arithmetic wraps. Exact in Decimal128 (a product of two i64
            // has at most 38 digits), then NULL when it does not fit.
            use arrow::datatypes::DataType as D;
            let wide = D::Decimal128(20, 0);
            let exact = binary(cast(l, wide.clone()), op, cast(r, wide));
            // Not TRY_CAST: DataFusion 55's unwrap-cast-in-comparison rule
            // drops a TRY_CAST under `> 0`, overflow included.
            let bound = |v: i64| lit(ScalarValue::Decimal128(Some(i128::from(v)), 38, 0));
            return when(
                exact.clone().between(bound(i64::MIN), bound(i64::MAX)),
                cast(exact, D::Int64),
            )
            .end()
            .map_err(|_| self.unsupported(e.span, "this arithmetic"));
        }
        Ok(binary(l, op, r))
    }

    fn in_(&self, x: &trawl_kfl::Expr, c: &trawl_kfl::Expr) -> Result<Expr, KflToSqlError> {
        let elem = self.expr(x)?;
        match (&c.kind, &c.ty) {
            (ExprKind::List(items), _) => {
                let items = items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.is_empty() {
                    return Ok(lit(false));
                }
                Ok(elem.in_list(items, false))
            }
            (ExprKind::Literal(Value::List(items)), _) => {
                let items = items
                    .iter()
                    .map(|v| self.literal(v, c.span))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.is_empty() {
                    return Ok(lit(false));
                }
                Ok(elem.in_list(items, false))
            }
            (_, Type::List(_)) => Ok(array_has(self.expr(c)?, elem)),
            (_, Type::Map(_, _)) => Ok(array_has(map_keys(self.expr(c)?), elem)),
            _ => Err(self.unsupported(c.span, &format!("`in` over {}", c.ty))),
        }
    }

    fn index(
        &self,
        c: &trawl_kfl::Expr,
        k: &trawl_kfl::Expr,
        span: Span,
    ) -> Result<Expr, KflToSqlError> {
        let container = self.expr(c)?;
        let key = self.expr(k)?;
        match &c.ty {
            // A missing key is a CEL error: NULL.
            Type::Map(_, _) => Ok(array_element(map_extract(container, key), lit(1i64))),
            // CEL indexes from 0 and has no negative indices; DataFusion
            // counts from 1 and reads negative ones from the end.
            Type::List(_) => when(key.clone().gt_eq(lit(0i64)), {
                array_element(container, key + lit(1i64))
            })
            .end()
            .map_err(|_| self.unsupported(span, "this index")),
            t => Err(self.unsupported(span, &format!("indexing {t}"))),
        }
    }

    fn call(
        &self,
        f: Function,
        args: &[trawl_kfl::Expr],
        span: Span,
    ) -> Result<Expr, KflToSqlError> {
        let a = |i: usize| -> Result<Expr, KflToSqlError> {
            match args.get(i) {
                Some(x) => self.expr(x),
                None => Err(self.unsupported(span, "a call with missing arguments")),
            }
        };
        let ty0 = args.first().map(|x| x.ty.clone()).unwrap_or(Type::Dyn);
        Ok(match f {
            Function::Contains => contains(a(0)?, a(1)?),
            Function::StartsWith => starts_with(a(0)?, a(1)?),
            Function::EndsWith => ends_with(a(0)?, a(1)?),
            Function::Size => {
                let n = match ty0 {
                    Type::String => character_length(a(0)?),
                    // DataFusion's octet_length takes strings only.
                    Type::Bytes => return Err(self.unsupported(span, "size() of bytes")),
                    Type::List(_) | Type::Map(_, _) => cardinality(a(0)?),
                    t => return Err(self.unsupported(span, &format!("size() of {t}"))),
                };
                cast(n, arrow::datatypes::DataType::Int64)
            }
            Function::MapGet => coalesce(vec![
                array_element(map_extract(a(0)?, a(1)?), lit(1i64)),
                a(2)?,
            ]),
            Function::Now => lit(ScalarValue::TimestampNanosecond(
                Some(self.now),
                Some("UTC".into()),
            )),
            Function::ToInt | Function::ToUint | Function::ToDouble | Function::ToString => {
                use arrow::datatypes::DataType as D;
                let to = match f {
                    Function::ToInt => D::Int64,
                    Function::ToUint => D::UInt64,
                    Function::ToDouble => D::Float64,
                    _ => D::Utf8,
                };
                match ty0 {
                    Type::Int | Type::Uint | Type::Double | Type::String | Type::Bool => {}
                    t => return Err(self.unsupported(span, &format!("converting {t}"))),
                }
                Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(a(0)?), to))
            }
            Function::Timestamp => return Err(self.unsupported(span, "`timestamp()` of a field")),
            Function::Duration => return Err(self.unsupported(span, "`duration()` of a field")),
        })
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// 1-based line and column (in characters) of byte offset `at` in `src`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let (mut line, mut col) = (1, 1);
    for (i, c) in src.char_indices() {
        if i >= at {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// How to page through a KFL query's matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// Rows per page, 1 to [`MAX_QUERY_LIMIT`].
    pub limit: usize,
    /// (KFL field name, descending); empty means `timestamp` ascending.
    /// `id` is always the last key so that pages are stable.
    pub sort: Vec<(String, bool)>,
    /// KFL field names to return; `None` returns every non-payload field.
    pub fields: Option<Vec<String>>,
    /// Where the previous page ended ([`CallPage::next_cursor`]).
    pub cursor: Option<String>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            limit: 50,
            sort: Vec::new(),
            fields: None,
            cursor: None,
        }
    }
}

/// One page of a KFL query: the rows (columns named by KFL field names),
/// how many calls match in all, and the cursor of the next page.
#[derive(Debug)]
pub struct CallPage {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub total_matching: u64,
    /// `None` on the last page. For now an offset into the sorted matches
    /// (base64 of its decimal), so pages of an index that is not rewritten
    /// between calls are disjoint; the lead may replace it by a keyset
    /// cursor without changing the type.
    pub next_cursor: Option<String>,
}

impl CallPage {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The rows as JSON objects keyed by KFL field names.
    pub fn rows_json(&self) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, IndexError> {
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        for b in &self.batches {
            w.write(b)?;
        }
        w.finish()?;
        let buf = w.into_inner();
        if buf.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&buf)
            .map_err(|e| IndexError::InvalidOption(format!("cannot render rows as JSON: {e}")))
    }
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

fn decode_cursor(c: &str) -> Result<usize, KflQueryError> {
    let bad = || KflQueryError::BadCursor(c.to_string());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let s = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    s.strip_prefix('o')
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

fn field_by_name<'a>(
    cat: &Catalogue,
    fields: &[&'a FieldDef],
    name: &str,
) -> Result<&'a FieldDef, KflQueryError> {
    cat.lookup(name)
        .and_then(|i| fields.get(i).copied())
        .ok_or_else(|| KflQueryError::UnknownField {
            name: name.to_string(),
            suggestion: cat.suggest(name),
        })
}

/// Runs the KFL filter `kfl` over the calls of the index in `dir` and
/// returns one page of matches, blocking the calling thread.
pub fn query(dir: &Path, kfl: &str, opts: &QueryOptions) -> Result<CallPage, KflQueryError> {
    if opts.limit == 0 || opts.limit > MAX_QUERY_LIMIT {
        return Err(KflQueryError::BadLimit(opts.limit));
    }
    let cat = catalogue_for_kfl(call_fields());
    let fields = kfl_fields(call_fields());
    let filter = trawl_kfl::compile(kfl, &cat)?;
    let predicate = to_datafusion(&filter, call_fields())?;
    let offset = opts
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .unwrap_or(0);
    let mut sort = Vec::new();
    for (name, desc) in &opts.sort {
        let f = field_by_name(&cat, &fields, name)?;
        sort.push(column(f.column).sort(!desc, false));
    }
    if sort.is_empty() {
        sort.push(column("timestamp").sort(true, false));
    }
    sort.push(column("id").sort(true, false));
    let shown: Vec<&FieldDef> = match &opts.fields {
        Some(names) => names
            .iter()
            .map(|n| field_by_name(&cat, &fields, n))
            .collect::<Result<_, _>>()?,
        None => fields.clone(),
    };
    let select: Vec<Expr> = shown
        .iter()
        .map(|f| column(f.column).alias(f.name))
        .collect();

    // The columns the page is sorted by, plus `timestamp` (to narrow the
    // second pass to the row groups that hold the page) and `id`.
    let mut key_cols: Vec<&str> = Vec::new();
    for e in &sort {
        if let Expr::Column(c) = &e.expr
            && !key_cols.contains(&c.name.as_str())
        {
            key_cols.push(c.name.as_str());
        }
    }
    if !key_cols.contains(&"timestamp") {
        key_cols.push("timestamp");
    }
    let keys_select: Vec<Expr> = key_cols.iter().map(|c| column(c)).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("trawl-query")
        .build()
        .map_err(IndexError::io(dir))?;
    runtime.block_on(async {
        let ctx = session(dir).await?;
        let matching = ctx.table("calls").await?.filter(predicate.clone())?;
        // Late materialisation in two steps. First, the page's sort keys
        // and ids (TopK over a few narrow columns, whose dynamic filter
        // prunes row groups by their statistics once the page is full),
        // and, at the same time, the total. Sorting whole rows instead
        // decoded every column of every row group the TopK looked at, and
        // most of a query's time went to faulting in and zeroing those
        // buffers (bench/RESULTS.md, query).
        let keys = matching
            .clone()
            .select(keys_select)?
            .sort(sort.clone())?
            .limit(offset, Some(opts.limit))?;
        let (total, keys) = tokio::try_join!(matching.count(), keys.collect())?;
        // Then the page's rows, found by id within the time range the
        // page spans (so row-group and page statistics on `timestamp`
        // skip the rest of the index), sorted again.
        let page_filter = page_filter(&keys)?;
        let page = ctx
            .table("calls")
            .await?
            .filter(match page_filter {
                Some(f) => predicate.and(f),
                None => lit(false),
            })?
            .sort(sort)?
            .limit(0, Some(opts.limit))?
            .select(select)?;
        let schema: SchemaRef = Arc::new(page.schema().as_arrow().clone());
        let batches = page.collect().await?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let end = offset.saturating_add(rows);
        let total_matching = u64::try_from(total).unwrap_or(u64::MAX);
        let next_cursor = (rows > 0 && end < total).then(|| encode_cursor(end));
        Ok(CallPage {
            schema,
            batches,
            total_matching,
            next_cursor,
        })
    })
}

/// The filter that finds the rows of `keys` (batches with `id` and
/// `timestamp` columns) again: `id IN (…)` within their time range;
/// `None` when `keys` has no rows.
fn page_filter(keys: &[RecordBatch]) -> Result<Option<Expr>, KflQueryError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimestampNanosecondType};
    let mut ids: Vec<Expr> = Vec::new();
    let mut range: Option<(i64, i64)> = None;
    let mut null_ts = false;
    for b in keys {
        let (Some(id), Some(ts)) = (b.column_by_name("id"), b.column_by_name("timestamp")) else {
            return Err(
                IndexError::InvalidOption("query: page keys lack id or timestamp".into()).into(),
            );
        };
        let id = arrow::compute::cast(id, &DataType::Utf8).map_err(IndexError::from)?;
        let id = id.as_string::<i32>();
        let ts = ts
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| {
                IndexError::InvalidOption("query: timestamp is not in nanoseconds".into())
            })?;
        for row in 0..b.num_rows() {
            if id.is_null(row) {
                continue;
            }
            ids.push(lit(id.value(row)));
            if ts.is_null(row) {
                null_ts = true;
            } else {
                let t = ts.value(row);
                range = Some(range.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
            }
        }
    }
    if ids.is_empty() {
        return Ok(None);
    }
    let by_id = column("id").in_list(ids, false);
    Ok(Some(match range {
        Some((lo, hi)) if !null_ts => {
            let at = |t: i64| {
                lit(ScalarValue::TimestampNanosecond(
                    Some(t),
                    Some("UTC".into()),
                ))
            };
            column("timestamp").between(at(lo), at(hi)).and(by_id)
        }
        _ => by_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<Expr, KflToSqlError> {
        let cat = catalogue_for_kfl(call_fields());
        to_datafusion(&trawl_kfl::compile(src, &cat).unwrap(), call_fields())
    }

    #[test]
    fn catalogue_leaves_out_payloads_and_keeps_aliases() {
        let cat = catalogue_for_kfl(call_fields());
        assert!(cat.lookup("response.status").is_some());
        assert!(cat.fields().len() < call_fields().len());
        let i = cat.lookup("request.headers").unwrap();
        assert_eq!(
            cat.get(i).unwrap().ty,
            Type::Map(Box::new(Type::String), Box::new(Type::String))
        );
    }

    #[test]
    fn fields_become_their_columns() {
        let e = compile("src.ip == \"10.0.0.1\"").unwrap();
        assert_eq!(e.to_string(), "src_ip = Utf8(\"10.0.0.1\")");
    }

    #[test]
    fn macros_with_an_array_function_stay_native() {
        for (src, want) in [
            (
                "dns_answers.exists(a, a == \"x\")",
                "array_has(dns_answers, Utf8(\"x\"))",
            ),
            (
                "request.headers.exists(k, \"host\" == k)",
                "array_has(map_keys(request_headers), Utf8(\"host\"))",
            ),
            (
                "dns_answers.all(a, a != dst.ip)",
                "NOT array_has(dns_answers, dst_ip)",
            ),
            (
                "dns_answers.exists_one(a, a == \"x\")",
                "cardinality(array_positions(dns_answers, Utf8(\"x\"))) = UInt64(1)",
            ),
            (
                "size(dns_answers.filter(a, a != \"x\")) > 0",
                "CAST(cardinality(array_remove_all(dns_answers, Utf8(\"x\"))) AS Int64) > Int64(0)",
            ),
        ] {
            let e = compile(src).unwrap().to_string();
            assert_eq!(e, want, "{src}");
        }
    }

    #[test]
    fn other_macros_run_the_interpreter_for_the_smallest_closed_part() {
        let e = compile("http && request.headers.exists(k, k.startsWith(\"x-\"))")
            .unwrap()
            .to_string();
        // `http` stays a plain column (pushed down); only the macro is a UDF
        // over the one column it reads.
        assert!(e.starts_with("http AND kfl@8.."), "{e}");
        assert!(e.ends_with("(request_headers)"), "{e}");
        // Nested macros: the outer one is cut out whole (the inner one uses
        // its variable).
        let e = compile("dns_answers.exists(a, dns_questions.exists(q, q == a))")
            .unwrap()
            .to_string();
        assert!(e.starts_with("kfl@0.."), "{e}");
        assert!(e.ends_with("(dns_questions, dns_answers)"), "{e}");
        // Timestamp arithmetic and map literals have no native form either.
        let e = compile("timestamp - duration(\"1h\") > timestamp(\"2020-01-01T00:00:00Z\")")
            .unwrap()
            .to_string();
        assert!(
            e.contains("kfl@0..26(timestamp - duration(\"1h\"))(timestamp)"),
            "{e}"
        );
        // A part that reads no field is folded to its value.
        assert_eq!(
            compile("[1, 2].exists(x, x > 1)").unwrap().to_string(),
            "Boolean(true)"
        );
        assert_eq!(
            compile("{\"a\": 1}[method] == 1")
                .unwrap()
                .to_string()
                .matches("kfl@")
                .count(),
            1
        );
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(1234)).unwrap(), 1234);
        assert!(decode_cursor("%%%").is_err());
        assert!(decode_cursor(&encode_cursor(5)[1..]).is_err());
    }
}
