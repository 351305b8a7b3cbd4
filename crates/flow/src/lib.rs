//! Flows: two-way keys, the flow table with idle timeouts and memory caps,
//! and TCP reassembly that delivers each direction's bytes in order, with
//! explicit gap events where bytes were never captured.
//!
//! The table drives a [`FlowHandler`] (in practice the dissector pipeline
//! in `trawl-dissect`) with per-connection state of the handler's choosing,
//! so a connection costs one hash lookup per packet. Every segment also
//! feeds the connection's [`Expert`] (L4 counters and tshark-style TCP
//! analysis), handed over when the connection retires. Time is the
//! packets' own: nothing here reads a clock.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;

pub mod expert;
pub mod reassembly;
pub mod table;

pub use expert::Expert;
pub use table::{FlowConfig, FlowStats, FlowTable};

/// Nanoseconds since the Unix epoch, from packet timestamps.
pub type Nanos = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Tcp,
    Udp,
}

/// Direction of bytes relative to the connection's client and server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// How the client/server roles of a connection were decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleSource {
    /// The SYN's sender is the client.
    Handshake,
    /// No handshake was seen: the side with the well-known (lower, or
    /// registered) port is taken as the server. Handlers may still swap
    /// roles when content says otherwise (a request line from the "server").
    PortGuess,
}

/// What the table knows about one connection; handed to every callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Unique within one table (one capture, one node): 1, 2, 3, … in order
    /// of first packet.
    pub id: u64,
    pub transport: TransportKind,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub roles: RoleSource,
    /// Timestamp of the connection's first packet.
    pub first_seen: Nanos,
}

/// Why a direction's byte stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndKind {
    Fin,
    Rst,
}

/// Why a connection left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both directions ended (FIN/FIN or a RST).
    Finished,
    /// No packet for the idle timeout.
    IdleTimeout,
    /// Evicted to stay under the table's connection or memory cap.
    Evicted,
    /// The input ended ([`FlowTable::finish`]).
    EndOfInput,
}

/// Receives a connection's life from the [`FlowTable`]. Calls for one
/// connection come in time order: `open`, then `data`/`gap`/`end` per
/// direction (each direction's bytes strictly in sequence order), then
/// exactly one `close`.
pub trait FlowHandler {
    /// Per-connection state kept inside the table's entry.
    type State;

    fn open(&mut self, conn: &ConnInfo) -> Self::State;

    /// In-order bytes of one direction (TCP), or one datagram (UDP).
    fn data(
        &mut self,
        state: &mut Self::State,
        conn: &ConnInfo,
        dir: Direction,
        ts: Nanos,
        data: &[u8],
    );

    /// `len` bytes of this direction's stream were never captured (or were
    /// given up on when a buffer cap was hit); data after them follows.
    fn gap(
        &mut self,
        state: &mut Self::State,
        conn: &ConnInfo,
        dir: Direction,
        ts: Nanos,
        len: u64,
    );

    /// This direction's stream ended (all bytes before the FIN delivered,
    /// with gaps where needed) or was reset.
    fn end(
        &mut self,
        state: &mut Self::State,
        conn: &ConnInfo,
        dir: Direction,
        ts: Nanos,
        how: EndKind,
    );

    /// The connection is gone; no more calls for it.
    fn close(&mut self, state: Self::State, conn: &ConnInfo, ts: Nanos, reason: CloseReason);

    /// The connection's entry left the table: after `close`, and after
    /// the late packets a finished TCP connection absorbs while it
    /// lingers (the last ACK, a retransmitted FIN, more RSTs), so the
    /// counters and TCP analysis in `expert` are final. Exactly once per
    /// connection, after its `close`.
    fn retire(&mut self, conn: &ConnInfo, expert: &Expert) {
        let _ = (conn, expert);
    }
}
