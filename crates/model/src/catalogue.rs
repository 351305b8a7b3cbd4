//! The field catalogue: every field a filter, a query or an agent can name
//! on a call ([`CALL_FIELDS`]) or a flow ([`FLOW_FIELDS`]), with its KFL2
//! name, the KFL1 spellings accepted as aliases, its type, what it means,
//! an example, and the Parquet column that stores it.
//!
//! Read by `trawl-kfl` (name resolution and type checking), `trawl-index`
//! (the Arrow schema is built from this list, in this order), `trawl fields`
//! and, later, the MCP server. Adding a field means adding it here, to the
//! record, and to the index's batch builder; a test in `trawl-index` fails
//! until all three agree.
//!
//! **Column naming rule.** The Parquet column of a field is its KFL2 name
//! with every `.` replaced by `_`: `src.pod.name` → `src_pod_name`,
//! `request.headers` → `request_headers`, `status_code` → `status_code`.
//! Physical types follow the field type (see [`FieldType`]): strings are
//! `Utf8`, integers `Int64`, string lists `List<Utf8>`, string maps
//! `Map<Utf8, Utf8>` (repeated header names joined with ", "), timestamps
//! `Timestamp(Nanosecond, UTC)`; `elapsed_time` is an `Int64` count of
//! microseconds, as in Kubeshark. Absent values are stored as their type's
//! zero value (`""`, `0`, `false`, `[]`, `{}`), never null, so that a
//! filter reads an absent field as zero the way KFL2 does; the payload
//! references are the one exception (null when no body was kept).
//!
//! **DNS answers.** Kubeshark's `dns_answers` is a list of strings; trawl
//! keeps that shape (the presentation data of each answer record, e.g.
//! `"10.2.0.7"`, so `"10.2.0.7" in dns_answers` works) and adds the other
//! parts of each record as parallel lists of the same length and order:
//! `dns_answer_names`, `dns_answer_types`, `dns_answer_ttls`.

/// What a field holds, as KFL's type checker sees it. Each type has one
/// Arrow representation (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    Bool,
    /// Signed 64-bit integer (CEL `int`). Ports, sizes, status codes and
    /// ids are `Int` so that `status_code >= 500` type-checks as in KFL2.
    Int,
    /// Unsigned 64-bit integer (CEL `uint`); no field uses it yet.
    Uint,
    Double,
    String,
    Bytes,
    /// A point in time, nanoseconds since the Unix epoch, UTC.
    Timestamp,
    /// A length of time; no field uses it yet (`elapsed_time` is an `Int`
    /// of microseconds, as in Kubeshark).
    Duration,
    StringList,
    IntList,
    /// String keys to string values (headers, cookies, labels).
    StringMap,
    /// Where a kept body sits in the index's payload store: a struct of
    /// `file`, `offset`, `length` (stored bytes), `size` (kept bytes after
    /// decompression), `truncated` and `decoded_from`. Null when no body
    /// was kept. Read the bytes with `trawl_index::read_payload`.
    PayloadRef,
}

impl FieldType {
    /// The name shown by `trawl fields` and in KFL type errors (CEL's
    /// spelling where CEL has the type).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Bool => "bool",
            FieldType::Int => "int",
            FieldType::Uint => "uint",
            FieldType::Double => "double",
            FieldType::String => "string",
            FieldType::Bytes => "bytes",
            FieldType::Timestamp => "timestamp",
            FieldType::Duration => "duration",
            FieldType::StringList => "list(string)",
            FieldType::IntList => "list(int)",
            FieldType::StringMap => "map(string, string)",
            FieldType::PayloadRef => "payload_ref",
        }
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// The KFL2 name (`status_code`, `src.pod.name`).
    pub name: &'static str,
    /// Other spellings accepted for it: KFL1's (`response.status`,
    /// `elapsedTime`) and Kubeshark KFL2 names that differ from trawl's.
    pub aliases: &'static [&'static str],
    pub ty: FieldType,
    /// What it means, in one or two sentences.
    pub doc: &'static str,
    /// An example value as it would be written in a KFL expression.
    pub example: &'static str,
    /// The Parquet column: `name` with `.` replaced by `_`.
    pub column: &'static str,
}

/// Shorthand for the tables below.
const fn f(
    name: &'static str,
    aliases: &'static [&'static str],
    ty: FieldType,
    column: &'static str,
    example: &'static str,
    doc: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        aliases,
        ty,
        doc,
        example,
        column,
    }
}

use FieldType as T;

