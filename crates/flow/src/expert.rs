//! TCP expert analysis and L4 counters of one connection, updated once per
//! segment (or datagram) in capture order, both directions, by the flow
//! table ([`crate::table`]), and read as a [`FlowMetrics`] when the
//! connection leaves the table.
//!
//! The per-segment flags follow the definitions of tshark's
//! `tcp.analysis.*` fields (Wireshark's TCP sequence analysis), so that
//! counts agree with tshark's on the same capture: sequence numbers are
//! relative to each direction's base, a direction's "next sequence
//! number" is the highest end seen, and each flag is one of tshark's tests
//! in tshark's order (zero-window probe, zero window, lost segment,
//! keep-alive, window update, window full, keep-alive ACK, zero-window
//! probe ACK, duplicate ACK; then ACKed-unseen; then fast retransmission,
//! spurious retransmission, out-of-order, retransmission: tshark 4.0 calls
//! a segment whose bytes were all ACKed spurious even when it came soon
//! enough to be out of order).
//!
//! State is fixed-size: data RTT comes from a small ring of the segments
//! each direction has in flight ([`UNACKED_SLOTS`]) instead of tshark's
//! unbounded list, so nothing is allocated per packet.

use trawl_model::flow::{FlowMetrics, completeness};
use trawl_packet::TcpSegment;

use crate::Nanos;

/// Segments per direction remembered for data RTT (a segment → the ACK
/// that ends exactly at its end). tshark keeps every unacknowledged
/// segment; 16 (256 bytes a direction) give tshark's samples on all but
/// one connection of the shared captures (8 missed three; that one had 30
/// in flight, docs/tcp-agreement.md). When more are in flight the oldest
/// is forgotten, so a bulk transfer yields fewer samples, not wrong ones.
pub const UNACKED_SLOTS: usize = 16;

/// How close to the highest segment seen a segment from the past must
/// come to be out-of-order rather than a retransmission, before the
/// handshake gave an RTT: tshark's default of 3 ms.
const DEFAULT_OOO_THRESHOLD: Nanos = 3_000_000;

/// A retransmission within this long after two or more duplicate ACKs
/// for its sequence number is a fast retransmission (tshark's 20 ms).
const FAST_RETRANSMISSION_WINDOW: Nanos = 20_000_000;

/// Per-segment analysis flags ([`Expert::tcp`] returns them), one bit per
/// tshark `tcp.analysis` field.
pub mod flags {
    pub const RETRANSMISSION: u16 = 1 << 0;
    pub const FAST_RETRANSMISSION: u16 = 1 << 1;
    pub const SPURIOUS_RETRANSMISSION: u16 = 1 << 2;
    pub const OUT_OF_ORDER: u16 = 1 << 3;
    pub const LOST_SEGMENT: u16 = 1 << 4;
    pub const ACK_LOST_SEGMENT: u16 = 1 << 5;
    pub const DUPLICATE_ACK: u16 = 1 << 6;
    pub const ZERO_WINDOW: u16 = 1 << 7;
    pub const ZERO_WINDOW_PROBE: u16 = 1 << 8;
    pub const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 9;
    pub const WINDOW_FULL: u16 = 1 << 10;
    pub const WINDOW_UPDATE: u16 = 1 << 11;
    pub const KEEP_ALIVE: u16 = 1 << 12;
    pub const KEEP_ALIVE_ACK: u16 = 1 << 13;
}

fn gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn le(a: u32, b: u32) -> bool {
    !gt(a, b)
}

/// Window scale not known (no SYN seen in that direction).
const SCALE_UNKNOWN: i8 = -1;
/// The handshake was seen and scaling is off (an option missing).
const SCALE_NONE: i8 = -2;

#[derive(Clone, Copy, Debug, Default)]
struct Unacked {
    seq: u32,
    end: u32,
    ts: Nanos,
}

