//! TCP reassembly of one direction of one connection: turns segments in
//! capture order into that direction's bytes in sequence order, with
//! explicit gaps where bytes were never captured, and an end at the FIN.
//!
//! In-order data goes straight from the packet to the [`StreamSink`]
//! without a copy; only segments that arrive ahead of a hole are copied
//! into a per-direction buffer, which is charged against the per-direction
//! and the table-wide byte caps. Bytes already delivered are never
//! delivered again, and where two copies of a byte disagree the first one
//! received wins. Positions are kept as 64-bit offsets from the start of
//! the direction, so the 32-bit sequence wrap only matters when a segment's
//! sequence number is turned into an offset (modulo 2^32, relative to the
//! next expected byte).
//!
//! A [`Reassembler`] decides nothing about time or memory pressure on its
//! own: the flow table ([`crate::table`]) owns the clock and the caps, and
//! tells it when to give up on a hole (gap timeout, ACK beyond the hole,
//! total cap, end of input).

use std::collections::BTreeMap;

use crate::table::FlowStats;
use crate::{EndKind, Nanos};

/// Farthest ahead of the next expected byte a segment may end and still be
/// buffered or delivered. Real receive windows top out at 1 GiB (window
/// scale 14 × 65535 bytes, RFC 7323), so anything beyond is not this
/// stream's data (a stale segment from before a wrap, a forged or broken
/// packet) and is dropped and counted rather than turned into a huge gap.
pub const MAX_AHEAD: u64 = 1 << 30;

/// Bytes charged for each buffered chunk on top of its payload: the B-tree
/// slot, the `Vec` header and the allocator's rounding. Without it a flood
/// of 1-byte segments would hold tens of times the configured cap.
pub const CHUNK_OVERHEAD: usize = 64;

/// Where a direction's reassembled bytes go. The flow table implements it
/// over a [`crate::FlowHandler`]; tests implement it over a recorder.
pub trait StreamSink {
    /// The next in-order bytes.
    fn data(&mut self, data: &[u8]);
    /// `len` bytes that were never captured (or were given up on).
    fn gap(&mut self, len: u64);
    /// The stream ended; no more calls follow for this direction.
    fn end(&mut self, how: EndKind);
}

/// Shared accounting a reassembler updates: counters, and the bytes every
/// direction of the table holds, so the table can enforce its total cap.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// Packet time of the operation (stamps buffered chunks).
    pub now: Nanos,
    /// Per-direction cap on charged buffered bytes.
    pub max_buffered: usize,
    pub stats: &'a mut FlowStats,
    /// Charged bytes buffered across the whole table.
    pub total_buffered: &'a mut usize,
}

/// One buffered piece of the stream: bytes copied from a segment that came
/// ahead of a hole, or a stretch the snap length cut off (known missing).
#[derive(Debug)]
struct Chunk {
    arrived: Nanos,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Data(Vec<u8>),
    Missing(u64),
}

impl Chunk {
    fn len(&self) -> u64 {
        match &self.body {
            Body::Data(d) => d.len() as u64,
            Body::Missing(n) => *n,
        }
    }

    fn charge(&self) -> usize {
        match &self.body {
            Body::Data(d) => d.len().saturating_add(CHUNK_OVERHEAD),
            Body::Missing(_) => CHUNK_OVERHEAD,
        }
    }
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Reassembler {
    started: bool,
    ended: bool,
    /// Initial sequence number, when the direction's SYN (or the peer's
    /// SYN-ACK acknowledging it) was seen: tells a retransmitted SYN from a
    /// new connection on the same ports.
    isn: Option<u32>,
    /// Sequence number of offset 0.
    base: u32,
    /// Offset of the next byte to hand out: everything before it was
    /// delivered as data or as a gap.
    delivered: u64,
    /// Offset of the FIN, once seen.
    fin: Option<u64>,
    fin_arrived: Nanos,
    /// Out-of-order pieces by start offset; never overlapping, all after
    /// `delivered`.
    chunks: BTreeMap<u64, Chunk>,
    /// Charged bytes in `chunks`.
    buffered: usize,
}

/// Waiting state the flow table watches to keep its gap timers: whether
/// the direction waits on a hole, and how far it has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub waiting: bool,
    pub delivered: u64,
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Fix the sequence number of the direction's first byte; `isn` when
    /// it comes from a handshake (`next_seq` is then `isn + 1`).
    pub fn start(&mut self, next_seq: u32, isn: Option<u32>) {
        if !self.started {
            self.started = true;
            self.base = next_seq;
            self.isn = isn;
        }
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    /// The direction's stream ended (FIN reached, or reset).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn isn(&self) -> Option<u32> {
        self.isn
    }

