//! WebSocket (RFC 6455) after an HTTP/1.1 `Upgrade: websocket`: the frame
//! header ([`parse_header`]) and the per-connection [`WsSession`], which
//! the HTTP/1 session creates through [`after_upgrade`] once the server
//! answered 101. There is no registry entry: a WebSocket connection is
//! only recognisable by its handshake (frames alone are a few bytes of
//! header that many binary protocols would pass for).

pub mod session;

pub use session::WsSession;

use crate::seam::{Limits, Session};

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask key.
pub const MAX_HEADER_LEN: usize = 14;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xa;

/// A frame header (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: the message is compressed (permessage-deflate, RFC 7692).
    pub rsv1: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Header bytes, extended length and mask key included.
    pub header_len: usize,
}

impl FrameHeader {
    pub fn is_control(&self) -> bool {
        self.opcode >= 0x8
    }
}

/// What the start of a direction's bytes holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    Frame(FrameHeader),
    NeedMore,
    /// A 64-bit length with its top bit set (§5.2 forbids it), or a
    /// control frame longer than 125 bytes or fragmented (§5.5).
    Invalid,
}

pub fn parse_header(b: &[u8]) -> Parsed {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
        return Parsed::NeedMore;
    };
    let masked = b1 & 0x80 != 0;
    let (len, at) = match b1 & 0x7f {
        126 => match b.get(2..4) {
            Some(&[x, y]) => (u64::from(u16::from_be_bytes([x, y])), 4),
            _ => return Parsed::NeedMore,
        },
        127 => match b.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
            Some(x) => (u64::from_be_bytes(x), 10),
            None => return Parsed::NeedMore,
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Parsed::Invalid;
    }
    let (mask, header_len) = if masked {
        match b.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()) {
            Some(k) => (Some(k), at + 4),
            None => return Parsed::NeedMore,
        }
    } else {
        (None, at)
    };
    let h = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0f,
        mask,
        len,
        header_len,
    };
    if h.is_control() && (h.len > 125 || !h.fin) {
        return Parsed::Invalid;
    }
    Parsed::Frame(h)
}

/// KFL2's `ws_opcode` value for an opcode.
pub fn opcode_name(op: u8) -> &'static str {
    match op {
        OP_CONTINUATION => "continuation",
        OP_TEXT => "text",
        OP_BINARY => "binary",
        OP_CLOSE => "close",
        OP_PING => "ping",
        OP_PONG => "pong",
        3 => "op3",
        4 => "op4",
        5 => "op5",
        6 => "op6",
        7 => "op7",
        11 => "op11",
        12 => "op12",
        13 => "op13",
        14 => "op14",
        _ => "op15",
    }
}

/// The session that takes over a connection after `101 Switching
/// Protocols` to websocket. `path` is the handshake request's target,
/// copied to every message's call; `deflate` says whether the 101 agreed
/// on permessage-deflate.
pub fn after_upgrade(limits: Limits, path: &str, deflate: bool) -> Box<dyn Session> {
    Box::new(WsSession::new(limits, path, deflate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn headers() {
        // RFC 6455 §5.7: a masked "Hello" from a client.
        let h = parse_header(&hex("8185 37fa213d"));
        assert_eq!(
            h,
            Parsed::Frame(FrameHeader {
                fin: true,
                rsv1: false,
                opcode: OP_TEXT,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                len: 5,
                header_len: 6
            })
        );
        // 256 bytes of binary, unmasked (16-bit length).
        let Parsed::Frame(h) = parse_header(&hex("827e 0100")) else {
            panic!()
        };
        assert_eq!((h.len, h.header_len, h.opcode), (256, 4, OP_BINARY));
        assert_eq!(parse_header(&hex("827f 0000")), Parsed::NeedMore);
        assert_eq!(parse_header(&hex("827f 8000000000000000")), Parsed::Invalid);
        // A fragmented ping, and a ping of 126 bytes.
        assert_eq!(parse_header(&hex("0900")), Parsed::Invalid);
        assert_eq!(parse_header(&hex("897e 007e")), Parsed::Invalid);
        assert_eq!(parse_header(&hex("81")), Parsed::NeedMore);
        assert_eq!(parse_header(&hex("8185 37fa")), Parsed::NeedMore);
    }
}
