//! DNS messages (RFC 1035 and its updates) as pure functions over one
//! message's bytes: the header, the questions, the answer records, and the
//! EDNS OPT record of the additional section; authority and additional
//! records are walked (bounds-checked, not decoded) and skipped.
//!
//! Nothing is copied or allocated while parsing: a [`Message`] is a set of
//! offsets into the caller's bytes, names ([`Name`]) are decompressed
//! lazily when iterated or rendered, and only the `push_*` renderers write,
//! into a `String` the caller owns. Every name is validated once, when the
//! message is walked: labels of at most 63 bytes, at most 255 bytes in all,
//! and compression pointers that point strictly backwards (so they cannot
//! loop) and no more than [`MAX_POINTER_JUMPS`] of them.
//!
//! Presentation forms: names are shown as sent (case kept), without the
//! trailing dot, the root name as `.`; bytes outside printable ASCII, and
//! `.` and `\` inside a label, are escaped as `\DDD` or `\.`/`\\`
//! (RFC 1035 §5.1, RFC 4343 §2.1). Record data follows the master-file
//! forms (`10 mail.example.com` for MX, quoted strings for TXT, …), and
//! types without one are shown in the RFC 3597 generic form `\# len HEX`.
//!
//! Framing (UDP datagrams, TCP length prefixes), pairing and limits belong
//! to [`super::session`]; the probe in [`super`] uses [`parse_header`] and
//! [`read_question`].

use std::fmt::{self, Write as _};
use std::net::Ipv6Addr;

/// Bytes of the fixed header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

/// Longest name on the wire, length bytes and the root label included
/// (RFC 1035 §2.3.4). It also bounds a rendered name: at most 1020
/// characters even when every byte needs a `\DDD` escape.
pub const MAX_NAME_WIRE_LEN: usize = 255;

/// Longest label (RFC 1035 §2.3.4); the two top bits of a length byte are
/// the label type, so a length byte of 0x40–0xBF is an obsolete extended
/// label (RFC 6891 §5 retired them) or reserved, never a long label.
pub const MAX_LABEL_LEN: usize = 63;

/// Compression pointers followed while reading one name. Pointers must
/// point before the labels they continue, so they cannot loop; this bounds
/// chains of pointers to pointers as well. An encoder ends a name with at
/// most one pointer, and the name it points into ends with at most one
/// more, so a chain is no longer than the number of suffixes of a name: at
/// most 127 for a 255-byte name (127 one-byte labels).
pub const MAX_POINTER_JUMPS: usize = 127;

/// Record type of the EDNS OPT pseudo-record (RFC 6891 §6.1.1).
pub const TYPE_OPT: u16 = 41;

/// Why bytes are not a well-formed DNS message. Offsets are from the
/// first byte of the message (the header's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("message of {len} bytes is shorter than the 12-byte DNS header")]
    ShortHeader { len: usize },
    #[error("{need} bytes needed at byte {offset}, past the end of the message")]
    Truncated { offset: usize, need: usize },
    #[error(
        "length byte {byte:#04x} at byte {offset}: labels are at most 63 bytes, \
         and label types 0x40-0xbf are obsolete or reserved"
    )]
    BadLabel { offset: usize, byte: u8 },
    #[error("name at byte {offset} is longer than 255 bytes")]
    NameTooLong { offset: usize },
    #[error(
        "compression pointer at byte {offset} points to byte {target}, outside the message body"
    )]
    PointerOutOfRange { offset: usize, target: usize },
    #[error(
        "compression pointer at byte {offset} points to byte {target}, \
         not before the labels it continues (a forward pointer or a loop)"
    )]
    PointerForward { offset: usize, target: usize },
    #[error("name at byte {offset} follows more than 127 compression pointers")]
    TooManyPointers { offset: usize },
    #[error("record data at byte {offset} does not fit the format of type {rtype}")]
    BadRdata { offset: usize, rtype: u16 },
}

/// The sections of a message, for error reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Question,
    Answer,
    Authority,
    Additional,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Question => "question",
            Section::Answer => "answer",
            Section::Authority => "authority",
            Section::Additional => "additional",
        })
    }
}

/// The first problem found walking a message's sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{section} section: {error}")]
pub struct SectionError {
    pub section: Section,
    #[source]
    pub error: DnsError,
}

/// The fixed header (RFC 1035 §4.1.1, flags from RFC 4035 §3.2 for AD/CD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// QR, opcode, AA, TC, RD, RA, Z, AD, CD and rcode, as sent.
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// QR: this is a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// AA: the answer is authoritative.
    pub fn authoritative(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// TC: the message was cut to fit the transport (UDP); the client
    /// should retry over TCP.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    pub fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    pub fn recursion_available(&self) -> bool {
        self.flags & 0x0080 != 0
    }

    /// The reserved Z bit; zero in every conforming message.
    pub fn z(&self) -> bool {
        self.flags & 0x0040 != 0
    }

    pub fn authentic_data(&self) -> bool {
        self.flags & 0x0020 != 0
    }

    pub fn checking_disabled(&self) -> bool {
        self.flags & 0x0010 != 0
    }

    /// The header's 4-bit rcode; see [`Message::rcode`] for the EDNS one.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

/// Reads the fixed header.
pub fn parse_header(msg: &[u8]) -> Result<Header, DnsError> {
    let h = msg
        .first_chunk::<HEADER_LEN>()
        .ok_or(DnsError::ShortHeader { len: msg.len() })?;
    let [i0, i1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1] = *h;
    Ok(Header {
        id: u16::from_be_bytes([i0, i1]),
        flags: u16::from_be_bytes([f0, f1]),
        qdcount: u16::from_be_bytes([q0, q1]),
        ancount: u16::from_be_bytes([a0, a1]),
        nscount: u16::from_be_bytes([n0, n1]),
        arcount: u16::from_be_bytes([r0, r1]),
    })
}

/// `N` bytes at `at`, or `Truncated`.
fn bytes_at<const N: usize>(msg: &[u8], at: usize) -> Result<[u8; N], DnsError> {
    msg.get(at..)
        .and_then(|rest| rest.first_chunk::<N>())
        .copied()
        .ok_or(DnsError::Truncated {
            offset: at,
            need: N,
        })
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, DnsError> {
    bytes_at::<2>(msg, at).map(u16::from_be_bytes)
}

fn u32_at(msg: &[u8], at: usize) -> Result<u32, DnsError> {
    bytes_at::<4>(msg, at).map(u32::from_be_bytes)
}

/// A validated, possibly compressed domain name inside a message. Cheap to
/// copy; its labels are read from the message when iterated or rendered.
#[derive(Clone, Copy)]
pub struct Name<'a> {
    msg: &'a [u8],
    start: usize,
    /// Uncompressed wire length, root byte included (1..=255).
    wire_len: u8,
}

