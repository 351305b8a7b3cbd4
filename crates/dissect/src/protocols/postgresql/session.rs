//! [`PostgresSession`]: one PostgreSQL connection. Client messages are
//! grouped into calls the way the server answers them: a Query (or
//! FunctionCall) alone, an extended-protocol batch (Parse, Bind,
//! Describe, Execute, Close, Flush…) up to its Sync, the startup with its
//! authentication messages, an SSLRequest or GSSENCRequest with its
//! one-byte answer; each call ends at the server's ReadyForQuery (the
//! SSL answer ends its own). CancelRequest and Terminate get no answer and
//! are emitted as they come, in order with the rest.
//!
//! COPY: CopyData, CopyDone and CopyFail from the client, and password
//! messages, belong to the call the server is answering. Server messages
//! that come before the client's Sync (after a Flush) join the batch
//! being built. An accepted SSLRequest ends dissection (the rest is
//! encrypted): the call says so with `postgresql_tls`.
//!
//! Gaps drop the partial message; the direction waits for data that
//! starts like a message, and a server gap gives up on the calls waiting
//! (`gap_in_response`).

use std::collections::{HashMap, VecDeque};

use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Protocol};

use super::parser::{self, Frame, Framer};
use super::sql;
use crate::seam::{Emitter, Limits, Session};

/// Message names listed per call side: enough for any real call's
/// structure (a startup has about 20, a batch 5–10); DataRows are counted
/// instead, and a COPY of a million rows lists its first 64 messages.
pub const MAX_LISTED_MESSAGES: usize = 64;

/// Prepared statements remembered per connection (name → query) so that a
/// later Bind shows its query. Poolers such as PgBouncer keep a few
/// hundred; past this, new names are not remembered.
pub const MAX_STATEMENTS: usize = 1024;

/// Longest string kept from a startup parameter or error field.
const MAX_FIELD_BYTES: usize = 1024;

#[derive(Debug, Default)]
struct PgCall {
    first_ts: Nanos,
    last_ts: Nanos,
    has_request: bool,
    /// False for CancelRequest and Terminate: nothing answers them.
    expects_response: bool,
    /// The closing ReadyForQuery (or SSL answer) came.
    done: bool,
    req: Vec<&'static str>,
    resp: Vec<&'static str>,
    req_size: u64,
    resp_size: u64,
    query: Option<String>,
    query_truncated: bool,
    statement: Option<String>,
    tag: Option<String>,
    rows: i64,
    error: Option<(String, String, String)>,
    tx_status: Option<&'static str>,
    tls: bool,
    cancel_pid: Option<i64>,
    has_response: bool,
}

impl PgCall {
    fn request(ts: Nanos, expects_response: bool) -> PgCall {
        PgCall {
            first_ts: ts,
            last_ts: ts,
            has_request: true,
            expects_response,
            ..PgCall::default()
        }
    }

    fn add_req(&mut self, name: &'static str, f: &Frame) {
        if self.req.len() < MAX_LISTED_MESSAGES {
            self.req.push(name);
        }
        self.req_size = self.req_size.saturating_add(f.size);
    }
}

/// What the connection's StartupMessage and BackendKeyData said.
#[derive(Debug, Default)]
struct ConnFacts {
    database: String,
    user: String,
    application_name: String,
    backend_pid: Option<i64>,
}

/// The PostgreSQL state of one TCP connection.
#[derive(Debug)]
pub struct PostgresSession {
    limits: Limits,
    client: Framer,
    server: Framer,
    client_decided: bool,
    client_lost: bool,
    server_lost: bool,
    /// The server's next byte answers an SSLRequest or GSSENCRequest.
    awaiting_ssl_answer: bool,
    /// TLS or GSS encryption was accepted: nothing more to read.
    encrypted: bool,
    /// Extended-protocol messages waiting for their Sync.
    building: Option<PgCall>,
    pending: VecDeque<PgCall>,
    statements: HashMap<String, String>,
    facts: ConnFacts,
    /// Last authentication request subtype: names the client's 'p' reply.
    last_auth: u32,
    /// Answers still to come for calls already emitted without one
    /// (`too_many_pending`): dropped up to their ReadyForQuery.
    skip_answers: u64,
}

