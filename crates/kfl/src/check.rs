//! The type-checker: resolves names against the catalogue (dotted names to
//! the longest catalogue name, KFL1 aliases included, comprehension
//! variables first), picks the operation for every operator and function,
//! checks types, compiles literal regexes and folds literal
//! `timestamp()`/`duration()`. Turns the parser's `Syntax` into the typed
//! `Expr` of `ast.rs`. An unknown field or function is an error with a
//! did-you-mean, never a silent false.

use regex::RegexBuilder;

use crate::ast::{ArithOp, CmpOp, Comprehension, Expr, ExprKind, Function, MacroKind, Pattern};
use crate::catalogue::{Catalogue, Type, closest};
use crate::error::{KflError, Span};
use crate::parser::{BinOp, Syntax, SyntaxKind};
use crate::value::{Value, parse_duration, parse_timestamp};

/// Every function and macro name a filter may call (for did-you-mean).
pub const FUNCTION_NAMES: &[&str] = &[
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "size",
    "map_get",
    "has",
    "timestamp",
    "duration",
    "now",
    "int",
    "uint",
    "double",
    "string",
    "exists",
    "all",
    "exists_one",
    "filter",
    "map",
];

/// Largest compiled form of one regex. RE2 and the `regex` crate both
/// default to about 10 MiB; a filter's pattern needs far less, and a
/// smaller cap stops `(a{1000}){1000}`-style patterns cheaply.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

pub(crate) struct Checker<'a> {
    src: &'a str,
    cat: &'a Catalogue,
    /// Comprehension variables in scope, outermost first; the index is the slot.
    scopes: Vec<(String, Type)>,
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

/// Whether a value of type `a` may be compared for equality with one of `b`.
fn comparable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) => true,
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (Type::List(x), Type::List(y)) => comparable(x, y),
        (Type::Map(k1, v1), Type::Map(k2, v2)) => comparable(k1, k2) && comparable(v1, v2),
        (x, y) => x == y,
    }
}

/// Whether `<` and friends apply to `a` and `b`.
fn orderable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Dyn, x) | (x, Type::Dyn) => {
            x.is_numeric()
                || matches!(
                    x,
                    Type::Dyn
                        | Type::String
                        | Type::Bytes
                        | Type::Bool
                        | Type::Timestamp
                        | Type::Duration
                )
        }
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (x, y) => {
            x == y
                && matches!(
                    x,
                    Type::String | Type::Bytes | Type::Bool | Type::Timestamp | Type::Duration
                )
        }
    }
}

/// The common type of list elements or branches: equal types stay, anything
/// else becomes dyn.
fn join(a: &Type, b: &Type) -> Type {
    if a == b { a.clone() } else { Type::Dyn }
}

