//! Sends UDP datagrams at a fixed rate for a fixed time: the traffic source
//! of `bench/capture.sh` (run inside the sender's network namespace). Paces
//! in bursts of [`BURST`] against a monotonic schedule, so a slow moment is
//! caught up rather than lost; prints how many it really sent and the rate
//! it reached, which is lower than asked when the host cannot keep up.
//!
//! A burst goes out in one `sendmmsg` call: one system call per datagram
//! would make the sender, not the capture, the bottleneck of the benchmark.
//!
//! ```sh
//! udp_blast --to 10.200.1.1:9000 --pps 200000 --seconds 10 --size 64 --threads 2
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use anyhow::{Context, bail};

/// Datagrams sent back to back between looks at the clock.
const BURST: u64 = 32;

fn main() -> anyhow::Result<()> {
    let (mut to, mut pps, mut seconds, mut size, mut threads) =
        (None, 100_000u64, 10u64, 64usize, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--to" => to = Some(val()?.parse::<SocketAddr>()?),
            "--pps" => pps = val()?.parse()?,
            "--seconds" => seconds = val()?.parse()?,
            "--size" => size = val()?.parse()?,
            "--threads" => threads = val()?.parse::<u64>()?.max(1),
            other => bail!(
                "unknown argument {other}; use --to ADDR:PORT --pps N --seconds N --size BYTES [--threads N]"
            ),
        }
    }
    let to = to.context("--to ADDR:PORT is required")?;
    let start = Instant::now();
    // Each thread sends its share from its own socket (its own flow).
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let share = pps / threads + u64::from(i < pps % threads);
            std::thread::spawn(move || blast(to, share, seconds, size))
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

/// Sends `pps` datagrams a second for `seconds`; returns (attempted, failed).
fn blast(to: SocketAddr, pps: u64, seconds: u64, size: usize) -> anyhow::Result<(u64, u64)> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(to)?;
    let payload = vec![0x5au8; size];
    let start = Instant::now();
    let total = pps * seconds;
    let mut sent = 0u64;
    let mut errors = 0u64;
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
        let ok = send_burst(&sock, &payload, n as usize);
        errors += n - ok as u64;
        sent += n;
    }
    Ok((sent, errors))
}

/// Sends `n` copies of `payload` on the connected socket with sendmmsg;
/// returns how many the kernel took (ENOBUFS under overload counts as not sent).
fn send_burst(sock: &UdpSocket, payload: &[u8], n: usize) -> usize {
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no address,
    // no control data), and msg_iov is set right below.
    let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
    for m in &mut msgs {
        m.msg_hdr.msg_iov = &raw mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let len = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    let mut done = 0usize;
    while done < msgs.len() {
        let rest = msgs.get_mut(done..).unwrap_or_default();
        let len_rest = u32::try_from(rest.len()).unwrap_or(len);
        // SAFETY: `rest` is a live slice of initialised mmsghdr whose single
        // iovec points to `payload`, which the kernel only reads; both outlive
        // the call.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), rest.as_mut_ptr(), len_rest, 0) };
        if r <= 0 {
            break;
        }
        done += r as usize;
    }
    done
}
