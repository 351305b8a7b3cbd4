//! Syntax tree to classic BPF. Each primitive is lowered to a small boolean
//! tree of tests (load a field, maybe mask it, compare), exactly the tests
//! libpcap generates for it, then the tree is emitted as jumps: a test
//! branches straight to the "true" or "false" continuation of its parent, so
//! `and`/`or`/`not` cost no instructions of their own. Called by
//! [`super::compile_filter`] and by the ring code for the kernel filter.
//!
//! Classic BPF can only jump forward, and a conditional jump reaches at most
//! 255 instructions; longer jumps get an unconditional `ja` trampoline
//! placed right after the conditional jump (nothing falls through a
//! conditional jump in this generator, so the slot is free).

use std::net::IpAddr;

use super::FilterError;
use super::SockFilter;
use super::op;
use super::parse::{Dir, Expr, Prim, Proto, v4_word, v6_words};

/// How the packet the program sees begins; decides where the link-layer
/// protocol and the network header are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Ethernet II: EtherType at 12, network header at 14.
    Ethernet,
    /// Linux cooked v1 (16-byte header): protocol at 14, network header at 16.
    Sll,
    /// Linux cooked v2 (20-byte header): protocol at 0, network header at 20.
    Sll2,
    /// Raw IP: no link header, version in the first nibble.
    Raw,
    /// What a kernel filter sees on an AF_PACKET SOCK_DGRAM socket: the
    /// network header at 0 and the protocol only in the socket buffer
    /// (`SKF_AD_PROTOCOL`), as libpcap does for cooked captures.
    KernelCooked,
}

/// Kernel ancillary-data loads (`SKF_AD_OFF + n`), see linux/filter.h.
pub(crate) mod anc {
    pub(crate) const OFF: u32 = 0xffff_f000;
    pub(crate) const PROTOCOL: u32 = OFF;
    pub(crate) const PKTTYPE: u32 = OFF + 4;
    pub(crate) const IFINDEX: u32 = OFF + 8;
}

/// Longest program the Linux kernel accepts (BPF_MAXINSNS).
pub(crate) const MAX_INSNS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    W,
    H,
    B,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// A fixed offset from the start of the packet (or an ancillary offset).
    Abs(Size, u32),
    /// `ldxb 4*([ip]&0xf)` then `[x + ip + rel]`: past a variable-length IPv4 header.
    Ind { size: Size, ip: u32, rel: u32 },
    /// The packet's length on the wire.
    Len,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq(u32),
    Gt(u32),
    Ge(u32),
    Set(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Test {
    pub(crate) load: Load,
    pub(crate) mask: Option<u32>,
    pub(crate) cmp: Cmp,
}

/// A boolean tree of tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Test(Test),
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Const(bool),
}

fn test(load: Load, cmp: Cmp) -> Node {
    Node::Test(Test {
        load,
        mask: None,
        cmp,
    })
}

fn masked(load: Load, mask: u32, cmp: Cmp) -> Node {
    Node::Test(Test {
        load,
        mask: Some(mask),
        cmp,
    })
}

fn dir_node(dir: Dir, src: Node, dst: Node) -> Node {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::SrcOrDst => Node::Any(vec![src, dst]),
        Dir::SrcAndDst => Node::All(vec![src, dst]),
    }
}

const ETH_IP: u32 = 0x0800;
const ETH_IP6: u32 = 0x86dd;
const ETH_ARP: u32 = 0x0806;
const ETH_RARP: u32 = 0x8035;
/// IPv6 fragment extension header: libpcap looks one header further for
/// `tcp`/`udp`/… so that first fragments match too.
const IP6_FRAGMENT: u32 = 44;

/// Lowers a syntax tree to tests, in source order (a `vlan` shifts the
/// offsets of every primitive after it, as in libpcap).
pub(crate) struct Lower {
    frame: Frame,
    shift: u32,
    expr: String,
}

