//! One segment file of the raw store and of a snapshot: a little-endian,
//! nanosecond classic pcap file (the format `PcapWriter` writes), its name,
//! a validating record scanner, and its time index.
//!
//! The scanner is the one reader of trawl's own segment files: crash
//! recovery uses it to find the last whole record, the store to rebuild a
//! missing index, snapshots to copy records, export to merge them. It hands
//! out each record's bytes (header and frame) exactly as stored, so copying
//! a record is one `extend_from_slice`. Capture files from elsewhere go
//! through `trawl_packet::CaptureReader` instead (see `snapshot::import_pcap`).
//!
//! The time index ([`TimeIndex`]) has one entry per [`INDEX_INTERVAL`]
//! packets. It lives in memory while a segment is written and goes to a
//! sidecar `<segment>.idx` when the segment is closed, so that reopening a
//! store of many segments reads a few kilobytes instead of a gigabyte; a
//! missing or stale sidecar is rebuilt by scanning, so the sidecar is a
//! cache and never the only copy of anything.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use trawl_packet::LinkType;
use trawl_packet::capfile::MAX_CAPLEN;

/// Magic of nanosecond pcap, as written little-endian by `PcapWriter`.
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Classic pcap file header.
pub const FILE_HEADER_LEN: u64 = 24;
/// Classic pcap record header: seconds, nanoseconds, caplen, orig_len.
pub const RECORD_HEADER_LEN: usize = 16;
const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Largest timestamp a pcap record can hold (u32 seconds).
pub const MAX_TS_NS: i64 = u32::MAX as i64 * NANOS_PER_SEC + 999_999_999;

/// Packets between two time-index entries. A 64 MiB segment of small
/// packets (~100 bytes) holds ~650 000 records, so ~160 entries of 24 bytes:
/// the whole index of a 1 GiB store stays under 100 KiB, and finding a
/// window's start reads at most 4 096 records (~0.5 MiB of typical traffic)
/// past the entry.
pub const INDEX_INTERVAL: u64 = 4096;

/// How far back in time a record may go, relative to the newest record
/// before it in the same segment, and still count as valid during crash
/// recovery. Fanout threads and NIC queues deliver packets a few
/// milliseconds out of order; a stale page of zeros or a torn record
/// decodes as a time decades back. Ten seconds separates the two with room
/// to spare.
pub const MAX_BACKWARD_NS: i64 = 10 * NANOS_PER_SEC;

/// Size of a scanner's read buffer: large reads keep syscalls rare; a
/// whole record (at most [`MAX_CAPLEN`] + 16 bytes) always fits.
pub const SCAN_BUFFER_LEN: usize = 1 << 20;

/// Largest sidecar index accepted, in entries. A segment is at most a few
/// GiB and a record at least 16 bytes, so 2^24 entries (384 MiB of index)
/// is far past any real index; the cap stops a corrupt count from
/// allocating.
const MAX_INDEX_ENTRIES: u64 = 1 << 24;
const IDX_MAGIC: &[u8; 8] = b"TRWLIDX1";

/// The 24-byte file header of a segment with this link type.
pub fn file_header(link: LinkType, snaplen: u32) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    let fields: [(usize, &[u8]); 5] = [
        (0, &PCAP_MAGIC_NS.to_le_bytes()),
        (4, &2u16.to_le_bytes()),
        (6, &4u16.to_le_bytes()),
        (16, &snaplen.to_le_bytes()),
        (20, &link.to_linktype().to_le_bytes()),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = h.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    h
}

