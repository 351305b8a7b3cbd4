//! IPv4 and IPv6 fragment reassembly.
//!
//! The indexing pipeline pushes every packet that [`crate::decode`] marked
//! as a fragment into a [`Defragmenter`]; when the last missing piece of a
//! datagram arrives it gets the whole upper-layer payload back, to decode
//! with [`crate::decode::decode_transport`] like any other packet. Packets
//! that are not fragments never come here, so the common path stays
//! zero-copy; fragments are rare enough that copying them is fine.
//!
//! Fragments are keyed by (source, destination, protocol, identification),
//! may arrive in any order, duplicated or overlapping (the first copy of a
//! byte wins, as in BSD and as RFC 5722 expects for IPv6 where overlaps are
//! an attack), and expire by packet time, never by the wall clock. Memory is
//! capped per datagram, in total and by the number of datagrams in progress:
//! when a cap is hit the oldest datagrams are given up first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::decode::IpPacket;

/// Largest reassembled payload (fragment offset plus length). IPv4's total
/// length field is 16 bits, so no valid fragment ends past 65535 bytes;
/// IPv6 jumbograms cannot be fragmented, so the same bound holds there.
pub const MAX_DATAGRAM_LEN: u32 = 65_535;

/// How long, in packet time, a datagram may wait for its missing fragments.
/// RFC 791 suggests a lower bound of 15 s; Linux uses 30 s
/// (`net.ipv4.ipfrag_time`), and so do we: a capture replays what the host
/// would have reassembled.
pub const DEFAULT_TIMEOUT_NS: i64 = 30 * 1_000_000_000;

/// Bytes held in total by incomplete datagrams. Linux's default high
/// threshold (`ipfrag_high_thresh`) is 4 MiB per network namespace: enough
/// for 64 maximal datagrams in flight at once, far more than real traffic
/// fragments.
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;

/// Datagrams in progress at once. Bounds the table against floods of tiny
/// first fragments that would otherwise fit the byte cap by the thousand.
pub const DEFAULT_MAX_DATAGRAMS: usize = 1024;

/// Bookkeeping charged to each datagram on top of its bytes, so that many
/// tiny datagrams cannot slip under the byte cap.
const PARTIAL_OVERHEAD: usize = 128;

/// Limits of a [`Defragmenter`]; `Default` uses the named constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// Largest fragment end offset accepted; see [`MAX_DATAGRAM_LEN`].
    pub max_datagram_len: u32,
    /// Packet-time age after which an incomplete datagram is dropped.
    pub timeout_ns: i64,
    /// Total bytes held by incomplete datagrams. Should be at least
    /// `max_datagram_len`, or the largest datagrams can never complete.
    pub max_bytes: usize,
    /// Incomplete datagrams held at once.
    pub max_datagrams: usize,
}

impl Default for DefragConfig {
    fn default() -> Self {
        Self {
            max_datagram_len: MAX_DATAGRAM_LEN,
            timeout_ns: DEFAULT_TIMEOUT_NS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_datagrams: DEFAULT_MAX_DATAGRAMS,
        }
    }
}

/// A datagram whose fragments all arrived: the upper-layer payload (IPv6:
/// everything after the fragment header, including any later extension
/// headers) and the protocol number from the fragments' headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub payload: Vec<u8>,
}

/// What happened to the fragments pushed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams completed and returned.
    pub reassembled: u64,
    /// Datagrams given up because their timeout passed.
    pub expired: u64,
    /// Datagrams given up to stay within `max_bytes` or `max_datagrams`.
    pub dropped_over_cap: u64,
    /// Fragments dropped as unusable: cut by the snap length, ending past
    /// `max_datagram_len`, or disagreeing with the datagram's known end.
    pub dropped_invalid: u64,
    /// Fragments that overlapped bytes already held (duplicates included);
    /// the bytes already held were kept.
    pub overlaps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

#[derive(Debug)]
struct Partial {
    /// Payload bytes by offset; holes are zero until filled.
    data: Vec<u8>,
    /// Byte ranges received: sorted, disjoint and not adjacent.
    have: Vec<(u32, u32)>,
    /// End of the datagram, known once the last fragment arrived.
    total: Option<u32>,
    /// Tells this datagram apart from an older one with the same key in the
    /// expiry queue.
    generation: u64,
}

