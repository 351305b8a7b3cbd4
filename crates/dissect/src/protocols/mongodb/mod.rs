//! MongoDB over TCP: the registry entry ([`PROTOCOL`]), the header probe,
//! and the per-connection [`MongoSession`] that pairs requests with
//! replies (command, database, collection, errors).
//!
//! [`bson`] is trawl's own minimal BSON reader, [`parser`] reads wire
//! messages, [`session`] frames and pairs. The pipeline finds this module
//! through [`crate::registry`].

pub mod bson;
pub mod parser;
pub mod session;

pub use session::MongoSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// mongod's and mongos' default ports (27017, and 27018/27019 for shard
/// and config servers); content still decides.
pub const PORTS: &[u16] = &[27017, 27018, 27019];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Mongodb,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// A message header with a sane length and a known opcode, then: OP_MSG
/// with only defined flag bits (a request when responseTo is 0, else a
/// reply), OP_QUERY and the legacy requests with responseTo 0, OP_REPLY
/// answering a non-zero request id.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    if let Some(len) = data.first_chunk::<4>().map(|b| i32::from_le_bytes(*b))
        && !(21..=48_000_000).contains(&len)
    {
        return Probe::NoMatch;
    }
    if data.len() < 20 {
        if let Some(op) = data.get(12..16).and_then(|s| s.first_chunk::<4>())
            && parser::opcode_name(i32::from_le_bytes(*op)).is_none()
        {
            return Probe::NoMatch;
        }
        return Probe::NeedMore;
    }
    let Some(h) = parser::header(data) else {
        return Probe::NoMatch;
    };
    let word = data
        .get(16..20)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |b| u32::from_le_bytes(*b));
    let from_client = match h.opcode {
        parser::OP_MSG if parser::known_msg_flags(word) => h.response_to == 0,
        parser::OP_REPLY if h.response_to != 0 && word < 16 => false,
        parser::OP_QUERY if h.response_to == 0 && word < 256 => true,
        parser::OP_INSERT
        | parser::OP_UPDATE
        | parser::OP_DELETE
        | parser::OP_GET_MORE
        | parser::OP_KILL_CURSORS
            if h.response_to == 0 =>
        {
            true
        }
        // The wrapped message's opcode must be one too.
        parser::OP_COMPRESSED
            if i32::try_from(word).is_ok_and(|w| parser::opcode_name(w).is_some()) =>
        {
            h.response_to == 0
        }
        _ => return Probe::NoMatch,
    };
    Probe::Match {
        from_client: Some(from_client),
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(MongoSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn probe_headers() {
        let tcp = TransportKind::Tcp;
        // Frame 1 of mongo-deepflow-mongo-msg.pcap: OP_MSG, id 0x28, flags 0.
        let req = hex("e6000000 28000000 00000000 dd070000 00000000 00");
        assert_eq!(
            probe(&req, tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
        let reply = hex("1d010000 3903cc06 28000000 dd070000 00000000 00");
        assert_eq!(
            probe(&reply, tcp),
            Probe::Match {
                from_client: Some(false)
            }
        );
        assert_eq!(probe(&req[..8], tcp), Probe::NeedMore);
        // Unknown opcode, OP_MSG with undefined flags, HTTP, TLS.
        assert_eq!(
            probe(&hex("e6000000 28000000 00000000 d0070000 00000000"), tcp),
            Probe::NoMatch
        );
        assert_eq!(
            probe(&hex("e6000000 28000000 00000000 dd070000 04000000"), tcp),
            Probe::NoMatch
        );
        assert_eq!(probe(b"GET / HTTP/1.1\r\nHost: x\r\n", tcp), Probe::NoMatch);
        // A MySQL greeting whose thread id reads as OP_COMPRESSED (2012):
        // the "wrapped opcode" is scramble bytes.
        let greeting = hex("4a000000 0a 382e302e333600 dc070000 3a2b1c0d 00");
        assert_eq!(probe(&greeting, tcp), Probe::NoMatch);
        let compressed = hex("30000000 05000000 00000000 dc070000 dd070000 20000000 01");
        assert_eq!(
            probe(&compressed, tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
        assert_eq!(
            probe(&hex("16030102000100 01fc0303 0000000000000000"), tcp),
            Probe::NoMatch
        );
    }
}
