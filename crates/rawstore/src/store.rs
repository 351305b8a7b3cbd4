//! The raw store of one node: captured packets appended to rolling pcap
//! segments under `<data>/raw/<node>/`, rotated by size, age and link type,
//! deleted oldest first by total size and age, recovered after a crash.
//!
//! Called by live capture (`trawl tap` feeds every packet to
//! [`RawStore::append`]) and read by snapshots (`crate::snapshot`), which
//! take the segment list from [`RawStore::source`] in the same process or
//! from [`crate::read_node_dir`] from another one.
//!
//! Writes go through one buffer ([`StoreConfig::write_buffer_bytes`]) that
//! holds whole records only, so the file always ends on a record boundary
//! except while a `write` is in flight: after kill -9 at most the unflushed
//! buffer is lost. Time comes from the packets (this crate reads no clock):
//! segment age and retention age are measured against the newest packet.
//!
//! The time index of each segment is kept in memory while it is written and
//! saved as a sidecar `.idx` when it is closed (see `crate::segment`): a
//! rebuild by scanning on open would read the whole store (1 GiB by
//! default) before capture could start, the sidecar is a few KiB.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_packet::LinkType;
use trawl_packet::capfile::MAX_CAPLEN;

use crate::segment::{
    self, FILE_HEADER_LEN, RECORD_HEADER_LEN, ScanStop, SegmentInfo, TimeIndex, clamp_ts,
};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Smallest write buffer accepted: two records of the largest size, so that
/// a record always fits after a flush.
const MIN_WRITE_BUFFER: usize = 2 * (MAX_CAPLEN as usize + RECORD_HEADER_LEN);

/// After a segment could not be created (disk full), packets are dropped
/// for this much packet time before trying again, so that a full disk costs
/// one failed `open` per second rather than one per packet.
const CREATE_RETRY_NS: i64 = NANOS_PER_SEC;

/// How the raw store of a node rotates and retains segments. Parsed
/// strictly; every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A segment is closed once it would grow past this many bytes
    /// (default 64 MiB).
    pub segment_bytes: u64,
    /// A segment is closed once its packets span this many seconds
    /// (default 60).
    pub segment_secs: u64,
    /// Oldest segments are deleted while all segments together exceed this
    /// many bytes (default 1 GiB). The store may exceed it by up to one
    /// segment while that segment is being written.
    pub max_bytes: u64,
    /// Segments whose newest packet is older than this many seconds before
    /// the newest packet stored are deleted (default 24 h).
    pub max_age_secs: u64,
    /// Bytes buffered before a `write` (default 1 MiB, at least 512 KiB).
    pub write_buffer_bytes: usize,
    /// Longest frame kept, in bytes; longer ones are cut (default and
    /// maximum 262144).
    pub snaplen: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            segment_secs: 60,
            max_bytes: 1 << 30,
            max_age_secs: 24 * 3600,
            write_buffer_bytes: 1 << 20,
            snaplen: MAX_CAPLEN,
        }
    }
}

impl StoreConfig {
    /// Checks the values against each other.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Config(m));
        if self.segment_bytes < 64 * 1024 {
            return bad(format!(
                "segment_bytes = {} is too small; use at least 65536",
                self.segment_bytes
            ));
        }
        if self.max_bytes < 2 * self.segment_bytes {
            return bad(format!(
                "max_bytes = {} must be at least twice segment_bytes = {} so that one closed segment can be kept; lower segment_bytes or raise max_bytes",
                self.max_bytes, self.segment_bytes
            ));
        }
        if self.segment_secs == 0 || self.max_age_secs == 0 {
            return bad("segment_secs and max_age_secs must be above 0".into());
        }
        if self.write_buffer_bytes < MIN_WRITE_BUFFER {
            return bad(format!(
                "write_buffer_bytes = {} is below {MIN_WRITE_BUFFER} (two records of the largest size)",
                self.write_buffer_bytes
            ));
        }
        if self.snaplen == 0 || self.snaplen > MAX_CAPLEN {
            return bad(format!(
                "snaplen = {} is outside 1..={MAX_CAPLEN}",
                self.snaplen
            ));
        }
        Ok(())
    }
}

/// Errors of the raw store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid raw store configuration: {0}")]
    Config(String),
    #[error(
        "invalid node name {0:?}: use 1-128 letters, digits, '.', '_' or '-', not starting with '.'"
    )]
    NodeName(String),
    #[error("raw store {path}: {op}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Checks a node name: it becomes a directory name.
