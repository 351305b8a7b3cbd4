//! [`RedisSession`]: one Redis connection. Commands (RESP arrays or
//! inline lines) are read from the client, replies from the server, by the
//! streaming [`Reader`]s of [`super::parser`]; replies pair with commands
//! in order (Redis answers pipelined commands in order), and each pair is
//! one [`Call`].
//!
//! Pub/sub: a server push (RESP3 `>`, or in subscribed mode a RESP2 array
//! starting with `message`, `pmessage` or `smessage`) is a call of its own
//! with no request. SUBSCRIBE-family commands get one confirmation per
//! channel: the first pairs with the command, the others are pushes.
//!
//! Gaps: after a gap a direction drops what it was reading and waits for
//! the next data that starts like a message; a gap on the server side
//! also gives up on the commands waiting (their replies may be lost), so
//! later replies do not pair with the wrong command. AUTH and HELLO
//! arguments are not kept (they carry passwords).

use std::collections::VecDeque;

use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Protocol};

use super::parser::{self, Kind, Message, Reader};
use crate::seam::{Emitter, Limits, Session};

/// Commands whose first argument is not a key (a password, a channel, a
/// sub-command, a cursor, a pattern): `redis_key` stays empty for them.
const NO_KEY_COMMANDS: &[&str] = &[
    "ACL",
    "AUTH",
    "BGREWRITEAOF",
    "BGSAVE",
    "CLIENT",
    "CLUSTER",
    "COMMAND",
    "CONFIG",
    "DBSIZE",
    "DEBUG",
    "DISCARD",
    "ECHO",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "EXEC",
    "FCALL",
    "FLUSHALL",
    "FLUSHDB",
    "FUNCTION",
    "HELLO",
    "INFO",
    "KEYS",
    "LASTSAVE",
    "LATENCY",
    "MEMORY",
    "MODULE",
    "MONITOR",
    "MULTI",
    "OBJECT",
    "PING",
    "PSUBSCRIBE",
    "PSYNC",
    "PUBLISH",
    "PUBSUB",
    "PUNSUBSCRIBE",
    "QUIT",
    "READONLY",
    "READWRITE",
    "REPLCONF",
    "REPLICAOF",
    "RESET",
    "ROLE",
    "SAVE",
    "SCAN",
    "SCRIPT",
    "SELECT",
    "SHUTDOWN",
    "SLAVEOF",
    "SLOWLOG",
    "SPUBLISH",
    "SSUBSCRIBE",
    "SUBSCRIBE",
    "SUNSUBSCRIBE",
    "SWAPDB",
    "SYNC",
    "TIME",
    "UNSUBSCRIBE",
    "UNWATCH",
    "WAIT",
    "XREAD",
    "XREADGROUP",
];

/// Commands whose first argument is a pub/sub channel or pattern.
const CHANNEL_COMMANDS: &[&str] = &[
    "PUBLISH",
    "SPUBLISH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
];

/// Commands kept waiting for their replies on one connection. Pipelines
/// run far deeper than HTTP's (redis-benchmark `-P`, `redis-cli --pipe`
/// mass insertion keep thousands of commands in flight, bounded by the
/// socket buffers), so past `Limits::max_pending` commands are still
/// paired but only the first [`DEEP_PIPELINE_TEXT`] bytes of their text
/// are kept (under 1 KiB each with the call, about 16 MiB at this
/// depth); past this depth the oldest is emitted without
/// its reply (`too_many_pending`) and that reply dropped when it comes.
pub const MAX_PIPELINE: usize = 16 * 1024;

/// Bytes of a command's text kept when the pipeline is deeper than
/// `Limits::max_pending`: the verb, the key and the start of a value.
pub const DEEP_PIPELINE_TEXT: usize = 128;

/// Commands whose arguments are secrets.
const SECRET_COMMANDS: &[&str] = &["AUTH", "HELLO"];

/// A command waiting for its reply.
#[derive(Debug)]
struct Pending {
    call: Call,
    first_ts: Nanos,
    /// Lower-case confirmation kind a SUBSCRIBE-family command gets
    /// (`subscribe`), so that its first confirmation pairs with it.
    confirm: Option<String>,
}

