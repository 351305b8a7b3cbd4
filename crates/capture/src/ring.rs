//! Live capture from AF_PACKET TPACKET_V3 rings: [`Capture`] opens one
//! socket and one memory-mapped ring per interface (per fanout member),
//! [`Capture::next_batch`] hands out one retired block at a time as a
//! [`Batch`] of [`Packet`]s, and dropping the batch returns the block to the
//! kernel. Called by `trawl tap` (which feeds the raw store) and the capture
//! benchmark.
//!
//! # TPACKET_V3 blocks
//!
//! The ring is `block_count` blocks of `block_size` bytes shared with the
//! kernel. The kernel fills one block at a time with packets (each a
//! `tpacket3_hdr`, a `sockaddr_ll`, then the frame at `tp_mac`, chained by
//! `tp_next_offset`) and *retires* it when it is full or when
//! `block_timeout_ms` passes, by setting `TP_STATUS_USER` in the block
//! header's `block_status`. User space walks the blocks in ring order: the
//! block at `current` is ours when its status has `TP_STATUS_USER`; after
//! reading it we write `TP_STATUS_KERNEL` and move on. If user space falls
//! behind and the kernel reaches a block that is still ours, it *freezes*
//! the queue and drops packets (counted in [`CaptureStats`]) until we hand
//! the block back: nothing is overwritten under our feet.
//!
//! # Memory ordering of `block_status`
//!
//! `block_status` is the only word both sides write while the other may be
//! looking, so it is accessed as an `AtomicU32`. The kernel writes a block's
//! packets, issues `smp_wmb()`, then sets `TP_STATUS_USER`; our **Acquire**
//! load of the status pairs with that barrier, so every packet byte the
//! kernel wrote is visible to us once we see the flag. When handing the block
//! back we store `TP_STATUS_KERNEL` with **Release**, so all our reads (and
//! the cooked headers we wrote into the block, below) happen before the
//! kernel can see the block as free and start overwriting it. No Rust
//! reference to a block exists except while we own it.
//!
//! # `any` and other non-Ethernet interfaces
//!
//! On `any` (ifindex 0) a SOCK_RAW socket would deliver each packet with its
//! own device's link header (Ethernet, none for tun, …), which no single pcap
//! link type describes. Like libpcap, we use SOCK_DGRAM there (the kernel
//! strips the link header) and build a Linux cooked v2 (SLL2) header from
//! the `sockaddr_ll` the kernel writes next to each packet. The 20 bytes for
//! it are reserved in front of every packet with `PACKET_RESERVE`, so the
//! header is written in place, without copying the packet. Interfaces of
//! type Ethernet and loopback use SOCK_RAW and [`LinkType::Ethernet`];
//! ARPHRD_NONE (tun, wireguard) gives raw IP; anything else is cooked.
//! The kernel strips 802.1Q tags from received frames; the tag is in
//! [`Packet::vlan_tci`], not re-inserted into the bytes.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trawl_packet::LinkType;

use crate::config::CaptureConfig;
use crate::filter::{self, codegen::Frame};
use crate::sys;

/// `block_status` flag: the block belongs to user space (linux/if_packet.h).
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_KERNEL: u32 = 0;
/// Per-packet `tp_status` flag: `tp_vlan_tci` holds a stripped 802.1Q tag.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;

/// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then
/// `tpacket_hdr_v1` at 8).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
/// Offsets in `struct tpacket3_hdr`.
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_VLAN_TCI: usize = 32;
/// `sockaddr_ll` follows the 48-byte `tpacket3_hdr` (TPACKET_ALIGN(48)).
const PKT_SLL: usize = 48;
const SLL_LEN: usize = 20;
/// Length of a Linux cooked v2 header.
pub const SLL2_HEADER_LEN: usize = 20;
/// Frame size handed to PACKET_RX_RING. TPACKET_V3 packs packets of any
/// size into blocks and ignores it, but the kernel still checks that it is
/// 16-aligned, divides the block, and exceeds the per-packet header.
const FRAME_SIZE: u32 = 2048;
/// PACKET_OUTGOING in `sll_pkttype`.
const PACKET_OUTGOING: u8 = 4;
/// ARPHRD_ values from linux/if_arp.h.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 65534;