    /// Bytes delivered so far (data and gaps).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Charged bytes held for out-of-order data.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// True while bytes are missing before data or a FIN we hold.
    pub fn is_waiting(&self) -> bool {
        !self.ended && (!self.chunks.is_empty() || self.fin.is_some_and(|f| f > self.delivered))
    }

    pub fn progress(&self) -> Progress {
        Progress {
            waiting: self.is_waiting(),
            delivered: self.delivered,
        }
    }

    /// Sequence number of the next byte to deliver.
    fn next_seq(&self) -> u32 {
        // Truncation intended: sequence space is modulo 2^32.
        let low = self.delivered as u32;
        self.base.wrapping_add(low)
    }

    /// Offset of `seq` relative to the next expected byte, modulo 2^32:
    /// negative is before it (old), positive after it.
    fn offset_of(&self, seq: u32) -> i64 {
        // Reinterpreting as signed is the point: distance modulo 2^32.
        let d = seq.wrapping_sub(self.next_seq()) as i32;
        i64::from(d)
    }

    /// One segment of this direction. `seq` is the sequence number of its
    /// first data byte (after the SYN, if any), `payload` the captured data
    /// and `wire_len` the data length on the wire (larger when the snap
    /// length cut the segment: the missing tail becomes a gap).
    pub fn segment<K: StreamSink>(
        &mut self,
        seq: u32,
        payload: &[u8],
        wire_len: u32,
        fin: bool,
        cx: &mut Ctx<'_>,
        sink: &mut K,
    ) {
        if !self.started {
            self.start(seq, None);
        }
        let captured = payload.len() as u64;
        let wire_len = u64::from(wire_len).max(captured);
        let offset = self.offset_of(seq);
        let delivered = i64::try_from(self.delivered).unwrap_or(i64::MAX);
        let len = i64::try_from(wire_len).unwrap_or(i64::MAX);
        // Ends relative to `delivered`: the window check and old-data test.
        let end_ahead = offset.saturating_add(len);
        if end_ahead > MAX_AHEAD as i64 {
            cx.stats.out_of_window_segments += 1;
            return;
        }
        if self.ended {
            if wire_len > 0 {
                if end_ahead <= 0 {
                    cx.stats.retransmitted_segments += 1;
                } else {
                    cx.stats.out_of_window_segments += 1;
                }
            }
            return;
        }

        // The fast path: the next expected bytes, nothing buffered, no FIN
        // pending before them. Delivered straight from the packet.
        if offset == 0 && self.chunks.is_empty() && self.fin.is_none() {
            if !payload.is_empty() {
                sink.data(payload);
            }
            let missing = wire_len.saturating_sub(captured);
            if missing > 0 {
                emit_gap(missing, cx, sink);
            }
            self.delivered = self.delivered.saturating_add(wire_len);
            if fin {
                self.fin = Some(self.delivered);
                self.fin_arrived = cx.now;
                self.check_fin(cx, sink);
            }
            return;
        }

        let start = delivered.saturating_add(offset);
        let mut end = start.saturating_add(len);
        if fin && self.fin.is_none() {
            // A FIN before bytes already delivered is bogus; the stream
            // ends where it stands rather than going backwards.
            let at = u64::try_from(end).unwrap_or(0).max(self.delivered);
            self.fin = Some(at);
            self.fin_arrived = cx.now;
        }
        if let Some(f) = self.fin {
            // Bytes past the FIN are not part of the stream.
            end = end.min(i64::try_from(f).unwrap_or(i64::MAX));
        }
        if wire_len > 0 && end <= start {
            // Entirely past the FIN.
            cx.stats.out_of_window_segments += 1;
            return;
        }
        if wire_len > 0 && end <= delivered {
            cx.stats.retransmitted_segments += 1;
            self.check_fin(cx, sink);
            return;
        }
        let data_end = start.saturating_add(i64::try_from(captured).unwrap_or(i64::MAX));
        let end = u64::try_from(end).unwrap_or(0);
        let mut cursor = u64::try_from(start.max(delivered)).unwrap_or(0);
        let mut overlapped = start < delivered;
        let mut new_bytes: u64 = 0;
        let mut buffered_any = false;
        let mut cap_hit = false;

        while cursor < end {
            if cursor < self.delivered {
                overlapped = true;
                cursor = self.delivered;
                continue;
            }
            // Bytes some earlier copy already supplied: the first copy wins.
            if let Some((&cs, c)) = self.chunks.range(..=cursor).next_back() {
                let ce = cs.saturating_add(c.len());
                if ce > cursor {
                    overlapped = true;
                    cursor = ce;
                    continue;
                }
            }
            let next = self
                .chunks
                .range(cursor..)
                .next()
                .map_or(u64::MAX, |(&s, _)| s);
            let piece_end = end.min(next);
            let piece = Piece {
                payload,
                start,
                data_end,
                from: cursor,
                to: piece_end,
            };
            if cursor == self.delivered {
                piece.deliver(cx, sink);
                new_bytes = new_bytes.saturating_add(piece_end - cursor);
                self.delivered = piece_end;
                cursor = piece_end;
                self.drain(cx, sink);
                continue;
            }
            // Ahead of a hole: buffer a copy, within the caps.
            let charge = piece.charge();
            if self.buffered.saturating_add(charge) > cx.max_buffered {
                if !cap_hit {
                    cap_hit = true;
                    cx.stats.buffer_cap_hits += 1;
                }
                // Give up on the hole in front (or on the bytes up to this
                // piece); this frees buffered chunks or lets the piece be
                // delivered directly. `delivered` strictly grows.
                self.give_up_next_hole(cursor, cx, sink);
                continue;
            }
            self.buffer(piece, cx);
            buffered_any = true;
            new_bytes = new_bytes.saturating_add(piece_end - cursor);
            cursor = piece_end;
        }

        if wire_len > 0 {
            if new_bytes == 0 {
                cx.stats.retransmitted_segments += 1;
            } else if overlapped {
                cx.stats.overlapping_segments += 1;
            }
            if buffered_any {
                cx.stats.out_of_order_segments += 1;
            }
        }
        self.check_fin(cx, sink);
    }

