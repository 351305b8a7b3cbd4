//! [`WsSession`]: the WebSocket frames of one connection after the HTTP/1
//! handshake (created by [`super::after_upgrade`] from the HTTP/1 session).
//! Each direction's frames are read as they come (payloads streamed and
//! unmasked, never buffered whole), fragments are joined into messages,
//! and one [`Call`] is emitted per message: a data message once its last
//! fragment (FIN) arrived, a control frame (close, ping, pong) at once,
//! even between the fragments of a data message.
//!
//! A message from the client is a request (`has_request`, `ws_request`,
//! the payload in `request.body`), one from the server a response; `src`
//! is the client either way. Compressed messages (permessage-deflate) are
//! inflated for display with one inflater per direction, which keeps the
//! window across messages (context takeover); sizes stay the wire's.
//!
//! Gaps inside a payload only shorten the kept bytes (`gap_in_body`); a
//! gap anywhere else loses the frame boundaries and the direction stops
//! (anomaly `ws_lost_sync`): WebSocket frames have no marker to find again.

use flate2::{Decompress, FlushDecompress, Status};
use trawl_flow::{Direction, Nanos};
use trawl_model::{Body, Call, Protocol};

use super::{FrameHeader, MAX_HEADER_LEN, OP_CLOSE, OP_CONTINUATION, Parsed, opcode_name};
use crate::seam::{Emitter, Limits, Session};

/// Text kept in `ws_request_payload_data` / `ws_response_payload_data`:
/// enough to recognise a message, small enough for every index row.
pub const MAX_PAYLOAD_TEXT: usize = 1024;

/// Frame lengths listed per message (`ws_frame_lengths`); a message in
/// more fragments keeps counting them in `ws_frames`.
pub const MAX_LISTED_FRAMES: usize = 256;

/// Control frame payloads are at most 125 bytes (RFC 6455 §5.5); kept
/// whole whatever the body cap, for the close code and reason.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The 4 bytes a permessage-deflate sender strips from each message
/// (RFC 7692 §7.2.1), put back before inflating.
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Inflate output produced per call into the scratch buffer.
const INFLATE_CHUNK: usize = 16 * 1024;

#[derive(Debug, Default)]
struct Message {
    opcode: u8,
    frames: u32,
    lengths: Vec<i64>,
    size: u64,
    kept: Vec<u8>,
    truncated: bool,
    masked: bool,
    compressed: bool,
    fin: bool,
    gap: bool,
    inflate_failed: bool,
    first_ts: Nanos,
}

#[derive(Debug)]
enum Read {
    Header,
    Payload {
        h: FrameHeader,
        left: u64,
        /// Payload bytes already read (the mask key position).
        done: u64,
    },
    /// Frame boundaries lost: bytes are skipped.
    Lost,
}

struct Side {
    read: Read,
    /// A partial frame header.
    buf: Vec<u8>,
    frame_ts: Nanos,
    /// The data message being reassembled.
    data: Option<Message>,
    /// The control frame being read.
    control: Option<Message>,
    inflater: Option<Decompress>,
    inflate_broken: bool,
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Side")
            .field("read", &self.read)
            .field("data", &self.data)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl Side {
    fn new(deflate: bool) -> Side {
        Side {
            read: Read::Header,
            buf: Vec::new(),
            frame_ts: 0,
            data: None,
            control: None,
            inflater: deflate.then(|| Decompress::new(false)),
            inflate_broken: false,
        }
    }
}

/// The WebSocket state of one connection. The client is the pipeline's
/// ToServer side (the HTTP/1 session that hands over knows it so).
#[derive(Debug)]
pub struct WsSession {
    limits: Limits,
    path: String,
    up: Side,
    down: Side,
}

macro_rules! side {
    ($s:expr, $dir:expr) => {
        match $dir {
            Direction::ToServer => &mut $s.up,
            Direction::ToClient => &mut $s.down,
        }
    };
}

impl WsSession {
    pub fn new(limits: Limits, path: &str, deflate: bool) -> WsSession {
        WsSession {
            limits,
            path: path.to_owned(),
            up: Side::new(deflate),
            down: Side::new(deflate),
        }
    }

    fn feed(&mut self, dir: Direction, ts: Nanos, mut input: &[u8], out: &mut Emitter) {
        while !input.is_empty() {
            let used = self.step(dir, ts, input, out);
            if used == 0 {
                // Every state consumes at least a byte; this only guards.
                return;
            }
            input = input.get(used..).unwrap_or_default();
        }
    }