/// A capture could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error("interface \"{name}\": {source}; list interfaces with `ip link`")]
    Interface { name: String, source: io::Error },
    #[error("{what} on interface \"{interface}\": {source}{}", hint(source))]
    Socket {
        what: &'static str,
        interface: String,
        source: io::Error,
    },
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            "; capture needs root or CAP_NET_RAW (and CAP_IPC_LOCK for large rings)"
        }
        Some(libc::ENOMEM) => "; the ring did not fit in memory, lower block_count",
        _ => "",
    }
}

/// Kernel counters, summed over every socket of a [`Capture`] since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets that passed the filter, including those dropped (kernel semantics).
    pub packets: u64,
    /// Packets that passed the filter but found no room in the ring.
    pub drops: u64,
    /// Times the kernel found the ring full and froze it (`tp_freeze_q_cnt`).
    pub freezes: u64,
}

struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    block_size: usize,
    block_count: usize,
    current: usize,
    link: LinkType,
    cooked: bool,
    interface: String,
}

// SAFETY: `map` points to a mapping owned by this Ring alone (unmapped on
// drop); moving the Ring to another thread moves that ownership with it, and
// the kernel side of the ring does not care which thread reads it.
unsafe impl Send for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("interface", &self.interface)
            .field("link", &self.link)
            .field("blocks", &self.block_count)
            .field("block_size", &self.block_size)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping of `block_size * block_count` bytes made
        // in `Ring::open`; Batches borrow the Ring, so none is alive here.
        unsafe { sys::munmap_ring(self.map, self.block_size * self.block_count) };
    }
}

impl Ring {
    fn block_ptr(&self, i: usize) -> *mut u8 {
        // In bounds: i < block_count, so the offset is inside the mapping.
        self.map.wrapping_add(i * self.block_size)
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        let p = self.block_ptr(i).wrapping_add(BLOCK_STATUS).cast::<u32>();
        // SAFETY: the block start is page aligned, so `p` (offset 8) is aligned
        // for u32 and inside the mapping, which lives as long as `self`. The
        // kernel accesses this word only atomically (READ_ONCE/WRITE_ONCE plus
        // barriers), so treating it as an AtomicU32 is the shared protocol.
        unsafe { AtomicU32::from_ptr(p) }
    }

    fn ready(&self) -> bool {
        self.status(self.current).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }
}

/// A live capture: one ring per interface (see the module docs).
#[derive(Debug)]
pub struct Capture {
    rings: Vec<Ring>,
    next: usize,
    stats: CaptureStats,
}

/// How an interface is opened.
struct Plan {
    name: String,
    ifindex: u32,
    kind: libc::c_int,
    link: LinkType,
    frame: Frame,
    skip_outgoing_on: Option<u32>,
}

fn plan(name: &str) -> Result<Plan, CaptureError> {
    let if_err = |source| CaptureError::Interface {
        name: name.to_string(),
        source,
    };
    if name == "any" {
        return Ok(Plan {
            name: name.into(),
            ifindex: 0,
            kind: libc::SOCK_DGRAM,
            link: LinkType::LinuxSll2,
            frame: Frame::KernelCooked,
            skip_outgoing_on: sys::if_index("lo").ok(),
        });
    }
    let ifindex = sys::if_index(name).map_err(if_err)?;
    let hatype = sys::if_hw_type(name).map_err(if_err)?;
    Ok(match hatype {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => Plan {
            name: name.into(),
            ifindex,
            kind: libc::SOCK_RAW,
            link: LinkType::Ethernet,
            frame: Frame::Ethernet,
            skip_outgoing_on: (hatype == ARPHRD_LOOPBACK).then_some(ifindex),
        },
        ARPHRD_NONE => Plan {
            name: name.into(),
            ifindex,
            kind: libc::SOCK_RAW,
            link: LinkType::Raw,
            frame: Frame::Raw,
            skip_outgoing_on: None,
        },
        _ => Plan {
            name: name.into(),
            ifindex,
            kind: libc::SOCK_DGRAM,
            link: LinkType::LinuxSll2,
            frame: Frame::KernelCooked,
            skip_outgoing_on: None,
        },
    })
}

