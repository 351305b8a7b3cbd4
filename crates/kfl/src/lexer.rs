//! Turns filter text into tokens, each with its byte span. Literals are
//! decoded here (escapes, raw and triple-quoted strings, bytes, int/uint/
//! double), so the parser only sees values. Called by the parser; errors
//! are `KflError`s pointing at the offending characters.

use crate::error::{KflError, Span};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A decimal or hex integer literal without sign; its range is checked
    /// by the parser, which knows whether a `-` precedes it.
    Int(u64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Colon,
    Question,
    OrOr,
    AndAnd,
    Bang,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

impl Tok {
    /// How the token reads in "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(i) => format!("number {i}"),
            Tok::Uint(u) => format!("number {u}u"),
            Tok::Double(d) => format!("number {d}"),
            Tok::Str(_) => "string".into(),
            Tok::Bytes(_) => "bytes".into(),
            Tok::Ident(s) => format!("\"{s}\""),
            Tok::Eof => "end of filter".into(),
            other => format!("\"{}\"", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::In => "in",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Dot => ".",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Question => "?",
            Tok::OrOr => "||",
            Tok::AndAnd => "&&",
            Tok::Bang => "!",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            _ => "?",
        }
    }
}

/// Words CEL reserves: they cannot start a name. They may follow a dot,
/// since KFL2 field names such as `src.namespace` use them.
pub(crate) const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn err(&self, start: usize, msg: impl Into<String>) -> KflError {
        KflError::new(self.src, Span::new(start, self.pos.max(start + 1)), msg)
    }

    /// Skips whitespace and `//` comments.
    fn skip_trivia(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek2() == Some('/') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// Every token of the input, ending with `Eof`.
    pub(crate) fn tokenize(mut self) -> Result<Vec<(Tok, Span)>, KflError> {
        let mut out = Vec::new();
        loop {
            self.skip_trivia();
            let start = self.pos;
            let Some(c) = self.peek() else {
                out.push((Tok::Eof, Span::new(start, start)));
                return Ok(out);
            };
            let tok = match c {
                '0'..='9' => self.number()?,
                '.' if self.peek2().is_some_and(|d| d.is_ascii_digit()) => self.number()?,
                '"' | '\'' => self.string(false, false)?,
                c if c == '_' || c.is_ascii_alphabetic() => self.word()?,
                _ => self.punct()?,
            };
            out.push((tok, Span::new(start, self.pos)));
        }
    }

    fn punct(&mut self) -> Result<Tok, KflError> {
        let start = self.pos;
        let c = self.bump().unwrap_or('\0');
        let next = self.peek();
        let two = |l: &mut Lexer<'_>, t: Tok| {
            l.bump();
            Ok(t)
        };
        match (c, next) {
            ('|', Some('|')) => two(self, Tok::OrOr),
            ('&', Some('&')) => two(self, Tok::AndAnd),
            ('=', Some('=')) => two(self, Tok::EqEq),
            ('!', Some('=')) => two(self, Tok::NotEq),
            ('<', Some('=')) => two(self, Tok::Le),
            ('>', Some('=')) => two(self, Tok::Ge),
            ('(', _) => Ok(Tok::LParen),
            (')', _) => Ok(Tok::RParen),
            ('[', _) => Ok(Tok::LBracket),
            (']', _) => Ok(Tok::RBracket),
            ('{', _) => Ok(Tok::LBrace),
            ('}', _) => Ok(Tok::RBrace),
            ('.', _) => Ok(Tok::Dot),
            (',', _) => Ok(Tok::Comma),
            (':', _) => Ok(Tok::Colon),
            ('?', _) => Ok(Tok::Question),
            ('!', _) => Ok(Tok::Bang),
            ('<', _) => Ok(Tok::Lt),
            ('>', _) => Ok(Tok::Gt),
            ('+', _) => Ok(Tok::Plus),
            ('-', _) => Ok(Tok::Minus),
            ('*', _) => Ok(Tok::Star),
            ('/', _) => Ok(Tok::Slash),
            ('%', _) => Ok(Tok::Percent),
            ('=', _) => Err(self.err(start, "unexpected \"=\"; use \"==\" to compare")),
            ('&', _) => Err(self.err(start, "unexpected \"&\"; use \"&&\" for and")),
            ('|', _) => Err(self.err(start, "unexpected \"|\"; use \"||\" for or")),
            (c, _) => Err(self.err(start, format!("unexpected character {c:?}"))),
        }
    }

    /// An identifier or keyword, or a prefixed string (`r"…"`, `b'…'`, `rb"…"`).
    fn word(&mut self) -> Result<Tok, KflError> {
        let len = self
            .rest()
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(self.rest().len());
        let word = self.rest().get(..len).unwrap_or("");
        let after = self.rest().get(len..).and_then(|r| r.chars().next());
        if matches!(after, Some('"' | '\'')) && len <= 2 {
            let lower = word.to_ascii_lowercase();
            let (raw, bytes) = match lower.as_str() {
                "r" => (true, false),
                "b" => (false, true),
                // CEL: a bytes prefix, then a raw one (`br`, not `rb`).
                "br" => (true, true),
                _ => (false, false),
            };
            if raw || bytes {
                self.pos += len;
                return self.string(raw, bytes);
            }
        }
        self.pos += len;
        Ok(match word {
            "true" => Tok::True,
            "false" => Tok::False,
            "null" => Tok::Null,
            "in" => Tok::In,
            w => Tok::Ident(w.to_string()),
        })
    }

    fn number(&mut self) -> Result<Tok, KflError> {
        let start = self.pos;
        let rest = self.rest();
        // CEL's grammar spells hex with a lower-case "0x" only.
        if rest.starts_with("0x") {
            self.pos += 2;
            let digits: String = self
                .rest()
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            self.pos += digits.len();
            if digits.is_empty() {
                return Err(self.err(start, "hex literal needs digits after \"0x\""));
            }
            let v = u64::from_str_radix(&digits, 16)
                .map_err(|_| self.err(start, "hex literal out of range"))?;
            return Ok(self.uint_suffix(v));
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut len = int_len;
        let mut is_double = false;
        let b = rest.as_bytes();
        if b.get(len) == Some(&b'.') && b.get(len + 1).is_some_and(u8::is_ascii_digit) {
            is_double = true;
            len += 1;
            len += b
                .get(len..)
                .unwrap_or(&[])
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        }
        if matches!(b.get(len), Some(b'e' | b'E')) {
            let mut e = len + 1;
            if matches!(b.get(e), Some(b'+' | b'-')) {
                e += 1;
            }
            let digits = b
                .get(e..)
                .unwrap_or(&[])
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits == 0 {
                self.pos += e;
                return Err(self.err(start, "exponent needs digits"));
            }
            is_double = true;
            len = e + digits;
        }
        let text = rest.get(..len).unwrap_or("");
        self.pos += len;
        if is_double {
            let d: f64 = text
                .parse()
                .map_err(|_| self.err(start, format!("bad number \"{text}\"")))?;
            return Ok(Tok::Double(d));
        }
        let v: u64 = text
            .parse()
            .map_err(|_| self.err(start, format!("integer literal {text} out of range")))?;
        Ok(self.uint_suffix(v))
    }

    fn uint_suffix(&mut self, v: u64) -> Tok {
        if matches!(self.peek(), Some('u' | 'U')) {
            self.bump();
            Tok::Uint(v)
        } else {
            Tok::Int(v)
        }
    }

    /// A quoted literal; the prefix (if any) has been consumed and the
    /// cursor is on the opening quote.
    fn string(&mut self, raw: bool, bytes: bool) -> Result<Tok, KflError> {
        let start = self.pos;
        let q = self.bump().unwrap_or('"');
        let triple = self
            .rest()
            .starts_with(if q == '"' { "\"\"" } else { "''" });
        if triple {
            self.pos += 2;
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let here = self.pos;
            let Some(c) = self.bump() else {
                return Err(KflError::new(
                    self.src,
                    Span::new(start, self.pos),
                    "unterminated string",
                ));
            };
            if c == q {
                if !triple {
                    break;
                }
                if self
                    .rest()
                    .starts_with(if q == '"' { "\"\"" } else { "''" })
                {
                    self.pos += 2;
                    break;
                }
            }
            if !triple && (c == '\n' || c == '\r') {
                return Err(KflError::new(
                    self.src,
                    Span::new(start, here),
                    "newline in string; use \\n or a triple-quoted string",
                ));
            }
            if c == '\\' && !raw {
                self.escape(here, bytes, &mut out)?;
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        if bytes {
            Ok(Tok::Bytes(out))
        } else {
            // Only octal/hex escapes in strings denote code points (see
            // `escape`), so the bytes are UTF-8 by construction.
            String::from_utf8(out).map(Tok::Str).map_err(|_| {
                KflError::new(
                    self.src,
                    Span::new(start, self.pos),
                    "string is not valid UTF-8",
                )
            })
        }
    }

    /// One escape after a backslash at byte `at`. In strings `\xHH`, `\ooo`
    /// and `\u…` denote code points; in bytes `\xHH` and `\ooo` denote bytes
    /// and `\u…` is refused (CEL).
    fn escape(&mut self, at: usize, bytes: bool, out: &mut Vec<u8>) -> Result<(), KflError> {
        let bad =
            |l: &Lexer<'_>, m: &str| Err(KflError::new(l.src, Span::new(at, l.pos), m.to_string()));
        let Some(c) = self.bump() else {
            return bad(self, "unterminated escape");
        };
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '\'' => Some(b'\''),
            '"' => Some(b'"'),
            '`' => Some(b'`'),
            '?' => Some(b'?'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let (radix, digits) = match c {
            'x' | 'X' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='3' => (8, 2),
            _ => return bad(self, &format!("unknown escape \\{c}")),
        };
        if bytes && matches!(c, 'u' | 'U') {
            return bad(self, "\\u escapes are not allowed in bytes; use \\x");
        }
        let mut v: u32 = if radix == 8 {
            c.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..digits {
            let Some(d) = self.peek().and_then(|d| d.to_digit(radix)) else {
                return bad(
                    self,
                    &format!(
                        "escape \\{c} needs {digits} {} digits",
                        if radix == 8 { "more octal" } else { "hex" }
                    ),
                );
            };
            self.bump();
            v = v * radix + d;
        }
        if bytes {
            // \\xHH and \\ooo (first digit 0-3) are at most 0xff.
            out.push(v as u8);
            return Ok(());
        }
        let Some(ch) = char::from_u32(v) else {
            return bad(
                self,
                &format!("escape denotes U+{v:X}, which is not a Unicode scalar value"),
            );
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        Lexer::new(s)
            .tokenize()
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("1 1u 0x1F 0x1fU 1.5 1e3 .5 2.5e-1"),
            vec![
                Tok::Int(1),
                Tok::Uint(1),
                Tok::Int(31),
                Tok::Uint(31),
                Tok::Double(1.5),
                Tok::Double(1000.0),
                Tok::Double(0.5),
                Tok::Double(0.25),
                Tok::Eof
            ]
        );
        assert!(Lexer::new("99999999999999999999").tokenize().is_err());
        assert!(Lexer::new("1e").tokenize().is_err());
    }

    #[test]
    fn member_access_after_int_is_not_a_double() {
        assert_eq!(
            toks("a.b"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("1.e"),
            vec![Tok::Int(1), Tok::Dot, Tok::Ident("e".into()), Tok::Eof]
        );
    }

    #[test]
    fn strings_and_prefixes() {
        assert_eq!(
            toks(r#""a\tb" r"a\tb" b"\xff" '''x'y''' R'\n'"#),
            vec![
                Tok::Str("a\tb".into()),
                Tok::Str("a\\tb".into()),
                Tok::Bytes(vec![0xff]),
                Tok::Str("x'y".into()),
                Tok::Str("\\n".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks(r#""\xff""#), vec![Tok::Str("ÿ".into()), Tok::Eof]);
        assert_eq!(toks(r#"b"\377""#), vec![Tok::Bytes(vec![0xff]), Tok::Eof]);
        assert!(Lexer::new(r#"b"\u00ff""#).tokenize().is_err());
        assert!(Lexer::new(r#""\ud800""#).tokenize().is_err());
        assert!(Lexer::new("\"abc").tokenize().is_err());
        assert!(Lexer::new("\"a\nb\"").tokenize().is_err());
    }

    #[test]
    fn spans_are_bytes() {
        let t = Lexer::new("é == 'x'").tokenize();
        // "é" is not an identifier character in CEL.
        assert!(t.is_err());
        let t = Lexer::new("a  == 'x'").tokenize().unwrap();
        assert_eq!(t[1].1, Span::new(3, 5));
        assert_eq!(t[2].1, Span::new(6, 9));
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            toks("a // note\n&& b"),
            vec![
                Tok::Ident("a".into()),
                Tok::AndAnd,
                Tok::Ident("b".into()),
                Tok::Eof
            ]
        );
    }
}
