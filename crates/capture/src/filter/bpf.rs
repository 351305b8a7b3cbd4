//! A classic BPF interpreter with the kernel's semantics: a load past the
//! captured bytes ends the program with 0 (drop), division by zero drops,
//! jumps only go forward. Used to run a compiled filter in user space where
//! no socket is involved (filtering a pcap on export, the raw store's
//! `--filter`) and by the tests that compare trawl's compiler with tcpdump's.
//!
//! Ancillary loads (`SKF_AD_*`) read from [`Ancillary`], which the caller
//! fills from what it knows about the packet; they only appear in programs
//! compiled for a live cooked socket.

use super::SockFilter;
use super::codegen::anc;
use super::op;

/// Packet metadata that the kernel exposes to filters as ancillary loads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ancillary {
    /// `SKF_AD_PROTOCOL`: the link-layer protocol (EtherType), host order.
    pub protocol: u16,
    /// `SKF_AD_PKTTYPE`: PACKET_HOST, PACKET_OUTGOING, … (linux/if_packet.h).
    pub pkttype: u8,
    /// `SKF_AD_IFINDEX`: the interface the packet was seen on.
    pub ifindex: u32,
}

/// Scratch memory words of classic BPF (BPF_MEMWORDS).
const MEM_WORDS: usize = 16;

/// Runs `prog` over `packet` (the captured bytes) whose length on the wire
/// was `wire_len`, and returns the program's verdict: 0 to drop, otherwise
/// the number of bytes to keep. A malformed program (a jump out of range, an
/// unknown opcode) drops the packet rather than panicking.
pub fn run(prog: &[SockFilter], packet: &[u8], wire_len: u32, ancillary: Ancillary) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEM_WORDS];
    let mut pc = 0usize;
    let load = |k: u32, size: usize| -> Option<u32> {
        if k >= anc::OFF && size == 4 {
            return match k {
                anc::PROTOCOL => Some(u32::from(ancillary.protocol)),
                anc::PKTTYPE => Some(u32::from(ancillary.pkttype)),
                anc::IFINDEX => Some(ancillary.ifindex),
                _ => None,
            };
        }
        let start = usize::try_from(k).ok()?;
        let bytes = packet.get(start..start.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    };
    loop {
        let Some(ins) = prog.get(pc) else { return 0 };
        pc += 1;
        let k = ins.k;
        let class = ins.code & 0x07;
        let size = match ins.code & 0x18 {
            op::W => 4,
            op::H => 2,
            _ => 1,
        };
        let mode = ins.code & 0xe0;
        match class {
            op::LD => {
                a = match mode {
                    op::IMM => k,
                    op::ABS => match load(k, size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    op::IND => match x.checked_add(k).and_then(|o| load(o, size)) {
                        Some(v) => v,
                        None => return 0,
                    },
                    op::MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    op::LEN => wire_len,
                    _ => return 0,
                };
            }
            op::LDX => {
                x = match mode {
                    op::IMM => k,
                    op::MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    op::LEN => wire_len,
                    op::MSH => match load(k, 1) {
                        Some(v) => (v & 0x0f) * 4,
                        None => return 0,
                    },
                    _ => return 0,
                };
            }
            op::ST | op::STX => {
                let v = if class == op::ST { a } else { x };
                match mem.get_mut(k as usize) {
                    Some(slot) => *slot = v,
                    None => return 0,
                }
            }
            op::ALU => {
                let src = if ins.code & op::X != 0 { x } else { k };
                a = match ins.code & 0xf0 {
                    op::ADD => a.wrapping_add(src),
                    op::SUB => a.wrapping_sub(src),
                    op::MUL => a.wrapping_mul(src),
                    op::DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    op::MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    op::OR => a | src,
                    op::AND => a & src,
                    op::XOR => a ^ src,
                    op::LSH => a.checked_shl(src).unwrap_or(0),
                    op::RSH => a.checked_shr(src).unwrap_or(0),
                    op::NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            op::JMP => {
                let src = if ins.code & op::X != 0 { x } else { k };
                let op_ = ins.code & 0xf0;
                if op_ == op::JA {
                    pc = match pc.checked_add(k as usize) {
                        Some(p) => p,
                        None => return 0,
                    };
                    continue;
                }
                let taken = match op_ {
                    op::JEQ => a == src,
                    op::JGT => a > src,
                    op::JGE => a >= src,
                    op::JSET => a & src != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            op::RET => {
                return match ins.code & 0x18 {
                    0x00 => k,
                    0x08 => x,
                    _ => a,
                };
            }
            _ => {
                // op::MISC
                if ins.code & 0xf8 == op::TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
        SockFilter::new(code, jt, jf, k)
    }

    #[test]
    fn loads_past_the_packet_drop() {
        // ldh [12]; ret #1000 — on a 13-byte packet the load fails.
        let prog = [
            ins(op::LD | op::H | op::ABS, 0, 0, 12),
            ins(op::RET | op::K, 0, 0, 1000),
        ];
        assert_eq!(run(&prog, &[0; 13], 13, Ancillary::default()), 0);
        assert_eq!(run(&prog, &[0; 14], 14, Ancillary::default()), 1000);
    }

    #[test]
    fn msh_and_indirect_loads() {
        // ldxb 4*([0]&0xf); ldh [x+0]; ret a  — IHL 5 -> x = 20.
        let prog = [
            ins(op::LDX | op::B | op::MSH, 0, 0, 0),
            ins(op::LD | op::H | op::IND, 0, 0, 0),
            ins(op::RET | 0x10, 0, 0, 0),
        ];
        let mut pkt = vec![0x45u8; 22];
        pkt[20] = 0x12;
        pkt[21] = 0x34;
        assert_eq!(run(&prog, &pkt, 22, Ancillary::default()), 0x1234);
    }

    #[test]
    fn division_by_zero_and_bad_jumps_drop() {
        let prog = [
            ins(op::ALU | op::DIV | op::K, 0, 0, 0),
            ins(op::RET | op::K, 0, 0, 1),
        ];
        assert_eq!(run(&prog, &[], 0, Ancillary::default()), 0);
        let prog = [ins(op::JMP | op::JA, 0, 0, 5)];
        assert_eq!(run(&prog, &[], 0, Ancillary::default()), 0);
    }

    #[test]
    fn ancillary_protocol() {
        let prog = [
            ins(op::LD | op::W | op::ABS, 0, 0, anc::PROTOCOL),
            ins(op::JMP | op::JEQ | op::K, 0, 1, 0x86dd),
            ins(op::RET | op::K, 0, 0, 9),
            ins(op::RET | op::K, 0, 0, 0),
        ];
        let v6 = Ancillary {
            protocol: 0x86dd,
            ..Ancillary::default()
        };
        assert_eq!(run(&prog, &[], 0, v6), 9);
        assert_eq!(run(&prog, &[], 0, Ancillary::default()), 0);
    }
}
