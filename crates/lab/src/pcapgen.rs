//! A deterministic generator of synthetic captures: HTTP/1.1 keep-alive
//! connections and DNS over UDP, as Ethernet/IPv4 frames in a nanosecond
//! pcap file, with the ground truth of what it wrote ([`GenSummary`], and per
//! call through [`generate_with_calls`]).
//!
//! It exists for benchmarks (`bench/dissect-vs-tshark.sh` feeds its output to
//! `trawl dissect` and to tshark) and for end-to-end tests that check trawl
//! finds exactly the calls that were generated. The traffic imitates what a
//! capture point in front of a small cluster sees: many connections open at
//! once and interleaved in time, real TCP handshakes, delayed ACKs, responses
//! spanning several segments, random ISNs (some about to wrap), chunked
//! bodies, DNS search-path misses and CNAME chains with name compression.
//! Every checksum (IPv4, TCP, UDP) is correct.
//!
//! Same [`GenConfig`] → same bytes: all randomness comes from one splitmix64
//! stream seeded by [`GenConfig::seed`], and nothing iterates a hash map.
//! Frames go to `trawl_packet::capfile::PcapWriter`; this module only builds
//! them. It is called by the `trawl-lab gen-pcap` binary and by tests.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};
use trawl_packet::capfile::{LinkType, PcapWriter};

/// TCP payload per segment: a 1500-byte Ethernet MTU minus 20 bytes of IPv4,
/// 20 of TCP and 12 of the timestamp option Linux puts on every segment.
pub const MSS: usize = 1448;

/// Snap length declared in the file header; every frame we write is whole
/// (at most 1514 bytes), so this only has to be at least that. 262144 is
/// what tcpdump writes.
const SNAPLEN: u32 = 262_144;

/// Largest response body generated. Big enough for downloads that span
/// well over a hundred segments, small enough that a 1 M-packet capture is
/// still mostly API-sized calls.
const MAX_RESPONSE_BODY: usize = 200_000;

/// Largest request body generated (POST/PUT); a few span several segments.
const MAX_REQUEST_BODY: usize = 6_000;

/// Extra filler beyond the largest body, so that bodies start at varied
/// offsets (by id) instead of all looking alike.
const FILLER_SLACK: usize = 4096;

/// Bytes written to the output before they reach the caller's writer; one
/// system call per megabyte keeps the generator CPU-bound.
const OUTPUT_BUFFER: usize = 1 << 20;

const ETH_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

const US: i64 = 1_000;
const MS: i64 = 1_000_000;

/// What to generate. `Default` is a small cluster: 200 clients in
/// 10.1.0.0/16, 20 HTTP servers in 10.2.0.0/24 (even-numbered on port 80,
/// odd on 8080), one DNS server at 10.3.0.10:53, 64 conversations open at
/// once, about 20 000 packets per simulated second.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Target packet count. Generation stops starting new conversations once
    /// this many packets are written and lets the open ones finish (current
    /// request/response, then FIN teardown), so the file holds a few hundred
    /// packets more and no connection is cut.
    pub packets: u64,
    /// Seed of the one random stream everything is drawn from.
    pub seed: u64,
    /// Client addresses, 10.1.x.y (at most 250 × 256).
    pub clients: u32,
    /// HTTP server addresses, 10.2.0.1 upwards (at most 250).
    pub servers: u32,
    /// Requests per TCP connection, inclusive range (low ≥ 1).
    pub requests_per_conn: (u32, u32),
    /// Fraction of DNS transactions among all transactions (HTTP calls + DNS
    /// queries), in [0, 1].
    pub dns_share: f64,
    /// Timestamp of the first packet, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Conversations (TCP connections or DNS transactions) open at once.
    pub concurrency: u32,
    /// Packets per simulated second when enough conversations are ready; the
    /// capture clock never runs faster than this.
    pub packets_per_sec: u32,
    /// The DNS server every query goes to (port 53).
    pub dns_server: Ipv4Addr,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            packets: 100_000,
            seed: 1,
            clients: 200,
            servers: 20,
            requests_per_conn: (1, 20),
            dns_share: 0.2,
            // 2024-06-01T12:00:00Z
            start_ns: 1_717_243_200 * 1_000_000_000,
            concurrency: 64,
            packets_per_sec: 20_000,
            dns_server: Ipv4Addr::new(10, 3, 0, 10),
        }
    }
}

/// Ground truth of one generated capture. Counts are of what was written:
/// every HTTP call has its request and its whole response in the file, every
/// DNS query its response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenSummary {
    pub packets: u64,
    /// Sum of frame lengths (captured = original: nothing is truncated).
    pub bytes: u64,
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    pub tcp_packets: u64,
    pub udp_packets: u64,
    /// Connections, each with a full handshake and teardown.
    pub tcp_connections: u64,
    /// Connections whose client or server sequence number wrapped past 2^32.
    pub tcp_seq_wraps: u64,
    /// Request/response pairs; equals the number of requests and of responses.
    pub http_calls: u64,
    pub http_by_method: BTreeMap<String, u64>,
    /// HTTP response status → count.
    pub by_status: BTreeMap<u16, u64>,
    pub http_chunked_requests: u64,
    pub http_chunked_responses: u64,
    /// Responses whose head and body took more than one TCP segment.
    pub http_multi_segment_responses: u64,
    /// Requests whose head and body took more than one TCP segment.
    pub http_multi_segment_requests: u64,
    /// Body bytes as declared (Content-Length, or the sum of chunk sizes).
    pub http_request_body_bytes: u64,
    pub http_response_body_bytes: u64,
    /// Query/response pairs.
    pub dns_calls: u64,
    /// Query type name ("A", "AAAA") → count.
    pub dns_by_qtype: BTreeMap<String, u64>,
    /// Response code (0 NOERROR, 3 NXDOMAIN) → count.
    pub dns_by_rcode: BTreeMap<u16, u64>,
}

/// Which protocol a [`GeneratedCall`] was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallProtocol {
    Http,
    Dns,
}

/// One generated call, reported when its response's last packet is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedCall<'a> {
    pub protocol: CallProtocol,
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
    /// Timestamp of the request's first packet.
    pub request_ts_ns: i64,
    /// Timestamp of the response's last packet.
    pub response_ts_ns: i64,
    /// HTTP method; empty for DNS.
    pub method: &'a str,
    /// HTTP request target as sent (path and query); DNS query name without
    /// the trailing dot.
    pub path: &'a str,
    /// HTTP status code; DNS response code.
    pub status: u16,
    /// DNS query type (1 A, 28 AAAA); 0 for HTTP.
    pub dns_qtype: u16,
}

/// Writes a capture for `cfg` to `w` (buffered here; pass the file itself)
/// and returns what it holds.
pub fn generate<W: Write>(w: W, cfg: &GenConfig) -> io::Result<GenSummary> {
    generate_with_calls(w, cfg, |_| {})
}

/// Like [`generate`], and calls `on_call` for every call in the order their
/// responses complete, for tests that compare trawl's records call by call.
pub fn generate_with_calls<W, F>(w: W, cfg: &GenConfig, on_call: F) -> io::Result<GenSummary>
where
    W: Write,
    F: FnMut(&GeneratedCall<'_>),
{
    validate(cfg)?;
    let out = PcapWriter::new(
        BufWriter::with_capacity(OUTPUT_BUFFER, w),
        LinkType::Ethernet,
        SNAPLEN,
    )?;
    let mut generator = Generator::new(cfg, out, on_call);
    generator.run()?;
    let Generator { out, summary, .. } = generator;
    out.into_inner().flush()?;
    Ok(summary)
}

fn validate(cfg: &GenConfig) -> io::Result<()> {
    let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()));
    if cfg.clients == 0 || cfg.clients > 250 * 256 {
        return bad("clients must be in 1..=64000");
    }
    if cfg.servers == 0 || cfg.servers > 250 {
        return bad("servers must be in 1..=250");
    }
    let (lo, hi) = cfg.requests_per_conn;
    if lo == 0 || lo > hi {
        return bad("requests_per_conn must be a range low..=high with 1 <= low <= high");
    }
    if !(0.0..=1.0).contains(&cfg.dns_share) {
        return bad("dns_share must be in [0, 1]");
    }
    if cfg.concurrency == 0 || cfg.concurrency > 100_000 {
        return bad("concurrency must be in 1..=100000");
    }
    if cfg.packets_per_sec == 0 {
        return bad("packets_per_sec must be at least 1");
    }
    Ok(())
}

