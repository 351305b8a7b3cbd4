//! The field catalogue: every field a filter, a query or an agent can name
//! on a call ([`call_fields`]) or a flow ([`FLOW_FIELDS`]), with its KFL2
//! name, the KFL1 spellings accepted as aliases, its type, what it means,
//! an example, and the Parquet column that stores it.
//!
//! Read by `trawl-kfl` (name resolution and type checking), `trawl-index`
//! (the Arrow schema is built from this list, in this order), `trawl fields`
//! and, later, the MCP server.
//!
//! A call's fields are the common ones ([`COMMON_CALL_FIELDS`]: typed
//! members of [`crate::Call`], each appended by hand in the index's batch
//! builder, a test in `trawl-index` failing until record, catalogue and
//! builder agree) followed by each protocol's own
//! ([`PROTOCOL_FIELDS`]: values in [`crate::Attrs`], columns built
//! generically). A new protocol adds one slice and nothing else here.
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

/// Shorthand for the tables below and the protocol slices.
pub(crate) const fn f(
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
/// The fields every call has (typed members of [`crate::Call`]), in column
/// order. [`call_fields`] appends the protocol-specific ones.
pub static COMMON_CALL_FIELDS: &[FieldDef] = &[
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
        "Application protocol: \"http\" (HTTP/1.x and HTTP/2), \"dns\", \"grpc\", \"ws\", \"redis\", \"postgresql\", \"mysql\", \"kafka\", \"mongodb\", \"amqp\" or \"tls\"."),
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
    f("conn", &["flow"], T::Bool, "conn", "true",
        "True on every flow: the flag of L4 connection records."),
    f("transport", &[], T::String, "transport", r#""tcp""#,
        "\"tcp\" or \"udp\"."),
    f("tcp", &["tcp_flow"], T::Bool, "tcp", "true",
        "True for TCP connections."),
    f("udp", &["udp_flow"], T::Bool, "udp", "true",
        "True for UDP conversations."),
    f("src.ip", &[], T::String, "src_ip", r#""10.1.0.5""#,
        "Client IP address."),
    f("src.port", &[], T::Int, "src_port", "43210",
        "Client port."),
    f("src.name", &[], T::String, "src_name", r#""frontend-7d4b9""#,
        "Client's name: pod, else service, else external entry, else DNS name; \"\" when unknown."),
    f("src.namespace", &[], T::String, "src_namespace", r#""shop""#,
        "Client's namespace."),
    f("src.pod.name", &[], T::String, "src_pod_name", r#""frontend-7d4b9""#,
        "Client's pod."),
    f("src.service.name", &[], T::String, "src_service_name", r#""frontend""#,
        "Client's service."),
    f("src.dns", &[], T::String, "src_dns", r#""frontend.shop.svc""#,
        "Name the client's address answered for in the capture's DNS."),
    f("dst.ip", &[], T::String, "dst_ip", r#""10.2.0.7""#,
        "Server IP address."),
    f("dst.port", &[], T::Int, "dst_port", "8080",
        "Server port."),
    f("dst.name", &[], T::String, "dst_name", r#""catalogue-db""#,
        "Server's name: pod, else service, else external entry, else DNS name; \"\" when unknown."),
    f("dst.namespace", &[], T::String, "dst_namespace", r#""shop""#,
        "Server's namespace."),
    f("dst.pod.name", &[], T::String, "dst_pod_name", r#""catalogue-db-0""#,
        "Server's pod."),
    f("dst.service.name", &[], T::String, "dst_service_name", r#""catalogue-db""#,
        "Server's service."),
    f("dst.dns", &[], T::String, "dst_dns", r#""api.example.com""#,
        "Name the server's address answered for in the capture's DNS."),
    f("roles", &[], T::String, "roles", r#""handshake""#,
        "How client and server were told apart: \"handshake\" (SYN seen) or \"port_guess\"."),
    f("timestamp", &[], T::Timestamp, "timestamp", r#"timestamp("2024-06-01T12:00:00Z")"#,
        "First packet of the connection."),
    f("last_timestamp", &[], T::Timestamp, "last_timestamp", r#"timestamp("2024-06-01T12:00:05Z")"#,
        "Last packet of the connection (late ACKs and retransmissions after the close included)."),
    f("protocol", &[], T::String, "protocol", r#""http""#,
        "Application protocol detected on the connection; \"\" when none."),
    f("calls", &[], T::Int, "calls", "12",
        "Calls emitted on this connection."),
    f("close_reason", &[], T::String, "close_reason", r#""finished""#,
        "Why it left the flow table: \"finished\" (FIN/FIN or RST), \"idle_timeout\", \"evicted\", \"end_of_input\"."),
    f("conn_state", &["flow_state", "tcp_state"], T::String, "conn_state", r#""refused""#,
        "TCP: \"refused\" (RST answered the SYN), \"unanswered\" (SYN never answered), \"reset\", \"closed\" (FIN), \"open\" (no end seen); \"udp\" for UDP."),
    f("flow_client_packets", &["conn_client_packets"], T::Int, "flow_client_packets", "12",
        "Packets from the client."),
    f("flow_client_bytes", &["conn_client_bytes"], T::Int, "flow_client_bytes", "1500",
        "Payload bytes (TCP or UDP data, as declared on the wire) from the client."),
    f("flow_server_packets", &["conn_server_packets"], T::Int, "flow_server_packets", "10",
        "Packets from the server."),
    f("flow_server_bytes", &["conn_server_bytes"], T::Int, "flow_server_bytes", "64000",
        "Payload bytes from the server."),
    f("flow_packets", &["conn_packets"], T::Int, "flow_packets", "22",
        "Packets both ways."),
    f("flow_bytes", &["conn_bytes"], T::Int, "flow_bytes", "65500",
        "Payload bytes both ways."),
    f("connection_time_us", &["flow_duration_us", "tcp_connection_time_us"], T::Int, "connection_time_us", "1500000",
        "Microseconds from the first to the last packet (TCP and UDP)."),
    f("handshake", &["tcp_handshake"], T::String, "handshake", r#""complete""#,
        "TCP handshake: \"complete\", \"refused\", \"unanswered\", \"incomplete\" (SYN-ACK never ACKed), \"none\" (started mid-stream); \"\" for UDP."),
    f("closed_by", &["tcp_closed_by"], T::String, "closed_by", r#""server""#,
        "Who sent the first FIN or RST: \"client\", \"server\", or \"\"."),
    f("connection_completeness", &["tcp_connection_completeness"], T::Int, "connection_completeness", "31",
        "Bitmask of what was seen, as Wireshark's tcp.completeness: SYN=1, SYN-ACK=2, ACK=4, DATA=8, FIN=16, RST=32."),
    f("retransmissions", &["tcp_retransmissions"], T::Int, "retransmissions", "3",
        "Segments tshark flags tcp.analysis.retransmission (fast and spurious ones included)."),
    f("fast_retransmissions", &["tcp_fast_retransmissions"], T::Int, "fast_retransmissions", "1",
        "Retransmissions within 20 ms of two or more duplicate ACKs for their sequence number."),
    f("spurious_retransmissions", &["tcp_spurious_retransmissions"], T::Int, "spurious_retransmissions", "0",
        "Retransmissions of bytes the receiver had already ACKed."),
    f("retransmission_rate", &["tcp_retransmission_rate"], T::Double, "retransmission_rate", "0.02",
        "Retransmissions per data segment (0 without data)."),
    f("data_segments", &["tcp_data_segments"], T::Int, "data_segments", "140",
        "Segments that carried payload, both ways."),
    f("out_of_order", &["tcp_out_of_order"], T::Int, "out_of_order", "2",
        "Segments tshark flags out-of-order: behind the highest sequence seen, soon after it."),
    f("dup_acks", &["tcp_dup_acks"], T::Int, "dup_acks", "4",
        "Duplicate ACKs (same ACK, window and sequence, no data)."),
    f("missing_segments", &["tcp_missing_segments", "lost_segments"], T::Int, "missing_segments", "1",
        "Segments that started past the next expected sequence number (tshark's lost_segment: the bytes between were not captured)."),
    f("acked_unseen_segments", &["tcp_acked_unseen_segments"], T::Int, "acked_unseen_segments", "0",
        "ACKs for data never captured (tshark's ack_lost_segment)."),
    f("zero_window_events", &["tcp_zero_window_events"], T::Int, "zero_window_events", "1",
        "Segments advertising a zero receive window (the receiver is full)."),
    f("zero_window_probes", &["tcp_zero_window_probes"], T::Int, "zero_window_probes", "0",
        "One-byte probes of a zero window."),
    f("window_full_events", &["tcp_window_full_events"], T::Int, "window_full_events", "0",
        "Segments that filled the receiver's advertised window exactly."),
    f("window_updates", &["tcp_window_updates"], T::Int, "window_updates", "3",
        "Pure window updates (same ACK, new window)."),
    f("keepalive_count", &["tcp_keepalive_count", "keepalives"], T::Int, "keepalive_count", "0",
        "TCP keep-alive probes."),
    f("rst_count", &["tcp_rst_count"], T::Int, "rst_count", "1",
        "Segments with RST set."),
    f("fin_count", &["tcp_fin_count"], T::Int, "fin_count", "2",
        "Segments with FIN set (retransmitted FINs included)."),
    f("window_scale", &["tcp_window_scale"], T::Int, "window_scale", "7",
        "Window scale shift of the client's SYN; 0 without the option, -1 when the SYN was not seen."),
    f("server_window_scale", &["tcp_server_window_scale"], T::Int, "server_window_scale", "7",
        "Window scale shift of the server's SYN-ACK; 0 without the option, -1 when not seen."),
    f("avg_receive_window", &["tcp_avg_receive_window"], T::Int, "avg_receive_window", "65535",
        "Mean receive window advertised by segments with ACK set, both sides, scaled when the scale is known."),
    f("initial_rtt_us", &["tcp_initial_rtt_us", "handshake_rtt_us"], T::Int, "initial_rtt_us", "800",
        "tshark's initial RTT: the latest SYN to the first ACK after it, µs; 0 without a handshake."),
    f("handshake_time_us", &["tcp_handshake_time_us"], T::Int, "handshake_time_us", "1200",
        "The first SYN to the handshake's ACK (SYN retransmissions included), µs."),
    f("time_to_first_byte_us", &["tcp_time_to_first_byte_us", "ttfb_us"], T::Int, "time_to_first_byte_us", "25000",
        "The client's first payload byte to the server's first, µs."),
    f("rtt_min_us", &["tcp_rtt_min_us"], T::Int, "rtt_min_us", "300",
        "Smallest data RTT sample (a segment to the ACK that ends at its end, tshark's ack_rtt), µs."),
    f("rtt_max_us", &["tcp_rtt_max_us"], T::Int, "rtt_max_us", "9000",
        "Largest data RTT sample, µs."),
    f("rtt_avg_us", &["tcp_rtt_avg_us"], T::Int, "rtt_avg_us", "1100",
        "Mean data RTT, µs."),
    f("rtt_samples", &["tcp_rtt_samples"], T::Int, "rtt_samples", "40",
        "Data RTT samples taken."),
    f("jitter_us", &["tcp_jitter_us"], T::Int, "jitter_us", "150",
        "Mean absolute difference between consecutive RTT samples, µs."),
    f("goodput_bytes", &["tcp_goodput_bytes"], T::Int, "goodput_bytes", "64000",
        "Payload bytes both ways, retransmitted copies left out."),
];