/// One direction's sequence analysis (the sender's side) and counters.
#[derive(Clone, Debug)]
struct Side {
    base: u32,
    base_set: bool,
    /// Relative; 0 until a segment was seen (as in tshark, relative
    /// numbers start at 1 or the SYN's 0 + 1, so 0 means "unset").
    nextseq: u32,
    nextseq_ts: Nanos,
    max_to_be_acked: u32,
    lastack: u32,
    lastack_ts: Nanos,
    window: u16,
    win_scale: i8,
    dupacks: u32,
    last_flags: u16,
    unacked: [Unacked; UNACKED_SLOTS],
    unacked_len: u8,
    packets: u64,
    bytes: u64,
    goodput: u64,
    first_payload_ts: Option<Nanos>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            base: 0,
            base_set: false,
            nextseq: 0,
            nextseq_ts: 0,
            max_to_be_acked: 0,
            lastack: 0,
            lastack_ts: 0,
            window: 0,
            win_scale: SCALE_UNKNOWN,
            dupacks: 0,
            last_flags: 0,
            unacked: [Unacked::default(); UNACKED_SLOTS],
            unacked_len: 0,
            packets: 0,
            bytes: 0,
            goodput: 0,
            first_payload_ts: None,
        }
    }
}

impl Side {
    fn scaled(&self, window: u16) -> u64 {
        match self.win_scale {
            s if s >= 0 => u64::from(window) << s.min(14),
            _ => u64::from(window),
        }
    }

    fn remember(&mut self, seq: u32, end: u32, ts: Nanos) {
        let len = usize::from(self.unacked_len);
        let slot = Unacked { seq, end, ts };
        if len < UNACKED_SLOTS {
            if let Some(u) = self.unacked.get_mut(len) {
                *u = slot;
                self.unacked_len += 1;
            }
        } else {
            // Forget the oldest.
            self.unacked.rotate_left(1);
            if let Some(u) = self.unacked.last_mut() {
                *u = slot;
            }
        }
    }

    /// An ACK from the other side: drop what it covers; the RTT of the
    /// oldest segment it ends exactly at, as tshark's `ack_rtt`.
    fn acked(&mut self, ack: u32, ts: Nanos) -> Option<Nanos> {
        let mut sample = None;
        let mut kept = 0usize;
        let len = usize::from(self.unacked_len).min(UNACKED_SLOTS);
        for i in 0..len {
            let Some(mut u) = self.unacked.get(i).copied() else {
                break;
            };
            let keep = if ack == u.end {
                // The oldest exact match wins (tshark walks newest first
                // and keeps overwriting).
                if sample.is_none() {
                    sample = Some(ts.saturating_sub(u.ts).max(0));
                }
                false
            } else if gt(ack, u.seq) && le(ack, u.end) {
                u.seq = ack;
                true
            } else {
                gt(u.end, ack)
            };
            if keep {
                if let Some(slot) = self.unacked.get_mut(kept) {
                    *slot = u;
                }
                kept += 1;
            }
        }
        self.unacked_len = u8::try_from(kept).unwrap_or(0);
        sample
    }
}

/// The L4 counters and TCP analysis of one connection. Directions are
/// indexed as the flow table's (0 = toward the server it decided on).
#[derive(Clone, Debug)]
pub struct Expert {
    sides: [Side; 2],
    first_ts: Nanos,
    last_ts: Nanos,
    first_syn_ts: Option<Nanos>,
    last_syn_ts: Option<Nanos>,
    /// tshark's `initial_rtt`, once measured.
    first_rtt: Option<Nanos>,
    handshake_time: Option<Nanos>,
    /// Bits of [`completeness`]; the SYN sender's direction.
    completeness: u8,
    syn_dir: Option<usize>,
    /// Who sent the first FIN or RST.
    closer: Option<usize>,
    refused: bool,
    counts: Counts,
    rtt_min: Nanos,
    rtt_max: Nanos,
    rtt_sum: i128,
    rtt_samples: u64,
    rtt_last: Nanos,
    jitter_sum: i128,
    window_sum: u128,
    window_samples: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    retransmissions: u64,
    fast: u64,
    spurious: u64,
    data_segments: u64,
    out_of_order: u64,
    dup_acks: u64,
    lost: u64,
    ack_lost: u64,
    zero_window: u64,
    zero_window_probes: u64,
    window_full: u64,
    window_updates: u64,
    keepalives: u64,
    rst: u64,
    fin: u64,
}

