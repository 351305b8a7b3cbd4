//! Errors of compiling a filter ([`KflError`]) and of evaluating one
//! ([`EvalError`]). Compile errors carry the byte span, the 1-based line and
//! column (in characters) and, where one is close enough, a did-you-mean.
//! Built by the lexer, parser and checker; printed by whoever shows the user
//! the filter (the CLI, the hub API, the MCP server).

use std::fmt;

/// A byte range `start..end` in the filter's source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A filter that does not compile: syntax, unknown name, or type error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct KflError {
    /// What is wrong, naming the input (`unknown field "response.statuss"`).
    pub message: String,
    pub span: Span,
    /// 1-based line of `span.start`.
    pub line: usize,
    /// 1-based column of `span.start`, counted in characters.
    pub col: usize,
    /// The closest known name, when one is near enough to be a typo.
    pub suggestion: Option<String>,
}

impl KflError {
    /// Builds the error, working out line and column from `src`.
    pub(crate) fn new(src: &str, span: Span, message: impl Into<String>) -> KflError {
        let (line, col) = line_col(src, span.start);
        KflError {
            message: message.into(),
            span,
            line,
            col,
            suggestion: None,
        }
    }

    pub(crate) fn with_suggestion(mut self, suggestion: Option<String>) -> KflError {
        self.suggestion = suggestion;
        self
    }
}

impl fmt::Display for KflError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}:{}", self.message, self.line, self.col)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean \"{s}\"?")?;
        }
        Ok(())
    }
}

/// 1-based line and character column of byte offset `at` in `src` (clamped
/// to the end, and to the previous character boundary).
pub(crate) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
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

/// A runtime error of one evaluation: overflow, division by zero, a missing
/// map key, a bad conversion. `Filter::matches` turns it into "no match";
/// `&&` and `||` absorb it when the other side decides the result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at bytes {}..{})", span.start, span.end)]
pub struct EvalError {
    pub message: String,
    pub span: Span,
}

impl EvalError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            span,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = "a &&\n  é == b";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 5), (2, 1));
        // "é" is two bytes; "==" starts at byte 10, character column 5.
        assert_eq!(line_col(src, 10), (2, 5));
    }

    #[test]
    fn display_has_position_and_suggestion() {
        let e = KflError::new(
            "response.statuss",
            Span::new(0, 16),
            "unknown field \"response.statuss\"",
        )
        .with_suggestion(Some("response.status".into()));
        assert_eq!(
            e.to_string(),
            "unknown field \"response.statuss\" at 1:1; did you mean \"response.status\"?"
        );
    }
}
