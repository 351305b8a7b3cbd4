//! The packets-to-calls pipeline: a capture's raw frames are decoded to
//! IP, defragmented, run through the flow table and TCP reassembly, and
//! each connection's streams go to the protocol session that detection
//! picked. Calls come out stamped with their id, endpoints and node.
//!
//! Called by the CLI (`trawl dissect`) and, later, by the indexer. One
//! pipeline is single-threaded; parallel indexing shards flows by hash
//! across several pipelines.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use trawl_flow::{
    CloseReason, ConnInfo, Direction, EndKind, Expert, FlowConfig, FlowHandler, FlowStats,
    FlowTable, Nanos, RoleSource, TransportKind,
};
use trawl_model::{Call, Endpoint, FlowRecord, Protocol};
use trawl_packet::{DecodeError, Defragmenter, RawPacket, Transport, decode};

use crate::registry::PROTOCOLS;
use crate::seam::{Emitter, Limits, Probe, ProtocolEntry, Session, SessionContext};

/// Bytes of one direction held while detection waits for more. A request
/// line's method plus a space fits in 16 bytes and a DNS-over-TCP header
/// in 14; 512 leaves room for protocols that need a full first message.
const MAX_DETECT_BYTES: usize = 512;

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Name stamped on every call (`node` field and the id's prefix).
    pub node: String,
    pub flow: FlowConfig,
    pub limits: Limits,
    /// How the flow table's connection ids become the `conn_id` of calls
    /// and flows; see [`ConnIdSpace`].
    pub conn_ids: ConnIdSpace,
    /// Keep a [`FlowRecord`] for every connection that retires, to be taken
    /// with [`Pipeline::drain_flows`]. Off by default: `trawl dissect`
    /// prints calls only, and unread records would pile up.
    pub flow_records: bool,
}

/// Keeps connection ids unique across several pipelines that each see a
/// shard of one capture (the indexer runs one per thread). A flow table
/// numbers its connections 1, 2, 3, …; shard `shard` of `shards` maps its
/// local id `n` to `n * shards + shard`. Ids from different shards never
/// collide, and with one shard (the default) ids are the table's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnIdSpace {
    pub shard: u64,
    pub shards: u64,
}

impl Default for ConnIdSpace {
    fn default() -> Self {
        ConnIdSpace {
            shard: 0,
            shards: 1,
        }
    }
}

impl ConnIdSpace {
    /// The global id of the table's connection `local`. Wrapping: a table
    /// would need more than 2^64 / shards connections to wrap.
    pub fn global(self, local: u64) -> u64 {
        local
            .wrapping_mul(self.shards.max(1))
            .wrapping_add(self.shard)
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            node: "local".to_owned(),
            flow: FlowConfig::default(),
            limits: Limits::default(),
            conn_ids: ConnIdSpace::default(),
            flow_records: false,
        }
    }
}

/// Counters over everything the pipeline saw.
#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    pub packets: u64,
    /// Captured bytes (frame lengths as stored in the file).
    pub bytes: u64,
    pub first_ts: Option<Nanos>,
    pub last_ts: Option<Nanos>,
    /// Frames that were not IP (ARP, LLDP, …) or whose link type is unsupported.
    pub non_ip: u64,
    /// Frames whose headers were cut or malformed, by reason.
    pub decode_errors: BTreeMap<String, u64>,
    pub ip_fragments: u64,
    pub reassembled_datagrams: u64,
    /// IP packets neither TCP nor UDP (ICMP, SCTP, …).
    pub other_transport: u64,
    /// Connections no protocol claimed.
    pub undetected_connections: u64,
    pub connections_by_protocol: BTreeMap<Protocol, u64>,
    pub calls_by_protocol: BTreeMap<Protocol, u64>,
    pub anomalies: BTreeMap<&'static str, u64>,
    pub flows: FlowStats,
}

