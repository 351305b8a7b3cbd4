//! AMQP 0-9-1 over TCP: the registry entry ([`PROTOCOL`]), the probe
//! (the client's protocol header, or the server's connection.start), and
//! the per-connection [`AmqpSession`] (methods, publish and deliver with
//! exchange and routing key, synchronous pairs as calls).
//!
//! [`parser`] reads frames and method arguments, [`session`] frames and
//! pairs. The pipeline finds this module through [`crate::registry`].

pub mod parser;
pub mod session;

pub use session::AmqpSession;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};

/// AMQP's registered port (5672; 5671 is AMQPS, which is TLS first).
pub const PORTS: &[u16] = &[5672];

pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Amqp,
    transports: &[TransportKind::Tcp],
    ports: PORTS,
    probe,
    new_session,
};

/// The client's `AMQP` protocol header, or the server's first frame: a
/// method frame on channel 0 carrying connection.start (class 10,
/// method 10), for connections caught after the header.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    if transport != TransportKind::Tcp {
        return Probe::NoMatch;
    }
    let n = data.len().min(4);
    if data.get(..n) == b"AMQP".get(..n) {
        return if n == 4 {
            Probe::Match {
                from_client: Some(true),
            }
        } else {
            Probe::NeedMore
        };
    }
    // 01 | 0000 | size(4) | 000a 000a
    let start: [Option<u8>; 11] = [
        Some(1),
        Some(0),
        Some(0),
        None,
        None,
        None,
        None,
        Some(0),
        Some(10),
        Some(0),
        Some(10),
    ];
    for (b, want) in data.iter().zip(start) {
        if want.is_some_and(|w| w != *b) {
            return Probe::NoMatch;
        }
    }
    if data.len() < start.len() {
        return Probe::NeedMore;
    }
    match parser::frame_header(data) {
        Some(_) => Probe::Match {
            from_client: Some(false),
        },
        None => Probe::NoMatch,
    }
}

pub fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(AmqpSession::new(ctx.limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::{Emitter, Limits};
    use crate::testutil::hex;
    use trawl_flow::Direction::{ToClient, ToServer};
    use trawl_model::Call;

    #[test]
    fn probe_header_and_connection_start() {
        let tcp = TransportKind::Tcp;
        assert_eq!(
            probe(b"AMQP\x00\x00\x09\x01", tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
        assert_eq!(probe(b"AM", tcp), Probe::NeedMore);
        assert_eq!(
            probe(&hex("01 0000 000001fc 000a 000a 0009"), tcp),
            Probe::Match {
                from_client: Some(false)
            }
        );
        assert_eq!(probe(&hex("01 0001 00000005 0014"), tcp), Probe::NoMatch);
        assert_eq!(probe(b"GET / HTTP/1.1\r\n", tcp), Probe::NoMatch);
        assert_eq!(probe(b"*1\r\n$4\r\nPING\r\n", tcp), Probe::NoMatch);
    }

    fn frame(ty: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![ty];
        f.extend(channel.to_be_bytes());
        f.extend(u32::try_from(payload.len()).unwrap().to_be_bytes());
        f.extend(payload);
        f.push(0xce);
        f
    }

    /// A client that declares queue "hello" (answered by declare-ok) and
    /// publishes "hi" to exchange "logs" with routing key "info".
    fn conversation() -> (Vec<u8>, Vec<u8>, usize) {
        let mut c = b"AMQP\x00\x00\x09\x01".to_vec();
        c.extend(frame(
            1,
            1,
            &hex("0032 000a 0000 05 68656c6c6f 00 00000000"),
        ));
        let split = c.len();
        c.extend(frame(
            1,
            1,
            &hex("003c 0028 0000 04 6c6f6773 04 696e666f 00"),
        ));
        c.extend(frame(2, 1, &hex("003c 0000 0000000000000002 0000")));
        c.extend(frame(3, 1, b"hi"));
        let s = frame(1, 1, &hex("0032 000b 05 68656c6c6f 00000000 00000000"));
        (c, s, split)
    }

    fn run(chunk: usize) -> Vec<Call> {
        // The client's bytes up to `split` (protocol header and the
        // declare) go before the server's answer, the rest after.
        let (c, s, split) = conversation();
        let mut session = AmqpSession::new(Limits::default());
        let mut out = Emitter::new();
        for part in c[..split].chunks(chunk) {
            session.data(ToServer, 1_000, part, &mut out);
        }
        for part in s.chunks(chunk) {
            session.data(ToClient, 3_000, part, &mut out);
        }
        for part in c[split..].chunks(chunk) {
            session.data(ToServer, 5_000, part, &mut out);
        }
        session.close(9_000, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    #[test]
    fn declare_pair_and_publish_with_content_split_anywhere() {
        let calls = run(usize::MAX);
        assert_eq!(calls.len(), 2, "{calls:#?}");
        assert_eq!(calls[0].method, "queue.declare");
        assert_eq!(
            calls[0].attrs.str("amqp_response_method"),
            "queue.declare-ok"
        );
        assert_eq!(calls[0].attrs.str("amqp_queue"), "hello");
        assert!(calls[0].errors.is_empty());
        assert_eq!(calls[1].method, "basic.publish");
        assert_eq!(calls[1].attrs.str("amqp_exchange"), "logs");
        assert_eq!(calls[1].attrs.str("amqp_routing_key"), "info");
        assert_eq!(calls[1].request.body.as_ref().unwrap().data, b"hi");
        assert_eq!(calls[1].attrs.int("amqp_body_size"), 2);
        assert!(calls[1].errors.is_empty(), "{:?}", calls[1].errors);
        for chunk in 1..50 {
            assert_eq!(run(chunk), calls, "chunk {chunk}");
        }
    }
}
