//! [`Http2Session`]: one HTTP/2 connection (h2c with prior knowledge,
//! after an HTTP/1.1 `Upgrade: h2c`, or captured mid-connection). It reads
//! each direction's frames (DATA streamed, never buffered whole; header
//! blocks gathered over CONTINUATION and decoded with that direction's
//! HPACK table; padding stripped), keeps one [`Stream`] per stream id and
//! emits one [`Call`] per stream when both halves have ended, or when it
//! is reset, refused by GOAWAY, or the connection closes.
//!
//! Created by [`super::new_session`] (the registry) and by
//! [`super::after_upgrade`] (the HTTP/1 session, once the server said 101).
//!
//! Choices worth knowing:
//! - Roles come from the content, not from the flow table: the sender of
//!   the preface, or of the first header block with `:method`, is the
//!   client (a capture that starts mid-connection may have the SYN-less
//!   flow the other way round). Calls are emitted in the client's
//!   direction.
//! - A direction that does not open with the preface or a SETTINGS frame
//!   started before the capture: its HPACK table is [`Decoder::forget`]-ed,
//!   fields that reference entries never seen are left out and the call
//!   says `hpack_unknown_index`; bodies are counted all the same.
//! - gRPC (`content-type: application/grpc*`) streams become `grpc` calls
//!   with the fields of [`crate::protocols::grpc`].
//! - Trailers (a second header block on a half) join that half's headers,
//!   as HTTP/1 chunked trailers do; 1xx responses go to
//!   `interim_status_codes`.
//! - RST_STREAM ends its stream's call at once (`rst_stream_<code>` unless
//!   NO_ERROR); GOAWAY ends the streams it says were not processed
//!   (`goaway_<code>`).
//! - After a gap that is not inside a DATA payload, the direction looks
//!   for two consecutive plausible frame headers and carries on from
//!   there (anomaly `resync`); its HPACK table is forgotten, as a lost
//!   block may have changed it.
//! - SETTINGS_HEADER_TABLE_SIZE only bounds the size updates the peer's
//!   encoder may send (RFC 7541 §4.2); the decoder follows the updates
//!   themselves, so the setting is read but changes nothing here.

use std::collections::BTreeMap;

use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Headers, Protocol};

use super::frame::{self, FrameHeader};
use super::hpack::{Decoder, FieldError};
use crate::protocols::grpc::{self, MessageReader};
use crate::protocols::http1::decode::decode_body;
use crate::protocols::http1::parser::{Coding, split_target};
use crate::seam::{Emitter, Limits, Session};

/// Header block bytes (HEADERS plus CONTINUATION) gathered before
/// decoding. Servers refuse far smaller header lists (nginx 32 KiB for a
/// request head, Go 1 MiB decoded); a longer block is skipped, marked
/// `header_too_long`, and the direction's table forgotten.
pub const MAX_HEADER_BLOCK_BYTES: usize = 256 * 1024;

/// Payload bytes kept of a control frame (SETTINGS, PING, GOAWAY,
/// RST_STREAM, WINDOW_UPDATE, PRIORITY): only their first bytes matter
/// (GOAWAY's debug data can be long and is not read).
const MAX_CONTROL_PAYLOAD: usize = 1024;

/// Bytes held while looking for frames again after a gap: a few maximum
/// size frames; past it the older half is dropped.
const MAX_RESYNC_BYTES: usize = 64 * 1024;

/// Steps in a row that may consume nothing before the rest of a data
/// chunk is dropped (as in the HTTP/1 session: a guard against a bug
/// turning into an endless loop on someone's traffic).
const MAX_IDLE_STEPS: u32 = 16;

/// Where one direction's frame reader stands.
#[derive(Debug)]
enum Read {
    /// Before the first frame: the bytes may be the client preface.
    Start,
    /// Reading a frame header (partly in `buf`).
    Header,
    /// A non-DATA frame's payload: `left` bytes to come; the first
    /// `keep` of the payload are gathered in `buf`.
    Payload {
        h: FrameHeader,
        left: usize,
        keep: usize,
    },
    /// A DATA payload, streamed to its stream.
    Data {
        h: FrameHeader,
        left: usize,
        /// The pad length byte is still to come.
        pad_pending: bool,
        pad: usize,
    },
    /// Lost step: looking for frames in `buf`.
    Resync,
}

/// A header block waiting for its CONTINUATION frames.
#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    /// Set for PUSH_PROMISE: the stream it promises.
    promised: Option<u32>,
    end_stream: bool,
    fragment: Vec<u8>,
    /// Frame payload bytes of the block on the wire.
    wire: u64,
    too_long: bool,
}

#[derive(Debug)]
struct Side {
    read: Read,
    buf: Vec<u8>,
    /// Timestamp of the data chunk the current frame started in.
    frame_ts: Nanos,
    hpack: Decoder,
    block: Option<PendingBlock>,
}

impl Side {
    fn new() -> Side {
        Side {
            read: Read::Start,
            buf: Vec::new(),
            frame_ts: 0,
            hpack: Decoder::new(),
            block: None,
        }
    }
}

/// One half (request or response) of a stream.
#[derive(Debug, Default)]
struct Half {
    headers: Headers,
    trailers: Headers,
    /// A header block was decoded for this half (its first one).
    headers_seen: bool,
    /// Response only: a final (non-1xx) status arrived.
    final_seen: bool,
    ended: bool,
    data_seen: bool,
    header_bytes: u64,
    kept: Vec<u8>,
    body_size: u64,
    truncated: bool,
    gap: bool,
    grpc: MessageReader,
    first_ts: Option<Nanos>,
    last_ts: Nanos,
}

impl Half {
    fn touch(&mut self, ts: Nanos) {
        self.first_ts.get_or_insert(ts);
        self.last_ts = ts;
    }

    fn seen(&self) -> bool {
        self.headers_seen || self.data_seen || self.ended
    }
}