/// Reads and validates the name at `at`; returns it and the offset just
/// past its encoding there (after its first pointer, if compressed).
pub fn read_name(msg: &[u8], at: usize) -> Result<(Name<'_>, usize), DnsError> {
    let mut pos = at;
    // Start of the run of labels being read: a pointer must point before
    // it, so every jump goes strictly backwards and no loop is possible.
    let mut run_start = at;
    let mut after: Option<usize> = None;
    let mut wire_len: usize = 1;
    let mut jumps = 0usize;
    loop {
        let [byte] = bytes_at::<1>(msg, pos)?;
        match byte >> 6 {
            0b00 => {
                if byte == 0 {
                    let end = match after {
                        Some(end) => end,
                        None => pos.saturating_add(1),
                    };
                    let wire_len = u8::try_from(wire_len).unwrap_or(u8::MAX);
                    return Ok((
                        Name {
                            msg,
                            start: at,
                            wire_len,
                        },
                        end,
                    ));
                }
                let len = usize::from(byte);
                wire_len = wire_len.saturating_add(len + 1);
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(DnsError::NameTooLong { offset: at });
                }
                let next = pos.saturating_add(1 + len);
                if next > msg.len() {
                    return Err(DnsError::Truncated {
                        offset: pos.saturating_add(1),
                        need: len,
                    });
                }
                pos = next;
            }
            0b11 => {
                let [_, low] = bytes_at::<2>(msg, pos)?;
                let target = usize::from(u16::from_be_bytes([byte & 0x3f, low]));
                if target < HEADER_LEN || target >= msg.len() {
                    return Err(DnsError::PointerOutOfRange {
                        offset: pos,
                        target,
                    });
                }
                if target >= run_start {
                    return Err(DnsError::PointerForward {
                        offset: pos,
                        target,
                    });
                }
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return Err(DnsError::TooManyPointers { offset: at });
                }
                if after.is_none() {
                    after = Some(pos.saturating_add(2));
                }
                run_start = target;
                pos = target;
            }
            _ => return Err(DnsError::BadLabel { offset: pos, byte }),
        }
    }
}

/// Walks past the name at `at` without following its pointer: labels are
/// checked for type and bounds, but the pointed-to suffix is not. For
/// records that are skipped, not shown.
pub fn skip_name(msg: &[u8], at: usize) -> Result<usize, DnsError> {
    let mut pos = at;
    let mut wire_len: usize = 1;
    loop {
        let [byte] = bytes_at::<1>(msg, pos)?;
        match byte >> 6 {
            0b00 if byte == 0 => return Ok(pos.saturating_add(1)),
            0b00 => {
                let len = usize::from(byte);
                wire_len = wire_len.saturating_add(len + 1);
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(DnsError::NameTooLong { offset: at });
                }
                pos = pos.saturating_add(1 + len);
            }
            0b11 => {
                bytes_at::<2>(msg, pos)?;
                return Ok(pos.saturating_add(2));
            }
            _ => return Err(DnsError::BadLabel { offset: pos, byte }),
        }
    }
}

impl<'a> Name<'a> {
    /// The labels, root excluded, pointers followed.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            msg: self.msg,
            pos: self.start,
            jumps: 0,
        }
    }

    pub fn is_root(&self) -> bool {
        self.wire_len <= 1
    }

    /// Length of the uncompressed wire form, root byte included.
    pub fn wire_len(&self) -> usize {
        usize::from(self.wire_len)
    }

    /// Offset of the name's first byte in its message.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// Offset of the name's first label (or root byte) once leading
    /// compression pointers are followed. Names of one message with the
    /// same resolved offset are the same name, so a caller can render it
    /// once (answers for one owner usually all point at the question).
    pub fn resolved_offset(&self) -> usize {
        let mut pos = self.start;
        for _ in 0..MAX_POINTER_JUMPS {
            match self.msg.get(pos..).and_then(|rest| rest.first_chunk::<2>()) {
                Some(&[hi, lo]) if hi & 0xc0 == 0xc0 => {
                    pos = usize::from(u16::from_be_bytes([hi & 0x3f, lo]));
                }
                _ => break,
            }
        }
        pos
    }

    /// Writes the presentation form (see the module doc).
    pub fn write_to<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        if self.is_root() {
            return w.write_char('.');
        }
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                w.write_char('.')?;
            }
            write_label(label, w)?;
        }
        Ok(())
    }

    /// Appends the presentation form to `out`.
    pub fn push_to(&self, out: &mut String) {
        out.reserve(self.wire_len());
        // Writing into a String cannot fail.
        let _ = self.write_to(out);
    }

    /// The presentation form in a new string sized for it.
    pub fn to_presentation(&self) -> String {
        let mut s = String::with_capacity(self.wire_len());
        let _ = self.write_to(&mut s);
        s
    }

    /// Same name, ASCII case ignored (RFC 4343 §3); compares labels, so
    /// differently compressed encodings of one name are equal.
    pub fn eq_ignore_case(&self, other: &Name<'_>) -> bool {
        if self.wire_len != other.wire_len {
            return false;
        }
        let mut a = self.labels();
        let mut b = other.labels();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self} @{})", self.start)
    }
}

/// The labels of a [`Name`]. The name was validated when read, so this
/// only stops early if handed a name it did not validate.
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    jumps: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let byte = *self.msg.get(self.pos)?;
            match byte >> 6 {
                0b00 if byte == 0 => return None,
                0b00 => {
                    let start = self.pos.checked_add(1)?;
                    let end = start.checked_add(usize::from(byte))?;
                    let label = self.msg.get(start..end)?;
                    self.pos = end;
                    return Some(label);
                }
                0b11 => {
                    let low = *self.msg.get(self.pos.checked_add(1)?)?;
                    let target = usize::from(u16::from_be_bytes([byte & 0x3f, low]));
                    self.jumps += 1;
                    if target >= self.pos || self.jumps > MAX_POINTER_JUMPS {
                        return None;
                    }
                    self.pos = target;
                }
                _ => return None,
            }
        }
    }
}

/// Writes one label, escaping what RFC 4343 §2.1 asks. Runs of plain
/// bytes go out in one write: most labels are nothing else.
fn write_label<W: fmt::Write>(label: &[u8], w: &mut W) -> fmt::Result {
    let plain = |b: &u8| matches!(b, 0x21..=0x7e) && *b != b'.' && *b != b'\\';
    let mut rest = label;
    while !rest.is_empty() {
        let run = rest.iter().position(|b| !plain(b)).unwrap_or(rest.len());
        let (head, tail) = rest.split_at(run);
        if let Ok(text) = std::str::from_utf8(head) {
            w.write_str(text)?;
        }
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        if b == b'.' || b == b'\\' {
            w.write_char('\\')?;
            w.write_char(char::from(b))?;
        } else {
            write_decimal_escape(b, w)?;
        }
        rest = tail;
    }
    Ok(())
}

/// `\DDD`, the three-digit decimal escape of RFC 1035 §5.1.
fn write_decimal_escape<W: fmt::Write>(b: u8, w: &mut W) -> fmt::Result {
    w.write_char('\\')?;
    w.write_char(char::from(b'0' + b / 100))?;
    w.write_char(char::from(b'0' + (b / 10) % 10))?;
    w.write_char(char::from(b'0' + b % 10))
}

/// One entry of the question section.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    pub name: Name<'a>,
    pub qtype: u16,
    /// As sent; mDNS uses the top bit as the unicast-response flag.
    pub qclass: u16,
}

/// Reads the question at `at`; returns it and the offset after it.
pub fn read_question(msg: &[u8], at: usize) -> Result<(Question<'_>, usize), DnsError> {
    let (name, after) = read_name(msg, at)?;
    let [t0, t1, c0, c1] = bytes_at::<4>(msg, after)?;
    Ok((
        Question {
            name,
            qtype: u16::from_be_bytes([t0, t1]),
            qclass: u16::from_be_bytes([c0, c1]),
        },
        after.saturating_add(4),
    ))
}

/// One resource record, its data still on the wire.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub name: Name<'a>,
    pub rtype: u16,
    /// As sent; mDNS uses the top bit as the cache-flush flag.
    pub class: u16,
    pub ttl: u32,
    msg: &'a [u8],
    rdata_at: usize,
    rdata_len: usize,
}

