//! Pure parsing of AMQP 0-9-1: the protocol header, frame headers, the
//! names of every class and method, the arguments trawl keeps of the
//! methods that carry them (exchange, routing key, queue, reply code and
//! text, no-wait), and the content header (body size, content type).
//! Called by [`super::session`] on whole method and content-header
//! payloads and by [`super::probe`].

/// `AMQP` followed by 0, 0, 9, 1 opens every 0-9-1 connection.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Frame header: type, channel, payload size; a frame ends with 0xCE.
pub const FRAME_HEADER_LEN: usize = 7;
pub const FRAME_END: u8 = 0xce;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
/// RabbitMQ and the 0-9-1 spec use 8; some old brokers sent 4.
pub const FRAME_HEARTBEAT: u8 = 8;

/// Largest frame payload accepted. RabbitMQ's default frame_max is
/// 128 KiB and clients rarely raise it past 1 MiB; 4 MiB leaves room and
/// still rejects the garbage lengths of a stream that is not AMQP.
pub const MAX_FRAME_PAYLOAD: usize = 4 * 1024 * 1024;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub ty: u8,
    pub channel: u16,
    pub size: usize,
}

/// The frame header at the start of `b` (seven bytes), if plausible.
pub fn frame_header(b: &[u8]) -> Option<FrameHeader> {
    let h: &[u8; FRAME_HEADER_LEN] = b.first_chunk()?;
    let [ty, c0, c1, s0, s1, s2, s3] = *h;
    let size = usize::try_from(u32::from_be_bytes([s0, s1, s2, s3])).ok()?;
    let known = matches!(
        ty,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT | 4
    );
    (known && size <= MAX_FRAME_PAYLOAD).then_some(FrameHeader {
        ty,
        channel: u16::from_be_bytes([c0, c1]),
        size,
    })
}

/// "class.method" for a known pair ("basic.publish"), else None.
pub fn method_name(class: u16, method: u16) -> Option<&'static str> {
    Some(match (class, method) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start-ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure-ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune-ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open-ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close-ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (10, 70) => "connection.update-secret",
        (10, 71) => "connection.update-secret-ok",
        (20, 10) => "channel.open",
        (20, 11) => "channel.open-ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow-ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close-ok",
        (30, 10) => "access.request",
        (30, 11) => "access.request-ok",
        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare-ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete-ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind-ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind-ok",
        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare-ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind-ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge-ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete-ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind-ok",
        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos-ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume-ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel-ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get-ok",
        (60, 72) => "basic.get-empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover-async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover-ok",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select-ok",
        (90, 10) => "tx.select",
        (90, 11) => "tx.select-ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit-ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback-ok",
        _ => return None,
    })
}

/// The request a response method answers: (class, method) of it.
/// exchange.unbind-ok is 51 for unbind 40 (a quirk of the spec);
/// get-ok and get-empty both answer get.
pub fn answers(class: u16, method: u16) -> Option<(u16, u16)> {
    let req = match (class, method) {
        (40, 51) => 40,
        (60, 71 | 72) => 70,
        (c, m) if m % 10 == 1 && method_name(c, m).is_some() => m - 1,
        _ => return None,
    };
    Some((class, req))
}

/// Whether a method is answered by another (a synchronous request).
pub fn expects_answer(class: u16, method: u16) -> bool {
    match (class, method) {
        (40, 40) | (60, 70) => true,
        (c, m) => m % 10 == 0 && method_name(c, m + 1).is_some(),
    }
}

/// Whether content (a header and body frames) follows the method.
pub fn carries_content(class: u16, method: u16) -> bool {
    matches!((class, method), (60, 40 | 50 | 60 | 71))
}

/// The arguments trawl keeps of a method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Method {
    pub class: u16,
    pub method: u16,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub queue: Option<String>,
    pub reply_code: Option<u16>,
    pub reply_text: Option<String>,
    /// The no-wait bit: the request gets no answer.
    pub no_wait: bool,
}

impl Method {
    pub fn name(&self) -> String {
        method_name(self.class, self.method)
            .map_or_else(|| format!("{}.{}", self.class, self.method), str::to_owned)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(*self.bytes(2)?.first_chunk()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(*self.bytes(8)?.first_chunk()?))
    }