impl Expert {
    pub fn new(first_ts: Nanos) -> Expert {
        Expert {
            sides: [Side::default(), Side::default()],
            first_ts,
            last_ts: first_ts,
            first_syn_ts: None,
            last_syn_ts: None,
            first_rtt: None,
            handshake_time: None,
            completeness: 0,
            syn_dir: None,
            closer: None,
            refused: false,
            counts: Counts::default(),
            rtt_min: Nanos::MAX,
            rtt_max: 0,
            rtt_sum: 0,
            rtt_samples: 0,
            rtt_last: 0,
            jitter_sum: 0,
            window_sum: 0,
            window_samples: 0,
        }
    }

    fn touch(&mut self, ts: Nanos) {
        self.last_ts = self.last_ts.max(ts);
        self.first_ts = self.first_ts.min(ts);
    }

    /// One UDP datagram of `len` payload bytes in direction `dir`.
    pub fn udp(&mut self, dir: usize, ts: Nanos, len: u32) {
        self.touch(ts);
        if let Some(s) = self.sides.get_mut(dir & 1) {
            s.packets += 1;
            s.bytes += u64::from(len);
            s.goodput += u64::from(len);
            if len > 0 && s.first_payload_ts.is_none() {
                s.first_payload_ts = Some(ts);
            }
        }
    }

