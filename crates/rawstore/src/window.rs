//! Time windows as people type them: `--last 15m`, or `--from`/`--to` in
//! RFC 3339, turned into a half-open nanosecond window `[from_ns, to_ns)`.
//! Used by `trawl snapshot create` and `trawl export pcap` (the CLI passes
//! the current time in: this crate reads no clock).

use serde::{Deserialize, Serialize};

/// A half-open time window `[from_ns, to_ns)`, nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from_ns: i64,
    pub to_ns: i64,
}

impl Window {
    pub fn contains(&self, ts_ns: i64) -> bool {
        ts_ns >= self.from_ns && ts_ns < self.to_ns
    }
}

/// A window that could not be understood; the message names the input and
/// the accepted forms.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("invalid duration {0:?}: use a number and a unit such as 30s, 15m, 2h, 1d or 1h30m")]
    Duration(String),
    #[error(
        "invalid time {0:?}: use RFC 3339 such as 2026-11-28T17:00:00Z or 2026-11-28T18:00:00+01:00"
    )]
    Time(String),
    #[error("give either a duration (--last) or --from [--to], not both")]
    Both,
    #[error("give a duration (--last 15m) or --from")]
    Neither,
    #[error("the window is empty: from {from} is not before to {to}")]
    Empty { from: String, to: String },
}

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Nanoseconds of a duration such as `15m`, `90s`, `2h`, `1d`, `1h30m` or
/// `500ms`. Must be positive.
pub fn parse_duration(s: &str) -> Result<i64, WindowError> {
    let err = || WindowError::Duration(s.to_string());
    let t = s.trim();
    // jiff's friendly format refuses days for a fixed duration (a calendar
    // day may be 23 or 25 hours); here a day is 24 hours.
    let ns = match t.strip_suffix('d').map(str::parse::<i64>) {
        Some(Ok(days)) => i128::from(days) * 86_400 * i128::from(NANOS_PER_SEC),
        _ => {
            let d: jiff::SignedDuration = t.parse().map_err(|_| err())?;
            d.as_nanos()
        }
    };
    if ns <= 0 {
        return Err(err());
    }
    i64::try_from(ns).map_err(|_| err())
}

/// Nanoseconds since the epoch of an RFC 3339 time (any offset).
pub fn parse_time(s: &str) -> Result<i64, WindowError> {
    let t: jiff::Timestamp = s
        .trim()
        .parse()
        .map_err(|_| WindowError::Time(s.to_string()))?;
    i64::try_from(t.as_nanosecond()).map_err(|_| WindowError::Time(s.to_string()))
}

/// RFC 3339 in UTC with the nanoseconds that are not zero, for manifests
/// and messages.
pub fn format_time(ts_ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ts_ns)) {
        Ok(t) => t.to_string(),
        Err(_) => format!("{}s", ts_ns / NANOS_PER_SEC),
    }
}

/// The window of `--last D` (ending at `now_ns`) or of `--from T [--to T]`
/// (`to` defaults to `now_ns`).
pub fn parse_window(
    last: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now_ns: i64,
) -> Result<Window, WindowError> {
    let w = match (last, from) {
        (Some(_), Some(_)) => return Err(WindowError::Both),
        (Some(_), None) if to.is_some() => return Err(WindowError::Both),
        (None, None) => return Err(WindowError::Neither),
        (Some(d), None) => Window {
            from_ns: now_ns.saturating_sub(parse_duration(d)?),
            to_ns: now_ns,
        },
        (None, Some(f)) => Window {
            from_ns: parse_time(f)?,
            to_ns: to.map(parse_time).transpose()?.unwrap_or(now_ns),
        },
    };
    if w.from_ns >= w.to_ns {
        return Err(WindowError::Empty {
            from: format_time(w.from_ns),
            to: format_time(w.to_ns),
        });
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), 900 * NANOS_PER_SEC);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400 * NANOS_PER_SEC);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("2h").unwrap(), 7200 * NANOS_PER_SEC);
        assert_eq!(parse_duration("1d").unwrap(), 86_400 * NANOS_PER_SEC);
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn times_and_windows() {
        let t = parse_time("2026-11-28T18:00:00+01:00").unwrap();
        assert_eq!(t, parse_time("2026-11-28T17:00:00Z").unwrap());
        assert_eq!(format_time(t), "2026-11-28T17:00:00Z");
        let w = parse_window(Some("15m"), None, None, t).unwrap();
        assert_eq!(w.to_ns - w.from_ns, 900 * NANOS_PER_SEC);
        let w = parse_window(
            None,
            Some("2026-11-28T16:00:00Z"),
            Some("2026-11-28T16:30:00.5Z"),
            t,
        )
        .unwrap();
        assert_eq!(w.to_ns - w.from_ns, 1800 * NANOS_PER_SEC + 500_000_000);
        assert!(matches!(
            parse_window(None, Some("2026-11-28T18:00:00Z"), None, t),
            Err(WindowError::Empty { .. })
        ));
        assert!(matches!(
            parse_window(Some("1m"), Some("x"), None, t),
            Err(WindowError::Both)
        ));
        assert!(matches!(
            parse_window(None, None, None, t),
            Err(WindowError::Neither)
        ));
        let e = parse_time("yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
