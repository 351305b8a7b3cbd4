//! The flow table: finds each packet's connection with one hash lookup on
//! a two-way key, decides client and server, numbers connections, runs
//! TCP reassembly per direction, and retires connections on FIN/RST, idle
//! timeout, the connection cap and end of input, driving a
//! [`FlowHandler`] through each connection's life.
//!
//! Called by the dissection pipeline (`trawl-dissect`) once per decoded
//! TCP segment or UDP datagram, in capture order. Time is the packets'
//! own: the table's clock is the largest timestamp seen so far, and every
//! callback is stamped with it, so calls for one connection never go back
//! in time even when a merged capture does.
//!
//! Timers cost O(1) per packet: connections sit in least-recently-seen
//! lists (one per idle timeout), and directions waiting on a hole sit in a
//! list ordered by when they last made progress. Both are intrusive lists
//! over the slot arrays, so touching a connection is a few index writes,
//! and expiry only ever looks at list heads.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use foldhash::fast::RandomState;
use trawl_packet::{TcpSegment, UdpDatagram};

use crate::expert::Expert;
use crate::reassembly::{Ctx, Progress, Reassembler, StreamSink};
use crate::{
    CloseReason, ConnInfo, Direction, EndKind, FlowHandler, Nanos, RoleSource, TransportKind,
};

const SECOND: Nanos = 1_000_000_000;

/// Idle time after which a TCP connection is closed. Zeek's
/// `tcp_inactivity_timeout` is 5 min, and it outlasts the idle limits of
/// common keep-alive pools (nginx 75 s, Go's `http.Transport` 90 s), so a
/// pooled connection that pauses between requests stays one connection.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Nanos = 5 * 60 * SECOND;

/// Idle time after which a UDP "connection" (a 5-tuple) is closed. Zeek's
/// `udp_inactivity_timeout` is 1 min; DNS and similar request/response
/// protocols answer within seconds, and streaming UDP (QUIC, RTP) sends
/// far more often than once a minute.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Nanos = 60 * SECOND;

/// How long a finished (FIN/FIN or RST) TCP connection stays in the table
/// to absorb its late packets (the last ACK, a retransmitted FIN) instead
/// of letting them start a new connection. Such packets come within a few
/// retransmission timeouts; a new SYN on the same ports starts a new
/// connection at once regardless.
pub const DEFAULT_CLOSED_LINGER: Nanos = 10 * SECOND;

/// Most connections (live or lingering) held at once. Each costs about
/// 1 KiB of table state (half of it the TCP analysis' ring of segments
/// in flight, `expert::UNACKED_SLOTS`) plus the handler's state, so the
/// cap holds table memory near 1 GiB; a busy node sees well under this
/// many connections within one idle timeout.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1 << 20;

/// Out-of-order bytes held for one direction. A sender can have at most
/// one receive window in flight past a hole; 1 MiB is the bandwidth-delay
/// product of 1 Gbit/s at 8 ms. Larger windows exist, but past this the
/// hole is given up on: one gap in a bulk transfer, whose bodies the
/// dissectors cap anyway.
pub const DEFAULT_MAX_BUFFERED_PER_DIRECTION: usize = 1 << 20;

/// Out-of-order bytes held across all connections: 256 directions at their
/// full cap, a bound an indexing node can afford next to its capture.
pub const DEFAULT_MAX_BUFFERED_TOTAL: usize = 256 << 20;

/// How long a direction may wait, without progress, for the bytes of a
/// hole while it holds data after it. A segment lost in the network comes
/// back by retransmission: after about one RTT (fast retransmit), or after
/// the retransmission timeout, which starts at 1 s and doubles (RFC 6298:
/// resent at +1 s, then +3 s). Bytes only the capture dropped never come
/// back, but the receiver's ACK past the hole ends that wait at once.
pub const DEFAULT_GAP_TIMEOUT: Nanos = 3 * SECOND;

/// Ports taken to be servers when no handshake was seen, beyond the
/// well-known range (< 1024): databases, brokers, caches and common HTTP
/// alternates. All are below 32768 so none collides with Linux's ephemeral
/// range (32768–60999), where clients' ports come from.
const SERVICE_PORTS: &[u16] = &[
    1433,  // SQL Server
    1521,  // Oracle
    2181,  // ZooKeeper
    2379,  // etcd
    3000,  // HTTP (dev servers, Grafana)
    3306,  // MySQL
    4317,  // OTLP gRPC
    4318,  // OTLP HTTP
    5000,  // HTTP (dev servers, registries)
    5432,  // PostgreSQL
    5672,  // AMQP
    6379,  // Redis
    6443,  // Kubernetes API
    8000,  // HTTP alternate
    8080,  // HTTP alternate
    8081,  // HTTP alternate
    8443,  // HTTPS alternate
    8888,  // HTTP alternate
    9000,  // HTTP alternate
    9042,  // Cassandra
    9090,  // Prometheus, gRPC
    9092,  // Kafka
    9200,  // Elasticsearch
    9300,  // Elasticsearch transport
    10250, // kubelet
    11211, // memcached
    15672, // RabbitMQ management
    27017, // MongoDB
];

/// Limits and timeouts of a [`FlowTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// A TCP connection without packets for this long is closed
    /// ([`CloseReason::IdleTimeout`]).
    pub tcp_idle_timeout: Nanos,
    /// A UDP 5-tuple without datagrams for this long is closed.
    pub udp_idle_timeout: Nanos,
    /// How long a finished TCP connection absorbs late packets.
    pub closed_linger: Nanos,
    /// Most connections held; past it the least recently seen is evicted
    /// ([`CloseReason::Evicted`]). At least 1.
    pub max_connections: usize,
    /// Out-of-order bytes held per direction (payload plus a fixed
    /// per-chunk overhead); past it the front hole becomes a gap.
    pub max_buffered_per_direction: usize,
    /// Out-of-order bytes held across the table; past it the holes that
    /// waited longest become gaps.
    pub max_buffered_total: usize,
    /// A hole is given up on (a gap) after the direction made no progress
    /// for this long while holding data after it.
    pub gap_timeout: Nanos,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            udp_idle_timeout: DEFAULT_UDP_IDLE_TIMEOUT,
            closed_linger: DEFAULT_CLOSED_LINGER,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_buffered_per_direction: DEFAULT_MAX_BUFFERED_PER_DIRECTION,
            max_buffered_total: DEFAULT_MAX_BUFFERED_TOTAL,
            gap_timeout: DEFAULT_GAP_TIMEOUT,
        }
    }
}

/// Counters over everything the table saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub tcp_packets: u64,
    pub udp_packets: u64,
    /// Connections opened.
    pub connections: u64,
    /// Connections closed by FIN/FIN, RST, or a new SYN on their ports.
    pub closed_finished: u64,
    pub closed_idle: u64,
    /// Connections evicted at the connection cap.
    pub evicted: u64,
    /// Connections flushed by [`FlowTable::finish`].
    pub closed_end_of_input: u64,
    /// New connections on the ports of a finished or superseded one.
    pub port_reuses: u64,
    /// Gap events, and the bytes they stand for.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Segments all of whose bytes were delivered or buffered before.
    pub retransmitted_segments: u64,
    /// Segments partly old, partly new.
    pub overlapping_segments: u64,
    /// Segments that arrived ahead of a hole and were buffered.
    pub out_of_order_segments: u64,
    /// Segments dropped as outside any sane window (over 1 GiB ahead, or
    /// data after the FIN).
    pub out_of_window_segments: u64,
    /// Times a buffer cap (per direction or total) forced a gap.
    pub buffer_cap_hits: u64,
    /// Of those, times the table-wide cap did.
    pub total_cap_hits: u64,
    /// TCP segments that belong to no live connection and start none: a
    /// lone RST or ACK, late packets of a finished connection.
    pub ignored_segments: u64,
    /// UDP datagrams shorter than their header says (snap length).
    pub truncated_datagrams: u64,
}

/// The two-way key: the lower (address, port) first, so both directions
/// of a connection find one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: IpAddr,
    hi: IpAddr,
    lo_port: u16,
    hi_port: u16,
    transport: TransportKind,
}

impl FlowKey {
    /// The key, and whether `src` is its lower side.
    fn new(
        transport: TransportKind,
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
    ) -> (FlowKey, bool) {
        if (src, src_port) <= (dst, dst_port) {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    lo_port: src_port,
                    hi_port: dst_port,
                    transport,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    lo_port: dst_port,
                    hi_port: src_port,
                    transport,
                },
                false,
            )
        }
    }
}

fn is_service_port(port: u16) -> bool {
    port < 1024 || SERVICE_PORTS.binary_search(&port).is_ok()
}

