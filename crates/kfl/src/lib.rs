//! KFL, Kubeshark's filter language: a dialect of CEL over trawl's call
//! records. `compile` parses a filter, resolves its names against the field
//! catalogue (KFL2 names and KFL1 aliases) and type-checks it into a
//! [`Filter`] whose typed tree ([`Expr`]) is what the query engine compiles
//! to DataFusion; [`Filter::eval`] and [`Filter::matches`] are the
//! reference interpreter over any [`Record`]. The catalogue itself comes
//! from `trawl-model`; this crate knows no field by name.
//!
//! ```
//! use trawl_kfl::{Catalogue, EvalContext, FieldSpec, Record, Type, Value, compile};
//! let cat = Catalogue::new(vec![FieldSpec {
//!     name: "status_code".into(),
//!     aliases: vec!["response.status".into()],
//!     ty: Type::Int,
//! }])
//! .unwrap();
//! struct Call(i64);
//! impl Record for Call {
//!     fn field(&self, _idx: usize) -> Value {
//!         Value::Int(self.0)
//!     }
//! }
//! let f = compile("response.status >= 500", &cat).unwrap();
//! assert!(f.matches(&Call(503), &EvalContext::default()));
//! let err = compile("response.statuss >= 500", &cat).unwrap_err();
//! assert_eq!(err.to_string(), "unknown field \"response.statuss\" at 1:1; did you mean \"response.status\"?");
//! ```

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod ast;
mod catalogue;
mod check;
mod error;
mod eval;
mod lexer;
mod parser;
mod value;

pub use ast::{ArithOp, CmpOp, Comprehension, Expr, ExprKind, Function, MacroKind, Pattern};
pub use catalogue::{Catalogue, CatalogueError, FieldSpec, Type};
pub use check::{FUNCTION_NAMES, MAX_REGEX_BYTES};
pub use error::{EvalError, KflError, Span};
pub use eval::{EvalContext, MAX_EVAL_COST, Record};
pub use value::{Value, format_duration, format_timestamp, parse_duration, parse_timestamp};

/// Longest filter accepted, in bytes. Hand-written and agent-written
/// filters are well under 1 KiB; 64 KiB leaves room for generated ones
/// (long `in [...]` lists) while bounding parse time and memory.
pub const MAX_FILTER_BYTES: usize = 64 * 1024;

/// Deepest nesting of parentheses, brackets, calls and unary operators.
/// Each level costs the recursive-descent parser about 16 KiB of stack in
/// debug builds (far less in release); 50 levels stay inside a 2 MiB
/// thread stack, and no sensible filter nests more than a handful.
pub const MAX_NESTING: usize = 50;

/// Tallest expression tree accepted (a chain `a || b || c …` is as tall as
/// it is long). The checker and the interpreter (and later the DataFusion
/// compiler) recurse over the tree, so its height bounds their stack:
/// measured at about 5 KiB per level in debug builds, 100 levels stay well
/// inside a 2 MiB thread stack. Long `||` chains of equalities fit in one
/// level as `x in [...]`.
pub const MAX_TREE_HEIGHT: usize = 100;

/// A compiled filter: the source it came from and its checked tree.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    /// `None` for the empty filter, which matches everything.
    expr: Option<Expr>,
}

/// Parses and checks `src` against `cat`. The empty (or blank) filter
/// compiles to "match everything".
pub fn compile(src: &str, cat: &Catalogue) -> Result<Filter, KflError> {
    let expr = match parser::parse(src)? {
        None => None,
        Some(syntax) => Some(check::Checker::new(src, cat).check_filter(&syntax)?),
    };
    Ok(Filter {
        source: src.to_string(),
        expr,
    })
}

/// Like [`compile`], for an expression of any type rather than a
/// condition: computed columns, group-by keys, and tests of the language.
pub fn compile_expr(src: &str, cat: &Catalogue) -> Result<Filter, KflError> {
    let expr = match parser::parse(src)? {
        None => None,
        Some(syntax) => Some(check::Checker::new(src, cat).check_expr(&syntax)?),
    };
    Ok(Filter {
        source: src.to_string(),
        expr,
    })
}

/// Evaluates one sub-expression of a checked filter on `rec`, as the
/// whole filter's evaluation would: used by the query engine for the parts
/// of a filter it runs through the interpreter rather than natively. An
/// expression with free variables (see [`Expr::has_free_vars`]) is an
/// error ("unbound variable"), not a panic.
pub fn eval_expr(e: &Expr, rec: &dyn Record, ctx: &EvalContext) -> Result<Value, EvalError> {
    eval::Evaluator::for_subexpression(rec, ctx, e).eval(e)
}

impl Filter {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The checked tree; `None` when the filter matches everything.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    pub fn matches_everything(&self) -> bool {
        self.expr.is_none()
    }

    /// The filter's value on `rec` (`Bool` for a well-typed filter, though
    /// a `dyn` expression may yield another type).
    pub fn eval(&self, rec: &dyn Record, ctx: &EvalContext) -> Result<Value, EvalError> {
        match &self.expr {
            None => Ok(Value::Bool(true)),
            Some(e) => eval::Evaluator::new(rec, ctx).eval(e),
        }
    }

    /// Whether `rec` passes: true only for `Bool(true)`; errors and
    /// non-bool values do not match.
    pub fn matches(&self, rec: &dyn Record, ctx: &EvalContext) -> bool {
        matches!(self.eval(rec, ctx), Ok(Value::Bool(true)))
    }
}