impl Partial {
    fn footprint(&self) -> usize {
        PARTIAL_OVERHEAD + self.data.capacity() + self.have.capacity() * size_of::<(u32, u32)>()
    }

    fn complete(&self) -> bool {
        match self.total {
            Some(0) => self.have.is_empty(),
            Some(t) => matches!(self.have.as_slice(), [(0, end)] if *end == t),
            None => false,
        }
    }
}

/// Reassembles IP fragments; see the module documentation.
#[derive(Debug)]
pub struct Defragmenter {
    config: DefragConfig,
    partials: HashMap<Key, Partial, foldhash::fast::RandomState>,
    /// (deadline, key, generation) in creation order; entries whose datagram
    /// is gone are skipped when met.
    queue: VecDeque<(i64, Key, u64)>,
    next_generation: u64,
    /// Sum of the partials' footprints.
    held: usize,
    stats: DefragStats,
}

impl Default for Defragmenter {
    fn default() -> Self {
        Self::new()
    }
}

impl Defragmenter {
    pub fn new() -> Self {
        Self::with_config(DefragConfig::default())
    }

    pub fn with_config(config: DefragConfig) -> Self {
        Self {
            config,
            partials: HashMap::default(),
            queue: VecDeque::new(),
            next_generation: 0,
            held: 0,
            stats: DefragStats::default(),
        }
    }

    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// Datagrams waiting for fragments.
    pub fn in_progress(&self) -> usize {
        self.partials.len()
    }

    /// Bytes held by datagrams waiting for fragments.
    pub fn bytes_held(&self) -> usize {
        self.held
    }

    /// Adds a fragment seen at `ts_ns`; returns the datagram it completes.
    /// Packets that are not fragments are ignored (`None`).
    pub fn push(&mut self, ts_ns: i64, pkt: &IpPacket<'_>) -> Option<Reassembled> {
        let frag = pkt.fragment?;
        self.expire(ts_ns);
        let len = pkt.payload.len();
        if (len as u64) < u64::from(pkt.payload_len) {
            // The snap length cut this fragment: the datagram has a hole
            // nothing will fill.
            self.stats.dropped_invalid += 1;
            return None;
        }
        let start = frag.offset;
        let end = u64::from(start) + len as u64;
        if end > u64::from(self.config.max_datagram_len) {
            self.stats.dropped_invalid += 1;
            return None;
        }
        // end <= max_datagram_len, a u32.
        let end = end as u32;
        let key = Key {
            src: pkt.src,
            dst: pkt.dst,
            protocol: pkt.protocol,
            id: frag.id,
        };

        if !self.partials.contains_key(&key) {
            while self.partials.len() >= self.config.max_datagrams.max(1) {
                if !self.evict_oldest() {
                    break;
                }
            }
            let generation = self.next_generation;
            self.next_generation += 1;
            let partial = Partial {
                data: Vec::new(),
                have: Vec::new(),
                total: None,
                generation,
            };
            self.held += partial.footprint();
            self.partials.insert(key, partial);
            self.queue.push_back((
                ts_ns.saturating_add(self.config.timeout_ns),
                key,
                generation,
            ));
            self.compact_queue();
        }

        // Check the fragment against what is known before growing anything.
        let max_len = self.config.max_datagram_len as usize;
        let (capacity, growth, valid) = match self.partials.get(&key) {
            Some(p) => {
                let valid = match p.total {
                    Some(total) => end <= total && (frag.more || end == total),
                    None => frag.more || p.have.last().is_none_or(|&(_, e)| e <= end),
                };
                let limit = p.total.map_or(max_len, |t| t as usize);
                let capacity = planned_capacity(p.data.capacity(), end as usize, limit);
                let range_growth = if p.have.len() == p.have.capacity() {
                    p.have.capacity().max(4) * size_of::<(u32, u32)>()
                } else {
                    0
                };
                (capacity, capacity - p.data.capacity() + range_growth, valid)
            }
            None => (0, 0, false),
        };
        if !valid {
            self.stats.dropped_invalid += 1;
            return None;
        }
        while growth > 0 && self.held.saturating_add(growth) > self.config.max_bytes {
            let Some(&(_, k, g)) = self.queue.front() else {
                break;
            };
            if self.partials.get(&k).is_none_or(|p| p.generation != g) {
                self.queue.pop_front();
            } else if k == key {
                // This datagram is the oldest: it is the one to give up.
                self.remove(&key);
                self.stats.dropped_over_cap += 1;
                return None;
            } else {
                self.evict_oldest();
            }
        }

        let p = self.partials.get_mut(&key)?;
        let before = p.footprint();
        if !frag.more {
            p.total = Some(end);
        }
        if p.data.len() < end as usize {
            // Exact, so that the footprint is what the cap check planned.
            p.data.reserve_exact(capacity.saturating_sub(p.data.len()));
            p.data.resize(end as usize, 0);
        }
        if insert_range(&mut p.have, &mut p.data, start, end, pkt.payload) {
            self.stats.overlaps += 1;
        }
        let after = p.footprint();
        self.held = (self.held + after).saturating_sub(before);
        if !p.complete() {
            return None;
        }
        let total = p.total.unwrap_or(0) as usize;
        let mut p = self.remove(&key)?;
        p.data.truncate(total);
        self.stats.reassembled += 1;
        Some(Reassembled {
            src: key.src,
            dst: key.dst,
            protocol: key.protocol,
            payload: p.data,
        })
    }