/// splitmix64: tiny, fast, and good enough for traffic that only has to
/// look varied; fixed forever so that a seed keeps naming the same capture.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0), by multiply-high: no modulo bias
    /// worth caring about here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.below(items.len() as u64) as usize;
        &items[i.min(items.len() - 1)]
    }

    /// Log-uniform in [lo, hi]: most values small, a long tail, like
    /// service times.
    fn log_uniform(&mut self, lo: i64, hi: i64) -> i64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        ((l + self.unit() * (h - l)).exp() as i64).clamp(lo, hi)
    }

    /// Exponential with the given mean: gaps between independent arrivals.
    fn exp(&mut self, mean: f64) -> i64 {
        (-(1.0 - self.unit()).ln() * mean) as i64
    }
}

const SERVICES: &[&str] = &[
    "frontend",
    "cart",
    "checkout",
    "catalog",
    "payments",
    "users",
    "search",
    "inventory",
    "shipping",
    "auth",
    "recommendations",
    "reviews",
    "orders",
    "notifications",
    "pricing",
    "images",
    "gateway",
    "analytics",
    "sessions",
    "currency",
];

const NAMESPACE: &str = "shop";

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "axios/1.6.7",
    "Envoy/1.29.1",
    "Java/17.0.10",
];

const SERVER_SOFTWARE: &[&str] = &[
    "nginx/1.25.3",
    "envoy",
    "gunicorn",
    "Kestrel",
    "Jetty(11.0.20)",
];

const SEARCH_WORDS: &[&str] = &[
    "shoes",
    "coffee",
    "laptop",
    "socks",
    "lamp",
    "desk",
    "kettle",
    "headphones",
    "tent",
    "bike",
];

/// External names a pod resolves, with the CNAME chain a real resolver
/// returns for them (possibly empty).
const EXTERNAL_NAMES: &[(&str, &[&str])] = &[
    ("api.stripe.com", &[]),
    ("api.github.com", &[]),
    ("www.googleapis.com", &["googleapis.l.google.com"]),
    ("s3.amazonaws.com", &["s3-1-w.amazonaws.com"]),
    (
        "login.microsoftonline.com",
        &["login.mso.msidentity.com", "ak.privatelink.msidentity.com"],
    ),
    ("cdn.jsdelivr.net", &["jsdelivr.map.fastly.net"]),
    ("hooks.slack.com", &[]),
    ("o123456.ingest.sentry.io", &[]),
];

/// The suffixes Kubernetes' `ndots:5` search path appends before trying a
/// name as is; each miss is an NXDOMAIN from the cluster DNS.
const SEARCH_SUFFIXES: &[&str] = &[
    "shop.svc.cluster.local",
    "svc.cluster.local",
    "cluster.local",
];

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Host {
    ip: [u8; 4],
    mac: [u8; 6],
}

impl Host {
    fn new(ip: [u8; 4]) -> Self {
        Self {
            ip,
            mac: [0x02, 0x42, ip[0], ip[1], ip[2], ip[3]],
        }
    }
}

fn client_host(index: u32) -> Host {
    // 250 hosts per /24 so that no address ends in .0 or .255.
    Host::new([10, 1, (index / 250) as u8, (index % 250 + 1) as u8])
}

fn server_host(index: u32) -> Host {
    Host::new([10, 2, 0, (index + 1) as u8])
}

fn server_port(index: u32) -> u16 {
    if index.is_multiple_of(2) { 80 } else { 8080 }
}

fn service_name(index: u32) -> String {
    let base = SERVICES[index as usize % SERVICES.len()];
    match index as usize / SERVICES.len() {
        0 => base.to_owned(),
        n => format!("{base}-{n}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Idle,
    Tcp,
    Dns,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    Closing,
}

/// Marks on a planned packet that update the ground truth when written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    None,
    RequestStart,
    ResponseEnd,
}

/// One planned packet of a conversation. Its payload is
/// `req[off..off + len]` when sent by the client, `resp[…]` otherwise.
#[derive(Clone, Copy, Debug)]
struct Seg {
    /// Earliest time after the conversation's previous packet.
    gap_ns: i64,
    from_client: bool,
    /// TCP flags; unused for UDP.
    flags: u8,
    off: u32,
    len: u32,
    mark: Mark,
}

/// The call a conversation is in the middle of, reported on `ResponseEnd`.
#[derive(Debug, Default)]
struct PendingCall {
    method: &'static str,
    path: String,
    status: u16,
    qtype: u16,
    request_ts_ns: i64,
    chunked_request: bool,
    chunked_response: bool,
    request_body: u64,
    response_body: u64,
    request_segments: u32,
    response_segments: u32,
}

/// One of the `concurrency` conversation slots. Buffers and the plan queue
/// are reused from one conversation to the next.
#[derive(Debug)]
struct Slot {
    kind: Kind,
    phase: Phase,
    client: Host,
    client_port: u16,
    server: Host,
    server_port: u16,
    server_index: u32,
    /// Next sequence number each side sends.
    client_seq: u32,
    server_seq: u32,
    client_ip_id: u16,
    server_ip_id: u16,
    /// Offsets of each host's TCP timestamp clock (milliseconds).
    client_ts_base: u32,
    server_ts_base: u32,
    client_tsval: u32,
    server_tsval: u32,
    wrapped: bool,
    requests_left: u32,
    requests_done: u32,
    server_closes: bool,
    user_agent: &'static str,
    req: Vec<u8>,
    resp: Vec<u8>,
    plan: VecDeque<Seg>,
    call: PendingCall,
}

impl Slot {
    fn new() -> Self {
        Self {
            kind: Kind::Idle,
            phase: Phase::Handshake,
            client: Host::default(),
            client_port: 0,
            server: Host::default(),
            server_port: 0,
            server_index: 0,
            client_seq: 0,
            server_seq: 0,
            client_ip_id: 0,
            server_ip_id: 0,
            client_ts_base: 0,
            server_ts_base: 0,
            client_tsval: 0,
            server_tsval: 0,
            wrapped: false,
            requests_left: 0,
            requests_done: 0,
            server_closes: false,
            user_agent: "",
            req: Vec::with_capacity(4096),
            resp: Vec::with_capacity(4096),
            plan: VecDeque::with_capacity(64),
            call: PendingCall::default(),
        }
    }

    fn push(
        &mut self,
        gap_ns: i64,
        from_client: bool,
        flags: u8,
        off: usize,
        len: usize,
        mark: Mark,
    ) {
        self.plan.push_back(Seg {
            gap_ns,
            from_client,
            flags,
            off: off as u32,
            len: len as u32,
            mark,
        });
    }
}

struct Generator<'c, W: Write, F> {
    cfg: &'c GenConfig,
    rng: Rng,
    out: PcapWriter<BufWriter<W>>,
    on_call: F,
    summary: GenSummary,
    slots: Vec<Slot>,
    frame: Vec<u8>,
    /// Printable bytes that bodies are cut from.
    filler: Vec<u8>,
    service_names: Vec<String>,
    /// Probability that a new conversation is DNS rather than TCP, chosen
    /// so that DNS makes `dns_share` of all calls (a connection carries
    /// several HTTP calls, a DNS transaction one).
    dns_conversation_p: f64,
    /// Mean gap of the capture clock, from `packets_per_sec`.
    pace_ns: f64,
    scratch: String,
}

