//! Fuzzes the DNS dissector: the message parser and every renderer on the
//! whole input, the probe, and a `DnsSession` fed the input as a sequence
//! of events, then closed. Nothing may panic.
//!
//! Input layout: the first byte picks the transport (bit 0: UDP or TCP)
//! and the session's limits (bits 4-7: max pending queries). The rest is
//! a list of events, each a control byte then, for data, a length byte and
//! that many bytes (fewer at the end of the input). Control byte: bit 7 is
//! the direction; bits 6-5 select data (00, 01), a gap of `bits 0-4 * 7`
//! bytes (10) or the end of the direction (11); bits 0-2 advance packet
//! time by that many seconds, so queries expire mid-stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::dns::{self, DnsSession, parser};
use trawl_dissect::{Direction, Emitter, Limits, Session, SessionContext};
use trawl_flow::TransportKind;

const SECOND: i64 = 1_000_000_000;

fn exercise_parser(bytes: &[u8]) {
    let Ok(msg) = parser::parse_message(bytes) else {
        return;
    };
    let _ = msg.rcode();
    for q in msg.questions() {
        let _ = q.name.to_presentation();
        let _ = parser::type_string(q.qtype);
    }
    let mut out = String::new();
    for r in msg.answers() {
        out.clear();
        r.name.push_to(&mut out);
        if r.push_rdata(&mut out).is_err() {
            parser::push_generic_rdata(r.rdata(), &mut out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let transport = if first & 1 == 0 {
        TransportKind::Udp
    } else {
        TransportKind::Tcp
    };

    exercise_parser(rest);
    // Also the payload behind a TCP length prefix, and the probe both ways.
    exercise_parser(rest.get(2..).unwrap_or_default());
    let _ = dns::probe(rest, TransportKind::Udp);
    let _ = dns::probe(rest, TransportKind::Tcp);

    let limits = Limits {
        max_pending: usize::from(first >> 4),
        ..Limits::default()
    };
    let mut session = DnsSession::new(&SessionContext {
        transport,
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:53".parse().unwrap(),
        limits,
    });
    let mut out = Emitter::new();
    let mut ts: i64 = 1_700_000_000 * SECOND;
    let mut input = rest;
    while let Some((&control, tail)) = input.split_first() {
        input = tail;
        let dir = if control & 0x80 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        ts += i64::from(control & 0x07) * SECOND;
        match (control >> 5) & 0x03 {
            0b10 => session.gap(dir, ts, u64::from(control & 0x1f) * 7, &mut out),
            0b11 => session.end(dir, ts, &mut out),
            _ => {
                let Some((&len, tail)) = input.split_first() else {
                    break;
                };
                let (chunk, tail) = tail.split_at(usize::from(len).min(tail.len()));
                input = tail;
                session.data(dir, ts, chunk, &mut out);
            }
        }
        out.drain_calls().for_each(drop);
        out.drain_anomalies().for_each(drop);
    }
    session.close(ts + SECOND, &mut out);
    out.drain_calls().for_each(drop);
});