/// Each protocol's own call fields ([`crate::Attrs`]), one line per
/// protocol; each slice starts with the protocol's flag (a `bool` named
/// like the protocol, true when `protocol` is that protocol) and lives in
/// `crates/model/src/protocols/<name>.rs`.
pub static PROTOCOL_FIELDS: &[&[FieldDef]] = &[
    crate::protocols::grpc::FIELDS,
    crate::protocols::ws::FIELDS,
    crate::protocols::redis::FIELDS,
    crate::protocols::postgresql::FIELDS,
    crate::protocols::mysql::FIELDS,
    crate::protocols::kafka::FIELDS,
    crate::protocols::mongodb::FIELDS,
    crate::protocols::amqp::FIELDS,
    crate::protocols::tls::FIELDS,
];

/// Every field of an API call, in column order: [`COMMON_CALL_FIELDS`]
/// then each slice of [`PROTOCOL_FIELDS`].
pub fn call_fields() -> &'static [FieldDef] {
    static ALL: std::sync::LazyLock<Vec<FieldDef>> = std::sync::LazyLock::new(|| {
        let mut all = COMMON_CALL_FIELDS.to_vec();
        for slice in PROTOCOL_FIELDS {
            all.extend_from_slice(slice);
        }
        all
    });
    &ALL
}

