//! TLS handshakes over TCP: the registry entry ([`PROTOCOL`]), the strict
//! content probe, and the per-connection [`TlsSession`] that turns each
//! handshake's ClientHello and ServerHello into one call (SNI, ALPN,
//! versions, cipher suite, JA4). Encrypted data is not decrypted.
//!
//! [`parser`] reads records and hellos, [`ja4`] fingerprints the
//! ClientHello, [`session`] reassembles and pairs. The pipeline finds this
//! module through [`crate::registry`].

pub mod ja4;
pub mod parser;
pub mod session;

pub use session::TlsSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// HTTPS and its common alternative port; content still decides.
pub const PORTS: &[u16] = &[443, 8443];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Tls,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// A handshake record (0x16, version 3.0 to 3.4, a sane length) whose
/// first message is a ClientHello (the client's) or a ServerHello (the
/// server's) with a length that fits the record's. Anything else,
/// including a connection caught after its handshake, is not claimed.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    // Check what has arrived of the fixed bytes before asking for more.
    for (i, &b) in data.iter().take(6).enumerate() {
        let ok = match i {
            0 => b == 0x16,
            1 => b == 0x03,
            2 => b <= 0x04,
            5 => b == parser::CLIENT_HELLO || b == parser::SERVER_HELLO,
            _ => true,
        };
        if !ok {
            return Probe::NoMatch;
        }
    }
    let (Some(header), Some(&[ty, l0, l1, l2])) = (
        parser::record_header(data),
        data.get(5..9).and_then(|s| s.first_chunk::<4>()),
    ) else {
        return match parser::record_header(data) {
            None if data.len() >= parser::RECORD_HEADER_LEN => Probe::NoMatch,
            _ => Probe::NeedMore,
        };
    };
    let hs_len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    // A hello is at least version, random, session id length, suites and
    // compression (ServerHello: 38 bytes), and too long only when absurd.
    if header.len < 4 || !(38..=16 * 1024 * 1024).contains(&hs_len) {
        return Probe::NoMatch;
    }
    Probe::Match {
        from_client: Some(ty == parser::CLIENT_HELLO),
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(TlsSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn probe_is_strict() {
        let tcp = TransportKind::Tcp;
        assert_eq!(
            probe(&hex("16 0301 0200 01 0001fc 0303"), tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
        assert_eq!(
            probe(&hex("16 0303 007a 02 000076 0303"), tcp),
            Probe::Match {
                from_client: Some(false)
            }
        );
        assert_eq!(probe(&hex("16 03"), tcp), Probe::NeedMore);
        assert_eq!(probe(&hex("16 0301 0200 01"), tcp), Probe::NeedMore);
        // Application data, a Certificate first, SSLv2, HTTP, UDP.
        assert_eq!(probe(&hex("17 0303 0040 0000"), tcp), Probe::NoMatch);
        assert_eq!(probe(&hex("16 0303 0200 0b 0001fc"), tcp), Probe::NoMatch);
        assert_eq!(probe(&hex("80 2e 01 0002"), tcp), Probe::NoMatch);
        assert_eq!(probe(b"GET / HTTP/1.1\r\n", tcp), Probe::NoMatch);
        assert_eq!(
            probe(&hex("16 0301 0200 01 0001fc 0303"), TransportKind::Udp),
            Probe::NoMatch
        );
        // A record too short for a hello.
        assert_eq!(probe(&hex("16 0301 0004 01 000000"), tcp), Probe::NoMatch);
    }
}
