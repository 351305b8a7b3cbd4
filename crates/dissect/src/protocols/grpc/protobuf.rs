//! A schemaless reading of a protobuf message for display: each field as
//! `number: value`, varints as numbers, fixed-width values as hex and
//! numbers, length-delimited values as a nested message when they parse
//! as one, else as a quoted string when they are printable UTF-8, else as
//! hex. Without the schema this is a guess (a string of the right bytes
//! parses as a message), as `protoc --decode_raw` guesses.

use std::fmt::Write as _;

/// Longest reading kept per message: enough to see a request's shape,
/// small enough for an index row.
pub const MAX_RENDER_BYTES: usize = 4 * 1024;

/// Nesting followed before values are shown as bytes; hostile input can
/// nest a message in every length-delimited field.
const MAX_DEPTH: usize = 8;

/// Bytes shown of a value that is neither a message nor text.
const MAX_HEX_BYTES: usize = 32;

/// Read `msg`; "" when it does not parse as a message at all.
pub fn render(msg: &[u8]) -> String {
    let mut out = String::new();
    if parse(msg, 0, &mut out).is_none() {
        // Show what parsed before the message was cut or went bad.
        out.truncate(out.trim_end().len());
        if out.is_empty() {
            return out;
        }
        out.push_str(" …");
    }
    if out.len() > MAX_RENDER_BYTES {
        let mut cut = MAX_RENDER_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Append the fields of `b`; None when it is not a whole message.
fn parse(b: &[u8], depth: usize, out: &mut String) -> Option<()> {
    let mut at = 0;
    let mut first = true;
    while at < b.len() {
        if out.len() > MAX_RENDER_BYTES {
            return Some(());
        }
        let (key, n) = varint(b.get(at..)?)?;
        at += n;
        let field = key >> 3;
        if field == 0 || field > 536_870_911 {
            return None;
        }
        if !first {
            out.push(' ');
        }
        first = false;
        match key & 7 {
            0 => {
                let (v, n) = varint(b.get(at..)?)?;
                at += n;
                let _ = write!(out, "{field}: {v}");
            }
            1 => {
                let raw = b.get(at..at + 8)?;
                at += 8;
                let v = u64::from_le_bytes(<[u8; 8]>::try_from(raw).ok()?);
                let _ = write!(out, "{field}: 0x{v:016x}");
            }
            5 => {
                let raw = b.get(at..at + 4)?;
                at += 4;
                let v = u32::from_le_bytes(<[u8; 4]>::try_from(raw).ok()?);
                let _ = write!(out, "{field}: 0x{v:08x}");
            }
            2 => {
                let (len, n) = varint(b.get(at..)?)?;
                at += n;
                let len = usize::try_from(len).ok()?;
                let end = at.checked_add(len)?;
                let v = b.get(at..end)?;
                at = end;
                let _ = write!(out, "{field}: ");
                value(v, depth, out);
            }
            _ => return None,
        }
    }
    Some(())
}

fn value(v: &[u8], depth: usize, out: &mut String) {
    let text = std::str::from_utf8(v)
        .ok()
        .filter(|s| s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
    // Printable text is shown as text first: short strings often parse as
    // messages too ("hi" is field 13, varint 105).
    if let Some(s) = text.filter(|s| !s.is_empty()) {
        let _ = write!(out, "{s:?}");
        return;
    }
    if depth < MAX_DEPTH && !v.is_empty() {
        let mark = out.len();
        out.push('{');
        if parse(v, depth + 1, out).is_some() {
            out.push('}');
            return;
        }
        out.truncate(mark);
    }
    out.push_str("0x");
    for byte in v.iter().take(MAX_HEX_BYTES) {
        let _ = write!(out, "{byte:02x}");
    }
    if v.len() > MAX_HEX_BYTES {
        out.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_nested_messages_and_text() {
        // 1: 150, 2: "testing", 3: {1: 1}, 4: fixed32, 5: bytes.
        let msg = [
            0x08, 0x96, 0x01, 0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g', 0x1a, 0x02,
            0x08, 0x01, 0x25, 1, 0, 0, 0, 0x2a, 0x02, 0xff, 0x00,
        ];
        assert_eq!(
            render(&msg),
            r#"1: 150 2: "testing" 3: {1: 1} 4: 0x00000001 5: 0xff00"#
        );
        assert_eq!(render(&[]), "");
        // Cut inside a field: what parsed, then a mark.
        assert_eq!(render(&[0x08, 0x01, 0x12, 0x09, b'a']), "1: 1 …");
        assert_eq!(render(&[0xff; 3]), "");
    }

    #[test]
    fn deep_and_long_inputs_stay_bounded() {
        let mut m = vec![0x08, 0x01];
        for _ in 0..50 {
            let mut outer = vec![0x0a];
            outer.push(m.len() as u8);
            outer.extend_from_slice(&m);
            m = outer;
            if m.len() > 120 {
                break;
            }
        }
        assert!(!render(&m).is_empty());
        let long: Vec<u8> = std::iter::repeat_n([0x08u8, 0x7f], 5000)
            .flatten()
            .collect();
        assert!(render(&long).len() <= MAX_RENDER_BYTES + 4);
    }
}
