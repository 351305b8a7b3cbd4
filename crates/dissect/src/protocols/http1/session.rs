//! [`Http1Session`]: one TCP connection's HTTP/1.x state. It reads each
//! direction's bytes as they come (heads, bodies by length, chunks or
//! connection close), pairs responses with requests in order (keep-alive
//! and pipelining), survives gaps by resynchronising on the next message
//! head, stops at protocol switches (101, CONNECT) and emits one [`Call`]
//! per request (or per unpaired response) through the [`Emitter`].
//!
//! The pipeline calls it through the [`Session`] trait; parsing proper is
//! in [`super::parser`] and content decoding in [`super::decode`].
//!
//! Fast path: when a data chunk holds whole heads, they are parsed in
//! place; only an incomplete head or line at the end of a chunk is copied
//! (into a per-direction buffer). Body bytes are copied only up to the
//! display cap, and counted past it.
//!
//! Choices worth knowing:
//! - Interim responses (100, 102, 103) do not complete the call: their
//!   codes go to `interim_status_codes` and the final response pairs.
//! - Chunked trailers are appended to the message's headers.
//! - A gap inside a body of known length (or inside one chunk's data, or a
//!   close-delimited body, whose end the gap cannot hide) only shortens the
//!   kept bytes (`gap_in_body`); a gap anywhere else makes the direction
//!   resynchronise on the next start line (anomaly `resync`). A gap where a
//!   head was (or would start) counts as one lost message: a lost request
//!   makes its response a response-only call (`no_request`); a lost
//!   response makes its request a request-only call (`no_response`).
//! - `Content-Length` of a body counts bytes lost in gaps; chunked bodies
//!   count the bytes seen.
//! - Resynchronising looks for `HTTP/1.` anywhere in server bytes, and for
//!   a known method at a line start, at a segment start, or right before
//!   `SP target SP HTTP/1.` in client bytes (a request right after a body).
//! - A request head httparse refuses but whose line starts with a known
//!   method (`GET / HTTP/1.`, `OPTIONS`) is read leniently, as tshark
//!   does, and marked `bad_request_line`, so its response still pairs.
//! - 101, or 2xx to CONNECT, ends HTTP on the connection (the response
//!   headers say what it switched to). Client bytes after a request that
//!   asked to switch are held (up to the head cap) until the answer says
//!   whether they are HTTP. A 101 to `h2c` or `websocket` hands the rest
//!   of the connection (held bytes, later bytes, gaps and ends) to an
//!   inner session, [`crate::protocols::http2::after_upgrade`] or
//!   [`crate::protocols::websocket::after_upgrade`]; other switches and
//!   tunnels are skipped.
//! - Each request's body is kept until its response completes, so a
//!   connection holds at most `max_pending` kept bodies.
//!
//! Calls are emitted with `Direction::ToServer` (the request's direction),
//! including response-only ones.

use std::collections::VecDeque;

use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Headers, Message, Protocol};

use super::decode::decode_body;
use super::parser::{self, Coding, HeadParse, Prefix, RequestHead, ResponseHead};
use crate::protocols::{http2, websocket};
use crate::seam::{Emitter, Limits, Session};

/// A buffered partial head is re-parsed on every arrival while it is this
/// short (so garbage is rejected early, whatever the segmentation), and
/// past it only when a line has ended. Keeps a head fed byte by byte from
/// costing quadratic time beyond a few KiB.
const EARLY_PARSE_BYTES: usize = 4 * 1024;

/// Bytes held to decide whether a start line begins where a chunk ended
/// in resync: more than the longest known method and a space
/// (`BASELINE-CONTROL `, 17) or `HTTP/1.` need.
const RESYNC_PROBE_BYTES: usize = 32;

/// Steps in a row that may consume nothing before the rest of a data chunk
/// is dropped. Every state change that consumes nothing leads to one that
/// does within two steps; this guard only keeps a bug from turning into an
/// endless loop on someone's traffic.
const MAX_IDLE_STEPS: u32 = 16;

/// What the request method means for its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MethodKind {
    Other,
    /// Responses to HEAD have no body.
    Head,
    /// A 2xx answer to CONNECT turns the connection into a tunnel.
    Connect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseState {
    Waiting,
    Done,
    /// Lost in a gap, or never to come (connection closed).
    Lost,
}

/// A request waiting for (or paired with) its response.
#[derive(Debug)]
struct Exchange {
    /// Order of the request on the connection; responses pair by it.
    seq: u64,
    call: Call,
    method: MethodKind,
    /// The request asked to switch protocols (Upgrade, CONNECT).
    wants_switch: bool,
    /// Stands for a request lost in a gap: only its response can show up.
    lost_request: bool,
    request_done: bool,
    response: ResponseState,
}

/// How a body ends.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// Reading the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines up to the empty line.
    Trailers,
}

/// Body bytes seen so far: kept up to the cap, counted past it.
#[derive(Debug, Default)]
struct BodyAcc {
    kept: Vec<u8>,
    size: u64,
    truncated: bool,
    gap: bool,
}

impl BodyAcc {
    fn push(&mut self, bytes: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.kept.len());
        let keep = bytes.get(..room).unwrap_or(bytes);
        self.kept.extend_from_slice(keep);
        if keep.len() < bytes.len() {
            self.truncated = true;
        }
        self.size = self.size.saturating_add(len_u64(bytes.len()));
    }

    fn lost(&mut self, len: u64, counted: bool) {
        if counted {
            self.size = self.size.saturating_add(len);
        }
        self.truncated = true;
        self.gap = true;
    }
}

#[derive(Debug)]
struct BodyReader {
    framing: Framing,
    acc: BodyAcc,
    coding: Option<Coding>,
    trailers: Headers,
    trailer_bytes: usize,
}

impl BodyReader {
    fn new(framing: Framing, coding: Option<Coding>) -> BodyReader {
        BodyReader {
            framing,
            acc: BodyAcc::default(),
            coding,
            trailers: Headers::default(),
            trailer_bytes: 0,
        }
    }
}

/// Where one direction's parser stands.
#[derive(Debug)]
enum State {
    /// Expecting a message head (possibly partly in `buf`).
    Head,
    Body(BodyReader),
    /// Client only: the last request asked to switch protocols; its bytes
    /// are held in `buf` until the response says whether it did.
    AwaitSwitch {
        gapped: bool,
    },
    /// Not HTTP any more (after 101 or CONNECT 2xx): bytes are skipped.
    Tunnel,
    /// Lost step: skipping to the next plausible start line.
    Resync,
    /// The direction ended.
    Closed,
}

/// One direction of the connection.
#[derive(Debug)]
struct Side {
    state: State,
    /// An incomplete head or line from the end of earlier data (or bytes
    /// held while awaiting a switch).
    buf: Vec<u8>,
    /// Timestamp of the first byte in `buf`.
    buf_ts: Nanos,
    /// In resync: a message may start at the next byte (a line start, a
    /// gap's end; for responses, anywhere but where a bad head just was).
    may_start: bool,
    /// Bytes skipped (tunnel, resync); kept for debugging.
    skipped: u64,
}

impl Side {
    fn new() -> Side {
        Side {
            state: State::Head,
            buf: Vec::new(),
            buf_ts: 0,
            may_start: false,
            skipped: 0,
        }
    }
}

/// A response whose head is parsed and whose body may still be coming.
#[derive(Debug)]
struct ResponseParts {
    /// The request it answers, by sequence number (None: no request seen).
    target: Option<u64>,
    first_ts: Nanos,
    status: u16,
    version: u8,
    message: Message,
    header_size: u64,
    errors: Vec<&'static str>,
    /// After this response the connection is no longer HTTP.
    switch: bool,
}

/// What happened to a head parse attempt.
enum HeadStep {
    /// A head (or an over-long head prefix) took this many bytes.
    Consumed(usize),
    Partial,
    Invalid(&'static str),
}

/// One line gathered from `buf` and the input.
enum LineRead<'a> {
    /// The line (ending included) and the input bytes it took.
    Ready(&'a [u8], usize),
    /// No line end yet: all input was buffered.
    More,
    /// Longer than allowed: this many input bytes were dropped with it.
    TooLong(usize),
}

/// The session that took the connection over after a 101.
struct Inner(Box<dyn Session>);

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inner(..)")
    }
}

/// The session a 101 hands the connection to, by the `Upgrade` token the
/// server answered with; `request` is the request that asked, if seen.
fn upgraded_session(
    limits: Limits,
    response: &Headers,
    request: Option<&Call>,
) -> Option<Box<dyn Session>> {
    let token = response.get("upgrade")?.trim();
    if token.eq_ignore_ascii_case("h2c") {
        let blank = Call::default();
        return Some(http2::after_upgrade(limits, request.unwrap_or(&blank)));
    }
    if token.eq_ignore_ascii_case("websocket") {
        let deflate = response
            .get("sec-websocket-extensions")
            .is_some_and(|v| v.contains("permessage-deflate"));
        let path = request.map_or("", |c| c.url.as_str());
        return Some(websocket::after_upgrade(limits, path, deflate));
    }
    None
}

/// The HTTP/1.x state of one TCP connection.
#[derive(Debug)]
pub struct Http1Session {
    limits: Limits,
    client: Side,
    server: Side,
    pending: VecDeque<Exchange>,
    next_req_seq: u64,
    /// Sequence number of the request the next final response answers.
    next_resp_seq: u64,
    /// The request whose body is being read.
    cur_req: Option<u64>,
    cur_resp: Option<ResponseParts>,
    /// After a 101 to a protocol we dissect: the session that reads on.
    inner: Option<Inner>,
}

impl Http1Session {
    pub fn new(limits: Limits) -> Http1Session {
        Http1Session {
            limits,
            client: Side::new(),
            server: Side::new(),
            pending: VecDeque::new(),
            next_req_seq: 0,
            next_resp_seq: 0,
            cur_req: None,
            cur_resp: None,
            inner: None,
        }
    }