    fn step(&mut self, dir: Direction, ts: Nanos, input: &[u8], out: &mut Emitter) -> usize {
        let cap = self.limits.max_body_bytes;
        let path = &self.path;
        let side = side!(self, dir);
        match &mut side.read {
            Read::Lost => input.len(),
            Read::Header => {
                let had = side.buf.len();
                if had == 0 {
                    side.frame_ts = ts;
                }
                let take = (MAX_HEADER_LEN - had).min(input.len());
                side.buf
                    .extend_from_slice(input.get(..take).unwrap_or(input));
                match super::parse_header(&side.buf) {
                    Parsed::NeedMore => take,
                    Parsed::Invalid => {
                        out.anomaly(ts, "ws_bad_frame");
                        lose(side, dir, path, ts, out);
                        take
                    }
                    Parsed::Frame(h) => {
                        side.buf.clear();
                        start_frame(side, dir, path, h, out);
                        let used = h.header_len.saturating_sub(had);
                        if h.len == 0 {
                            end_frame(side, dir, path, h, cap, out);
                        } else {
                            side.read = Read::Payload {
                                h,
                                left: h.len,
                                done: 0,
                            };
                        }
                        used
                    }
                }
            }
            Read::Payload { h, left, done } => {
                let h = *h;
                let n = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                let chunk = input.get(..n).unwrap_or(input);
                let offset = *done;
                *left -= n as u64;
                *done += n as u64;
                let finished = *left == 0;
                payload(side, &h, offset, chunk, cap);
                if finished {
                    side.read = Read::Header;
                    end_frame(side, dir, path, h, cap, out);
                }
                n
            }
        }
    }

    fn on_gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        let path = &self.path;
        let side = side!(self, dir);
        match &mut side.read {
            Read::Payload { h, left, done } if len < *left => {
                *left -= len;
                *done += len;
                let target = if h.is_control() {
                    side.control.as_mut()
                } else {
                    side.data.as_mut()
                };
                if let Some(m) = target {
                    m.size = m.size.saturating_add(len);
                    m.gap = true;
                    m.truncated = true;
                }
                // The inflater's window now misses bytes.
                if h.rsv1 || side.data.as_ref().is_some_and(|m| m.compressed) {
                    side.inflate_broken = true;
                }
            }
            Read::Lost => {}
            _ => {
                out.anomaly(ts, "ws_lost_sync");
                lose(side, dir, path, ts, out);
            }
        }
    }
}

/// The frame boundaries are gone: emit what was in progress, skip the rest.
fn lose(side: &mut Side, dir: Direction, path: &str, ts: Nanos, out: &mut Emitter) {
    let _ = ts;
    side.buf.clear();
    side.read = Read::Lost;
    for m in [side.control.take(), side.data.take()]
        .into_iter()
        .flatten()
    {
        let mut m = m;
        m.gap = true;
        emit(m, dir, path, Some("incomplete"), out);
    }
}

fn start_frame(side: &mut Side, dir: Direction, path: &str, h: FrameHeader, out: &mut Emitter) {
    let ts = side.frame_ts;
    let fresh = |opcode: u8| Message {
        opcode,
        masked: h.mask.is_some(),
        compressed: h.rsv1,
        first_ts: ts,
        ..Message::default()
    };
    if h.is_control() {
        side.control = Some(fresh(h.opcode));
        return;
    }
    if h.opcode != OP_CONTINUATION {
        // A new data message while one is open: the open one never got
        // its last fragment.
        if let Some(open) = side.data.take() {
            emit(open, dir, path, Some("incomplete"), out);
        }
        side.data = Some(fresh(h.opcode));
    } else if side.data.is_none() {
        // A continuation whose first fragment came before the capture.
        side.data = Some(fresh(OP_CONTINUATION));
    }
}

/// Unmasked payload bytes for the current message.
fn payload(side: &mut Side, h: &FrameHeader, offset: u64, chunk: &[u8], cap: usize) {
    let mut bytes = chunk.to_vec();
    if let Some(key) = h.mask {
        for (i, b) in bytes.iter_mut().enumerate() {
            let k = key
                .get(((offset + i as u64) % 4) as usize)
                .copied()
                .unwrap_or(0);
            *b ^= k;
        }
    }
    let Side {
        data,
        control,
        inflater,
        inflate_broken,
        ..
    } = side;
    let Some(m) = (if h.is_control() {
        control.as_mut()
    } else {
        data.as_mut()
    }) else {
        return;
    };
    m.size = m.size.saturating_add(chunk.len() as u64);
    let cap = if h.is_control() {
        MAX_CONTROL_PAYLOAD
    } else {
        cap
    };
    if m.compressed && !h.is_control() {
        match inflater.as_mut().filter(|_| !*inflate_broken) {
            Some(inf) => {
                if inflate(inf, &bytes, m, cap).is_err() {
                    *inflate_broken = true;
                    m.inflate_failed = true;
                }
            }
            None => m.inflate_failed = true,
        }
        return;
    }
    keep(m, &bytes, cap);
}

