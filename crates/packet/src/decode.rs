//! Zero-copy decoding from a link-layer frame to a transport segment.
//!
//! [`decode_link`] walks link headers (Ethernet II, 802.3 LLC/SNAP, 802.1Q and
//! 802.1ad tags, Linux cooked SLL/SLL2, BSD NULL/LOOP, raw IP) down to IPv4 or
//! IPv6, checks the IP header and walks IPv6 extension headers;
//! [`decode_transport`] reads the TCP or UDP header of the result. Both run
//! for every packet of every capture, so they only slice the frame: no copy,
//! no allocation, no checksum verification (checksum offload makes captured
//! checksums unreliable). Fragments are only recognised here; reassembly is
//! [`crate::defrag`]'s job, and flows are `trawl-flow`'s.

use std::net::IpAddr;

use crate::capfile::LinkType;

/// Why a frame could not be decoded down to IP. Counted by callers, never fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame too short for its {0} header")]
    Truncated(&'static str),
    #[error("not an IP packet")]
    NotIp,
    #[error("unsupported link type")]
    UnsupportedLink,
    #[error("malformed {0} header")]
    Malformed(&'static str),
}

/// An IPv4 or IPv6 packet, after link headers, VLAN tags and IPv6 extension
/// headers (hop-by-hop, routing, destination options, fragment) were walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol number (6 TCP, 17 UDP, …) after extension headers.
    pub protocol: u8,
    /// Upper-layer bytes as captured: may be shorter than `payload_len`
    /// when the snap length cut the frame.
    pub payload: &'a [u8],
    /// Upper-layer length the IP header declares (total length minus headers).
    pub payload_len: u32,
    /// Present when this packet is a fragment (offset > 0 or more-fragments set).
    pub fragment: Option<Fragment>,
    /// Outermost VLAN id when the frame was 802.1Q/802.1ad tagged.
    pub vlan: Option<u16>,
}

/// Where a fragment sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bits) or IPv6 fragment identification.
    pub id: u32,
    /// Byte offset of this fragment's payload in the datagram's payload.
    pub offset: u32,
    pub more: bool,
}

/// TCP header flag bits as on the wire (FIN = 0x01 … CWR = 0x80).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// Raw window field (unscaled).
    pub window: u16,
    /// Option bytes (between the fixed header and the data offset).
    pub options: &'a [u8],
    /// Data bytes as captured (may be cut by the snap length).
    pub payload: &'a [u8],
    /// Data length on the wire, from the IP length; `>= payload.len()`.
    pub payload_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Data bytes as captured (may be cut by the snap length).
    pub payload: &'a [u8],
    /// Data length from the UDP header; `>= payload.len()` unless malformed.
    pub payload_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    /// Another protocol (ICMP, SCTP, …): counted, not dissected.
    Other(u8),
}

use std::net::{Ipv4Addr, Ipv6Addr};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ).
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ tags still sent by some switches.
const ETHERTYPE_QINQ_9100: u16 = 0x9100;
const ETHERTYPE_QINQ_9200: u16 = 0x9200;
/// Ethernet type fields up to 1500 are 802.3 lengths: an LLC header follows.
const ETHER_MAX_8023_LENGTH: u16 = 1500;
const ETHERNET_HEADER_LEN: usize = 14;
const SLL_HEADER_LEN: usize = 16;
const SLL2_HEADER_LEN: usize = 20;

/// BSD address families in NULL/LOOP headers: AF_INET is 2 everywhere;
/// AF_INET6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD) or 30 (macOS).
const AF_INET: u32 = 2;
const AF_INET6_BSD: u32 = 24;
const AF_INET6_FREEBSD: u32 = 28;
const AF_INET6_DARWIN: u32 = 30;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

