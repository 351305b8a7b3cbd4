//! The tcpdump (pcap-filter) expression language, text to syntax tree: a
//! lexer and a recursive-descent parser for the subset trawl compiles
//! (`host`, `net`, `port`, `portrange` with `src`/`dst` and a protocol
//! qualifier, `ip`, `ip6`, `arp`, `tcp`, `udp`, `sctp`, `icmp`, `icmp6`,
//! `vlan [id]`, `less`/`greater`, `and`/`&&`, `or`/`||`, `not`/`!`,
//! parentheses). Called by [`super::compile_filter`]; code generation is in
//! `codegen.rs`.
//!
//! Two pcap-filter rules that surprise people are kept on purpose so that a
//! filter means what it means to tcpdump: `and` and `or` have the *same*
//! precedence and associate left to right (`a or b and c` is `(a or b) and
//! c`), and a bare value after `and`/`or` reuses the qualifiers of the
//! primitive before it (`port 80 or 443`, `host 10.0.0.1 or 10.0.0.2`).
//! Host and port names are not looked up: a filter compiled on one node must
//! mean the same on every node, so only numeric addresses and ports are taken.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::FilterError;

/// Longest filter expression accepted. A capture filter is typed by a person
/// or built from a short template; 64 KiB is far beyond any real one and keeps
/// a pasted file from being parsed and compiled.
pub(crate) const MAX_EXPR_BYTES: usize = 64 * 1024;

/// Deepest nesting of parentheses and `not`s accepted: the parser recurses
/// once per level, and no hand-written filter nests a hundred deep.
const MAX_DEPTH: usize = 100;

/// Most primitives in one filter. Compilation recurses once per operator,
/// and a kernel program (at most 4096 instructions, some 10 per primitive)
/// cannot hold more than a few hundred anyway.
const MAX_PRIMITIVES: usize = 512;

/// A protocol qualifier or protocol primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Ip,
    Ip6,
    Arp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp6,
}

impl Proto {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "ip" => Self::Ip,
            "ip6" => Self::Ip6,
            "arp" => Self::Arp,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "sctp" => Self::Sctp,
            "icmp" => Self::Icmp,
            "icmp6" => Self::Icmp6,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Arp => "arp",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::Icmp6 => "icmp6",
        }
    }

    /// The IP protocol number, for the transport protocols.
    pub(crate) fn ip_proto(self) -> Option<u8> {
        match self {
            Self::Tcp => Some(6),
            Self::Udp => Some(17),
            Self::Sctp => Some(132),
            Self::Icmp => Some(1),
            Self::Icmp6 => Some(58),
            Self::Ip | Self::Ip6 | Self::Arp => None,
        }
    }
}

/// Which address or port of a packet a primitive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
}

/// One primitive of the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prim {
    /// `ip`, `tcp`, … alone: the packet is of that protocol.
    Proto(Proto),
    Host {
        proto: Option<Proto>,
        dir: Dir,
        addr: IpAddr,
    },
    Net {
        proto: Option<Proto>,
        dir: Dir,
        addr: IpAddr,
        prefix: u8,
    },
    /// `port` (lo == hi) and `portrange lo-hi`.
    Port {
        proto: Option<Proto>,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    /// `vlan [id]`: an 802.1Q/802.1ad tag; shifts later primitives by 4 bytes.
    Vlan(Option<u16>),
    /// `less N`: wire length <= N.
    Less(u32),
    /// `greater N`: wire length >= N.
    Greater(u32),
}

/// The syntax tree of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Prim(Prim),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    LParen,
    RParen,
    Not,
    And,
    Or,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn lex(expr: &str) -> Result<Vec<Token>, FilterError> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        let start = i;
        let word_char = |c: u8| c.is_ascii_alphanumeric() || b"._:/-".contains(&c);
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                out.push(Token {
                    tok: Tok::LParen,
                    pos: start,
                });
                i += 1;
            }
            b')' => {
                out.push(Token {
                    tok: Tok::RParen,
                    pos: start,
                });
                i += 1;
            }
            b'!' => {
                out.push(Token {
                    tok: Tok::Not,
                    pos: start,
                });
                i += 1;
            }
            b'&' | b'|' => {
                if bytes.get(i + 1) != Some(&c) {
                    return Err(FilterError::new(
                        expr,
                        start,
                        format!("`{}` alone is not an operator; use `{0}{0}`", c as char),
                    ));
                }
                let tok = if c == b'&' { Tok::And } else { Tok::Or };
                out.push(Token { tok, pos: start });
                i += 2;
            }
            c if word_char(c) => {
                while bytes.get(i).is_some_and(|&c| word_char(c)) {
                    i += 1;
                }
                let word = expr.get(start..i).unwrap_or_default();
                let tok = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    w => Tok::Word(w.to_string()),
                };
                out.push(Token { tok, pos: start });
            }
            _ => {
                let ch = expr
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(FilterError::new(
                    expr,
                    start,
                    format!("unexpected character `{ch}`"),
                ));
            }
        }
    }
    Ok(out)
}

