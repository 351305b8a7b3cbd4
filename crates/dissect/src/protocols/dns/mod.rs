//! DNS over UDP and TCP (RFC 1035, RFC 7766), with mDNS (RFC 6762) and
//! LLMNR (RFC 4795), which share the message format: the registry entry
//! ([`PROTOCOL`]), the content probe ([`probe`]), the pure message parser
//! ([`parser`]) and the per-connection session ([`session`]) that pairs
//! queries with responses and emits one call per exchange.
//!
//! Called by the pipeline through [`crate::registry`]; nothing here knows
//! about packets, flows or output.

pub mod parser;
pub mod session;

use trawl_flow::TransportKind;
use trawl_model::Protocol;

use crate::seam::{Probe, ProtocolEntry, Session, SessionContext};
pub use session::DnsSession;

/// DNS on 53, mDNS on 5353, LLMNR on 5355, over UDP and TCP.
pub const PROTOCOL: ProtocolEntry = ProtocolEntry {
    protocol: Protocol::Dns,
    transports: &[TransportKind::Udp, TransportKind::Tcp],
    ports: &[53, 5353, 5355],
    probe,
    new_session,
};

/// Most questions a message may claim and still look like DNS to the
/// probe. Unicast DNS sends one; mDNS queries batch a few per packet
/// (probing several service names), far below this.
const MAX_PROBE_QUESTIONS: u16 = 32;

/// Smallest question on the wire: the root name (1 byte), type and class.
const MIN_QUESTION_LEN: u32 = 5;

/// Smallest resource record: root owner name, type, class, TTL, rdlength.
const MIN_RECORD_LEN: u32 = 11;

/// Is this the start of a DNS message? For UDP, `data` is one datagram;
/// for TCP, the first bytes of a stream (a 2-byte length, then the
/// message). A plausible header (known opcode, Z clear, no rcode on a
/// query, counts that fit the length) and a first question that parses
/// with a known class, or for a response without questions (an mDNS
/// announcement) a first answer record that parses, make a match; the
/// QR bit then tells whether the sender is the client.
pub fn probe(data: &[u8], transport: TransportKind) -> Probe {
    match transport {
        TransportKind::Udp => probe_message(data, data.len()),
        TransportKind::Tcp => {
            let Some((prefix, rest)) = data.split_first_chunk::<2>() else {
                return Probe::NeedMore;
            };
            let len = usize::from(u16::from_be_bytes(*prefix));
            if len < parser::HEADER_LEN {
                return Probe::NoMatch;
            }
            if rest.len() < parser::HEADER_LEN {
                return Probe::NeedMore;
            }
            probe_message(rest.get(..len).unwrap_or(rest), len)
        }
    }
}

/// Probes `msg`, the first bytes of a `len`-byte message (all of it for
/// UDP; for TCP running out of bytes asks for more).
fn probe_message(msg: &[u8], len: usize) -> Probe {
    match plausible(msg, len) {
        Ok(header) => Probe::Match {
            from_client: Some(!header.is_response()),
        },
        Err(Verdict::NeedMore) => Probe::NeedMore,
        Err(Verdict::NoMatch) => Probe::NoMatch,
    }
}

enum Verdict {
    NeedMore,
    NoMatch,
}

