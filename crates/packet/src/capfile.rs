//! Capture files: a streaming reader for classic pcap and pcapng, and a
//! writer for nanosecond pcap.
//!
//! [`CaptureReader`] reads through one large buffer and hands out packets
//! borrowed from it, so reading costs no allocation per packet and never
//! holds more than the buffer (plus one record) in memory whatever the file
//! size. It knows nothing of what the frames contain: [`crate::decode`] takes
//! it from there. Callers are the indexing pipeline (snapshot segments),
//! `trawl import`, the raw store's crash recovery and the tests of every crate
//! that replays captures.
//!
//! [`PcapWriter`] writes the format the raw store and the `lab` generator
//! produce: little-endian pcap with nanosecond timestamps.
//!
//! Damage is reported once, as a [`CaptureError`] naming the file and the byte
//! offset of the record that is broken; every packet before it has already
//! been returned, so a capture cut by a crash still yields all its whole
//! records.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Size of the read buffer. Large enough that reads from a file or pipe are
/// few and the per-read syscall cost vanishes, small enough to be irrelevant
/// next to the flow table; it also bounds the largest block that is parsed
/// in place (see [`MAX_PARSED_BLOCK_LEN`]).
pub const READ_BUFFER_LEN: usize = 1 << 20;

/// Largest captured length accepted for one packet, in either format.
/// libpcap's `MAXIMUM_SNAPLEN` and Wireshark's `WTAP_MAX_PACKET_SIZE_STANDARD`
/// are both 262144: no tool we interoperate with writes larger packets of
/// the link types we decode, so a bigger length means a corrupt record.
pub const MAX_CAPLEN: u32 = 262_144;

/// Largest pcapng block accepted at all. Wireshark's own limit is its largest
/// per-packet size (128 MiB, for D-Bus and USB captures) plus slack; blocks we
/// do not parse (name resolution, statistics, decryption secrets, custom
/// blocks) are skipped by streaming through the read buffer, so this costs no
/// memory: it only stops a corrupt length from sending us blindly to the end
/// of a large file.
pub const MAX_BLOCK_LEN: u32 = 128 << 20;

/// Largest pcapng block that is parsed in place (section headers, interface
/// descriptions, packets). A packet block holds at most [`MAX_CAPLEN`] bytes
/// of packet plus options, so 1 MiB leaves about 750 KiB for comments and
/// other options; anything bigger is malformed rather than a reason to grow
/// the buffer.
pub const MAX_PARSED_BLOCK_LEN: u32 = READ_BUFFER_LEN as u32;

/// Most interfaces one pcapng section may describe. The obsolete Packet Block
/// numbers interfaces with 16 bits, and real captures have a handful; the cap
/// bounds the interface table (a few dozen bytes each) on hostile input.
pub const MAX_INTERFACES: usize = 65_536;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Alexey Kuznetzov's patched libpcap: 8 more bytes per record header
/// (ifindex, protocol, pkt_type, pad). Still found in old Red Hat captures.
const PCAP_MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const NG_SHB: u32 = 0x0a0d_0d0a;
const NG_IDB: u32 = 0x0000_0001;
const NG_PB: u32 = 0x0000_0002;
const NG_SPB: u32 = 0x0000_0003;
const NG_EPB: u32 = 0x0000_0006;
const NG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Smallest block: type, total length, trailing total length.
const NG_MIN_BLOCK_LEN: u32 = 12;
/// Smallest SHB: 12 + byte-order magic, versions, section length.
const NG_MIN_SHB_LEN: u32 = 28;

const NG_OPT_ENDOFOPT: u16 = 0;
const NG_OPT_IF_TSRESOL: u16 = 9;
const NG_OPT_IF_FCSLEN: u16 = 13;
const NG_OPT_IF_TSOFFSET: u16 = 14;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Link-layer header type of the frames in a capture (the tcpdump.org
/// LINKTYPE_ numbers, plus the DLT_ numbers some systems write for raw IP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    Null,
    Ethernet,
    /// Raw IP, version in the first nibble.
    Raw,
    Ipv4,
    Ipv6,
    /// Linux cooked capture v1 (16-byte header).
    LinuxSll,
    /// Linux cooked capture v2 (20-byte header).
    LinuxSll2,
    /// OpenBSD loopback: 4-byte address family in network byte order.
    Loop,
    /// Any other link type, by number; frames of these are not decoded.
    Other(u32),
}

impl LinkType {
    /// The link type for a LINKTYPE_/DLT_ number from a file header.
    pub const fn from_linktype(value: u32) -> Self {
        match value {
            0 => Self::Null,
            1 => Self::Ethernet,
            // 12 is DLT_RAW on most BSDs, 14 on OpenBSD; LINKTYPE_RAW is 101.
            101 | 12 | 14 => Self::Raw,
            108 => Self::Loop,
            113 => Self::LinuxSll,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            276 => Self::LinuxSll2,
            other => Self::Other(other),
        }
    }

    /// The LINKTYPE_ number to write in a file header.
    pub const fn to_linktype(self) -> u32 {
        match self {
            Self::Null => 0,
            Self::Ethernet => 1,
            Self::Raw => 101,
            Self::Loop => 108,
            Self::LinuxSll => 113,
            Self::Ipv4 => 228,
            Self::Ipv6 => 229,
            Self::LinuxSll2 => 276,
            Self::Other(other) => other,
        }
    }
}

/// Which container format a [`CaptureReader`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap,
    PcapNg,
}

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    pub link: LinkType,
    /// pcapng interface id; 0 for classic pcap.
    pub interface: u32,
    /// The frame as captured (without a trailing FCS the file declares).
    pub data: &'a [u8],
    /// Length of the frame on the wire (without FCS); `>= data.len()`.
    pub orig_len: u32,
}

/// What went wrong in a capture file; see [`CaptureError`] for where.
#[derive(Debug, thiserror::Error)]
pub enum CaptureErrorKind {
    #[error("not a pcap or pcapng file")]
    NotACapture,
    #[error("file ends inside a record")]
    Truncated,
    #[error("malformed record ({0})")]
    Malformed(String),
    #[error("read failed")]
    Io(#[source] io::Error),
}

/// A capture file problem: which file, at which byte (the start of the
/// header or record that is damaged), and what.
#[derive(Debug)]
pub struct CaptureError {
    pub file: String,
    pub offset: u64,
    pub kind: CaptureErrorKind,
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} at byte {}", self.file, self.kind, self.offset)
    }
}

// Hand-written rather than derived so that the chain goes straight from this
// error to the I/O error: with `kind` as the source, "read failed" would be
// printed twice by `{:#}`.
impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CaptureErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// How a pcapng interface's timestamp units become nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsScale {
    /// Units are 10^-k s with k <= 9: multiply.
    Mul(u64),
    /// Units are 10^-k s with k > 9: divide.
    Div(u64),
    /// Units are 2^-k s: ns = units * 10^9 >> k.
    Shift(u32),
}

impl TsScale {
    const MICROS: Self = Self::Mul(1000);

    /// From the `if_tsresol` option byte.
    fn from_tsresol(v: u8) -> Self {
        let exp = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            Self::Shift(exp)
        } else if exp <= 9 {
            // 10^(9-exp) <= 10^9: cannot overflow.
            Self::Mul(10u64.pow(9 - exp))
        } else {
            // 10^(exp-9) overflows u64 past exp = 28; every timestamp is then 0 ns.
            Self::Div(10u64.checked_pow(exp - 9).unwrap_or(u64::MAX))
        }
    }

    fn to_ns(self, units: u64) -> i64 {
        let ns: u128 = match self {
            Self::Mul(m) => u128::from(units) * u128::from(m),
            Self::Div(d) => u128::from(units / d),
            // exp <= 127, so the shift is in range for u128.
            Self::Shift(k) => (u128::from(units) * 1_000_000_000) >> k,
        };
        i64::try_from(ns).unwrap_or(i64::MAX)
    }
}

