//! PostgreSQL wire protocol (v3) framing and message decoding, pure
//! functions over bytes. [`Framer`] cuts one direction's stream into
//! messages (typed: a type byte and a length; untyped: the startup-phase
//! packets SSLRequest, GSSENCRequest, CancelRequest and StartupMessage,
//! which have a length and a code but no type byte), keeping at most a
//! cap of each message's bytes and counting the rest. The decoders read
//! the fields trawl reports (query text, statement names, command tags,
//! error fields, startup parameters).
//!
//! Used by [`super::session`] and by the probe in [`super`].

/// Largest message length accepted: PostgreSQL never allocates more than
/// 1 GiB - 1 for one message (`MaxAllocSize`); longer is not PostgreSQL.
pub const MAX_MESSAGE_LEN: u32 = 0x3fff_ffff;

/// Largest startup-phase packet: the server refuses startup packets over
/// 10000 bytes (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: u32 = 10_000;

/// Protocol 3.0, the StartupMessage code.
pub const PROTOCOL_3: u32 = 196_608;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// One framed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The type byte; 0 for an untyped startup-phase packet.
    pub tag: u8,
    /// The packet's code (untyped packets only).
    pub code: u32,
    /// The message body after the length (and after the code for untyped
    /// packets), at most the framer's cap.
    pub body: Vec<u8>,
    /// True when `body` holds less than the message had.
    pub truncated: bool,
    /// Bytes on the wire, type byte and length included.
    pub size: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// Why bytes are not PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A length under 4 or over the limits.
    BadLength,
    /// An untyped packet with an unknown code.
    BadCode,
}

impl FrameError {
    pub fn code(self) -> &'static str {
        match self {
            FrameError::BadLength => "postgresql_bad_length",
            FrameError::BadCode => "postgresql_bad_code",
        }
    }
}

#[derive(Debug)]
enum FState {
    /// Reading a header (type byte if typed, then 4 length bytes, then the
    /// 4-byte code if untyped) into `head`.
    Head,
    /// Reading a body: bytes still to come.
    Body { left: u64 },
}

/// Streaming framer for one direction.
#[derive(Debug)]
pub struct Framer {
    /// The next message is an untyped startup-phase packet.
    pub untyped: bool,
    cap: usize,
    state: FState,
    head: Vec<u8>,
    cur: Option<Frame>,
}

