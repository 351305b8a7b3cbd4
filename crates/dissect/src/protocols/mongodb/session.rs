//! One MongoDB connection: frames messages by their little-endian length
//! (keeping each message's head, see [`crate::protocols::framing`]),
//! reads requests and replies, and pairs them by requestID/responseTo.
//! Legacy writes (OP_INSERT, OP_UPDATE, OP_DELETE, OP_KILL_CURSORS) and
//! OP_MSG with moreToCome get no reply and are emitted at once. After a
//! gap the direction is given up: lengths give no resync point. Created
//! by [`super::new_session`].

use std::collections::VecDeque;

use trawl_flow::{Direction, Nanos};
use trawl_model::{Call, Protocol};

use super::parser::{self, Header, Message};
use crate::protocols::framing::{Framed, Framer};
use crate::seam::{Emitter, Limits, Session};

#[derive(Debug)]
struct Side {
    header: Header,
    msg: Message,
    size: usize,
    start: Nanos,
    end: Nanos,
}

#[derive(Debug)]
pub struct MongoSession {
    limits: Limits,
    client: Framer,
    server: Framer,
    client_lost: bool,
    server_lost: bool,
    pending: VecDeque<Side>,
}

/// MongoDB's length prefix counts the whole message, itself included.
fn total_len(prefix: [u8; 4]) -> Option<usize> {
    let n = usize::try_from(i32::from_le_bytes(prefix)).ok()?;
    (parser::HEADER_LEN..=parser::MAX_MESSAGE_LEN)
        .contains(&n)
        .then_some(n)
}

impl MongoSession {
    pub fn new(limits: Limits) -> MongoSession {
        MongoSession {
            limits,
            client: Framer::default(),
            server: Framer::default(),
            client_lost: false,
            server_lost: false,
            pending: VecDeque::new(),
        }
    }

    fn on_message(&mut self, dir: Direction, f: &Framed<'_>, out: &mut Emitter) {
        let Some(header) = parser::header(f.head) else {
            out.anomaly(f.start, "mongodb_bad_header");
            return;
        };
        let side = Side {
            header,
            msg: parser::parse(&header, f.head),
            size: f.total,
            start: f.start,
            end: f.end,
        };
        let is_reply = header.opcode == parser::OP_REPLY
            || (dir == Direction::ToClient && header.response_to != 0);
        if !is_reply {
            let no_reply = matches!(
                header.opcode,
                parser::OP_INSERT | parser::OP_UPDATE | parser::OP_DELETE | parser::OP_KILL_CURSORS
            ) || side.msg.more_to_come;
            if no_reply {
                out.call(Direction::ToServer, build_call(Some(&side), None, false));
                return;
            }
            self.pending.push_back(side);
            if self.pending.len() > self.limits.max_pending
                && let Some(old) = self.pending.pop_front()
            {
                let mut call = build_call(Some(&old), None, true);
                call.errors.push("too_many_pending".to_owned());
                out.call(Direction::ToServer, call);
            }
            return;
        }
        let to = header.response_to;
        match self.pending.iter().position(|p| p.header.request_id == to) {
            Some(i) => {
                if let Some(req) = self.pending.remove(i) {
                    out.call(
                        Direction::ToServer,
                        build_call(Some(&req), Some(&side), true),
                    );
                }
            }
            None => out.call(Direction::ToServer, build_call(None, Some(&side), true)),
        }
    }
}