/// The Redis state of one TCP connection.
#[derive(Debug)]
pub struct RedisSession {
    limits: Limits,
    client: Reader,
    server: Reader,
    /// After a gap or an error: skip data until something starts like a message.
    client_lost: bool,
    server_lost: bool,
    pending: VecDeque<Pending>,
    /// The client subscribed to channels: RESP2 message arrays are pushes.
    subscribed: bool,
    /// Replies still to come for commands already emitted without one
    /// (`too_many_pending`): dropped on arrival to keep the pairing.
    skip_replies: u64,
    msgs: Vec<Message>,
}

impl RedisSession {
    pub fn new(limits: Limits) -> RedisSession {
        RedisSession {
            limits,
            client: Reader::new(true, limits.max_body_bytes),
            server: Reader::new(false, limits.max_body_bytes),
            client_lost: false,
            server_lost: false,
            pending: VecDeque::new(),
            subscribed: false,
            skip_replies: 0,
            msgs: Vec::new(),
        }
    }

    fn on_command(&mut self, m: Message, out: &mut Emitter) {
        let mut call = Call::new(Protocol::Redis);
        call.timestamp = m.first_ts;
        call.has_request = true;
        let word = |i: usize| -> String {
            m.values
                .get(i)
                .and_then(|v| v.as_deref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let command = word(0).to_ascii_uppercase();
        let kind = m.kind.unwrap_or(Kind::Array);
        call.attrs.set(
            "redis_type",
            if kind == Kind::Inline {
                "inline"
            } else {
                kind.as_str()
            },
        );
        call.attrs.set("redis_args", m.len.max(0));
        let secret = SECRET_COMMANDS.contains(&command.as_str());
        if !NO_KEY_COMMANDS.contains(&command.as_str()) && m.values.len() > 1 {
            let key = word(1);
            call.path.clone_from(&key);
            call.attrs.set("redis_key", key);
        }
        if CHANNEL_COMMANDS.contains(&command.as_str()) && m.values.len() > 1 {
            call.attrs.set("redis_channel", word(1));
        }
        call.attrs.set("redis_command", command.clone());
        call.attrs.set("redis_request_size", m.size as i64);
        call.request_body_size = m.size;
        call.request.body = Some(if secret {
            Body {
                data: format!("{command} (arguments hidden)").into_bytes(),
                truncated: false,
                decoded_from: None,
            }
        } else {
            render(&m, self.limits.max_body_bytes)
        });
        let confirm = match command.as_str() {
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE"
            | "SUNSUBSCRIBE" => Some(command.to_ascii_lowercase()),
            _ => None,
        };
        if command == "RESET" {
            self.subscribed = false;
        }
        call.method = command;
        if self.pending.len() >= self.limits.max_pending
            && let Some(b) = call.request.body.as_mut()
            && b.data.len() > DEEP_PIPELINE_TEXT
        {
            // Deep pipeline: keep the start of the command's text only.
            b.data.truncate(DEEP_PIPELINE_TEXT);
            b.data.shrink_to_fit();
            b.truncated = true;
        }
        if self.pending.len() >= MAX_PIPELINE.max(self.limits.max_pending)
            && let Some(old) = self.pending.pop_front()
        {
            emit_unanswered(old, "too_many_pending", out);
            // Its reply is still to come: drop it then, so that later
            // replies pair with their own commands.
            self.skip_replies = self.skip_replies.saturating_add(1);
        }
        self.pending.push_back(Pending {
            call,
            first_ts: m.first_ts,
            confirm,
        });
    }

    fn on_reply(&mut self, m: Message, out: &mut Emitter) {
        let first = m
            .values
            .first()
            .and_then(|v| v.as_deref())
            .map(|b| String::from_utf8_lossy(b).to_ascii_lowercase())
            .unwrap_or_default();
        let aggregate = matches!(m.kind, Some(Kind::Array | Kind::Push));
        let confirmation = aggregate
            && matches!(
                first.as_str(),
                "subscribe"
                    | "psubscribe"
                    | "ssubscribe"
                    | "unsubscribe"
                    | "punsubscribe"
                    | "sunsubscribe"
            );
        if confirmation {
            // The count of channels still subscribed follows the channel.
            let count = m
                .values
                .get(2)
                .and_then(|v| v.as_deref())
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            self.subscribed = count > 0;
        }
        let pairs_with_head = self
            .pending
            .front()
            .is_some_and(|p| p.confirm.as_deref() == Some(first.as_str()));
        let push = m.kind == Some(Kind::Push)
            || (confirmation && !pairs_with_head)
            || (aggregate
                && self.subscribed
                && matches!(first.as_str(), "message" | "pmessage" | "smessage"));
        if !push && self.skip_replies > 0 {
            self.skip_replies -= 1;
            return;
        }
        if push && !(confirmation && pairs_with_head) {
            let mut call = Call::new(Protocol::Redis);
            call.timestamp = m.first_ts;
            call.method.clone_from(&first);
            call.attrs.set("redis_type", "push");
            let channel_at = if first == "pmessage" { 2 } else { 1 };
            if let Some(Some(c)) = m.values.get(channel_at) {
                call.attrs
                    .set("redis_channel", String::from_utf8_lossy(c).into_owned());
            }
            fill_reply(&mut call, &m, self.limits.max_body_bytes);
            out.call(Direction::ToServer, call);
            return;
        }
        let Some(p) = self.pending.pop_front() else {
            let mut call = Call::new(Protocol::Redis);
            call.timestamp = m.first_ts;
            call.errors.push("no_request".to_owned());
            fill_reply(&mut call, &m, self.limits.max_body_bytes);
            out.call(Direction::ToServer, call);
            return;
        };
        let mut call = p.call;
        fill_reply(&mut call, &m, self.limits.max_body_bytes);
        call.elapsed_time = (m.last_ts.saturating_sub(p.first_ts)) / 1000;
        out.call(Direction::ToServer, call);
    }

    fn drain(&mut self, dir: Direction, out: &mut Emitter) {
        let mut msgs = std::mem::take(&mut self.msgs);
        for m in msgs.drain(..) {
            match dir {
                Direction::ToServer => self.on_command(m, out),
                Direction::ToClient => self.on_reply(m, out),
            }
        }
        self.msgs = msgs;
    }
}

/// Fill the response side of `call` from a reply.
fn fill_reply(call: &mut Call, m: &Message, cap: usize) {
    call.has_response = true;
    let kind = m.kind.unwrap_or(Kind::Null);
    call.attrs.set("redis_response_type", kind.as_str());
    if matches!(kind, Kind::Array | Kind::Set | Kind::Push | Kind::Map) {
        call.attrs.set("redis_response_elements", m.len);
    }
    if matches!(kind, Kind::Error | Kind::BulkError) {
        call.status_code = 1;
        let text = m
            .values
            .first()
            .and_then(|v| v.as_deref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        call.attrs.set("redis_error", text);
    }
    call.attrs.set("redis_response_size", m.size as i64);
    call.response_body_size = m.size;
    call.response.body = Some(render(m, cap));
}

/// A message as text: its values separated by spaces, each quoted the way
/// redis-cli quotes (`"a b"`, `\xff`) when it has spaces, quotes or bytes
/// that are not printable ASCII; a null is `(nil)`. An inline command is
/// its line as sent.
pub fn render(m: &Message, cap: usize) -> Body {
    let mut data = Vec::new();
    if m.kind == Some(Kind::Inline) {
        data.extend_from_slice(&m.inline_line);
    } else {
        for (i, v) in m.values.iter().enumerate() {
            if i > 0 {
                data.push(b' ');
            }
            match v {
                None => data.extend_from_slice(b"(nil)"),
                Some(b) => quote_into(b, &mut data),
            }
            if data.len() > cap {
                break;
            }
        }
    }
    let truncated = m.truncated || data.len() > cap;
    data.truncate(cap);
    Body {
        data,
        truncated,
        decoded_from: None,
    }
}

fn quote_into(b: &[u8], out: &mut Vec<u8>) {
    let plain = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_graphic() && *c != b'"' && *c != b'\\' && *c != b'\'');
    if plain {
        out.extend_from_slice(b);
        return;
    }
    out.push(b'"');
    for &c in b {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

fn emit_unanswered(p: Pending, why: &str, out: &mut Emitter) {
    let mut call = p.call;
    call.errors.push(why.to_owned());
    out.call(Direction::ToServer, call);
}

impl Session for RedisSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        let (reader, lost) = match dir {
            Direction::ToServer => (&mut self.client, &mut self.client_lost),
            Direction::ToClient => (&mut self.server, &mut self.server_lost),
        };
        if *lost {
            let starts = match dir {
                Direction::ToServer => parser::looks_like_command(data) == Some(true),
                Direction::ToClient => parser::looks_like_reply(data) == Some(true),
            };
            if !starts {
                return;
            }
            *lost = false;
            out.anomaly(ts, "resync");
        }
        let mut msgs = std::mem::take(&mut self.msgs);
        let r = reader.feed(ts, data, &mut msgs);
        if let Err(e) = r {
            out.anomaly(ts, e.code());
            *lost = true;
        }
        self.msgs = msgs;
        self.drain(dir, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        match dir {
            Direction::ToServer => {
                self.client.reset();
                self.client_lost = true;
            }
            Direction::ToClient => {
                self.server.reset();
                self.server_lost = true;
                self.skip_replies = 0;
                while let Some(p) = self.pending.pop_front() {
                    emit_unanswered(p, "gap_in_response", out);
                }
            }
        }
        out.anomaly(ts, "gap");
    }

    fn end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        let reader = match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        };
        if !reader.idle() {
            out.anomaly(ts, "truncated_message");
            reader.reset();
        }
    }

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        self.end(Direction::ToServer, ts, out);
        self.end(Direction::ToClient, ts, out);
        while let Some(p) = self.pending.pop_front() {
            emit_unanswered(p, "no_response", out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[(Direction, &[u8])]) -> Vec<Call> {
        let mut s = RedisSession::new(Limits::default());
        let mut out = Emitter::new();
        for (i, (d, b)) in events.iter().enumerate() {
            s.data(*d, (i as i64 + 1) * 1_000_000, b, &mut out);
        }
        s.close(1_000_000_000, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    const C: Direction = Direction::ToServer;
    const S: Direction = Direction::ToClient;

    fn body(b: &Option<Body>) -> String {
        String::from_utf8_lossy(&b.as_ref().unwrap().data).into_owned()
    }

    #[test]
    fn pipelined_commands_pair_in_order() {
        let calls = run(&[
            (C, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nget\r\n$1\r\nk\r\n*1\r\n$4\r\nLPOP\r\n"),
            (S, b"+OK\r\n$5\r\nhello\r\n"),
            (S, b"-ERR wrong number of arguments for 'lpop' command\r\n"),
        ]);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].method, "SET");
        assert_eq!(calls[0].path, "k");
        assert_eq!(calls[0].attrs.str("redis_response_type"), "string");
        assert_eq!(body(&calls[0].request.body), "SET k hello");
        assert_eq!(calls[0].elapsed_time, 1000);
        assert_eq!(calls[1].method, "GET");
        assert_eq!(body(&calls[1].response.body), "hello");
        assert_eq!(calls[2].status_code, 1);
        assert_eq!(calls[2].path, "");
        assert!(calls[2].attrs.str("redis_error").starts_with("ERR wrong"));
        assert_eq!(calls[2].elapsed_time, 2000);
    }

    #[test]
    fn pubsub_confirmations_and_pushes() {
        let calls = run(&[
            (C, b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"),
            (S, b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"),
            (S, b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"),
            (C, b"*1\r\n$4\r\nPING\r\n"),
            (S, b">4\r\n$8\r\npmessage\r\n$2\r\nb*\r\n$2\r\nbx\r\n$1\r\n!\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
        ]);
        let methods: Vec<_> = calls.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(
            methods,
            ["SUBSCRIBE", "subscribe", "message", "pmessage", "PING"]
        );
        assert_eq!(calls[0].attrs.str("redis_channel"), "a");
        assert!(!calls[1].has_request && calls[1].has_response);
        assert_eq!(calls[2].attrs.str("redis_channel"), "a");
        assert_eq!(calls[3].attrs.str("redis_channel"), "bx");
        assert_eq!(calls[3].attrs.str("redis_type"), "push");
        assert_eq!(body(&calls[4].response.body), "pong \"\"");
    }

    #[test]
    fn inline_auth_hidden_and_unanswered() {
        let calls = run(&[(C, b"AUTH hunter2\r\nGET k\r\n"), (S, b"+OK\r\n")]);
        assert_eq!(calls.len(), 2);
        assert_eq!(body(&calls[0].request.body), "AUTH (arguments hidden)");
        assert_eq!(calls[0].path, "");
        assert_eq!(calls[0].attrs.str("redis_type"), "inline");
        assert_eq!(calls[1].path, "k");
        assert_eq!(calls[1].errors, ["no_response"]);
    }

    #[test]
    fn gaps_resync_on_the_next_message() {
        let mut s = RedisSession::new(Limits::default());
        let mut out = Emitter::new();
        s.data(C, 1, b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", &mut out);
        s.data(S, 2, b"$100\r\nxx", &mut out);
        s.gap(S, 3, 50, &mut out);
        s.data(S, 4, b"xxxx\r\n", &mut out);
        s.data(C, 5, b"*1\r\n$4\r\nPING\r\n", &mut out);
        s.data(S, 6, b"+PONG\r\n", &mut out);
        s.close(7, &mut out);
        let calls: Vec<_> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].errors, ["gap_in_response"]);
        assert_eq!(calls[1].method, "PING");
        assert_eq!(body(&calls[1].response.body), "PONG");
    }

    #[test]
    fn pipeline_deeper_than_the_limit_keeps_pairing() {
        let limits = Limits {
            max_pending: 2,
            ..Limits::default()
        };
        let n = MAX_PIPELINE + 3;
        let mut s = RedisSession::new(limits);
        let mut out = Emitter::new();
        let mut cmds = Vec::new();
        let mut replies = Vec::new();
        for i in 0..n {
            let k = format!("k{i}");
            cmds.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n", k.len()).as_bytes(),
            );
            let v = format!("v{i}");
            replies.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
        }
        s.data(C, 1, &cmds, &mut out);
        s.data(S, 2, &replies, &mut out);
        s.close(3, &mut out);
        let calls: Vec<_> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), n);
        // The three oldest gave way; every other command has its own reply.
        for c in &calls[..3] {
            assert_eq!(c.errors, ["too_many_pending"]);
        }
        for (i, c) in calls[3..].iter().enumerate() {
            assert_eq!(c.path, format!("k{}", i + 3));
            assert_eq!(body(&c.response.body), format!("v{}", i + 3));
            assert!(c.errors.is_empty());
        }
        // Past max_pending, only the start of a command's text is kept.
        assert_eq!(body(&calls[5].request.body), "GET k5");
        let mut big = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'z', 1000));
        big.extend_from_slice(b"\r\n");
        let mut s = RedisSession::new(limits);
        let mut out = Emitter::new();
        for _ in 0..3 {
            s.data(C, 1, &big, &mut out);
        }
        s.close(2, &mut out);
        let calls: Vec<_> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls[0].request.body.as_ref().unwrap().data.len(), 1006);
        let deep = calls[2].request.body.as_ref().unwrap();
        assert_eq!(
            (deep.data.len(), deep.truncated),
            (DEEP_PIPELINE_TEXT, true)
        );
    }

    #[test]
    fn reply_without_command() {
        let calls = run(&[
            (S, b"+OK\r\n"),
            (C, b"*1\r\n$4\r\nPING\r\n"),
            (S, b"+PONG\r\n"),
        ]);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].errors, ["no_request"]);
        assert_eq!(calls[1].method, "PING");
    }
}