impl PostgresSession {
    pub fn new(limits: Limits) -> PostgresSession {
        let cap = limits.max_body_bytes;
        PostgresSession {
            limits,
            client: Framer::new(true, cap),
            server: Framer::new(false, cap),
            client_decided: false,
            client_lost: false,
            server_lost: false,
            awaiting_ssl_answer: false,
            encrypted: false,
            building: None,
            pending: VecDeque::new(),
            statements: HashMap::new(),
            facts: ConnFacts::default(),
            last_auth: 0,
            skip_answers: 0,
        }
    }

    fn push_pending(&mut self, c: PgCall, out: &mut Emitter) {
        let waiting = self.pending.iter().filter(|c| !c.done).count();
        if waiting >= self.limits.max_pending
            && let Some(pos) = self.pending.iter().position(|c| !c.done)
            && let Some(mut old) = self.pending.remove(pos)
        {
            old.done = true;
            let call = self.finish(old, Some("too_many_pending"));
            out.call(Direction::ToServer, call);
            // Its answer is still to come: drop it then (up to its
            // ReadyForQuery), so that later answers join their own calls.
            self.skip_answers = self.skip_answers.saturating_add(1);
        }
        self.pending.push_back(c);
        self.flush(out);
    }

    /// Emit calls at the front that are complete or expect no answer.
    fn flush(&mut self, out: &mut Emitter) {
        while self
            .pending
            .front()
            .is_some_and(|c| c.done || !c.expects_response)
        {
            if let Some(c) = self.pending.pop_front() {
                let call = self.finish(c, None);
                out.call(Direction::ToServer, call);
            }
        }
    }

    fn on_client(&mut self, f: Frame, out: &mut Emitter) {
        if f.tag == 0 {
            self.on_startup_packet(f, out);
            return;
        }
        let name = match f.tag {
            b'p' => match self.last_auth {
                10 => "SASLInitialResponse",
                11 => "SASLResponse",
                7 | 8 => "GSSResponse",
                _ => "PasswordMessage",
            },
            t => parser::frontend_name(t),
        };
        match f.tag {
            // Part of the exchange the server is in the middle of.
            b'p' | b'd' | b'c' | b'f' => {
                let target = match self
                    .pending
                    .iter_mut()
                    .find(|c| !c.done && c.expects_response)
                {
                    Some(c) => c,
                    None => self
                        .building
                        .get_or_insert_with(|| PgCall::request(f.first_ts, true)),
                };
                target.add_req(name, &f);
            }
            b'Q' | b'F' | b'X' => {
                if let Some(b) = self.building.take() {
                    self.push_pending(b, out);
                }
                let mut c = PgCall::request(f.first_ts, f.tag != b'X');
                c.add_req(name, &f);
                if f.tag == b'Q' {
                    let (q, _) = parser::cstr(&f.body);
                    c.query = Some(q);
                    c.query_truncated = f.truncated;
                }
                self.push_pending(c, out);
            }
            _ => {
                let c = self
                    .building
                    .get_or_insert_with(|| PgCall::request(f.first_ts, true));
                c.has_request = true;
                c.add_req(name, &f);
                match f.tag {
                    b'P' => {
                        let (stmt, rest) = parser::cstr(&f.body);
                        let (q, _) = parser::cstr(rest);
                        if c.query.is_none() {
                            c.query = Some(q.clone());
                            c.query_truncated = f.truncated;
                            c.statement = Some(stmt.clone());
                        }
                        // The unnamed statement ("") is remembered too:
                        // drivers Parse it once and Bind it after a Sync.
                        if self.statements.len() < MAX_STATEMENTS
                            || self.statements.contains_key(&stmt)
                        {
                            self.statements.insert(stmt, q);
                        }
                    }
                    b'B' => {
                        let (_portal, rest) = parser::cstr(&f.body);
                        let (stmt, _) = parser::cstr(rest);
                        if c.query.is_none() {
                            c.query = self.statements.get(&stmt).cloned();
                            c.statement = Some(stmt);
                        }
                    }
                    b'D' if f.body.first() == Some(&b'S') => {
                        let (stmt, _) = parser::cstr(f.body.get(1..).unwrap_or_default());
                        if c.query.is_none() {
                            c.query = self.statements.get(&stmt).cloned();
                            c.statement = Some(stmt);
                        }
                    }
                    // Close of a prepared statement ('S') forgets it.
                    b'C' if f.body.first() == Some(&b'S') => {
                        let (stmt, _) = parser::cstr(f.body.get(1..).unwrap_or_default());
                        self.statements.remove(&stmt);
                    }
                    _ => {}
                }
                if f.tag == b'S'
                    && let Some(b) = self.building.take()
                {
                    self.push_pending(b, out);
                }
            }
        }
    }