/// Runs packets to calls. Feed [`Pipeline::packet`] in capture order, then
/// call [`Pipeline::finish`]; calls reach the sink as they complete.
#[derive(Debug)]
pub struct Pipeline {
    defrag: Defragmenter,
    table: FlowTable<Dissector>,
    dissector: Dissector,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Pipeline {
        Pipeline {
            defrag: Defragmenter::new(),
            table: FlowTable::new(config.flow.clone()),
            dissector: Dissector {
                node: config.node,
                limits: config.limits,
                emitter: Emitter::new(),
                ready: Vec::new(),
                calls_by_protocol: BTreeMap::new(),
                anomalies: BTreeMap::new(),
                connections_by_protocol: BTreeMap::new(),
                undetected: 0,
                conn_ids: config.conn_ids,
                flow_records: config.flow_records,
                flows: Vec::new(),
                closed: foldhash::HashMap::default(),
            },
            stats: PipelineStats::default(),
        }
    }

    /// Process one captured frame; completed calls are passed to `sink`.
    pub fn packet(&mut self, pkt: &RawPacket<'_>, sink: &mut impl FnMut(Call)) {
        let stats = &mut self.stats;
        stats.packets += 1;
        stats.bytes += pkt.data.len() as u64;
        stats.first_ts.get_or_insert(pkt.ts_ns);
        stats.last_ts = Some(pkt.ts_ns);
        let ts = pkt.ts_ns;
        let ip = match decode::decode_link(pkt.link, pkt.data) {
            Ok(ip) => ip,
            Err(DecodeError::NotIp | DecodeError::UnsupportedLink) => {
                stats.non_ip += 1;
                return;
            }
            Err(e) => {
                *stats.decode_errors.entry(e.to_string()).or_default() += 1;
                return;
            }
        };
        if ip.fragment.is_some() {
            stats.ip_fragments += 1;
            let Some(whole) = self.defrag.push(ts, &ip) else {
                return;
            };
            stats.reassembled_datagrams += 1;
            let len = u32::try_from(whole.payload.len()).unwrap_or(u32::MAX);
            match decode::decode_transport(whole.protocol, &whole.payload, len) {
                Ok(t) => self.transport(ts, whole.src, whole.dst, &t),
                Err(e) => {
                    *self.stats.decode_errors.entry(e.to_string()).or_default() += 1;
                }
            }
        } else {
            match decode::decode_transport(ip.protocol, ip.payload, ip.payload_len) {
                Ok(t) => self.transport(ts, ip.src, ip.dst, &t),
                Err(e) => {
                    *stats.decode_errors.entry(e.to_string()).or_default() += 1;
                }
            }
        }
        self.dissector.flush(sink);
    }

    fn transport(
        &mut self,
        ts: Nanos,
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        t: &Transport<'_>,
    ) {
        match t {
            Transport::Tcp(seg) => self.table.tcp(&mut self.dissector, ts, src, dst, seg),
            Transport::Udp(d) => self.table.udp(&mut self.dissector, ts, src, dst, d),
            Transport::Other(_) => self.stats.other_transport += 1,
        }
    }

    /// The input ended: flush every connection and emit what is pending.
    pub fn finish(&mut self, sink: &mut impl FnMut(Call)) {
        self.table.finish(&mut self.dissector);
        self.dissector.flush(sink);
    }

    /// Take the flow records of connections retired so far (a finished TCP
    /// connection retires after the flow table's linger, its late packets
    /// counted; the others when they close; all by [`Pipeline::finish`];
    /// empty unless [`PipelineConfig::flow_records`] is set). Call it after
    /// [`Pipeline::packet`] or [`Pipeline::finish`] to keep memory flat.
    pub fn drain_flows(&mut self) -> std::vec::Drain<'_, FlowRecord> {
        self.dissector.flows.drain(..)
    }

    pub fn stats(&self) -> PipelineStats {
        let mut s = self.stats.clone();
        s.flows = self.table.stats().clone();
        s.calls_by_protocol = self.dissector.calls_by_protocol.clone();
        s.anomalies = self.dissector.anomalies.clone();
        s.connections_by_protocol = self.dissector.connections_by_protocol.clone();
        s.undetected_connections = self.dissector.undetected;
        let d = self.defrag.stats();
        if d.expired > 0 {
            s.anomalies.insert("ip_fragments_expired", d.expired);
        }
        s
    }
}