impl Capture {
    /// Opens the configured interfaces. With `fanout` set this is one member
    /// of the group; [`Capture::open_fanout`] opens all of them.
    pub fn open(config: &CaptureConfig) -> Result<Self, CaptureError> {
        config.validate(sys::page_size())?;
        let mut rings = Vec::with_capacity(config.interfaces.len());
        for (i, name) in config.interfaces.iter().enumerate() {
            let p = plan(name)?;
            let group = config.fanout.map(|f| {
                let i = u16::try_from(i).unwrap_or(u16::MAX);
                (f, f.group_id.wrapping_add(i))
            });
            rings.push(open_ring(config, &p, group)?);
        }
        tracing::info!(interfaces = ?config.interfaces, rings = rings.len(), "Capture opened.");
        Ok(Self {
            rings,
            next: 0,
            stats: CaptureStats::default(),
        })
    }

    /// Opens every member of the configured fanout group, one `Capture` per
    /// thread; the kernel spreads packets over them (by flow with
    /// [`crate::FanoutMode::Hash`]).
    pub fn open_fanout(config: &CaptureConfig) -> Result<Vec<Self>, CaptureError> {
        let Some(f) = config.fanout else {
            return Err(CaptureError::Config(
                "open_fanout needs `fanout` in the configuration".into(),
            ));
        };
        config.validate(sys::page_size())?;
        (0..f.threads).map(|_| Self::open(config)).collect()
    }

    /// Link type of the packets of ring `i` (in interface order).
    pub fn link_types(&self) -> Vec<LinkType> {
        self.rings.iter().map(|r| r.link).collect()
    }

    /// Waits up to `timeout` for a retired block and returns its packets, or
    /// `None` when none came in time (or the wait was interrupted).
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Option<Batch<'_>>, CaptureError> {
        if let Some(i) = self.ready_ring() {
            return Ok(Some(self.batch(i)));
        }
        let fds: Vec<_> = self.rings.iter().map(|r| r.fd.as_raw_fd()).collect();
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let failed = sys::poll_in(&fds, ms).map_err(|source| CaptureError::Socket {
            what: "waiting for packets",
            interface: self
                .rings
                .first()
                .map(|r| r.interface.clone())
                .unwrap_or_default(),
            source,
        })?;
        // An error on a socket (its interface went down or was deleted) is
        // reported once, rather than making every later poll return at once.
        for i in failed {
            let Some(r) = self.rings.get(i) else { continue };
            let pending = sys::take_socket_error(&r.fd).unwrap_or_else(Some);
            if let Some(source) = pending {
                return Err(CaptureError::Socket {
                    what: "capturing",
                    interface: r.interface.clone(),
                    source,
                });
            }
        }
        Ok(self.ready_ring().map(|i| self.batch(i)))
    }

    /// The next ring (round robin, so a busy interface cannot starve a quiet
    /// one) whose current block is ours.
    fn ready_ring(&mut self) -> Option<usize> {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.rings.get(i).is_some_and(Ring::ready) {
                self.next = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    fn batch(&mut self, i: usize) -> Batch<'_> {
        let ring = self
            .rings
            .get_mut(i)
            .unwrap_or_else(|| unreachable!("ready_ring returns an index in range"));
        let block = ring.block_ptr(ring.current);
        let len = ring.block_size;
        if ring.cooked {
            // SAFETY: the block's status is TP_STATUS_USER (checked by
            // ready_ring with Acquire), so the kernel will not touch its bytes
            // until we store TP_STATUS_KERNEL; no other reference to it exists
            // (Batches borrow the Capture mutably), and it is `len` bytes
            // inside the mapping.
            let bytes = unsafe { std::slice::from_raw_parts_mut(block, len) };
            write_cooked_headers(bytes);
        }
        Batch { ring, block, len }
    }

    /// Kernel counters since the capture opened (the kernel resets its own
    /// on every read, so they are summed here).
    pub fn stats(&mut self) -> CaptureStats {
        for r in &self.rings {
            match sys::packet_stats(&r.fd) {
                Ok(s) => {
                    self.stats.packets += u64::from(s.packets);
                    self.stats.drops += u64::from(s.drops);
                    self.stats.freezes += u64::from(s.freeze_q_cnt);
                }
                Err(e) => {
                    tracing::warn!(interface = %r.interface, error = %e, "Reading capture statistics failed.")
                }
            }
        }
        self.stats
    }
}

