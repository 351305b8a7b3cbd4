//! The reference interpreter: runs a checked `Expr` over one record with
//! CEL semantics (checked int/uint arithmetic, errors on division by zero,
//! `&&`/`||` that absorb errors commutatively, one-branch `?:`,
//! heterogeneous numeric comparison). The query engine will run filters as
//! DataFusion expressions instead; this interpreter is the definition they
//! are tested against, and what small in-memory call lists use.

use regex::RegexBuilder;

use crate::ast::{ArithOp, CmpOp, Comprehension, Expr, ExprKind, Function, MacroKind, Pattern};
use crate::check::MAX_REGEX_BYTES;
use crate::error::{EvalError, Span};
use crate::value::{
    Value, format_duration, format_timestamp, map_lookup, parse_duration, parse_timestamp,
};

/// Work allowed for one evaluation, counted as comprehension iterations
/// plus elements built by concatenation and literals. A filter is a few
/// hundred bytes and a call holds tens of list elements, so real filters
/// stay below a thousand; nested macros over literal lists could otherwise
/// run for hours or fill memory.
pub const MAX_EVAL_COST: u64 = 1_000_000;

/// What a filter reads from: a call (or any row) whose fields are indexed
/// like the catalogue. An absent field must come back as its type's zero
/// value (`Value::zero`), not as null.
pub trait Record {
    fn field(&self, idx: usize) -> Value;
}

/// What an evaluation may depend on besides the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalContext {
    /// The value of `now()`, nanoseconds since the epoch. Queries fix it
    /// once so that every record (and every node) sees the same instant.
    pub now: i64,
}

pub(crate) struct Evaluator<'a> {
    rec: &'a dyn Record,
    ctx: &'a EvalContext,
    /// Values of the comprehension variables in scope, by slot.
    env: Vec<Value>,
    cost: u64,
}

type R = Result<Value, EvalError>;