impl<'a> Checker<'a> {
    pub(crate) fn new(src: &'a str, cat: &'a Catalogue) -> Checker<'a> {
        Checker {
            src,
            cat,
            scopes: Vec::new(),
        }
    }

    fn err(&self, span: Span, msg: impl Into<String>) -> KflError {
        KflError::new(self.src, span, msg)
    }

    fn text(&self, span: Span) -> &str {
        self.src.get(span.start..span.end).unwrap_or("?")
    }

    /// Checks the whole filter: it must be a condition.
    pub(crate) fn check_filter(&mut self, s: &Syntax) -> Result<Expr, KflError> {
        let e = self.check(s)?;
        if !matches!(e.ty, Type::Bool | Type::Dyn) {
            return Err(self.err(
                e.span,
                format!(
                    "a filter must be a condition (bool), but \"{}\" is {}",
                    self.text(e.span),
                    e.ty
                ),
            ));
        }
        Ok(e)
    }

    /// Checks an expression of any type.
    pub(crate) fn check_expr(&mut self, s: &Syntax) -> Result<Expr, KflError> {
        self.check(s)
    }

    fn expect(&self, e: &Expr, want: &Type, what: &str) -> Result<(), KflError> {
        if e.ty == *want || e.ty == Type::Dyn {
            Ok(())
        } else {
            Err(self.err(
                e.span,
                format!(
                    "{what} must be {want}, but \"{}\" is {}",
                    self.text(e.span),
                    e.ty
                ),
            ))
        }
    }

    /// Dispatches on the node kind. Kept small because it recurses once per
    /// tree level: debug builds give every temporary of a function its own
    /// stack slot, so the work of each kind lives in its own function.
    fn check(&mut self, s: &Syntax) -> Result<Expr, KflError> {
        let span = s.span;
        match &s.kind {
            SyntaxKind::Lit(v) => Ok(Self::literal(v, span)),
            SyntaxKind::Ident(_) | SyntaxKind::Select(..) => self.name(s),
            SyntaxKind::Index(target, key) => {
                let t = self.check(target)?;
                let k = self.check(key)?;
                self.index(t, k, span)
            }
            SyntaxKind::Call {
                target,
                name,
                name_span,
                args,
            } => self.call(target.as_deref(), name, *name_span, args, span),
            SyntaxKind::Not(x) => {
                let x = self.check(x)?;
                self.not(x, span)
            }
            SyntaxKind::Neg(x) => {
                let x = self.check(x)?;
                self.neg(x, span)
            }
            SyntaxKind::Binary(op, l, r) => {
                let l = self.check(l)?;
                let r = self.check(r)?;
                self.binary(*op, l, r, span)
            }
            SyntaxKind::Cond(c, t, f) => self.cond(c, t, f, span),
            SyntaxKind::List(items) => self.list(items, span),
            SyntaxKind::Map(entries) => self.map(entries, span),
        }
    }

    fn literal(v: &Value, span: Span) -> Expr {
        let ty = match v {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Uint(_) => Type::Uint,
            Value::Double(_) => Type::Double,
            Value::String(_) => Type::String,
            Value::Bytes(_) => Type::Bytes,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Duration(_) => Type::Duration,
            Value::List(_) | Value::Map(_) => Type::Dyn,
        };
        Expr {
            kind: ExprKind::Literal(v.clone()),
            ty,
            span,
        }
    }

    #[inline(never)]
    fn not(&self, x: Expr, span: Span) -> Result<Expr, KflError> {
        self.expect(&x, &Type::Bool, "the operand of \"!\"")?;
        Ok(Expr {
            kind: ExprKind::Not(boxed(x)),
            ty: Type::Bool,
            span,
        })
    }

    #[inline(never)]
    fn neg(&self, x: Expr, span: Span) -> Result<Expr, KflError> {
        if !matches!(x.ty, Type::Int | Type::Double | Type::Duration | Type::Dyn) {
            return Err(self.err(span, format!("no operator \"-\" for {}", x.ty)));
        }
        let ty = x.ty.clone();
        Ok(Expr {
            kind: ExprKind::Neg(boxed(x)),
            ty,
            span,
        })
    }

    #[inline(never)]
    fn cond(&mut self, c: &Syntax, t: &Syntax, f: &Syntax, span: Span) -> Result<Expr, KflError> {
        let c = self.check(c)?;
        self.expect(&c, &Type::Bool, "the condition of \"?:\"")?;
        let t = self.check(t)?;
        let f = self.check(f)?;
        let ty = if t.ty == f.ty {
            t.ty.clone()
        } else if matches!(t.ty, Type::Dyn | Type::Null) || matches!(f.ty, Type::Dyn | Type::Null) {
            Type::Dyn
        } else {
            return Err(self.err(
                f.span,
                format!(
                    "the branches of \"?:\" have different types: {} and {}",
                    t.ty, f.ty
                ),
            ));
        };
        Ok(Expr {
            kind: ExprKind::Cond(boxed(c), boxed(t), boxed(f)),
            ty,
            span,
        })
    }

    #[inline(never)]
    fn list(&mut self, items: &[Syntax], span: Span) -> Result<Expr, KflError> {
        let items = items
            .iter()
            .map(|i| self.check(i))
            .collect::<Result<Vec<_>, _>>()?;
        let elem = items
            .iter()
            .map(|i| i.ty.clone())
            .reduce(|a, b| join(&a, &b))
            .unwrap_or(Type::Dyn);
        // A list of literals (`status_code in [404, 503]`) becomes one
        // literal: built once here instead of per record, and an IN-list
        // for the DataFusion compiler.
        let kind = if items.iter().all(|i| matches!(i.kind, ExprKind::Literal(_))) {
            let values = items
                .into_iter()
                .filter_map(|i| match i.kind {
                    ExprKind::Literal(v) => Some(v),
                    _ => None,
                })
                .collect();
            ExprKind::Literal(Value::List(values))
        } else {
            ExprKind::List(items)
        };
        Ok(Expr {
            kind,
            ty: Type::List(Box::new(elem)),
            span,
        })
    }

    #[inline(never)]
    fn map(&mut self, entries: &[(Syntax, Syntax)], span: Span) -> Result<Expr, KflError> {
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let k = self.check(k)?;
            if !matches!(
                k.ty,
                Type::Int | Type::Uint | Type::Bool | Type::String | Type::Dyn
            ) {
                return Err(self.err(
                    k.span,
                    format!("a map key must be int, uint, bool or string, not {}", k.ty),
                ));
            }
            let v = self.check(v)?;
            out.push((k, v));
        }
        let kt = out
            .iter()
            .map(|(k, _)| k.ty.clone())
            .reduce(|a, b| join(&a, &b))
            .unwrap_or(Type::Dyn);
        let vt = out
            .iter()
            .map(|(_, v)| v.ty.clone())
            .reduce(|a, b| join(&a, &b))
            .unwrap_or(Type::Dyn);
        Ok(Expr {
            kind: ExprKind::Map(out),
            ty: Type::Map(Box::new(kt), Box::new(vt)),
            span,
        })
    }

    /// `a.b.c` made only of names: the segments with their spans.
    fn dotted(s: &Syntax) -> Option<Vec<(&str, Span)>> {
        match &s.kind {
            SyntaxKind::Ident(n) => Some(vec![(n.as_str(), s.span)]),
            SyntaxKind::Select(o, n, ns) => {
                let mut v = Self::dotted(o)?;
                v.push((n.as_str(), *ns));
                Some(v)
            }
            _ => None,
        }
    }

    /// Resolves an identifier or selection: a comprehension variable, else
    /// the longest catalogue name that prefixes the dotted path; the rest
    /// of the path selects map keys.
    #[inline(never)]
    fn name(&mut self, s: &Syntax) -> Result<Expr, KflError> {
        let Some(segs) = Self::dotted(s) else {
            // Selection on a computed value, e.g. `{'a': 1}.a` or `m["x"].y`.
            let SyntaxKind::Select(o, n, ns) = &s.kind else {
                return Err(self.err(s.span, "internal: not a name"));
            };
            let o = self.check(o)?;
            return self.select(o, n, *ns, s.span);
        };
        let start = segs.first().map_or(s.span, |(_, sp)| *sp);
        let (base, used) = if let Some(slot) = segs
            .first()
            .and_then(|(n, _)| self.scopes.iter().rposition(|(v, _)| v == n))
        {
            let ty = self.scopes.get(slot).map_or(Type::Dyn, |(_, t)| t.clone());
            (
                Expr {
                    kind: ExprKind::Var(slot),
                    ty,
                    span: start,
                },
                1,
            )
        } else {
            let mut found = None;
            for k in (1..=segs.len()).rev() {
                let name = segs
                    .get(..k)
                    .unwrap_or(&[])
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(".");
                if let Some(idx) = self.cat.lookup(&name) {
                    found = Some((idx, k));
                    break;
                }
            }
            let Some((idx, k)) = found else {
                let full = segs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(".");
                let suggestion = (1..=segs.len()).rev().find_map(|k| {
                    let prefix = segs
                        .get(..k)
                        .unwrap_or(&[])
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(".");
                    self.cat.suggest(&prefix)
                });
                return Err(self
                    .err(start.to(s.span), format!("unknown field \"{full}\""))
                    .with_suggestion(suggestion));
            };
            let end = segs.get(k - 1).map_or(start, |(_, sp)| *sp);
            let ty = self.cat.get(idx).map_or(Type::Dyn, |f| f.ty.clone());
            (
                Expr {
                    kind: ExprKind::Field(idx),
                    ty,
                    span: start.to(end),
                },
                k,
            )
        };
        let mut e = base;
        for (n, ns) in segs.iter().skip(used) {
            let span = e.span.to(*ns);
            e = self.select(e, n, *ns, span)?;
        }
        Ok(e)
    }

    /// `operand.name` on a value: a string-keyed map lookup.
    #[inline(never)]
    fn select(&self, o: Expr, name: &str, name_span: Span, span: Span) -> Result<Expr, KflError> {
        let ty = match &o.ty {
            Type::Map(k, v) if matches!(**k, Type::String | Type::Dyn) => (**v).clone(),
            Type::Dyn => Type::Dyn,
            other => {
                return Err(self.err(
                    name_span,
                    format!(
                        "\"{}\" is {other} and has no field \"{name}\"",
                        self.text(o.span)
                    ),
                ));
            }
        };
        let key = Expr {
            kind: ExprKind::Literal(Value::string(name)),
            ty: Type::String,
            span: name_span,
        };
        Ok(Expr {
            kind: ExprKind::Index(boxed(o), boxed(key)),
            ty,
            span,
        })
    }

    #[inline(never)]
    fn index(&self, t: Expr, k: Expr, span: Span) -> Result<Expr, KflError> {
        let ty = match &t.ty {
            Type::List(elem) => {
                if !matches!(k.ty, Type::Int | Type::Uint | Type::Dyn) {
                    return Err(self.err(
                        k.span,
                        format!(
                            "a list index must be int, but \"{}\" is {}",
                            self.text(k.span),
                            k.ty
                        ),
                    ));
                }
                (**elem).clone()
            }
            Type::Map(kt, vt) => {
                if !comparable(kt, &k.ty) {
                    return Err(self.err(
                        k.span,
                        format!(
                            "this map's keys are {kt}, but \"{}\" is {}",
                            self.text(k.span),
                            k.ty
                        ),
                    ));
                }
                (**vt).clone()
            }
            Type::Dyn => Type::Dyn,
            other => {
                return Err(self.err(
                    t.span,
                    format!("\"{}\" is {other} and cannot be indexed", self.text(t.span)),
                ));
            }
        };
        Ok(Expr {
            kind: ExprKind::Index(boxed(t), boxed(k)),
            ty,
            span,
        })
    }

    #[inline(never)]
    fn binary(&self, op: BinOp, l: Expr, r: Expr, span: Span) -> Result<Expr, KflError> {
        let mismatch = |what: &str| {
            self.err(
                span,
                format!("{what} {} and {} with \"{}\"", l.ty, r.ty, op.symbol()),
            )
        };
        let (kind, ty) = match op {
            BinOp::And | BinOp::Or => {
                self.expect(
                    &l,
                    &Type::Bool,
                    &format!("the left side of \"{}\"", op.symbol()),
                )?;
                self.expect(
                    &r,
                    &Type::Bool,
                    &format!("the right side of \"{}\"", op.symbol()),
                )?;
                let kind = if op == BinOp::And {
                    ExprKind::And(boxed(l), boxed(r))
                } else {
                    ExprKind::Or(boxed(l), boxed(r))
                };
                (kind, Type::Bool)
            }
            BinOp::Eq | BinOp::Ne => {
                if !comparable(&l.ty, &r.ty) {
                    return Err(mismatch("cannot compare"));
                }
                let c = if op == BinOp::Eq {
                    CmpOp::Eq
                } else {
                    CmpOp::Ne
                };
                (ExprKind::Compare(c, boxed(l), boxed(r)), Type::Bool)
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if !orderable(&l.ty, &r.ty) {
                    return Err(mismatch("cannot order"));
                }
                let c = match op {
                    BinOp::Lt => CmpOp::Lt,
                    BinOp::Le => CmpOp::Le,
                    BinOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                (ExprKind::Compare(c, boxed(l), boxed(r)), Type::Bool)
            }
            BinOp::In => {
                let ok = match &r.ty {
                    Type::List(e) => comparable(&l.ty, e),
                    Type::Map(k, _) => comparable(&l.ty, k),
                    Type::Dyn => true,
                    other => {
                        return Err(self.err(
                            r.span,
                            format!(
                                "\"in\" needs a list or map on its right, but \"{}\" is {other}",
                                self.text(r.span)
                            ),
                        ));
                    }
                };
                if !ok {
                    return Err(self.err(
                        span,
                        format!(
                            "\"{}\" is {}, which cannot be in {}",
                            self.text(l.span),
                            l.ty,
                            r.ty
                        ),
                    ));
                }
                (ExprKind::In(boxed(l), boxed(r)), Type::Bool)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                use Type::*;
                let a = match op {
                    BinOp::Add => ArithOp::Add,
                    BinOp::Sub => ArithOp::Sub,
                    BinOp::Mul => ArithOp::Mul,
                    BinOp::Div => ArithOp::Div,
                    _ => ArithOp::Rem,
                };
                let ty = match (a, &l.ty, &r.ty) {
                    (_, Dyn, _) | (_, _, Dyn) => Some(Dyn),
                    (ArithOp::Rem, Int, Int) => Some(Int),
                    (ArithOp::Rem, Uint, Uint) => Some(Uint),
                    (ArithOp::Rem, _, _) => None,
                    (_, x, y) if x == y && x.is_numeric() => Some(x.clone()),
                    (ArithOp::Add, String, String) => Some(String),
                    (ArithOp::Add, Bytes, Bytes) => Some(Bytes),
                    (ArithOp::Add, List(x), List(y)) => Some(List(Box::new(join(x, y)))),
                    (ArithOp::Add, Timestamp, Duration) | (ArithOp::Add, Duration, Timestamp) => {
                        Some(Timestamp)
                    }
                    (ArithOp::Add | ArithOp::Sub, Duration, Duration) => Some(Duration),
                    (ArithOp::Sub, Timestamp, Timestamp) => Some(Duration),
                    (ArithOp::Sub, Timestamp, Duration) => Some(Timestamp),
                    _ => None,
                };
                let Some(ty) = ty else {
                    let hint = if l.ty.is_numeric() && r.ty.is_numeric() && l.ty != r.ty {
                        " (convert one side with int(), uint() or double())"
                    } else {
                        ""
                    };
                    return Err(self.err(
                        span,
                        format!(
                            "no operator \"{}\" for {} and {}{hint}",
                            op.symbol(),
                            l.ty,
                            r.ty
                        ),
                    ));
                };
                (ExprKind::Arith(a, boxed(l), boxed(r)), ty)
            }
        };
        Ok(Expr { kind, ty, span })
    }

    fn nth<'s>(&self, all: &[&'s Syntax], i: usize, span: Span) -> Result<&'s Syntax, KflError> {
        all.get(i)
            .copied()
            .ok_or_else(|| self.err(span, "missing argument"))
    }

    fn nth_arg<'s>(
        &self,
        args: &'s [Syntax],
        i: usize,
        span: Span,
    ) -> Result<&'s Syntax, KflError> {
        args.get(i)
            .ok_or_else(|| self.err(span, "missing argument"))
    }

    fn arity(
        &self,
        name: &str,
        args: &[Syntax],
        want: usize,
        span: Span,
        usage: &str,
    ) -> Result<(), KflError> {
        if args.len() == want {
            Ok(())
        } else {
            Err(self.err(
                span,
                format!(
                    "{name} takes {want} argument{}, not {}; usage: {usage}",
                    if want == 1 { "" } else { "s" },
                    args.len()
                ),
            ))
        }
    }

    #[inline(never)]
    fn call(
        &mut self,
        target: Option<&Syntax>,
        name: &str,
        name_span: Span,
        args: &[Syntax],
        span: Span,
    ) -> Result<Expr, KflError> {
        let mk = |kind: ExprKind, ty: Type| Expr { kind, ty, span };
        // Macros bind a variable, so they are handled before their
        // arguments are checked.
        let macro_kind = match name {
            "exists" => Some(MacroKind::Exists),
            "all" => Some(MacroKind::All),
            "exists_one" => Some(MacroKind::ExistsOne),
            "filter" => Some(MacroKind::Filter),
            "map" => Some(MacroKind::Map),
            _ => None,
        };
        if let (Some(kind), Some(t)) = (macro_kind, target) {
            return self.comprehension(kind, t, name, args, span);
        }
        if name == "has" && target.is_none() {
            return self.has(args, span);
        }
        let method = |c: &Checker<'_>| -> Result<(), KflError> {
            if target.is_none() {
                return Err(c.err(name_span, format!("{name} is a method: write x.{name}(…)")));
            }
            Ok(())
        };
        let global = |c: &Checker<'_>| -> Result<(), KflError> {
            if target.is_some() {
                return Err(c.err(
                    name_span,
                    format!("{name} is a function, not a method: write {name}(…)"),
                ));
            }
            Ok(())
        };
        // Receiver first, then arguments.
        let mut all: Vec<&Syntax> = target.into_iter().collect();
        all.extend(args);
        match name {
            "contains" | "startsWith" | "endsWith" => {
                method(self)?;
                self.arity(name, args, 1, span, &format!("s.{name}(\"text\")"))?;
                let s = self.check(self.nth(&all, 0, span)?)?;
                let x = self.check(self.nth(&all, 1, span)?)?;
                self.expect(&s, &Type::String, &format!("the receiver of {name}"))?;
                self.expect(&x, &Type::String, &format!("the argument of {name}"))?;
                let f = match name {
                    "contains" => Function::Contains,
                    "startsWith" => Function::StartsWith,
                    _ => Function::EndsWith,
                };
                Ok(mk(ExprKind::Call(f, vec![s, x]), Type::Bool))
            }
            "matches" => {
                if all.len() != 2 {
                    return Err(self.err(span, "matches takes a string and a pattern: s.matches(\"re\") or matches(s, \"re\")"));
                }
                let (Some(s), Some(p)) = (all.first(), all.get(1)) else {
                    return Err(self.err(span, "internal: matches arity"));
                };
                let s = self.check(s)?;
                let p = self.check(p)?;
                self.expect(&s, &Type::String, "the subject of matches")?;
                self.expect(&p, &Type::String, "the pattern of matches")?;
                let pattern = if let ExprKind::Literal(Value::String(re)) = &p.kind {
                    let compiled = RegexBuilder::new(re)
                        .size_limit(MAX_REGEX_BYTES)
                        .build()
                        .map_err(|e| {
                            self.err(
                                p.span,
                                format!(
                                    "invalid regular expression: {}",
                                    first_line(&e.to_string())
                                ),
                            )
                        })?;
                    Pattern::Compiled(compiled)
                } else {
                    Pattern::Dynamic(boxed(p))
                };
                Ok(mk(ExprKind::Matches(boxed(s), pattern), Type::Bool))
            }
            "size" => {
                if all.len() != 1 {
                    return Err(self.err(span, "size takes one value: x.size() or size(x)"));
                }
                let x = self.check(self.nth(&all, 0, span)?)?;
                if !matches!(
                    x.ty,
                    Type::String | Type::Bytes | Type::List(_) | Type::Map(..) | Type::Dyn
                ) {
                    return Err(self.err(
                        x.span,
                        format!(
                            "size needs a string, bytes, list or map, but \"{}\" is {}",
                            self.text(x.span),
                            x.ty
                        ),
                    ));
                }
                Ok(mk(ExprKind::Call(Function::Size, vec![x]), Type::Int))
            }
            "map_get" => {
                global(self)?;
                self.arity(name, args, 3, span, "map_get(map, key, default)")?;
                let v: Vec<Expr> = args
                    .iter()
                    .map(|a| self.check(a))
                    .collect::<Result<_, _>>()?;
                let [m, k, d] = <[Expr; 3]>::try_from(v)
                    .map_err(|_| self.err(span, "internal: map_get arity"))?;
                let ty = match &m.ty {
                    Type::Map(kt, vt) => {
                        if !comparable(kt, &k.ty) {
                            return Err(self.err(
                                k.span,
                                format!(
                                    "this map's keys are {kt}, but \"{}\" is {}",
                                    self.text(k.span),
                                    k.ty
                                ),
                            ));
                        }
                        if !comparable(vt, &d.ty) {
                            return Err(self.err(d.span, format!("the default must be {vt} like the map's values, but \"{}\" is {}", self.text(d.span), d.ty)));
                        }
                        join(vt, &d.ty)
                    }
                    Type::Dyn => Type::Dyn,
                    other => {
                        return Err(self.err(
                            m.span,
                            format!(
                                "map_get needs a map, but \"{}\" is {other}",
                                self.text(m.span)
                            ),
                        ));
                    }
                };
                Ok(mk(ExprKind::Call(Function::MapGet, vec![m, k, d]), ty))
            }
            "timestamp" => {
                global(self)?;
                self.arity(name, args, 1, span, "timestamp(\"2024-05-01T10:00:00Z\")")?;
                let x = self.check(self.nth_arg(args, 0, span)?)?;
                match (&x.kind, &x.ty) {
                    (ExprKind::Literal(Value::String(s)), _) => {
                        let t = parse_timestamp(s).map_err(|m| self.err(x.span, m))?;
                        Ok(mk(ExprKind::Literal(Value::Timestamp(t)), Type::Timestamp))
                    }
                    (_, Type::String | Type::Int | Type::Timestamp | Type::Dyn) => Ok(mk(
                        ExprKind::Call(Function::Timestamp, vec![x]),
                        Type::Timestamp,
                    )),
                    (_, other) => Err(self.err(
                        x.span,
                        format!(
                            "timestamp needs an RFC 3339 string, but \"{}\" is {other}",
                            self.text(x.span)
                        ),
                    )),
                }
            }
            "duration" => {
                global(self)?;
                self.arity(name, args, 1, span, "duration(\"5m\")")?;
                let x = self.check(self.nth_arg(args, 0, span)?)?;
                match (&x.kind, &x.ty) {
                    (ExprKind::Literal(Value::String(s)), _) => {
                        let d = parse_duration(s).map_err(|m| self.err(x.span, m))?;
                        Ok(mk(ExprKind::Literal(Value::Duration(d)), Type::Duration))
                    }
                    (_, Type::String | Type::Duration | Type::Dyn) => Ok(mk(
                        ExprKind::Call(Function::Duration, vec![x]),
                        Type::Duration,
                    )),
                    (_, other) => Err(self.err(
                        x.span,
                        format!(
                            "duration needs a string like \"5m\", but \"{}\" is {other}",
                            self.text(x.span)
                        ),
                    )),
                }
            }
            "now" => {
                global(self)?;
                self.arity(name, args, 0, span, "now()")?;
                Ok(mk(ExprKind::Call(Function::Now, vec![]), Type::Timestamp))
            }
            "int" | "uint" | "double" | "string" => {
                global(self)?;
                self.arity(name, args, 1, span, &format!("{name}(x)"))?;
                let x = self.check(self.nth_arg(args, 0, span)?)?;
                use Type::*;
                let (f, ty, ok) = match name {
                    "int" => (
                        Function::ToInt,
                        Int,
                        matches!(
                            x.ty,
                            Int | Uint | Double | String | Timestamp | Duration | Dyn
                        ),
                    ),
                    "uint" => (
                        Function::ToUint,
                        Uint,
                        matches!(x.ty, Int | Uint | Double | String | Dyn),
                    ),
                    "double" => (
                        Function::ToDouble,
                        Double,
                        matches!(x.ty, Int | Uint | Double | String | Dyn),
                    ),
                    _ => (
                        Function::ToString,
                        String,
                        matches!(
                            x.ty,
                            Int | Uint
                                | Double
                                | String
                                | Bytes
                                | Bool
                                | Timestamp
                                | Duration
                                | Dyn
                        ),
                    ),
                };
                if !ok {
                    return Err(self.err(x.span, format!("cannot convert {} to {name}", x.ty)));
                }
                Ok(mk(ExprKind::Call(f, vec![x]), ty))
            }
            _ => {
                let what = if macro_kind.is_some() {
                    "a macro that needs a receiver: write list."
                } else {
                    ""
                };
                if !what.is_empty() {
                    return Err(self.err(name_span, format!("{name} is {what}{name}(x, …)")));
                }
                let suggestion = closest(name, FUNCTION_NAMES.iter().copied());
                Err(self
                    .err(name_span, format!("unknown function \"{name}\""))
                    .with_suggestion(suggestion))
            }
        }
    }

    /// `has(x.f)`: for a map, whether key "f" is present; for a catalogue
    /// field, whether it holds a non-zero value (proto3 presence, which is
    /// all a record whose absent fields read as zero can tell).
    #[inline(never)]
    fn has(&mut self, args: &[Syntax], span: Span) -> Result<Expr, KflError> {
        let [arg] = args else {
            return Err(self.err(span, "has takes one selection: has(request.headers.host)"));
        };
        let SyntaxKind::Select(_, key, key_span) = &arg.kind else {
            return Err(self.err(
                arg.span,
                "has needs a selection like has(request.headers.host)",
            ));
        };
        let e = self.name(arg)?;
        match e.kind {
            ExprKind::Index(m, _) => {
                let k = Expr {
                    kind: ExprKind::Literal(Value::string(key)),
                    ty: Type::String,
                    span: *key_span,
                };
                Ok(Expr {
                    kind: ExprKind::In(boxed(k), m),
                    ty: Type::Bool,
                    span,
                })
            }
            ExprKind::Field(_) => {
                let zero = Expr {
                    kind: ExprKind::Literal(Value::zero(&e.ty)),
                    ty: e.ty.clone(),
                    span: e.span,
                };
                Ok(Expr {
                    kind: ExprKind::Compare(CmpOp::Ne, boxed(e), boxed(zero)),
                    ty: Type::Bool,
                    span,
                })
            }
            _ => Err(self.err(
                arg.span,
                "has needs a selection like has(request.headers.host)",
            )),
        }
    }

    #[inline(never)]
    fn comprehension(
        &mut self,
        kind: MacroKind,
        target: &Syntax,
        name: &str,
        args: &[Syntax],
        span: Span,
    ) -> Result<Expr, KflError> {
        let usage = format!(
            "list.{name}(x, {})",
            if kind == MacroKind::Map {
                "expression"
            } else {
                "condition"
            }
        );
        let three = kind == MacroKind::Map && args.len() == 3;
        if args.len() != 2 && !three {
            return Err(self.err(
                span,
                format!("{name} takes a variable and an expression; usage: {usage}"),
            ));
        }
        let (var_syntax, rest) = args
            .split_first()
            .ok_or_else(|| self.err(span, "internal: macro arity"))?;
        let SyntaxKind::Ident(var) = &var_syntax.kind else {
            return Err(self.err(
                var_syntax.span,
                format!("the first argument of {name} must be a variable name; usage: {usage}"),
            ));
        };
        let range = self.check(target)?;
        let var_ty = match &range.ty {
            Type::List(e) => (**e).clone(),
            Type::Map(k, _) => (**k).clone(),
            Type::Dyn => Type::Dyn,
            other => {
                return Err(self.err(
                    range.span,
                    format!(
                        "{name} needs a list or map, but \"{}\" is {other}",
                        self.text(range.span)
                    ),
                ));
            }
        };
        let slot = self.scopes.len();
        self.scopes.push((var.clone(), var_ty.clone()));
        let checked = (|| -> Result<(Option<Expr>, Expr), KflError> {
            let mut it = rest.iter();
            let filter = if three {
                let f = self.check(
                    it.next()
                        .ok_or_else(|| self.err(span, "internal: macro arity"))?,
                )?;
                self.expect(&f, &Type::Bool, &format!("the filter of {name}"))?;
                Some(f)
            } else {
                None
            };
            let body = self.check(
                it.next()
                    .ok_or_else(|| self.err(span, "internal: macro arity"))?,
            )?;
            if kind != MacroKind::Map {
                self.expect(&body, &Type::Bool, &format!("the condition of {name}"))?;
            }
            Ok((filter, body))
        })();
        self.scopes.pop();
        let (filter, body) = checked?;
        let ty = match kind {
            MacroKind::Exists | MacroKind::All | MacroKind::ExistsOne => Type::Bool,
            MacroKind::Filter => Type::List(Box::new(var_ty)),
            MacroKind::Map => Type::List(Box::new(body.ty.clone())),
        };
        let c = Comprehension {
            kind,
            range,
            var: slot,
            var_name: var.clone(),
            filter,
            body,
        };
        Ok(Expr {
            kind: ExprKind::Comprehension(Box::new(c)),
            ty,
            span,
        })
    }
}

