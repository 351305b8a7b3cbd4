//! PCAP export as a job: `POST /snapshots/{id}/exports` starts writing the
//! snapshot's packets (filtered, merged in time order) into a file on the
//! server, `GET …/exports/{export_id}` reports status and progress
//! (packets and bytes written), `GET …/exports/{export_id}/file` downloads
//! it once done, and `DELETE` cancels a running export or deletes a
//! finished one. The streaming `GET /snapshots/{id}/pcap` stays for
//! clients that want the bytes at once.
//!
//! On a node the job runs `trawl_rawstore::export` on a blocking thread;
//! on a cluster hub it first spools every worker's part
//! ([`crate::cluster::spool_export`]) and then merges them the same way,
//! so its status also says which nodes were missing. Jobs live in memory
//! and their files under `<data>/export-jobs/`; the newest
//! [`MAX_EXPORT_JOBS`] are kept.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use trawl_model::time::rfc3339_micros;
use trawl_rawstore::snapshot::new_snapshot_id;
use trawl_rawstore::{ExportFormat, ExportOptions, Snapshot, export};

use crate::api::{self, PcapQuery, json_body, now_ns};
use crate::{ApiError, Hub};

/// Export jobs (and files) kept: the oldest finished one goes when a new
/// one starts past this, so exports cannot fill the disk by accumulating.
pub const MAX_EXPORT_JOBS: usize = 16;

/// Where export files go, under the data directory.
pub const EXPORT_JOB_DIR: &str = "export-jobs";

/// Bytes read from an export file per chunk of a download.
const DOWNLOAD_CHUNK: usize = 1 << 20;

/// Where an export is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// The answer of `GET …/exports/{export_id}`.
#[derive(Clone, Debug, Serialize)]
pub struct ExportStatus {
    pub export_id: String,
    pub snapshot_id: String,
    pub status: ExportState,
    /// `spooling` (a hub fetching its workers' parts), `writing`, `done`.
    pub phase: &'static str,
    pub format: &'static str,
    pub packets: u64,
    pub bytes: u64,
    pub started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where to download it once done.
    pub download: String,
    /// Nodes a hub could not include (down, timed out).
    pub partial: bool,
    pub missing_nodes: Vec<String>,
}

/// One export job.
#[derive(Debug)]
pub struct ExportJob {
    status: Mutex<ExportStatus>,
    cancel: AtomicBool,
    path: PathBuf,
}