/// Decodes a captured frame of link type `link` down to its IP packet.
pub fn decode_link(link: LinkType, frame: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => decode_ethernet(frame),
        LinkType::LinuxSll => {
            let (h, rest) = frame
                .split_first_chunk::<SLL_HEADER_LEN>()
                .ok_or(DecodeError::Truncated("Linux SLL"))?;
            decode_ethertype(u16::from_be_bytes([h[14], h[15]]), rest)
        }
        LinkType::LinuxSll2 => {
            let (h, rest) = frame
                .split_first_chunk::<SLL2_HEADER_LEN>()
                .ok_or(DecodeError::Truncated("Linux SLL2"))?;
            decode_ethertype(u16::from_be_bytes([h[0], h[1]]), rest)
        }
        LinkType::Null => {
            let (h, rest) = frame
                .split_first_chunk::<4>()
                .ok_or(DecodeError::Truncated("loopback"))?;
            // Host byte order of the machine that captured: families are
            // small numbers, so a value with high bits set is the other order.
            let af = u32::from_le_bytes(*h);
            let af = if af > 0xffff { af.swap_bytes() } else { af };
            decode_family(af, rest)
        }
        LinkType::Loop => {
            let (h, rest) = frame
                .split_first_chunk::<4>()
                .ok_or(DecodeError::Truncated("loopback"))?;
            decode_family(u32::from_be_bytes(*h), rest)
        }
        LinkType::Raw => decode_ip(frame, None),
        LinkType::Ipv4 => decode_ipv4(frame, None),
        LinkType::Ipv6 => decode_ipv6(frame, None),
        LinkType::Other(_) => Err(DecodeError::UnsupportedLink),
    }
}

fn decode_ethernet(frame: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    let (h, rest) = frame
        .split_first_chunk::<ETHERNET_HEADER_LEN>()
        .ok_or(DecodeError::Truncated("Ethernet"))?;
    let ethertype = u16::from_be_bytes([h[12], h[13]]);
    if ethertype > ETHER_MAX_8023_LENGTH {
        return decode_ethertype(ethertype, rest);
    }
    // 802.3 with LLC: only SNAP (AA AA 03) with an EtherType OUI (RFC 1042's
    // 00-00-00, or 802.1H's 00-00-F8) carries IP; the rest (STP, CDP, …) not.
    match rest.split_first_chunk::<8>() {
        Some(([0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8, t0, t1], ip)) => {
            decode_ethertype(u16::from_be_bytes([*t0, *t1]), ip)
        }
        _ => Err(DecodeError::NotIp),
    }
}

/// Dispatches on an EtherType, popping any number of VLAN tags first.
#[inline]
fn decode_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    let mut vlan = None;
    loop {
        match ethertype {
            ETHERTYPE_IPV4 => return decode_ipv4(rest, vlan),
            ETHERTYPE_IPV6 => return decode_ipv6(rest, vlan),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_9100 | ETHERTYPE_QINQ_9200 => {
                // Each tag consumes 4 bytes, so the loop ends with the frame.
                let (tag, inner) = rest
                    .split_first_chunk::<4>()
                    .ok_or(DecodeError::Truncated("802.1Q"))?;
                if vlan.is_none() {
                    vlan = Some(u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff);
                }
                ethertype = u16::from_be_bytes([tag[2], tag[3]]);
                rest = inner;
            }
            _ => return Err(DecodeError::NotIp),
        }
    }
}

fn decode_family(af: u32, rest: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    match af {
        AF_INET => decode_ipv4(rest, None),
        AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => decode_ipv6(rest, None),
        _ => Err(DecodeError::NotIp),
    }
}

/// Raw IP: the version nibble says which.
fn decode_ip(b: &[u8], vlan: Option<u16>) -> Result<IpPacket<'_>, DecodeError> {
    match b.first().map(|v| v >> 4) {
        Some(4) => decode_ipv4(b, vlan),
        Some(6) => decode_ipv6(b, vlan),
        Some(_) => Err(DecodeError::NotIp),
        None => Err(DecodeError::Truncated("IP")),
    }
}