fn no_overload(span: Span, op: &str, a: &Value, b: &Value) -> EvalError {
    EvalError::new(
        span,
        format!(
            "no operator \"{op}\" for {} and {}",
            a.type_name(),
            b.type_name()
        ),
    )
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(rec: &'a dyn Record, ctx: &'a EvalContext) -> Evaluator<'a> {
        Evaluator {
            rec,
            ctx,
            env: Vec::new(),
            cost: 0,
        }
    }

    /// An evaluator for a sub-expression cut out of a larger filter: the
    /// slots of the comprehensions that enclosed it (unused, since the
    /// sub-expression has no free variables) are held by nulls so that
    /// its own variables land in the slots the checker gave them.
    pub(crate) fn for_subexpression(
        rec: &'a dyn Record,
        ctx: &'a EvalContext,
        e: &Expr,
    ) -> Evaluator<'a> {
        let slots = e.max_var_slot().unwrap_or(0);
        Evaluator {
            rec,
            ctx,
            env: vec![Value::Null; slots],
            cost: 0,
        }
    }

    fn charge(&mut self, n: usize, span: Span) -> Result<(), EvalError> {
        self.cost = self.cost.saturating_add(n as u64);
        if self.cost > MAX_EVAL_COST {
            return Err(EvalError::new(
                span,
                format!("evaluation exceeded its budget of {MAX_EVAL_COST} steps"),
            ));
        }
        Ok(())
    }

    #[inline(never)]
    fn bool(&mut self, e: &Expr) -> Result<bool, EvalError> {
        match self.eval(e)? {
            Value::Bool(b) => Ok(b),
            v => Err(EvalError::new(
                e.span,
                format!("expected bool, found {}", v.type_name()),
            )),
        }
    }

    /// Dispatches on the node kind; kept small because it recurses once per
    /// tree level (see `Checker::check`).
    pub(crate) fn eval(&mut self, e: &Expr) -> R {
        let span = e.span;
        match &e.kind {
            ExprKind::Literal(v) => Ok(v.clone()),
            ExprKind::Field(i) => Ok(self.rec.field(*i)),
            ExprKind::Var(slot) => self
                .env
                .get(*slot)
                .cloned()
                .ok_or_else(|| EvalError::new(span, "internal: unbound variable")),
            ExprKind::List(items) => self.list(items, span),
            ExprKind::Map(entries) => self.map(entries, span),
            ExprKind::Not(x) => Ok(Value::Bool(!self.bool(x)?)),
            ExprKind::Neg(x) => {
                let v = self.eval(x)?;
                neg(v, span)
            }
            ExprKind::And(a, b) => self.and(a, b),
            ExprKind::Or(a, b) => self.or(a, b),
            ExprKind::Cond(c, t, f) => {
                if self.bool(c)? {
                    self.eval(t)
                } else {
                    self.eval(f)
                }
            }
            ExprKind::Arith(op, a, b) => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                self.arith(*op, l, r, span)
            }
            ExprKind::Compare(op, a, b) => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                compare(*op, &l, &r, span).map(Value::Bool)
            }
            ExprKind::In(x, c) => {
                let x = self.eval(x)?;
                // A literal list (folded by the checker) is searched in
                // place rather than cloned per record.
                if let ExprKind::Literal(lit) = &c.kind {
                    return contains(&x, lit, span);
                }
                let c = self.eval(c)?;
                contains(&x, &c, span)
            }
            ExprKind::Index(c, k) => {
                let c = self.eval(c)?;
                let k = self.eval(k)?;
                index(c, &k, span)
            }
            ExprKind::Call(f, args) => {
                let args = args
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call(*f, args, span)
            }
            ExprKind::Matches(s, p) => self.matches(s, p, span),
            ExprKind::Comprehension(c) => self.comprehension(c, span),
        }
    }

    #[inline(never)]
    fn list(&mut self, items: &[Expr], span: Span) -> R {
        self.charge(items.len(), span)?;
        items
            .iter()
            .map(|i| self.eval(i))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List)
    }

    #[inline(never)]
    fn map(&mut self, entries: &[(Expr, Expr)], span: Span) -> R {
        self.charge(entries.len(), span)?;
        let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let k = self.eval(k)?;
            let v = self.eval(v)?;
            if map_lookup(&out, &k).is_some() {
                return Err(EvalError::new(span, format!("duplicate map key {k}")));
            }
            out.push((k, v));
        }
        Ok(Value::Map(out))
    }

    /// CEL `&&`: false from either side wins, even over an error.
    #[inline(never)]
    fn and(&mut self, a: &Expr, b: &Expr) -> R {
        let l = self.bool(a);
        if let Ok(false) = l {
            return Ok(Value::Bool(false));
        }
        let r = self.bool(b);
        match (l, r) {
            (_, Ok(false)) => Ok(Value::Bool(false)),
            (Ok(true), Ok(true)) => Ok(Value::Bool(true)),
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(false), _) => Ok(Value::Bool(false)),
        }
    }

    /// CEL `||`: true from either side wins, even over an error.
    #[inline(never)]
    fn or(&mut self, a: &Expr, b: &Expr) -> R {
        let l = self.bool(a);
        if let Ok(true) = l {
            return Ok(Value::Bool(true));
        }
        let r = self.bool(b);
        match (l, r) {
            (_, Ok(true)) => Ok(Value::Bool(true)),
            (Ok(false), Ok(false)) => Ok(Value::Bool(false)),
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(true), _) => Ok(Value::Bool(true)),
        }
    }

    #[inline(never)]
    fn matches(&mut self, s: &Expr, p: &Pattern, span: Span) -> R {
        let s = self.eval(s)?;
        let Value::String(s) = s else {
            return Err(EvalError::new(
                span,
                format!("matches needs a string, found {}", s.type_name()),
            ));
        };
        match p {
            Pattern::Compiled(re) => Ok(Value::Bool(re.is_match(&s))),
            Pattern::Dynamic(p) => {
                let Value::String(p) = self.eval(p)? else {
                    return Err(EvalError::new(span, "matches needs a string pattern"));
                };
                let re = RegexBuilder::new(&p)
                    .size_limit(MAX_REGEX_BYTES)
                    .build()
                    .map_err(|_| {
                        EvalError::new(span, format!("invalid regular expression {:?}", &*p))
                    })?;
                Ok(Value::Bool(re.is_match(&s)))
            }
        }
    }

    #[inline(never)]
    fn arith(&mut self, op: ArithOp, l: Value, r: Value, span: Span) -> R {
        use Value::*;
        let sym = match op {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        };
        let overflow = |what: &str| EvalError::new(span, format!("{what} overflow"));
        match (op, &l, &r) {
            (ArithOp::Div, Int(_), Int(0)) | (ArithOp::Div, Uint(_), Uint(0)) => {
                Err(EvalError::new(span, "division by zero"))
            }
            (ArithOp::Rem, Int(_), Int(0)) | (ArithOp::Rem, Uint(_), Uint(0)) => {
                Err(EvalError::new(span, "modulus by zero"))
            }
            (_, Int(a), Int(b)) => match op {
                ArithOp::Add => a.checked_add(*b),
                ArithOp::Sub => a.checked_sub(*b),
                ArithOp::Mul => a.checked_mul(*b),
                ArithOp::Div => a.checked_div(*b),
                ArithOp::Rem => a.checked_rem(*b),
            }
            .map(Int)
            .ok_or_else(|| overflow("int")),
            (_, Uint(a), Uint(b)) => match op {
                ArithOp::Add => a.checked_add(*b),
                ArithOp::Sub => a.checked_sub(*b),
                ArithOp::Mul => a.checked_mul(*b),
                ArithOp::Div => a.checked_div(*b),
                ArithOp::Rem => a.checked_rem(*b),
            }
            .map(Uint)
            .ok_or_else(|| overflow("uint")),
            (ArithOp::Add, Double(a), Double(b)) => Ok(Double(a + b)),
            (ArithOp::Sub, Double(a), Double(b)) => Ok(Double(a - b)),
            (ArithOp::Mul, Double(a), Double(b)) => Ok(Double(a * b)),
            (ArithOp::Div, Double(a), Double(b)) => Ok(Double(a / b)),
            (ArithOp::Add, String(a), String(b)) => {
                self.charge(a.len() + b.len(), span)?;
                Ok(String(format!("{a}{b}").into()))
            }
            (ArithOp::Add, Bytes(a), Bytes(b)) => {
                self.charge(a.len() + b.len(), span)?;
                Ok(Bytes(
                    a.iter()
                        .chain(b.iter())
                        .copied()
                        .collect::<Vec<u8>>()
                        .into(),
                ))
            }
            (ArithOp::Add, List(a), List(b)) => {
                self.charge(a.len() + b.len(), span)?;
                Ok(List(a.iter().chain(b).cloned().collect()))
            }
            (ArithOp::Add, Timestamp(t), Duration(d))
            | (ArithOp::Add, Duration(d), Timestamp(t)) => t
                .checked_add(*d)
                .map(Timestamp)
                .ok_or_else(|| overflow("timestamp")),
            (ArithOp::Sub, Timestamp(t), Duration(d)) => t
                .checked_sub(*d)
                .map(Timestamp)
                .ok_or_else(|| overflow("timestamp")),
            (ArithOp::Sub, Timestamp(a), Timestamp(b)) => a
                .checked_sub(*b)
                .map(Duration)
                .ok_or_else(|| overflow("duration")),
            (ArithOp::Add, Duration(a), Duration(b)) => a
                .checked_add(*b)
                .map(Duration)
                .ok_or_else(|| overflow("duration")),
            (ArithOp::Sub, Duration(a), Duration(b)) => a
                .checked_sub(*b)
                .map(Duration)
                .ok_or_else(|| overflow("duration")),
            _ => Err(no_overload(span, sym, &l, &r)),
        }
    }

    #[inline(never)]
    fn call(&mut self, f: Function, args: Vec<Value>, span: Span) -> R {
        use Value::*;
        let bad = |what: &str| EvalError::new(span, what.to_string());
        let mut it = args.into_iter();
        let a = it.next();
        let b = it.next();
        let c = it.next();
        match (f, a, b) {
            (Function::Contains, Some(String(s)), Some(String(t))) => Ok(Bool(s.contains(&*t))),
            (Function::StartsWith, Some(String(s)), Some(String(t))) => {
                Ok(Bool(s.starts_with(&*t)))
            }
            (Function::EndsWith, Some(String(s)), Some(String(t))) => Ok(Bool(s.ends_with(&*t))),
            (Function::Size, Some(v), None) => {
                let n = match &v {
                    String(s) => s.chars().count(),
                    Bytes(b) => b.len(),
                    List(l) => l.len(),
                    Map(m) => m.len(),
                    _ => {
                        return Err(bad(&format!(
                            "size needs a string, bytes, list or map, found {}",
                            v.type_name()
                        )));
                    }
                };
                i64::try_from(n).map(Int).map_err(|_| bad("size overflow"))
            }
            (Function::MapGet, Some(Map(m)), Some(k)) => {
                Ok(map_lookup(&m, &k).cloned().or(c).unwrap_or(Null))
            }
            (Function::Timestamp, Some(String(s)), None) => {
                parse_timestamp(&s).map(Timestamp).map_err(|m| bad(&m))
            }
            (Function::Timestamp, Some(Int(secs)), None) => secs
                .checked_mul(1_000_000_000)
                .map(Timestamp)
                .ok_or_else(|| bad("timestamp out of range (years 1677 to 2262)")),
            (Function::Timestamp, Some(t @ Timestamp(_)), None) => Ok(t),
            (Function::Duration, Some(String(s)), None) => {
                parse_duration(&s).map(Duration).map_err(|m| bad(&m))
            }
            (Function::Duration, Some(d @ Duration(_)), None) => Ok(d),
            (Function::Now, None, None) => Ok(Timestamp(self.ctx.now)),
            (Function::ToInt, Some(v), None) => match v {
                Int(i) => Ok(Int(i)),
                Uint(u) => i64::try_from(u).map(Int).map_err(|_| bad("int overflow")),
                Double(d) => double_to_int(d)
                    .map(Int)
                    .ok_or_else(|| bad("double out of int range")),
                String(s) => s
                    .parse()
                    .map(Int)
                    .map_err(|_| bad(&format!("cannot convert {:?} to int", &*s))),
                Timestamp(t) => Ok(Int(t.div_euclid(1_000_000_000))),
                Duration(d) => Ok(Int(d)),
                v => Err(bad(&format!("cannot convert {} to int", v.type_name()))),
            },
            (Function::ToUint, Some(v), None) => match v {
                Int(i) => u64::try_from(i).map(Uint).map_err(|_| bad("uint overflow")),
                Uint(u) => Ok(Uint(u)),
                Double(d) => double_to_uint(d)
                    .map(Uint)
                    .ok_or_else(|| bad("double out of uint range")),
                String(s) => s
                    .parse()
                    .map(Uint)
                    .map_err(|_| bad(&format!("cannot convert {:?} to uint", &*s))),
                v => Err(bad(&format!("cannot convert {} to uint", v.type_name()))),
            },
            (Function::ToDouble, Some(v), None) => match v {
                // CEL's double(int) and double(uint) round to nearest.
                Int(i) => Ok(Double(i as f64)),
                Uint(u) => Ok(Double(u as f64)),
                Double(d) => Ok(Double(d)),
                String(s) => s
                    .parse()
                    .map(Double)
                    .map_err(|_| bad(&format!("cannot convert {:?} to double", &*s))),
                v => Err(bad(&format!("cannot convert {} to double", v.type_name()))),
            },
            (Function::ToString, Some(v), None) => match v {
                Int(i) => Ok(Value::string(&i.to_string())),
                Uint(u) => Ok(Value::string(&u.to_string())),
                Double(d) => Ok(Value::string(&d.to_string())),
                String(s) => Ok(String(s)),
                Bytes(b) => std::str::from_utf8(&b)
                    .map(Value::string)
                    .map_err(|_| bad("bytes are not valid UTF-8")),
                Bool(x) => Ok(Value::string(if x { "true" } else { "false" })),
                Timestamp(t) => Ok(Value::string(&format_timestamp(t))),
                Duration(d) => Ok(Value::string(&format_duration(d))),
                v => Err(bad(&format!("cannot convert {} to string", v.type_name()))),
            },
            (f, a, b) => {
                let types: Vec<&str> = [a.as_ref(), b.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(Value::type_name)
                    .collect();
                Err(bad(&format!(
                    "no overload of {f:?} for ({})",
                    types.join(", ")
                )))
            }
        }
    }

    #[inline(never)]
    fn comprehension(&mut self, c: &Comprehension, span: Span) -> R {
        let items: Vec<Value> = match self.eval(&c.range)? {
            Value::List(l) => l,
            Value::Map(m) => m.into_iter().map(|(k, _)| k).collect(),
            v => {
                return Err(EvalError::new(
                    span,
                    format!("{:?} needs a list or map, found {}", c.kind, v.type_name()),
                ));
            }
        };
        let mut found = 0usize;
        let mut first_err: Option<EvalError> = None;
        let mut out = Vec::new();
        for item in items {
            self.charge(1, span)?;
            self.env.truncate(c.var);
            self.env.push(item.clone());
            if let Some(f) = &c.filter {
                match self.bool(f) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.env.truncate(c.var);
                        return Err(e);
                    }
                }
            }
            let r = match c.kind {
                MacroKind::Map => self.eval(&c.body),
                _ => self.bool(&c.body).map(Value::Bool),
            };
            match (c.kind, r) {
                (MacroKind::Exists, Ok(Value::Bool(true))) => {
                    self.env.truncate(c.var);
                    return Ok(Value::Bool(true));
                }
                (MacroKind::All, Ok(Value::Bool(false))) => {
                    self.env.truncate(c.var);
                    return Ok(Value::Bool(false));
                }
                // exists and all absorb errors that a later element decides.
                (MacroKind::Exists | MacroKind::All, Err(e)) => {
                    first_err.get_or_insert(e);
                }
                (MacroKind::ExistsOne, Ok(Value::Bool(true))) => found += 1,
                (MacroKind::Filter, Ok(Value::Bool(true))) => out.push(item),
                (MacroKind::Map, Ok(v)) => out.push(v),
                (_, Err(e)) => {
                    self.env.truncate(c.var);
                    return Err(e);
                }
                _ => {}
            }
        }
        self.env.truncate(c.var);
        match c.kind {
            MacroKind::Exists => first_err.map_or(Ok(Value::Bool(false)), Err),
            MacroKind::All => first_err.map_or(Ok(Value::Bool(true)), Err),
            MacroKind::ExistsOne => Ok(Value::Bool(found == 1)),
            MacroKind::Filter | MacroKind::Map => Ok(Value::List(out)),
        }
    }
}

