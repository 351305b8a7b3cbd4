//! Catalogue slice of MongoDB calls: one call per request and its reply
//! (paired by requestID/responseTo), filled by
//! `trawl_dissect::protocols::mongodb`. Kubeshark's KFL2 names.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("mongodb", &[], T::Bool, "mongodb", "true",
        "True for MongoDB calls (protocol == \"mongodb\")."),
    f("mongodb_command", &[], T::String, "mongodb_command", r#""find""#,
        "Command name: the first key of the command document (OP_MSG, OP_QUERY on $cmd), else the legacy operation (\"query\", \"insert\", \"getMore\", …)."),
    f("mongodb_database", &[], T::String, "mongodb_database", r#""shop""#,
        "Database: `$db` of an OP_MSG, the part of an OP_QUERY's full collection name before the first dot."),
    f("mongodb_collection", &[], T::String, "mongodb_collection", r#""users""#,
        "Collection the command works on (the command's string value, or the legacy full name after the database); \"\" for commands without one."),
    f("mongodb_namespace", &[], T::String, "mongodb_namespace", r#""shop.users""#,
        "Namespace the request names: a legacy opcode's full collection name as sent (\"shop.$cmd\" for commands), else database.collection."),
    f("mongodb_opcode", &[], T::String, "mongodb_opcode", r#""OP_MSG""#,
        "Wire opcode name of the request (of the reply for a reply-only call)."),
    f("mongodb_request_id", &[], T::Int, "mongodb_request_id", "40",
        "requestID of the request (responseTo of the reply)."),
    f("mongodb_success", &[], T::Bool, "mongodb_success", "true",
        "The reply's `ok` is 1 (and, for OP_REPLY, QueryFailure is not set)."),
    f("mongodb_error_code", &[], T::Int, "mongodb_error_code", "11000",
        "`code` of a failed reply; 0 otherwise."),
    f("mongodb_error_message", &[], T::String, "mongodb_error_message", r#""E11000 duplicate key""#,
        "`errmsg` (or `$err`) of a failed reply."),
    f("mongodb_error_code_name", &[], T::String, "mongodb_error_code_name", r#""DuplicateKey""#,
        "`codeName` of a failed reply."),
    f("mongodb_compressed", &[], T::Bool, "mongodb_compressed", "false",
        "The request came in OP_COMPRESSED (its command is not decoded)."),
    f("mongodb_request_size", &[], T::Int, "mongodb_request_size", "230",
        "Bytes of the request message; 0 when absent."),
    f("mongodb_response_size", &[], T::Int, "mongodb_response_size", "285",
        "Bytes of the reply message; 0 when absent."),
    f("mongodb_total_size", &[], T::Int, "mongodb_total_size", "515",
        "mongodb_request_size + mongodb_response_size."),
];
