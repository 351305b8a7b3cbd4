//! Catalogue slice of AMQP 0-9-1 calls: a synchronous method and its
//! `-ok` reply as one call, and `basic.publish` / `basic.deliver` (and
//! other asynchronous methods) as one-sided calls with their content,
//! filled by `trawl_dissect::protocols::amqp`. Kubeshark's KFL2 names
//! where it has them (`amqp_method`, `amqp_summary`, lengths).

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("amqp", &[], T::Bool, "amqp", "true",
        "True for AMQP 0-9-1 calls (protocol == \"amqp\")."),
    f("amqp_method", &[], T::String, "amqp_method", r#""basic.publish""#,
        "Method of the request as class.method (\"queue.declare\", \"basic.publish\", …)."),
    f("amqp_response_method", &[], T::String, "amqp_response_method", r#""queue.declare-ok""#,
        "Method that answered it (\"queue.declare-ok\", \"channel.close\", …); \"\" for one-sided calls."),
    f("amqp_summary", &[], T::String, "amqp_summary", r#""exchange=logs routing_key=info""#,
        "The method's main arguments in one line."),
    f("amqp_channel", &[], T::Int, "amqp_channel", "1",
        "Channel number (0 for connection methods)."),
    f("amqp_exchange", &[], T::String, "amqp_exchange", r#""logs""#,
        "Exchange argument (publish, deliver, exchange.*, queue.bind, …)."),
    f("amqp_routing_key", &[], T::String, "amqp_routing_key", r#""orders.created""#,
        "Routing key argument (publish, deliver, queue.bind, …)."),
    f("amqp_queue", &[], T::String, "amqp_queue", r#""hello""#,
        "Queue argument (queue.*, basic.consume, basic.get; the server's name in declare-ok)."),
    f("amqp_reply_code", &[], T::Int, "amqp_reply_code", "404",
        "Reply code of a channel.close or connection.close; 0 otherwise."),
    f("amqp_reply_text", &[], T::String, "amqp_reply_text", r#""NOT_FOUND - no queue 'x'""#,
        "Reply text of a channel.close or connection.close."),
    f("amqp_content_type", &[], T::String, "amqp_content_type", r#""application/json""#,
        "content-type property of the message (publish, deliver, get-ok)."),
    f("amqp_body_size", &[], T::Int, "amqp_body_size", "512",
        "Body size the content header declared; 0 without content."),
    f("amqp_request", &[], T::Bool, "amqp_request", "true",
        "True when the request method was seen."),
    f("amqp_response", &[], T::Bool, "amqp_response", "true",
        "True when a reply method was seen."),
    f("amqp_request_length", &[], T::Int, "amqp_request_length", "33",
        "Bytes of the request frames (method, content header and body frames with their 8-byte frame overhead)."),
    f("amqp_response_length", &[], T::Int, "amqp_response_length", "12",
        "Bytes of the reply frames; 0 when absent."),
    f("amqp_total_size", &[], T::Int, "amqp_total_size", "45",
        "amqp_request_length + amqp_response_length."),
];