fn size_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A call from a request and/or its reply; `expects_reply` is false for
/// messages that get none (then a missing reply is not an error).
fn build_call(req: Option<&Side>, resp: Option<&Side>, expects_reply: bool) -> Call {
    let mut call = Call::new(Protocol::Mongodb);
    call.has_request = req.is_some();
    call.has_response = resp.is_some();
    call.timestamp = req.or(resp).map_or(0, |s| s.start);
    if let (Some(q), Some(s)) = (req, resp) {
        call.elapsed_time = (s.end - q.start).max(0) / 1_000;
    }
    let a = &mut call.attrs;
    let head = req.or(resp);
    if let Some(h) = head {
        a.set(
            "mongodb_opcode",
            parser::opcode_name(h.header.opcode).unwrap_or(""),
        );
    }
    match req {
        Some(q) => {
            let m = &q.msg;
            a.set("mongodb_request_id", i64::from(q.header.request_id));
            a.set("mongodb_command", m.command.clone());
            a.set("mongodb_database", m.database.clone());
            a.set("mongodb_collection", m.collection.clone());
            a.set("mongodb_namespace", m.namespace.clone());
            a.set(
                "mongodb_compressed",
                q.header.opcode == parser::OP_COMPRESSED,
            );
            a.set("mongodb_request_size", size_i64(q.size));
            call.method.clone_from(&m.command);
            call.path.clone_from(&m.namespace);
        }
        None => {
            if let Some(s) = resp {
                a.set("mongodb_request_id", i64::from(s.header.response_to));
            }
            call.errors.push("no_request".to_owned());
        }
    }
    match resp {
        Some(s) => {
            let m = &s.msg;
            // A compressed reply is not decoded: its outcome is unknown
            // and mongodb_success stays absent (false).
            if let Some(ok) = m.ok {
                a.set("mongodb_success", ok && m.error_code.is_none_or(|c| c == 0));
            }
            if let Some(c) = m.error_code {
                a.set("mongodb_error_code", c);
            }
            if let Some(e) = &m.error_message {
                a.set("mongodb_error_message", e.clone());
            }
            if let Some(n) = &m.error_code_name {
                a.set("mongodb_error_code_name", n.clone());
            }
            a.set("mongodb_response_size", size_i64(s.size));
        }
        None if expects_reply => call.errors.push("no_response".to_owned()),
        None => {}
    }
    let total = req.map_or(0, |q| q.size) + resp.map_or(0, |s| s.size);
    call.attrs.set("mongodb_total_size", size_i64(total));
    call
}

impl Session for MongoSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        let cap = self.limits.max_head_bytes;
        let (framer, lost) = match dir {
            Direction::ToServer => (&mut self.client, &mut self.client_lost),
            Direction::ToClient => (&mut self.server, &mut self.server_lost),
        };
        if *lost {
            return;
        }
        let mut done = Vec::new();
        let r = framer.push(ts, data, cap, total_len, |m| {
            done.push((m.head.to_vec(), m.total, m.start, m.end));
        });
        if r.is_err() {
            *lost = true;
            out.anomaly(ts, "mongodb_bad_length");
        }
        for (head, total, start, end) in done {
            let f = Framed {
                head: &head,
                total,
                start,
                end,
            };
            self.on_message(dir, &f, out);
        }
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        let (framer, lost) = match dir {
            Direction::ToServer => (&mut self.client, &mut self.client_lost),
            Direction::ToClient => (&mut self.server, &mut self.server_lost),
        };
        if !*lost {
            out.anomaly(ts, "mongodb_gap");
        }
        framer.reset();
        *lost = true;
    }

    fn end(&mut self, _dir: Direction, _ts: Nanos, _out: &mut Emitter) {}

    fn close(&mut self, _ts: Nanos, out: &mut Emitter) {
        for p in std::mem::take(&mut self.pending) {
            out.call(Direction::ToServer, build_call(Some(&p), None, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::mongodb::bson::tests::{B, doc};
    use crate::protocols::mongodb::parser::tests::{message, op_msg_body};

    fn conversation() -> (Vec<u8>, Vec<u8>) {
        let cmd = doc(&[("insert", B::S("orders")), ("$db", B::S("shop"))]);
        let req = message(40, 0, parser::OP_MSG, &op_msg_body(0, &cmd));
        let reply = doc(&[("n", B::I(1)), ("ok", B::D(1.0))]);
        let resp = message(900, 40, parser::OP_MSG, &op_msg_body(0, &reply));
        (req, resp)
    }

    fn run(chunk: usize) -> Vec<Call> {
        let (req, resp) = conversation();
        let mut s = MongoSession::new(Limits::default());
        let mut out = Emitter::new();
        for c in req.chunks(chunk) {
            s.data(Direction::ToServer, 1_000, c, &mut out);
        }
        for c in resp.chunks(chunk) {
            s.data(Direction::ToClient, 501_000, c, &mut out);
        }
        s.close(0, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    #[test]
    fn pairs_whole_and_split_anywhere() {
        let whole = run(usize::MAX);
        assert_eq!(whole.len(), 1);
        let c = &whole[0];
        assert_eq!(c.method, "insert");
        assert_eq!(c.attrs.str("mongodb_collection"), "orders");
        assert_eq!(c.attrs.str("mongodb_database"), "shop");
        assert_eq!(
            c.attrs.get("mongodb_success"),
            Some(&trawl_model::AttrValue::Bool(true))
        );
        assert_eq!(c.elapsed_time, 500);
        for chunk in 1..60 {
            assert_eq!(run(chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn unanswered_request_at_close() {
        let (req, _) = conversation();
        let mut s = MongoSession::new(Limits::default());
        let mut out = Emitter::new();
        s.data(Direction::ToServer, 0, &req, &mut out);
        s.close(1, &mut out);
        let calls: Vec<Call> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls[0].errors, vec!["no_response"]);
    }
}
