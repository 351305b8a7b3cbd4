//! What to capture and how big the kernel ring is: [`CaptureConfig`], its
//! defaults (each a named constant with its reason) and validation. Read by
//! [`crate::Capture::open`]; built by `trawl tap` from its command line and
//! configuration file.

use crate::CaptureError;

/// Bytes kept of each packet. tcpdump's default: enough for any frame,
/// including the 64 KiB super-packets that GRO/TSO hand to AF_PACKET on
/// veth and virtio interfaces, so API payloads are never cut by default.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Size of one ring block. A block is the unit the kernel hands over, so it
/// must hold the largest packet (a 64 KiB GRO packet plus headers) several
/// times over; 1 MiB holds ~700 full-size Ethernet frames, so at 1 M
/// packets/s a block retires about every 0.7 ms and user space is never
/// waiting long for a full one.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// Blocks in the ring. 64 × 1 MiB = 64 MiB: about 0.5 s of a fully loaded
/// 1 Gbit/s link, room to ride out a stall of the consumer (a disk flush)
/// while staying well inside the memory budget of a per-node agent.
pub const DEFAULT_BLOCK_COUNT: usize = 64;

/// How long the kernel waits before handing over a block that is not full.
/// Bounds how late packets of a quiet interface reach the raw store (a query
/// of "the last second" sees them) while waking the consumer at most 20
/// times a second when idle.
pub const DEFAULT_BLOCK_TIMEOUT_MS: u32 = 50;

/// Smallest block: the kernel requires page-sized multiples, and a block
/// must hold at least one maximal packet to be useful.
pub const MIN_BLOCK_SIZE: usize = 64 * 1024;

/// Largest ring, 4 GiB: the mapping is locked into memory by the kernel,
/// and a typo (`block_count: 65536000`) must not try to take the host's RAM.
pub const MAX_RING_BYTES: usize = 4 << 30;

/// How packets are spread over the members of a fanout group (linux
/// `PACKET_FANOUT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutMode {
    /// By flow hash: both directions of a flow go to the same member, which
    /// is what flow reassembly needs. The default.
    Hash,
    /// Round robin.
    LoadBalance,
    /// By the CPU that received the packet.
    Cpu,
    /// Fill one member, then spill to the next.
    Rollover,
    /// Random.
    Random,
    /// By the NIC's receive queue.
    QueueMapping,
}

impl FanoutMode {
    pub(crate) fn kernel(self) -> u16 {
        match self {
            Self::Hash => 0,
            Self::LoadBalance => 1,
            Self::Cpu => 2,
            Self::Rollover => 3,
            Self::Random => 4,
            Self::QueueMapping => 5,
        }
    }
}

/// Spreading capture over several sockets (one per thread) with
/// `PACKET_FANOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutConfig {
    /// Fanout group id; unique per host among running captures. With several
    /// interfaces, interface `i` (in configuration order) uses `group_id + i`,
    /// because the kernel keeps a group on one device.
    pub group_id: u16,
    pub mode: FanoutMode,
    /// Number of members, one [`crate::Capture`] each (`Capture::open_fanout`).
    pub threads: usize,
    /// Reassemble IP fragments before hashing (`PACKET_FANOUT_FLAG_DEFRAG`),
    /// so that all fragments of a datagram reach the same member.
    pub defrag: bool,
}

/// Most members of one fanout group (the kernel's PACKET_FANOUT_MAX).
pub const MAX_FANOUT_THREADS: usize = 256;

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Interface names, or `"any"` for every interface (cooked, see the crate docs).
    pub interfaces: Vec<String>,
    /// Bytes kept of each packet ([`DEFAULT_SNAPLEN`]).
    pub snaplen: u32,
    /// Put the interfaces in promiscuous mode. Off by default: trawl watches
    /// the traffic of its own host and pods, which reaches it anyway;
    /// promiscuous mode on a shared segment only adds other hosts' traffic.
    /// Ignored for `any`, as libpcap does.
    pub promiscuous: bool,
    /// Bytes per ring block ([`DEFAULT_BLOCK_SIZE`]); a multiple of the page size.
    pub block_size: usize,
    /// Blocks per ring ([`DEFAULT_BLOCK_COUNT`]); ring = size × count, per interface
    /// and per fanout member.
    pub block_count: usize,
    /// Hand over a partly filled block after this long ([`DEFAULT_BLOCK_TIMEOUT_MS`]).
    pub block_timeout_ms: u32,
    pub fanout: Option<FanoutConfig>,
    /// A tcpdump-syntax filter run by the kernel; see [`crate::exclude_api_traffic`].
    pub filter: Option<String>,
    /// Drop packets this host sends (`PACKET_IGNORE_OUTGOING`). Off by
    /// default: an API call has a request and a response, and one of them is
    /// outgoing.
    pub ignore_outgoing: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: vec!["any".to_string()],
            snaplen: DEFAULT_SNAPLEN,
            promiscuous: false,
            block_size: DEFAULT_BLOCK_SIZE,
            block_count: DEFAULT_BLOCK_COUNT,
            block_timeout_ms: DEFAULT_BLOCK_TIMEOUT_MS,
            fanout: None,
            filter: None,
            ignore_outgoing: false,
        }
    }
}

impl CaptureConfig {
    /// Checks the sizes before any socket is opened, with a message that
    /// names the field and the fix.
    pub fn validate(&self, page_size: usize) -> Result<(), CaptureError> {
        let bad = |msg: String| Err(CaptureError::Config(msg));
        if self.interfaces.is_empty() {
            return bad("no interface given; use \"any\" to capture on all of them".into());
        }
        if self.interfaces.len() > 1 && self.interfaces.iter().any(|i| i == "any") {
            return bad("\"any\" already covers every interface; give it alone".into());
        }
        if self.snaplen == 0 {
            return bad("snaplen is 0; use at least 96 (headers) or the default 262144".into());
        }
        if self.block_size < MIN_BLOCK_SIZE
            || page_size == 0
            || !self.block_size.is_multiple_of(page_size)
        {
            return bad(format!(
                "block_size {} must be a multiple of the page size ({page_size}) and at least {MIN_BLOCK_SIZE}",
                self.block_size
            ));
        }
        if self.block_count == 0 {
            return bad("block_count is 0; the ring needs at least one block (default 64)".into());
        }
        let ring = self.block_size.checked_mul(self.block_count);
        if ring.is_none_or(|r| r > MAX_RING_BYTES) {
            return bad(format!(
                "ring of {} × {} bytes is larger than {MAX_RING_BYTES}; lower block_count",
                self.block_count, self.block_size
            ));
        }
        if let Some(f) = &self.fanout
            && (f.threads == 0 || f.threads > MAX_FANOUT_THREADS)
        {
            return bad(format!(
                "fanout threads {} must be in 1-{MAX_FANOUT_THREADS}",
                f.threads
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_mistakes_are_named() {
        assert!(CaptureConfig::default().validate(4096).is_ok());
        let c = CaptureConfig {
            block_size: 100_000,
            ..CaptureConfig::default()
        };
        assert!(
            c.validate(4096)
                .unwrap_err()
                .to_string()
                .contains("block_size 100000")
        );
        let c = CaptureConfig {
            block_count: 1 << 20,
            ..CaptureConfig::default()
        };
        assert!(
            c.validate(4096)
                .unwrap_err()
                .to_string()
                .contains("block_count")
        );
        let c = CaptureConfig {
            interfaces: vec!["any".into(), "eth0".into()],
            ..CaptureConfig::default()
        };
        assert!(c.validate(4096).is_err());
    }
}
