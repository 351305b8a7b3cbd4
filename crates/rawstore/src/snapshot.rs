//! Snapshots: the packets of a time window, copied out of the raw stores of
//! one or more nodes (or imported from a capture file) into an immutable
//! directory `<data>/snapshots/<id>/` with a `manifest.json` and one pcap
//! file per source segment under `nodes/<node>/`.
//!
//! Called by `trawl snapshot …`, `trawl import` and the hub API; read by
//! indexing and by [`crate::export`]. A snapshot is built in a hidden
//! `.creating-<id>` directory and renamed into place when complete, so a
//! reader sees either nothing (or status `creating`) or a whole snapshot;
//! its files are then made read-only. If creation fails, the directory is
//! kept with status `failed` and the error, and no packet files. Creation
//! is two steps for callers that run it as a job (the hub API):
//! [`begin_snapshot`] claims the id (the caller's choice, or a new one) and
//! writes the `creating` manifest, [`PendingSnapshot::fill`] copies the
//! packets and reports progress per segment.
//!
//! Segments fully inside the window are copied whole (`copy_file_range`
//! through `std::io::copy`); the ones cut by the window's edges are read
//! from the time index's byte range and filtered record by record, so the
//! snapshot holds exactly the packets with `from <= ts < to`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_packet::capfile::MAX_CAPLEN;
use trawl_packet::{CaptureReader, LinkType};

use crate::segment::{self, SegmentInfo, SegmentScanner};
use crate::store::{NodeSource, StoreError, validate_node_name};
use crate::window::{Window, format_time};

/// Version of the manifest's layout; readers refuse newer versions.
pub const MANIFEST_FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const CREATING_PREFIX: &str = ".creating-";
/// Largest manifest read: one entry per segment is ~200 bytes, so 64 MiB
/// covers hundreds of thousands of segments; a bigger file is not ours.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Output buffer of a snapshot file: big enough that writes are few.
const WRITE_BUFFER: usize = 1 << 20;

/// Where a snapshot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    Creating,
    Ready,
    Failed,
}

/// One packet file of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    /// Path relative to the snapshot directory (`nodes/<node>/<name>.pcap`).
    pub path: String,
    /// LINKTYPE_ number of its frames.
    pub link: u32,
    pub packets: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// One node's part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotNode {
    pub node: String,
    pub packets: u64,
    pub bytes: u64,
    pub oldest_ts: Option<i64>,
    pub newest_ts: Option<i64>,
    /// Ordered by their first packet.
    pub files: Vec<SnapshotFile>,
}

/// `manifest.json` of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    pub format: u32,
    pub id: String,
    pub name: String,
    pub status: SnapshotStatus,
    /// Half-open `[from_ns, to_ns)`.
    pub window: Window,
    /// Creation time, ns and RFC 3339.
    pub created_ns: i64,
    pub created: String,
    /// `raw` (from raw stores) or `import:<file name>`.
    pub source: String,
    pub packets: u64,
    /// Bytes of the packet files, headers included.
    pub bytes: u64,
    pub nodes: Vec<SnapshotNode>,
    /// Things the reader should know (segments gone to retention, a damaged
    /// import cut short).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why creation failed (status `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A snapshot on disk: its directory and manifest.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub manifest: SnapshotManifest,
}

/// What to snapshot from raw stores.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    pub name: String,
    pub window: Window,
    /// Creation time (ns), from the caller's clock: it dates the snapshot
    /// and starts its id.
    pub created_ns: i64,
}

/// How far the creation of a snapshot is: the segments (and their bytes)
/// the window covers, and how many of them are copied so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProgress {
    pub segments_done: u64,
    pub segments_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// How to import a capture file.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    pub name: String,
    /// Node the packets are filed under (e.g. `import` or the host that
    /// captured them).
    pub node: String,
    pub created_ns: i64,
}

/// Errors of snapshot operations.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0:?} not found; `trawl snapshot list` shows the ids")]
    NotFound(String),
    #[error(
        "invalid snapshot id {0:?}: 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'"
    )]
    BadId(String),
    #[error("snapshot {0:?} exists already; choose another id or delete it first")]
    Exists(String),
    #[error("snapshot {0:?} is being created; delete it once it is ready or failed")]
    Creating(String),
    #[error("{path}: {op}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: invalid manifest: {msg}")]
    Manifest { path: PathBuf, msg: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Capture(#[from] trawl_packet::CaptureError),
    #[error("node {0:?} is given twice; list each node once")]
    DuplicateNode(String),
    #[error("{0}: holds no packets; nothing to import")]
    EmptyImport(PathBuf),
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The directory that holds all snapshots.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// A new snapshot id: creation time (UTC, to the millisecond, so ids sort by
/// time) and 24 random bits, e.g. `20261128T173744.123Z-3fa9c1`.
pub fn new_snapshot_id(created_ns: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // std's RandomState is seeded randomly per process; hashing a counter
    // and the pid through it gives distinct, unpredictable suffixes without
    // a dependency on a random number crate.
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_i64(created_ns);
    let suffix = h.finish() & 0xff_ffff;
    let time = jiff::Timestamp::from_nanosecond(i128::from(created_ns))
        .map(|t| t.strftime("%Y%m%dT%H%M%S%.3fZ").to_string())
        .unwrap_or_else(|_| format!("{created_ns:020}"));
    format!("{time}-{suffix:06x}")
}

/// Checks that an id names a directory directly under `snapshots/`.
fn check_id(id: &str) -> Result<(), SnapshotError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::BadId(id.to_string()))
    }
}

