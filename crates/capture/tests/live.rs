//! Live capture on a real veth pair between two network namespaces created
//! by the test (`ip netns add`, addresses in 10.200.x.0/24 that exist only
//! inside them, both deleted on drop, also after a panic). The capture is
//! opened by a thread that entered namespace A (`setns`), senders run in
//! threads that entered namespace B and use plain std sockets, and the test
//! asserts that the captured packets carry exactly the datagrams and TCP
//! bytes that were sent, that the filter kept out what it should, that the
//! kernel dropped nothing, and that a 2-member fanout splits flows whole.
//!
//! Needs root and `ip`; skips loudly otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use trawl_capture::{Capture, CaptureConfig, FanoutConfig, FanoutMode, LinkType};
use trawl_packet::Transport;
use trawl_packet::decode::{decode_link, decode_transport};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted when dropped.
struct Lab {
    a: String,
    b: String,
    veth_a: String,
    net: u8,
}

impl Lab {
    fn new() -> Option<Self> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .is_some_and(|o| o.stdout.starts_with(b"0\n"));
        if !root || ip(&["netns", "list"]).is_err() {
            eprintln!("SKIPPED: live capture tests need root and `ip` (iproute2)");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let lab = Self {
            a: format!("tcapA{tag}"),
            b: format!("tcapB{tag}"),
            veth_a: format!("tcva{tag}"),
            net: u8::try_from((pid as usize * 7 + n as usize) % 200 + 20).unwrap(),
        };
        let veth_b = format!("tcvb{tag}");
        let a1 = format!("10.200.{}.1/24", lab.net);
        let b2 = format!("10.200.{}.2/24", lab.net);
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", &lab.a])?;
            ip(&["netns", "add", &lab.b])?;
            for ns in [&lab.a, &lab.b] {
                // No IPv6 on the veths: no router solicitations or MLD noise.
                let _ = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        ns,
                        "sysctl",
                        "-qw",
                        "net.ipv6.conf.default.disable_ipv6=1",
                    ])
                    .status();
            }
            ip(&[
                "link",
                "add",
                &lab.veth_a,
                "netns",
                &lab.a,
                "type",
                "veth",
                "peer",
                "name",
                &veth_b,
                "netns",
                &lab.b,
            ])?;
            ip(&["-n", &lab.a, "addr", "add", &a1, "dev", &lab.veth_a])?;
            ip(&["-n", &lab.b, "addr", "add", &b2, "dev", &veth_b])?;
            ip(&["-n", &lab.a, "link", "set", &lab.veth_a, "up"])?;
            ip(&["-n", &lab.b, "link", "set", &veth_b, "up"])?;
            ip(&["-n", &lab.a, "link", "set", "lo", "up"])?;
            Ok(())
        };
        if let Err(e) = setup() {
            eprintln!("SKIPPED: could not build the veth lab: {e}");
            return None;
        }
        Some(lab)
    }

    fn addr_a(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.net, 1)
    }

    fn addr_b(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.net, 2)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and its peer.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// Runs `f` on a new thread that has entered network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns takes a valid open descriptor (kept alive by `file`)
        // and changes only this thread's network namespace.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

#[derive(Debug, Clone)]
struct Captured {
    link: LinkType,
    data: Vec<u8>,
    ts_ns: i64,
    caplen: u32,
    origlen: u32,
}

/// Reads `cap` on a thread until `stop`; returns the packets and the stats.
fn collect(
    mut cap: Capture,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Captured>>>,
) -> thread::JoinHandle<trawl_capture::CaptureStats> {
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if let Some(batch) = cap.next_batch(Duration::from_millis(20)).unwrap() {
                let link = batch.link_type();
                let mut v = out.lock().unwrap();
                for p in batch.packets() {
                    v.push(Captured {
                        link,
                        data: p.data.to_vec(),
                        ts_ns: p.ts_ns,
                        caplen: p.caplen,
                        origlen: p.origlen,
                    });
                }
            }
        }
        cap.stats()
    })
}

