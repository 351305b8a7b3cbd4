//! Catalogue slice of PostgreSQL calls: the `postgresql` flag and the
//! fields the PostgreSQL dissector (`trawl_dissect::protocols::postgresql`)
//! stores in [`crate::Attrs`], with Kubeshark's KFL2 names where it has
//! them (`postgresql_query`, `postgresql_error_code`). Listed once in
//! [`crate::catalogue::PROTOCOL_FIELDS`].
//!
//! A call is what the client sent up to the server's ReadyForQuery: a
//! simple Query, an extended-protocol batch up to its Sync (Parse, Bind,
//! Describe, Execute…), the startup with its authentication exchange, an
//! SSLRequest with its one-byte answer, a CancelRequest or a Terminate.
//! Common fields: `method` is the statement verb (`SELECT`, `INSERT`) or,
//! without a query, the first message's name (`StartupMessage`,
//! `Terminate`); `path` is the normalised statement (literals replaced by
//! `?`); `status_code` is 0, or 1 when the server sent an ErrorResponse;
//! `elapsed_time` runs from the first request byte to the end of
//! ReadyForQuery; the request body is the query text.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("postgresql", &[], T::Bool, "postgresql", "true",
        "True for PostgreSQL calls (protocol == \"postgresql\")."),
    f("postgresql_query", &[], T::String, "postgresql_query", r#"postgresql_query.contains("FROM orders")"#,
        "SQL text of the Query or Parse message (for a Bind of a statement prepared earlier on the connection, that statement's text)."),
    f("postgresql_message_type", &[], T::String, "postgresql_message_type", r#""Parse""#,
        "Name of the call's first client message: Query, Parse, Bind, StartupMessage, SSLRequest, GSSENCRequest, CancelRequest, Terminate and the others."),
    f("postgresql_request_messages", &[], T::StringList, "postgresql_request_messages", r#""Execute" in postgresql_request_messages"#,
        "Names of the client messages of the call, in order (at most 64)."),
    f("postgresql_response_messages", &[], T::StringList, "postgresql_response_messages", r#""ErrorResponse" in postgresql_response_messages"#,
        "Names of the server messages of the call, in order, DataRow left out (counted in postgresql_rows); at most 64."),
    f("postgresql_statement", &[], T::String, "postgresql_statement", r#""stmt_12""#,
        "Name of the prepared statement parsed or bound; empty for the unnamed one."),
    f("postgresql_command_tag", &[], T::String, "postgresql_command_tag", r#""INSERT 0 1""#,
        "Tag of the last CommandComplete (\"SELECT 3\", \"UPDATE 0\", \"BEGIN\")."),
    f("postgresql_rows", &[], T::Int, "postgresql_rows", "120",
        "DataRow messages the server sent (rows returned)."),
    f("postgresql_rows_affected", &[], T::Int, "postgresql_rows_affected", "1",
        "Row count of the last CommandComplete tag (rows inserted, updated, deleted or selected); 0 without one."),
    f("postgresql_error_code", &[], T::String, "postgresql_error_code", r#""42P01""#,
        "SQLSTATE of the ErrorResponse; empty when there was none."),
    f("postgresql_error_message", &[], T::String, "postgresql_error_message", r#""relation \"x\" does not exist""#,
        "Primary message of the ErrorResponse."),
    f("postgresql_error_severity", &[], T::String, "postgresql_error_severity", r#""FATAL""#,
        "Severity of the ErrorResponse (ERROR, FATAL, PANIC)."),
    f("postgresql_database", &[], T::String, "postgresql_database", r#""shop""#,
        "Database named in the connection's StartupMessage (on every call of the connection)."),
    f("postgresql_user", &[], T::String, "postgresql_user", r#""app""#,
        "User named in the connection's StartupMessage."),
    f("postgresql_application_name", &[], T::String, "postgresql_application_name", r#""psql""#,
        "application_name of the connection's StartupMessage."),
    f("postgresql_transaction_status", &[], T::String, "postgresql_transaction_status", r#""failed""#,
        "Transaction state the closing ReadyForQuery reports: \"idle\", \"in_transaction\" or \"failed\"."),
    f("postgresql_tls", &[], T::Bool, "postgresql_tls", "true",
        "The server accepted an SSLRequest or GSSENCRequest: the rest of the connection is encrypted and not dissected."),
    f("postgresql_backend_pid", &[], T::Int, "postgresql_backend_pid", "4242",
        "Backend process id: from BackendKeyData at startup, or the one a CancelRequest targets."),
    f("postgresql_request_size", &[], T::Int, "postgresql_request_size", "120",
        "Bytes of the call's client messages."),
    f("postgresql_response_size", &[], T::Int, "postgresql_response_size", "4096",
        "Bytes of the call's server messages."),
];