    fn side_mut(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        }
    }

    fn max_head(&self) -> usize {
        self.limits.max_head_bytes
    }

    /// Run a direction's parser over `data`.
    fn feed(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        let mut input = data;
        let mut idle = 0u32;
        while !input.is_empty() {
            let used = self.step(dir, ts, input, out);
            if used == 0 {
                idle += 1;
                if idle > MAX_IDLE_STEPS {
                    out.anomaly(ts, "parser_stuck");
                    self.start_resync(dir, false);
                    return;
                }
            } else {
                idle = 0;
            }
            input = input.get(used..).unwrap_or_default();
        }
    }

    /// One move of a direction's state machine; returns input bytes used.
    fn step(&mut self, dir: Direction, ts: Nanos, input: &[u8], out: &mut Emitter) -> usize {
        let max_head = self.max_head();
        let has_inner = self.inner.is_some();
        let side = self.side_mut(dir);
        match side.state {
            State::Head => self.step_head(dir, ts, input, out),
            State::Body(_) => self.step_body(dir, ts, input, out),
            State::AwaitSwitch { .. } => {
                if side.buf.is_empty() {
                    side.buf_ts = ts;
                }
                if input.len() <= max_head.saturating_sub(side.buf.len()) {
                    side.buf.extend_from_slice(input);
                } else {
                    // The server never answered and the client keeps
                    // talking: whatever this is, it is not waiting for us.
                    side.buf.clear();
                    side.state = State::Tunnel;
                    side.skipped = side.skipped.saturating_add(len_u64(input.len()));
                }
                input.len()
            }
            State::Tunnel if has_inner => {
                if let Some(inner) = self.inner.as_mut() {
                    inner.0.data(dir, ts, input, out);
                }
                input.len()
            }
            State::Tunnel | State::Closed => {
                side.skipped = side.skipped.saturating_add(len_u64(input.len()));
                input.len()
            }
            State::Resync => step_resync(side, dir, ts, input),
        }
    }

    fn step_head(&mut self, dir: Direction, ts: Nanos, input: &[u8], out: &mut Emitter) -> usize {
        let max = self.max_head();
        if self.side_mut(dir).buf.is_empty() {
            // Fast path: the head is parsed where it lies.
            return match self.try_head(dir, ts, input, out) {
                HeadStep::Consumed(n) => n,
                HeadStep::Partial => {
                    let side = self.side_mut(dir);
                    side.buf.extend_from_slice(input);
                    side.buf_ts = ts;
                    input.len()
                }
                HeadStep::Invalid(kind) => {
                    out.anomaly(ts, kind);
                    out.anomaly(ts, "resync");
                    self.start_resync(dir, false);
                    0
                }
            };
        }
        let side = self.side_mut(dir);
        let old = side.buf.len();
        let room = max.saturating_add(1).saturating_sub(old);
        let add = input.get(..room).unwrap_or(input);
        side.buf.extend_from_slice(add);
        let reparse = side.buf.len() <= EARLY_PARSE_BYTES
            || memchr::memchr(b'\n', add).is_some()
            || side.buf.len() > max;
        if !reparse {
            return add.len();
        }
        let buf = std::mem::take(&mut side.buf);
        let buf_ts = side.buf_ts;
        match self.try_head(dir, buf_ts, &buf, out) {
            HeadStep::Consumed(n) => {
                self.reuse_buf(dir, buf);
                // A buffered head never held a whole head (it was parsed
                // as partial), so this one ends inside `add`.
                n.checked_sub(old).unwrap_or(add.len())
            }
            HeadStep::Partial => {
                self.side_mut(dir).buf = buf;
                add.len()
            }
            HeadStep::Invalid(kind) => {
                out.anomaly(buf_ts, kind);
                out.anomaly(buf_ts, "resync");
                // Resynchronise from the start of the bad head, as if it
                // had arrived in one piece.
                self.start_resync(dir, false);
                self.feed(dir, buf_ts, &buf, out);
                add.len()
            }
        }
    }

    /// Give an emptied buffer's capacity back to the side, if unused.
    fn reuse_buf(&mut self, dir: Direction, mut buf: Vec<u8>) {
        let side = self.side_mut(dir);
        if side.buf.is_empty() {
            buf.clear();
            side.buf = buf;
        }
    }

    fn try_head(&mut self, dir: Direction, ts: Nanos, bytes: &[u8], out: &mut Emitter) -> HeadStep {
        let max = self.max_head();
        let too_long_at = max.saturating_add(1);
        let mut slots = parser::header_slots();
        match dir {
            Direction::ToServer => match parser::parse_request_head(bytes, &mut slots) {
                HeadParse::Complete(h) if h.len <= max => {
                    let len = h.len;
                    self.on_request_head(ts, &h, out);
                    HeadStep::Consumed(len)
                }
                HeadParse::Complete(_) => self.head_too_long(dir, ts, bytes, out),
                HeadParse::Partial if bytes.len() >= too_long_at => {
                    self.head_too_long(dir, ts, bytes, out)
                }
                HeadParse::Partial => HeadStep::Partial,
                HeadParse::Invalid(kind) => self.try_lenient_request(ts, bytes, kind, out),
            },
            Direction::ToClient => match parser::parse_response_head(bytes, &mut slots) {
                HeadParse::Complete(h) if h.len <= max => {
                    let len = h.len;
                    self.on_response_head(ts, &h, out);
                    HeadStep::Consumed(len)
                }
                HeadParse::Complete(_) => self.head_too_long(dir, ts, bytes, out),
                HeadParse::Partial if bytes.len() >= too_long_at => {
                    self.head_too_long(dir, ts, bytes, out)
                }
                HeadParse::Partial => HeadStep::Partial,
                HeadParse::Invalid(kind) => HeadStep::Invalid(kind),
            },
        }
    }

    /// A request head httparse refused: read it leniently when its line
    /// starts with a known method (once its blank line is there).
    fn try_lenient_request(
        &mut self,
        ts: Nanos,
        bytes: &[u8],
        kind: &'static str,
        out: &mut Emitter,
    ) -> HeadStep {
        if parser::lenient_request_start(bytes) != Prefix::Yes {
            return HeadStep::Invalid(kind);
        }
        let max = self.max_head();
        let too_long_at = max.saturating_add(1);
        let Some(end) = parser::find_head_end(bytes, too_long_at) else {
            return if bytes.len() >= too_long_at {
                self.head_too_long(Direction::ToServer, ts, bytes, out)
            } else {
                HeadStep::Partial
            };
        };
        if end > max {
            return self.head_too_long(Direction::ToServer, ts, bytes, out);
        }
        let head = bytes.get(..end).unwrap_or(bytes);
        let mut fields = Vec::new();
        let Some((method, target, version)) = parser::parse_lenient_request(head, &mut fields)
        else {
            return HeadStep::Invalid(kind);
        };
        let head = RequestHead {
            method,
            target,
            version,
            headers: &fields,
            len: end,
            malformed: true,
        };
        self.on_request_head(ts, &head, out);
        HeadStep::Consumed(end)
    }

    /// A head longer than `max_head_bytes`: keep what its start line says,
    /// skip the first `max_head_bytes + 1` bytes and resynchronise.
    fn head_too_long(
        &mut self,
        dir: Direction,
        ts: Nanos,
        bytes: &[u8],
        out: &mut Emitter,
    ) -> HeadStep {
        let take = self.max_head().saturating_add(1).min(bytes.len());
        let prefix = bytes.get(..take).unwrap_or(bytes);
        out.anomaly(ts, "header_too_long");
        match dir {
            Direction::ToServer => match parser::parse_request_line(prefix) {
                Some((method, target, version)) => {
                    let seq = self.push_exchange(out);
                    let mut call = Call::new(Protocol::Http);
                    fill_request(&mut call, ts, method, target, parser::version_str(version));
                    call.errors.push("header_too_long".to_owned());
                    self.pending.push_back(Exchange {
                        seq,
                        call,
                        method: method_kind(method),
                        wants_switch: false,
                        lost_request: false,
                        request_done: true,
                        response: ResponseState::Waiting,
                    });
                }
                None => self.message_lost(dir, out),
            },
            Direction::ToClient => match parser::parse_status_line(prefix) {
                Some((_, code)) if is_interim(code) => self.note_interim(code),
                Some((version, code)) => {
                    let target = self.take_response_target();
                    let switch = code == 101
                        || (self
                            .exchange(target)
                            .is_some_and(|e| e.method == MethodKind::Connect)
                            && (200..300).contains(&code));
                    self.cur_resp = Some(ResponseParts {
                        target,
                        first_ts: ts,
                        status: code,
                        version,
                        message: Message::default(),
                        header_size: len_u64(take),
                        errors: vec!["header_too_long"],
                        switch,
                    });
                    self.finish_response(None, ts, out);
                }
                None => self.message_lost(dir, out),
            },
        }
        out.anomaly(ts, "resync");
        // A switch decided above stands; otherwise skip the rest of the head.
        if !matches!(self.side_mut(dir).state, State::Tunnel) {
            self.start_resync(dir, false);
        }
        HeadStep::Consumed(take)
    }

    /// Make room in the pending queue and hand out the next request number.
    fn push_exchange(&mut self, out: &mut Emitter) -> u64 {
        let max_pending = self.limits.max_pending.max(1);
        while self.pending.len() >= max_pending {
            let Some(mut oldest) = self.pending.pop_front() else {
                break;
            };
            if oldest.lost_request {
                continue;
            }
            oldest.call.errors.push("too_many_pending".to_owned());
            if oldest.response == ResponseState::Lost {
                oldest.call.errors.push("no_response".to_owned());
            }
            out.call(Direction::ToServer, oldest.call);
        }
        let seq = self.next_req_seq;
        self.next_req_seq = seq.wrapping_add(1);
        seq
    }

    fn on_request_head(&mut self, ts: Nanos, head: &RequestHead<'_, '_>, out: &mut Emitter) {
        let facts = parser::head_facts(head.headers);
        let seq = self.push_exchange(out);
        let method = method_kind(head.method);
        // The call is built where it will wait: it is big, and copies show.
        self.pending.push_back(Exchange {
            seq,
            call: Call::new(Protocol::Http),
            method,
            wants_switch: facts.upgrade || method == MethodKind::Connect,
            lost_request: false,
            request_done: false,
            response: ResponseState::Waiting,
        });
        let Some(ex) = self.pending.back_mut() else {
            return;
        };
        let call = &mut ex.call;
        fill_request(call, ts, head.method, head.target, head.version);
        call.request_header_size = len_u64(head.len);
        if head.malformed {
            call.errors.push("bad_request_line".to_owned());
        }
        call.request.headers.0.reserve_exact(head.headers.len());
        for h in head.headers {
            let value = field_value(h.value);
            call.request.headers.push(h.name, &value);
            if h.name.eq_ignore_ascii_case("cookie") {
                // Cookie names are case-sensitive (RFC 6265): kept as sent.
                for (name, value) in parser::cookie_pairs(&value) {
                    call.request
                        .cookies
                        .0
                        .push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let framing = if facts.transfer_encoding {
            if facts.chunked {
                Some(Framing::Chunked(Chunk::Size))
            } else {
                // RFC 9112 §6.3: a server answers 400; the length is unknown.
                call.errors.push("bad_transfer_encoding".to_owned());
                None
            }
        } else if facts.bad_content_length {
            call.errors.push("bad_content_length".to_owned());
            None
        } else {
            match facts.content_length {
                Some(n) if n > 0 => Some(Framing::Length(n)),
                _ => None,
            }
        };
        self.cur_req = Some(seq);
        match framing {
            Some(f) => self.client.state = State::Body(BodyReader::new(f, facts.content_coding)),
            None => self.finish_request(None, None, out),
        }
    }

    /// The request the next final response answers, if one was seen.
    fn take_response_target(&mut self) -> Option<u64> {
        (self.next_resp_seq < self.next_req_seq).then(|| {
            let seq = self.next_resp_seq;
            self.next_resp_seq = seq.wrapping_add(1);
            seq
        })
    }

    fn exchange(&self, seq: Option<u64>) -> Option<&Exchange> {
        let seq = seq?;
        self.pending.iter().find(|e| e.seq == seq)
    }

    fn exchange_mut(&mut self, seq: Option<u64>) -> Option<&mut Exchange> {
        let seq = seq?;
        self.pending.iter_mut().find(|e| e.seq == seq)
    }

    /// Record an interim response on the request the final one will answer.
    fn note_interim(&mut self, code: u16) {
        let next = (self.next_resp_seq < self.next_req_seq).then_some(self.next_resp_seq);
        if let Some(ex) = self.exchange_mut(next) {
            ex.call.interim_status_codes.push(i32::from(code));
        }
    }

    fn on_response_head(&mut self, ts: Nanos, head: &ResponseHead<'_, '_>, out: &mut Emitter) {
        let code = head.code;
        if is_interim(code) {
            // 100 Continue, 102, 103 Early Hints: the final response follows.
            self.note_interim(code);
            return;
        }
        let target = self.take_response_target();
        let method = self
            .exchange(target)
            .map_or(MethodKind::Other, |e| e.method);
        let facts = parser::head_facts(head.headers);
        let mut message = Message::default();
        message.headers.0.reserve_exact(head.headers.len());
        for h in head.headers {
            let value = field_value(h.value);
            message.headers.push(h.name, &value);
            if h.name.eq_ignore_ascii_case("set-cookie")
                && let Some((name, value)) = parser::set_cookie_pair(&value)
            {
                message.cookies.0.push((name.to_owned(), value.to_owned()));
            }
        }
        let mut errors = Vec::new();
        let switch = code == 101 || (method == MethodKind::Connect && (200..300).contains(&code));
        // RFC 9112 §6.3, in its order.
        let framing =
            if switch || method == MethodKind::Head || code < 200 || code == 204 || code == 304 {
                None
            } else if facts.transfer_encoding {
                Some(if facts.chunked {
                    Framing::Chunked(Chunk::Size)
                } else {
                    Framing::Close
                })
            } else if facts.bad_content_length {
                errors.push("bad_content_length");
                Some(Framing::Close)
            } else {
                match facts.content_length {
                    Some(0) => None,
                    Some(n) => Some(Framing::Length(n)),
                    None => Some(Framing::Close),
                }
            };
        self.cur_resp = Some(ResponseParts {
            target,
            first_ts: ts,
            status: code,
            version: head.version,
            message,
            header_size: len_u64(head.len),
            errors,
            switch,
        });
        match framing {
            Some(f) => self.server.state = State::Body(BodyReader::new(f, facts.content_coding)),
            None => self.finish_response(None, ts, out),
        }
    }

    fn step_body(&mut self, dir: Direction, ts: Nanos, input: &[u8], out: &mut Emitter) -> usize {
        let cap = self.limits.max_body_bytes;
        let max_head = self.max_head();
        let Side { state, buf, .. } = self.side_mut(dir);
        let State::Body(reader) = state else {
            return 0;
        };
        match &mut reader.framing {
            Framing::Length(remaining) => {
                let n = take_len(*remaining, input.len());
                reader.acc.push(input.get(..n).unwrap_or(input), cap);
                *remaining = remaining.saturating_sub(len_u64(n));
                if *remaining == 0 {
                    self.finish_message(dir, ts, None, out);
                }
                n
            }
            Framing::Close => {
                reader.acc.push(input, cap);
                input.len()
            }
            Framing::Chunked(Chunk::Data(remaining)) => {
                let n = take_len(*remaining, input.len());
                reader.acc.push(input.get(..n).unwrap_or(input), cap);
                *remaining = remaining.saturating_sub(len_u64(n));
                if *remaining == 0 {
                    reader.framing = Framing::Chunked(Chunk::DataEnd);
                }
                n
            }
            Framing::Chunked(chunk) => {
                let line_cap = match chunk {
                    Chunk::Trailers => max_head,
                    _ => parser::MAX_CHUNK_LINE_BYTES,
                };
                let (used, outcome) = match read_line(buf, input, line_cap) {
                    LineRead::More => return input.len(),
                    LineRead::TooLong(used) => (used, ChunkOutcome::Bad),
                    LineRead::Ready(line, used) => (used, chunk_line(reader, line, max_head)),
                };
                buf.clear();
                match outcome {
                    ChunkOutcome::Continue => {}
                    ChunkOutcome::Done => self.finish_message(dir, ts, None, out),
                    ChunkOutcome::Bad => {
                        out.anomaly(ts, "bad_chunk");
                        out.anomaly(ts, "resync");
                        self.finish_message(dir, ts, Some("bad_chunk"), out);
                        self.start_resync(dir, false);
                    }
                }
                used
            }
        }
    }

    /// Complete the message being read in `dir` (its body reader, if any).
    fn finish_message(
        &mut self,
        dir: Direction,
        ts: Nanos,
        error: Option<&'static str>,
        out: &mut Emitter,
    ) {
        let side = self.side_mut(dir);
        let reader = match std::mem::replace(&mut side.state, State::Head) {
            State::Body(r) => Some(r),
            other => {
                side.state = other;
                None
            }
        };
        match dir {
            Direction::ToServer => self.finish_request(reader, error, out),
            Direction::ToClient => {
                if let Some(e) = error
                    && let Some(parts) = self.cur_resp.as_mut()
                {
                    parts.errors.push(e);
                }
                self.finish_response(reader, ts, out);
            }
        }
    }

    fn finish_request(
        &mut self,
        reader: Option<BodyReader>,
        error: Option<&'static str>,
        out: &mut Emitter,
    ) {
        let cap = self.limits.max_body_bytes;
        let seq = self.cur_req.take();
        let mut await_switch = false;
        if let Some(ex) = self.exchange_mut(seq) {
            if let Some(reader) = reader {
                let (body, size, mut errors) =
                    finish_body(reader, cap, &mut ex.call.request.headers);
                ex.call.request.body = body;
                ex.call.request_body_size = size;
                errors.extend(error);
                ex.call.errors.extend(errors.into_iter().map(str::to_owned));
            } else if let Some(e) = error {
                ex.call.errors.push(e.to_owned());
            }
            ex.request_done = true;
            await_switch = ex.wants_switch && ex.response == ResponseState::Waiting;
        }
        if matches!(self.client.state, State::Head | State::Body(_)) {
            self.client.state = if await_switch {
                State::AwaitSwitch { gapped: false }
            } else {
                State::Head
            };
        }
        self.flush(out);
    }

    fn finish_response(&mut self, reader: Option<BodyReader>, ts: Nanos, out: &mut Emitter) {
        let cap = self.limits.max_body_bytes;
        let Some(mut parts) = self.cur_resp.take() else {
            return;
        };
        let (body, size) = match reader {
            Some(reader) => {
                let (body, size, errors) = finish_body(reader, cap, &mut parts.message.headers);
                parts.errors.extend(errors);
                (body, size)
            }
            None => (None, 0),
        };
        let switch = parts.switch;
        let target = parts.target;
        let limits = self.limits;
        let mut wanted_switch = false;
        let mut inner = None;
        match self
            .exchange_mut(target)
            .filter(|e| e.response == ResponseState::Waiting)
        {
            Some(ex) => {
                wanted_switch = ex.wants_switch;
                if switch && parts.status == 101 {
                    inner = upgraded_session(limits, &parts.message.headers, Some(&ex.call));
                }
                apply_response(&mut ex.call, parts, body, size, ts);
                ex.response = ResponseState::Done;
            }
            None => {
                if switch && parts.status == 101 {
                    inner = upgraded_session(limits, &parts.message.headers, None);
                }
                let mut call = Call::new(Protocol::Http);
                apply_response(&mut call, parts, body, size, ts);
                call.errors.push("no_request".to_owned());
                self.flush(out);
                out.call(Direction::ToServer, call);
            }
        }
        if matches!(self.server.state, State::Head | State::Body(_)) {
            self.server.state = if switch { State::Tunnel } else { State::Head };
        }
        self.flush(out);
        if switch {
            let gapped = matches!(self.client.state, State::AwaitSwitch { gapped: true });
            self.client.state = State::Tunnel;
            let held = std::mem::take(&mut self.client.buf);
            if let Some(mut inner) = inner {
                // Bytes the client sent before the answer are the new
                // protocol's first.
                if gapped {
                    inner.gap(Direction::ToServer, self.client.buf_ts, 1, out);
                }
                if !held.is_empty() {
                    inner.data(Direction::ToServer, self.client.buf_ts, &held, out);
                }
                self.inner = Some(Inner(inner));
            }
        } else if wanted_switch {
            self.resolve_no_switch(out);
        }
    }

    /// The request that asked to switch protocols was answered without a
    /// switch (or its answer was lost): the held client bytes are HTTP.
    fn resolve_no_switch(&mut self, out: &mut Emitter) {
        let State::AwaitSwitch { gapped } = self.client.state else {
            return;
        };
        let held = std::mem::take(&mut self.client.buf);
        let held_ts = self.client.buf_ts;
        if gapped {
            self.start_resync(Direction::ToServer, true);
        } else {
            self.client.state = State::Head;
        }
        self.feed(Direction::ToServer, held_ts, &held, out);
    }

    /// Emit, in order, every exchange at the front whose halves are settled.
    fn flush(&mut self, out: &mut Emitter) {
        while let Some(front) = self.pending.front() {
            if !front.request_done || front.response == ResponseState::Waiting {
                break;
            }
            let Some(mut ex) = self.pending.pop_front() else {
                break;
            };
            match (ex.lost_request, ex.response) {
                (true, ResponseState::Done) => ex.call.errors.push("no_request".to_owned()),
                (true, _) => continue,
                (false, ResponseState::Lost) => ex.call.errors.push("no_response".to_owned()),
                (false, _) => {}
            }
            out.call(Direction::ToServer, ex.call);
        }
    }

    /// A whole message (or more) of `dir` went missing in a gap.
    fn message_lost(&mut self, dir: Direction, out: &mut Emitter) {
        match dir {
            Direction::ToServer => {
                let seq = self.push_exchange(out);
                self.pending.push_back(Exchange {
                    seq,
                    call: Call::new(Protocol::Http),
                    method: MethodKind::Other,
                    wants_switch: false,
                    lost_request: true,
                    request_done: true,
                    response: ResponseState::Waiting,
                });
            }
            Direction::ToClient => {
                let target = self.take_response_target();
                let mut wanted_switch = false;
                if let Some(ex) = self.exchange_mut(target) {
                    ex.response = ResponseState::Lost;
                    wanted_switch = ex.wants_switch;
                }
                self.flush(out);
                if wanted_switch {
                    self.resolve_no_switch(out);
                }
            }
        }
    }

    fn start_resync(&mut self, dir: Direction, may_start: bool) {
        let side = self.side_mut(dir);
        side.state = State::Resync;
        side.may_start = may_start;
        side.buf.clear();
    }

    fn on_gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        if len == 0 {
            return;
        }
        let has_inner = self.inner.is_some();
        let side = self.side_mut(dir);
        match &mut side.state {
            State::Tunnel if has_inner => {
                if let Some(inner) = self.inner.as_mut() {
                    inner.0.gap(dir, ts, len, out);
                }
            }
            State::Tunnel | State::Closed => {
                side.skipped = side.skipped.saturating_add(len);
            }
            State::Resync => {
                // The gap's end may be a message's start; a start held from
                // before the gap is not one.
                side.may_start = true;
                side.buf.clear();
            }
            State::AwaitSwitch { gapped } => {
                // What was held no longer joins what follows.
                *gapped = true;
                side.buf.clear();
            }
            State::Head => {
                // Bytes where a head would be: a message (at least) is lost.
                side.buf.clear();
                self.message_lost(dir, out);
                out.anomaly(ts, "resync");
                self.start_resync(dir, true);
            }
            State::Body(reader) => match &mut reader.framing {
                Framing::Length(remaining) if len <= *remaining => {
                    reader.acc.lost(len, true);
                    *remaining -= len;
                    if *remaining == 0 {
                        self.finish_message(dir, ts, None, out);
                    }
                }
                Framing::Length(remaining) => {
                    // The body ended inside the gap, and the next head with it.
                    let rest = *remaining;
                    reader.acc.lost(rest, true);
                    self.finish_message(dir, ts, None, out);
                    self.message_lost(dir, out);
                    out.anomaly(ts, "resync");
                    self.start_resync(dir, true);
                }
                Framing::Close => reader.acc.lost(len, true),
                Framing::Chunked(Chunk::Data(remaining)) if len <= *remaining => {
                    reader.acc.lost(len, true);
                    *remaining -= len;
                    if *remaining == 0 {
                        reader.framing = Framing::Chunked(Chunk::DataEnd);
                    }
                }
                Framing::Chunked(_) => {
                    // The chunk framing is lost: end the message here.
                    reader.acc.lost(0, false);
                    side.buf.clear();
                    self.finish_message(dir, ts, None, out);
                    out.anomaly(ts, "resync");
                    self.start_resync(dir, true);
                }
            },
        }
    }

    /// The direction ended: finish what it was sending.
    fn on_end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        let side = self.side_mut(dir);
        match &mut side.state {
            State::Body(reader) => {
                let error = match reader.framing {
                    Framing::Close => None,
                    _ => {
                        reader.acc.truncated = true;
                        Some("incomplete")
                    }
                };
                self.finish_message(dir, ts, error, out);
            }
            State::Head if !side.buf.is_empty() => out.anomaly(ts, "incomplete_head"),
            // The answer to the switch request may still come.
            State::AwaitSwitch { .. } => return,
            State::Tunnel => {
                if let Some(inner) = self.inner.as_mut() {
                    inner.0.end(dir, ts, out);
                }
            }
            _ => {}
        }
        let side = self.side_mut(dir);
        side.buf.clear();
        side.state = State::Closed;
    }

    fn on_close(&mut self, ts: Nanos, out: &mut Emitter) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            self.on_end(dir, ts, out);
        }
        self.client.buf.clear();
        self.client.state = State::Closed;
        self.cur_req = None;
        self.cur_resp = None;
        if let Some(inner) = self.inner.as_mut() {
            inner.0.close(ts, out);
        }
        for ex in &mut self.pending {
            if !ex.request_done {
                ex.request_done = true;
                ex.call.errors.push("incomplete".to_owned());
            }
            if ex.response == ResponseState::Waiting {
                ex.response = ResponseState::Lost;
            }
        }
        self.flush(out);
    }
}