#[derive(Debug, Default)]
struct Stream {
    req: Half,
    resp: Half,
    interim: Vec<i32>,
    errors: Vec<String>,
}

/// The HTTP/2 state of one TCP connection.
#[derive(Debug)]
pub struct Http2Session {
    limits: Limits,
    /// Bytes the pipeline's ToServer direction sends.
    up: Side,
    /// Bytes the pipeline's ToClient direction sends.
    down: Side,
    /// The pipeline direction the HTTP/2 client sends in.
    client: Direction,
    client_known: bool,
    streams: BTreeMap<u32, Stream>,
}

/// The side reading `dir`, as a field borrow (so that other fields stay
/// usable beside it).
macro_rules! side {
    ($s:expr, $dir:expr) => {
        match $dir {
            Direction::ToServer => &mut $s.up,
            Direction::ToClient => &mut $s.down,
        }
    };
}

impl Http2Session {
    pub fn new(limits: Limits) -> Http2Session {
        Http2Session {
            limits,
            up: Side::new(),
            down: Side::new(),
            client: Direction::ToServer,
            client_known: false,
            streams: BTreeMap::new(),
        }
    }

    /// The session for a connection that switched from HTTP/1.1 with
    /// `Upgrade: h2c` (RFC 7540 §3.2): `request` (the HTTP/1.1 request
    /// that asked) is stream 1's request, already complete; the server's
    /// response comes on stream 1.
    pub fn after_upgrade(limits: Limits, request: &Call) -> Http2Session {
        let mut s = Http2Session::new(limits);
        s.client_known = true;
        let mut req = Half::default();
        req.headers.push(":method", &request.method);
        req.headers.push(":path", &request.url);
        if let Some(host) = request.request.headers.get("host") {
            req.headers.push(":authority", host);
        }
        req.headers
            .0
            .extend(request.request.headers.0.iter().cloned());
        req.headers_seen = true;
        req.ended = true;
        req.header_bytes = request.request_header_size;
        req.first_ts = Some(request.timestamp);
        req.last_ts = request.timestamp;
        s.streams.insert(
            1,
            Stream {
                req,
                ..Stream::default()
            },
        );
        s
    }

    fn feed(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        let mut input = data;
        let mut idle = 0u32;
        while !input.is_empty() {
            let used = self.step(dir, ts, input, out);
            if used == 0 {
                idle += 1;
                if idle > MAX_IDLE_STEPS {
                    out.anomaly(ts, "parser_stuck");
                    self.lose_step(dir, ts, out);
                    return;
                }
            } else {
                idle = 0;
            }
            input = input.get(used..).unwrap_or_default();
        }
    }

    /// One move of a direction's reader; returns input bytes used.
    fn step(&mut self, dir: Direction, ts: Nanos, input: &[u8], out: &mut Emitter) -> usize {
        let side = side!(self, dir);
        match &mut side.read {
            Read::Start => {
                let take = (frame::PREFACE.len().saturating_sub(side.buf.len())).min(input.len());
                side.buf
                    .extend_from_slice(input.get(..take).unwrap_or(input));
                let buf = side.buf.as_slice();
                let common = buf.len().min(frame::PREFACE.len());
                let is_prefix = buf.get(..common) == frame::PREFACE.get(..common);
                if is_prefix && buf.len() < frame::PREFACE.len() {
                    return take;
                }
                if is_prefix {
                    // The client preface: this direction is the client's,
                    // and both tables start empty and known.
                    side.buf.clear();
                    side.read = Read::Header;
                    self.set_client(dir, out);
                    return take;
                }
                // Frames from the first byte: the held bytes are replayed
                // as a frame header.
                let held = std::mem::take(&mut side.buf);
                side.read = Read::Header;
                let opens_with_settings = frame::parse_header(&held)
                    .or_else(|| {
                        let mut first = held.clone();
                        first.extend_from_slice(input.get(take..).unwrap_or_default());
                        frame::parse_header(&first)
                    })
                    .is_some_and(|h| h.kind == frame::SETTINGS && h.flags & frame::FLAG_ACK == 0);
                if !opens_with_settings {
                    side.hpack.forget();
                }
                self.feed(dir, ts, &held, out);
                take
            }
            Read::Header => {
                let have = side.buf.len();
                if have == 0 && input.len() >= frame::HEADER_LEN {
                    let h = frame::parse_header(input);
                    if let Some(h) = h {
                        side.frame_ts = ts;
                        self.on_header(dir, h, out);
                    }
                    return frame::HEADER_LEN;
                }
                if have == 0 {
                    side.frame_ts = ts;
                }
                let take = (frame::HEADER_LEN - have).min(input.len());
                side.buf
                    .extend_from_slice(input.get(..take).unwrap_or(input));
                if side.buf.len() == frame::HEADER_LEN {
                    let h = frame::parse_header(&side.buf);
                    side.buf.clear();
                    if let Some(h) = h {
                        self.on_header(dir, h, out);
                    }
                }
                take
            }
            Read::Payload { h, left, keep } => {
                let n = (*left).min(input.len());
                let room = keep.saturating_sub(side.buf.len()).min(n);
                side.buf
                    .extend_from_slice(input.get(..room).unwrap_or_default());
                *left -= n;
                if *left == 0 {
                    let h = *h;
                    side.read = Read::Header;
                    let payload = std::mem::take(&mut side.buf);
                    self.on_frame(dir, h, &payload, out);
                    let side = side!(self, dir);
                    if side.buf.is_empty() {
                        side.buf = payload;
                        side.buf.clear();
                    }
                }
                n
            }
            Read::Data {
                h,
                left,
                pad_pending,
                pad,
            } => {
                let h = *h;
                if *pad_pending {
                    let p = usize::from(input.first().copied().unwrap_or(0));
                    *pad_pending = false;
                    *left -= 1;
                    *pad = p.min(*left);
                    if *left == 0 {
                        side.read = Read::Header;
                        self.data_end(dir, h, out);
                    }
                    return 1;
                }
                let data_left = left.saturating_sub(*pad);
                let n = (*left).min(input.len());
                let data_n = data_left.min(n);
                *left -= n;
                let done = *left == 0;
                if done {
                    side.read = Read::Header;
                }
                let frame_ts = side.frame_ts;
                if data_n > 0 {
                    self.on_data(
                        dir,
                        h.stream,
                        frame_ts,
                        input.get(..data_n).unwrap_or(input),
                    );
                }
                if done {
                    self.data_end(dir, h, out);
                }
                n
            }
            Read::Resync => {
                let room = MAX_RESYNC_BYTES.saturating_sub(side.buf.len());
                if room == 0 {
                    let half = side.buf.len() / 2;
                    side.buf.drain(..half);
                }
                let take = input
                    .len()
                    .min(MAX_RESYNC_BYTES.saturating_sub(side.buf.len()));
                side.buf
                    .extend_from_slice(input.get(..take).unwrap_or(input));
                if let Some(at) = frame::find_chain(&side.buf) {
                    let held = std::mem::take(&mut side.buf);
                    side.read = Read::Header;
                    self.feed(dir, ts, held.get(at..).unwrap_or_default(), out);
                }
                take
            }
        }
    }