/// The regex crate's errors span several lines with an ASCII-art caret;
/// the position is ours to give, so keep the gist.
fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::FieldSpec;
    use crate::parser::parse;

    fn cat() -> Catalogue {
        let f = |name: &str, aliases: &[&str], ty: Type| FieldSpec {
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ty,
        };
        Catalogue::new(vec![
            f("src.pod.name", &[], Type::String),
            f(
                "request.headers",
                &[],
                Type::Map(Box::new(Type::String), Box::new(Type::String)),
            ),
            f("status_code", &["response.status"], Type::Int),
            f(
                "src",
                &[],
                Type::Map(Box::new(Type::String), Box::new(Type::String)),
            ),
        ])
        .unwrap()
    }

    fn checked(src: &str) -> Expr {
        let cat = cat();
        Checker::new(src, &cat)
            .check_expr(&parse(src).unwrap().unwrap())
            .unwrap()
    }

    #[test]
    fn dotted_names_take_the_longest_catalogue_name() {
        // `src` is also a field, but `src.pod.name` is longer and wins.
        assert!(matches!(checked("src.pod.name").kind, ExprKind::Field(0)));
        // `src.other` falls back to the `src` map and selects a key.
        let e = checked("src.other");
        let ExprKind::Index(m, k) = e.kind else {
            panic!("{e:?}")
        };
        assert!(matches!(m.kind, ExprKind::Field(3)));
        assert!(matches!(k.kind, ExprKind::Literal(Value::String(ref s)) if &**s == "other"));
        assert_eq!(e.ty, Type::String);
        // Map field then key selection.
        let e = checked("request.headers.host");
        assert!(
            matches!(e.kind, ExprKind::Index(ref m, _) if matches!(m.kind, ExprKind::Field(1)))
        );
    }

    #[test]
    fn aliases_resolve_to_the_field_index() {
        assert!(matches!(
            checked("response.status").kind,
            ExprKind::Field(2)
        ));
        assert!(matches!(checked("status_code").kind, ExprKind::Field(2)));
    }

    #[test]
    fn comprehension_variables_shadow_fields_and_get_slots() {
        let e = checked("[[1]].exists(status_code, status_code.exists(y, y == 1))");
        let ExprKind::Comprehension(outer) = e.kind else {
            panic!()
        };
        assert_eq!(outer.var, 0);
        let ExprKind::Comprehension(inner) = outer.body.kind else {
            panic!()
        };
        assert!(matches!(inner.range.kind, ExprKind::Var(0)));
        assert_eq!(inner.var, 1);
        let ExprKind::Compare(CmpOp::Eq, l, _) = inner.body.kind else {
            panic!()
        };
        assert!(matches!(l.kind, ExprKind::Var(1)));
    }

    #[test]
    fn literal_time_and_regex_are_prepared_at_check_time() {
        assert!(matches!(
            checked("duration('1m')").kind,
            ExprKind::Literal(Value::Duration(60_000_000_000))
        ));
        assert!(matches!(
            checked("timestamp('1970-01-01T00:00:01Z')").kind,
            ExprKind::Literal(Value::Timestamp(1_000_000_000))
        ));
        let e = checked("'a'.matches('a+')");
        assert!(matches!(e.kind, ExprKind::Matches(_, Pattern::Compiled(_))));
        let e = checked("'a'.matches('a' + '+')");
        assert!(matches!(e.kind, ExprKind::Matches(_, Pattern::Dynamic(_))));
    }

    #[test]
    fn literal_lists_are_folded() {
        let e = checked("[1, 2]");
        assert!(matches!(e.kind, ExprKind::Literal(Value::List(ref l)) if l.len() == 2));
        assert_eq!(e.ty, Type::List(Box::new(Type::Int)));
        assert!(matches!(
            checked("[1, status_code]").kind,
            ExprKind::List(_)
        ));
    }

    #[test]
    fn has_on_a_field_is_non_zero_and_on_a_map_is_key_presence() {
        assert!(matches!(
            checked("has(src.pod.name)").kind,
            ExprKind::Compare(CmpOp::Ne, _, _)
        ));
        assert!(matches!(
            checked("has(request.headers.host)").kind,
            ExprKind::In(_, _)
        ));
    }
}