fn open_ring(
    config: &CaptureConfig,
    p: &Plan,
    fanout: Option<(crate::FanoutConfig, u16)>,
) -> Result<Ring, CaptureError> {
    let err = |what| {
        let interface = p.name.clone();
        move |source| CaptureError::Socket {
            what,
            interface,
            source,
        }
    };
    let cooked = p.kind == libc::SOCK_DGRAM;
    let fd = sys::packet_socket(p.kind).map_err(err("opening an AF_PACKET socket"))?;
    sys::set_int(&fd, sys::SOL_PACKET, sys::PACKET_VERSION, sys::TPACKET_V3)
        .map_err(err("setting TPACKET_V3"))?;
    if cooked {
        let reserve = libc::c_int::try_from(SLL2_HEADER_LEN).unwrap_or(0);
        sys::set_int(&fd, sys::SOL_PACKET, sys::PACKET_RESERVE, reserve)
            .map_err(err("reserving header room"))?;
    }
    if config.ignore_outgoing {
        sys::set_int(&fd, sys::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, 1)
            .map_err(err("ignoring outgoing packets (needs Linux 4.20)"))?;
    }
    // The filter's return value is the snap length: on a cooked socket it
    // counts from the network header, so leave room for the SLL2 header.
    let snap = if cooked {
        config.snaplen.saturating_sub(SLL2_HEADER_LEN as u32).max(1)
    } else {
        config.snaplen
    };
    let prog = filter::compile(config.filter.as_deref(), p.frame, snap, p.skip_outgoing_on)?;
    sys::attach_filter(&fd, &prog).map_err(err("attaching the filter"))?;
    let block_size = u32::try_from(config.block_size)
        .map_err(|e| err("sizing the ring")(io::Error::other(e)))?;
    let block_nr = u32::try_from(config.block_count)
        .map_err(|e| err("sizing the ring")(io::Error::other(e)))?;
    let req = sys::TpacketReq3 {
        block_size,
        block_nr,
        frame_size: FRAME_SIZE,
        frame_nr: (block_size / FRAME_SIZE) * block_nr,
        retire_blk_tov: config.block_timeout_ms,
        sizeof_priv: 0,
        feature_req_word: 0,
    };
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RX_RING, &req)
        .map_err(err("creating the ring"))?;
    let len = config.block_size * config.block_count;
    let map = sys::mmap_ring(&fd, len).map_err(err("mapping the ring"))?;
    let ring = Ring {
        fd,
        map,
        block_size: config.block_size,
        block_count: config.block_count,
        current: 0,
        link: p.link,
        cooked,
        interface: p.name.clone(),
    };
    sys::bind(&ring.fd, p.ifindex).map_err(err("binding"))?;
    if config.promiscuous && p.ifindex != 0 {
        sys::add_promiscuous(&ring.fd, p.ifindex).map_err(err("entering promiscuous mode"))?;
    }
    if let Some((f, group)) = fanout {
        let flags = if f.defrag {
            sys::PACKET_FANOUT_FLAG_DEFRAG
        } else {
            0
        };
        let arg = u32::from(group) | (u32::from(f.mode.kernel() | flags) << 16);
        sys::set_int(
            &ring.fd,
            sys::SOL_PACKET,
            sys::PACKET_FANOUT,
            arg.cast_signed(),
        )
        .map_err(err("joining the fanout group"))?;
    }
    Ok(ring)
}

