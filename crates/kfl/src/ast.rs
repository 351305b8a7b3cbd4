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

impl Expr {
    /// The direct sub-expressions, in evaluation order (a compiled
    /// `matches` pattern and folded literals have none).
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Field(_) | ExprKind::Var(_) => Vec::new(),
            ExprKind::List(items) => items.iter().collect(),
            ExprKind::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
            ExprKind::Not(x) | ExprKind::Neg(x) => vec![x],
            ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Arith(_, a, b)
            | ExprKind::Compare(_, a, b)
            | ExprKind::In(a, b)
            | ExprKind::Index(a, b) => vec![a, b],
            ExprKind::Cond(c, t, f) => vec![c, t, f],
            ExprKind::Call(_, args) => args.iter().collect(),
            ExprKind::Matches(s, Pattern::Compiled(_)) => vec![s],
            ExprKind::Matches(s, Pattern::Dynamic(p)) => vec![s, p],
            ExprKind::Comprehension(c) => {
                let mut out = vec![&c.range];
                out.extend(c.filter.as_ref());
                out.push(&c.body);
                out
            }
        }
    }

    /// Catalogue indices of the fields this expression reads, ascending,
    /// each once: what a query engine must hand the interpreter to
    /// evaluate it row by row.
    pub fn fields_read(&self) -> Vec<usize> {
        fn walk(e: &Expr, out: &mut Vec<usize>) {
            if let ExprKind::Field(i) = e.kind {
                out.push(i);
            }
            for c in e.children() {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether this expression uses the variable of a comprehension that
    /// encloses it (so it cannot be evaluated on its own).
    pub fn has_free_vars(&self) -> bool {
        fn walk(e: &Expr, bound: &mut Vec<usize>) -> bool {
            match &e.kind {
                ExprKind::Var(slot) => !bound.contains(slot),
                ExprKind::Comprehension(c) => {
                    if walk(&c.range, bound) {
                        return true;
                    }
                    bound.push(c.var);
                    let free = c.filter.iter().any(|f| walk(f, bound)) || walk(&c.body, bound);
                    bound.pop();
                    free
                }
                _ => e.children().into_iter().any(|c| walk(c, bound)),
            }
        }
        walk(self, &mut Vec::new())
    }

    /// The highest variable slot bound or used inside this expression.
    pub(crate) fn max_var_slot(&self) -> Option<usize> {
        let own = match &self.kind {
            ExprKind::Var(slot) => Some(*slot),
            ExprKind::Comprehension(c) => Some(c.var),
            _ => None,
        };
        self.children()
            .into_iter()
            .filter_map(Expr::max_var_slot)
            .chain(own)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Catalogue, EvalContext, FieldSpec, Record, Type, Value, compile, eval_expr};

    fn cat() -> Catalogue {
        let f = |name: &str, ty: Type| FieldSpec {
            name: name.into(),
            aliases: vec![],
            ty,
        };
        Catalogue::new(vec![
            f("code", Type::Int),
            f("tags", Type::List(Box::new(Type::String))),
            f("names", Type::List(Box::new(Type::String))),
        ])
        .unwrap()
    }

    struct Rec;

    impl Record for Rec {
        fn field(&self, idx: usize) -> Value {
            match idx {
                0 => Value::Int(7),
                1 => Value::List(vec![Value::string("a"), Value::string("b")]),
                _ => Value::List(vec![Value::string("b")]),
            }
        }
    }

    #[test]
    fn fields_read_and_free_variables() {
        let f = compile(
            "code > 1 && tags.exists(t, names.exists(n, n == t))",
            &cat(),
        )
        .unwrap();
        let e = f.expr().unwrap();
        assert_eq!(e.fields_read(), vec![0, 1, 2]);
        assert!(!e.has_free_vars());
        let outer = e.children()[1];
        // The inner macro uses the outer one's variable: not closed.
        let crate::ExprKind::Comprehension(c) = &outer.kind else {
            panic!("{outer:?}");
        };
        assert!(c.body.has_free_vars());
        assert_eq!(c.body.fields_read(), vec![2]);
    }

    #[test]
    fn a_sub_expression_evaluates_as_inside_its_filter() {
        // The inner macro has slot 1; evaluated alone, it still finds its
        // variable there.
        let f = compile(
            "code > 100 || tags.exists(t, names.exists(n, n == \"b\") && t == \"b\")",
            &cat(),
        )
        .unwrap();
        let ctx = EvalContext::default();
        let e = f.expr().unwrap();
        let right = e.children()[1];
        assert_eq!(eval_expr(right, &Rec, &ctx), Ok(Value::Bool(true)));
        let crate::ExprKind::Comprehension(c) = &right.kind else {
            panic!("{right:?}");
        };
        let inner = c.body.children()[0];
        assert!(!inner.has_free_vars());
        assert_eq!(eval_expr(inner, &Rec, &ctx), Ok(Value::Bool(true)));
        // One with a free variable is an error, not a panic.
        let uses_t = c.body.children()[1];
        assert!(eval_expr(uses_t, &Rec, &ctx).is_err());
    }
}
