//! MySQL client/server protocol framing and packet decoding, pure
//! functions over bytes. [`Framer`] cuts one direction into packets
//! (3-byte little-endian length, 1-byte sequence id, payload), keeping at
//! most a cap of each payload and counting the rest; the decoders read the
//! greeting, the handshake response, OK, ERR and EOF packets and
//! length-encoded integers.
//!
//! Used by [`super::session`] and by the probe in [`super`].

/// A payload of this length continues in the next packet (payloads of
/// 16 MiB and more are split, the protocol's own limit per packet).
pub const MAX_PACKET_PAYLOAD: u32 = 0xff_ffff;

/// Capability flags trawl reads.
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub const CLIENT_COMPRESS: u32 = 0x0000_0020;
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub const CLIENT_SSL: u32 = 0x0000_0800;
pub const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x0020_0000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;

/// Server status flag: another result set follows.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// One packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    /// Payload length as declared.
    pub len: u32,
    /// The payload, at most the framer's cap.
    pub payload: Vec<u8>,
    pub first_ts: i64,
    pub last_ts: i64,
}

impl Packet {
    /// Bytes on the wire, header included.
    pub fn size(&self) -> u64 {
        u64::from(self.len) + 4
    }

    pub fn first(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    /// An EOF packet (or, with CLIENT_DEPRECATE_EOF, an OK packet with
    /// the EOF header): 0xfe and shorter than a row could be.
    pub fn is_eof(&self) -> bool {
        self.first() == Some(0xfe) && self.len < MAX_PACKET_PAYLOAD
    }
}

#[derive(Debug)]
enum FState {
    Head,
    Body { left: u32 },
}

/// Streaming packet framer for one direction.
#[derive(Debug)]
pub struct Framer {
    cap: usize,
    state: FState,
    head: Vec<u8>,
    cur: Option<Packet>,
}

impl Framer {
    pub fn new(cap: usize) -> Framer {
        Framer {
            cap,
            state: FState::Head,
            head: Vec::with_capacity(4),
            cur: None,
        }
    }

    pub fn reset(&mut self) {
        self.state = FState::Head;
        self.head.clear();
        self.cur = None;
    }

    pub fn idle(&self) -> bool {
        self.head.is_empty() && self.cur.is_none()
    }

    /// Reads up to one packet from `data`: the bytes used and the packet
    /// when one completed.
    pub fn step(&mut self, ts: i64, data: &[u8]) -> (usize, Option<Packet>) {
        match self.state {
            FState::Head => {
                let take = 4usize.saturating_sub(self.head.len()).min(data.len());
                if self.head.is_empty() {
                    self.cur = Some(Packet {
                        seq: 0,
                        len: 0,
                        payload: Vec::new(),
                        first_ts: ts,
                        last_ts: ts,
                    });
                }
                self.head
                    .extend_from_slice(data.get(..take).unwrap_or_default());
                let Some(&h) = self.head.first_chunk::<4>() else {
                    return (take, None);
                };
                let len = u32::from_le_bytes([h[0], h[1], h[2], 0]);
                let seq = h[3];
                self.head.clear();
                if let Some(p) = self.cur.as_mut() {
                    p.seq = seq;
                    p.len = len;
                    p.last_ts = ts;
                }
                if len == 0 {
                    return (take, self.cur.take());
                }
                self.state = FState::Body { left: len };
                (take, None)
            }
            FState::Body { left } => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                let bytes = data.get(..n).unwrap_or_default();
                if let Some(p) = self.cur.as_mut() {
                    let room = self.cap.saturating_sub(p.payload.len());
                    p.payload
                        .extend_from_slice(bytes.get(..room).unwrap_or(bytes));
                    p.last_ts = ts;
                }
                let left = left - n as u32;
                if left == 0 {
                    self.state = FState::Head;
                    return (n, self.cur.take());
                }
                self.state = FState::Body { left };
                (n, None)
            }
        }
    }
}