fn open_in(ns: &str, config: CaptureConfig) -> Capture {
    in_netns(ns, move || Capture::open(&config))
        .join()
        .unwrap()
        .unwrap()
}

/// Waits (polling, bounded) until `done` holds for the captured packets.
fn wait_for(out: &Mutex<Vec<Captured>>, done: impl Fn(&[Captured]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !done(&out.lock().unwrap()) {
        thread::sleep(Duration::from_millis(20));
    }
    // A little longer, so that anything the filter wrongly let through
    // (sent before the awaited packets) has surely arrived too.
    thread::sleep(Duration::from_millis(200));
}

/// (src port, dst port, payload, tcp seq) of a captured UDP/TCP packet.
fn l4(c: &Captured) -> Option<(u8, u16, u16, Vec<u8>, u32)> {
    let ipk = decode_link(c.link, &c.data).ok()?;
    match decode_transport(ipk.protocol, ipk.payload, ipk.payload_len).ok()? {
        Transport::Udp(u) => Some((17, u.src_port, u.dst_port, u.payload.to_vec(), 0)),
        Transport::Tcp(t) => Some((6, t.src_port, t.dst_port, t.payload.to_vec(), t.seq)),
        Transport::Other(_) => None,
    }
}

const UDP_KEPT: u16 = 5001;
const TCP_KEPT: u16 = 5002;
const UDP_FILTERED: u16 = 5003;

#[test]
fn captures_exactly_the_sent_udp_datagrams_and_tcp_bytes() {
    let Some(lab) = Lab::new() else { return };
    let (a, b) = (lab.addr_a(), lab.addr_b());
    let config = CaptureConfig {
        interfaces: vec![lab.veth_a.clone()],
        filter: Some(format!(
            "host {b} and (udp port {UDP_KEPT} or tcp port {TCP_KEPT})"
        )),
        ..CaptureConfig::default()
    };
    let cap = open_in(&lab.a, config);
    assert_eq!(cap.link_types(), vec![LinkType::Ethernet]);
    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Mutex::new(Vec::new()));
    let reader = collect(cap, stop.clone(), out.clone());

    // Receivers in A.
    let (kept, filtered, listener) = in_netns(&lab.a, move || {
        (
            UdpSocket::bind(SocketAddrV4::new(a, UDP_KEPT)).unwrap(),
            UdpSocket::bind(SocketAddrV4::new(a, UDP_FILTERED)).unwrap(),
            TcpListener::bind(SocketAddrV4::new(a, TCP_KEPT)).unwrap(),
        )
    })
    .join()
    .unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });

    const DATAGRAMS: usize = 50;
    let tcp_bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sent = tcp_bytes.clone();
    in_netns(&lab.b, move || {
        let s = UdpSocket::bind(SocketAddrV4::new(b, 0)).unwrap();
        for i in 0..20 {
            s.send_to(
                format!("filtered-{i}").as_bytes(),
                SocketAddrV4::new(a, UDP_FILTERED),
            )
            .unwrap();
        }
        for i in 0..DATAGRAMS {
            s.send_to(
                format!("trawl-udp-{i:04}").as_bytes(),
                SocketAddrV4::new(a, UDP_KEPT),
            )
            .unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        let mut c = TcpStream::connect(SocketAddrV4::new(a, TCP_KEPT)).unwrap();
        c.write_all(&sent).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(
        server.join().unwrap(),
        tcp_bytes,
        "the TCP server got the bytes"
    );
    let mut buf = [0u8; 64];
    for _ in 0..DATAGRAMS {
        kept.recv(&mut buf).unwrap();
    }
    drop(filtered);

    wait_for(&out, |v| {
        v.iter()
            .filter_map(l4)
            .any(|(p, sport, _, payload, _)| p == 6 && sport == TCP_KEPT && payload.is_empty())
            && v.iter().filter_map(l4).filter(|x| x.0 == 17).count() >= DATAGRAMS
            && v.iter()
                .filter_map(l4)
                .filter(|x| x.0 == 6 && x.2 == TCP_KEPT)
                .map(|x| x.3.len())
                .sum::<usize>()
                >= tcp_bytes.len()
    });
    stop.store(true, Ordering::SeqCst);
    let stats = reader.join().unwrap();
    let packets = out.lock().unwrap().clone();

    let mut udp = Vec::new();
    let mut segs = BTreeMap::new();
    for c in &packets {
        assert_eq!(c.caplen as usize, c.data.len());
        assert_eq!(c.origlen, c.caplen, "nothing is cut at the default snaplen");
        assert!(
            c.ts_ns > 1_600_000_000_000_000_000,
            "kernel timestamps are in ns since 1970"
        );
        let (proto, sport, dport, payload, seq) = l4(c).expect("the filter keeps only UDP and TCP");
        match proto {
            17 => {
                assert_eq!(dport, UDP_KEPT, "port {UDP_FILTERED} must be filtered out");
                udp.push(String::from_utf8(payload).unwrap());
            }
            _ if dport == TCP_KEPT && !payload.is_empty() => {
                segs.insert(seq, payload);
            }
            _ => assert!(sport == TCP_KEPT || dport == TCP_KEPT),
        }
    }
    let expected: Vec<String> = (0..DATAGRAMS)
        .map(|i| format!("trawl-udp-{i:04}"))
        .collect();
    assert_eq!(udp, expected, "every datagram once, in order");
    // Client-to-server bytes, by sequence number (retransmissions collapse).
    let mut stream = Vec::new();
    for (_, p) in segs {
        stream.extend_from_slice(&p);
    }
    assert_eq!(stream.len(), tcp_bytes.len());
    assert!(
        stream == tcp_bytes,
        "the captured TCP payload is the bytes sent"
    );
    assert_eq!(stats.drops, 0, "no kernel drops at this rate: {stats:?}");
    assert_eq!(
        stats.packets,
        packets.len() as u64,
        "kernel count = packets read: {stats:?}"
    );
}

#[test]
fn any_interface_gives_cooked_v2_packets() {
    let Some(lab) = Lab::new() else { return };
    let (a, b) = (lab.addr_a(), lab.addr_b());
    let config = CaptureConfig {
        interfaces: vec!["any".into()],
        filter: Some(format!("udp port {UDP_KEPT}")),
        ..CaptureConfig::default()
    };
    let cap = open_in(&lab.a, config);
    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Mutex::new(Vec::new()));
    let reader = collect(cap, stop.clone(), out.clone());
    let rx = in_netns(&lab.a, move || {
        UdpSocket::bind(SocketAddrV4::new(a, UDP_KEPT)).unwrap()
    })
    .join()
    .unwrap();
    in_netns(&lab.b, move || {
        let s = UdpSocket::bind(SocketAddrV4::new(b, 0)).unwrap();
        for i in 0..10 {
            s.send_to(
                format!("cooked-{i}").as_bytes(),
                SocketAddrV4::new(a, UDP_KEPT),
            )
            .unwrap();
        }
    })
    .join()
    .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        rx.recv(&mut buf).unwrap();
    }
    wait_for(&out, |v| v.len() >= 10);
    stop.store(true, Ordering::SeqCst);
    let stats = reader.join().unwrap();
    let packets = out.lock().unwrap().clone();
    let payloads: Vec<String> = packets
        .iter()
        .map(|c| {
            assert_eq!(c.link, LinkType::LinuxSll2);
            // SLL2: protocol IPv4, packet type PACKET_HOST (0), 6-byte address.
            assert_eq!(&c.data[0..2], &[0x08, 0x00]);
            assert_eq!(c.data[10], 0);
            assert_eq!(c.data[11], 6);
            assert_eq!(c.origlen as usize, c.data.len());
            String::from_utf8(l4(c).unwrap().3).unwrap()
        })
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("cooked-{i}")).collect();
    assert_eq!(payloads, expected);
    assert_eq!(stats.drops, 0);
}