impl Lower {
    pub(crate) fn new(frame: Frame, expr: &str) -> Self {
        Self {
            frame,
            shift: 0,
            expr: expr.to_string(),
        }
    }

    fn net(&self) -> u32 {
        self.shift
            + match self.frame {
                Frame::Ethernet => 14,
                Frame::Sll => 16,
                Frame::Sll2 => 20,
                Frame::Raw | Frame::KernelCooked => 0,
            }
    }

    fn ethertype(&self, et: u32) -> Node {
        match self.frame {
            Frame::Ethernet => test(Load::Abs(Size::H, 12 + self.shift), Cmp::Eq(et)),
            Frame::Sll => test(Load::Abs(Size::H, 14 + self.shift), Cmp::Eq(et)),
            Frame::Sll2 => test(Load::Abs(Size::H, self.shift), Cmp::Eq(et)),
            Frame::KernelCooked => test(Load::Abs(Size::W, anc::PROTOCOL), Cmp::Eq(et)),
            Frame::Raw => match et {
                ETH_IP => masked(Load::Abs(Size::B, 0), 0xf0, Cmp::Eq(0x40)),
                ETH_IP6 => masked(Load::Abs(Size::B, 0), 0xf0, Cmp::Eq(0x60)),
                _ => Node::Const(false),
            },
        }
    }

    fn ip4_proto(&self, p: u32) -> Node {
        Node::All(vec![
            self.ethertype(ETH_IP),
            test(Load::Abs(Size::B, self.net() + 9), Cmp::Eq(p)),
        ])
    }

    fn ip6_proto(&self, p: u32) -> Node {
        let n = self.net();
        Node::All(vec![
            self.ethertype(ETH_IP6),
            Node::Any(vec![
                test(Load::Abs(Size::B, n + 6), Cmp::Eq(p)),
                Node::All(vec![
                    test(Load::Abs(Size::B, n + 6), Cmp::Eq(IP6_FRAGMENT)),
                    test(Load::Abs(Size::B, n + 40), Cmp::Eq(p)),
                ]),
            ]),
        ])
    }

    pub(crate) fn lower(&mut self, e: &Expr) -> Result<Node, FilterError> {
        Ok(match e {
            Expr::And(l, r) => {
                let l = self.lower(l)?;
                Node::All(vec![l, self.lower(r)?])
            }
            Expr::Or(l, r) => {
                let l = self.lower(l)?;
                Node::Any(vec![l, self.lower(r)?])
            }
            Expr::Not(x) => Node::Not(Box::new(self.lower(x)?)),
            Expr::Prim(p) => self.prim(p)?,
        })
    }

