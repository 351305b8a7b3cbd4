//! From reassembled streams to API calls: the dissector seam ([`seam`]),
//! the plain list of protocols ([`registry`]), one module per protocol
//! under [`protocols`], and the [`pipeline`] that runs capture packets
//! through decoding, the flow table and protocol sessions.
//!
//! Protocol modules are pure: bytes and packet timestamps in, records out.
//! They never print, log per packet, read a clock or touch global state.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod pipeline;
pub mod protocols;
pub mod registry;
pub mod seam;
#[cfg(test)]
mod testutil;

pub use pipeline::{ConnIdSpace, Pipeline, PipelineConfig, PipelineStats};
pub use seam::{Anomaly, Emitter, Limits, Probe, Session, SessionContext};
pub use trawl_flow::Direction;