pub fn validate_node_name(node: &str) -> Result<(), StoreError> {
    let ok = !node.is_empty()
        && node.len() <= 128
        && !node.starts_with('.')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::NodeName(node.to_string()))
    }
}

/// What a node's raw store holds: the data boundaries of
/// `get_data_boundaries`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundaries {
    pub node: String,
    /// Oldest and newest packet time stored (ns since the epoch); `None`
    /// when the store is empty.
    pub oldest_ts: Option<i64>,
    pub newest_ts: Option<i64>,
    /// Bytes on disk and in the write buffer, headers included.
    pub bytes: u64,
    pub packets: u64,
    pub segments: u64,
    /// Packets the capture side reports as dropped (kernel drops), set with
    /// [`RawStore::set_capture_drops`].
    pub drops: u64,
    /// Packets the store lost because it could not write them (disk full,
    /// I/O errors).
    pub store_drops: u64,
    /// Write failures seen (each may lose up to one buffer of packets).
    pub write_errors: u64,
    /// Segments deleted early to free space after a disk-full error.
    pub segments_freed_for_space: u64,
}

/// The segment being written.
#[derive(Debug)]
struct Active {
    info: SegmentInfo,
    file: File,
    /// Bytes written to the file (header and whole records).
    committed: u64,
}

/// A node's segments as read by a snapshot: closed ones and the one being
/// written (flushed), oldest first.
#[derive(Clone, Debug)]
pub struct NodeSource {
    pub node: String,
    pub segments: Vec<SegmentInfo>,
}

/// The rolling raw store of one node.
pub struct RawStore {
    node: String,
    dir: PathBuf,
    cfg: StoreConfig,
    closed: VecDeque<SegmentInfo>,
    active: Option<Active>,
    next_seq: u64,
    buf: Vec<u8>,
    newest_ts: Option<i64>,
    /// Packets are dropped until this time after a failed segment create.
    retry_at: Option<i64>,
    capture_drops: u64,
    store_drops: u64,
    write_errors: u64,
    freed_for_space: u64,
    /// Test hook: writes fail with ENOSPC after this many more bytes.
    #[cfg(test)]
    fail_after: Option<u64>,
}

// By hand: the derived form would print the whole write buffer.
impl std::fmt::Debug for RawStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStore")
            .field("node", &self.node)
            .field("dir", &self.dir)
            .field(
                "segments",
                &(self.closed.len() + usize::from(self.active.is_some())),
            )
            .field("buffered", &self.buf.len())
            .field("newest_ts", &self.newest_ts)
            .finish_non_exhaustive()
    }
}

