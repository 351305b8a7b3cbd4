//! gRPC over HTTP/2: what [`super::http2`] needs to turn a stream into a
//! gRPC call. gRPC has no registry entry of its own: it is recognised
//! inside an HTTP/2 stream by its `content-type` (`application/grpc`,
//! `application/grpc+proto`, …), and the HTTP/2 session fills the gRPC
//! fields with these helpers:
//!
//! - [`MessageReader`]: the length-prefixed messages of one direction
//!   (1 byte compressed flag, 4 bytes length, then the message), fed DATA
//!   payload bytes however they are split; counts, sizes, and the first
//!   message's bytes for display.
//! - [`protobuf::render`]: a schemaless reading of a protobuf message.
//! - [`split_path`], [`percent_decode`], [`status_of`].

pub mod protobuf;

use trawl_model::{Call, Headers};

/// Message sizes listed per direction; a long stream keeps counting but
/// lists no more (a list per call is stored in every index row).
pub const MAX_LISTED_SIZES: usize = 256;

/// Bytes of the first message kept for the protobuf reading; the reading
/// itself is capped at [`protobuf::MAX_RENDER_BYTES`], and messages past
/// this size render as far as the kept part goes.
pub const MAX_FIRST_MESSAGE: usize = 16 * 1024;

/// True for a gRPC `content-type` (`application/grpc` and its `+proto`,
/// `+json`, … variants).
pub fn is_grpc_content_type(value: &str) -> bool {
    let v = value.trim().as_bytes();
    let p = b"application/grpc";
    v.len() >= p.len()
        && v.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p))
        && matches!(v.get(p.len()), None | Some(b'+' | b';' | b' '))
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
pub fn split_path(path: &str) -> (&str, &str) {
    let p = path.strip_prefix('/').unwrap_or(path);
    match p.rsplit_once('/') {
        Some((service, method)) => (service, method),
        None => ("", p),
    }
}

/// Undo `grpc-message`'s percent-encoding (gRPC HTTP/2 spec: `%XX` for
/// bytes outside printable ASCII and `%`); bad escapes stay as sent.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(hex_val),
                b.get(i + 2).and_then(hex_val),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex_val(c: &u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `grpc-status` from `headers` (trailers, or the headers of a
/// trailers-only response), when present and numeric.
pub fn status_of(headers: &Headers) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.trim().parse().ok())
}

/// One direction's length-prefixed messages, fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct MessageReader {
    prefix: [u8; 5],
    have: usize,
    /// Bytes left in the current message (0: reading a prefix).
    remaining: u64,
    pub count: u32,
    pub sizes: Vec<i64>,
    pub compressed: bool,
    /// The first message's bytes (up to [`MAX_FIRST_MESSAGE`]).
    pub first: Vec<u8>,
    /// The first message's flag and declared length, once its prefix is read.
    pub first_prefix: Option<(bool, u64)>,
    /// Lost framing (a gap): nothing more is read.
    pub broken: bool,
}

impl MessageReader {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.broken {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                let (now, rest) = data.split_at(n);
                if self.count == 1 {
                    let room = MAX_FIRST_MESSAGE.saturating_sub(self.first.len());
                    self.first.extend_from_slice(now.get(..room).unwrap_or(now));
                }
                self.remaining -= n as u64;
                data = rest;
                continue;
            }
            let need = 5 - self.have;
            let n = need.min(data.len());
            let (now, rest) = data.split_at(n);
            if let Some(slot) = self.prefix.get_mut(self.have..self.have + n) {
                slot.copy_from_slice(now);
            }
            self.have += n;
            data = rest;
            if self.have == 5 {
                self.have = 0;
                let [flag, a, b, c, d] = self.prefix;
                let len = u64::from(u32::from_be_bytes([a, b, c, d]));
                if flag > 1 {
                    // Not a message prefix: the stream is not (or no
                    // longer) framed as gRPC.
                    self.broken = true;
                    return;
                }
                self.count = self.count.saturating_add(1);
                if self.sizes.len() < MAX_LISTED_SIZES {
                    self.sizes.push(len as i64);
                }
                self.compressed |= flag == 1;
                if self.count == 1 {
                    self.first_prefix = Some((flag == 1, len));
                }
                self.remaining = len;
            }
        }
    }

    /// Bytes went missing: message boundaries are lost from here on.
    pub fn lost(&mut self) {
        self.broken = true;
    }
}

/// Fill a call's gRPC fields from its two halves' readers and headers
/// (`call.path`, headers and trailers already set).
pub fn fill_call(call: &mut Call, req: &MessageReader, resp: &MessageReader) {
    let (service, method) = split_path(&call.path);
    let (service, method) = (service.to_owned(), method.to_owned());
    call.attrs.set("grpc", true);
    call.attrs.set("grpc_service", service);
    call.attrs.set("grpc_method", method);
    let status = status_of(&call.response.headers).unwrap_or(-1);
    call.attrs.set("grpc_status", status);
    if let Some(m) = call
        .response
        .headers
        .get("grpc-message")
        .filter(|m| !m.is_empty())
    {
        let m = percent_decode(m);
        call.attrs.set("grpc_message", m);
    }
    call.attrs
        .set("grpc_request_messages", i64::from(req.count));
    call.attrs
        .set("grpc_response_messages", i64::from(resp.count));
    call.attrs
        .set("grpc_request_message_sizes", req.sizes.clone());
    call.attrs
        .set("grpc_response_message_sizes", resp.sizes.clone());
    call.attrs
        .set("grpc_compressed", req.compressed || resp.compressed);
    for (reader, field) in [
        (req, "grpc_request_protobuf"),
        (resp, "grpc_response_protobuf"),
    ] {
        if let Some((false, _)) = reader.first_prefix {
            let text = protobuf::render(&reader.first);
            if !text.is_empty() {
                call.attrs.set(field, text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_anywhere() {
        let mut wire = vec![0, 0, 0, 0, 2, 0x08, 0x96];
        wire.extend_from_slice(&[1, 0, 0, 0, 1, 0xff]);
        for split in 0..wire.len() {
            let mut r = MessageReader::default();
            r.feed(&wire[..split]);
            r.feed(&wire[split..]);
            assert_eq!(
                (r.count, r.sizes.clone(), r.compressed),
                (2, vec![2, 1], true)
            );
            assert_eq!(r.first, [0x08, 0x96]);
            assert_eq!(r.first_prefix, Some((false, 2)));
        }
        let mut r = MessageReader::default();
        r.feed(b"GET / HTTP/1.1");
        assert!(r.broken);
    }

    #[test]
    fn names_and_messages() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            ("helloworld.Greeter", "SayHello")
        );
        assert_eq!(split_path("/x"), ("", "x"));
        assert_eq!(
            percent_decode("not%20found%3A %E2%82%AC%zz"),
            "not found: €%zz"
        );
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("application/grpc+proto"));
        assert!(!is_grpc_content_type("application/grpc-web"));
        assert!(!is_grpc_content_type("application/json"));
    }
}
