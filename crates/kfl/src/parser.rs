//! Recursive-descent parser from tokens to the untyped syntax tree
//! ([`Syntax`]), with CEL's precedence: `?:` < `||` < `&&` < relations <
//! `+ -` < `* / %` < unary `! -` < member, index and call. Names are not
//! resolved here (the checker does that against the catalogue). Bounded:
//! input length, parser recursion and tree height all have named limits, so
//! a hostile filter gets an error instead of exhausting the stack.

use crate::error::{KflError, Span};
use crate::lexer::{Lexer, RESERVED, Tok};
use crate::value::Value;
use crate::{MAX_FILTER_BYTES, MAX_NESTING, MAX_TREE_HEIGHT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

/// A node of the untyped tree. `height` is 1 for leaves and bounds every
/// later recursive walk (checker, interpreter, drop).
#[derive(Debug, Clone)]
pub(crate) struct Syntax {
    pub kind: SyntaxKind,
    pub span: Span,
    pub height: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum SyntaxKind {
    Lit(Value),
    Ident(String),
    /// `operand.name`; the span of `name` is kept for error positions.
    Select(Box<Syntax>, String, Span),
    Index(Box<Syntax>, Box<Syntax>),
    /// `f(args)` or `target.f(args)`; `name_span` covers the function name.
    Call {
        target: Option<Box<Syntax>>,
        name: String,
        name_span: Span,
        args: Vec<Syntax>,
    },
    Not(Box<Syntax>),
    Neg(Box<Syntax>),
    Binary(BinOp, Box<Syntax>, Box<Syntax>),
    Cond(Box<Syntax>, Box<Syntax>, Box<Syntax>),
    List(Vec<Syntax>),
    Map(Vec<(Syntax, Syntax)>),
}

/// Parses `src` into a tree; `Ok(None)` for an empty (or comment-only) filter.
pub(crate) fn parse(src: &str) -> Result<Option<Syntax>, KflError> {
    if src.len() > MAX_FILTER_BYTES {
        return Err(KflError::new(
            src,
            Span::new(0, 0),
            format!(
                "filter is {} bytes long; the limit is {MAX_FILTER_BYTES}",
                src.len()
            ),
        ));
    }
    let toks = Lexer::new(src).tokenize()?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Ok(None);
    }
    let e = p.expr()?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("an operator or the end of the filter"));
    }
    Ok(Some(e))
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, Span)>,
    pos: usize,
    /// Current recursion depth of `expr` and `unary`, checked against `MAX_NESTING`.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |(t, _)| t)
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .map_or(Span::new(self.src.len(), self.src.len()), |(_, s)| *s)
    }

    fn bump(&mut self) -> (Tok, Span) {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::Eof, self.span()));
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn err(&self, span: Span, msg: impl Into<String>) -> KflError {
        KflError::new(self.src, span, msg)
    }

    fn unexpected(&self, wanted: &str) -> KflError {
        self.err(
            self.span(),
            format!("expected {wanted}, found {}", self.peek().describe()),
        )
    }

    fn expect(&mut self, t: &Tok, wanted: &str) -> Result<Span, KflError> {
        if self.peek() == t {
            Ok(self.bump().1)
        } else {
            Err(self.unexpected(wanted))
        }
    }

    /// Builds a node, refusing trees taller than `MAX_TREE_HEIGHT`.
    fn node(&self, kind: SyntaxKind, span: Span, children: &[&Syntax]) -> Result<Syntax, KflError> {
        let height = 1 + children.iter().map(|c| c.height).max().unwrap_or(0);
        if height > MAX_TREE_HEIGHT {
            return Err(self.err(span, format!("expression is nested too deeply (limit {MAX_TREE_HEIGHT} levels); a long chain of \"||\" comparisons can be written as x in [...]")));
        }
        Ok(Syntax { kind, span, height })
    }

    fn enter(&mut self) -> Result<(), KflError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(
                self.span(),
                format!("expression is nested too deeply (limit {MAX_NESTING} levels)"),
            ));
        }
        Ok(())
    }

    /// expr = or ["?" or ":" expr] (CEL's grammar: the middle operand is
    /// not itself a conditional unless parenthesised)
    fn expr(&mut self) -> Result<Syntax, KflError> {
        self.enter()?;
        let cond = self.or()?;
        let r = if self.eat(&Tok::Question) {
            let then = self.or()?;
            self.expect(&Tok::Colon, "\":\" of the conditional")?;
            let els = self.expr()?;
            let span = cond.span.to(els.span);
            let n = self.node(SyntaxKind::Lit(Value::Null), span, &[&cond, &then, &els])?;
            Ok(Syntax {
                kind: SyntaxKind::Cond(Box::new(cond), Box::new(then), Box::new(els)),
                ..n
            })
        } else {
            Ok(cond)
        };
        self.depth -= 1;
        r
    }

    fn binary(&self, op: BinOp, l: Syntax, r: Syntax) -> Result<Syntax, KflError> {
        let span = l.span.to(r.span);
        let height = 1 + l.height.max(r.height);
        if height > MAX_TREE_HEIGHT {
            return Err(self.err(span, format!("expression is nested too deeply (limit {MAX_TREE_HEIGHT} levels); a long chain of \"||\" comparisons can be written as x in [...]")));
        }
        Ok(Syntax {
            kind: SyntaxKind::Binary(op, Box::new(l), Box::new(r)),
            span,
            height,
        })
    }

    fn or(&mut self) -> Result<Syntax, KflError> {
        let mut l = self.and()?;
        while self.eat(&Tok::OrOr) {
            let r = self.and()?;
            l = self.binary(BinOp::Or, l, r)?;
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Syntax, KflError> {
        let mut l = self.relation()?;
        while self.eat(&Tok::AndAnd) {
            let r = self.relation()?;
            l = self.binary(BinOp::And, l, r)?;
        }
        Ok(l)
    }

    fn relation(&mut self) -> Result<Syntax, KflError> {
        let mut l = self.additive()?;
        loop {
            let op = match self.peek() {
                Tok::EqEq => BinOp::Eq,
                Tok::NotEq => BinOp::Ne,
                Tok::Lt => BinOp::Lt,
                Tok::Le => BinOp::Le,
                Tok::Gt => BinOp::Gt,
                Tok::Ge => BinOp::Ge,
                Tok::In => BinOp::In,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.additive()?;
            l = self.binary(op, l, r)?;
        }
    }

    fn additive(&mut self) -> Result<Syntax, KflError> {
        let mut l = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.multiplicative()?;
            l = self.binary(op, l, r)?;
        }
    }

    fn multiplicative(&mut self) -> Result<Syntax, KflError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Rem,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.unary()?;
            l = self.binary(op, l, r)?;
        }
    }

    fn unary(&mut self) -> Result<Syntax, KflError> {
        match self.peek() {
            Tok::Bang | Tok::Minus => self.prefixed(),
            _ => {
                let e = self.primary()?;
                self.postfix(e)
            }
        }
    }

    /// `!x` and `-x`. A `-` directly before a number literal is part of
    /// the literal (as in CEL), so -9223372036854775808 is a valid int.
    #[inline(never)]
    fn prefixed(&mut self) -> Result<Syntax, KflError> {
        let (op, start) = self.bump();
        if op == Tok::Minus {
            match self.toks.get(self.pos).cloned() {
                Some((Tok::Int(v), s)) => {
                    self.bump();
                    let span = start.to(s);
                    let lit = if v == 1 << 63 {
                        i64::MIN
                    } else {
                        -i64::try_from(v)
                            .map_err(|_| self.err(span, "integer literal out of range for int"))?
                    };
                    let e = self.node(SyntaxKind::Lit(Value::Int(lit)), span, &[])?;
                    return self.postfix(e);
                }
                Some((Tok::Double(d), s)) => {
                    self.bump();
                    let e = self.node(SyntaxKind::Lit(Value::Double(-d)), start.to(s), &[])?;
                    return self.postfix(e);
                }
                _ => {}
            }
        }
        self.enter()?;
        let e = self.unary()?;
        self.depth -= 1;
        let span = start.to(e.span);
        let n = self.node(SyntaxKind::Lit(Value::Null), span, &[&e])?;
        let kind = if op == Tok::Bang {
            SyntaxKind::Not(Box::new(e))
        } else {
            SyntaxKind::Neg(Box::new(e))
        };
        Ok(Syntax { kind, ..n })
    }

    /// Member selections, receiver calls and indexes after a primary.
    fn postfix(&mut self, mut e: Syntax) -> Result<Syntax, KflError> {
        loop {
            e = match self.peek() {
                Tok::Dot => self.member(e)?,
                Tok::LBracket => self.index_suffix(e)?,
                _ => return Ok(e),
            };
        }
    }

    /// `.name` or `.name(args)` after `e`.
    #[inline(never)]
    fn member(&mut self, e: Syntax) -> Result<Syntax, KflError> {
        self.bump();
        let (tok, name_span) = self.bump();
        let Tok::Ident(name) = tok else {
            self.pos -= 1;
            return Err(self.unexpected("a field or method name after \".\""));
        };
        if self.peek() != &Tok::LParen {
            let span = e.span.to(name_span);
            let n = self.node(SyntaxKind::Lit(Value::Null), span, &[&e])?;
            return Ok(Syntax {
                kind: SyntaxKind::Select(Box::new(e), name, name_span),
                ..n
            });
        }
        self.bump();
        let args = self.args(&Tok::RParen, "\")\" or \",\"")?;
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(name_span, |(_, s)| *s);
        let span = e.span.to(end);
        let mut children: Vec<&Syntax> = args.iter().collect();
        children.push(&e);
        let n = self.node(SyntaxKind::Lit(Value::Null), span, &children)?;
        Ok(Syntax {
            kind: SyntaxKind::Call {
                target: Some(Box::new(e)),
                name,
                name_span,
                args,
            },
            ..n
        })
    }

    /// `[index]` after `e`.
    #[inline(never)]
    fn index_suffix(&mut self, e: Syntax) -> Result<Syntax, KflError> {
        self.bump();
        let idx = self.expr()?;
        let end = self.expect(&Tok::RBracket, "\"]\"")?;
        let span = e.span.to(end);
        let n = self.node(SyntaxKind::Lit(Value::Null), span, &[&e, &idx])?;
        Ok(Syntax {
            kind: SyntaxKind::Index(Box::new(e), Box::new(idx)),
            ..n
        })
    }

    /// Comma-separated expressions up to `close` (consumed); a trailing
    /// comma is allowed, as in CEL.
    fn args(&mut self, close: &Tok, wanted: &str) -> Result<Vec<Syntax>, KflError> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(&Tok::Comma, wanted)?;
            if self.eat(close) {
                return Ok(out);
            }
        }
    }

    /// Kept small: it is on the recursive path of every parenthesis, so
    /// the bulky cases live in their own functions (debug builds give
    /// every temporary its own stack slot).
    fn primary(&mut self) -> Result<Syntax, KflError> {
        let (tok, span) = self.bump();
        match tok {
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(&Tok::RParen, "\")\"")?;
                Ok(e)
            }
            Tok::Ident(name) => self.ident_or_call(name, span),
            Tok::LBracket => self.list_literal(span),
            Tok::LBrace => self.map_literal(span),
            tok => self.literal(tok, span),
        }
    }

    #[inline(never)]
    fn literal(&mut self, tok: Tok, span: Span) -> Result<Syntax, KflError> {
        let v = match tok {
            Tok::Int(v) => Value::Int(i64::try_from(v).map_err(|_| {
                self.err(
                    span,
                    "integer literal out of range for int; add \"u\" for uint",
                )
            })?),
            Tok::Uint(v) => Value::Uint(v),
            Tok::Double(d) => Value::Double(d),
            Tok::Str(s) => Value::string(&s),
            Tok::Bytes(b) => Value::Bytes(b.into()),
            Tok::True => Value::Bool(true),
            Tok::False => Value::Bool(false),
            Tok::Null => Value::Null,
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("a value, field or \"(\""));
            }
        };
        self.node(SyntaxKind::Lit(v), span, &[])
    }

    #[inline(never)]
    fn ident_or_call(&mut self, name: String, span: Span) -> Result<Syntax, KflError> {
        if RESERVED.contains(&name.as_str()) {
            return Err(self.err(span, format!("\"{name}\" is a reserved word")));
        }
        if self.peek() != &Tok::LParen {
            return self.node(SyntaxKind::Ident(name), span, &[]);
        }
        self.bump();
        let args = self.args(&Tok::RParen, "\")\" or \",\"")?;
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(span, |(_, s)| *s);
        let children: Vec<&Syntax> = args.iter().collect();
        let n = self.node(SyntaxKind::Lit(Value::Null), span.to(end), &children)?;
        Ok(Syntax {
            kind: SyntaxKind::Call {
                target: None,
                name,
                name_span: span,
                args,
            },
            ..n
        })
    }

    #[inline(never)]
    fn list_literal(&mut self, span: Span) -> Result<Syntax, KflError> {
        let items = self.args(&Tok::RBracket, "\"]\" or \",\"")?;
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(span, |(_, s)| *s);
        let children: Vec<&Syntax> = items.iter().collect();
        let n = self.node(SyntaxKind::Lit(Value::Null), span.to(end), &children)?;
        Ok(Syntax {
            kind: SyntaxKind::List(items),
            ..n
        })
    }

    #[inline(never)]
    fn map_literal(&mut self, span: Span) -> Result<Syntax, KflError> {
        let mut entries = Vec::new();
        if !self.eat(&Tok::RBrace) {
            loop {
                let k = self.expr()?;
                self.expect(&Tok::Colon, "\":\" after the map key")?;
                let v = self.expr()?;
                entries.push((k, v));
                if self.eat(&Tok::RBrace) {
                    break;
                }
                self.expect(&Tok::Comma, "\"}\" or \",\"")?;
                if self.eat(&Tok::RBrace) {
                    break;
                }
            }
        }
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(span, |(_, s)| *s);
        let children: Vec<&Syntax> = entries.iter().flat_map(|(k, v)| [k, v]).collect();
        let n = self.node(SyntaxKind::Lit(Value::Null), span.to(end), &children)?;
        Ok(Syntax {
            kind: SyntaxKind::Map(entries),
            ..n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the tree with explicit parentheses, to test precedence.
    fn show(e: &Syntax) -> String {
        match &e.kind {
            SyntaxKind::Lit(v) => v.to_string(),
            SyntaxKind::Ident(n) => n.clone(),
            SyntaxKind::Select(o, n, _) => format!("{}.{n}", show(o)),
            SyntaxKind::Index(o, i) => format!("{}[{}]", show(o), show(i)),
            SyntaxKind::Call {
                target, name, args, ..
            } => {
                let a: Vec<String> = args.iter().map(show).collect();
                match target {
                    Some(t) => format!("{}.{name}({})", show(t), a.join(", ")),
                    None => format!("{name}({})", a.join(", ")),
                }
            }
            SyntaxKind::Not(x) => format!("(!{})", show(x)),
            SyntaxKind::Neg(x) => format!("(-{})", show(x)),
            SyntaxKind::Binary(op, l, r) => format!("({} {} {})", show(l), op.symbol(), show(r)),
            SyntaxKind::Cond(c, t, f) => format!("({} ? {} : {})", show(c), show(t), show(f)),
            SyntaxKind::List(l) => {
                format!("[{}]", l.iter().map(show).collect::<Vec<_>>().join(", "))
            }
            SyntaxKind::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn p(s: &str) -> String {
        show(&parse(s).unwrap().unwrap())
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(p("a || b && c"), "(a || (b && c))");
        assert_eq!(p("a && b == c"), "(a && (b == c))");
        assert_eq!(p("1 + 2 * 3 - 4"), "((1 + (2 * 3)) - 4)");
        assert_eq!(p("8 / 4 / 2"), "((8 / 4) / 2)");
        assert_eq!(p("a ? b : c ? d : e"), "(a ? b : (c ? d : e))");
        assert_eq!(p("a ? (b ? c : d) : e"), "(a ? (b ? c : d) : e)");
        assert!(parse("a ? b ? c : d : e").is_err());
        assert_eq!(p("!a.b"), "(!a.b)");
        assert_eq!(p("-x[0]"), "(-x[0])");
        assert_eq!(p("a < b == true"), "((a < b) == true)");
        assert_eq!(p("x in [1, 2,]"), "(x in [1, 2])");
        assert_eq!(p("path.startsWith('/a')"), "path.startsWith(\"/a\")");
        assert_eq!(p("{'a': 1}['a']"), "{\"a\": 1}[\"a\"]");
    }

    #[test]
    fn negative_literals_fold() {
        assert_eq!(p("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(p("- 1"), "-1");
        assert_eq!(p("--1"), "(--1)");
        assert!(parse("9223372036854775808").is_err());
    }

    #[test]
    fn empty_is_none() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("  \n\t ").unwrap().is_none());
        assert!(parse("// only a comment").unwrap().is_none());
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a &&").unwrap_err();
        assert_eq!((e.line, e.col), (1, 5));
        assert_eq!(
            e.message,
            "expected a value, field or \"(\", found end of filter"
        );
        let e = parse("(a").unwrap_err();
        assert_eq!(e.to_string(), "expected \")\", found end of filter at 1:3");
        let e = parse("a b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected an operator or the end of the filter, found \"b\" at 1:3"
        );
    }

    #[test]
    fn hostile_nesting_is_refused() {
        let deep = "(".repeat(100_000) + "1" + &")".repeat(100_000);
        assert!(parse(&deep).unwrap_err().message.contains("bytes long"));
        let deep = "(".repeat(5_000) + "1" + &")".repeat(5_000);
        assert!(
            parse(&deep)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let chain = vec!["1"; 5_000].join(" + ");
        assert!(
            parse(&chain)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let bangs = "!".repeat(5_000) + "true";
        assert!(
            parse(&bangs)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let members = "a".to_string() + &".b".repeat(5_000);
        assert!(
            parse(&members)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
    }
}
