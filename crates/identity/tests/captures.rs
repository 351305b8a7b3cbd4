//! Identities on whole captures, the way the indexer will use them: dissect
//! with `trawl_dissect::Pipeline`, learn names from the DNS calls (the
//! two-pass mode), then apply a [`Resolver`] to every call.
//!
//! Real captures come from ../shared/pcaps (the expected names were read
//! with `tshark -Y "dns.flags.response==1" -T fields -e dns.qry.name
//! -e dns.cname -e dns.a`); the test skips loudly when that folder is
//! absent. The lab capture is generated here, with
//! examples/lab-workloads.yaml as its workloads file.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use trawl_dissect::{Pipeline, PipelineConfig};
use trawl_identity::{DnsLearner, Resolver, Workloads};
use trawl_model::{Call, Protocol, Resolution};
use trawl_packet::CaptureReader;

fn shared_pcaps() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps");
    p.is_dir().then_some(p)
}

fn dissect<R: std::io::Read>(mut reader: CaptureReader<R>) -> Vec<Call> {
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut calls = Vec::new();
    let mut sink = |c: Call| calls.push(c);
    while let Some(pkt) = reader.next_packet().unwrap() {
        pipeline.packet(&pkt, &mut sink);
    }
    pipeline.finish(&mut sink);
    calls
}

fn dissect_file(path: &Path) -> Vec<Call> {
    dissect(CaptureReader::open(path).unwrap())
}

/// Pass 1: names from the DNS calls, learned in two "shards" (odd and
/// even calls, in reverse) and merged, as the indexer's shards will.
fn learn_two_pass(calls: &[Call]) -> DnsLearner {
    let (mut a, mut b) = (DnsLearner::new(), DnsLearner::new());
    for (i, c) in calls.iter().enumerate().rev() {
        if i % 2 == 0 {
            a.learn(c);
        } else {
            b.learn(c);
        }
    }
    a.merge(&b);
    a
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// tshark's `frame.time_epoch` of a response, as ns.
fn epoch_ns(secs: i64, micros: i64) -> i64 {
    secs * 1_000_000_000 + micros * 1_000
}

#[test]
fn names_learned_from_real_dns_answers() {
    let Some(dir) = shared_pcaps() else {
        eprintln!(
            "SKIPPED: ../shared/pcaps is absent; DNS learning from real captures not checked"
        );
        return;
    };
    let calls = dissect_file(&dir.join("dns-zeek-dns-edns-ecs.pcap"));
    let learner = learn_two_pass(&calls);
    assert!(learner.stats().responses > 0);
    // Frame at 1534836769.258504: atlas.ripe.net CNAME atlas-ui.ripe.net,
    // atlas-ui.ripe.net A 193.0.6.158. The name kept is the question.
    let atlas = epoch_ns(1_534_836_769, 258_504);
    assert_eq!(
        learner.name_for(ip("193.0.6.158"), atlas + 1_000),
        Some("atlas.ripe.net")
    );
    // At 1534836769.578510 the same address answers for atlas-ui.ripe.net
    // asked directly; between the two the first name holds.
    assert_eq!(
        learner.name_for(ip("193.0.6.158"), epoch_ns(1_534_836_769, 500_000)),
        Some("atlas.ripe.net")
    );
    assert_eq!(
        learner.name_for(ip("193.0.6.158"), epoch_ns(1_534_836_769, 600_000)),
        Some("atlas-ui.ripe.net")
    );
    // ns1.weberdns.de A 80.154.108.230, response at 1463559982.617614
    // (weberdns.de's own addresses are glue in the additional section,
    // which is not learned).
    let weber = epoch_ns(1_463_559_982, 617_614);
    assert_eq!(
        learner.name_for(ip("80.154.108.230"), weber),
        Some("ns1.weberdns.de")
    );
    // ns-659.awsdns-18.net A 205.251.194.147 (1534836797.856067) and
    // AAAA 2600:9000:5302:9300::1 (1534836797.857171).
    let aws = epoch_ns(1_534_836_797, 857_171);
    assert_eq!(
        learner.name_for(ip("205.251.194.147"), aws),
        Some("ns-659.awsdns-18.net")
    );
    assert_eq!(
        learner.name_for(ip("2600:9000:5302:9300::1"), aws),
        Some("ns-659.awsdns-18.net")
    );
    // Long before any answer: unknown.
    assert_eq!(
        learner.name_for(ip("80.154.108.230"), weber - 10_000_000_000),
        None
    );
}

#[test]
fn http_calls_in_a_browsing_capture_get_the_names_their_clients_asked_for() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; DNS names on real HTTP calls not checked");
        return;
    };
    let mut calls = dissect_file(&dir.join("http-pcapplusplus-many-protocols.pcap"));
    let learner = learn_two_pass(&calls);
    // www.ynet.co.il CNAME ynet.co.il.d4p.net CNAME a39.g.akamai.net
    // A 212.199.202.69, 212.199.202.60 (1420290298.016443).
    let ynet = epoch_ns(1_420_290_298, 16_443);
    for a in ["212.199.202.69", "212.199.202.60"] {
        assert_eq!(
            learner.name_for(ip(a), ynet + 1_000),
            Some("www.ynet.co.il"),
            "{a}"
        );
    }
    // connect.facebook.net through two CNAMEs to 172.233.179.195.
    assert_eq!(
        learner.name_for(ip("172.233.179.195"), epoch_ns(1_420_290_298, 300_000)),
        Some("connect.facebook.net")
    );

    let resolver = Resolver::new(Workloads::default()).with_dns(learner);
    calls.iter_mut().for_each(|c| resolver.apply(c));
    // Where an HTTP request carries a Host header and its server got a DNS
    // name, the two should mostly agree (a CDN address serves several
    // names, so not always).
    let (mut named, mut agree) = (0, 0);
    for c in calls.iter().filter(|c| c.protocol == Some(Protocol::Http)) {
        let Some(host) = c.request.headers.get("host") else {
            continue;
        };
        if c.dst.dns.is_empty() {
            continue;
        }
        named += 1;
        assert_eq!(c.dst.resolved_by, Some(Resolution::Dns));
        assert_eq!(c.dst.name, c.dst.dns);
        let host = host.split(':').next().unwrap().to_ascii_lowercase();
        if host == c.dst.dns {
            agree += 1;
        }
    }
    eprintln!("many-protocols: {named} HTTP calls named by DNS, {agree} agree with Host");
    assert!(named >= 20, "only {named} HTTP calls got a DNS name");
    assert!(
        agree * 10 >= named * 7,
        "{agree} of {named} agree with their Host header"
    );
}

