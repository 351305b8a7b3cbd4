//! Fuzz target for `trawl-flow`: the input is read as a run of small
//! synthetic TCP segments (and the odd UDP datagram) on a handful of
//! connections, fed to a [`FlowTable`] with tight caps and short timeouts
//! so that every path (reordering, overlaps, gaps by timeout, by ACK, by
//! cap, FIN/RST, port reuse, idle timeout, eviction) is reachable. A
//! checking handler asserts the table's contract: exactly one close per
//! open and nothing after it, time never going back, at most one end per
//! direction and nothing after it, and every delivered byte sitting at its
//! own stream offset (payload bytes are the low byte of their sequence
//! number, so a byte delivered at the wrong offset shows). Run with
//! `cargo +nightly fuzz run reassembly` from the workspace root.

#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use trawl_flow::{
    CloseReason, ConnInfo, Direction, EndKind, FlowConfig, FlowHandler, FlowTable, Nanos,
};
use trawl_packet::{TcpFlags, TcpSegment, UdpDatagram};

const MS: Nanos = 1_000_000;

/// One direction as the handler saw it.
#[derive(Default)]
struct Side {
    /// Stream offset of the next call: data and gaps so far.
    offset: u64,
    /// Low byte of the sequence number at offset 0, learnt from the first
    /// data call.
    base_low: Option<u8>,
    ended: bool,
}

struct State {
    id: u64,
    sides: [Side; 2],
}

#[derive(Default)]
struct Checker {
    open: HashMap<u64, Nanos>,
    closed: u64,
    opened: u64,
}