/// Qualifiers of the last primitive with a value, for pcap's implicit
/// qualifier rule (`port 80 or 443`).
#[derive(Debug, Clone, Copy)]
struct Quals {
    proto: Option<Proto>,
    dir: Dir,
    kind: Kind,
}

struct Parser<'a> {
    expr: &'a str,
    toks: Vec<Token>,
    i: usize,
    last: Option<Quals>,
    depth: usize,
    primitives: usize,
}

/// Parses a whole filter expression.
pub(crate) fn parse(expr: &str) -> Result<Expr, FilterError> {
    if expr.len() > MAX_EXPR_BYTES {
        return Err(FilterError::new(
            expr,
            MAX_EXPR_BYTES,
            format!("filter longer than {MAX_EXPR_BYTES} bytes"),
        ));
    }
    let toks = lex(expr)?;
    if toks.is_empty() {
        return Err(FilterError::new(
            expr,
            0,
            "empty filter; leave the filter out to capture everything",
        ));
    }
    let mut p = Parser {
        expr,
        toks,
        i: 0,
        last: None,
        depth: 0,
        primitives: 0,
    };
    let e = p.or_and()?;
    if let Some(t) = p.peek() {
        let msg = match t.tok {
            Tok::RParen => "`)` without a matching `(`".to_string(),
            _ => format!("expected `and` or `or` before {}", describe(&t.tok)),
        };
        return Err(p.err_at(t.pos, msg));
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("`{w}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Not => "`not`".into(),
        Tok::And => "`and`".into(),
        Tok::Or => "`or`".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    fn end_pos(&self) -> usize {
        self.expr.len()
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end_pos(), |t| t.pos)
    }

    fn err_at(&self, pos: usize, msg: impl Into<String>) -> FilterError {
        FilterError::new(self.expr, pos, msg)
    }

    /// `and` and `or` share one precedence level, left-associative (pcap).
    fn or_and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().map(|t| &t.tok) {
                Some(Tok::And) => Tok::And,
                Some(Tok::Or) => Tok::Or,
                _ => return Ok(left),
            };
            self.i += 1;
            let right = self.unary()?;
            left = match op {
                Tok::And => Expr::And(Box::new(left), Box::new(right)),
                _ => Expr::Or(Box::new(left), Box::new(right)),
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(self.pos(), format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Expr, FilterError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.err_at(self.end_pos(), "filter ends where a primitive was expected"));
        };
        match t.tok {
            Tok::Not => {
                self.i += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.i += 1;
                let e = self.or_and()?;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {
                        self.i += 1;
                        Ok(e)
                    }
                    _ => Err(self.err_at(
                        self.pos(),
                        format!("`(` at column {} is never closed", t.pos + 1),
                    )),
                }
            }
            Tok::Word(_) => {
                self.primitives += 1;
                if self.primitives > MAX_PRIMITIVES {
                    return Err(self.err_at(
                        t.pos,
                        format!("more than {MAX_PRIMITIVES} primitives; simplify the filter"),
                    ));
                }
                Ok(Expr::Prim(self.primitive()?))
            }
            other => Err(self.err_at(
                t.pos,
                format!(
                    "expected a primitive (`host`, `port`, `tcp`, …), found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn next_word(&mut self) -> Option<(String, usize)> {
        let t = self.peek()?;
        if let Tok::Word(w) = &t.tok {
            let r = (w.clone(), t.pos);
            self.i += 1;
            Some(r)
        } else {
            None
        }
    }

    fn primitive(&mut self) -> Result<Prim, FilterError> {
        let start = self.pos();
        let Some(first) = self.peek_word().map(str::to_string) else {
            return Err(self.err_at(start, "expected a primitive"));
        };
        match first.as_str() {
            "vlan" => {
                self.i += 1;
                let id = match self.peek_word() {
                    Some(w) if w.bytes().all(|b| b.is_ascii_digit()) => {
                        let (w, pos) = self.next_word().unwrap_or_default();
                        let id: u16 =
                            w.parse().ok().filter(|&v: &u16| v < 4096).ok_or_else(|| {
                                self.err_at(pos, format!("VLAN id `{w}` is not in 0-4095"))
                            })?;
                        Some(id)
                    }
                    _ => None,
                };
                return Ok(Prim::Vlan(id));
            }
            "less" | "greater" => {
                self.i += 1;
                let (w, pos) = self
                    .next_word()
                    .ok_or_else(|| self.err_at(self.pos(), format!("`{first}` needs a length")))?;
                let n: u32 = w
                    .parse()
                    .map_err(|_| self.err_at(pos, format!("`{w}` is not a length in bytes")))?;
                return Ok(if first == "less" {
                    Prim::Less(n)
                } else {
                    Prim::Greater(n)
                });
            }
            _ => {}
        }

        let mut proto = None;
        let mut dir = None;
        let mut kind = None;
        let mut explicit = false;
        if let Some(p) = Proto::from_word(&first) {
            self.i += 1;
            proto = Some(p);
            explicit = true;
        }
        if let Some(w) = self.peek_word() {
            let d = match w {
                "src" => Some(Dir::Src),
                "dst" => Some(Dir::Dst),
                _ => None,
            };
            if let Some(mut d) = d {
                explicit = true;
                self.i += 1;
                // `src or dst` / `src and dst` as one direction qualifier.
                let combo = match (
                    self.peek().map(|t| &t.tok),
                    self.toks.get(self.i + 1).map(|t| &t.tok),
                ) {
                    (Some(Tok::Or), Some(Tok::Word(w2))) if w2 == "dst" || w2 == "src" => {
                        Some(Dir::SrcOrDst)
                    }
                    (Some(Tok::And), Some(Tok::Word(w2))) if w2 == "dst" || w2 == "src" => {
                        Some(Dir::SrcAndDst)
                    }
                    _ => None,
                };
                if let Some(c) = combo {
                    d = c;
                    self.i += 2;
                }
                dir = Some(d);
            }
        }
        if let Some(w) = self.peek_word() {
            let k = match w {
                "host" => Some(Kind::Host),
                "net" => Some(Kind::Net),
                "port" => Some(Kind::Port),
                "portrange" => Some(Kind::PortRange),
                _ => None,
            };
            if k.is_some() {
                explicit = true;
                self.i += 1;
                kind = k;
            }
        }

        if !explicit {
            // A bare value: reuse the qualifiers of the previous primitive.
            let Some(q) = self.last else {
                let (w, pos) = self.next_word().unwrap_or_default();
                return Err(self.err_at(pos, unknown_word_message(&w)));
            };
            let (w, pos) = self.next_word().unwrap_or_default();
            return self.value(q, &w, pos);
        }

        // A protocol alone (`tcp`, `ip6`): no direction or kind, no value.
        if dir.is_none() && kind.is_none() {
            let p = proto.unwrap_or(Proto::Ip);
            return Ok(Prim::Proto(p));
        }

        let pos = self.pos();
        let Some((w, wpos)) = self.next_word() else {
            return Err(self.err_at(pos, "expected an address or a port here"));
        };
        let kind = match kind {
            Some(k) => k,
            // `src 10.0.0.1`: the kind defaults to host (net with a prefix).
            None => {
                if w.contains('/') {
                    Kind::Net
                } else {
                    Kind::Host
                }
            }
        };
        let q = Quals {
            proto,
            dir: dir.unwrap_or(Dir::SrcOrDst),
            kind,
        };
        self.last = Some(q);
        self.value(q, &w, wpos)
    }

    fn value(&self, q: Quals, w: &str, pos: usize) -> Result<Prim, FilterError> {
        match q.kind {
            Kind::Host | Kind::Net => {
                let (addr_s, prefix_s) = match w.split_once('/') {
                    Some((a, p)) => (a, Some(p)),
                    None => (w, None),
                };
                let addr: IpAddr = addr_s.parse().map_err(|_| {
                    let msg = if addr_s.bytes().any(|b| b.is_ascii_alphabetic()) && !addr_s.contains(':') {
                        format!("`{addr_s}` is not an IP address; host names are not resolved, use the address")
                    } else {
                        format!("`{addr_s}` is not an IPv4 or IPv6 address")
                    };
                    self.err_at(pos, msg)
                })?;
                self.check_proto(q, addr, pos)?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix_s {
                    None if q.kind == Kind::Net => {
                        return Err(self.err_at(
                            pos,
                            format!("`net {w}` needs a prefix length, like `{w}/24`"),
                        ));
                    }
                    None => max,
                    Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| {
                        self.err_at(pos, format!("prefix length `/{p}` is not in 0-{max}"))
                    })?,
                };
                if q.kind == Kind::Host && prefix_s.is_some() {
                    return Err(self.err_at(pos, format!("`host {w}` has a prefix; use `net {w}`")));
                }
                if q.kind == Kind::Host {
                    return Ok(Prim::Host {
                        proto: q.proto,
                        dir: q.dir,
                        addr,
                    });
                }
                if host_bits_set(addr, prefix) {
                    return Err(
                        self.err_at(pos, format!("`{w}` has bits set past its /{prefix} prefix"))
                    );
                }
                Ok(Prim::Net {
                    proto: q.proto,
                    dir: q.dir,
                    addr,
                    prefix,
                })
            }
            Kind::Port | Kind::PortRange => {
                match q.proto {
                    None | Some(Proto::Tcp | Proto::Udp | Proto::Sctp) => {}
                    Some(p) => {
                        return Err(self.err_at(
                            pos,
                            format!("`{}` has no ports; use `tcp`, `udp` or `sctp`", p.name()),
                        ));
                    }
                }
                let parse_port = |s: &str| -> Result<u16, FilterError> {
                    s.parse::<u16>().map_err(|_| {
                        let msg = if s.bytes().any(|b| b.is_ascii_alphabetic()) {
                            format!("`{s}` is not a port number; service names are not looked up")
                        } else {
                            format!("`{s}` is not a port in 0-65535")
                        };
                        self.err_at(pos, msg)
                    })
                };
                let (lo, hi) = if q.kind == Kind::PortRange {
                    let (a, b) = w.split_once('-').ok_or_else(|| {
                        self.err_at(pos, format!("`portrange {w}` needs `LOW-HIGH`"))
                    })?;
                    let (a, b) = (parse_port(a)?, parse_port(b)?);
                    (a.min(b), a.max(b))
                } else {
                    let p = parse_port(w)?;
                    (p, p)
                };
                Ok(Prim::Port {
                    proto: q.proto,
                    dir: q.dir,
                    lo,
                    hi,
                })
            }
        }
    }

    fn check_proto(&self, q: Quals, addr: IpAddr, pos: usize) -> Result<(), FilterError> {
        match (q.proto, addr) {
            (None, _)
            | (Some(Proto::Ip | Proto::Arp), IpAddr::V4(_))
            | (Some(Proto::Ip6), IpAddr::V6(_)) => Ok(()),
            (Some(p @ (Proto::Ip | Proto::Arp)), IpAddr::V6(_)) => Err(self.err_at(
                pos,
                format!("`{}` with an IPv6 address; use `ip6`", p.name()),
            )),
            (Some(Proto::Ip6), IpAddr::V4(_)) => {
                Err(self.err_at(pos, "`ip6` with an IPv4 address; use `ip`"))
            }
            (Some(p), _) => Err(self.err_at(
                pos,
                format!(
                    "`{}` cannot qualify a host or net; write `{} and host …`",
                    p.name(),
                    p.name()
                ),
            )),
        }
    }
}

fn unknown_word_message(w: &str) -> String {
    if w.parse::<IpAddr>().is_ok() {
        format!("`{w}` needs a qualifier; write `host {w}`")
    } else if w.parse::<u16>().is_ok() {
        format!("`{w}` needs a qualifier; write `port {w}`")
    } else {
        format!(
            "unknown primitive `{w}`; supported: host, net, port, portrange, src, dst, ip, ip6, arp, tcp, udp, sctp, icmp, icmp6, vlan, less, greater"
        )
    }
}

fn host_bits_set(addr: IpAddr, prefix: u8) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let v = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            v & !mask != 0
        }
        IpAddr::V6(a) => {
            let v = u128::from(a);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            v & !mask != 0
        }
    }
}