/// Writes one snapshot packet file: the segment header, then records.
struct FileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    entry: SnapshotFile,
}

impl FileWriter {
    fn create(
        dir: &Path,
        rel_dir: &str,
        name: &str,
        link: LinkType,
    ) -> Result<Self, SnapshotError> {
        let path = dir.join(rel_dir).join(name);
        let f = File::create(&path).map_err(io_err(&path, "create snapshot file"))?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, f);
        let header = segment::file_header(link, MAX_CAPLEN);
        out.write_all(&header)
            .map_err(io_err(&path, "write snapshot file"))?;
        Ok(Self {
            path,
            entry: SnapshotFile {
                path: format!("{rel_dir}/{name}"),
                link: link.to_linktype(),
                packets: 0,
                bytes: segment::FILE_HEADER_LEN,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
            },
            out,
        })
    }

    /// Appends a record as stored (header and frame).
    fn record(&mut self, ts: i64, raw: &[u8]) -> Result<(), SnapshotError> {
        self.out
            .write_all(raw)
            .map_err(io_err(&self.path, "write snapshot file"))?;
        let e = &mut self.entry;
        e.packets += 1;
        e.bytes += raw.len() as u64;
        e.min_ts = e.min_ts.min(ts);
        e.max_ts = e.max_ts.max(ts);
        Ok(())
    }

    /// Finishes the file; `None` (and the file removed) when it is empty.
    fn finish(self) -> Result<Option<SnapshotFile>, SnapshotError> {
        let FileWriter { path, out, entry } = self;
        out.into_inner()
            .map_err(|e| SnapshotError::Io {
                path: path.clone(),
                op: "write snapshot file",
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(io_err(&path, "sync snapshot file"))?;
        if entry.packets == 0 {
            fs::remove_file(&path).map_err(io_err(&path, "remove empty snapshot file"))?;
            return Ok(None);
        }
        Ok(Some(entry))
    }
}

fn node_entry(node: &str, files: Vec<SnapshotFile>) -> SnapshotNode {
    let real = || files.iter().filter(|f| f.packets > 0);
    SnapshotNode {
        node: node.to_string(),
        packets: real().map(|f| f.packets).sum(),
        bytes: real().map(|f| f.bytes).sum(),
        oldest_ts: real().map(|f| f.min_ts).min(),
        newest_ts: real().map(|f| f.max_ts).max(),
        files,
    }
}

/// A snapshot directory being built.
#[derive(Debug)]
struct Builder {
    tmp: PathBuf,
    dir: PathBuf,
    manifest: SnapshotManifest,
}

impl Builder {
    fn start(
        data_dir: &Path,
        name: &str,
        window: Window,
        created_ns: i64,
        source: String,
        chosen: Option<&str>,
    ) -> Result<Self, SnapshotError> {
        if let Some(id) = chosen {
            check_id(id)?;
        }
        let root = snapshots_dir(data_dir);
        fs::create_dir_all(&root).map_err(io_err(&root, "create directory"))?;
        // A collision of generated ids needs the same millisecond and 24
        // random bits; retry rather than overwrite. A chosen id that is
        // taken is the caller's conflict.
        let mut id = chosen.map_or_else(|| new_snapshot_id(created_ns), str::to_owned);
        let mut tries = 0;
        loop {
            let dir = root.join(&id);
            let tmp = root.join(format!("{CREATING_PREFIX}{id}"));
            // `create_dir` is the atomic claim: of two creators of one id,
            // one gets it.
            let claimed = if dir.exists() {
                false
            } else {
                match fs::create_dir(&tmp) {
                    Ok(()) => true,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(io_err(&tmp, "create snapshot directory")(e)),
                }
            };
            if !claimed && chosen.is_some() {
                return Err(SnapshotError::Exists(id));
            }
            if claimed {
                let manifest = SnapshotManifest {
                    format: MANIFEST_FORMAT,
                    id,
                    name: name.to_string(),
                    status: SnapshotStatus::Creating,
                    window,
                    created_ns,
                    created: format_time(created_ns),
                    source,
                    packets: 0,
                    bytes: 0,
                    nodes: Vec::new(),
                    warnings: Vec::new(),
                    error: None,
                };
                let b = Self { tmp, dir, manifest };
                b.write_manifest()?;
                return Ok(b);
            }
            tries += 1;
            if tries > 8 {
                return Err(SnapshotError::Io {
                    path: tmp,
                    op: "create snapshot directory",
                    source: io::Error::from(io::ErrorKind::AlreadyExists),
                });
            }
            id = new_snapshot_id(created_ns);
        }
    }

    fn node_dir(&self, node: &str) -> Result<String, SnapshotError> {
        validate_node_name(node)?;
        let rel = format!("nodes/{node}");
        let p = self.tmp.join(&rel);
        fs::create_dir_all(&p).map_err(io_err(&p, "create directory"))?;
        Ok(rel)
    }

    fn write_manifest(&self) -> Result<(), SnapshotError> {
        let p = self.tmp.join(MANIFEST);
        let mut json =
            serde_json::to_vec_pretty(&self.manifest).map_err(|e| SnapshotError::Manifest {
                path: p.clone(),
                msg: e.to_string(),
            })?;
        json.push(b'\n');
        let part = self.tmp.join("manifest.json.part");
        fs::write(&part, &json).map_err(io_err(&part, "write manifest"))?;
        fs::rename(&part, &p).map_err(io_err(&p, "write manifest"))
    }

    /// Seals the snapshot: totals, status ready, files read-only, rename.
    fn finish(mut self, nodes: Vec<SnapshotNode>) -> Result<Snapshot, SnapshotError> {
        self.manifest.packets = nodes.iter().map(|n| n.packets).sum();
        self.manifest.bytes = nodes.iter().map(|n| n.bytes).sum();
        self.manifest.nodes = nodes;
        self.manifest.status = SnapshotStatus::Ready;
        self.write_manifest()?;
        make_read_only(&self.tmp)?;
        fs::rename(&self.tmp, &self.dir)
            .map_err(io_err(&self.dir, "rename snapshot into place"))?;
        Ok(Snapshot {
            dir: self.dir,
            manifest: self.manifest,
        })
    }

    /// Keeps the snapshot as `failed` with the error and no packet files.
    fn fail(mut self, err: &SnapshotError) {
        let _ = fs::remove_dir_all(self.tmp.join("nodes"));
        self.manifest.status = SnapshotStatus::Failed;
        self.manifest.error = Some(err.to_string());
        self.manifest.nodes.clear();
        if self.write_manifest().is_ok() {
            let _ = fs::rename(&self.tmp, &self.dir);
        }
    }
}

pub(crate) fn make_read_only(dir: &Path) -> Result<(), SnapshotError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list directory"))? {
        let entry = entry.map_err(io_err(dir, "list directory"))?;
        let p = entry.path();
        let ft = entry.file_type().map_err(io_err(&p, "stat"))?;
        if ft.is_dir() {
            make_read_only(&p)?;
        } else {
            let mut perm = entry.metadata().map_err(io_err(&p, "stat"))?.permissions();
            perm.set_readonly(true);
            fs::set_permissions(&p, perm).map_err(io_err(&p, "make read-only"))?;
        }
    }
    Ok(())
}

