//! Catalogue slice of MySQL and MariaDB calls: the `mysql` flag and the
//! fields the MySQL dissector (`trawl_dissect::protocols::mysql`) stores
//! in [`crate::Attrs`], with Kubeshark's KFL2 names where it has them
//! (`mysql_query`, `mysql_command`, `mysql_error_code`). Listed once in
//! [`crate::catalogue::PROTOCOL_FIELDS`].
//!
//! A call is one command (COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE,
//! COM_PING, COM_INIT_DB, COM_QUIT, …) with every packet of its answer
//! (a whole result set, several with multi-statements), or the login
//! (greeting, HandshakeResponse and the authentication exchange up to OK
//! or ERR). Common fields: `method` is the statement verb (`SELECT`) for
//! statements and the command name without `COM_` otherwise (`PING`,
//! `LOGIN`); `path` is the normalised statement (literals as `?`);
//! `status_code` is 0 or the MySQL error number (1064, 1146…);
//! `elapsed_time` runs from the command's first byte to its answer's last.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("mysql", &[], T::Bool, "mysql", "true",
        "True for MySQL and MariaDB calls (protocol == \"mysql\")."),
    f("mysql_command", &[], T::String, "mysql_command", r#""COM_QUERY""#,
        "Command of the call: COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE, COM_PING, COM_INIT_DB, COM_QUIT, …, or LOGIN for the handshake."),
    f("mysql_query", &[], T::String, "mysql_query", r#"mysql_query.startsWith("SELECT")"#,
        "SQL text of COM_QUERY or COM_STMT_PREPARE; for COM_STMT_EXECUTE, the text the statement was prepared from on this connection."),
    f("mysql_statement_id", &[], T::Int, "mysql_statement_id", "7",
        "Prepared statement id (from the prepare answer, or the one executed, reset or closed)."),
    f("mysql_error_code", &[], T::Int, "mysql_error_code", "1146",
        "MySQL error number of an ERR answer; 0 otherwise."),
    f("mysql_error_message", &[], T::String, "mysql_error_message", r#""Table 'shop.x' doesn't exist""#,
        "Message of the ERR answer."),
    f("mysql_sql_state", &[], T::String, "mysql_sql_state", r#""42S02""#,
        "SQLSTATE of the ERR answer."),
    f("mysql_request_messages", &[], T::StringList, "mysql_request_messages", r#""AuthData" in mysql_request_messages"#,
        "Kinds of the client packets of the call, in order (at most 64)."),
    f("mysql_response_messages", &[], T::StringList, "mysql_response_messages", r#""ERR" in mysql_response_messages"#,
        "Kinds of the server packets of the call in order (Greeting, OK, ERR, EOF, ResultSetHeader, ColumnDefinition, PrepareOK, AuthSwitchRequest, AuthMoreData …), rows left out (counted in mysql_rows); at most 64."),
    f("mysql_columns", &[], T::Int, "mysql_columns", "3",
        "Columns of the (last) result set, or of the prepared statement."),
    f("mysql_rows", &[], T::Int, "mysql_rows", "120",
        "Rows the server returned (all result sets of the call)."),
    f("mysql_affected_rows", &[], T::Int, "mysql_affected_rows", "1",
        "Affected rows of the closing OK."),
    f("mysql_last_insert_id", &[], T::Int, "mysql_last_insert_id", "42",
        "Last insert id of the closing OK."),
    f("mysql_warnings", &[], T::Int, "mysql_warnings", "1",
        "Warning count of the closing OK or EOF."),
    f("mysql_user", &[], T::String, "mysql_user", r#""app""#,
        "User of the connection's login (on every call of the connection)."),
    f("mysql_database", &[], T::String, "mysql_database", r#""shop""#,
        "Database of the connection: from the login, changed by COM_INIT_DB."),
    f("mysql_server_version", &[], T::String, "mysql_server_version", r#""10.11.6-MariaDB""#,
        "Server version from the greeting."),
    f("mysql_connection_id", &[], T::Int, "mysql_connection_id", "31",
        "Connection (thread) id from the greeting: what SHOW PROCESSLIST and KILL use."),
    f("mysql_tls", &[], T::Bool, "mysql_tls", "true",
        "The client asked for TLS (SSL request): the rest of the connection is encrypted and not dissected."),
    f("mysql_request_size", &[], T::Int, "mysql_request_size", "64",
        "Bytes of the call's client packets, headers included."),
    f("mysql_response_size", &[], T::Int, "mysql_response_size", "4096",
        "Bytes of the call's server packets, headers included."),
];
