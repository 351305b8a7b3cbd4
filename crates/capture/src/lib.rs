//! Live packet capture for trawl: AF_PACKET TPACKET_V3 memory-mapped rings
//! ([`Capture`], in `ring.rs`), fanout across threads, kernel drop and freeze
//! counters ([`CaptureStats`]), and capture filters in tcpdump syntax compiled
//! to classic BPF by our own compiler ([`compile_filter`], in `filter/`),
//! which also runs in user space ([`filter::bpf::run`]) for filtering packets
//! read from files.
//!
//! This is the only trawl crate allowed `unsafe`: socket options, the ring
//! mapping and its shared status words have no safe std API. The `unsafe`
//! is confined to `sys.rs` (calls into libc) and the ring's block access in
//! `ring.rs`; every block states its safety argument. Packets leave this
//! crate as borrowed byte slices with their link type; decoding is
//! `trawl-packet`'s, storing them is `trawl-rawstore`'s, and `trawl tap`
//! wires the two together.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod config;
pub mod filter;
mod ring;
mod sys;

pub use config::{CaptureConfig, FanoutConfig, FanoutMode};
pub use filter::{FilterError, SockFilter, compile_filter, exclude_api_traffic};
pub use ring::{Batch, Capture, CaptureError, CaptureStats, Packet, Packets, SLL2_HEADER_LEN};
pub use trawl_packet::LinkType;
