//! The flow record: one row per connection (a TCP connection or a UDP
//! 5-tuple conversation), the L4 side of what [`crate::Call`]s ride on.
//! Calls join their flow by `conn_id`.
//!
//! Filled by `trawl-dissect`'s pipeline when a connection closes (when its
//! config asks for flow records) and written by `trawl-index` to the `flows`
//! table. Packet and byte counters and the TCP expert metrics
//! (retransmissions, RTT, zero windows, …) are not here yet: they come from
//! the flow table in `trawl-flow` and will be added as fields of this
//! struct, columns of the `flows` table and entries of
//! [`crate::catalogue::FLOW_FIELDS`], all three together.

use std::net::SocketAddr;

use serde::Serialize;

use crate::Protocol;

/// One connection, as known when it left the flow table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    /// Same id as the `conn_id` of the calls that rode on this connection.
    pub conn_id: u64,
    pub node: String,
    /// `"tcp"` or `"udp"`.
    pub transport: &'static str,
    /// The client (the SYN's sender, or the side content or ports showed
    /// to be the client).
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// How the roles were decided: `"handshake"` (a SYN was seen) or
    /// `"port_guess"` (mid-stream start: the well-known port is the server).
    pub roles: &'static str,
    /// First packet, nanoseconds since the Unix epoch.
    pub first_ts: i64,
    /// Last packet that carried payload or ended a direction (the FIN or
    /// RST); pure ACKs after it are not counted yet.
    pub last_ts: i64,
    /// Application protocol detection picked; `None` when none claimed it.
    pub protocol: Option<Protocol>,
    /// Calls emitted on this connection.
    pub calls: u64,
    /// Why the connection left the table: `"finished"` (FIN/FIN or RST),
    /// `"idle_timeout"`, `"evicted"` (table caps) or `"end_of_input"`.
    pub close_reason: &'static str,
}
