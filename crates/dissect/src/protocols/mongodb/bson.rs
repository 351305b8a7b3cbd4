//! A minimal BSON reader for what trawl reads of MongoDB messages: the
//! top-level keys of a document in order, and the string, number and
//! sub-document values of a few of them (command name, `$db`, `ok`,
//! `errmsg`, `code`, `codeName`). Values are skipped by their type's
//! size without being decoded; every length is checked against the
//! document. Called by [`super::parser`].

/// A value trawl reads; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    Double(f64),
    Int(i64),
    Bool(bool),
    Doc(&'a [u8]),
    Other,
}

impl Value<'_> {
    /// A number as f64 (`ok` is a double, an int or a bool).
    pub fn number(&self) -> Option<f64> {
        match *self {
            Value::Double(d) => Some(d),
            #[expect(clippy::cast_precision_loss, reason = "codes and ok flags are small")]
            Value::Int(i) => Some(i as f64),
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    pub fn string(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// The document at the start of `b` (its declared length checked against
/// `b`), or None.
pub fn document(b: &[u8]) -> Option<&[u8]> {
    let len = usize::try_from(i32::from_le_bytes(*b.first_chunk::<4>()?)).ok()?;
    if len < 5 {
        return None;
    }
    b.get(..len)
}

/// Iterates the top-level elements of a document as (key, value); stops
/// at the end or at the first malformed element.
pub fn elements(doc: &[u8]) -> Elements<'_> {
    Elements { doc, pos: 4 }
}

#[derive(Debug)]
pub struct Elements<'a> {
    doc: &'a [u8],
    pos: usize,
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

impl<'a> Iterator for Elements<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let d = self.doc;
        let ty = *d.get(self.pos)?;
        if ty == 0 {
            return None;
        }
        let key_start = self.pos + 1;
        let key_len = memchr::memchr(0, d.get(key_start..)?)?;
        let key = d.get(key_start..key_start + key_len)?;
        let v = key_start + key_len + 1;
        let string_len = |at: usize| -> Option<usize> {
            let n = usize::try_from(le_i32(d, at)?).ok()?;
            (n >= 1).then_some(4 + n)
        };
        let cstring_len =
            |at: usize| -> Option<usize> { Some(memchr::memchr(0, d.get(at..)?)? + 1) };
        let (size, value) = match ty {
            0x01 => (
                8,
                Value::Double(f64::from_le_bytes(*d.get(v..)?.first_chunk::<8>()?)),
            ),
            0x02 => {
                let n = string_len(v)?;
                (n, Value::Str(d.get(v + 4..v + n - 1)?))
            }
            0x03 | 0x04 => {
                let n = usize::try_from(le_i32(d, v)?).ok()?;
                let sub = d.get(v..v.checked_add(n)?)?;
                (
                    n,
                    if ty == 0x03 {
                        Value::Doc(sub)
                    } else {
                        Value::Other
                    },
                )
            }
            0x05 => (
                usize::try_from(le_i32(d, v)?).ok()?.checked_add(5)?,
                Value::Other,
            ),
            0x06 | 0x0a | 0x7f | 0xff => (0, Value::Other),
            0x07 => (12, Value::Other),
            0x08 => (1, Value::Bool(*d.get(v)? != 0)),
            0x09 | 0x11 => (8, Value::Other),
            0x0b => {
                let a = cstring_len(v)?;
                (a + cstring_len(v + a)?, Value::Other)
            }
            0x0c => (string_len(v)? + 12, Value::Other),
            0x0d | 0x0e => (string_len(v)?, Value::Other),
            0x0f => (usize::try_from(le_i32(d, v)?).ok()?, Value::Other),
            0x10 => (4, Value::Int(i64::from(le_i32(d, v)?))),
            0x12 => (
                8,
                Value::Int(i64::from_le_bytes(*d.get(v..)?.first_chunk::<8>()?)),
            ),
            0x13 => (16, Value::Other),
            _ => return None,
        };
        let end = v.checked_add(size)?;
        if end > d.len() {
            return None;
        }
        self.pos = end;
        Some((key, value))
    }
}

/// The value of top-level `key` in `doc`.
pub fn get<'a>(doc: &'a [u8], key: &str) -> Option<Value<'a>> {
    elements(doc)
        .find(|(k, _)| *k == key.as_bytes())
        .map(|(_, v)| v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a BSON document from (key, value) pairs: strings, i32s,
    /// doubles, sub-documents (already encoded).
    pub(crate) enum B<'a> {
        S(&'a str),
        I(i32),
        D(f64),
        Doc(Vec<u8>),
    }

    pub(crate) fn doc(items: &[(&str, B<'_>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in items {
            let (ty, bytes) = match v {
                B::S(s) => {
                    let mut b = ((s.len() + 1) as i32).to_le_bytes().to_vec();
                    b.extend(s.as_bytes());
                    b.push(0);
                    (2u8, b)
                }
                B::I(i) => (0x10, i.to_le_bytes().to_vec()),
                B::D(d) => (0x01, d.to_le_bytes().to_vec()),
                B::Doc(d) => (0x03, d.clone()),
            };
            body.push(ty);
            body.extend(k.as_bytes());
            body.push(0);
            body.extend(bytes);
        }
        let mut out = ((body.len() + 5) as i32).to_le_bytes().to_vec();
        out.extend(body);
        out.push(0);
        out
    }

    #[test]
    fn reads_keys_and_values() {
        let inner = doc(&[("x", B::I(1))]);
        let d = doc(&[
            ("find", B::S("users")),
            ("filter", B::Doc(inner)),
            ("ok", B::D(1.0)),
            ("$db", B::S("shop")),
        ]);
        let keys: Vec<&[u8]> = elements(&d).map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"find"[..], b"filter", b"ok", b"$db"]);
        assert_eq!(get(&d, "find").unwrap().string().as_deref(), Some("users"));
        assert_eq!(get(&d, "ok").unwrap().number(), Some(1.0));
        assert_eq!(get(&d, "$db").unwrap().string().as_deref(), Some("shop"));
        assert!(get(&d, "missing").is_none());
        assert_eq!(document(&d), Some(&d[..]));
        // Every truncation: no panic, no element read past the cut.
        for cut in 0..d.len() {
            let _ = elements(&d[..cut]).count();
            assert!(document(&d[..cut]).is_none());
        }
    }
}
