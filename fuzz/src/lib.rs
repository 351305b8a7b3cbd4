//! What the session fuzz targets share: reading the input as a script of
//! events (client or server bytes, gaps, direction ends) fed to one TCP
//! session, which is then closed. It must never panic, whatever the bytes
//! and however they are split. The content probe runs on the input too.
//!
//! Script: the first byte picks small or default limits; then each event
//! is a control byte `c` followed by its argument:
//! - `c % 8` in 0..=2: client data, `c / 8` + 1 bytes (at most what is left);
//! - 3..=5: server data, likewise;
//! - 6: a gap of `next byte`² bytes (bit 3 of `c` picks the direction);
//! - 7: the end of a direction (bit 3 picks it).

use trawl_dissect::{Direction, Emitter, Limits, Probe, Session};
use trawl_flow::TransportKind;

/// Runs `data` as a script against the session `new` makes, after showing
/// it to `probe`.
pub fn tcp_session_script<S: Session>(
    data: &[u8],
    probe: fn(&[u8], TransportKind) -> Probe,
    new: impl FnOnce(Limits) -> S,
) {
    tcp_session_script_with(data, Some(probe), |limits, _, _| new(limits));
}

/// [`tcp_session_script`] for sessions that need more than limits: `new`
/// also gets the first byte (bit 0 picks the limits; the other bits are
/// the target's, e.g. to start from a known state) and the emitter, to
/// feed the session a prologue before the script.
pub fn tcp_session_script_with<S: Session>(
    data: &[u8],
    probe: Option<fn(&[u8], TransportKind) -> Probe>,
    new: impl FnOnce(Limits, u8, &mut Emitter) -> S,
) {
    if let Some(probe) = probe {
        let _ = probe(data, TransportKind::Tcp);
    }
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    // Small limits reach the caps (head, body, pending) with small inputs.
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
    let mut out = Emitter::new();
    let mut session = new(limits, mode, &mut out);
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
}