// A table reads best one field per entry: keep rustfmt from spreading
// each entry over six lines.
#[rustfmt::skip]
/// Every field of an API call ([`crate::Call`]), in column order.
pub static CALL_FIELDS: &[FieldDef] = &[
    f("id", &[], T::String, "id", r#""node-1/17/0""#,
        "Stable call id: node/conn_id/index."),
    f("node", &["node_name", "node.name"], T::String, "node", r#""node-1""#,
        "Node whose traffic this call came from."),
    f("conn_id", &[], T::Int, "conn_id", "17",
        "Connection (flow) the call rode on; joins calls to flows."),
    f("index", &[], T::Int, "index", "0",
        "Position of the call within its connection, from 0."),
    f("timestamp", &[], T::Timestamp, "timestamp", r#"timestamp("2024-06-01T12:00:00Z")"#,
        "First byte of the request (of the response for a response-only call)."),
    f("elapsed_time", &["elapsedTime"], T::Int, "elapsed_time", "250000",
        "Microseconds from the request's first byte to the response's last byte; 0 when one side is missing."),
    f("protocol", &[], T::String, "protocol", r#""http""#,
        "Application protocol: \"http\" or \"dns\"."),
    f("http", &[], T::Bool, "http", "true",
        "True for HTTP calls (protocol == \"http\")."),
    f("dns", &[], T::Bool, "dns", "true",
        "True for DNS calls (protocol == \"dns\")."),
    f("src.ip", &[], T::String, "src_ip", r#""10.1.0.5""#,
        "Client (request sender) IP address."),
    f("src.port", &[], T::Int, "src_port", "43210",
        "Client port."),
    f("src.name", &[], T::String, "src_name", r#""cart-7d9f""#,
        "Best name of the client: pod name, else service name, else DNS name; empty when unresolved."),
    f("src.namespace", &[], T::String, "src_namespace", r#""shop""#,
        "Namespace of the client's pod or service."),
    f("src.pod.name", &[], T::String, "src_pod_name", r#""cart-7d9f""#,
        "Client pod name."),
    f("src.pod.namespace", &[], T::String, "src_pod_namespace", r#""shop""#,
        "Client pod namespace."),
    f("src.service.name", &[], T::String, "src_service_name", r#""cart""#,
        "Client service name."),
    f("src.service.namespace", &[], T::String, "src_service_namespace", r#""shop""#,
        "Client service namespace."),
    f("src.dns", &[], T::String, "src_dns", r#""cart.shop.svc""#,
        "A DNS name the client's IP was seen answering for in the capture."),
    f("src.labels", &[], T::StringMap, "src_labels", r#"src.labels["app"]"#,
        "Labels of the client's pod (or service)."),
    f("src.resolved_by", &[], T::String, "src_resolved_by", r#""pod""#,
        "How the client's identity was found: \"pod\", \"service\", \"external\", \"dns\", or \"\" when unresolved."),
    f("dst.ip", &[], T::String, "dst_ip", r#""10.2.0.7""#,
        "Server IP address."),
    f("dst.port", &[], T::Int, "dst_port", "8080",
        "Server port."),
    f("dst.name", &[], T::String, "dst_name", r#""checkout""#,
        "Best name of the server: pod name, else service name, else DNS name; empty when unresolved."),
    f("dst.namespace", &[], T::String, "dst_namespace", r#""shop""#,
        "Namespace of the server's pod or service."),
    f("dst.pod.name", &[], T::String, "dst_pod_name", r#""checkout-5c4b""#,
        "Server pod name."),
    f("dst.pod.namespace", &[], T::String, "dst_pod_namespace", r#""shop""#,
        "Server pod namespace."),
    f("dst.service.name", &[], T::String, "dst_service_name", r#""checkout""#,
        "Server service name."),
    f("dst.service.namespace", &[], T::String, "dst_service_namespace", r#""shop""#,
        "Server service namespace."),
    f("dst.dns", &[], T::String, "dst_dns", r#""checkout.shop.svc""#,
        "A DNS name the server's IP was seen answering for in the capture."),
    f("dst.labels", &[], T::StringMap, "dst_labels", r#"dst.labels["app"]"#,
        "Labels of the server's pod (or service)."),
    f("dst.resolved_by", &[], T::String, "dst_resolved_by", r#""service""#,
        "How the server's identity was found: \"pod\", \"service\", \"external\", \"dns\", or \"\" when unresolved."),
    f("method", &["request.method"], T::String, "method", r#""GET""#,
        "HTTP request method."),
    f("path", &["request.path"], T::String, "path", r#""/api/v1/checkout""#,
        "HTTP request path, without the query string."),
    f("url", &["request.url"], T::String, "url", r#""/api/v1/checkout?id=7""#,
        "HTTP request target as sent: path and query string."),
    f("query_string", &["request.queryString"], T::String, "query_string", r#""id=7""#,
        "HTTP query string, without the '?' (a string, not Kubeshark's parsed map)."),
    f("status_code", &["response.status"], T::Int, "status_code", "503",
        "HTTP status, or the DNS response code for DNS; 0 when there is no response."),
    f("http_version", &["request.httpVersion"], T::String, "http_version", r#""HTTP/1.1""#,
        "HTTP version of the request (of the response when there is no request)."),
    f("interim_status_codes", &[], T::IntList, "interim_status_codes", "100 in interim_status_codes",
        "Interim (1xx) responses before the final one, in order."),
    f("request.headers", &[], T::StringMap, "request_headers", r#"request.headers["content-type"]"#,
        "Request headers, names lower-cased, repeated names joined with \", \"."),
    f("response.headers", &[], T::StringMap, "response_headers", r#"response.headers["server"]"#,
        "Response headers, names lower-cased, repeated names joined with \", \"."),
    f("request.cookies", &[], T::StringMap, "request_cookies", r#"request.cookies["session"]"#,
        "Cookies the request sent (Cookie header), name to value."),
    f("response.cookies", &[], T::StringMap, "response_cookies", r#"response.cookies["token"]"#,
        "Cookies the response set (Set-Cookie headers), name to value."),
    f("request_header_size", &["request_headers_size", "request.headersSize"], T::Int,
        "request_header_size", "512",
        "Bytes of the request head (request line and headers, with CRLFs)."),
    f("request_body_size", &["request.bodySize"], T::Int, "request_body_size", "1024",
        "Bytes of the request body after transfer decoding (de-chunked)."),
    f("response_header_size", &["response_headers_size", "response.headersSize"], T::Int,
        "response_header_size", "256",
        "Bytes of the response head (status line and headers)."),
    f("response_body_size", &["response.bodySize"], T::Int, "response_body_size", "1000000",
        "Bytes of the response body after transfer decoding (de-chunked)."),
    f("request_body_ref", &[], T::PayloadRef, "request_body_ref", "",
        "Where the kept request body is in the payload store; null when none was kept."),
    f("response_body_ref", &[], T::PayloadRef, "response_body_ref", "",
        "Where the kept response body is in the payload store; null when none was kept."),
    f("has_request", &[], T::Bool, "has_request", "true",
        "True when a request was seen (false for a response-only call)."),
    f("has_response", &[], T::Bool, "has_response", "false",
        "True when a response was seen."),
    f("dns_questions", &[], T::StringList, "dns_questions", r#""example.com" in dns_questions"#,
        "DNS question names, without the trailing dot."),
    f("dns_question_types", &[], T::StringList, "dns_question_types", r#""AAAA" in dns_question_types"#,
        "DNS question types (\"A\", \"AAAA\", …), parallel to dns_questions."),
    f("dns_answers", &[], T::StringList, "dns_answers", r#""10.2.0.7" in dns_answers"#,
        "Data of each DNS answer record in presentation form (an address, a name, quoted text)."),
    f("dns_answer_names", &[], T::StringList, "dns_answer_names", r#""example.com" in dns_answer_names"#,
        "Owner name of each DNS answer record, parallel to dns_answers."),
    f("dns_answer_types", &[], T::StringList, "dns_answer_types", r#""CNAME" in dns_answer_types"#,
        "Type of each DNS answer record, parallel to dns_answers."),
    f("dns_answer_ttls", &[], T::IntList, "dns_answer_ttls", "dns_answer_ttls.exists(t, t < 60)",
        "TTL in seconds of each DNS answer record, parallel to dns_answers."),
    f("dns_request", &[], T::Bool, "dns_request", "true",
        "True when the DNS query was seen."),
    f("dns_response", &[], T::Bool, "dns_response", "true",
        "True when the DNS response was seen."),
    f("errors", &[], T::StringList, "errors", r#""no_response" in errors"#,
        "Dissection problems of this call as snake_case codes (no_response, gap_in_request, body_truncated, …)."),
    f("namespaces", &[], T::StringList, "namespaces", r#""shop" in namespaces"#,
        "Namespaces of both endpoints, distinct, client first."),
    f("pods", &[], T::StringList, "pods", r#""cart-7d9f" in pods"#,
        "Pod names of both endpoints, distinct."),
    f("services", &[], T::StringList, "services", r#""checkout" in services"#,
        "Service names of both endpoints, distinct."),
];