    /// The peer acknowledged everything before `ack`: bytes it received
    /// that the capture missed. Holes before `ack` are given up on at
    /// once. Only holes before data or a FIN we hold are filled; bytes past
    /// everything we hold may still be in flight to the capture point.
    pub fn acked<K: StreamSink>(&mut self, ack: u32, cx: &mut Ctx<'_>, sink: &mut K) {
        if !self.started || !self.is_waiting() {
            return;
        }
        let off = self.offset_of(ack);
        if off <= 0 || off as u64 > MAX_AHEAD {
            return;
        }
        let target = self.delivered.saturating_add(off as u64);
        while !self.ended && self.delivered < target && self.is_waiting() {
            self.give_up_next_hole(target, cx, sink);
        }
    }

    /// The table's gap timer fired: the stream has made no progress for
    /// the gap timeout while holding data. The front hole is given up on,
    /// then every further hole whose following data (or FIN) arrived at
    /// least `timeout` before `now`.
    pub fn expire_holes<K: StreamSink>(&mut self, timeout: Nanos, cx: &mut Ctx<'_>, sink: &mut K) {
        if !self.is_waiting() {
            return;
        }
        self.give_up_next_hole(u64::MAX, cx, sink);
        let cutoff = cx.now.saturating_sub(timeout);
        while self.is_waiting() {
            let arrived = match self.chunks.first_key_value() {
                Some((_, c)) => c.arrived,
                None => self.fin_arrived,
            };
            if arrived > cutoff {
                break;
            }
            self.give_up_next_hole(u64::MAX, cx, sink);
        }
    }

