//! HTTP/2 over cleartext TCP (h2c): the registry entry ([`PROTOCOL`]), the
//! content probe, and the per-connection [`Http2Session`] (which also
//! makes gRPC calls, see [`crate::protocols::grpc`]).
//!
//! [`frame`] holds the frame layout, [`hpack`] and [`huffman`] the header
//! decoding (RFC 7541, our own: it resumes after fields it cannot decode),
//! [`session`] the state machine. Connections that start with an HTTP/1.1
//! `Upgrade: h2c` are found by the HTTP/1 probe; its session hands the
//! rest of the connection over through [`after_upgrade`].

pub mod frame;
pub mod hpack;
pub mod huffman;
pub mod session;

pub use session::Http2Session;

use trawl_flow::TransportKind;
use trawl_model::{Call, Protocol};

use crate::seam::{Limits, Probe, ProtocolEntry, Session, SessionContext};

/// h2c has no port of its own (it shares HTTP's, or a service's own); the
/// probe decides by content.
pub const PORTS: &[u16] = &[];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Http,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// The client preface (prior knowledge) is a client's; a run of plausible
/// frames from the first byte (a connection captured mid-stream) matches
/// without a role, the session tells the roles from the header blocks.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    let n = data.len().min(frame::PREFACE.len());
    if data.get(..n) == frame::PREFACE.get(..n) {
        return if n == frame::PREFACE.len() {
            Probe::Match {
                from_client: Some(true),
            }
        } else {
            Probe::NeedMore
        };
    }
    match frame::chain(data) {
        frame::Chain::Yes => Probe::Match { from_client: None },
        frame::Chain::Maybe => Probe::NeedMore,
        frame::Chain::No => Probe::NoMatch,
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(Http2Session::new(ctx.limits))
}

/// The session that takes over a connection after `101 Switching
/// Protocols` to h2c; `request` is the HTTP/1.1 request that asked (it
/// becomes stream 1's request).
pub fn after_upgrade(limits: Limits, request: &Call) -> Box<dyn Session> {
    Box::new(Http2Session::after_upgrade(limits, request))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn probe_preface_frames_and_others() {
        let tcp = TransportKind::Tcp;
        assert_eq!(
            probe(frame::PREFACE, tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
        assert_eq!(probe(b"PRI * HTTP/2", tcp), Probe::NeedMore);
        assert_eq!(
            probe(&hex("000000 04 00 00000000"), tcp),
            Probe::Match { from_client: None }
        );
        assert_eq!(
            probe(&hex("000010 01 04 00000001 8286"), tcp),
            Probe::NeedMore
        );
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"*1\r\n$4\r\nPING\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert_eq!(probe(other, tcp), Probe::NoMatch, "{other:?}");
        }
        assert_eq!(probe(frame::PREFACE, TransportKind::Udp), Probe::NoMatch);
    }
}