impl Framer {
    pub fn new(untyped: bool, cap: usize) -> Framer {
        Framer {
            untyped,
            cap,
            state: FState::Head,
            head: Vec::with_capacity(9),
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

    /// Reads up to one message from `data`; returns the bytes used and the
    /// message when one completed. The caller loops (the session decides
    /// between messages whether the next one is typed).
    pub fn step(&mut self, ts: i64, data: &[u8]) -> Result<(usize, Option<Frame>), FrameError> {
        match self.state {
            FState::Head => {
                let need: usize = if self.untyped { 8 } else { 5 };
                let take = need.saturating_sub(self.head.len()).min(data.len());
                let (bytes, _) = data.split_at(take);
                if self.head.is_empty() {
                    self.cur = Some(Frame {
                        tag: 0,
                        code: 0,
                        body: Vec::new(),
                        truncated: false,
                        size: 0,
                        first_ts: ts,
                        last_ts: ts,
                    });
                }
                self.head.extend_from_slice(bytes);
                if self.head.len() < need {
                    return Ok((take, None));
                }
                let (tag, len_at) = if self.untyped {
                    (0u8, 0usize)
                } else {
                    (self.head.first().copied().unwrap_or(0), 1usize)
                };
                let len = be32(self.head.get(len_at..len_at + 4).unwrap_or_default())
                    .ok_or(FrameError::BadLength)?;
                let (min, max) = if self.untyped {
                    (8, MAX_STARTUP_LEN)
                } else {
                    (4, MAX_MESSAGE_LEN)
                };
                if len < min || len > max {
                    return Err(FrameError::BadLength);
                }
                let code = if self.untyped {
                    let c = be32(self.head.get(4..8).unwrap_or_default()).unwrap_or(0);
                    if !matches!(
                        c,
                        PROTOCOL_3 | SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST
                    ) && c >> 16 != 3
                    {
                        return Err(FrameError::BadCode);
                    }
                    c
                } else {
                    0
                };
                let left = u64::from(len) - if self.untyped { 8 } else { 4 };
                if let Some(f) = self.cur.as_mut() {
                    f.tag = tag;
                    f.code = code;
                    f.size = u64::from(len) + u64::from(!self.untyped);
                    f.last_ts = ts;
                }
                self.head.clear();
                self.state = FState::Body { left };
                if left == 0 {
                    self.state = FState::Head;
                    return Ok((take, self.cur.take()));
                }
                Ok((take, None))
            }
            FState::Body { left } => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                let (bytes, _) = data.split_at(n);
                if let Some(f) = self.cur.as_mut() {
                    let room = self.cap.saturating_sub(f.body.len());
                    let keep = bytes.get(..room).unwrap_or(bytes);
                    if keep.len() < bytes.len() {
                        f.truncated = true;
                    }
                    f.body.extend_from_slice(keep);
                    f.last_ts = ts;
                }
                let left = left - n as u64;
                if left == 0 {
                    self.state = FState::Head;
                    return Ok((n, self.cur.take()));
                }
                self.state = FState::Body { left };
                Ok((n, None))
            }
        }
    }
}

pub fn be32(b: &[u8]) -> Option<u32> {
    b.first_chunk::<4>().map(|c| u32::from_be_bytes(*c))
}

pub fn be16(b: &[u8]) -> Option<u16> {
    b.first_chunk::<2>().map(|c| u16::from_be_bytes(*c))
}

/// The NUL-terminated string at the start of `b` (all of `b` when the NUL
/// was cut off), lossily decoded, and the bytes after its NUL.
pub fn cstr(b: &[u8]) -> (String, &[u8]) {
    match memchr::memchr(0, b) {
        Some(i) => (
            String::from_utf8_lossy(b.get(..i).unwrap_or_default()).into_owned(),
            b.get(i + 1..).unwrap_or_default(),
        ),
        None => (String::from_utf8_lossy(b).into_owned(), &[]),
    }
}

/// Name of a client (frontend) message type.
pub fn frontend_name(tag: u8) -> &'static str {
    match tag {
        b'Q' => "Query",
        b'P' => "Parse",
        b'B' => "Bind",
        b'D' => "Describe",
        b'E' => "Execute",
        b'S' => "Sync",
        b'H' => "Flush",
        b'C' => "Close",
        b'X' => "Terminate",
        b'd' => "CopyData",
        b'c' => "CopyDone",
        b'f' => "CopyFail",
        b'p' => "PasswordMessage",
        b'F' => "FunctionCall",
        _ => "Unknown",
    }
}

/// Name of a server (backend) message type; Authentication by subtype.
pub fn backend_name(tag: u8, body: &[u8]) -> &'static str {
    match tag {
        b'R' => match be32(body) {
            Some(0) => "AuthenticationOk",
            Some(2) => "AuthenticationKerberosV5",
            Some(3) => "AuthenticationCleartextPassword",
            Some(5) => "AuthenticationMD5Password",
            Some(7) => "AuthenticationGSS",
            Some(8) => "AuthenticationGSSContinue",
            Some(9) => "AuthenticationSSPI",
            Some(10) => "AuthenticationSASL",
            Some(11) => "AuthenticationSASLContinue",
            Some(12) => "AuthenticationSASLFinal",
            _ => "Authentication",
        },
        b'S' => "ParameterStatus",
        b'K' => "BackendKeyData",
        b'Z' => "ReadyForQuery",
        b'T' => "RowDescription",
        b'D' => "DataRow",
        b'C' => "CommandComplete",
        b'E' => "ErrorResponse",
        b'N' => "NoticeResponse",
        b'I' => "EmptyQueryResponse",
        b'1' => "ParseComplete",
        b'2' => "BindComplete",
        b'3' => "CloseComplete",
        b'n' => "NoData",
        b't' => "ParameterDescription",
        b's' => "PortalSuspended",
        b'G' => "CopyInResponse",
        b'H' => "CopyOutResponse",
        b'W' => "CopyBothResponse",
        b'd' => "CopyData",
        b'c' => "CopyDone",
        b'A' => "NotificationResponse",
        b'v' => "NegotiateProtocolVersion",
        b'V' => "FunctionCallResponse",
        _ => "Unknown",
    }
}