/// True when `d` is a protocol-specific field (stored in [`crate::Attrs`]).
pub fn is_protocol_field(d: &FieldDef) -> bool {
    PROTOCOL_FIELDS
        .iter()
        .any(|slice| slice.iter().any(|p| p.name == d.name))
}

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
        for d in call_fields().iter().chain(FLOW_FIELDS) {
            assert_eq!(d.column, column_name(d.name), "{}", d.name);
        }
    }

    #[test]
    fn names_and_aliases_are_unique_per_table() {
        for table in [call_fields(), FLOW_FIELDS] {
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
        for d in call_fields().iter().chain(FLOW_FIELDS) {
            assert!(d.doc.ends_with('.'), "{}: doc must be a sentence", d.name);
            assert!(
                d.ty == FieldType::PayloadRef || !d.example.is_empty(),
                "{}: no example",
                d.name
            );
        }
    }

    #[test]
    fn protocol_slices_start_with_their_flag() {
        for slice in PROTOCOL_FIELDS {
            let flag = slice.first().expect("a protocol slice is never empty");
            assert_eq!(flag.ty, FieldType::Bool, "{}", flag.name);
            assert!(
                crate::Protocol::from_name(flag.name).is_some(),
                "{} is not a protocol",
                flag.name
            );
            for d in *slice {
                assert!(
                    !matches!(d.ty, FieldType::PayloadRef | FieldType::Timestamp),
                    "{}: protocol fields hold plain values",
                    d.name
                );
            }
        }
    }

    #[test]
    fn lookup_resolves_aliases() {
        assert_eq!(
            lookup(call_fields(), "response.status").map(|d| d.name),
            Some("status_code")
        );
        assert_eq!(
            lookup(call_fields(), "elapsedTime").map(|d| d.name),
            Some("elapsed_time")
        );
        assert_eq!(
            lookup(call_fields(), "src.pod.name").map(|d| d.column),
            Some("src_pod_name")
        );
        assert!(lookup(call_fields(), "response.statuss").is_none());
    }
}
