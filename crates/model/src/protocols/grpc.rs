//! Catalogue slice of gRPC calls (one call per HTTP/2 stream whose
//! `content-type` is `application/grpc*`), filled by
//! `trawl_dissect::protocols::http2` with the helpers of
//! `trawl_dissect::protocols::grpc`. A gRPC call also has the common HTTP
//! fields (`method`, `path`, `status_code`, headers, `http_version`
//! "HTTP/2"), as in Kubeshark. Kubeshark's KFL2 names where it has them
//! (`grpc_method`, `grpc_status`); the rest follow its `grpc_` pattern.
//!
//! `http2_stream_id` sits here because HTTP/2 calls have no slice of
//! their own (they are `http` calls with typed common fields) and the
//! stream id is what ties a call to tshark's and Wireshark's view of the
//! connection; it is set on HTTP/2 and gRPC calls alike.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("grpc", &[], T::Bool, "grpc", "true",
        "True for gRPC calls (protocol == \"grpc\")."),
    f("grpc_service", &[], T::String, "grpc_service", r#""helloworld.Greeter""#,
        "Fully qualified service name, the first segment of the :path."),
    f("grpc_method", &[], T::String, "grpc_method", r#""SayHello""#,
        "Method name, the last segment of the :path (Kubeshark's grpc_method)."),
    f("grpc_status", &[], T::Int, "grpc_status", "0",
        "grpc-status from the trailers (or the headers of a trailers-only response): 0 OK, 5 NOT_FOUND, 14 UNAVAILABLE; -1 when no status was seen."),
    f("grpc_message", &[], T::String, "grpc_message", r#""user not found""#,
        "grpc-message from the trailers, percent-decoded."),
    f("grpc_request_messages", &[], T::Int, "grpc_request_messages", "1",
        "Length-prefixed messages the client sent on the stream (more than one for client streaming)."),
    f("grpc_response_messages", &[], T::Int, "grpc_response_messages", "1",
        "Length-prefixed messages the server sent on the stream (more than one for server streaming)."),
    f("grpc_request_message_sizes", &[], T::IntList, "grpc_request_message_sizes", "[25, 25]",
        "Declared length of each request message, in order (the first 256)."),
    f("grpc_response_message_sizes", &[], T::IntList, "grpc_response_message_sizes", "[103]",
        "Declared length of each response message, in order (the first 256)."),
    f("grpc_compressed", &[], T::Bool, "grpc_compressed", "false",
        "True when any message on the stream had its compressed flag set."),
    f("grpc_request_protobuf", &[], T::String, "grpc_request_protobuf", r#""1: \"world\"""#,
        "Schemaless protobuf reading of the first request message (field numbers, wire types, nested guesses), capped at 4 KiB."),
    f("grpc_response_protobuf", &[], T::String, "grpc_response_protobuf", r#""1: \"Hello world\"""#,
        "Schemaless protobuf reading of the first response message, capped at 4 KiB."),
    f("http2_stream_id", &[], T::Int, "http2_stream_id", "1",
        "HTTP/2 stream id of an HTTP/2 or gRPC call; 0 for other calls."),
];