    /// Drops every datagram still waiting, counted as expired: for the end
    /// of a capture, when no more fragments can come.
    pub fn expire_all(&mut self) {
        self.stats.expired += self.partials.len() as u64;
        self.partials.clear();
        self.queue.clear();
        self.held = 0;
    }

    /// Drops datagrams whose timeout passed before `now_ns` (packet time).
    /// `push` calls this.
    pub fn expire(&mut self, now_ns: i64) {
        while let Some(&(deadline, key, generation)) = self.queue.front() {
            if deadline >= now_ns {
                break;
            }
            self.queue.pop_front();
            if self
                .partials
                .get(&key)
                .is_some_and(|p| p.generation == generation)
            {
                self.remove(&key);
                self.stats.expired += 1;
            }
        }
    }

    /// Gives up the oldest datagram; false when none is left.
    fn evict_oldest(&mut self) -> bool {
        while let Some((_, key, generation)) = self.queue.pop_front() {
            if self
                .partials
                .get(&key)
                .is_some_and(|p| p.generation == generation)
            {
                self.remove(&key);
                self.stats.dropped_over_cap += 1;
                return true;
            }
        }
        false
    }

    fn remove(&mut self, key: &Key) -> Option<Partial> {
        let p = self.partials.remove(key)?;
        self.held = self.held.saturating_sub(p.footprint());
        Some(p)
    }

    /// Completed datagrams leave their queue entries behind; drop them once
    /// they outnumber the live ones, so the queue stays proportional to the
    /// table however many datagrams pass through within one timeout.
    fn compact_queue(&mut self) {
        if self.queue.len() > 2 * self.partials.len() + 64 {
            let partials = &self.partials;
            self.queue
                .retain(|(_, k, g)| partials.get(k).is_some_and(|p| p.generation == *g));
        }
    }
}

/// Capacity for a datagram buffer of `capacity` that must hold `need`
/// bytes: doubling, so that in-order fragments cost few reallocations, but
/// never past `limit` (the datagram's known end, or the largest datagram).
fn planned_capacity(capacity: usize, need: usize, limit: usize) -> usize {
    if need <= capacity {
        capacity
    } else {
        capacity.saturating_mul(2).min(limit).max(need)
    }
}