    /// One TCP segment in direction `dir` (0 or 1); returns its
    /// [`flags`].
    pub fn tcp(&mut self, dir: usize, ts: Nanos, seg: &TcpSegment<'_>) -> u16 {
        self.touch(ts);
        let d = dir & 1;
        let [s0, s1] = &mut self.sides;
        let (fwd, rev) = if d == 0 { (s0, s1) } else { (s1, s0) };
        let f = seg.flags;
        let (syn, fin, rst, has_ack) = (f.syn(), f.fin(), f.rst(), f.ack());
        let seglen = seg.payload_len;
        fwd.packets += 1;
        fwd.bytes += u64::from(seglen);

        // Lifecycle, handshake timing and window scales.
        if syn && !has_ack {
            self.completeness |= completeness::SYN;
            self.first_syn_ts.get_or_insert(ts);
            self.last_syn_ts = Some(ts);
            self.syn_dir.get_or_insert(d);
            fwd.win_scale = window_scale_option(seg.options).unwrap_or(SCALE_NONE);
        } else if syn {
            self.completeness |= completeness::SYN_ACK;
            fwd.win_scale = window_scale_option(seg.options).unwrap_or(SCALE_NONE);
            // RFC 7323 §2.2: scaling is on only if both SYNs offered it.
            if fwd.win_scale == SCALE_NONE || rev.win_scale == SCALE_NONE {
                fwd.win_scale = SCALE_NONE;
                rev.win_scale = SCALE_NONE;
            }
        } else if has_ack {
            if let (None, Some(syn_ts)) = (self.first_rtt, self.last_syn_ts) {
                self.first_rtt = Some(ts.saturating_sub(syn_ts).max(0));
            }
            if self.completeness & completeness::SYN_ACK != 0
                && self.handshake_time.is_none()
                && Some(d) == self.syn_dir
            {
                self.completeness |= completeness::ACK;
                if let Some(t0) = self.first_syn_ts {
                    self.handshake_time = Some(ts.saturating_sub(t0).max(0));
                }
            }
        }
        if seglen > 0 {
            self.completeness |= completeness::DATA;
            self.counts.data_segments += 1;
            if fwd.first_payload_ts.is_none() {
                fwd.first_payload_ts = Some(ts);
            }
        }
        if fin {
            self.completeness |= completeness::FIN;
            self.counts.fin += 1;
            self.closer.get_or_insert(d);
        }
        if rst {
            self.completeness |= completeness::RST;
            self.counts.rst += 1;
            self.closer.get_or_insert(d);
            // Refused: the answer to a SYN is a RST, no SYN-ACK came.
            if self.completeness & completeness::SYN_ACK == 0 && self.syn_dir == Some(1 - d) {
                self.refused = true;
            }
        }
        if has_ack && !syn {
            self.window_sum += u128::from(fwd.scaled(seg.window));
            self.window_samples += 1;
        }

        // Relative sequence numbers, as tshark's analysis sees them.
        if !fwd.base_set {
            fwd.base = if syn {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            };
            fwd.base_set = true;
        }
        if has_ack && !rev.base_set {
            rev.base = seg.ack.wrapping_sub(1);
            rev.base_set = true;
        }
        if syn && !has_ack {
            fwd.base = seg.seq;
        }
        let seq = seg.seq.wrapping_sub(fwd.base);
        let ack = if has_ack {
            seg.ack.wrapping_sub(rev.base)
        } else {
            0
        };
        let window = seg.window;
        let sfr = syn || fin || rst;
        let same_acks = seglen == 0 && seq == fwd.nextseq && ack == fwd.lastack && !sfr;
        let mut fl: u16 = 0;

        let probe = seglen == 1 && seq == fwd.nextseq && rev.window == 0;
        if probe {
            fl |= flags::ZERO_WINDOW_PROBE;
        } else {
            if window == 0 && !sfr {
                fl |= flags::ZERO_WINDOW;
            }
            if fwd.nextseq != 0 && gt(seq, fwd.nextseq) && !rst {
                fl |= flags::LOST_SEGMENT;
            }
            if seglen <= 1 && seq == fwd.nextseq.wrapping_sub(1) && !sfr {
                fl |= flags::KEEP_ALIVE;
            }
            if same_acks && window != 0 && window != fwd.window {
                fl |= flags::WINDOW_UPDATE;
            }
            if seglen > 0 && rev.win_scale != SCALE_UNKNOWN && !sfr {
                let edge = u64::from(rev.lastack) + rev.scaled(rev.window);
                if u64::from(seq.wrapping_add(seglen)) == edge & u64::from(u32::MAX) {
                    fl |= flags::WINDOW_FULL;
                }
            }
            if same_acks && window != 0 && window == fwd.window {
                if rev.last_flags & flags::KEEP_ALIVE != 0 {
                    fl |= flags::KEEP_ALIVE_ACK;
                } else {
                    fwd.dupacks += 1;
                    fl |= flags::DUPLICATE_ACK;
                }
            } else if same_acks
                && window == 0
                && fwd.window == 0
                && rev.last_flags & flags::ZERO_WINDOW_PROBE != 0
            {
                fl |= flags::ZERO_WINDOW_PROBE_ACK;
            }
        }
        if ack != fwd.lastack {
            fwd.dupacks = 0;
        }
        if rev.max_to_be_acked != 0 && gt(ack, rev.max_to_be_acked) && has_ack {
            fl |= flags::ACK_LOST_SEGMENT;
            rev.max_to_be_acked = rev.nextseq;
        }

        let occupies = u32::from(syn || fin);
        if (seglen > 0 || syn || fin) && fl & flags::KEEP_ALIVE == 0 {
            let not_advanced = fwd.nextseq != 0 && lt(seq, fwd.nextseq);
            // tshark 4.0 does not call a segment that starts one byte
            // before the next expected sequence number and carries new
            // bytes past it a retransmission (a keep-alive's shape, with
            // data): seen on the shared captures, frame by frame.
            let keepalive_shape = seq == fwd.nextseq.wrapping_sub(1)
                && gt(seq.wrapping_add(seglen).wrapping_add(occupies), fwd.nextseq);
            let since_ack = ts.saturating_sub(rev.lastack_ts);
            let since_next = ts.saturating_sub(fwd.nextseq_ts);
            let ooo_threshold = self.first_rtt.unwrap_or(DEFAULT_OOO_THRESHOLD);
            if not_advanced
                && rev.dupacks >= 2
                && rev.lastack == seq
                && since_ack < FAST_RETRANSMISSION_WINDOW
            {
                fl |= flags::FAST_RETRANSMISSION | flags::RETRANSMISSION;
            } else if seglen > 0 && rev.lastack != 0 && le(seq.wrapping_add(seglen), rev.lastack) {
                // All of it was ACKed already.
                fl |= flags::SPURIOUS_RETRANSMISSION | flags::RETRANSMISSION;
            } else if not_advanced
                && since_next < ooo_threshold
                && fwd.nextseq != seq.wrapping_add(seglen).wrapping_add(occupies)
            {
                fl |= flags::OUT_OF_ORDER;
            } else if not_advanced && !keepalive_shape {
                fl |= flags::RETRANSMISSION;
            }
        }

        let end = seq.wrapping_add(seglen).wrapping_add(occupies);
        if seglen > 0 || syn || fin {
            fwd.remember(seq, end, ts);
        }
        if fl & flags::ZERO_WINDOW_PROBE == 0 {
            if gt(end, fwd.nextseq) || fwd.nextseq == 0 {
                fwd.nextseq = end;
                fwd.nextseq_ts = ts;
            }
            if seq == fwd.max_to_be_acked || fwd.max_to_be_acked == 0 {
                fwd.max_to_be_acked = fwd.nextseq;
            }
        }
        fwd.window = window;
        fwd.lastack = ack;
        fwd.lastack_ts = ts;
        fwd.last_flags = fl;
        if fl & flags::RETRANSMISSION == 0 {
            fwd.goodput += u64::from(seglen);
        }
        // tshark walks the other side's unacknowledged segments with the
        // ACK field even when the ACK flag is off (a SYN's field, usually
        // 0, then drops segments by plain sequence comparison); done the
        // same so that the same samples remain.
        let walk_ack = if has_ack {
            Some(ack)
        } else {
            rev.base_set.then(|| seg.ack.wrapping_sub(rev.base))
        };
        if let Some(a) = walk_ack
            && let Some(rtt) = rev.acked(a, ts)
        {
            self.rtt_sample(rtt);
        }
        self.count(fl);
        fl
    }