#[rustfmt::skip]
/// Every field of a flow ([`crate::FlowRecord`]), in column order. Packet
/// and byte counters and TCP metrics will be appended here.
pub static FLOW_FIELDS: &[FieldDef] = &[
    f("conn_id", &[], T::Int, "conn_id", "17",
        "Connection id; the conn_id of the calls on this connection."),
    f("node", &["node_name", "node.name"], T::String, "node", r#""node-1""#,
        "Node whose traffic this flow came from."),
    f("transport", &[], T::String, "transport", r#""tcp""#,
        "\"tcp\" or \"udp\"."),
    f("tcp", &[], T::Bool, "tcp", "true",
        "True for TCP connections."),
    f("udp", &[], T::Bool, "udp", "true",
        "True for UDP conversations."),
    f("src.ip", &[], T::String, "src_ip", r#""10.1.0.5""#,
        "Client IP address."),
    f("src.port", &[], T::Int, "src_port", "43210",
        "Client port."),
    f("dst.ip", &[], T::String, "dst_ip", r#""10.2.0.7""#,
        "Server IP address."),
    f("dst.port", &[], T::Int, "dst_port", "8080",
        "Server port."),
    f("roles", &[], T::String, "roles", r#""handshake""#,
        "How client and server were told apart: \"handshake\" (SYN seen) or \"port_guess\"."),
    f("timestamp", &[], T::Timestamp, "timestamp", r#"timestamp("2024-06-01T12:00:00Z")"#,
        "First packet of the connection."),
    f("last_timestamp", &[], T::Timestamp, "last_timestamp", r#"timestamp("2024-06-01T12:00:05Z")"#,
        "Last packet that carried payload or ended a direction (FIN, RST)."),
    f("protocol", &[], T::String, "protocol", r#""http""#,
        "Application protocol detected on the connection; \"\" when none."),
    f("calls", &[], T::Int, "calls", "12",
        "Calls emitted on this connection."),
    f("close_reason", &[], T::String, "close_reason", r#""finished""#,
        "Why it ended: \"finished\" (FIN/FIN or RST), \"idle_timeout\", \"evicted\", \"end_of_input\"."),
];

