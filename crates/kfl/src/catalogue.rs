//! The field catalogue as KFL sees it: every field a filter may name, under
//! its KFL2 name and its KFL1 aliases, with its type. `trawl-model` owns the
//! real list of fields and hands it over as `Vec<FieldSpec>`; this module
//! only indexes it for lookup and for did-you-mean suggestions.

use std::collections::HashMap;
use std::fmt;

/// The static type of a field or expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    /// Nanoseconds since the Unix epoch.
    Timestamp,
    /// Nanoseconds.
    Duration,
    Null,
    List(Box<Type>),
    Map(Box<Type>, Box<Type>),
    /// Known only at run time; accepted wherever a type is expected.
    Dyn,
}

impl Type {
    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Uint | Type::Double)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Uint => f.write_str("uint"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::Null => f.write_str("null"),
            Type::List(t) => write!(f, "list({t})"),
            Type::Map(k, v) => write!(f, "map({k}, {v})"),
            Type::Dyn => f.write_str("dyn"),
        }
    }
}

/// One field a filter may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// KFL2 name, e.g. `src.pod.name`, `request.headers`, `status_code`, `http`.
    pub name: String,
    /// KFL1 spellings accepted for the same field: `request.method`,
    /// `response.status`, `elapsedTime`, …
    pub aliases: Vec<String>,
    pub ty: Type,
}

/// A catalogue whose names and aliases are all distinct.
#[derive(Debug, Clone)]
pub struct Catalogue {
    fields: Vec<FieldSpec>,
    /// Name or alias → index into `fields`.
    by_name: HashMap<String, usize>,
}

/// A catalogue that cannot be built: the same spelling names two fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field name \"{name}\" is declared twice in the KFL catalogue")]
pub struct CatalogueError {
    pub name: String,
}

impl Catalogue {
    /// Indexes `fields`; a field's index in the vector is the index that
    /// `Expr::Field` and `Record::field` use.
    pub fn new(fields: Vec<FieldSpec>) -> Result<Catalogue, CatalogueError> {
        let mut by_name = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            for n in std::iter::once(&f.name).chain(&f.aliases) {
                if by_name.insert(n.clone(), i).is_some() {
                    return Err(CatalogueError { name: n.clone() });
                }
            }
        }
        Ok(Catalogue { fields, by_name })
    }

    /// The index of the field named (or aliased) `name`.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, idx: usize) -> Option<&FieldSpec> {
        self.fields.get(idx)
    }

    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// The known spelling closest to `name`, if it is close enough to be a
    /// typo of it.
    pub fn suggest(&self, name: &str) -> Option<String> {
        let names = self.fields.iter().flat_map(|f| {
            std::iter::once(f.name.as_str()).chain(f.aliases.iter().map(String::as_str))
        });
        closest(name, names)
    }
}

/// The candidate within typo distance of `name` (at most a third of its
/// length, at least 1, at most 3 edits), nearest first, earliest on ties.
pub(crate) fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent
/// transpositions, the commonest typo), over characters.
#[expect(
    clippy::indexing_slicing,
    reason = "i < a.len() and j < b.len(); rows have b.len() + 1 entries"
)]
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: two back (for transpositions), previous, current.
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i - 1] == cb && ca == b[j - 1] {
                d = d.min(prev2[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, aliases: &[&str], ty: Type) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ty,
        }
    }

    #[test]
    fn names_and_aliases_resolve_to_the_same_index() {
        let cat = Catalogue::new(vec![
            spec("method", &["request.method"], Type::String),
            spec("status_code", &["response.status"], Type::Int),
        ])
        .unwrap();
        assert_eq!(cat.lookup("status_code"), Some(1));
        assert_eq!(cat.lookup("response.status"), Some(1));
        assert_eq!(cat.lookup("request.method"), Some(0));
        assert_eq!(cat.lookup("response"), None);
    }

    #[test]
    fn duplicate_spelling_is_refused() {
        let err = Catalogue::new(vec![
            spec("method", &[], Type::String),
            spec("verb", &["method"], Type::String),
        ])
        .unwrap_err();
        assert_eq!(err.name, "method");
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("status", "status"), 0);
        assert_eq!(edit_distance("statsu", "status"), 1);
        assert_eq!(edit_distance("stat", "status"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn suggestion_only_when_close() {
        let cat =
            Catalogue::new(vec![spec("status_code", &["response.status"], Type::Int)]).unwrap();
        assert_eq!(
            cat.suggest("response.statuss").as_deref(),
            Some("response.status")
        );
        assert_eq!(cat.suggest("status_cod").as_deref(), Some("status_code"));
        assert_eq!(cat.suggest("latency"), None);
    }
}
