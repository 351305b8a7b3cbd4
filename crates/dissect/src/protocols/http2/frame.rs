//! HTTP/2 frame layout (RFC 9113 §4 and §6): the 9-byte frame header, the
//! frame types and flags, the connection preface, error code names, and
//! the plausibility check that lets [`super::probe`] recognise a
//! connection captured mid-stream and [`super::session`] find frames again
//! after a gap. Pure functions over bytes.

/// Every frame starts with this many bytes (§4.1).
pub const HEADER_LEN: usize = 9;

/// What a client sends first on a prior-knowledge or upgraded connection
/// (§3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The default SETTINGS_MAX_FRAME_SIZE (§6.5.2). Frames found without a
/// preface (mid-stream detection, resync) must not be longer: peers that
/// raised the limit are rare, and a bigger bound would let random bytes
/// pass for frames.
pub const DEFAULT_MAX_FRAME: usize = 16_384;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// SETTINGS_HEADER_TABLE_SIZE (§6.5.2).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// Stream id, reserved bit cleared.
    pub stream: u32,
    /// The reserved bit was set (must be zero on the wire).
    pub reserved: bool,
}

/// The header at the start of `b`, when 9 bytes are there.
pub fn parse_header(b: &[u8]) -> Option<FrameHeader> {
    let h = b.get(..HEADER_LEN)?;
    let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = <[u8; HEADER_LEN]>::try_from(h).ok()?;
    let raw = u32::from_be_bytes([s0, s1, s2, s3]);
    Some(FrameHeader {
        len: usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2),
        kind,
        flags,
        stream: raw & 0x7fff_ffff,
        reserved: raw & 0x8000_0000 != 0,
    })
}

/// The checks of [`plausible`] that need only the first 4 or 5 bytes
/// (length, type, flags), so that a probe can say no early.
pub fn plausible_prefix(b: &[u8]) -> bool {
    let (Some(&l0), Some(&l1), Some(&l2)) = (b.first(), b.get(1), b.get(2)) else {
        return true;
    };
    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    let Some(&kind) = b.get(3) else {
        return len <= DEFAULT_MAX_FRAME;
    };
    let flags = b.get(4).copied().unwrap_or(0);
    // A stream id that passes the type's own rule, to check the rest.
    let stream = u32::from(!matches!(kind, SETTINGS | PING | GOAWAY));
    plausible(&FrameHeader {
        len,
        kind,
        flags,
        stream,
        reserved: false,
    })
}

/// True when `h` is a frame a conforming peer could send with default
/// settings: a known type, only that type's flags, the stream id rules
/// and fixed lengths of §6.
pub fn plausible(h: &FrameHeader) -> bool {
    if h.reserved || h.len > DEFAULT_MAX_FRAME {
        return false;
    }
    let on_stream = h.stream != 0;
    let (flags, ok) = match h.kind {
        DATA => (FLAG_END_STREAM | FLAG_PADDED, on_stream),
        HEADERS => (
            FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
            on_stream,
        ),
        PRIORITY => (0, on_stream && h.len == 5),
        RST_STREAM => (0, on_stream && h.len == 4),
        SETTINGS => (
            FLAG_ACK,
            !on_stream && h.len.is_multiple_of(6) && (h.flags == 0 || h.len == 0),
        ),
        PUSH_PROMISE => (FLAG_END_HEADERS | FLAG_PADDED, on_stream && h.len >= 4),
        PING => (FLAG_ACK, !on_stream && h.len == 8),
        GOAWAY => (0, !on_stream && h.len >= 8),
        WINDOW_UPDATE => (0, h.len == 4),
        CONTINUATION => (FLAG_END_HEADERS, on_stream),
        _ => return false,
    };
    ok && h.flags & !flags == 0
}

/// Whether `data` reads as a run of plausible frames from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// At least one whole frame, and everything after it plausible as far
    /// as it goes.
    Yes,
    /// Plausible so far, but not one whole frame yet.
    Maybe,
    No,
}

/// Walk frames from the start of `data`: every header must be
/// [`plausible`]; at least one frame must be whole.
pub fn chain(data: &[u8]) -> Chain {
    let mut at = 0usize;
    let mut whole = 0usize;
    loop {
        let Some(rest) = data.get(at..) else {
            return Chain::No;
        };
        if rest.is_empty() {
            break;
        }
        let Some(h) = parse_header(rest) else {
            if !plausible_prefix(rest) {
                return Chain::No;
            }
            break;
        };
        if !plausible(&h) {
            return Chain::No;
        }
        let end = HEADER_LEN + h.len;
        if rest.len() < end {
            break;
        }
        whole += 1;
        at += end;
    }
    if whole > 0 { Chain::Yes } else { Chain::Maybe }
}

/// Where, at or after the start of `data`, a chain of plausible frames
/// starts (for resynchronising after a gap); needs two whole frames, or
/// one that ends exactly at the end of `data`, so that a lucky 9 bytes
/// of body are not taken for a frame.
pub fn find_chain(data: &[u8]) -> Option<usize> {
    (0..data.len().saturating_sub(HEADER_LEN - 1)).find(|&i| {
        let Some(rest) = data.get(i..) else {
            return false;
        };
        let Some(h) = parse_header(rest) else {
            return false;
        };
        if !plausible(&h) {
            return false;
        }
        let end = HEADER_LEN + h.len;
        match rest.get(end..) {
            Some([]) => true,
            Some(next) => parse_header(next).is_some_and(|n| plausible(&n)),
            None => false,
        }
    })
}

/// The name of an error code (§7), as a `snake_case` suffix for error
/// codes on calls (`rst_stream_cancel`, `goaway_protocol_error`).
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "no_error",
        0x1 => "protocol_error",
        0x2 => "internal_error",
        0x3 => "flow_control_error",
        0x4 => "settings_timeout",
        0x5 => "stream_closed",
        0x6 => "frame_size_error",
        0x7 => "refused_stream",
        0x8 => "cancel",
        0x9 => "compression_error",
        0xa => "connect_error",
        0xb => "enhance_your_calm",
        0xc => "inadequate_security",
        0xd => "http_1_1_required",
        _ => "unknown_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn headers_parse_and_check() {
        let h = parse_header(&hex("000006 04 00 00000000")).unwrap();
        assert_eq!((h.len, h.kind, h.flags, h.stream), (6, SETTINGS, 0, 0));
        assert!(plausible(&h));
        // SETTINGS on a stream, PING of 7 bytes, unknown flags on DATA.
        for bad in [
            "000006 04 00 00000001",
            "000007 06 00 00000000",
            "000001 00 02 00000001",
        ] {
            assert!(!plausible(&parse_header(&hex(bad)).unwrap()), "{bad}");
        }
        assert!(parse_header(&hex("0000")).is_none());
    }

    #[test]
    fn chains() {
        let settings = hex("000000 04 01 00000000");
        let ping = hex("000008 06 00 00000000 0102030405060708");
        let mut two = settings.clone();
        two.extend_from_slice(&ping);
        assert_eq!(chain(&two), Chain::Yes);
        assert_eq!(chain(&ping[..12]), Chain::Maybe);
        assert_eq!(chain(b"GET / HTTP/1.1\r\n"), Chain::No);
        let mut noisy = b"xyz".to_vec();
        noisy.extend_from_slice(&two);
        assert_eq!(find_chain(&noisy), Some(3));
        assert_eq!(find_chain(b"hello world, no frames here"), None);
    }
}
