//! The indexing pipeline: a capture file in, an index directory out.
//!
//! ```text
//!  reader (calling thread)          workers (one per shard)
//!  CaptureReader ─ decode_link ─┬─► Pipeline ─► CallBatchBuilder ─► calls/part-S-N.parquet
//!   shard = hash(unordered      │      │     └► PayloadWriter     ─► payloads/part-S.bin
//!           IP pair) % shards   │      └──► FlowBatchBuilder    ─► flows/part-S-N.parquet
//!                               └─► …
//! ```
//!
//! Sharding by the unordered IP address pair sends both directions of a
//! connection, and every fragment of a fragmented datagram (which carries
//! no ports), to the same shard, so each shard's pipeline sees whole flows.
//! The price: all traffic between two hosts lands on one shard. Each
//! shard's pipeline numbers its own connections; [`ConnIdSpace`] maps them
//! to `local * shards + shard` so that `conn_id` (and the call ids built
//! from it) stay unique across the index.
//!
//! Memory is bounded: packets travel in batches of [`BATCH_PACKETS`] over
//! bounded channels ([`CHANNEL_BATCHES`] per shard), spent batches go back
//! to the reader for reuse, and record batches are cut at
//! [`crate::BATCH_ROWS`] rows. With one thread the reader runs the single
//! pipeline itself, without channels: the single-threaded baseline.
//!
//! Identities (`src`/`dst` names, pods, services, DNS names) are applied
//! before a call is written, in two passes (see `trawl_identity`'s crate
//! docs for why): [`learn_dns`] first reads the capture once and feeds only
//! DNS packets (port 53, and IP fragments, which may be DNS) to one
//! pipeline to learn address → name answers; the workers then share one
//! [`Resolver`] and call [`Resolver::apply`] on every call.
//!
//! Crash safety is in [`crate::manifest`]: the index is built in
//! `<out>.tmp-<pid>/` and renamed into place after its manifest is written.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use trawl_dissect::{ConnIdSpace, Pipeline, PipelineConfig, PipelineStats};
use trawl_identity::{DnsLearner, Resolver, Workloads};
use trawl_model::{Call, Protocol};
use trawl_packet::{CaptureReader, LinkType, RawPacket, decode};

use crate::IndexError;
use crate::manifest::{
    Manifest, SCHEMA_VERSION, remove_stale_tmp_dirs, rfc3339_nanos, sync_dir, tmp_dir_for,
    write_manifest,
};
use crate::payload::{MAX_PAYLOAD_BYTES, PAYLOAD_DIR, PayloadWriter};
use crate::schema::{CallBatchBuilder, FlowBatchBuilder, calls_schema, flows_schema};

/// Packets per batch sent to a worker. A channel send costs about as much
/// as dissecting a small packet; 256 packets per send make it noise, and a
/// batch of full-size frames is still under 400 KB.
pub const BATCH_PACKETS: usize = 256;

/// Batches queued per worker. Enough to ride out a worker's pause while it
/// writes a row group, small enough that the queues hold a few MB at most.
pub const CHANNEL_BATCHES: usize = 16;

/// Rows per Parquet part file before a new one is started: a handful of
/// files per shard lets DataFusion scan in parallel and keeps any one file
/// quick to rewrite or copy.
pub const ROWS_PER_FILE: usize = 1024 * 1024;

/// Rows per Parquet row group: large enough for its statistics to skip
/// data and for DataFusion to scan row groups in parallel, small enough
/// that a writer's buffered row group stays a few tens of MB.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Columns of the calls table that keep Parquet statistics (min/max per
/// row group and per page, the page index), besides the protocol flags:
/// the time (calls are written in roughly time order, so a time range
/// reads a few row groups), the numbers filters compare, and the
/// low-cardinality strings a filter names exactly. Every other column has
/// none; see [`PartWriter::new`].
pub const CALLS_STATS_COLUMNS: &[&str] = &[
    "timestamp",
    "conn_id",
    "elapsed_time",
    "status_code",
    "protocol",
    "method",
    "has_request",
    "has_response",
];

/// Packets between progress reports.
const PROGRESS_EVERY: u64 = 64 * 1024;

/// Kept-body cap per message when indexing. Agents read bodies to
/// diagnose errors; 64 KiB holds nearly every JSON error body and API
/// response in full while keeping the payload store a fraction of the
/// capture.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Seed of the shard hash. Fixed, so that a capture always shards the same
/// way and indexes are reproducible.
const SHARD_SEED: u64 = 0x7472_6177_6c00_0001;

