//! The protocols trawl dissects, in one plain list. Adding a protocol adds
//! one line here; detection tries entries whose ports match first, then
//! the rest, in this order.

use crate::protocols::{amqp, dns, http1, http2, kafka, mongodb, mysql, postgresql, redis, tls};
use crate::seam::ProtocolEntry;

pub static PROTOCOLS: &[ProtocolEntry] = &[
    http1::PROTOCOL,
    // h2c: the prior-knowledge preface, or frames from the first byte
    // (mid-stream). Upgrades from HTTP/1.1 are handed over by http1.
    http2::PROTOCOL,
    // Before DNS: its TCP probe is lenient with binary first bytes.
    tls::PROTOCOL,
    kafka::PROTOCOL,
    mongodb::PROTOCOL,
    amqp::PROTOCOL,
    // Before DNS, like the other binary protocols.
    postgresql::PROTOCOL,
    mysql::PROTOCOL,
    dns::PROTOCOL,
    redis::PROTOCOL,
];