    fn on_startup_packet(&mut self, f: Frame, out: &mut Emitter) {
        let name = match f.code {
            parser::SSL_REQUEST => "SSLRequest",
            parser::GSSENC_REQUEST => "GSSENCRequest",
            parser::CANCEL_REQUEST => "CancelRequest",
            _ => "StartupMessage",
        };
        let mut c = PgCall::request(f.first_ts, name != "CancelRequest");
        c.add_req(name, &f);
        match f.code {
            parser::SSL_REQUEST | parser::GSSENC_REQUEST => {
                self.awaiting_ssl_answer = true;
            }
            parser::CANCEL_REQUEST => {
                c.cancel_pid = parser::be32(&f.body).map(i64::from);
            }
            _ => {
                self.client.untyped = false;
                for (k, v) in parser::startup_params(&f.body) {
                    let v = cut(v);
                    match k.as_str() {
                        "user" => self.facts.user = v,
                        "database" => self.facts.database = v,
                        "application_name" => self.facts.application_name = v,
                        _ => {}
                    }
                }
                if self.facts.database.is_empty() {
                    // The server defaults the database to the user name.
                    self.facts.database.clone_from(&self.facts.user);
                }
            }
        }
        if name == "CancelRequest" {
            self.client.untyped = false;
        }
        self.push_pending(c, out);
    }

    fn on_server(&mut self, f: Frame, out: &mut Emitter) {
        if self.skip_answers > 0 {
            if f.tag == b'Z' {
                self.skip_answers -= 1;
            }
            return;
        }
        let name = parser::backend_name(f.tag, &f.body);
        let async_alone = matches!(f.tag, b'A' | b'S' | b'N')
            && self.building.is_none()
            && !self.pending.iter().any(|c| !c.done && c.expects_response);
        if f.tag == b'R' {
            self.last_auth = parser::be32(&f.body).unwrap_or(0);
        }
        if f.tag == b'K' {
            self.facts.backend_pid = parser::be32(&f.body).map(i64::from);
        }
        let target: &mut PgCall = if let Some(c) = self
            .pending
            .iter_mut()
            .find(|c| !c.done && c.expects_response)
        {
            c
        } else if let Some(b) = self.building.as_mut() {
            b
        } else {
            // No request seen (capture started mid-call, or an
            // asynchronous notice): a response-only call.
            let c = PgCall {
                first_ts: f.first_ts,
                last_ts: f.first_ts,
                expects_response: true,
                ..PgCall::default()
            };
            self.pending.push_back(c);
            match self.pending.back_mut() {
                Some(c) => c,
                None => return,
            }
        };
        target.has_response = true;
        if target.resp.len() < MAX_LISTED_MESSAGES && f.tag != b'D' {
            target.resp.push(name);
        }
        target.resp_size = target.resp_size.saturating_add(f.size);
        target.last_ts = f.last_ts;
        match f.tag {
            b'D' => target.rows = target.rows.saturating_add(1),
            b'C' => target.tag = Some(cut(parser::cstr(&f.body).0)),
            b'E' => {
                let fields = parser::error_fields(&f.body);
                let get = |code: u8| {
                    fields
                        .iter()
                        .find(|(c, _)| *c == code)
                        .map(|(_, v)| cut(v.clone()))
                        .unwrap_or_default()
                };
                let severity = match get(b'V') {
                    s if s.is_empty() => get(b'S'),
                    s => s,
                };
                target.error = Some((get(b'C'), get(b'M'), severity));
            }
            b'Z' => {
                target.tx_status = Some(match f.body.first() {
                    Some(b'T') => "in_transaction",
                    Some(b'E') => "failed",
                    _ => "idle",
                });
                target.done = true;
            }
            _ => {}
        }
        if async_alone {
            target.done = true;
        }
        self.flush(out);
    }

