//! Sends ready-made Ethernet/IPv4/UDP frames straight to an interface with
//! an AF_PACKET socket, at a fixed rate for a fixed time: the fast traffic
//! source of `bench/capture.sh` (`SENDER=frame`). `udp_blast` goes through
//! the whole UDP/IP stack on both ends and tops out near 250 000 packets/s
//! on the project's 2-core VM, below what either capture tool can take, so
//! the benchmark could not find a loss-free limit with it.
//!
//! What makes this one cheaper: `PACKET_QDISC_BYPASS` skips the queueing
//! discipline, a burst of [`BURST`] frames goes out in one `sendmmsg`, and
//! the frames carry a destination MAC address no interface has, so the
//! receiving side hands them to packet sockets (captures) and then drops
//! them at once (`PACKET_OTHERHOST`) instead of running IP and UDP on them
//! and answering with ICMP. Prints the same `sent=… pps=…` line as
//! `udp_blast`.
//!
//! ```sh
//! frame_blast --interface veth0 --pps 800000 --seconds 10 --size 64 --threads 2
//! ```

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Frames sent back to back between looks at the clock.
const BURST: u64 = 64;

/// Largest UDP payload: the frame must fit a standard 1500-byte MTU.
const MAX_PAYLOAD: usize = 1500 - 20 - 8;

/// Destination MAC of every frame: locally administered and on no
/// interface, so receivers see `PACKET_OTHERHOST` and drop it early.
const DST_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x02];

fn main() -> anyhow::Result<()> {
    let (mut iface, mut pps, mut seconds, mut size, mut threads) =
        (None, 100_000u64, 10u64, 64usize, 1u64);
    let (mut src, mut dst, mut port) = ([10u8, 200, 240, 2], [10u8, 200, 240, 1], 9000u16);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--interface" => iface = Some(val()?),
            "--pps" => pps = val()?.parse()?,
            "--seconds" => seconds = val()?.parse()?,
            "--size" => size = val()?.parse()?,
            "--threads" => threads = val()?.parse::<u64>()?.max(1),
            "--src" => src = val()?.parse::<std::net::Ipv4Addr>()?.octets(),
            "--dst" => dst = val()?.parse::<std::net::Ipv4Addr>()?.octets(),
            "--port" => port = val()?.parse()?,
            other => bail!(
                "unknown argument {other}; use --interface IF --pps N --seconds N --size BYTES [--threads N] [--src IP --dst IP --port N]"
            ),
        }
    }
    let iface = iface.context("--interface IF is required")?;
    if size > MAX_PAYLOAD {
        bail!("--size {size} is over {MAX_PAYLOAD} bytes (one 1500-byte MTU frame)");
    }
    let ifindex = if_index(&iface)?;
    let start = Instant::now();
    // Each thread sends its share from its own socket, with its own UDP
    // source port (its own flow).
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let share = pps / threads + u64::from(i < pps % threads);
            let sport = 40_000 + u16::try_from(i).unwrap_or(0);
            let frame = udp_frame(src, dst, sport, port, size);
            std::thread::spawn(move || blast(ifindex, &frame, share, seconds))
        })
        .collect();
    let (mut sent, mut errors) = (0u64, 0u64);
    for w in workers {
        let (s, e) = w
            .join()
            .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
        sent += s;
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent={} errors={errors} seconds={secs:.2} pps={:.0}",
        sent - errors,
        (sent - errors) as f64 / secs
    );
    Ok(())
}

/// RFC 1071 checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let hi = u32::from(c.first().copied().unwrap_or(0));
        let lo = u32::from(c.get(1).copied().unwrap_or(0));
        sum += (hi << 8) | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet/IPv4/UDP frame with `size` payload bytes (UDP checksum 0:
/// optional over IPv4).
fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, size: usize) -> Vec<u8> {
    let ip_len = u16::try_from(20 + 8 + size).unwrap_or(u16::MAX);
    let mut f = Vec::with_capacity(14 + usize::from(ip_len));
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(ip_len - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(14 + usize::from(ip_len), 0x5a);
    f
}

fn if_index(name: &str) -> anyhow::Result<i32> {
    let c = CString::new(name)?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("interface {name}"));
    }
    Ok(i32::try_from(idx)?)
}

/// An AF_PACKET socket bound to `ifindex` for sending only (protocol 0:
/// it receives nothing), with the qdisc bypassed.
fn tx_socket(ifindex: i32) -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("AF_PACKET socket (needs root)");
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option value is a live c_int of the stated length.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error()).context("PACKET_QDISC_BYPASS");
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is valid before the
    // fields are set.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` is a live sockaddr_ll of the stated length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error()).context("binding the AF_PACKET socket");
    }
    Ok(fd)
}

/// Sends `pps` frames a second for `seconds`; returns (attempted, failed).
fn blast(ifindex: i32, frame: &[u8], pps: u64, seconds: u64) -> anyhow::Result<(u64, u64)> {
    let sock = tx_socket(ifindex)?;
    let start = Instant::now();
    let total = pps * seconds;
    let (mut sent, mut errors) = (0u64, 0u64);
    while sent < total {
        let due = start + Duration::from_secs_f64(sent as f64 / pps as f64);
        let now = Instant::now();
        if due > now {
            let wait = due - now;
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait);
            }
            continue;
        }
        let n = BURST.min(total - sent);
        let ok = send_burst(&sock, frame, n as usize);
        errors += n - ok as u64;
        sent += n;
    }
    Ok((sent, errors))
}

/// Sends `n` copies of `frame` with sendmmsg; returns how many the kernel
/// took (ENOBUFS under overload counts as not sent).
fn send_burst(sock: &OwnedFd, frame: &[u8], n: usize) -> usize {
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr().cast_mut().cast(),
        iov_len: frame.len(),
    };
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no address:
    // the socket is bound; no control data), and msg_iov is set below.
    let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
    for m in &mut msgs {
        m.msg_hdr.msg_iov = &raw mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0usize;
    while done < msgs.len() {
        let rest = msgs.get_mut(done..).unwrap_or_default();
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        // SAFETY: `rest` is a live slice of initialised mmsghdr whose single
        // iovec points to `frame`, which the kernel only reads; both outlive
        // the call.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), rest.as_mut_ptr(), len, 0) };
        if r <= 0 {
            break;
        }
        done += r as usize;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_a_valid_udp_datagram() {
        let f = udp_frame([10, 0, 0, 2], [10, 0, 0, 1], 40000, 9000, 64);
        assert_eq!(f.len(), 14 + 20 + 8 + 64);
        // A correct IPv4 header checksums to zero.
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(&f[36..38], &9000u16.to_be_bytes());
        assert_eq!(&f[38..40], &72u16.to_be_bytes());
    }
}