/// What a pcapng Interface Description Block says about its packets.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    /// 0 means unlimited (bounded by [`MAX_CAPLEN`]).
    snaplen: u32,
    scale: TsScale,
    /// `if_tsoffset` in nanoseconds.
    offset_ns: i64,
    /// Bytes of FCS at the end of each frame (`if_fcslen`).
    fcs_len: u32,
}

#[derive(Debug)]
struct PcapState {
    big_endian: bool,
    nanos: bool,
    record_header_len: usize,
    link: LinkType,
    snaplen: u32,
    fcs_len: u32,
}

#[derive(Debug)]
struct NgState {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Simple Packet Blocks carry no timestamp: they get the last one seen.
    last_ts_ns: i64,
}

#[derive(Debug)]
enum State {
    Pcap(PcapState),
    PcapNg(NgState),
}

/// What a record parser found, as positions in the buffer so that the
/// borrow of the buffer starts only when the packet is returned.
struct Found {
    ts_ns: i64,
    link: LinkType,
    interface: u32,
    /// Absolute position of the data in `buf`.
    data_start: usize,
    data_len: usize,
    orig_len: u32,
}

/// Streaming reader of classic pcap and pcapng files.
pub struct CaptureReader<R: Read> {
    reader: R,
    name: String,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The reader returned 0 once.
    eof: bool,
    /// File offset of `buf[start]`.
    consumed: u64,
    format: CaptureFormat,
    state: State,
    /// An error was returned: nothing more will be read.
    failed: bool,
}