    fn on_ssl_answer(&mut self, ts: Nanos, answer: u8, out: &mut Emitter) {
        self.awaiting_ssl_answer = false;
        if let Some(c) = self
            .pending
            .iter_mut()
            .find(|c| !c.done && c.expects_response)
        {
            c.has_response = true;
            c.resp.push(match answer {
                b'S' | b'G' => "EncryptionAccepted",
                _ => "EncryptionRefused",
            });
            c.resp_size = 1;
            c.last_ts = ts;
            c.done = true;
            c.tls = matches!(answer, b'S' | b'G');
        }
        if matches!(answer, b'S' | b'G') {
            self.encrypted = true;
        }
        self.flush(out);
    }

    fn finish(&self, c: PgCall, error: Option<&str>) -> Call {
        let mut call = Call::new(Protocol::Postgresql);
        call.timestamp = c.first_ts;
        call.has_request = c.has_request;
        call.has_response = c.has_response;
        if c.has_request && c.has_response {
            call.elapsed_time = c.last_ts.saturating_sub(c.first_ts) / 1000;
        }
        let first = c.req.first().copied().unwrap_or("");
        let a = &mut call.attrs;
        if !first.is_empty() {
            a.set("postgresql_message_type", first);
        }
        match &c.query {
            Some(q) => {
                call.method = sql::verb(q);
                call.path = sql::normalise(q, false);
                a.set("postgresql_query", q.clone());
                let cap = self.limits.max_body_bytes;
                call.request.body = Some(Body {
                    data: q.as_bytes().get(..cap).unwrap_or(q.as_bytes()).to_vec(),
                    truncated: c.query_truncated || q.len() > cap,
                    decoded_from: None,
                });
            }
            None => call.method = first.to_owned(),
        }
        if call.method.is_empty() {
            call.method = first.to_owned();
        }
        if let Some(s) = c.statement.filter(|s| !s.is_empty()) {
            a.set("postgresql_statement", s);
        }
        if !c.req.is_empty() {
            a.set(
                "postgresql_request_messages",
                c.req.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            );
        }
        if !c.resp.is_empty() {
            a.set(
                "postgresql_response_messages",
                c.resp.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            );
        }
        if let Some(t) = c.tag {
            if let Some(n) = parser::tag_rows(&t) {
                a.set("postgresql_rows_affected", n);
            }
            a.set("postgresql_command_tag", t);
        }
        if c.rows > 0 {
            a.set("postgresql_rows", c.rows);
        }
        if let Some((code, msg, sev)) = c.error {
            call.status_code = 1;
            a.set("postgresql_error_code", code);
            a.set("postgresql_error_message", msg);
            a.set("postgresql_error_severity", sev);
        }
        if let Some(s) = c.tx_status {
            a.set("postgresql_transaction_status", s);
        }
        if c.tls {
            a.set("postgresql_tls", true);
        }
        if !self.facts.database.is_empty() {
            a.set("postgresql_database", self.facts.database.clone());
        }
        if !self.facts.user.is_empty() {
            a.set("postgresql_user", self.facts.user.clone());
        }
        if !self.facts.application_name.is_empty() {
            a.set(
                "postgresql_application_name",
                self.facts.application_name.clone(),
            );
        }
        if let Some(pid) = c.cancel_pid.or(self.facts.backend_pid) {
            a.set("postgresql_backend_pid", pid);
        }
        a.set("postgresql_request_size", c.req_size as i64);
        a.set("postgresql_response_size", c.resp_size as i64);
        call.request_body_size = c.req_size;
        call.response_body_size = c.resp_size;
        if let Some(e) = error {
            call.errors.push(e.to_owned());
        }
        if !c.has_request {
            call.errors.push("no_request".to_owned());
        }
        call
    }

