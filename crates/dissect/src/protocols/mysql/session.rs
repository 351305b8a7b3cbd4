//! [`MysqlSession`]: one MySQL or MariaDB connection. The greeting,
//! HandshakeResponse and authentication exchange (auth switch, more data,
//! caching_sha2 fast/full auth) up to OK or ERR make the login call; then
//! each command (a client packet with sequence id 0) is a call with every
//! packet of its answer, read with the state machine of its command:
//! OK/ERR, result sets (header, column definitions, EOF unless
//! CLIENT_DEPRECATE_EOF, rows, closing EOF/OK; more result sets while the
//! status says so), LOCAL INFILE, prepare answers (statement id,
//! parameter and column definitions), or nothing (COM_QUIT,
//! COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
//!
//! Payloads of 16 MiB - 1 continue in the next packet and are read as one.
//! An SSL request ends dissection (the rest is TLS), as does compression.
//! Without the handshake (a capture starting mid-connection) the EOF
//! between column definitions and rows is assumed present (servers before
//! MySQL 5.7.5 and clients not asking otherwise). Gaps drop the partial
//! packet, give up on the waiting command (`gap_in_response`) and wait for
//! the next command packet.

use std::collections::HashMap;

use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Protocol};

use super::parser::{self, Framer, Packet};
use crate::protocols::postgresql::sql;
use crate::seam::{Emitter, Limits, Session};

/// Packet kinds listed per call side (rows are counted instead): a login
/// has under 10, a result set header, its column definitions and EOFs
/// fit unless a statement returns more than 60 columns.
pub const MAX_LISTED_PACKETS: usize = 64;

/// Prepared statements remembered per connection (id → query); past this,
/// new ones are not remembered. max_prepared_stmt_count defaults to
/// 16382 per server, but one connection rarely holds more than a few
/// hundred.
pub const MAX_STATEMENTS: usize = 1024;