    /// Give up on the front hole only (the table's total cap).
    pub fn give_up_front_hole<K: StreamSink>(&mut self, cx: &mut Ctx<'_>, sink: &mut K) {
        if self.is_waiting() {
            self.give_up_next_hole(u64::MAX, cx, sink);
        }
    }

    /// Deliver everything held, with gaps for the holes; end with the FIN
    /// if one was seen. Used when the connection leaves the table.
    pub fn flush<K: StreamSink>(&mut self, cx: &mut Ctx<'_>, sink: &mut K) {
        while self.is_waiting() {
            self.give_up_next_hole(u64::MAX, cx, sink);
        }
    }

    /// A RST: deliver what is held (with gaps), then end the stream.
    pub fn reset<K: StreamSink>(&mut self, cx: &mut Ctx<'_>, sink: &mut K) {
        self.flush(cx, sink);
        if !self.ended {
            self.end_stream(cx);
            sink.end(EndKind::Rst);
        }
    }

    /// Gap from `delivered` to the next thing held (a chunk or the FIN),
    /// but not past `limit`; then deliver what became contiguous. With
    /// nothing held, gap up to `limit` (when finite).
    fn give_up_next_hole<K: StreamSink>(&mut self, limit: u64, cx: &mut Ctx<'_>, sink: &mut K) {
        let held = match (self.chunks.first_key_value(), self.fin) {
            (Some((&s, _)), Some(f)) => Some(s.min(f)),
            (Some((&s, _)), None) => Some(s),
            (None, Some(f)) => Some(f),
            (None, None) => None,
        };
        let to = match held {
            Some(h) => h.min(limit),
            None if limit != u64::MAX => limit,
            None => return,
        };
        if to > self.delivered {
            emit_gap(to - self.delivered, cx, sink);
            self.delivered = to;
        }
        self.drain(cx, sink);
    }

    /// Deliver the chunks that now start at `delivered`, then end the
    /// stream if the FIN was reached.
    fn drain<K: StreamSink>(&mut self, cx: &mut Ctx<'_>, sink: &mut K) {
        // Chunks buffered before the FIN was seen may reach past it; the
        // stream stops at the FIN.
        let limit = self.fin.unwrap_or(u64::MAX);
        while let Some(entry) = self.chunks.first_entry() {
            let start = *entry.key();
            if start > self.delivered || start >= limit {
                break;
            }
            let chunk = entry.remove();
            self.release(chunk.charge(), cx);
            let end = start.saturating_add(chunk.len()).min(limit);
            if end <= self.delivered {
                continue;
            }
            // Chunks never start before `delivered`; trimming is defensive.
            let skip = self.delivered - start;
            let keep = end - self.delivered;
            match &chunk.body {
                Body::Data(d) => {
                    let part = usize::try_from(skip)
                        .ok()
                        .zip(usize::try_from(keep).ok())
                        .and_then(|(s, k)| d.get(s..s.saturating_add(k)))
                        .unwrap_or(&[]);
                    if !part.is_empty() {
                        sink.data(part);
                    }
                }
                Body::Missing(_) => emit_gap(keep, cx, sink),
            }
            self.delivered = end;
        }
        self.check_fin(cx, sink);
    }

    fn check_fin<K: StreamSink>(&mut self, cx: &mut Ctx<'_>, sink: &mut K) {
        if !self.ended && self.fin.is_some_and(|f| self.delivered >= f) {
            // Anything still buffered lies past the FIN: not stream data.
            self.end_stream(cx);
            sink.end(EndKind::Fin);
        }
    }

    /// Mark the stream ended and drop what it holds.
    fn end_stream(&mut self, cx: &mut Ctx<'_>) {
        self.ended = true;
        self.drop_chunks(cx);
    }

    fn drop_chunks(&mut self, cx: &mut Ctx<'_>) {
        let charge = self.buffered;
        self.chunks.clear();
        self.release(charge, cx);
    }

    fn release(&mut self, charge: usize, cx: &mut Ctx<'_>) {
        self.buffered = self.buffered.saturating_sub(charge);
        *cx.total_buffered = cx.total_buffered.saturating_sub(charge);
    }