/// How to index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    /// Node name stamped on calls and flows.
    pub node: String,
    /// Worker threads (shards); 0 means one per available core.
    pub threads: usize,
    /// Body bytes kept per message in the payload store; 0 keeps none.
    pub max_body_bytes: usize,
    /// Replace an existing index at the output path.
    pub overwrite: bool,
    /// Workloads (pods, services, external names) to name endpoints by.
    pub workloads: Option<Workloads>,
    /// Learn names from the capture's DNS answers in a pre-scan (one extra
    /// read of the file, dissecting only DNS) and name endpoints by them.
    pub learn_dns: bool,
    /// Set from another thread to stop indexing: checked before reading and
    /// every [`PROGRESS_EVERY`] packets; indexing then fails with
    /// [`IndexError::Cancelled`] and leaves nothing behind.
    pub cancel: Cancel,
}

/// A flag that stops an indexing run (the hub's `DELETE …/dissection`).
/// Clones share the flag; two `Cancel`s are equal when they are the same
/// flag, so that [`IndexOptions`] keeps its `PartialEq`.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the run holding this flag (or a clone) to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl PartialEq for Cancel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cancel {}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            node: "local".to_owned(),
            threads: 0,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            overwrite: false,
            workloads: None,
            learn_dns: true,
            cancel: Cancel::default(),
        }
    }
}

/// How far indexing got, reported every [`PROGRESS_EVERY`] packets and at
/// the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub packets: u64,
    /// Bytes of the capture file consumed so far.
    pub bytes_read: u64,
    /// Size of the capture file.
    pub total_bytes: u64,
}

/// What an indexing run produced.
#[derive(Clone, Debug)]
pub struct IndexSummary {
    /// The index directory (the output path).
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub calls_by_protocol: BTreeMap<String, u64>,
    /// Each shard's pipeline counters, by shard.
    pub shard_stats: Vec<PipelineStats>,
    /// What the DNS pre-scan learned; `None` when it did not run.
    pub dns_prescan: Option<DnsPrescan>,
    /// Workloads applied (0 without a workloads file).
    pub workloads: usize,
}

/// What [`learn_dns`] read and learned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsPrescan {
    /// Packets read from the capture.
    pub packets: u64,
    /// Of those, packets fed to the DNS pipeline.
    pub dns_packets: u64,
    /// DNS calls dissected.
    pub dns_calls: u64,
    /// Addresses with at least one learned name.
    pub addresses: usize,
    /// Counters of the learner.
    pub stats: trawl_identity::DnsStats,
}

/// One captured frame's place in a [`PacketBatch`].
#[derive(Clone, Copy, Debug)]
struct PacketMeta {
    ts_ns: i64,
    link: LinkType,
    interface: u32,
    orig_len: u32,
    start: usize,
    end: usize,
}

/// Packets copied out of the reader's buffer, to travel to a worker.
#[derive(Debug, Default)]
struct PacketBatch {
    data: Vec<u8>,
    packets: Vec<PacketMeta>,
}

impl PacketBatch {
    fn push(&mut self, pkt: &RawPacket<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(pkt.data);
        self.packets.push(PacketMeta {
            ts_ns: pkt.ts_ns,
            link: pkt.link,
            interface: pkt.interface,
            orig_len: pkt.orig_len,
            start,
            end: self.data.len(),
        });
    }

    fn clear(&mut self) {
        self.data.clear();
        self.packets.clear();
    }

    fn iter(&self) -> impl Iterator<Item = RawPacket<'_>> {
        self.packets.iter().map(|m| RawPacket {
            ts_ns: m.ts_ns,
            link: m.link,
            interface: m.interface,
            data: self.data.get(m.start..m.end).unwrap_or(&[]),
            orig_len: m.orig_len,
        })
    }
}

/// The shard of a frame: a hash of its unordered IP address pair. Frames
/// that are not IP (or do not decode) go to shard 0, whose pipeline counts
/// them.
fn shard_of(pkt: &RawPacket<'_>, hasher: &foldhash::fast::FixedState, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let Ok(ip) = decode::decode_link(pkt.link, pkt.data) else {
        return 0;
    };
    let (lo, hi): (IpAddr, IpAddr) = if ip.src <= ip.dst {
        (ip.src, ip.dst)
    } else {
        (ip.dst, ip.src)
    };
    let h = hasher.hash_one((lo, hi));
    // Multiply-shift maps the hash onto 0..shards without a division.
    let shard = (u128::from(h) * shards as u128) >> 64;
    usize::try_from(shard).unwrap_or(0)
}