fn neg(v: Value, span: Span) -> R {
    match v {
        Value::Int(i) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| EvalError::new(span, "int overflow")),
        Value::Double(d) => Ok(Value::Double(-d)),
        Value::Duration(d) => d
            .checked_neg()
            .map(Value::Duration)
            .ok_or_else(|| EvalError::new(span, "duration overflow")),
        v => Err(EvalError::new(
            span,
            format!("no operator \"-\" for {}", v.type_name()),
        )),
    }
}

fn contains(x: &Value, c: &Value, span: Span) -> R {
    match c {
        Value::List(l) => Ok(Value::Bool(l.iter().any(|v| v.cel_eq(x)))),
        Value::Map(m) => Ok(Value::Bool(map_lookup(m, x).is_some())),
        v => Err(EvalError::new(
            span,
            format!("\"in\" needs a list or map, found {}", v.type_name()),
        )),
    }
}

/// `<`, `==` and friends. Values of different non-numeric types are unequal
/// (CEL's heterogeneous equality) and unordered (an error); NaN compares
/// false.
fn compare(op: CmpOp, l: &Value, r: &Value, span: Span) -> Result<bool, EvalError> {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => return Ok(l.cel_eq(r)),
        CmpOp::Ne => return Ok(!l.cel_eq(r)),
        _ => {}
    }
    let Some(o) = l.cel_cmp(r) else {
        let numeric = |v: &Value| matches!(v, Value::Int(_) | Value::Uint(_) | Value::Double(_));
        if numeric(l) && numeric(r) {
            return Ok(false);
        }
        let sym = match op {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            _ => ">=",
        };
        return Err(no_overload(span, sym, l, r));
    };
    Ok(match op {
        CmpOp::Lt => o == Less,
        CmpOp::Le => o != Greater,
        CmpOp::Gt => o == Greater,
        _ => o != Less,
    })
}