impl ExportJob {
    fn status(&self) -> ExportStatus {
        self.status
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn update(&self, f: impl FnOnce(&mut ExportStatus)) {
        match self.status.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn finish(&self, r: Result<u64, String>) {
        let cancelled = self.cancel.load(Ordering::Relaxed);
        self.update(|s| {
            s.finished = Some(rfc3339_micros(now_ns()));
            match r {
                _ if cancelled => {
                    s.status = ExportState::Cancelled;
                    s.phase = "done";
                }
                Ok(packets) => {
                    s.status = ExportState::Done;
                    s.phase = "done";
                    s.packets = packets;
                }
                Err(e) => {
                    s.status = ExportState::Failed;
                    s.error = Some(e);
                }
            }
        });
        if cancelled {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The export jobs of this process, oldest first.
#[derive(Debug, Default)]
pub struct Exports {
    jobs: Mutex<VecDeque<Arc<ExportJob>>>,
}

impl Exports {
    fn find(&self, snapshot: &str, export: &str) -> Option<Arc<ExportJob>> {
        self.jobs.lock().ok().and_then(|j| {
            j.iter()
                .find(|x| {
                    let s = x.status();
                    s.export_id == export && s.snapshot_id == snapshot
                })
                .cloned()
        })
    }

    /// Adds a job, dropping the oldest finished ones past the limit.
    fn add(&self, job: Arc<ExportJob>) {
        if let Ok(mut j) = self.jobs.lock() {
            j.push_back(job);
            while j.len() > MAX_EXPORT_JOBS {
                let Some(at) = j
                    .iter()
                    .position(|x| x.status().status != ExportState::Running)
                else {
                    break;
                };
                if let Some(old) = j.remove(at) {
                    let _ = std::fs::remove_file(&old.path);
                }
            }
        }
    }

    fn remove(&self, export: &str) {
        if let Ok(mut j) = self.jobs.lock() {
            j.retain(|x| x.status().export_id != export);
        }
    }
}

/// Counts what the export writes, and stops it when cancelled.
struct Counting<W> {
    inner: W,
    job: Arc<ExportJob>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.job.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "export cancelled",
            ));
        }
        let n = self.inner.write(buf)?;
        self.job.update(|s| s.bytes += n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the export into the job's file (blocking).
fn write_export(
    job: &Arc<ExportJob>,
    snap: &Snapshot,
    opts: &ExportOptions,
) -> Result<u64, String> {
    job.update(|s| s.phase = "writing");
    if let Some(d) = job.path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let f = std::fs::File::create(&job.path).map_err(|e| format!("{}: {e}", job.path.display()))?;
    let w = Counting {
        inner: f,
        job: Arc::clone(job),
    };
    let stats = export(snap, opts, w).map_err(|e| e.to_string())?;
    Ok(stats.packets)
}

fn download_path(snapshot: &str, export: &str) -> String {
    format!("/api/v1/snapshots/{snapshot}/exports/{export}/file")
}

/// `POST /api/v1/snapshots/{id}/exports` with the options of the
/// streaming route (`from`, `to`, `nodes`, `filter`, `format`) as JSON.
pub(crate) async fn start(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ExportStatus>), ApiError> {
    let q: PcapQuery = json_body(&body)?;
    let format = api::export_format(&q)?;
    let now = now_ns();
    let export_id = new_snapshot_id(now);
    let ext = match format {
        ExportFormat::Pcap => "pcap",
        ExportFormat::PcapNg => "pcapng",
    };
    let path = hub
        .config()
        .data_dir
        .join(EXPORT_JOB_DIR)
        .join(format!("{export_id}.{ext}"));
    // What can be checked at once is checked before the job starts, so a
    // bad filter or an unknown snapshot is the POST's 4xx.
    let node_source = match hub.cluster() {
        None => Some(api::node_export(&hub, id.clone(), &q).await?),
        Some(c) => {
            crate::cluster::export_manifest(c, &id, &q).await?;
            None
        }
    };
    let job = Arc::new(ExportJob {
        status: Mutex::new(ExportStatus {
            export_id: export_id.clone(),
            snapshot_id: id.clone(),
            status: ExportState::Running,
            phase: if node_source.is_some() {
                "writing"
            } else {
                "spooling"
            },
            format: ext,
            packets: 0,
            bytes: 0,
            started: rfc3339_micros(now),
            finished: None,
            error: None,
            download: download_path(&id, &export_id),
            partial: false,
            missing_nodes: Vec::new(),
        }),
        cancel: AtomicBool::new(false),
        path,
    });
    hub.exports().add(Arc::clone(&job));
    let first = job.status();
    match node_source {
        Some((snap, opts)) => {
            tokio::task::spawn_blocking(move || {
                let r = write_export(&job, &snap, &opts);
                job.finish(r);
            });
        }
        None => {
            let h = hub.clone();
            tokio::spawn(async move {
                let r = hub_export(&h, &id, &q, format, &job).await;
                job.finish(r);
            });
        }
    }
    Ok((StatusCode::ACCEPTED, Json(first)))
}

/// A hub's export: spool the workers' parts, then merge them into the file.
async fn hub_export(
    hub: &Hub,
    id: &str,
    q: &PcapQuery,
    format: ExportFormat,
    job: &Arc<ExportJob>,
) -> Result<u64, String> {
    let c = hub.cluster().ok_or("not a hub")?;
    let m = crate::cluster::export_manifest(c, id, q)
        .await
        .map_err(|e| e.message)?;
    let spooled = crate::cluster::spool_export(c, m, q)
        .await
        .map_err(|e| e.message)?;
    let missing: Vec<String> = spooled.missing.nodes.keys().cloned().collect();
    job.update(|s| {
        s.partial = !missing.is_empty();
        s.missing_nodes = missing;
    });
    let j = Arc::clone(job);
    let opts = ExportOptions {
        format,
        ..ExportOptions::default()
    };
    tokio::task::spawn_blocking(move || {
        let r = write_export(&j, &spooled.snap, &opts);
        for f in &spooled.files {
            let _ = std::fs::remove_file(f);
        }
        r
    })
    .await
    .map_err(|e| format!("the export thread failed: {e}"))?
}

fn job_of(hub: &Hub, id: &str, export_id: &str) -> Result<Arc<ExportJob>, ApiError> {
    hub.exports().find(id, export_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no export {export_id:?} of snapshot {id} (exports are kept in memory; the newest {MAX_EXPORT_JOBS})"
        ))
        .with_suggestion(format!("POST /api/v1/snapshots/{id}/exports starts one"))
    })
}

/// `GET …/exports/{export_id}`.
pub(crate) async fn status(
    State(hub): State<Hub>,
    Path((id, export_id)): Path<(String, String)>,
) -> Result<Json<ExportStatus>, ApiError> {
    Ok(Json(job_of(&hub, &id, &export_id)?.status()))
}

/// `DELETE …/exports/{export_id}`: cancels a running export (its file is
/// removed when the writer stops) or deletes a finished one.
pub(crate) async fn cancel(
    State(hub): State<Hub>,
    Path((id, export_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let job = job_of(&hub, &id, &export_id)?;
    if job.status().status == ExportState::Running {
        job.cancel.store(true, Ordering::Relaxed);
        return Ok(Json(json!({ "cancelled": export_id })));
    }
    let path = job.path.clone();
    api::blocking(move || match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
    })
    .await?;
    hub.exports().remove(&export_id);
    Ok(Json(json!({ "deleted": export_id })))
}

/// `GET …/exports/{export_id}/file`: the finished file.
pub(crate) async fn download(
    State(hub): State<Hub>,
    Path((id, export_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = job_of(&hub, &id, &export_id)?;
    let st = job.status();
    if st.status != ExportState::Done {
        return Err(ApiError::conflict(
            "not_ready",
            format!("export {export_id} is {:?}, not done", st.status).to_lowercase(),
        )
        .with_suggestion(format!(
            "poll GET /api/v1/snapshots/{id}/exports/{export_id} until status is \"done\""
        )));
    }
    let file = tokio::fs::File::open(&job.path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", job.path.display())))?;
    let stream = futures::stream::unfold(Some(file), |state| async move {
        use tokio::io::AsyncReadExt as _;
        let mut f = state?;
        let mut buf = vec![0u8; DOWNLOAD_CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(f)))
            }
            // The body ends with the error; nothing is read after it.
            Err(e) => Some((Err(e), None)),
        }
    });
    let ctype = if st.format == "pcapng" {
        "application/x-pcapng"
    } else {
        "application/vnd.tcpdump.pcap"
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{id}-{export_id}.{}\"",
        st.format
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, Body::from_stream(stream)).into_response())
}
