//! Packet timestamps (nanoseconds since the Unix epoch) as RFC 3339 UTC
//! text, for people and manifests. Pure arithmetic: no clock, no time-zone
//! database. Used by the CLI's tables and the index manifest.

/// `2024-03-01T12:34:56.123456789Z`.
pub fn rfc3339_nanos(ts_ns: i64) -> String {
    let (date, sod, nanos) = split(ts_ns);
    format!("{date}T{}.{nanos:09}Z", hms(sod))
}

/// `2024-03-01T12:34:56.123456Z` (microseconds, truncated).
pub fn rfc3339_micros(ts_ns: i64) -> String {
    let (date, sod, nanos) = split(ts_ns);
    format!("{date}T{}.{:06}Z", hms(sod), nanos / 1_000)
}

fn split(ts_ns: i64) -> (String, i64, i64) {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let nanos = ts_ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (
        format!("{y:04}-{m:02}-{d:02}"),
        secs.rem_euclid(86_400),
        nanos,
    )
}

fn hms(sod: i64) -> String {
    format!("{:02}:{:02}:{:02}", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        // `date -u -d @1709296496` → Fri Mar  1 12:34:56 UTC 2024
        assert_eq!(
            rfc3339_micros(1_709_296_496_123_456_789),
            "2024-03-01T12:34:56.123456Z"
        );
        assert_eq!(
            rfc3339_nanos(1_717_243_200_000_000_123),
            "2024-06-01T12:00:00.000000123Z"
        );
        assert_eq!(rfc3339_micros(-1_000), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_nanos(-1), "1969-12-31T23:59:59.999999999Z");
        // A leap day.
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