impl Session for Http1Session {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        // Clients start requests at segment starts: after lost step, a
        // segment that opens with a request line is taken at its word.
        if dir == Direction::ToServer
            && matches!(self.client.state, State::Resync)
            && parser::request_line_start(data) == Prefix::Yes
        {
            self.client.may_start = true;
        }
        self.feed(dir, ts, data, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        self.on_gap(dir, ts, len, out);
    }

    fn end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        self.on_end(dir, ts, out);
    }

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        self.on_close(ts, out);
    }
}

/// Skip to the next plausible message start of `dir`; returns bytes
/// skipped (and switches to `Head` when one is found). A start cut by the
/// end of the input is held in `buf` and decided when more bytes come, so
/// the outcome does not depend on where the stream was split.
fn step_resync(side: &mut Side, dir: Direction, ts: Nanos, input: &[u8]) -> usize {
    let starts = |bytes: &[u8]| match dir {
        Direction::ToServer => parser::request_line_start(bytes),
        Direction::ToClient => parser::status_line_start(bytes),
    };
    if !side.buf.is_empty() {
        let held = side.buf.len();
        let take = input.len().min(RESYNC_PROBE_BYTES.saturating_sub(held));
        side.buf
            .extend_from_slice(input.get(..take).unwrap_or(input));
        return match starts(&side.buf) {
            Prefix::Yes => {
                // The held bytes begin the head; the new ones are read as
                // its continuation (a buffered head never holds a whole one).
                side.buf.truncate(held);
                side.state = State::Head;
                side.may_start = false;
                0
            }
            Prefix::Maybe if side.buf.len() < RESYNC_PROBE_BYTES => take,
            _ => {
                // Not a start after all: scan the new bytes afresh.
                side.buf.clear();
                side.may_start = dir == Direction::ToClient;
                0
            }
        };
    }
    let found = match dir {
        Direction::ToServer => find_request_start(input, side.may_start),
        Direction::ToClient => find_status_start(input, side.may_start),
    };
    let skipped = match found {
        Some(pos) => {
            let rest = input.get(pos..).unwrap_or_default();
            match starts(rest) {
                Prefix::Yes => {
                    side.state = State::Head;
                    side.may_start = false;
                    pos
                }
                Prefix::Maybe => {
                    side.buf.extend_from_slice(rest);
                    side.buf_ts = ts;
                    input.len()
                }
                Prefix::No => pos.saturating_add(1),
            }
        }
        None => {
            // A status line may start anywhere; a request line is looked
            // for at line starts (and before " HTTP/1." within a chunk).
            side.may_start = dir == Direction::ToClient || input.last() == Some(&b'\n');
            input.len()
        }
    };
    side.skipped = side.skipped.saturating_add(len_u64(skipped));
    skipped
}