/// Per-connection state: detection first, then one protocol's session.
pub struct ConnState {
    /// True when content showed the flow table's roles backwards; the
    /// session then sees the corrected roles and directions.
    swapped: bool,
    next_index: u32,
    stage: Stage,
    /// Protocol detection picked, for the flow record.
    protocol: Option<Protocol>,
    /// Latest packet time seen by a callback (data, gap, end), for the
    /// flow record.
    last_ts: Nanos,
}

impl std::fmt::Debug for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnState")
            .field("swapped", &self.swapped)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

enum Stage {
    /// Bytes seen so far, per event, until a protocol matches.
    Detecting(Vec<(Direction, Nanos, Vec<u8>)>),
    Active(Box<dyn Session>),
    /// No protocol claimed this connection; its bytes are counted by the
    /// flow table only.
    Ignored,
}

/// The flow handler: detection, sessions, and stamping of calls.
#[derive(Debug)]
struct Dissector {
    node: String,
    limits: Limits,
    emitter: Emitter,
    ready: Vec<Call>,
    calls_by_protocol: BTreeMap<Protocol, u64>,
    anomalies: BTreeMap<&'static str, u64>,
    connections_by_protocol: BTreeMap<Protocol, u64>,
    undetected: u64,
    conn_ids: ConnIdSpace,
    flow_records: bool,
    /// Retired connections waiting for [`Pipeline::drain_flows`].
    flows: Vec<FlowRecord>,
    /// Records of closed connections, by the table's id, until they retire
    /// (a finished TCP connection lingers to count its late packets), and
    /// whether their roles were swapped.
    closed: foldhash::HashMap<u64, (FlowRecord, bool)>,
}

fn endpoint(a: SocketAddr) -> Endpoint {
    Endpoint::new(a.ip(), a.port())
}

impl Dissector {
    fn flush(&mut self, sink: &mut impl FnMut(Call)) {
        for call in self.ready.drain(..) {
            sink(call);
        }
    }

    /// Stamp what the session emitted and move it to `ready`.
    fn collect(&mut self, state: &mut ConnState, conn: &ConnInfo) {
        for a in self.emitter.drain_anomalies() {
            *self.anomalies.entry(a.kind).or_default() += 1;
        }
        for (request_dir, mut call) in self.emitter.calls.drain(..) {
            // `request_dir` is relative to the session's (possibly swapped) roles.
            let to_server = (request_dir == Direction::ToServer) != state.swapped;
            let (src, dst) = if to_server {
                (conn.client, conn.server)
            } else {
                (conn.server, conn.client)
            };
            call.src = endpoint(src);
            call.dst = endpoint(dst);
            call.node.clone_from(&self.node);
            let conn_id = self.conn_ids.global(conn.id);
            call.conn_id = conn_id;
            call.index = state.next_index;
            call.id = format!("{}/{}/{}", self.node, conn_id, state.next_index);
            state.next_index = state.next_index.wrapping_add(1);
            if let Some(p) = call.protocol {
                *self.calls_by_protocol.entry(p).or_default() += 1;
            }
            self.ready.push(call);
        }
    }

    /// Try the registry on the bytes held for this connection.
    fn detect(&mut self, state: &mut ConnState, conn: &ConnInfo) {
        let Stage::Detecting(events) = &state.stage else {
            return;
        };
        let mut need_more = false;
        let mut found: Option<(&ProtocolEntry, bool)> = None;
        'entries: for entry in ordered_entries(conn) {
            for dir in [Direction::ToServer, Direction::ToClient] {
                let first = first_bytes(events, dir, conn.transport);
                if first.is_empty() {
                    continue;
                }
                match (entry.probe)(&first, conn.transport) {
                    Probe::Match { from_client } => {
                        let swap = match (from_client, conn.roles) {
                            (Some(c), RoleSource::PortGuess) => c != (dir == Direction::ToServer),
                            _ => false,
                        };
                        found = Some((entry, swap));
                        break 'entries;
                    }
                    Probe::NeedMore => need_more = true,
                    Probe::NoMatch => {}
                }
            }
        }
        let held: usize = events.iter().map(|(_, _, b)| b.len()).sum();
        let both_spoke = events.iter().any(|(d, _, _)| *d == Direction::ToServer)
            && events.iter().any(|(d, _, _)| *d == Direction::ToClient);
        match found {
            Some((entry, swap)) => {
                let Stage::Detecting(events) = std::mem::replace(&mut state.stage, Stage::Ignored)
                else {
                    return;
                };
                state.swapped = swap;
                let (client, server) = if swap {
                    (conn.server, conn.client)
                } else {
                    (conn.client, conn.server)
                };
                let ctx = SessionContext {
                    transport: conn.transport,
                    client,
                    server,
                    limits: self.limits,
                };
                let mut session = (entry.new_session)(&ctx);
                for (dir, ts, bytes) in events {
                    let d = if swap { dir.reverse() } else { dir };
                    session.data(d, ts, &bytes, &mut self.emitter);
                }
                *self
                    .connections_by_protocol
                    .entry(entry.protocol)
                    .or_default() += 1;
                state.protocol = Some(entry.protocol);
                state.stage = Stage::Active(session);
                self.collect(state, conn);
            }
            // Wait for more bytes, or for the other side to speak: a
            // client's first bytes may be noise (a keep-alive byte, a broken
            // request line) while the server's answer is plain HTTP.
            None if held < MAX_DETECT_BYTES && (need_more || !both_spoke) => {}
            None => {
                self.undetected += 1;
                state.stage = Stage::Ignored;
            }
        }
    }
}