/// How the answer to the current command is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Greeting seen, login not yet finished.
    Auth,
    /// One packet (OK, ERR, or the COM_STATISTICS string).
    Single,
    /// A result set may come (COM_QUERY, COM_STMT_EXECUTE).
    Results(Rs),
    /// COM_FIELD_LIST: column definitions up to EOF.
    FieldList,
    /// COM_STMT_PREPARE: PrepareOK, then parameter definitions (and
    /// their EOF), then column definitions (and their EOF).
    Prepare {
        started: bool,
        params: u16,
        params_eof: bool,
        cols: u16,
        cols_eof: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rs {
    /// The first packet of a result (OK, ERR, LOCAL INFILE or header).
    Start,
    /// Column definitions still to come.
    Columns(u64),
    /// The EOF after the column definitions.
    ColumnsEof,
    Rows,
}

#[derive(Debug, Default)]
struct MyCall {
    command: &'static str,
    first_ts: Nanos,
    last_ts: Nanos,
    has_request: bool,
    has_response: bool,
    req: Vec<&'static str>,
    resp: Vec<&'static str>,
    req_size: u64,
    resp_size: u64,
    query: Option<String>,
    query_truncated: bool,
    statement_id: Option<u32>,
    columns: Option<u64>,
    rows: i64,
    ok: Option<(u64, u64, u16)>,
    error: Option<(u16, String, String)>,
    tls: bool,
}

impl MyCall {
    fn add_req(&mut self, kind: &'static str, p: &Packet) {
        if self.req.len() < MAX_LISTED_PACKETS {
            self.req.push(kind);
        }
        self.req_size = self.req_size.saturating_add(p.size());
    }

    fn add_resp(&mut self, kind: &'static str, p: &Packet) {
        if !kind.is_empty() && self.resp.len() < MAX_LISTED_PACKETS {
            self.resp.push(kind);
        }
        self.has_response = true;
        self.resp_size = self.resp_size.saturating_add(p.size());
        self.last_ts = p.last_ts;
    }
}

#[derive(Debug, Default)]
struct Facts {
    user: String,
    database: String,
    version: String,
    connection_id: Option<u32>,
    server_caps: Option<u32>,
    client_caps: Option<u32>,
}

/// The MySQL state of one TCP connection.
#[derive(Debug)]
pub struct MysqlSession {
    limits: Limits,
    client: Framer,
    server: Framer,
    /// The last packet of each direction had the maximum length: the next
    /// one continues its payload.
    client_cont: bool,
    server_cont: bool,
    client_lost: bool,
    server_lost: bool,
    /// TLS or compression: nothing more to read.
    stopped: bool,
    cur: Option<(MyCall, Expect)>,
    /// The greeting, waiting for the login to join it.
    greeting: Option<MyCall>,
    statements: HashMap<u32, String>,
    facts: Facts,
}

impl MysqlSession {
    pub fn new(limits: Limits) -> MysqlSession {
        MysqlSession {
            limits,
            client: Framer::new(limits.max_body_bytes),
            server: Framer::new(limits.max_body_bytes),
            client_cont: false,
            server_cont: false,
            client_lost: false,
            server_lost: false,
            stopped: false,
            cur: None,
            greeting: None,
            statements: HashMap::new(),
            facts: Facts::default(),
        }
    }

    fn deprecate_eof(&self) -> bool {
        match (self.facts.server_caps, self.facts.client_caps) {
            (Some(s), Some(c)) => s & c & parser::CLIENT_DEPRECATE_EOF != 0,
            _ => false,
        }
    }

    fn emit_cur(&mut self, error: Option<&str>, out: &mut Emitter) {
        if let Some((c, _)) = self.cur.take() {
            let call = self.finish(c, error);
            out.call(Direction::ToServer, call);
        }
    }

    fn on_client(&mut self, p: Packet, out: &mut Emitter) {
        // Login: the packet after the greeting.
        if let Some(mut g) = self.greeting.take() {
            if p.seq != 0 {
                g.first_ts = p.first_ts;
                g.has_request = true;
                let caps = parser::le32(&p.payload).unwrap_or(0);
                self.facts.client_caps = Some(caps);
                let ssl = caps & parser::CLIENT_SSL != 0 && p.len == 32;
                if ssl {
                    g.add_req("SSLRequest", &p);
                    g.tls = true;
                    self.stopped = true;
                    self.cur = Some((g, Expect::Auth));
                    self.emit_cur(None, out);
                    return;
                }
                g.add_req("HandshakeResponse", &p);
                let login = parser::handshake_response(&p.payload).unwrap_or_default();
                self.facts.user = login.user;
                if !login.database.is_empty() {
                    self.facts.database = login.database;
                }
                self.cur = Some((g, Expect::Auth));
                return;
            }
            // A command without a login (the greeting was all we saw).
            self.cur = Some((g, Expect::Auth));
            self.emit_cur(Some("no_request"), out);
        }
        if p.seq != 0 {
            // Auth data, LOCAL INFILE contents: part of the current call.
            if let Some((c, expect)) = self.cur.as_mut() {
                let kind = if *expect == Expect::Auth {
                    "AuthData"
                } else {
                    "Data"
                };
                c.add_req(kind, &p);
            }
            return;
        }
        // A new command: whatever was waiting is over.
        if self.cur.is_some() {
            self.emit_cur(Some("no_response"), out);
        }
        let cmd = p.first().unwrap_or(0);
        let command = parser::command_name(cmd);
        let mut c = MyCall {
            command,
            first_ts: p.first_ts,
            last_ts: p.first_ts,
            has_request: true,
            ..MyCall::default()
        };
        c.add_req(command, &p);
        let body = p.payload.get(1..).unwrap_or_default();
        let text = || String::from_utf8_lossy(body).into_owned();
        let expect = match cmd {
            0x03 => {
                let attributes = self
                    .facts
                    .server_caps
                    .zip(self.facts.client_caps)
                    .map(|(s, cl)| s & cl & parser::CLIENT_QUERY_ATTRIBUTES != 0);
                let q = parser::query_text(body, attributes);
                c.query = Some(String::from_utf8_lossy(q).into_owned());
                c.query_truncated = p.payload.len() < p.len as usize;
                Some(Expect::Results(Rs::Start))
            }
            0x16 => {
                c.query = Some(text());
                c.query_truncated = p.payload.len() < p.len as usize;
                Some(Expect::Prepare {
                    started: false,
                    params: 0,
                    params_eof: false,
                    cols: 0,
                    cols_eof: false,
                })
            }
            0x17 | 0x1c => {
                let id = parser::le32(body);
                c.statement_id = id;
                c.query = id.and_then(|id| self.statements.get(&id).cloned());
                Some(if cmd == 0x17 {
                    Expect::Results(Rs::Start)
                } else {
                    Expect::Results(Rs::Rows)
                })
            }
            0x18 | 0x19 => {
                let id = parser::le32(body);
                c.statement_id = id;
                c.query = id.and_then(|id| self.statements.get(&id).cloned());
                if cmd == 0x19
                    && let Some(id) = id
                {
                    self.statements.remove(&id);
                }
                None
            }
            0x1a => {
                let id = parser::le32(body);
                c.statement_id = id;
                c.query = id.and_then(|id| self.statements.get(&id).cloned());
                Some(Expect::Single)
            }
            0x01 => None,
            0x02 => {
                self.facts.database = text();
                Some(Expect::Single)
            }
            0x04 => Some(Expect::FieldList),
            0x11 => Some(Expect::Auth),
            _ => Some(Expect::Single),
        };
        match expect {
            Some(e) => self.cur = Some((c, e)),
            None => {
                let call = self.finish(c, None);
                out.call(Direction::ToServer, call);
            }
        }
    }

    fn on_server(&mut self, p: Packet, out: &mut Emitter) {
        if p.seq == 0
            && self.cur.is_none()
            && self.greeting.is_none()
            && let Some(g) = parser::greeting(&p.payload)
        {
            self.facts.version = g.version;
            self.facts.connection_id = Some(g.connection_id);
            self.facts.server_caps = Some(g.capabilities);
            let mut c = MyCall {
                command: "LOGIN",
                first_ts: p.first_ts,
                ..MyCall::default()
            };
            c.add_resp("Greeting", &p);
            self.greeting = Some(c);
            return;
        }
        let deprecate_eof = self.deprecate_eof();
        let Some((c, expect)) = self.cur.as_mut() else {
            // An answer without its command (capture started mid-call):
            // a response-only call, read as one packet.
            let mut c = MyCall {
                command: "",
                first_ts: p.first_ts,
                ..MyCall::default()
            };
            let kind = simple_kind(&p);
            c.add_resp(kind, &p);
            read_status(&mut c, &p);
            let call = self.finish(c, Some("no_request"));
            out.call(Direction::ToServer, call);
            return;
        };
        let first = p.first().unwrap_or(0);
        let mut done = false;
        match *expect {
            Expect::Auth => {
                let kind = match first {
                    0x00 => "OK",
                    0xff => "ERR",
                    0xfe => "AuthSwitchRequest",
                    0x01 => "AuthMoreData",
                    _ => "AuthData",
                };
                c.add_resp(kind, &p);
                if first == 0x00 || first == 0xff {
                    read_status(c, &p);
                    done = true;
                    let compress = self
                        .facts
                        .server_caps
                        .zip(self.facts.client_caps)
                        .is_some_and(|(s, cl)| s & cl & parser::CLIENT_COMPRESS != 0);
                    if first == 0x00 && compress {
                        self.stopped = true;
                        out.anomaly(p.last_ts, "mysql_compressed");
                    }
                }
            }
            Expect::Single => {
                c.add_resp(simple_kind(&p), &p);
                read_status(c, &p);
                done = true;
            }
            Expect::FieldList => {
                if first == 0xff || p.is_eof() {
                    c.add_resp(simple_kind(&p), &p);
                    read_status(c, &p);
                    done = true;
                } else {
                    c.add_resp("ColumnDefinition", &p);
                    c.columns = Some(c.columns.unwrap_or(0) + 1);
                }
            }
            Expect::Prepare {
                started,
                params,
                params_eof,
                cols,
                cols_eof,
            } => {
                if !started {
                    if first == 0x00 && p.payload.len() >= 9 {
                        c.add_resp("PrepareOK", &p);
                        let id = parser::le32(p.payload.get(1..).unwrap_or_default());
                        let ncols =
                            parser::le16(p.payload.get(5..).unwrap_or_default()).unwrap_or(0);
                        let nparams =
                            parser::le16(p.payload.get(7..).unwrap_or_default()).unwrap_or(0);
                        c.statement_id = id;
                        c.columns = Some(u64::from(ncols));
                        if let (Some(id), Some(q)) = (id, c.query.clone())
                            && self.statements.len() < MAX_STATEMENTS
                        {
                            self.statements.insert(id, q);
                        }
                        *expect = Expect::Prepare {
                            started: true,
                            params: nparams,
                            params_eof: nparams > 0 && !deprecate_eof,
                            cols: ncols,
                            cols_eof: ncols > 0 && !deprecate_eof,
                        };
                    } else {
                        c.add_resp(simple_kind(&p), &p);
                        read_status(c, &p);
                        done = true;
                    }
                } else {
                    let (mut params, mut params_eof, mut cols, mut cols_eof) =
                        (params, params_eof, cols, cols_eof);
                    if params > 0 {
                        c.add_resp("ParameterDefinition", &p);
                        params -= 1;
                    } else if params_eof {
                        c.add_resp(simple_kind(&p), &p);
                        params_eof = false;
                    } else if cols > 0 {
                        c.add_resp("ColumnDefinition", &p);
                        cols -= 1;
                    } else {
                        c.add_resp(simple_kind(&p), &p);
                        cols_eof = false;
                    }
                    *expect = Expect::Prepare {
                        started: true,
                        params,
                        params_eof,
                        cols,
                        cols_eof,
                    };
                }
                if let Expect::Prepare {
                    started: true,
                    params: 0,
                    params_eof: false,
                    cols: 0,
                    cols_eof: false,
                } = *expect
                {
                    done = true;
                }
            }
            Expect::Results(rs) => {
                let next = match rs {
                    Rs::Start => match first {
                        0x00 | 0xff | 0xfe => {
                            c.add_resp(simple_kind(&p), &p);
                            read_status(c, &p);
                            more_results(&p)
                        }
                        0xfb => {
                            // LOCAL INFILE: the client sends the file, then
                            // the server answers OK or ERR.
                            c.add_resp("LocalInfileRequest", &p);
                            Some(Rs::Start)
                        }
                        _ => {
                            let n = parser::lenenc(&p.payload).map_or(0, |(n, _)| n);
                            c.add_resp("ResultSetHeader", &p);
                            c.columns = Some(n);
                            Some(Rs::Columns(n))
                        }
                    },
                    Rs::Columns(left) => {
                        c.add_resp("ColumnDefinition", &p);
                        let left = left.saturating_sub(1);
                        Some(if left > 0 {
                            Rs::Columns(left)
                        } else if deprecate_eof {
                            Rs::Rows
                        } else {
                            Rs::ColumnsEof
                        })
                    }
                    Rs::ColumnsEof if p.is_eof() && p.len < 9 => {
                        c.add_resp("EOF", &p);
                        Some(Rs::Rows)
                    }
                    Rs::ColumnsEof | Rs::Rows => {
                        if first == 0xff || p.is_eof() {
                            c.add_resp(simple_kind(&p), &p);
                            read_status(c, &p);
                            more_results(&p)
                        } else {
                            c.add_resp("", &p);
                            c.rows = c.rows.saturating_add(1);
                            Some(Rs::Rows)
                        }
                    }
                };
                match next {
                    Some(rs) => *expect = Expect::Results(rs),
                    None => done = true,
                }
            }
        }
        if done {
            self.emit_cur(None, out);
        }
    }

    fn finish(&self, c: MyCall, error: Option<&str>) -> Call {
        let mut call = Call::new(Protocol::Mysql);
        call.timestamp = c.first_ts;
        call.has_request = c.has_request;
        call.has_response = c.has_response;
        if c.has_request && c.has_response {
            call.elapsed_time = c.last_ts.saturating_sub(c.first_ts) / 1000;
        }
        call.method = c
            .command
            .strip_prefix("COM_")
            .unwrap_or(c.command)
            .to_owned();
        let a = &mut call.attrs;
        if !c.command.is_empty() {
            a.set("mysql_command", c.command);
        }
        if let Some(q) = &c.query {
            let v = sql::verb(q);
            if !v.is_empty() {
                call.method = v;
            }
            call.path = sql::normalise(q, true);
            a.set("mysql_query", q.clone());
            let cap = self.limits.max_body_bytes;
            call.request.body = Some(Body {
                data: q.as_bytes().get(..cap).unwrap_or(q.as_bytes()).to_vec(),
                truncated: c.query_truncated || q.len() > cap,
                decoded_from: None,
            });
        }
        if let Some(id) = c.statement_id {
            a.set("mysql_statement_id", id);
        }
        let strs = |v: &[&'static str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        if !c.req.is_empty() {
            a.set("mysql_request_messages", strs(&c.req));
        }
        if !c.resp.is_empty() {
            a.set("mysql_response_messages", strs(&c.resp));
        }
        if let Some(n) = c.columns {
            a.set("mysql_columns", i64::try_from(n).unwrap_or(i64::MAX));
        }
        if c.rows > 0 {
            a.set("mysql_rows", c.rows);
        }
        if let Some((affected, insert_id, warnings)) = c.ok {
            a.set(
                "mysql_affected_rows",
                i64::try_from(affected).unwrap_or(i64::MAX),
            );
            a.set(
                "mysql_last_insert_id",
                i64::try_from(insert_id).unwrap_or(i64::MAX),
            );
            a.set("mysql_warnings", i64::from(warnings));
        }
        if let Some((code, state, msg)) = c.error {
            call.status_code = i32::from(code);
            a.set("mysql_error_code", i64::from(code));
            a.set("mysql_sql_state", state);
            a.set("mysql_error_message", msg);
        }
        if c.tls {
            a.set("mysql_tls", true);
        }
        if !self.facts.user.is_empty() {
            a.set("mysql_user", self.facts.user.clone());
        }
        if !self.facts.database.is_empty() {
            a.set("mysql_database", self.facts.database.clone());
        }
        if !self.facts.version.is_empty() {
            a.set("mysql_server_version", self.facts.version.clone());
        }
        if let Some(id) = self.facts.connection_id {
            a.set("mysql_connection_id", id);
        }
        a.set("mysql_request_size", c.req_size as i64);
        a.set("mysql_response_size", c.resp_size as i64);
        call.request_body_size = c.req_size;
        call.response_body_size = c.resp_size;
        if let Some(e) = error {
            call.errors.push(e.to_owned());
        }
        call
    }

    fn feed(&mut self, dir: Direction, ts: Nanos, mut data: &[u8], out: &mut Emitter) {
        while !data.is_empty() && !self.stopped {
            let framer = match dir {
                Direction::ToServer => &mut self.client,
                Direction::ToClient => &mut self.server,
            };
            let (n, packet) = framer.step(ts, data);
            data = data.get(n..).unwrap_or_default();
            let Some(p) = packet else { continue };
            let cont = match dir {
                Direction::ToServer => &mut self.client_cont,
                Direction::ToClient => &mut self.server_cont,
            };
            let continuing = *cont;
            *cont = p.len == parser::MAX_PACKET_PAYLOAD;
            if continuing {
                // The rest of a 16 MiB payload: count it with its call.
                if let Some((c, _)) = self.cur.as_mut() {
                    match dir {
                        Direction::ToServer => c.req_size = c.req_size.saturating_add(p.size()),
                        Direction::ToClient => c.resp_size = c.resp_size.saturating_add(p.size()),
                    }
                }
                continue;
            }
            match dir {
                Direction::ToServer => self.on_client(p, out),
                Direction::ToClient => self.on_server(p, out),
            }
        }
    }
}

/// Kind of a one-packet answer by its first byte.
fn simple_kind(p: &Packet) -> &'static str {
    match p.first() {
        Some(0x00) => "OK",
        Some(0xff) => "ERR",
        Some(0xfe) if p.is_eof() => "EOF",
        _ => "Data",
    }
}