/// The first place in `input` where a request may start: a known method at
/// a line start (or at 0 when `here`), or a known method right before
/// `SP target SP HTTP/1.` anywhere (a request right after a body that
/// does not end a line). Positions before 1 are skipped unless `here`.
fn find_request_start(input: &[u8], here: bool) -> Option<usize> {
    let min = usize::from(!here);
    let mut at_line = None;
    let mut pos = 0usize;
    let mut candidate = here;
    while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
        if candidate && parser::request_line_start(rest) != Prefix::No {
            at_line = Some(pos);
            break;
        }
        let Some(i) = memchr::memchr(b'\n', rest) else {
            break;
        };
        pos = pos.saturating_add(i).saturating_add(1);
        candidate = true;
    }
    let limit = at_line.unwrap_or(input.len());
    let before_version = memchr::memmem::find_iter(input, b" HTTP/1.")
        .take_while(|&p| p < limit)
        .find_map(|p| {
            let line = input.get(..p)?;
            let space = line
                .iter()
                .rposition(|&b| matches!(b, b' ' | b'\r' | b'\n'))?;
            let before = line.get(..space)?;
            if line.get(space) != Some(&b' ') || space.saturating_add(1) == p {
                return None;
            }
            parser::KNOWN_METHODS
                .iter()
                .filter(|m| before.ends_with(m))
                .map(|m| space - m.len())
                .min()
                .filter(|&start| start >= min)
        });
    match (at_line, before_version) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first place in `input` (from 1 unless `here`) where `HTTP/1.`