    /// A frame header arrived: decide how its payload is read.
    fn on_header(&mut self, dir: Direction, h: FrameHeader, out: &mut Emitter) {
        let side = side!(self, dir);
        // A header block interrupted by another frame is a connection
        // error (RFC 9113 §6.10); decode what came and go on.
        if side.block.is_some() && h.kind != frame::CONTINUATION {
            out.anomaly(side.frame_ts, "h2_continuation_missing");
            self.finish_block(dir, out);
        }
        if h.kind == frame::DATA {
            if h.len == 0 {
                side!(self, dir).read = Read::Header;
                self.data_end(dir, h, out);
            } else {
                side!(self, dir).read = Read::Data {
                    h,
                    left: h.len,
                    pad_pending: h.flags & frame::FLAG_PADDED != 0,
                    pad: 0,
                };
            }
            // The stream exists from its first frame on, so that the
            // payload has somewhere to go.
            self.stream(h.stream, out);
            return;
        }
        let keep = match h.kind {
            frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION => {
                h.len.min(MAX_HEADER_BLOCK_BYTES)
            }
            _ => h.len.min(MAX_CONTROL_PAYLOAD),
        };
        if h.len == 0 {
            side!(self, dir).read = Read::Header;
            self.on_frame(dir, h, &[], out);
        } else {
            side!(self, dir).read = Read::Payload {
                h,
                left: h.len,
                keep,
            };
        }
    }

    fn stream(&mut self, id: u32, out: &mut Emitter) -> &mut Stream {
        if !self.streams.contains_key(&id) {
            let max = self.limits.max_pending.max(1);
            while self.streams.len() >= max {
                let Some((old, mut st)) = self.streams.pop_first() else {
                    break;
                };
                st.errors.push("too_many_pending".to_owned());
                self.emit(old, st, out);
            }
        }
        self.streams.entry(id).or_default()
    }

    fn half_mut(&mut self, dir: Direction, id: u32, out: &mut Emitter) -> &mut Half {
        let is_req = dir == self.client;
        let st = self.stream(id, out);
        if is_req { &mut st.req } else { &mut st.resp }
    }

    fn on_data(&mut self, dir: Direction, id: u32, ts: Nanos, bytes: &[u8]) {
        let cap = self.limits.max_body_bytes;
        let is_req = dir == self.client;
        // Streams are created by the DATA frame's header; a missing one
        // was pushed out (too_many_pending) meanwhile.
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        let half = if is_req { &mut st.req } else { &mut st.resp };
        half.touch(ts);
        half.data_seen = true;
        let room = cap.saturating_sub(half.kept.len());
        let keep = bytes.get(..room).unwrap_or(bytes);
        half.kept.extend_from_slice(keep);
        if keep.len() < bytes.len() {
            half.truncated = true;
        }
        half.body_size = half.body_size.saturating_add(bytes.len() as u64);
        half.grpc.feed(bytes);
    }

    /// A DATA frame ended (or was empty).
    fn data_end(&mut self, dir: Direction, h: FrameHeader, out: &mut Emitter) {
        let ts = side!(self, dir).frame_ts;
        let half = self.half_mut(dir, h.stream, out);
        half.touch(ts);
        half.data_seen = true;
        if h.flags & frame::FLAG_END_STREAM != 0 {
            half.ended = true;
        }
        self.maybe_complete(h.stream, out);
    }

