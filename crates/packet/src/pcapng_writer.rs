//! A pcapng writer: one Section Header Block, one Interface Description
//! Block per interface (declared up front or as they appear), and an
//! Enhanced Packet Block per packet, little-endian, with nanosecond
//! timestamps (`if_tsresol` = 9) on every interface.
//!
//! Used by `trawl export pcap --pcapng` (crate `trawl-rawstore`), which
//! declares one interface per node and link type so that a merged export
//! of several nodes keeps where each packet was seen. Reading is
//! [`crate::capfile::CaptureReader`]'s job.

use std::io::{self, Write};

use crate::capfile::{LinkType, MAX_CAPLEN};

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// Bytes of padding after `len` bytes to reach a 32-bit boundary.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Appends one option (code, length, value, padding).
fn push_option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    // Option values here are short names; longer ones are cut to fit u16.
    let value = value
        .get(..value.len().min(usize::from(u16::MAX) - 3))
        .unwrap_or(value);
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
    b.extend_from_slice(value);
    b.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

/// Writes a block of `ty` around `body` (already padded to 4 bytes).
fn write_block(w: &mut impl Write, ty: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(12 + body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
    w.write_all(&ty.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(body)?;
    w.write_all(&total.to_le_bytes())
}

/// Writes pcapng. Wrap the sink in a `BufWriter`: each packet is three
/// `write_all` calls.
#[derive(Debug)]
pub struct PcapNgWriter<W: Write> {
    w: W,
    /// Snap length of each interface, by interface id.
    snaplens: Vec<u32>,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the section header; `application` goes in `shb_userappl`.
    pub fn new(mut w: W, application: &str) -> io::Result<Self> {
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        // Section length unknown: -1.
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        push_option(&mut body, SHB_USERAPPL, application.as_bytes());
        push_option(&mut body, OPT_END, &[]);
        write_block(&mut w, SHB, &body)?;
        Ok(Self {
            w,
            snaplens: Vec::new(),
        })
    }

    /// Declares an interface and returns its id for [`Self::write_packet`].
    /// A `snaplen` of 0 or above `MAX_CAPLEN` becomes `MAX_CAPLEN`.
    pub fn add_interface(&mut self, link: LinkType, snaplen: u32, name: &str) -> io::Result<u32> {
        let snaplen = if snaplen == 0 || snaplen > MAX_CAPLEN {
            MAX_CAPLEN
        } else {
            snaplen
        };
        let link16 = u16::try_from(link.to_linktype()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "pcapng holds link types up to 65535",
            )
        })?;
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&link16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        if !name.is_empty() {
            push_option(&mut body, IF_NAME, name.as_bytes());
        }
        push_option(&mut body, IF_TSRESOL, &[9]);
        push_option(&mut body, OPT_END, &[]);
        write_block(&mut self.w, IDB, &body)?;
        let id = u32::try_from(self.snaplens.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many interfaces"))?;
        self.snaplens.push(snaplen);
        Ok(id)
    }

    /// Writes one packet seen on `interface` (an id from
    /// [`Self::add_interface`]). Data beyond the interface's snap length is
    /// cut; times before 1970 become 0.
    pub fn write_packet(
        &mut self,
        interface: u32,
        ts_ns: i64,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let Some(&snaplen) = self.snaplens.get(interface as usize) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface {interface} was not declared"),
            ));
        };
        let caplen = data.len().min(snaplen as usize);
        let data = data.get(..caplen).unwrap_or(data);
        // caplen <= snaplen <= MAX_CAPLEN, so it fits u32 and the block
        // length cannot overflow.
        let caplen32 = u32::try_from(caplen).unwrap_or(MAX_CAPLEN);
        let pad = pad4(caplen);
        let total = 32 + caplen32 + pad as u32;
        let ts = u64::try_from(ts_ns).unwrap_or(0);
        let mut h = [0u8; 28];
        let words = [
            EPB,
            total,
            interface,
            (ts >> 32) as u32,
            (ts & 0xffff_ffff) as u32,
            caplen32,
            orig_len.max(caplen32),
        ];
        for (chunk, v) in h.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        self.w.write_all(&h)?;
        self.w.write_all(data)?;
        let mut tail = [0u8; 7];
        let tail_len = pad + 4;
        if let Some(t) = tail.get_mut(pad..tail_len) {
            t.copy_from_slice(&total.to_le_bytes());
        }
        self.w.write_all(tail.get(..tail_len).unwrap_or(&[]))
    }

    pub fn get_ref(&self) -> &W {
        &self.w
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capfile::{CaptureFormat, CaptureReader};

    #[test]
    fn round_trips_through_the_reader() {
        let mut w = PcapNgWriter::new(Vec::new(), "trawl test").unwrap();
        let eth = w.add_interface(LinkType::Ethernet, 0, "node-a").unwrap();
        let raw = w.add_interface(LinkType::Raw, 100, "node-b").unwrap();
        // Lengths 0..=5 cover every padding; the last packet is cut by the
        // 100-byte snap length of interface 1.
        let mut sent = Vec::new();
        for n in 0..6u8 {
            let data: Vec<u8> = (0..n).collect();
            sent.push((1_700_000_000_000_000_000 + i64::from(n), eth, data));
        }
        sent.push((1_800_000_000_123_456_789, raw, vec![0x45; 150]));
        for (ts, iface, data) in &sent {
            w.write_packet(*iface, *ts, data, 1500).unwrap();
        }
        assert!(w.write_packet(7, 0, &[], 0).is_err());
        let bytes = w.into_inner();
        let mut r = CaptureReader::new(&bytes[..], "mem").unwrap();
        assert_eq!(r.format(), CaptureFormat::PcapNg);
        for (ts, iface, data) in &sent {
            let p = r.next_packet().unwrap().unwrap();
            assert_eq!(p.ts_ns, *ts);
            assert_eq!(p.interface, *iface);
            let want = &data[..data.len().min(if *iface == raw { 100 } else { 262_144 })];
            assert_eq!(p.data, want);
            assert_eq!(p.orig_len, 1500);
            assert_eq!(
                p.link,
                if *iface == raw {
                    LinkType::Raw
                } else {
                    LinkType::Ethernet
                }
            );
        }
        assert!(r.next_packet().unwrap().is_none());
    }
}