fn decode_ipv4(b: &[u8], vlan: Option<u16>) -> Result<IpPacket<'_>, DecodeError> {
    let (h, _) = b
        .split_first_chunk::<20>()
        .ok_or(DecodeError::Truncated("IPv4"))?;
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || header_len < 20 {
        return Err(DecodeError::Malformed("IPv4"));
    }
    let declared = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // Total length 0 is what Linux shows for TSO packets captured before
    // segmentation: the frame is the packet.
    let total_len = if declared == 0 { b.len() } else { declared };
    if total_len < header_len {
        return Err(DecodeError::Malformed("IPv4"));
    }
    // Trailing bytes past the total length (Ethernet padding) are not
    // payload; a frame shorter than it was cut by the snap length.
    let payload = b
        .get(header_len..total_len.min(b.len()))
        .ok_or(DecodeError::Truncated("IPv4"))?;
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let offset = u32::from(frag & 0x1fff) * 8;
    let more = frag & 0x2000 != 0;
    let fragment = if more || offset != 0 {
        Some(Fragment {
            id: u32::from(u16::from_be_bytes([h[4], h[5]])),
            offset,
            more,
        })
    } else {
        None
    };
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        protocol: h[9],
        payload,
        // total_len <= 65535 or the captured length (<= 256 KiB).
        payload_len: u32::try_from(total_len - header_len).unwrap_or(u32::MAX),
        fragment,
        vlan,
    })
}

fn decode_ipv6(b: &[u8], vlan: Option<u16>) -> Result<IpPacket<'_>, DecodeError> {
    let (h, rest) = b
        .split_first_chunk::<8>()
        .ok_or(DecodeError::Truncated("IPv6"))?;
    let (src, rest) = rest
        .split_first_chunk::<16>()
        .ok_or(DecodeError::Truncated("IPv6"))?;
    let (dst, rest) = rest
        .split_first_chunk::<16>()
        .ok_or(DecodeError::Truncated("IPv6"))?;
    if h[0] >> 4 != 6 {
        return Err(DecodeError::Malformed("IPv6"));
    }
    let declared = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // Payload length 0: a jumbogram or a TSO packet; the frame is the packet.
    let declared = if declared == 0 { rest.len() } else { declared };
    let mut body = rest.get(..declared).unwrap_or(rest);
    let mut protocol = h[6];
    let mut ext_len = 0usize;
    let mut fragment = None;
    // Every header consumes at least 8 bytes, so the walk ends with the packet.
    loop {
        match protocol {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                let &[next, units] = body
                    .first_chunk::<2>()
                    .ok_or(DecodeError::Truncated("IPv6 extension"))?;
                let len = if protocol == IPPROTO_AH {
                    (usize::from(units) + 2) * 4
                } else {
                    (usize::from(units) + 1) * 8
                };
                body = body
                    .get(len..)
                    .ok_or(DecodeError::Truncated("IPv6 extension"))?;
                ext_len += len;
                protocol = next;
            }
            IPPROTO_FRAGMENT => {
                let (f, after) = body
                    .split_first_chunk::<8>()
                    .ok_or(DecodeError::Truncated("IPv6 fragment"))?;
                body = after;
                ext_len += 8;
                protocol = f[0];
                let off_flags = u16::from_be_bytes([f[2], f[3]]);
                let offset = u32::from(off_flags & 0xfff8);
                let more = off_flags & 1 != 0;
                if more || offset != 0 {
                    // What follows is the fragmentable part, headers and all:
                    // reassembly needs it untouched.
                    fragment = Some(Fragment {
                        id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                        offset,
                        more,
                    });
                    break;
                }
                // An atomic fragment (RFC 6946) is a whole datagram: keep walking.
            }
            // Upper layer, or 59 (no next header).
            _ => break,
        }
    }
    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(*src)),
        dst: IpAddr::V6(Ipv6Addr::from(*dst)),
        protocol,
        payload: body,
        payload_len: u32::try_from(declared.saturating_sub(ext_len)).unwrap_or(u32::MAX),
        fragment,
        vlan,
    })
}