/// starts, or where its beginning ends the input.
fn find_status_start(input: &[u8], here: bool) -> Option<usize> {
    let min = usize::from(!here);
    let rest = input.get(min..)?;
    if let Some(i) = memchr::memmem::find(rest, b"HTTP/1.") {
        return Some(i.saturating_add(min));
    }
    // A status line cut by the end of this chunk.
    let tail_from = rest.len().saturating_sub(6);
    (tail_from..rest.len())
        .find(|&i| {
            rest.get(i..)
                .is_some_and(|t| parser::status_line_start(t) == Prefix::Maybe)
        })
        .map(|i| i.saturating_add(min))
}

enum ChunkOutcome {
    Continue,
    Done,
    Bad,
}

/// Act on one line of chunked framing (size line, data end or trailer).
fn chunk_line(reader: &mut BodyReader, line: &[u8], max_head: usize) -> ChunkOutcome {
    let Framing::Chunked(chunk) = &mut reader.framing else {
        return ChunkOutcome::Bad;
    };
    match chunk {
        Chunk::Size => match parser::parse_chunk_size_line(line) {
            Some(0) => {
                *chunk = Chunk::Trailers;
                ChunkOutcome::Continue
            }
            Some(n) => {
                *chunk = Chunk::Data(n);
                ChunkOutcome::Continue
            }
            None => ChunkOutcome::Bad,
        },
        Chunk::DataEnd => {
            if parser::is_blank_line(line) {
                *chunk = Chunk::Size;
                ChunkOutcome::Continue
            } else {
                ChunkOutcome::Bad
            }
        }
        Chunk::Trailers => {
            if parser::is_blank_line(line) {
                return ChunkOutcome::Done;
            }
            reader.trailer_bytes = reader.trailer_bytes.saturating_add(line.len());
            if reader.trailer_bytes > max_head {
                return ChunkOutcome::Bad;
            }
            if let Some((name, value)) = parser::parse_field_line(line) {
                reader.trailers.push(name, value);
            }
            ChunkOutcome::Continue
        }
        // Data is handled by the caller, never as a line.
        Chunk::Data(_) => ChunkOutcome::Bad,
    }
}

/// Gather one line, from the input directly when none is buffered.
fn read_line<'a>(buf: &'a mut Vec<u8>, input: &'a [u8], cap: usize) -> LineRead<'a> {
    let room = cap.saturating_sub(buf.len());
    match memchr::memchr(b'\n', input) {
        Some(i) if i < room => {
            let used = i.saturating_add(1);
            let line = input.get(..used).unwrap_or(input);
            if buf.is_empty() {
                LineRead::Ready(line, used)
            } else {
                buf.extend_from_slice(line);
                LineRead::Ready(buf.as_slice(), used)
            }
        }
        // Drop exactly the first `cap + 1` bytes of the line, however it
        // was split, so what follows is read the same way.
        Some(_) => LineRead::TooLong(room.saturating_add(1).min(input.len())),
        None if input.len() > room => LineRead::TooLong(room.saturating_add(1).min(input.len())),
        None => {
            buf.extend_from_slice(input);
            LineRead::More
        }
    }
}

/// Turn a finished body reader into the body to show, its size, and its
/// errors; trailers join `headers`.
fn finish_body(
    reader: BodyReader,
    cap: usize,
    headers: &mut Headers,
) -> (Option<Body>, u64, Vec<&'static str>) {
    let mut errors = Vec::new();
    headers.0.extend(reader.trailers.0);
    let acc = reader.acc;
    if acc.gap {
        errors.push("gap_in_body");
    }
    if acc.size == 0 && acc.kept.is_empty() && !acc.truncated {
        return (None, 0, errors);
    }
    // Nothing is kept when the caller asked for no bodies: say nothing
    // rather than show an empty, "truncated" one. The size still counts.
    if cap == 0 {
        return (None, acc.size, errors);
    }
    let decoded = decode_body(acc.kept, acc.truncated, reader.coding, cap);
    if decoded.failed {
        errors.push("body_decode_failed");
    }
    let body = Body {
        data: decoded.data,
        truncated: decoded.truncated,
        decoded_from: decoded.decoded_from,
    };
    (Some(body), acc.size, errors)
}

fn apply_response(
    call: &mut Call,
    parts: ResponseParts,
    body: Option<Body>,
    body_size: u64,
    last_ts: Nanos,
) {
    call.status_code = i32::from(parts.status);
    call.response = parts.message;
    call.response.body = body;
    call.response_header_size = parts.header_size;
    call.response_body_size = body_size;
    call.has_response = true;
    if call.http_version.is_empty() {
        call.http_version = parser::version_str(parts.version).to_owned();
    }
    if call.has_request {
        call.elapsed_time = last_ts.saturating_sub(call.timestamp).max(0) / 1000;
    } else {
        call.timestamp = parts.first_ts;
        call.elapsed_time = 0;
    }
    call.errors
        .extend(parts.errors.into_iter().map(str::to_owned));
}

fn fill_request(call: &mut Call, ts: Nanos, method: &str, target: &str, version: &str) {
    call.timestamp = ts;
    call.has_request = true;
    call.method = method.to_owned();
    call.url = target.to_owned();
    let (path, query) = parser::split_target(target);
    call.path = path.to_owned();
    call.query_string = query.to_owned();
    call.http_version = version.to_owned();
}

/// A field value as text; values are nearly always ASCII, so the check
/// comes first and the lossy conversion only for the rest.
fn field_value(value: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value),
    }
}

fn method_kind(method: &str) -> MethodKind {
    match method {
        "HEAD" => MethodKind::Head,
        "CONNECT" => MethodKind::Connect,
        _ => MethodKind::Other,
    }
}

/// 1xx other than 101: informational, followed by the final response.
fn is_interim(code: u16) -> bool {
    (100..200).contains(&code) && code != 101
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `min(remaining, available)` as a slice length.
fn take_len(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

#[cfg(test)]
mod tests {
    //! Conversations are written as text fixtures: `>>> TS` starts client
    //! bytes, `<<< TS` server bytes (TS in nanoseconds), `>>> gap N` and
    //! `>>> end TS` are gaps and direction ends; content lines are escaped
    //! (`\r`, `\n`, `\\`, `\xHH`) and their own line breaks are not bytes.
    //! Fixtures from real captures live in `tests/fixtures/http1/`, made by
    //! `extract.py` there (each file names its capture).

    use super::*;
    use crate::seam::Anomaly;

    #[derive(Clone, Debug)]
    enum Ev {
        Data(Direction, Nanos, Vec<u8>),
        Gap(Direction, u64),
        End(Direction, Nanos),
        Close(Nanos),
    }

    fn unescape(line: &str, out: &mut Vec<u8>) {
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 1 < b.len() {
                match b[i + 1] {
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'\\' => out.push(b'\\'),
                    b'x' => {
                        let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 2;
                    }
                    other => panic!("bad escape \\{}", other as char),
                }
                i += 2;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
    }

    fn parse_fixture(text: &str) -> Vec<Ev> {
        let mut events = Vec::new();
        let mut last_ts = 0;
        for line in text.lines() {
            let dir = if line.starts_with(">>>") {
                Some(Direction::ToServer)
            } else if line.starts_with("<<<") {
                Some(Direction::ToClient)
            } else {
                None
            };
            if let Some(dir) = dir {
                let words: Vec<&str> = line[3..].split_whitespace().collect();
                match words.as_slice() {
                    ["gap", n] => events.push(Ev::Gap(dir, n.parse().unwrap())),
                    ["end", ts] => {
                        last_ts = ts.parse().unwrap();
                        events.push(Ev::End(dir, last_ts));
                    }
                    ["close", ts] => {
                        last_ts = ts.parse().unwrap();
                        events.push(Ev::Close(last_ts));
                    }
                    [ts] => {
                        last_ts = ts.parse().unwrap();
                        events.push(Ev::Data(dir, last_ts, Vec::new()));
                    }
                    _ => panic!("bad event line {line:?}"),
                }
            } else if line.starts_with("###") || line.is_empty() {
                continue;
            } else {
                let Some(Ev::Data(_, _, bytes)) = events.last_mut() else {
                    panic!("content outside data: {line:?}");
                };
                unescape(line, bytes);
            }
        }
        if !matches!(events.last(), Some(Ev::Close(_))) {
            events.push(Ev::Close(last_ts + 1));
        }
        events
    }

    #[derive(Debug, PartialEq)]
    struct Out {
        calls: Vec<Call>,
        anomalies: Vec<&'static str>,
    }

    /// Feed `events`, each data event cut at `cuts(index, len)` offsets.
    fn run_cut(events: &[Ev], limits: Limits, cuts: &dyn Fn(usize, usize) -> Vec<usize>) -> Out {
        let mut s = Http1Session::new(limits);
        let mut e = Emitter::new();
        for (i, ev) in events.iter().enumerate() {
            match ev {
                Ev::Data(dir, ts, bytes) => {
                    let mut start = 0;
                    for cut in cuts(i, bytes.len()).into_iter().chain([bytes.len()]) {
                        s.data(*dir, *ts, &bytes[start..cut], &mut e);
                        start = cut;
                    }
                }
                Ev::Gap(dir, n) => s.gap(*dir, 0, *n, &mut e),
                Ev::End(dir, ts) => s.end(*dir, *ts, &mut e),
                Ev::Close(ts) => s.close(*ts, &mut e),
            }
        }
        let calls = e.drain_calls().map(|(dir, call)| {
            assert_eq!(dir, Direction::ToServer);
            call
        });
        let calls = calls.collect();
        Out {
            calls,
            anomalies: e.drain_anomalies().map(|a: Anomaly| a.kind).collect(),
        }
    }

    fn run(events: &[Ev], limits: Limits) -> Out {
        run_cut(events, limits, &|_, _| Vec::new())
    }

    fn run_text(text: &str) -> Out {
        run(&parse_fixture(text), Limits::default())
    }

    /// Events shorter than this are also cut in three pieces at every pair of offsets.
    const THREE_PIECE_MAX: usize = 160;

    /// The incremental test: whole, byte by byte, and split at every
    /// offset (every `stride`-th for big captures) give the same output.
    fn assert_incremental_with(text: &str, limits: Limits, stride: usize) -> Out {
        let events = parse_fixture(text);
        let whole = run(&events, limits);
        let bytewise = run_cut(&events, limits, &|_, len| (1..len).collect());
        assert_eq!(bytewise, whole, "byte by byte differs");
        for (i, ev) in events.iter().enumerate() {
            let Ev::Data(_, _, bytes) = ev else { continue };
            let len = bytes.len();
            for cut in (1..len).step_by(stride) {
                let got = run_cut(&events, limits, &|j, _| {
                    if j == i { vec![cut] } else { Vec::new() }
                });
                assert_eq!(got, whole, "event {i} cut at {cut} differs");
            }
            if len <= THREE_PIECE_MAX && stride == 1 {
                for a in 1..len {
                    for b in a + 1..len {
                        let got = run_cut(&events, limits, &|j, _| {
                            if j == i { vec![a, b] } else { Vec::new() }
                        });
                        assert_eq!(got, whole, "event {i} cut at {a},{b} differs");
                    }
                }
            }
        }
        whole
    }

    fn assert_incremental(text: &str) -> Out {
        assert_incremental_with(text, Limits::default(), 1)
    }

    fn body(m: &Message) -> &[u8] {
        m.body.as_ref().map_or(&[][..], |b| b.data.as_slice())
    }

    fn errors(c: &Call) -> Vec<&str> {
        c.errors.iter().map(String::as_str).collect()
    }

    // Synthetic: a browser-like keep-alive connection with three pairs.
    const KEEP_ALIVE: &str = r#"
>>> 1000000000
GET /a HTTP/1.1\r\n
Host: example.com\r\n
\r\n
<<< 1002000000
HTTP/1.1 200 OK\r\n
Content-Type: text/plain\r\n
Content-Length: 5\r\n
\r\n
hello
>>> 1003000000
GET /b?x=1 HTTP/1.1\r\n
Host: example.com\r\n
\r\n
<<< 1004500000
HTTP/1.1 404 Not Found\r\n
Content-Length: 0\r\n
\r\n
>>> 1005000000
DELETE /c HTTP/1.1\r\n
Host: example.com\r\n
\r\n
<<< 1006000000
HTTP/1.1 204 No Content\r\n
\r\n
"#;

    #[test]
    fn keep_alive_three_pairs() {
        let out = assert_incremental(KEEP_ALIVE);
        assert_eq!(out.anomalies, Vec::<&str>::new());
        let c = &out.calls;
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].method.as_str(), c[0].path.as_str(), c[0].status_code),
            ("GET", "/a", 200)
        );
        assert_eq!(c[0].timestamp, 1_000_000_000);
        assert_eq!(c[0].elapsed_time, 2000);
        assert_eq!(c[0].http_version, "HTTP/1.1");
        assert_eq!(body(&c[0].response), b"hello");
        assert_eq!(c[0].response_body_size, 5);
        assert_eq!(c[0].request_header_size, 38);
        assert_eq!(c[0].response_header_size, 64);
        assert_eq!(
            c[0].response.headers.get("content-type"),
            Some("text/plain")
        );
        assert!(c[0].has_request && c[0].has_response && c[0].errors.is_empty());
        assert_eq!(
            (
                c[1].path.as_str(),
                c[1].query_string.as_str(),
                c[1].url.as_str()
            ),
            ("/b", "x=1", "/b?x=1")
        );
        assert_eq!(c[1].status_code, 404);
        assert_eq!(c[1].elapsed_time, 1500);
        assert!(c[1].response.body.is_none());
        assert_eq!((c[2].method.as_str(), c[2].status_code), ("DELETE", 204));
    }

    // Synthetic: three requests in one segment before any response, and
    // the responses in one segment too.
    const PIPELINED: &str = r#"
>>> 1000
GET /1 HTTP/1.1\r\n
Host: h\r\n
\r\n
GET /2 HTTP/1.1\r\n
Host: h\r\n
\r\n
HEAD /3 HTTP/1.1\r\n
Host: h\r\n
\r\n
<<< 5000
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
1HTTP/1.1 200 OK\r\n
Content-Length: 2\r\n
\r\n
22HTTP/1.1 200 OK\r\n
Content-Length: 1234\r\n
\r\n
"#;

    #[test]
    fn pipelined_requests_pair_in_order() {
        let out = assert_incremental(PIPELINED);
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.status_code,
                    body(&c.response).to_vec(),
                    c.response_body_size,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/1", 200, b"1".to_vec(), 1),
                ("/2", 200, b"22".to_vec(), 2),
                ("/3", 200, vec![], 0)
            ]
        );
        assert!(out.anomalies.is_empty());
    }

    // Synthetic: chunked response with chunk extensions and a trailer.
    const CHUNKED: &str = r#"
