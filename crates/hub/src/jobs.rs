//! Dissection jobs: indexing a snapshot on demand, in the background, with
//! status and progress the API reports (`POST`/`GET`/`DELETE`
//! /api/v1/snapshots/{id}/dissection`). `DELETE` cancels a running job:
//! the indexer stops at its next check and leaves no index behind.
//!
//! The index goes next to the snapshot's packets, in `<snapshot>/index/`
//! (deleted with the snapshot), and is built by `trawl_index::index_capture`
//! with the index crate's crash safety: it appears whole or not at all. A
//! snapshot whose node holds one packet file is indexed straight from it;
//! several files (the window crossed a segment rotation) are first merged
//! in time order into one temporary file with `trawl_rawstore::export`,
//! because the indexer reads one capture. A snapshot of several nodes is
//! refused for now: the cluster hub will index each node's part on its
//! worker and merge the answers.
//!
//! Endpoints are named by the hub's workloads file
//! ([`crate::HubConfig::workloads`], `trawl tap --workloads`), read when
//! each job starts; a bad file refuses the job with its error.
//!
//! Jobs live in memory; after a restart a finished index is found on disk
//! (its manifest gives the counts) and an interrupted one is simply absent.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use trawl_identity::Workloads;
use trawl_index::{Cancel, IndexError, IndexOptions, Progress, index_capture, open_index};
use trawl_model::time::rfc3339_micros;
use trawl_rawstore::{ExportFormat, ExportOptions, Snapshot, SnapshotStatus, export};

use crate::error::{ApiError, not_dissected};

/// Directory of a snapshot's index, inside the snapshot directory.
pub const INDEX_DIR: &str = "index";

/// The merged capture a multi-file snapshot is indexed from; removed when
/// the job ends.
const MERGED_SOURCE: &str = ".dissection-source.pcap";

/// Where the index of the snapshot in `snapshot_dir` is.
pub fn index_dir(snapshot_dir: &Path) -> PathBuf {
    snapshot_dir.join(INDEX_DIR)
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    /// Stopped by `DELETE …/dissection`; no index was written.
    Cancelled,
}

/// How far indexing got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct JobProgress {
    pub packets: u64,
    pub bytes_read: u64,
    pub total_bytes: u64,
    /// `bytes_read / total_bytes`, 0 to 1.
    pub fraction: f64,
}

/// What the index holds, once done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub packets: u64,
    pub calls: u64,
    pub flows: u64,
    /// Calls per protocol; known when the job ran in this process.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub calls_by_protocol: BTreeMap<String, u64>,
    /// Set when a packet file was damaged: indexing stopped there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_error: Option<String>,
}

/// The answer of `GET /api/v1/snapshots/{id}/dissection`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DissectionStatus {
    pub snapshot_id: String,
    pub status: JobState,
    /// `merging` (several packet files into one), `indexing`, or `done`.
    pub phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub progress: JobProgress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<JobCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One job: its status, shared with its thread, and the flag that stops it.
#[derive(Debug)]
struct Job {
    status: Arc<Mutex<DissectionStatus>>,
    cancel: Cancel,
}

/// The dissection jobs of this process, by snapshot id.
#[derive(Debug, Default)]
pub struct Jobs {
    by_snapshot: Mutex<HashMap<String, Job>>,
    /// The workloads file each job names endpoints by ([`crate::HubConfig::workloads`]).
    workloads: Option<PathBuf>,
}

/// Reads the workloads file when a dissection starts, not when the hub
/// starts: a Kubernetes-like source rewrites it, and the lab writes its
/// file at the end of a run. A file that cannot be read or is invalid
/// refuses the job (400 `bad_workloads`, with the file's own message and
/// position) rather than indexing silently without names.
fn load_workloads(path: Option<&Path>) -> Result<Option<Workloads>, ApiError> {
    let Some(path) = path else {
        return Ok(None);
    };
    Workloads::load(path).map(Some).map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_workloads",
            message,
        )
        .with_suggestion("fix the workloads file given to --workloads (YAML or JSON, as `trawl index --workloads` reads) and start the dissection again")
    })
}

fn now() -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    rfc3339_micros(ns)
}

fn snapshot_of(s: &Arc<Mutex<DissectionStatus>>) -> DissectionStatus {
    s.lock()
        .map(|g| g.clone())
        .unwrap_or_else(|p| p.into_inner().clone())
}