/// Writes one table's record batches of one shard as Parquet part files.
struct PartWriter {
    index_dir: PathBuf,
    table: &'static str,
    shard: usize,
    schema: SchemaRef,
    props: WriterProperties,
    seq: usize,
    current: Option<OpenPart>,
    parts: Vec<String>,
}

struct OpenPart {
    writer: ArrowWriter<File>,
    /// A second handle on the file, to sync it after the writer closes it.
    sync: File,
    path: PathBuf,
    rows: usize,
}

impl PartWriter {
    fn new(index_dir: &Path, table: &'static str, shard: usize, schema: SchemaRef) -> Self {
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("trawl {}", env!("CARGO_PKG_VERSION")));
        if table == "calls" {
            // Statistics only where they prune. Min/max of every string
            // column (a comparison per value) were the largest single cost
            // of writing the calls table, for ~200 columns most of which
            // are empty for any one call's protocol and that queries
            // never prune by (bench/RESULTS.md, query).
            props = props.set_statistics_enabled(EnabledStatistics::None);
            for col in CALLS_STATS_COLUMNS
                .iter()
                .copied()
                .chain(Protocol::ALL.iter().map(|p| p.as_str()))
            {
                props = props
                    .set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::Page);
            }
        }
        let props = props.build();
        PartWriter {
            index_dir: index_dir.to_owned(),
            table,
            shard,
            schema,
            props,
            seq: 0,
            current: None,
            parts: Vec::new(),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), IndexError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let part = match &mut self.current {
            Some(p) => p,
            None => {
                let rel = format!("{}/part-{}-{}.parquet", self.table, self.shard, self.seq);
                self.seq += 1;
                let path = self.index_dir.join(&rel);
                let file = File::create(&path).map_err(IndexError::io(&path))?;
                let sync = file.try_clone().map_err(IndexError::io(&path))?;
                let writer =
                    ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))
                        .map_err(|source| IndexError::Parquet {
                            path: path.clone(),
                            source,
                        })?;
                self.parts.push(rel);
                self.current.insert(OpenPart {
                    writer,
                    sync,
                    path,
                    rows: 0,
                })
            }
        };
        part.writer
            .write(batch)
            .map_err(|source| IndexError::Parquet {
                path: part.path.clone(),
                source,
            })?;
        part.rows += batch.num_rows();
        if part.rows >= ROWS_PER_FILE {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), IndexError> {
        if let Some(part) = self.current.take() {
            let OpenPart {
                writer, sync, path, ..
            } = part;
            writer.close().map_err(|source| IndexError::Parquet {
                path: path.clone(),
                source,
            })?;
            sync.sync_all().map_err(IndexError::io(&path))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<String>, IndexError> {
        self.close_current()?;
        Ok(self.parts)
    }
}

/// What one shard produced.
struct ShardOutput {
    calls_parts: Vec<String>,
    flows_parts: Vec<String>,
    payload_part: Option<String>,
    calls: u64,
    flows: u64,
    calls_by_protocol: BTreeMap<String, u64>,
    stats: PipelineStats,
}

/// One shard: a pipeline and the writers of its part files.
struct Worker {
    pipeline: Pipeline,
    calls: CallBatchBuilder,
    flows: FlowBatchBuilder,
    call_parts: PartWriter,
    flow_parts: PartWriter,
    payloads: Option<PayloadWriter>,
    calls_written: u64,
    flows_written: u64,
    calls_by_protocol: BTreeMap<String, u64>,
    /// First error met inside the pipeline's sink; the worker stops there.
    error: Option<IndexError>,
    /// Names endpoints before calls are written; shared by all shards.
    resolver: Option<Arc<Resolver>>,
}

impl Worker {
    fn new(
        dir: &Path,
        shard: usize,
        shards: usize,
        opts: &IndexOptions,
        resolver: Option<Arc<Resolver>>,
    ) -> Result<Self, IndexError> {
        let mut config = PipelineConfig {
            node: opts.node.clone(),
            conn_ids: ConnIdSpace {
                shard: shard as u64,
                shards: shards as u64,
            },
            flow_records: true,
            ..PipelineConfig::default()
        };
        config.limits.max_body_bytes = opts.max_body_bytes;
        let payloads = if opts.max_body_bytes > 0 {
            Some(PayloadWriter::create(dir, shard)?)
        } else {
            None
        };
        Ok(Worker {
            pipeline: Pipeline::new(config),
            calls: CallBatchBuilder::new(),
            flows: FlowBatchBuilder::new(),
            call_parts: PartWriter::new(dir, "calls", shard, calls_schema()),
            flow_parts: PartWriter::new(dir, "flows", shard, flows_schema()),
            payloads,
            calls_written: 0,
            flows_written: 0,
            calls_by_protocol: BTreeMap::new(),
            error: None,
            resolver,
        })
    }

    fn packet(&mut self, pkt: &RawPacket<'_>) -> Result<(), IndexError> {
        let Worker {
            pipeline,
            calls,
            payloads,
            error,
            calls_by_protocol,
            resolver,
            ..
        } = self;
        let resolver = resolver.as_deref();
        pipeline.packet(pkt, &mut |call| {
            add_call(call, resolver, calls, payloads, calls_by_protocol, error);
        });
        self.after_packets()
    }

    fn after_packets(&mut self) -> Result<(), IndexError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for f in self.pipeline.drain_flows() {
            self.flows.append_resolved(&f, self.resolver.as_deref());
        }
        if self.calls.is_full() {
            self.flush_calls()?;
        }
        if self.flows.is_full() {
            self.flush_flows()?;
        }
        Ok(())
    }

    fn flush_calls(&mut self) -> Result<(), IndexError> {
        if self.calls.is_empty() {
            return Ok(());
        }
        let n = self.calls.len() as u64;
        let batch = self.calls.finish()?;
        self.call_parts.write(&batch)?;
        self.calls_written += n;
        Ok(())
    }

    fn flush_flows(&mut self) -> Result<(), IndexError> {
        if self.flows.is_empty() {
            return Ok(());
        }
        let n = self.flows.len() as u64;
        let batch = self.flows.finish()?;
        self.flow_parts.write(&batch)?;
        self.flows_written += n;
        Ok(())
    }

    fn finish(mut self) -> Result<ShardOutput, IndexError> {
        {
            let Worker {
                pipeline,
                calls,
                payloads,
                error,
                calls_by_protocol,
                resolver,
                ..
            } = &mut self;
            let resolver = resolver.as_deref();
            pipeline.finish(&mut |call| {
                add_call(call, resolver, calls, payloads, calls_by_protocol, error);
            });
        }
        self.after_packets()?;
        self.flush_calls()?;
        self.flush_flows()?;
        let payload_part = match self.payloads {
            Some(p) => {
                let name = p.name().to_owned();
                p.finish()?;
                Some(name)
            }
            None => None,
        };
        Ok(ShardOutput {
            calls_parts: self.call_parts.finish()?,
            flows_parts: self.flow_parts.finish()?,
            payload_part,
            calls: self.calls_written,
            flows: self.flows_written,
            calls_by_protocol: self.calls_by_protocol,
            stats: self.pipeline.stats(),
        })
    }
}

