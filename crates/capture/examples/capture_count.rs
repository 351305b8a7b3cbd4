//! Captures for a fixed time and reports what it saw and what the kernel
//! dropped: the trawl side of `bench/capture.sh`, and a quick way to try a
//! filter or ring size on a live interface. With `--write FILE` it also
//! writes every packet to a pcap (`/dev/null` to match `tcpdump -w
//! /dev/null`), through a buffered `PcapWriter`.
//!
//! ```sh
//! cargo run --release -p trawl-capture --example capture_count -- \
//!     --interface eth0 --seconds 10 --filter 'udp port 9000' --write /dev/null
//! ```
//!
//! Prints one line of `key=value` pairs on stdout at the end. With
//! `--stop-file PATH` it also stops as soon as that file exists (the
//! benchmark creates it when its sender is done).

use std::io::BufWriter;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use trawl_capture::{Capture, CaptureConfig};
use trawl_packet::capfile::PcapWriter;

fn main() -> anyhow::Result<()> {
    let mut config = CaptureConfig::default();
    let mut seconds = 10u64;
    let mut write: Option<String> = None;
    let mut stop_file: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--interface" | "-i" => {
                config.interfaces = val()?.split(',').map(str::to_string).collect()
            }
            "--snaplen" | "-s" => config.snaplen = val()?.parse()?,
            "--block-size" => config.block_size = val()?.parse()?,
            "--block-count" => config.block_count = val()?.parse()?,
            "--block-timeout-ms" => config.block_timeout_ms = val()?.parse()?,
            "--filter" | "-f" => config.filter = Some(val()?),
            "--seconds" => seconds = val()?.parse()?,
            "--write" | "-w" => write = Some(val()?),
            "--promiscuous" => config.promiscuous = true,
            "--stop-file" => stop_file = Some(val()?.into()),
            other => bail!(
                "unknown argument {other}; use --interface IF --seconds N [--filter EXPR] [--snaplen N] [--block-size B] [--block-count N] [--write FILE]"
            ),
        }
    }
    let mut cap = Capture::open(&config)?;
    let link = cap
        .link_types()
        .first()
        .copied()
        .context("no ring opened")?;
    let mut writer = match &write {
        Some(path) => Some(PcapWriter::new(
            BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?),
            link,
            config.snaplen,
        )?),
        None => None,
    };
    let (mut packets, mut bytes) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end && !stop_file.as_ref().is_some_and(|f| f.exists()) {
        if let Some(batch) = cap.next_batch(Duration::from_millis(100))? {
            for p in batch.packets() {
                packets += 1;
                bytes += u64::from(p.caplen);
                if let Some(w) = writer.as_mut() {
                    w.write_packet(p.ts_ns, p.data, p.origlen)?;
                }
            }
        }
    }
    // Whatever the kernel still holds was received before the deadline.
    while let Some(batch) = cap.next_batch(Duration::from_millis(200))? {
        for p in batch.packets() {
            packets += 1;
            bytes += u64::from(p.caplen);
            if let Some(w) = writer.as_mut() {
                w.write_packet(p.ts_ns, p.data, p.origlen)?;
            }
        }
    }
    drop(writer);
    let s = cap.stats();
    println!(
        "captured={packets} bytes={bytes} kernel_packets={} drops={} freezes={}",
        s.packets, s.drops, s.freezes
    );
    Ok(())
}