    fn feed(&mut self, dir: Direction, ts: Nanos, mut data: &[u8], out: &mut Emitter) {
        while !data.is_empty() && !self.encrypted {
            if dir == Direction::ToClient && self.awaiting_ssl_answer && self.server.idle() {
                let Some((&b, rest)) = data.split_first() else {
                    return;
                };
                if matches!(b, b'S' | b'N' | b'G') {
                    self.on_ssl_answer(ts, b, out);
                    data = rest;
                    continue;
                }
                // An old server's ErrorResponse: read it as a message.
                self.awaiting_ssl_answer = false;
            }
            let framer = match dir {
                Direction::ToServer => &mut self.client,
                Direction::ToClient => &mut self.server,
            };
            match framer.step(ts, data) {
                Ok((n, frame)) => {
                    data = data.get(n..).unwrap_or_default();
                    if let Some(f) = frame {
                        match dir {
                            Direction::ToServer => self.on_client(f, out),
                            Direction::ToClient => self.on_server(f, out),
                        }
                    }
                }
                Err(e) => {
                    out.anomaly(ts, e.code());
                    framer.reset();
                    match dir {
                        Direction::ToServer => self.client_lost = true,
                        Direction::ToClient => self.server_lost = true,
                    }
                    return;
                }
            }
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut n = MAX_FIELD_BYTES;
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s.truncate(n);
    }
    s
}

impl Session for PostgresSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        if self.encrypted {
            return;
        }
        if dir == Direction::ToServer && !self.client_decided {
            self.client_decided = true;
            // A capture that starts mid-connection: typed messages.
            self.client.untyped = data.first() == Some(&0);
        }
        let lost = match dir {
            Direction::ToServer => &mut self.client_lost,
            Direction::ToClient => &mut self.server_lost,
        };
        if *lost {
            let starts = match dir {
                Direction::ToServer => parser::looks_like_frontend(data) != Some(false),
                Direction::ToClient => data.first().is_some_and(|t| {
                    parser::backend_name(*t, &[]) != "Unknown"
                        && parser::be32(data.get(1..).unwrap_or_default())
                            .is_some_and(|l| (4..1 << 24).contains(&l))
                }),
            };
            if !starts {
                return;
            }
            *lost = false;
            out.anomaly(ts, "resync");
        }
        self.feed(dir, ts, data, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        out.anomaly(ts, "gap");
        match dir {
            Direction::ToServer => {
                self.client.reset();
                self.client.untyped = false;
                self.client_lost = true;
            }
            Direction::ToClient => {
                self.server.reset();
                self.server_lost = true;
                self.awaiting_ssl_answer = false;
                self.skip_answers = 0;
                for c in &mut self.pending {
                    c.done = true;
                }
                while let Some(c) = self.pending.pop_front() {
                    let err = (c.expects_response && !c.has_response).then_some("gap_in_response");
                    let call = self.finish(c, err);
                    out.call(Direction::ToServer, call);
                }
            }
        }
    }