impl<W: Write, F: FnMut(&GeneratedCall<'_>)> Generator<'_, W, F> {
    fn new(cfg: &GenConfig, out: PcapWriter<BufWriter<W>>, on_call: F) -> Generator<'_, W, F> {
        let mut rng = Rng(cfg.seed);
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let filler = (0..MAX_RESPONSE_BODY + FILLER_SLACK)
            .map(|_| *rng.pick(alphabet))
            .collect::<Vec<u8>>();
        let (lo, hi) = cfg.requests_per_conn;
        let mean_requests = (f64::from(lo) + f64::from(hi)) / 2.0;
        let p = cfg.dns_share;
        let dns_conversation_p = if p >= 1.0 {
            1.0
        } else {
            p * mean_requests / (1.0 - p + p * mean_requests)
        };
        Generator {
            cfg,
            rng,
            out,
            on_call,
            summary: GenSummary::default(),
            slots: (0..cfg.concurrency).map(|_| Slot::new()).collect(),
            frame: Vec::with_capacity(2048),
            filler,
            service_names: (0..cfg.servers).map(service_name).collect(),
            dns_conversation_p,
            pace_ns: 1e9 / f64::from(cfg.packets_per_sec),
            scratch: String::with_capacity(256),
        }
    }

    fn draining(&self) -> bool {
        self.summary.packets >= self.cfg.packets
    }

    /// The event loop: each slot is in a min-heap keyed by the time its next
    /// packet may go; the capture clock advances by at least one pacing gap
    /// per packet, so timestamps never go backwards.
    fn run(&mut self) -> io::Result<()> {
        let mut heap: BinaryHeap<Reverse<(i64, u32)>> = BinaryHeap::with_capacity(self.slots.len());
        let start = self.cfg.start_ns;
        for i in 0..self.cfg.concurrency {
            let at = start + self.rng.range_i64(0, 2 * MS);
            heap.push(Reverse((at, i)));
        }
        let mut now = start;
        while let Some(Reverse((ready, index))) = heap.pop() {
            let i = index as usize;
            if self.slots[i].kind == Kind::Idle {
                if self.draining() {
                    continue; // this slot retires
                }
                self.start_conversation(i);
            }
            let gap = self.rng.exp(self.pace_ns).max(1);
            now = (now + gap).max(ready);
            let Some(seg) = self.slots[i].plan.pop_front() else {
                continue;
            };
            self.emit(i, seg, now)?;
            if self.slots[i].plan.is_empty() {
                self.plan_next(i, now);
            }
            match self.slots[i].plan.front() {
                Some(next) => heap.push(Reverse((now + next.gap_ns, index))),
                None => {
                    self.slots[i].kind = Kind::Idle;
                    let at = now + self.rng.range_i64(10 * US, 2 * MS);
                    heap.push(Reverse((at, index)));
                }
            }
        }
        Ok(())
    }

    fn start_conversation(&mut self, i: usize) {
        if self.rng.chance(self.dns_conversation_p) {
            self.start_dns(i);
        } else {
            self.start_tcp(i);
        }
    }

    fn pick_client(&mut self) -> Host {
        let c = self.rng.below(u64::from(self.cfg.clients)) as u32;
        client_host(c)
    }

    fn ephemeral_port(&mut self) -> u16 {
        // Linux's default ip_local_port_range.
        self.rng.range(32768, 60999) as u16
    }

    /// A connection whose 4-tuple no open connection uses, so that every
    /// open connection is a distinct TCP stream to any reader.
    fn start_tcp(&mut self, i: usize) {
        let server_index = self.rng.below(u64::from(self.cfg.servers)) as u32;
        let server = server_host(server_index);
        let sport = server_port(server_index);
        let (client, cport) = loop {
            let client = self.pick_client();
            let cport = self.ephemeral_port();
            let taken = self.slots.iter().any(|s| {
                s.kind == Kind::Tcp
                    && s.client.ip == client.ip
                    && s.client_port == cport
                    && s.server.ip == server.ip
                    && s.server_port == sport
            });
            if !taken {
                break (client, cport);
            }
        };
        let (lo, hi) = self.cfg.requests_per_conn;
        let requests = self.rng.range(u64::from(lo), u64::from(hi)) as u32;
        // One connection in eight starts within 200 kB of 2^32 so that its
        // sequence numbers wrap while it carries data.
        let mut isn = || {
            if self.rng.chance(0.125) {
                u32::MAX - self.rng.below(200_000) as u32
            } else {
                self.rng.next_u64() as u32
            }
        };
        let (client_isn, server_isn) = (isn(), isn());
        let ua = *self.rng.pick(USER_AGENTS);
        let server_closes = self.rng.chance(0.2);
        let ids = self.rng.next_u64();
        let ts = self.rng.next_u64();
        let s = &mut self.slots[i];
        s.kind = Kind::Tcp;
        s.phase = Phase::Handshake;
        s.client = client;
        s.client_port = cport;
        s.server = server;
        s.server_port = sport;
        s.server_index = server_index;
        s.client_seq = client_isn;
        s.server_seq = server_isn;
        s.client_ip_id = ids as u16;
        s.server_ip_id = (ids >> 16) as u16;
        s.client_ts_base = ts as u32;
        s.server_ts_base = (ts >> 32) as u32;
        s.client_tsval = 0;
        s.server_tsval = 0;
        s.wrapped = false;
        s.requests_left = requests;
        s.requests_done = 0;
        s.server_closes = server_closes;
        s.user_agent = ua;
        s.plan.clear();
        self.summary.tcp_connections += 1;
        // Handshake: round trip of 50 µs to 1 ms inside a cluster.
        let half_rtt = self.rng.range_i64(25 * US, 500 * US);
        s.push(0, true, TCP_SYN, 0, 0, Mark::None);
        s.push(half_rtt, false, TCP_SYN | TCP_ACK, 0, 0, Mark::None);
        s.push(half_rtt, true, TCP_ACK, 0, 0, Mark::None);
    }

    /// Plans what follows once a slot's plan ran dry; leaves it empty when
    /// the conversation is over.
    fn plan_next(&mut self, i: usize, now: i64) {
        let draining = self.draining();
        let s = &mut self.slots[i];
        match (s.kind, s.phase) {
            (Kind::Tcp, Phase::Handshake) => {
                s.phase = Phase::Open;
                self.plan_exchange(i, now);
            }
            (Kind::Tcp, Phase::Open) => {
                if s.requests_left > 0 && !draining {
                    self.plan_exchange(i, now);
                } else {
                    s.phase = Phase::Closing;
                    self.plan_teardown(i);
                }
            }
            _ => {}
        }
    }

    fn plan_teardown(&mut self, i: usize) {
        let rng = &mut self.rng;
        let s = &mut self.slots[i];
        if s.server_closes {
            // The server sent `Connection: close`: it closes right after the
            // response, the client acknowledges and closes its side.
            s.push(
                rng.range_i64(10 * US, 60 * US),
                false,
                TCP_FIN | TCP_ACK,
                0,
                0,
                Mark::None,
            );
            s.push(
                rng.range_i64(30 * US, 200 * US),
                true,
                TCP_FIN | TCP_ACK,
                0,
                0,
                Mark::None,
            );
            s.push(
                rng.range_i64(25 * US, 500 * US),
                false,
                TCP_ACK,
                0,
                0,
                Mark::None,
            );
        } else {
            // The client's pool drops an idle connection.
            s.push(
                rng.range_i64(100 * US, 5 * MS),
                true,
                TCP_FIN | TCP_ACK,
                0,
                0,
                Mark::None,
            );
            s.push(
                rng.range_i64(25 * US, 500 * US),
                false,
                TCP_FIN | TCP_ACK,
                0,
                0,
                Mark::None,
            );
            s.push(
                rng.range_i64(25 * US, 500 * US),
                true,
                TCP_ACK,
                0,
                0,
                Mark::None,
            );
        }
    }

    /// One request/response pair: request segments (server ACKs every
    /// second one), service time (with a pure ACK first when it is long),
    /// response segments (client ACKs every second one and the last).
    fn plan_exchange(&mut self, i: usize, now: i64) {
        let last = self.slots[i].requests_left <= 1;
        let first = self.slots[i].requests_done == 0;
        let close = last && self.slots[i].server_closes;
        self.build_request(i, close);
        let service = if self.rng.chance(0.8) {
            self.rng.log_uniform(200 * US, 5 * MS)
        } else {
            self.rng.log_uniform(5 * MS, 50 * MS)
        };
        let think = if first {
            self.rng.range_i64(10 * US, 60 * US)
        } else {
            self.rng.log_uniform(50 * US, 20 * MS)
        };
        self.build_response(i, close, now + think + service);
        let rng = &mut self.rng;
        let s = &mut self.slots[i];
        s.requests_left = s.requests_left.saturating_sub(1);
        s.requests_done += 1;

        let req_len = s.req.len();
        let mut off = 0;
        let mut n = 0u32;
        let chunked = s.call.chunked_request;
        while off < req_len {
            let len = segment_len(req_len - off, chunked);
            let end = off + len == req_len;
            let gap = if n == 0 {
                think
            } else {
                rng.range_i64(2 * US, 15 * US)
            };
            let flags = if end { TCP_PSH | TCP_ACK } else { TCP_ACK };
            let mark = if n == 0 {
                Mark::RequestStart
            } else {
                Mark::None
            };
            s.push(gap, true, flags, off, len, mark);
            n += 1;
            off += len;
            if n.is_multiple_of(2) && !end {
                s.push(
                    rng.range_i64(20 * US, 80 * US),
                    false,
                    TCP_ACK,
                    0,
                    0,
                    Mark::None,
                );
            }
        }
        s.call.request_segments = n;

        let mut wait = service;
        if service > 10 * MS {
            // Delayed ACK fires before the application answers.
            let ack = rng.range_i64(200 * US, 2 * MS);
            s.push(ack, false, TCP_ACK, 0, 0, Mark::None);
            wait -= ack;
        }
        let resp_len = s.resp.len();
        let mut off = 0;
        let mut n = 0u32;
        let mut unacked = 0;
        let chunked = s.call.chunked_response;
        while off < resp_len {
            let len = segment_len(resp_len - off, chunked);
            let end = off + len == resp_len;
            let gap = if n == 0 {
                wait
            } else {
                rng.range_i64(2 * US, 20 * US)
            };
            let flags = if end { TCP_PSH | TCP_ACK } else { TCP_ACK };
            let mark = if end { Mark::ResponseEnd } else { Mark::None };
            s.push(gap, false, flags, off, len, mark);
            n += 1;
            unacked += 1;
            off += len;
            if unacked == 2 && !end {
                s.push(
                    rng.range_i64(20 * US, 60 * US),
                    true,
                    TCP_ACK,
                    0,
                    0,
                    Mark::None,
                );
                unacked = 0;
            }
        }
        s.call.response_segments = n;
        if !close {
            // The closing side's FIN carries the ACK otherwise.
            s.push(
                rng.range_i64(20 * US, 500 * US),
                true,
                TCP_ACK,
                0,
                0,
                Mark::None,
            );
        }
    }

    fn build_request(&mut self, i: usize, close: bool) {
        let rng = &mut self.rng;
        let method = {
            let r = rng.unit();
            if r < 0.70 {
                "GET"
            } else if r < 0.88 {
                "POST"
            } else if r < 0.95 {
                "PUT"
            } else {
                "DELETE"
            }
        };
        let path = &mut self.scratch;
        path.clear();
        let id = rng.range(1, 99_999);
        match method {
            "GET" => match rng.below(8) {
                0 => push_fmt_str(
                    path,
                    format_args!("/api/v1/products?page={}&limit=20", rng.range(1, 50)),
                ),
                1 => push_fmt_str(path, format_args!("/api/v1/products/{id}")),
                2 | 3 => push_fmt_str(
                    path,
                    format_args!("/api/v1/cart/{id}?user=u{}", rng.range(1000, 9999)),
                ),
                4 => push_fmt_str(path, format_args!("/api/v1/users/{id}")),
                5 => push_fmt_str(path, format_args!("/api/v1/orders/{id}")),
                6 => path.push_str("/healthz"),
                _ => push_fmt_str(
                    path,
                    format_args!("/api/v2/search?q={}&lang=en", rng.pick(SEARCH_WORDS)),
                ),
            },
            "POST" => match rng.below(4) {
                0 => path.push_str("/api/v1/checkout"),
                1 => path.push_str("/api/v1/orders"),
                2 => push_fmt_str(path, format_args!("/api/v1/cart/{id}/items")),
                _ => path.push_str("/api/v1/events"),
            },
            "PUT" => match rng.below(2) {
                0 => push_fmt_str(path, format_args!("/api/v1/cart/{id}")),
                _ => push_fmt_str(path, format_args!("/api/v1/users/{id}/preferences")),
            },
            _ => match rng.below(2) {
                0 => push_fmt_str(
                    path,
                    format_args!("/api/v1/cart/{id}/items/{}", rng.range(1, 20)),
                ),
                _ => push_fmt_str(
                    path,
                    format_args!("/api/v1/sessions/{:016x}", rng.next_u64()),
                ),
            },
        }
        let s = &mut self.slots[i];
        let req = &mut s.req;
        req.clear();
        push_fmt(req, format_args!("{method} {path} HTTP/1.1\r\n"));
        let svc = &self.service_names[s.server_index as usize];
        if s.server_port == 80 {
            push_fmt(
                req,
                format_args!("Host: {svc}.{NAMESPACE}.svc.cluster.local\r\n"),
            );
        } else {
            push_fmt(req, format_args!("Host: {svc}:{}\r\n", s.server_port));
        }
        push_fmt(req, format_args!("User-Agent: {}\r\n", s.user_agent));
        req.extend_from_slice(b"Accept: application/json\r\n");
        push_fmt(
            req,
            format_args!(
                "X-Request-Id: {:016x}{:016x}\r\n",
                rng.next_u64(),
                rng.next_u64()
            ),
        );
        if rng.chance(0.3) {
            push_fmt(
                req,
                format_args!(
                    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.{:016x}\r\n",
                    rng.next_u64()
                ),
            );
        }
        let has_body = matches!(method, "POST" | "PUT");
        let mut body_len = 0u64;
        let mut chunked = false;
        if has_body {
            let size = if rng.chance(0.9) {
                rng.range(20, 1500) as usize
            } else {
                rng.range(1500, MAX_REQUEST_BODY as u64) as usize
            };
            body_len = size as u64;
            req.extend_from_slice(b"Content-Type: application/json\r\n");
            chunked = rng.chance(0.05);
            if chunked {
                req.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            } else {
                push_fmt(req, format_args!("Content-Length: {size}\r\n"));
            }
        }
        if close {
            req.extend_from_slice(b"Connection: close\r\n");
        }
        req.extend_from_slice(b"\r\n");
        if has_body {
            let body_id = rng.range(1, 1_000_000);
            write_body(&self.filler, req, body_id, body_len as usize, chunked, rng);
        }
        let call = &mut s.call;
        call.method = method;
        call.path.clear();
        call.path.push_str(path);
        call.chunked_request = chunked;
        call.request_body = body_len;
        call.qtype = 0;
    }

    fn build_response(&mut self, i: usize, close: bool, at_ns: i64) {
        let rng = &mut self.rng;
        let s = &mut self.slots[i];
        let method = s.call.method;
        let r = rng.unit();
        let status: u16 = match method {
            "GET" => {
                if r < 0.85 {
                    200
                } else if r < 0.90 {
                    304
                } else if r < 0.95 {
                    404
                } else if r < 0.98 {
                    500
                } else {
                    503
                }
            }
            "POST" => {
                if r < 0.50 {
                    201
                } else if r < 0.90 {
                    200
                } else if r < 0.95 {
                    500
                } else {
                    503
                }
            }
            "PUT" => {
                if r < 0.70 {
                    200
                } else if r < 0.90 {
                    204
                } else if r < 0.95 {
                    404
                } else {
                    500
                }
            }
            _ => {
                if r < 0.80 {
                    204
                } else if r < 0.95 {
                    404
                } else {
                    503
                }
            }
        };
        let body_len: usize = match status {
            204 | 304 => 0,
            404 => rng.range(40, 120) as usize,
            500 | 503 => rng.range(60, 400) as usize,
            201 => rng.range(50, 600) as usize,
            _ => {
                let r = rng.unit();
                if r < 0.60 {
                    rng.range(50, 1000) as usize
                } else if r < 0.85 {
                    rng.range(1000, 6000) as usize
                } else if r < 0.97 {
                    rng.range(6000, 32_000) as usize
                } else {
                    rng.range(32_000, MAX_RESPONSE_BODY as u64) as usize
                }
            }
        };
        let has_body = !matches!(status, 204 | 304);
        // Servers stream big generated responses; about one in four 200s
        // above 2 kB (and a few small ones) come chunked.
        let chunked =
            has_body && status == 200 && rng.chance(if body_len > 2000 { 0.25 } else { 0.05 });
        let resp = &mut s.resp;
        resp.clear();
        push_fmt(
            resp,
            format_args!("HTTP/1.1 {status} {}\r\n", reason(status)),
        );
        resp.extend_from_slice(b"Date: ");
        push_http_date(resp, at_ns);
        resp.extend_from_slice(b"\r\n");
        push_fmt(
            resp,
            format_args!("Server: {}\r\n", rng.pick(SERVER_SOFTWARE)),
        );
        if has_body {
            resp.extend_from_slice(if status >= 500 && rng.chance(0.5) {
                b"Content-Type: text/html\r\n".as_slice()
            } else {
                b"Content-Type: application/json\r\n".as_slice()
            });
            if chunked {
                resp.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            } else {
                push_fmt(resp, format_args!("Content-Length: {body_len}\r\n"));
            }
        }
        if method == "GET" && matches!(status, 200 | 304) {
            push_fmt(
                resp,
                format_args!("ETag: \"{:08x}\"\r\n", rng.next_u64() as u32),
            );
            resp.extend_from_slice(b"Cache-Control: max-age=60\r\n");
        }
        if close {
            resp.extend_from_slice(b"Connection: close\r\n");
        }
        resp.extend_from_slice(b"\r\n");
        if has_body {
            let body_id = rng.range(1, 1_000_000);
            write_body(&self.filler, resp, body_id, body_len, chunked, rng);
        }
        let call = &mut s.call;
        call.status = status;
        call.chunked_response = chunked;
        call.response_body = body_len as u64;
    }

    fn start_dns(&mut self, i: usize) {
        let client = self.pick_client();
        let cport = self.ephemeral_port();
        let server = Host::new(self.cfg.dns_server.octets());
        let rng = &mut self.rng;
        let id = rng.next_u64() as u16;
        let qtype: u16 = if rng.chance(0.75) { 1 } else { 28 };
        let edns = rng.chance(0.5);
        let s = &mut self.slots[i];
        s.kind = Kind::Dns;
        s.client = client;
        s.client_port = cport;
        s.server = server;
        s.server_port = 53;
        s.plan.clear();
        let name = &mut s.call.path;
        name.clear();
        // What the answer section holds: CNAME targets, then addresses.
        let mut cnames: &[&str] = &[];
        let rcode: u16;
        let mut addresses = 0u64;
        let mut ttl = 30u32;
        let mut external = false;
        let r = rng.unit();
        let svc_index = rng.below(u64::from(self.cfg.servers)) as u32;
        if r < 0.55 {
            // An in-cluster service by its full name.
            let svc = &self.service_names[svc_index as usize];
            push_fmt_str(name, format_args!("{svc}.{NAMESPACE}.svc.cluster.local"));
            rcode = 0;
            addresses = 1;
        } else if r < 0.70 {
            // A search-path miss of an external name.
            let (ext, _) = rng.pick(EXTERNAL_NAMES);
            let suffix = rng.pick(SEARCH_SUFFIXES);
            push_fmt_str(name, format_args!("{ext}.{suffix}"));
            rcode = 3;
        } else {
            let (ext, chain) = rng.pick(EXTERNAL_NAMES);
            name.push_str(ext);
            cnames = chain;
            rcode = 0;
            addresses = rng.range(1, 3);
            ttl = rng.range(60, 300) as u32;
            external = true;
        }
        let flags_q: u16 = 0x0100; // RD
        let req = &mut s.req;
        req.clear();
        push_dns_header(req, id, flags_q, 1, 0, 0, u16::from(edns));
        push_name_plain(req, name);
        req.extend_from_slice(&qtype.to_be_bytes());
        req.extend_from_slice(&1u16.to_be_bytes());
        if edns {
            push_opt(req);
        }

        let resp = &mut s.resp;
        resp.clear();
        let flags_r: u16 = 0x8180 | rcode; // QR RD RA
        let ancount = if rcode == 0 {
            cnames.len() as u16 + addresses as u16
        } else {
            0
        };
        let nscount = u16::from(rcode != 0);
        push_dns_header(resp, id, flags_r, 1, ancount, nscount, u16::from(edns));
        let mut names = NameTable::default();
        names.write(resp, name);
        resp.extend_from_slice(&qtype.to_be_bytes());
        resp.extend_from_slice(&1u16.to_be_bytes());
        if rcode == 0 {
            let mut owner: &str = name;
            let mut owner_owned;
            for target in cnames {
                names.write(resp, owner);
                resp.extend_from_slice(&5u16.to_be_bytes()); // CNAME
                resp.extend_from_slice(&1u16.to_be_bytes());
                resp.extend_from_slice(&ttl.to_be_bytes());
                let len_at = resp.len();
                resp.extend_from_slice(&[0, 0]);
                names.write(resp, target);
                patch_len(resp, len_at);
                owner_owned = (*target).to_owned();
                owner = &owner_owned;
            }
            for a in 0..addresses {
                names.write(resp, owner);
                resp.extend_from_slice(&qtype.to_be_bytes());
                resp.extend_from_slice(&1u16.to_be_bytes());
                resp.extend_from_slice(&ttl.to_be_bytes());
                let host = if external {
                    (rng.range(1, 250)) as u8
                } else {
                    (svc_index + 1) as u8
                };
                if qtype == 1 {
                    resp.extend_from_slice(&4u16.to_be_bytes());
                    if external {
                        resp.extend_from_slice(&[
                            (rng.range(1, 223)) as u8,
                            rng.next_u64() as u8,
                            (a as u8).wrapping_add(rng.next_u64() as u8),
                            host,
                        ]);
                    } else {
                        resp.extend_from_slice(&[10, 2, 0, host]);
                    }
                } else {
                    resp.extend_from_slice(&16u16.to_be_bytes());
                    let prefix: [u8; 4] = if external {
                        [0x26, 0x06, 0x47, 0x00]
                    } else {
                        [0xfd, 0x00, 0x00, 0x02]
                    };
                    resp.extend_from_slice(&prefix);
                    resp.extend_from_slice(&rng.next_u64().to_be_bytes()[..6]);
                    resp.extend_from_slice(&[0, 0, 0, 0, 0, host]);
                }
            }
        } else {
            // NXDOMAIN carries the zone's SOA in the authority section, as
            // CoreDNS does, so negative answers can be cached.
            names.write(resp, "cluster.local");
            resp.extend_from_slice(&6u16.to_be_bytes()); // SOA
            resp.extend_from_slice(&1u16.to_be_bytes());
            resp.extend_from_slice(&30u32.to_be_bytes());
            let len_at = resp.len();
            resp.extend_from_slice(&[0, 0]);
            names.write(resp, "ns.dns.cluster.local");
            names.write(resp, "hostmaster.cluster.local");
            for v in [1_717_243_200u32, 7200, 1800, 86400, 30] {
                resp.extend_from_slice(&v.to_be_bytes());
            }
            patch_len(resp, len_at);
        }
        if edns {
            push_opt(resp);
        }
        let latency = if external {
            rng.log_uniform(2 * MS, 60 * MS)
        } else {
            rng.log_uniform(80 * US, 2 * MS)
        };
        let (qlen, rlen) = (s.req.len(), s.resp.len());
        s.push(0, true, 0, 0, qlen, Mark::RequestStart);
        s.push(latency, false, 0, 0, rlen, Mark::ResponseEnd);
        s.call.method = "";
        s.call.status = rcode;
        s.call.qtype = qtype;
    }

    /// Writes one planned packet at `now` and updates sequence numbers,
    /// timestamps and the ground truth.
    fn emit(&mut self, i: usize, seg: Seg, now: i64) -> io::Result<()> {
        let s = &mut self.slots[i];
        let (src, dst, sport, dport) = if seg.from_client {
            (s.client, s.server, s.client_port, s.server_port)
        } else {
            (s.server, s.client, s.server_port, s.client_port)
        };
        let buf = if seg.from_client { &s.req } else { &s.resp };
        let (off, len) = (seg.off as usize, seg.len as usize);
        let payload = &buf[off..off + len];
        let frame = &mut self.frame;
        match s.kind {
            Kind::Tcp => {
                let ms = (now / MS) as u32;
                let (seq, ack, ip_id, tsval, tsecr) = if seg.from_client {
                    let tsval = s.client_ts_base.wrapping_add(ms);
                    s.client_tsval = tsval;
                    (
                        s.client_seq,
                        s.server_seq,
                        &mut s.client_ip_id,
                        tsval,
                        s.server_tsval,
                    )
                } else {
                    let tsval = s.server_ts_base.wrapping_add(ms);
                    s.server_tsval = tsval;
                    (
                        s.server_seq,
                        s.client_seq,
                        &mut s.server_ip_id,
                        tsval,
                        s.client_tsval,
                    )
                };
                let id = *ip_id;
                *ip_id = ip_id.wrapping_add(1);
                let syn = seg.flags & TCP_SYN != 0;
                let advance = len as u32 + u32::from(syn) + u32::from(seg.flags & TCP_FIN != 0);
                let next = seq.wrapping_add(advance);
                if next < seq && !s.wrapped {
                    s.wrapped = true;
                    self.summary.tcp_seq_wraps += 1;
                }
                if seg.from_client {
                    s.client_seq = next;
                } else {
                    s.server_seq = next;
                }
                let ack = if seg.flags & TCP_ACK != 0 { ack } else { 0 };
                let tsecr = if seg.flags == TCP_SYN { 0 } else { tsecr };
                let window = match (syn, seg.from_client) {
                    (true, true) => 64240,
                    (true, false) => 65160,
                    (false, true) => 502,
                    (false, false) => 509,
                };
                build_tcp_frame(
                    frame,
                    &TcpFrame {
                        src,
                        dst,
                        sport,
                        dport,
                        ip_id: id,
                        seq,
                        ack,
                        flags: seg.flags,
                        window,
                        tsval,
                        tsecr,
                        syn_options: syn,
                    },
                    payload,
                );
                self.summary.tcp_packets += 1;
            }
            Kind::Dns | Kind::Idle => {
                let id = self.rng.next_u64() as u16;
                build_udp_frame(frame, src, dst, sport, dport, id, payload);
                self.summary.udp_packets += 1;
            }
        }
        let frame_len = frame.len() as u32;
        self.out.write_packet(now, frame, frame_len)?;
        let sum = &mut self.summary;
        if sum.packets == 0 {
            sum.first_ts_ns = now;
        }
        sum.packets += 1;
        sum.bytes += u64::from(frame_len);
        sum.last_ts_ns = now;
        match seg.mark {
            Mark::None => {}
            Mark::RequestStart => s.call.request_ts_ns = now,
            Mark::ResponseEnd => {
                let c = &s.call;
                let (protocol, dns_qtype) = if s.kind == Kind::Dns {
                    sum.dns_calls += 1;
                    *sum.dns_by_qtype
                        .entry(if c.qtype == 1 { "A" } else { "AAAA" }.to_owned())
                        .or_default() += 1;
                    *sum.dns_by_rcode.entry(c.status).or_default() += 1;
                    (CallProtocol::Dns, c.qtype)
                } else {
                    sum.http_calls += 1;
                    *sum.http_by_method.entry(c.method.to_owned()).or_default() += 1;
                    *sum.by_status.entry(c.status).or_default() += 1;
                    sum.http_chunked_requests += u64::from(c.chunked_request);
                    sum.http_chunked_responses += u64::from(c.chunked_response);
                    sum.http_multi_segment_requests += u64::from(c.request_segments > 1);
                    sum.http_multi_segment_responses += u64::from(c.response_segments > 1);
                    sum.http_request_body_bytes += c.request_body;
                    sum.http_response_body_bytes += c.response_body;
                    (CallProtocol::Http, 0)
                };
                (self.on_call)(&GeneratedCall {
                    protocol,
                    client: SocketAddrV4::new(s.client.ip.into(), s.client_port),
                    server: SocketAddrV4::new(s.server.ip.into(), s.server_port),
                    request_ts_ns: c.request_ts_ns,
                    response_ts_ns: now,
                    method: c.method,
                    path: &c.path,
                    status: c.status,
                    dns_qtype,
                });
            }
        }
        Ok(())
    }
}

