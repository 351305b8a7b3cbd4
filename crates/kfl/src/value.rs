//! Run-time values of KFL and their CEL semantics that do not depend on the
//! expression tree: equality (heterogeneous across int, uint and double, as
//! cel-go does), ordering, and the text forms of timestamps (RFC 3339) and
//! durations (Go syntax). Used by the checker to fold literals and by the
//! interpreter; a `Record` hands its fields over as `Value`s.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::catalogue::Type;

/// One KFL value.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    /// Nanoseconds.
    Duration(i64),
    List(Vec<Value>),
    /// Key/value pairs in insertion order; keys are distinct.
    Map(Vec<(Value, Value)>),
}

impl Value {
    pub fn string(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    /// The zero value of `ty`: what a record returns for an absent field.
    pub fn zero(ty: &Type) -> Value {
        match ty {
            Type::Bool => Value::Bool(false),
            Type::Int => Value::Int(0),
            Type::Uint => Value::Uint(0),
            Type::Double => Value::Double(0.0),
            Type::String => Value::string(""),
            Type::Bytes => Value::Bytes(Arc::from(&[][..])),
            Type::Timestamp => Value::Timestamp(0),
            Type::Duration => Value::Duration(0),
            Type::Null | Type::Dyn => Value::Null,
            Type::List(_) => Value::List(Vec::new()),
            Type::Map(_, _) => Value::Map(Vec::new()),
        }
    }

    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Timestamp(_) => "timestamp",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// CEL equality: numbers compare by value across int, uint and double;
    /// values of different types are unequal (never an error); NaN equals
    /// nothing; lists elementwise; maps as sets of entries.
    pub fn cel_eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Timestamp(a), Timestamp(b)) | (Duration(a), Duration(b)) => a == b,
            (List(a), List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.cel_eq(y)),
            (Map(a), Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| map_lookup(b, k).is_some_and(|w| v.cel_eq(w)))
            }
            _ => numeric_cmp(self, other) == Some(Ordering::Equal),
        }
    }

    /// CEL ordering, defined within one type and across the numeric types;
    /// `None` when the values are not ordered (different types, NaN).
    pub fn cel_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            // Rust orders `str` by UTF-8 bytes, which is code-point order.
            (String(a), String(b)) => Some(a.cmp(b)),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            (Timestamp(a), Timestamp(b)) | (Duration(a), Duration(b)) => Some(a.cmp(b)),
            _ => numeric_cmp(self, other),
        }
    }
}

/// The value stored under `key`, by CEL equality (so `m[1u]` finds key `1`).
pub(crate) fn map_lookup<'a>(map: &'a [(Value, Value)], key: &Value) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k.cel_eq(key)).map(|(_, v)| v)
}

/// Exact comparison of two numbers of any numeric type (no rounding of
/// large ints through f64), `None` for NaN or non-numbers.
fn numeric_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Uint(x), Uint(y)) => Some(x.cmp(y)),
        (Double(x), Double(y)) => x.partial_cmp(y),
        (Int(x), Uint(y)) => Some(if *x < 0 {
            Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (Uint(_), Int(_)) => numeric_cmp(b, a).map(Ordering::reverse),
        (Int(x), Double(y)) => int_double_cmp(i128::from(*x), *y),
        (Uint(x), Double(y)) => int_double_cmp(i128::from(*x), *y),
        (Double(_), Int(_) | Uint(_)) => numeric_cmp(b, a).map(Ordering::reverse),
        _ => None,
    }
}

/// Compares an integer with a double by their mathematical values, as
/// current cel-go does (it compares through `big.Float` so that ints above
/// 2^53 are not rounded): out-of-range doubles order beyond every integer,
/// in-range ones compare after splitting off the fraction.
fn int_double_cmp(i: i128, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    // 2^64 bounds both i64 and u64 magnitudes.
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if d >= TWO_64 {
        return Some(Ordering::Less);
    }
    if d <= -TWO_64 {
        return Some(Ordering::Greater);
    }
    let t = d.trunc();
    // |t| < 2^64 was checked above, so it converts to i128 exactly.
    let ti = t as i128;
    match i.cmp(&ti) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(d - t)),
        o => Some(o),
    }
}