/// Copies the records of `seg` with times in `window` into `w`.
fn copy_trimmed(
    seg: &SegmentInfo,
    window: Window,
    w: &mut FileWriter,
) -> Result<(), SnapshotError> {
    let (start, end) = seg
        .index
        .byte_range(window.from_ns, window.to_ns, seg.bytes);
    let mut sc = SegmentScanner::open(&seg.path, false, Some(start), Some(end))
        .map_err(io_err(&seg.path, "open segment"))?;
    while sc.advance().map_err(io_err(&seg.path, "read segment"))? {
        if let Some(r) = sc.current()
            && window.contains(r.ts_ns)
        {
            w.record(r.ts_ns, r.raw)?;
        }
    }
    Ok(())
}

/// Copies a segment wholly inside the window, up to the length its
/// description covers (a running writer may have appended since).
fn copy_whole(seg: &SegmentInfo, dest: &Path) -> Result<(), SnapshotError> {
    let src = File::open(&seg.path).map_err(io_err(&seg.path, "open segment"))?;
    let mut out = File::create(dest).map_err(io_err(dest, "create snapshot file"))?;
    let n = io::copy(&mut src.take(seg.bytes), &mut out).map_err(io_err(dest, "copy segment"))?;
    if n != seg.bytes {
        return Err(SnapshotError::Io {
            path: seg.path.clone(),
            op: "copy segment",
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "segment shrank while copying"),
        });
    }
    out.sync_all().map_err(io_err(dest, "sync snapshot file"))
}

/// Bytes of `seg` a snapshot of `window` copies: all of it when it lies
/// inside, else the time index's byte range.
fn bytes_to_copy(seg: &SegmentInfo, window: Window) -> u64 {
    if seg.min_ts >= window.from_ns && seg.max_ts < window.to_ns {
        seg.bytes
    } else {
        let (start, end) = seg
            .index
            .byte_range(window.from_ns, window.to_ns, seg.bytes);
        end.saturating_sub(start)
    }
}