    /// Copy a piece into the buffer: data and cut-off parts as separate
    /// chunks; data right after a data chunk extends it (one allocation
    /// per run of segments after a hole, not one per segment).
    fn buffer(&mut self, piece: Piece<'_>, cx: &mut Ctx<'_>) {
        let (data, missing_from) = piece.data_part();
        if let Some(data) = data {
            let mut extended = false;
            if let Some((&ps, prev)) = self.chunks.range_mut(..piece.from).next_back()
                && let Body::Data(bytes) = &mut prev.body
                && ps.saturating_add(bytes.len() as u64) == piece.from
            {
                bytes.extend_from_slice(data);
                extended = true;
            }
            let charge = if extended {
                data.len()
            } else {
                self.chunks.insert(
                    piece.from,
                    Chunk {
                        arrived: cx.now,
                        body: Body::Data(data.to_vec()),
                    },
                );
                data.len().saturating_add(CHUNK_OVERHEAD)
            };
            self.charge(charge, cx);
        }
        if missing_from < piece.to {
            self.chunks.insert(
                missing_from,
                Chunk {
                    arrived: cx.now,
                    body: Body::Missing(piece.to - missing_from),
                },
            );
            self.charge(CHUNK_OVERHEAD, cx);
        }
    }

    fn charge(&mut self, charge: usize, cx: &mut Ctx<'_>) {
        self.buffered = self.buffered.saturating_add(charge);
        *cx.total_buffered = cx.total_buffered.saturating_add(charge);
    }
}

/// The part `[from, to)` of a segment that starts at offset `start`, whose
/// captured bytes end at `data_end` (after that the snap length cut it).
#[derive(Clone, Copy)]
struct Piece<'a> {
    payload: &'a [u8],
    start: i64,
    data_end: i64,
    from: u64,
    to: u64,
}

impl<'a> Piece<'a> {
    /// The captured bytes of the piece (if any) and where its cut-off part
    /// begins (`to` when nothing is cut off).
    fn data_part(&self) -> (Option<&'a [u8]>, u64) {
        let data_end = u64::try_from(self.data_end).unwrap_or(0);
        let d_to = self.to.min(data_end);
        let data = if d_to > self.from {
            let base = self.start;
            let lo = i64::try_from(self.from)
                .ok()
                .map(|f| f.saturating_sub(base));
            let hi = i64::try_from(d_to).ok().map(|t| t.saturating_sub(base));
            match (
                lo.and_then(|l| usize::try_from(l).ok()),
                hi.and_then(|h| usize::try_from(h).ok()),
            ) {
                (Some(l), Some(h)) => self.payload.get(l..h),
                _ => None,
            }
        } else {
            None
        };
        (data, d_to.max(self.from))
    }

    fn charge(&self) -> usize {
        let (data, missing_from) = self.data_part();
        let mut c = data.map_or(0, |d| d.len().saturating_add(CHUNK_OVERHEAD));
        if missing_from < self.to {
            c = c.saturating_add(CHUNK_OVERHEAD);
        }
        c
    }

    fn deliver<K: StreamSink>(&self, cx: &mut Ctx<'_>, sink: &mut K) {
        let (data, missing_from) = self.data_part();
        if let Some(d) = data
            && !d.is_empty()
        {
            sink.data(d);
        }
        if missing_from < self.to {
            emit_gap(self.to - missing_from, cx, sink);
        }
    }
}

fn emit_gap<K: StreamSink>(len: u64, cx: &mut Ctx<'_>, sink: &mut K) {
    if len > 0 {
        cx.stats.gaps += 1;
        cx.stats.gap_bytes = cx.stats.gap_bytes.saturating_add(len);
        sink.gap(len);
    }
}

#[cfg(test)]
mod tests {
    //! The reassembler alone, with a recording sink; segments are synthetic.
    //! The flow table's tests cover it through packets.

    use super::*;

    #[derive(Debug, Default)]
    struct Sink {
        out: Vec<u8>,
        gaps: Vec<(usize, u64)>,
        ends: Vec<EndKind>,
    }