// By hand: the derived form would print the whole 1 MiB buffer and require
// `R: Debug`.
impl<R: Read> std::fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("offset", &self.consumed)
            .field("buffered", &self.available())
            .field("state", &self.state)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl CaptureReader<File> {
    /// Opens a capture file and reads its file (or first section) header.
    pub fn open(path: &Path) -> Result<CaptureReader<File>, CaptureError> {
        let name = path.display().to_string();
        match File::open(path) {
            Ok(f) => CaptureReader::new(f, name),
            Err(e) => Err(CaptureError {
                file: name,
                offset: 0,
                kind: CaptureErrorKind::Io(e),
            }),
        }
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header from `reader`; `name` is used in error messages.
    pub fn new(reader: R, name: impl Into<String>) -> Result<Self, CaptureError> {
        let mut this = Self {
            reader,
            name: name.into(),
            buf: vec![0; READ_BUFFER_LEN],
            start: 0,
            end: 0,
            eof: false,
            consumed: 0,
            format: CaptureFormat::Pcap,
            state: State::Pcap(PcapState {
                big_endian: false,
                nanos: false,
                record_header_len: PCAP_RECORD_HEADER_LEN,
                link: LinkType::Ethernet,
                snaplen: 0,
                fcs_len: 0,
            }),
            failed: false,
        };
        match this.read_file_header() {
            Ok(()) => Ok(this),
            Err(kind) => Err(this.error(kind)),
        }
    }

    /// The container format of the file.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Bytes of the file consumed so far: the offset of the next record.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    /// The link type of classic pcap files, or of the first interface of the
    /// current pcapng section once it has been read.
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.state {
            State::Pcap(p) => Some(p.link),
            State::PcapNg(ng) => ng.interfaces.first().map(|i| i.link),
        }
    }

    /// The next packet, `Ok(None)` at the end of the file. After an error
    /// has been returned, always `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if self.failed {
            return Ok(None);
        }
        let found = match &self.state {
            State::Pcap(_) => self.next_pcap(),
            State::PcapNg(_) => self.next_pcapng(),
        };
        match found {
            Ok(Some(f)) => {
                let Some(data) = self
                    .buf
                    .get(f.data_start..f.data_start.saturating_add(f.data_len))
                else {
                    // Unreachable: parsers return ranges inside the filled buffer.
                    self.failed = true;
                    return Err(self.error(CaptureErrorKind::Malformed("internal range".into())));
                };
                Ok(Some(RawPacket {
                    ts_ns: f.ts_ns,
                    link: f.link,
                    interface: f.interface,
                    data,
                    orig_len: f.orig_len,
                }))
            }
            Ok(None) => Ok(None),
            Err(kind) => {
                self.failed = true;
                Err(self.error(kind))
            }
        }
    }

    fn error(&self, kind: CaptureErrorKind) -> CaptureError {
        CaptureError {
            file: self.name.clone(),
            offset: self.consumed,
            kind,
        }
    }

    // ----- buffer -----

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Ensures at least `n` unconsumed bytes are buffered (`n` <= buffer
    /// length). `Ok(false)` when the file ends first.
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, CaptureErrorKind> {
        if self.available() >= n {
            return Ok(true);
        }
        self.fill_slow(n)
    }

    #[cold]
    fn fill_slow(&mut self, n: usize) -> Result<bool, CaptureErrorKind> {
        if n > self.buf.len() {
            return Ok(false);
        }
        if self.start.saturating_add(n) > self.buf.len() {
            // Move the partial record to the front: at most one record is
            // copied per buffer turnover.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.available() < n {
            if self.eof {
                return Ok(false);
            }
            let Some(dst) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            match self.reader.read(dst) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end = self.end.saturating_add(k).min(self.buf.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureErrorKind::Io(e)),
            }
        }
        Ok(true)
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.available());
        self.start += n;
        self.consumed = self.consumed.wrapping_add(n as u64);
    }

    /// The unconsumed bytes from `start` (relative), for header parsing.
    fn bytes(&self, from: usize, len: usize) -> &[u8] {
        let a = self.start.saturating_add(from);
        self.buf.get(a..a.saturating_add(len)).unwrap_or(&[])
    }

    /// Drops `n` bytes that are not needed, reading through the buffer
    /// without keeping them. `Ok(false)` when the file ends first.
    fn skip(&mut self, mut n: u64) -> Result<bool, CaptureErrorKind> {
        let buffered = (self.available() as u64).min(n);
        // `buffered` <= available(), which is a usize.
        self.start += buffered as usize;
        n -= buffered;
        // Don't count the skipped bytes as consumed: errors name the start
        // of the block being skipped, which the caller consumes afterwards.
        while n > 0 {
            self.start = 0;
            self.end = 0;
            if self.eof {
                return Ok(false);
            }
            match self.reader.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(k) => {
                    let k = k.min(self.buf.len());
                    self.end = k;
                    let used = (k as u64).min(n);
                    self.start = used as usize;
                    n -= used;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureErrorKind::Io(e)),
            }
        }
        Ok(true)
    }

    // ----- file header -----

    fn read_file_header(&mut self) -> Result<(), CaptureErrorKind> {
        if !self.fill(4)? {
            // Even an empty file: it may be a capture whose header was
            // never flushed.
            return Err(CaptureErrorKind::Truncated);
        }
        let magic = self.bytes(0, 4);
        let le = u32_le(magic);
        let be = u32_be(magic);
        if le == NG_SHB {
            self.format = CaptureFormat::PcapNg;
            self.state = State::PcapNg(NgState {
                big_endian: false,
                interfaces: Vec::new(),
                last_ts_ns: 0,
            });
            // The first block must be a section header: parse it now so a
            // file that is not pcapng fails at open.
            return match self.read_block_header()? {
                Some(_) => Ok(()),
                None => Err(CaptureErrorKind::Truncated),
            };
        }
        let (big_endian, m) = if [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_KUZNETZOV].contains(&le)
        {
            (false, le)
        } else if [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_KUZNETZOV].contains(&be) {
            (true, be)
        } else {
            return Err(CaptureErrorKind::NotACapture);
        };
        if !self.fill(PCAP_HEADER_LEN)? {
            return Err(CaptureErrorKind::Truncated);
        }
        let h = self.bytes(0, PCAP_HEADER_LEN);
        let major = u16_at(h, 4, big_endian);
        if major != 2 {
            return Err(CaptureErrorKind::Malformed(format!(
                "pcap version {major} (only 2.x exists)"
            )));
        }
        let snaplen = u32_at(h, 16, big_endian);
        let network = u32_at(h, 20, big_endian);
        // Upper 16 bits: reserved bits, the F flag (bit 26) and the FCS
        // length in 16-bit words (bits 28..31).
        let fcs_len = if network & 0x0400_0000 != 0 {
            ((network >> 28) & 0xf) * 2
        } else {
            0
        };
        self.state = State::Pcap(PcapState {
            big_endian,
            nanos: m == PCAP_MAGIC_NS,
            record_header_len: if m == PCAP_MAGIC_KUZNETZOV {
                PCAP_RECORD_HEADER_LEN + 8
            } else {
                PCAP_RECORD_HEADER_LEN
            },
            link: LinkType::from_linktype(network & 0xffff),
            // 0 (and nonsense above the limit) means "no limit" to libpcap.
            snaplen: if snaplen == 0 || snaplen > MAX_CAPLEN {
                MAX_CAPLEN
            } else {
                snaplen
            },
            fcs_len,
        });
        self.format = CaptureFormat::Pcap;
        self.consume(PCAP_HEADER_LEN);
        Ok(())
    }

    // ----- classic pcap -----

    fn next_pcap(&mut self) -> Result<Option<Found>, CaptureErrorKind> {
        let State::Pcap(p) = &self.state else {
            return Ok(None);
        };
        let (big_endian, nanos, hlen, link, snaplen, fcs_len) = (
            p.big_endian,
            p.nanos,
            p.record_header_len,
            p.link,
            p.snaplen,
            p.fcs_len,
        );
        if !self.fill(hlen)? {
            return if self.available() == 0 {
                Ok(None)
            } else {
                Err(CaptureErrorKind::Truncated)
            };
        }
        let h = self.bytes(0, PCAP_RECORD_HEADER_LEN);
        let sec = u32_at(h, 0, big_endian);
        let frac = u32_at(h, 4, big_endian);
        let caplen = u32_at(h, 8, big_endian);
        let orig_len = u32_at(h, 12, big_endian);
        if caplen > snaplen {
            return Err(CaptureErrorKind::Malformed(format!(
                "captured length {caplen} exceeds the snapshot length {snaplen}"
            )));
        }
        // caplen <= MAX_CAPLEN, so this fits any usize.
        let total = hlen + caplen as usize;
        if !self.fill(total)? {
            return Err(CaptureErrorKind::Truncated);
        }
        let frac_ns = if nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        let ts_ns = i64::from(sec) * NANOS_PER_SEC + frac_ns;
        let (data_len, orig_len) = strip_fcs(caplen, orig_len, fcs_len);
        let data_start = self.start + hlen;
        self.consume(total);
        Ok(Some(Found {
            ts_ns,
            link,
            interface: 0,
            data_start,
            data_len,
            orig_len,
        }))
    }

    // ----- pcapng -----

    fn ng(&self) -> Option<&NgState> {
        match &self.state {
            State::PcapNg(ng) => Some(ng),
            State::Pcap(_) => None,
        }
    }

    fn ng_mut(&mut self) -> Option<&mut NgState> {
        match &mut self.state {
            State::PcapNg(ng) => Some(ng),
            State::Pcap(_) => None,
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Found>, CaptureErrorKind> {
        loop {
            match self.read_block_header()? {
                None => return Ok(None),
                Some(Some(found)) => return Ok(Some(found)),
                Some(None) => {}
            }
        }
    }

    /// Reads one block. `None` at a clean end of file, `Some(None)` for a
    /// block that is not a packet, `Some(Some(_))` for a packet.
    fn read_block_header(&mut self) -> Result<Option<Option<Found>>, CaptureErrorKind> {
        if !self.fill(8)? {
            return if self.available() == 0 {
                Ok(None)
            } else {
                Err(CaptureErrorKind::Truncated)
            };
        }
        let head = self.bytes(0, 8);
        // The SHB type reads the same in both byte orders; its byte-order
        // magic says how to read its length and everything up to the next SHB.
        let block_type_le = u32_le(head);
        let big_endian = if block_type_le == NG_SHB {
            if !self.fill(12)? {
                return Err(CaptureErrorKind::Truncated);
            }
            let m = self.bytes(8, 4);
            if u32_le(m) == NG_BYTE_ORDER_MAGIC {
                false
            } else if u32_be(m) == NG_BYTE_ORDER_MAGIC {
                true
            } else if self.consumed == 0 {
                return Err(CaptureErrorKind::NotACapture);
            } else {
                return Err(CaptureErrorKind::Malformed(
                    "bad byte-order magic in section header".into(),
                ));
            }
        } else {
            match self.ng() {
                Some(ng) => ng.big_endian,
                None => false,
            }
        };
        let head = self.bytes(0, 8);
        let block_type = u32_at(head, 0, big_endian);
        let total_len = u32_at(head, 4, big_endian);
        if total_len < NG_MIN_BLOCK_LEN || !total_len.is_multiple_of(4) {
            return Err(CaptureErrorKind::Malformed(format!(
                "block length {total_len}"
            )));
        }
        if total_len > MAX_BLOCK_LEN {
            return Err(CaptureErrorKind::Malformed(format!(
                "block length {total_len} exceeds the limit {MAX_BLOCK_LEN}"
            )));
        }
        let parsed = matches!(block_type, NG_SHB | NG_IDB | NG_EPB | NG_SPB | NG_PB);
        if total_len > MAX_PARSED_BLOCK_LEN {
            if parsed {
                return Err(CaptureErrorKind::Malformed(format!(
                    "block length {total_len} exceeds the limit {MAX_PARSED_BLOCK_LEN} for this block type"
                )));
            }
            // Stream past a big block we ignore, then check its trailer.
            if !self.skip(u64::from(total_len) - 4)? || !self.fill(4)? {
                return Err(CaptureErrorKind::Truncated);
            }
            if u32_at(self.bytes(0, 4), 0, big_endian) != total_len {
                return Err(CaptureErrorKind::Malformed(
                    "trailing block length differs".into(),
                ));
            }
            self.start += 4;
            self.consumed = self.consumed.wrapping_add(u64::from(total_len));
            return Ok(Some(None));
        }
        // total_len <= MAX_PARSED_BLOCK_LEN == buffer length.
        let len = total_len as usize;
        if !self.fill(len)? {
            return Err(CaptureErrorKind::Truncated);
        }
        if u32_at(self.bytes(len - 4, 4), 0, big_endian) != total_len {
            return Err(CaptureErrorKind::Malformed(
                "trailing block length differs".into(),
            ));
        }
        let body_start = self.start + 8;
        let body_len = len - 12;
        let found = match block_type {
            NG_SHB => {
                self.section_header(big_endian, body_start, body_len)?;
                None
            }
            NG_IDB => {
                self.interface_description(body_start, body_len)?;
                None
            }
            NG_EPB => Some(self.enhanced_packet(body_start, body_len, false)?),
            NG_PB => Some(self.enhanced_packet(body_start, body_len, true)?),
            NG_SPB => Some(self.simple_packet(body_start, body_len)?),
            _ => None,
        };
        self.consume(len);
        Ok(Some(found))
    }

    fn body(&self, start: usize, len: usize) -> &[u8] {
        self.buf
            .get(start..start.saturating_add(len))
            .unwrap_or(&[])
    }

    fn section_header(
        &mut self,
        big_endian: bool,
        start: usize,
        len: usize,
    ) -> Result<(), CaptureErrorKind> {
        if len + 12 < NG_MIN_SHB_LEN as usize {
            return Err(CaptureErrorKind::Malformed(
                "section header too short".into(),
            ));
        }
        let major = u16_at(self.body(start, len), 4, big_endian);
        if major != 1 {
            return Err(CaptureErrorKind::Malformed(format!(
                "pcapng version {major} (only 1.x is read)"
            )));
        }
        if let Some(ng) = self.ng_mut() {
            ng.big_endian = big_endian;
            ng.interfaces.clear();
        }
        Ok(())
    }

    fn interface_description(&mut self, start: usize, len: usize) -> Result<(), CaptureErrorKind> {
        let Some(ng) = self.ng() else {
            return Ok(());
        };
        let be = ng.big_endian;
        if ng.interfaces.len() >= MAX_INTERFACES {
            return Err(CaptureErrorKind::Malformed(format!(
                "more than {MAX_INTERFACES} interfaces"
            )));
        }
        let body = self.body(start, len);
        if body.len() < 8 {
            return Err(CaptureErrorKind::Malformed(
                "interface description too short".into(),
            ));
        }
        let link = LinkType::from_linktype(u32::from(u16_at(body, 0, be)));
        let snaplen = u32_at(body, 4, be);
        let mut iface = Interface {
            link,
            snaplen,
            scale: TsScale::MICROS,
            offset_ns: 0,
            fcs_len: 0,
        };
        // Options are best effort: a damaged option list ends the walk
        // rather than the file, as the interface itself is usable.
        let mut opts = body.get(8..).unwrap_or(&[]);
        while let Some((hdr, rest)) = opts.split_at_checked(4) {
            let code = u16_at(hdr, 0, be);
            let olen = usize::from(u16_at(hdr, 2, be));
            let padded = olen.next_multiple_of(4);
            let Some((value, rest)) = rest.split_at_checked(padded) else {
                break;
            };
            let value = value.get(..olen).unwrap_or(&[]);
            match (code, value) {
                (NG_OPT_ENDOFOPT, _) => break,
                (NG_OPT_IF_TSRESOL, [v]) => iface.scale = TsScale::from_tsresol(*v),
                // In bits (the spec; Wireshark agrees since 4.2).
                (NG_OPT_IF_FCSLEN, [v]) => iface.fcs_len = u32::from(*v) / 8,
                (NG_OPT_IF_TSOFFSET, v) if v.len() == 8 => {
                    let secs = u64_at(v, 0, be) as i64;
                    iface.offset_ns = secs.saturating_mul(NANOS_PER_SEC);
                }
                _ => {}
            }
            opts = rest;
        }
        if let Some(ng) = self.ng_mut() {
            ng.interfaces.push(iface);
        }
        Ok(())
    }

    /// Enhanced Packet Block, or with `obsolete` the old Packet Block, which
    /// has a 16-bit interface id and a 16-bit drop count in its place.
    fn enhanced_packet(
        &mut self,
        start: usize,
        len: usize,
        obsolete: bool,
    ) -> Result<Found, CaptureErrorKind> {
        let Some(ng) = self.ng() else {
            return Err(CaptureErrorKind::Malformed(
                "packet outside a section".into(),
            ));
        };
        let be = ng.big_endian;
        let body = self.body(start, len);
        if body.len() < 20 {
            return Err(CaptureErrorKind::Malformed("packet block too short".into()));
        }
        let interface = if obsolete {
            u32::from(u16_at(body, 0, be))
        } else {
            u32_at(body, 0, be)
        };
        let units = (u64::from(u32_at(body, 4, be)) << 32) | u64::from(u32_at(body, 8, be));
        let caplen = u32_at(body, 12, be);
        let orig_len = u32_at(body, 16, be);
        let Some(iface) = ng.interfaces.get(interface as usize).copied() else {
            return Err(CaptureErrorKind::Malformed(format!(
                "packet for undeclared interface {interface}"
            )));
        };
        check_caplen(caplen, iface.snaplen)?;
        // caplen <= MAX_CAPLEN.
        if 20 + caplen as usize > body.len() {
            return Err(CaptureErrorKind::Malformed(format!(
                "captured length {caplen} exceeds its block"
            )));
        }
        let ts_ns = iface.scale.to_ns(units).saturating_add(iface.offset_ns);
        if let Some(ng) = self.ng_mut() {
            ng.last_ts_ns = ts_ns;
        }
        let (data_len, orig_len) = strip_fcs(caplen, orig_len, iface.fcs_len);
        Ok(Found {
            ts_ns,
            link: iface.link,
            interface,
            data_start: start + 20,
            data_len,
            orig_len,
        })
    }

    /// Simple Packet Block: interface 0, no timestamp, captured length
    /// implied by the block length and the interface's snaplen.
    fn simple_packet(&mut self, start: usize, len: usize) -> Result<Found, CaptureErrorKind> {
        let Some(ng) = self.ng() else {
            return Err(CaptureErrorKind::Malformed(
                "packet outside a section".into(),
            ));
        };
        let body = self.body(start, len);
        if body.len() < 4 {
            return Err(CaptureErrorKind::Malformed(
                "simple packet block too short".into(),
            ));
        }
        let orig_len = u32_at(body, 0, ng.big_endian);
        let Some(iface) = ng.interfaces.first().copied() else {
            return Err(CaptureErrorKind::Malformed(
                "simple packet before any interface".into(),
            ));
        };
        let room = u32::try_from(body.len() - 4).unwrap_or(u32::MAX);
        let mut caplen = orig_len.min(room);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen);
        }
        check_caplen(caplen, 0)?;
        let (data_len, orig_len) = strip_fcs(caplen, orig_len, iface.fcs_len);
        Ok(Found {
            ts_ns: ng.last_ts_ns,
            link: iface.link,
            interface: 0,
            data_start: start + 4,
            data_len,
            orig_len,
        })
    }
}

