//! Small helpers shared by the analyses: quoting for KFL and SQL, exact
//! quantiles, path templates (ids folded), evidence lists and the way
//! numbers read in summaries.

use trawl_model::time::rfc3339_micros;

use crate::load::CallRow;
use crate::{Evidence, MAX_EVIDENCE_IDS};

/// A KFL (CEL) string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An SQL string literal.
pub fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The `q` quantile (0..1) of sorted values, nearest rank; 0 when empty.
pub fn quantile(sorted: &[i64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0))
}

/// Median of unsorted values (sorted in place).
pub fn median(v: &mut [i64]) -> u64 {
    v.sort_unstable();
    quantile(v, 0.5)
}

/// True for a path segment that is an id (a number, a UUID, `user-0083`)
/// rather than a name (`api`, `v1`): it holds a digit and is all digits
/// or at least 4 characters long.
fn is_id(seg: &str) -> bool {
    let digits = seg.chars().filter(char::is_ascii_digit).count();
    digits > 0 && (digits == seg.len() || seg.len() >= 4)
}

/// The path with id segments folded to `{id}`, so that
/// `/api/v1/carts/user-0083/items` and `/…/user-0012/items` are one
/// endpoint.
pub fn template(path: &str) -> String {
    if !path.starts_with('/') {
        // Not a URL path (a DNS name, an SQL statement): kept whole.
        return path.to_owned();
    }
    path.split('/')
        .map(|s| if is_id(s) { "{id}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// KFL selecting the paths of a template: equality when it has no id,
/// a regular expression otherwise.
pub fn path_kfl(template: &str) -> String {
    if !template.contains("{id}") {
        return format!("path == {}", quote(template));
    }
    let re: String = template
        .split('/')
        .map(|s| {
            if s == "{id}" {
                "[^/]+".to_owned()
            } else {
                regex_escape(s)
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    format!("path.matches({})", quote(&format!("^{re}$")))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// KFL for `method` and a path template.
pub fn endpoint_kfl(method: &str, template: &str) -> String {
    let mut parts = Vec::new();
    if !method.is_empty() {
        parts.push(format!("method == {}", quote(method)));
    }
    if !template.is_empty() {
        parts.push(path_kfl(template));
    }
    parts.join(" && ")
}

/// `a && b && …` of the non-empty parts.
pub fn and(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains("||") {
                format!("({p})")
            } else {
                (*p).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Evidence of calls: the KFL, the first ids, the total.
pub fn call_evidence<'a>(kfl: String, calls: impl IntoIterator<Item = &'a CallRow>) -> Evidence {
    let mut ids = Vec::new();
    let mut total = 0u64;
    for c in calls {
        if ids.len() < MAX_EVIDENCE_IDS {
            ids.push(c.id.clone());
        }
        total += 1;
    }
    Evidence {
        kfl,
        flows_where: None,
        call_ids: ids,
        flow_ids: Vec::new(),
        total,
    }
}

/// Evidence of flows: the SQL condition, the first ids, the total.
pub fn flow_evidence(flows_where: String, ids: impl IntoIterator<Item = String>) -> Evidence {
    let mut flow_ids = Vec::new();
    let mut total = 0u64;
    for id in ids {
        if flow_ids.len() < MAX_EVIDENCE_IDS {
            flow_ids.push(id);
        }
        total += 1;
    }
    Evidence {
        kfl: String::new(),
        flows_where: Some(flows_where),
        call_ids: Vec::new(),
        flow_ids,
        total,
    }
}

/// RFC 3339 with microseconds; empty for 0 (unknown).
pub fn time(ns: i64) -> String {
    if ns == 0 {
        String::new()
    } else {
        rfc3339_micros(ns)
    }
}

/// `HH:MM:SS.mmm` of a time, for summaries (UTC).
pub fn clock(ns: i64) -> String {
    let t = rfc3339_micros(ns);
    t.get(11..23).map_or(t.clone(), str::to_owned)
}

/// A duration in µs as people write it: `850 µs`, `212 ms`, `4.20 s`.
pub fn dur(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 10_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else if us < 1_000_000 {
        format!("{} ms", (us as f64 / 1_000.0).round())
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

/// A share as a percentage with one decimal: `2.3%`.
pub fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// `part / whole`, 0 when `whole` is 0.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fold_ids_only() {
        assert_eq!(
            template("/api/v1/carts/user-0083/checkout"),
            "/api/v1/carts/{id}/checkout"
        );
        assert_eq!(template("/api/v1/products/17"), "/api/v1/products/{id}");
        assert_eq!(template("/api/v2/products"), "/api/v2/products");
        assert_eq!(template("SELECT 1234"), "SELECT 1234");
        assert_eq!(
            template("/o/3f2a9c1e-7b2d-4c6e-9a1b-2c3d4e5f6a7b"),
            "/o/{id}"
        );
    }

    #[test]
    fn path_kfl_compiles_and_matches_the_template() {
        let k = path_kfl("/api/v1/carts/{id}/checkout");
        assert_eq!(k, r#"path.matches("^/api/v1/carts/[^/]+/checkout$")"#);
        let cat = trawl_index::kfl::catalogue_for_kfl(trawl_model::catalogue::call_fields());
        trawl_kfl::compile(&k, &cat).unwrap();
        trawl_kfl::compile(&endpoint_kfl("POST", "/a.b"), &cat).unwrap();
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(quantile(&v, 0.5), 5);
        assert_eq!(quantile(&v, 0.95), 10);
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sql_quote("o'k"), "'o''k'");
    }
}