/// A record header for `ts_ns` (already within 0..=[`MAX_TS_NS`]).
pub fn record_header(ts_ns: i64, caplen: u32, orig_len: u32) -> [u8; RECORD_HEADER_LEN] {
    let ts = ts_ns.clamp(0, MAX_TS_NS);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "ts is clamped to 0..=MAX_TS_NS, so seconds fit u32 and nanos are < 1e9"
    )]
    let (sec, nsec) = ((ts / NANOS_PER_SEC) as u32, (ts % NANOS_PER_SEC) as u32);
    let mut h = [0u8; RECORD_HEADER_LEN];
    for (i, v) in [sec, nsec, caplen, orig_len].into_iter().enumerate() {
        if let Some(dst) = h.get_mut(i * 4..i * 4 + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    h
}

/// Clamps a capture time to what a pcap record can hold.
pub fn clamp_ts(ts_ns: i64) -> i64 {
    ts_ns.clamp(0, MAX_TS_NS)
}

// ----- names -----

/// The file name of a segment: first timestamp (20 digits, so names sort
/// by time) and a sequence number (unique even when two segments start in
/// the same nanosecond, and increasing across restarts).
pub fn segment_file_name(first_ts: i64, seq: u64) -> String {
    format!("{:020}-{seq:08}.pcap", first_ts.max(0))
}

/// (first_ts, seq) from a segment file name, `None` for other files.
pub fn parse_segment_file_name(name: &str) -> Option<(i64, u64)> {
    let stem = name.strip_suffix(".pcap")?;
    let (ts, seq) = stem.split_once('-')?;
    if ts.len() != 20 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ts.parse().ok()?, seq.parse().ok()?))
}

/// The sidecar index path of a segment.
pub fn idx_path(segment: &Path) -> PathBuf {
    let mut s = segment.as_os_str().to_owned();
    s.push(".idx");
    PathBuf::from(s)
}

// ----- time index -----

/// One time-index entry: the record at `offset` starts a block of up to
/// [`INDEX_INTERVAL`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// File offset of the block's first record.
    pub offset: u64,
    /// Largest timestamp of all records before `offset` (`i64::MIN` for the
    /// first block). Reading for a window that starts at `from` may begin at
    /// the last entry with `max_ts_before < from`: nothing earlier can be in
    /// the window, even when records are slightly out of order.
    pub max_ts_before: i64,
    /// Smallest timestamp in this block; the minimum over this and later
    /// blocks tells where a window's end lets reading stop.
    pub block_min_ts: i64,
}

/// Sparse time index of one segment; see [`IndexEntry`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    pub entries: Vec<IndexEntry>,
}

impl TimeIndex {
    /// Records one more packet at `offset` with time `ts`; `packets_before`
    /// and `max_before` describe the records already in the segment.
    pub fn note(&mut self, packets_before: u64, max_before: Option<i64>, offset: u64, ts: i64) {
        if packets_before.is_multiple_of(INDEX_INTERVAL) || self.entries.is_empty() {
            self.entries.push(IndexEntry {
                offset,
                max_ts_before: max_before.unwrap_or(i64::MIN),
                block_min_ts: ts,
            });
        } else if let Some(last) = self.entries.last_mut() {
            last.block_min_ts = last.block_min_ts.min(ts);
        }
    }

    /// The byte range `[start, end)` of the segment (whose length is
    /// `file_len`) outside which no record has a time in `[from, to)`.
    /// Records inside the range must still be checked one by one.
    pub fn byte_range(&self, from: i64, to: i64, file_len: u64) -> (u64, u64) {
        let mut start_i = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if e.max_ts_before < from {
                start_i = i;
            } else {
                break;
            }
        }
        let start = self
            .entries
            .get(start_i)
            .map_or(FILE_HEADER_LEN, |e| e.offset);
        // Walk from the back keeping the minimum of the blocks after each
        // entry: the first block (at or after start) from which every later
        // record is at or past `to` ends the range.
        let mut end = file_len;
        let mut suffix_min = i64::MAX;
        for e in self.entries.iter().skip(start_i + 1).rev() {
            suffix_min = suffix_min.min(e.block_min_ts);
            if suffix_min >= to {
                end = e.offset;
            } else {
                break;
            }
        }
        (start, end.max(start))
    }
}

/// What is known about one closed or open segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub seq: u64,
    pub link: LinkType,
    /// Timestamp of the first record (also in the file name).
    pub first_ts: i64,
    /// Smallest and largest record timestamps (records may be slightly out
    /// of order, so these need not be the first and last).
    pub min_ts: i64,
    pub max_ts: i64,
    pub packets: u64,
    /// File length in bytes, header included.
    pub bytes: u64,
    pub index: TimeIndex,
}

