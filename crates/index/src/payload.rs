//! The payload store: kept message bodies, one file per indexing shard
//! (`payloads/part-<shard>.bin`), each body a snappy block of its own at
//! the offset its [`PayloadRef`] names. Calls carry the references in their
//! `request_body_ref` / `response_body_ref` columns; [`read_payload`] gets
//! the bytes back.
//!
//! Why snappy blocks, one per body: a reference must be readable alone (an
//! agent asks for one call's body), so bodies are compressed independently
//! rather than as one stream; snappy is pure Rust, compresses and
//! decompresses at several hundred MB/s (indexing must not wait on it) and
//! still halves typical JSON and HTML. Bodies are already capped per
//! message by the dissector (`Limits::max_body_bytes`, 64 KiB when
//! indexing), so no frame format is needed on top of the raw block, whose
//! header states the decompressed length.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_model::Body;

use crate::IndexError;

/// Largest body the store keeps or gives back. The indexer refuses a
/// `max_body_bytes` above it; a reference claiming more is rejected before
/// anything is allocated. 16 MiB is far above the 64 KiB kept by default
/// and still small enough to hold in memory for display.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// Directory of payload files inside an index.
pub const PAYLOAD_DIR: &str = "payloads";

/// Where one kept body is: `length` stored (compressed) bytes at `offset`
/// of `file` (relative to the index directory), `size` bytes once
/// decompressed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRef {
    pub file: String,
    pub offset: u64,
    pub length: u64,
    /// Bytes kept (decompressed); the message's body may have been longer.
    pub size: u64,
    /// True when the body was longer than what was kept.
    pub truncated: bool,
    /// Content coding undone before keeping ("gzip", "deflate", "br"), or "".
    pub decoded_from: String,
}

/// Appends bodies to one payload file.
#[derive(Debug)]
pub struct PayloadWriter {
    out: BufWriter<File>,
    path: PathBuf,
    /// `payloads/part-<shard>.bin`, as references name it.
    name: String,
    offset: u64,
    encoder: snap::raw::Encoder,
    buf: Vec<u8>,
}

impl PayloadWriter {
    /// Creates `payloads/part-<shard>.bin` under `index_dir`.
    pub fn create(index_dir: &Path, shard: usize) -> Result<PayloadWriter, IndexError> {
        let name = format!("{PAYLOAD_DIR}/part-{shard}.bin");
        let path = index_dir.join(&name);
        let file = File::create(&path).map_err(IndexError::io(&path))?;
        Ok(PayloadWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            path,
            name,
            offset: 0,
            encoder: snap::raw::Encoder::new(),
            buf: Vec::new(),
        })
    }

    /// File name relative to the index directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stores a body; `None` when it has no bytes to keep.
    pub fn store(&mut self, body: &Body) -> Result<Option<PayloadRef>, IndexError> {
        if body.data.is_empty() {
            return Ok(None);
        }
        let data = body
            .data
            .get(..body.data.len().min(MAX_PAYLOAD_BYTES))
            .unwrap_or(&body.data);
        self.buf.resize(snap::raw::max_compress_len(data.len()), 0);
        let n = self
            .encoder
            .compress(data, &mut self.buf)
            .map_err(|e| IndexError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
        let block = self.buf.get(..n).unwrap_or(&[]);
        self.out
            .write_all(block)
            .map_err(IndexError::io(&self.path))?;
        let r = PayloadRef {
            file: self.name.clone(),
            offset: self.offset,
            length: n as u64,
            size: data.len() as u64,
            truncated: body.truncated || data.len() < body.data.len(),
            decoded_from: body.decoded_from.unwrap_or("").to_owned(),
        };
        self.offset += n as u64;
        Ok(Some(r))
    }

    /// Flushes and syncs the file to disk.
    pub fn finish(mut self) -> Result<u64, IndexError> {
        self.out.flush().map_err(IndexError::io(&self.path))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(IndexError::io(&self.path))?;
        Ok(self.offset)
    }
}