/// `Ipv4Addr`/`Ipv6Addr` as big-endian words, for the code generator.
pub(crate) fn v4_word(a: Ipv4Addr) -> u32 {
    u32::from(a)
}

pub(crate) fn v6_words(a: Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    let w = |i: usize| {
        let b = [
            o.get(i).copied(),
            o.get(i + 1).copied(),
            o.get(i + 2).copied(),
            o.get(i + 3).copied(),
        ];
        u32::from_be_bytes(b.map(|x| x.unwrap_or(0)))
    };
    [w(0), w(4), w(8), w(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_or_share_precedence_left_to_right() {
        // pcap-filter: `a or b and c` is `(a or b) and c`.
        let e = parse("tcp or udp and ip6").unwrap();
        match e {
            Expr::And(l, r) => {
                assert!(matches!(*l, Expr::Or(..)));
                assert_eq!(*r, Expr::Prim(Prim::Proto(Proto::Ip6)));
            }
            other => panic!("wrong tree {other:?}"),
        }
    }

    #[test]
    fn bare_values_inherit_qualifiers() {
        let e = parse("tcp dst port 80 or 443").unwrap();
        let Expr::Or(_, r) = e else { panic!() };
        assert_eq!(
            *r,
            Expr::Prim(Prim::Port {
                proto: Some(Proto::Tcp),
                dir: Dir::Dst,
                lo: 443,
                hi: 443
            })
        );
    }

    #[test]
    fn src_or_dst_is_one_qualifier() {
        let e = parse("src or dst host 10.0.0.1").unwrap();
        assert!(matches!(
            e,
            Expr::Prim(Prim::Host {
                dir: Dir::SrcOrDst,
                ..
            })
        ));
        let e = parse("src and dst port 53").unwrap();
        assert!(matches!(
            e,
            Expr::Prim(Prim::Port {
                dir: Dir::SrcAndDst,
                ..
            })
        ));
    }

    #[test]
    fn errors_name_the_column_and_a_fix() {
        let e = parse("tcp port 80 and host example.com").unwrap_err();
        assert_eq!(e.position, 21);
        assert!(e.message.contains("not resolved"), "{e}");
        let e = parse("port http").unwrap_err();
        assert!(e.message.contains("service names"), "{e}");
        let e = parse("(tcp or udp").unwrap_err();
        assert!(e.message.contains("never closed"), "{e}");
        let e = parse("tcp )").unwrap_err();
        assert_eq!(e.position, 4);
        let e = parse("net 10.0.0.1/8").unwrap_err();
        assert!(e.message.contains("bits set"), "{e}");
        let e = parse("icmp port 3").unwrap_err();
        assert!(e.message.contains("no ports"), "{e}");
        let e = parse("10.0.0.1").unwrap_err();
        assert!(e.message.contains("host 10.0.0.1"), "{e}");
        let e = parse("tcp & udp").unwrap_err();
        assert!(e.message.contains("&&"), "{e}");
        let e = parse("ip6 host 10.0.0.1").unwrap_err();
        assert!(e.message.contains("use `ip`"), "{e}");
        assert!(parse("").is_err());
        let many = vec!["tcp"; MAX_PRIMITIVES + 1].join(" or ");
        assert!(parse(&many).unwrap_err().message.contains("primitives"));
        assert!(parse(&"(".repeat(1000)).is_err());
    }

    #[test]
    fn values_parse() {
        assert!(matches!(
            parse("net fe80::/10").unwrap(),
            Expr::Prim(Prim::Net { prefix: 10, .. })
        ));
        assert!(matches!(
            parse("portrange 90-80").unwrap(),
            Expr::Prim(Prim::Port { lo: 80, hi: 90, .. })
        ));
        assert_eq!(
            parse("vlan 100").unwrap(),
            Expr::Prim(Prim::Vlan(Some(100)))
        );
        assert_eq!(
            parse("!tcp").unwrap(),
            Expr::Not(Box::new(Expr::Prim(Prim::Proto(Proto::Tcp))))
        );
        assert_eq!(v6_words("::1".parse().unwrap()), [0, 0, 0, 1]);
    }
}
