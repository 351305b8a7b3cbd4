//! PostgreSQL (frontend/backend protocol 3.0) over TCP: the registry
//! entry ([`PROTOCOL`]), the content probe, and the per-connection
//! [`PostgresSession`].
//!
//! [`parser`] frames and decodes messages, [`session`] groups them into
//! calls, [`sql`] derives the statement verb and normalised statement.
//! Call fields (declared in `trawl_model::protocols::postgresql`):
//! `method` is the statement verb (`SELECT`) or, without a query, the
//! first client message's name (`StartupMessage`, `Terminate`); `path` is
//! the normalised statement (literals as `?`); `status_code` is 0, or 1
//! when the server sent an ErrorResponse (its SQLSTATE is
//! `postgresql_error_code`); `elapsed_time` runs from the first request
//! byte to the end of the ReadyForQuery that closes the call; the request
//! body is the query text; and the `postgresql_*` attributes.

pub mod parser;
pub mod session;
pub mod sql;

pub use session::PostgresSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// The PostgreSQL port (5432) and the next ones, which second clusters on
/// one host take (`pg_createcluster` counts up from 5432).
pub const PORTS: &[u16] = &[5432, 5433, 5434];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Postgresql,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// A startup-phase packet (SSLRequest, GSSENCRequest, CancelRequest,
/// StartupMessage 3.x) or a whole Query/Parse is a client's; whole backend
/// messages ending in ReadyForQuery are a server's. TCP only.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    match parser::looks_like_frontend(data) {
        Some(true) => {
            return Probe::Match {
                from_client: Some(true),
            };
        }
        None => return Probe::NeedMore,
        Some(false) => {}
    }
    match parser::looks_like_backend(data) {
        Some(true) => Probe::Match {
            from_client: Some(false),
        },
        None => Probe::NeedMore,
        Some(false) => Probe::NoMatch,
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(PostgresSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_roles_and_refusals() {
        let tcp = TransportKind::Tcp;
        assert_eq!(
            probe(b"\x00\x00\x00\x08\x04\xd2\x16\x2f", tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
        assert_eq!(
            probe(b"C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I", tcp),
            Probe::Match {
                from_client: Some(false)
            }
        );
        for other in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"*1\r\n$4\r\nPING\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"J\x00\x00\x00\x0a\x35\x2e\x35\x00",
        ] {
            assert_eq!(probe(other, tcp), Probe::NoMatch, "{other:?}");
        }
    }
}