fn rd_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Where each packet of a block lies, checked against the block's bounds.
#[derive(Debug, Clone, Copy)]
struct PktHdr {
    at: usize,
    next: usize,
    mac: usize,
    snaplen: usize,
    len: u32,
    sec: u32,
    nsec: u32,
    status: u32,
    vlan_tci: u16,
    ifindex: u32,
    pkttype: u8,
}

fn pkt_hdr(block: &[u8], at: usize) -> Option<PktHdr> {
    let h = block.get(at..at.checked_add(PKT_SLL + SLL_LEN)?)?;
    let mac = at + usize::from(rd_u16(h, PKT_MAC)?);
    let snaplen = rd_u32(h, PKT_SNAPLEN)? as usize;
    // The frame must lie inside the block, after the headers.
    if mac < at + PKT_SLL + SLL_LEN || mac.checked_add(snaplen)? > block.len() {
        return None;
    }
    let next = rd_u32(h, PKT_NEXT)? as usize;
    Some(PktHdr {
        at,
        next,
        mac,
        snaplen,
        len: rd_u32(h, PKT_LEN)?,
        sec: rd_u32(h, PKT_SEC)?,
        nsec: rd_u32(h, PKT_NSEC)?,
        status: rd_u32(h, PKT_STATUS)?,
        vlan_tci: u16::try_from(rd_u32(h, PKT_VLAN_TCI)? & 0xffff).unwrap_or(0),
        ifindex: rd_u32(h, PKT_SLL + 4)?,
        pkttype: *h.get(PKT_SLL + 10)?,
    })
}

/// Builds the SLL2 header of every packet of a cooked block in the room
/// `PACKET_RESERVE` left in front of it, from the packet's `sockaddr_ll`.
fn write_cooked_headers(block: &mut [u8]) {
    let mut walk = PacketWalk::new(block);
    while let Some(h) = walk.next(block) {
        if h.mac < h.at + PKT_SLL + SLL_LEN + SLL2_HEADER_LEN {
            continue; // no room (never with PACKET_RESERVE); Batch skips it too
        }
        let sll_at = h.at + PKT_SLL;
        let Some(sll) = block
            .get(sll_at..sll_at + SLL_LEN)
            .and_then(|s| <[u8; SLL_LEN]>::try_from(s).ok())
        else {
            continue;
        };
        // sockaddr_ll: family(2) protocol(2, network order) ifindex(4, host)
        // hatype(2, host) pkttype(1) halen(1) addr(8).
        let mut hdr = [0u8; SLL2_HEADER_LEN];
        hdr[0..2].copy_from_slice(&sll[2..4]);
        hdr[4..8]
            .copy_from_slice(&i32::from_ne_bytes([sll[4], sll[5], sll[6], sll[7]]).to_be_bytes());
        hdr[8..10].copy_from_slice(&u16::from_ne_bytes([sll[8], sll[9]]).to_be_bytes());
        hdr[10] = sll[10];
        hdr[11] = sll[11].min(8);
        hdr[12..20].copy_from_slice(&sll[12..20]);
        if let Some(dst) = block.get_mut(h.mac - SLL2_HEADER_LEN..h.mac) {
            dst.copy_from_slice(&hdr);
        }
    }
}

/// Walks the packet chain of a block: `num_pkts` packets from
/// `offset_to_first_pkt`, each `tp_next_offset` after the previous; stops at
/// the first header that does not fit (which the kernel never writes).
struct PacketWalk {
    remaining: u32,
    at: usize,
}

