//! One AMQP 0-9-1 connection: skips the protocol header, frames both
//! directions (method frames kept up to the head cap, body frames
//! streamed into the message they belong to), and turns methods into
//! calls. A synchronous method and its answer (`queue.declare` →
//! `queue.declare-ok`, `connection.start` from the server →
//! `connection.start-ok`) is one call whose request is the sender's; a
//! `channel.close` or `connection.close` that interrupts a pending
//! request answers it (that is how a broker reports a failed method).
//! `basic.publish`, `basic.deliver` and `basic.return` are one-sided
//! calls carrying their content (body kept up to the body cap);
//! acknowledgements and other asynchronous methods are one-sided calls
//! without content; heartbeats are not calls. After a gap the direction
//! is given up. Created by [`super::new_session`].

use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Protocol};

use super::parser::{
    self, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_LEN, FRAME_METHOD, Method,
};
use crate::seam::{Emitter, Limits, Session};

/// A call being built: the method that opened it and what has been
/// learned since.
#[derive(Debug)]
struct Open {
    /// Sender of the request.
    dir: Direction,
    channel: u16,
    method: Method,
    call: Call,
    /// Content still expected: (body bytes declared, received so far).
    content: Option<(u64, u64)>,
    /// The content belongs to the response (basic.get-ok).
    content_in_response: bool,
}

/// One direction's frame reader.
#[derive(Debug, Default)]
struct Reader {
    /// The protocol header (8 bytes) is still to be skipped, if present.
    at_start: bool,
    skip_header: usize,
    header: Vec<u8>,
    frame: Option<parser::FrameHeader>,
    /// Payload bytes of the current frame still to come.
    left: usize,
    /// Payload kept (method and content-header frames).
    payload: Vec<u8>,
    start: Nanos,
    lost: bool,
}

#[derive(Debug)]
pub struct AmqpSession {
    limits: Limits,
    client: Reader,
    server: Reader,
    /// Requests waiting for their answers, and one-sided calls waiting
    /// for their content, oldest first.
    open: Vec<Open>,
}

fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl AmqpSession {
    pub fn new(limits: Limits) -> AmqpSession {
        let reader = || Reader {
            at_start: true,
            ..Reader::default()
        };
        AmqpSession {
            limits,
            client: reader(),
            server: reader(),
            open: Vec::new(),
        }
    }

    fn reader(&mut self, dir: Direction) -> &mut Reader {
        match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        }
    }

    fn feed(&mut self, dir: Direction, ts: Nanos, mut data: &[u8], out: &mut Emitter) {
        let cap = self.limits.max_head_bytes;
        while !data.is_empty() {
            let r = self.reader(dir);
            if r.lost {
                return;
            }
            if r.at_start {
                // "AMQP" + version: the client's opening, or a server
                // refusing the version. Anything else starts with frames.
                if r.skip_header == 0 && data.first() != Some(&b'A') {
                    r.at_start = false;
                    continue;
                }
                let n = (8 - r.skip_header).min(data.len());
                r.skip_header += n;
                data = data.get(n..).unwrap_or_default();
                if r.skip_header == 8 {
                    r.at_start = false;
                }
                continue;
            }
            let Some(frame) = r.frame else {
                if r.header.is_empty() {
                    r.start = ts;
                }
                let n = (FRAME_HEADER_LEN - r.header.len()).min(data.len());
                r.header
                    .extend_from_slice(data.get(..n).unwrap_or_default());
                data = data.get(n..).unwrap_or_default();
                if r.header.len() < FRAME_HEADER_LEN {
                    return;
                }
                match parser::frame_header(&r.header) {
                    Some(h) => {
                        r.frame = Some(h);
                        // Payload plus the frame-end octet.
                        r.left = h.size + 1;
                        r.header.clear();
                    }
                    None => {
                        r.lost = true;
                        out.anomaly(ts, "amqp_bad_frame");
                        return;
                    }
                }
                continue;
            };
            let n = r.left.min(data.len());
            let (chunk, rest) = data.split_at(n);
            data = rest;
            // Bytes of the payload in this chunk (the last byte of a
            // frame is its end marker).
            let payload_left = r.left.saturating_sub(1);
            let body = chunk
                .get(..payload_left.min(chunk.len()))
                .unwrap_or_default();
            r.left -= n;
            if frame.ty == FRAME_BODY {
                self.body_chunk(dir, frame.channel, body);
            } else {
                let r = self.reader(dir);
                let room = cap.saturating_sub(r.payload.len());
                r.payload
                    .extend_from_slice(body.get(..room.min(body.len())).unwrap_or_default());
            }
            let r = self.reader(dir);
            if r.left == 0 {
                let end_ok = chunk.last() == Some(&FRAME_END);
                let payload = std::mem::take(&mut r.payload);
                let start = r.start;
                r.frame = None;
                if !end_ok {
                    r.lost = true;
                    out.anomaly(ts, "amqp_bad_frame_end");
                    return;
                }
                self.on_frame(dir, frame, &payload, start, ts, out);
            }
        }
    }

    fn on_frame(
        &mut self,
        dir: Direction,
        frame: parser::FrameHeader,
        payload: &[u8],
        start: Nanos,
        ts: Nanos,
        out: &mut Emitter,
    ) {
        let frame_len = (frame.size + 8) as u64;
        match frame.ty {
            FRAME_METHOD => match parser::parse_method(payload) {
                Some(m) => self.on_method(dir, frame.channel, m, frame_len, start, ts, out),
                None => out.anomaly(ts, "amqp_bad_method"),
            },
            FRAME_HEADER => {
                let h = parser::parse_content_header(payload);
                let Some(i) = self.content_target(dir, frame.channel) else {
                    return;
                };
                let Some(o) = self.open.get_mut(i) else {
                    return;
                };
                add_len(o, frame_len);
                let size = h.as_ref().map_or(0, |h| h.body_size);
                o.content = Some((size, 0));
                o.call.attrs.set("amqp_body_size", len_i64(size));
                if let Some(ct) = h.and_then(|h| h.content_type) {
                    o.call.attrs.set("amqp_content_type", ct);
                }
                if size == 0 {
                    self.finish(i, ts, out);
                }
            }
            FRAME_BODY => {
                if let Some(i) = self.content_target(dir, frame.channel) {
                    if let Some(o) = self.open.get_mut(i) {
                        add_len(o, frame_len);
                    }
                    if self
                        .open
                        .get(i)
                        .and_then(|o| o.content)
                        .is_some_and(|(size, got)| got >= size)
                    {
                        self.finish(i, ts, out);
                    }
                }
            }
            // Heartbeats (and type 4, an old heartbeat) are not calls.
            _ => {}
        }
    }

    /// The open call whose content `dir` is sending on `channel`.
    fn content_target(&self, dir: Direction, channel: u16) -> Option<usize> {
        self.open.iter().position(|o| {
            o.channel == channel
                && o.content.is_some()
                && (if o.content_in_response {
                    o.dir != dir
                } else {
                    o.dir == dir
                })
        })
    }

    /// Streams body bytes into the message they belong to (kept up to
    /// the body cap, counted beyond).
    fn body_chunk(&mut self, dir: Direction, channel: u16, bytes: &[u8]) {
        let cap = self.limits.max_body_bytes;
        let Some(i) = self.content_target(dir, channel) else {
            return;
        };
        let Some(o) = self.open.get_mut(i) else {
            return;
        };
        if let Some((_, got)) = &mut o.content {
            *got += bytes.len() as u64;
        }
        let msg = if o.content_in_response {
            &mut o.call.response
        } else {
            &mut o.call.request
        };
        let body = msg.body.get_or_insert_with(|| Body {
            data: Vec::new(),
            truncated: false,
            decoded_from: None,
        });
        let room = cap.saturating_sub(body.data.len());
        if bytes.len() > room {
            body.truncated = true;
        }
        body.data
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        if o.content_in_response {
            o.call.response_body_size += bytes.len() as u64;
        } else {
            o.call.request_body_size += bytes.len() as u64;
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one frame's facts")]
    fn on_method(
        &mut self,
        dir: Direction,
        channel: u16,
        m: Method,
        frame_len: u64,
        start: Nanos,
        ts: Nanos,
        out: &mut Emitter,
    ) {
        // A method on a channel ends content still open there.
        while let Some(i) = self.content_target(dir, channel) {
            self.finish(i, ts, out);
        }
        let (class, method) = (m.class, m.method);
        if let Some((rc, rm)) = parser::answers(class, method) {
            let found = self.open.iter().rposition(|o| {
                o.dir != dir
                    && o.channel == channel
                    && o.content.is_none()
                    && o.method.class == rc
                    && o.method.method == rm
            });
            match found {
                Some(i) => {
                    if let Some(o) = self.open.get_mut(i) {
                        answer(o, &m, frame_len, ts);
                        if parser::carries_content(class, method) {
                            o.content = Some((u64::MAX, 0));
                            o.content_in_response = true;
                            return;
                        }
                    }
                    self.finish(i, ts, out);
                }
                None => {
                    let mut call = new_call(channel, &m, frame_len, start);
                    call.has_request = false;
                    call.has_response = true;
                    call.attrs.set("amqp_request", false);
                    call.attrs.set("amqp_response", true);
                    call.attrs.set("amqp_response_method", m.name());
                    call.errors.push("no_request".to_owned());
                    out.call(dir.reverse(), call);
                }
            }
            return;
        }
        let is_close = matches!((class, method), (10, 50) | (20, 40));
        if is_close {
            // A close from the other side answers the request it
            // interrupts (a failed declare, a refused publish).
            let interrupted = self.open.iter().rposition(|o| {
                o.dir != dir
                    && (class == 10 || o.channel == channel)
                    && o.content.is_none()
                    && parser::expects_answer(o.method.class, o.method.method)
            });
            if let Some(i) = interrupted {
                if let Some(o) = self.open.get_mut(i) {
                    answer(o, &m, frame_len, ts);
                }
                self.finish(i, ts, out);
            }
        }
        let call = new_call(channel, &m, frame_len, start);
        let content = parser::carries_content(class, method);
        let waits = parser::expects_answer(class, method) && !m.no_wait;
        let open = Open {
            dir,
            channel,
            method: m,
            call,
            content: content.then_some((u64::MAX, 0)),
            content_in_response: false,
        };
        if content || waits {
            self.open.push(open);
            if self.open.len() > self.limits.max_pending {
                let mut o = self.open.remove(0);
                o.call.errors.push("too_many_pending".to_owned());
                out.call(o.dir, o.call);
            }
        } else {
            // Asynchronous and without content: a call of its own.
            out.call(dir, open.call);
        }
    }

    fn finish(&mut self, i: usize, _ts: Nanos, out: &mut Emitter) {
        if i >= self.open.len() {
            return;
        }
        let mut o = self.open.remove(i);
        if let Some((size, got)) = o.content
            && size != u64::MAX
            && got < size
        {
            o.call.errors.push("content_incomplete".to_owned());
        }
        if parser::expects_answer(o.method.class, o.method.method)
            && !o.method.no_wait
            && !o.call.has_response
        {
            o.call.errors.push("no_response".to_owned());
        }
        let total =
            o.call.attrs.int("amqp_request_length") + o.call.attrs.int("amqp_response_length");
        o.call.attrs.set("amqp_total_size", total);
        out.call(o.dir, o.call);
    }
}

fn add_len(o: &mut Open, n: u64) {
    let key = if o.content_in_response {
        "amqp_response_length"
    } else {
        "amqp_request_length"
    };
    let v = o.call.attrs.int(key) + len_i64(n);
    o.call.attrs.set(key, v);
}

/// A call opened by method `m`.
fn new_call(channel: u16, m: &Method, frame_len: u64, start: Nanos) -> Call {
    let mut call = Call::new(Protocol::Amqp);
    call.timestamp = start;
    call.has_request = true;
    let name = m.name();
    call.method.clone_from(&name);
    let a = &mut call.attrs;
    a.set("amqp_method", name);
    a.set("amqp_channel", i64::from(channel));
    a.set("amqp_request", true);
    a.set("amqp_request_length", len_i64(frame_len));
    let mut summary = Vec::new();
    if let Some(e) = &m.exchange {
        a.set("amqp_exchange", e.clone());
        summary.push(format!("exchange={e}"));
    }
    if let Some(k) = &m.routing_key {
        a.set("amqp_routing_key", k.clone());
        summary.push(format!("routing_key={k}"));
    }
    if let Some(q) = &m.queue {
        a.set("amqp_queue", q.clone());
        summary.push(format!("queue={q}"));
    }
    if let Some(c) = m.reply_code {
        a.set("amqp_reply_code", i64::from(c));
        summary.push(format!("reply_code={c}"));
    }
    if let Some(t) = &m.reply_text {
        a.set("amqp_reply_text", t.clone());
    }
    call.path = m
        .queue
        .clone()
        .or_else(|| m.exchange.clone())
        .unwrap_or_default();
    call.attrs.set("amqp_summary", summary.join(" "));
    call
}

/// Records answer `m` on the open call.
fn answer(o: &mut Open, m: &Method, frame_len: u64, ts: Nanos) {
    let c = &mut o.call;
    c.has_response = true;
    c.elapsed_time = (ts - c.timestamp).max(0) / 1_000;
    c.attrs.set("amqp_response", true);
    c.attrs.set("amqp_response_method", m.name());
    c.attrs.set("amqp_response_length", len_i64(frame_len));
    // get-ok names the exchange and routing key the message came by.
    if let Some(e) = &m.exchange {
        c.attrs.set("amqp_exchange", e.clone());
    }
    if let Some(k) = &m.routing_key {
        c.attrs.set("amqp_routing_key", k.clone());
    }
    if let Some(q) = &m.queue
        && !q.is_empty()
    {
        // declare-ok names the queue the server chose.
        c.attrs.set("amqp_queue", q.clone());
    }
    if let Some(code) = m.reply_code {
        c.attrs.set("amqp_reply_code", i64::from(code));
        c.errors.push("amqp_closed".to_owned());
    }
    if let Some(t) = &m.reply_text {
        c.attrs.set("amqp_reply_text", t.clone());
    }
}

impl Session for AmqpSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        self.feed(dir, ts, data, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        let r = self.reader(dir);
        if !r.lost {
            out.anomaly(ts, "amqp_gap");
        }
        r.lost = true;
    }

    fn end(&mut self, _dir: Direction, _ts: Nanos, _out: &mut Emitter) {}

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        while !self.open.is_empty() {
            self.finish(0, ts, out);
        }
    }
}