/// Decodes the TCP or UDP header of an IP payload. `payload_len` is the
/// upper-layer length the IP header declared ([`IpPacket::payload_len`]).
pub fn decode_transport(
    protocol: u8,
    payload: &[u8],
    payload_len: u32,
) -> Result<Transport<'_>, DecodeError> {
    match protocol {
        IPPROTO_TCP => decode_tcp(payload, payload_len).map(Transport::Tcp),
        IPPROTO_UDP => decode_udp(payload, payload_len).map(Transport::Udp),
        other => Ok(Transport::Other(other)),
    }
}

fn decode_tcp(b: &[u8], ip_payload_len: u32) -> Result<TcpSegment<'_>, DecodeError> {
    let (h, _) = b
        .split_first_chunk::<20>()
        .ok_or(DecodeError::Truncated("TCP"))?;
    let header_len = usize::from(h[12] >> 4) * 4;
    if header_len < 20 {
        return Err(DecodeError::Malformed("TCP"));
    }
    let (head, data) = b
        .split_at_checked(header_len)
        .ok_or(DecodeError::Truncated("TCP"))?;
    // header_len <= 60.
    let payload_len = ip_payload_len.saturating_sub(header_len as u32);
    let data = data.get(..payload_len as usize).unwrap_or(data);
    Ok(TcpSegment {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: TcpFlags(h[13]),
        window: u16::from_be_bytes([h[14], h[15]]),
        options: head.get(20..).unwrap_or(&[]),
        payload: data,
        payload_len,
    })
}