/// Record an OK, EOF or ERR packet's counts on the call.
fn read_status(c: &mut MyCall, p: &Packet) {
    match p.first() {
        Some(0xff) => c.error = Some(parser::err_packet(&p.payload)),
        Some(0x00) => {
            if let Some((a, id, _, w)) = parser::ok_packet(&p.payload) {
                c.ok = Some((a, id, w));
            }
        }
        Some(0xfe) if p.len >= 7 => {
            // CLIENT_DEPRECATE_EOF: an OK with the EOF header.
            if let Some((a, id, _, w)) = parser::ok_packet(&p.payload) {
                c.ok = Some((a, id, w));
            }
        }
        Some(0xfe) => {
            let (w, _) = parser::eof_packet(&p.payload);
            c.ok = Some((0, 0, w));
        }
        _ => {}
    }
}

/// After a closing OK/EOF: `Some(Start)` when the status announces more
/// result sets, None when the answer is complete (always after ERR).
fn more_results(p: &Packet) -> Option<Rs> {
    let status = match p.first() {
        Some(0x00) => parser::ok_packet(&p.payload).map_or(0, |(_, _, s, _)| s),
        Some(0xfe) if p.len >= 7 => parser::ok_packet(&p.payload).map_or(0, |(_, _, s, _)| s),
        Some(0xfe) => parser::eof_packet(&p.payload).1,
        _ => 0,
    };
    (status & parser::SERVER_MORE_RESULTS_EXISTS != 0).then_some(Rs::Start)
}