/// The first bytes one direction sent, joined across the held events (for
/// UDP, only its first datagram: datagrams are messages of their own).
fn first_bytes(
    events: &[(Direction, Nanos, Vec<u8>)],
    dir: Direction,
    transport: TransportKind,
) -> std::borrow::Cow<'_, [u8]> {
    let mut parts = events
        .iter()
        .filter(|(d, _, _)| *d == dir)
        .map(|(_, _, b)| b);
    if transport == TransportKind::Udp {
        let first = parts.next().map_or(&[][..], Vec::as_slice);
        return std::borrow::Cow::Borrowed(first);
    }
    match (parts.next(), parts.next()) {
        (None, _) => std::borrow::Cow::Borrowed(&[]),
        (Some(one), None) => std::borrow::Cow::Borrowed(one.as_slice()),
        (Some(a), Some(b)) => {
            let mut v = a.clone();
            v.extend_from_slice(b);
            for p in parts {
                v.extend_from_slice(p);
            }
            std::borrow::Cow::Owned(v)
        }
    }
}

/// Registry entries for this transport, those whose ports match first.
fn ordered_entries(conn: &ConnInfo) -> impl Iterator<Item = &'static ProtocolEntry> {
    let ports = [conn.client.port(), conn.server.port()];
    let fits = move |e: &&ProtocolEntry| e.transports.contains(&conn.transport);
    let hinted = move |e: &&ProtocolEntry| ports.iter().any(|p| e.ports.contains(p));
    PROTOCOLS
        .iter()
        .filter(fits)
        .filter(hinted)
        .chain(PROTOCOLS.iter().filter(fits).filter(move |e| !hinted(e)))
}

impl FlowHandler for Dissector {
    type State = ConnState;

    fn open(&mut self, conn: &ConnInfo) -> ConnState {
        ConnState {
            swapped: false,
            next_index: 0,
            stage: Stage::Detecting(Vec::new()),
            protocol: None,
            last_ts: conn.first_seen,
        }
    }

    fn data(
        &mut self,
        state: &mut ConnState,
        conn: &ConnInfo,
        dir: Direction,
        ts: Nanos,
        data: &[u8],
    ) {
        state.last_ts = state.last_ts.max(ts);
        match &mut state.stage {
            Stage::Active(session) => {
                let d = if state.swapped { dir.reverse() } else { dir };
                session.data(d, ts, data, &mut self.emitter);
                if !self.emitter.calls.is_empty() || !self.emitter.anomalies.is_empty() {
                    self.collect(state, conn);
                }
            }
            Stage::Detecting(events) => {
                if data.is_empty() {
                    return;
                }
                events.push((dir, ts, data.to_vec()));
                self.detect(state, conn);
            }
            Stage::Ignored => {}
        }
    }

