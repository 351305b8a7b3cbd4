//! A bare command-line driver of this crate for benchmarks and manual
//! checks until `trawl import` / `trawl export pcap` exist in the CLI:
//!
//! ```text
//! snapshot_tool import DATA_DIR FILE        # prints the snapshot id
//! snapshot_tool ingest DATA_DIR FILE        # FILE through a raw store (64 MiB
//!                                           # segments), then a snapshot of it all
//! snapshot_tool export DATA_DIR ID [--pcapng] > out.pcap
//! ```
//!
//! Used by `bench/export.sh`.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use trawl_packet::CaptureReader;
use trawl_rawstore::{
    ExportFormat, ExportOptions, ImportRequest, RawStore, SnapshotRequest, StoreConfig, Window,
    create_snapshot, export, get_snapshot, import_pcap,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos())?;
    match args.get(1).map(String::as_str) {
        Some("import") if args.len() == 4 => {
            let snap = import_pcap(
                Path::new(&args[2]),
                Path::new(&args[3]),
                &ImportRequest {
                    name: "bench".into(),
                    node: "import".into(),
                    created_ns: now,
                },
            )?;
            println!("{}", snap.manifest.id);
            eprintln!(
                "imported {} packets, {} bytes in {} files",
                snap.manifest.packets,
                snap.manifest.bytes,
                snap.manifest
                    .nodes
                    .iter()
                    .map(|n| n.files.len())
                    .sum::<usize>()
            );
        }
        Some("ingest") if args.len() == 4 => {
            let data = Path::new(&args[2]);
            let cfg = StoreConfig {
                max_bytes: 64 << 30,
                max_age_secs: 100 * 365 * 86_400,
                ..StoreConfig::default()
            };
            let mut store = RawStore::open(data, "bench", cfg)?;
            let mut r = CaptureReader::open(Path::new(&args[3]))?;
            while let Some(p) = r.next_packet()? {
                store.append(p.ts_ns, p.link, p.data, p.orig_len)?;
            }
            let src = store.source()?;
            let b = store.boundaries();
            let (Some(from_ns), Some(newest)) = (b.oldest_ts, b.newest_ts) else {
                return Err("empty capture".into());
            };
            let snap = create_snapshot(
                data,
                &[src],
                &SnapshotRequest {
                    name: "bench".into(),
                    window: Window {
                        from_ns,
                        to_ns: newest + 1,
                    },
                    created_ns: now,
                },
            )?;
            println!("{}", snap.manifest.id);
            eprintln!(
                "stored {} packets in {} segments; snapshot of {} packets",
                b.packets, b.segments, snap.manifest.packets
            );
        }
        Some("export") if args.len() >= 4 => {
            let snap = get_snapshot(Path::new(&args[2]), &args[3])?;
            let format = if args.iter().any(|a| a == "--pcapng") {
                ExportFormat::PcapNg
            } else {
                ExportFormat::Pcap
            };
            let opts = ExportOptions {
                format,
                ..ExportOptions::default()
            };
            let stdout = std::io::stdout().lock();
            let stats = export(&snap, &opts, stdout)?;
            std::io::stderr().flush()?;
            eprintln!("exported {} packets", stats.packets);
        }
        _ => {
            eprintln!("usage: snapshot_tool import DATA_DIR FILE | export DATA_DIR ID [--pcapng]");
            std::process::exit(2);
        }
    }
    Ok(())
}