>>> 1000
GET /stream HTTP/1.1\r\n
Host: h\r\n
\r\n
<<< 2000
HTTP/1.1 200 OK\r\n
Transfer-Encoding: chunked\r\n
Content-Length: 999\r\n
Trailer: Expires\r\n
\r\n
5;name=value\r\n
hello\r\n
7 ; quoted="a;b"\r\n
, world\r\n
0\r\n
Expires: never\r\n
\r\n
>>> 3000
GET /next HTTP/1.1\r\n
\r\n
<<< 4000
HTTP/1.1 200 OK\r\n
Content-Length: 2\r\n
\r\n
ok
"#;

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let out = assert_incremental(CHUNKED);
        let c = &out.calls;
        assert_eq!(c.len(), 2);
        assert_eq!(body(&c[0].response), b"hello, world");
        assert_eq!(c[0].response_body_size, 12);
        // Transfer-Encoding beats Content-Length; trailers join the headers.
        assert_eq!(c[0].response.headers.get("expires"), Some("never"));
        assert_eq!(body(&c[1].response), b"ok");
        assert!(c.iter().all(|c| c.errors.is_empty()));
    }

    #[test]
    fn gzip_body_is_decoded() {
        // zeek testing/btest/Traces/http/get-gzip.trace (http-zeek-http-get-gzip.pcap).
        let out = assert_incremental(include_str!(
            "../../../tests/fixtures/http1/zeek-get-gzip.txt"
        ));
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!(
            (c.method.as_str(), c.url.as_str(), c.status_code),
            ("GET", "/gzip", 200)
        );
        let b = c.response.body.as_ref().unwrap();
        assert_eq!(b.decoded_from, Some("gzip"));
        assert!(!b.truncated);
        let text = std::str::from_utf8(&b.data).unwrap();
        assert!(text.contains("\"gzipped\": true"), "{text}");
        assert_eq!(c.response_body_size, 165);
        assert!(c.errors.is_empty());
    }

    #[test]
    fn post_with_content_length() {
        // zeek testing/btest/Traces/http/post.trace (http-zeek-http-post.pcap).
        let out = assert_incremental(include_str!("../../../tests/fixtures/http1/zeek-post.txt"));
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!(
            (c.method.as_str(), c.path.as_str(), c.status_code),
            ("POST", "/post", 200)
        );
        assert_eq!(body(&c.request), b"hello world");
        assert_eq!(c.request_body_size, 11);
        assert_eq!(c.response_body_size, 366);
        assert_eq!(
            c.elapsed_time,
            (1_363_709_111_129_368_000 - 1_363_709_111_086_948_000) / 1000
        );
    }

    #[test]
    fn continue_then_final_response() {
        // zeek testing/btest/Traces/http/100-continue.trace: POST with
        // Expect: 100-continue, 100, the body, then a chunked 200. Big:
        // cut at every 7th offset.
        let text = include_str!("../../../tests/fixtures/http1/zeek-100-continue.txt");
        let out = assert_incremental_with(text, Limits::default(), 7);
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!((c.method.as_str(), c.status_code), ("POST", 200));
        assert_eq!(c.interim_status_codes, vec![100]);
        assert_eq!(c.request_body_size, 2001);
        assert_eq!(
            c.response_body_size,
            0x216e + 0x2130 + 0x3147 + 0x224e + 0x2008 + 0x20b9 + 0x1647
        );
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert!(out.anomalies.is_empty());
    }

    #[test]
    fn continue_then_final_response_short() {
        // Synthetic, short enough to cut everywhere: 100, then 103 Early
        // Hints after the body, then the final response.
        let out = assert_incremental(
            r#"
>>> 1000
PUT /upload HTTP/1.1\r\n
Content-Length: 5\r\n
Expect: 100-continue\r\n
\r\n
<<< 2000
HTTP/1.1 100 Continue\r\n
\r\n
>>> 3000
hello
<<< 4000
HTTP/1.1 103 Early Hints\r\n
Link: </style.css>; rel=preload\r\n
\r\n
HTTP/1.1 201 Created\r\n
Content-Length: 2\r\n
\r\n
ok
"#,
        );
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!(
            (c.status_code, c.interim_status_codes.clone()),
            (201, vec![100, 103])
        );
        assert_eq!(
            (body(&c.request), body(&c.response)),
            (&b"hello"[..], &b"ok"[..])
        );
        assert_eq!(c.elapsed_time, 3);
        assert!(c.response.headers.get("link").is_none());
    }

    #[test]
    fn real_keep_alive_with_chunked_gzip_and_304() {
        // packetbeat tests/pcaps/http_minitwit.pcap, nginx in front of Flask.
        let text = include_str!("../../../tests/fixtures/http1/packetbeat-minitwit-keepalive.txt");
        let out = assert_incremental_with(text, Limits::default(), 3);
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), c.status_code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/", 200),
                ("/static/style.css", 304),
                ("/favicon.ico", 404)
            ]
        );
        let b = out.calls[0].response.body.as_ref().unwrap();
        assert_eq!(b.decoded_from, Some("gzip"));
        assert!(
            std::str::from_utf8(&b.data)
                .unwrap()
                .contains("<!doctype html>")
        );
        assert_eq!(out.calls[0].response_body_size, 0x31b);
        assert!(out.calls[1].response.body.is_none());
        assert!(out.calls.iter().all(|c| c.errors.is_empty()));
    }

    // Synthetic: a HEAD answered with a length but no body, 204 and 304.
    const NO_BODY_RESPONSES: &str = r#"