fn decode_udp(b: &[u8], ip_payload_len: u32) -> Result<UdpDatagram<'_>, DecodeError> {
    let (h, rest) = b
        .split_first_chunk::<8>()
        .ok_or(DecodeError::Truncated("UDP"))?;
    let len = u16::from_be_bytes([h[4], h[5]]);
    let payload_len = match len {
        // 0 is legal only in IPv6 jumbograms (RFC 2675): the IP length rules.
        0 => ip_payload_len.saturating_sub(8),
        1..=7 => return Err(DecodeError::Malformed("UDP")),
        _ => u32::from(len) - 8,
    };
    Ok(UdpDatagram {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        payload: rest.get(..payload_len as usize).unwrap_or(rest),
        payload_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capfile::CaptureReader;
    use crate::capfile::test_support::{manifest, shared_pcaps};

    // Builders: every frame in these tests is built here from its fields.

    fn ipv4(protocol: u8, payload: &[u8], id: u16, frag: u16) -> Vec<u8> {
        let mut v = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v[2..4].copy_from_slice(&(20 + payload.len() as u16).to_be_bytes());
        v[4..6].copy_from_slice(&id.to_be_bytes());
        v[6..8].copy_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(payload);
        v
    }

    fn tcp(options: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = vec![
            0x1f, 0x90, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ];
        v[12] = (((20 + options.len()) / 4) << 4) as u8;
        v.extend_from_slice(options);
        v.extend_from_slice(data);
        v
    }

    fn udp(data: &[u8]) -> Vec<u8> {
        let mut v = vec![0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0];
        v[4..6].copy_from_slice(&(8 + data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn ethernet_ipv4_tcp_with_padding() {
        let mut frame = eth(0x0800, &ipv4(6, &tcp(&[1, 1, 1, 1], b"GET"), 7, 0));
        frame.extend_from_slice(&[0; 6]); // Ethernet padding to 60 bytes
        let ip = decode_link(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.protocol),
            (v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), 6)
        );
        assert_eq!(
            (ip.payload.len(), ip.payload_len, ip.fragment, ip.vlan),
            (27, 27, None, None)
        );
        let Transport::Tcp(t) = decode_transport(ip.protocol, ip.payload, ip.payload_len).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.ack, t.window),
            (8080, 80, 1, 2, 0xffff)
        );
        assert_eq!(
            (t.flags.ack(), t.flags.syn(), t.flags.fin(), t.flags.rst()),
            (true, false, false, false)
        );
        assert_eq!(
            (t.options, t.payload, t.payload_len),
            (&[1, 1, 1, 1][..], &b"GET"[..], 3)
        );
    }

    #[test]
    fn snaplen_cut_keeps_declared_lengths() {
        let frame = eth(0x0800, &ipv4(6, &tcp(&[], &[7; 100]), 1, 0));
        let cut = &frame[..14 + 20 + 20 + 10];
        let ip = decode_link(LinkType::Ethernet, cut).unwrap();
        assert_eq!((ip.payload.len(), ip.payload_len), (30, 120));
        let Transport::Tcp(t) = decode_transport(ip.protocol, ip.payload, ip.payload_len).unwrap()
        else {
            panic!()
        };
        assert_eq!((t.payload.len(), t.payload_len), (10, 100));
        // Cut inside the TCP options.
        let frame = ipv4(6, &tcp(&[1; 20], b""), 1, 0);
        let ip = decode_link(LinkType::Ipv4, &frame[..20 + 24]).unwrap();
        assert_eq!(
            decode_transport(6, ip.payload, ip.payload_len),
            Err(DecodeError::Truncated("TCP"))
        );
        // Cut inside the IPv4 options.
        let mut frame = ipv4(17, &udp(b"x"), 1, 0);
        frame[0] = 0x46;
        assert_eq!(
            decode_link(LinkType::Ipv4, &frame[..22]),
            Err(DecodeError::Truncated("IPv4"))
        );
    }

    #[test]
    fn vlan_tags_single_stacked_and_old_qinq() {
        let ip = ipv4(17, &udp(b"q"), 1, 0);
        let mut one = vec![0x20, 0x05, 0x08, 0x00]; // PCP 1, VID 5
        one.extend_from_slice(&ip);
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(0x8100, &one))
                .unwrap()
                .vlan,
            Some(5)
        );
        for outer in [0x88a8, 0x9100] {
            let mut two = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00];
            two.extend_from_slice(&ip);
            let frame = eth(outer, &two);
            let p = decode_link(LinkType::Ethernet, &frame).unwrap();
            assert_eq!((p.vlan, p.protocol), (Some(100), 17));
        }
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(0x8100, &[0, 5])),
            Err(DecodeError::Truncated("802.1Q"))
        );
    }

    #[test]
    fn llc_snap_carries_ip_other_llc_does_not() {
        let ip = ipv4(17, &udp(b"s"), 1, 0);
        let mut snap = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
        snap.extend_from_slice(&ip);
        let len = snap.len() as u16;
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(len, &snap))
                .unwrap()
                .protocol,
            17
        );
        // Spanning tree: LLC 42 42 03.
        let stp = eth(38, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_link(LinkType::Ethernet, &stp),
            Err(DecodeError::NotIp)
        );
        // ARP.
        assert_eq!(
            decode_link(LinkType::Ethernet, &eth(0x0806, &[0; 28])),
            Err(DecodeError::NotIp)
        );
        assert_eq!(
            decode_link(LinkType::Ethernet, &[0; 13]),
            Err(DecodeError::Truncated("Ethernet"))
        );
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = ipv6(17, &udp(b"six"));
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd];
        sll.extend_from_slice(&ip);
        let p = decode_link(LinkType::LinuxSll, &sll).unwrap();
        assert_eq!((p.protocol, p.payload_len), (17, 11));
        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        assert_eq!(decode_link(LinkType::LinuxSll2, &sll2).unwrap(), p);
        assert_eq!(
            decode_link(LinkType::LinuxSll2, &sll2[..19]),
            Err(DecodeError::Truncated("Linux SLL2"))
        );
        // SLL with the VLAN tag libpcap reinserts.
        let mut tagged = vec![
            0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x81, 0x00, 0x00, 0x07, 0x86, 0xdd,
        ];
        tagged.extend_from_slice(&ip);
        assert_eq!(
            decode_link(LinkType::LinuxSll, &tagged).unwrap().vlan,
            Some(7)
        );
    }

    #[test]
    fn loopback_families_in_both_byte_orders() {
        let v4p = ipv4(6, &tcp(&[], b""), 1, 0);
        let v6p = ipv6(6, &tcp(&[], b""));
        for (af, body, want) in [(2u32, &v4p, 4), (24, &v6p, 6), (28, &v6p, 6), (30, &v6p, 6)] {
            for hdr in [af.to_le_bytes(), af.to_be_bytes()] {
                let mut f = hdr.to_vec();
                f.extend_from_slice(body);
                let p = decode_link(LinkType::Null, &f).unwrap();
                assert_eq!(if p.src.is_ipv4() { 4 } else { 6 }, want);
            }
            let mut f = af.to_be_bytes().to_vec();
            f.extend_from_slice(body);
            assert!(decode_link(LinkType::Loop, &f).is_ok());
        }
        let mut f = 7u32.to_le_bytes().to_vec();
        f.extend_from_slice(&v4p);
        assert_eq!(decode_link(LinkType::Null, &f), Err(DecodeError::NotIp));
    }

    #[test]
    fn raw_and_bare_ip_link_types() {
        let v4p = ipv4(1, b"ping", 1, 0);
        let v6p = ipv6(58, b"ping");
        assert_eq!(decode_link(LinkType::Raw, &v4p).unwrap().protocol, 1);
        assert_eq!(decode_link(LinkType::Raw, &v6p).unwrap().protocol, 58);
        assert_eq!(decode_link(LinkType::Ipv4, &v4p).unwrap().protocol, 1);
        assert_eq!(decode_link(LinkType::Ipv6, &v6p).unwrap().protocol, 58);
        assert_eq!(decode_link(LinkType::Raw, &[0x20]), Err(DecodeError::NotIp));
        assert_eq!(
            decode_link(LinkType::Raw, &[]),
            Err(DecodeError::Truncated("IP"))
        );
        assert_eq!(
            decode_link(LinkType::Ipv4, &v6p),
            Err(DecodeError::Malformed("IPv4"))
        );
        assert_eq!(
            decode_link(LinkType::Other(147), &v4p),
            Err(DecodeError::UnsupportedLink)
        );
        assert_eq!(decode_transport(1, b"ping", 4), Ok(Transport::Other(1)));
    }

    #[test]
    fn ipv4_header_checks() {
        let good = ipv4(17, &udp(b"abc"), 1, 0);
        let mut short_ihl = good.clone();
        short_ihl[0] = 0x44;
        assert_eq!(
            decode_link(LinkType::Ipv4, &short_ihl),
            Err(DecodeError::Malformed("IPv4"))
        );
        let mut total_below_header = good.clone();
        total_below_header[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            decode_link(LinkType::Ipv4, &total_below_header),
            Err(DecodeError::Malformed("IPv4"))
        );
        assert_eq!(
            decode_link(LinkType::Ipv4, &good[..19]),
            Err(DecodeError::Truncated("IPv4"))
        );
        // Total length 0 (TSO): the captured bytes are the packet.
        let mut tso = good.clone();
        tso[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(decode_link(LinkType::Ipv4, &tso).unwrap().payload_len, 11);
        // Options are skipped.
        let mut opts = vec![
            0x46, 0, 0, 35, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 0,
        ];
        opts.extend_from_slice(&udp(b"abc"));
        let p = decode_link(LinkType::Ipv4, &opts).unwrap();
        assert_eq!((p.payload.len(), p.payload_len), (11, 11));
    }

    #[test]
    fn ipv4_fragments_are_marked() {
        let frame = ipv4(17, &[0; 16], 0x1234, 0x2000);
        let first = decode_link(LinkType::Ipv4, &frame).unwrap();
        assert_eq!(
            first.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 0,
                more: true
            })
        );
        let frame = ipv4(17, &[0; 16], 0x1234, 2);
        let last = decode_link(LinkType::Ipv4, &frame).unwrap();
        assert_eq!(
            last.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 16,
                more: false
            })
        );
        // DF alone is not a fragment.
        let frame = ipv4(17, &udp(b""), 1, 0x4000);
        let df = decode_link(LinkType::Ipv4, &frame).unwrap();
        assert_eq!(df.fragment, None);
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let data = udp(b"payload");
        // hop-by-hop (8) → routing (16) → AH (12) → destination options (8) → UDP
        let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[51, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        ext.extend_from_slice(&data);
        let pkt = ipv6(0, &ext);
        let p = decode_link(LinkType::Ipv6, &pkt).unwrap();
        assert_eq!(
            (p.protocol, p.payload, p.payload_len),
            (17, &data[..], data.len() as u32)
        );
        // Cut in the middle of the routing header.
        assert_eq!(
            decode_link(LinkType::Ipv6, &pkt[..40 + 12]),
            Err(DecodeError::Truncated("IPv6 extension"))
        );
        // No next header.
        let pkt = ipv6(59, &[1, 2, 3]);
        let p = decode_link(LinkType::Ipv6, &pkt).unwrap();
        assert_eq!((p.protocol, p.payload.len()), (59, 3));
        // Ethernet padding after the declared payload is not payload.
        let mut padded = ipv6(17, &data);
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode_link(LinkType::Ipv6, &padded).unwrap().payload,
            &data[..]
        );
        assert_eq!(
            decode_link(LinkType::Ipv6, &padded[..39]),
            Err(DecodeError::Truncated("IPv6"))
        );
    }

    #[test]
    fn ipv6_fragment_header() {
        // Fragment at offset 1448, more fragments, id 0xdeadbeef.
        let mut fh = vec![17, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef];
        fh.extend_from_slice(&[9; 24]);
        let pkt = ipv6(44, &fh);
        let p = decode_link(LinkType::Ipv6, &pkt).unwrap();
        assert_eq!(
            p.fragment,
            Some(Fragment {
                id: 0xdead_beef,
                offset: 1448,
                more: true
            })
        );
        assert_eq!((p.protocol, p.payload.len(), p.payload_len), (17, 24, 24));
        // An atomic fragment (offset 0, no more) is a whole datagram.
        let mut atomic = vec![17, 0, 0, 0, 0, 0, 0, 1];
        atomic.extend_from_slice(&udp(b"x"));
        let pkt = ipv6(44, &atomic);
        let p = decode_link(LinkType::Ipv6, &pkt).unwrap();
        assert_eq!((p.fragment, p.protocol, p.payload_len), (None, 17, 9));
        assert_eq!(
            decode_link(LinkType::Ipv6, &ipv6(44, &[17, 0])),
            Err(DecodeError::Truncated("IPv6 fragment"))
        );
    }

    #[test]
    fn tcp_and_udp_header_checks() {
        let mut bad = tcp(&[], b"");
        bad[12] = 0x40;
        assert_eq!(
            decode_transport(6, &bad, 20),
            Err(DecodeError::Malformed("TCP"))
        );
        assert_eq!(
            decode_transport(6, &bad[..19], 20),
            Err(DecodeError::Truncated("TCP"))
        );
        // UDP length shorter than the IP payload: trailing bytes are not data.
        let mut u = udp(b"abc");
        u.extend_from_slice(b"junk");
        let Ok(Transport::Udp(d)) = decode_transport(17, &u, u.len() as u32) else {
            panic!()
        };
        assert_eq!(
            (d.src_port, d.dst_port, d.payload, d.payload_len),
            (12345, 53, &b"abc"[..], 3)
        );
        let mut short = udp(b"");
        short[5] = 7;
        assert_eq!(
            decode_transport(17, &short, 8),
            Err(DecodeError::Malformed("UDP"))
        );
        assert_eq!(
            decode_transport(17, &short[..7], 8),
            Err(DecodeError::Truncated("UDP"))
        );
        // Length 0 (jumbogram): the IP length rules.
        let mut zero = udp(b"xyz");
        zero[4..6].copy_from_slice(&[0, 0]);
        let Ok(Transport::Udp(d)) = decode_transport(17, &zero, 11) else {
            panic!()
        };
        assert_eq!((d.payload, d.payload_len), (&b"xyz"[..], 3));
    }

    /// Parses tshark's `frame.time_epoch` ("1422527998.630872889") exactly.
    fn epoch_ns(s: &str) -> i64 {
        let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
        let frac = format!("{frac:0<9}");
        sec.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
    }

    // Every frame of every shared capture is decoded; frames tshark names in
    // a truth file must match its time, addresses and ports.
    #[test]
    fn shared_captures_decode_and_match_tshark() {
        let Some(dir) = shared_pcaps("shared_captures_decode_and_match_tshark") else {
            return;
        };
        let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
        let mut checked = 0;
        for entry in manifest(&dir) {
            let path = dir.join(&entry.file);
            let mut r = CaptureReader::open(&path).unwrap();
            let mut frames = Vec::new();
            while let Some(p) = r.next_packet().unwrap() {
                frames.push((p.ts_ns, p.link, p.data.to_vec()));
            }
            for (_, link, data) in &frames {
                let outcome = match decode_link(*link, data) {
                    Ok(ip) if ip.fragment.is_some_and(|f| f.offset > 0) => {
                        "ip fragment".to_string()
                    }
                    Ok(ip) => match decode_transport(ip.protocol, ip.payload, ip.payload_len) {
                        Ok(Transport::Tcp(_)) => "tcp".to_string(),
                        Ok(Transport::Udp(_)) => "udp".to_string(),
                        Ok(Transport::Other(p)) => format!("ip proto {p}"),
                        Err(e) => panic!("{}: transport: {e}", entry.file),
                    },
                    // ARP, LLC (STP, CDP, NetBIOS), LLDP…: name them by
                    // EtherType or 802.3 length so a new kind shows up here.
                    Err(DecodeError::NotIp) if *link == LinkType::Ethernet => {
                        let t = u16::from_be_bytes([data[12], data[13]]);
                        if t <= 1500 {
                            "not ip: 802.3 LLC".to_string()
                        } else {
                            format!("not ip: ethertype {t:#06x}")
                        }
                    }
                    Err(DecodeError::NotIp) => "not ip".to_string(),
                    Err(e) => panic!("{}: {e}", entry.file),
                };
                *outcomes.entry(outcome).or_default() += 1;
            }
            let truth = std::fs::read_to_string(path.with_extension("truth.tsv")).unwrap();
            for row in truth.lines().skip(1) {
                let cols: Vec<&str> = row.split('\t').collect();
                let n: usize = cols[0].parse().unwrap();
                let (ts, link, data) = &frames[n - 1];
                assert_eq!(*ts, epoch_ns(cols[1]), "{} frame {n}", entry.file);
                let ip = decode_link(*link, data).unwrap();
                if !cols[2].is_empty() {
                    let want: (IpAddr, IpAddr) =
                        (cols[2].parse().unwrap(), cols[4].parse().unwrap());
                    assert_eq!((ip.src, ip.dst), want, "{} frame {n}", entry.file);
                }
                if !cols[3].is_empty() && ip.fragment.is_none() {
                    let ports =
                        match decode_transport(ip.protocol, ip.payload, ip.payload_len).unwrap() {
                            Transport::Tcp(t) => (t.src_port, t.dst_port),
                            Transport::Udp(u) => (u.src_port, u.dst_port),
                            Transport::Other(p) => panic!("{} frame {n}: protocol {p}", entry.file),
                        };
                    assert_eq!(
                        ports,
                        (cols[3].parse().unwrap(), cols[5].parse().unwrap()),
                        "{} frame {n}",
                        entry.file
                    );
                }
                checked += 1;
            }
        }
        eprintln!(
            "decode outcomes over the shared corpus: {outcomes:?}; {checked} truth rows matched"
        );
        assert!(checked > 4000);
        // tshark -Y '!ip && !ipv6' finds 20 frames over the corpus: ARP, and
        // LLC frames (STP, CDP, some VLAN-tagged); and 11 non-first fragments
        // (-Y 'ip.frag_offset>0 || ipv6.fraghdr.offset>0').
        let not_ip: u64 = outcomes
            .iter()
            .filter(|(k, _)| k.starts_with("not ip"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(not_ip, 20);
        assert_eq!(outcomes.get("ip fragment"), Some(&11));
    }
}