impl RawStore {
    /// Opens (creating it if needed) the store of `node` under
    /// `<data_dir>/raw/<node>/`, recovering from a crash: segments without a
    /// valid index are scanned, a partial or invalid tail is cut back to
    /// the last whole record, and writing continues in a new segment.
    pub fn open(data_dir: &Path, node: &str, cfg: StoreConfig) -> Result<Self, StoreError> {
        cfg.validate()?;
        validate_node_name(node)?;
        let dir = data_dir.join("raw").join(node);
        fs::create_dir_all(&dir).map_err(io_err(&dir, "create directory"))?;
        let segments = load_segments(&dir, true)?;
        let next_seq = segments.iter().map(|s| s.seq + 1).max().unwrap_or(1);
        let newest_ts = segments
            .iter()
            .filter(|s| s.packets > 0)
            .map(|s| s.max_ts)
            .max();
        let mut store = Self {
            node: node.to_string(),
            dir,
            buf: Vec::with_capacity(cfg.write_buffer_bytes),
            cfg,
            closed: segments.into(),
            active: None,
            next_seq,
            newest_ts,
            retry_at: None,
            capture_drops: 0,
            store_drops: 0,
            write_errors: 0,
            freed_for_space: 0,
            #[cfg(test)]
            fail_after: None,
        };
        store.enforce_retention(None);
        Ok(store)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Records the capture side's drop counter (kernel drops), reported in
    /// [`Boundaries::drops`].
    pub fn set_capture_drops(&mut self, drops: u64) {
        self.capture_drops = drops;
    }

    /// Appends one packet. `data` longer than the snap length is cut;
    /// `orig_len` is its length on the wire. Disk full is not an error: the
    /// oldest segments are deleted, the packets that could not be written
    /// are counted in [`Boundaries::store_drops`], and later packets are
    /// stored again. Other I/O errors are returned once (the packets of the
    /// failed buffer are lost and counted) and the store carries on with a
    /// new segment at the next packet.
    pub fn append(
        &mut self,
        ts_ns: i64,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> Result<(), StoreError> {
        let ts = clamp_ts(ts_ns);
        let caplen = data.len().min(self.cfg.snaplen as usize);
        let data = data.get(..caplen).unwrap_or(data);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "caplen <= snaplen <= MAX_CAPLEN"
        )]
        let caplen32 = caplen as u32;
        let orig_len = orig_len.max(caplen32);
        let rec_len = (RECORD_HEADER_LEN + caplen) as u64;

        if let Some(retry) = self.retry_at {
            if ts < retry {
                self.store_drops += 1;
                return Ok(());
            }
            self.retry_at = None;
        }
        let rotate = self.active.as_ref().is_some_and(|a| {
            a.info.link != link
                || (a.info.packets > 0 && a.info.bytes + rec_len > self.cfg.segment_bytes)
                || ts.saturating_sub(a.info.first_ts)
                    >= i64::try_from(self.cfg.segment_secs)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(NANOS_PER_SEC)
        });
        if rotate {
            self.rotate()?;
        }
        if self.active.is_none() {
            match self.start_segment(ts, link) {
                Ok(()) => {}
                Err(e) => {
                    self.store_drops += 1;
                    self.write_errors += 1;
                    self.retry_at = Some(ts.saturating_add(CREATE_RETRY_NS));
                    if is_disk_full(&e) {
                        self.free_space();
                        tracing::warn!(node = %self.node, error = %e, "Disk full: cannot create a raw segment; dropping packets for a second.");
                        return Ok(());
                    }
                    return Err(e);
                }
            }
        }
        if self.buf.len() + rec_len as usize > self.cfg.write_buffer_bytes {
            self.flush()?;
            if self.active.is_none() {
                // The flush failed on a full disk and sealed the segment;
                // this packet opens the next one.
                return self.append(ts, link, data, orig_len);
            }
        }
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        self.buf
            .extend_from_slice(&segment::record_header(ts, caplen32, orig_len));
        self.buf.extend_from_slice(data);
        let info = &mut a.info;
        let max_before = (info.packets > 0).then_some(info.max_ts);
        info.index.note(info.packets, max_before, info.bytes, ts);
        if info.packets == 0 {
            info.first_ts = ts;
        }
        info.packets += 1;
        info.min_ts = info.min_ts.min(ts);
        info.max_ts = info.max_ts.max(ts);
        info.bytes += rec_len;
        self.newest_ts = Some(self.newest_ts.map_or(ts, |n| n.max(ts)));
        Ok(())
    }

