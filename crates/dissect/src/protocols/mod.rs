//! One module per protocol. Each has `parser.rs` (pure functions over
//! `&[u8]`: a message, "need more", or "not mine") and `session.rs`
//! (per-connection state, request/response pairing, limits), and exposes
//! a `PROTOCOL` entry for [`crate::registry`].

pub mod amqp;
pub mod dns;
pub mod framing;
pub mod grpc;
pub mod http1;
pub mod http2;
pub mod kafka;
pub mod mongodb;
pub mod mysql;
pub mod postgresql;
pub mod redis;
pub mod tls;
pub mod websocket;
