//! How long `Resolver::apply` takes per call, for bench/RESULTS.md: a lab
//! capture is generated and dissected once, then every call has its
//! identities applied over and over, with the sample workloads file
//! (both ends known) and with no workloads and no DNS names (both ends
//! unknown: the path that must not allocate).
//!
//! It also times the two-pass mode's first pass done as a pre-scan (only
//! packets to or from port 53, and IP fragments, go through a pipeline)
//! against a full dissection of the same capture.
//!
//! Run: `cargo run --release -p trawl-identity --example resolve_speed`

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use trawl_dissect::{Pipeline, PipelineConfig};
use trawl_identity::{DnsLearner, Resolver, Workloads};
use trawl_model::Call;
use trawl_packet::CaptureReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = trawl_lab::GenConfig {
        packets: 100_000,
        ..trawl_lab::GenConfig::default()
    };
    let mut pcap = Vec::new();
    trawl_lab::generate(&mut pcap, &cfg)?;

    let start = Instant::now();
    let mut reader = CaptureReader::new(Cursor::new(&pcap), "lab.pcap")?;
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut calls: Vec<Call> = Vec::new();
    let mut sink = |c: Call| calls.push(c);
    while let Some(pkt) = reader.next_packet()? {
        pipeline.packet(&pkt, &mut sink);
    }
    pipeline.finish(&mut sink);
    let full = start.elapsed();
    let packets = pipeline.stats().packets;

    let start = Instant::now();
    let dns = prescan_dns(&pcap)?;
    let prescan = start.elapsed();
    println!(
        "{packets} packets: full dissection {:.0} ms, DNS pre-scan {:.0} ms ({} addresses learned)",
        full.as_secs_f64() * 1e3,
        prescan.as_secs_f64() * 1e3,
        dns.len()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab-workloads.yaml");
    let known = Resolver::new(Workloads::load(&path)?).with_dns(dns);
    let unknown = Resolver::new(Workloads::default());

    for (label, resolver) in [("both ends known", &known), ("both ends unknown", &unknown)] {
        let rounds = 50;
        let start = Instant::now();
        for _ in 0..rounds {
            for c in calls.iter_mut() {
                resolver.apply(c);
            }
        }
        let n = calls.len() * rounds;
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{label}: {n} applies, {ns:.0} ns per call ({:.1} M calls/s)",
            1e3 / ns
        );
    }
    Ok(())
}

/// Pass 1 of the two-pass mode as the indexer could run it: only DNS
/// packets (port 53 either way, plus IP fragments, which may be DNS) reach
/// the pipeline.
fn prescan_dns(pcap: &[u8]) -> Result<DnsLearner, Box<dyn std::error::Error>> {
    use trawl_packet::{Transport, decode};
    let mut reader = CaptureReader::new(Cursor::new(pcap), "lab.pcap")?;
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut dns = DnsLearner::new();
    let mut sink = |c: Call| dns.learn(&c);
    while let Some(pkt) = reader.next_packet()? {
        let Ok(ip) = decode::decode_link(pkt.link, pkt.data) else {
            continue;
        };
        let is_dns = ip.fragment.is_some()
            || match decode::decode_transport(ip.protocol, ip.payload, ip.payload_len) {
                Ok(Transport::Udp(d)) => d.src_port == 53 || d.dst_port == 53,
                Ok(Transport::Tcp(t)) => t.src_port == 53 || t.dst_port == 53,
                _ => false,
            };
        if is_dns {
            pipeline.packet(&pkt, &mut sink);
        }
    }
    pipeline.finish(&mut sink);
    Ok(dns)
}
