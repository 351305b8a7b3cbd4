//! trawl's index: a capture file becomes a directory of Parquet tables —
//! `calls` (one row per API call) and `flows` (one row per connection) —
//! plus a payload store for kept bodies, and SQL runs over them.
//!
//! Layout of an index directory (written by [`index_capture`]):
//!
//! ```text
//! DIR/manifest.json               what is here; without it DIR is not an index
//! DIR/calls/part-<shard>-<seq>.parquet
//! DIR/flows/part-<shard>-<seq>.parquet
//! DIR/payloads/part-<shard>.bin   snappy-compressed bodies, one block each
//! ```
//!
//! Columns follow the field catalogue in `trawl_model::catalogue` ([`schema`]).
//! Indexing runs one dissection pipeline per thread over flows sharded by
//! IP pair ([`indexer`]); queries go through DataFusion ([`sql`]). Called by
//! the CLI (`trawl index`, `trawl sql`) and, later, the hub and KFL queries.

pub mod flow_stats;
pub mod indexer;
pub mod kfl;
pub mod manifest;
pub mod payload;
pub mod schema;
pub mod sql;
pub mod stats;

use std::path::PathBuf;

pub use indexer::{Cancel, IndexOptions, IndexSummary, Progress, index_capture};
pub use manifest::{MANIFEST_FILE, Manifest, SCHEMA_VERSION, open_index};
pub use payload::{PayloadRef, read_payload};
pub use schema::{BATCH_ROWS, CallBatchBuilder, FlowBatchBuilder, calls_schema, flows_schema};
pub use sql::{QueryResult, run_sql, session};

/// Everything that can go wrong while indexing or querying, with the path
/// it concerns where there is one.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read capture: {0}")]
    Capture(#[from] trawl_packet::CaptureError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot build a record batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(
        "{} is not an index: it has no {MANIFEST_FILE} (an interrupted indexing leaves none); index the capture again",
        .0.display()
    )]
    NotAnIndex(PathBuf),
    #[error("{}: bad manifest: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
    #[error(
        "{} has index schema version {found}, this trawl reads version {expected}; index the capture again",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{} already exists; remove it or ask to overwrite it (trawl index --overwrite)", .0.display())]
    OutputExists(PathBuf),
    #[error(
        "{} is being written by another indexer (pid {pid}); wait for it, or remove the directory if that process is not trawl",
        path.display()
    )]
    Busy { path: PathBuf, pid: u32 },
    #[error("bad payload reference: {0}")]
    BadPayloadRef(String),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("an indexing thread failed: {0}")]
    Worker(String),
    /// [`Cancel::cancel`] was called during the run; nothing was written.
    #[error("indexing was cancelled")]
    Cancelled,
    /// A query failed: the message is DataFusion's innermost one (not its
    /// whole chain, which repeats itself), e.g. "Schema error: No field
    /// named nope. Did you mean 'calls.node'?".
    #[error("{}", query_message(.0))]
    Query(datafusion::error::DataFusionError),
}

impl From<datafusion::error::DataFusionError> for IndexError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        IndexError::Query(e)
    }
}

fn query_message(e: &datafusion::error::DataFusionError) -> String {
    match e.find_root() {
        datafusion::error::DataFusionError::SQL(parser, _) => parser.to_string(),
        root => root.strip_backtrace(),
    }
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IndexError {
        let path = path.into();
        move |source| IndexError::Io { path, source }
    }
}