>>> 100
HEAD /file HTTP/1.1\r\n
\r\n
<<< 200
HTTP/1.1 200 OK\r\n
Content-Length: 5000\r\n
\r\n
>>> 300
PUT /x HTTP/1.1\r\n
Content-Length: 3\r\n
\r\n
abc
<<< 400
HTTP/1.1 204 No Content\r\n
\r\n
>>> 500
GET /cached HTTP/1.1\r\n
If-None-Match: "e"\r\n
\r\n
<<< 600
HTTP/1.1 304 Not Modified\r\n
Content-Length: 77\r\n
\r\n
"#;

    #[test]
    fn head_204_304_have_no_body() {
        let out = assert_incremental(NO_BODY_RESPONSES);
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.method.as_str(), c.status_code, c.response_body_size))
            .collect();
        assert_eq!(
            got,
            vec![("HEAD", 200, 0), ("PUT", 204, 0), ("GET", 304, 0)]
        );
        assert_eq!(body(&out.calls[1].request), b"abc");
        assert!(out.anomalies.is_empty());
    }

    // Synthetic: an HTTP/1.0 response without length, ended by the server's FIN.
    const CLOSE_DELIMITED: &str = r#"
>>> 1000
GET /old HTTP/1.0\r\n
\r\n
<<< 2000
HTTP/1.0 200 OK\r\n
Content-Type: text/plain\r\n
\r\n
all of this\r\n
is the body
<<< 3000
 until the end
<<< end 9000
>>> end 9500
"#;

    #[test]
    fn close_delimited_body_ends_at_end() {
        let out = assert_incremental(CLOSE_DELIMITED);
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!(
            body(&c.response),
            b"all of this\r\nis the body until the end"
        );
        assert_eq!(c.http_version, "HTTP/1.0");
        assert_eq!(c.elapsed_time, 8);
        assert!(c.errors.is_empty());
    }

    // Synthetic: the second request never gets an answer.
    const NO_RESPONSE: &str = r#"
>>> 1000
GET /answered HTTP/1.1\r\n
\r\n
<<< 2000
HTTP/1.1 200 OK\r\n
Content-Length: 0\r\n
\r\n
>>> 3000
POST /lost HTTP/1.1\r\n
Content-Length: 4\r\n
\r\n
data
>>> close 4000
"#;

    #[test]
    fn request_without_response_at_close() {
        let out = assert_incremental(NO_RESPONSE);
        assert_eq!(out.calls.len(), 2);
        let c = &out.calls[1];
        assert_eq!(
            (c.path.as_str(), c.has_response, c.status_code),
            ("/lost", false, 0)
        );
        assert_eq!(errors(c), vec!["no_response"]);
        assert_eq!(body(&c.request), b"data");
    }

    // Synthetic: request bodies by length and chunked.
    const REQUEST_BODIES: &str = r#"
>>> 1000
POST /form HTTP/1.1\r\n
Content-Type: application/x-www-form-urlencoded\r\n
Content-Length: 7\r\n
\r\n
a=1&b=2
<<< 2000
HTTP/1.1 201 Created\r\n
Content-Length: 0\r\n
\r\n
>>> 3000
POST /upload HTTP/1.1\r\n
Transfer-Encoding: chunked\r\n
\r\n
3\r\n
abc\r\n
2\r\n
de\r\n
0\r\n
\r\n
<<< 4000
HTTP/1.1 200 OK\r\n
Content-Length: 0\r\n
\r\n
"#;

    #[test]
    fn request_bodies_by_length_and_chunked() {
        let out = assert_incremental(REQUEST_BODIES);
        assert_eq!(out.calls.len(), 2);
        assert_eq!(body(&out.calls[0].request), b"a=1&b=2");
        assert_eq!(out.calls[0].request_body_size, 7);
        assert_eq!(body(&out.calls[1].request), b"abcde");
        assert_eq!(out.calls[1].request_body_size, 5);
        assert_eq!(out.calls[1].status_code, 200);
    }

    #[test]
    fn query_string_and_cookies() {
        let out = assert_incremental(
            r#"
>>> 1
GET /search?q=rust&page=2 HTTP/1.1\r\n
Cookie: sid=abc123; Theme=dark\r\n
Cookie: lang=en\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Set-Cookie: sid=new456; Path=/; HttpOnly\r\n
Set-Cookie: seen=1\r\n
Content-Length: 0\r\n
\r\n
"#,
        );
        let c = &out.calls[0];
        assert_eq!(
            (c.path.as_str(), c.query_string.as_str()),
            ("/search", "q=rust&page=2")
        );
        let cookies: Vec<_> = c.request.cookies.iter().collect();
        assert_eq!(
            cookies,
            vec![("sid", "abc123"), ("Theme", "dark"), ("lang", "en")]
        );
        let set: Vec<_> = c.response.cookies.iter().collect();
        assert_eq!(set, vec![("sid", "new456"), ("seen", "1")]);
        assert_eq!(c.request.headers.len(), 2);
    }

    #[test]
    fn absolute_form_url() {
        let out = assert_incremental(
            r#"
>>> 1
GET http://example.com:8080/api/v1/items?id=7 HTTP/1.1\r\n
Host: example.com:8080\r\n
Proxy-Connection: keep-alive\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Content-Length: 2\r\n
\r\n
{}
"#,
        );
        let c = &out.calls[0];
        assert_eq!(c.url, "http://example.com:8080/api/v1/items?id=7");
        assert_eq!(
            (c.path.as_str(), c.query_string.as_str()),
            ("/api/v1/items", "id=7")
        );
    }

    #[test]
    fn gap_in_body_with_content_length() {
        let out = run_text(
            r#"
>>> 1
GET /big HTTP/1.1\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Content-Length: 10\r\n
\r\n
0123
<<< gap 3
<<< 3
789
>>> 4
GET /next HTTP/1.1\r\n
\r\n
<<< 5
HTTP/1.1 200 OK\r\n
Content-Length: 2\r\n
\r\n
ok
"#,
        );
        assert_eq!(out.calls.len(), 2);
        let c = &out.calls[0];
        assert_eq!(body(&c.response), b"0123789");
        assert!(c.response.body.as_ref().unwrap().truncated);
        assert_eq!(c.response_body_size, 10);
        assert_eq!(errors(c), vec!["gap_in_body"]);
        assert_eq!(body(&out.calls[1].response), b"ok");
        assert!(out.calls[1].errors.is_empty());
        assert!(out.anomalies.is_empty());
    }

    #[test]
    fn gap_in_request_head_resyncs_and_pairs() {
        // The second request's head is cut by a gap; its response shows up
        // alone, and the third request pairs with the third response.
        let out = run_text(
            r#"
>>> 10
GET /1 HTTP/1.1\r\n
Host: a\r\n
\r\n
GET /2 HT
>>> gap 30
>>> 20
ost: a\r\n
\r\n
GET /3 HTTP/1.1\r\n
Host: a\r\n
\r\n
<<< 30
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
1
<<< 40
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
2
<<< 50
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
3
"#,
        );
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), body(&c.response).to_vec(), errors(c)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/1", b"1".to_vec(), vec![]),
                ("", b"2".to_vec(), vec!["no_request"]),
                ("/3", b"3".to_vec(), vec![]),
            ]
        );
        assert!(!out.calls[1].has_request);
        assert_eq!(out.calls[1].timestamp, 40);
        assert_eq!(out.anomalies, vec!["resync"]);
    }

    #[test]
    fn gap_in_response_head_resyncs_and_pairs() {
        let out = run_text(
            r#"
>>> 10
GET /1 HTTP/1.1\r\n
\r\n
GET /2 HTTP/1.1\r\n
\r\n
GET /3 HTTP/1.1\r\n
\r\n
<<< 30
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
1HTTP/1.1 2
<<< gap 12
<<< 40
ength: 1\r\n
\r\n
2HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
3
"#,
        );
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), c.status_code, errors(c)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/1", 200, vec![]),
                ("/2", 0, vec!["no_response"]),
                ("/3", 200, vec![])
            ]
        );
        assert_eq!(out.anomalies, vec!["resync"]);
    }

    #[test]
    fn gap_in_chunked_body_ends_it_and_resyncs() {
        let out = run_text(
            r#"
>>> 10
GET /1 HTTP/1.1\r\n
\r\n
GET /2 HTTP/1.1\r\n
\r\n
<<< 30
HTTP/1.1 200 OK\r\n
Transfer-Encoding: chunked\r\n
\r\n
4\r\n
abcd\r\n
<<< gap 40
<<< 40
xyz\r\n
0\r\n
\r\n
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
2
"#,
        );
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), body(&c.response).to_vec(), errors(c)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/1", b"abcd".to_vec(), vec!["gap_in_body"]),
                ("/2", b"2".to_vec(), vec![])
            ]
        );
        assert!(out.calls[0].response.body.as_ref().unwrap().truncated);
    }

    #[test]
    fn header_too_long_keeps_start_line_and_resyncs() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        let text = r#"