#[test]
fn lab_capture_calls_get_names_from_the_sample_workloads_file() {
    let workloads_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab-workloads.yaml");
    let workloads = Workloads::load(&workloads_path).unwrap();
    let cfg = trawl_lab::GenConfig {
        packets: 20_000,
        ..trawl_lab::GenConfig::default()
    };
    let mut pcap = Vec::new();
    let summary = trawl_lab::generate(&mut pcap, &cfg).unwrap();
    let mut calls = dissect(CaptureReader::new(Cursor::new(pcap), "lab.pcap").unwrap());
    assert!(calls.len() > 500, "{} calls", calls.len());

    let resolver = Resolver::new(workloads).with_dns(learn_two_pass(&calls));
    calls.iter_mut().for_each(|c| resolver.apply(c));

    let both_named = calls
        .iter()
        .filter(|c| !c.src.name.is_empty() && !c.dst.name.is_empty())
        .count();
    assert!(
        both_named * 100 >= calls.len() * 99,
        "{both_named} of {} calls have both ends named",
        calls.len()
    );
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    for c in &calls {
        *by_source
            .entry(format!("{:?}->{:?}", c.src.resolved_by, c.dst.resolved_by))
            .or_default() += 1;
        // Every client is a frontend or cart pod backing its service.
        assert_eq!(c.src.resolved_by, Some(Resolution::Pod), "{}", c.id);
        assert!(c.src.pod.name.starts_with(&c.src.service.name), "{}", c.id);
        assert!(["frontend", "cart"].contains(&c.src.service.name.as_str()));
        assert_eq!(c.namespaces.first().map(String::as_str), Some("shop"));
        match c.protocol {
            Some(Protocol::Http) => {
                // The Host header (`cart:8080` or `checkout.shop.svc.cluster.local`)
                // names the service the generator picked.
                let host = c.request.headers.get("host").unwrap();
                let svc = host.split([':', '.']).next().unwrap();
                assert_eq!(c.dst.service.name, svc, "{}", c.id);
                assert_eq!(c.dst.resolved_by, Some(Resolution::Service));
                assert_eq!(c.dst.labels["app"], svc);
                // The generator's DNS answers name the same service.
                assert_eq!(
                    c.dst.dns,
                    format!("{svc}.shop.svc.cluster.local"),
                    "{}",
                    c.id
                );
                assert!(c.services.contains(&svc.to_owned()));
            }
            Some(Protocol::Dns) => {
                assert_eq!(c.dst.name, "kube-dns");
                assert_eq!(c.namespaces, ["shop", "kube-system"]);
            }
            other => panic!("the lab generates HTTP and DNS only, got {other:?}"),
        }
    }
    eprintln!(
        "lab: {} packets, {} calls, resolved_by (src, dst): {by_source:?}",
        summary.packets,
        calls.len()
    );
    // The reused address resolves to either pod depending on the time.
    let reused: Vec<&str> = calls
        .iter()
        .filter(|c| c.src.ip == ip("10.1.0.200"))
        .map(|c| c.src.pod.name.as_str())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = reused.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        2,
        "10.1.0.200 was {distinct:?} over {} calls",
        reused.len()
    );
}

/// Streaming and two-pass agree on a capture whose lookups precede their
/// connections, as the lab's do for in-cluster names.
#[test]
fn streaming_names_the_lab_capture_like_two_pass() {
    let cfg = trawl_lab::GenConfig {
        packets: 5_000,
        ..trawl_lab::GenConfig::default()
    };
    let mut pcap = Vec::new();
    trawl_lab::generate(&mut pcap, &cfg).unwrap();
    let calls = dissect(CaptureReader::new(Cursor::new(pcap), "lab.pcap").unwrap());
    let two_pass = Resolver::new(Workloads::default()).with_dns(learn_two_pass(&calls));
    let mut streaming = Resolver::new(Workloads::default());
    let mut sorted = calls.clone();
    sorted.sort_by_key(|c| c.timestamp);
    let (mut same, mut named) = (0, 0);
    for c in &sorted {
        let mut a = c.clone();
        streaming.learn_and_apply(&mut a);
        let mut b = c.clone();
        two_pass.apply(&mut b);
        if !b.dst.dns.is_empty() {
            named += 1;
            if a.dst.dns == b.dst.dns {
                same += 1;
            }
        }
    }
    eprintln!("lab streaming: agrees with two-pass on {same} of {named} DNS-named servers");
    assert!(named > 0);
    // Early calls to a service nobody looked up yet are named only by the
    // two-pass mode.
    assert!(
        same * 10 >= named * 8,
        "streaming agreed on {same} of {named}"
    );
}