    fn prim(&mut self, p: &Prim) -> Result<Node, FilterError> {
        let n = self.net();
        Ok(match *p {
            Prim::Proto(Proto::Ip) => self.ethertype(ETH_IP),
            Prim::Proto(Proto::Ip6) => self.ethertype(ETH_IP6),
            Prim::Proto(Proto::Arp) => self.ethertype(ETH_ARP),
            Prim::Proto(Proto::Icmp) => self.ip4_proto(1),
            Prim::Proto(Proto::Icmp6) => self.ip6_proto(58),
            Prim::Proto(t) => {
                let num = u32::from(t.ip_proto().unwrap_or(0));
                Node::Any(vec![self.ip4_proto(num), self.ip6_proto(num)])
            }
            Prim::Host { proto, dir, addr } => self.addr(proto, dir, addr, None),
            Prim::Net {
                proto,
                dir,
                addr,
                prefix,
            } => self.addr(proto, dir, addr, Some(prefix)),
            Prim::Port { proto, dir, lo, hi } => {
                let protos: Vec<u32> = match proto {
                    Some(p) => vec![u32::from(p.ip_proto().unwrap_or(0))],
                    None => vec![132, 6, 17],
                };
                let cmp = |load: Load| -> Node {
                    if lo == hi {
                        test(load, Cmp::Eq(u32::from(lo)))
                    } else {
                        Node::All(vec![
                            test(load, Cmp::Ge(u32::from(lo))),
                            Node::Not(Box::new(test(load, Cmp::Gt(u32::from(hi))))),
                        ])
                    }
                };
                let ip6 = Node::All(vec![
                    self.ethertype(ETH_IP6),
                    Node::Any(
                        protos
                            .iter()
                            .map(|&p| test(Load::Abs(Size::B, n + 6), Cmp::Eq(p)))
                            .collect(),
                    ),
                    dir_node(
                        dir,
                        cmp(Load::Abs(Size::H, n + 40)),
                        cmp(Load::Abs(Size::H, n + 42)),
                    ),
                ]);
                let ind = |rel| Load::Ind {
                    size: Size::H,
                    ip: n,
                    rel,
                };
                let ip4 = Node::All(vec![
                    self.ethertype(ETH_IP),
                    Node::Any(
                        protos
                            .iter()
                            .map(|&p| test(Load::Abs(Size::B, n + 9), Cmp::Eq(p)))
                            .collect(),
                    ),
                    // Only the first fragment carries the ports.
                    Node::Not(Box::new(test(Load::Abs(Size::H, n + 6), Cmp::Set(0x1fff)))),
                    dir_node(dir, cmp(ind(0)), cmp(ind(2))),
                ]);
                Node::Any(vec![ip6, ip4])
            }
            Prim::Vlan(id) => {
                if self.frame != Frame::Ethernet {
                    return Err(FilterError::new(
                        &self.expr,
                        0,
                        "`vlan` is supported on Ethernet links only",
                    ));
                }
                let at = Load::Abs(Size::H, 12 + self.shift);
                let mut node = Node::Any(vec![
                    test(at, Cmp::Eq(0x8100)),
                    test(at, Cmp::Eq(0x88a8)),
                    test(at, Cmp::Eq(0x9100)),
                ]);
                if let Some(id) = id {
                    node = Node::All(vec![
                        node,
                        masked(
                            Load::Abs(Size::H, 14 + self.shift),
                            0x0fff,
                            Cmp::Eq(u32::from(id)),
                        ),
                    ]);
                }
                self.shift += 4;
                node
            }
            Prim::Less(len) => Node::Not(Box::new(test(Load::Len, Cmp::Gt(len)))),
            Prim::Greater(len) => test(Load::Len, Cmp::Ge(len)),
        })
    }

    fn addr(&self, proto: Option<Proto>, dir: Dir, addr: IpAddr, prefix: Option<u8>) -> Node {
        let n = self.net();
        match addr {
            IpAddr::V4(a) => {
                let prefix = u32::from(prefix.unwrap_or(32));
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                let word = v4_word(a);
                let at = |off: u32| {
                    if mask == u32::MAX {
                        test(Load::Abs(Size::W, off), Cmp::Eq(word))
                    } else {
                        masked(Load::Abs(Size::W, off), mask, Cmp::Eq(word))
                    }
                };
                let ip = Node::All(vec![
                    self.ethertype(ETH_IP),
                    dir_node(dir, at(n + 12), at(n + 16)),
                ]);
                // ARP/RARP sender and target protocol addresses (Ethernet/IPv4 layout).
                let arp_addrs = dir_node(dir, at(n + 14), at(n + 24));
                match proto {
                    Some(Proto::Ip) => ip,
                    Some(Proto::Arp) => Node::All(vec![self.ethertype(ETH_ARP), arp_addrs]),
                    _ => Node::Any(vec![
                        ip,
                        Node::All(vec![
                            Node::Any(vec![self.ethertype(ETH_ARP), self.ethertype(ETH_RARP)]),
                            arp_addrs,
                        ]),
                    ]),
                }
            }
            IpAddr::V6(a) => {
                let prefix = u32::from(prefix.unwrap_or(128));
                let words = v6_words(a);
                let at = |off: u32| {
                    let mut tests = Vec::new();
                    for (i, &w) in (0u32..).zip(words.iter()) {
                        let bits = prefix.saturating_sub(32 * i).min(32);
                        if bits == 0 {
                            break;
                        }
                        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                        let load = Load::Abs(Size::W, off + 4 * i);
                        tests.push(if bits == 32 {
                            test(load, Cmp::Eq(w))
                        } else {
                            masked(load, mask, Cmp::Eq(w & mask))
                        });
                    }
                    Node::All(tests)
                };
                Node::All(vec![
                    self.ethertype(ETH_IP6),
                    dir_node(dir, at(n + 8), at(n + 24)),
                ])
            }
        }
    }
}