    fn gap(&mut self, state: &mut ConnState, conn: &ConnInfo, dir: Direction, ts: Nanos, len: u64) {
        state.last_ts = state.last_ts.max(ts);
        match &mut state.stage {
            Stage::Active(session) => {
                let d = if state.swapped { dir.reverse() } else { dir };
                session.gap(d, ts, len, &mut self.emitter);
                self.collect(state, conn);
            }
            // Bytes before a gap cannot start a message we could follow:
            // forget them and detect on what comes next.
            Stage::Detecting(events) => events.retain(|(d, _, _)| *d != dir),
            Stage::Ignored => {}
        }
    }

    fn end(
        &mut self,
        state: &mut ConnState,
        conn: &ConnInfo,
        dir: Direction,
        ts: Nanos,
        _how: EndKind,
    ) {
        state.last_ts = state.last_ts.max(ts);
        if let Stage::Active(session) = &mut state.stage {
            let d = if state.swapped { dir.reverse() } else { dir };
            session.end(d, ts, &mut self.emitter);
            self.collect(state, conn);
        }
    }

    fn close(&mut self, mut state: ConnState, conn: &ConnInfo, ts: Nanos, reason: CloseReason) {
        if let Stage::Detecting(events) = &state.stage
            && !events.is_empty()
        {
            self.undetected += 1;
        }
        if let Stage::Active(session) = &mut state.stage {
            session.close(ts, &mut self.emitter);
        }
        self.collect(&mut state, conn);
        if self.flow_records {
            let record = flow_record(&self.node, self.conn_ids, &state, conn, ts, reason);
            self.closed.insert(conn.id, (record, state.swapped));
        }
    }

    fn retire(&mut self, conn: &ConnInfo, expert: &Expert) {
        if let Some((mut record, swapped)) = self.closed.remove(&conn.id) {
            let tcp = conn.transport == TransportKind::Tcp;
            record.metrics = expert.metrics(usize::from(swapped), tcp);
            record.last_ts = record.last_ts.max(expert.span().1);
            self.flows.push(record);
        }
    }
}

