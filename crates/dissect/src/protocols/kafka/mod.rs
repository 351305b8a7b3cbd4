//! Kafka over TCP: the registry entry ([`PROTOCOL`]), the request probe,
//! and the per-connection [`KafkaSession`] that pairs requests and
//! responses by correlation id (API key name and version, client id,
//! topics of Produce/Fetch/Metadata, error codes where cheap).
//!
//! [`parser`] reads headers and the few bodies used, [`session`] frames
//! and pairs. The pipeline finds this module through [`crate::registry`].

pub mod parser;
pub mod session;

pub use session::KafkaSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// Kafka's default listener port; content still decides.
pub const PORTS: &[u16] = &[9092];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Kafka,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// A request head: a length that fits the header, a known API key, a
/// plausible version, a non-negative correlation id, and a client id
/// whose length fits and whose bytes are printable. Responses carry no
/// API key and are never claimed on their own.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    let be16 = |i: usize| {
        data.get(i..i + 2)
            .and_then(|s| s.first_chunk::<2>())
            .map(|b| i16::from_be_bytes(*b))
    };
    let len = data
        .first_chunk::<4>()
        .map(|b| i64::from(i32::from_be_bytes(*b)));
    if let Some(len) = len
        && !(10..=i64::try_from(parser::MAX_MESSAGE_LEN).unwrap_or(i64::MAX)).contains(&len)
    {
        return Probe::NoMatch;
    }
    if let Some(key) = be16(4)
        && parser::api_key_name(key).is_none()
    {
        return Probe::NoMatch;
    }
    if let Some(v) = be16(6)
        && !(0..=parser::MAX_API_VERSION).contains(&v)
    {
        return Probe::NoMatch;
    }
    if data.get(8).is_some_and(|b| *b >= 0x80) {
        return Probe::NoMatch; // negative correlation id
    }
    let (Some(len), Some(client_len)) = (len, be16(12)) else {
        return Probe::NeedMore;
    };
    if client_len < -1 || i64::from(client_len) > len - 10 {
        return Probe::NoMatch;
    }
    let id = data
        .get(14..)
        .unwrap_or_default()
        .iter()
        .take(usize::try_from(client_len).unwrap_or(0));
    if id.clone().any(|b| !(0x20..0x7f).contains(b)) {
        return Probe::NoMatch;
    }
    Probe::Match {
        from_client: Some(true),
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(KafkaSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn probe_requests_only() {
        let tcp = TransportKind::Tcp;
        let m = Probe::Match {
            from_client: Some(true),
        };
        assert_eq!(
            probe(&hex("00000075 0000 0002 00000001 0010 636f6e73"), tcp),
            m
        );
        assert_eq!(probe(&hex("00000075 0000"), tcp), Probe::NeedMore);
        // Unknown key, huge version, HTTP, TLS.
        assert_eq!(
            probe(&hex("00000075 7fff 0002 00000001 0000"), tcp),
            Probe::NoMatch
        );
        assert_eq!(
            probe(&hex("00000075 0000 7000 00000001 0000"), tcp),
            Probe::NoMatch
        );
        assert_eq!(probe(b"GET / HTTP/1.1\r\n", tcp), Probe::NoMatch);
        assert_eq!(probe(&hex("16030102000100 01fc0303"), tcp), Probe::NoMatch);
        // A Produce v2 response (correlation 1, one topic "to…") reads as
        // a request: responses are told apart only by pairing, which is
        // why the pipeline probes the client's bytes first.
        assert_eq!(probe(&hex("0000002e 00000001 00000001 0006 746f"), tcp), m);
        // Client id with a control byte.
        assert_eq!(
            probe(&hex("00000075 0000 0002 00000001 0002 0001"), tcp),
            Probe::NoMatch
        );
    }
}
