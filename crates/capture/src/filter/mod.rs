//! Capture filters in tcpdump syntax, compiled to classic BPF: the program
//! the kernel runs on every packet before it reaches the ring
//! (`SO_ATTACH_FILTER`), and that [`bpf::run`] runs in user space on packets
//! from files. Our own compiler rather than libpcap: no C library to link,
//! and trawl needs a subset (host/net/port/protocol and their combinations)
//! whose meaning is pinned by tests against tcpdump itself
//! (`tests/filter_vs_tcpdump.rs`): same matching packets over real captures,
//! and tcpdump's own programs run through [`bpf::run`].
//!
//! `parse.rs` turns text into a syntax tree, `codegen.rs` lowers it to
//! libpcap's tests and emits jumps. Called by [`crate::Capture::open`] and by
//! anyone who filters packets from files (PCAP export).

pub mod bpf;
pub(crate) mod codegen;
pub(crate) mod parse;

use trawl_packet::LinkType;

use codegen::{Frame, Lower, Node};

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl SockFilter {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Self { code, jt, jf, k }
    }
}

/// Classic BPF opcode parts (linux/bpf_common.h, linux/filter.h).
pub mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;
    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;
    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;
    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;
}

/// A filter that does not parse or cannot be compiled, with the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture filter `{expr}`: at column {}: {message}", position + 1)]
pub struct FilterError {
    /// The whole expression as given.
    pub expr: String,
    /// Byte offset (0-based) of the offending token.
    pub position: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(expr: &str, position: usize, message: impl Into<String>) -> Self {
        Self {
            expr: expr.to_string(),
            position,
            message: message.into(),
        }
    }
}

/// Compiles a tcpdump-syntax filter for packets of link type `link` (as
/// stored in a pcap file: Ethernet, Linux cooked v1/v2, or raw IP). The
/// program returns `snaplen` for matching packets and 0 for the others.
pub fn compile_filter(
    expr: &str,
    link: LinkType,
    snaplen: u32,
) -> Result<Vec<SockFilter>, FilterError> {
    let frame = match link {
        LinkType::Ethernet => Frame::Ethernet,
        LinkType::LinuxSll => Frame::Sll,
        LinkType::LinuxSll2 => Frame::Sll2,
        LinkType::Raw => Frame::Raw,
        other => {
            return Err(FilterError::new(
                expr,
                0,
                format!(
                    "filters are compiled for Ethernet, Linux cooked and raw IP links, not {other:?}"
                ),
            ));
        }
    };
    compile(Some(expr), frame, snaplen, None)
}

/// Compiles an optional expression for `frame`; with `skip_outgoing_on` set
/// the program also drops packets the host sent on that interface (the
/// loopback device, where every packet is seen leaving and arriving; libpcap
/// drops the outgoing copy the same way).
pub(crate) fn compile(
    expr: Option<&str>,
    frame: Frame,
    snaplen: u32,
    skip_outgoing_on: Option<u32>,
) -> Result<Vec<SockFilter>, FilterError> {
    let text = expr.unwrap_or("");
    let mut node = match expr {
        Some(e) => Lower::new(frame, e).lower(&parse::parse(e)?)?,
        None => Node::Const(true),
    };
    if let Some(ifindex) = skip_outgoing_on {
        /// PACKET_OUTGOING from linux/if_packet.h.
        const PACKET_OUTGOING: u32 = 4;
        let test = |k, v| {
            Node::Test(codegen::Test {
                load: codegen::Load::Abs(codegen::Size::W, k),
                mask: None,
                cmp: codegen::Cmp::Eq(v),
            })
        };
        let outgoing_lo = Node::All(vec![
            test(codegen::anc::PKTTYPE, PACKET_OUTGOING),
            test(codegen::anc::IFINDEX, ifindex),
        ]);
        node = Node::All(vec![Node::Not(Box::new(outgoing_lo)), node]);
    }
    codegen::emit(&node, snaplen, text)
}

