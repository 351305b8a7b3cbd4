//! Catalogue slice of Redis calls (RESP2 and RESP3): the `redis` flag and
//! the fields the Redis dissector (`trawl_dissect::protocols::redis`)
//! stores in [`crate::Attrs`], with Kubeshark's KFL2 names where it has
//! them (`redis_type`, `redis_command`, `redis_key`, sizes). Listed once in
//! [`crate::catalogue::PROTOCOL_FIELDS`].
//!
//! Common fields of a Redis call: `method` is the command verb upper-cased
//! (`GET`), or the push kind (`message`, `pmessage`, `invalidate`) for a
//! server push; `path` is the key (empty for commands without one);
//! `status_code` is 0 for a reply and 1 for an error reply; `elapsed_time`
//! runs from the command's first byte to the reply's last; the request and
//! response bodies hold the command and the reply rendered as text.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("redis", &[], T::Bool, "redis", "true",
        "True for Redis calls (protocol == \"redis\")."),
    f("redis_type", &[], T::String, "redis_type", r#""array""#,
        "RESP type of the command: \"array\" (a RESP command), \"inline\" (a plain text line), or \"push\" for a server push without a command."),
    f("redis_command", &[], T::String, "redis_command", r#""GET""#,
        "Command verb, upper-cased (\"GET\", \"HSET\", \"SUBSCRIBE\")."),
    f("redis_key", &[], T::String, "redis_key", r#""session:42""#,
        "First argument of a command that takes a key; empty for commands without one (PING, AUTH, SELECT, PUBLISH …)."),
    f("redis_channel", &[], T::String, "redis_channel", r#""orders""#,
        "Pub/sub channel (or pattern) of PUBLISH, SUBSCRIBE and of pushed messages."),
    f("redis_args", &[], T::Int, "redis_args", "3",
        "Number of words of the command, the verb included."),
    f("redis_response_type", &[], T::String, "redis_response_type", r#""bulk_string""#,
        "RESP type of the reply: \"string\", \"error\", \"integer\", \"bulk_string\", \"array\", \"null\", \"map\", \"set\", \"push\", \"double\", \"boolean\", \"big_number\", \"verbatim_string\", \"bulk_error\"."),
    f("redis_response_elements", &[], T::Int, "redis_response_elements", "100",
        "Elements of an aggregate reply (array, set, push; pairs of a map); -1 for a null array, 0 otherwise."),
    f("redis_error", &[], T::String, "redis_error", r#""WRONGTYPE Operation against a key holding the wrong kind of value""#,
        "Text of an error reply; empty when the reply is not an error."),
    f("redis_request_size", &[], T::Int, "redis_request_size", "42",
        "Bytes of the command on the wire."),
    f("redis_response_size", &[], T::Int, "redis_response_size", "1024",
        "Bytes of the reply on the wire."),
];