/// Length of the next segment of a message with `rest` bytes left to send.
///
/// A chunked body's last segment always carries the whole terminating
/// `0\r\n\r\n`: tshark 4.0 reports a malformed packet (and loses the
/// message) when a segment boundary falls inside it, e.g. before the final
/// `\n`, and the benchmark and the tests compare against tshark. Servers
/// usually write that terminator on its own anyway.
fn segment_len(rest: usize, chunked: bool) -> usize {
    let len = MSS.min(rest);
    let tail = rest - len;
    if chunked && tail > 0 && tail < CHUNKED_END.len() {
        len - (CHUNKED_END.len() - tail)
    } else {
        len
    }
}

const CHUNKED_END: &[u8] = b"0\r\n\r\n";

/// Appends formatted text to a byte buffer; writing to a `Vec` cannot fail.
fn push_fmt(buf: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    let _ = buf.write_fmt(args);
}

/// Appends formatted text to a string; writing to a `String` cannot fail.
fn push_fmt_str(buf: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = std::fmt::Write::write_fmt(buf, args);
}

/// Appends a body of exactly `size` bytes, as is or chunked into pieces of
/// 512 B to 8 KiB (what servers flushing a stream produce).
fn write_body(
    filler: &[u8],
    buf: &mut Vec<u8>,
    id: u64,
    size: usize,
    chunked: bool,
    rng: &mut Rng,
) {
    if !chunked {
        body_into(filler, buf, id, size);
        return;
    }
    let start = buf.len();
    body_into(filler, buf, id, size);
    let body = buf.split_off(start);
    let mut rest = body.as_slice();
    while !rest.is_empty() {
        let n = (rng.range(512, 8192) as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        push_fmt(buf, format_args!("{n:x}\r\n"));
        buf.extend_from_slice(chunk);
        buf.extend_from_slice(b"\r\n");
        rest = tail;
    }
    buf.extend_from_slice(CHUNKED_END);
}

/// A small JSON object padded to exactly `size` bytes (tiny sizes are just
/// filler).
fn body_into(filler: &[u8], buf: &mut Vec<u8>, id: u64, size: usize) {
    let mut prefix = [0u8; 40];
    let mut cursor = io::Cursor::new(&mut prefix[..]);
    let _ = write!(cursor, "{{\"id\":{id},\"data\":\"");
    let p = cursor.position() as usize;
    let filler = &filler[(id % FILLER_SLACK as u64) as usize..];
    if size < p + 2 {
        buf.extend_from_slice(&filler[..size]);
        return;
    }
    buf.extend_from_slice(&prefix[..p]);
    buf.extend_from_slice(&filler[..size - p - 2]);
    buf.extend_from_slice(b"\"}");
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate) for a Unix time
/// in nanoseconds.
fn push_http_date(buf: &mut Vec<u8>, ts_ns: i64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ts_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    push_fmt(
        buf,
        format_args!(
            "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
            DAYS[days.rem_euclid(7) as usize],
            MONTHS[(m - 1) as usize],
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        ),
    );
}

/// Howard Hinnant's days-since-1970 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn push_dns_header(buf: &mut Vec<u8>, id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) {
    for v in [id, flags, qd, an, ns, ar] {
        buf.extend_from_slice(&v.to_be_bytes());
    }
}