/// Reads the record at `at` (its owner name validated, its data only
/// bounds-checked); returns it and the offset after it.
pub fn read_record(msg: &[u8], at: usize) -> Result<(Record<'_>, usize), DnsError> {
    let (name, after) = read_name(msg, at)?;
    let (rtype, class, ttl, rdata_at, rdata_len) = record_fixed(msg, after)?;
    Ok((
        Record {
            name,
            rtype,
            class,
            ttl,
            msg,
            rdata_at,
            rdata_len,
        },
        rdata_at + rdata_len,
    ))
}

/// The fixed part after a record's owner name: type, class, TTL and the
/// bounds of the data, checked to lie within the message.
fn record_fixed(msg: &[u8], at: usize) -> Result<(u16, u16, u32, usize, usize), DnsError> {
    let [t0, t1, c0, c1, l0, l1, l2, l3, r0, r1] = bytes_at::<10>(msg, at)?;
    let rdata_at = at.saturating_add(10);
    let rdata_len = usize::from(u16::from_be_bytes([r0, r1]));
    if rdata_at.saturating_add(rdata_len) > msg.len() {
        return Err(DnsError::Truncated {
            offset: rdata_at,
            need: rdata_len,
        });
    }
    Ok((
        u16::from_be_bytes([t0, t1]),
        u16::from_be_bytes([c0, c1]),
        u32::from_be_bytes([l0, l1, l2, l3]),
        rdata_at,
        rdata_len,
    ))
}

impl<'a> Record<'a> {
    pub fn rdata(&self) -> &'a [u8] {
        self.msg
            .get(self.rdata_at..self.rdata_at + self.rdata_len)
            .unwrap_or_default()
    }

    /// Offset of the record data in its message.
    pub fn rdata_offset(&self) -> usize {
        self.rdata_at
    }

    /// Appends the record data in presentation form. On error `out` is
    /// left as it was, and the caller may fall back to
    /// [`push_generic_rdata`].
    pub fn push_rdata(&self, out: &mut String) -> Result<(), DnsError> {
        let mark = out.len();
        let result = self.write_rdata(out);
        if result.is_err() {
            out.truncate(mark);
        }
        result
    }

    fn bad(&self) -> DnsError {
        DnsError::BadRdata {
            offset: self.rdata_at,
            rtype: self.rtype,
        }
    }

    /// A name inside the data, which must end by `end` (compression
    /// pointers may still point anywhere before it).
    fn rdata_name(&self, at: usize, end: usize) -> Result<(Name<'a>, usize), DnsError> {
        let (name, after) = read_name(self.msg, at)?;
        if after > end {
            return Err(self.bad());
        }
        Ok((name, after))
    }

    fn write_rdata(&self, out: &mut String) -> Result<(), DnsError> {
        let data = self.rdata();
        let start = self.rdata_at;
        let end = start + self.rdata_len;
        match self.rtype {
            1 => {
                let b: [u8; 4] = data.try_into().map_err(|_| self.bad())?;
                push_ipv4(b, out);
            }
            28 => {
                let b: [u8; 16] = data.try_into().map_err(|_| self.bad())?;
                let _ = write!(out, "{}", Ipv6Addr::from(b));
            }
            // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME: one name.
            2..=5 | 7..=9 | 12 | 39 => {
                let (name, after) = self.rdata_name(start, end)?;
                if after != end {
                    return Err(self.bad());
                }
                name.push_to(out);
            }
            // MX, and the same shape for AFSDB, RT and KX.
            15 | 18 | 21 | 36 => {
                let pref = u16_at(self.msg, start).map_err(|_| self.bad())?;
                let (name, after) = self.rdata_name(start + 2, end)?;
                if after != end {
                    return Err(self.bad());
                }
                push_decimal(u32::from(pref), out);
                out.push(' ');
                name.push_to(out);
            }
            6 => {
                let (mname, after) = self.rdata_name(start, end)?;
                let (rname, after) = self.rdata_name(after, end)?;
                if end.checked_sub(after) != Some(20) {
                    return Err(self.bad());
                }
                mname.push_to(out);
                out.push(' ');
                rname.push_to(out);
                for i in 0..5 {
                    let v = u32_at(self.msg, after + 4 * i)?;
                    out.push(' ');
                    push_decimal(v, out);
                }
            }
            // TXT and SPF: one or more character-strings.
            16 | 99 => {
                let mut rest = data;
                let mut first = true;
                while let Some((&len, tail)) = rest.split_first() {
                    let (s, tail) = tail
                        .split_at_checked(usize::from(len))
                        .ok_or_else(|| self.bad())?;
                    if !first {
                        out.push(' ');
                    }
                    first = false;
                    push_character_string(s, out);
                    rest = tail;
                }
            }
            // HINFO: CPU and OS as two character-strings.
            13 => {
                let (cpu, rest) = split_character_string(data).ok_or_else(|| self.bad())?;
                let (os, rest) = split_character_string(rest).ok_or_else(|| self.bad())?;
                if !rest.is_empty() {
                    return Err(self.bad());
                }
                push_character_string(cpu, out);
                out.push(' ');
                push_character_string(os, out);
            }
            33 => {
                let [p0, p1, w0, w1, o0, o1] = bytes_at::<6>(data, 0).map_err(|_| self.bad())?;
                let (target, after) = self.rdata_name(start + 6, end)?;
                if after != end {
                    return Err(self.bad());
                }
                for field in [[p0, p1], [w0, w1], [o0, o1]] {
                    push_decimal(u32::from(u16::from_be_bytes(field)), out);
                    out.push(' ');
                }
                target.push_to(out);
            }
            64 | 65 => self.write_svcb(out, start, end)?,
            257 => {
                let [flags, tag_len] = bytes_at::<2>(data, 0).map_err(|_| self.bad())?;
                let (tag, value) = data
                    .get(2..)
                    .and_then(|rest| rest.split_at_checked(usize::from(tag_len)))
                    .ok_or_else(|| self.bad())?;
                push_decimal(u32::from(flags), out);
                out.push(' ');
                // Tags are letters and digits (RFC 8659 §4.1); escape anything else.
                let _ = write_label(tag, out);
                out.push(' ');
                push_character_string(value, out);
            }
            _ => push_generic_rdata(data, out),
        }
        Ok(())
    }

    /// SVCB and HTTPS (RFC 9460 §2.1): priority, target, then parameters.
    fn write_svcb(&self, out: &mut String, start: usize, end: usize) -> Result<(), DnsError> {
        let priority = u16_at(self.msg, start).map_err(|_| self.bad())?;
        let (target, after) = self.rdata_name(start + 2, end)?;
        push_decimal(u32::from(priority), out);
        out.push(' ');
        target.push_to(out);
        let mut params = self.msg.get(after..end).ok_or_else(|| self.bad())?;
        while !params.is_empty() {
            let [k0, k1, l0, l1] = bytes_at::<4>(params, 0).map_err(|_| self.bad())?;
            let key = u16::from_be_bytes([k0, k1]);
            let (value, rest) = params
                .get(4..)
                .and_then(|p| p.split_at_checked(usize::from(u16::from_be_bytes([l0, l1]))))
                .ok_or_else(|| self.bad())?;
            params = rest;
            out.push(' ');
            write_svc_key(key, out);
            if value.is_empty() {
                continue;
            }
            out.push('=');
            match key {
                0 => {
                    let (keys, rest) = value.as_chunks::<2>();
                    if !rest.is_empty() {
                        return Err(self.bad());
                    }
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write_svc_key(u16::from_be_bytes(*k), out);
                    }
                }
                1 => {
                    out.push('"');
                    let mut ids = value;
                    let mut first = true;
                    while let Some((&len, tail)) = ids.split_first() {
                        let (id, tail) = tail
                            .split_at_checked(usize::from(len))
                            .ok_or_else(|| self.bad())?;
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        write_escaped(id, b",", out);
                        ids = tail;
                    }
                    out.push('"');
                }
                3 => {
                    let port: [u8; 2] = value.try_into().map_err(|_| self.bad())?;
                    push_decimal(u32::from(u16::from_be_bytes(port)), out);
                }
                4 => {
                    let (addrs, rest) = value.as_chunks::<4>();
                    if !rest.is_empty() {
                        return Err(self.bad());
                    }
                    for (i, a) in addrs.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        push_ipv4(*a, out);
                    }
                }
                6 => {
                    let (addrs, rest) = value.as_chunks::<16>();
                    if !rest.is_empty() {
                        return Err(self.bad());
                    }
                    for (i, a) in addrs.iter().enumerate() {
                        let sep = if i > 0 { "," } else { "" };
                        let _ = write!(out, "{sep}{}", Ipv6Addr::from(*a));
                    }
                }
                5 => push_base64(value, out),
                _ => {
                    push_character_string(value, out);
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("name", &self.name)
            .field("rtype", &self.rtype)
            .field("class", &self.class)
            .field("ttl", &self.ttl)
            .field("rdata_at", &self.rdata_at)
            .field("rdata_len", &self.rdata_len)
            .finish()
    }
}