    /// A whole non-DATA frame (its payload capped as `on_header` said).
    fn on_frame(&mut self, dir: Direction, h: FrameHeader, payload: &[u8], out: &mut Emitter) {
        let ts = side!(self, dir).frame_ts;
        match h.kind {
            frame::HEADERS | frame::PUSH_PROMISE => {
                let mut body = payload;
                let mut pad = 0usize;
                if h.flags & frame::FLAG_PADDED != 0 {
                    pad = usize::from(body.first().copied().unwrap_or(0));
                    body = body.get(1..).unwrap_or_default();
                }
                let mut promised = None;
                if h.kind == frame::HEADERS && h.flags & frame::FLAG_PRIORITY != 0 {
                    body = body.get(5..).unwrap_or_default();
                } else if h.kind == frame::PUSH_PROMISE {
                    let id = body
                        .get(..4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(|b| u32::from_be_bytes(b) & 0x7fff_ffff);
                    promised = id;
                    body = body.get(4..).unwrap_or_default();
                }
                let fragment = body
                    .get(..body.len().saturating_sub(pad))
                    .unwrap_or_default();
                let too_long = h.len > MAX_HEADER_BLOCK_BYTES;
                side!(self, dir).block = Some(PendingBlock {
                    stream: h.stream,
                    promised,
                    end_stream: h.kind == frame::HEADERS && h.flags & frame::FLAG_END_STREAM != 0,
                    fragment: fragment.to_vec(),
                    wire: h.len as u64,
                    too_long,
                });
                if h.flags & frame::FLAG_END_HEADERS != 0 {
                    self.finish_block(dir, out);
                }
            }
            frame::CONTINUATION => {
                let side = side!(self, dir);
                match side.block.as_mut() {
                    Some(b) if b.stream == h.stream => {
                        b.wire = b.wire.saturating_add(h.len as u64);
                        if b.fragment.len() + payload.len() > MAX_HEADER_BLOCK_BYTES
                            || h.len > payload.len()
                        {
                            b.too_long = true;
                        } else {
                            b.fragment.extend_from_slice(payload);
                        }
                        if h.flags & frame::FLAG_END_HEADERS != 0 {
                            self.finish_block(dir, out);
                        }
                    }
                    _ => {
                        // Its HEADERS came before the capture (or in a
                        // gap): the block cannot be decoded, and the
                        // table may have changed.
                        out.anomaly(ts, "h2_orphan_continuation");
                        side.hpack.forget();
                    }
                }
            }
            frame::RST_STREAM => {
                let code = be32(payload);
                if let Some(mut st) = self.streams.remove(&h.stream) {
                    if code != 0 {
                        st.errors
                            .push(format!("rst_stream_{}", frame::error_name(code)));
                    }
                    self.emit(h.stream, st, out);
                }
            }
            frame::GOAWAY => {
                let last = be32(payload) & 0x7fff_ffff;
                let code = be32(payload.get(4..).unwrap_or_default());
                if code != 0 {
                    out.anomaly(ts, "h2_goaway_error");
                }
                // The streams the sender never processed: those its peer
                // opened (odd ids when the peer is the client) past `last`.
                let peer_is_client = dir != self.client;
                let refused: Vec<u32> = self
                    .streams
                    .keys()
                    .copied()
                    .filter(|&id| id > last && (id % 2 == 1) == peer_is_client)
                    .collect();
                for id in refused {
                    if let Some(mut st) = self.streams.remove(&id) {
                        st.errors
                            .push(format!("goaway_{}", frame::error_name(code)));
                        self.emit(id, st, out);
                    }
                }
            }
            frame::SETTINGS if !h.len.is_multiple_of(6) => out.anomaly(ts, "h2_bad_settings"),
            _ => {}
        }
    }

    /// Decode the direction's pending header block and give it to its stream.
    fn finish_block(&mut self, dir: Direction, out: &mut Emitter) {
        let side = side!(self, dir);
        let Some(block) = side.block.take() else {
            return;
        };
        let ts = side.frame_ts;
        let mut errors: Vec<&'static str> = Vec::new();
        let decoded = if block.too_long {
            side.hpack.forget();
            errors.push("header_too_long");
            Vec::new()
        } else {
            let b = side.hpack.decode(&block.fragment);
            if let Some(e) = b.error {
                // The rest of the block (and its table changes) is lost.
                side.hpack.forget();
                errors.push(e.code());
            }
            if b.field_errors.contains(&FieldError::UnknownIndex) {
                errors.push("hpack_unknown_index");
            }
            if b.field_errors.contains(&FieldError::BadIndex) {
                errors.push("hpack_bad_index");
            }
            b.fields
        };
        let has = |name: &str| decoded.iter().any(|(n, _)| n == name);
        if !self.client_known && (has(":method") || has(":status")) {
            let client = if has(":method") { dir } else { dir.reverse() };
            self.set_client(client, out);
        }
        // The whole block was decoded (the table must follow it), but a
        // call keeps at most the head cap of header text, as HTTP/1 does.
        let mut decoded = decoded;
        let mut kept = 0usize;
        let cap = self.limits.max_head_bytes;
        if let Some(cut) = decoded.iter().position(|(n, v)| {
            kept = kept.saturating_add(n.len() + v.len() + 4);
            kept > cap
        }) {
            decoded.truncate(cut);
            errors.push("header_too_long");
        }
        let headers = Headers(decoded);
        let (target, is_req) = match block.promised {
            // A promise carries the request of the stream it promises.
            Some(p) => (p, true),
            None => (block.stream, dir == self.client),
        };
        let st = self.stream(target, out);
        st.errors.extend(errors.iter().map(|e| (*e).to_owned()));
        let status = headers.get(":status").and_then(|s| s.parse::<i32>().ok());
        if is_req {
            let half = &mut st.req;
            half.touch(ts);
            half.header_bytes = half.header_bytes.saturating_add(block.wire);
            if half.headers_seen {
                half.trailers.0.extend(headers.0);
            } else {
                half.headers_seen = true;
                half.headers = headers;
            }
            if block.end_stream || block.promised.is_some() {
                half.ended = true;
            }
        } else {
            let half = &mut st.resp;
            half.touch(ts);
            half.header_bytes = half.header_bytes.saturating_add(block.wire);
            match status {
                Some(code) if (100..200).contains(&code) && !half.final_seen => {
                    st.interim.push(code);
                }
                _ if half.final_seen => half.trailers.0.extend(headers.0),
                _ => {
                    half.final_seen = true;
                    half.headers_seen = true;
                    half.headers = headers;
                }
            }
            if block.end_stream {
                st.resp.ended = true;
            }
        }
        self.maybe_complete(target, out);
    }

    /// The roles are known now: if they are not the ones assumed so far,
    /// what each stream got so far went to the wrong half.
    fn set_client(&mut self, client: Direction, out: &mut Emitter) {
        self.client_known = true;
        if client == self.client {
            return;
        }
        self.client = client;
        for st in self.streams.values_mut() {
            std::mem::swap(&mut st.req, &mut st.resp);
            // A response's first block is its final headers.
            st.resp.final_seen = st.resp.headers_seen;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.maybe_complete(id, out);
        }
    }

    /// Emit the stream when both halves are over (or the response is over
    /// and no request was ever seen: it started before the capture).
    fn maybe_complete(&mut self, id: u32, out: &mut Emitter) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|st| st.resp.ended && (st.req.ended || !st.req.seen()));
        if done && let Some(st) = self.streams.remove(&id) {
            self.emit(id, st, out);
        }
    }

    fn emit(&self, id: u32, st: Stream, out: &mut Emitter) {
        // A stream opened by a DATA frame header whose payload never came.
        if !st.req.seen() && !st.resp.seen() {
            return;
        }
        let call = build_call(id, st, self.limits.max_body_bytes);
        out.call(self.client, call);
    }

    /// Frame boundaries are lost in `dir`: drop what was in progress and
    /// look for frames again.
    fn lose_step(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        let client = self.client;
        let side = side!(self, dir);
        if let Some(b) = side.block.take()
            && let Some(st) = self.streams.get_mut(&b.promised.unwrap_or(b.stream))
        {
            st.errors.push("gap_in_headers".to_owned());
        }
        let side = side!(self, dir);
        if let Read::Data { h, .. } = side.read
            && let Some(st) = self.streams.get_mut(&h.stream)
        {
            let half = if dir == client {
                &mut st.req
            } else {
                &mut st.resp
            };
            half.gap = true;
            half.truncated = true;
            half.grpc.lost();
        }
        let side = side!(self, dir);
        side.hpack.forget();
        side.buf.clear();
        side.read = Read::Resync;
        out.anomaly(ts, "resync");
    }

    fn on_gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        if len == 0 {
            return;
        }
        let client = self.client;
        let side = side!(self, dir);
        match &mut side.read {
            Read::Data {
                h,
                left,
                pad_pending: false,
                pad,
            } if len <= left.saturating_sub(*pad) as u64 => {
                // Inside one DATA frame's data: the body is shorter, the
                // framing intact.
                let n = len as usize;
                *left -= n;
                let id = h.stream;
                if let Some(st) = self.streams.get_mut(&id) {
                    let half = if dir == client {
                        &mut st.req
                    } else {
                        &mut st.resp
                    };
                    half.body_size = half.body_size.saturating_add(len);
                    half.gap = true;
                    half.truncated = true;
                    half.grpc.lost();
                }
            }
            Read::Resync => side.buf.clear(),
            Read::Start => {
                side.buf.clear();
                side.hpack.forget();
                side.read = Read::Resync;
            }
            _ => self.lose_step(dir, ts, out),
        }
    }

    fn on_close(&mut self, out: &mut Emitter) {
        self.up.block = None;
        self.down.block = None;
        let streams = std::mem::take(&mut self.streams);
        for (id, mut st) in streams {
            if st.req.seen() && !st.resp.seen() {
                st.errors.push("no_response".to_owned());
            } else if !st.req.ended && st.req.seen() || !st.resp.ended && st.resp.seen() {
                st.errors.push("incomplete".to_owned());
            }
            self.emit(id, st, out);
        }
    }
}

