//! HTTP/1.0 and HTTP/1.1 over TCP: the registry entry ([`PROTOCOL`]), the
//! content probe, and the per-connection [`Http1Session`].
//!
//! [`parser`] holds the pure functions over bytes, [`session`] the state
//! machine (framing, pairing, gaps, limits), [`decode`] the content-coding
//! undoing for display. The pipeline finds this module through
//! [`crate::registry`].

pub mod decode;
pub mod parser;
pub mod session;

pub use session::Http1Session;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};
use parser::Prefix;

/// Ports where HTTP/1 is usual: 80, and the development and proxy ports
/// web frameworks and tools default to (Express 3000, Flask 5000, Django
/// and `python -m http.server` 8000, Tomcat/Jenkins 8080, Prometheus 9090…).
/// Content still decides.
pub const PORTS: &[u16] = &[
    80, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8088, 8888, 9000, 9090,
];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Http,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// A request line (`KNOWN-METHOD SP`, or a known method alone on its
/// line, which tshark still calls a request) is a client's; `HTTP/1.` is a
/// server's status line. TCP only.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    // Empty lines before a request line are allowed (RFC 9112 §2.2) but
    // would make every CRLF look like HTTP; the request line must lead.
    let request = match data.first() {
        Some(b'\r' | b'\n') => Prefix::No,
        _ => parser::lenient_request_start(data),
    };
    let status = parser::status_line_start(data);
    if request == Prefix::Yes {
        Probe::Match {
            from_client: Some(true),
        }
    } else if status == Prefix::Yes {
        Probe::Match {
            from_client: Some(false),
        }
    } else if request == Prefix::Maybe || status == Prefix::Maybe {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(Http1Session::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_roles() {
        let tcp = TransportKind::Tcp;
        let client = Probe::Match {
            from_client: Some(true),
        };
        let server = Probe::Match {
            from_client: Some(false),
        };
        assert_eq!(probe(b"GET / HTTP/1.1\r\n", tcp), client);
        assert_eq!(probe(b"MKCOL /dav/x HTTP/1.1\r\n", tcp), client);
        // From zeek's http/methods.trace: a method alone is still a request.
        assert_eq!(probe(b"OPTIONS\n\n", tcp), client);
        assert_eq!(probe(b"GET/ HTTP/1.1\n", tcp), Probe::NoMatch);
        assert_eq!(probe(b"\r\n", tcp), Probe::NoMatch);
        assert_eq!(probe(b"HTTP/1.0 200 OK\r\n", tcp), server);
        assert_eq!(probe(b"", tcp), Probe::NeedMore);
        assert_eq!(probe(b"PO", tcp), Probe::NeedMore);
        assert_eq!(probe(b"HTTP/", tcp), Probe::NeedMore);
        assert_eq!(probe(b"HTTP/2.0 200", tcp), Probe::NoMatch);
        assert_eq!(
            probe(b"GET / HTTP/1.1\r\n", TransportKind::Udp),
            Probe::NoMatch
        );
        // The HTTP/2 preface is not HTTP/1.
        assert_eq!(probe(b"PRI * HTTP/2.0\r\n", tcp), Probe::NoMatch);
    }

    #[test]
    fn probe_rejects_other_protocols() {
        let tcp = TransportKind::Tcp;
        // TLS ClientHello, PostgreSQL startup, Redis, SSH banner, binary noise.
        for data in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"*1\r\n$4\r\nPING\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"get / HTTP/1.1\r\n",
            b"GET\t/",
        ] {
            assert_eq!(probe(data, tcp), Probe::NoMatch, "{data:?}");
        }
    }
}