fn snapshot_node(
    b: &mut Builder,
    src: &NodeSource,
    window: Window,
    copied: &mut dyn FnMut(u64),
) -> Result<SnapshotNode, SnapshotError> {
    let rel = b.node_dir(&src.node)?;
    let mut files = Vec::new();
    for seg in src
        .segments
        .iter()
        .filter(|s| s.overlaps(window.from_ns, window.to_ns))
    {
        let Some(name) = seg.path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let inside = seg.min_ts >= window.from_ns && seg.max_ts < window.to_ns;
        let res = if inside {
            let dest = b.tmp.join(&rel).join(name);
            copy_whole(seg, &dest).map(|()| {
                Some(SnapshotFile {
                    path: format!("{rel}/{name}"),
                    link: seg.link.to_linktype(),
                    packets: seg.packets,
                    bytes: seg.bytes,
                    min_ts: seg.min_ts,
                    max_ts: seg.max_ts,
                })
            })
        } else {
            FileWriter::create(&b.tmp, &rel, name, seg.link).and_then(|mut w| {
                copy_trimmed(seg, window, &mut w)?;
                w.finish()
            })
        };
        match res {
            Ok(Some(f)) => files.push(f),
            Ok(None) => {}
            // Retention deleted the segment after it was listed: its
            // packets are gone; say so rather than fail the snapshot.
            Err(SnapshotError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_file(b.tmp.join(&rel).join(name));
                b.manifest.warnings.push(format!(
                    "node {}: segment {name} was deleted by retention while the snapshot was taken; its packets are missing",
                    src.node
                ));
            }
            Err(e) => return Err(e),
        }
        copied(bytes_to_copy(seg, window));
    }
    files.sort_by_key(|f| (f.min_ts, f.path.clone()));
    Ok(node_entry(&src.node, files))
}

/// Creates a snapshot of `window` from the raw stores of `sources` (one per
/// node: [`crate::RawStore::source`] or [`crate::read_node_dir`]): every
/// packet with `from <= ts < to`, and no other. [`begin_snapshot`] and
/// [`PendingSnapshot::fill`] in one go, with a generated id.
pub fn create_snapshot(
    data_dir: &Path,
    sources: &[NodeSource],
    req: &SnapshotRequest,
) -> Result<Snapshot, SnapshotError> {
    check_distinct(sources)?;
    begin_snapshot(data_dir, req, None)?.fill(sources, &mut |_| {})
}

fn check_distinct(sources: &[NodeSource]) -> Result<(), SnapshotError> {
    for (i, s) in sources.iter().enumerate() {
        if sources.iter().skip(i + 1).any(|t| t.node == s.node) {
            return Err(SnapshotError::DuplicateNode(s.node.clone()));
        }
    }
    Ok(())
}

/// A snapshot whose id is claimed and whose manifest (status `creating`)
/// is on disk, so that [`get_snapshot`] and [`list_snapshots`] show it,
/// but whose packets are not copied yet: [`PendingSnapshot::fill`] copies
/// them (the API does that on a thread of its own, as a job). Dropped
/// without `fill`, it is kept as `failed`.
#[derive(Debug)]
pub struct PendingSnapshot {
    b: Option<Builder>,
}

/// Claims a snapshot id and writes its `creating` manifest. `id` is the
/// caller's choice (a cluster hub gives every worker its own, so that one
/// id names the snapshot everywhere), checked like every id and refused
/// with [`SnapshotError::Exists`] when taken; `None` generates one
/// ([`new_snapshot_id`]).
pub fn begin_snapshot(
    data_dir: &Path,
    req: &SnapshotRequest,
    id: Option<&str>,
) -> Result<PendingSnapshot, SnapshotError> {
    let b = Builder::start(
        data_dir,
        &req.name,
        req.window,
        req.created_ns,
        "raw".into(),
        id,
    )?;
    Ok(PendingSnapshot { b: Some(b) })
}

impl PendingSnapshot {
    /// The manifest as written: id, name, window, status `creating`.
    pub fn manifest(&self) -> Option<&SnapshotManifest> {
        self.b.as_ref().map(|b| &b.manifest)
    }

    /// Copies the packets of the window from `sources` (distinct nodes),
    /// calling `progress` after each segment; on success the snapshot is
    /// `ready` under its id, on error it is kept `failed` with the error.
    pub fn fill(
        mut self,
        sources: &[NodeSource],
        progress: &mut dyn FnMut(CreateProgress),
    ) -> Result<Snapshot, SnapshotError> {
        let Some(mut b) = self.b.take() else {
            return Err(SnapshotError::Manifest {
                path: PathBuf::new(),
                msg: "snapshot already filled".into(),
            });
        };
        if let Err(e) = check_distinct(sources) {
            b.fail(&e);
            return Err(e);
        }
        let window = b.manifest.window;
        let covered = || {
            sources.iter().flat_map(|s| {
                s.segments
                    .iter()
                    .filter(move |g| g.overlaps(window.from_ns, window.to_ns))
            })
        };
        let mut p = CreateProgress {
            segments_total: covered().count() as u64,
            bytes_total: covered().map(|g| bytes_to_copy(g, window)).sum(),
            ..CreateProgress::default()
        };
        progress(p);
        let mut nodes = Vec::with_capacity(sources.len());
        for src in sources {
            let mut copied = |bytes: u64| {
                p.segments_done += 1;
                p.bytes_done += bytes;
                progress(p);
            };
            match snapshot_node(&mut b, src, window, &mut copied) {
                Ok(n) => nodes.push(n),
                Err(e) => {
                    b.fail(&e);
                    return Err(e);
                }
            }
        }
        tracing::info!(id = %b.manifest.id, packets = nodes.iter().map(|n| n.packets).sum::<u64>(), "Snapshot created.");
        b.finish(nodes)
    }
}