fn keep(m: &mut Message, bytes: &[u8], cap: usize) {
    let room = cap.saturating_sub(m.kept.len());
    let k = bytes.get(..room).unwrap_or(bytes);
    m.kept.extend_from_slice(k);
    if k.len() < bytes.len() {
        m.truncated = true;
    }
}

/// Inflate `input` into the message's kept bytes (up to `cap`; the rest
/// is inflated and dropped, to keep the window right for later messages).
fn inflate(inf: &mut Decompress, mut input: &[u8], m: &mut Message, cap: usize) -> Result<(), ()> {
    let mut scratch = Vec::with_capacity(INFLATE_CHUNK);
    loop {
        scratch.clear();
        let before_in = inf.total_in();
        let before_out = inf.total_out();
        let status = inf
            .decompress_vec(input, &mut scratch, FlushDecompress::Sync)
            .map_err(|_| ())?;
        let used = usize::try_from(inf.total_in() - before_in).unwrap_or(input.len());
        let produced = inf.total_out() - before_out;
        keep(m, &scratch, cap);
        input = input.get(used..).unwrap_or_default();
        if status == Status::StreamEnd || (input.is_empty() && produced < INFLATE_CHUNK as u64) {
            return Ok(());
        }
        if used == 0 && produced == 0 {
            return Err(());
        }
    }
}

fn end_frame(
    side: &mut Side,
    dir: Direction,
    path: &str,
    h: FrameHeader,
    cap: usize,
    out: &mut Emitter,
) {
    let record = |m: &mut Message| {
        m.frames = m.frames.saturating_add(1);
        if m.lengths.len() < MAX_LISTED_FRAMES {
            m.lengths.push(i64::try_from(h.len).unwrap_or(i64::MAX));
        }
    };
    if h.is_control() {
        if let Some(mut m) = side.control.take() {
            record(&mut m);
            m.fin = true;
            emit(m, dir, path, None, out);
        }
        return;
    }
    let Some(m) = side.data.as_mut() else {
        return;
    };
    record(m);
    if !h.fin {
        return;
    }
    m.fin = true;
    if m.compressed
        && let Some(inf) = side.inflater.as_mut().filter(|_| !side.inflate_broken)
        && inflate(inf, &DEFLATE_TAIL, m, cap).is_err()
    {
        side.inflate_broken = true;
        m.inflate_failed = true;
    }
    if let Some(m) = side.data.take() {
        emit(m, dir, path, None, out);
    }
}

fn emit(m: Message, dir: Direction, path: &str, error: Option<&str>, out: &mut Emitter) {
    let from_client = dir == Direction::ToServer;
    let mut call = Call::new(Protocol::Ws);
    call.timestamp = m.first_ts;
    call.path = path.to_owned();
    call.url = path.to_owned();
    call.http_version = "HTTP/1.1".to_owned();
    let attrs = &mut call.attrs;
    attrs.set("ws", true);
    attrs.set("ws_opcode", opcode_name(m.opcode));
    attrs.set("ws_request", from_client);
    attrs.set("ws_response", !from_client);
    attrs.set("ws_fin", m.fin);
    attrs.set("ws_masked", m.masked);
    attrs.set("ws_frames", i64::from(m.frames));
    attrs.set("ws_frame_lengths", m.lengths);
    let size = i64::try_from(m.size).unwrap_or(i64::MAX);
    let (len_field, data_field) = if from_client {
        ("ws_request_payload_length", "ws_request_payload_data")
    } else {
        ("ws_response_payload_length", "ws_response_payload_data")
    };
    attrs.set(len_field, size);
    if m.opcode == OP_CLOSE {
        if let Some(&[a, b]) = m.kept.get(..2) {
            attrs.set("ws_close_code", i64::from(u16::from_be_bytes([a, b])));
            let reason = String::from_utf8_lossy(m.kept.get(2..).unwrap_or_default());
            if !reason.is_empty() {
                attrs.set("ws_close_reason", reason.into_owned());
            }
        }
    } else if m.opcode == super::OP_TEXT {
        let text = m.kept.get(..MAX_PAYLOAD_TEXT).unwrap_or(&m.kept);
        attrs.set(data_field, String::from_utf8_lossy(text).into_owned());
    }
    if m.gap {
        call.errors.push("gap_in_body".to_owned());
    }
    if m.inflate_failed {
        call.errors.push("body_decode_failed".to_owned());
    }
    if let Some(e) = error {
        call.errors.push(e.to_owned());
    }
    let body = (m.size > 0).then(|| Body {
        data: m.kept,
        truncated: m.truncated,
        decoded_from: m.compressed.then_some("deflate"),
    });
    if from_client {
        call.has_request = true;
        call.request_body_size = m.size;
        call.request.body = body;
    } else {
        call.has_response = true;
        call.response_body_size = m.size;
        call.response.body = body;
    }
    out.call(Direction::ToServer, call);
}

