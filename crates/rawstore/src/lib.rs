//! trawl's raw packet storage: the rolling per-node raw store that live
//! capture writes ([`RawStore`]), its data boundaries, snapshots cut from it
//! or imported from capture files ([`create_snapshot`], [`import_pcap`]),
//! PCAP export of snapshots ([`export()`]), time windows as people type them
//! ([`parse_window`]) and snapshot upload to S3-compatible storage
//! ([`remote`]).
//!
//! Everything is synchronous and reads no clock (times come with the
//! packets, or from the caller); [`remote`] alone runs `object_store` on a
//! private current-thread runtime. Callers: `trawl tap` (store), `trawl
//! snapshot`/`import`/`export` and the hub API, and indexing (which reads
//! snapshot files with `trawl_packet::CaptureReader`).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod export;
pub mod remote;
pub mod segment;
pub mod snapshot;
pub mod store;
pub mod window;

#[cfg(test)]
mod testutil;

pub use export::{ExportError, ExportFormat, ExportOptions, ExportStats, PacketFilter, export};
pub use snapshot::{
    ImportRequest, Snapshot, SnapshotError, SnapshotFile, SnapshotManifest, SnapshotNode,
    SnapshotRequest, SnapshotStatus, create_snapshot, delete_snapshot, get_snapshot, import_pcap,
    list_snapshots,
};
pub use store::{
    Boundaries, NodeSource, RawStore, StoreConfig, StoreError, list_nodes, read_node_dir,
};
pub use window::{Window, WindowError, parse_duration, parse_time, parse_window};