/// SvcParamKey names (RFC 9460 §14.3.2), `keyNNNNN` for the rest.
fn write_svc_key(key: u16, out: &mut String) {
    let name = match key {
        0 => "mandatory",
        1 => "alpn",
        2 => "no-default-alpn",
        3 => "port",
        4 => "ipv4hint",
        5 => "ech",
        6 => "ipv6hint",
        7 => "dohpath",
        8 => "ohttp",
        _ => {
            out.push_str("key");
            push_decimal(u32::from(key), out);
            return;
        }
    };
    out.push_str(name);
}

/// Decimal digits without the formatting machinery: record data is
/// rendered for every answer of every response.
fn push_decimal(mut v: u32, out: &mut String) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start = start.saturating_sub(1);
        if let Some(d) = digits.get_mut(start) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    push_ascii(digits.get(start..).unwrap_or_default(), out);
}

/// Appends bytes known to be ASCII in one copy.
fn push_ascii(bytes: &[u8], out: &mut String) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        out.push_str(s);
    }
}

/// Dotted-quad IPv4 address, built on the stack and appended at once: A
/// records are most answers, and this is most of their cost.
fn push_ipv4(octets: [u8; 4], out: &mut String) {
    let mut buf = [0u8; 15];
    let mut len = 0;
    let mut put = |b: u8| {
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
        }
        len += 1;
    };
    for (i, v) in octets.into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if v >= 100 {
            put(b'0' + v / 100);
        }
        if v >= 10 {
            put(b'0' + (v / 10) % 10);
        }
        put(b'0' + v % 10);
    }
    push_ascii(buf.get(..len).unwrap_or_default(), out);
}

/// A `<length><bytes>` character-string at the start of `data`.
fn split_character_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = data.split_first()?;
    rest.split_at_checked(usize::from(len))
}

/// A character-string, quoted, with `"` and `\` escaped by a backslash
/// and bytes outside printable ASCII as `\DDD` (RFC 1035 §5.1).
pub fn push_character_string(s: &[u8], out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    write_escaped(s, b"", out);
    out.push('"');
}

/// Printable ASCII as is (space included), `"` and `\` backslash-escaped,
/// the bytes in `also` (separators of the enclosing form) and everything
/// else as `\DDD`.
fn write_escaped(s: &[u8], also: &[u8], out: &mut String) {
    for &b in s {
        if also.contains(&b) {
            let _ = write_decimal_escape(b, out);
        } else if b == b'"' || b == b'\\' {
            out.push('\\');
            out.push(char::from(b));
        } else if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write_decimal_escape(b, out);
        }
    }
}

/// The RFC 3597 §5 generic form: `\# <length> <hex>` (`\# 0` when empty).
pub fn push_generic_rdata(data: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(10 + 2 * data.len());
    out.push_str("\\# ");
    push_decimal(u32::try_from(data.len()).unwrap_or(u32::MAX), out);
    if !data.is_empty() {
        out.push(' ');
    }
    for &b in data {
        for nibble in [b >> 4, b & 0xf] {
            if let Some(&c) = HEX.get(usize::from(nibble)) {
                out.push(char::from(c));
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the ECH parameter.
fn push_base64(data: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32, shift: u32| {
        ALPHABET
            .get(((v >> shift) & 63) as usize)
            .map_or('=', |&c| char::from(c))
    };
    for chunk in data.chunks(3) {
        let mut v = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            v |= u32::from(b) << (16 - 8 * i);
        }
        out.push(sextet(v, 18));
        out.push(sextet(v, 12));
        out.push(if chunk.len() > 1 { sextet(v, 6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(v, 0) } else { '=' });
    }
}

/// What the EDNS OPT pseudo-record says (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Largest UDP payload the sender accepts (the OPT record's class).
    pub udp_payload_size: u16,
    /// The upper 8 bits of the 12-bit rcode.
    pub extended_rcode: u8,
    pub version: u8,
    /// DO: the sender wants DNSSEC records.
    pub dnssec_ok: bool,
}

/// A walked message: the header, the questions and answers that parsed,
/// and what the additional section's OPT record says. Authority and
/// additional records are checked for bounds and skipped.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    pub header: Header,
    questions: u16,
    answers: u16,
    answers_at: usize,
    /// From the first OPT record of the additional section, if any.
    pub edns: Option<Edns>,
    /// The first problem found; the walk stopped there, and only the
    /// questions and answers before it are yielded. Counts larger than the
    /// message holds show here as `Truncated`.
    pub error: Option<SectionError>,
}

/// Walks a whole message. Fails only when there is no header; any later
/// problem is kept in [`Message::error`] with everything before it.
pub fn parse_message(bytes: &[u8]) -> Result<Message<'_>, DnsError> {
    let header = parse_header(bytes)?;
    let mut msg = Message {
        bytes,
        header,
        questions: 0,
        answers: 0,
        answers_at: HEADER_LEN,
        edns: None,
        error: None,
    };
    // The counts are untrusted: nothing is sized from them, and a walk
    // past the end stops at the first missing byte.
    let mut at = HEADER_LEN;
    let fail = |section, error| Some(SectionError { section, error });
    for _ in 0..header.qdcount {
        match read_question(bytes, at) {
            Ok((_, next)) => {
                at = next;
                msg.questions += 1;
            }
            Err(e) => {
                msg.error = fail(Section::Question, e);
                return Ok(msg);
            }
        }
    }
    msg.answers_at = at;
    for _ in 0..header.ancount {
        match read_record(bytes, at) {
            Ok((_, next)) => {
                at = next;
                msg.answers += 1;
            }
            Err(e) => {
                msg.error = fail(Section::Answer, e);
                return Ok(msg);
            }
        }
    }
    for _ in 0..header.nscount {
        match skip_record(bytes, at) {
            Ok((_, next)) => at = next,
            Err(e) => {
                msg.error = fail(Section::Authority, e);
                return Ok(msg);
            }
        }
    }
    for _ in 0..header.arcount {
        match skip_record(bytes, at) {
            Ok((fixed, next)) => {
                at = next;
                if fixed.0 == TYPE_OPT && msg.edns.is_none() {
                    let (_, class, ttl, _, _) = fixed;
                    let [ext, version, flags, _] = ttl.to_be_bytes();
                    msg.edns = Some(Edns {
                        udp_payload_size: class,
                        extended_rcode: ext,
                        version,
                        dnssec_ok: flags & 0x80 != 0,
                    });
                }
            }
            Err(e) => {
                msg.error = fail(Section::Additional, e);
                return Ok(msg);
            }
        }
    }
    Ok(msg)
}

type Fixed = (u16, u16, u32, usize, usize);

/// Walks past a record without decoding its owner name.
fn skip_record(msg: &[u8], at: usize) -> Result<(Fixed, usize), DnsError> {
    let after = skip_name(msg, at)?;
    let fixed = record_fixed(msg, after)?;
    Ok((fixed, fixed.3 + fixed.4))
}

impl<'a> Message<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The full rcode: the header's 4 bits, extended by EDNS (RFC 6891
    /// §6.1.3) when an OPT record is present (BADVERS is 16).
    pub fn rcode(&self) -> u16 {
        let low = u16::from(self.header.rcode());
        match self.edns {
            Some(e) => (u16::from(e.extended_rcode) << 4) | low,
            None => low,
        }
    }

    /// Questions that parsed (at most `qdcount`).
    pub fn question_count(&self) -> u16 {
        self.questions
    }

    /// Answer records that parsed (at most `ancount`).
    pub fn answer_count(&self) -> u16 {
        self.answers
    }

    pub fn questions(&self) -> Questions<'a> {
        Questions {
            msg: self.bytes,
            at: HEADER_LEN,
            left: self.questions,
        }
    }

    pub fn answers(&self) -> Answers<'a> {
        Answers {
            msg: self.bytes,
            at: self.answers_at,
            left: self.answers,
        }
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.bytes.len())
            .field("header", &self.header)
            .field("questions", &self.questions)
            .field("answers", &self.answers)
            .field("edns", &self.edns)
            .field("error", &self.error)
            .finish()
    }
}