impl SegmentInfo {
    /// Whether any record may fall in `[from, to)`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.packets > 0 && self.min_ts < to && self.max_ts >= from
    }
}

// ----- scanner -----

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// The file ends inside a record (a crash, or a writer still at work).
    Partial,
    /// The record at this offset is not valid (reason).
    Invalid(String),
}

/// A record as stored: header and frame bytes, borrowed until the next
/// call.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub offset: u64,
    pub ts_ns: i64,
    pub orig_len: u32,
    /// Header (16 bytes) and frame.
    pub raw: &'a [u8],
}

impl<'a> Record<'a> {
    /// The captured frame without the record header.
    pub fn data(&self) -> &'a [u8] {
        self.raw.get(RECORD_HEADER_LEN..).unwrap_or(&[])
    }
}

/// Reads the records of a segment file one by one, validating each header.
pub struct SegmentScanner<R: Read> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    /// Offset after which reading stops (exclusive), for index ranges.
    limit: u64,
    pub link: LinkType,
    pub snaplen: u32,
    /// Newest timestamp seen; with `strict`, records more than
    /// [`MAX_BACKWARD_NS`] before it are invalid.
    max_ts: Option<i64>,
    strict: bool,
    stop: Option<ScanStop>,
    /// Current record, as positions in `buf`.
    cur: Option<(u64, i64, u32, usize, usize)>,
}

impl<R: Read> std::fmt::Debug for SegmentScanner<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentScanner")
            .field("offset", &self.offset)
            .field("link", &self.link)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

/// Reads and checks a segment's file header.
fn read_file_header(r: &mut impl Read) -> io::Result<(LinkType, u32)> {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    r.read_exact(&mut h)?;
    let word = |at: usize| {
        h.get(at..at + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, u32::from_le_bytes)
    };
    if word(0) != PCAP_MAGIC_NS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a trawl segment (expected little-endian nanosecond pcap, magic a1b23c4d)",
        ));
    }
    let snaplen = word(16);
    let snaplen = if snaplen == 0 || snaplen > MAX_CAPLEN {
        MAX_CAPLEN
    } else {
        snaplen
    };
    Ok((LinkType::from_linktype(word(20)), snaplen))
}

impl SegmentScanner<File> {
    /// Opens a segment and reads its header. With `from_offset`, reading
    /// starts there (an offset from the time index) instead of after the
    /// header; with `limit`, it stops before that offset.
    pub fn open(
        path: &Path,
        strict: bool,
        from_offset: Option<u64>,
        limit: Option<u64>,
    ) -> io::Result<Self> {
        let mut f = File::open(path)?;
        let (link, snaplen) = read_file_header(&mut f)?;
        let mut offset = FILE_HEADER_LEN;
        if let Some(o) = from_offset
            && o > FILE_HEADER_LEN
        {
            f.seek(SeekFrom::Start(o))?;
            offset = o;
        }
        Ok(Self::with_reader(f, link, snaplen, offset, strict, limit))
    }
}

impl<R: Read> SegmentScanner<R> {
    /// A scanner over `reader`, positioned at file offset `offset` (after
    /// the header has been read).
    pub fn with_reader(
        reader: R,
        link: LinkType,
        snaplen: u32,
        offset: u64,
        strict: bool,
        limit: Option<u64>,
    ) -> Self {
        Self {
            reader,
            buf: vec![0; SCAN_BUFFER_LEN],
            start: 0,
            end: 0,
            eof: false,
            offset,
            limit: limit.unwrap_or(u64::MAX),
            link,
            snaplen,
            max_ts: None,
            strict,
            stop: None,
            cur: None,
        }
    }

    /// Why the scan ended early, if it did (after `advance` returned false).
    pub fn stop(&self) -> Option<&ScanStop> {
        self.stop.as_ref()
    }

