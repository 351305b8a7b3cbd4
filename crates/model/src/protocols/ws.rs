//! Catalogue slice of WebSocket calls: one call per message (a data
//! message reassembled from its fragments, or one control frame) after an
//! HTTP/1 `Upgrade: websocket`, filled by
//! `trawl_dissect::protocols::websocket`. A message from the client is a
//! request (`ws_request`), one from the server a response
//! (`ws_response`); `src` is the client either way. Kubeshark's KFL2
//! names where it has them (`ws_opcode`, `ws_request`, `ws_response`,
//! `ws_request_payload_data`, `ws_request_payload_length`,
//! `ws_response_payload_length`); the rest follow its `ws_` pattern.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("ws", &[], T::Bool, "ws", "true",
        "True for WebSocket calls (protocol == \"ws\")."),
    f("ws_opcode", &[], T::String, "ws_opcode", r#""text""#,
        "Opcode of the message: \"text\", \"binary\", \"close\", \"ping\", \"pong\", or \"opN\" for a reserved one."),
    f("ws_request", &[], T::Bool, "ws_request", "true",
        "True for a message the client sent."),
    f("ws_response", &[], T::Bool, "ws_response", "true",
        "True for a message the server sent."),
    f("ws_fin", &[], T::Bool, "ws_fin", "true",
        "FIN bit of the message's last frame: false when the connection ended inside a fragmented message."),
    f("ws_masked", &[], T::Bool, "ws_masked", "true",
        "True when the message's frames were masked (clients must mask, servers must not)."),
    f("ws_frames", &[], T::Int, "ws_frames", "1",
        "Frames the message was sent in (more than one when fragmented)."),
    f("ws_frame_lengths", &[], T::IntList, "ws_frame_lengths", "[5, 6]",
        "Payload length of each frame of the message, in order (the first 256)."),
    f("ws_request_payload_data", &[], T::String, "ws_request_payload_data", r#""{\"op\":\"subscribe\"}""#,
        "Payload of a client message, unmasked, as text (invalid UTF-8 replaced), capped at 1 KiB."),
    f("ws_response_payload_data", &[], T::String, "ws_response_payload_data", r#""{\"ok\":true}""#,
        "Payload of a server message, as text (invalid UTF-8 replaced), capped at 1 KiB."),
    f("ws_request_payload_length", &[], T::Int, "ws_request_payload_length", "18",
        "Payload bytes of a client message (all fragments); 0 for server messages."),
    f("ws_response_payload_length", &[], T::Int, "ws_response_payload_length", "11",
        "Payload bytes of a server message (all fragments); 0 for client messages."),
    f("ws_close_code", &[], T::Int, "ws_close_code", "1000",
        "Status code of a close frame (1000 normal, 1001 going away, …); 0 when absent."),
    f("ws_close_reason", &[], T::String, "ws_close_reason", r#""bye""#,
        "Reason text of a close frame."),
];
