//! Fuzz target for the WebSocket session: the input is a script of
//! events (client or server bytes, gaps, direction ends) fed to one
//! `WsSession`, which is then closed. It must never panic, whatever the
//! bytes and however they are split.
//!
//! Script: the first byte picks small or default limits (bit 0) and
//! whether permessage-deflate was agreed (bit 1); then events as in
//! `http1_session`:
//! - `c % 8` in 0..=2: client data, `c / 8` + 1 bytes (at most what is left);
//! - 3..=5: server data, likewise;
//! - 6: a gap of `next byte`² bytes (bit 3 of `c` picks the direction);
//! - 7: the end of a direction (bit 3 picks it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::websocket::WsSession;
use trawl_dissect::{Direction, Emitter, Limits, Session};

fuzz_target!(|data: &[u8]| {
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
    let mut session = WsSession::new(limits, "/", mode & 2 != 0);
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