    fn rtt_sample(&mut self, rtt: Nanos) {
        if self.rtt_samples > 0 {
            self.jitter_sum += i128::from(rtt.abs_diff(self.rtt_last));
        }
        self.rtt_last = rtt;
        self.rtt_samples += 1;
        self.rtt_sum += i128::from(rtt);
        self.rtt_min = self.rtt_min.min(rtt);
        self.rtt_max = self.rtt_max.max(rtt);
    }

    fn count(&mut self, fl: u16) {
        let c = &mut self.counts;
        let bit = |b: u16| u64::from(fl & b != 0);
        c.retransmissions += bit(flags::RETRANSMISSION);
        c.fast += bit(flags::FAST_RETRANSMISSION);
        c.spurious += bit(flags::SPURIOUS_RETRANSMISSION);
        c.out_of_order += bit(flags::OUT_OF_ORDER);
        c.dup_acks += bit(flags::DUPLICATE_ACK);
        c.lost += bit(flags::LOST_SEGMENT);
        c.ack_lost += bit(flags::ACK_LOST_SEGMENT);
        c.zero_window += bit(flags::ZERO_WINDOW);
        c.zero_window_probes += bit(flags::ZERO_WINDOW_PROBE);
        c.window_full += bit(flags::WINDOW_FULL);
        c.window_updates += bit(flags::WINDOW_UPDATE);
        c.keepalives += bit(flags::KEEP_ALIVE);
    }

    /// First and last packet seen.
    pub fn span(&self) -> (Nanos, Nanos) {
        (self.first_ts, self.last_ts)
    }