    /// Offset of the next record to read: after the last whole valid
    /// record once the scan has ended.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            let Some(dst) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            match self.reader.read(dst) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end = (self.end + k).min(self.buf.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Moves to the next record; `Ok(false)` at the end (see [`Self::stop`]).
    pub fn advance(&mut self) -> io::Result<bool> {
        if let Some((off, _, _, s, len)) = self.cur.take() {
            self.start = s + len;
            self.offset = off + len as u64;
        }
        if self.stop.is_some() || self.offset >= self.limit {
            return Ok(false);
        }
        if !self.fill(RECORD_HEADER_LEN)? {
            if self.end > self.start {
                self.stop = Some(ScanStop::Partial);
            }
            return Ok(false);
        }
        let h = self
            .buf
            .get(self.start..self.start + RECORD_HEADER_LEN)
            .unwrap_or(&[]);
        let word = |at: usize| {
            h.get(at..at + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (sec, nsec, caplen, orig_len) = (word(0), word(4), word(8), word(12));
        let ts = i64::from(sec) * NANOS_PER_SEC + i64::from(nsec);
        let invalid = if i64::from(nsec) >= NANOS_PER_SEC {
            Some(format!("nanoseconds field {nsec} is not below 10^9"))
        } else if caplen > self.snaplen {
            Some(format!(
                "captured length {caplen} exceeds the snap length {}",
                self.snaplen
            ))
        } else if orig_len < caplen {
            Some(format!(
                "wire length {orig_len} is below the captured length {caplen}"
            ))
        } else if self.strict
            && self
                .max_ts
                .is_some_and(|m| ts < m.saturating_sub(MAX_BACKWARD_NS))
        {
            Some(format!(
                "timestamp {ts} goes back more than {MAX_BACKWARD_NS} ns"
            ))
        } else {
            None
        };
        if let Some(why) = invalid {
            self.stop = Some(ScanStop::Invalid(why));
            return Ok(false);
        }
        let len = RECORD_HEADER_LEN + caplen as usize;
        if !self.fill(len)? {
            self.stop = Some(ScanStop::Partial);
            return Ok(false);
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.cur = Some((self.offset, ts, orig_len, self.start, len));
        Ok(true)
    }

    /// The record `advance` moved to.
    pub fn current(&self) -> Option<Record<'_>> {
        let (offset, ts_ns, orig_len, s, len) = self.cur?;
        Some(Record {
            offset,
            ts_ns,
            orig_len,
            raw: self.buf.get(s..s + len)?,
        })
    }
}

/// Result of scanning a whole segment: its description, and where and why
/// the scan stopped early (the offset is the end of the last whole record).
#[derive(Debug)]
pub struct ScanResult {
    pub info: SegmentInfo,
    pub stop: Option<(u64, ScanStop)>,
}

/// Scans a whole segment, building its time index. `strict` applies the
/// crash-recovery timestamp check. A segment without records gives
/// `first_ts` from its name and `min_ts > max_ts`.
pub fn scan_segment(path: &Path, seq: u64, name_ts: i64, strict: bool) -> io::Result<ScanResult> {
    let mut sc = SegmentScanner::open(path, strict, None, None)?;
    let mut info = SegmentInfo {
        path: path.to_path_buf(),
        seq,
        link: sc.link,
        first_ts: name_ts,
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        packets: 0,
        bytes: FILE_HEADER_LEN,
        index: TimeIndex::default(),
    };
    while sc.advance()? {
        let Some(r) = sc.current() else { break };
        let max_before = (info.packets > 0).then_some(info.max_ts);
        info.index.note(info.packets, max_before, r.offset, r.ts_ns);
        if info.packets == 0 {
            info.first_ts = r.ts_ns;
        }
        info.packets += 1;
        info.min_ts = info.min_ts.min(r.ts_ns);
        info.max_ts = info.max_ts.max(r.ts_ns);
        info.bytes = r.offset + r.raw.len() as u64;
    }
    let stop = sc.stop().cloned().map(|s| (sc.offset(), s));
    Ok(ScanResult { info, stop })
}

// ----- sidecar -----

/// Writes `info`'s summary and index next to the segment (atomically:
/// temporary file, then rename).
pub fn write_sidecar(info: &SegmentInfo) -> io::Result<()> {
    let path = idx_path(&info.path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut b = Vec::with_capacity(56 + info.index.entries.len() * 24);
    b.extend_from_slice(IDX_MAGIC);
    b.extend_from_slice(&info.bytes.to_le_bytes());
    b.extend_from_slice(&info.packets.to_le_bytes());
    b.extend_from_slice(&info.first_ts.to_le_bytes());
    b.extend_from_slice(&info.min_ts.to_le_bytes());
    b.extend_from_slice(&info.max_ts.to_le_bytes());
    b.extend_from_slice(&info.link.to_linktype().to_le_bytes());
    b.extend_from_slice(&(info.index.entries.len() as u64).to_le_bytes());
    for e in &info.index.entries {
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.max_ts_before.to_le_bytes());
        b.extend_from_slice(&e.block_min_ts.to_le_bytes());
    }
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&b)?;
    }
    std::fs::rename(&tmp, &path)
}