/// Checks the header and the first entry of `msg` (which may be a prefix
/// of a `len`-byte message).
fn plausible(msg: &[u8], len: usize) -> Result<parser::Header, Verdict> {
    let h = parser::parse_header(msg).map_err(|_| Verdict::NoMatch)?;
    // Opcode 3 and 7-15 are unassigned; Z is zero; queries carry no rcode.
    if !matches!(h.opcode(), 0..=2 | 4..=6) || h.z() || (!h.is_response() && h.rcode() != 0) {
        return Err(Verdict::NoMatch);
    }
    let records = u32::from(h.ancount) + u32::from(h.nscount) + u32::from(h.arcount);
    let body = u32::try_from(len.saturating_sub(parser::HEADER_LEN)).unwrap_or(u32::MAX);
    if u32::from(h.qdcount) * MIN_QUESTION_LEN + records * MIN_RECORD_LEN > body {
        return Err(Verdict::NoMatch);
    }
    let truncated = |e: parser::DnsError| match e {
        parser::DnsError::Truncated { .. } if msg.len() < len => Verdict::NeedMore,
        _ => Verdict::NoMatch,
    };
    let class = if h.qdcount == 0 {
        if !h.is_response() || h.ancount == 0 {
            return Err(Verdict::NoMatch);
        }
        let (record, _) = parser::read_record(msg, parser::HEADER_LEN).map_err(truncated)?;
        if record.rtype == 0 {
            return Err(Verdict::NoMatch);
        }
        record.class
    } else {
        if h.qdcount > MAX_PROBE_QUESTIONS {
            return Err(Verdict::NoMatch);
        }
        let (question, _) = parser::read_question(msg, parser::HEADER_LEN).map_err(truncated)?;
        if question.qtype == 0 {
            return Err(Verdict::NoMatch);
        }
        question.qclass
    };
    // IN, CH, HS, NONE, ANY; mDNS sets the top bit (unicast response,
    // cache flush).
    if !matches!(class & 0x7fff, 1 | 3 | 4 | 254 | 255) {
        return Err(Verdict::NoMatch);
    }
    Ok(h)
}

fn new_session(ctx: &SessionContext) -> Box<dyn Session> {
    Box::new(DnsSession::new(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    // frame 1 of dns-pcapplusplus-DnsPackets.pcap: query www.google.com A.
    const QUERY: &str = "8185010000010000000000000377777706676f6f676c6503636f6d0000010001";

    #[test]
    fn udp_query_matches_from_client() {
        assert_eq!(
            probe(&hex(QUERY), TransportKind::Udp),
            Probe::Match {
                from_client: Some(true)
            }
        );
    }

    #[test]
    fn udp_response_matches_from_server() {
        // frame 6 of dns-pcapplusplus-DnsPackets.pcap: www.cplusplus.com A response.
        let resp = hex(
            "566281800001000100000000037777770963706c7573706c757303636f6d0000010001\
             c00c000100010000012c0004b8ac6d10",
        );
        assert_eq!(
            probe(&resp, TransportKind::Udp),
            Probe::Match {
                from_client: Some(false)
            }
        );
    }

    #[test]
    fn mdns_announcement_without_questions_matches() {
        // A response with no question and one A record (the shape of an
        // mDNS announcement): yaels-iPhone.local A 10.0.0.2, from the
        // answer of frame 418 of dns-pcapplusplus-DnsPackets.pcap.
        let msg = hex("000084000000000100000000\
             0c5961656c732d6950686f6e65056c6f63616c00 0001 8001 00000078 0004 0a000002");
        assert_eq!(
            probe(&msg, TransportKind::Udp),
            Probe::Match {
                from_client: Some(false)
            }
        );
    }

    #[test]
    fn tcp_needs_the_length_and_header() {
        let q = hex(QUERY);
        let mut tcp = (q.len() as u16).to_be_bytes().to_vec();
        tcp.extend_from_slice(&q);
        for cut in 0..14 {
            assert_eq!(
                probe(&tcp[..cut], TransportKind::Tcp),
                Probe::NeedMore,
                "cut {cut}"
            );
        }
        // Header there, question cut: more is needed, not a refusal.
        assert_eq!(probe(&tcp[..20], TransportKind::Tcp), Probe::NeedMore);
        assert_eq!(
            probe(&tcp, TransportKind::Tcp),
            Probe::Match {
                from_client: Some(true)
            }
        );
    }

    #[test]
    fn other_protocols_do_not_match() {
        for data in [
            &b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00\x00"[..],
            &b"*1\r\n$4\r\nPING\r\n"[..],
            &[0u8; 40][..],
            &[0xffu8; 40][..],
            &b"short"[..],
        ] {
            assert_eq!(probe(data, TransportKind::Udp), Probe::NoMatch, "{data:?}");
            if data.len() >= 14 {
                assert_eq!(probe(data, TransportKind::Tcp), Probe::NoMatch, "{data:?}");
            }
        }
    }

    #[test]
    fn implausible_counts_do_not_match() {
        let mut q = hex(QUERY);
        q[7] = 200; // 200 answers in a 32-byte message
        assert_eq!(probe(&q, TransportKind::Udp), Probe::NoMatch);
    }
}