fn check_caplen(caplen: u32, snaplen: u32) -> Result<(), CaptureErrorKind> {
    if caplen > MAX_CAPLEN {
        return Err(CaptureErrorKind::Malformed(format!(
            "captured length {caplen} exceeds the limit {MAX_CAPLEN}"
        )));
    }
    if snaplen != 0 && caplen > snaplen {
        return Err(CaptureErrorKind::Malformed(format!(
            "captured length {caplen} exceeds the snapshot length {snaplen}"
        )));
    }
    Ok(())
}

/// Drops a trailing FCS from the captured bytes (as much of it as was
/// captured) and from the wire length. Returns (data length, orig_len).
#[inline]
fn strip_fcs(caplen: u32, orig_len: u32, fcs_len: u32) -> (usize, u32) {
    let orig_len = orig_len.max(caplen);
    if fcs_len == 0 {
        return (caplen as usize, orig_len);
    }
    let wire = orig_len.saturating_sub(fcs_len);
    (caplen.min(wire) as usize, wire)
}

#[inline]
fn u32_le(b: &[u8]) -> u32 {
    u32_at(b, 0, false)
}

#[inline]
fn u32_be(b: &[u8]) -> u32 {
    u32_at(b, 0, true)
}

/// Reads a u32 at `off`; 0 when out of range (callers check lengths first).
#[inline]
fn u32_at(b: &[u8], off: usize, big_endian: bool) -> u32 {
    match b
        .get(off..off.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
    {
        Some(a) if big_endian => u32::from_be_bytes(a),
        Some(a) => u32::from_le_bytes(a),
        None => 0,
    }
}

#[inline]
fn u16_at(b: &[u8], off: usize, big_endian: bool) -> u16 {
    match b
        .get(off..off.saturating_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
    {
        Some(a) if big_endian => u16::from_be_bytes(a),
        Some(a) => u16::from_le_bytes(a),
        None => 0,
    }
}

#[inline]
fn u64_at(b: &[u8], off: usize, big_endian: bool) -> u64 {
    match b
        .get(off..off.saturating_add(8))
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
    {
        Some(a) if big_endian => u64::from_be_bytes(a),
        Some(a) => u64::from_le_bytes(a),
        None => 0,
    }
}

// ----- writer -----

/// Writes little-endian classic pcap with nanosecond timestamps (magic
/// a1b23c4d), the format of trawl's raw store. Wrap the sink in a
/// `BufWriter`: each packet is two `write_all` calls.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. A `snaplen` of 0, or one above [`MAX_CAPLEN`],
    /// becomes [`MAX_CAPLEN`], so that every file written here reads back.
    pub fn new(mut w: W, link: LinkType, snaplen: u32) -> io::Result<Self> {
        let snaplen = if snaplen == 0 || snaplen > MAX_CAPLEN {
            MAX_CAPLEN
        } else {
            snaplen
        };
        let mut h = [0u8; PCAP_HEADER_LEN];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&link.to_linktype().to_le_bytes());
        w.write_all(&h)?;
        Ok(Self { w, snaplen })
    }

    /// Writes one record. `data` beyond the snaplen is cut (and `orig_len`
    /// raised to at least the data length). Times before 1970 or after 2106
    /// do not fit pcap's unsigned 32-bit seconds and are clamped.
    pub fn write_packet(&mut self, ts_ns: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let caplen = u32::try_from(data.len())
            .unwrap_or(u32::MAX)
            .min(self.snaplen);
        let data = data.get(..caplen as usize).unwrap_or(data);
        let orig_len = orig_len.max(caplen);
        let (sec, nsec) = if ts_ns < 0 {
            (0, 0)
        } else {
            let sec = ts_ns / NANOS_PER_SEC;
            match u32::try_from(sec) {
                // ts_ns >= 0, so the remainder is in 0..1e9.
                Ok(s) => (s, (ts_ns % NANOS_PER_SEC) as u32),
                Err(_) => (u32::MAX, 999_999_999),
            }
        };
        let mut h = [0u8; PCAP_RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&nsec.to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    pub fn get_ref(&self) -> &W {
        &self.w
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Helpers for the tests of every module in this crate: where the shared
/// captures are, what MANIFEST.md says about them, and builders for pcap and
/// pcapng bytes.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    /// /work/shared/pcaps, or `None` after a loud notice when it is absent.
    pub fn shared_pcaps(test: &str) -> Option<PathBuf> {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/pcaps"
        ));
        if dir.join("MANIFEST.md").is_file() {
            Some(dir)
        } else {
            eprintln!(
                "SKIPPED: {test}: shared captures not found at {}",
                dir.display()
            );
            None
        }
    }

    /// One row of MANIFEST.md's file table (values from `capinfos`).
    #[derive(Debug)]
    pub struct ManifestEntry {
        pub file: String,
        pub link: String,
        pub format: String,
        pub packets: u64,
    }

    pub fn manifest(dir: &std::path::Path) -> Vec<ManifestEntry> {
        let text = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
        let mut out = Vec::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            // | # | file | source | license | link type | format | packets | …
            if cols.len() < 8 || cols[1].parse::<u32>().is_err() {
                continue;
            }
            out.push(ManifestEntry {
                file: cols[2].trim_matches('`').to_string(),
                link: cols[5].to_string(),
                format: cols[6].to_string(),
                packets: cols[7].parse().unwrap(),
            });
        }
        out
    }

    /// Bytes of a classic pcap file in either byte order.
    pub struct PcapBuilder {
        pub be: bool,
        pub out: Vec<u8>,
    }

    impl PcapBuilder {
        pub fn new(be: bool, magic: u32, snaplen: u32, network: u32) -> Self {
            let mut b = Self {
                be,
                out: Vec::new(),
            };
            b.u32(magic);
            b.u16(2);
            b.u16(4);
            b.u32(0);
            b.u32(0);
            b.u32(snaplen);
            b.u32(network);
            b
        }
        pub fn u16(&mut self, v: u16) {
            self.out.extend_from_slice(&if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        pub fn u32(&mut self, v: u32) {
            self.out.extend_from_slice(&if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        pub fn record(&mut self, sec: u32, frac: u32, data: &[u8], orig_len: u32) -> &mut Self {
            self.u32(sec);
            self.u32(frac);
            self.u32(data.len() as u32);
            self.u32(orig_len);
            self.out.extend_from_slice(data);
            self
        }
    }

    /// Bytes of a pcapng file in either byte order (per section).
    pub struct NgBuilder {
        pub be: bool,
        pub out: Vec<u8>,
    }

    impl NgBuilder {
        pub fn new(be: bool) -> Self {
            Self {
                be,
                out: Vec::new(),
            }
        }
        fn u16b(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32b(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        pub fn block(&mut self, ty: u32, body: &[u8]) -> &mut Self {
            let total = 12 + body.len().next_multiple_of(4) as u32;
            let (t, l) = (self.u32b(ty), self.u32b(total));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.resize(
                self.out.len() + body.len().next_multiple_of(4) - body.len(),
                0,
            );
            self.out.extend_from_slice(&l);
            self
        }
        pub fn shb(&mut self) -> &mut Self {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u32b(0x1a2b_3c4d));
            body.extend_from_slice(&self.u16b(1));
            body.extend_from_slice(&self.u16b(0));
            body.extend_from_slice(&u64::MAX.to_le_bytes());
            self.block(0x0a0d_0d0a, &body)
        }
        pub fn options(&self, opts: &[(u16, &[u8])]) -> Vec<u8> {
            let mut body = Vec::new();
            for (code, value) in opts {
                body.extend_from_slice(&self.u16b(*code));
                body.extend_from_slice(&self.u16b(value.len() as u16));
                body.extend_from_slice(value);
                body.resize(body.len().next_multiple_of(4), 0);
            }
            if !opts.is_empty() {
                body.extend_from_slice(&[0; 4]);
            }
            body
        }
        pub fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> &mut Self {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u16b(link));
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&self.u32b(snaplen));
            body.extend_from_slice(&self.options(opts));
            self.block(1, &body)
        }
        pub fn epb(&mut self, iface: u32, units: u64, data: &[u8], orig_len: u32) -> &mut Self {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u32b(iface));
            body.extend_from_slice(&self.u32b((units >> 32) as u32));
            body.extend_from_slice(&self.u32b(units as u32));
            body.extend_from_slice(&self.u32b(data.len() as u32));
            body.extend_from_slice(&self.u32b(orig_len));
            body.extend_from_slice(data);
            body.resize(body.len().next_multiple_of(4), 0);
            // A comment option, to be skipped.
            body.extend_from_slice(&self.options(&[(1, b"hello")]));
            self.block(6, &body)
        }
        pub fn pb(&mut self, iface: u16, units: u64, data: &[u8], orig_len: u32) -> &mut Self {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u16b(iface));
            body.extend_from_slice(&self.u16b(0));
            body.extend_from_slice(&self.u32b((units >> 32) as u32));
            body.extend_from_slice(&self.u32b(units as u32));
            body.extend_from_slice(&self.u32b(data.len() as u32));
            body.extend_from_slice(&self.u32b(orig_len));
            body.extend_from_slice(data);
            self.block(2, &body)
        }
        pub fn spb(&mut self, data: &[u8], orig_len: u32) -> &mut Self {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u32b(orig_len));
            body.extend_from_slice(data);
            self.block(3, &body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    /// All packets of a capture as owned values, and how reading ended.
    type Owned = (i64, LinkType, u32, Vec<u8>, u32);

    fn read_all<R: Read>(r: &mut CaptureReader<R>) -> (Vec<Owned>, Option<CaptureError>) {
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    out.push((p.ts_ns, p.link, p.interface, p.data.to_vec(), p.orig_len))
                }
                Ok(None) => return (out, None),
                Err(e) => {
                    // After an error the reader stays finished.
                    assert!(r.next_packet().unwrap().is_none());
                    return (out, Some(e));
                }
            }
        }
    }

    fn read_bytes(bytes: &[u8]) -> Result<(Vec<Owned>, Option<CaptureError>), CaptureError> {
        let mut r = CaptureReader::new(bytes, "test")?;
        Ok(read_all(&mut r))
    }

    /// A reader that returns at most `n` bytes per call, to exercise refills.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn link_type_numbers_round_trip() {
        for lt in [0, 1, 101, 108, 113, 228, 229, 276, 147] {
            assert_eq!(LinkType::from_linktype(lt).to_linktype(), lt);
        }
        assert_eq!(LinkType::from_linktype(12), LinkType::Raw);
        assert_eq!(LinkType::from_linktype(14), LinkType::Raw);
        assert_eq!(LinkType::from_linktype(147), LinkType::Other(147));
    }

    // Bytes: built here, one record in each of the four classic variants.
    #[test]
    fn classic_pcap_all_byte_orders_and_resolutions() {
        for be in [false, true] {
            for (magic, frac, ns) in [(PCAP_MAGIC_US, 250_000, 250_000_000), (PCAP_MAGIC_NS, 7, 7)]
            {
                let mut b = PcapBuilder::new(be, magic, 65535, 1);
                b.record(1_700_000_000, frac, b"abcdef", 60);
                b.record(1_700_000_001, 0, b"", 0);
                let (pkts, err) = read_bytes(&b.out).unwrap();
                assert!(err.is_none());
                assert_eq!(
                    pkts,
                    vec![
                        (
                            1_700_000_000 * NANOS_PER_SEC + ns,
                            LinkType::Ethernet,
                            0,
                            b"abcdef".to_vec(),
                            60
                        ),
                        (
                            1_700_000_001 * NANOS_PER_SEC,
                            LinkType::Ethernet,
                            0,
                            vec![],
                            0
                        ),
                    ]
                );
            }
        }
    }

    #[test]
    fn reader_reports_format_link_and_offset() {
        let mut b = PcapBuilder::new(false, PCAP_MAGIC_US, 0, 113);
        b.record(1, 0, &[1, 2, 3], 3);
        let mut r = CaptureReader::new(&b.out[..], "x").unwrap();
        assert_eq!(r.format(), CaptureFormat::Pcap);
        assert_eq!(r.link_type(), Some(LinkType::LinuxSll));
        assert_eq!(r.offset(), 24);
        assert!(r.next_packet().unwrap().is_some());
        assert_eq!(r.offset(), 24 + 16 + 3);
        assert!(r.next_packet().unwrap().is_none());
    }

    // Bytes: built here; link type 1 with the FCS flag and 2 words of FCS.
    #[test]
    fn classic_pcap_fcs_bits_are_masked_and_fcs_dropped() {
        let mut b = PcapBuilder::new(false, PCAP_MAGIC_US, 65535, 0x2400_0001);
        b.record(1, 0, b"frame+FCS!", 10);
        b.record(1, 0, b"cut+F", 12); // snaplen cut inside the FCS
        let (pkts, err) = read_bytes(&b.out).unwrap();
        assert!(err.is_none());
        assert_eq!(pkts[0].1, LinkType::Ethernet);
        assert_eq!((pkts[0].3.as_slice(), pkts[0].4), (&b"frame+"[..], 6));
        assert_eq!((pkts[1].3.as_slice(), pkts[1].4), (&b"cut+F"[..], 8));
    }

    // Bytes: built here; magic a1b2cd34 has 8 more bytes per record header.
    #[test]
    fn kuznetzov_pcap_records_are_read() {
        let mut b = PcapBuilder::new(false, PCAP_MAGIC_KUZNETZOV, 65535, 1);
        b.u32(5);
        b.u32(0);
        b.u32(2);
        b.u32(2);
        b.out.extend_from_slice(&[0; 8]);
        b.out.extend_from_slice(b"hi");
        let (pkts, err) = read_bytes(&b.out).unwrap();
        assert!(err.is_none());
        assert_eq!(
            pkts,
            vec![(5 * NANOS_PER_SEC, LinkType::Ethernet, 0, b"hi".to_vec(), 2)]
        );
    }

    #[test]
    fn not_a_capture_and_empty_files() {
        let e = read_bytes(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::NotACapture));
        assert_eq!(e.to_string(), "test: not a pcap or pcapng file at byte 0");
        let e = read_bytes(b"").unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::Truncated));
        // A pcapng type with a byte-order magic that is neither order.
        let mut b = NgBuilder::new(false);
        b.shb();
        b.out[8] = 0;
        assert!(matches!(
            read_bytes(&b.out).unwrap_err().kind,
            CaptureErrorKind::NotACapture
        ));
        // pcap version 3 does not exist.
        let mut b = PcapBuilder::new(false, PCAP_MAGIC_US, 65535, 1);
        b.out[4] = 3;
        assert!(matches!(
            read_bytes(&b.out).unwrap_err().kind,
            CaptureErrorKind::Malformed(_)
        ));
    }

    #[test]
    fn oversized_records_are_malformed_not_allocations() {
        // caplen above the snaplen.
        let mut b = PcapBuilder::new(false, PCAP_MAGIC_US, 4, 1);
        b.record(1, 0, b"ok", 2);
        b.record(1, 0, b"too long", 8);
        let (pkts, err) = read_bytes(&b.out).unwrap();
        assert_eq!(pkts.len(), 1);
        let err = err.unwrap();
        assert!(matches!(err.kind, CaptureErrorKind::Malformed(_)), "{err}");
        assert_eq!(err.offset, 24 + 16 + 2);
        // caplen of 4 GiB with a header claiming no snaplen.
        let mut b = PcapBuilder::new(true, PCAP_MAGIC_NS, 0, 1);
        b.u32(1);
        b.u32(0);
        b.u32(u32::MAX);
        b.u32(u32::MAX);
        let (pkts, err) = read_bytes(&b.out).unwrap();
        assert!(pkts.is_empty());
        assert!(matches!(err.unwrap().kind, CaptureErrorKind::Malformed(_)));
    }

    #[test]
    fn io_errors_keep_their_cause() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = CaptureReader::new(Failing, "f.pcap").unwrap_err();
        assert_eq!(e.to_string(), "f.pcap: read failed at byte 0");
        let source = std::error::Error::source(&e).unwrap();
        assert_eq!(source.to_string(), "disk on fire");
        let e = CaptureReader::open(Path::new("/nonexistent/x.pcap")).unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::Io(_)));
        assert!(e.to_string().starts_with("/nonexistent/x.pcap: "));
    }

    #[test]
    fn writer_round_trips_and_clamps() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Raw, 8).unwrap();
        w.write_packet(1_700_000_000_123_456_789, b"0123456789", 10)
            .unwrap();
        w.write_packet(-5, b"neg", 1).unwrap();
        w.write_packet(i64::MAX, b"far", 3).unwrap();
        let bytes = w.into_inner();
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let (pkts, err) = read_bytes(&bytes).unwrap();
        assert!(err.is_none());
        assert_eq!(
            pkts,
            vec![
                (
                    1_700_000_000_123_456_789,
                    LinkType::Raw,
                    0,
                    b"01234567".to_vec(),
                    10
                ),
                (0, LinkType::Raw, 0, b"neg".to_vec(), 3),
                (
                    i64::from(u32::MAX) * NANOS_PER_SEC + 999_999_999,
                    LinkType::Raw,
                    0,
                    b"far".to_vec(),
                    3
                ),
            ]
        );
    }

    // Bytes: a big-endian µs pcap built here, read, rewritten by PcapWriter
    // (little-endian ns), read back: the packets must be identical.
    #[test]
    fn byte_swapped_pcap_round_trips_through_writer() {
        let mut b = PcapBuilder::new(true, PCAP_MAGIC_US, 1500, 113);
        for i in 0..50u32 {
            let data: Vec<u8> = (0..i * 7).map(|x| x as u8).collect();
            b.record(1_600_000_000 + i, i * 1000, &data, i * 7 + i);
        }
        let (orig, err) = read_bytes(&b.out).unwrap();
        assert!(err.is_none());
        assert_eq!(orig.len(), 50);
        let mut w = PcapWriter::new(Vec::new(), LinkType::LinuxSll, 1500).unwrap();
        for p in &orig {
            w.write_packet(p.0, &p.3, p.4).unwrap();
        }
        let (again, err) = read_bytes(&w.into_inner()).unwrap();
        assert!(err.is_none());
        assert_eq!(orig, again);
    }

    /// A pcapng file with two sections (little- then big-endian), interfaces
    /// with several timestamp resolutions, every packet block kind and
    /// blocks to skip. Bytes: built here.
    fn sample_pcapng() -> Vec<u8> {
        let mut a = NgBuilder::new(false);
        a.shb();
        a.idb(1, 0, &[]); // µs by default
        a.idb(113, 128, &[(9, &[9]), (14, &10i64.to_le_bytes())]); // ns, +10 s
        a.idb(101, 0, &[(9, &[0x80 | 10]), (13, &[32])]); // 2^-10 s, 32 bits of FCS
        a.epb(0, 1_700_000_000_000_001, b"ether", 5);
        a.block(4, &[1, 2, 3, 4]); // NRB
        a.epb(1, 5_000_000_123, b"sll", 30);
        a.block(5, &[0; 16]); // ISB
        a.block(0x0bad, &[9; 40]); // unknown
        a.epb(2, 3 * 1024 + 512, b"rawip+FCS", 9);
        a.spb(b"simple packet", 13);
        a.pb(1, 7, b"old", 3);
        a.block(10, &[0; 100]); // DSB
        let mut b = NgBuilder::new(true);
        b.shb();
        b.idb(0, 65535, &[(9, &[3])]); // ms
        b.epb(0, 42, b"\x02\0\0\0null", 8);
        a.out.extend_from_slice(&b.out);
        a.out
    }

    fn sample_pcapng_packets() -> Vec<Owned> {
        vec![
            (
                1_700_000_000_000_001_000,
                LinkType::Ethernet,
                0,
                b"ether".to_vec(),
                5,
            ),
            (15_000_000_123, LinkType::LinuxSll, 1, b"sll".to_vec(), 30),
            (3_500_000_000, LinkType::Raw, 2, b"rawip".to_vec(), 5),
            // SPB: interface 0, time of the previous packet.
            (
                3_500_000_000,
                LinkType::Ethernet,
                0,
                b"simple packet".to_vec(),
                13,
            ),
            (10_000_000_007, LinkType::LinuxSll, 1, b"old".to_vec(), 3),
            (42_000_000, LinkType::Null, 0, b"\x02\0\0\0null".to_vec(), 8),
        ]
    }

    #[test]
    fn pcapng_sections_interfaces_and_blocks() {
        let bytes = sample_pcapng();
        let mut r = CaptureReader::new(&bytes[..], "ng").unwrap();
        assert_eq!(r.format(), CaptureFormat::PcapNg);
        let (pkts, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(pkts, sample_pcapng_packets());
        assert_eq!(r.offset(), bytes.len() as u64);
    }

    #[test]
    fn refills_across_tiny_reads_give_the_same_packets() {
        let bytes = sample_pcapng();
        for n in [1, 3, 7, 64] {
            let mut r = CaptureReader::new(Trickle(&bytes, n), "ng").unwrap();
            let (pkts, err) = read_all(&mut r);
            assert!(err.is_none());
            assert_eq!(pkts, sample_pcapng_packets());
        }
    }

    #[test]
    fn pcapng_damaged_blocks_are_malformed_at_their_offset() {
        let good = sample_pcapng();
        // Walk the (little-endian) blocks to the first EPB.
        let mut epb_at = 0;
        while u32::from_le_bytes(good[epb_at..epb_at + 4].try_into().unwrap()) != 6 {
            epb_at += u32::from_le_bytes(good[epb_at + 4..epb_at + 8].try_into().unwrap()) as usize;
        }
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Damage)> = vec![
            (
                "length not a multiple of 4",
                Box::new(move |b| b[epb_at + 4] += 1),
            ),
            (
                "length below 12",
                Box::new(move |b| b[epb_at + 4..epb_at + 8].copy_from_slice(&8u32.to_le_bytes())),
            ),
            (
                "length above the limit",
                Box::new(move |b| {
                    b[epb_at + 4..epb_at + 8].copy_from_slice(&(MAX_BLOCK_LEN + 4).to_le_bytes())
                }),
            ),
            ("trailer differs", Box::new(move |b| b[epb_at + 4] += 4)),
            ("undeclared interface", Box::new(move |b| b[epb_at + 8] = 9)),
            (
                "caplen past the block",
                Box::new(move |b| b[epb_at + 20] = 200),
            ),
        ];
        for (what, damage) in cases {
            let mut bytes = good.clone();
            damage(&mut bytes);
            let (pkts, err) = read_bytes(&bytes).unwrap();
            assert!(pkts.is_empty(), "{what}");
            let err = err.unwrap_or_else(|| panic!("{what}: no error"));
            assert!(
                matches!(err.kind, CaptureErrorKind::Malformed(_)),
                "{what}: {err}"
            );
            assert_eq!(err.offset, epb_at as u64, "{what}");
        }
        // A snaplen smaller than the captured length.
        let mut b = NgBuilder::new(false);
        b.shb().idb(1, 2, &[]).epb(0, 0, b"abc", 3);
        let (_, err) = read_bytes(&b.out).unwrap();
        assert!(matches!(err.unwrap().kind, CaptureErrorKind::Malformed(_)));
        // A packet before any interface.
        let mut b = NgBuilder::new(false);
        b.shb().spb(b"abc", 3);
        let (_, err) = read_bytes(&b.out).unwrap();
        assert!(matches!(err.unwrap().kind, CaptureErrorKind::Malformed(_)));
    }

    // Bytes: built here; a 3 MiB custom block (bigger than the buffer) is
    // streamed past, whole and with a corrupt trailer.
    #[test]
    fn pcapng_blocks_bigger_than_the_buffer_are_streamed_past() {
        let mut b = NgBuilder::new(false);
        b.shb().idb(1, 0, &[]).epb(0, 1, b"before", 6);
        let block_at = b.out.len();
        b.block(0x0000_0bad, &vec![0x55; 3 << 20]);
        b.epb(0, 2, b"after", 5);
        for n in [usize::MAX, 100_000] {
            let mut r = CaptureReader::new(Trickle(&b.out, n), "big").unwrap();
            let (pkts, err) = read_all(&mut r);
            assert!(err.is_none());
            assert_eq!(
                pkts.iter().map(|p| p.3.as_slice()).collect::<Vec<_>>(),
                [&b"before"[..], b"after"]
            );
            assert_eq!(r.offset(), b.out.len() as u64);
        }
        let trailer = block_at + 12 + (3 << 20) - 4;
        let mut bytes = b.out.clone();
        bytes[trailer] ^= 4;
        let (pkts, err) = read_bytes(&bytes).unwrap();
        assert_eq!(pkts.len(), 1);
        let err = err.unwrap();
        assert!(matches!(err.kind, CaptureErrorKind::Malformed(_)));
        assert_eq!(err.offset, block_at as u64);
        // Cut inside the big block.
        let (pkts, err) = read_bytes(&b.out[..block_at + 2_000_000]).unwrap();
        assert_eq!(pkts.len(), 1);
        let err = err.unwrap();
        assert!(matches!(err.kind, CaptureErrorKind::Truncated));
        assert_eq!(err.offset, block_at as u64);
        // A packet block too big to parse in place.
        let mut b = NgBuilder::new(false);
        b.shb().idb(1, 0, &[]);
        b.block(6, &vec![0; 2 << 20]);
        let (_, err) = read_bytes(&b.out).unwrap();
        assert!(matches!(err.unwrap().kind, CaptureErrorKind::Malformed(_)));
    }

    /// Cuts `bytes` at every offset and checks that each cut reads the
    /// packets wholly before it, then ends cleanly at a record boundary or
    /// reports truncation at the offset of the record that was cut.
    fn check_every_cut(name: &str, bytes: &[u8]) {
        let mut r = CaptureReader::new(bytes, name).unwrap();
        let mut full = Vec::new();
        let mut ends = Vec::new(); // end offset of each record, packet or not
        loop {
            let before = r.offset();
            match r.next_packet().unwrap() {
                Some(p) => full.push((p.ts_ns, p.data.to_vec(), r.offset())),
                None => break,
            }
            let _ = before;
        }
        let header_end = CaptureReader::new(bytes, name).unwrap().offset();
        ends.push(header_end);
        ends.extend(full.iter().map(|p| p.2));
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            let mut r = match CaptureReader::new(prefix, name) {
                Ok(r) => r,
                Err(e) => {
                    assert!(
                        matches!(e.kind, CaptureErrorKind::Truncated),
                        "{name} cut {cut}: {e}"
                    );
                    assert!((cut as u64) < header_end, "{name} cut {cut}");
                    continue;
                }
            };
            let (pkts, err) = read_all(&mut r);
            let whole = full.iter().take_while(|p| p.2 <= cut as u64).count();
            assert_eq!(pkts.len(), whole, "{name} cut {cut}");
            for (got, want) in pkts.iter().zip(&full) {
                assert_eq!((got.0, &got.3), (want.0, &want.1));
            }
            match err {
                None => assert_eq!(
                    r.offset(),
                    cut as u64,
                    "{name} cut {cut}: clean end mid-record"
                ),
                Some(e) => {
                    assert!(
                        matches!(e.kind, CaptureErrorKind::Truncated),
                        "{name} cut {cut}: {e}"
                    );
                    assert!(
                        e.offset < cut as u64 && e.offset >= ends[whole],
                        "{name} cut {cut}: {e}"
                    );
                    assert!(e.to_string().contains(&format!("at byte {}", e.offset)));
                }
            }
        }
    }

    #[test]
    fn truncation_at_every_offset_of_built_files() {
        check_every_cut("ng", &sample_pcapng());
        let mut b = PcapBuilder::new(true, PCAP_MAGIC_US, 100, 1);
        for i in 0..5u32 {
            b.record(i, i, &vec![i as u8; i as usize * 3], 20);
        }
        check_every_cut("pcap", &b.out);
    }

    #[test]
    fn truncation_at_every_offset_of_shared_files() {
        let Some(dir) = shared_pcaps("truncation_at_every_offset_of_shared_files") else {
            return;
        };
        for f in [
            "http-suricata-decode-sll2-01.pcap",
            "http-ndpi-http-proxy.pcapng",
        ] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            check_every_cut(f, &bytes);
        }
    }

    // Every capture of the shared corpus, against capinfos' facts in MANIFEST.md.
    #[test]
    fn every_shared_capture_reads_to_its_end_with_capinfos_count() {
        let Some(dir) = shared_pcaps("every_shared_capture_reads_to_its_end_with_capinfos_count")
        else {
            return;
        };
        let manifest = manifest(&dir);
        assert_eq!(manifest.len(), 92, "MANIFEST.md rows");
        let mut total = 0;
        for entry in &manifest {
            let path = dir.join(&entry.file);
            let mut r = CaptureReader::open(&path).unwrap();
            let want_format = if entry.format == "pcapng" {
                CaptureFormat::PcapNg
            } else {
                CaptureFormat::Pcap
            };
            assert_eq!(r.format(), want_format, "{}", entry.file);
            let mut links = std::collections::BTreeSet::new();
            let mut n = 0u64;
            // Timestamps are checked against tshark's in decode.rs's tests.
            while let Some(p) = r.next_packet().unwrap_or_else(|e| panic!("{e}")) {
                assert!(p.data.len() as u64 <= u64::from(p.orig_len));
                links.insert(format!("{:?}", p.link));
                n += 1;
            }
            assert_eq!(n, entry.packets, "{}", entry.file);
            assert_eq!(
                r.offset(),
                std::fs::metadata(&path).unwrap().len(),
                "{}",
                entry.file
            );
            let want_links = match entry.link.as_str() {
                "ether" => "Ethernet",
                "null" => "Null",
                "linux-sll" => "LinuxSll",
                "linux-sll2" => "LinuxSll2",
                "rawip" => "Raw",
                "per-packet" => "Ethernet,LinuxSll",
                other => panic!("unknown link type {other} in MANIFEST.md"),
            };
            assert_eq!(
                links.into_iter().collect::<Vec<_>>().join(","),
                want_links,
                "{}",
                entry.file
            );
            total += n;
        }
        eprintln!(
            "read {total} packets from {} shared captures",
            manifest.len()
        );
    }
}