>>> 1
GET /long HTTP/1.1\r\n
X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n
\r\n
GET /short HTTP/1.1\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
1HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
2
"#;
        let out = assert_incremental_with(text, limits, 1);
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), body(&c.response).to_vec(), errors(c)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/long", b"1".to_vec(), vec!["header_too_long"]),
                ("/short", b"2".to_vec(), vec![])
            ]
        );
        assert_eq!(out.anomalies, vec!["header_too_long", "resync"]);
    }

    #[test]
    fn too_many_pending_emits_the_oldest() {
        let limits = Limits {
            max_pending: 2,
            ..Limits::default()
        };
        let text = r#"
>>> 1
GET /1 HTTP/1.1\r\n
\r\n
GET /2 HTTP/1.1\r\n
\r\n
GET /3 HTTP/1.1\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
1HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
2HTTP/1.1 200 OK\r\n
Content-Length: 1\r\n
\r\n
3
"#;
        let out = assert_incremental_with(text, limits, 1);
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), body(&c.response).to_vec(), errors(c)))
            .collect();
        // The first request is pushed out unanswered; its response then
        // has no request left to pair with, and order is kept for the rest.
        assert_eq!(
            got,
            vec![
                ("/1", vec![], vec!["too_many_pending"]),
                ("", b"1".to_vec(), vec!["no_request"]),
                ("/2", b"2".to_vec(), vec![]),
                ("/3", b"3".to_vec(), vec![]),
            ]
        );
    }

    #[test]
    fn websocket_upgrade_hands_over() {
        // Shape of the handshake in suricata-verify websocket.pcap.
        let out = assert_incremental(
            r#"
>>> 1
GET /chat HTTP/1.1\r\n
Host: server.example.com\r\n
Upgrade: websocket\r\n
Connection: Upgrade\r\n
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n
Sec-WebSocket-Version: 13\r\n
\r\n
<<< 2
HTTP/1.1 101 Switching Protocols\r\n
Upgrade: websocket\r\n
Connection: Upgrade\r\n
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n
\r\n
\x81\x05Hello
>>> 3
\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58GET / HTTP/1.1\r\n
\r\n
<<< 4
HTTP/1.1 200 OK\r\n
\r\n
"#,
        );
        let c = &out.calls[0];
        assert_eq!(c.status_code, 101);
        assert_eq!(c.response.headers.get("upgrade"), Some("websocket"));
        assert!(c.errors.is_empty());
        // The rest is the WebSocket session's: both "Hello" frames are
        // messages, and the HTTP-looking bytes after them are not HTTP.
        for ws in &out.calls[1..3] {
            assert_eq!(ws.protocol, Some(Protocol::Ws));
            assert_eq!(ws.attrs.str("ws_opcode"), "text");
            assert_eq!(
                ws.attrs.int("ws_request_payload_length")
                    + ws.attrs.int("ws_response_payload_length"),
                5
            );
        }
        assert!(
            out.calls
                .iter()
                .skip(1)
                .all(|c| c.protocol == Some(Protocol::Ws))
        );
    }

    #[test]
    fn declined_upgrade_keeps_parsing_held_bytes() {
        let out = assert_incremental(
            r#"
>>> 1
GET /ws HTTP/1.1\r\n
Upgrade: websocket\r\n
Connection: Upgrade\r\n
\r\n
GET /after HTTP/1.1\r\n
\r\n
<<< 2
HTTP/1.1 400 Bad Request\r\n
Content-Length: 3\r\n
\r\n
no!HTTP/1.1 200 OK\r\n
Content-Length: 0\r\n
\r\n
"#,
        );
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), c.status_code))
            .collect();
        assert_eq!(got, vec![("/ws", 400), ("/after", 200)]);
    }

    #[test]
    fn connect_tunnel() {
        let out = assert_incremental(
            r#"
>>> 1
CONNECT example.com:443 HTTP/1.1\r\n
Host: example.com:443\r\n
\r\n
<<< 2
HTTP/1.1 200 Connection established\r\n
\r\n
>>> 3
\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03
<<< 4
\x16\x03\x03\x00\x7a\x02
"#,
        );
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!(
            (c.method.as_str(), c.path.as_str(), c.status_code),
            ("CONNECT", "example.com:443", 200)
        );
        assert!(out.anomalies.is_empty());
    }

    #[test]
    fn response_without_request() {
        // A capture that starts after the request was sent.
        let out = run_text(
            r#"
<<< 5
HTTP/1.1 500 Internal Server Error\r\n
Content-Length: 2\r\n
\r\n
{}
"#,
        );
        assert_eq!(out.calls.len(), 1);
        let c = &out.calls[0];
        assert_eq!(
            (c.has_request, c.has_response, c.status_code, c.timestamp),
            (false, true, 500, 5)
        );
        assert_eq!(errors(c), vec!["no_request"]);
    }

    #[test]
    fn body_cap_counts_the_rest() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let text = r#"
>>> 1
POST /x HTTP/1.1\r\n
Content-Length: 10\r\n
\r\n
0123456789
<<< 2
HTTP/1.1 200 OK\r\n
Transfer-Encoding: chunked\r\n
\r\n
6\r\n
abcdef\r\n
0\r\n
\r\n
"#;
        let out = assert_incremental_with(text, limits, 1);
        let c = &out.calls[0];
        assert_eq!(body(&c.request), b"0123");
        assert!(c.request.body.as_ref().unwrap().truncated);
        assert_eq!(c.request_body_size, 10);
        assert_eq!(body(&c.response), b"abcd");
        assert_eq!(c.response_body_size, 6);
    }

    #[test]
    fn undecodable_body_is_kept_raw() {
        let out = run_text(
            r#"
>>> 1
GET / HTTP/1.1\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Content-Encoding: gzip\r\n
Content-Length: 9\r\n
\r\n
not gzip!
"#,
        );
        let c = &out.calls[0];
        assert_eq!(body(&c.response), b"not gzip!");
        assert_eq!(errors(c), vec!["body_decode_failed"]);
    }

    #[test]
    fn incomplete_body_at_close() {
        let out = run_text(
            r#"
>>> 1
GET / HTTP/1.1\r\n
\r\n
<<< 2
HTTP/1.1 200 OK\r\n
Content-Length: 100\r\n
\r\n
partial
"#,
        );
        let c = &out.calls[0];
        assert_eq!(body(&c.response), b"partial");
        assert_eq!(errors(c), vec!["incomplete"]);
        assert!(c.response.body.as_ref().unwrap().truncated);
    }

    #[test]
    fn garbage_is_skipped_and_never_panics() {
        let out = run_text(
            r#"
>>> 1
\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n
\r\n
GET /real HTTP/1.1\r\n
\r\n
<<< 2
\x00\x01\x02\r\n
HTTP/1.1 200 OK\r\n
Content-Length: 0\r\n
\r\n
"#,
        );
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), c.status_code))
            .collect();
        assert_eq!(got, vec![("/real", 200)]);
        assert!(out.anomalies.contains(&"resync"));
    }

    #[test]
    fn malformed_request_lines_still_pair() {
        // Request lines from zeek's http/methods.trace
        // (http-zeek-http-methods.pcap, one connection each), where tshark
        // still sees requests; the responses are shortened.
        let cases = [
            (
                r"GET / HTTP/1.\n",
                Some(("GET", "/", "HTTP/1.", vec!["bad_request_line"])),
            ),
            (
                r"GET /HTTP/1.1\n",
                Some(("GET", "/HTTP/1.1", "HTTP/1.0", vec!["bad_request_line"])),
            ),
            (
                r"OPTIONS\n",
                Some(("OPTIONS", "", "HTTP/1.0", vec!["bad_request_line"])),
            ),
            (
                r"CCM_POST / HTTP/1.1\n",
                Some(("CCM_POST", "/", "HTTP/1.1", vec![])),
            ),
            (r"GET/ HTTP/1.1\n", None),
        ];
        for (line, want) in cases {
            let text = format!(
                ">>> 1\n{line}\nHost: www.google.com\\n\n\\n\n<<< 2\nHTTP/1.0 400 Bad Request\\r\\n\nContent-Length: 2\\r\\n\n\\r\\n\nno\n"
            );
            let out = assert_incremental(&text);
            assert_eq!(out.calls.len(), 1, "{line}");
            let c = &out.calls[0];
            match want {
                Some((method, url, version, errs)) => {
                    assert_eq!(
                        (
                            c.method.as_str(),
                            c.url.as_str(),
                            c.http_version.as_str(),
                            errors(c)
                        ),
                        (method, url, version, errs),
                        "{line}"
                    );
                    assert_eq!(c.request.headers.get("host"), Some("www.google.com"));
                    assert_eq!(c.status_code, 400);
                }
                None => assert_eq!(errors(c), vec!["no_request"], "{line}"),
            }
        }
    }

    #[test]
    fn keep_alive_byte_before_first_request() {
        // Shape of tcp.stream 1 of http-pcapplusplus-many-protocols.pcap: the
        // capture starts with a TCP keep-alive's garbage byte.
        let out = run_text(
            r#"
>>> 1
\x00
>>> 2
GET /ping?h=ynet.co.il HTTP/1.1\r\n
Host: ping.chartbeat.net\r\n
\r\n
<<< 3
HTTP/1.1 200 OK\r\n
Content-Length: 0\r\n
\r\n
"#,
        );
        let got: Vec<_> = out
            .calls
            .iter()
            .map(|c| (c.path.as_str(), c.status_code, errors(c)))
            .collect();
        assert_eq!(got, vec![("/ping", 200, vec![])]);
        assert_eq!(out.anomalies, vec!["bad_head", "resync"]);
    }

    /// xorshift64*: a deterministic stream of pseudo-random numbers.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn mutated_conversations_never_panic() {
        let sources = [
            KEEP_ALIVE,
            PIPELINED,
            CHUNKED,
            NO_BODY_RESPONSES,
            REQUEST_BODIES,
            CLOSE_DELIMITED,
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let limits = Limits {
            max_pending: 3,
            max_head_bytes: 48,
            max_body_bytes: 8,
            ..Limits::default()
        };
        for round in 0..3000 {
            let mut events = parse_fixture(sources[round % sources.len()]);
            for ev in &mut events {
                if let Ev::Data(_, _, bytes) = ev {
                    for _ in 0..rng.below(4) {
                        if bytes.is_empty() {
                            break;
                        }
                        let i = rng.below(bytes.len());
                        match rng.below(4) {
                            0 => bytes[i] = rng.next() as u8,
                            1 => {
                                bytes.remove(i);
                            }
                            2 => bytes.insert(i, b"\r\n:; 0HTTP/1.1 GET "[rng.below(19)]),
                            _ => bytes.truncate(i),
                        }
                    }
                }
            }
            if rng.below(3) == 0 {
                let at = rng.below(events.len());
                let dir = if rng.below(2) == 0 {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                events.insert(at, Ev::Gap(dir, rng.below(50) as u64 + 1));
            }
            let use_limits = if round % 2 == 0 {
                limits
            } else {
                Limits::default()
            };
            let whole = run(&events, use_limits);
            let cut = rng.below(7) + 1;
            let _ = run_cut(&events, use_limits, &|_, len| {
                (1..len).step_by(cut).collect()
            });
            let _ = whole;
        }
        // Pure noise, both ways.
        for _ in 0..500 {
            let mut s = Http1Session::new(limits);
            let mut e = Emitter::new();
            for _ in 0..20 {
                let n = rng.below(64);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let dir = if rng.below(2) == 0 {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                match rng.below(10) {
                    0 => s.gap(dir, 0, rng.next() >> rng.below(64), &mut e),
                    1 => s.end(dir, 0, &mut e),
                    _ => s.data(dir, 0, &bytes, &mut e),
                }
            }
            s.close(0, &mut e);
        }
    }
}