/// The pipeline's sink: name the endpoints, store the bodies, then append
/// the call.
fn add_call(
    mut call: Call,
    resolver: Option<&Resolver>,
    calls: &mut CallBatchBuilder,
    payloads: &mut Option<PayloadWriter>,
    by_protocol: &mut BTreeMap<String, u64>,
    error: &mut Option<IndexError>,
) {
    if error.is_some() {
        return;
    }
    if let Some(r) = resolver {
        r.apply(&mut call);
    }
    let mut store = |body: &Option<trawl_model::Body>| -> Result<_, IndexError> {
        match (payloads.as_mut(), body) {
            (Some(p), Some(b)) => p.store(b),
            _ => Ok(None),
        }
    };
    let result = store(&call.request.body).and_then(|req| {
        let resp = store(&call.response.body)?;
        calls.append(&call, req, resp).map_err(IndexError::from)
    });
    match result {
        Ok(()) => {
            let p = call.protocol.map_or("", |p| p.as_str());
            *by_protocol.entry(p.to_owned()).or_default() += 1;
        }
        Err(e) => *error = Some(e),
    }
}

/// Indexes the capture at `path` into the directory `out_dir` (created;
/// see [`IndexOptions::overwrite`] for an existing one). `progress` is
/// called from the calling thread as packets are read.
///
/// A damaged capture is indexed up to the damage; the manifest and the
/// summary then carry `capture_error`. Any other failure leaves no index
/// (and no temporary directory) behind.
pub fn index_capture(
    path: &Path,
    out_dir: &Path,
    opts: &IndexOptions,
    progress: &dyn Fn(Progress),
) -> Result<IndexSummary, IndexError> {
    if opts.max_body_bytes > MAX_PAYLOAD_BYTES {
        return Err(IndexError::InvalidOption(format!(
            "max_body_bytes {} is over the payload store's limit of {MAX_PAYLOAD_BYTES}",
            opts.max_body_bytes
        )));
    }
    let shards = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let mut reader = CaptureReader::open(path)?;
    let total_bytes = std::fs::metadata(path).map_err(IndexError::io(path))?.len();
    check_output(out_dir, opts.overwrite)?;
    remove_stale_tmp_dirs(out_dir)?;
    let tmp = tmp_dir_for(out_dir);
    let (dns_prescan, resolver) = identities(path, opts)?;
    let result = build(&mut reader, &tmp, shards, opts, resolver, &|p| {
        progress(Progress { total_bytes, ..p })
    })
    .and_then(|(outputs, read)| {
        let manifest = manifest_of(path, total_bytes, shards, opts, &outputs, read);
        write_manifest(&tmp, &manifest)?;
        sync_dir(&tmp)?;
        install(&tmp, out_dir, opts.overwrite)?;
        let mut calls_by_protocol = BTreeMap::new();
        for o in &outputs {
            for (p, n) in &o.calls_by_protocol {
                *calls_by_protocol.entry(p.clone()).or_default() += n;
            }
        }
        Ok(IndexSummary {
            dir: out_dir.to_owned(),
            manifest,
            calls_by_protocol,
            shard_stats: outputs.into_iter().map(|o| o.stats).collect(),
            dns_prescan,
            workloads: opts.workloads.as_ref().map_or(0, Workloads::len),
        })
    });
    if result.is_err() {
        // Best effort: the error being returned matters more than this one.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes an index of calls that come from somewhere other than a capture
/// (the benchmark's call generator, later imports of another tool's
/// calls): the `calls` table in the order given — in timestamp order, row
/// groups then cover disjoint time ranges and time filters and sorts skip
/// them by their statistics — with an empty `flows` table and no payloads.
/// Same layout, writer settings, manifest and atomic install as
/// [`index_capture`]; `source` is what the manifest names as the input.
/// Batches are built on the calling thread and encoded on another.
pub fn index_calls(
    calls: impl Iterator<Item = Call>,
    out_dir: &Path,
    source: &str,
    overwrite: bool,
) -> Result<Manifest, IndexError> {
    check_output(out_dir, overwrite)?;
    remove_stale_tmp_dirs(out_dir)?;
    let tmp = tmp_dir_for(out_dir);
    let result = (|| {
        for sub in ["calls", "flows", PAYLOAD_DIR] {
            let d = tmp.join(sub);
            std::fs::create_dir_all(&d).map_err(IndexError::io(&d))?;
        }
        let (tx, rx) = mpsc::sync_channel::<RecordBatch>(CHANNEL_BATCHES);
        let writer_dir = tmp.clone();
        let writer = std::thread::Builder::new()
            .name("trawl-index-write".into())
            .spawn(move || {
                let mut parts = PartWriter::new(&writer_dir, "calls", 0, calls_schema());
                for batch in rx {
                    parts.write(&batch)?;
                }
                parts.finish()
            })
            .map_err(IndexError::io(&tmp))?;
        let mut builder = CallBatchBuilder::new();
        let (mut n, mut first_ts, mut last_ts) = (0u64, None, 0i64);
        let send = |b: &mut CallBatchBuilder| -> Result<(), IndexError> {
            let batch = b.finish()?;
            // A closed channel means the writer failed: its error is
            // returned by `join` below.
            let _ = tx.send(batch);
            Ok(())
        };
        for call in calls {
            first_ts.get_or_insert(call.timestamp);
            last_ts = call.timestamp;
            builder.append(&call, None, None)?;
            n += 1;
            if builder.is_full() {
                send(&mut builder)?;
            }
        }
        if !builder.is_empty() {
            send(&mut builder)?;
        }
        drop(tx);
        let calls_parts = writer
            .join()
            .map_err(|_| IndexError::Worker("the Parquet writer thread panicked".into()))??;
        let first_ts = first_ts.unwrap_or(0);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            source: source.to_string(),
            source_bytes: 0,
            node: IndexOptions::default().node,
            packets: 0,
            bytes: 0,
            calls: n,
            flows: 0,
            first_ts,
            last_ts,
            first_time: rfc3339_nanos(first_ts),
            last_time: rfc3339_nanos(last_ts),
            created: rfc3339_nanos(created),
            shards: 1,
            max_body_bytes: 0,
            capture_error: None,
            calls_parts,
            flows_parts: Vec::new(),
            payload_parts: Vec::new(),
        };
        write_manifest(&tmp, &manifest)?;
        sync_dir(&tmp)?;
        install(&tmp, out_dir, overwrite)?;
        Ok(manifest)
    })();
    if result.is_err() {
        // Best effort: the error being returned matters more than this one.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Refuses to clobber an existing directory unless asked to. An empty
/// directory (made by a user for the index) is fine.
fn check_output(out: &Path, overwrite: bool) -> Result<(), IndexError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() && !overwrite {
                return Err(IndexError::OutputExists(out.to_owned()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(IndexError::OutputExists(out.to_owned()))
        }
        Err(e) => Err(IndexError::Io {
            path: out.to_owned(),
            source: e,
        }),
    }
}

/// Moves the finished tmp directory to `out`. With an old index there, it
/// is renamed aside first and removed after: at every moment `out` is
/// either the old index, absent, or the new one.
fn install(tmp: &Path, out: &Path, overwrite: bool) -> Result<(), IndexError> {
    let mut old = None;
    if out.exists() {
        let is_empty_dir = std::fs::read_dir(out).is_ok_and(|mut e| e.next().is_none());
        if is_empty_dir {
            std::fs::remove_dir(out).map_err(IndexError::io(out))?;
        } else if overwrite {
            let mut name = out.file_name().unwrap_or_default().to_owned();
            name.push(format!(".old-{}", std::process::id()));
            let aside = out.with_file_name(name);
            std::fs::rename(out, &aside).map_err(IndexError::io(out))?;
            old = Some(aside);
        } else {
            return Err(IndexError::OutputExists(out.to_owned()));
        }
    }
    std::fs::rename(tmp, out).map_err(IndexError::io(out))?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(&old).map_err(IndexError::io(&old))?;
    }
    Ok(())
}

/// What the reader saw.
struct ReadTotals {
    packets: u64,
    bytes: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    capture_error: Option<String>,
}

/// Reads the capture into `shards` workers writing under `dir`.
fn build(
    reader: &mut CaptureReader<File>,
    dir: &Path,
    shards: usize,
    opts: &IndexOptions,
    resolver: Option<Arc<Resolver>>,
    progress: &dyn Fn(Progress),
) -> Result<(Vec<ShardOutput>, ReadTotals), IndexError> {
    for sub in ["calls", "flows", PAYLOAD_DIR] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(IndexError::io(&d))?;
    }
    let mut totals = ReadTotals {
        packets: 0,
        bytes: 0,
        first_ts: None,
        last_ts: None,
        capture_error: None,
    };
    if opts.cancel.is_cancelled() {
        return Err(IndexError::Cancelled);
    }
    let mut cancelled = false;
    // Returns false to stop reading: the run was cancelled.
    let mut count = |pkt: &RawPacket<'_>, offset: u64| -> bool {
        totals.packets += 1;
        totals.bytes += pkt.data.len() as u64;
        totals.first_ts.get_or_insert(pkt.ts_ns);
        totals.last_ts = Some(pkt.ts_ns);
        if totals.packets.is_multiple_of(PROGRESS_EVERY) {
            progress(Progress {
                packets: totals.packets,
                bytes_read: offset,
                total_bytes: 0,
            });
            if opts.cancel.is_cancelled() {
                cancelled = true;
                return false;
            }
        }
        true
    };
    let outputs = if shards == 1 {
        let mut worker = Worker::new(dir, 0, 1, opts, resolver)?;
        let capture_error = loop {
            let offset = reader.offset();
            match reader.next_packet() {
                Ok(Some(pkt)) => {
                    if !count(&pkt, offset) {
                        break None;
                    }
                    worker.packet(&pkt)?;
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        let output = worker.finish()?;
        totals.capture_error = capture_error;
        vec![output]
    } else {
        let (outputs, capture_error) =
            run_sharded(reader, dir, shards, opts, resolver, &mut count)?;
        totals.capture_error = capture_error;
        outputs
    };
    if cancelled {
        return Err(IndexError::Cancelled);
    }
    progress(Progress {
        packets: totals.packets,
        bytes_read: reader.offset(),
        total_bytes: 0,
    });
    Ok((outputs, totals))
}

/// The reader loop with one worker thread per shard.
fn run_sharded(
    reader: &mut CaptureReader<File>,
    dir: &Path,
    shards: usize,
    opts: &IndexOptions,
    resolver: Option<Arc<Resolver>>,
    count: &mut dyn FnMut(&RawPacket<'_>, u64) -> bool,
) -> Result<(Vec<ShardOutput>, Option<String>), IndexError> {
    let hasher = foldhash::fast::FixedState::with_seed(SHARD_SEED);
    let workers = (0..shards)
        .map(|s| Worker::new(dir, s, shards, opts, resolver.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|scope| {
        let (spent_tx, spent_rx) = mpsc::channel::<PacketBatch>();
        let mut senders = Vec::with_capacity(shards);
        let mut handles = Vec::with_capacity(shards);
        for (shard, mut worker) in workers.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel::<PacketBatch>(CHANNEL_BATCHES);
            senders.push(tx);
            let spent = spent_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("trawl-index-{shard}"))
                .spawn_scoped(scope, move || -> Result<ShardOutput, IndexError> {
                    for mut batch in rx {
                        for pkt in batch.iter() {
                            worker.packet(&pkt)?;
                        }
                        batch.clear();
                        // The reader may be gone (it stopped on an error).
                        let _ = spent.send(batch);
                    }
                    worker.finish()
                })
                .map_err(|e| IndexError::Worker(format!("cannot start a thread: {e}")))?;
            handles.push(handle);
        }
        drop(spent_tx);
        let mut pending: Vec<PacketBatch> = (0..shards).map(|_| PacketBatch::default()).collect();
        let mut send_failed = false;
        let capture_error = 'read: loop {
            let offset = reader.offset();
            match reader.next_packet() {
                Ok(Some(pkt)) => {
                    if !count(&pkt, offset) {
                        // Cancelled: the workers finish what they hold and
                        // the caller discards it.
                        break 'read None;
                    }
                    let shard = shard_of(&pkt, &hasher, shards);
                    let Some(batch) = pending.get_mut(shard) else {
                        continue;
                    };
                    batch.push(&pkt);
                    if batch.packets.len() >= BATCH_PACKETS {
                        let fresh = spent_rx.try_recv().unwrap_or_default();
                        let full = std::mem::replace(batch, fresh);
                        let sent = senders.get(shard).map(|tx| tx.send(full));
                        if !matches!(sent, Some(Ok(()))) {
                            // The worker quit on an error; join() reports it.
                            send_failed = true;
                            break 'read None;
                        }
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        if !send_failed {
            for (batch, tx) in pending.into_iter().zip(&senders) {
                if !batch.packets.is_empty() && tx.send(batch).is_err() {
                    break;
                }
            }
        }
        drop(senders);
        let mut outputs = Vec::with_capacity(shards);
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(o)) => outputs.push(o),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".to_owned());
                    first_error.get_or_insert(IndexError::Worker(msg));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((outputs, capture_error)),
        }
    })
}

/// The resolver for pass 2, after the DNS pre-scan if it is on; `None`
/// when neither workloads nor DNS learning are asked for.
fn identities(
    path: &Path,
    opts: &IndexOptions,
) -> Result<(Option<DnsPrescan>, Option<Arc<Resolver>>), IndexError> {
    if opts.workloads.is_none() && !opts.learn_dns {
        return Ok((None, None));
    }
    let mut resolver = Resolver::new(opts.workloads.clone().unwrap_or_default());
    let mut prescan = None;
    if opts.learn_dns {
        let (learner, scan) = learn_dns(path, &opts.node)?;
        tracing::info!(
            dns_packets = scan.dns_packets,
            dns_calls = scan.dns_calls,
            addresses = scan.addresses,
            "DNS pre-scan done"
        );
        resolver = resolver.with_dns(learner);
        prescan = Some(scan);
    }
    Ok((prescan, Some(Arc::new(resolver))))
}

/// Pass 1: reads the capture at `path` once, feeds only packets that may
/// carry DNS (TCP or UDP port 53, and IP fragments, whose ports are in
/// the first fragment only) to one pipeline, and learns every DNS call's
/// answers. DNS is a few percent of typical traffic, so this costs one
/// read and decode of the file, not a second dissection. A damaged capture
/// is learned up to the damage (pass 2 reports it).
pub fn learn_dns(path: &Path, node: &str) -> Result<(DnsLearner, DnsPrescan), IndexError> {
    let mut reader = CaptureReader::open(path)?;
    let mut pipeline = Pipeline::new(PipelineConfig {
        node: node.to_owned(),
        ..PipelineConfig::default()
    });
    let mut learner = DnsLearner::new();
    let mut scan = DnsPrescan::default();
    let mut sink = |call: Call| {
        if call.protocol == Some(trawl_model::Protocol::Dns) {
            scan.dns_calls += 1;
            learner.learn(&call);
        }
    };
    while let Ok(Some(pkt)) = reader.next_packet() {
        scan.packets += 1;
        if may_be_dns(&pkt) {
            scan.dns_packets += 1;
            pipeline.packet(&pkt, &mut sink);
        }
    }
    pipeline.finish(&mut sink);
    scan.addresses = learner.len();
    scan.stats = learner.stats();
    Ok((learner, scan))
}

/// The DNS port, UDP and TCP.
const DNS_PORT: u16 = 53;

/// Whether a frame may be DNS: TCP or UDP to or from port 53, or an IP
/// fragment (defragmentation needs them all; its ports are unknown here).
fn may_be_dns(pkt: &RawPacket<'_>) -> bool {
    let Ok(ip) = decode::decode_link(pkt.link, pkt.data) else {
        return false;
    };
    if ip.fragment.is_some() {
        return true;
    }
    match decode::decode_transport(ip.protocol, ip.payload, ip.payload_len) {
        Ok(decode::Transport::Udp(u)) => u.src_port == DNS_PORT || u.dst_port == DNS_PORT,
        Ok(decode::Transport::Tcp(t)) => t.src_port == DNS_PORT || t.dst_port == DNS_PORT,
        _ => false,
    }
}

fn manifest_of(
    source: &Path,
    source_bytes: u64,
    shards: usize,
    opts: &IndexOptions,
    outputs: &[ShardOutput],
    read: ReadTotals,
) -> Manifest {
    let first_ts = read.first_ts.unwrap_or(0);
    let last_ts = read.last_ts.unwrap_or(0);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Manifest {
        schema_version: SCHEMA_VERSION,
        source: source.display().to_string(),
        source_bytes,
        node: opts.node.clone(),
        packets: read.packets,
        bytes: read.bytes,
        calls: outputs.iter().map(|o| o.calls).sum(),
        flows: outputs.iter().map(|o| o.flows).sum(),
        first_ts,
        last_ts,
        first_time: rfc3339_nanos(first_ts),
        last_time: rfc3339_nanos(last_ts),
        created: rfc3339_nanos(created),
        shards: u32::try_from(shards).unwrap_or(u32::MAX),
        max_body_bytes: opts.max_body_bytes as u64,
        capture_error: read.capture_error,
        calls_parts: outputs
            .iter()
            .flat_map(|o| o.calls_parts.iter().cloned())
            .collect(),
        flows_parts: outputs
            .iter()
            .flat_map(|o| o.flows_parts.iter().cloned())
            .collect(),
        payload_parts: outputs
            .iter()
            .filter_map(|o| o.payload_part.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let mut ip = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn both_directions_land_on_one_shard() {
        let hasher = foldhash::fast::FixedState::with_seed(SHARD_SEED);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..64u8 {
            let a = eth_ipv4([10, 1, 0, i], [10, 2, 0, 1]);
            let b = eth_ipv4([10, 2, 0, 1], [10, 1, 0, i]);
            let pkt = |data: &[u8]| -> usize {
                let p = RawPacket {
                    ts_ns: 0,
                    link: LinkType::Ethernet,
                    interface: 0,
                    data,
                    orig_len: data.len() as u32,
                };
                shard_of(&p, &hasher, 2)
            };
            assert_eq!(pkt(&a), pkt(&b));
            used.insert(pkt(&a));
        }
        assert_eq!(used.len(), 2, "64 host pairs use both shards");
    }

    #[test]
    fn a_cancelled_run_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("trawl-cancel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A classic pcap header (Ethernet) and one small UDP packet.
        let mut pcap = Vec::new();
        pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        pcap.extend_from_slice(&2u16.to_le_bytes());
        pcap.extend_from_slice(&4u16.to_le_bytes());
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&65535u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        let frame = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2]);
        pcap.extend_from_slice(&1u32.to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
        let capture = dir.join("c.pcap");
        std::fs::write(&capture, &pcap).unwrap();
        let out = dir.join("idx");

        let opts = IndexOptions::default();
        let flag = opts.cancel.clone();
        assert_eq!(opts, opts.clone(), "clones share the flag");
        assert_ne!(
            opts.cancel,
            Cancel::default(),
            "a fresh flag is another flag"
        );
        flag.cancel();
        assert!(opts.cancel.is_cancelled());
        let err = index_capture(&capture, &out, &opts, &|_| {}).unwrap_err();
        assert!(matches!(err, IndexError::Cancelled), "{err}");
        assert_eq!(err.to_string(), "indexing was cancelled");
        assert!(!out.exists(), "no index after a cancelled run");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("c.pcap")],
            "no temporary directory"
        );

        // The same capture indexes with a fresh flag.
        let fresh = IndexOptions::default();
        index_capture(&capture, &out, &fresh, &|_| {}).unwrap();
        assert!(out.join(crate::MANIFEST_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
