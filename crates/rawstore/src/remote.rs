//! Snapshot upload to and download from S3-compatible object storage (AWS
//! S3, MinIO, Ceph, moto…) with `object_store`. A snapshot `<id>` becomes
//! the objects `<prefix>/<id>/manifest.json` and `<prefix>/<id>/nodes/…`.
//!
//! Called by the CLI and the hub (`trawl snapshot upload|download`, later).
//! This is the only async code below `index`: `object_store` is async, so
//! each call runs it on a private current-thread tokio runtime and blocks;
//! callers stay synchronous. The manifest is uploaded last, so a reader
//! that finds it finds a whole snapshot; a download is written to a hidden
//! directory and renamed into place, like a snapshot being created.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Deserialize;

use crate::snapshot::{Snapshot, SnapshotManifest, SnapshotStatus, get_snapshot, snapshots_dir};

/// Files larger than this go up in parts of this size (S3's minimum part is
/// 5 MiB; 8 MiB keeps a 64 MiB segment at 8 parts and memory at a few
/// parts in flight).
const PART_BYTES: usize = 8 << 20;
/// Largest manifest downloaded (same limit as reading one from disk).
const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// Where snapshots are stored remotely. Parsed strictly; the credentials
/// may come from the usual `AWS_*` environment variables instead.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Bucket name (must exist).
    pub bucket: String,
    /// Endpoint URL for S3-compatible services (`http://127.0.0.1:9000`);
    /// absent for AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Key prefix under which snapshots go (default `trawl/snapshots`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Allow plain-HTTP endpoints (test servers, in-cluster MinIO).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_prefix() -> String {
    "trawl/snapshots".into()
}

// By hand, so that the secret never reaches a log.
impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Errors of remote transfers.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("cannot start the I/O runtime")]
    Runtime(#[source] io::Error),
    #[error("{path}: {op}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("remote snapshot {id}: {msg}")]
    Invalid { id: String, msg: String },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> RemoteError + 'a {
    move |source| RemoteError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// What a transfer moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    pub files: u64,
    pub bytes: u64,
}

fn store(cfg: &RemoteConfig) -> Result<Arc<dyn ObjectStore>, RemoteError> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_allow_http(cfg.allow_http);
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(k) = &cfg.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = &cfg.secret_access_key {
        b = b.with_secret_access_key(s);
    }
    Ok(Arc::new(b.build()?))
}

fn block_on<T>(f: impl Future<Output = Result<T, RemoteError>>) -> Result<T, RemoteError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)?;
    rt.block_on(f)
}

fn key(cfg: &RemoteConfig, id: &str, rel: &str) -> ObjPath {
    let prefix = cfg.prefix.trim_matches('/');
    if prefix.is_empty() {
        ObjPath::from(format!("{id}/{rel}"))
    } else {
        ObjPath::from(format!("{prefix}/{id}/{rel}"))
    }
}

/// The packet files a manifest lists, checked to stay inside the snapshot
/// directory (`nodes/<node>/<file>.pcap`).
fn manifest_files(m: &SnapshotManifest) -> Result<Vec<(String, u64)>, RemoteError> {
    let mut out = Vec::new();
    for n in &m.nodes {
        for f in &n.files {
            let parts: Vec<&str> = f.path.split('/').collect();
            let ok = parts.len() == 3
                && parts.first() == Some(&"nodes")
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && !p.starts_with('.') && !p.contains('\\'));
            if !ok {
                return Err(RemoteError::Invalid {
                    id: m.id.clone(),
                    msg: format!("file path {:?} is outside the snapshot", f.path),
                });
            }
            out.push((f.path.clone(), f.bytes));
        }
    }
    Ok(out)
}

async fn put_file(os: &dyn ObjectStore, path: &Path, dest: &ObjPath) -> Result<u64, RemoteError> {
    let mut f = File::open(path).map_err(io_err(path, "open"))?;
    let len = f.metadata().map_err(io_err(path, "stat"))?.len();
    if len <= PART_BYTES as u64 {
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(io_err(path, "read"))?;
        os.put(dest, PutPayload::from(buf)).await?;
        return Ok(len);
    }
    let mut up = WriteMultipart::new_with_chunk_size(os.put_multipart(dest).await?, PART_BYTES);
    let mut buf = vec![0u8; PART_BYTES];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path, "read"))?;
        if n == 0 {
            break;
        }
        // At most 4 parts in flight: memory stays at a few parts.
        up.wait_for_capacity(4).await?;
        up.write(buf.get(..n).unwrap_or(&[]));
    }
    up.finish().await?;
    Ok(len)
}