type Label = usize;
const ACCEPT: Label = 0;
const REJECT: Label = 1;

#[derive(Debug, Clone, Copy)]
enum Ins {
    Op(SockFilter),
    Jmp {
        code: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Ja(Label),
    Mark(Label),
}

/// Emits a tree of tests as a classic BPF program that returns `snaplen` for
/// accepted packets and 0 for the rest.
pub(crate) fn emit(node: &Node, snaplen: u32, expr: &str) -> Result<Vec<SockFilter>, FilterError> {
    let mut e = Emitter {
        code: Vec::new(),
        next: 2,
    };
    e.node(node, ACCEPT, REJECT);
    e.code.push(Ins::Mark(ACCEPT));
    e.code
        .push(Ins::Op(SockFilter::new(op::RET | op::K, 0, 0, snaplen)));
    e.code.push(Ins::Mark(REJECT));
    e.code
        .push(Ins::Op(SockFilter::new(op::RET | op::K, 0, 0, 0)));
    e.finish(expr)
}

struct Emitter {
    code: Vec<Ins>,
    next: Label,
}

impl Emitter {
    fn label(&mut self) -> Label {
        self.next += 1;
        self.next - 1
    }

    fn op(&mut self, code: u16, k: u32) {
        self.code.push(Ins::Op(SockFilter::new(code, 0, 0, k)));
    }

    fn node(&mut self, n: &Node, t: Label, f: Label) {
        match n {
            Node::Const(true) => self.code.push(Ins::Ja(t)),
            Node::Const(false) => self.code.push(Ins::Ja(f)),
            Node::Not(x) => self.node(x, f, t),
            Node::All(xs) | Node::Any(xs) if xs.is_empty() => {
                self.code
                    .push(Ins::Ja(if matches!(n, Node::All(_)) { t } else { f }));
            }
            Node::All(xs) => {
                let last = xs.len() - 1;
                for (i, x) in xs.iter().enumerate() {
                    if i == last {
                        self.node(x, t, f);
                    } else {
                        let next = self.label();
                        self.node(x, next, f);
                        self.code.push(Ins::Mark(next));
                    }
                }
            }
            Node::Any(xs) => {
                let last = xs.len() - 1;
                for (i, x) in xs.iter().enumerate() {
                    if i == last {
                        self.node(x, t, f);
                    } else {
                        let next = self.label();
                        self.node(x, t, next);
                        self.code.push(Ins::Mark(next));
                    }
                }
            }
            Node::Test(tst) => {
                let size = |s: Size| match s {
                    Size::W => op::W,
                    Size::H => op::H,
                    Size::B => op::B,
                };
                match tst.load {
                    Load::Abs(s, k) => self.op(op::LD | size(s) | op::ABS, k),
                    Load::Ind { size: s, ip, rel } => {
                        self.op(op::LDX | op::B | op::MSH, ip);
                        self.op(op::LD | size(s) | op::IND, ip + rel);
                    }
                    Load::Len => self.op(op::LD | op::W | op::LEN, 0),
                }
                if let Some(m) = tst.mask {
                    self.op(op::ALU | op::AND | op::K, m);
                }
                let (j, k) = match tst.cmp {
                    Cmp::Eq(k) => (op::JEQ, k),
                    Cmp::Gt(k) => (op::JGT, k),
                    Cmp::Ge(k) => (op::JGE, k),
                    Cmp::Set(k) => (op::JSET, k),
                };
                self.code.push(Ins::Jmp {
                    code: op::JMP | j | op::K,
                    k,
                    jt: t,
                    jf: f,
                });
            }
        }
    }

