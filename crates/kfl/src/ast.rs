//! The checked, typed expression tree that `compile` produces: fields are
//! catalogue indices, every node has its static type and byte span, literal
//! regexes are compiled, and `timestamp("…")`/`duration("…")` of literals
//! are folded to values. It is what the interpreter runs and what a later
//! compiler to DataFusion walks, so each variant maps to one operation
//! (no name lookups or overload resolution left to do).

use regex::Regex;

use crate::catalogue::Type;
use crate::error::Span;
use crate::value::Value;

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Literal(Value),
    /// A catalogue field, by index (names and aliases are resolved).
    Field(usize),
    /// The variable of an enclosing comprehension: its slot, counted from
    /// the outermost comprehension (0).
    Var(usize),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    /// CEL `&&`: false wins over an error from either side.
    And(Box<Expr>, Box<Expr>),
    /// CEL `||`: true wins over an error from either side.
    Or(Box<Expr>, Box<Expr>),
    /// `cond ? then : else`; evaluates one branch.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `elem in container` (list membership or map key).
    In(Box<Expr>, Box<Expr>),
    /// `container[key]`, also what `map.key` selection becomes.
    Index(Box<Expr>, Box<Expr>),
    /// A built-in function; a receiver (`x.f(y)`) is the first argument.
    Call(Function, Vec<Expr>),
    /// `subject.matches(pattern)`.
    Matches(Box<Expr>, Pattern),
    Comprehension(Box<Comprehension>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The built-in functions, one per operation. The list of names a filter
/// may call is `crate::check::FUNCTION_NAMES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// string.contains(string)
    Contains,
    /// string.startsWith(string)
    StartsWith,
    /// string.endsWith(string)
    EndsWith,
    /// size of a string (code points), bytes, list or map
    Size,
    /// map_get(map, key, default)
    MapGet,
    /// timestamp(string) of a non-literal, or timestamp(int seconds)
    Timestamp,
    /// duration(string) of a non-literal
    Duration,
    /// now(), from the evaluation context
    Now,
    ToInt,
    ToUint,
    ToDouble,
    ToString,
}

/// The regex of `matches`: compiled at check time when it is a literal.
#[derive(Debug, Clone)]
pub enum Pattern {
    Compiled(Regex),
    Dynamic(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacroKind {
    Exists,
    All,
    ExistsOne,
    Filter,
    Map,
}

/// `range.exists(var, body)` and friends. Over a map, `var` ranges over
/// the keys.
#[derive(Debug, Clone)]
pub struct Comprehension {
    pub kind: MacroKind,
    pub range: Expr,
    /// Slot of the bound variable (see `ExprKind::Var`).
    pub var: usize,
    pub var_name: String,
    /// The filter of the three-argument `map(x, filter, transform)`.
    pub filter: Option<Expr>,
    /// The predicate (exists, all, exists_one, filter) or transform (map).
    pub body: Expr,
}