    /// Writes the buffer to the segment file (one `write`, no fsync: the
    /// data then survives the process, which is what kill -9 needs).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let Some(a) = self.active.as_mut() else {
            self.buf.clear();
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let res = write_all_hooked(
            &mut a.file,
            &self.buf,
            #[cfg(test)]
            &mut self.fail_after,
        );
        match res {
            Ok(()) => {
                a.committed += self.buf.len() as u64;
                self.buf.clear();
                Ok(())
            }
            Err(e) => self.write_failed(e),
        }
    }

    /// Closes the segment being written (flushing it and saving its index);
    /// the next packet starts a new one.
    pub fn rotate(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        self.close_segment(a.info);
        self.enforce_retention(None);
        Ok(())
    }

    /// Flushes and closes the store.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.rotate()
    }

    /// Deletes segments beyond the size and age limits, oldest first; age
    /// is counted back from `now_ns` if given (a caller with a clock, such
    /// as `trawl tap` when capture is idle), else from the newest packet.
    /// Returns how many segments were deleted. The segment being written is
    /// never deleted.
    pub fn enforce_retention(&mut self, now_ns: Option<i64>) -> usize {
        let max_age = i64::try_from(self.cfg.max_age_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(NANOS_PER_SEC);
        let now = now_ns.or(self.newest_ts);
        let mut deleted = 0;
        while let Some(oldest) = self.closed.front() {
            let too_big = self.total_bytes() > self.cfg.max_bytes;
            let too_old = now.is_some_and(|n| oldest.max_ts < n.saturating_sub(max_age));
            if !(too_big || too_old || oldest.packets == 0) {
                break;
            }
            if let Some(s) = self.closed.pop_front() {
                remove_segment(&s);
                deleted += 1;
            }
        }
        deleted
    }

    /// The data boundaries of this node.
    pub fn boundaries(&self) -> Boundaries {
        let all = || {
            self.closed
                .iter()
                .chain(self.active.iter().map(|a| &a.info))
                .filter(|s| s.packets > 0)
        };
        Boundaries {
            node: self.node.clone(),
            oldest_ts: all().map(|s| s.min_ts).min(),
            newest_ts: all().map(|s| s.max_ts).max(),
            bytes: self.total_bytes(),
            packets: all().map(|s| s.packets).sum(),
            segments: all().count() as u64,
            drops: self.capture_drops,
            store_drops: self.store_drops,
            write_errors: self.write_errors,
            segments_freed_for_space: self.freed_for_space,
        }
    }

    /// Flushes and returns the segments for a snapshot, oldest first (the
    /// one being written included, as far as flushed).
    pub fn source(&mut self) -> Result<NodeSource, StoreError> {
        self.flush()?;
        Ok(NodeSource {
            node: self.node.clone(),
            segments: self
                .closed
                .iter()
                .chain(self.active.iter().map(|a| &a.info))
                .filter(|s| s.packets > 0)
                .cloned()
                .collect(),
        })
    }

    fn total_bytes(&self) -> u64 {
        self.closed.iter().map(|s| s.bytes).sum::<u64>()
            + self.active.as_ref().map_or(0, |a| a.info.bytes)
    }

    fn start_segment(&mut self, ts: i64, link: LinkType) -> Result<(), StoreError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(segment::segment_file_name(ts, seq));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "create segment"))?;
        let header = segment::file_header(link, self.cfg.snaplen);
        if let Err(e) = write_all_hooked(
            &mut file,
            &header,
            #[cfg(test)]
            &mut self.fail_after,
        ) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(StoreError::Io {
                path,
                op: "write segment header",
                source: e,
            });
        }
        self.active = Some(Active {
            info: SegmentInfo {
                path,
                seq,
                link,
                first_ts: ts,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                packets: 0,
                bytes: FILE_HEADER_LEN,
                index: TimeIndex::default(),
            },
            file,
            committed: FILE_HEADER_LEN,
        });
        Ok(())
    }

    fn close_segment(&mut self, info: SegmentInfo) {
        if info.packets == 0 {
            remove_segment(&info);
            return;
        }
        if let Err(e) = segment::write_sidecar(&info) {
            // The index is a cache: the next open rebuilds it by scanning.
            tracing::warn!(segment = %info.path.display(), error = %e, "Cannot write the segment index; it will be rebuilt on the next open.");
        }
        self.closed.push_back(info);
    }

    /// A write failed: the file may hold part of the buffer. Cut it back to
    /// the last whole record written, rebuild the segment's description from
    /// the file, close it, and count what was lost; on a full disk also
    /// delete the oldest segments.
    fn write_failed(&mut self, e: io::Error) -> Result<(), StoreError> {
        self.write_errors += 1;
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        let lost = a.info.packets;
        let _ = a.file.set_len(a.committed);
        drop(a.file);
        let path = a.info.path.clone();
        let kept = match segment::scan_segment(&path, a.info.seq, a.info.first_ts, false) {
            Ok(r) => r.info,
            Err(_) => {
                remove_segment(&a.info);
                SegmentInfo {
                    packets: 0,
                    ..a.info
                }
            }
        };
        self.store_drops += lost.saturating_sub(kept.packets);
        self.buf.clear();
        let full = e.kind() == io::ErrorKind::StorageFull;
        self.close_segment(kept);
        if full {
            tracing::warn!(node = %self.node, "Disk full while writing raw segments; deleting the oldest segments.");
            self.free_space();
            Ok(())
        } else {
            Err(StoreError::Io {
                path,
                op: "write segment",
                source: e,
            })
        }
    }

    /// Deletes the oldest closed segments until an eighth of the store (at
    /// least two write buffers) is freed: enough that the next several
    /// flushes fit, few enough that most of the window survives.
    fn free_space(&mut self) {
        let want = (self.total_bytes() / 8).max(2 * self.cfg.write_buffer_bytes as u64);
        let mut freed = 0;
        while freed < want && !self.closed.is_empty() {
            if let Some(s) = self.closed.pop_front() {
                freed += s.bytes;
                remove_segment(&s);
                self.freed_for_space += 1;
            }
        }
    }
}

impl Drop for RawStore {
    fn drop(&mut self) {
        if self.active.is_some()
            && let Err(e) = self.rotate()
        {
            tracing::warn!(node = %self.node, error = %e, "Could not flush the raw store on close.");
        }
    }
}

fn is_disk_full(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
}