/// The questions of a walked [`Message`].
#[derive(Clone, Debug)]
pub struct Questions<'a> {
    msg: &'a [u8],
    at: usize,
    left: u16,
}

impl<'a> Iterator for Questions<'a> {
    type Item = Question<'a>;

    fn next(&mut self) -> Option<Question<'a>> {
        self.left = self.left.checked_sub(1)?;
        let (q, next) = read_question(self.msg, self.at).ok()?;
        self.at = next;
        Some(q)
    }
}

/// The answer records of a walked [`Message`].
#[derive(Clone, Debug)]
pub struct Answers<'a> {
    msg: &'a [u8],
    at: usize,
    left: u16,
}

impl<'a> Iterator for Answers<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        self.left = self.left.checked_sub(1)?;
        let (r, next) = read_record(self.msg, self.at).ok()?;
        self.at = next;
        Some(r)
    }
}

/// Opcode names (RFC 1035, 1996, 2136, 8490); unassigned ones as `OPCODEn`.
pub fn opcode_name(opcode: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "QUERY", "IQUERY", "STATUS", "OPCODE3", "NOTIFY", "UPDATE", "DSO", "OPCODE7", "OPCODE8",
        "OPCODE9", "OPCODE10", "OPCODE11", "OPCODE12", "OPCODE13", "OPCODE14", "OPCODE15",
    ];
    NAMES.get(usize::from(opcode)).copied().unwrap_or("OPCODE")
}

/// Rcode mnemonics (IANA "DNS RCODEs"), for the ones a reader meets.
pub fn rcode_name(rcode: u16) -> Option<&'static str> {
    Some(match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

/// Record type mnemonics (IANA "Resource Record (RR) TYPEs"); `None` for
/// types without one, shown as `TYPEn` (RFC 3597 §5).
pub fn type_mnemonic(rtype: u16) -> Option<&'static str> {
    Some(match rtype {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        // IANA writes "*"; dig, tshark and every resolver log say ANY.
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        258 => "AVC",
        259 => "DOA",
        260 => "AMTRELAY",
        261 => "RESINFO",
        32768 => "TA",
        32769 => "DLV",
        _ => return None,
    })
}

/// The type's mnemonic, or `TYPEn` for a type without one.
pub fn push_type(rtype: u16, out: &mut String) {
    match type_mnemonic(rtype) {
        Some(m) => out.push_str(m),
        None => {
            out.push_str("TYPE");
            push_decimal(u32::from(rtype), out);
        }
    }
}