/// Copies the parts of `src` (covering `start..end` of the datagram) that
/// are not held yet into `data`, and records the range. Returns whether any
/// byte was already held.
fn insert_range(
    have: &mut Vec<(u32, u32)>,
    data: &mut [u8],
    start: u32,
    end: u32,
    src: &[u8],
) -> bool {
    if start >= end {
        return false;
    }
    let mut copy = |from: u32, to: u32| {
        let d = data.get_mut(from as usize..to as usize);
        let s = src.get((from - start) as usize..(to - start) as usize);
        if let (Some(d), Some(s)) = (d, s) {
            // Both ranges span to - from bytes.
            d.copy_from_slice(s);
        }
    };
    let mut pos = start;
    let mut overlapped = false;
    for &(a, b) in have.iter() {
        if b <= pos {
            continue;
        }
        if a >= end {
            break;
        }
        if a > pos {
            copy(pos, a);
        }
        overlapped = true;
        pos = b;
        if pos >= end {
            break;
        }
    }
    if pos < end {
        copy(pos, end);
    }
    // Merge with every range that overlaps or touches start..end.
    let i = have.partition_point(|&(_, b)| b < start);
    let j = have.partition_point(|&(a, _)| a <= end);
    if i >= j {
        have.insert(i.min(have.len()), (start, end));
    } else {
        let lo = have.get(i).map_or(start, |r| r.0.min(start));
        let hi = have.get(j - 1).map_or(end, |r| r.1.max(end));
        have.drain(i + 1..j);
        if let Some(r) = have.get_mut(i) {
            *r = (lo, hi);
        }
    }
    overlapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capfile::CaptureReader;
    use crate::capfile::test_support::shared_pcaps;
    use crate::decode::{Fragment, Transport, decode_link, decode_transport};
    use std::net::Ipv4Addr;

    const SEC: i64 = 1_000_000_000;

    // Fragments are built here as decoded packets; one test goes through
    // real IPv6 bytes and one through a shared capture.
    fn frag(id: u32, offset: u32, more: bool, data: &[u8]) -> IpPacket<'_> {
        IpPacket {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 17,
            payload: data,
            payload_len: data.len() as u32,
            fragment: Some(Fragment { id, offset, more }),
            vlan: None,
        }
    }

    fn datagram(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn in_order_fragments_reassemble_on_the_last() {
        let data = datagram(40);
        let mut d = Defragmenter::new();
        assert_eq!(d.push(0, &frag(1, 0, true, &data[..16])), None);
        assert_eq!(d.push(0, &frag(1, 16, true, &data[16..32])), None);
        assert_eq!(d.in_progress(), 1);
        assert!(d.bytes_held() > 0);
        let r = d.push(0, &frag(1, 32, false, &data[32..])).unwrap();
        assert_eq!((r.protocol, r.payload), (17, data));
        assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!((d.in_progress(), d.bytes_held()), (0, 0));
        assert_eq!(
            d.stats(),
            DefragStats {
                reassembled: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_arrival_order_gives_the_same_datagram() {
        let data = datagram(32);
        let pieces = [(0, true), (8, true), (16, true), (24, false)];
        // All permutations of 0..4: the base-4 numbers with distinct digits.
        let orders: Vec<Vec<usize>> = (0..256)
            .map(|n| (0..4).map(|k| (n >> (2 * k)) & 3).collect::<Vec<usize>>())
            .filter(|o| (0..4).all(|i| o.contains(&i)))
            .collect();
        assert_eq!(orders.len(), 24);
        for order in orders {
            let mut d = Defragmenter::new();
            for (k, &i) in order.iter().enumerate() {
                let (off, more) = pieces[i];
                let out = d.push(
                    0,
                    &frag(9, off, more, &data[off as usize..off as usize + 8]),
                );
                assert_eq!(out.is_some(), k == 3, "{order:?}");
                if let Some(r) = out {
                    assert_eq!(r.payload, data, "{order:?}");
                }
            }
        }
    }

    #[test]
    fn duplicates_and_overlaps_keep_the_first_copy() {
        let mut d = Defragmenter::new();
        assert_eq!(d.push(0, &frag(2, 0, true, &[b'a'; 16])), None);
        assert_eq!(d.push(0, &frag(2, 0, true, &[b'x'; 16])), None); // duplicate
        assert_eq!(d.push(0, &frag(2, 8, true, &[b'b'; 16])), None); // overlaps 8..16
        let r = d.push(0, &frag(2, 16, false, &[b'c'; 16])).unwrap(); // overlaps 16..24
        let mut want = vec![b'a'; 16];
        want.extend_from_slice(&[b'b'; 8]);
        want.extend_from_slice(&[b'c'; 8]);
        assert_eq!(r.payload, want);
        assert_eq!(d.stats().overlaps, 3);
    }

    #[test]
    fn non_fragments_are_ignored_and_keys_are_separate() {
        let mut d = Defragmenter::new();
        let mut p = frag(1, 0, false, b"whole");
        p.fragment = None;
        assert_eq!(d.push(0, &p), None);
        assert_eq!(d.stats(), DefragStats::default());
        // Same id from another source is another datagram.
        let a = frag(3, 0, true, &[1; 8]);
        let mut b = frag(3, 8, false, &[2; 8]);
        b.src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(d.push(0, &a), None);
        assert_eq!(d.push(0, &b), None);
        assert_eq!(d.in_progress(), 2);
    }

    #[test]
    fn incomplete_datagrams_expire_by_packet_time() {
        let mut d = Defragmenter::new();
        d.push(0, &frag(1, 0, true, &[0; 8]));
        d.push(29 * SEC, &frag(2, 0, true, &[0; 8]));
        assert_eq!(d.stats().expired, 0);
        // 31 s after the first fragment: datagram 1 is gone.
        assert_eq!(d.push(31 * SEC, &frag(1, 8, false, &[0; 8])), None);
        assert_eq!(d.stats().expired, 1);
        d.expire(i64::MAX);
        assert_eq!(
            (d.stats().expired, d.in_progress(), d.bytes_held()),
            (3, 0, 0)
        );
        // Fragments stamped at the end of time (a saturated timestamp) never
        // time out, but expire_all still ends them.
        d.push(i64::MAX, &frag(5, 0, true, &[0; 8]));
        d.expire(i64::MAX);
        assert_eq!(d.in_progress(), 1);
        d.expire_all();
        assert_eq!(
            (d.stats().expired, d.in_progress(), d.bytes_held()),
            (4, 0, 0)
        );
    }

    #[test]
    fn invalid_fragments_are_dropped_and_counted() {
        let mut d = Defragmenter::new();
        // Ends past 65535.
        assert_eq!(d.push(0, &frag(1, 65528, false, &[0; 16])), None);
        // Cut by the snap length.
        let mut cut = frag(2, 0, true, &[0; 8]);
        cut.payload_len = 1480;
        assert_eq!(d.push(0, &cut), None);
        // A second, different end; and a fragment past the known end.
        d.push(0, &frag(3, 16, false, &[0; 8]));
        assert_eq!(d.push(0, &frag(3, 24, false, &[0; 8])), None);
        assert_eq!(d.push(0, &frag(3, 24, true, &[0; 8])), None);
        // A last fragment ending before bytes already held.
        d.push(0, &frag(4, 16, true, &[0; 8]));
        assert_eq!(d.push(0, &frag(4, 0, false, &[0; 8])), None);
        assert_eq!(d.stats().dropped_invalid, 5);
        assert_eq!(d.stats().reassembled, 0);
    }

    #[test]
    fn caps_give_up_the_oldest_datagrams() {
        let config = DefragConfig {
            max_datagrams: 2,
            ..Default::default()
        };
        let mut d = Defragmenter::with_config(config);
        for id in 1..=3 {
            d.push(0, &frag(id, 0, true, &[id as u8; 8]));
        }
        assert_eq!((d.in_progress(), d.stats().dropped_over_cap), (2, 1));
        assert_eq!(
            d.push(0, &frag(1, 8, false, &[0; 8])),
            None,
            "datagram 1 was given up"
        );
        assert!(d.push(0, &frag(3, 8, false, &[0; 8])).is_some());

        let config = DefragConfig {
            max_bytes: 4096,
            ..Default::default()
        };
        let mut d = Defragmenter::with_config(config);
        d.push(0, &frag(1, 0, true, &[0; 1000]));
        d.push(0, &frag(2, 0, true, &[0; 1000]));
        assert!(d.bytes_held() <= 4096);
        // Datagram 3 needs room: 1 goes.
        d.push(0, &frag(3, 0, true, &[0; 2000]));
        assert!(d.bytes_held() <= 4096, "{}", d.bytes_held());
        assert!(d.stats().dropped_over_cap >= 1);
        // A datagram bigger than the whole cap gives itself up.
        let mut d = Defragmenter::with_config(config);
        assert_eq!(d.push(0, &frag(1, 0, true, &[0; 8000])), None);
        assert_eq!((d.in_progress(), d.stats().dropped_over_cap), (0, 1));
    }

    #[test]
    fn bytes_held_never_exceed_the_cap() {
        let config = DefragConfig {
            max_bytes: 100_000,
            ..Default::default()
        };
        let mut d = Defragmenter::with_config(config);
        let chunk = [0u8; 1480];
        for i in 0..2000u32 {
            // Interleaved datagrams growing in order, some out of order.
            let id = i % 7;
            let off = (i / 7) * 1480 % 60_000;
            d.push(i64::from(i), &frag(id, off, true, &chunk));
            d.push(
                i64::from(i),
                &frag(100 + id, 60_000 - off, true, &chunk[..8]),
            );
            assert!(d.bytes_held() <= 100_000, "{} after {i}", d.bytes_held());
        }
    }

    #[test]
    fn expiry_queue_stays_proportional_to_the_table() {
        let mut d = Defragmenter::new();
        for id in 0..10_000 {
            d.push(0, &frag(id, 0, true, &[0; 8]));
            assert!(d.push(0, &frag(id, 8, false, &[0; 8])).is_some());
        }
        assert!(d.queue.len() <= 64 + 2, "{}", d.queue.len());
    }

    // Bytes: an IPv6 UDP datagram split into two fragments, built here.
    #[test]
    fn ipv6_fragments_reassemble_from_bytes() {
        let mut udp = vec![0x30, 0x39, 0x00, 0x35, 0, 40, 0, 0];
        udp.extend_from_slice(&[b'z'; 32]);
        let build = |offset: u16, more: bool, part: &[u8]| {
            let mut v = vec![0x60, 0, 0, 0, 0, (8 + part.len()) as u8, 44, 64];
            v.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            v.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            v.extend_from_slice(&[17, 0]);
            v.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
            v.extend_from_slice(&77u32.to_be_bytes());
            v.extend_from_slice(part);
            v
        };
        let a = build(0, true, &udp[..24]);
        let b = build(24, false, &udp[24..]);
        let mut d = Defragmenter::new();
        let pb = decode_link(crate::LinkType::Ipv6, &b).unwrap();
        assert_eq!(d.push(1, &pb), None);
        let pa = decode_link(crate::LinkType::Ipv6, &a).unwrap();
        let r = d.push(2, &pa).unwrap();
        assert_eq!((r.protocol, &r.payload), (17, &udp));
        let Transport::Udp(u) =
            decode_transport(r.protocol, &r.payload, r.payload.len() as u32).unwrap()
        else {
            panic!()
        };
        assert_eq!((u.dst_port, u.payload.len(), u.payload_len), (53, 32, 32));
    }

    // dns-ndpi-dns_fragmented.pcap: tshark reassembles 4 IPv4 and 3 IPv6
    // DNS responses, each from two fragments.
    #[test]
    fn shared_fragmented_dns_reassembles() {
        let Some(dir) = shared_pcaps("shared_fragmented_dns_reassembles") else {
            return;
        };
        let mut r = CaptureReader::open(&dir.join("dns-ndpi-dns_fragmented.pcap")).unwrap();
        let mut d = Defragmenter::new();
        let mut done = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            let ip = decode_link(p.link, p.data).unwrap();
            if let Some(whole) = d.push(p.ts_ns, &ip) {
                done.push(whole);
            }
        }
        assert_eq!(done.len(), 7);
        assert_eq!(done.iter().filter(|r| r.src.is_ipv4()).count(), 4);
        for whole in &done {
            let Transport::Udp(u) =
                decode_transport(whole.protocol, &whole.payload, whole.payload.len() as u32)
                    .unwrap()
            else {
                panic!("not UDP")
            };
            // The UDP length field covers exactly the reassembled datagram.
            assert_eq!(u.payload_len as usize + 8, whole.payload.len());
            assert_eq!(u.src_port, 53);
        }
        d.expire_all();
        let s = d.stats();
        assert_eq!(
            (
                s.reassembled,
                s.expired,
                s.dropped_invalid,
                s.dropped_over_cap,
                s.overlaps
            ),
            (7, 0, 0, 0, 0)
        );
    }
}