/// The filter that keeps trawl from capturing its own API traffic: `user`
/// (if any) and not TCP on `api_port` over loopback. The user's expression is
/// parenthesised so that its `or`s cannot swallow the exclusion.
pub fn exclude_api_traffic(user: Option<&str>, api_port: u16) -> String {
    let own = format!("not (tcp port {api_port} and (host 127.0.0.1 or host ::1))");
    match user {
        Some(u) if !u.trim().is_empty() => format!("({u}) and {own}"),
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::bpf::{Ancillary, run};
    use super::*;

    /// An Ethernet/IPv4/TCP frame from `src:sport` to `dst:dport`.
    fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 14 + 20 + 20];
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        p[14] = 0x45;
        p[23] = 6;
        p[26..30].copy_from_slice(&src);
        p[30..34].copy_from_slice(&dst);
        p[34..36].copy_from_slice(&sport.to_be_bytes());
        p[36..38].copy_from_slice(&dport.to_be_bytes());
        p
    }

    fn matches(expr: &str, pkt: &[u8]) -> bool {
        let prog = compile_filter(expr, LinkType::Ethernet, 65535).unwrap();
        run(&prog, pkt, pkt.len() as u32, Ancillary::default()) != 0
    }

    #[test]
    fn own_api_traffic_is_excluded() {
        let lo = [127, 0, 0, 1];
        let api = tcp4(lo, lo, 40000, 9900);
        let other = tcp4(lo, lo, 40000, 8080);
        let f = exclude_api_traffic(None, 9900);
        assert!(!matches(&f, &api));
        assert!(matches(&f, &other));
        // A user `or` stays inside its parentheses.
        let f = exclude_api_traffic(Some("port 8080 or port 9900"), 9900);
        assert!(!matches(&f, &api));
        assert!(matches(&f, &other));
        let remote = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 9900);
        assert!(matches(&f, &remote));
    }

    #[test]
    fn long_programs_get_trampolines() {
        // 60 hosts or'ed: the reject label is more than 255 instructions away.
        let hosts: Vec<String> = (0..60).map(|i| format!("host 10.0.{i}.1")).collect();
        let expr = format!("tcp and ({})", hosts.join(" or "));
        let prog = compile_filter(&expr, LinkType::Ethernet, 65535).unwrap();
        assert!(prog.len() > 300, "{}", prog.len());
        assert!(matches(&expr, &tcp4([10, 0, 59, 1], [1, 1, 1, 1], 1, 2)));
        assert!(matches(&expr, &tcp4([1, 1, 1, 1], [10, 0, 0, 1], 1, 2)));
        assert!(!matches(&expr, &tcp4([10, 0, 60, 1], [1, 1, 1, 1], 1, 2)));
    }

    #[test]
    fn too_long_filters_are_refused() {
        let hosts: Vec<String> = (0..400)
            .map(|i| format!("host 10.{}.{}.1", i / 256, i % 256))
            .collect();
        let e = compile_filter(&hosts.join(" or "), LinkType::Ethernet, 65535).unwrap_err();
        assert!(e.message.contains("4096"), "{e}");
    }

    #[test]
    fn unsupported_links_are_named() {
        let e = compile_filter("tcp", LinkType::Null, 65535).unwrap_err();
        assert!(e.message.contains("Null"), "{e}");
        let e = compile_filter("vlan", LinkType::Raw, 65535).unwrap_err();
        assert!(e.message.contains("Ethernet"), "{e}");
    }

    #[test]
    fn error_display_has_column() {
        let e = compile_filter("tcp port 99999", LinkType::Ethernet, 65535).unwrap_err();
        assert_eq!(
            e.to_string(),
            "capture filter `tcp port 99999`: at column 10: `99999` is not a port in 0-65535"
        );
    }

    #[test]
    fn kernel_cooked_uses_the_protocol_and_skips_outgoing_loopback() {
        let prog = compile(Some("udp port 53"), Frame::KernelCooked, 1000, Some(1)).unwrap();
        let mut ip = vec![0u8; 28];
        ip[0] = 0x45;
        ip[9] = 17;
        ip[22..24].copy_from_slice(&53u16.to_be_bytes());
        let inbound = Ancillary {
            protocol: 0x0800,
            pkttype: 0,
            ifindex: 1,
        };
        assert_eq!(run(&prog, &ip, 28, inbound), 1000);
        let out_lo = Ancillary {
            pkttype: 4,
            ..inbound
        };
        assert_eq!(run(&prog, &ip, 28, out_lo), 0);
        let out_eth = Ancillary {
            ifindex: 2,
            ..out_lo
        };
        assert_eq!(run(&prog, &ip, 28, out_eth), 1000);
        let arp = Ancillary {
            protocol: 0x0806,
            ..inbound
        };
        assert_eq!(run(&prog, &ip, 28, arp), 0);
    }
}