impl Session for MysqlSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        if self.stopped {
            return;
        }
        let lost = match dir {
            Direction::ToServer => &mut self.client_lost,
            Direction::ToClient => &mut self.server_lost,
        };
        if *lost {
            let starts = match dir {
                Direction::ToServer => parser::looks_like_command(data) == Some(true),
                // Answers resume with the next command.
                Direction::ToClient => false,
            };
            if !starts {
                return;
            }
            *lost = false;
            self.server_lost = false;
            self.server.reset();
            out.anomaly(ts, "resync");
        }
        self.feed(dir, ts, data, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        out.anomaly(ts, "gap");
        match dir {
            Direction::ToServer => {
                self.client.reset();
                self.client_cont = false;
                self.client_lost = true;
            }
            Direction::ToClient => {
                self.server.reset();
                self.server_cont = false;
                self.server_lost = true;
                self.emit_cur(Some("gap_in_response"), out);
            }
        }
    }

    fn end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        let framer = match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        };
        if !framer.idle() && !self.stopped {
            out.anomaly(ts, "truncated_message");
            framer.reset();
        }
    }

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        self.end(Direction::ToServer, ts, out);
        self.end(Direction::ToClient, ts, out);
        if let Some(g) = self.greeting.take() {
            let call = self.finish(g, Some("no_request"));
            out.call(Direction::ToServer, call);
        }
        let err = self
            .cur
            .as_ref()
            .is_some_and(|(c, _)| !c.has_response)
            .then_some("no_response");
        self.emit_cur(err, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_model::AttrValue;

    const C: Direction = Direction::ToServer;
    const S: Direction = Direction::ToClient;

    fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        v.push(seq);
        v.extend_from_slice(payload);
        v
    }

    fn greeting(caps: u32) -> Vec<u8> {
        let mut g = vec![10u8];
        g.extend_from_slice(b"8.0.32\0");
        g.extend_from_slice(&9u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.extend_from_slice(&[8, 2, 0]);
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.extend_from_slice(&[21; 11]);
        pkt(0, &g)
    }

    fn login(caps: u32) -> Vec<u8> {
        let mut l = caps.to_le_bytes().to_vec();
        l.extend_from_slice(&[0; 28]);
        l.extend_from_slice(b"app\0\x02xyshop\0");
        pkt(1, &l)
    }

    fn run(events: &[(Direction, Vec<u8>)]) -> Vec<Call> {
        let mut s = MysqlSession::new(Limits::default());
        let mut out = Emitter::new();
        for (i, (d, b)) in events.iter().enumerate() {
            s.data(*d, (i as i64 + 1) * 1_000_000, b, &mut out);
        }
        s.close(1_000_000_000, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    fn strs(c: &Call, k: &str) -> Vec<String> {
        match c.attrs.get(k) {
            Some(AttrValue::StrList(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    const CAPS: u32 = parser::CLIENT_PROTOCOL_41
        | parser::CLIENT_SECURE_CONNECTION
        | parser::CLIENT_CONNECT_WITH_DB;

    #[test]
    fn login_query_result_set_error_and_quit() {
        let mut rs = pkt(1, b"\x02");
        rs.extend(pkt(2, b"\x03defcol1"));
        rs.extend(pkt(3, b"\x03defcol2"));
        rs.extend(pkt(4, b"\xfe\x00\x00\x02\x00"));
        rs.extend(pkt(5, b"\x011\x01a"));
        rs.extend(pkt(6, b"\x012\x01b"));
        rs.extend(pkt(7, b"\xfe\x00\x00\x02\x00"));
        let calls = run(&[
            (S, greeting(CAPS)),
            (C, login(CAPS)),
            (S, pkt(2, b"\x00\x00\x00\x02\x00\x00\x00")),
            (C, pkt(0, b"\x03SELECT id, name FROM t WHERE id > 0")),
            (S, rs),
            (C, pkt(0, b"\x03SELECT * FROM nope")),
            (
                S,
                pkt(1, b"\xff\x7a\x04#42S02Table 'shop.nope' doesn't exist"),
            ),
            (C, pkt(0, b"\x01")),
        ]);
        let methods: Vec<_> = calls.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(methods, ["LOGIN", "SELECT", "SELECT", "QUIT"]);
        assert_eq!(
            strs(&calls[0], "mysql_response_messages"),
            ["Greeting", "OK"]
        );
        assert_eq!(calls[0].attrs.str("mysql_user"), "app");
        assert_eq!(calls[1].attrs.str("mysql_database"), "shop");
        assert_eq!(calls[1].attrs.int("mysql_rows"), 2);
        assert_eq!(calls[1].attrs.int("mysql_columns"), 2);
        assert_eq!(calls[1].path, "SELECT id, name FROM t WHERE id > ?");
        assert_eq!(
            strs(&calls[1], "mysql_response_messages"),
            [
                "ResultSetHeader",
                "ColumnDefinition",
                "ColumnDefinition",
                "EOF",
                "EOF"
            ]
        );
        assert_eq!(calls[2].status_code, 1146);
        assert_eq!(calls[2].attrs.str("mysql_sql_state"), "42S02");
        assert!(calls[3].errors.is_empty() && !calls[3].has_response);
        assert_eq!(calls[1].attrs.int("mysql_connection_id"), 9);
    }

    #[test]
    fn deprecate_eof_prepared_statements() {
        let caps = CAPS | parser::CLIENT_DEPRECATE_EOF;
        let mut prep = pkt(1, b"\x00\x07\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00");
        prep.extend(pkt(2, b"\x03defparam"));
        prep.extend(pkt(3, b"\x03defcol"));
        let mut exec = pkt(1, b"\x01");
        exec.extend(pkt(2, b"\x03defcol"));
        exec.extend(pkt(3, b"\x00\x00\x01a"));
        exec.extend(pkt(4, b"\xfe\x00\x00\x02\x00\x00\x00"));
        let calls = run(&[
            (S, greeting(caps)),
            (C, login(caps)),
            (S, pkt(2, b"\x00\x00\x00\x02\x00\x00\x00")),
            (C, pkt(0, b"\x16SELECT name FROM t WHERE id = ?")),
            (S, prep),
            (
                C,
                pkt(
                    0,
                    b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x00\x00",
                ),
            ),
            (S, exec),
            (C, pkt(0, b"\x19\x07\x00\x00\x00")),
            (C, pkt(0, b"\x0e")),
            (S, pkt(1, b"\x00\x00\x00\x02\x00\x00\x00")),
        ]);
        let cmds: Vec<_> = calls.iter().map(|c| c.attrs.str("mysql_command")).collect();
        assert_eq!(
            cmds,
            [
                "LOGIN",
                "COM_STMT_PREPARE",
                "COM_STMT_EXECUTE",
                "COM_STMT_CLOSE",
                "COM_PING"
            ]
        );
        for c in &calls[1..4] {
            assert_eq!(c.attrs.int("mysql_statement_id"), 7);
            assert_eq!(
                c.attrs.str("mysql_query"),
                "SELECT name FROM t WHERE id = ?"
            );
        }
        assert_eq!(calls[2].attrs.int("mysql_rows"), 1);
        assert!(calls.iter().all(|c| c.errors.is_empty()), "{calls:#?}");
    }

    #[test]
    fn payloads_of_16_mib_continue_in_the_next_packet() {
        // A COM_QUERY of 16 MiB - 1 + 10 bytes: two packets, one command.
        let mut first = vec![0x03u8];
        first.extend(std::iter::repeat_n(
            b'x',
            parser::MAX_PACKET_PAYLOAD as usize - 1,
        ));
        let mut wire = pkt(0, &first);
        wire.extend(pkt(1, b"0123456789"));
        let calls = run(&[(C, wire), (S, pkt(2, b"\x00\x00\x00\x02\x00\x00\x00"))]);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].attrs.str("mysql_command"), "COM_QUERY");
        assert_eq!(calls[0].attrs.int("mysql_request_size"), 0xff_ffff + 4 + 14);
        assert!(calls[0].errors.is_empty());
        assert!(calls[0].request.body.as_ref().unwrap().truncated);
    }

    #[test]
    fn ssl_request_stops_and_multi_results() {
        let caps = CAPS | parser::CLIENT_SSL;
        let mut ssl = caps.to_le_bytes().to_vec();
        ssl.extend_from_slice(&[0; 28]);
        let calls = run(&[
            (S, greeting(caps)),
            (C, pkt(1, &ssl)),
            (C, b"\x16\x03\x01\x02\x00".to_vec()),
        ]);
        assert_eq!(calls.len(), 1);
        assert!(calls[0].attrs.get("mysql_tls").is_some());
        // Two OKs, the first saying more results follow; mid-stream start.
        let mut r = pkt(1, b"\x00\x01\x00\x08\x00\x00\x00");
        r.extend(pkt(2, b"\x00\x02\x00\x02\x00\x00\x00"));
        let calls = run(&[(C, pkt(0, b"\x03DELETE FROM a; DELETE FROM b")), (S, r)]);
        assert_eq!(calls.len(), 1);
        assert_eq!(strs(&calls[0], "mysql_response_messages"), ["OK", "OK"]);
        assert_eq!(calls[0].attrs.int("mysql_affected_rows"), 2);
    }
}