impl PacketWalk {
    fn new(block: &[u8]) -> Self {
        Self {
            remaining: rd_u32(block, BLOCK_NUM_PKTS).unwrap_or(0),
            at: rd_u32(block, BLOCK_FIRST_PKT).unwrap_or(0) as usize,
        }
    }

    fn next(&mut self, block: &[u8]) -> Option<PktHdr> {
        if self.remaining == 0 {
            return None;
        }
        let Some(h) = pkt_hdr(block, self.at) else {
            self.remaining = 0;
            return None;
        };
        self.remaining -= 1;
        self.at = if h.next == 0 {
            usize::MAX
        } else {
            self.at.saturating_add(h.next)
        };
        Some(h)
    }
}

/// The packets of one retired block; the block goes back to the kernel when
/// the batch is dropped, so hold it only as long as the packets are needed.
pub struct Batch<'a> {
    ring: &'a mut Ring,
    block: *mut u8,
    len: usize,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("interface", &self.ring.interface)
            .field("block", &self.ring.current)
            .field("packets", &self.len())
            .finish()
    }
}

impl Batch<'_> {
    fn bytes(&self) -> &[u8] {
        // SAFETY: this Batch owns the block (status TP_STATUS_USER, seen with
        // Acquire; the kernel leaves it alone until Drop stores
        // TP_STATUS_KERNEL), the slice is inside the mapping that outlives the
        // Batch, and nothing writes the block while the returned borrow of
        // `self` lives (the cooked headers were written before the Batch was made).
        unsafe { std::slice::from_raw_parts(self.block, self.len) }
    }

    /// Number of packets in the block.
    pub fn len(&self) -> usize {
        rd_u32(self.bytes(), BLOCK_NUM_PKTS).unwrap_or(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Link type of every packet in this batch.
    pub fn link_type(&self) -> LinkType {
        self.ring.link
    }

    /// The interface name this batch came from (as configured).
    pub fn interface(&self) -> &str {
        &self.ring.interface
    }

    /// The packets, in the order the kernel received them.
    pub fn packets(&self) -> Packets<'_> {
        let bytes = self.bytes();
        Packets {
            walk: PacketWalk::new(bytes),
            block: bytes,
            cooked: self.ring.cooked,
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let ring = &mut *self.ring;
        // Release: our reads of the block happen before the kernel reuses it.
        ring.status(ring.current)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        ring.current = (ring.current + 1) % ring.block_count;
    }
}

/// Iterator over the packets of a [`Batch`].
pub struct Packets<'a> {
    walk: PacketWalk,
    block: &'a [u8],
    cooked: bool,
}