/// Uploads a ready snapshot; the manifest goes last.
pub fn upload_snapshot(
    cfg: &RemoteConfig,
    snapshot: &Snapshot,
) -> Result<TransferStats, RemoteError> {
    let m = &snapshot.manifest;
    if m.status != SnapshotStatus::Ready {
        return Err(RemoteError::Invalid {
            id: m.id.clone(),
            msg: format!(
                "status is {:?}, only ready snapshots are uploaded",
                m.status
            ),
        });
    }
    let files = manifest_files(m)?;
    let os = store(cfg)?;
    block_on(async {
        let mut stats = TransferStats::default();
        for (rel, _) in &files {
            stats.bytes +=
                put_file(os.as_ref(), &snapshot.dir.join(rel), &key(cfg, &m.id, rel)).await?;
            stats.files += 1;
        }
        stats.bytes += put_file(
            os.as_ref(),
            &snapshot.dir.join("manifest.json"),
            &key(cfg, &m.id, "manifest.json"),
        )
        .await?;
        stats.files += 1;
        tracing::info!(id = %m.id, files = stats.files, bytes = stats.bytes, "Snapshot uploaded.");
        Ok(stats)
    })
}

/// Ids of the snapshots stored remotely (those whose manifest is there),
/// sorted.
pub fn list_remote_snapshots(cfg: &RemoteConfig) -> Result<Vec<String>, RemoteError> {
    let os = store(cfg)?;
    let prefix = ObjPath::from(cfg.prefix.trim_matches('/'));
    block_on(async {
        let mut ids = Vec::new();
        let mut s = os.list(Some(&prefix));
        while let Some(meta) = s.next().await {
            let meta = meta?;
            let parts: Vec<_> = meta.location.parts().collect();
            if let [.., id, last] = parts.as_slice()
                && last.as_ref() == "manifest.json"
            {
                ids.push(id.as_ref().to_string());
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    })
}

async fn get_to_file(os: &dyn ObjectStore, src: &ObjPath, path: &Path) -> Result<u64, RemoteError> {
    let mut out =
        io::BufWriter::with_capacity(1 << 20, File::create(path).map_err(io_err(path, "create"))?);
    let mut stream = os.get(src).await?.into_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        out.write_all(&chunk).map_err(io_err(path, "write"))?;
        n += chunk.len() as u64;
    }
    out.into_inner()
        .map_err(|e| RemoteError::Io {
            path: path.to_path_buf(),
            op: "write",
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io_err(path, "sync"))?;
    Ok(n)
}

/// Downloads snapshot `id` into `<data_dir>/snapshots/<id>/` (which must
/// not exist yet) and returns it, files read-only like a local snapshot.
pub fn download_snapshot(
    cfg: &RemoteConfig,
    data_dir: &Path,
    id: &str,
) -> Result<Snapshot, RemoteError> {
    let root = snapshots_dir(data_dir);
    let dir = root.join(id);
    if dir.exists() {
        return Err(RemoteError::Invalid {
            id: id.into(),
            msg: format!("{} already exists; delete it first", dir.display()),
        });
    }
    // Same id rules as local snapshots.
    if get_snapshot(data_dir, id).is_err_and(|e| matches!(e, crate::SnapshotError::BadId(_))) {
        return Err(crate::SnapshotError::BadId(id.into()).into());
    }
    let os = store(cfg)?;
    let tmp = root.join(format!(".downloading-{id}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp, "create directory"))?;
    let res = block_on(async {
        let bytes = os
            .get(&key(cfg, id, "manifest.json"))
            .await?
            .bytes()
            .await?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RemoteError::Invalid {
                id: id.into(),
                msg: "manifest too large".into(),
            });
        }
        let m: SnapshotManifest =
            serde_json::from_slice(&bytes).map_err(|e| RemoteError::Invalid {
                id: id.into(),
                msg: format!("manifest: {e}"),
            })?;
        if m.id != id {
            return Err(RemoteError::Invalid {
                id: id.into(),
                msg: format!("manifest names snapshot {:?}", m.id),
            });
        }
        let mut stats = TransferStats::default();
        for (rel, want) in manifest_files(&m)? {
            let path = tmp.join(&rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent, "create directory"))?;
            }
            let got = get_to_file(os.as_ref(), &key(cfg, id, &rel), &path).await?;
            if got != want {
                return Err(RemoteError::Invalid {
                    id: id.into(),
                    msg: format!("{rel}: {got} bytes, the manifest says {want}"),
                });
            }
            stats.files += 1;
            stats.bytes += got;
        }
        let mpath = tmp.join("manifest.json");
        fs::write(&mpath, &bytes).map_err(io_err(&mpath, "write"))?;
        Ok(stats)
    });
    if let Err(e) = res {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    crate::snapshot::make_read_only(&tmp)?;
    fs::rename(&tmp, &dir).map_err(io_err(&dir, "rename snapshot into place"))?;
    Ok(get_snapshot(data_dir, id)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ImportRequest, import_pcap};
    use crate::testutil::{T0, frame};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use trawl_packet::LinkType;
    use trawl_packet::capfile::PcapWriter;

    struct Moto(Child);
    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts moto's S3 server on a free port with a bucket, or says why not.
    fn moto() -> Option<(Moto, String)> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => Moto(c),
            Err(e) => {
                eprintln!(
                    "SKIPPED: remote tests: cannot start moto_server ({e}); pip install 'moto[server]'"
                );
                return None;
            }
        };
        // Wait for it to listen (up to 30 s: a cold Python start is slow).
        for _ in 0..300 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                // Create the bucket: moto accepts unsigned requests.
                write!(
                    s,
                    "PUT /trawl-test HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .ok()?;
                let mut resp = String::new();
                s.read_to_string(&mut resp).ok()?;
                if resp.starts_with("HTTP/1.1 200") {
                    return Some((child, format!("http://127.0.0.1:{port}")));
                }
                eprintln!("SKIPPED: remote tests: moto refused the bucket: {resp}");
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("SKIPPED: remote tests: moto_server did not start listening");
        None
    }

    #[test]
    fn upload_then_download_gives_the_same_snapshot() {
        let Some((_moto, endpoint)) = moto() else {
            return;
        };
        let cfg: RemoteConfig = serde_json::from_value(serde_json::json!({
            "bucket": "trawl-test",
            "endpoint": endpoint,
            "access_key_id": "test",
            "secret_access_key": "test",
            "allow_http": true,
        }))
        .unwrap();
        // A capture of ~12 MB so that one file goes up in parts.
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("in.pcap");
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, 0).unwrap();
        for i in 0..60_000u64 {
            w.write_packet(T0 + i as i64, &frame(i), 1500).unwrap();
        }
        fs::write(&file, w.into_inner()).unwrap();
        let src_data = tmp.path().join("a");
        let snap = import_pcap(
            &src_data,
            &file,
            &ImportRequest {
                name: "up".into(),
                node: "n1".into(),
                created_ns: T0,
            },
        )
        .unwrap();
        assert!(snap.manifest.bytes > PART_BYTES as u64);
        let up = upload_snapshot(&cfg, &snap).unwrap();
        assert_eq!(up.files, 2);
        assert_eq!(
            list_remote_snapshots(&cfg).unwrap(),
            vec![snap.manifest.id.clone()]
        );
        let dst_data = tmp.path().join("b");
        let got = download_snapshot(&cfg, &dst_data, &snap.manifest.id).unwrap();
        assert_eq!(got.manifest, snap.manifest);
        for n in &snap.manifest.nodes {
            for f in &n.files {
                let a = fs::read(snap.dir.join(&f.path)).unwrap();
                let b = fs::read(got.dir.join(&f.path)).unwrap();
                assert!(a == b, "{} differs", f.path);
            }
        }
        // A second download into the same place is refused.
        assert!(download_snapshot(&cfg, &dst_data, &snap.manifest.id).is_err());
        // An unknown id is an object-store error, and leaves nothing behind.
        let e = download_snapshot(&cfg, &dst_data, "20250101T000000.000Z-000000").unwrap_err();
        assert!(matches!(e, RemoteError::Store(_)), "{e}");
        assert_eq!(crate::list_snapshots(&dst_data).unwrap().len(), 1);
    }
}
