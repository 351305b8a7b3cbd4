//! Redis (RESP2 and RESP3) over TCP: the registry entry ([`PROTOCOL`]),
//! the content probe, and the per-connection [`RedisSession`].
//!
//! [`parser`] is the streaming RESP reader, [`session`] pairs commands
//! with replies. Call fields (declared in
//! `trawl_model::protocols::redis`): `method` is the command verb
//! upper-cased (or the push kind, `message`, for a server push), `path`
//! the key, `status_code` 0 for a reply and 1 for an error reply,
//! `elapsed_time` from the command's first byte to the reply's last,
//! request and response bodies the command and reply as text, and the
//! `redis_*` attributes (type, command, key, channel, reply type and
//! element count, error text, sizes).

pub mod parser;
pub mod session;

pub use session::RedisSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// Redis (6379), a second instance or TLS-less replica (6380), and
/// Sentinel (26379). Content still decides.
pub const PORTS: &[u16] = &[6379, 6380, 26379];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Redis,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// A RESP array of bulk strings or a known inline command is a client's;
/// a typical reply (`+OK`, `-ERR …`, `:1`, `$5`, `*3` + a value) is a
/// server's (captures that start mid-connection). TCP only.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    match parser::looks_like_command(data) {
        Some(true) => {
            return Probe::Match {
                from_client: Some(true),
            };
        }
        None => return Probe::NeedMore,
        Some(false) => {}
    }
    match parser::looks_like_reply(data) {
        Some(true) => Probe::Match {
            from_client: Some(false),
        },
        None => Probe::NeedMore,
        Some(false) => Probe::NoMatch,
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(RedisSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_roles_and_refusals() {
        let tcp = TransportKind::Tcp;
        let client = Probe::Match {
            from_client: Some(true),
        };
        let server = Probe::Match {
            from_client: Some(false),
        };
        assert_eq!(probe(b"*1\r\n$4\r\nPING\r\n", tcp), client);
        assert_eq!(probe(b"PING\r\n", tcp), client);
        assert_eq!(probe(b"+OK\r\n", tcp), server);
        assert_eq!(
            probe(b"*1\r\n$4\r\nPING\r\n", TransportKind::Udp),
            Probe::NoMatch
        );
        for other in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"+OK POP3 server ready\r\n",
            b"220 smtp.example.com ESMTP\r\n",
        ] {
            assert_eq!(probe(other, tcp), Probe::NoMatch, "{other:?}");
        }
    }
}
