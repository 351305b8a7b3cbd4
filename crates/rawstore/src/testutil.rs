//! Helpers for this crate's tests: deterministic packets and readers that
//! go through `trawl_packet::CaptureReader` (the reader every consumer
//! uses), so that tests check what others will see, not what our own
//! scanner thinks.

use std::path::{Path, PathBuf};

use trawl_packet::{CaptureReader, LinkType};

/// One packet as the tests compare them: time, link, bytes, wire length.
pub type Pkt = (i64, LinkType, Vec<u8>, u32);

/// Base time of generated packets: 2025-11-28T00:00:00Z.
pub const T0: i64 = 1_764_288_000_000_000_000;

/// Frame `i`: 40 to 339 bytes, content derived from `i` so that a packet
/// put in the wrong place or cut shows up in a comparison.
pub fn frame(i: u64) -> Vec<u8> {
    let len = 40 + (i * 37 % 300) as usize;
    (0..len).map(|k| (i as usize * 31 + k) as u8).collect()
}

/// Every packet of a capture file.
pub fn read_file(path: &Path) -> Vec<Pkt> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        out.push((p.ts_ns, p.link, p.data.to_vec(), p.orig_len));
    }
    out
}

/// The segment files of a node directory, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    v
}

/// Every packet of a node's raw store, in file order.
pub fn read_store(data: &Path, node: &str) -> Vec<Pkt> {
    segment_files(&data.join("raw").join(node))
        .iter()
        .flat_map(|p| read_file(p))
        .collect()
}