fn update(s: &Arc<Mutex<DissectionStatus>>, f: impl FnOnce(&mut DissectionStatus)) {
    match s.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// The status of an index found on disk (made earlier, or by another
/// process); `None` when there is none.
fn on_disk(snap: &Snapshot) -> Option<DissectionStatus> {
    let m = open_index(&index_dir(&snap.dir)).ok()?;
    Some(DissectionStatus {
        snapshot_id: snap.manifest.id.clone(),
        status: JobState::Done,
        phase: "done",
        started: None,
        finished: Some(m.created.clone()),
        progress: JobProgress {
            packets: m.packets,
            bytes_read: m.source_bytes,
            total_bytes: m.source_bytes,
            fraction: 1.0,
        },
        counts: Some(JobCounts {
            packets: m.packets,
            calls: m.calls,
            flows: m.flows,
            calls_by_protocol: BTreeMap::new(),
            capture_error: m.capture_error,
        }),
        error: None,
    })
}

impl Jobs {
    /// Jobs that name endpoints by the workloads file at `workloads`, read
    /// anew by each job.
    pub fn new(workloads: Option<PathBuf>) -> Jobs {
        Jobs {
            by_snapshot: Mutex::default(),
            workloads,
        }
    }

    /// Starts indexing `snap` on a thread of its own, unless a job for it
    /// runs or its index exists: then that status is returned (starting is
    /// idempotent). A failed job is started again.
    pub fn start(&self, snap: Snapshot, threads: usize) -> Result<DissectionStatus, ApiError> {
        let id = snap.manifest.id.clone();
        let mut map = self
            .by_snapshot
            .lock()
            .map_err(|_| ApiError::internal("the job table is poisoned"))?;
        if let Some(job) = map.get(&id) {
            let st = snapshot_of(&job.status);
            if !matches!(st.status, JobState::Failed | JobState::Cancelled) {
                return Ok(st);
            }
        }
        if let Some(st) = on_disk(&snap) {
            return Ok(st);
        }
        if snap.manifest.status != SnapshotStatus::Ready {
            return Err(ApiError::conflict(
                "not_ready",
                format!(
                    "snapshot {id} is {:?}, not ready; only a ready snapshot is dissected",
                    snap.manifest.status
                ),
            ));
        }
        let node = match snap.manifest.nodes.as_slice() {
            [n] => n.node.clone(),
            [] => {
                return Err(ApiError::conflict(
                    "empty_snapshot",
                    format!("snapshot {id} holds no packets; nothing to dissect"),
                ));
            }
            many => {
                let names: Vec<&str> = many.iter().map(|n| n.node.as_str()).collect();
                return Err(ApiError::new(
                    axum::http::StatusCode::NOT_IMPLEMENTED,
                    "not_implemented",
                    format!(
                        "snapshot {id} covers nodes {}; dissecting several nodes at once comes with the cluster hub",
                        names.join(", ")
                    ),
                )
                .with_suggestion("snapshot one node at a time (\"nodes\": [\"NAME\"])"));
            }
        };
        let workloads = load_workloads(self.workloads.as_deref())?;
        let status = Arc::new(Mutex::new(DissectionStatus {
            snapshot_id: id.clone(),
            status: JobState::Running,
            phase: "indexing",
            started: Some(now()),
            finished: None,
            progress: JobProgress::default(),
            counts: None,
            error: None,
        }));
        let first = snapshot_of(&status);
        let shared = Arc::clone(&status);
        let cancel = Cancel::default();
        let flag = cancel.clone();
        std::thread::Builder::new()
            .name(format!("trawl-dissect-{id}"))
            .spawn(move || {
                let result = run(&snap, &node, threads, workloads, flag, &shared);
                update(&shared, |s| {
                    s.finished = Some(now());
                    match result {
                        Ok(counts) => {
                            s.status = JobState::Done;
                            s.phase = "done";
                            s.progress.fraction = 1.0;
                            s.counts = Some(counts);
                        }
                        Err(RunError::Cancelled) => {
                            tracing::info!(snapshot = %s.snapshot_id, "Dissection cancelled.");
                            s.status = JobState::Cancelled;
                            s.error = Some(format!(
                                "cancelled by DELETE /api/v1/snapshots/{}/dissection; POST it to start again",
                                s.snapshot_id
                            ));
                        }
                        Err(RunError::Failed(e)) => {
                            tracing::warn!(snapshot = %s.snapshot_id, error = %e, "Dissection failed.");
                            s.status = JobState::Failed;
                            s.error = Some(e);
                        }
                    }
                });
            })
            .map_err(|e| ApiError::internal(format!("cannot start the dissection thread: {e}")))?;
        map.insert(id, Job { status, cancel });
        Ok(first)
    }

    /// The status of `snap`'s dissection: the job of this process, or an
    /// index on disk; `not_dissected` otherwise.
    pub fn status(&self, snap: &Snapshot) -> Result<DissectionStatus, ApiError> {
        let job = self
            .by_snapshot
            .lock()
            .ok()
            .and_then(|m| m.get(&snap.manifest.id).map(|j| Arc::clone(&j.status)));
        if let Some(s) = job {
            return Ok(snapshot_of(&s));
        }
        on_disk(snap).ok_or_else(not_dissected)
    }

    /// Whether a job runs on snapshot `id` (it must not be deleted then).
    pub fn running(&self, id: &str) -> bool {
        self.by_snapshot.lock().ok().is_some_and(|m| {
            m.get(id)
                .is_some_and(|j| snapshot_of(&j.status).status == JobState::Running)
        })
    }

    /// Asks the running job on `snap` to stop and returns its status (still
    /// `running`: it becomes `cancelled` at the indexer's next check, within
    /// a fraction of a second). 409 `not_running` when no job runs.
    pub fn cancel(&self, snap: &Snapshot) -> Result<DissectionStatus, ApiError> {
        let id = &snap.manifest.id;
        let map = self
            .by_snapshot
            .lock()
            .map_err(|_| ApiError::internal("the job table is poisoned"))?;
        if let Some(job) = map.get(id) {
            let st = snapshot_of(&job.status);
            if st.status == JobState::Running {
                job.cancel.cancel();
                return Ok(st);
            }
        }
        Err(ApiError::conflict(
            "not_running",
            format!("no dissection of snapshot {id} is running; nothing to cancel"),
        )
        .with_suggestion(format!(
            "GET /api/v1/snapshots/{id}/dissection shows its state; POST it to start one"
        )))
    }

    /// Forgets the job of a deleted snapshot.
    pub fn forget(&self, id: &str) {
        if let Ok(mut m) = self.by_snapshot.lock() {
            m.remove(id);
        }
    }
}

/// How a job ended other than done.
enum RunError {
    Cancelled,
    Failed(String),
}

impl From<String> for RunError {
    fn from(e: String) -> Self {
        RunError::Failed(e)
    }
}

/// The job itself: merge if needed, index, clean up.
fn run(
    snap: &Snapshot,
    node: &str,
    threads: usize,
    workloads: Option<Workloads>,
    cancel: Cancel,
    status: &Arc<Mutex<DissectionStatus>>,
) -> Result<JobCounts, RunError> {
    let files: Vec<&trawl_rawstore::SnapshotFile> = snap
        .manifest
        .nodes
        .iter()
        .flat_map(|n| n.files.iter())
        .collect();
    let merged = snap.dir.join(MERGED_SOURCE);
    let source = match files.as_slice() {
        [one] => snap.dir.join(&one.path),
        _ => {
            update(status, |s| s.phase = "merging");
            let same_link = files
                .windows(2)
                .all(|w| w.first().map(|f| f.link) == w.last().map(|f| f.link));
            let format = if same_link {
                ExportFormat::Pcap
            } else {
                ExportFormat::PcapNg
            };
            let f = File::create(&merged)
                .map_err(|e| format!("cannot create {}: {e}", merged.display()))?;
            let mut w = BufWriter::new(f);
            let opts = ExportOptions {
                format,
                ..ExportOptions::default()
            };
            export(snap, &opts, &mut w).map_err(|e| format!("merging the packet files: {e}"))?;
            w.flush()
                .map_err(|e| format!("cannot write {}: {e}", merged.display()))?;
            merged.clone()
        }
    };
    update(status, |s| s.phase = "indexing");
    let opts = IndexOptions {
        node: node.to_owned(),
        threads,
        workloads,
        cancel,
        ..IndexOptions::default()
    };
    let progress = |p: Progress| {
        update(status, |s| {
            s.progress = JobProgress {
                packets: p.packets,
                bytes_read: p.bytes_read,
                total_bytes: p.total_bytes,
                fraction: if p.total_bytes == 0 {
                    0.0
                } else {
                    (p.bytes_read as f64 / p.total_bytes as f64).min(1.0)
                },
            };
        });
    };
    let result = index_capture(&source, &index_dir(&snap.dir), &opts, &progress);
    if source == merged {
        let _ = std::fs::remove_file(&merged);
    }
    let summary = result.map_err(|e| match e {
        IndexError::Cancelled => RunError::Cancelled,
        e => RunError::Failed(e.to_string()),
    })?;
    let m = summary.manifest;
    tracing::info!(snapshot = %snap.manifest.id, calls = m.calls, flows = m.flows, "Snapshot dissected.");
    Ok(JobCounts {
        packets: m.packets,
        calls: m.calls,
        flows: m.flows,
        calls_by_protocol: summary.calls_by_protocol,
        capture_error: m.capture_error,
    })
}