fn write_all_hooked(
    f: &mut File,
    bytes: &[u8],
    #[cfg(test)] fail_after: &mut Option<u64>,
) -> io::Result<()> {
    #[cfg(test)]
    if let Some(left) = fail_after.as_mut() {
        if (bytes.len() as u64) > *left {
            // Write part of it, as a real full disk does.
            let part = bytes.get(..*left as usize).unwrap_or(bytes);
            f.write_all(part)?;
            // One failure, then the disk has room again.
            *fail_after = None;
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        *left -= bytes.len() as u64;
    }
    f.write_all(bytes)
}

fn remove_segment(s: &SegmentInfo) {
    for p in [s.path.clone(), segment::idx_path(&s.path)] {
        if let Err(e) = fs::remove_file(&p)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %p.display(), error = %e, "Cannot delete a raw segment file.");
        }
    }
}

/// Reads the segments of a node directory, oldest first. With `repair`
/// (the store's owner), a segment whose last record is partial or invalid
/// is cut back to its last whole record and its index saved; without it
/// (a reader next to a running writer) the tail is only skipped.
pub(crate) fn load_segments(dir: &Path, repair: bool) -> Result<Vec<SegmentInfo>, StoreError> {
    let mut found = Vec::new();
    let rd = fs::read_dir(dir).map_err(io_err(dir, "list directory"))?;
    for entry in rd {
        let entry = entry.map_err(io_err(dir, "list directory"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if repair && name.ends_with(".idx.tmp") {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        if let Some((ts, seq)) = segment::parse_segment_file_name(name) {
            found.push((ts, seq, entry.path()));
        }
    }
    found.sort_by_key(|&(ts, seq, _)| (ts, seq));
    let mut out = Vec::with_capacity(found.len());
    for (ts, seq, path) in found {
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path, "stat segment")(e)),
        };
        if let Some(info) = segment::read_sidecar(&path, seq, len) {
            out.push(info);
            continue;
        }
        if len < FILE_HEADER_LEN {
            if repair {
                tracing::warn!(segment = %path.display(), "Deleting a segment cut inside its file header.");
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let scanned = match segment::scan_segment(&path, seq, ts, true) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(segment = %path.display(), error = %e, "Skipping a file that is not a trawl segment.");
                continue;
            }
            Err(e) => return Err(io_err(&path, "scan segment")(e)),
        };
        let info = scanned.info;
        if repair {
            if let Some((at, why)) = &scanned.stop {
                let why = match why {
                    ScanStop::Partial => "a partial record".to_string(),
                    ScanStop::Invalid(w) => format!("an invalid record ({w})"),
                };
                tracing::warn!(segment = %path.display(), offset = at, reason = %why, "Recovering a raw segment: cutting it back to its last whole record.");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path, "open segment for recovery"))?;
                f.set_len(*at)
                    .map_err(io_err(&path, "truncate segment for recovery"))?;
            }
            if info.packets == 0 {
                remove_segment(&info);
                continue;
            }
            if let Err(e) = segment::write_sidecar(&info) {
                tracing::warn!(segment = %path.display(), error = %e, "Cannot write the segment index.");
            }
        } else if info.packets == 0 {
            continue;
        }
        out.push(info);
    }
    Ok(out)
}

/// The segments of `<data_dir>/raw/<node>/` for a snapshot taken by a
/// process that does not own the store (a CLI beside a running `trawl tap`,
/// or after it stopped). Read-only: a partial last record is skipped.
pub fn read_node_dir(data_dir: &Path, node: &str) -> Result<NodeSource, StoreError> {
    validate_node_name(node)?;
    let dir = data_dir.join("raw").join(node);
    Ok(NodeSource {
        node: node.to_string(),
        segments: load_segments(&dir, false)?,
    })
}