/// True for `payloads/part-<digits>.bin`: a reference may come from a
/// query result an agent passes back, so it must not name any other file.
fn is_payload_file(name: &str) -> bool {
    name.strip_prefix(PAYLOAD_DIR)
        .and_then(|r| r.strip_prefix("/part-"))
        .and_then(|r| r.strip_suffix(".bin"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The kept bytes of the body `r` points at, in index directory `dir`.
pub fn read_payload(dir: &Path, r: &PayloadRef) -> Result<Vec<u8>, IndexError> {
    if !is_payload_file(&r.file) {
        return Err(IndexError::BadPayloadRef(format!(
            "{:?} is not a payload file of an index (payloads/part-N.bin)",
            r.file
        )));
    }
    let max_stored = snap::raw::max_compress_len(MAX_PAYLOAD_BYTES) as u64;
    if r.length > max_stored {
        return Err(IndexError::BadPayloadRef(format!(
            "length {} is over the largest stored body ({max_stored} bytes)",
            r.length
        )));
    }
    let path = dir.join(&r.file);
    let mut file = File::open(&path).map_err(IndexError::io(&path))?;
    let file_len = file.metadata().map_err(IndexError::io(&path))?.len();
    if r.offset
        .checked_add(r.length)
        .is_none_or(|end| end > file_len)
    {
        return Err(IndexError::BadPayloadRef(format!(
            "{} bytes at offset {} run past the end of {} ({file_len} bytes)",
            r.length, r.offset, r.file
        )));
    }
    file.seek(SeekFrom::Start(r.offset))
        .map_err(IndexError::io(&path))?;
    // Bounded by `max_stored` above.
    let mut block = vec![0; usize::try_from(r.length).unwrap_or(0)];
    file.read_exact(&mut block).map_err(IndexError::io(&path))?;
    let bad = |e: snap::Error| {
        IndexError::BadPayloadRef(format!("{} at offset {}: {e}", r.file, r.offset))
    };
    let size = snap::raw::decompress_len(&block).map_err(bad)?;
    if size > MAX_PAYLOAD_BYTES {
        return Err(IndexError::BadPayloadRef(format!(
            "{} at offset {} claims {size} bytes, over {MAX_PAYLOAD_BYTES}",
            r.file, r.offset
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(&block)
        .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_back_and_bad_refs_are_refused() {
        let dir = std::env::temp_dir().join(format!("trawl-payload-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(PAYLOAD_DIR)).unwrap();
        let mut w = PayloadWriter::create(&dir, 3).unwrap();
        let a = Body {
            data: b"{\"hello\": \"world\"}".repeat(100),
            truncated: true,
            decoded_from: Some("gzip"),
        };
        let b = Body {
            data: vec![0, 1, 2, 255],
            ..Body::default()
        };
        let ra = w.store(&a).unwrap().unwrap();
        let rb = w.store(&b).unwrap().unwrap();
        assert!(w.store(&Body::default()).unwrap().is_none());
        w.finish().unwrap();
        assert!(ra.length < ra.size, "repetitive JSON compresses");
        assert!(ra.truncated);
        assert_eq!(ra.decoded_from, "gzip");
        assert_eq!(read_payload(&dir, &ra).unwrap(), a.data);
        assert_eq!(read_payload(&dir, &rb).unwrap(), b.data);

        let mut escape = rb.clone();
        escape.file = "payloads/../manifest.json".into();
        assert!(matches!(
            read_payload(&dir, &escape),
            Err(IndexError::BadPayloadRef(_))
        ));
        let mut past_end = rb.clone();
        past_end.offset += 1_000;
        assert!(matches!(
            read_payload(&dir, &past_end),
            Err(IndexError::BadPayloadRef(_))
        ));
        let mut huge = rb;
        huge.length = u64::MAX;
        assert!(matches!(
            read_payload(&dir, &huge),
            Err(IndexError::BadPayloadRef(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