    fn end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        let framer = match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        };
        if !framer.idle() && !self.encrypted {
            out.anomaly(ts, "truncated_message");
            framer.reset();
        }
    }

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        self.end(Direction::ToServer, ts, out);
        self.end(Direction::ToClient, ts, out);
        if let Some(b) = self.building.take() {
            self.pending.push_back(b);
        }
        while let Some(c) = self.pending.pop_front() {
            let err = (c.expects_response && !c.has_response).then_some("no_response");
            let call = self.finish(c, err);
            out.call(Direction::ToServer, call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Direction = Direction::ToServer;
    const S: Direction = Direction::ToClient;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn run(events: &[(Direction, Vec<u8>)]) -> Vec<Call> {
        let mut s = PostgresSession::new(Limits::default());
        let mut out = Emitter::new();
        for (i, (d, b)) in events.iter().enumerate() {
            s.data(*d, (i as i64 + 1) * 1_000_000, b, &mut out);
        }
        s.close(1_000_000_000, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    fn strs(c: &Call, k: &str) -> Vec<String> {
        match c.attrs.get(k) {
            Some(trawl_model::AttrValue::StrList(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    fn startup() -> Vec<(Direction, Vec<u8>)> {
        let mut sm = Vec::new();
        sm.extend_from_slice(&[0, 3, 0, 0]);
        sm.extend_from_slice(b"user\0bob\0database\0shop\0\0");
        let mut pkt = ((sm.len() + 4) as u32).to_be_bytes().to_vec();
        pkt.extend_from_slice(&sm);
        let mut resp = msg(b'R', &[0, 0, 0, 0]);
        resp.extend(msg(b'S', b"server_version\x0016\0"));
        resp.extend(msg(b'K', &[0, 0, 0x10, 0x92, 1, 2, 3, 4]));
        resp.extend(msg(b'Z', b"I"));
        vec![
            (C, b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec()),
            (S, b"N".to_vec()),
            (C, pkt),
            (S, resp),
        ]
    }

    #[test]
    fn startup_simple_query_error_and_terminate() {
        let mut ev = startup();
        ev.push((C, msg(b'Q', b"SELECT * FROM t WHERE id = 7\0")));
        let mut r = msg(
            b'T',
            b"\0\x01id\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        );
        r.extend(msg(b'D', b"\0\x01\0\0\0\x017"));
        r.extend(msg(b'D', b"\0\x01\0\0\0\x018"));
        r.extend(msg(b'C', b"SELECT 2\0"));
        r.extend(msg(b'Z', b"I"));
        ev.push((S, r));
        ev.push((C, msg(b'Q', b"select * from nope\0")));
        let mut e = msg(
            b'E',
            b"SERROR\0VERROR\0C42P01\0Mrelation \"nope\" does not exist\0\0",
        );
        e.extend(msg(b'Z', b"I"));
        ev.push((S, e));
        ev.push((C, msg(b'X', b"")));
        let calls = run(&ev);
        let methods: Vec<_> = calls.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(
            methods,
            [
                "SSLRequest",
                "StartupMessage",
                "SELECT",
                "SELECT",
                "Terminate"
            ]
        );
        assert_eq!(
            strs(&calls[0], "postgresql_response_messages"),
            ["EncryptionRefused"]
        );
        assert_eq!(
            strs(&calls[1], "postgresql_response_messages"),
            [
                "AuthenticationOk",
                "ParameterStatus",
                "BackendKeyData",
                "ReadyForQuery"
            ]
        );
        let q = &calls[2];
        assert_eq!(q.path, "SELECT * FROM t WHERE id = ?");
        assert_eq!(q.attrs.int("postgresql_rows"), 2);
        assert_eq!(q.attrs.int("postgresql_rows_affected"), 2);
        assert_eq!(q.attrs.str("postgresql_database"), "shop");
        assert_eq!(q.attrs.str("postgresql_user"), "bob");
        assert_eq!(q.attrs.int("postgresql_backend_pid"), 0x1092);
        assert_eq!(q.elapsed_time, 1000);
        let e = &calls[3];
        assert_eq!(e.status_code, 1);
        assert_eq!(e.attrs.str("postgresql_error_code"), "42P01");
        assert_eq!(e.attrs.str("postgresql_error_severity"), "ERROR");
        assert!(calls[4].errors.is_empty());
        assert!(!calls[4].has_response);
    }

    #[test]
    fn extended_protocol_batches_and_statement_names() {
        let mut batch = msg(b'P', b"s1\0INSERT INTO t VALUES ($1)\0\0\0");
        batch.extend(msg(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x012\0\0"));
        batch.extend(msg(b'E', b"\0\0\0\0\0"));
        batch.extend(msg(b'S', b""));
        // A second execution of the prepared statement.
        batch.extend(msg(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x013\0\0"));
        batch.extend(msg(b'E', b"\0\0\0\0\0"));
        batch.extend(msg(b'S', b""));
        let mut r = msg(b'1', b"");
        r.extend(msg(b'2', b""));
        r.extend(msg(b'C', b"INSERT 0 1\0"));
        r.extend(msg(b'Z', b"I"));
        let mut r2 = msg(b'2', b"");
        r2.extend(msg(b'C', b"INSERT 0 1\0"));
        r2.extend(msg(b'Z', b"T"));
        let calls = run(&[(C, batch), (S, r), (S, r2)]);
        assert_eq!(calls.len(), 2);
        assert_eq!(
            strs(&calls[0], "postgresql_request_messages"),
            ["Parse", "Bind", "Execute", "Sync"]
        );
        for c in &calls {
            assert_eq!(c.attrs.str("postgresql_query"), "INSERT INTO t VALUES ($1)");
            assert_eq!(c.attrs.str("postgresql_statement"), "s1");
            assert_eq!(c.method, "INSERT");
            assert_eq!(c.attrs.int("postgresql_rows_affected"), 1);
        }
        assert_eq!(calls[1].attrs.str("postgresql_message_type"), "Bind");
        assert_eq!(
            calls[1].attrs.str("postgresql_transaction_status"),
            "in_transaction"
        );
    }

    #[test]
    fn ssl_accepted_stops_and_cancel_has_no_answer() {
        let calls = run(&[
            (C, b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec()),
            (S, b"S\x16\x03\x03".to_vec()),
            (C, b"\x16\x03\x01\x00\x05hello".to_vec()),
        ]);
        assert_eq!(calls.len(), 1);
        assert!(calls[0].attrs.get("postgresql_tls").is_some());
        let calls = run(&[(
            C,
            b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x10\x92\x01\x02\x03\x04".to_vec(),
        )]);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].method, "CancelRequest");
        assert_eq!(calls[0].attrs.int("postgresql_backend_pid"), 0x1092);
        assert!(calls[0].errors.is_empty());
    }

    #[test]
    fn gssenc_refused_then_startup() {
        let mut ev = startup();
        ev.insert(0, (S, b"N".to_vec()));
        ev.insert(0, (C, b"\x00\x00\x00\x08\x04\xd2\x16\x30".to_vec()));
        let calls = run(&ev);
        let methods: Vec<_> = calls.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(methods, ["GSSENCRequest", "SSLRequest", "StartupMessage"]);
        assert!(calls.iter().all(|c| c.errors.is_empty()));
    }

    #[test]
    fn copy_in_and_mid_stream_and_gaps() {
        let mut ev = vec![(C, msg(b'Q', b"COPY t FROM STDIN\0"))];
        ev.push((S, msg(b'G', b"\0\0\x01\0\0")));
        let mut d = msg(b'd', b"1\n2\n");
        d.extend(msg(b'c', b""));
        ev.push((C, d));
        let mut r = msg(b'C', b"COPY 2\0");
        r.extend(msg(b'Z', b"I"));
        ev.push((S, r));
        let calls = run(&ev);
        assert_eq!(calls.len(), 1);
        assert_eq!(
            strs(&calls[0], "postgresql_request_messages"),
            ["Query", "CopyData", "CopyDone"]
        );
        assert_eq!(calls[0].attrs.int("postgresql_rows_affected"), 2);
        // A response whose request was not captured.
        let mut r = msg(b'C', b"SELECT 1\0");
        r.extend(msg(b'Z', b"I"));
        let calls = run(&[(S, r)]);
        assert_eq!(calls[0].errors, ["no_request"]);
        // A server gap gives up on the waiting query; the next pairs.
        let mut s = PostgresSession::new(Limits::default());
        let mut out = Emitter::new();
        s.data(C, 1, &msg(b'Q', b"select 1\0"), &mut out);
        s.data(S, 2, b"T\x00\x00\x01\x00ab", &mut out);
        s.gap(S, 3, 100, &mut out);
        s.data(C, 4, &msg(b'Q', b"select 2\0"), &mut out);
        let mut r = msg(b'C', b"SELECT 1\0");
        r.extend(msg(b'Z', b"I"));
        s.data(S, 5, &r, &mut out);
        let calls: Vec<_> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].attrs.str("postgresql_query"), "select 2");
        assert!(calls[1].errors.is_empty());
    }
}
