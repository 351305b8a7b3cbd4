//! Thin wrappers over the Linux calls capture needs (socket options, mmap,
//! poll, interface lookup), each turning a C return code into `io::Result`.
//! Kept in one file so that the `unsafe` of calling C is in one place; the
//! ring logic in `ring.rs` calls these and never `libc` directly, except for
//! the shared-memory accesses that are the ring itself.
//!
//! Structures and constants are written out from linux/if_packet.h and
//! linux/filter.h rather than taken from `libc`, whose coverage of these
//! varies between versions; their layouts are checked by tests below.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::filter::SockFilter;

pub(crate) const SOL_PACKET: libc::c_int = 263;
pub(crate) const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub(crate) const PACKET_RX_RING: libc::c_int = 5;
pub(crate) const PACKET_STATISTICS: libc::c_int = 6;
pub(crate) const PACKET_VERSION: libc::c_int = 10;
pub(crate) const PACKET_RESERVE: libc::c_int = 12;
pub(crate) const PACKET_FANOUT: libc::c_int = 18;
pub(crate) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub(crate) const PACKET_MR_PROMISC: u16 = 1;
pub(crate) const PACKET_FANOUT_FLAG_DEFRAG: u16 = 0x8000;
pub(crate) const TPACKET_V3: libc::c_int = 2;
pub(crate) const ETH_P_ALL: u16 = 0x0003;

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketReq3 {
    pub(crate) block_size: u32,
    pub(crate) block_nr: u32,
    pub(crate) frame_size: u32,
    pub(crate) frame_nr: u32,
    pub(crate) retire_blk_tov: u32,
    pub(crate) sizeof_priv: u32,
    pub(crate) feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketStatsV3 {
    pub(crate) packets: u32,
    pub(crate) drops: u32,
    pub(crate) freeze_q_cnt: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct PacketMreq {
    ifindex: libc::c_int,
    kind: u16,
    alen: u16,
    address: [u8; 8],
}

/// `struct sock_fprog`.
#[repr(C)]
#[derive(Debug)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An AF_PACKET socket of `kind` (SOCK_RAW or SOCK_DGRAM) that receives
/// nothing until it is bound with a protocol: protocol 0 at creation keeps
/// unfiltered packets out of the ring while it is being set up.
pub(crate) fn packet_socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; a non-negative result is a new
    // descriptor that nothing else owns, so OwnedFd may take it.
    let fd = cvt(unsafe { libc::socket(libc::AF_PACKET, kind | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket() and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt with a value of type `T` (a `#[repr(C)]` struct or an int).
pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `value` is a live reference, valid for reads of size_of::<T>()
    // bytes for the duration of the call; the kernel copies it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            len,
        )
    })?;
    Ok(())
}

pub(crate) fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &v)
}

/// Attaches a classic BPF program (SO_ATTACH_FILTER); the kernel copies it.
pub(crate) fn attach_filter(fd: &OwnedFd, prog: &[SockFilter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(io::Error::other)?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

pub(crate) fn add_promiscuous(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let mreq = PacketMreq {
        ifindex: libc::c_int::try_from(ifindex).map_err(io::Error::other)?,
        kind: PACKET_MR_PROMISC,
        ..PacketMreq::default()
    };
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
}

/// Reads and (kernel side) resets the socket's counters.
pub(crate) fn packet_stats(fd: &OwnedFd) -> io::Result<TpacketStatsV3> {
    let mut st = TpacketStatsV3::default();
    let mut len =
        libc::socklen_t::try_from(size_of::<TpacketStatsV3>()).map_err(io::Error::other)?;
    // SAFETY: `st` and `len` are live locals; the kernel writes at most `len`
    // bytes (the size of `st`) into `st` and the written length into `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            std::ptr::from_mut(&mut st).cast(),
            &raw mut len,
        )
    })?;
    Ok(st)
}

/// Binds to `ifindex` (0 = every interface) for all protocols.
pub(crate) fn bind(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: ETH_P_ALL.to_be(),
        sll_ifindex: libc::c_int::try_from(ifindex).map_err(io::Error::other)?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len =
        libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).map_err(io::Error::other)?;
    // SAFETY: `addr` is a live, fully initialised sockaddr_ll and `len` is its size.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&addr).cast(), len) })?;
    Ok(())
}

/// The interface's index, or an error naming it.
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// The interface's hardware type (ARPHRD_*), asked of the kernel with
/// SIOCGIFHWADDR so that it is answered in the calling thread's network
/// namespace (/sys/class/net shows the namespace sysfs was mounted in).
pub(crate) fn if_hw_type(name: &str) -> io::Result<u16> {
    /// `struct ifreq`: 16-byte name, then a 24-byte union whose sockaddr's
    /// family field (first two bytes) receives the hardware type.
    const IFREQ_LEN: usize = 40;
    let mut req = [0u8; IFREQ_LEN];
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    req.get_mut(..bytes.len())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?
        .copy_from_slice(bytes);
    // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket() and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `req` is a live, writable 40-byte buffer, the size of struct
    // ifreq that SIOCGIFHWADDR reads the name from and writes the result to.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, req.as_mut_ptr()) })?;
    let family = req
        .get(16..18)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(u16::from_ne_bytes([
        family.first().copied().unwrap_or(0),
        family.get(1).copied().unwrap_or(0),
    ]))
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

/// Maps the socket's ring (`len` bytes) shared with the kernel.
pub(crate) fn mmap_ring(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot overlap
    // any Rust object; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Unmaps a ring mapped by [`mmap_ring`].
///
/// # Safety
/// `ptr`/`len` must be exactly a mapping returned by `mmap_ring`, not yet
/// unmapped, and no reference into it may be used afterwards.
pub(crate) unsafe fn munmap_ring(ptr: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller (see above).
    let _ = unsafe { libc::munmap(ptr.cast(), len) };
}

/// The socket's pending error (SO_ERROR), cleared by reading it: how the
/// kernel reports an interface that went down or away (ENETDOWN, ENXIO).
pub(crate) fn take_socket_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).map_err(io::Error::other)?;
    // SAFETY: `err` and `len` are live locals; the kernel writes at most
    // `len` bytes (one int) into `err`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            std::ptr::from_mut(&mut err).cast(),
            &raw mut len,
        )
    })?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// Waits until one of `fds` is readable or has an error, or `timeout_ms`
/// passes. Returns the indices of descriptors that reported an error or
/// hang-up (empty on timeout, on EINTR, or when they are only readable).
pub(crate) fn poll_in(fds: &[RawFd], timeout_ms: libc::c_int) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        })
        .collect();
    let n = libc::nfds_t::try_from(pfds.len()).map_err(io::Error::other)?;
    // SAFETY: `pfds` is a live Vec of `n` initialised pollfd structs.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), n, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Vec::new());
        }
        return Err(e);
    }
    let bad = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & bad != 0)
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        // Sizes from linux/if_packet.h and linux/filter.h on 64-bit Linux.
        assert_eq!(size_of::<TpacketReq3>(), 28);
        assert_eq!(size_of::<TpacketStatsV3>(), 12);
        assert_eq!(size_of::<PacketMreq>(), 16);
        assert_eq!(size_of::<SockFprog>(), size_of::<libc::sock_fprog>());
        assert_eq!(size_of::<SockFilter>(), size_of::<libc::sock_filter>());
        assert_eq!(size_of::<libc::sockaddr_ll>(), 20);
    }
}