/// The nodes that have a raw store under `<data_dir>/raw/`, sorted.
pub fn list_nodes(data_dir: &Path) -> Result<Vec<String>, StoreError> {
    let dir = data_dir.join("raw");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir, "list directory")(e)),
    };
    let mut nodes: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| validate_node_name(n).is_ok())
        .collect();
    nodes.sort();
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::SegmentScanner;
    use crate::testutil::{T0, frame, read_file, read_store, segment_files};

    const MS: i64 = 1_000_000;

    fn small_cfg() -> StoreConfig {
        StoreConfig {
            segment_bytes: 64 * 1024,
            max_bytes: 1 << 30,
            write_buffer_bytes: MIN_WRITE_BUFFER,
            ..StoreConfig::default()
        }
    }

    fn fill(store: &mut RawStore, range: std::ops::Range<u64>, step_ns: i64) {
        for i in range {
            let f = frame(i);
            store
                .append(
                    T0 + i as i64 * step_ns,
                    LinkType::Ethernet,
                    &f,
                    f.len() as u32 + 4,
                )
                .unwrap();
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_every_packet_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        fill(&mut s, 0..3000, MS);
        s.flush().unwrap();
        let b = s.boundaries();
        assert_eq!(b.packets, 3000);
        assert_eq!(b.oldest_ts, Some(T0));
        assert_eq!(b.newest_ts, Some(T0 + 2999 * MS));
        drop(s);
        let files = segment_files(&tmp.path().join("raw/n1"));
        // ~190 bytes a record on average: ~570 KB, so at least 8 segments.
        assert!(files.len() >= 8, "{} segments", files.len());
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 64 * 1024);
            assert!(segment::idx_path(f).is_file(), "no index for {f:?}");
        }
        let got = read_store(tmp.path(), "n1");
        assert_eq!(got.len(), 3000);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.0, T0 + i as i64 * MS);
            assert_eq!(p.2, frame(i as u64));
            assert_eq!(p.3, p.2.len() as u32 + 4);
        }
    }

    #[test]
    fn rotates_by_age_and_by_link_type() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            segment_secs: 1,
            ..small_cfg()
        };
        let mut s = RawStore::open(tmp.path(), "n1", cfg).unwrap();
        // 10 packets 300 ms apart: 3 s of traffic, segments of at most 1 s.
        fill(&mut s, 0..10, 300 * MS);
        s.append(T0 + 3000 * MS, LinkType::Raw, &[0x45; 20], 20)
            .unwrap();
        s.append(T0 + 3001 * MS, LinkType::Raw, &[0x45; 20], 20)
            .unwrap();
        drop(s);
        let files = segment_files(&tmp.path().join("raw/n1"));
        let per_file: Vec<Vec<_>> = files.iter().map(|f| read_file(f)).collect();
        let sizes: Vec<usize> = per_file.iter().map(Vec::len).collect();
        // 0-900 ms, 1200-2100, 2400-2700, then the raw IP pair.
        assert_eq!(sizes, vec![4, 4, 2, 2], "{files:?}");
        for pkts in &per_file {
            let span = pkts.last().unwrap().0 - pkts[0].0;
            assert!(span < 1000 * MS);
            assert!(pkts.iter().all(|p| p.1 == pkts[0].1));
        }
        assert_eq!(per_file[3][0].1, LinkType::Raw);
    }

    #[test]
    fn retention_by_size_deletes_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            max_bytes: 256 * 1024,
            ..small_cfg()
        };
        let mut s = RawStore::open(tmp.path(), "n1", cfg).unwrap();
        fill(&mut s, 0..10_000, MS);
        let b = s.boundaries();
        // At most the limit plus the segment being written.
        assert!(b.bytes <= 256 * 1024 + 64 * 1024, "{b:?}");
        assert_eq!(b.newest_ts, Some(T0 + 9999 * MS));
        drop(s);
        let got = read_store(tmp.path(), "n1");
        // What is left is a suffix of what was written: oldest went first.
        let first = ((got[0].0 - T0) / MS) as u64;
        assert!(first > 0);
        assert_eq!(got.len() as u64, 10_000 - first);
        assert_eq!(got.last().unwrap().2, frame(9999));
    }

    #[test]
    fn retention_by_age() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            max_age_secs: 10,
            segment_secs: 1,
            ..small_cfg()
        };
        let mut s = RawStore::open(tmp.path(), "n1", cfg).unwrap();
        // 60 s of traffic, 100 ms apart.
        fill(&mut s, 0..600, 100 * MS);
        s.flush().unwrap();
        let b = s.boundaries();
        let newest = b.newest_ts.unwrap();
        let oldest = b.oldest_ts.unwrap();
        // Retention runs when a segment closes: segments whose newest packet
        // is within 10 s of the newest closed one are kept, so the store
        // spans at most 10 s plus two segments (1 s each).
        assert!(newest - oldest <= 12_000 * MS, "{b:?}");
        assert!(newest - oldest >= 9_000 * MS, "{b:?}");
        // An external clock far ahead deletes every closed segment.
        s.enforce_retention(Some(newest + 3600 * 1_000 * MS));
        assert_eq!(s.boundaries().segments, 1);
    }

    #[test]
    fn reopen_reads_indexes_and_continues_in_a_new_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        fill(&mut s, 0..1000, MS);
        let before = {
            s.flush().unwrap();
            s.boundaries()
        };
        s.close().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        assert_eq!(s.boundaries(), before);
        let n_files = segment_files(&tmp.path().join("raw/n1")).len();
        fill(&mut s, 1000..1010, MS);
        drop(s);
        let files = segment_files(&tmp.path().join("raw/n1"));
        assert_eq!(files.len(), n_files + 1);
        assert_eq!(read_store(tmp.path(), "n1").len(), 1010);
        // A stale index (segment changed behind its back) is ignored.
        let last = &files[files.len() - 2];
        let len = std::fs::metadata(last).unwrap().len();
        let f = OpenOptions::new().write(true).open(last).unwrap();
        f.set_len(len - 1).unwrap();
        let s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        assert_eq!(s.boundaries().packets, 1009);
    }

    #[test]
    fn time_index_finds_window_starts_without_reading_from_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
            ..StoreConfig::default()
        };
        let mut s = RawStore::open(tmp.path(), "n1", cfg).unwrap();
        // 20 000 small packets with jitter: every 7th arrives 3 ms late.
        let mut sent = Vec::new();
        for i in 0..20_000u64 {
            let ts = T0 + i as i64 * MS - if i % 7 == 0 { 3 * MS } else { 0 };
            s.append(ts, LinkType::Ethernet, &[i as u8; 60], 60)
                .unwrap();
            sent.push(ts);
        }
        let src = s.source().unwrap();
        assert_eq!(src.segments.len(), 1);
        let seg = &src.segments[0];
        assert_eq!(seg.index.entries.len(), 20_000usize.div_ceil(4096));
        for (from, to) in [
            (T0, T0 + 10 * MS),
            (T0 + 5000 * MS, T0 + 5001 * MS),
            (T0 + 8190 * MS, T0 + 12_300 * MS),
            (T0 + 19_990 * MS, T0 + 30_000 * MS),
            (T0 - 100 * MS, T0 + 1),
        ] {
            let (a, b) = seg.index.byte_range(from, to, seg.bytes);
            let mut sc = SegmentScanner::open(&seg.path, false, Some(a), Some(b)).unwrap();
            let mut got = Vec::new();
            while sc.advance().unwrap() {
                let r = sc.current().unwrap();
                if r.ts_ns >= from && r.ts_ns < to {
                    got.push(r.ts_ns);
                }
            }
            let want: Vec<i64> = sent
                .iter()
                .copied()
                .filter(|t| *t >= from && *t < to)
                .collect();
            assert_eq!(got, want, "window {from}..{to}");
            // Starts in the block of the window's start, not at the top.
            if from >= T0 + 8190 * MS {
                assert!(a > FILE_HEADER_LEN);
            }
        }
    }

    #[test]
    fn recovers_from_a_cut_at_every_byte_of_the_last_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        fill(&mut s, 0..50, MS);
        s.flush().unwrap();
        let seg = s.source().unwrap().segments[0].clone();
        let batch1_end = seg.bytes;
        // The last batch: 5 records, ~1 000 byte offsets to cut at.
        fill(&mut s, 50..55, MS);
        s.flush().unwrap();
        let full = std::fs::read(&seg.path).unwrap();
        drop(s);
        // Record boundaries of the second batch.
        let mut ends = vec![batch1_end];
        for i in 50..55 {
            let last = *ends.last().unwrap();
            ends.push(last + 16 + frame(i).len() as u64);
        }
        assert_eq!(*ends.last().unwrap(), full.len() as u64);
        let name = seg.path.file_name().unwrap();
        for cut in batch1_end..=full.len() as u64 {
            let d = tempfile::tempdir().unwrap();
            let dir = d.path().join("raw/n1");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &full[..cut as usize]).unwrap();
            let s = RawStore::open(d.path(), "n1", small_cfg()).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            let want = 50 + whole;
            assert_eq!(s.boundaries().packets, want as u64, "cut at {cut}");
            drop(s);
            let got = read_store(d.path(), "n1");
            assert_eq!(got.len(), want, "cut at {cut}");
            assert_eq!(got.last().unwrap().2, frame(want as u64 - 1));
        }
        // A tail of zeros (a file extended but never written) is cut too.
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("raw/n1");
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = full.clone();
        bytes.extend_from_slice(&[0u8; 4096]);
        std::fs::write(dir.join(name), &bytes).unwrap();
        let s = RawStore::open(d.path(), "n1", small_cfg()).unwrap();
        assert_eq!(s.boundaries().packets, 55);
        assert_eq!(
            std::fs::metadata(dir.join(name)).unwrap().len(),
            full.len() as u64
        );
    }

    /// The writer killed by `crash_kill9_keeps_every_flushed_record`: it
    /// appends forever, flushing every 100 packets and then printing how
    /// many packets are flushed.
    #[test]
    #[ignore = "not a test on its own: crash_kill9_keeps_every_flushed_record runs it (--ignored --exact, TRAWL_CRASH_DIR set) as the writer it kills"]
    fn crash_child_writer() {
        let Ok(dir) = std::env::var("TRAWL_CRASH_DIR") else {
            panic!("run only by crash_kill9_keeps_every_flushed_record");
        };
        let mut s = RawStore::open(Path::new(&dir), "n1", small_cfg()).unwrap();
        let mut out = io::stdout().lock();
        for i in 0u64.. {
            let f = frame(i);
            s.append(T0 + i as i64 * MS, LinkType::Ethernet, &f, f.len() as u32)
                .unwrap();
            if i % 100 == 99 {
                s.flush().unwrap();
                writeln!(out, "flushed {}", i + 1).unwrap();
                out.flush().unwrap();
            }
        }
    }

    #[test]
    fn crash_kill9_keeps_every_flushed_record() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::tests::crash_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TRAWL_CRASH_DIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut flushed = 0u64;
        while flushed < 20_000 {
            let line = lines.next().unwrap().unwrap();
            if let Some(n) = line.strip_prefix("flushed ") {
                flushed = n.parse().unwrap();
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        let b = s.boundaries();
        assert!(b.packets >= flushed, "{b:?} < {flushed}");
        drop(s);
        let got = read_store(tmp.path(), "n1");
        assert_eq!(got.len() as u64, b.packets);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.0, T0 + i as i64 * MS);
            assert_eq!(p.2, frame(i as u64), "packet {i}");
        }
        assert_eq!(b.newest_ts, Some(T0 + (b.packets as i64 - 1) * MS));
    }

    #[test]
    fn disk_full_drops_oldest_counts_and_goes_on_injected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        fill(&mut s, 0..2000, MS);
        s.flush().unwrap();
        let before = s.boundaries();
        // The next write stores 1000 bytes and then fails with ENOSPC.
        s.fail_after = Some(1000);
        fill(&mut s, 2000..4000, MS);
        s.flush().unwrap();
        let b = s.boundaries();
        assert_eq!(b.write_errors, 1, "{b:?}");
        assert!(b.segments_freed_for_space >= 1, "{b:?}");
        assert!(b.store_drops > 0, "{b:?}");
        assert_eq!(b.newest_ts, Some(T0 + 3999 * MS));
        assert!(b.oldest_ts > before.oldest_ts);
        drop(s);
        // Everything left on disk reads back whole.
        let got = read_store(tmp.path(), "n1");
        assert_eq!(got.len() as u64, b.packets);
        for p in &got {
            let i = ((p.0 - T0) / MS) as u64;
            assert_eq!(p.2, frame(i));
        }
    }

    #[test]
    fn disk_full_on_a_real_tmpfs() {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: disk_full_on_a_real_tmpfs: cannot mount a tmpfs (needs root)");
            return;
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _guard = Unmount(mnt.clone());
        let cfg = StoreConfig {
            segment_bytes: 128 * 1024,
            ..small_cfg()
        };
        let mut s = RawStore::open(&mnt, "n1", cfg).unwrap();
        // ~9 MB into a 2 MiB file system.
        fill(&mut s, 0..50_000, MS);
        s.flush().unwrap();
        let b = s.boundaries();
        assert!(b.write_errors >= 1, "{b:?}");
        assert!(b.segments_freed_for_space >= 1, "{b:?}");
        assert!(b.store_drops > 0, "{b:?}");
        assert_eq!(b.newest_ts, Some(T0 + 49_999 * MS));
        drop(s);
        let got = read_store(&mnt, "n1");
        assert!(!got.is_empty());
        for p in &got {
            let i = ((p.0 - T0) / MS) as u64;
            assert_eq!(p.2, frame(i));
        }
    }

    #[test]
    fn config_and_node_names_are_checked() {
        let bad = StoreConfig {
            max_bytes: 100 << 20,
            ..StoreConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("twice segment_bytes"), "{e}");
        assert!(validate_node_name("../etc").is_err());
        assert!(validate_node_name("node-1.example").is_ok());
        let cfg: StoreConfig = serde_json::from_str(r#"{"max_bytes": 4294967296}"#).unwrap();
        assert_eq!(cfg.segment_bytes, 64 << 20);
        assert!(serde_json::from_str::<StoreConfig>(r#"{"max_byte": 1}"#).is_err());
    }
}