impl Session for Http2Session {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        self.feed(dir, ts, data, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        self.on_gap(dir, ts, len, out);
    }

    fn end(&mut self, _dir: Direction, _ts: Nanos, _out: &mut Emitter) {
        // Streams end by END_STREAM or RST_STREAM; a half cut by the
        // close is reported at `close`.
    }

    fn close(&mut self, _ts: Nanos, out: &mut Emitter) {
        self.on_close(out);
    }
}

fn be32(b: &[u8]) -> u32 {
    b.get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

fn coding_of(headers: &Headers) -> Option<Coding> {
    let v = headers.get("content-encoding")?.trim();
    Some(
        if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Coding::Gzip
        } else if v.eq_ignore_ascii_case("deflate") {
            Coding::Deflate
        } else if v.eq_ignore_ascii_case("br") {
            Coding::Br
        } else if v.eq_ignore_ascii_case("identity") {
            return None;
        } else {
            Coding::Other
        },
    )
}

/// A half's body for display, with its errors.
fn body_of(half: &mut Half, cap: usize, errors: &mut Vec<String>) -> Option<Body> {
    if half.gap {
        errors.push("gap_in_body".to_owned());
    }
    if half.body_size == 0 || cap == 0 {
        return None;
    }
    let decoded = decode_body(
        std::mem::take(&mut half.kept),
        half.truncated,
        coding_of(&half.headers),
        cap,
    );
    if decoded.failed {
        errors.push("body_decode_failed".to_owned());
    }
    Some(Body {
        data: decoded.data,
        truncated: decoded.truncated,
        decoded_from: decoded.decoded_from,
    })
}