    fn shortstr(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        Some(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }
}

/// Reads a method frame's payload. None when it is shorter than its
/// class and method ids; arguments that do not fit are left out.
pub fn parse_method(payload: &[u8]) -> Option<Method> {
    let mut r = Reader { b: payload, pos: 0 };
    let mut m = Method {
        class: r.u16()?,
        method: r.u16()?,
        ..Method::default()
    };
    let _ = args(&mut r, &mut m);
    Some(m)
}

fn args(r: &mut Reader<'_>, m: &mut Method) -> Option<()> {
    match (m.class, m.method) {
        // connection.close, channel.close: code, text, failing class/method.
        (10, 50) | (20, 40) => {
            m.reply_code = Some(r.u16()?);
            m.reply_text = Some(r.shortstr()?);
        }
        (40, 10) => {
            r.u16()?;
            m.exchange = Some(r.shortstr()?);
            r.shortstr()?; // type
            m.no_wait = r.u8()? & 0x10 != 0;
        }
        (40, 20) => {
            r.u16()?;
            m.exchange = Some(r.shortstr()?);
            m.no_wait = r.u8()? & 0x02 != 0;
        }
        (40, 30) | (40, 40) => {
            r.u16()?;
            r.shortstr()?; // destination
            m.exchange = Some(r.shortstr()?); // source
            m.routing_key = Some(r.shortstr()?);
            m.no_wait = r.u8()? & 0x01 != 0;
        }
        (50, 10) => {
            r.u16()?;
            m.queue = Some(r.shortstr()?);
            m.no_wait = r.u8()? & 0x10 != 0;
        }
        (50, 11) => m.queue = Some(r.shortstr()?),
        (50, 20) | (50, 50) => {
            r.u16()?;
            m.queue = Some(r.shortstr()?);
            m.exchange = Some(r.shortstr()?);
            m.routing_key = Some(r.shortstr()?);
            if m.method == 20 {
                m.no_wait = r.u8()? & 0x01 != 0;
            }
        }
        (50, 30) | (50, 40) => {
            r.u16()?;
            m.queue = Some(r.shortstr()?);
            let bit = if m.method == 30 { 0x01 } else { 0x04 };
            m.no_wait = r.u8()? & bit != 0;
        }
        (60, 20) => {
            r.u16()?;
            m.queue = Some(r.shortstr()?);
            r.shortstr()?; // consumer tag
            m.no_wait = r.u8()? & 0x08 != 0;
        }
        (60, 30) => {
            r.shortstr()?;
            m.no_wait = r.u8()? & 0x01 != 0;
        }
        (60, 40) => {
            r.u16()?;
            m.exchange = Some(r.shortstr()?);
            m.routing_key = Some(r.shortstr()?);
        }
        (60, 50) => {
            m.reply_code = Some(r.u16()?);
            m.reply_text = Some(r.shortstr()?);
            m.exchange = Some(r.shortstr()?);
            m.routing_key = Some(r.shortstr()?);
        }
        (60, 60) => {
            r.shortstr()?; // consumer tag
            r.u64()?;
            r.u8()?;
            m.exchange = Some(r.shortstr()?);
            m.routing_key = Some(r.shortstr()?);
        }
        (60, 70) => {
            r.u16()?;
            m.queue = Some(r.shortstr()?);
        }
        (60, 71) => {
            r.u64()?;
            r.u8()?;
            m.exchange = Some(r.shortstr()?);
            m.routing_key = Some(r.shortstr()?);
        }
        (85, 10) => m.no_wait = r.u8()? & 0x01 != 0,
        _ => {}
    }
    Some(())
}

/// What trawl keeps of a content header frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentHeader {
    pub body_size: u64,
    pub content_type: Option<String>,
}

/// Reads a content header payload: class, weight, body size, property
/// flags, then the properties (content-type is the first, flag bit 15).
pub fn parse_content_header(payload: &[u8]) -> Option<ContentHeader> {
    let mut r = Reader { b: payload, pos: 0 };
    r.u16()?;
    r.u16()?;
    let body_size = r.u64()?;
    let flags = r.u16().unwrap_or(0);
    let content_type = if flags & 0x8000 != 0 {
        r.shortstr()
    } else {
        None
    };
    Some(ContentHeader {
        body_size,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn names_and_pairs() {
        assert_eq!(method_name(60, 40), Some("basic.publish"));
        assert_eq!(method_name(99, 1), None);
        assert_eq!(answers(50, 11), Some((50, 10)));
        assert_eq!(answers(60, 72), Some((60, 70)));
        assert_eq!(answers(40, 51), Some((40, 40)));
        assert_eq!(answers(60, 40), None);
        assert!(expects_answer(50, 10) && expects_answer(10, 10) && expects_answer(60, 70));
        assert!(!expects_answer(60, 40) && !expects_answer(60, 80) && !expects_answer(50, 11));
    }

    #[test]
    fn publish_and_deliver_arguments() {
        // Frame 22 of amqp-deepflow-amqp1.pcap: basic.publish to
        // exchange-1 with routing key rk-1.
        let p = hex("003c 0028 0000 0a 65786368616e67652d31 04 726b2d31 00");
        let m = parse_method(&p).unwrap();
        assert_eq!(m.name(), "basic.publish");
        assert_eq!(m.exchange.as_deref(), Some("exchange-1"));
        assert_eq!(m.routing_key.as_deref(), Some("rk-1"));
        let d = hex("003c 003c 02 6374 0000000000000001 00 01 78 02 726b");
        let m = parse_method(&d).unwrap();
        assert_eq!(
            (m.exchange.as_deref(), m.routing_key.as_deref()),
            (Some("x"), Some("rk"))
        );
        // queue.declare "hello" with no-wait.
        let q = hex("0032 000a 0000 05 68656c6c6f 10 00000000");
        let m = parse_method(&q).unwrap();
        assert_eq!(m.queue.as_deref(), Some("hello"));
        assert!(m.no_wait);
        for cut in 0..p.len() {
            let _ = parse_method(&p[..cut]);
        }
        let h = parse_content_header(&hex(
            "003c 0000 000000000000000c 8000 0a 746578742f706c61696e",
        ))
        .unwrap();
        assert_eq!(h.body_size, 12);
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            frame_header(&hex("01 0001 00000017")),
            Some(FrameHeader {
                ty: 1,
                channel: 1,
                size: 23
            })
        );
        assert_eq!(frame_header(&hex("47 4554 202f4854")), None);
    }
}