    /// Resolves labels, adding trampolines for conditional jumps that reach
    /// past 255 instructions, and drops `ja` to the very next instruction.
    fn finish(mut self, expr: &str) -> Result<Vec<SockFilter>, FilterError> {
        // `ja` straight to a mark that follows it (only marks between).
        let mut i = 0;
        while i < self.code.len() {
            if let Some(Ins::Ja(l)) = self.code.get(i).copied() {
                let falls = self
                    .code
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|x| matches!(x, Ins::Mark(_)))
                    .any(|x| matches!(x, Ins::Mark(m) if *m == l));
                if falls {
                    self.code.remove(i);
                    continue;
                }
            }
            i += 1;
        }
        loop {
            let (pcs, labels) = self.layout();
            if pcs.len() > MAX_INSNS * 4 {
                break;
            }
            let far = self
                .code
                .iter()
                .enumerate()
                .find_map(|(i, ins)| match *ins {
                    Ins::Jmp { jt, jf, .. } => {
                        let pc = pcs.get(i).copied().unwrap_or(0);
                        let d =
                            |l: Label| labels.get(l).copied().unwrap_or(0).saturating_sub(pc + 1);
                        if d(jt) > 255 {
                            Some((i, true))
                        } else if d(jf) > 255 {
                            Some((i, false))
                        } else {
                            None
                        }
                    }
                    _ => None,
                });
            let Some((i, is_t)) = far else { break };
            let tramp = self.label();
            if let Some(Ins::Jmp { jt, jf, .. }) = self.code.get_mut(i) {
                let target = if is_t {
                    std::mem::replace(jt, tramp)
                } else {
                    std::mem::replace(jf, tramp)
                };
                self.code.insert(i + 1, Ins::Mark(tramp));
                self.code.insert(i + 2, Ins::Ja(target));
            }
        }
        let (pcs, labels) = self.layout();
        let mut out = Vec::new();
        for (i, ins) in self.code.iter().enumerate() {
            let pc = pcs.get(i).copied().unwrap_or(0);
            let dist = |l: Label| labels.get(l).copied().unwrap_or(0).saturating_sub(pc + 1);
            match *ins {
                Ins::Op(f) => out.push(f),
                Ins::Mark(_) => {}
                Ins::Ja(l) => {
                    let d = u32::try_from(dist(l)).unwrap_or(u32::MAX);
                    out.push(SockFilter::new(op::JMP | op::JA, 0, 0, d));
                }
                Ins::Jmp { code, k, jt, jf } => {
                    let (Ok(jt), Ok(jf)) = (u8::try_from(dist(jt)), u8::try_from(dist(jf))) else {
                        return Err(too_long(expr, out.len()));
                    };
                    out.push(SockFilter::new(code, jt, jf, k));
                }
            }
        }
        if out.len() > MAX_INSNS {
            return Err(too_long(expr, out.len()));
        }
        Ok(out)
    }

    /// The program counter of each instruction and of each label.
    fn layout(&self) -> (Vec<usize>, Vec<usize>) {
        let mut pcs = Vec::with_capacity(self.code.len());
        let mut labels = vec![0; self.next];
        let mut pc = 0;
        for ins in &self.code {
            pcs.push(pc);
            match ins {
                Ins::Mark(l) => {
                    if let Some(slot) = labels.get_mut(*l) {
                        *slot = pc;
                    }
                }
                _ => pc += 1,
            }
        }
        (pcs, labels)
    }
}

fn too_long(expr: &str, n: usize) -> FilterError {
    FilterError::new(
        expr,
        0,
        format!(
            "filter compiles to {n} or more instructions, past the kernel's limit of {MAX_INSNS}; simplify it"
        ),
    )
}