/// EDNS(0) OPT pseudo-record advertising a 1232-byte UDP payload (the DNS
/// flag day 2020 value).
fn push_opt(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
}

fn push_name_plain(buf: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        buf.push(label.len() as u8);
        buf.extend_from_slice(label.as_bytes());
    }
    buf.push(0);
}

/// Fills in the RDLENGTH written as two zero bytes at `at`.
fn patch_len(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at - 2) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Name compression as RFC 1035 §4.1.4 describes and servers do it: every
/// suffix written once is remembered, and a later name ending in it ends in
/// a pointer instead.
#[derive(Debug, Default)]
struct NameTable {
    suffixes: Vec<(String, u16)>,
}

impl NameTable {
    fn write(&mut self, buf: &mut Vec<u8>, name: &str) {
        let mut rest = name.trim_end_matches('.');
        while !rest.is_empty() {
            if let Some((_, at)) = self
                .suffixes
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(rest))
            {
                buf.extend_from_slice(&(0xc000 | at).to_be_bytes());
                return;
            }
            if buf.len() < 0x3fff {
                self.suffixes.push((rest.to_owned(), buf.len() as u16));
            }
            let (label, tail) = rest.split_once('.').unwrap_or((rest, ""));
            buf.push(label.len() as u8);
            buf.extend_from_slice(label.as_bytes());
            rest = tail;
        }
        buf.push(0);
    }
}