/// A length-encoded integer and the bytes after it.
pub fn lenenc(b: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = b.split_first()?;
    let (n, width) = match first {
        0..=0xfa => return Some((u64::from(first), rest)),
        0xfc => (2, 2),
        0xfd => (3, 3),
        0xfe => (8, 8),
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    let mut v = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(n) {
        v |= u64::from(*byte) << (8 * i);
    }
    Some((v, rest.get(width..).unwrap_or_default()))
}

pub fn le16(b: &[u8]) -> Option<u16> {
    b.first_chunk::<2>().map(|c| u16::from_le_bytes(*c))
}

pub fn le32(b: &[u8]) -> Option<u32> {
    b.first_chunk::<4>().map(|c| u32::from_le_bytes(*c))
}

/// The NUL-terminated string at the start of `b` and what follows.
pub fn cstr(b: &[u8]) -> (String, &[u8]) {
    match memchr::memchr(0, b) {
        Some(i) => (
            String::from_utf8_lossy(b.get(..i).unwrap_or_default()).into_owned(),
            b.get(i + 1..).unwrap_or_default(),
        ),
        None => (String::from_utf8_lossy(b).into_owned(), &[]),
    }
}

/// The server greeting (protocol 10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Greeting {
    pub version: String,
    pub connection_id: u32,
    pub capabilities: u32,
}

pub fn greeting(p: &[u8]) -> Option<Greeting> {
    let rest = p.strip_prefix(&[10u8])?;
    let (version, rest) = cstr(rest);
    let connection_id = le32(rest)?;
    // auth-plugin-data part 1 (8), filler (1), capabilities low (2).
    let low = le16(rest.get(13..)?)?;
    // charset (1), status (2), capabilities high (2).
    let high = rest.get(18..).and_then(le16).unwrap_or(0);
    Some(Greeting {
        version,
        connection_id,
        capabilities: u32::from(low) | (u32::from(high) << 16),
    })
}

/// What a HandshakeResponse41 says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    pub capabilities: u32,
    pub user: String,
    pub database: String,
}

pub fn handshake_response(p: &[u8]) -> Option<Login> {
    let capabilities = le32(p)?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        // Pre-4.1 HandshakeResponse320: 2-byte caps, 3-byte max size, user.
        let (user, _) = cstr(p.get(5..)?);
        return Some(Login {
            capabilities: capabilities & 0xffff,
            user,
            database: String::new(),
        });
    }
    let mut login = Login {
        capabilities,
        ..Login::default()
    };
    // max packet size (4), charset (1), filler (23).
    let Some(rest) = p.get(32..) else {
        // The SSL request stops here.
        return Some(login);
    };
    let (user, rest) = cstr(rest);
    login.user = user;
    let rest = if capabilities & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        let (n, r) = lenenc(rest)?;
        r.get(usize::try_from(n).ok()?..)?
    } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let (&n, r) = rest.split_first()?;
        r.get(usize::from(n)..)?
    } else {
        cstr(rest).1
    };
    if capabilities & CLIENT_CONNECT_WITH_DB != 0 {
        login.database = cstr(rest).0;
    }
    Some(login)
}

/// An OK packet's counts: affected rows, last insert id, status, warnings.
pub fn ok_packet(p: &[u8]) -> Option<(u64, u64, u16, u16)> {
    let rest = p.get(1..)?;
    let (affected, rest) = lenenc(rest)?;
    let (insert_id, rest) = lenenc(rest)?;
    let status = le16(rest).unwrap_or(0);
    let warnings = rest.get(2..).and_then(le16).unwrap_or(0);
    Some((affected, insert_id, status, warnings))
}

/// An EOF packet's warnings and status.
pub fn eof_packet(p: &[u8]) -> (u16, u16) {
    let warnings = p.get(1..).and_then(le16).unwrap_or(0);
    let status = p.get(3..).and_then(le16).unwrap_or(0);
    (warnings, status)
}

