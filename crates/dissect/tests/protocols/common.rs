//! What every protocol's agreement test needs: where the shared captures
//! are, dissecting a capture file into calls, and reading a tshark truth
//! file (`*.truth.tsv`, made by ../shared/pcaps/make_truth.py).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use trawl_dissect::{Pipeline, PipelineConfig};
use trawl_model::Call;
use trawl_packet::CaptureReader;

/// ../shared/pcaps, or None (the caller skips loudly) when absent.
pub fn shared_pcaps() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps");
    p.is_dir().then_some(p)
}

/// Every call trawl's default pipeline finds in a capture file.
pub fn dissect(path: &Path) -> Vec<Call> {
    let mut reader = CaptureReader::open(path).unwrap();
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut calls = Vec::new();
    let mut sink = |c: Call| calls.push(c);
    while let Some(pkt) = reader.next_packet().unwrap() {
        pipeline.packet(&pkt, &mut sink);
    }
    pipeline.finish(&mut sink);
    calls
}

/// One tshark row: its column values by header name.
pub struct Row(HashMap<String, String>);

impl Row {
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map_or("", String::as_str)
    }
}

pub fn read_truth(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            Row(header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect())
        })
        .collect()
}

/// The capture files of one protocol prefix (`"resp-"`, `"pgsql-"`) in the
/// shared corpus, with their truth files, sorted by name.
pub fn captures_with_prefix(dir: &Path, prefix: &str) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || name.ends_with(".tsv") || name.ends_with(".keylog") {
            continue;
        }
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let truth = dir.join(format!("{stem}.truth.tsv"));
        if truth.is_file() {
            out.push((path, truth));
        }
    }
    out.sort();
    out
}

/// Endpoint key as tshark prints it.
pub fn ep(ip: IpAddr, port: u16) -> String {
    format!("{ip}|{port}")
}

/// Real packets captured live by trawl's own capture (AF_PACKET ring) on
/// one interface, dissected when the capture stops. For tests where real
/// servers and clients talk over loopback or a veth pair.
pub struct LiveCapture {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Captured>>>,
}

/// One packet copied out of the ring: time, link type, bytes, wire length.
type Captured = (i64, trawl_packet::LinkType, Vec<u8>, u32);

impl LiveCapture {
    /// Starts capturing on `iface` with a tcpdump-syntax `filter`; None
    /// (the caller skips loudly) when this process may not capture (not
    /// root). Waits until the ring is open, so traffic sent after this
    /// returns is seen.
    pub fn start(iface: &str, filter: &str) -> Option<LiveCapture> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let config = trawl_capture::CaptureConfig {
            interfaces: vec![iface.to_owned()],
            filter: Some(filter.to_owned()),
            block_timeout_ms: 10,
            ..trawl_capture::CaptureConfig::default()
        };
        let mut capture = match trawl_capture::Capture::open(&config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED: cannot capture on {iface}: {e}");
                return None;
            }
        };
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut packets = Vec::new();
            let mut drain = |capture: &mut trawl_capture::Capture| -> bool {
                match capture.next_batch(std::time::Duration::from_millis(20)) {
                    Ok(Some(batch)) => {
                        let link = batch.link_type();
                        for p in batch.packets() {
                            packets.push((p.ts_ns, link, p.data.to_vec(), p.origlen));
                        }
                        true
                    }
                    Ok(None) => false,
                    Err(e) => panic!("capture failed: {e}"),
                }
            };
            while !flag.load(Ordering::Relaxed) {
                drain(&mut capture);
            }
            // Whatever the ring still holds.
            while drain(&mut capture) {}
            packets
        });
        Some(LiveCapture {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops after a short grace period (the last packets reach the ring)
    /// and returns every call trawl's default pipeline finds, in order.
    pub fn stop(mut self) -> Vec<Call> {
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let packets = self.thread.take().unwrap().join().unwrap();
        let mut pipeline = Pipeline::new(PipelineConfig::default());
        let mut calls = Vec::new();
        let mut sink = |c: Call| calls.push(c);
        for (ts, link, data, orig_len) in &packets {
            let pkt = trawl_packet::RawPacket {
                ts_ns: *ts,
                link: *link,
                interface: 0,
                data,
                orig_len: *orig_len,
            };
            pipeline.packet(&pkt, &mut sink);
        }
        pipeline.finish(&mut sink);
        calls
    }
}