/// [`push_type`] into a new string.
pub fn type_string(rtype: u16) -> String {
    match type_mnemonic(rtype) {
        Some(m) => m.to_owned(),
        None => format!("TYPE{rtype}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    fn answers(msg: &Message<'_>) -> Vec<String> {
        msg.answers()
            .map(|r| {
                let mut data = String::new();
                r.push_rdata(&mut data).unwrap();
                format!("{} {} {} {}", r.name, type_string(r.rtype), r.ttl, data)
            })
            .collect()
    }

    /// A response header (id 0x1234) with these counts, then `body`.
    fn message(counts: [u16; 4], body: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80];
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(body);
        m
    }

    /// The question `example.com A` and one answer for it of `rtype`.
    fn with_answer(rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut body = hex("076578616d706c6503636f6d00 0001 0001 c00c");
        body.extend_from_slice(&rtype.to_be_bytes());
        body.extend_from_slice(&hex("0001 00000e10"));
        body.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        body.extend_from_slice(rdata);
        message([1, 1, 0, 0], &body)
    }

    /// The answer's data in presentation form.
    fn render(rtype: u16, rdata: &[u8]) -> Result<String, DnsError> {
        let bytes = with_answer(rtype, rdata);
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error, None);
        let record = msg.answers().next().unwrap();
        let mut out = String::from("kept:");
        match record.push_rdata(&mut out) {
            Ok(()) => Ok(out["kept:".len()..].to_owned()),
            Err(e) => {
                assert_eq!(out, "kept:", "a failed render leaves the string as it was");
                Err(e)
            }
        }
    }

    /// A name in wire form from its labels.
    fn wire_name(labels: &[&[u8]]) -> Vec<u8> {
        let mut w = Vec::new();
        for l in labels {
            w.push(l.len() as u8);
            w.extend_from_slice(l);
        }
        w.push(0);
        w
    }

    #[test]
    fn query_header_and_question() {
        // frame 1 of dns-pcapplusplus-DnsPackets.pcap
        let bytes = hex("8185010000010000000000000377777706676f6f676c6503636f6d0000010001");
        let msg = parse_message(&bytes).unwrap();
        let h = msg.header;
        assert_eq!(h.id, 0x8185);
        assert!(!h.is_response());
        assert_eq!(h.opcode(), 0);
        assert!(h.recursion_desired());
        assert!(!h.truncated() && !h.authoritative() && !h.recursion_available() && !h.z());
        assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (1, 0, 0, 0));
        assert_eq!(msg.error, None);
        assert_eq!(msg.edns, None);
        let q: Vec<_> = msg.questions().collect();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].name.to_presentation(), "www.google.com");
        assert_eq!((q[0].qtype, q[0].qclass), (1, 1));
        assert_eq!(q[0].name.wire_len(), 16);
    }

    #[test]
    fn response_with_compressed_a_records() {
        // frame 2 of dns-pcapplusplus-DnsPackets.pcap
        let bytes = hex(
            "8185818000010005000000000377777706676f6f676c6503636f6d0000010001\
             c00c00010001000000700004adc27013c00c00010001000000700004adc27012\
             c00c00010001000000700004adc27011c00c00010001000000700004adc27010\
             c00c00010001000000700004adc27014",
        );
        let msg = parse_message(&bytes).unwrap();
        assert!(msg.header.is_response() && msg.header.recursion_available());
        assert_eq!(msg.rcode(), 0);
        assert_eq!(msg.answer_count(), 5);
        assert_eq!(
            answers(&msg),
            [
                "www.google.com A 112 173.194.112.19",
                "www.google.com A 112 173.194.112.18",
                "www.google.com A 112 173.194.112.17",
                "www.google.com A 112 173.194.112.16",
                "www.google.com A 112 173.194.112.20",
            ]
        );
    }

    #[test]
    fn cname_chain() {
        // frame 12 of dns-pcapplusplus-DnsPackets.pcap: the CNAME target is a
        // pointer to a suffix of the question, the A owner a pointer to it.
        let bytes = hex(
            "343a81800001000200000000037777770a6d656574696e6763707003636f6d0000010001\
             c00c00050001000000960002c010c0100001000100000096000451a99197",
        );
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(
            answers(&msg),
            [
                "www.meetingcpp.com CNAME 150 meetingcpp.com",
                "meetingcpp.com A 150 81.169.145.151",
            ]
        );
    }

    #[test]
    fn mx_records_and_skipped_additional_section() {
        // frame 2 of dns-zeek-dns-long-connection.pcap: 6 MX answers, then
        // 6 additional A records that are walked and skipped.
        let bytes = hex(
            "f76f8180000100060000000606676f6f676c6503636f6d00000f0001c00c000f0001\
             00000228000a002805736d747034c00cc00c000f000100000228000a000a05736d74\
             7035c00cc00c000f000100000228000a000a05736d747036c00cc00c000f00010000\
             0228000a000a05736d747031c00cc00c000f000100000228000a000a05736d747032\
             c00cc00c000f000100000228000a002805736d747033c00cc02a0001000100000258\
             0004d8ef251ac0400001000100000258000440e9a719c05600010001000002580004\
             42660919c06c00010001000002580004d8ef3919c08200010001000002580004d8ef\
             2519c09800010001000002580004d8ef391a",
        );
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error, None);
        assert_eq!(
            answers(&msg),
            [
                "google.com MX 552 40 smtp4.google.com",
                "google.com MX 552 10 smtp5.google.com",
                "google.com MX 552 10 smtp6.google.com",
                "google.com MX 552 10 smtp1.google.com",
                "google.com MX 552 10 smtp2.google.com",
                "google.com MX 552 40 smtp3.google.com",
            ]
        );
    }

    #[test]
    fn ptr_and_aaaa() {
        // frame 6 of dns-zeek-dns-long-connection.pcap
        let ptr = hex(
            "9bbb818000010001000000000331303401390331393202363607696e2d616464720461\
             72706100000c0001c00c000c00010001512500200c36362d3139322d392d3130340367\
             656e09747774656c65636f6d036e657400",
        );
        let msg = parse_message(&ptr).unwrap();
        assert_eq!(
            answers(&msg),
            ["104.9.192.66.in-addr.arpa PTR 86309 66-192-9-104.gen.twtelecom.net"]
        );
        // frame 10 of dns-zeek-dns-long-connection.pcap
        let aaaa = hex(
            "f0d48180000100010000000003777777066e6574627364036f726700001c0001c00c001c\
             0001000151800010200104f80004000702e081fffe529a6b",
        );
        let msg = parse_message(&aaaa).unwrap();
        assert_eq!(
            answers(&msg),
            ["www.netbsd.org AAAA 86400 2001:4f8:4:7:2e0:81ff:fe52:9a6b"]
        );
    }

    #[test]
    fn soa_with_authority_and_edns() {
        // frame 1 of dns-zeek-dns-edns-ecs.pcap: an SOA answer, two NS in
        // authority, A/AAAA glue and an OPT record in additional.
        let bytes = hex(
            "bc8d84000001000100020004087765626572646e730264650000060001c00c000600\
             0100000e100026036e7331c00c097765626d6173746572c00c782a82590000384000\
             00070800093a80000000b4c00c0002000100000e100002c029c00c0002000100000e\
             100006036e7332c00cc0290001000100000e100004509a6ce6c029001c000100000e\
             1000102003005160120110000000000a070053c0690001000100000e100004d53d1d\
             b60000291000000000000000",
        );
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error, None);
        assert!(msg.header.authoritative());
        assert_eq!(
            answers(&msg),
            [
                "weberdns.de SOA 3600 ns1.weberdns.de webmaster.weberdns.de \
                 2016051801 14400 1800 604800 180"
            ]
        );
        assert_eq!(
            msg.edns,
            Some(Edns {
                udp_payload_size: 4096,
                extended_rcode: 0,
                version: 0,
                dnssec_ok: false
            })
        );
    }

    #[test]
    fn edns_query_with_dnssec_ok() {
        // frame 2 of dns-zeek-dns-edns-ecs.pcap: OPT with DO and a client
        // subnet option.
        let bytes = hex(
            "a64100000001000000000001036e7331087765626572646e730264650000010001\
             000029100000008000000b0008000700011800d53d1d",
        );
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error, None);
        assert_eq!(
            msg.edns,
            Some(Edns {
                udp_payload_size: 4096,
                extended_rcode: 0,
                version: 0,
                dnssec_ok: true
            })
        );
    }

    #[test]
    fn extended_rcode_from_opt() {
        // A response with header rcode 0 and an OPT record whose TTL carries
        // extended rcode 1: BADVERS (16), RFC 6891 §6.1.3.
        let mut body = hex("076578616d706c6503636f6d00 0001 0001");
        body.extend_from_slice(&hex("00 0029 04d0 01000000 0000"));
        let bytes = message([1, 0, 0, 1], &body);
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error, None);
        assert_eq!(msg.edns.unwrap().udp_payload_size, 1232);
        assert_eq!(msg.rcode(), 16);
        assert_eq!(rcode_name(msg.rcode()), Some("BADVERS"));
    }

    #[test]
    fn mdns_srv_in_answer() {
        // frame 2 of http-zeek-wikipedia.pcap: an mDNS response without
        // questions; the SRV's class has the cache-flush bit.
        let bytes = hex(
            "0000840000000001000000040667656d696e69095f736674702d737368045f746370\
             056c6f63616c000021800100000078000f0000000000160667656d696e69c022c039\
             001c8001000000780010fe800000000000000217f2fffed7cf65c039000180010000\
             007800048d8edc32c00c002f8001000000780009c00c00050000800040c039002f80\
             01000000780008c039000440000008",
        );
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error, None);
        assert_eq!(msg.question_count(), 0);
        let r = msg.answers().next().unwrap();
        assert_eq!(r.class, 0x8001);
        assert_eq!(
            answers(&msg),
            ["gemini._sftp-ssh._tcp.local SRV 120 0 0 22 gemini.local"]
        );
    }

    #[test]
    fn txt_strings_are_quoted_and_escaped() {
        let mut rdata = b"\x0bv=spf1 -all".to_vec();
        rdata.extend_from_slice(b"\x0asay \"hi\"\\\xe9");
        assert_eq!(
            render(16, &rdata).unwrap(),
            r#""v=spf1 -all" "say \"hi\"\\\233""#
        );
        // A single empty string (what mDNS sends for "no TXT data").
        assert_eq!(render(16, b"\x00").unwrap(), r#""""#);
        // A string longer than the data left.
        assert!(matches!(
            render(16, b"\x05abc"),
            Err(DnsError::BadRdata { rtype: 16, .. })
        ));
    }

    #[test]
    fn srv_caa_hinfo() {
        let mut srv = hex("0000 0005 13c4");
        srv.extend_from_slice(&wire_name(&[b"sip", b"example", b"com"]));
        assert_eq!(render(33, &srv).unwrap(), "0 5 5060 sip.example.com");
        let caa = b"\x00\x05issueletsencrypt.org";
        assert_eq!(render(257, caa).unwrap(), r#"0 issue "letsencrypt.org""#);
        assert_eq!(render(13, b"\x03x86\x05Linux").unwrap(), r#""x86" "Linux""#);
    }

    #[test]
    fn https_and_svcb() {
        // The ServiceMode example shape of RFC 9460 Appendix D.2, written
        // by hand: priority 1, target ".", alpn, port, ipv4hint, ech, ipv6hint.
        let rdata = hex("0001 00 \
             0001 0006 026832 026833 \
             0003 0002 01bb \
             0004 0008 c0000201 c0000202 \
             0005 0003 000102 \
             0006 0010 20010db8000000000000000000000001");
        assert_eq!(
            render(65, &rdata).unwrap(),
            r#"1 . alpn="h2,h3" port=443 ipv4hint=192.0.2.1,192.0.2.2 ech=AAEC ipv6hint=2001:db8::1"#
        );
        // AliasMode (RFC 9460 §2.4.2): priority 0 and a target, no parameters.
        let mut alias = hex("0000");
        alias.extend_from_slice(&wire_name(&[b"pool", b"svc", b"example"]));
        assert_eq!(render(64, &alias).unwrap(), "0 pool.svc.example");
        // mandatory, no-default-alpn and an unknown key.
        let params = hex("0001 00 0000 0004 00010004 0002 0000 ff00 0002 6869");
        assert_eq!(
            render(64, &params).unwrap(),
            r#"1 . mandatory=alpn,ipv4hint no-default-alpn key65280="hi""#
        );
        // A parameter longer than the data left; a port of 3 bytes.
        assert!(render(65, &hex("0001 00 0001 0009 026832")).is_err());
        assert!(render(65, &hex("0001 00 0003 0003 01bb00")).is_err());
    }

    #[test]
    fn unknown_and_opaque_types_use_the_generic_form() {
        assert_eq!(render(65280, &hex("0a000001")).unwrap(), r"\# 4 0A000001");
        assert_eq!(render(10, &[]).unwrap(), r"\# 0");
        assert_eq!(type_string(65280), "TYPE65280");
        assert_eq!(type_string(28), "AAAA");
        assert_eq!(type_string(255), "ANY");
        let mut s = String::new();
        push_type(64, &mut s);
        push_type(53, &mut s);
        push_type(54, &mut s);
        assert_eq!(s, "SVCBSMIMEATYPE54");
    }

    #[test]
    fn bad_rdata_is_an_error_not_a_panic() {
        assert!(matches!(
            render(1, &[10, 0, 0]),
            Err(DnsError::BadRdata { rtype: 1, .. })
        ));
        assert!(matches!(
            render(28, &[0; 15]),
            Err(DnsError::BadRdata { rtype: 28, .. })
        ));
        // A CNAME whose name runs past its data, and one with bytes left over.
        let mut cname = wire_name(&[b"a", b"example"]);
        assert!(render(5, &cname[..cname.len() - 1]).is_err());
        cname.push(0);
        assert!(matches!(render(5, &cname), Err(DnsError::BadRdata { .. })));
        // SOA without its five numbers; MX without a name.
        let mut soa = wire_name(&[b"ns"]);
        soa.extend_from_slice(&wire_name(&[b"host"]));
        soa.extend_from_slice(&[0; 19]);
        assert!(render(6, &soa).is_err());
        assert!(render(15, &[0, 10]).is_err());
        assert!(render(33, &[0, 1, 0, 1]).is_err());
        assert!(render(257, &[0, 9, b'i']).is_err());
    }

    #[test]
    fn names_keep_case_and_escape_per_rfc_4343() {
        let mut body = wire_name(&[b"WwW", b"a.b", b"sp ace", b"\xff\\", b"COM"]);
        body.extend_from_slice(&hex("0001 0001"));
        let bytes = message([1, 0, 0, 0], &body);
        let msg = parse_message(&bytes).unwrap();
        let q = msg.questions().next().unwrap();
        assert_eq!(q.name.to_presentation(), r"WwW.a\.b.sp\032ace.\255\\.COM");
        assert_eq!(q.name.to_string(), q.name.to_presentation());
        let labels: Vec<&[u8]> = q.name.labels().collect();
        assert_eq!(labels[1], b"a.b");
    }

    #[test]
    fn root_name_is_a_dot() {
        let bytes = message([1, 0, 0, 0], &hex("00 0002 0001"));
        let msg = parse_message(&bytes).unwrap();
        let q = msg.questions().next().unwrap();
        assert!(q.name.is_root());
        assert_eq!(q.name.to_presentation(), ".");
        assert_eq!(q.name.labels().count(), 0);
    }

    #[test]
    fn compressed_and_plain_names_compare_equal_ignoring_case() {
        // Question example.com; an answer owner EXAMPLE.com written out.
        let mut body = hex("076578616d706c6503636f6d00 0001 0001");
        body.extend_from_slice(&wire_name(&[b"EXAMPLE", b"com"]));
        body.extend_from_slice(&hex("0001 0001 00000001 0004 01020304"));
        body.extend_from_slice(&hex("c00c 0001 0001 00000001 0004 01020304"));
        let bytes = message([1, 2, 0, 0], &body);
        let msg = parse_message(&bytes).unwrap();
        let q = msg.questions().next().unwrap();
        let owners: Vec<_> = msg.answers().map(|r| r.name).collect();
        assert!(q.name.eq_ignore_case(&owners[0]));
        assert!(q.name.eq_ignore_case(&owners[1]));
        assert_eq!(owners[0].to_presentation(), "EXAMPLE.com");
    }

    #[test]
    fn pointer_to_itself_is_a_loop() {
        let bytes = message([1, 0, 0, 0], &hex("c00c 0001 0001"));
        assert_eq!(
            read_name(&bytes, 12).unwrap_err(),
            DnsError::PointerForward {
                offset: 12,
                target: 12
            }
        );
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error.unwrap().section, Section::Question);
        assert_eq!(msg.questions().count(), 0);
    }

    #[test]
    fn pointer_loop_through_two_pointers() {
        // 12: pointer to 14; 14: pointer to 12.
        let bytes = message([0, 0, 0, 0], &hex("c00e c00c"));
        assert!(matches!(
            read_name(&bytes, 12),
            Err(DnsError::PointerForward { .. })
        ));
        // Entering at 14 the first jump is backwards, the second is not.
        assert_eq!(
            read_name(&bytes, 14).unwrap_err(),
            DnsError::PointerForward {
                offset: 12,
                target: 14
            }
        );
        // A label, then a pointer back into that label's own run.
        let bytes = message([0, 0, 0, 0], &hex("0161 c00c"));
        assert!(matches!(
            read_name(&bytes, 12),
            Err(DnsError::PointerForward { .. })
        ));
    }

    #[test]
    fn forward_pointer_is_refused() {
        let bytes = message([1, 0, 0, 0], &hex("c012 0001 0001 0161 00"));
        assert_eq!(
            read_name(&bytes, 12).unwrap_err(),
            DnsError::PointerForward {
                offset: 12,
                target: 18
            }
        );
    }

    #[test]
    fn out_of_range_pointers() {
        let bytes = message([1, 0, 0, 0], &hex("03616263 c0ff 0001 0001"));
        assert_eq!(
            read_name(&bytes, 12).unwrap_err(),
            DnsError::PointerOutOfRange {
                offset: 16,
                target: 255
            }
        );
        // Into the header.
        let bytes = message([1, 0, 0, 0], &hex("c002 0001 0001"));
        assert!(matches!(
            read_name(&bytes, 12),
            Err(DnsError::PointerOutOfRange { target: 2, .. })
        ));
        // A pointer cut after its first byte.
        let bytes = message([1, 0, 0, 0], &hex("c0"));
        assert!(matches!(
            read_name(&bytes, 12),
            Err(DnsError::Truncated { .. })
        ));
    }

    #[test]
    fn long_pointer_chains_are_cut() {
        // A root name at 12, then 130 pointers, each to the one before.
        let mut body = vec![0u8];
        for i in 0..130u16 {
            let target = if i == 0 { 12 } else { 13 + 2 * (i - 1) };
            body.extend_from_slice(&(0xc000 | target).to_be_bytes());
        }
        let bytes = message([0, 0, 0, 0], &body);
        // 100 jumps are fine (and still the root name).
        let (name, _) = read_name(&bytes, 13 + 2 * 99).unwrap();
        assert!(name.is_root());
        assert_eq!(
            read_name(&bytes, 13 + 2 * 129).unwrap_err(),
            DnsError::TooManyPointers {
                offset: 13 + 2 * 129
            }
        );
    }

    #[test]
    fn label_longer_than_63() {
        let mut body = vec![64u8];
        body.extend_from_slice(&[b'a'; 64]);
        body.extend_from_slice(&hex("00 0001 0001"));
        let bytes = message([1, 0, 0, 0], &body);
        assert_eq!(
            read_name(&bytes, 12).unwrap_err(),
            DnsError::BadLabel {
                offset: 12,
                byte: 64
            }
        );
        assert!(matches!(
            skip_name(&bytes, 12),
            Err(DnsError::BadLabel { .. })
        ));
        // 63 is fine.
        let mut body = vec![63u8];
        body.extend_from_slice(&[b'a'; 63]);
        body.extend_from_slice(&hex("00 0001 0001"));
        let bytes = message([1, 0, 0, 0], &body);
        assert_eq!(read_name(&bytes, 12).unwrap().0.wire_len(), 65);
    }

    #[test]
    fn names_longer_than_255() {
        let l63 = [b'a'; 63];
        let l61 = [b'b'; 61];
        // 3 × 64 + 62 + 1 = 255: the longest legal name.
        let max = wire_name(&[&l63, &l63, &l63, &l61]);
        assert_eq!(max.len(), 255);
        let bytes = message([0, 0, 0, 0], &max);
        let (name, end) = read_name(&bytes, 12).unwrap();
        assert_eq!((name.wire_len(), end), (255, 12 + 255));
        assert_eq!(name.to_presentation().len(), 253);
        // One more byte is too long.
        let l62 = [b'b'; 62];
        let bytes = message([0, 0, 0, 0], &wire_name(&[&l63, &l63, &l63, &l62]));
        assert_eq!(
            read_name(&bytes, 12).unwrap_err(),
            DnsError::NameTooLong { offset: 12 }
        );
        // Too long only once the pointed-to suffix is added.
        let mut body = wire_name(&[&l63, &l63, &l63]); // 193 bytes at 12
        let second = 12 + body.len();
        body.push(63);
        body.extend_from_slice(&l63);
        body.extend_from_slice(&hex("c00c"));
        let bytes = message([0, 0, 0, 0], &body);
        assert_eq!(
            read_name(&bytes, second).unwrap_err(),
            DnsError::NameTooLong { offset: second }
        );
    }

    #[test]
    fn truncated_rdata() {
        let mut bytes = with_answer(1, &[1, 2, 3, 4]);
        bytes.truncate(bytes.len() - 2);
        let msg = parse_message(&bytes).unwrap();
        let err = msg.error.unwrap();
        assert_eq!(err.section, Section::Answer);
        assert!(matches!(err.error, DnsError::Truncated { need: 4, .. }));
        assert_eq!(msg.questions().count(), 1);
        assert_eq!(msg.answers().count(), 0);
        assert_eq!(
            err.to_string(),
            "answer section: 4 bytes needed at byte 41, past the end of the message"
        );
    }

    #[test]
    fn counts_far_larger_than_the_message() {
        // frame 1 of dns-pcapplusplus-DnsPackets.pcap with every count 65535.
        let mut bytes = hex("8185010000010000000000000377777706676f6f676c6503636f6d0000010001");
        bytes[4..12].fill(0xff);
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.question_count(), 1);
        assert_eq!(msg.questions().count(), 1);
        assert_eq!(msg.error.unwrap().section, Section::Question);
        // Answers fine, authority count huge: the answers still come out.
        let mut bytes = with_answer(1, &[1, 2, 3, 4]);
        bytes[8] = 0xff;
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.error.unwrap().section, Section::Authority);
        assert_eq!(answers(&msg), ["example.com A 3600 1.2.3.4"]);
    }

    #[test]
    fn short_header() {
        assert_eq!(
            parse_message(&[0; 11]).unwrap_err(),
            DnsError::ShortHeader { len: 11 }
        );
        assert!(parse_header(&[]).is_err());
    }

    #[test]
    fn every_prefix_of_a_real_message_is_safe() {
        // frame 1 of dns-zeek-dns-edns-ecs.pcap, cut at every length.
        let bytes = hex(
            "bc8d84000001000100020004087765626572646e730264650000060001c00c000600\
             0100000e100026036e7331c00c097765626d6173746572c00c782a82590000384000\
             00070800093a80000000b4c00c0002000100000e100002c029c00c0002000100000e\
             100006036e7332c00cc0290001000100000e100004509a6ce6c029001c000100000e\
             1000102003005160120110000000000a070053c0690001000100000e100004d53d1d\
             b60000291000000000000000",
        );
        for cut in 0..bytes.len() {
            let Ok(msg) = parse_message(&bytes[..cut]) else {
                assert!(cut < HEADER_LEN);
                continue;
            };
            assert!(msg.error.is_some(), "cut at {cut} must not look whole");
            for r in msg.answers() {
                let mut s = String::new();
                let _ = r.push_rdata(&mut s);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // A fixed xorshift stream: headers with small counts and bytes that
        // often look like labels and pointers.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if bytes.len() >= 12 {
                for i in (4..12).step_by(2) {
                    bytes[i] = 0;
                    bytes[i + 1] %= 4;
                }
                for b in bytes.iter_mut().skip(12) {
                    if *b > 0x40 && *b < 0xc0 {
                        *b %= 8;
                    }
                }
            }
            if let Ok(msg) = parse_message(&bytes) {
                for q in msg.questions() {
                    let _ = q.name.to_presentation();
                }
                for r in msg.answers() {
                    let mut s = String::new();
                    if r.push_rdata(&mut s).is_err() {
                        push_generic_rdata(r.rdata(), &mut s);
                    }
                }
            }
        }
    }

    #[test]
    fn opcode_and_rcode_names() {
        assert_eq!(opcode_name(0), "QUERY");
        assert_eq!(opcode_name(4), "NOTIFY");
        assert_eq!(opcode_name(5), "UPDATE");
        assert_eq!(opcode_name(3), "OPCODE3");
        assert_eq!(rcode_name(3), Some("NXDOMAIN"));
        assert_eq!(rcode_name(12), None);
    }
}