impl std::fmt::Debug for Packets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the block's bytes: a megabyte of hex helps no one.
        f.debug_struct("Packets")
            .field("remaining", &self.walk.remaining)
            .field("cooked", &self.cooked)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PacketWalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketWalk")
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// One captured packet, borrowed from the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Kernel receive time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The captured bytes (with the SLL2 header on cooked links).
    pub data: &'a [u8],
    /// Bytes captured (`data.len()`).
    pub caplen: u32,
    /// Length on the wire (plus the SLL2 header on cooked links).
    pub origlen: u32,
    /// Interface the packet was seen on.
    pub ifindex: u32,
    /// The host sent this packet (PACKET_OUTGOING).
    pub outgoing: bool,
    /// The 802.1Q tag the kernel stripped from the frame, if any.
    pub vlan_tci: Option<u16>,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Packet<'a>;

    fn next(&mut self) -> Option<Packet<'a>> {
        loop {
            let h = self.walk.next(self.block)?;
            let (start, extra) = if self.cooked {
                if h.mac < h.at + PKT_SLL + SLL_LEN + SLL2_HEADER_LEN {
                    continue;
                }
                (h.mac - SLL2_HEADER_LEN, SLL2_HEADER_LEN)
            } else {
                (h.mac, 0)
            };
            let Some(data) = self.block.get(start..h.mac + h.snaplen) else {
                continue;
            };
            let extra = extra as u32;
            return Some(Packet {
                ts_ns: i64::from(h.sec) * 1_000_000_000 + i64::from(h.nsec),
                data,
                caplen: u32::try_from(data.len()).unwrap_or(u32::MAX),
                origlen: h.len.saturating_add(extra),
                ifindex: h.ifindex,
                outgoing: h.pkttype == PACKET_OUTGOING,
                vlan_tci: (h.status & TP_STATUS_VLAN_VALID != 0).then_some(h.vlan_tci),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays it out: two packets, the second cooked-ready.
    fn fake_block(mac_room: usize) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&2u32.to_ne_bytes());
        b[BLOCK_FIRST_PKT..BLOCK_FIRST_PKT + 4].copy_from_slice(&48u32.to_ne_bytes());
        for (i, at) in [48usize, 512].into_iter().enumerate() {
            let next: u32 = if i == 0 { 512 - 48 } else { 0 };
            b[at..at + 4].copy_from_slice(&next.to_ne_bytes());
            b[at + PKT_SEC..at + PKT_SEC + 4].copy_from_slice(&7u32.to_ne_bytes());
            b[at + PKT_NSEC..at + PKT_NSEC + 4].copy_from_slice(&5u32.to_ne_bytes());
            b[at + PKT_SNAPLEN..at + PKT_SNAPLEN + 4].copy_from_slice(&10u32.to_ne_bytes());
            b[at + PKT_LEN..at + PKT_LEN + 4].copy_from_slice(&100u32.to_ne_bytes());
            let mac = u16::try_from(PKT_SLL + SLL_LEN + mac_room).unwrap();
            b[at + PKT_MAC..at + PKT_MAC + 2].copy_from_slice(&mac.to_ne_bytes());
            let sll = at + PKT_SLL;
            b[sll + 2..sll + 4].copy_from_slice(&0x0800u16.to_be_bytes());
            b[sll + 4..sll + 8].copy_from_slice(&3i32.to_ne_bytes());
            b[sll + 8..sll + 10].copy_from_slice(&1u16.to_ne_bytes());
            b[sll + 10] = PACKET_OUTGOING;
            b[sll + 11] = 6;
            let m = at + usize::from(mac);
            b[m..m + 10].copy_from_slice(b"0123456789");
        }
        b
    }

    #[test]
    fn cooked_headers_are_built_in_place() {
        let mut b = fake_block(SLL2_HEADER_LEN + 12);
        write_cooked_headers(&mut b);
        let pkts: Vec<_> = Packets {
            walk: PacketWalk::new(&b),
            block: &b,
            cooked: true,
        }
        .collect();
        assert_eq!(pkts.len(), 2);
        let p = pkts[1];
        assert_eq!(p.ts_ns, 7_000_000_005);
        assert_eq!(p.caplen, 30);
        assert_eq!(p.origlen, 120);
        assert!(p.outgoing);
        // SLL2: protocol 0x0800, reserved, ifindex 3, hatype 1, pkttype 4, halen 6.
        assert_eq!(&p.data[..12], &[8, 0, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6]);
        assert_eq!(&p.data[20..], b"0123456789");
    }

    #[test]
    fn packets_outside_the_block_are_not_read() {
        let mut b = fake_block(0);
        // Second packet claims a snaplen past the block end.
        b[512 + PKT_SNAPLEN..512 + PKT_SNAPLEN + 4].copy_from_slice(&100_000u32.to_ne_bytes());
        let pkts: Vec<_> = Packets {
            walk: PacketWalk::new(&b),
            block: &b,
            cooked: false,
        }
        .collect();
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].data, b"0123456789");
        // Cooked packets without header room are skipped, not mangled.
        let mut b = fake_block(4);
        write_cooked_headers(&mut b);
        let n = Packets {
            walk: PacketWalk::new(&b),
            block: &b,
            cooked: true,
        }
        .count();
        assert_eq!(n, 0);
    }
}