/// Without a handshake: is the packet's sender the server? The side with
/// a service port, or else the lower port.
fn sender_is_server_by_port(src_port: u16, dst_port: u16) -> bool {
    match (is_service_port(src_port), is_service_port(dst_port)) {
        (true, false) => true,
        (false, true) => false,
        _ => src_port < dst_port,
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

trait Node {
    fn link(&mut self) -> &mut Link;
}

/// An intrusive doubly linked list over a slice of nodes, by index.
/// Membership is tracked by the caller; out-of-range indices are ignored.
#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

impl List {
    fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    fn push_back<N: Node>(&mut self, nodes: &mut [N], i: u32) {
        let tail = self.tail;
        if let Some(n) = nodes.get_mut(i as usize) {
            *n.link() = Link {
                prev: tail,
                next: NIL,
            };
        } else {
            return;
        }
        match nodes.get_mut(tail as usize) {
            Some(t) => t.link().next = i,
            None => self.head = i,
        }
        self.tail = i;
    }

    fn unlink<N: Node>(&mut self, nodes: &mut [N], i: u32) {
        let Some(n) = nodes.get_mut(i as usize) else {
            return;
        };
        let Link { prev, next } = std::mem::replace(n.link(), UNLINKED);
        match nodes.get_mut(prev as usize) {
            Some(p) => p.link().next = next,
            None => self.head = next,
        }
        match nodes.get_mut(next as usize) {
            Some(n) => n.link().prev = prev,
            None => self.tail = prev,
        }
    }
}

/// Which least-recently-seen list a slot is in.
const LRU_TCP: usize = 0;
const LRU_UDP: usize = 1;
const LRU_CLOSED: usize = 2;

#[derive(Clone, Copy, Debug)]
struct LruNode {
    link: Link,
    last_seen: Nanos,
    list: usize,
}

impl Node for LruNode {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }
}

/// A direction waiting on a hole; node `2 * slot + direction`.
#[derive(Clone, Copy, Debug)]
struct PendNode {
    link: Link,
    /// When it last made progress (or started waiting).
    since: Nanos,
    linked: bool,
}

impl Node for PendNode {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }
}

const DIRS: [Direction; 2] = [Direction::ToServer, Direction::ToClient];

struct Conn<S> {
    info: ConnInfo,
    /// Whether the key's lower side is the client: with the packet's
    /// side, gives its direction without comparing addresses.
    lo_is_client: bool,
    /// `None` once closed: the entry lingers to absorb late packets.
    state: Option<S>,
    /// Per direction, in the order of [`DIRS`]; unused for UDP.
    streams: [Reassembler; 2],
    /// Counters and TCP analysis, fed every packet (late ones included)
    /// until the slot is removed.
    expert: Expert,
}

impl<S> Conn<S> {
    fn dir(&self, src_is_lo: bool) -> usize {
        if src_is_lo == self.lo_is_client { 0 } else { 1 }
    }

    fn key(&self) -> FlowKey {
        let c = self.info.client;
        let s = self.info.server;
        FlowKey::new(self.info.transport, c.ip(), c.port(), s.ip(), s.port()).0
    }
}

/// Feeds one direction's reassembled stream to the handler.
struct Deliver<'a, H: FlowHandler> {
    handler: &'a mut H,
    state: &'a mut H::State,
    conn: &'a ConnInfo,
    dir: Direction,
    ts: Nanos,
}

impl<H: FlowHandler> StreamSink for Deliver<'_, H> {
    fn data(&mut self, data: &[u8]) {
        self.handler
            .data(self.state, self.conn, self.dir, self.ts, data);
    }
    fn gap(&mut self, len: u64) {
        self.handler
            .gap(self.state, self.conn, self.dir, self.ts, len);
    }
    fn end(&mut self, how: EndKind) {
        self.handler
            .end(self.state, self.conn, self.dir, self.ts, how);
    }
}

/// What an existing entry makes of a TCP segment.
enum Existing {
    /// A live connection's segment.
    Live,
    /// A new SYN (other ISN) on a live connection: the old one is over.
    Superseded,
    /// A new SYN or SYN-ACK on a finished connection's ports.
    Reused,
    /// A late packet of a finished connection.
    Late,
}

/// Connections keyed two-way, with TCP reassembly, timeouts and caps.
pub struct FlowTable<H: FlowHandler> {
    config: FlowConfig,
    map: HashMap<FlowKey, u32, RandomState>,
    conns: Vec<Option<Conn<H::State>>>,
    lru: Vec<LruNode>,
    pend: Vec<PendNode>,
    free: Vec<u32>,
    lists: [List; 3],
    pending: List,
    /// Largest packet time seen.
    now: Nanos,
    /// No timer is due before this; checked once per packet.
    next_deadline: Nanos,
    next_id: u64,
    live: usize,
    total_buffered: usize,
    stats: FlowStats,
}

