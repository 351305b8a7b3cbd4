//! The catalogue slices of the protocols whose fields live in
//! [`crate::Attrs`]: one file per protocol, each with
//! `pub static FIELDS: &[FieldDef]` (its flag first, then its fields with
//! Kubeshark's KFL2 names), listed once in
//! [`crate::catalogue::PROTOCOL_FIELDS`]. HTTP/1, HTTP/2 and DNS use the
//! common typed fields of [`crate::Call`] and have no file here.

pub mod amqp;
pub mod grpc;
pub mod kafka;
pub mod mongodb;
pub mod mysql;
pub mod postgresql;
pub mod redis;
pub mod tls;
pub mod ws;