#[test]
fn fanout_by_hash_keeps_each_flow_on_one_member() {
    let Some(lab) = Lab::new() else { return };
    let (a, b) = (lab.addr_a(), lab.addr_b());
    let group = u16::try_from(std::process::id() % 60_000).unwrap() + 1000 + lab.net as u16;
    let config = CaptureConfig {
        interfaces: vec![lab.veth_a.clone()],
        filter: Some(format!("udp port {UDP_KEPT}")),
        fanout: Some(FanoutConfig {
            group_id: group,
            mode: FanoutMode::Hash,
            threads: 2,
            defrag: false,
        }),
        ..CaptureConfig::default()
    };
    let members = in_netns(&lab.a, move || Capture::open_fanout(&config))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(members.len(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let outs: Vec<_> = (0..2).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let readers: Vec<_> = members
        .into_iter()
        .zip(&outs)
        .map(|(m, o)| collect(m, stop.clone(), o.clone()))
        .collect();
    let rx = in_netns(&lab.a, move || {
        UdpSocket::bind(SocketAddrV4::new(a, UDP_KEPT)).unwrap()
    })
    .join()
    .unwrap();
    const FLOWS: u16 = 16;
    const PER_FLOW: usize = 10;
    in_netns(&lab.b, move || {
        let socks: Vec<_> = (0..FLOWS)
            .map(|_| UdpSocket::bind(SocketAddrV4::new(b, 0)).unwrap())
            .collect();
        for i in 0..PER_FLOW {
            for s in &socks {
                s.send_to(
                    format!("fan-{i}").as_bytes(),
                    SocketAddrV4::new(a, UDP_KEPT),
                )
                .unwrap();
            }
        }
    })
    .join()
    .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..usize::from(FLOWS) * PER_FLOW {
        rx.recv(&mut buf).unwrap();
    }
    let total = usize::from(FLOWS) * PER_FLOW;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && outs.iter().map(|o| o.lock().unwrap().len()).sum::<usize>() < total
    {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let drops: u64 = readers.into_iter().map(|r| r.join().unwrap().drops).sum();
    let flows: Vec<BTreeMap<u16, usize>> = outs
        .iter()
        .map(|o| {
            let mut m = BTreeMap::new();
            for c in o.lock().unwrap().iter() {
                *m.entry(l4(c).unwrap().1).or_insert(0) += 1;
            }
            m
        })
        .collect();
    eprintln!(
        "fanout: member flows {:?}",
        flows.iter().map(BTreeMap::len).collect::<Vec<_>>()
    );
    let keys0: BTreeSet<_> = flows[0].keys().collect();
    let keys1: BTreeSet<_> = flows[1].keys().collect();
    assert!(
        keys0.is_disjoint(&keys1),
        "a flow was split across members: {flows:?}"
    );
    assert_eq!(
        keys0.len() + keys1.len(),
        usize::from(FLOWS),
        "every flow seen"
    );
    let counts: Vec<usize> = flows.iter().flat_map(|m| m.values().copied()).collect();
    assert!(
        counts.iter().all(|&c| c == PER_FLOW),
        "each flow whole: {flows:?}"
    );
    assert_eq!(drops, 0);
}

#[test]
fn a_vanished_interface_is_an_error_not_silence() {
    let Some(lab) = Lab::new() else { return };
    let config = CaptureConfig {
        interfaces: vec![lab.veth_a.clone()],
        ..CaptureConfig::default()
    };
    let mut cap = open_in(&lab.a, config);
    ip(&["-n", &lab.a, "link", "del", &lab.veth_a]).unwrap();
    let mut result = None;
    for _ in 0..50 {
        match cap.next_batch(Duration::from_millis(100)) {
            Ok(_) => continue,
            Err(e) => {
                result = Some(e);
                break;
            }
        }
    }
    let e = result.expect("deleting the interface must surface as an error");
    let msg = e.to_string();
    eprintln!("vanished interface: {msg}");
    assert!(msg.contains(&lab.veth_a), "{msg}");
}