/// Backend type bytes the probe accepts at the start of a server stream.
const BACKEND_TAGS: &[u8] = b"RSKZTDCEI123ntsGHWdcAvV";

/// The fields of an ErrorResponse or NoticeResponse: (code, value) pairs.
pub fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let (v, tail) = cstr(tail);
        out.push((code, v));
        rest = tail;
    }
    out
}

/// StartupMessage parameters (`user`, `database`, `application_name`, …).
pub fn startup_params(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.first().is_some_and(|b| *b != 0) {
        let (k, tail) = cstr(rest);
        let (v, tail) = cstr(tail);
        out.push((k, v));
        rest = tail;
    }
    out
}

/// Rows a CommandComplete tag reports (`INSERT 0 5` → 5, `SELECT 3` → 3,
/// `UPDATE 0` → 0); None for tags without a count (`BEGIN`).
pub fn tag_rows(tag: &str) -> Option<i64> {
    let last = tag.rsplit(' ').next()?;
    if last == tag {
        return None;
    }
    last.parse().ok()
}

/// First bytes a client sends: a startup-phase packet, or (a capture that
/// starts mid-connection) a whole Query or Parse message whose length
/// covers its NUL-terminated text exactly. `None`: too few bytes.
pub fn looks_like_frontend(data: &[u8]) -> Option<bool> {
    if data.len() < 8 {
        // Either an untyped length (starts with 0x00 0x00) or a Q/P.
        let plausible = match data.first() {
            None => true,
            Some(0) => data.get(1).is_none_or(|b| *b == 0),
            Some(b'Q' | b'P') => data.get(1).is_none_or(|b| *b == 0),
            _ => false,
        };
        return if plausible { None } else { Some(false) };
    }
    let len = be32(data).unwrap_or(0);
    let code = be32(data.get(4..).unwrap_or_default()).unwrap_or(0);
    match code {
        SSL_REQUEST | GSSENC_REQUEST => return Some(len == 8),
        CANCEL_REQUEST => return Some(len == 16),
        PROTOCOL_3 => return Some((9..=MAX_STARTUP_LEN).contains(&len)),
        _ => {}
    }
    let tag = data.first().copied().unwrap_or(0);
    if tag != b'Q' && tag != b'P' {
        return Some(false);
    }
    let len = be32(data.get(1..).unwrap_or_default()).unwrap_or(0) as usize;
    if !(5..=1 << 20).contains(&len) {
        return Some(false);
    }
    let Some(body) = data.get(5..len + 1) else {
        return if data.len() < 4096 { None } else { Some(false) };
    };
    let text_ok = |t: &[u8]| t.iter().all(|b| *b >= 0x20 || b"\t\r\n".contains(b));
    Some(match tag {
        b'Q' => body.last() == Some(&0) && text_ok(body.get(..body.len() - 1).unwrap_or_default()),
        _ => {
            // Parse: statement name, query, parameter type count and types.
            let (name, rest) = cstr(body);
            let Some(nul) = memchr::memchr(0, rest) else {
                return Some(false);
            };
            let n = be16(rest.get(nul + 1..).unwrap_or_default()).unwrap_or(u16::MAX);
            !name.contains('\u{fffd}')
                && text_ok(rest.get(..nul).unwrap_or_default())
                && rest.len() == nul + 3 + 4 * usize::from(n)
        }
    })
}