impl<H: FlowHandler> fmt::Debug for FlowTable<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("config", &self.config)
            .field("live", &self.live)
            .field("slots", &self.map.len())
            .field("now", &self.now)
            .field("buffered", &self.total_buffered)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<H: FlowHandler> FlowTable<H> {
    pub fn new(mut config: FlowConfig) -> Self {
        // Slots are addressed by u32 (NIL excluded, two pending nodes each).
        config.max_connections = config.max_connections.clamp(1, (u32::MAX / 2 - 1) as usize);
        FlowTable {
            config,
            map: HashMap::with_hasher(RandomState::default()),
            conns: Vec::new(),
            lru: Vec::new(),
            pend: Vec::new(),
            free: Vec::new(),
            lists: [EMPTY; 3],
            pending: EMPTY,
            now: Nanos::MIN,
            next_deadline: Nanos::MAX,
            next_id: 1,
            live: 0,
            total_buffered: 0,
            stats: FlowStats::default(),
        }
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Live connections (finished ones lingering for late packets excluded).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes held for out-of-order data across all connections, as
    /// charged against the caps (payload plus a fixed per-chunk overhead).
    pub fn buffered_bytes(&self) -> usize {
        self.total_buffered
    }

    /// One TCP segment from `src` to `dst`, captured at `ts`.
    pub fn tcp(
        &mut self,
        handler: &mut H,
        ts: Nanos,
        src: IpAddr,
        dst: IpAddr,
        seg: &TcpSegment<'_>,
    ) {
        self.stats.tcp_packets += 1;
        self.advance_clock(handler, ts);
        let (key, src_is_lo) =
            FlowKey::new(TransportKind::Tcp, src, seg.src_port, dst, seg.dst_port);
        let flags = seg.flags;
        let found = self.map.get(&key).copied();
        let i = match found.map(|i| (i, self.classify(i, src_is_lo, seg))) {
            Some((i, Existing::Live)) => {
                self.touch(i);
                i
            }
            Some((i, Existing::Late)) => {
                self.stats.ignored_segments += 1;
                if let Some(Some(conn)) = self.conns.get_mut(i as usize) {
                    let d = conn.dir(src_is_lo);
                    conn.expert.tcp(d, ts, seg);
                }
                return;
            }
            Some((i, how)) => {
                if matches!(how, Existing::Superseded) {
                    self.close(handler, i, CloseReason::Finished);
                }
                self.remove_slot(handler, i);
                self.stats.port_reuses += 1;
                match self.open_tcp(handler, key, src_is_lo, src, dst, seg) {
                    Some(i) => i,
                    None => return,
                }
            }
            None => {
                // Only a SYN or data starts a connection: a lone ACK, FIN
                // or RST would make an empty one (often the tail of one
                // that was just retired).
                let starts = !flags.rst() && (flags.syn() || seg.payload_len > 0);
                if !starts {
                    self.stats.ignored_segments += 1;
                    return;
                }
                match self.open_tcp(handler, key, src_is_lo, src, dst, seg) {
                    Some(i) => i,
                    None => return,
                }
            }
        };

        let Some(Some(conn)) = self.conns.get_mut(i as usize) else {
            return;
        };
        let d = conn.dir(src_is_lo);
        let r = 1 - d;
        conn.expert.tcp(d, ts, seg);
        if flags.rst() {
            // The connection is over in both directions; what is held is
            // delivered with gaps. A RST's payload (diagnostic text, RFC
            // 9293 §3.5.3) is not stream data.
            for dir in [d, r] {
                self.stream_op(handler, i, dir, |s, cx, sink| s.reset(cx, sink));
            }
            self.close(handler, i, CloseReason::Finished);
            return;
        }
        let before = [conn.streams[0].progress(), conn.streams[1].progress()];
        let [s0, s1] = &mut conn.streams;
        let (sd, sr) = if d == 0 { (s0, s1) } else { (s1, s0) };
        if !sd.is_started() {
            if flags.syn() {
                sd.start(seg.seq.wrapping_add(1), Some(seg.seq));
            } else if seg.payload_len == 1 && !flags.fin() {
                // Mid-stream, a lone one-byte segment is almost always a
                // keep-alive probe: SND.NXT-1 with one garbage byte (RFC
                // 9293 §3.8.4), and the next real data reuses its sequence
                // number. Start the stream after it so that the garbage
                // byte is not glued to the front of the next message.
                sd.start(seg.seq.wrapping_add(1), None);
            } else {
                sd.start(seg.seq, None);
            }
        }
        if flags.syn() && flags.ack() && !sr.is_started() {
            // The SYN-ACK acknowledges the client's ISN + 1: its stream
            // starts there even if the SYN was missed.
            sr.start(seg.ack, Some(seg.ack.wrapping_sub(1)));
        }
        let data_seq = if flags.syn() {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        self.stream_op(handler, i, d, |s, cx, sink| {
            s.segment(
                data_seq,
                seg.payload,
                seg.payload_len,
                flags.fin(),
                cx,
                sink,
            );
        });
        if flags.ack() {
            self.stream_op(handler, i, r, |s, cx, sink| s.acked(seg.ack, cx, sink));
        }
        self.after_streams(handler, i, before);
    }

    /// One UDP datagram from `src` to `dst`, captured at `ts`.
    pub fn udp(
        &mut self,
        handler: &mut H,
        ts: Nanos,
        src: IpAddr,
        dst: IpAddr,
        dgram: &UdpDatagram<'_>,
    ) {
        self.stats.udp_packets += 1;
        self.advance_clock(handler, ts);
        let (key, src_is_lo) =
            FlowKey::new(TransportKind::Udp, src, dgram.src_port, dst, dgram.dst_port);
        let i = match self.map.get(&key).copied() {
            Some(i) => {
                self.touch(i);
                i
            }
            None => {
                let client_is_src = !sender_is_server_by_port(dgram.src_port, dgram.dst_port);
                let roles = (client_is_src, RoleSource::PortGuess);
                let ends = (src, dgram.src_port, dst, dgram.dst_port);
                match self.open(handler, key, src_is_lo, ends, roles) {
                    Some(i) => i,
                    None => return,
                }
            }
        };
        if (dgram.payload.len() as u64) < u64::from(dgram.payload_len) {
            self.stats.truncated_datagrams += 1;
        }
        let now = self.now;
        if let Some(Some(conn)) = self.conns.get_mut(i as usize) {
            let d = conn.dir(src_is_lo);
            conn.expert.udp(d, ts, dgram.payload_len);
            let dir = DIRS.get(d).copied().unwrap_or(Direction::ToServer);
            if let Some(state) = conn.state.as_mut() {
                handler.data(state, &conn.info, dir, now, dgram.payload);
            }
        }
    }

    /// The input ended: every live connection delivers what it holds (with
    /// gaps for its holes), ends the directions whose FIN was seen, and
    /// closes with [`CloseReason::EndOfInput`], in order of id; then every
    /// connection still in the table (finished ones lingering included)
    /// retires, in order of id. The table is empty afterwards.
    pub fn finish(&mut self, handler: &mut H) {
        let mut all: Vec<(u64, u32, bool)> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                Some((c.info.id, u32::try_from(i).ok()?, c.state.is_some()))
            })
            .collect();
        all.sort_unstable();
        for &(_, i, live) in &all {
            if live {
                self.close(handler, i, CloseReason::EndOfInput);
            }
        }
        for &(_, i, _) in &all {
            // Closing a live one above already retired it unless it
            // lingers; remove_slot skips emptied slots.
            self.remove_slot(handler, i);
        }
        self.map.clear();
        self.conns.clear();
        self.lru.clear();
        self.pend.clear();
        self.free.clear();
        self.lists = [EMPTY; 3];
        self.pending = EMPTY;
        self.next_deadline = Nanos::MAX;
        self.live = 0;
        self.total_buffered = 0;
    }

    /// Move the clock and run the timers that are due.
    fn advance_clock(&mut self, handler: &mut H, ts: Nanos) {
        if ts > self.now {
            self.now = ts;
        }
        if self.now >= self.next_deadline {
            self.sweep(handler);
        }
    }

    fn sweep(&mut self, handler: &mut H) {
        let now = self.now;
        while let Some(node) = self.pending.front() {
            let since = self.pend.get(node as usize).map_or(Nanos::MIN, |p| p.since);
            if since.saturating_add(self.config.gap_timeout) > now {
                break;
            }
            self.fire_gap_timer(handler, node);
        }
        let timeouts = [
            (LRU_CLOSED, self.config.closed_linger),
            (LRU_TCP, self.config.tcp_idle_timeout),
            (LRU_UDP, self.config.udp_idle_timeout),
        ];
        for (list, timeout) in timeouts {
            while let Some(i) = self.lists.get(list).and_then(List::front) {
                let seen = self.lru.get(i as usize).map_or(Nanos::MIN, |n| n.last_seen);
                if seen.saturating_add(timeout) > now {
                    break;
                }
                if list == LRU_CLOSED {
                    self.remove_slot(handler, i);
                } else {
                    self.close(handler, i, CloseReason::IdleTimeout);
                }
            }
        }
        self.next_deadline = self.earliest_deadline();
    }

    fn earliest_deadline(&self) -> Nanos {
        let mut t = Nanos::MAX;
        if let Some(node) = self.pending.front()
            && let Some(p) = self.pend.get(node as usize)
        {
            t = t.min(p.since.saturating_add(self.config.gap_timeout));
        }
        for (list, timeout) in [
            (LRU_CLOSED, self.config.closed_linger),
            (LRU_TCP, self.config.tcp_idle_timeout),
            (LRU_UDP, self.config.udp_idle_timeout),
        ] {
            if let Some(i) = self.lists.get(list).and_then(List::front)
                && let Some(n) = self.lru.get(i as usize)
            {
                t = t.min(n.last_seen.saturating_add(timeout));
            }
        }
        t
    }

    fn timeout_of(&self, list: usize) -> Nanos {
        match list {
            LRU_TCP => self.config.tcp_idle_timeout,
            LRU_UDP => self.config.udp_idle_timeout,
            _ => self.config.closed_linger,
        }
    }

    /// A direction made no progress for the gap timeout: give up on its
    /// holes that waited that long.
    fn fire_gap_timer(&mut self, handler: &mut H, node: u32) {
        let i = node / 2;
        let d = (node % 2) as usize;
        let before = self.progress(i);
        let timeout = self.config.gap_timeout;
        self.stream_op(handler, i, d, |s, cx, sink| {
            s.expire_holes(timeout, cx, sink)
        });
        // Re-arm (or drop) the timer even if nothing moved, so the sweep
        // never sees the same expired head twice.
        self.unlink_pending(node);
        self.after_streams(handler, i, before);
    }

    /// Over the total cap: give up the front holes of the directions that
    /// waited longest until under it.
    fn relieve_memory(&mut self, handler: &mut H) {
        while self.total_buffered > self.config.max_buffered_total {
            let Some(node) = self.pending.front() else {
                break;
            };
            self.stats.buffer_cap_hits += 1;
            self.stats.total_cap_hits += 1;
            let i = node / 2;
            let d = (node % 2) as usize;
            let before = self.progress(i);
            self.stream_op(handler, i, d, |s, cx, sink| s.give_up_front_hole(cx, sink));
            self.unlink_pending(node);
            self.after_streams_inner(handler, i, before);
        }
    }

    /// After stream operations on connection `i`: keep the gap timers in
    /// step, close the connection if both directions ended, and hold the
    /// total cap.
    fn after_streams(&mut self, handler: &mut H, i: u32, before: [Progress; 2]) {
        self.after_streams_inner(handler, i, before);
        if self.total_buffered > self.config.max_buffered_total {
            self.relieve_memory(handler);
        }
    }

    fn after_streams_inner(&mut self, handler: &mut H, i: u32, before: [Progress; 2]) {
        let Some(Some(conn)) = self.conns.get(i as usize) else {
            return;
        };
        let after = [conn.streams[0].progress(), conn.streams[1].progress()];
        let both_ended = conn.streams[0].is_ended() && conn.streams[1].is_ended();
        for (d, (b, a)) in (0u32..).zip(before.into_iter().zip(after)) {
            if !b.waiting && !a.waiting {
                continue;
            }
            let node = i * 2 + d;
            let linked = self.pend.get(node as usize).is_some_and(|p| p.linked);
            if !a.waiting {
                self.unlink_pending(node);
            } else if !linked || !b.waiting || a.delivered != b.delivered {
                // Started waiting, or progressed and still waits: the
                // timer restarts now.
                self.unlink_pending(node);
                if let Some(p) = self.pend.get_mut(node as usize) {
                    p.since = self.now;
                    p.linked = true;
                    self.pending.push_back(&mut self.pend, node);
                    self.next_deadline = self
                        .next_deadline
                        .min(self.now.saturating_add(self.config.gap_timeout));
                }
            }
        }
        if both_ended {
            self.close(handler, i, CloseReason::Finished);
        }
    }

    fn progress(&self, i: u32) -> [Progress; 2] {
        match self.conns.get(i as usize) {
            Some(Some(c)) => [c.streams[0].progress(), c.streams[1].progress()],
            _ => {
                [Progress {
                    waiting: false,
                    delivered: 0,
                }; 2]
            }
        }
    }

    fn unlink_pending(&mut self, node: u32) {
        if let Some(p) = self.pend.get_mut(node as usize)
            && p.linked
        {
            p.linked = false;
            self.pending.unlink(&mut self.pend, node);
        }
    }

    /// Run `op` on direction `d` of live connection `i`, with the handler
    /// as the stream's sink.
    fn stream_op<R>(
        &mut self,
        handler: &mut H,
        i: u32,
        d: usize,
        op: impl FnOnce(&mut Reassembler, &mut Ctx<'_>, &mut Deliver<'_, H>) -> R,
    ) -> Option<R> {
        let Some(Some(conn)) = self.conns.get_mut(i as usize) else {
            return None;
        };
        let Conn {
            info,
            state: Some(state),
            streams,
            ..
        } = conn
        else {
            return None;
        };
        let stream = streams.get_mut(d)?;
        let dir = *DIRS.get(d)?;
        let mut cx = Ctx {
            now: self.now,
            max_buffered: self.config.max_buffered_per_direction,
            stats: &mut self.stats,
            total_buffered: &mut self.total_buffered,
        };
        let mut sink = Deliver {
            handler,
            state,
            conn: info,
            dir,
            ts: self.now,
        };
        Some(op(stream, &mut cx, &mut sink))
    }

    /// What the entry in slot `i` makes of a segment.
    fn classify(&self, i: u32, src_is_lo: bool, seg: &TcpSegment<'_>) -> Existing {
        let Some(Some(conn)) = self.conns.get(i as usize) else {
            return Existing::Late;
        };
        let flags = seg.flags;
        let isn = conn
            .streams
            .get(conn.dir(src_is_lo))
            .and_then(Reassembler::isn);
        // A SYN with the ISN already known is a retransmission; any other
        // SYN opens a new connection on these ports.
        let other_syn = flags.syn() && !flags.rst() && isn != Some(seg.seq);
        if conn.state.is_none() {
            if other_syn {
                Existing::Reused
            } else {
                Existing::Late
            }
        } else if other_syn && !flags.ack() {
            Existing::Superseded
        } else {
            Existing::Live
        }
    }

    fn open_tcp(
        &mut self,
        handler: &mut H,
        key: FlowKey,
        src_is_lo: bool,
        src: IpAddr,
        dst: IpAddr,
        seg: &TcpSegment<'_>,
    ) -> Option<u32> {
        let flags = seg.flags;
        let roles = if flags.syn() {
            // SYN: the sender is the client; SYN-ACK (SYN missed): the
            // receiver is.
            (!flags.ack(), RoleSource::Handshake)
        } else {
            (
                !sender_is_server_by_port(seg.src_port, seg.dst_port),
                RoleSource::PortGuess,
            )
        };
        self.open(
            handler,
            key,
            src_is_lo,
            (src, seg.src_port, dst, seg.dst_port),
            roles,
        )
    }

    /// A new connection for `key`; `roles.0` says whether the packet's
    /// sender is the client.
    fn open(
        &mut self,
        handler: &mut H,
        key: FlowKey,
        src_is_lo: bool,
        (src, src_port, dst, dst_port): (IpAddr, u16, IpAddr, u16),
        (client_is_src, roles): (bool, RoleSource),
    ) -> Option<u32> {
        while self.map.len() >= self.config.max_connections {
            if !self.evict_one(handler) {
                return None;
            }
        }
        let (client, server) = if client_is_src {
            (
                SocketAddr::new(src, src_port),
                SocketAddr::new(dst, dst_port),
            )
        } else {
            (
                SocketAddr::new(dst, dst_port),
                SocketAddr::new(src, src_port),
            )
        };
        let info = ConnInfo {
            id: self.next_id,
            transport: key.transport,
            client,
            server,
            roles,
            first_seen: self.now,
        };
        self.next_id += 1;
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.conns.len()).ok()?;
                self.conns.push(None);
                self.lru.push(LruNode {
                    link: UNLINKED,
                    last_seen: self.now,
                    list: LRU_TCP,
                });
                self.pend.push(PendNode {
                    link: UNLINKED,
                    since: 0,
                    linked: false,
                });
                self.pend.push(PendNode {
                    link: UNLINKED,
                    since: 0,
                    linked: false,
                });
                i
            }
        };
        let state = handler.open(&info);
        let slot = self.conns.get_mut(i as usize)?;
        *slot = Some(Conn {
            info,
            lo_is_client: client_is_src == src_is_lo,
            state: Some(state),
            streams: [Reassembler::new(), Reassembler::new()],
            expert: Expert::new(self.now),
        });
        let list = match key.transport {
            TransportKind::Tcp => LRU_TCP,
            TransportKind::Udp => LRU_UDP,
        };
        self.lru_push(i, list);
        self.map.insert(key, i);
        self.live += 1;
        self.stats.connections += 1;
        Some(i)
    }

    /// Mark slot `i` seen now: to the back of its list.
    fn touch(&mut self, i: u32) {
        let Some(n) = self.lru.get_mut(i as usize) else {
            return;
        };
        n.last_seen = self.now;
        let list = n.list;
        if let Some(l) = self.lists.get_mut(list)
            && l.tail != i
        {
            l.unlink(&mut self.lru, i);
            l.push_back(&mut self.lru, i);
        }
    }

    fn lru_push(&mut self, i: u32, list: usize) {
        if let Some(n) = self.lru.get_mut(i as usize) {
            n.last_seen = self.now;
            n.list = list;
        }
        if let Some(l) = self.lists.get_mut(list) {
            l.push_back(&mut self.lru, i);
        }
        let deadline = self.now.saturating_add(self.timeout_of(list));
        self.next_deadline = self.next_deadline.min(deadline);
    }

    fn lru_unlink(&mut self, i: u32) {
        if let Some(list) = self.lru.get(i as usize).map(|n| n.list)
            && let Some(l) = self.lists.get_mut(list)
        {
            l.unlink(&mut self.lru, i);
        }
    }

    /// Make room for one connection: drop the oldest finished entry, or
    /// else evict the least recently seen live connection.
    fn evict_one(&mut self, handler: &mut H) -> bool {
        if let Some(i) = self.lists[LRU_CLOSED].front() {
            self.remove_slot(handler, i);
            return true;
        }
        let seen = |i: Option<u32>| {
            i.and_then(|i| self.lru.get(i as usize))
                .map(|n| n.last_seen)
        };
        let tcp = self.lists[LRU_TCP].front();
        let udp = self.lists[LRU_UDP].front();
        let victim = match (seen(tcp), seen(udp)) {
            (Some(t), Some(u)) => {
                if t <= u {
                    tcp
                } else {
                    udp
                }
            }
            (Some(_), None) => tcp,
            (None, _) => udp,
        };
        match victim {
            Some(i) => {
                self.close(handler, i, CloseReason::Evicted);
                true
            }
            None => false,
        }
    }

    /// Close live connection `i`: flush both directions, tell the handler,
    /// and either keep the entry to absorb late packets (a finished TCP
    /// connection) or free it.
    fn close(&mut self, handler: &mut H, i: u32, reason: CloseReason) {
        let live = matches!(self.conns.get(i as usize), Some(Some(c)) if c.state.is_some());
        if !live {
            return;
        }
        for d in 0..2 {
            self.stream_op(handler, i, d, |s, cx, sink| s.flush(cx, sink));
            self.unlink_pending(i * 2 + d as u32);
        }
        let now = self.now;
        let mut transport = TransportKind::Udp;
        if let Some(Some(conn)) = self.conns.get_mut(i as usize) {
            transport = conn.info.transport;
            if let Some(state) = conn.state.take() {
                handler.close(state, &conn.info, now, reason);
            }
        }
        self.live = self.live.saturating_sub(1);
        match reason {
            CloseReason::Finished => self.stats.closed_finished += 1,
            CloseReason::IdleTimeout => self.stats.closed_idle += 1,
            CloseReason::Evicted => self.stats.evicted += 1,
            CloseReason::EndOfInput => self.stats.closed_end_of_input += 1,
        }
        if reason == CloseReason::Finished && transport == TransportKind::Tcp {
            self.lru_unlink(i);
            self.lru_push(i, LRU_CLOSED);
        } else {
            self.remove_slot(handler, i);
        }
    }

    /// Forget slot `i` entirely (its connection, if live, must be closed)
    /// and retire its connection.
    fn remove_slot(&mut self, handler: &mut H, i: u32) {
        let Some(slot) = self.conns.get_mut(i as usize) else {
            return;
        };
        let Some(conn) = slot.take() else {
            return;
        };
        handler.retire(&conn.info, &conn.expert);
        if conn.state.is_some() {
            // Not expected: callers close first. Keep the count honest.
            self.live = self.live.saturating_sub(1);
        }
        for d in 0..2 {
            self.unlink_pending(i * 2 + d);
        }
        self.lru_unlink(i);
        let key = conn.key();
        if self.map.get(&key) == Some(&i) {
            self.map.remove(&key);
        }
        self.free.push(i);
    }
}