fn index(c: Value, k: &Value, span: Span) -> R {
    match (c, k) {
        (Value::List(l), Value::Int(_) | Value::Uint(_)) => {
            let i = match k {
                Value::Int(i) => usize::try_from(*i).ok(),
                Value::Uint(u) => usize::try_from(*u).ok(),
                _ => None,
            };
            let len = l.len();
            i.and_then(|i| l.into_iter().nth(i)).ok_or_else(|| {
                EvalError::new(span, format!("index {k} out of range for a list of {len}"))
            })
        }
        (Value::Map(m), k) => map_lookup(&m, k)
            .cloned()
            .ok_or_else(|| EvalError::new(span, format!("no such key: {k}"))),
        (c, k) => Err(EvalError::new(
            span,
            format!("cannot index {} with {}", c.type_name(), k.type_name()),
        )),
    }
}

/// Truncation toward zero, refusing NaN and values outside i64 (CEL).
fn double_to_int(d: f64) -> Option<i64> {
    // -2^63 is exact in f64; 2^63 is the first value past i64::MAX.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        // In range: checked above.
        Some(d.trunc() as i64)
    } else {
        None
    }
}

fn double_to_uint(d: f64) -> Option<u64> {
    if d.is_finite() && d > -1.0 && d < 18_446_744_073_709_551_616.0 {
        // In range: checked above.
        Some(d.trunc() as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field 0 is an int that the test sets; other fields are absent.
    struct One(i64);

    impl Record for One {
        fn field(&self, idx: usize) -> Value {
            if idx == 0 {
                Value::Int(self.0)
            } else {
                Value::Int(0)
            }
        }
    }

    fn lit(v: Value) -> Expr {
        Expr {
            kind: ExprKind::Literal(v),
            ty: crate::Type::Dyn,
            span: Span::default(),
        }
    }

    fn field() -> Expr {
        Expr {
            kind: ExprKind::Field(0),
            ty: crate::Type::Int,
            span: Span::default(),
        }
    }

    fn bx(e: Expr) -> Box<Expr> {
        Box::new(e)
    }

    /// `1 / field == 1`: an error when the field is 0.
    fn risky() -> Expr {
        let div = Expr {
            kind: ExprKind::Arith(ArithOp::Div, bx(lit(Value::Int(1))), bx(field())),
            ty: crate::Type::Int,
            span: Span::new(0, 5),
        };
        Expr {
            kind: ExprKind::Compare(CmpOp::Eq, bx(div), bx(lit(Value::Int(1)))),
            ty: crate::Type::Bool,
            span: Span::default(),
        }
    }

    #[test]
    fn and_or_absorb_errors_from_either_side() {
        let ctx = EvalContext::default();
        let rec = One(0);
        let mut ev = Evaluator::new(&rec, &ctx);
        let f = || lit(Value::Bool(false));
        let t = || lit(Value::Bool(true));
        let and = |a, b| Expr {
            kind: ExprKind::And(bx(a), bx(b)),
            ty: crate::Type::Bool,
            span: Span::default(),
        };
        let or = |a, b| Expr {
            kind: ExprKind::Or(bx(a), bx(b)),
            ty: crate::Type::Bool,
            span: Span::default(),
        };
        assert_eq!(ev.eval(&and(risky(), f())), Ok(Value::Bool(false)));
        assert_eq!(ev.eval(&and(f(), risky())), Ok(Value::Bool(false)));
        assert_eq!(ev.eval(&or(risky(), t())), Ok(Value::Bool(true)));
        assert_eq!(ev.eval(&or(t(), risky())), Ok(Value::Bool(true)));
        let err = ev.eval(&and(t(), risky())).unwrap_err();
        assert_eq!(err, EvalError::new(Span::new(0, 5), "division by zero"));
        // With a non-zero field the same tree evaluates normally.
        let rec = One(1);
        let mut ev = Evaluator::new(&rec, &ctx);
        assert_eq!(ev.eval(&risky()), Ok(Value::Bool(true)));
    }

    #[test]
    fn conversions_check_ranges() {
        assert_eq!(double_to_int(-9_223_372_036_854_775_808.0), Some(i64::MIN));
        assert_eq!(double_to_int(9_223_372_036_854_775_808.0), None);
        assert_eq!(double_to_int(f64::NAN), None);
        assert_eq!(double_to_int(-1.9), Some(-1));
        assert_eq!(double_to_uint(-0.5), Some(0));
        assert_eq!(double_to_uint(-1.0), None);
        assert_eq!(double_to_uint(18_446_744_073_709_551_616.0), None);
    }

    #[test]
    fn ordering_across_types_is_an_error_but_nan_is_false() {
        let s = Span::default();
        assert_eq!(
            compare(CmpOp::Lt, &Value::Double(f64::NAN), &Value::Int(1), s),
            Ok(false)
        );
        assert!(compare(CmpOp::Lt, &Value::string("a"), &Value::Int(1), s).is_err());
        assert_eq!(
            compare(CmpOp::Eq, &Value::string("a"), &Value::Int(1), s),
            Ok(false)
        );
    }
}