    /// The metrics, with direction `client_dir` taken as the client's
    /// (the flow table's 0, or 1 when content showed the roles backwards).
    /// `tcp` says whether the TCP fields apply.
    pub fn metrics(&self, client_dir: usize, tcp: bool) -> FlowMetrics {
        let c = client_dir & 1;
        let [a, b] = &self.sides;
        let (cs, ss) = if c == 0 { (a, b) } else { (b, a) };
        let us = |n: Nanos| n / 1_000;
        let mut m = FlowMetrics {
            client_packets: cs.packets,
            client_bytes: cs.bytes,
            server_packets: ss.packets,
            server_bytes: ss.bytes,
            connection_time_us: us(self.last_ts.saturating_sub(self.first_ts)),
            goodput_bytes: cs.goodput + ss.goodput,
            ..FlowMetrics::default()
        };
        if let (Some(q), Some(r)) = (cs.first_payload_ts, ss.first_payload_ts)
            && r >= q
        {
            m.time_to_first_byte_us = us(r - q);
        }
        if !tcp {
            return m;
        }
        let k = &self.counts;
        m.retransmissions = k.retransmissions;
        m.fast_retransmissions = k.fast;
        m.spurious_retransmissions = k.spurious;
        m.data_segments = k.data_segments;
        m.out_of_order = k.out_of_order;
        m.dup_acks = k.dup_acks;
        m.missing_segments = k.lost;
        m.acked_unseen_segments = k.ack_lost;
        m.zero_window_events = k.zero_window;
        m.zero_window_probes = k.zero_window_probes;
        m.window_full_events = k.window_full;
        m.window_updates = k.window_updates;
        m.keepalive_count = k.keepalives;
        m.rst_count = k.rst;
        m.fin_count = k.fin;
        let scale = |s: &Side| match s.win_scale {
            SCALE_UNKNOWN => -1,
            SCALE_NONE => 0,
            n => i64::from(n),
        };
        m.window_scale = scale(cs);
        m.server_window_scale = scale(ss);
        if self.window_samples > 0 {
            let avg = self.window_sum / u128::from(self.window_samples);
            m.avg_receive_window = u64::try_from(avg).unwrap_or(u64::MAX);
        }
        m.connection_completeness = self.completeness;
        m.initial_rtt_us = self.first_rtt.map_or(0, us);
        m.handshake_time_us = self.handshake_time.map_or(0, us);
        if self.rtt_samples > 0 {
            let n = i128::from(self.rtt_samples);
            m.rtt_samples = self.rtt_samples;
            m.rtt_min_us = us(self.rtt_min);
            m.rtt_max_us = us(self.rtt_max);
            m.rtt_avg_us = us(i64::try_from(self.rtt_sum / n).unwrap_or(i64::MAX));
            if self.rtt_samples > 1 {
                let j = self.jitter_sum / (n - 1);
                m.jitter_us = us(i64::try_from(j).unwrap_or(i64::MAX));
            }
        }
        m.closed_by = match self.closer {
            Some(d) if d == c => "client",
            Some(_) => "server",
            None => "",
        };
        let bits = self.completeness;
        m.handshake = if bits & completeness::SYN == 0 {
            if bits & completeness::SYN_ACK != 0 && bits & completeness::ACK != 0 {
                "complete"
            } else {
                "none"
            }
        } else if self.refused {
            "refused"
        } else if bits & completeness::SYN_ACK == 0 {
            "unanswered"
        } else if bits & completeness::ACK != 0 {
            "complete"
        } else {
            "incomplete"
        };
        m
    }
}

