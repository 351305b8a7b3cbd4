//! Agreement of every protocol dissector with tshark 4.0 on the real
//! captures in ../shared/pcaps (skipping loudly when they are absent), and
//! tests against real servers and clients. One test binary; one module per
//! protocol family.

mod amqp;
mod common;
mod grpc;
mod http2;
mod http_dns;
mod kafka;
mod mongodb;
mod mysql;
mod postgresql;
mod redis;
mod tls;
mod websocket;