/// The field `name` names in `fields`, by KFL2 name or alias.
pub fn lookup<'a>(fields: &'a [FieldDef], name: &str) -> Option<&'a FieldDef> {
    fields
        .iter()
        .find(|d| d.name == name)
        .or_else(|| fields.iter().find(|d| d.aliases.contains(&name)))
}

/// The Parquet column for a KFL2 name, by the naming rule (module doc).
pub fn column_name(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_naming_rule() {
        for d in CALL_FIELDS.iter().chain(FLOW_FIELDS) {
            assert_eq!(d.column, column_name(d.name), "{}", d.name);
        }
    }

    #[test]
    fn names_and_aliases_are_unique_per_table() {
        for table in [CALL_FIELDS, FLOW_FIELDS] {
            let mut seen = std::collections::BTreeSet::new();
            for d in table {
                for n in std::iter::once(&d.name).chain(d.aliases) {
                    assert!(seen.insert(*n), "{n} named twice");
                }
            }
            let mut cols = std::collections::BTreeSet::new();
            for d in table {
                assert!(cols.insert(d.column), "column {} twice", d.column);
            }
        }
    }

    #[test]
    fn every_field_is_documented() {
        for d in CALL_FIELDS.iter().chain(FLOW_FIELDS) {
            assert!(d.doc.ends_with('.'), "{}: doc must be a sentence", d.name);
            assert!(
                d.ty == FieldType::PayloadRef || !d.example.is_empty(),
                "{}: no example",
                d.name
            );
        }
    }

    #[test]
    fn lookup_resolves_aliases() {
        assert_eq!(
            lookup(CALL_FIELDS, "response.status").map(|d| d.name),
            Some("status_code")
        );
        assert_eq!(
            lookup(CALL_FIELDS, "elapsedTime").map(|d| d.name),
            Some("elapsed_time")
        );
        assert_eq!(
            lookup(CALL_FIELDS, "src.pod.name").map(|d| d.column),
            Some("src_pod_name")
        );
        assert!(lookup(CALL_FIELDS, "response.statuss").is_none());
    }
}
