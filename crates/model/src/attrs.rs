//! Protocol-specific call fields: a small bag of named values on each
//! [`crate::Call`] (`redis_command`, `grpc_status`, `kafka_api_key_name`, …).
//!
//! The common fields (ids, endpoints, method, path, status, headers, DNS)
//! are typed members of `Call`. Each further protocol adds its fields here
//! instead, so that adding a protocol touches its dissector, its catalogue
//! slice (`crates/model/src/protocols/<name>.rs`, listed in
//! [`crate::catalogue::PROTOCOL_FIELDS`]) and nothing else: the index
//! builds one column per catalogue entry generically
//! (`trawl_index::schema`), and an attribute missing from a call reads as
//! its type's zero value, as every absent field does. Dissectors fill it;
//! the indexer and the JSON output read it.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::catalogue::FieldType;

/// One protocol-specific value. Its variant must match the catalogue type
/// of the field it is stored under (checked in debug builds by
/// [`Attrs::set`], and by the index builder always).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    Bool(bool),
    Int(i64),
    Str(String),
    StrList(Vec<String>),
    IntList(Vec<i64>),
    /// String keys to string values, in wire order.
    Map(Vec<(String, String)>),
}

impl AttrValue {
    /// The catalogue type that stores this value.
    pub fn field_type(&self) -> FieldType {
        match self {
            AttrValue::Bool(_) => FieldType::Bool,
            AttrValue::Int(_) => FieldType::Int,
            AttrValue::Str(_) => FieldType::String,
            AttrValue::StrList(_) => FieldType::StringList,
            AttrValue::IntList(_) => FieldType::IntList,
            AttrValue::Map(_) => FieldType::StringMap,
        }
    }
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}

impl From<u32> for AttrValue {
    fn from(v: u32) -> Self {
        AttrValue::Int(i64::from(v))
    }
}

impl From<u16> for AttrValue {
    fn from(v: u16) -> Self {
        AttrValue::Int(i64::from(v))
    }
}

impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::Str(v)
    }
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::Str(v.to_owned())
    }
}

impl From<Vec<String>> for AttrValue {
    fn from(v: Vec<String>) -> Self {
        AttrValue::StrList(v)
    }
}

impl From<Vec<i64>> for AttrValue {
    fn from(v: Vec<i64>) -> Self {
        AttrValue::IntList(v)
    }
}

impl Serialize for AttrValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::Bool(v) => s.serialize_bool(*v),
            AttrValue::Int(v) => s.serialize_i64(*v),
            AttrValue::Str(v) => s.serialize_str(v),
            AttrValue::StrList(v) => v.serialize(s),
            AttrValue::IntList(v) => v.serialize(s),
            AttrValue::Map(v) => {
                let mut map = s.serialize_map(Some(v.len()))?;
                for (k, val) in v {
                    map.serialize_entry(k, val)?;
                }
                map.end()
            }
        }
    }
}

/// The protocol-specific fields of one call, in the order they were set.
/// A handful per call, so a vector beats a map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs(Vec<(&'static str, AttrValue)>);

impl Attrs {
    /// Sets field `name` (its KFL2 name, which must be in the call
    /// catalogue with the value's type), replacing an earlier value.
    pub fn set(&mut self, name: &'static str, value: impl Into<AttrValue>) {
        let value = value.into();
        debug_assert!(
            crate::catalogue::lookup(crate::catalogue::call_fields(), name)
                .is_some_and(|d| d.name == name && d.ty == value.field_type()),
            "attribute {name} is not a {} field of the call catalogue",
            value.field_type()
        );
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }

    /// A bag built without [`Attrs::set`]'s checks, for tests of the
    /// consumers that must refuse bad bags.
    #[doc(hidden)]
    pub fn from_unchecked(items: Vec<(&'static str, AttrValue)>) -> Attrs {
        Attrs(items)
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The string value of `name`; `""` when absent or not a string.
    pub fn str(&self, name: &str) -> &str {
        match self.get(name) {
            Some(AttrValue::Str(s)) => s,
            _ => "",
        }
    }

    /// The integer value of `name`; 0 when absent or not an integer.
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(AttrValue::Int(v)) => *v,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &AttrValue)> {
        self.0.iter().map(|(n, v)| (*n, v))
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