/// An ERR packet: code, SQLSTATE (empty before 4.1), message.
pub fn err_packet(p: &[u8]) -> (u16, String, String) {
    let code = p.get(1..).and_then(le16).unwrap_or(0);
    let rest = p.get(3..).unwrap_or_default();
    let (state, msg) = match rest.split_first() {
        Some((b'#', r)) => (
            String::from_utf8_lossy(r.get(..5).unwrap_or(r)).into_owned(),
            r.get(5..).unwrap_or_default(),
        ),
        _ => (String::new(), rest),
    };
    (code, state, String::from_utf8_lossy(msg).into_owned())
}

/// The SQL text of a COM_QUERY body (after the command byte). With
/// CLIENT_QUERY_ATTRIBUTES (MySQL 8.0.23+) the text follows a parameter
/// count and a parameter set count; `attributes` is None when the
/// capabilities are unknown (no handshake seen): then the prefix is
/// recognised by its usual value, no parameters (`00 01`).
pub fn query_text(body: &[u8], attributes: Option<bool>) -> &[u8] {
    let with = attributes.unwrap_or(body.starts_with(&[0, 1]));
    if !with {
        return body;
    }
    let Some((params, rest)) = lenenc(body) else {
        return body;
    };
    let Some((_sets, rest)) = lenenc(rest) else {
        return body;
    };
    if params == 0 {
        return rest;
    }
    // Parameters (null bitmap, types and names, values) come before the
    // text; their layout needs the types: keep the text's printable tail.
    let start = rest.iter().rposition(|b| *b < 0x09).map_or(0, |p| p + 1);
    rest.get(start..).unwrap_or(rest)
}

/// Command names by command byte.
pub fn command_name(c: u8) -> &'static str {
    match c {
        0x00 => "COM_SLEEP",
        0x01 => "COM_QUIT",
        0x02 => "COM_INIT_DB",
        0x03 => "COM_QUERY",
        0x04 => "COM_FIELD_LIST",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x09 => "COM_STATISTICS",
        0x0a => "COM_PROCESS_INFO",
        0x0b => "COM_CONNECT",
        0x0c => "COM_PROCESS_KILL",
        0x0d => "COM_DEBUG",
        0x0e => "COM_PING",
        0x0f => "COM_TIME",
        0x10 => "COM_DELAYED_INSERT",
        0x11 => "COM_CHANGE_USER",
        0x12 => "COM_BINLOG_DUMP",
        0x13 => "COM_TABLE_DUMP",
        0x14 => "COM_CONNECT_OUT",
        0x15 => "COM_REGISTER_SLAVE",
        0x16 => "COM_STMT_PREPARE",
        0x17 => "COM_STMT_EXECUTE",
        0x18 => "COM_STMT_SEND_LONG_DATA",
        0x19 => "COM_STMT_CLOSE",
        0x1a => "COM_STMT_RESET",
        0x1b => "COM_SET_OPTION",
        0x1c => "COM_STMT_FETCH",
        0x1d => "COM_DAEMON",
        0x1e => "COM_BINLOG_DUMP_GTID",
        0x1f => "COM_RESET_CONNECTION",
        0xfa => "COM_STMT_BULK_EXECUTE",
        _ => "COM_UNKNOWN",
    }
}

fn texty(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|c| *c >= 0x20 || b"\t\r\n".contains(c))
}