/// The flow record of a connection that is closing at `ts`.
fn flow_record(
    node: &str,
    conn_ids: ConnIdSpace,
    state: &ConnState,
    conn: &ConnInfo,
    ts: Nanos,
    reason: CloseReason,
) -> FlowRecord {
    // A finished connection closes on its last FIN or RST, so `ts` is its
    // last packet; other closes happen later (idle timeout, end of input).
    let last_ts = match reason {
        CloseReason::Finished => state.last_ts.max(ts),
        _ => state.last_ts,
    };
    // Roles as the calls see them: swapped when content overruled the
    // port guess.
    let (client, server) = if state.swapped {
        (conn.server, conn.client)
    } else {
        (conn.client, conn.server)
    };
    FlowRecord {
        conn_id: conn_ids.global(conn.id),
        node: node.to_owned(),
        transport: match conn.transport {
            TransportKind::Tcp => "tcp",
            TransportKind::Udp => "udp",
        },
        client,
        server,
        roles: match conn.roles {
            RoleSource::Handshake => "handshake",
            RoleSource::PortGuess => "port_guess",
        },
        first_ts: conn.first_seen,
        last_ts,
        protocol: state.protocol,
        calls: u64::from(state.next_index),
        close_reason: match reason {
            CloseReason::Finished => "finished",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::EndOfInput => "end_of_input",
        },
        metrics: trawl_model::flow::FlowMetrics::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_packet::LinkType;

    /// An Ethernet/IPv4/TCP frame (checksums left zero: nothing here checks them).
    fn frame(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = u16::try_from(20 + 20 + data.len()).unwrap();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.1.to_be_bytes());
        f.extend_from_slice(&dst.1.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(data);
        f
    }

    const PSH_ACK: u8 = 0x18;

    fn run(frames: &[Vec<u8>]) -> (Vec<Call>, PipelineStats) {
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut calls = Vec::new();
        let mut sink = |c: Call| calls.push(c);
        for (i, f) in frames.iter().enumerate() {
            let pkt = RawPacket {
                ts_ns: 1_000_000 * i as i64,
                link: LinkType::Ethernet,
                interface: 0,
                data: f,
                orig_len: f.len() as u32,
            };
            p.packet(&pkt, &mut sink);
        }
        p.finish(&mut sink);
        (calls, p.stats())
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    #[test]
    fn content_corrects_a_wrong_port_guess() {
        // Mid-stream, no handshake; the server listens on 50000 and the
        // client's port is lower, so the port guess picks the wrong server.
        let req = b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n";
        let resp = b"HTTP/1.1 204 No Content\r\n\r\n";
        let (calls, stats) = run(&[
            frame((A, 40000), (B, 50000), 100, PSH_ACK, req),
            frame((B, 50000), (A, 40000), 900, PSH_ACK, resp),
        ]);
        assert_eq!(calls.len(), 1, "{calls:?}");
        let c = &calls[0];
        assert_eq!((c.src.port, c.dst.port), (40000, 50000));
        assert_eq!((c.method.as_str(), c.status_code), ("GET", 204));
        assert_eq!(c.id, format!("local/{}/0", c.conn_id));
        assert_eq!(stats.connections_by_protocol.get(&Protocol::Http), Some(&1));
    }

    #[test]
    fn a_server_answer_identifies_http_when_the_client_spoke_noise() {
        // Shaped after http-zeek-http-methods.pcap: a request line HTTP
        // does not accept, answered by a plain HTTP 400.
        let (calls, _) = run(&[
            frame((A, 46564), (B, 80), 1, PSH_ACK, b"OPTIONSHTTP/1.1\r\n\r\n"),
            frame(
                (B, 80),
                (A, 46564),
                1,
                PSH_ACK,
                b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            ),
        ]);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].status_code, 400);
        assert!(!calls[0].has_request);
        assert_eq!((calls[0].src.port, calls[0].dst.port), (46564, 80));
    }

    #[test]
    fn unknown_protocols_are_counted_not_guessed() {
        let (calls, stats) = run(&[
            frame(
                (A, 40000),
                (B, 7777),
                1,
                PSH_ACK,
                &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3],
            ),
            frame((B, 7777), (A, 40000), 1, PSH_ACK, &[0x00, 0x01, 0x02]),
        ]);
        assert!(calls.is_empty());
        assert_eq!(stats.undetected_connections, 1);
        assert_eq!(stats.flows.connections, 1);
    }

    #[test]
    fn flow_records_carry_the_shards_conn_id_and_the_corrected_roles() {
        // The port-guess case above, as shard 1 of 2 of an indexer.
        let mut p = Pipeline::new(PipelineConfig {
            conn_ids: ConnIdSpace {
                shard: 1,
                shards: 2,
            },
            flow_records: true,
            ..PipelineConfig::default()
        });
        let frames = [
            frame(
                (A, 40000),
                (B, 50000),
                100,
                PSH_ACK,
                b"GET /x HTTP/1.1\r\n\r\n",
            ),
            frame(
                (B, 50000),
                (A, 40000),
                900,
                PSH_ACK,
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ),
        ];
        let mut calls = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let pkt = RawPacket {
                ts_ns: 5_000 + i as i64,
                link: LinkType::Ethernet,
                interface: 0,
                data: f,
                orig_len: f.len() as u32,
            };
            p.packet(&pkt, &mut |c| calls.push(c));
        }
        assert_eq!(p.drain_flows().count(), 0, "nothing closed yet");
        p.finish(&mut |c| calls.push(c));
        let flows: Vec<FlowRecord> = p.drain_flows().collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(flows.len(), 1);
        let (c, f) = (&calls[0], &flows[0]);
        // The table's first connection is local id 1: 1 * 2 + 1.
        assert_eq!(c.conn_id, 3);
        assert_eq!(c.id, "local/3/0");
        assert_eq!(f.conn_id, 3);
        assert_eq!((f.client.port(), f.server.port()), (40000, 50000));
        assert_eq!((f.transport, f.roles), ("tcp", "port_guess"));
        assert_eq!((f.first_ts, f.last_ts), (5_000, 5_001));
        assert_eq!((f.protocol, f.calls), (Some(Protocol::Http), 1));
        assert_eq!(f.close_reason, "end_of_input");
        // The metrics follow the corrected roles too.
        let m = &f.metrics;
        assert_eq!((m.client_packets, m.client_bytes), (1, 19));
        assert_eq!((m.server_packets, m.server_bytes), (1, 27));
        assert_eq!((m.handshake, m.time_to_first_byte_us), ("none", 0));
    }
}
