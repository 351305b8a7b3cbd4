//! The index manifest (`manifest.json`) and the directory dance that makes
//! an index appear whole or not at all.
//!
//! An index is built in `<out>.tmp-<pid>/` next to its final place; every
//! file is synced, the manifest is written last, and the directory is
//! renamed into place. A reader ([`open_index`]) accepts a directory only
//! when it has a manifest of a schema version it knows, so a crash at any
//! point leaves either the old index, or no index, never a half one. The
//! next run removes tmp directories whose process is gone.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::IndexError;

/// Name of the manifest inside an index directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the table layout. Bump it when a column changes type or
/// meaning; readers refuse other versions rather than misread them.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest manifest read. A manifest lists a few part files per shard;
/// 16 MiB is thousands of times that.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// What an index holds. Written by the indexer, read before any query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    /// The capture file, as given to the indexer.
    pub source: String,
    /// Size of the capture file in bytes.
    pub source_bytes: u64,
    pub node: String,
    /// Packets and captured bytes read.
    pub packets: u64,
    pub bytes: u64,
    pub calls: u64,
    pub flows: u64,
    /// First and last packet time, nanoseconds since the Unix epoch (0
    /// when the capture had no packets), and the same in RFC 3339.
    pub first_ts: i64,
    pub last_ts: i64,
    pub first_time: String,
    pub last_time: String,
    /// When the index was written (RFC 3339, UTC).
    pub created: String,
    /// Shards (threads) the capture was split into.
    pub shards: u32,
    /// Kept-body cap per message used while indexing.
    pub max_body_bytes: u64,
    /// Set when the capture was damaged: what and where. Everything before
    /// the damage is indexed.
    pub capture_error: Option<String>,
    /// Part files relative to the index directory.
    pub calls_parts: Vec<String>,
    pub flows_parts: Vec<String>,
    pub payload_parts: Vec<String>,
}

/// Reads and checks the manifest of index directory `dir`.
pub fn open_index(dir: &Path) -> Result<Manifest, IndexError> {
    let path = dir.join(MANIFEST_FILE);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !dir.is_dir() {
                return Err(IndexError::Io {
                    path: dir.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such index directory",
                    ),
                });
            }
            return Err(IndexError::NotAnIndex(dir.to_owned()));
        }
        Err(e) => return Err(IndexError::Io { path, source: e }),
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(IndexError::BadManifest {
            path,
            reason: format!("{} bytes, over {MAX_MANIFEST_BYTES}", meta.len()),
        });
    }
    let text = std::fs::read(&path).map_err(IndexError::io(&path))?;
    // Check the version before the shape, so an index from another
    // version says so instead of "unknown field".
    let version = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("schema_version")?.as_u64());
    if let Some(found) = version
        && found != u64::from(SCHEMA_VERSION)
    {
        return Err(IndexError::SchemaVersion {
            path,
            found: u32::try_from(found).unwrap_or(u32::MAX),
            expected: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(&text).map_err(|e| IndexError::BadManifest {
        path,
        reason: e.to_string(),
    })
}

/// Writes the manifest into `dir` and syncs it.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), IndexError> {
    let path = dir.join(MANIFEST_FILE);
    let mut text = serde_json::to_vec_pretty(m).map_err(|e| IndexError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    text.push(b'\n');
    let mut f = File::create(&path).map_err(IndexError::io(&path))?;
    f.write_all(&text).map_err(IndexError::io(&path))?;
    f.sync_all().map_err(IndexError::io(&path))
}

/// Syncs a directory so that the entries created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(IndexError::io(dir))
}

/// The directory an index for `out` is built in by this process.
pub(crate) fn tmp_dir_for(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    out.with_file_name(name)
}

/// Removes `<out>.tmp-<pid>` directories left by indexers that died. One
/// whose process still runs is another indexer at work: that is an error.
pub(crate) fn remove_stale_tmp_dirs(out: &Path) -> Result<(), IndexError> {
    let Some(name) = out.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.tmp-");
    let entries = match std::fs::read_dir(&parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(IndexError::Io {
                path: parent,
                source: e,
            });
        }
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
            return Err(IndexError::Busy { path, pid });
        }
        tracing::info!(path = %path.display(), "Removing an interrupted indexing's directory.");
        std::fs::remove_dir_all(&path).map_err(IndexError::io(&path))?;
    }
    Ok(())
}

pub(crate) use trawl_model::time::rfc3339_nanos;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_manifest_is_not_an_index() {
        let dir = std::env::temp_dir().join(format!("trawl-manifest-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("calls")).unwrap();
        assert!(matches!(open_index(&dir), Err(IndexError::NotAnIndex(_))));
        std::fs::write(dir.join(MANIFEST_FILE), br#"{"schema_version": 99}"#).unwrap();
        assert!(matches!(
            open_index(&dir),
            Err(IndexError::SchemaVersion { found: 99, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
