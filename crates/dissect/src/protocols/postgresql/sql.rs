//! SQL text helpers shared by the PostgreSQL and MySQL dissectors: the
//! statement verb (`method`) and the normalised statement (`path`: the
//! text with literals replaced by `?`, comments dropped and whitespace
//! collapsed, so that `trawl stats --by path` groups executions of one
//! statement whatever its values).

/// Longest normalised statement kept: enough to tell statements apart;
/// the full text stays in the query field and request body.
pub const MAX_NORMALISED_BYTES: usize = 1024;

/// The statement's first keyword, upper-cased (`SELECT`, `INSERT`,
/// `BEGIN`), after leading comments, whitespace and parentheses; empty
/// when the text starts with no word.
pub fn verb(sql: &str) -> String {
    let mut s = sql;
    loop {
        let t = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(' || c == ';');
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = t.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            s = t;
            break;
        }
    }
    s.chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .take(32)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The statement with string and number literals replaced by `?`
/// (`'…'`, `E'…'`, `"…"` when `double_quoted_strings` as in MySQL,
/// `$tag$…$tag$` dollar quotes, numbers outside identifiers), comments
/// dropped, whitespace runs made one space, cut to
/// [`MAX_NORMALISED_BYTES`]. Placeholders (`$1`, `?`) stay.
pub fn normalise(sql: &str, double_quoted_strings: bool) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len().min(MAX_NORMALISED_BYTES));
    let mut i = 0;
    let mut space = false;
    let push = |out: &mut String, s: &str, space: &mut bool| {
        if *space && !out.is_empty() {
            out.push(' ');
        }
        *space = false;
        out.push_str(s);
    };
    while i < b.len() && out.len() < MAX_NORMALISED_BYTES {
        let c = b.get(i).copied().unwrap_or(0);
        let next = b.get(i + 1).copied().unwrap_or(0);
        if c.is_ascii_whitespace() {
            space = true;
            i += 1;
        } else if c == b'-' && next == b'-' {
            i = memchr::memchr(b'\n', b.get(i..).unwrap_or_default()).map_or(b.len(), |p| i + p);
            space = true;
        } else if c == b'/' && next == b'*' {
            i = memchr::memmem::find(b.get(i + 2..).unwrap_or_default(), b"*/")
                .map_or(b.len(), |p| i + 2 + p + 2);
            space = true;
        } else if c == b'\'' || (c == b'"' && double_quoted_strings) {
            i = skip_quoted(b, i + 1, c);
            push(&mut out, "?", &mut space);
        } else if (c == b'E' || c == b'e') && next == b'\'' && !prev_is_word(b, i) {
            i = skip_quoted(b, i + 2, b'\'');
            push(&mut out, "?", &mut space);
        } else if c == b'$'
            && !next.is_ascii_digit()
            && let Some(end) = dollar_quote_end(b, i)
        {
            i = end;
            push(&mut out, "?", &mut space);
        } else if c.is_ascii_digit() && !prev_is_word(b, i) {
            while b
                .get(i)
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == b'.')
            {
                i += 1;
            }
            push(&mut out, "?", &mut space);
        } else if c == b'$' && next.is_ascii_digit() {
            // A placeholder: keep it.
            let start = i;
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            push(&mut out, sql.get(start..i).unwrap_or("$"), &mut space);
        } else {
            // One UTF-8 character.
            let len = utf8_len(c);
            let ch = sql.get(i..i + len).unwrap_or("?");
            push(&mut out, ch, &mut space);
            i += len.max(1);
        }
    }
    if out.len() > MAX_NORMALISED_BYTES {
        let mut cut = MAX_NORMALISED_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

fn prev_is_word(b: &[u8], i: usize) -> bool {
    i.checked_sub(1)
        .and_then(|p| b.get(p))
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80)
}

/// Index after the closing quote (doubled quotes and backslash escapes
/// stay inside); the end of text when unclosed.
fn skip_quoted(b: &[u8], mut i: usize, q: u8) -> usize {
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            i += 2;
        } else if c == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// `$tag$ … $tag$` starting at `i`: the index after it.
fn dollar_quote_end(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i + 1..)?;
    let tag_len = rest.iter().position(|c| *c == b'$')?;
    if !rest
        .get(..tag_len)?
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    let delim = b.get(i..i + tag_len + 2)?;
    let body_start = i + tag_len + 2;
    let end = memchr::memmem::find(b.get(body_start..)?, delim)?;
    Some(body_start + end + delim.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        assert_eq!(verb("  select 1"), "SELECT");
        assert_eq!(verb("/* hi */ -- x\n(SELECT 1)"), "SELECT");
        assert_eq!(verb("BEGIN;"), "BEGIN");
        assert_eq!(verb(""), "");
    }

    #[test]
    fn normalising() {
        assert_eq!(
            normalise(
                "SELECT * FROM t WHERE id = 42 AND name = 'o''brien'  -- c\n",
                false
            ),
            "SELECT * FROM t WHERE id = ? AND name = ?"
        );
        assert_eq!(
            normalise(
                "insert into t2 values ($1, E'x\\'y', 3.5e3, $$a$b$$)",
                false
            ),
            "insert into t2 values ( $1, ?, ?, ?)".replace("( ", "(")
        );
        assert_eq!(
            normalise("select \"Col1\" from t", false),
            "select \"Col1\" from t"
        );
        assert_eq!(normalise("select \"x\" from t1", true), "select ? from t1");
        assert_eq!(
            normalise("SELECT 'ünï' /* c */ ,  x", false),
            "SELECT ? , x"
        );
        let long = format!("SELECT {}", "a, ".repeat(1000));
        assert!(normalise(&long, false).len() <= MAX_NORMALISED_BYTES);
    }
}