#[cfg(test)]
mod tests {
    //! Segments here are synthetic: sequence numbers, flags and payloads are
    //! chosen by each test to put the reassembler in one situation.

    use std::net::Ipv4Addr;

    use trawl_packet::TcpFlags;

    use super::*;

    const S: u8 = TcpFlags::SYN;
    const A: u8 = TcpFlags::ACK;
    const F: u8 = TcpFlags::FIN;
    const R: u8 = TcpFlags::RST;
    const P: u8 = TcpFlags::PSH;
    const MS: Nanos = 1_000_000;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        Open(ConnInfo),
        Data(u64, Direction, Vec<u8>),
        Gap(u64, Direction, u64),
        End(u64, Direction, EndKind),
        Close(u64, CloseReason),
    }

    /// Piece of one direction's stream as the handler saw it (adjacent
    /// data calls merged).
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Item {
        Bytes(Vec<u8>),
        Gap(u64),
        End(EndKind),
    }

    /// Records every call and checks the handler contract as it goes.
    #[derive(Debug, Default)]
    struct Rec {
        events: Vec<Ev>,
        last_ts: std::collections::HashMap<u64, Nanos>,
        closed: std::collections::HashSet<u64>,
        ended: std::collections::HashSet<(u64, Direction)>,
        /// Retired connections and their metrics (client = direction 0).
        retired: Vec<(u64, trawl_model::flow::FlowMetrics)>,
    }

    impl Rec {
        fn check(&mut self, id: u64, ts: Nanos) {
            assert!(!self.closed.contains(&id), "call after close of {id}");
            let last = self.last_ts.entry(id).or_insert(ts);
            assert!(ts >= *last, "time went back on {id}");
            *last = ts;
        }

        fn stream(&self, id: u64, dir: Direction) -> Vec<Item> {
            let mut out: Vec<Item> = Vec::new();
            for e in &self.events {
                match e {
                    Ev::Data(i, d, b) if *i == id && *d == dir => {
                        if let Some(Item::Bytes(prev)) = out.last_mut() {
                            prev.extend_from_slice(b);
                        } else {
                            out.push(Item::Bytes(b.clone()));
                        }
                    }
                    Ev::Gap(i, d, n) if *i == id && *d == dir => out.push(Item::Gap(*n)),
                    Ev::End(i, d, k) if *i == id && *d == dir => out.push(Item::End(*k)),
                    _ => {}
                }
            }
            out
        }

        fn opens(&self) -> Vec<ConnInfo> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Ev::Open(c) => Some(c.clone()),
                    _ => None,
                })
                .collect()
        }

        fn closes(&self) -> Vec<(u64, CloseReason)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Ev::Close(i, r) => Some((*i, *r)),
                    _ => None,
                })
                .collect()
        }
    }

    impl FlowHandler for Rec {
        type State = u64;

        fn open(&mut self, conn: &ConnInfo) -> u64 {
            assert!(
                !self.last_ts.contains_key(&conn.id),
                "id {} reused",
                conn.id
            );
            self.last_ts.insert(conn.id, conn.first_seen);
            self.events.push(Ev::Open(conn.clone()));
            conn.id
        }
        fn data(&mut self, st: &mut u64, c: &ConnInfo, dir: Direction, ts: Nanos, data: &[u8]) {
            assert_eq!(*st, c.id);
            self.check(c.id, ts);
            assert!(!self.ended.contains(&(c.id, dir)), "data after end");
            self.events.push(Ev::Data(c.id, dir, data.to_vec()));
        }
        fn gap(&mut self, _: &mut u64, c: &ConnInfo, dir: Direction, ts: Nanos, len: u64) {
            self.check(c.id, ts);
            assert!(len > 0);
            assert!(!self.ended.contains(&(c.id, dir)), "gap after end");
            self.events.push(Ev::Gap(c.id, dir, len));
        }
        fn end(&mut self, _: &mut u64, c: &ConnInfo, dir: Direction, ts: Nanos, how: EndKind) {
            self.check(c.id, ts);
            assert!(self.ended.insert((c.id, dir)), "second end");
            self.events.push(Ev::End(c.id, dir, how));
        }
        fn close(&mut self, st: u64, c: &ConnInfo, ts: Nanos, reason: CloseReason) {
            assert_eq!(st, c.id);
            self.check(c.id, ts);
            self.closed.insert(c.id);
            self.events.push(Ev::Close(c.id, reason));
        }
        fn retire(&mut self, c: &ConnInfo, e: &crate::Expert) {
            assert!(self.closed.contains(&c.id), "retired before close");
            assert!(
                self.retired.iter().all(|(id, _)| *id != c.id),
                "retired twice"
            );
            let tcp = c.transport == TransportKind::Tcp;
            self.retired.push((c.id, e.metrics(0, tcp)));
        }
    }

    fn tcp_seg(
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> TcpSegment<'_> {
        TcpSegment {
            src_port: sport,
            dst_port: dport,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 65535,
            options: &[],
            payload,
            payload_len: payload.len() as u32,
        }
    }

    const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    /// One client (10.0.0.1:cport) talking to one server (10.0.0.2:sport).
    struct Conv {
        table: FlowTable<Rec>,
        rec: Rec,
        cport: u16,
        sport: u16,
    }

    impl Conv {
        fn new(config: FlowConfig) -> Conv {
            Conv {
                table: FlowTable::new(config),
                rec: Rec::default(),
                cport: 40000,
                sport: 80,
            }
        }

        fn c2s(&mut self, ts: Nanos, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
            let seg = tcp_seg(self.cport, self.sport, seq, ack, flags, payload);
            self.table
                .tcp(&mut self.rec, ts, CLIENT_IP, SERVER_IP, &seg);
        }

        fn s2c(&mut self, ts: Nanos, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
            let seg = tcp_seg(self.sport, self.cport, seq, ack, flags, payload);
            self.table
                .tcp(&mut self.rec, ts, SERVER_IP, CLIENT_IP, &seg);
        }

        fn c2s_seg(&mut self, ts: Nanos, seg: &TcpSegment<'_>) {
            self.table.tcp(&mut self.rec, ts, CLIENT_IP, SERVER_IP, seg);
        }

        /// SYN (client ISN `c`), SYN-ACK (server ISN `s`), ACK.
        fn handshake(&mut self, c: u32, s: u32) {
            self.c2s(0, c, 0, S, b"");
            self.s2c(MS, s, c.wrapping_add(1), S | A, b"");
            self.c2s(2 * MS, c.wrapping_add(1), s.wrapping_add(1), A, b"");
        }

        fn finish(&mut self) {
            self.table.finish(&mut self.rec);
        }

        fn up(&self, id: u64) -> Vec<Item> {
            self.rec.stream(id, Direction::ToServer)
        }

        fn down(&self, id: u64) -> Vec<Item> {
            self.rec.stream(id, Direction::ToClient)
        }
    }

    fn bytes(b: &[u8]) -> Item {
        Item::Bytes(b.to_vec())
    }

    #[test]
    fn in_order_conversation_with_fin_fin() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(1000, 5000);
        t.c2s(3 * MS, 1001, 5001, A | P, b"GET / HTTP/1.1\r\n");
        t.c2s(4 * MS, 1017, 5001, A | P, b"\r\n");
        t.s2c(5 * MS, 5001, 1019, A | P, b"HTTP/1.1 200 OK\r\n\r\n");
        t.c2s(6 * MS, 1019, 5020, A | F, b"");
        t.s2c(7 * MS, 5020, 1020, A | F, b"");
        assert_eq!(
            t.up(1),
            vec![bytes(b"GET / HTTP/1.1\r\n\r\n"), Item::End(EndKind::Fin)]
        );
        assert_eq!(
            t.down(1),
            vec![bytes(b"HTTP/1.1 200 OK\r\n\r\n"), Item::End(EndKind::Fin)]
        );
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::Finished)]);
        let info = &t.rec.opens()[0];
        assert_eq!(info.roles, RoleSource::Handshake);
        assert_eq!(info.client, SocketAddr::new(CLIENT_IP, 40000));
        assert_eq!(info.server, SocketAddr::new(SERVER_IP, 80));
        assert_eq!(info.transport, TransportKind::Tcp);
        // The last ACK lands on the finished entry: no new connection.
        t.c2s(8 * MS, 1020, 5021, A, b"");
        assert_eq!(t.table.stats().ignored_segments, 1);
        assert_eq!(t.table.stats().connections, 1);
        assert!(t.table.is_empty());
        t.finish();
        assert_eq!(t.rec.closes().len(), 1);
        assert_eq!(t.table.stats().gaps, 0);
    }

    #[test]
    fn out_of_order_every_permutation() {
        let parts: [(u32, &[u8]); 3] = [(0, b"aaa"), (3, b"bbbb"), (7, b"cc")];
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for perm in perms {
            let mut t = Conv::new(FlowConfig::default());
            t.handshake(100, 900);
            for (k, &p) in perm.iter().enumerate() {
                let (off, data) = parts[p];
                t.c2s(10 * MS + k as Nanos, 101 + off, 901, A, data);
            }
            assert_eq!(t.up(1), vec![bytes(b"aaabbbbcc")], "{perm:?}");
            assert_eq!(t.table.buffered_bytes(), 0);
            assert_eq!(t.table.stats().gaps, 0);
            assert_eq!(t.table.stats().retransmitted_segments, 0);
        }
    }

    #[test]
    fn retransmission_first_copy_wins() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"hello");
        // Whole retransmission with different bytes: dropped.
        t.c2s(11 * MS, 101, 901, A, b"HELLO");
        // Partial: the first two bytes are old, "xyz" is new.
        t.c2s(12 * MS, 104, 901, A, b"LOxyz");
        assert_eq!(t.up(1), vec![bytes(b"helloxyz")]);
        let st = t.table.stats();
        assert_eq!(st.retransmitted_segments, 1);
        assert_eq!(st.overlapping_segments, 1);
    }

    #[test]
    fn overlap_with_buffered_segment_keeps_buffered_copy() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        // [5, 10) arrives first and is buffered.
        t.c2s(10 * MS, 106, 901, A, b"FGHIJ");
        // Its duplicate, differing: a retransmission of buffered bytes.
        t.c2s(11 * MS, 106, 901, A, b"fghij");
        // [0, 12) covers it with other bytes: only [0,5) and [10,12) are new.
        t.c2s(12 * MS, 101, 901, A, b"abcde-----kl");
        assert_eq!(t.up(1), vec![bytes(b"abcdeFGHIJkl")]);
        let st = t.table.stats();
        assert_eq!(st.out_of_order_segments, 1);
        assert_eq!(st.retransmitted_segments, 1);
        assert_eq!(st.overlapping_segments, 1);
        assert_eq!(t.table.buffered_bytes(), 0);
    }

    #[test]
    fn sequence_wrap() {
        let mut t = Conv::new(FlowConfig::default());
        let isn = 0xFFFF_FFF0u32;
        t.handshake(isn, 0xFFFF_FFFF);
        let d: Vec<u8> = (0u8..40).collect();
        let seq = |off: u32| isn.wrapping_add(1).wrapping_add(off);
        // Out of order across the wrap: [20,30) [0,10) [30,40) [10,20).
        t.c2s(10 * MS, seq(20), 1, A, &d[20..30]);
        t.c2s(11 * MS, seq(0), 1, A, &d[0..10]);
        t.c2s(12 * MS, seq(30), 1, A, &d[30..40]);
        t.c2s(13 * MS, seq(10), 1, A, &d[10..20]);
        // The server's ISN is 0xFFFF_FFFF: its data starts at seq 0.
        t.s2c(14 * MS, 0, seq(40), A, b"ok");
        t.c2s(15 * MS, seq(40), 2, A | F, b"");
        t.s2c(16 * MS, 2, seq(41), A | F, b"");
        assert_eq!(t.up(1), vec![bytes(&d), Item::End(EndKind::Fin)]);
        assert_eq!(t.down(1), vec![bytes(b"ok"), Item::End(EndKind::Fin)]);
        assert_eq!(t.table.stats().gaps, 0);
    }

    #[test]
    fn gap_after_timeout() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"aaaa");
        t.c2s(11 * MS, 109, 901, A, b"cccc"); // [4, 8) missing
        t.s2c(12 * MS, 901, 105, A, b""); // acks only what we saw
        assert_eq!(t.up(1), vec![bytes(b"aaaa")]);
        // Any packet past the gap timeout runs the timer.
        t.s2c(11 * MS + DEFAULT_GAP_TIMEOUT - 1, 901, 105, A, b"");
        assert_eq!(t.up(1), vec![bytes(b"aaaa")]);
        t.s2c(11 * MS + DEFAULT_GAP_TIMEOUT, 901, 105, A, b"");
        assert_eq!(t.up(1), vec![bytes(b"aaaa"), Item::Gap(4), bytes(b"cccc")]);
        let st = t.table.stats();
        assert_eq!((st.gaps, st.gap_bytes), (1, 4));
        assert_eq!(t.table.buffered_bytes(), 0);
        // The late bytes of the hole are now old.
        t.c2s(5 * 1000 * MS, 105, 901, A, b"bbbb");
        assert_eq!(t.up(1).len(), 3);
        assert_eq!(t.table.stats().retransmitted_segments, 1);
    }

    #[test]
    fn gap_timer_restarts_on_progress() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(0, 105, 901, A, b"bb"); // [4,6)
        t.c2s(0, 109, 901, A, b"dd"); // [8,10)
        t.c2s(2000 * MS, 101, 901, A, b"aaaa"); // fills [0,4): progress
        // 3 s after the first buffering but only 1 s after progress: the
        // second hole waits; 3 s after progress it is given up.
        t.s2c(3000 * MS, 901, 101, A, b"");
        assert_eq!(t.up(1), vec![bytes(b"aaaabb")]);
        t.s2c(5000 * MS, 901, 101, A, b"");
        assert_eq!(t.up(1), vec![bytes(b"aaaabb"), Item::Gap(2), bytes(b"dd")]);
    }

    #[test]
    fn gap_when_peer_acks_beyond_hole() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"aaaa");
        t.c2s(11 * MS, 109, 901, A, b"cccc");
        t.c2s(12 * MS, 117, 901, A, b"eeee"); // two holes: [4,8), [12,16)
        // The server acknowledges up to 14: the first hole and half the
        // second were received but not captured.
        t.s2c(13 * MS, 901, 115, A, b"");
        assert_eq!(
            t.up(1),
            vec![bytes(b"aaaa"), Item::Gap(4), bytes(b"cccc"), Item::Gap(2)]
        );
        t.s2c(14 * MS, 901, 121, A, b"");
        assert_eq!(
            t.up(1),
            vec![
                bytes(b"aaaa"),
                Item::Gap(4),
                bytes(b"cccc"),
                Item::Gap(2),
                Item::Gap(2),
                bytes(b"eeee")
            ]
        );
        assert_eq!(t.table.buffered_bytes(), 0);
    }

    #[test]
    fn ack_beyond_everything_held_does_not_invent_a_gap() {
        // Nothing buffered: bytes past what we saw may still be on their
        // way to the capture point.
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.s2c(10 * MS, 901, 200, A, b"");
        t.c2s(11 * MS, 101, 901, A, b"late but whole");
        assert_eq!(t.up(1), vec![bytes(b"late but whole")]);
        assert_eq!(t.table.stats().gaps, 0);
    }

    #[test]
    fn gap_when_direction_cap_hit() {
        let config = FlowConfig {
            max_buffered_per_direction: 2 * (100 + crate::reassembly::CHUNK_OVERHEAD),
            ..FlowConfig::default()
        };
        let mut t = Conv::new(config);
        t.handshake(100, 900);
        let blk = |c: u8| vec![c; 100];
        // Hole [0,100); then three non-adjacent chunks of 100.
        t.c2s(10 * MS, 101 + 200, 901, A, &blk(b'b'));
        t.c2s(11 * MS, 101 + 400, 901, A, &blk(b'c'));
        assert_eq!(t.up(1), vec![]);
        t.c2s(12 * MS, 101 + 600, 901, A, &blk(b'd'));
        // Over the cap: the front hole is given up, the first chunk
        // delivered, and then the next hole (up to the new chunk's buffered
        // predecessor) stays.
        assert_eq!(t.up(1), vec![Item::Gap(200), bytes(&blk(b'b'))]);
        assert_eq!(t.table.stats().buffer_cap_hits, 1);
        assert!(t.table.buffered_bytes() <= 2 * (100 + crate::reassembly::CHUNK_OVERHEAD));
        t.finish();
        assert_eq!(
            t.up(1),
            vec![
                Item::Gap(200),
                bytes(&blk(b'b')),
                Item::Gap(100),
                bytes(&blk(b'c')),
                Item::Gap(100),
                bytes(&blk(b'd')),
            ]
        );
    }

    #[test]
    fn gap_when_total_cap_hit() {
        let config = FlowConfig {
            max_buffered_total: 100,
            ..FlowConfig::default()
        };
        let mut t = Conv::new(config);
        t.handshake(100, 900);
        t.c2s(10 * MS, 111, 901, A, b"0123456789"); // charge 74, under the cap
        assert_eq!(
            t.table.buffered_bytes(),
            10 + crate::reassembly::CHUNK_OVERHEAD
        );
        // A second connection's out-of-order data pushes the total over:
        // the direction that waited longest (the first) gives up its hole.
        t.cport = 40001;
        t.handshake(300, 700);
        t.c2s(11 * MS, 311, 701, A, b"abcdefghij");
        assert_eq!(t.up(1), vec![Item::Gap(10), bytes(b"0123456789")]);
        assert_eq!(t.up(2), vec![]);
        let st = t.table.stats();
        assert_eq!((st.buffer_cap_hits, st.total_cap_hits), (1, 1));
        assert_eq!(
            t.table.buffered_bytes(),
            10 + crate::reassembly::CHUNK_OVERHEAD
        );
    }

    #[test]
    fn finish_flushes_with_gaps_and_pending_fin() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"aa");
        t.c2s(11 * MS, 105, 901, A | F, b"cc"); // hole [2,4), FIN after 6
        t.s2c(12 * MS, 901, 103, A, b"resp");
        t.finish();
        assert_eq!(
            t.up(1),
            vec![
                bytes(b"aa"),
                Item::Gap(2),
                bytes(b"cc"),
                Item::End(EndKind::Fin)
            ]
        );
        assert_eq!(t.down(1), vec![bytes(b"resp")]);
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::EndOfInput)]);
        assert!(t.table.is_empty());
        assert_eq!(t.table.buffered_bytes(), 0);
        assert_eq!(t.table.stats().closed_end_of_input, 1);
    }

    #[test]
    fn mid_stream_start_guesses_roles_by_port() {
        // No handshake; the first packet comes from the server (port 8080)
        // to an ephemeral client port.
        let mut t = Conv::new(FlowConfig::default());
        t.cport = 51000;
        t.sport = 8080;
        t.s2c(0, 7000, 3000, A, b"HTTP/1.1 200 OK\r\n");
        t.c2s(MS, 3000, 7017, A, b"GET /next");
        let info = &t.rec.opens()[0];
        assert_eq!(info.roles, RoleSource::PortGuess);
        assert_eq!(info.server, SocketAddr::new(SERVER_IP, 8080));
        assert_eq!(t.down(1), vec![bytes(b"HTTP/1.1 200 OK\r\n")]);
        assert_eq!(t.up(1), vec![bytes(b"GET /next")]);

        // Neither port a service port: the lower one is the server.
        let mut t = Conv::new(FlowConfig::default());
        t.cport = 45000;
        t.sport = 40000;
        t.c2s(0, 1, 1, A, b"x");
        assert_eq!(t.rec.opens()[0].server.port(), 40000);
        // A lone ACK or RST opens nothing.
        let mut t = Conv::new(FlowConfig::default());
        t.c2s(0, 1, 1, A, b"");
        t.c2s(0, 1, 1, R, b"");
        assert_eq!(t.table.stats().connections, 0);
        assert_eq!(t.table.stats().ignored_segments, 2);
    }

    #[test]
    fn mid_stream_keep_alive_byte_is_not_glued_to_the_next_message() {
        // Shaped after tcp.stream 1 of http-pcapplusplus-many-protocols.pcap:
        // the capture opens on a keep-alive probe (one garbage byte at
        // SND.NXT-1), and the next request starts at SND.NXT.
        let mut t = Conv::new(FlowConfig::default());
        t.c2s(0, 1000, 1, A, b"\0");
        t.c2s(MS, 1001, 1, A | P, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(t.up(1), vec![bytes(b"GET / HTTP/1.1\r\n\r\n")]);
        assert_eq!(t.table.stats().gaps, 0);
    }

    #[test]
    fn syn_ack_first_makes_its_receiver_the_client() {
        let mut t = Conv::new(FlowConfig::default());
        // The SYN was missed.
        t.s2c(0, 5000, 1001, S | A, b"");
        t.c2s(MS, 1001, 5001, A | P, b"hi");
        t.s2c(2 * MS, 5001, 1003, A | P, b"yo");
        let info = &t.rec.opens()[0];
        assert_eq!(info.roles, RoleSource::Handshake);
        assert_eq!(info.client, SocketAddr::new(CLIENT_IP, 40000));
        assert_eq!(t.up(1), vec![bytes(b"hi")]);
        assert_eq!(t.down(1), vec![bytes(b"yo")]);
        // The client's retransmitted SYN (ISN = ack - 1) is the same connection.
        t.c2s(3 * MS, 1000, 0, S, b"");
        assert_eq!(t.table.stats().connections, 1);
    }

    #[test]
    fn client_data_reordered_before_syn_ack_ack_still_in_order() {
        // The client's first data segment is the first client packet after
        // the SYN-ACK: its stream starts at the SYN's ISN + 1 regardless.
        let mut t = Conv::new(FlowConfig::default());
        t.c2s(0, 10, 0, S, b"");
        t.s2c(MS, 20, 11, S | A, b"");
        t.c2s(2 * MS, 13, 21, A, b"cd");
        t.c2s(3 * MS, 11, 21, A, b"ab");
        assert_eq!(t.up(1), vec![bytes(b"abcd")]);
    }

    #[test]
    fn fin_from_server_first_then_client() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"req");
        t.s2c(11 * MS, 901, 104, A | F, b"resp");
        assert_eq!(t.down(1), vec![bytes(b"resp"), Item::End(EndKind::Fin)]);
        assert!(t.rec.closes().is_empty());
        // Half-closed: the client may still send.
        t.c2s(12 * MS, 104, 906, A, b"more");
        t.c2s(13 * MS, 108, 906, A | F, b"");
        assert_eq!(t.up(1), vec![bytes(b"reqmore"), Item::End(EndKind::Fin)]);
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::Finished)]);
        assert_eq!(t.table.stats().closed_finished, 1);
    }

    #[test]
    fn fin_before_missing_data_waits_then_ack_gives_up() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 105, 901, A | F, b""); // FIN at 4; [0,4) not seen yet
        assert_eq!(t.up(1), vec![]);
        // The data comes late (reordered): delivered, then the end.
        t.c2s(11 * MS, 101, 901, A, b"abcd");
        assert_eq!(t.up(1), vec![bytes(b"abcd"), Item::End(EndKind::Fin)]);

        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 105, 901, A | F, b"");
        // The server acknowledges the FIN: the data before it was received
        // but never captured.
        t.s2c(11 * MS, 901, 106, A, b"");
        assert_eq!(t.up(1), vec![Item::Gap(4), Item::End(EndKind::Fin)]);
    }

    #[test]
    fn rst_flushes_and_closes() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"ab");
        t.c2s(11 * MS, 105, 901, A, b"ef"); // hole [2,4)
        t.s2c(12 * MS, 901, 103, A, b"x");
        t.s2c(13 * MS, 902, 0, R, b"");
        assert_eq!(
            t.up(1),
            vec![
                bytes(b"ab"),
                Item::Gap(2),
                bytes(b"ef"),
                Item::End(EndKind::Rst)
            ]
        );
        assert_eq!(t.down(1), vec![bytes(b"x"), Item::End(EndKind::Rst)]);
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::Finished)]);
        assert_eq!(t.table.buffered_bytes(), 0);
        assert!(t.table.is_empty());
        // A second RST (and its ACK) is absorbed.
        t.c2s(14 * MS, 107, 0, R, b"");
        assert_eq!(t.table.stats().connections, 1);
    }

    #[test]
    fn late_packets_count_until_the_connection_retires() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"ab");
        t.s2c(11 * MS, 901, 103, F | A, b"");
        t.c2s(12 * MS, 103, 902, F | A, b"");
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::Finished)]);
        assert!(t.rec.retired.is_empty(), "lingering, not retired");
        // Within the linger: the last ACK, a retransmitted FIN and a RST.
        t.s2c(13 * MS, 902, 104, A, b"");
        t.c2s(300 * MS, 103, 902, F | A, b"");
        t.s2c(301 * MS, 902, 0, R, b"");
        // Past the linger: another connection's packet moves the clock.
        let other = tcp_seg(40001, 80, 7, 0, S, b"");
        t.table
            .tcp(&mut t.rec, 20 * SECOND, CLIENT_IP, SERVER_IP, &other);
        assert_eq!(t.rec.retired.len(), 1);
        let (id, m) = &t.rec.retired[0];
        assert_eq!(*id, 1);
        assert_eq!((m.fin_count, m.rst_count, m.retransmissions), (3, 1, 1));
        assert_eq!((m.client_packets, m.server_packets), (5, 4));
        assert_eq!(m.closed_by, "server");
        assert_eq!(m.connection_time_us, 301_000);
        // End of input retires the rest (the unanswered SYN), once each.
        t.finish();
        assert_eq!(t.rec.retired.len(), 2);
        assert_eq!(t.rec.retired[1].1.handshake, "unanswered");
    }

    #[test]
    fn snaplen_cut_segment_becomes_gap() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        let mut seg = tcp_seg(40000, 80, 101, 901, A, b"0123456789");
        seg.payload_len = 100; // 90 bytes cut off by the snap length
        t.c2s_seg(10 * MS, &seg);
        t.c2s(11 * MS, 201, 901, A, b"next");
        // Cut segment out of order: its missing tail is held as a gap.
        let mut seg = tcp_seg(40000, 80, 215, 901, A, b"abc");
        seg.payload_len = 8;
        t.c2s_seg(12 * MS, &seg);
        t.c2s(13 * MS, 205, 901, A, b"0123456789");
        t.c2s(14 * MS, 223, 901, A, b"end");
        assert_eq!(
            t.up(1),
            vec![
                bytes(b"0123456789"),
                Item::Gap(90),
                bytes(b"next0123456789abc"),
                Item::Gap(5),
                bytes(b"end"),
            ]
        );
        assert_eq!(t.table.stats().gap_bytes, 95);
    }

    #[test]
    fn port_reuse_gives_new_connection_id() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A | F, b"one");
        t.s2c(11 * MS, 901, 105, A | F, b"");
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::Finished)]);
        // Same ports, new ISN, within the linger time.
        t.c2s(20 * MS, 5000, 0, S, b"");
        t.s2c(21 * MS, 7000, 5001, S | A, b"");
        t.c2s(22 * MS, 5001, 7001, A, b"two");
        assert_eq!(t.up(2), vec![bytes(b"two")]);
        assert_eq!(t.table.stats().port_reuses, 1);

        // A new SYN while the old connection never finished: the old one
        // is closed first.
        t.c2s(30 * MS, 9000, 0, S, b"");
        t.c2s(31 * MS, 9001, 0, A, b"three");
        assert_eq!(
            t.rec.closes(),
            vec![(1, CloseReason::Finished), (2, CloseReason::Finished)]
        );
        assert_eq!(t.up(3), vec![bytes(b"three")]);
        let ids: Vec<u64> = t.rec.opens().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        t.finish();
        assert_eq!(t.rec.closes().last(), Some(&(3, CloseReason::EndOfInput)));
    }

    #[test]
    fn idle_timeout_closes() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(10 * MS, 101, 901, A, b"a");
        t.c2s(11 * MS, 103, 901, A, b"c"); // hole
        // Another connection's packet long after.
        t.cport = 40001;
        t.c2s(11 * MS + DEFAULT_TCP_IDLE_TIMEOUT, 1, 1, A, b"z");
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::IdleTimeout)]);
        assert_eq!(t.up(1), vec![bytes(b"a"), Item::Gap(1), bytes(b"c")]);
        assert_eq!(t.table.len(), 1);
        assert_eq!(t.table.stats().closed_idle, 1);
        assert_eq!(t.table.buffered_bytes(), 0);
    }

    #[test]
    fn eviction_at_connection_cap() {
        let config = FlowConfig {
            max_connections: 2,
            ..FlowConfig::default()
        };
        let mut t = Conv::new(config);
        for (k, port) in [40000u16, 40001, 40002].into_iter().enumerate() {
            t.cport = port;
            t.c2s(k as Nanos * MS, 1, 1, A, b"x");
        }
        assert_eq!(t.rec.closes(), vec![(1, CloseReason::Evicted)]);
        assert_eq!(t.table.len(), 2);
        assert_eq!(t.table.stats().evicted, 1);
        // Touching connection 2 makes 3 the least recently seen.
        t.cport = 40001;
        t.c2s(10 * MS, 2, 1, A, b"y");
        t.cport = 40003;
        t.c2s(11 * MS, 1, 1, A, b"x");
        assert_eq!(
            t.rec.closes(),
            vec![(1, CloseReason::Evicted), (3, CloseReason::Evicted)]
        );
    }

    #[test]
    fn segment_far_ahead_is_dropped() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        t.c2s(
            10 * MS,
            101u32.wrapping_add(1 << 31).wrapping_sub(1),
            901,
            A,
            b"far",
        );
        t.c2s(11 * MS, 101 + (1 << 30) + 1, 901, A, b"far");
        assert_eq!(t.table.stats().out_of_window_segments, 2);
        assert_eq!(t.table.buffered_bytes(), 0);
        t.c2s(12 * MS, 101, 901, A, b"near");
        assert_eq!(t.up(1), vec![bytes(b"near")]);
    }

    #[test]
    fn syn_payload_is_data() {
        // TCP Fast Open: data in the SYN.
        let mut t = Conv::new(FlowConfig::default());
        t.c2s(0, 100, 0, S, b"tfo");
        t.s2c(MS, 900, 104, S | A, b"");
        t.c2s(2 * MS, 104, 901, A, b"more");
        assert_eq!(t.up(1), vec![bytes(b"tfomore")]);
    }

    #[test]
    fn udp_both_directions_and_idle_close() {
        let mut table: FlowTable<Rec> = FlowTable::new(FlowConfig::default());
        let mut rec = Rec::default();
        let q = UdpDatagram {
            src_port: 5353,
            dst_port: 53,
            payload: b"query",
            payload_len: 5,
        };
        let r = UdpDatagram {
            src_port: 53,
            dst_port: 5353,
            payload: b"answer",
            payload_len: 6,
        };
        // The answer is seen first; port 53 still makes its sender the server.
        table.udp(&mut rec, 0, SERVER_IP, CLIENT_IP, &r);
        table.udp(&mut rec, MS, CLIENT_IP, SERVER_IP, &q);
        let info = &rec.opens()[0];
        assert_eq!(info.server, SocketAddr::new(SERVER_IP, 53));
        assert_eq!(info.transport, TransportKind::Udp);
        assert_eq!(info.roles, RoleSource::PortGuess);
        assert_eq!(rec.stream(1, Direction::ToClient), vec![bytes(b"answer")]);
        assert_eq!(rec.stream(1, Direction::ToServer), vec![bytes(b"query")]);
        // Datagrams are delivered one per call.
        table.udp(&mut rec, 2 * MS, CLIENT_IP, SERVER_IP, &q);
        let calls = rec
            .events
            .iter()
            .filter(|e| matches!(e, Ev::Data(..)))
            .count();
        assert_eq!(calls, 3);
        let cut = UdpDatagram {
            src_port: 5353,
            dst_port: 53,
            payload: b"q",
            payload_len: 9,
        };
        table.udp(&mut rec, 3 * MS, CLIENT_IP, SERVER_IP, &cut);
        assert_eq!(table.stats().truncated_datagrams, 1);
        // A TCP packet on the same ports is another connection.
        let seg = tcp_seg(5353, 53, 1, 1, A, b"tcp");
        table.tcp(&mut rec, 4 * MS, CLIENT_IP, SERVER_IP, &seg);
        assert_eq!(table.stats().connections, 2);
        table.udp(
            &mut rec,
            3 * MS + DEFAULT_UDP_IDLE_TIMEOUT,
            CLIENT_IP,
            SERVER_IP,
            &q,
        );
        assert_eq!(rec.closes(), vec![(1, CloseReason::IdleTimeout)]);
        assert_eq!(rec.opens().len(), 3);
        assert_eq!(table.stats().udp_packets, 5);
    }

    /// splitmix64: a tiny deterministic generator for the property test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_segmentation_reorder_duplicates_deliver_original_bytes() {
        for round in 0..300u64 {
            let mut rng = Rng(round);
            let len = 1 + rng.below(5000) as usize;
            let stream: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let isn = if round % 3 == 0 {
                0xFFFF_FF00 | rng.below(256) as u32
            } else {
                rng.next() as u32
            };
            // Random segmentation.
            let mut segs: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            while at < len {
                let n = (1 + rng.below(300) as usize).min(len - at);
                segs.push((at, at + n));
                at += n;
            }
            // Duplicates with shifted boundaries (overlapping copies).
            for _ in 0..rng.below(segs.len() as u64 + 1) {
                let a = rng.below(len as u64) as usize;
                let b = (a + 1 + rng.below(400) as usize).min(len);
                segs.push((a, b));
            }
            // Random reorder within a bounded window, as networks do.
            for k in 0..segs.len() {
                let j = (k + rng.below(8) as usize).min(segs.len() - 1);
                segs.swap(k, j);
            }
            let mut t = Conv::new(FlowConfig::default());
            t.handshake(isn, 77);
            let mut ts = 10 * MS;
            for &(a, b) in &segs {
                ts += 1;
                let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                t.c2s(ts, seq, 78, A, &stream[a..b]);
            }
            t.c2s(
                ts + 1,
                isn.wrapping_add(1).wrapping_add(len as u32),
                78,
                A | F,
                b"",
            );
            assert_eq!(
                t.up(1),
                vec![bytes(&stream), Item::End(EndKind::Fin)],
                "round {round}"
            );
            assert_eq!(t.table.buffered_bytes(), 0);
            assert_eq!(t.table.stats().gaps, 0);
        }
    }

    #[test]
    fn random_loss_keeps_every_byte_at_its_offset() {
        // Segments are lost (never captured), reordered and duplicated; the
        // receiver ACKs now and then, and time passes the gap timeout now
        // and then. Whatever the mix, every delivered byte must sit at its
        // own offset, and data plus gaps must add up to the whole stream.
        for round in 0..300u64 {
            let mut rng = Rng(1000 + round);
            let len = 1 + rng.below(4000) as usize;
            let stream: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let isn = rng.next() as u32;
            let config = FlowConfig {
                max_buffered_per_direction: 200 + rng.below(3000) as usize,
                ..FlowConfig::default()
            };
            let mut t = Conv::new(config);
            t.handshake(isn, 77);
            let mut segs: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            while at < len {
                let n = (1 + rng.below(200) as usize).min(len - at);
                segs.push((at, at + n));
                at += n;
            }
            for k in 0..segs.len() {
                let j = (k + rng.below(6) as usize).min(segs.len() - 1);
                segs.swap(k, j);
            }
            let mut ts = 10 * MS;
            let mut sent_max = 0;
            let seq = |off: usize| isn.wrapping_add(1).wrapping_add(off as u32);
            for &(a, b) in &segs {
                sent_max = sent_max.max(b);
                ts += if rng.below(20) == 0 {
                    DEFAULT_GAP_TIMEOUT
                } else {
                    MS
                };
                if rng.below(5) != 0 {
                    t.c2s(ts, seq(a), 78, A, &stream[a..b]);
                }
                if rng.below(4) == 0 {
                    // The receiver got something up to where the sender is.
                    let acked = rng.below(sent_max as u64 + 1) as usize;
                    t.s2c(ts, 78, seq(acked), A, b"");
                }
            }
            t.c2s(ts + 1, seq(len), 78, A | F, b"");
            t.finish();
            let items = t.up(1);
            assert_eq!(
                items.last(),
                Some(&Item::End(EndKind::Fin)),
                "round {round}"
            );
            let mut off = 0usize;
            for item in &items {
                match item {
                    Item::Bytes(b) => {
                        assert_eq!(
                            &b[..],
                            &stream[off..off + b.len()],
                            "round {round} at {off}"
                        );
                        off += b.len();
                    }
                    Item::Gap(n) => off += *n as usize,
                    Item::End(_) => {}
                }
            }
            assert_eq!(off, len, "round {round}");
            assert_eq!(t.table.buffered_bytes(), 0);
        }
    }

    #[test]
    fn fast_path_reports_no_overlap_counters() {
        let mut t = Conv::new(FlowConfig::default());
        t.handshake(100, 900);
        for k in 0..100u32 {
            t.c2s(10 * MS + Nanos::from(k), 101 + 4 * k, 901, A, b"abcd");
        }
        let st = t.table.stats();
        assert_eq!(
            (
                st.retransmitted_segments,
                st.overlapping_segments,
                st.out_of_order_segments
            ),
            (0, 0, 0)
        );
        assert_eq!(st.tcp_packets, 103);
    }
}