/// First bytes a server sends: a protocol-10 greeting with a printable
/// version (`8.0.32`, `5.5.5-10.11.6-MariaDB`). `None`: too few bytes.
pub fn looks_like_greeting(data: &[u8]) -> Option<bool> {
    let Some(h) = data.first_chunk::<5>() else {
        let ok = data.get(3).is_none_or(|s| *s == 0) && data.get(4).is_none_or(|v| *v == 10);
        return if ok { None } else { Some(false) };
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    if h[3] != 0 || h[4] != 10 || !(30..=1024).contains(&len) {
        return Some(false);
    }
    let payload = data.get(4..4 + len)?;
    let version = payload.get(1..).unwrap_or_default();
    let Some(nul) = memchr::memchr(0, version) else {
        return Some(false);
    };
    let v = version.get(..nul).unwrap_or_default();
    Some(v.first().is_some_and(u8::is_ascii_digit) && v.iter().all(|c| c.is_ascii_graphic()))
}

/// First bytes a client sends in a capture that starts mid-connection:
/// one whole command packet (sequence 0) whose body fits its command.
pub fn looks_like_command(data: &[u8]) -> Option<bool> {
    let Some(h) = data.first_chunk::<5>() else {
        return if data.get(3).is_none_or(|s| *s == 0) {
            None
        } else {
            Some(false)
        };
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    if h[3] != 0 || len == 0 || len > 1 << 20 {
        return Some(false);
    }
    let Some(payload) = data.get(4..4 + len) else {
        return if data.len() < 8192 { None } else { Some(false) };
    };
    if data.len() != len + 4 {
        // A client sends one command and waits for its answer.
        return Some(false);
    }
    let body = payload.get(1..).unwrap_or_default();
    Some(match h[4] {
        0x01 | 0x09 | 0x0e | 0x1f => body.is_empty(),
        0x02 | 0x03 | 0x16 => texty(body),
        0x19 | 0x1a => body.len() == 4,
        0x17 => body.len() >= 9,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn framing_and_decoders() {
        let wire = hex(
            "21000000 03 73656c65637420404076657273696f6e5f636f6d6d656e74206c696d69742031 01000001 01",
        );
        for cut in 0..wire.len() {
            let mut f = Framer::new(8);
            let mut out = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                let mut d = part;
                while !d.is_empty() {
                    let (n, p) = f.step(0, d);
                    d = &d[n..];
                    out.extend(p);
                }
            }
            assert_eq!(out.len(), 2, "cut {cut}");
            assert_eq!(out[0].len, 33);
            assert_eq!(out[0].payload.len(), 8);
            assert_eq!(out[1].seq, 1);
            assert_eq!(out[1].size(), 5);
        }
        assert_eq!(lenenc(&[0xfc, 0x10, 0x27]), Some((10000, &[][..])));
        assert_eq!(lenenc(&[0xfb]), None);
        let (code, state, msg) = err_packet(b"\xff\x7a\x04#42S02Table 't' doesn't exist");
        assert_eq!(
            (code, state.as_str(), msg.as_str()),
            (1146, "42S02", "Table 't' doesn't exist")
        );
        assert_eq!(
            ok_packet(b"\x00\x03\x07\x02\x00\x01\x00"),
            Some((3, 7, 2, 1))
        );
    }

    #[test]
    fn greeting_and_login() {
        // MariaDB 10.11 greeting (trimmed auth data) and a HandshakeResponse41.
        let mut g = vec![10u8];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0");
        g.extend_from_slice(&31u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&0xf7feu16.to_le_bytes());
        g.extend_from_slice(&[8, 2, 0]);
        g.extend_from_slice(&0x81ffu16.to_le_bytes());
        let gr = greeting(&g).unwrap();
        assert_eq!(gr.version, "5.5.5-10.11.6-MariaDB");
        assert_eq!(gr.connection_id, 31);
        assert_eq!(gr.capabilities, 0x81ff_f7fe);
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_CONNECT_WITH_DB;
        let mut l = caps.to_le_bytes().to_vec();
        l.extend_from_slice(&[0; 28]);
        l.extend_from_slice(b"app\0\x02xyshop\0");
        let login = handshake_response(&l).unwrap();
        assert_eq!(
            (login.user.as_str(), login.database.as_str()),
            ("app", "shop")
        );
    }

    #[test]
    fn probes() {
        let mut g = (40u32.to_le_bytes()[..3]).to_vec();
        g.push(0);
        g.push(10);
        g.extend_from_slice(b"8.0.32\0");
        g.resize(44, 1);
        assert_eq!(looks_like_greeting(&g), Some(true));
        assert_eq!(looks_like_greeting(b"HTTP/1.1 200 OK\r\n"), Some(false));
        assert_eq!(looks_like_greeting(b"\x00\x00"), None);
        let q = hex("0f000000 03 73686f7720646174616261736573");
        assert_eq!(looks_like_command(&q), Some(true));
        assert_eq!(looks_like_command(&hex("01000000 0e")), Some(true));
        assert_eq!(looks_like_command(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(
            looks_like_command(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
            Some(false)
        );
    }
}