#[derive(Debug)]
struct TcpFrame {
    src: Host,
    dst: Host,
    sport: u16,
    dport: u16,
    ip_id: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    tsval: u32,
    tsecr: u32,
    /// SYN and SYN/ACK carry MSS, SACK-permitted, timestamps and window
    /// scale, in Linux's order; every other segment only timestamps.
    syn_options: bool,
}

fn push_ethernet_ipv4(
    buf: &mut Vec<u8>,
    src: &Host,
    dst: &Host,
    proto: u8,
    ip_id: u16,
    l4_len: usize,
    df: bool,
) {
    buf.clear();
    buf.extend_from_slice(&dst.mac);
    buf.extend_from_slice(&src.mac);
    buf.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (IPV4_HEADER + l4_len) as u16;
    let ip_start = buf.len();
    buf.extend_from_slice(&[0x45, 0x00]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&ip_id.to_be_bytes());
    buf.extend_from_slice(if df { &[0x40, 0x00] } else { &[0x00, 0x00] });
    buf.extend_from_slice(&[64, proto, 0, 0]);
    buf.extend_from_slice(&src.ip);
    buf.extend_from_slice(&dst.ip);
    let csum = fold(ones_sum(&buf[ip_start..], 0));
    buf[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
}

fn pseudo_header_sum(src: &Host, dst: &Host, proto: u8, l4_len: usize) -> u64 {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&src.ip);
    p[4..8].copy_from_slice(&dst.ip);
    p[9] = proto;
    p[10..].copy_from_slice(&(l4_len as u16).to_be_bytes());
    ones_sum(&p, 0)
}

