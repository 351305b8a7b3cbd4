//! One module per protocol. Each has `parser.rs` (pure functions over
//! `&[u8]`: a message, "need more", or "not mine") and `session.rs`
//! (per-connection state, request/response pairing, limits), and exposes
//! a `PROTOCOL` entry for [`crate::registry`].

pub mod dns;
pub mod http1;
