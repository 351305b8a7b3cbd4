//! Fuzz target for the HTTP/2 session (and the gRPC reading inside it):
//! the input is a script of events (client or server bytes, gaps,
//! direction ends) fed to one `Http2Session`, which is then closed. It
//! must never panic, whatever the bytes and however they are split. Also
//! runs the content probe.
//!
//! Script: the first byte picks small or default limits (bit 0) and
//! whether the client's bytes start with the connection preface (bit 1),
//! so that the fuzzer starts from known tables as often as mid-stream;
//! then events as in `http1_session`:
//! - `c % 8` in 0..=2: client data, `c / 8` + 1 bytes (at most what is left);
//! - 3..=5: server data, likewise;
//! - 6: a gap of `next byte`² bytes (bit 3 of `c` picks the direction);
//! - 7: the end of a direction (bit 3 picks it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::http2::{self, Http2Session, frame};
use trawl_dissect::{Direction, Emitter, Limits, Session};
use trawl_flow::TransportKind;

fuzz_target!(|data: &[u8]| {
    let _ = http2::probe(data, TransportKind::Tcp);
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let limits = if mode & 1 == 0 {
        Limits {
            max_pending: 2,
            max_head_bytes: 64,
            max_body_bytes: 16,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let mut session = Http2Session::new(limits);
    if mode & 2 != 0 {
        session.data(Direction::ToServer, 0, frame::PREFACE, &mut Emitter::new());
    }
    let mut out = Emitter::new();
    let mut ts = 0i64;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        ts += 1000;
        let dir = if c & 8 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        match c % 8 {
            k @ 0..=5 => {
                let dir = if k < 3 {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                let n = usize::from(c / 8) + 1;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                session.data(dir, ts, chunk, &mut out);
            }
            6 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                session.gap(dir, ts, u64::from(len) * u64::from(len), &mut out);
            }
            _ => session.end(dir, ts, &mut out),
        }
        // Keep memory flat on long inputs, as the pipeline does.
        out.drain_calls().for_each(drop);
        out.drain_anomalies().for_each(drop);
    }
    session.close(ts + 1000, &mut out);
    for (_, call) in out.drain_calls() {
        assert!(call.has_request || call.has_response, "empty call emitted");
    }
});