fn build_tcp_frame(buf: &mut Vec<u8>, t: &TcpFrame, payload: &[u8]) {
    let hdr_len = if t.syn_options { 40 } else { 32 };
    let l4_len = hdr_len + payload.len();
    push_ethernet_ipv4(buf, &t.src, &t.dst, 6, t.ip_id, l4_len, true);
    let tcp_start = buf.len();
    buf.extend_from_slice(&t.sport.to_be_bytes());
    buf.extend_from_slice(&t.dport.to_be_bytes());
    buf.extend_from_slice(&t.seq.to_be_bytes());
    buf.extend_from_slice(&t.ack.to_be_bytes());
    buf.push(((hdr_len / 4) as u8) << 4);
    buf.push(t.flags);
    buf.extend_from_slice(&t.window.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    if t.syn_options {
        buf.extend_from_slice(&[2, 4, 0x05, 0xb4, 4, 2, 8, 10]);
        buf.extend_from_slice(&t.tsval.to_be_bytes());
        buf.extend_from_slice(&t.tsecr.to_be_bytes());
        buf.extend_from_slice(&[1, 3, 3, 7]);
    } else {
        buf.extend_from_slice(&[1, 1, 8, 10]);
        buf.extend_from_slice(&t.tsval.to_be_bytes());
        buf.extend_from_slice(&t.tsecr.to_be_bytes());
    }
    let header_sum = ones_sum(
        &buf[tcp_start..],
        pseudo_header_sum(&t.src, &t.dst, 6, l4_len),
    );
    let csum = fold(ones_sum(payload, header_sum));
    buf[tcp_start + 16..tcp_start + 18].copy_from_slice(&csum.to_be_bytes());
    buf.extend_from_slice(payload);
}

fn build_udp_frame(
    buf: &mut Vec<u8>,
    src: Host,
    dst: Host,
    sport: u16,
    dport: u16,
    ip_id: u16,
    payload: &[u8],
) {
    let l4_len = UDP_HEADER + payload.len();
    push_ethernet_ipv4(buf, &src, &dst, 17, ip_id, l4_len, false);
    let udp_start = buf.len();
    buf.extend_from_slice(&sport.to_be_bytes());
    buf.extend_from_slice(&dport.to_be_bytes());
    buf.extend_from_slice(&(l4_len as u16).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(payload);
    let mut csum = fold(ones_sum(
        &buf[udp_start..],
        pseudo_header_sum(&src, &dst, 17, l4_len),
    ));
    if csum == 0 {
        csum = 0xffff; // 0 means "no checksum" in UDP over IPv4
    }
    buf[udp_start + 6..udp_start + 8].copy_from_slice(&csum.to_be_bytes());
    debug_assert_eq!(buf.len(), ETH_HEADER + IPV4_HEADER + l4_len);
}

/// Internet checksum accumulation (RFC 1071) over big-endian 32-bit words:
/// the ones' complement sum is the same as over 16-bit words, at half the
/// additions. `data` must start at an even offset of the checksummed span.
fn ones_sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rem = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rem.len()].copy_from_slice(rem);
    acc + u64::from(u32::from_be_bytes(tail))
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_checksum_matches_rfc1071_example() {
        // The IPv4 header from Wikipedia's "IPv4 header checksum" worked
        // example, whose checksum is 0xb861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(ones_sum(&header, 0)), 0xb861);
    }

    #[test]
    fn http_date_formats_known_instants() {
        let mut b = Vec::new();
        push_http_date(&mut b, 784_111_777 * 1_000_000_000);
        assert_eq!(b, b"Sun, 06 Nov 1994 08:49:37 GMT");
        b.clear();
        push_http_date(&mut b, GenConfig::default().start_ns);
        assert_eq!(b, b"Sat, 01 Jun 2024 12:00:00 GMT");
    }

    #[test]
    fn dns_names_compress_against_earlier_suffixes() {
        let mut buf = vec![0u8; 12];
        let mut t = NameTable::default();
        t.write(&mut buf, "a.example.com");
        let after_first = buf.len();
        t.write(&mut buf, "b.example.com");
        // "b" label (2 bytes) then a pointer to "example.com" at offset 14.
        assert_eq!(&buf[after_first..], &[1, b'b', 0xc0, 14]);
        t.write(&mut buf, "a.example.com");
        assert_eq!(&buf[buf.len() - 2..], &[0xc0, 12]);
    }

    #[test]
    fn bodies_have_exact_sizes_chunked_or_not() {
        let filler = vec![b'x'; 10_000 + FILLER_SLACK];
        let mut rng = Rng(7);
        for size in [0, 1, 5, 30, 1000, 9000] {
            let mut plain = Vec::new();
            write_body(&filler, &mut plain, 42, size, false, &mut rng);
            assert_eq!(plain.len(), size);
            let mut chunked = Vec::new();
            write_body(&filler, &mut chunked, 42, size, true, &mut rng);
            // De-chunk and compare.
            let mut out = Vec::new();
            let mut rest = chunked.as_slice();
            loop {
                let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let n = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16)
                    .unwrap();
                rest = &rest[line_end + 2..];
                if n == 0 {
                    assert_eq!(rest, b"\r\n");
                    break;
                }
                out.extend_from_slice(&rest[..n]);
                assert_eq!(&rest[n..n + 2], b"\r\n");
                rest = &rest[n + 2..];
            }
            assert_eq!(out, plain);
        }
    }

    fn small_config(seed: u64) -> GenConfig {
        GenConfig {
            packets: 5_000,
            seed,
            ..GenConfig::default()
        }
    }

    fn generate_to_vec(cfg: &GenConfig) -> (Vec<u8>, GenSummary) {
        let mut out = Vec::new();
        let summary = generate(&mut out, cfg).unwrap();
        (out, summary)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, sa) = generate_to_vec(&small_config(7));
        let (b, sb) = generate_to_vec(&small_config(7));
        let (c, _) = generate_to_vec(&small_config(8));
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_ne!(a, c);
    }

    #[test]
    fn zero_packets_writes_only_the_file_header() {
        let cfg = GenConfig {
            packets: 0,
            ..GenConfig::default()
        };
        let (out, summary) = generate_to_vec(&cfg);
        assert_eq!(out.len(), 24);
        assert_eq!(summary, GenSummary::default());
    }

    #[test]
    fn invalid_configs_are_refused() {
        for cfg in [
            GenConfig {
                clients: 0,
                ..GenConfig::default()
            },
            GenConfig {
                servers: 251,
                ..GenConfig::default()
            },
            GenConfig {
                requests_per_conn: (3, 2),
                ..GenConfig::default()
            },
            GenConfig {
                requests_per_conn: (0, 2),
                ..GenConfig::default()
            },
            GenConfig {
                dns_share: 1.5,
                ..GenConfig::default()
            },
            GenConfig {
                concurrency: 0,
                ..GenConfig::default()
            },
        ] {
            let err = generate(Vec::new(), &cfg).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{cfg:?}");
        }
    }

    #[test]
    fn only_dns_and_only_http_are_possible() {
        let (_, dns) = generate_to_vec(&GenConfig {
            packets: 500,
            dns_share: 1.0,
            ..GenConfig::default()
        });
        assert_eq!((dns.http_calls, dns.tcp_packets), (0, 0));
        assert!(dns.dns_calls >= 250);
        let (_, http) = generate_to_vec(&GenConfig {
            packets: 500,
            dns_share: 0.0,
            ..GenConfig::default()
        });
        assert_eq!((http.dns_calls, http.udp_packets), (0, 0));
        assert!(http.http_calls > 0);
    }

    /// What the test counts back from the written bytes, independently of
    /// the generator's own bookkeeping.
    #[derive(Debug, Default)]
    struct Recount {
        packets: u64,
        bytes: u64,
        first_ts: i64,
        last_ts: i64,
        syns: u64,
        fins: u64,
        requests: BTreeMap<String, u64>,
        statuses: BTreeMap<u16, u64>,
        dns_queries: u64,
        dns_rcodes: BTreeMap<u16, u64>,
        dns_qtypes: BTreeMap<u16, u64>,
        seq_wraps: u64,
    }

    /// Reads the nanosecond pcap written by `PcapWriter` by hand, checks
    /// every checksum, that timestamps never go back, and that each TCP
    /// direction is contiguous (seq follows seq + len, ACKs acknowledge
    /// exactly what the peer sent), and counts messages by their first
    /// bytes: every request and response starts a segment.
    fn recount(file: &[u8]) -> Recount {
        use std::collections::HashMap;
        assert_eq!(
            &file[..4],
            &0xa1b2_3c4d_u32.to_le_bytes(),
            "nanosecond pcap magic"
        );
        assert_eq!(
            u32::from_le_bytes(file[20..24].try_into().unwrap()),
            1,
            "Ethernet"
        );
        let mut r = Recount::default();
        // (src ip, src port, dst ip, dst port) → next sequence number.
        let mut next_seq: HashMap<([u8; 4], u16, [u8; 4], u16), u32> = HashMap::new();
        let mut wrapped: HashMap<([u8; 4], u16, [u8; 4], u16), bool> = HashMap::new();
        let mut at = 24;
        while at < file.len() {
            let rec = &file[at..at + 16];
            let secs = i64::from(u32::from_le_bytes(rec[0..4].try_into().unwrap()));
            let nanos = i64::from(u32::from_le_bytes(rec[4..8].try_into().unwrap()));
            let caplen = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
            let origlen = u32::from_le_bytes(rec[12..16].try_into().unwrap()) as usize;
            assert_eq!(caplen, origlen);
            let frame = &file[at + 16..at + 16 + caplen];
            at += 16 + caplen;
            let ts = secs * 1_000_000_000 + nanos;
            assert!(
                ts >= r.last_ts,
                "timestamps go back at packet {}",
                r.packets + 1
            );
            if r.packets == 0 {
                r.first_ts = ts;
            }
            r.last_ts = ts;
            r.packets += 1;
            r.bytes += caplen as u64;

            assert_eq!(&frame[12..14], &[0x08, 0x00]);
            let ip = &frame[ETH_HEADER..];
            assert_eq!(fold(ones_sum(&ip[..IPV4_HEADER], 0)), 0, "IPv4 checksum");
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert_eq!(total, ip.len());
            let (src, dst): ([u8; 4], [u8; 4]) = (
                ip[12..16].try_into().unwrap(),
                ip[16..20].try_into().unwrap(),
            );
            let l4 = &ip[IPV4_HEADER..];
            let pseudo =
                |proto| pseudo_header_sum(&Host::new(src), &Host::new(dst), proto, l4.len());
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            match ip[9] {
                6 => {
                    assert_eq!(fold(ones_sum(l4, pseudo(6))), 0, "TCP checksum");
                    let seq = u32::from_be_bytes(l4[4..8].try_into().unwrap());
                    let ack = u32::from_be_bytes(l4[8..12].try_into().unwrap());
                    let flags = l4[13];
                    let payload = &l4[usize::from(l4[12] >> 4) * 4..];
                    let key = (src, sport, dst, dport);
                    let back = (dst, dport, src, sport);
                    if flags & TCP_SYN != 0 {
                        if flags & TCP_ACK == 0 {
                            r.syns += 1;
                        }
                        next_seq.insert(key, seq);
                    }
                    let expected = next_seq[&key];
                    assert_eq!(seq, expected, "contiguous sequence numbers");
                    if flags & TCP_ACK != 0 {
                        assert_eq!(ack, next_seq[&back], "ACK acknowledges what the peer sent");
                    }
                    let advance = payload.len() as u32
                        + u32::from(flags & TCP_SYN != 0)
                        + u32::from(flags & TCP_FIN != 0);
                    let next = seq.wrapping_add(advance);
                    if next < seq {
                        wrapped.insert(
                            if sport == 80 || sport == 8080 {
                                back
                            } else {
                                key
                            },
                            true,
                        );
                    }
                    next_seq.insert(key, next);
                    if flags & TCP_FIN != 0 {
                        r.fins += 1;
                    }
                    if let Some(rest) = payload.strip_prefix(b"HTTP/1.1 ") {
                        let status = std::str::from_utf8(&rest[..3]).unwrap().parse().unwrap();
                        *r.statuses.entry(status).or_default() += 1;
                    } else if let Some(sp) = payload.iter().take(8).position(|&b| b == b' ') {
                        let method = std::str::from_utf8(&payload[..sp]).unwrap();
                        if ["GET", "POST", "PUT", "DELETE"].contains(&method) {
                            *r.requests.entry(method.to_owned()).or_default() += 1;
                        }
                    }
                }
                17 => {
                    assert_eq!(fold(ones_sum(l4, pseudo(17))), 0, "UDP checksum");
                    let dns = &l4[UDP_HEADER..];
                    let flags = u16::from_be_bytes([dns[2], dns[3]]);
                    if dport == 53 {
                        r.dns_queries += 1;
                        // Question: one name, then type.
                        let mut p = 12;
                        while dns[p] != 0 {
                            p += 1 + usize::from(dns[p]);
                        }
                        let qtype = u16::from_be_bytes([dns[p + 1], dns[p + 2]]);
                        *r.dns_qtypes.entry(qtype).or_default() += 1;
                    } else {
                        assert_eq!(sport, 53);
                        assert!(flags & 0x8000 != 0, "response bit");
                        *r.dns_rcodes.entry(flags & 0xf).or_default() += 1;
                    }
                }
                other => panic!("unexpected IP protocol {other}"),
            }
        }
        r.seq_wraps = wrapped.len() as u64;
        r
    }

    #[test]
    fn summary_matches_what_the_frames_hold() {
        let mut calls = Vec::new();
        let mut out = Vec::new();
        let summary = generate_with_calls(&mut out, &small_config(3), |c| {
            calls.push((
                c.protocol,
                c.request_ts_ns,
                c.response_ts_ns,
                c.status,
                c.method.to_owned(),
            ));
        })
        .unwrap();
        let r = recount(&out);
        assert!(
            summary.packets >= 5_000 && summary.packets < 8_000,
            "{}",
            summary.packets
        );
        assert_eq!(r.packets, summary.packets);
        assert_eq!(r.packets, summary.tcp_packets + summary.udp_packets);
        assert_eq!(r.bytes, summary.bytes);
        assert_eq!(out.len() as u64, 24 + 16 * summary.packets + summary.bytes);
        assert_eq!(
            (r.first_ts, r.last_ts),
            (summary.first_ts_ns, summary.last_ts_ns)
        );
        assert_eq!(r.syns, summary.tcp_connections);
        // Every connection is torn down by both sides.
        assert_eq!(r.fins, 2 * summary.tcp_connections);
        assert_eq!(r.seq_wraps, summary.tcp_seq_wraps);
        assert_eq!(r.requests, summary.http_by_method);
        assert_eq!(r.statuses, summary.by_status);
        assert_eq!(r.requests.values().sum::<u64>(), summary.http_calls);
        assert_eq!(r.dns_queries, summary.dns_calls);
        assert_eq!(r.dns_rcodes, summary.dns_by_rcode);
        let qtypes: BTreeMap<String, u64> = r
            .dns_qtypes
            .iter()
            .map(|(t, n)| (if *t == 1 { "A" } else { "AAAA" }.to_owned(), *n))
            .collect();
        assert_eq!(qtypes, summary.dns_by_qtype);

        // The per-call reports agree with the totals.
        assert_eq!(calls.len() as u64, summary.http_calls + summary.dns_calls);
        assert!(
            calls
                .iter()
                .all(|c| c.1 <= c.2 && c.1 >= summary.first_ts_ns)
        );
        let http = calls.iter().filter(|c| c.0 == CallProtocol::Http).count() as u64;
        assert_eq!(http, summary.http_calls);

        // The mix the benchmark relies on is there.
        assert!(summary.http_chunked_responses > 0);
        assert!(summary.http_multi_segment_responses > 0);
        assert!(summary.http_multi_segment_requests > 0);
        assert!(summary.dns_by_rcode.get(&3).copied().unwrap_or(0) > 0);
        assert!(summary.by_status.len() >= 6, "{:?}", summary.by_status);
        // About 20 000 packets per simulated second.
        let secs = (summary.last_ts_ns - summary.first_ts_ns) as f64 / 1e9;
        let pps = summary.packets as f64 / secs;
        assert!((10_000.0..=25_000.0).contains(&pps), "{pps} packets/s");
    }

    #[test]
    fn sequence_numbers_wrap_in_a_larger_capture() {
        let (out, summary) = generate_to_vec(&GenConfig {
            packets: 40_000,
            seed: 11,
            ..GenConfig::default()
        });
        assert!(summary.tcp_seq_wraps > 0);
        assert_eq!(recount(&out).seq_wraps, summary.tcp_seq_wraps);
    }

    #[test]
    fn chunked_terminator_never_straddles_segments() {
        for rest in 1..=3 * MSS {
            let len = segment_len(rest, true);
            let tail = rest - len;
            assert!(
                len > 0 && (tail == 0 || tail >= CHUNKED_END.len()),
                "rest {rest}"
            );
        }
    }
}
