//! Packets from capture files to transport segments: reading classic pcap
//! and pcapng ([`capfile`]), writing pcap ([`capfile::PcapWriter`]),
//! decoding link, network and transport headers without copying
//! ([`decode`]), and reassembling IP fragments ([`defrag`]).
//!
//! Everything here treats its input as hostile: no panics, no allocation
//! sized by an unchecked length. Flows and reassembly live in `trawl-flow`.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod capfile;
pub mod decode;
pub mod defrag;
pub mod pcapng_writer;

pub use capfile::{CaptureError, CaptureReader, LinkType, RawPacket};
pub use decode::{DecodeError, IpPacket, TcpFlags, TcpSegment, Transport, UdpDatagram};
pub use defrag::Defragmenter;