/// The shift of a SYN's window scale option (kind 3, RFC 7323), capped at
/// 14 as the RFC says; `None` when absent or the options are malformed.
fn window_scale_option(mut opts: &[u8]) -> Option<i8> {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return None,
            1 => opts = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if kind == 3 && len == 3 {
                    let shift = *opts.get(2)?;
                    return Some(i8::try_from(shift.min(14)).unwrap_or(14));
                }
                opts = opts.get(len..)?;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_packet::TcpFlags;

    const MS: Nanos = 1_000_000;
    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;
    const RST: u8 = TcpFlags::RST;

    fn seg(seq: u32, ack: u32, fl: u8, win: u16, len: u32) -> TcpSegment<'static> {
        TcpSegment {
            src_port: 0,
            dst_port: 0,
            seq,
            ack,
            flags: TcpFlags(fl),
            window: win,
            options: &[],
            payload: &[],
            payload_len: len,
        }
    }

    /// A handshake at t = 0, 10, 11 ms: client ISN 1000, server ISN 5000.
    fn handshake(e: &mut Expert) {
        e.tcp(0, 0, &seg(1000, 0, SYN, 1000, 0));
        e.tcp(1, 10 * MS, &seg(5000, 1001, SYN | ACK, 1000, 0));
        e.tcp(0, 11 * MS, &seg(1001, 5001, ACK, 1000, 0));
    }

    #[test]
    fn handshake_rtt_data_rtt_and_clean_close() {
        let mut e = Expert::new(0);
        handshake(&mut e);
        assert_eq!(e.tcp(0, 12 * MS, &seg(1001, 5001, ACK, 1000, 100)), 0);
        assert_eq!(e.tcp(1, 22 * MS, &seg(5001, 1101, ACK, 1000, 200)), 0);
        e.tcp(0, 40 * MS, &seg(1101, 5201, ACK, 1000, 0));
        e.tcp(0, 41 * MS, &seg(1101, 5201, FIN | ACK, 1000, 0));
        e.tcp(1, 42 * MS, &seg(5201, 1102, FIN | ACK, 1000, 0));
        e.tcp(0, 43 * MS, &seg(1102, 5202, ACK, 1000, 0));
        let m = e.metrics(0, true);
        assert_eq!(m.initial_rtt_us, 11_000);
        assert_eq!(m.handshake_time_us, 11_000);
        assert_eq!(m.time_to_first_byte_us, 10_000);
        // SYN-ACK 10 ms, ACK of SYN-ACK 1 ms, 100 bytes 10 ms, 200 bytes
        // 18 ms, FIN 1 ms, FIN 1 ms.
        assert_eq!(m.rtt_samples, 6);
        assert_eq!((m.rtt_min_us, m.rtt_max_us), (1_000, 18_000));
        assert_eq!(m.rtt_avg_us, (10 + 1 + 10 + 18 + 1 + 1) * 1_000 / 6);
        assert_eq!(m.connection_completeness, 31);
        assert_eq!((m.fin_count, m.rst_count, m.closed_by), (2, 0, "client"));
        assert_eq!(m.handshake, "complete");
        assert_eq!((m.client_packets, m.client_bytes), (6, 100));
        assert_eq!((m.server_packets, m.server_bytes), (3, 200));
        assert_eq!(m.goodput_bytes, 300);
        assert_eq!(m.retransmissions + m.dup_acks + m.out_of_order, 0);
    }

    #[test]
    fn retransmission_and_dup_acks_and_fast_retransmission() {
        let mut e = Expert::new(0);
        handshake(&mut e);
        e.tcp(0, 20 * MS, &seg(1001, 5001, ACK, 1000, 100));
        // Sent again 200 ms later: a retransmission.
        let f = e.tcp(0, 220 * MS, &seg(1001, 5001, ACK, 1000, 100));
        assert_eq!(f, flags::RETRANSMISSION);
        // 1101 lost: 1201 arrives, the server ACKs 1101 three times.
        e.tcp(0, 230 * MS, &seg(1201, 5001, ACK, 1000, 100));
        e.tcp(1, 240 * MS, &seg(5001, 1101, ACK, 1000, 0));
        assert_eq!(
            e.tcp(1, 241 * MS, &seg(5001, 1101, ACK, 1000, 0)),
            flags::DUPLICATE_ACK
        );
        assert_eq!(
            e.tcp(1, 242 * MS, &seg(5001, 1101, ACK, 1000, 0)),
            flags::DUPLICATE_ACK
        );
        let f = e.tcp(0, 250 * MS, &seg(1101, 5001, ACK, 1000, 100));
        assert_eq!(f, flags::FAST_RETRANSMISSION | flags::RETRANSMISSION);
        let m = e.metrics(0, true);
        assert_eq!(m.retransmissions, 2);
        assert_eq!(m.fast_retransmissions, 1);
        assert_eq!(m.dup_acks, 2);
        assert_eq!(m.missing_segments, 1, "1201 came past the next expected");
        assert_eq!(m.goodput_bytes, 200);
        assert_eq!(m.data_segments, 4);
        assert!((m.retransmission_rate() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn out_of_order_zero_window_keepalive_and_refused() {
        let mut e = Expert::new(0);
        handshake(&mut e);
        // 1101 overtakes 1001 by 1 ms (threshold is the 11 ms initial RTT).
        e.tcp(0, 20 * MS, &seg(1101, 5001, ACK, 1000, 100));
        let f = e.tcp(0, 21 * MS, &seg(1001, 5001, ACK, 1000, 100));
        assert_eq!(f, flags::OUT_OF_ORDER);
        let f = e.tcp(1, 30 * MS, &seg(5001, 1201, ACK, 0, 0));
        assert_eq!(f, flags::ZERO_WINDOW);
        let f = e.tcp(0, 5_000 * MS, &seg(1200, 5001, ACK, 1000, 0));
        assert_eq!(f, flags::KEEP_ALIVE);

        let mut r = Expert::new(0);
        r.tcp(0, 0, &seg(7, 0, SYN, 1000, 0));
        r.tcp(1, MS, &seg(0, 8, RST | ACK, 0, 0));
        let m = r.metrics(0, true);
        assert_eq!(
            (m.handshake, m.rst_count, m.closed_by),
            ("refused", 1, "server")
        );
        assert_eq!(m.connection_completeness, 1 | 32);
        assert_eq!(
            m.zero_window_events, 0,
            "RST windows are not zero-window events"
        );

        let mut u = Expert::new(0);
        u.tcp(0, 0, &seg(7, 0, SYN, 1000, 0));
        assert_eq!(
            u.tcp(0, 1_000 * MS, &seg(7, 0, SYN, 1000, 0)),
            flags::RETRANSMISSION
        );
        assert_eq!(u.metrics(0, true).handshake, "unanswered");
    }

    #[test]
    fn window_scale_option_is_read_and_applied() {
        // MSS, SACK permitted, NOP, window scale 7.
        let opts = [2, 4, 5, 0xb4, 4, 2, 1, 3, 3, 7];
        assert_eq!(window_scale_option(&opts), Some(7));
        assert_eq!(window_scale_option(&[2, 4, 5]), None, "cut option");
        assert_eq!(window_scale_option(&[3, 3, 20]), Some(14));
        let mut e = Expert::new(0);
        let mut s = seg(1, 0, SYN, 100, 0);
        s.options = &opts;
        e.tcp(0, 0, &s);
        s = seg(9, 2, SYN | ACK, 100, 0);
        s.options = &opts;
        e.tcp(1, MS, &s);
        e.tcp(0, 2 * MS, &seg(2, 10, ACK, 100, 0));
        let m = e.metrics(0, true);
        assert_eq!((m.window_scale, m.server_window_scale), (7, 7));
        assert_eq!(m.avg_receive_window, 100 << 7);
    }

    #[test]
    fn swapped_roles_swap_the_directional_fields() {
        let mut e = Expert::new(0);
        e.udp(0, 0, 10);
        e.udp(1, 5 * MS, 30);
        e.udp(1, 6 * MS, 30);
        let m = e.metrics(1, false);
        assert_eq!((m.client_packets, m.client_bytes), (2, 60));
        assert_eq!((m.server_packets, m.server_bytes), (1, 10));
        assert_eq!(m.connection_time_us, 6_000);
        assert_eq!(m.handshake, "");
        assert_eq!(m.time_to_first_byte_us, 0, "the server spoke first");
    }
}