fn build_call(id: u32, mut st: Stream, cap: usize) -> Call {
    let grpc = [&st.req.headers, &st.resp.headers].iter().any(|h| {
        h.get("content-type")
            .is_some_and(grpc::is_grpc_content_type)
    });
    let mut call = Call::new(if grpc { Protocol::Grpc } else { Protocol::Http });
    call.http_version = "HTTP/2".to_owned();
    let mut errors = std::mem::take(&mut st.errors);
    let (req, resp) = (&mut st.req, &mut st.resp);
    call.has_request = req.seen();
    call.has_response = resp.seen();
    if let Some(m) = req.headers.get(":method") {
        call.method = m.to_owned();
    }
    if let Some(target) = req.headers.get(":path") {
        let (path, query) = split_target(target);
        call.path = path.to_owned();
        call.query_string = query.to_owned();
        call.url = target.to_owned();
    }
    if let Some(code) = resp
        .headers
        .get(":status")
        .and_then(|s| s.trim().parse().ok())
    {
        call.status_code = code;
    }
    call.interim_status_codes = std::mem::take(&mut st.interim);
    match (req.first_ts, resp.first_ts) {
        (Some(r), resp_ts) => {
            call.timestamp = r;
            if resp_ts.is_some() {
                call.elapsed_time = resp.last_ts.saturating_sub(r).max(0) / 1000;
            }
        }
        (None, Some(r)) => call.timestamp = r,
        (None, None) => {}
    }
    if !call.has_request {
        errors.push("no_request".to_owned());
    } else if !req.headers_seen {
        errors.push("no_request_headers".to_owned());
    }
    if call.has_response && !resp.headers_seen {
        errors.push("no_response_headers".to_owned());
    }
    call.request_header_size = req.header_bytes;
    call.response_header_size = resp.header_bytes;
    call.request_body_size = req.body_size;
    call.response_body_size = resp.body_size;
    call.request.body = body_of(req, cap, &mut errors);
    call.response.body = body_of(resp, cap, &mut errors);
    for (half, msg) in [
        (&mut *req, &mut call.request),
        (&mut *resp, &mut call.response),
    ] {
        msg.headers = std::mem::take(&mut half.headers);
        msg.headers.0.append(&mut half.trailers.0);
    }
    for (name, value) in call.request.headers.iter() {
        if name == "cookie" {
            for (n, v) in crate::protocols::http1::parser::cookie_pairs(value) {
                call.request.cookies.0.push((n.to_owned(), v.to_owned()));
            }
        }
    }
    let set_cookies: Vec<(String, String)> = call
        .response
        .headers
        .iter()
        .filter(|(n, _)| *n == "set-cookie")
        .filter_map(|(_, v)| crate::protocols::http1::parser::set_cookie_pair(v))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    call.response.cookies.0 = set_cookies;
    if grpc {
        grpc::fill_call(&mut call, &st.req.grpc, &st.resp.grpc);
    }
    call.attrs.set("http2_stream_id", i64::from(id));
    errors.dedup();
    call.errors = errors;
    call
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http1::Http1Session;
    use trawl_model::AttrValue;

    const C: Direction = Direction::ToServer;
    const S: Direction = Direction::ToClient;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A literal field without indexing (§6.2.2), short strings only.
    fn lit(name: &str, value: &str) -> Vec<u8> {
        let mut b = vec![0x00, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
        b
    }

    /// A literal field with incremental indexing (§6.2.1).
    fn lit_idx(name: &str, value: &str) -> Vec<u8> {
        let mut b = lit(name, value);
        b[0] = 0x40;
        b
    }

    fn block(fields: &[Vec<u8>]) -> Vec<u8> {
        fields.concat()
    }

    fn settings() -> Vec<u8> {
        frame(frame::SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0])
    }

    fn grpc_msg(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    type Ev = (Direction, Vec<u8>);

    fn run_split(
        session: &mut dyn Session,
        events: &[Ev],
        stride: usize,
    ) -> Vec<(Direction, Call)> {
        let mut out = Emitter::new();
        for (i, (dir, bytes)) in events.iter().enumerate() {
            for chunk in bytes.chunks(stride.max(1)) {
                session.data(*dir, 1_000_000 * (i as i64 + 1), chunk, &mut out);
            }
        }
        session.close(1_000_000_000, &mut out);
        out.drain_calls().collect()
    }

    fn run(events: &[Ev]) -> Vec<Call> {
        let calls = run_split(
            &mut Http2Session::new(Limits::default()),
            events,
            usize::MAX,
        );
        // Whatever the segmentation, the same calls.
        for stride in [1, 2, 7, 9, 10, 64] {
            let again = run_split(&mut Http2Session::new(Limits::default()), events, stride);
            assert_eq!(again, calls, "stride {stride}");
        }
        calls.into_iter().map(|(_, c)| c).collect()
    }

    fn get_request() -> Vec<u8> {
        let mut c = frame::PREFACE.to_vec();
        c.extend(settings());
        c.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            1,
            &block(&[
                vec![0x82, 0x86],
                lit(":path", "/a?x=1"),
                lit_idx(":authority", "h"),
            ]),
        ));
        c
    }

    #[test]
    fn prior_knowledge_get_pairs_and_keeps_the_body() {
        let mut s = settings();
        s.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS,
            1,
            &block(&[vec![0x88], lit("content-type", "text/plain")]),
        ));
        s.extend(frame(frame::DATA, 0, 1, b"hello "));
        s.extend(frame(frame::DATA, frame::FLAG_END_STREAM, 1, b"world"));
        let calls = run(&[(C, get_request()), (S, s)]);
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!(c.protocol, Some(Protocol::Http));
        assert_eq!(
            (
                c.method.as_str(),
                c.path.as_str(),
                c.query_string.as_str(),
                c.status_code
            ),
            ("GET", "/a", "x=1", 200)
        );
        assert_eq!(c.http_version, "HTTP/2");
        assert_eq!(c.response.body.as_ref().unwrap().data, b"hello world");
        assert_eq!(c.response_body_size, 11);
        assert_eq!(c.request.headers.get(":authority"), Some("h"));
        assert_eq!(c.response.headers.get("content-type"), Some("text/plain"));
        assert_eq!(c.attrs.int("http2_stream_id"), 1);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.elapsed_time, 1000);
    }

    #[test]
    fn interleaved_streams_padding_priority_and_continuation() {
        let mut c = frame::PREFACE.to_vec();
        c.extend(settings());
        // Stream 1: HEADERS padded with priority, split over CONTINUATION.
        let b1 = block(&[
            vec![0x82, 0x86],
            lit(":path", "/one"),
            lit("x-long", "abcdefgh"),
        ]);
        let (first, rest) = b1.split_at(5);
        let mut payload = vec![3]; // pad length
        payload.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
        payload.extend_from_slice(first);
        payload.extend_from_slice(&[0, 0, 0]);
        c.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_STREAM | frame::FLAG_PADDED | frame::FLAG_PRIORITY,
            1,
            &payload,
        ));
        c.extend(frame(frame::CONTINUATION, frame::FLAG_END_HEADERS, 1, rest));
        // Stream 3: a POST with a padded DATA body.
        c.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS,
            3,
            &block(&[vec![0x83, 0x86], lit(":path", "/two")]),
        ));
        let mut data = vec![2];
        data.extend_from_slice(b"body");
        data.extend_from_slice(&[0, 0]);
        c.extend(frame(
            frame::DATA,
            frame::FLAG_END_STREAM | frame::FLAG_PADDED,
            3,
            &data,
        ));
        // Answers in the other order.
        let mut s = settings();
        s.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            3,
            &[0x89],
        ));
        s.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            1,
            &[0x8d],
        ));
        let calls = run(&[(C, c), (S, s)]);
        let got: Vec<(&str, &str, i32)> = calls
            .iter()
            .map(|c| (c.method.as_str(), c.path.as_str(), c.status_code))
            .collect();
        assert_eq!(got, [("POST", "/two", 204), ("GET", "/one", 404)]);
        assert_eq!(calls[0].request.body.as_ref().unwrap().data, b"body");
        assert_eq!(calls[1].request.headers.get("x-long"), Some("abcdefgh"));
    }

    #[test]
    fn grpc_unary_with_trailers() {
        let mut c = frame::PREFACE.to_vec();
        c.extend(settings());
        c.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS,
            1,
            &block(&[
                vec![0x83, 0x86],
                lit(":path", "/helloworld.Greeter/SayHello"),
                lit("content-type", "application/grpc"),
            ]),
        ));
        c.extend(frame(
            frame::DATA,
            frame::FLAG_END_STREAM,
            1,
            &grpc_msg(b"\x0a\x05world"),
        ));
        let mut s = settings();
        s.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS,
            1,
            &block(&[vec![0x88], lit("content-type", "application/grpc")]),
        ));
        s.extend(frame(frame::DATA, 0, 1, &grpc_msg(b"\x0a\x0bHello world")));
        s.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            1,
            &block(&[lit("grpc-status", "5"), lit("grpc-message", "not%20found")]),
        ));
        let calls = run(&[(C, c), (S, s)]);
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!(c.protocol, Some(Protocol::Grpc));
        assert_eq!(c.attrs.str("grpc_service"), "helloworld.Greeter");
        assert_eq!(c.attrs.str("grpc_method"), "SayHello");
        assert_eq!(c.attrs.int("grpc_status"), 5);
        assert_eq!(c.attrs.str("grpc_message"), "not found");
        assert_eq!(c.attrs.int("grpc_request_messages"), 1);
        assert_eq!(
            c.attrs.get("grpc_response_message_sizes"),
            Some(&AttrValue::IntList(vec![13]))
        );
        assert_eq!(c.attrs.str("grpc_request_protobuf"), r#"1: "world""#);
        assert_eq!(c.status_code, 200);
    }

    #[test]
    fn grpc_trailers_only_rst_and_goaway() {
        let req = |id: u32| {
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                id,
                &block(&[
                    vec![0x83, 0x86],
                    lit(":path", "/p.S/M"),
                    lit("content-type", "application/grpc"),
                ]),
            )
        };
        let mut c = frame::PREFACE.to_vec();
        c.extend(settings());
        c.extend(req(1));
        c.extend(req(3));
        c.extend(req(5));
        let mut s = settings();
        s.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            1,
            &block(&[
                vec![0x88],
                lit("content-type", "application/grpc"),
                lit("grpc-status", "14"),
            ]),
        ));
        s.extend(frame(frame::RST_STREAM, 0, 3, &8u32.to_be_bytes()));
        let mut goaway = 3u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&0u32.to_be_bytes());
        s.extend(frame(frame::GOAWAY, 0, 0, &goaway));
        let calls = run(&[(C, c), (S, s)]);
        let got: Vec<(i64, i64, Vec<String>)> = calls
            .iter()
            .map(|c| {
                (
                    c.attrs.int("http2_stream_id"),
                    c.attrs.int("grpc_status"),
                    c.errors.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, 14, vec![]),
                (3, -1, vec!["rst_stream_cancel".to_owned()]),
                (5, -1, vec!["goaway_no_error".to_owned()]),
            ]
        );
    }

    #[test]
    fn header_text_is_capped_but_the_table_follows() {
        let limits = Limits {
            max_head_bytes: 40,
            ..Limits::default()
        };
        let req = |id: u32, extra: Vec<u8>| {
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                id,
                &block(&[vec![0x82, 0x86], lit(":path", "/p"), extra]),
            )
        };
        let c = [
            frame::PREFACE.to_vec(),
            req(1, lit_idx("x-big", &"v".repeat(60))),
            // Index 62: the big field, from the table the cut call fed.
            req(3, vec![0xbe]),
        ]
        .concat();
        let s = [
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                1,
                &[0x88],
            ),
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                3,
                &[0x88],
            ),
        ]
        .concat();
        let calls = run_split(
            &mut Http2Session::new(limits),
            &[(C, c), (S, s)],
            usize::MAX,
        );
        let c1 = &calls[0].1;
        assert_eq!(c1.request.headers.get("x-big"), None);
        assert_eq!(c1.path, "/p");
        assert_eq!(c1.errors, ["header_too_long"]);
        assert!(calls[1].1.errors.contains(&"header_too_long".to_owned()));
    }

    #[test]
    fn server_push_is_a_call_of_its_own() {
        let mut promise = 2u32.to_be_bytes().to_vec();
        promise.extend(block(&[vec![0x82, 0x86], lit(":path", "/style.css")]));
        let s = [
            settings(),
            frame(frame::PUSH_PROMISE, frame::FLAG_END_HEADERS, 1, &promise),
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                1,
                &[0x88],
            ),
            frame(frame::HEADERS, frame::FLAG_END_HEADERS, 2, &[0x88]),
            frame(frame::DATA, frame::FLAG_END_STREAM, 2, b"body{}"),
        ]
        .concat();
        let calls = run(&[(C, get_request()), (S, s)]);
        let got: Vec<(i64, &str, i32)> = calls
            .iter()
            .map(|c| {
                (
                    c.attrs.int("http2_stream_id"),
                    c.path.as_str(),
                    c.status_code,
                )
            })
            .collect();
        assert_eq!(got, [(1, "/a", 200), (2, "/style.css", 200)]);
        assert_eq!(calls[1].response.body.as_ref().unwrap().data, b"body{}");
    }

    #[test]
    fn mid_stream_capture_marks_unknown_headers_and_counts_bodies() {
        // No preface: the client's table holds entries we never saw (0xbe,
        // 0xbf), and the server's answers arrive first on ToServer (the
        // flow table guessed the roles wrong).
        let c = [
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS,
                7,
                &block(&[vec![0x83, 0xbe, 0xbf], lit(":path", "/m")]),
            ),
            frame(frame::DATA, frame::FLAG_END_STREAM, 7, b"0123456789"),
        ]
        .concat();
        let s = [
            frame(frame::DATA, 0, 5, b"tail of an earlier answer"),
            frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                5,
                &[0xc0],
            ),
        ]
        .concat();
        let s7 = frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            7,
            &[0x88],
        );
        let mut session = Http2Session::new(Limits::default());
        let calls = run_split(&mut session, &[(C, s), (S, c), (C, s7)], usize::MAX);
        assert_eq!(calls.len(), 2);
        let (dir5, c5) = &calls[0];
        assert_eq!(*dir5, S, "calls go out in the client's direction");
        assert_eq!(c5.attrs.int("http2_stream_id"), 5);
        assert!(!c5.has_request);
        assert_eq!(c5.response_body_size, 25);
        assert!(
            c5.errors.contains(&"hpack_unknown_index".to_owned()),
            "{:?}",
            c5.errors
        );
        assert!(c5.errors.contains(&"no_request".to_owned()));
        let c7 = &calls[1].1;
        assert_eq!(
            (c7.method.as_str(), c7.path.as_str(), c7.status_code),
            ("POST", "/m", 200)
        );
        assert_eq!(c7.request_body_size, 10);
        assert!(c7.errors.contains(&"hpack_unknown_index".to_owned()));
    }

    #[test]
    fn gaps_inside_data_and_between_frames() {
        let mut out = Emitter::new();
        let mut s = Http2Session::new(Limits::default());
        s.data(C, 1, &get_request(), &mut out);
        let mut resp = settings();
        resp.extend(frame(frame::HEADERS, frame::FLAG_END_HEADERS, 1, &[0x88]));
        resp.extend(&frame(frame::DATA, frame::FLAG_END_STREAM, 1, b"0123456789")[..12]);
        s.data(S, 2, &resp, &mut out);
        s.gap(S, 3, 5, &mut out);
        s.data(S, 4, b"89", &mut out);
        let calls: Vec<Call> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].response_body_size, 10);
        assert!(calls[0].errors.contains(&"gap_in_body".to_owned()));
        // A gap between frames: the next stream after it still decodes
        // (static and literal fields), once two frames line up again.
        let req3 = frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            3,
            &block(&[vec![0x82, 0x86], lit(":path", "/after")]),
        );
        s.gap(C, 5, 100, &mut out);
        s.data(C, 6, b"\x01\x02junk", &mut out);
        s.data(
            C,
            7,
            &[req3.clone(), frame(frame::PING, 0, 0, &[0; 8])].concat(),
            &mut out,
        );
        s.data(
            S,
            8,
            &frame(
                frame::HEADERS,
                frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
                3,
                &[0x88],
            ),
            &mut out,
        );
        let calls: Vec<Call> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].path.as_str(), calls[0].status_code),
            ("/after", 200)
        );
        assert!(out.drain_anomalies().any(|a| a.kind == "resync"));
    }

    #[test]
    fn h2c_upgrade_hands_over_from_http1() {
        let up = b"GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
        let switch =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        let mut client = up.to_vec();
        client.extend_from_slice(frame::PREFACE);
        client.extend(settings());
        let mut server = switch.to_vec();
        server.extend(settings());
        server.extend(frame(frame::HEADERS, frame::FLAG_END_HEADERS, 1, &[0x88]));
        server.extend(frame(frame::DATA, frame::FLAG_END_STREAM, 1, b"hi"));
        for stride in [usize::MAX, 1, 5] {
            let mut h1 = Http1Session::new(Limits::default());
            let calls = run_split(&mut h1, &[(C, client.clone()), (S, server.clone())], stride);
            let got: Vec<(&str, &str, i32, &str)> = calls
                .iter()
                .map(|(_, c)| {
                    (
                        c.http_version.as_str(),
                        c.path.as_str(),
                        c.status_code,
                        c.method.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    ("HTTP/1.1", "/up", 101, "GET"),
                    ("HTTP/2", "/up", 200, "GET")
                ],
                "stride {stride}"
            );
            assert_eq!(calls[1].1.response.body.as_ref().unwrap().data, b"hi");
            assert!(calls[1].1.errors.is_empty(), "{:?}", calls[1].1.errors);
        }
    }

    #[test]
    fn garbage_and_mutations_never_panic() {
        let mut s = settings();
        s.extend(frame(frame::HEADERS, frame::FLAG_END_HEADERS, 1, &[0x88]));
        s.extend(frame(frame::DATA, frame::FLAG_END_STREAM, 1, b"x"));
        let base = [get_request(), s].concat();
        let mut seed = 99u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..3000 {
            let mut bytes = base.clone();
            for _ in 0..1 + next() % 6 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            let cut = (next() as usize) % bytes.len();
            let mut session = Http2Session::new(Limits {
                max_pending: 2,
                ..Limits::default()
            });
            let mut out = Emitter::new();
            session.data(C, 1, &bytes[..cut], &mut out);
            session.gap(S, 2, next() % 50, &mut out);
            session.data(S, 3, &bytes[cut..], &mut out);
            session.close(4, &mut out);
        }
    }
}
