//! The flow record: one row per connection (a TCP connection or a UDP
//! 5-tuple conversation), the L4 side of what [`crate::Call`]s ride on.
//! Calls join their flow by `conn_id`.
//!
//! Filled by `trawl-dissect`'s pipeline when a connection leaves the flow
//! table (when its config asks for flow records), with the counters and
//! TCP expert analysis that `trawl-flow` computed per segment
//! ([`FlowMetrics`]), and written by `trawl-index` to the `flows` table.
//! A field here, a column of the `flows` table and an entry of
//! [`crate::catalogue::FLOW_FIELDS`] are added together (a test in
//! `trawl-index` fails until they agree).

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
    /// Last packet of the connection (late ACKs and retransmissions after
    /// the close included).
    pub last_ts: i64,
    /// Application protocol detection picked; `None` when none claimed it.
    pub protocol: Option<Protocol>,
    /// Calls emitted on this connection.
    pub calls: u64,
    /// Why the connection left the table: `"finished"` (FIN/FIN or RST),
    /// `"idle_timeout"`, `"evicted"` (table caps) or `"end_of_input"`.
    pub close_reason: &'static str,
    /// Packet counters and, for TCP, the expert analysis.
    pub metrics: FlowMetrics,
}

impl FlowRecord {
    /// The connection's state in one word (`conn_state`): for TCP
    /// `"refused"` (the SYN was answered by a RST), `"unanswered"` (SYN
    /// sent, never answered), `"reset"` (ended by a RST), `"closed"`
    /// (ended by FIN), `"open"` (no end seen); for UDP `"udp"`.
    pub fn conn_state(&self) -> &'static str {
        let m = &self.metrics;
        if self.transport != "tcp" {
            return "udp";
        }
        match m.handshake {
            "refused" => "refused",
            "unanswered" => "unanswered",
            _ if m.rst_count > 0 => "reset",
            _ if m.fin_count > 0 => "closed",
            _ => "open",
        }
    }
}

/// Bits of [`FlowMetrics::connection_completeness`], as Wireshark's
/// `tcp.completeness` and Kubeshark's `connection_completeness`.
pub mod completeness {
    pub const SYN: u8 = 1;
    pub const SYN_ACK: u8 = 2;
    pub const ACK: u8 = 4;
    pub const DATA: u8 = 8;
    pub const FIN: u8 = 16;
    pub const RST: u8 = 32;
}

/// A connection's packet counters and TCP expert metrics (Kubeshark's
/// `tcp_metrics` names; the counts follow tshark's `tcp.analysis.*`
/// definitions). Durations are microseconds, 0 when not measured. For
/// UDP only the packet, byte and time counters are filled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowMetrics {
    /// Packets and payload bytes (TCP or UDP data, as declared on the
    /// wire) from the client and from the server.
    pub client_packets: u64,
    pub client_bytes: u64,
    pub server_packets: u64,
    pub server_bytes: u64,
    /// First to last packet.
    pub connection_time_us: i64,
    /// Segments tshark marks `tcp.analysis.retransmission` (fast and
    /// spurious retransmissions included, as in tshark).
    pub retransmissions: u64,
    pub fast_retransmissions: u64,
    pub spurious_retransmissions: u64,
    /// Segments that carried payload (both sides), the denominator of
    /// [`FlowMetrics::retransmission_rate`].
    pub data_segments: u64,
    pub out_of_order: u64,
    pub dup_acks: u64,
    /// tshark's `lost_segment`: a segment started past the next expected
    /// sequence number (the bytes between were not captured).
    pub missing_segments: u64,
    /// tshark's `ack_lost_segment`: an ACK for data never seen.
    pub acked_unseen_segments: u64,
    pub zero_window_events: u64,
    pub zero_window_probes: u64,
    pub window_full_events: u64,
    pub window_updates: u64,
    pub keepalive_count: u64,
    pub rst_count: u64,
    pub fin_count: u64,
    /// Window scale shift the client and the server offered in their SYN;
    /// -1 when the SYN was not seen, 0 when it carried no scale option.
    pub window_scale: i64,
    pub server_window_scale: i64,
    /// Mean receive window (scaled when the scale is known) advertised by
    /// segments carrying an ACK, both sides.
    pub avg_receive_window: u64,
    /// Bitmask of [`completeness`].
    pub connection_completeness: u8,
    /// tshark's `tcp.analysis.initial_rtt`: the latest SYN to the first
    /// ACK after it (a full round trip wherever the capture point sits).
    pub initial_rtt_us: i64,
    /// The first SYN to the handshake's ACK (SYN retransmissions
    /// included).
    pub handshake_time_us: i64,
    /// The client's first payload byte to the server's first.
    pub time_to_first_byte_us: i64,
    /// Data RTT: tshark's `tcp.analysis.ack_rtt` samples (a segment to the
    /// ACK that exactly covers it), both directions.
    pub rtt_min_us: i64,
    pub rtt_max_us: i64,
    pub rtt_avg_us: i64,
    pub rtt_samples: u64,
    /// Mean absolute difference between consecutive RTT samples.
    pub jitter_us: i64,
    /// Payload bytes not sent again (retransmitted copies excluded).
    pub goodput_bytes: u64,
    /// `"client"` or `"server"`: who sent the first FIN or RST; `""`.
    pub closed_by: &'static str,
    /// TCP handshake: `"complete"`, `"refused"` (RST answered the SYN),
    /// `"unanswered"` (SYN without answer), `"incomplete"` (SYN answered,
    /// never ACKed), `"none"` (no SYN seen: started mid-stream); `""` for
    /// UDP.
    pub handshake: &'static str,
}

impl FlowMetrics {
    /// Retransmitted share of the data segments (0 without data).
    pub fn retransmission_rate(&self) -> f64 {
        if self.data_segments == 0 {
            0.0
        } else {
            self.retransmissions as f64 / self.data_segments as f64
        }
    }
}