impl Session for WsSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        self.feed(dir, ts, data, out);
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        if len > 0 {
            self.on_gap(dir, ts, len, out);
        }
    }

    fn end(&mut self, dir: Direction, _ts: Nanos, out: &mut Emitter) {
        // A message cut by the end of its direction is emitted as it is.
        let path = &self.path;
        let side = side!(self, dir);
        side.read = Read::Lost;
        for m in [side.control.take(), side.data.take()]
            .into_iter()
            .flatten()
        {
            emit(m, dir, path, Some("incomplete"), out);
        }
    }

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            self.end(dir, ts, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http1::Http1Session;
    use crate::protocols::websocket::{OP_BINARY, OP_PING, OP_TEXT};
    use trawl_model::AttrValue;

    const C: Direction = Direction::ToServer;
    const S: Direction = Direction::ToClient;
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn ws(fin: bool, rsv1: bool, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => f.push(m | n as u8),
            n @ 126..=65535 => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    fn run(session: impl Fn() -> Box<dyn Session>, events: &[(Direction, Vec<u8>)]) -> Vec<Call> {
        let once = |stride: usize| {
            let mut s = session();
            let mut out = Emitter::new();
            for (i, (dir, bytes)) in events.iter().enumerate() {
                for chunk in bytes.chunks(stride) {
                    s.data(*dir, (i as i64 + 1) * 1000, chunk, &mut out);
                }
            }
            s.close(1_000_000, &mut out);
            out.drain_calls().map(|(_, c)| c).collect::<Vec<_>>()
        };
        let calls = once(usize::MAX);
        for stride in [1, 2, 3, 7, 15] {
            assert_eq!(once(stride), calls, "stride {stride}");
        }
        calls
    }

    fn plain() -> Box<dyn Session> {
        Box::new(WsSession::new(Limits::default(), "/chat", false))
    }

    fn body(c: &Call) -> &[u8] {
        let b = c
            .request
            .body
            .as_ref()
            .or(c.response.body.as_ref())
            .unwrap();
        &b.data
    }

    #[test]
    fn masked_text_and_binary_each_a_call() {
        let calls = run(
            plain,
            &[
                (C, ws(true, false, OP_TEXT, Some(KEY), b"Hello")),
                (S, ws(true, false, OP_BINARY, None, &[0u8; 300])),
            ],
        );
        assert_eq!(calls.len(), 2);
        let c = &calls[0];
        assert_eq!(c.protocol, Some(Protocol::Ws));
        assert_eq!(c.attrs.str("ws_opcode"), "text");
        assert_eq!(c.attrs.get("ws_request"), Some(&AttrValue::Bool(true)));
        assert_eq!(c.attrs.get("ws_masked"), Some(&AttrValue::Bool(true)));
        assert_eq!(c.attrs.str("ws_request_payload_data"), "Hello");
        assert_eq!(c.attrs.int("ws_request_payload_length"), 5);
        assert_eq!(body(c), b"Hello");
        assert_eq!(c.path, "/chat");
        let s = &calls[1];
        assert_eq!(s.attrs.str("ws_opcode"), "binary");
        assert!(s.has_response && !s.has_request);
        assert_eq!(s.attrs.int("ws_response_payload_length"), 300);
        assert_eq!(s.response_body_size, 300);
    }

    #[test]
    fn fragments_join_around_a_ping_and_close_has_code() {
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        let calls = run(
            plain,
            &[(
                C,
                [
                    ws(false, false, OP_TEXT, Some(KEY), b"Hel"),
                    ws(true, false, OP_PING, Some(KEY), b"p"),
                    ws(true, false, OP_CONTINUATION, Some(KEY), b"lo"),
                    ws(true, false, OP_CLOSE, Some(KEY), &close),
                ]
                .concat(),
            )],
        );
        let ops: Vec<&str> = calls.iter().map(|c| c.attrs.str("ws_opcode")).collect();
        assert_eq!(ops, ["ping", "text", "close"]);
        assert_eq!(body(&calls[1]), b"Hello");
        assert_eq!(calls[1].attrs.int("ws_frames"), 2);
        assert_eq!(
            calls[1].attrs.get("ws_frame_lengths"),
            Some(&AttrValue::IntList(vec![3, 2]))
        );
        assert_eq!(calls[2].attrs.int("ws_close_code"), 1000);
        assert_eq!(calls[2].attrs.str("ws_close_reason"), "bye");
    }

    #[test]
    fn cut_message_gap_in_payload_and_lost_sync() {
        let calls = run(
            plain,
            &[(S, ws(false, false, OP_TEXT, None, b"never finished"))],
        );
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].attrs.get("ws_fin"), Some(&AttrValue::Bool(false)));
        assert_eq!(calls[0].errors, ["incomplete"]);

        let mut s = WsSession::new(Limits::default(), "/", false);
        let mut out = Emitter::new();
        let f = ws(true, false, OP_BINARY, None, b"0123456789");
        s.data(S, 1, &f[..4], &mut out);
        s.gap(S, 2, 4, &mut out);
        s.data(S, 3, &f[8..], &mut out);
        // A gap across frame headers: the direction stops.
        s.gap(S, 4, 100, &mut out);
        s.data(S, 5, &ws(true, false, OP_TEXT, None, b"lost"), &mut out);
        s.close(6, &mut out);
        let calls: Vec<Call> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].response_body_size, 10);
        assert_eq!(calls[0].errors, ["gap_in_body"]);
        assert!(out.drain_anomalies().any(|a| a.kind == "ws_lost_sync"));
    }

    #[test]
    fn permessage_deflate_inflates_with_context_takeover() {
        use flate2::{Compress, Compression, FlushCompress};
        let mut z = Compress::new(Compression::default(), false);
        let mut deflate = |text: &[u8]| {
            let mut out = Vec::with_capacity(1024);
            z.compress_vec(text, &mut out, FlushCompress::Sync).unwrap();
            assert!(out.ends_with(&DEFLATE_TAIL));
            out.truncate(out.len() - 4);
            out
        };
        let m1 = deflate(b"hello hello hello");
        let m2 = deflate(b"hello hello hello again");
        let calls = run(
            || Box::new(WsSession::new(Limits::default(), "/", true)),
            &[(
                S,
                [
                    ws(true, true, OP_TEXT, None, &m1),
                    ws(true, true, OP_TEXT, None, &m2),
                ]
                .concat(),
            )],
        );
        assert_eq!(body(&calls[0]), b"hello hello hello");
        assert_eq!(body(&calls[1]), b"hello hello hello again");
        assert_eq!(calls[1].response_body_size, m2.len() as u64);
        assert!(calls[1].errors.is_empty());
    }

    #[test]
    fn websocket_upgrade_hands_over_from_http1() {
        let client = [
            b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(),
            ws(true, false, OP_TEXT, Some(KEY), b"hi"),
        ]
        .concat();
        let server = [
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec(),
            ws(true, false, OP_TEXT, None, b"hello"),
        ]
        .concat();
        let calls = run(
            || Box::new(Http1Session::new(Limits::default())),
            &[(C, client), (S, server)],
        );
        let got: Vec<(Option<Protocol>, i32, String)> = calls
            .iter()
            .map(|c| {
                (
                    c.protocol,
                    c.status_code,
                    c.attrs.str("ws_opcode").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(Protocol::Http), 101, String::new()),
                (Some(Protocol::Ws), 0, "text".to_owned()),
                (Some(Protocol::Ws), 0, "text".to_owned()),
            ]
        );
        assert_eq!(body(&calls[1]), b"hi");
        assert_eq!(body(&calls[2]), b"hello");
        assert_eq!(calls[2].path, "/ws");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 5u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut s = WsSession::new(Limits::default(), "/", next() % 2 == 0);
            let mut out = Emitter::new();
            s.data(C, 1, &bytes, &mut out);
            s.gap(C, 2, next() % 10, &mut out);
            s.data(S, 3, &bytes, &mut out);
            s.close(4, &mut out);
        }
    }
}