impl PartialEq for Value {
    /// Structural equality for tests: `Int(1) != Uint(1)`, `NaN == NaN`.
    /// Filters use [`Value::cel_eq`].
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Uint(a), Uint(b)) => a == b,
            (Double(a), Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (String(a), String(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Duration(a), Duration(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    /// CEL-like literal syntax, for test output and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Uint(u) => write!(f, "{u}u"),
            Value::Double(d) => write!(f, "{d:?}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Timestamp(t) => write!(f, "timestamp({:?})", format_timestamp(*t)),
            Value::Duration(d) => write!(f, "duration({:?})", format_duration(*d)),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00Z`,
/// `2024-05-01T12:00:00.5+02:00`) into nanoseconds since the epoch. The
/// range is what fits an i64 of nanoseconds (years 1677 to 2262).
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid timestamp \"{s}\": want RFC 3339, e.g. \"2024-05-01T10:00:00Z\"");
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return Err(bad());
    };
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(bad());
    }
    let month_days = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = usize::try_from(mo - 1)
        .ok()
        .and_then(|i| month_days.get(i))
        .copied();
    if max_day.is_none_or(|m| d < 1 || d > m) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b.get(i).copied().unwrap_or(b'0') - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let (Some(oh), Some(om)) = (num(i + 1, 2), num(i + 4, 2)) else {
                return Err(bad());
            };
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let o = oh * 3600 + om * 60;
            if *c == b'-' { -o } else { o }
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(|| format!("timestamp \"{s}\" is out of range (years 1677 to 2262)"))
}

/// RFC 3339 in UTC with as many fractional digits as needed (cel-go's form).
pub fn format_timestamp(ns: i64) -> String {
    let secs = ns.div_euclid(NANOS_PER_SEC);
    let frac = ns.rem_euclid(NANOS_PER_SEC);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!(".{frac:09}");
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses a Go duration (`300ms`, `-1.5h`, `2h45m`, `0`): an optional sign
/// and one or more decimal numbers each with a unit of `h`, `m`, `s`, `ms`,
/// `us` (or `µs`), `ns`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "invalid duration \"{s}\": want e.g. \"5m\", \"1.5s\", \"2h45m\" (units h, m, s, ms, us, ns)"
        )
    };
    let range = || format!("duration \"{s}\" is out of range (about ±292 years)");
    let (neg, mut rest) = match (s.strip_prefix('-'), s.strip_prefix('+')) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    // Accumulate in i128 nanoseconds so that only the final total is range-checked.
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, r) = rest.split_at(int_len);
        let (frac_part, r) = match r.strip_prefix('.') {
            Some(r2) => {
                let n = r2.bytes().take_while(u8::is_ascii_digit).count();
                r2.split_at(n)
            }
            None => ("", r),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = r
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(r.len());
        let (unit, r) = r.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        // More than 20 integer digits overflows any i64 duration anyway.
        if int_part.len() > 20 {
            return Err(range());
        }
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut frac_ns: i128 = 0;
        let mut div: i128 = 1;
        // Digits past the 18th cannot change a nanosecond count of any unit.
        for c in frac_part.bytes().take(18) {
            frac_ns = frac_ns * 10 + i128::from(c - b'0');
            div *= 10;
        }
        total = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_ns * scale / div))
            .and_then(|w| total.checked_add(w))
            .ok_or_else(range)?;
        rest = r;
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).map_err(|_| range())
}

/// cel-go's text form of a duration: seconds with the needed fraction and
/// an `s` suffix (`90s`, `1.5s`, `-0.000000001s`).
pub fn format_duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    let secs = abs / 1_000_000_000;
    let frac = abs % 1_000_000_000;
    if frac == 0 {
        format!("{sign}{secs}s")
    } else {
        let f = format!("{frac:09}");
        format!("{sign}{secs}.{}s", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heterogeneous_numeric_equality_is_exact() {
        assert!(Value::Int(1).cel_eq(&Value::Uint(1)));
        assert!(Value::Int(1).cel_eq(&Value::Double(1.0)));
        assert!(!Value::Int(-1).cel_eq(&Value::Uint(u64::MAX)));
        // 2^53 + 1 has no exact double: it must not equal 2^53 (cel-go
        // compares exactly too).
        assert!(!Value::Int((1 << 53) + 1).cel_eq(&Value::Double(9_007_199_254_740_992.0)));
        assert!(!Value::Double(f64::NAN).cel_eq(&Value::Double(f64::NAN)));
        assert!(!Value::Int(1).cel_eq(&Value::string("1")));
    }

    #[test]
    fn numeric_ordering_across_types() {
        assert_eq!(
            Value::Int(-1).cel_cmp(&Value::Uint(0)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Uint(3).cel_cmp(&Value::Double(2.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(2).cel_cmp(&Value::Double(2.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Int(-2).cel_cmp(&Value::Double(-2.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(i64::MAX).cel_cmp(&Value::Double(1e30)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Uint(5).cel_cmp(&Value::Double(-1.0)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(i64::MAX).cel_cmp(&Value::Double(9_223_372_036_854_775_808.0)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Int(0).cel_cmp(&Value::Double(f64::NAN)), None);
    }

    #[test]
    fn timestamps_round_trip() {
        let t = parse_timestamp("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(t, 1_714_557_600 * NANOS_PER_SEC);
        assert_eq!(format_timestamp(t), "2024-05-01T10:00:00Z");
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.25+02:00").unwrap(),
            t + 250_000_000
        );
        assert_eq!(format_timestamp(t + 250_000_000), "2024-05-01T10:00:00.25Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999999Z");
        assert!(parse_timestamp("2024-02-30T00:00:00Z").is_err());
        assert!(parse_timestamp("2024-05-01").is_err());
        assert!(parse_timestamp("2024-05-01T10:00:00").is_err());
        assert!(parse_timestamp("3000-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5m"), Ok(300 * NANOS_PER_SEC));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(
            parse_duration("2h45m"),
            Ok((2 * 3600 + 45 * 60) * NANOS_PER_SEC)
        );
        assert_eq!(parse_duration("-300ms"), Ok(-300_000_000));
        assert_eq!(parse_duration("10us"), Ok(10_000));
        assert_eq!(parse_duration("7ns"), Ok(7));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert_eq!(format_duration(90 * NANOS_PER_SEC), "90s");
        assert_eq!(format_duration(-1), "-0.000000001s");
    }
}