/// First bytes a server sends mid-connection: whole backend messages with
/// known type bytes chained exactly, the last a ReadyForQuery, or an
/// SSL/GSS answer can not be told apart and is refused.
pub fn looks_like_backend(data: &[u8]) -> Option<bool> {
    let mut rest = data;
    let mut n = 0;
    while !rest.is_empty() {
        let Some(&tag) = rest.first() else { break };
        if !BACKEND_TAGS.contains(&tag) {
            return Some(false);
        }
        let len = be32(rest.get(1..).unwrap_or_default())?;
        if !(4..=1 << 24).contains(&len) {
            return Some(false);
        }
        let Some(msg) = rest.get(..len as usize + 1) else {
            return if data.len() < 8192 { None } else { Some(false) };
        };
        if tag == b'Z' {
            return Some(len == 5 && matches!(msg.last(), Some(b'I' | b'T' | b'E')) && n > 0);
        }
        n += 1;
        rest = rest.get(len as usize + 1..).unwrap_or_default();
    }
    // Whole messages, but no ReadyForQuery yet.
    if data.len() < 8192 { None } else { Some(false) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(untyped: bool, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = Framer::new(untyped, 16);
        let mut out = Vec::new();
        for c in chunks {
            let mut d = *c;
            while !d.is_empty() {
                let (n, fr) = f.step(0, d).unwrap();
                d = &d[n..];
                if let Some(fr) = fr {
                    f.untyped = false;
                    out.push(fr);
                }
            }
        }
        out
    }

    #[test]
    fn framing_split_anywhere_and_capped() {
        let mut wire = b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec();
        wire.extend_from_slice(b"Q\x00\x00\x00\x0eselect 1;\x00");
        wire.extend_from_slice(b"Q\x00\x00\x00\x20select 'a long query text';\x00");
        for cut in 0..wire.len() {
            let out = frames(true, &[&wire[..cut], &wire[cut..]]);
            assert_eq!(out.len(), 3, "cut {cut}");
            assert_eq!(out[0].code, SSL_REQUEST);
            assert_eq!(out[1].tag, b'Q');
            assert_eq!(out[1].body, b"select 1;\x00");
            assert_eq!(out[1].size, 15);
            assert!(out[2].truncated);
            assert_eq!(out[2].body.len(), 16);
        }
        let mut f = Framer::new(false, 16);
        assert_eq!(f.step(0, b"Q\x00\x00\x00\x02"), Err(FrameError::BadLength));
        let mut f = Framer::new(true, 16);
        assert_eq!(
            f.step(0, b"\x00\x00\x00\x08\x01\x02\x03\x04"),
            Err(FrameError::BadCode)
        );
    }

    #[test]
    fn decoders() {
        let e = error_fields(b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0\0");
        assert_eq!(e[1], (b'C', "42P01".to_owned()));
        assert_eq!(
            startup_params(b"user\0bob\0database\0shop\0\0"),
            [
                ("user".to_owned(), "bob".to_owned()),
                ("database".into(), "shop".into())
            ]
        );
        assert_eq!(tag_rows("INSERT 0 5"), Some(5));
        assert_eq!(tag_rows("SELECT 3"), Some(3));
        assert_eq!(tag_rows("BEGIN"), None);
        assert_eq!(backend_name(b'R', &[0, 0, 0, 10]), "AuthenticationSASL");
    }

    #[test]
    fn probes() {
        assert_eq!(
            looks_like_frontend(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
            Some(true)
        );
        assert_eq!(
            looks_like_frontend(b"\x00\x00\x00\x10\x04\xd2\x16\x2e\0\0\0\x01\0\0\0\x02"),
            Some(true)
        );
        assert_eq!(
            looks_like_frontend(b"Q\x00\x00\x00\x0eselect 1;\x00"),
            Some(true)
        );
        assert_eq!(
            looks_like_frontend(b"Q\x00\x00\x00\x0eselect 1;X"),
            Some(false)
        );
        assert_eq!(
            looks_like_frontend(b"P\x00\x00\x00\x10\x00select 1\x00\x00\x00"),
            Some(true)
        );
        assert_eq!(looks_like_frontend(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(
            looks_like_frontend(b"\x16\x03\x01\x02\x00\x01\x00\x01"),
            Some(false)
        );
        assert_eq!(looks_like_frontend(b"\x00\x00"), None);
        assert_eq!(
            looks_like_backend(b"C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I"),
            Some(true)
        );
        assert_eq!(looks_like_backend(b"HTTP/1.1 200 OK\r\n"), Some(false));
        assert_eq!(looks_like_backend(b"+OK\r\n"), Some(false));
    }
}