    impl StreamSink for Sink {
        fn data(&mut self, data: &[u8]) {
            self.out.extend_from_slice(data);
        }
        fn gap(&mut self, len: u64) {
            self.gaps.push((self.out.len(), len));
        }
        fn end(&mut self, how: EndKind) {
            self.ends.push(how);
        }
    }

    struct Rig {
        r: Reassembler,
        stats: FlowStats,
        total: usize,
        sink: Sink,
        cap: usize,
    }

    impl Rig {
        fn new(start: u32) -> Rig {
            let mut r = Reassembler::new();
            r.start(start, None);
            Rig {
                r,
                stats: FlowStats::default(),
                total: 0,
                sink: Sink::default(),
                cap: 1 << 20,
            }
        }

        fn seg(&mut self, seq: u32, data: &[u8], fin: bool) {
            let mut cx = Ctx {
                now: 0,
                max_buffered: self.cap,
                stats: &mut self.stats,
                total_buffered: &mut self.total,
            };
            self.r
                .segment(seq, data, data.len() as u32, fin, &mut cx, &mut self.sink);
        }

        fn flush(&mut self) {
            let mut cx = Ctx {
                now: 0,
                max_buffered: self.cap,
                stats: &mut self.stats,
                total_buffered: &mut self.total,
            };
            self.r.flush(&mut cx, &mut self.sink);
        }
    }

    #[test]
    fn adjacent_out_of_order_segments_share_one_chunk() {
        let mut g = Rig::new(1000);
        g.seg(1010, b"0123456789", false);
        g.seg(1020, b"abcdefghij", false);
        g.seg(1030, b"ABCDEFGHIJ", false);
        // One chunk: 30 bytes plus one overhead, counted in the total too.
        assert_eq!(g.r.buffered_bytes(), 30 + CHUNK_OVERHEAD);
        assert_eq!(g.total, 30 + CHUNK_OVERHEAD);
        assert_eq!(g.stats.out_of_order_segments, 3);
        g.seg(1000, b"..........", false);
        assert_eq!(g.sink.out, b"..........0123456789abcdefghijABCDEFGHIJ");
        assert_eq!(g.total, 0);
    }

    #[test]
    fn stream_stops_at_the_fin() {
        let mut g = Rig::new(0);
        // Buffered before the FIN is known, reaching past it.
        g.seg(4, b"efgh", false);
        g.seg(0, b"", true); // a FIN-only segment at 0: the stream is empty
        assert_eq!(g.sink.ends, vec![EndKind::Fin]);
        assert!(g.sink.out.is_empty());
        assert_eq!(g.total, 0, "chunks past the FIN are dropped");

        let mut g = Rig::new(0);
        g.seg(4, b"efghij", false);
        g.seg(8, b"", true); // FIN at 8, inside the buffered chunk
        g.seg(0, b"abcd", false);
        assert_eq!(g.sink.out, b"abcdefgh");
        assert_eq!(g.sink.ends, vec![EndKind::Fin]);
        // Data after the FIN is outside the stream.
        g.seg(8, b"zz", false);
        assert_eq!(g.stats.out_of_window_segments, 1);
    }

    #[test]
    fn data_past_pending_fin_is_dropped() {
        let mut g = Rig::new(0);
        g.seg(4, b"", true); // FIN at 4, [0,4) missing
        g.seg(6, b"xx", false);
        assert_eq!(g.stats.out_of_window_segments, 1);
        assert!(g.r.is_waiting());
        g.flush();
        assert_eq!(g.sink.gaps, vec![(0, 4)]);
        assert_eq!(g.sink.ends, vec![EndKind::Fin]);
        assert!(!g.r.is_waiting());
    }

    #[test]
    fn tiny_cap_never_buffers_and_never_loses_order() {
        let mut g = Rig::new(0);
        g.cap = 0;
        g.seg(10, b"later", false);
        g.seg(0, b"first", false);
        // The hole was given up at once; the late bytes are old.
        assert_eq!(g.sink.out, b"later");
        assert_eq!(g.sink.gaps, vec![(0, 10)]);
        assert_eq!(g.stats.buffer_cap_hits, 1);
        assert_eq!(g.stats.retransmitted_segments, 1);
        assert_eq!(g.total, 0);
    }
}
