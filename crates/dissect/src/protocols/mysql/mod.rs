//! MySQL and MariaDB (client/server protocol 4.1+) over TCP: the registry
//! entry ([`PROTOCOL`]), the content probe, and the per-connection
//! [`MysqlSession`].
//!
//! [`parser`] frames and decodes packets, [`session`] reads each
//! command's answer. Call fields (declared in
//! `trawl_model::protocols::mysql`): `method` is the statement verb
//! (`SELECT`) for statements and the command name without `COM_`
//! otherwise (`PING`, `QUIT`, `LOGIN` for the handshake); `path` is the
//! normalised statement (literals as `?`); `status_code` is 0 or the
//! MySQL error number of an ERR answer; `elapsed_time` runs from the
//! command's first byte to its answer's last; the request body is the
//! statement text; and the `mysql_*` attributes. After an SSL request the
//! connection is TLS: the login call says so (`mysql_tls`) and nothing
//! more is read.

pub mod parser;
pub mod session;

pub use session::MysqlSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// MySQL and MariaDB (3306), and 3307, where a second instance or a
/// proxy usually listens. Content still decides (the greeting).
pub const PORTS: &[u16] = &[3306, 3307];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Mysql,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// The server greeting (protocol 10, a printable version) is a server's;
/// in a capture that starts mid-connection, one whole command packet is a
/// client's. TCP only.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    let greeting = parser::looks_like_greeting(data);
    if greeting == Some(true) {
        return Probe::Match {
            from_client: Some(false),
        };
    }
    match parser::looks_like_command(data) {
        Some(true) => Probe::Match {
            from_client: Some(true),
        },
        None => Probe::NeedMore,
        Some(false) if greeting.is_none() => Probe::NeedMore,
        Some(false) => Probe::NoMatch,
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(MysqlSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_refuses_other_protocols() {
        let tcp = TransportKind::Tcp;
        for other in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"*1\r\n$4\r\nPING\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert_eq!(probe(other, tcp), Probe::NoMatch, "{other:?}");
        }
        assert_eq!(
            probe(b"\x01\x00\x00\x00\x0e", tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
    }
}