impl Drop for PendingSnapshot {
    fn drop(&mut self) {
        if let Some(b) = self.b.take() {
            let path = b.tmp.clone();
            b.fail(&SnapshotError::Manifest {
                path,
                msg: "creation was abandoned before any packet was copied".into(),
            });
        }
    }
}

/// Imports a capture file (pcap or pcapng) as a snapshot whose window is the
/// file's time span. Packets are filed under `req.node`, one pcap file per
/// run of packets with the same link type: a single-link pcapng becomes one
/// pcap file; a multi-link pcapng becomes several (a new file whenever the
/// link type changes from one packet to the next), which export merges back
/// in time order. pcapng interface ids, comments and other options are not
/// kept. A file damaged part way is imported up to the damage, with a
/// warning in the manifest.
pub fn import_pcap(
    data_dir: &Path,
    file: &Path,
    req: &ImportRequest,
) -> Result<Snapshot, SnapshotError> {
    let mut reader = CaptureReader::open(file)?;
    let display = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let placeholder = Window {
        from_ns: 0,
        to_ns: 1,
    };
    let mut b = Builder::start(
        data_dir,
        &req.name,
        placeholder,
        req.created_ns,
        format!("import:{display}"),
        None,
    )?;
    let res = (|| -> Result<Vec<SnapshotFile>, SnapshotError> {
        let rel = b.node_dir(&req.node)?;
        let mut files = Vec::new();
        let mut cur: Option<(LinkType, FileWriter)> = None;
        let mut seq = 0u64;
        let mut rec = Vec::with_capacity(segment::RECORD_HEADER_LEN + MAX_CAPLEN as usize);
        loop {
            let p = match reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    b.manifest.warnings.push(format!(
                        "import stopped at damage: {e}; the packets before it were imported"
                    ));
                    break;
                }
            };
            if cur.as_ref().is_none_or(|(l, _)| *l != p.link) {
                if let Some((_, w)) = cur.take()
                    && let Some(f) = w.finish()?
                {
                    files.push(f);
                }
                seq += 1;
                let ts = segment::clamp_ts(p.ts_ns);
                let name = segment::segment_file_name(ts, seq);
                cur = Some((p.link, FileWriter::create(&b.tmp, &rel, &name, p.link)?));
            }
            let Some((_, w)) = cur.as_mut() else { break };
            let ts = segment::clamp_ts(p.ts_ns);
            #[expect(
                clippy::cast_possible_truncation,
                reason = "the reader caps captured lengths at MAX_CAPLEN"
            )]
            let caplen = p.data.len() as u32;
            rec.clear();
            rec.extend_from_slice(&segment::record_header(ts, caplen, p.orig_len.max(caplen)));
            rec.extend_from_slice(p.data);
            w.record(ts, &rec)?;
        }
        if let Some((_, w)) = cur.take()
            && let Some(f) = w.finish()?
        {
            files.push(f);
        }
        Ok(files)
    })();
    let files = match res {
        Ok(f) => f,
        Err(e) => {
            b.fail(&e);
            return Err(e);
        }
    };
    let node = node_entry(&req.node, files);
    let (Some(oldest), Some(newest)) = (node.oldest_ts, node.newest_ts) else {
        let e = SnapshotError::EmptyImport(file.to_path_buf());
        b.fail(&e);
        return Err(e);
    };
    b.manifest.window = Window {
        from_ns: oldest,
        to_ns: newest.saturating_add(1),
    };
    b.finish(vec![node])
}

