//! The records trawl produces: one [`Call`] per API call (a request paired
//! with its response, or a one-sided message), with Kubeshark's KFL2 field
//! names so that filters, skills and prompts written for Kubeshark carry over.
//!
//! Dissectors in `trawl-dissect` fill the protocol fields; the pipeline
//! stamps identity (`id`, `conn_id`, `src`, `dst`, `node`). This crate only
//! describes records and how they serialise; it parses no traffic.

pub mod attrs;
pub mod catalogue;
pub mod flow;
pub mod protocols;
pub mod time;

pub use attrs::{AttrValue, Attrs};

pub use flow::FlowRecord;

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// Application protocols trawl dissects. The string form is the KFL
/// protocol flag (`http`, `dns`, …) and the value of the `protocol` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.x and HTTP/2 (`http_version` tells them apart).
    Http,
    Dns,
    /// gRPC over HTTP/2.
    Grpc,
    /// WebSocket frames after an HTTP/1 upgrade.
    Ws,
    Redis,
    Postgresql,
    Mysql,
    Kafka,
    Mongodb,
    /// AMQP 0-9-1.
    Amqp,
    /// A TLS handshake (ClientHello / ServerHello), one record per connection.
    Tls,
}

impl Protocol {
    /// Every protocol, in the order `trawl fields` lists their flags.
    pub const ALL: &[Protocol] = &[
        Protocol::Http,
        Protocol::Dns,
        Protocol::Grpc,
        Protocol::Ws,
        Protocol::Redis,
        Protocol::Postgresql,
        Protocol::Mysql,
        Protocol::Kafka,
        Protocol::Mongodb,
        Protocol::Amqp,
        Protocol::Tls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Dns => "dns",
            Protocol::Grpc => "grpc",
            Protocol::Ws => "ws",
            Protocol::Redis => "redis",
            Protocol::Postgresql => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Kafka => "kafka",
            Protocol::Mongodb => "mongodb",
            Protocol::Amqp => "amqp",
            Protocol::Tls => "tls",
        }
    }

    /// The protocol whose flag or `protocol` value is `name`.
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.iter().copied().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a call or flow. The identity fields (name, namespace, pod,
/// service, DNS name, labels) are filled by the `identity` crate at index
/// time; `trawl dissect` leaves them empty. KFL names: `src.ip`,
/// `src.port`, `src.name`, `src.namespace`, `src.pod.name`,
/// `src.pod.namespace`, `src.service.name`, `src.service.namespace`,
/// `src.dns`, `src.labels`, `src.resolved_by` (and the same under `dst`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// Best name for this endpoint: the pod's name, else the service's,
    /// else the DNS name; empty when unresolved.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace of the pod or service that resolved it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "NamedRef::is_empty")]
    pub pod: NamedRef,
    #[serde(skip_serializing_if = "NamedRef::is_empty")]
    pub service: NamedRef,
    /// A DNS name this IP was seen answering for in the traffic itself.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dns: String,
    /// Labels of the pod (or service) that resolved this endpoint.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// How the identity was found; `None` when unresolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<Resolution>,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Endpoint {
        Endpoint {
            ip,
            port,
            name: String::new(),
            namespace: String::new(),
            pod: NamedRef::default(),
            service: NamedRef::default(),
            dns: String::new(),
            labels: std::collections::BTreeMap::new(),
            resolved_by: None,
        }
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
    }
}

/// A namespaced Kubernetes object reference (pod or service).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NamedRef {
    pub name: String,
    pub namespace: String,
}

impl NamedRef {
    pub fn is_empty(&self) -> bool {
        self.name.is_empty() && self.namespace.is_empty()
    }
}

/// Where an endpoint's identity came from, strongest first: a pod entry of
/// the workloads file, a service entry, an external entry (a named address
/// outside the cluster, such as a payment gateway), or a name learned from
/// DNS answers in the capture. Precedence pod > service > external > DNS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Pod,
    Service,
    External,
    Dns,
}

/// Header fields of one message in wire order. Names are lower-cased
/// (HTTP header names are case-insensitive, and HTTP/2 sends them lower
/// case), so `request.headers["content-type"]` finds the field whatever
/// case the peer used. Serialises as a JSON object; repeated names are
/// joined with ", " as RFC 9110 §5.3 allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn push(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// The first value of `name` (give it lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            // Emit each name once, at its first occurrence, joined with later ones.
            if self.0.iter().take(i).any(|(n, _)| n == name) {
                continue;
            }
            let mut rest = self.0.iter().skip(i + 1).filter(|(n, _)| n == name);
            match rest.next() {
                None => map.serialize_entry(name, value)?,
                Some((_, second)) => {
                    let mut joined = format!("{value}, {second}");
                    for (_, v) in rest {
                        joined.push_str(", ");
                        joined.push_str(v);
                    }
                    map.serialize_entry(name, &joined)?;
                }
            }
        }
        map.end()
    }
}