/// Reads a sidecar index; `None` when it is missing, malformed or does not
/// describe the segment as it is now (its length changed).
pub fn read_sidecar(segment: &Path, seq: u64, file_len: u64) -> Option<SegmentInfo> {
    let b = std::fs::read(idx_path(segment)).ok()?;
    let u = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    #[expect(
        clippy::cast_possible_wrap,
        reason = "timestamps were written as i64 bit patterns"
    )]
    let i = |at: usize| -> Option<i64> { u(at).map(|v| v as i64) };
    if b.get(..8)? != IDX_MAGIC {
        return None;
    }
    let bytes = u(8)?;
    if bytes != file_len {
        return None;
    }
    let link = u32::from_le_bytes(b.get(48..52)?.try_into().ok()?);
    let count = u(52)?;
    if count > MAX_INDEX_ENTRIES || b.len() as u64 != 60 + count * 24 {
        return None;
    }
    let mut entries = Vec::with_capacity(usize::try_from(count).ok()?);
    let mut prev = 0;
    for k in 0..usize::try_from(count).ok()? {
        let at = 60 + k * 24;
        let e = IndexEntry {
            offset: u(at)?,
            max_ts_before: i(at + 8)?,
            block_min_ts: i(at + 16)?,
        };
        if e.offset < prev || e.offset >= file_len {
            return None;
        }
        prev = e.offset;
        entries.push(e);
    }
    Some(SegmentInfo {
        path: segment.to_path_buf(),
        seq,
        link: LinkType::from_linktype(link),
        first_ts: i(24)?,
        min_ts: i(32)?,
        max_ts: i(40)?,
        packets: u(16)?,
        bytes,
        index: TimeIndex { entries },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_time() {
        let a = segment_file_name(1_700_000_000_123_456_789, 7);
        let b = segment_file_name(1_800_000_000_000_000_000, 2);
        assert_eq!(a, "01700000000123456789-00000007.pcap");
        assert!(a < b);
        assert_eq!(
            parse_segment_file_name(&a),
            Some((1_700_000_000_123_456_789, 7))
        );
        assert_eq!(parse_segment_file_name("x.pcap"), None);
        assert_eq!(parse_segment_file_name(&format!("{a}.idx")), None);
    }

    #[test]
    fn byte_range_handles_out_of_order_blocks() {
        // Blocks at offsets 100, 200, 300, 400 with times that overlap by a
        // little: block 2 holds a record older than block 1's newest.
        let idx = TimeIndex {
            entries: vec![
                IndexEntry {
                    offset: 100,
                    max_ts_before: i64::MIN,
                    block_min_ts: 0,
                },
                IndexEntry {
                    offset: 200,
                    max_ts_before: 10,
                    block_min_ts: 11,
                },
                IndexEntry {
                    offset: 300,
                    max_ts_before: 20,
                    block_min_ts: 15,
                },
                IndexEntry {
                    offset: 400,
                    max_ts_before: 30,
                    block_min_ts: 31,
                },
            ],
        };
        assert_eq!(idx.byte_range(0, 5, 500), (100, 200));
        // A window from 16: block 2 has a 15 but block 1's newest is 20, so
        // reading starts at block 1 (offset 200).
        assert_eq!(idx.byte_range(16, 17, 500), (200, 400));
        assert_eq!(idx.byte_range(21, 100, 500), (300, 500));
        assert_eq!(idx.byte_range(1000, 2000, 500), (400, 500));
    }
}