fn read_manifest(dir: &Path) -> Result<SnapshotManifest, SnapshotError> {
    let p = dir.join(MANIFEST);
    let f = File::open(&p).map_err(io_err(&p, "open manifest"))?;
    let mut text = String::new();
    f.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io_err(&p, "read manifest"))?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(SnapshotError::Manifest {
            path: p,
            msg: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    let m: SnapshotManifest = serde_json::from_str(&text).map_err(|e| SnapshotError::Manifest {
        path: p.clone(),
        msg: e.to_string(),
    })?;
    if m.format > MANIFEST_FORMAT {
        return Err(SnapshotError::Manifest {
            path: p,
            msg: format!(
                "format {} is newer than this trawl understands ({MANIFEST_FORMAT}); upgrade trawl",
                m.format
            ),
        });
    }
    Ok(m)
}

/// All snapshots, oldest first (ids sort by time), including those being
/// created (status `creating`) and those that failed.
pub fn list_snapshots(data_dir: &Path) -> Result<Vec<SnapshotManifest>, SnapshotError> {
    let root = snapshots_dir(data_dir);
    let rd = match fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&root, "list directory")(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_err(&root, "list directory"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && !name.starts_with(CREATING_PREFIX) {
            continue;
        }
        match read_manifest(&entry.path()) {
            Ok(m) => out.push(m),
            // A directory being created may not have its manifest yet.
            Err(_) if name.starts_with(CREATING_PREFIX) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Skipping a snapshot directory with an unreadable manifest.")
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One snapshot by id.
/// One being created is found in its hidden directory, with status
/// `creating` (its `dir` is that directory, and moves when it is ready).
pub fn get_snapshot(data_dir: &Path, id: &str) -> Result<Snapshot, SnapshotError> {
    check_id(id)?;
    let root = snapshots_dir(data_dir);
    let dir = root.join(id);
    let creating = root.join(format!("{CREATING_PREFIX}{id}"));
    // Checked twice: the hidden directory may be renamed into place
    // between the first look and the second.
    for _ in 0..2 {
        if dir.join(MANIFEST).is_file() {
            let manifest = read_manifest(&dir)?;
            return Ok(Snapshot { dir, manifest });
        }
        if creating.join(MANIFEST).is_file()
            && let Ok(manifest) = read_manifest(&creating)
        {
            return Ok(Snapshot {
                dir: creating,
                manifest,
            });
        }
    }
    Err(SnapshotError::NotFound(id.to_string()))
}

/// Deletes a snapshot (its files are read-only; the directory is not).
pub fn delete_snapshot(data_dir: &Path, id: &str) -> Result<(), SnapshotError> {
    check_id(id)?;
    let dir = snapshots_dir(data_dir).join(id);
    if !dir.is_dir() {
        if snapshots_dir(data_dir)
            .join(format!("{CREATING_PREFIX}{id}"))
            .is_dir()
        {
            return Err(SnapshotError::Creating(id.to_string()));
        }
        return Err(SnapshotError::NotFound(id.to_string()));
    }
    // Rename first so that a reader never sees a half-deleted snapshot.
    let gone = snapshots_dir(data_dir).join(format!(".deleting-{id}"));
    fs::rename(&dir, &gone).map_err(io_err(&dir, "delete snapshot"))?;
    fs::remove_dir_all(&gone).map_err(io_err(&gone, "delete snapshot"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RawStore, StoreConfig, read_node_dir};
    use crate::testutil::{Pkt, T0, frame, read_file};

    const MS: i64 = 1_000_000;

    fn small_cfg() -> StoreConfig {
        StoreConfig {
            segment_bytes: 64 * 1024,
            write_buffer_bytes: 1 << 20,
            ..StoreConfig::default()
        }
    }

    /// A store of 5000 packets 1 ms apart, every 5th one 2 ms late, in
    /// segments of 64 KiB; returns what was sent.
    fn jittery_store(data: &Path, node: &str) -> Vec<Pkt> {
        let mut s = RawStore::open(data, node, small_cfg()).unwrap();
        let mut sent = Vec::new();
        for i in 0..5000u64 {
            let ts = T0 + i as i64 * MS - if i % 5 == 0 { 2 * MS } else { 0 };
            let f = frame(i);
            s.append(ts, LinkType::Ethernet, &f, 1514).unwrap();
            sent.push((ts, LinkType::Ethernet, f, 1514));
        }
        s.close().unwrap();
        sent
    }

    fn snapshot_packets(snap: &Snapshot) -> Vec<Pkt> {
        snap.manifest
            .nodes
            .iter()
            .flat_map(|n| n.files.iter())
            .flat_map(|f| read_file(&snap.dir.join(&f.path)))
            .collect()
    }

    #[test]
    fn window_cutting_mid_segment_holds_exactly_the_packets_in_it() {
        let tmp = tempfile::tempdir().unwrap();
        let sent = jittery_store(tmp.path(), "n1");
        let src = read_node_dir(tmp.path(), "n1").unwrap();
        assert!(src.segments.len() > 10);
        for (k, (from, to)) in [
            (T0 + 1234 * MS, T0 + 3210 * MS + 1),
            (T0 + 2000 * MS, T0 + 2001 * MS),
            (T0 - 10 * MS, T0 + 100_000 * MS),
            (T0 + 4000 * MS - 1, T0 + 4000 * MS),
        ]
        .into_iter()
        .enumerate()
        {
            let window = Window {
                from_ns: from,
                to_ns: to,
            };
            let snap = create_snapshot(
                tmp.path(),
                std::slice::from_ref(&src),
                &SnapshotRequest {
                    name: format!("w{k}"),
                    window,
                    created_ns: T0 + 10_000 * MS,
                },
            )
            .unwrap();
            let mut got = snapshot_packets(&snap);
            got.sort_by_key(|p| p.0);
            let mut want: Vec<Pkt> = sent
                .iter()
                .filter(|p| window.contains(p.0))
                .cloned()
                .collect();
            want.sort_by_key(|p| p.0);
            assert_eq!(got.len(), want.len(), "window {k}");
            assert!(got == want, "window {k}: packets differ");
            let m = &snap.manifest;
            assert_eq!(m.status, SnapshotStatus::Ready);
            assert_eq!(m.packets, want.len() as u64);
            let bytes: u64 = m.nodes[0]
                .files
                .iter()
                .map(|f| fs::metadata(snap.dir.join(&f.path)).unwrap().len())
                .sum();
            assert_eq!(m.bytes, bytes);
            // Read back from disk, the manifest is the same.
            assert_eq!(get_snapshot(tmp.path(), &m.id).unwrap().manifest, *m);
        }
    }

    #[test]
    fn a_chosen_id_is_shown_creating_then_ready_with_progress_and_is_taken_once() {
        let tmp = tempfile::tempdir().unwrap();
        jittery_store(tmp.path(), "n1");
        let src = read_node_dir(tmp.path(), "n1").unwrap();
        let req = SnapshotRequest {
            name: "chosen".into(),
            window: Window {
                from_ns: T0 + 1234 * MS,
                to_ns: T0 + 3210 * MS,
            },
            created_ns: T0,
        };
        let pending = begin_snapshot(tmp.path(), &req, Some("hub-id_1.x")).unwrap();
        // Before any packet is copied, the id is claimed and shown creating.
        let seen = get_snapshot(tmp.path(), "hub-id_1.x").unwrap();
        assert_eq!(seen.manifest.status, SnapshotStatus::Creating);
        assert!(matches!(
            delete_snapshot(tmp.path(), "hub-id_1.x"),
            Err(SnapshotError::Creating(_))
        ));
        assert!(matches!(
            begin_snapshot(tmp.path(), &req, Some("hub-id_1.x")),
            Err(SnapshotError::Exists(_))
        ));
        let mut steps = Vec::new();
        let snap = pending
            .fill(std::slice::from_ref(&src), &mut |p| steps.push(p))
            .unwrap();
        assert_eq!(snap.manifest.id, "hub-id_1.x");
        assert_eq!(snap.manifest.status, SnapshotStatus::Ready);
        let last = *steps.last().unwrap();
        assert!(last.segments_total > 1, "{last:?}");
        assert_eq!(last.segments_done, last.segments_total);
        assert_eq!(last.bytes_done, last.bytes_total);
        assert!(steps.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
        assert_eq!(steps.len() as u64, last.segments_total + 1);
        // Ready, the id is still taken; bad ids are refused before disk.
        assert!(matches!(
            begin_snapshot(tmp.path(), &req, Some("hub-id_1.x")),
            Err(SnapshotError::Exists(_))
        ));
        for bad in ["", ".hidden", "a/b", "..", &"x".repeat(129)] {
            assert!(
                matches!(
                    begin_snapshot(tmp.path(), &req, Some(bad)),
                    Err(SnapshotError::BadId(_))
                ),
                "{bad:?}"
            );
        }
        // Abandoned before filling: kept as failed, with the reason.
        drop(begin_snapshot(tmp.path(), &req, Some("abandoned")).unwrap());
        let m = get_snapshot(tmp.path(), "abandoned").unwrap().manifest;
        assert_eq!(m.status, SnapshotStatus::Failed);
        assert!(m.error.unwrap().contains("abandoned"));
    }

    #[test]
    fn snapshots_are_listed_immutable_and_deletable() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        for i in 0..100u64 {
            s.append(T0 + i as i64 * MS, LinkType::Ethernet, &frame(i), 1000)
                .unwrap();
        }
        // From a live store: the unflushed packets are flushed first.
        let src = s.source().unwrap();
        let window = Window {
            from_ns: T0,
            to_ns: T0 + 50 * MS,
        };
        let mut ids = Vec::new();
        for k in 0..3 {
            let snap = create_snapshot(
                tmp.path(),
                std::slice::from_ref(&src),
                &SnapshotRequest {
                    name: format!("s{k}"),
                    window,
                    created_ns: T0 + k * 1_000 * MS,
                },
            )
            .unwrap();
            assert_eq!(snap.manifest.packets, 50);
            for f in &snap.manifest.nodes[0].files {
                let p = snap.dir.join(&f.path);
                assert!(fs::metadata(&p).unwrap().permissions().readonly());
            }
            ids.push(snap.manifest.id);
        }
        let list = list_snapshots(tmp.path()).unwrap();
        let listed: Vec<&str> = list.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ids[0].starts_with("20251128T000000.000Z-"), "{}", ids[0]);
        delete_snapshot(tmp.path(), &ids[1]).unwrap();
        assert_eq!(list_snapshots(tmp.path()).unwrap().len(), 2);
        assert!(matches!(
            get_snapshot(tmp.path(), &ids[1]),
            Err(SnapshotError::NotFound(_))
        ));
        assert!(matches!(
            get_snapshot(tmp.path(), "../raw"),
            Err(SnapshotError::BadId(_))
        ));
        // Ids made in the same millisecond still differ.
        let a = new_snapshot_id(T0);
        let b = new_snapshot_id(T0);
        assert_ne!(a, b);
    }

    #[test]
    fn a_reader_beside_a_live_writer_skips_its_partial_record() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        for i in 0..100u64 {
            s.append(T0 + i as i64 * MS, LinkType::Ethernet, &frame(i), 1000)
                .unwrap();
        }
        s.flush().unwrap();
        // Half a record header, as if the writer's next `write` were in
        // flight when another process lists the store.
        let active = s.source().unwrap().segments.last().unwrap().path.clone();
        let len = fs::metadata(&active).unwrap().len();
        let mut f = fs::OpenOptions::new().append(true).open(&active).unwrap();
        f.write_all(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let src = read_node_dir(tmp.path(), "n1").unwrap();
        assert_eq!(src.segments.iter().map(|s| s.packets).sum::<u64>(), 100);
        // Read-only: the writer's file is left alone.
        assert_eq!(fs::metadata(&active).unwrap().len(), len + 8);
        let snap = create_snapshot(
            tmp.path(),
            &[src.clone(), src],
            &SnapshotRequest {
                name: "dup".into(),
                window: Window {
                    from_ns: T0,
                    to_ns: T0 + 1_000 * MS,
                },
                created_ns: T0,
            },
        );
        assert!(matches!(snap, Err(SnapshotError::DuplicateNode(_))));
        let src = read_node_dir(tmp.path(), "n1").unwrap();
        let snap = create_snapshot(
            tmp.path(),
            &[src],
            &SnapshotRequest {
                name: "live".into(),
                window: Window {
                    from_ns: T0,
                    to_ns: T0 + 1_000 * MS,
                },
                created_ns: T0,
            },
        )
        .unwrap();
        assert_eq!(snapshot_packets(&snap).len(), 100);
        // Closing cuts the tail.
        drop(s);
        assert_eq!(fs::metadata(&active).unwrap().len(), len + 8);
        let s = RawStore::open(tmp.path(), "n1", small_cfg()).unwrap();
        assert_eq!(s.boundaries().packets, 100);
        assert_eq!(fs::metadata(&active).unwrap().len(), len);
    }

    #[test]
    fn a_failed_snapshot_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let src = NodeSource {
            node: "../evil".into(),
            segments: Vec::new(),
        };
        let err = create_snapshot(
            tmp.path(),
            &[src],
            &SnapshotRequest {
                name: "bad".into(),
                window: Window {
                    from_ns: 0,
                    to_ns: 1,
                },
                created_ns: T0,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid node name"), "{err}");
        let list = list_snapshots(tmp.path()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, SnapshotStatus::Failed);
        assert!(list[0].error.as_deref().unwrap().contains("evil"));
    }

    fn shared_pcaps(test: &str) -> Option<PathBuf> {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/pcaps"
        ));
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!(
                "SKIPPED: {test}: shared captures not found at {}",
                dir.display()
            );
            None
        }
    }

    #[test]
    fn import_keeps_every_packet_of_the_shared_captures() {
        let Some(dir) = shared_pcaps("import_keeps_every_packet_of_the_shared_captures") else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let mut n = 0;
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "pcap" | "pcapng" | "cap") {
                continue;
            }
            n += 1;
            // What the reader sees, up to any damage.
            let mut want = Vec::new();
            let mut r = CaptureReader::open(&p).unwrap();
            while let Ok(Some(pk)) = r.next_packet() {
                want.push((
                    segment::clamp_ts(pk.ts_ns),
                    pk.link,
                    pk.data.to_vec(),
                    pk.orig_len,
                ));
            }
            let snap = import_pcap(
                tmp.path(),
                &p,
                &ImportRequest {
                    name: "imp".into(),
                    node: "import".into(),
                    created_ns: T0,
                },
            )
            .unwrap();
            let m = &snap.manifest;
            assert_eq!(m.packets, want.len() as u64, "{p:?}");
            let got = snapshot_packets(&snap);
            assert!(got == want, "{p:?}: packets differ");
            let links: std::collections::HashSet<_> = want.iter().map(|w| w.1).collect();
            if links.len() == 1 {
                assert_eq!(m.nodes[0].files.len(), 1, "{p:?}");
            }
            assert_eq!(m.window.from_ns, want.iter().map(|w| w.0).min().unwrap());
            assert!(m.source.starts_with("import:"));
        }
        assert!(n >= 90, "only {n} captures found");
    }

    #[test]
    fn import_of_a_multi_link_pcapng_splits_by_link_type() {
        // Two interfaces (Ethernet, raw IP), packets alternating in runs.
        let mut b = trawl_packet::pcapng_writer::PcapNgWriter::new(Vec::new(), "test").unwrap();
        let eth = b.add_interface(LinkType::Ethernet, 0, "eth0").unwrap();
        let raw = b.add_interface(LinkType::Raw, 0, "tun0").unwrap();
        for i in 0..9u64 {
            let iface = if (i / 3) % 2 == 0 { eth } else { raw };
            b.write_packet(iface, T0 + i as i64, &frame(i), 2000)
                .unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("multi.pcapng");
        fs::write(&file, b.into_inner()).unwrap();
        let snap = import_pcap(
            tmp.path(),
            &file,
            &ImportRequest {
                name: "multi".into(),
                node: "import".into(),
                created_ns: T0,
            },
        )
        .unwrap();
        let files = &snap.manifest.nodes[0].files;
        let links: Vec<u32> = files.iter().map(|f| f.link).collect();
        assert_eq!(links, vec![1, 101, 1]);
        assert_eq!(snap.manifest.packets, 9);
        assert_eq!(
            snap.manifest.window,
            Window {
                from_ns: T0,
                to_ns: T0 + 9
            }
        );
    }

    #[test]
    fn import_of_an_empty_capture_fails_clearly() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("empty.pcap");
        let w = trawl_packet::capfile::PcapWriter::new(Vec::new(), LinkType::Ethernet, 0).unwrap();
        fs::write(&file, w.into_inner()).unwrap();
        let e = import_pcap(
            tmp.path(),
            &file,
            &ImportRequest {
                name: "e".into(),
                node: "import".into(),
                created_ns: T0,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("holds no packets"), "{e}");
    }
}