fn side(d: Direction) -> usize {
    match d {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

impl Checker {
    fn tick(&mut self, id: u64, ts: Nanos) {
        let last = self
            .open
            .get_mut(&id)
            .expect("call for a connection not open");
        assert!(ts >= *last, "time went back");
        *last = ts;
    }
}

impl FlowHandler for Checker {
    type State = State;

    fn open(&mut self, conn: &ConnInfo) -> State {
        assert!(
            self.open.insert(conn.id, conn.first_seen).is_none(),
            "opened twice"
        );
        self.opened += 1;
        State {
            id: conn.id,
            sides: Default::default(),
        }
    }

    fn data(&mut self, st: &mut State, conn: &ConnInfo, dir: Direction, ts: Nanos, data: &[u8]) {
        assert_eq!(st.id, conn.id);
        self.tick(conn.id, ts);
        if conn.transport == trawl_flow::TransportKind::Udp {
            return;
        }
        assert!(!data.is_empty(), "empty TCP data call");
        let s = &mut st.sides[side(dir)];
        assert!(!s.ended, "data after end");
        let base = *s
            .base_low
            .get_or_insert(data[0].wrapping_sub(s.offset as u8));
        for (k, &b) in data.iter().enumerate() {
            let want = base.wrapping_add(s.offset as u8).wrapping_add(k as u8);
            assert_eq!(b, want, "byte at the wrong offset");
        }
        s.offset += data.len() as u64;
    }

    fn gap(&mut self, st: &mut State, conn: &ConnInfo, dir: Direction, ts: Nanos, len: u64) {
        self.tick(conn.id, ts);
        assert!(len > 0, "empty gap");
        let s = &mut st.sides[side(dir)];
        assert!(!s.ended, "gap after end");
        s.offset += len;
    }

    fn end(&mut self, st: &mut State, conn: &ConnInfo, dir: Direction, ts: Nanos, _: EndKind) {
        self.tick(conn.id, ts);
        let s = &mut st.sides[side(dir)];
        assert!(!s.ended, "ended twice");
        s.ended = true;
    }

    fn close(&mut self, st: State, conn: &ConnInfo, ts: Nanos, _: CloseReason) {
        assert_eq!(st.id, conn.id);
        self.tick(conn.id, ts);
        self.open.remove(&conn.id);
        self.closed += 1;
    }
}

/// Per (connection, direction): where the generator's sequence cursor is.
#[derive(Clone, Copy, Default)]
struct Cursor {
    seq: u32,
}

fuzz_target!(|input: &[u8]| {
    let config = FlowConfig {
        tcp_idle_timeout: 2_000 * MS,
        udp_idle_timeout: 1_000 * MS,
        closed_linger: 500 * MS,
        max_connections: 3,
        max_buffered_per_direction: 600,
        max_buffered_total: 1_000,
        gap_timeout: 50 * MS,
    };
    let max_total = config.max_buffered_total;
    let mut table: FlowTable<Checker> = FlowTable::new(config);
    let mut checker = Checker::default();
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let server = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut cursors = [[Cursor::default(); 2]; 4];
    // Start near the wrap so it is crossed often.
    for (k, c) in cursors.iter_mut().enumerate() {
        c[0].seq = 0xFFFF_FF00u32.wrapping_add(k as u32 * 64);
        c[1].seq = 0x7FFF_FFF0u32.wrapping_add(k as u32 * 64);
    }
    let mut ts: Nanos = 0;
    let mut payload = [0u8; 256];

    for op in input.chunks_exact(6) {
        let [ctl, fl, d0, d1, len, tdelta] = [op[0], op[1], op[2], op[3], op[4], op[5]];
        ts += match tdelta {
            0..=199 => Nanos::from(tdelta) * 100_000, // up to 20 ms
            200..=249 => Nanos::from(tdelta - 199) * 10 * MS,
            _ => Nanos::from(tdelta - 249) * 500 * MS,
        };
        let conn = usize::from(ctl & 3);
        let to_client = ctl & 4 != 0;
        let port = 40_000 + conn as u16;
        let (src, dst, sport, dport) = if to_client {
            (server, client, 80, port)
        } else {
            (client, server, port, 80)
        };
        if ctl & 0xF8 == 0xF8 {
            // A UDP datagram now and then, to share the connection cap.
            let n = usize::from(len % 32);
            let dgram = UdpDatagram {
                src_port: sport,
                dst_port: 53,
                payload: &payload[..n],
                payload_len: n as u32,
            };
            table.udp(&mut checker, ts, src, dst, &dgram);
            assert!(table.buffered_bytes() <= max_total);
            continue;
        }
        let dir = usize::from(to_client);
        let delta = i16::from_le_bytes([d0, d1]);
        // Mostly small moves around the cursor; sometimes a big jump.
        let delta = if ctl & 0x80 != 0 {
            i32::from(delta) * 4096
        } else {
            i32::from(delta) % 512
        };
        let cur = &mut cursors[conn][dir];
        let seq = cur.seq.wrapping_add(delta as u32);
        let mut flags = TcpFlags::ACK;
        if fl & 0x01 != 0 && fl & 0x0E == 0 {
            flags |= TcpFlags::SYN;
            if !to_client {
                flags &= !TcpFlags::ACK;
            }
        }
        if fl & 0x10 != 0 && fl & 0x60 == 0 {
            flags |= TcpFlags::FIN;
        }
        if fl & 0x80 != 0 && fl & 0x40 != 0 && fl & 0x20 != 0 {
            flags |= TcpFlags::RST;
        }
        if fl & 0x08 != 0 && fl & 0x04 != 0 {
            flags &= !TcpFlags::ACK;
        }
        let n = usize::from(len);
        let first = if flags & TcpFlags::SYN != 0 {
            seq.wrapping_add(1)
        } else {
            seq
        };
        for (k, b) in payload.iter_mut().take(n).enumerate() {
            *b = first.wrapping_add(k as u32) as u8;
        }
        // Sometimes the snap length cut the segment.
        let cut = if fl & 0x02 != 0 && fl & 0x01 == 0 {
            n / 2
        } else {
            n
        };
        // The ACK covers the other direction's cursor, give or take.
        let other = cursors[conn][1 - dir].seq;
        let ack = other.wrapping_add(u32::from(fl >> 5) * 37);
        let seg = TcpSegment {
            src_port: sport,
            dst_port: dport,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 65535,
            options: &[],
            payload: &payload[..cut],
            payload_len: n as u32,
        };
        table.tcp(&mut checker, ts, src, dst, &seg);
        let cur = &mut cursors[conn][dir];
        let end = first.wrapping_add(n as u32);
        if end.wrapping_sub(cur.seq) as i32 > 0 {
            cur.seq = end;
        }
        assert!(table.buffered_bytes() <= max_total, "over the total cap");
        assert!(table.len() <= 3);
    }

    table.finish(&mut checker);
    assert!(checker.open.is_empty(), "connection never closed");
    assert_eq!(checker.opened, checker.closed);
    assert!(table.is_empty());
    assert_eq!(table.buffered_bytes(), 0);
    assert_eq!(table.stats().connections, checker.opened);
});