/// A message body as kept for display: decoded from its transfer coding
/// (chunked) and content coding (gzip, deflate, br) when possible, and
/// capped. `size` is the body's full decoded size on the wire's terms
/// (after de-chunking), whatever was kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// The kept bytes (at most the session's body cap).
    pub data: Vec<u8>,
    /// True when `data` holds fewer bytes than the body had.
    pub truncated: bool,
    /// The content coding that was undone to produce `data` ("gzip",
    /// "deflate", "br"), or None when `data` is as sent.
    pub decoded_from: Option<&'static str>,
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let mut map = s.serialize_map(None)?;
        match std::str::from_utf8(&self.data) {
            Ok(text) => {
                map.serialize_entry("encoding", "utf8")?;
                map.serialize_entry("data", text)?;
            }
            Err(_) => {
                map.serialize_entry("encoding", "base64")?;
                map.serialize_entry(
                    "data",
                    &base64::engine::general_purpose::STANDARD.encode(&self.data),
                )?;
            }
        }
        map.serialize_entry("kept", &self.data.len())?;
        map.serialize_entry("truncated", &self.truncated)?;
        if let Some(c) = self.decoded_from {
            map.serialize_entry("decoded_from", c)?;
        }
        map.end()
    }
}

/// One side (request or response) of a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Message {
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// Request cookies (from `Cookie`) or response cookies (from
    /// `Set-Cookie`, name → value).
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub cookies: Headers,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// One DNS resource record from an answer section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsAnswer {
    pub name: String,
    /// Record type mnemonic ("A", "AAAA", "CNAME", …; "TYPE65280" when unknown).
    #[serde(rename = "type")]
    pub rtype: String,
    /// Presentation form of the record data (an address, a name, quoted text, …).
    pub data: String,
    pub ttl: u32,
}

/// One API call: a request and its response, or a message without its
/// other half (then `errors` says why).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Call {
    /// Stable id: `node/conn_id/index`.
    pub id: String,
    pub node: String,
    /// Connection (flow) this call rode on; joins calls to flows.
    pub conn_id: u64,
    /// Position of this call within its connection, from 0.
    pub index: u32,
    /// First byte of the request, nanoseconds since the Unix epoch (the
    /// response's first byte for a response-only call).
    pub timestamp: i64,
    /// Microseconds from the request's first byte to the response's last
    /// byte; 0 when one side is missing.
    pub elapsed_time: i64,
    pub protocol: Option<Protocol>,
    /// The client (sender of the request).
    pub src: Endpoint,
    /// The server.
    pub dst: Endpoint,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query_string: String,
    /// HTTP status, or the DNS rcode for DNS; 0 when there is no response.
    pub status_code: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub http_version: String,
    /// Interim (1xx) responses that came before the final one, in order
    /// (`100` for 100 Continue, `103` for Early Hints). 101 is final.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interim_status_codes: Vec<i32>,
    pub request: Message,
    pub response: Message,
    /// Bytes of the request head (request line and headers, with CRLFs).
    pub request_header_size: u64,
    /// Bytes of the request body after transfer decoding (de-chunked).
    pub request_body_size: u64,
    pub response_header_size: u64,
    pub response_body_size: u64,
    /// True when a request was seen (false for a response-only call).
    pub has_request: bool,
    /// True when a response was seen.
    pub has_response: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_questions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_question_types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_answers: Vec<DnsAnswer>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dns_request: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dns_response: bool,
    /// Dissection problems that touch this call, as short snake_case codes
    /// (`no_response`, `gap_in_request`, `body_truncated`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Namespaces of both endpoints (distinct, src first), for
    /// `"payments" in namespaces`; filled with the identities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Pod names of both endpoints (distinct).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    /// Service names of both endpoints (distinct).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Protocol-specific fields (`redis_command`, `grpc_status`, …), each
    /// declared in the protocol's catalogue slice
    /// (`catalogue::PROTOCOL_FIELDS`); serialised at the top level of the
    /// call, beside the common fields.
    #[serde(flatten)]
    pub attrs: Attrs,
}

impl Call {
    pub fn new(protocol: Protocol) -> Call {
        Call {
            protocol: Some(protocol),
            ..Call::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_join_in_order() {
        let mut h = Headers::default();
        h.push("Accept", "a");
        h.push("Host", "x");
        h.push("accept", "b");
        assert_eq!(h.get("accept"), Some("a"));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"accept":"a, b","host":"x"}"#);
    }

    #[test]
    fn binary_bodies_serialise_as_base64() {
        let b = Body {
            data: vec![0xff, 0x00],
            truncated: true,
            decoded_from: None,
        };
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"encoding":"base64","data":"/wA=","kept":2,"truncated":true}"#
        );
    }
}
