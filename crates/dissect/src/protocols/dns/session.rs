//! One DNS conversation (a UDP 5-tuple or a TCP connection): framing,
//! query/response pairing by message id, timeouts and limits. Emits one
//! [`Call`] per query with its response, per unanswered query, and per
//! response whose query was not seen.
//!
//! Framing: over UDP every `data` is one datagram and one message; over TCP
//! messages carry a 2-byte length prefix (RFC 1035 §4.2.2, RFC 7766 §8),
//! several may share a segment and one may span many. Complete messages
//! are parsed where they lie; only an incomplete tail (at most one message,
//! 65,537 bytes with its prefix) is copied. A gap inside a message whose
//! length is known costs that message only; a gap that swallows a length
//! prefix loses the framing, and the direction is ignored until a segment
//! starts with something the probe accepts as a DNS message.
//!
//! Pairing: a response answers the outstanding query with its id that
//! travelled the other way, preferring one with the same first question
//! (a client may reuse an id for its A and AAAA queries). A late response
//! still pairs, so `elapsed_time` shows how late; unanswered queries leave
//! after [`Limits::response_timeout`] of packet time, checked whenever a
//! message arrives, and at `close`.
//!
//! Call errors: `no_response`, `no_request`, `too_many_pending` (evicted
//! past [`Limits::max_pending`]), `truncated` (TC bit set), `malformed`,
//! `answers_capped` and `questions_capped` (past [`MAX_ANSWERS_KEPT`] and
//! [`MAX_QUESTIONS_KEPT`]).
//!
//! Anomalies emitted (kind codes): `malformed` (a message that does not
//! parse; the call, if any, also carries it), `duplicate_query` (a
//! retransmission of an outstanding query: the first is kept),
//! `gap_in_message` (a TCP message lost to a gap, framing kept),
//! `lost_framing` (TCP length prefixes lost to a gap or to
//! [`MAX_MALFORMED_IN_A_ROW`] bad messages: the direction is skipped),
//! `resync` (a later segment started with a DNS message: framing back),
//! `incomplete_message` (a TCP message cut by the end of its direction).
//!
//! Parsing is in [`super::parser`]; created by the registry entry in
//! [`super`].

use std::collections::VecDeque;

use trawl_flow::{Direction, Nanos, TransportKind};
use trawl_model::{Call, DnsAnswer, Protocol};

use super::parser::{self, Message};
use crate::seam::{Emitter, Limits, Probe, Session, SessionContext};

/// Answer records kept per response; the rest are walked and counted
/// (`answers_capped` in the call's errors). A response that fits a
/// 1232-byte EDNS buffer (the DNS Flag Day 2020 default) holds at most
/// about 75 A records, and real answers hold a handful; 64 keeps every
/// ordinary answer whole while a zone transfer of thousands of records
/// costs one call of bounded size.
pub const MAX_ANSWERS_KEPT: usize = 64;

/// Questions kept per message (`questions_capped` past it). Unicast DNS
/// asks one question per message; mDNS batches a few. The same bound as
/// answers keeps a 64 KiB TCP message of 13,000 tiny questions from
/// becoming 13,000 strings.
pub const MAX_QUESTIONS_KEPT: usize = 64;

/// Malformed messages in a row after which a TCP direction's framing is
/// taken as lost. One bad message is a broken peer and is skipped by its
/// length prefix; three in a row mean the prefixes are not where we read
/// them (a stream joined mid-message, or not DNS), and every further
/// "message" would be noise.
pub const MAX_MALFORMED_IN_A_ROW: u32 = 3;

/// Tail buffer capacity kept for the next incomplete message. Most
/// messages that span segments are a few KiB (large answers, DNSSEC); the
/// rare 64 KiB one (a zone transfer) should not pin 64 KiB per direction
/// for the rest of a long connection.
const KEEP_TAIL_CAPACITY: usize = 4096;

/// Anomaly: a message that does not parse.
pub const MALFORMED: &str = "malformed";
/// Anomaly: a query repeated (same id and question) before its answer.
pub const DUPLICATE_QUERY: &str = "duplicate_query";
/// Anomaly: a TCP message lost to a gap, with the framing kept.
pub const GAP_IN_MESSAGE: &str = "gap_in_message";
/// Anomaly: TCP message boundaries lost; the direction is skipped until a
/// segment starts with a DNS message.
pub const LOST_FRAMING: &str = "lost_framing";
/// Anomaly: framing found again after [`LOST_FRAMING`].
pub const RESYNC: &str = "resync";
/// Anomaly: a TCP direction ended inside a message.
pub const INCOMPLETE_MESSAGE: &str = "incomplete_message";

/// A query waiting for its response; its call has the request half filled.
#[derive(Debug)]
struct PendingQuery {
    id: u16,
    /// The direction the query travelled.
    dir: Direction,
    /// When its first byte arrived.
    ts: Nanos,
    /// Type of the first question (its name is `call.path`), for matching
    /// responses and spotting retransmissions.
    qtype: Option<u16>,
    call: Call,
}

/// Where a TCP direction stands between messages.
#[derive(Debug, Default)]
struct TcpFraming {
    /// An incomplete message, from its length prefix on.
    tail: Vec<u8>,
    /// Timestamp of the segment that brought the tail's first byte.
    tail_ts: Nanos,
    /// Bytes still to discard: the rest of a message cut by a gap.
    skip: u64,
    /// Message boundaries unknown: data is ignored until a segment starts
    /// with a plausible message.
    lost: bool,
    malformed_in_a_row: u32,
}

/// DNS state for one conversation; see the module doc.
#[derive(Debug)]
pub struct DnsSession {
    transport: TransportKind,
    limits: Limits,
    /// Outstanding queries in arrival order (so the oldest expires first).
    pending: VecDeque<PendingQuery>,
    /// TCP framing per direction: `ToServer`, then `ToClient`.
    framing: [TcpFraming; 2],
    /// Reused buffer for rendering a question name to compare it.
    scratch: String,
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

fn add_error(call: &mut Call, code: &str) {
    if !call.errors.iter().any(|e| e == code) {
        call.errors.push(code.to_owned());
    }
}

impl DnsSession {
    pub fn new(ctx: &SessionContext) -> DnsSession {
        DnsSession {
            transport: ctx.transport,
            limits: ctx.limits,
            pending: VecDeque::new(),
            framing: Default::default(),
            scratch: String::new(),
        }
    }

    /// One whole message travelling in `dir`, whose first byte arrived at
    /// `start` and last at `end`. Returns whether it parsed cleanly.
    fn on_message(
        &mut self,
        dir: Direction,
        start: Nanos,
        end: Nanos,
        bytes: &[u8],
        out: &mut Emitter,
    ) -> bool {
        let Ok(msg) = parser::parse_message(bytes) else {
            out.anomaly(start, MALFORMED);
            return false;
        };
        if msg.error.is_some() {
            out.anomaly(start, MALFORMED);
        }
        if msg.header.is_response() {
            // Pair first: a late answer still belongs to its query.
            self.on_response(dir, start, end, &msg, out);
            self.expire(end, out);
        } else {
            // Expire first: a query reusing the id of one that timed out
            // is a new query, not a retransmission.
            self.expire(start, out);
            self.on_query(dir, start, &msg, out);
        }
        msg.error.is_none()
    }

    fn on_query(&mut self, dir: Direction, ts: Nanos, msg: &Message<'_>, out: &mut Emitter) {
        let id = msg.header.id;
        let first = msg.questions().next();
        let qtype = first.map(|q| q.qtype);
        // Render the question only when an outstanding query shares the id.
        let retransmission = self.pending.iter().any(|p| p.id == id && p.dir == dir)
            && self
                .first_question_matches(first.as_ref(), |p| {
                    p.id == id && p.dir == dir && p.qtype == qtype
                })
                .is_some();
        if retransmission {
            out.anomaly(ts, DUPLICATE_QUERY);
            return;
        }
        if self.pending.len() >= self.limits.max_pending.max(1)
            && let Some(oldest) = self.pending.pop_front()
        {
            emit_unanswered(oldest, "too_many_pending", out);
        }
        let mut call = Call::new(Protocol::Dns);
        fill_questions(&mut call, msg);
        call.timestamp = ts;
        call.has_request = true;
        call.dns_request = true;
        call.request_body_size = msg.bytes().len() as u64;
        if msg.header.truncated() {
            add_error(&mut call, "truncated");
        }
        if msg.error.is_some() {
            add_error(&mut call, MALFORMED);
        }
        self.pending.push_back(PendingQuery {
            id,
            dir,
            ts,
            qtype,
            call,
        });
    }

    fn on_response(
        &mut self,
        dir: Direction,
        start: Nanos,
        end: Nanos,
        msg: &Message<'_>,
        out: &mut Emitter,
    ) {
        let id = msg.header.id;
        let query_dir = dir.reverse();
        let same_id = |p: &PendingQuery| p.id == id && p.dir == query_dir;
        let mut ids = self.pending.iter().enumerate().filter(|(_, p)| same_id(p));
        let found = match (ids.next().map(|(i, _)| i), ids.next()) {
            (None, _) => None,
            (Some(only), None) => Some(only),
            // Several queries share the id: prefer the one asking the
            // response's question, else the oldest.
            (Some(oldest), Some(_)) => {
                let first = msg.questions().next();
                let qtype = first.map(|q| q.qtype);
                self.first_question_matches(first.as_ref(), |p| same_id(p) && p.qtype == qtype)
                    .or(Some(oldest))
            }
        };
        match found.and_then(|i| self.pending.remove(i)) {
            Some(mut query) => {
                fill_response(&mut query.call, msg);
                query.call.elapsed_time = end.saturating_sub(query.ts).max(0) / 1000;
                out.call(query.dir, query.call);
            }
            None => {
                let mut call = Call::new(Protocol::Dns);
                fill_questions(&mut call, msg);
                call.timestamp = start;
                fill_response(&mut call, msg);
                add_error(&mut call, "no_request");
                out.call(query_dir, call);
            }
        }
    }

    /// Index of the first pending query accepted by `filter` whose first
    /// question name is `question`'s, ASCII case ignored.
    fn first_question_matches(
        &mut self,
        question: Option<&parser::Question<'_>>,
        filter: impl Fn(&PendingQuery) -> bool,
    ) -> Option<usize> {
        self.scratch.clear();
        if let Some(q) = question {
            q.name.push_to(&mut self.scratch);
        }
        let scratch = &self.scratch;
        self.pending
            .iter()
            .position(|p| filter(p) && p.call.path.eq_ignore_ascii_case(scratch))
    }

    /// Emits queries outstanding for longer than the response timeout at
    /// packet time `now`.
    fn expire(&mut self, now: Nanos, out: &mut Emitter) {
        while let Some(front) = self.pending.front() {
            if now.saturating_sub(front.ts) <= self.limits.response_timeout {
                break;
            }
            if let Some(query) = self.pending.pop_front() {
                emit_unanswered(query, "no_response", out);
            }
        }
    }

    fn tcp_data(&mut self, dir: Direction, ts: Nanos, mut data: &[u8], out: &mut Emitter) {
        let i = dir_index(dir);
        let Some(f) = self.framing.get_mut(i) else {
            return;
        };
        if f.lost {
            // Only a segment that starts with a whole plausible message
            // brings the framing back.
            if !matches!(super::probe(data, TransportKind::Tcp), Probe::Match { .. }) {
                return;
            }
            f.lost = false;
            f.malformed_in_a_row = 0;
            out.anomaly(ts, RESYNC);
        }
        if f.skip > 0 {
            let n = usize::try_from(f.skip)
                .unwrap_or(usize::MAX)
                .min(data.len());
            f.skip -= n as u64;
            data = data.get(n..).unwrap_or_default();
        }
        // Complete the tail left by earlier segments, if any: first its
        // length prefix, then the message.
        loop {
            let Some(f) = self.framing.get_mut(i) else {
                return;
            };
            if f.tail.is_empty() {
                break;
            }
            let prefix = f.tail.first_chunk::<2>().copied();
            let need = match prefix {
                Some(prefix) => 2 + usize::from(u16::from_be_bytes(prefix)),
                None => 2,
            };
            let missing = need.saturating_sub(f.tail.len());
            let (take, rest) = data.split_at(missing.min(data.len()));
            f.tail.extend_from_slice(take);
            data = rest;
            if f.tail.len() < need {
                return;
            }
            if prefix.is_none() {
                continue;
            }
            let mut tail = std::mem::take(&mut f.tail);
            let start = f.tail_ts;
            self.tcp_message(dir, start, ts, tail.get(2..).unwrap_or_default(), out);
            tail.clear();
            match self.framing.get_mut(i) {
                Some(f) if !f.lost => {
                    if tail.capacity() <= KEEP_TAIL_CAPACITY {
                        f.tail = tail;
                    }
                }
                _ => return,
            }
        }
        // Whole messages in place, without copying.
        while let Some((prefix, rest)) = data.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*prefix));
            let Some((message, rest)) = rest.split_at_checked(len) else {
                break;
            };
            self.tcp_message(dir, ts, ts, message, out);
            data = rest;
            if self.framing.get(i).is_none_or(|f| f.lost) {
                return;
            }
        }
        if !data.is_empty()
            && let Some(f) = self.framing.get_mut(i)
        {
            f.tail.extend_from_slice(data);
            f.tail_ts = ts;
        }
    }

    fn tcp_message(
        &mut self,
        dir: Direction,
        start: Nanos,
        end: Nanos,
        message: &[u8],
        out: &mut Emitter,
    ) {
        let clean = self.on_message(dir, start, end, message, out);
        let Some(f) = self.framing.get_mut(dir_index(dir)) else {
            return;
        };
        if clean {
            f.malformed_in_a_row = 0;
            return;
        }
        f.malformed_in_a_row += 1;
        if f.malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW {
            f.lost = true;
            f.tail.clear();
            f.skip = 0;
            out.anomaly(end, LOST_FRAMING);
        }
    }

    /// Drops an incomplete TCP message left in `dir`, saying so.
    fn drop_tail(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        if let Some(f) = self.framing.get_mut(dir_index(dir)) {
            if !f.tail.is_empty() || f.skip > 0 {
                out.anomaly(ts, INCOMPLETE_MESSAGE);
            }
            f.tail = Vec::new();
            f.skip = 0;
        }
    }
}

fn emit_unanswered(mut query: PendingQuery, code: &str, out: &mut Emitter) {
    add_error(&mut query.call, code);
    out.call(query.dir, query.call);
}

/// Method, path and questions from a message's question section (the
/// query's, or a lone response's).
fn fill_questions(call: &mut Call, msg: &Message<'_>) {
    call.method = parser::opcode_name(msg.header.opcode()).to_owned();
    for q in msg.questions().take(MAX_QUESTIONS_KEPT) {
        call.dns_questions.push(q.name.to_presentation());
        call.dns_question_types.push(parser::type_string(q.qtype));
    }
    if usize::from(msg.question_count()) > MAX_QUESTIONS_KEPT {
        add_error(call, "questions_capped");
    }
    if let Some(first) = call.dns_questions.first() {
        call.path = first.clone();
    }
}

/// The response half: rcode, answers, size and flags.
fn fill_response(call: &mut Call, msg: &Message<'_>) {
    call.status_code = i32::from(msg.rcode());
    call.has_response = true;
    call.dns_response = true;
    call.response_body_size = msg.bytes().len() as u64;
    // The parsed count, unlike the header's, counts records that exist.
    call.dns_answers
        .reserve(usize::from(msg.answer_count()).min(MAX_ANSWERS_KEPT));
    let mut seen = 0usize;
    let mut last_owner = None;
    for record in msg.answers().filter(|r| r.rtype != parser::TYPE_OPT) {
        seen += 1;
        if seen > MAX_ANSWERS_KEPT {
            continue;
        }
        // Room for an address or a name without growing.
        let mut data = String::with_capacity(record.rdata().len().clamp(16, 256));
        if record.push_rdata(&mut data).is_err() {
            parser::push_generic_rdata(record.rdata(), &mut data);
            add_error(call, MALFORMED);
        }
        // Consecutive records of one owner share its rendering.
        let owner = record.name.resolved_offset();
        let name = match call.dns_answers.last() {
            Some(last) if last_owner == Some(owner) => last.name.clone(),
            _ => record.name.to_presentation(),
        };
        last_owner = Some(owner);
        call.dns_answers.push(DnsAnswer {
            name,
            rtype: parser::type_string(record.rtype),
            data,
            ttl: record.ttl,
        });
    }
    if seen > MAX_ANSWERS_KEPT {
        add_error(call, "answers_capped");
    }
    if msg.header.truncated() {
        add_error(call, "truncated");
    }
    if msg.error.is_some() {
        add_error(call, MALFORMED);
    }
}

impl Session for DnsSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        match self.transport {
            TransportKind::Udp => {
                self.on_message(dir, ts, ts, data, out);
            }
            TransportKind::Tcp => self.tcp_data(dir, ts, data, out),
        }
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter) {
        if self.transport != TransportKind::Tcp || len == 0 {
            return;
        }
        let Some(f) = self.framing.get_mut(dir_index(dir)) else {
            return;
        };
        if f.lost {
            return;
        }
        if f.skip > 0 {
            if len <= f.skip {
                f.skip -= len;
                return;
            }
        } else if let Some(prefix) = f.tail.first_chunk::<2>() {
            // The gap falls inside a message of known length: lose that
            // message, keep the framing.
            let need = 2 + u64::from(u16::from_be_bytes(*prefix));
            let missing = need.saturating_sub(f.tail.len() as u64);
            if len <= missing {
                f.tail.clear();
                f.skip = missing - len;
                out.anomaly(ts, GAP_IN_MESSAGE);
                return;
            }
        }
        f.lost = true;
        f.tail.clear();
        f.skip = 0;
        out.anomaly(ts, LOST_FRAMING);
    }

    fn end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        if self.transport == TransportKind::Tcp {
            self.drop_tail(dir, ts, out);
        }
    }

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        if self.transport == TransportKind::Tcp {
            self.drop_tail(Direction::ToServer, ts, out);
            self.drop_tail(Direction::ToClient, ts, out);
        }
        while let Some(query) = self.pending.pop_front() {
            emit_unanswered(query, "no_response", out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::Anomaly;
    use crate::testutil::hex;

    fn session(transport: TransportKind, limits: Limits) -> DnsSession {
        DnsSession::new(&SessionContext {
            transport,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.138:53".parse().unwrap(),
            limits,
        })
    }

    fn udp() -> DnsSession {
        session(TransportKind::Udp, Limits::default())
    }

    fn tcp() -> DnsSession {
        session(TransportKind::Tcp, Limits::default())
    }

    use Direction::{ToClient, ToServer};

    /// What a session emitted.
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        calls: Vec<(Direction, Call)>,
        anomalies: Vec<Anomaly>,
    }

    impl Seen {
        fn take(&mut self, out: &mut Emitter) {
            self.calls.extend(out.drain_calls());
            self.anomalies.extend(out.drain_anomalies());
        }

        fn kinds(&self) -> Vec<&'static str> {
            self.anomalies.iter().map(|a| a.kind).collect()
        }
    }

    /// Feeds `(direction, ts, bytes)` as data calls, then closes at `close_ts`.
    fn feed(
        s: &mut DnsSession,
        steps: &[(Direction, Nanos, Vec<u8>)],
        close_ts: Option<Nanos>,
    ) -> Seen {
        let mut out = Emitter::new();
        let mut seen = Seen::default();
        for (dir, ts, bytes) in steps {
            s.data(*dir, *ts, bytes, &mut out);
            seen.take(&mut out);
        }
        if let Some(ts) = close_ts {
            s.close(ts, &mut out);
            seen.take(&mut out);
        }
        seen
    }

    /// A TCP conversation from a fixture in `testdata/`: one segment per line.
    fn fixture(text: &str) -> Vec<(Direction, Nanos, Vec<u8>)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                let dir = match parts[0] {
                    ">>>" => ToServer,
                    "<<<" => ToClient,
                    other => panic!("bad direction {other}"),
                };
                (dir, parts[2].parse().unwrap(), hex(parts[3]))
            })
            .collect()
    }

    const MULTIREQUEST: &str =
        include_str!("testdata/dns-suricata-dns-tcp-multirequest-buffer.txt");
    const DNS_TCP: &str = include_str!("testdata/dns-tcpdump-dns_tcp.txt");

    // frames 1 and 2 of dns-pcapplusplus-DnsPackets.pcap
    const Q_GOOGLE: &str = "8185010000010000000000000377777706676f6f676c6503636f6d0000010001";
    const R_GOOGLE: &str = "8185818000010005000000000377777706676f6f676c6503636f6d0000010001\
        c00c00010001000000700004adc27013c00c00010001000000700004adc27012\
        c00c00010001000000700004adc27011c00c00010001000000700004adc27010\
        c00c00010001000000700004adc27014";
    const T_Q_GOOGLE: Nanos = 1_413_054_930_198_203_000;
    const T_R_GOOGLE: Nanos = 1_413_054_930_215_703_000;

    // frames 5-10 of dns-zeek-dns-long-connection.pcap: three queries on
    // one 5-tuple (PTR, A, AAAA) and their responses.
    const Q_PTR: &str =
        "9bbb010000010000000000000331303401390331393202363607696e2d61646472046172706100000c0001";
    const R_PTR: &str = "9bbb818000010001000000000331303401390331393202363607696e2d61646472046172706100000c0001\
        c00c000c00010001512500200c36362d3139322d392d3130340367656e09747774656c65636f6d036e657400";
    const Q_A: &str = "75c00100000100000000000003777777066e6574627364036f72670000010001";
    const R_A: &str = "75c08180000100010000000003777777066e6574627364036f72670000010001\
        c00c00010001000140ef0004cc98be0c";
    const Q_AAAA: &str = "f0d40100000100000000000003777777066e6574627364036f726700001c0001";
    const R_AAAA: &str = "f0d48180000100010000000003777777066e6574627364036f726700001c0001\
        c00c001c0001000151800010200104f80004000702e081fffe529a6b";

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn udp_query_and_response_make_one_call() {
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, T_Q_GOOGLE, hex(Q_GOOGLE)),
                (ToClient, T_R_GOOGLE, hex(R_GOOGLE)),
            ],
            Some(T_R_GOOGLE + SECOND),
        );
        assert_eq!(seen.anomalies, []);
        assert_eq!(seen.calls.len(), 1);
        let (dir, call) = &seen.calls[0];
        assert_eq!(*dir, ToServer);
        assert_eq!(call.protocol, Some(Protocol::Dns));
        assert_eq!(call.method, "QUERY");
        assert_eq!(call.path, "www.google.com");
        assert_eq!(call.dns_questions, ["www.google.com"]);
        assert_eq!(call.dns_question_types, ["A"]);
        assert_eq!(call.status_code, 0);
        assert_eq!(call.timestamp, T_Q_GOOGLE);
        assert_eq!(call.elapsed_time, 17_500);
        assert_eq!((call.request_body_size, call.response_body_size), (32, 112));
        assert_eq!(
            (call.request_header_size, call.response_header_size),
            (0, 0)
        );
        assert!(call.has_request && call.has_response && call.dns_request && call.dns_response);
        assert_eq!(call.errors, Vec::<String>::new());
        let answers: Vec<String> = call
            .dns_answers
            .iter()
            .map(|a| format!("{} {} {} {}", a.name, a.rtype, a.ttl, a.data))
            .collect();
        assert_eq!(
            answers,
            [
                "www.google.com A 112 173.194.112.19",
                "www.google.com A 112 173.194.112.18",
                "www.google.com A 112 173.194.112.17",
                "www.google.com A 112 173.194.112.16",
                "www.google.com A 112 173.194.112.20",
            ]
        );
    }

    #[test]
    fn out_of_order_responses_pair_by_id() {
        let t = 1_112_172_487 * SECOND;
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, t, hex(Q_PTR)),
                (ToServer, t + 1000, hex(Q_A)),
                (ToServer, t + 2000, hex(Q_AAAA)),
                (ToClient, t + 5000, hex(R_AAAA)),
                (ToClient, t + 6000, hex(R_PTR)),
                (ToClient, t + 9000, hex(R_A)),
            ],
            Some(t + SECOND),
        );
        assert_eq!(seen.anomalies, []);
        let got: Vec<(String, String, i64, String)> = seen
            .calls
            .iter()
            .map(|(_, c)| {
                (
                    c.path.clone(),
                    c.dns_question_types[0].clone(),
                    c.elapsed_time,
                    c.dns_answers[0].data.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "www.netbsd.org".into(),
                    "AAAA".into(),
                    3,
                    "2001:4f8:4:7:2e0:81ff:fe52:9a6b".into()
                ),
                (
                    "104.9.192.66.in-addr.arpa".into(),
                    "PTR".into(),
                    6,
                    "66-192-9-104.gen.twtelecom.net".into()
                ),
                (
                    "www.netbsd.org".into(),
                    "A".into(),
                    8,
                    "204.152.190.12".into()
                ),
            ]
        );
        assert!(
            seen.calls
                .iter()
                .all(|(d, c)| *d == ToServer && c.errors.is_empty())
        );
    }

    #[test]
    fn unanswered_query_leaves_after_the_timeout_and_at_close() {
        let t = 1_000 * SECOND;
        let mut s = udp();
        let mut out = Emitter::new();
        s.data(ToServer, t, &hex(Q_PTR), &mut out);
        // Within the timeout nothing leaves.
        s.data(ToServer, t + 5 * SECOND, &hex(Q_A), &mut out);
        assert_eq!(out.drain_calls().count(), 0);
        // Past it, the first query is emitted without a response.
        s.data(ToServer, t + 5 * SECOND + 1, &hex(Q_AAAA), &mut out);
        let calls: Vec<_> = out.drain_calls().collect();
        assert_eq!(calls.len(), 1);
        let (dir, call) = &calls[0];
        assert_eq!(*dir, ToServer);
        assert_eq!(call.path, "104.9.192.66.in-addr.arpa");
        assert_eq!(call.errors, ["no_response"]);
        assert!(call.has_request && !call.has_response && !call.dns_response);
        assert_eq!(
            (call.status_code, call.elapsed_time, call.response_body_size),
            (0, 0, 0)
        );
        assert_eq!(call.timestamp, t);
        // The other two leave at close, in order.
        s.close(t + 6 * SECOND, &mut out);
        let calls: Vec<_> = out
            .drain_calls()
            .map(|(_, c)| (c.dns_question_types[0].clone(), c.errors))
            .collect();
        assert_eq!(
            calls,
            [
                ("A".to_owned(), vec!["no_response".to_owned()]),
                ("AAAA".to_owned(), vec!["no_response".to_owned()])
            ]
        );
    }

    #[test]
    fn late_response_still_pairs() {
        let t = 1_000 * SECOND;
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, t, hex(Q_A)),
                (ToClient, t + 7 * SECOND, hex(R_A)),
            ],
            Some(t + 8 * SECOND),
        );
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.errors, Vec::<String>::new());
        assert_eq!(seen.calls[0].1.elapsed_time, 7_000_000);
    }

    #[test]
    fn response_without_query() {
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[(ToClient, T_R_GOOGLE, hex(R_GOOGLE))],
            Some(T_R_GOOGLE),
        );
        assert_eq!(seen.calls.len(), 1);
        let (dir, call) = &seen.calls[0];
        // The query would have travelled the other way: the pipeline puts
        // the client in `src`.
        assert_eq!(*dir, ToServer);
        assert_eq!(call.errors, ["no_request"]);
        assert_eq!(call.timestamp, T_R_GOOGLE);
        assert_eq!(call.path, "www.google.com");
        assert_eq!(call.method, "QUERY");
        assert!(!call.has_request && !call.dns_request && call.has_response && call.dns_response);
        assert_eq!((call.request_body_size, call.response_body_size), (0, 112));
        assert_eq!(call.dns_answers.len(), 5);
        assert_eq!(call.elapsed_time, 0);
    }

    #[test]
    fn a_response_travelling_the_same_way_as_the_query_does_not_pair() {
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, T_Q_GOOGLE, hex(Q_GOOGLE)),
                (ToServer, T_R_GOOGLE, hex(R_GOOGLE)),
            ],
            Some(T_R_GOOGLE),
        );
        let (dirs, errors): (Vec<_>, Vec<_>) = seen
            .calls
            .iter()
            .map(|(d, c)| (*d, c.errors.clone()))
            .unzip();
        assert_eq!(dirs, [ToClient, ToServer]);
        assert_eq!(
            errors,
            [
                vec!["no_request".to_owned()],
                vec!["no_response".to_owned()]
            ]
        );
    }

    #[test]
    fn truncated_response_is_flagged() {
        let mut resp = hex(R_GOOGLE);
        resp[2] |= 0x02; // TC
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, T_Q_GOOGLE, hex(Q_GOOGLE)),
                (ToClient, T_R_GOOGLE, resp),
            ],
            None,
        );
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.errors, ["truncated"]);
        assert!(seen.calls[0].1.has_response);
    }

    #[test]
    fn retransmitted_query_is_counted_once() {
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, T_Q_GOOGLE, hex(Q_GOOGLE)),
                (ToServer, T_Q_GOOGLE + SECOND, hex(Q_GOOGLE)),
                (ToClient, T_Q_GOOGLE + 2 * SECOND, hex(R_GOOGLE)),
            ],
            Some(T_Q_GOOGLE + 3 * SECOND),
        );
        assert_eq!(seen.kinds(), ["duplicate_query"]);
        assert_eq!(seen.calls.len(), 1);
        // The first copy is kept: the time is from it.
        assert_eq!(seen.calls[0].1.timestamp, T_Q_GOOGLE);
        assert_eq!(seen.calls[0].1.elapsed_time, 2_000_000);
    }

    #[test]
    fn same_id_different_questions_pair_by_question() {
        // Q_A and Q_AAAA with one id, as a client sending both at once may.
        let mut q_aaaa = hex(Q_AAAA);
        let mut r_aaaa = hex(R_AAAA);
        q_aaaa[..2].copy_from_slice(&[0x75, 0xc0]);
        r_aaaa[..2].copy_from_slice(&[0x75, 0xc0]);
        let t = 1_000 * SECOND;
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, t, hex(Q_A)),
                (ToServer, t + 1000, q_aaaa),
                (ToClient, t + 5000, r_aaaa),
                (ToClient, t + 9000, hex(R_A)),
            ],
            Some(t + SECOND),
        );
        assert_eq!(seen.anomalies, []);
        let got: Vec<_> = seen
            .calls
            .iter()
            .map(|(_, c)| {
                (
                    c.dns_question_types[0].clone(),
                    c.dns_answers[0].rtype.clone(),
                    c.elapsed_time,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("AAAA".to_owned(), "AAAA".to_owned(), 4),
                ("A".to_owned(), "A".to_owned(), 9)
            ]
        );
    }

    #[test]
    fn pending_queries_are_bounded() {
        let limits = Limits {
            max_pending: 2,
            ..Limits::default()
        };
        let mut s = session(TransportKind::Udp, limits);
        let t = 1_000 * SECOND;
        let seen = feed(
            &mut s,
            &[
                (ToServer, t, hex(Q_PTR)),
                (ToServer, t + 1, hex(Q_A)),
                (ToServer, t + 2, hex(Q_AAAA)),
            ],
            None,
        );
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.dns_question_types, ["PTR"]);
        assert_eq!(seen.calls[0].1.errors, ["too_many_pending"]);
    }

    #[test]
    fn malformed_datagrams() {
        let mut s = udp();
        // Not even a header.
        let seen = feed(&mut s, &[(ToServer, 1, b"hello".to_vec())], Some(2));
        assert_eq!(seen.kinds(), ["malformed"]);
        assert_eq!(seen.calls, []);
        // A header claiming two questions with one present: the call is
        // still made, marked malformed.
        let mut q = hex(Q_GOOGLE);
        q[5] = 2;
        let seen = feed(&mut s, &[(ToServer, 3, q)], Some(4));
        assert_eq!(seen.kinds(), ["malformed"]);
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.path, "www.google.com");
        assert_eq!(seen.calls[0].1.errors, ["malformed", "no_response"]);
    }

    #[test]
    fn answers_are_capped() {
        // A response to Q_GOOGLE with 70 A records.
        let mut r = hex(Q_GOOGLE);
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 70;
        for i in 0..70u8 {
            r.extend_from_slice(&hex("c00c 0001 0001 00000070 0004 0a000000"));
            *r.last_mut().unwrap() = i;
        }
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, T_Q_GOOGLE, hex(Q_GOOGLE)),
                (ToClient, T_R_GOOGLE, r),
            ],
            None,
        );
        let call = &seen.calls[0].1;
        assert_eq!(call.dns_answers.len(), MAX_ANSWERS_KEPT);
        assert_eq!(call.dns_answers[63].data, "10.0.0.63");
        assert_eq!(call.errors, ["answers_capped"]);
    }

    #[test]
    fn extended_rcode_is_the_status() {
        // Q_GOOGLE answered with BADVERS: header rcode 0, OPT extended rcode 1.
        let mut r = hex(Q_GOOGLE);
        r[2] = 0x81;
        r[3] = 0x80;
        r[11] = 1;
        r.extend_from_slice(&hex("00 0029 04d0 01000000 0000"));
        let mut s = udp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, T_Q_GOOGLE, hex(Q_GOOGLE)),
                (ToClient, T_R_GOOGLE, r),
            ],
            None,
        );
        assert_eq!(seen.calls[0].1.status_code, 16);
    }

    /// Summary of a call for comparing runs.
    fn summary(seen: &Seen) -> Vec<String> {
        seen.calls
            .iter()
            .map(|(d, c)| {
                format!(
                    "{d:?} {} {} {:?} st={} ts={} el={} req={} resp={} ans={:?} err={:?}",
                    c.method,
                    c.path,
                    c.dns_question_types,
                    c.status_code,
                    c.timestamp,
                    c.elapsed_time,
                    c.request_body_size,
                    c.response_body_size,
                    c.dns_answers
                        .iter()
                        .map(|a| format!("{} {} {}", a.name, a.rtype, a.data))
                        .collect::<Vec<_>>(),
                    c.errors
                )
            })
            .collect()
    }

    #[test]
    fn tcp_several_messages_per_segment() {
        let steps = fixture(MULTIREQUEST);
        // frame 4 carries all 20 queries in one segment.
        assert_eq!(steps[0].2.len(), 650);
        let mut s = tcp();
        let seen = feed(&mut s, &steps, Some(1_477_425_061 * SECOND));
        assert_eq!(seen.anomalies, []);
        assert_eq!(seen.calls.len(), 20);
        for (i, (dir, call)) in seen.calls.iter().enumerate() {
            assert_eq!(*dir, ToServer);
            assert_eq!(call.path, format!("{i}.google.com"));
            assert_eq!(call.dns_question_types, ["A"]);
            assert_eq!(call.status_code, 3, "NXDOMAIN");
            assert_eq!(call.timestamp, 1_477_425_058_996_642_000);
            let len = 30 + u64::from(i >= 10);
            assert_eq!(
                (call.request_body_size, call.response_body_size),
                (len, len + 50)
            );
            assert!(call.errors.is_empty());
            assert!(call.dns_answers.is_empty());
        }
        // frame 8 answered 0.google.com at .114660.
        assert_eq!(seen.calls[0].1.elapsed_time, 118_018);
    }

    #[test]
    fn tcp_answer_with_records() {
        let mut s = tcp();
        let seen = feed(&mut s, &fixture(DNS_TCP), Some(1_591_780_865 * SECOND));
        assert_eq!(seen.anomalies, []);
        assert_eq!(
            summary(&seen),
            [
                "ToServer QUERY www.tcpdump.org [\"A\"] st=0 ts=1591780863847323000 el=125857 \
              req=56 resp=224 ans=[\"www.tcpdump.org A 192.139.46.66\", \
              \"www.tcpdump.org A 198.199.88.104\"] err=[]"
            ]
        );
    }

    /// The same conversation whole, byte by byte, and with each segment
    /// split in two at every offset: the same calls every time.
    fn incremental(text: &str) {
        let steps = fixture(text);
        let close = steps.last().unwrap().1 + SECOND;
        let whole = feed(&mut tcp(), &steps, Some(close));
        assert!(!whole.calls.is_empty());
        let bytewise: Vec<_> = steps
            .iter()
            .flat_map(|(d, ts, b)| b.iter().map(move |&x| (*d, *ts, vec![x])))
            .collect();
        assert_eq!(
            feed(&mut tcp(), &bytewise, Some(close)),
            whole,
            "byte by byte"
        );
        for (i, (_, _, bytes)) in steps.iter().enumerate() {
            for cut in 0..=bytes.len() {
                let mut split = steps.clone();
                let (dir, ts, b) = split.remove(i);
                split.insert(i, (dir, ts, b[cut..].to_vec()));
                split.insert(i, (dir, ts, b[..cut].to_vec()));
                assert_eq!(
                    feed(&mut tcp(), &split, Some(close)),
                    whole,
                    "segment {i} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn tcp_incremental_multirequest() {
        incremental(MULTIREQUEST);
    }

    #[test]
    fn tcp_incremental_answer() {
        incremental(DNS_TCP);
    }

    fn framed(msg: &str) -> Vec<u8> {
        let m = hex(msg);
        let mut v = (m.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(&m);
        v
    }

    #[test]
    fn tcp_message_split_keeps_its_first_timestamp() {
        let q = framed(Q_A);
        let mut s = tcp();
        let seen = feed(
            &mut s,
            &[
                (ToServer, 100, q[..1].to_vec()),
                (ToServer, 200, q[1..20].to_vec()),
                (ToServer, 300, q[20..].to_vec()),
            ],
            Some(400),
        );
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.timestamp, 100);
    }

    #[test]
    fn tcp_gap_inside_a_message_loses_only_that_message() {
        let (q1, q2) = (framed(Q_A), framed(Q_AAAA));
        let mut s = tcp();
        let mut out = Emitter::new();
        let mut seen = Seen::default();
        // 10 bytes of the first query, then a gap of 10, then its last
        // bytes with the second query.
        s.data(ToServer, 1, &q1[..10], &mut out);
        s.gap(ToServer, 2, 10, &mut out);
        let mut rest = q1[20..].to_vec();
        rest.extend_from_slice(&q2);
        s.data(ToServer, 3, &rest, &mut out);
        s.close(4, &mut out);
        seen.take(&mut out);
        assert_eq!(seen.kinds(), ["gap_in_message"]);
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.dns_question_types, ["AAAA"]);
        assert_eq!(seen.calls[0].1.errors, ["no_response"]);
    }

    #[test]
    fn tcp_gap_over_a_length_prefix_loses_framing_until_a_message_starts_a_segment() {
        let (q1, q2, q3) = (framed(Q_A), framed(Q_AAAA), framed(Q_PTR));
        let mut s = tcp();
        let mut out = Emitter::new();
        let mut seen = Seen::default();
        s.data(ToServer, 1, &q1, &mut out);
        s.gap(ToServer, 2, 100, &mut out);
        // The middle of some message: ignored.
        s.data(ToServer, 3, &q2[7..], &mut out);
        // A segment that starts with a message: framing is back.
        s.data(ToServer, 4, &q3, &mut out);
        s.close(5, &mut out);
        seen.take(&mut out);
        assert_eq!(seen.kinds(), ["lost_framing", "resync"]);
        let types: Vec<_> = seen
            .calls
            .iter()
            .map(|(_, c)| c.dns_question_types[0].as_str())
            .collect();
        assert_eq!(types, ["A", "PTR"]);
    }

    #[test]
    fn tcp_bad_message_is_skipped_by_its_length() {
        let mut data = vec![0, 3, 1, 2, 3];
        data.extend_from_slice(&framed(Q_A));
        let mut s = tcp();
        let seen = feed(&mut s, &[(ToServer, 1, data)], Some(2));
        assert_eq!(seen.kinds(), ["malformed"]);
        assert_eq!(seen.calls.len(), 1);
        assert_eq!(seen.calls[0].1.dns_question_types, ["A"]);
    }

    #[test]
    fn tcp_garbage_gives_up_the_direction() {
        let mut data = Vec::new();
        for _ in 0..MAX_MALFORMED_IN_A_ROW {
            data.extend_from_slice(&[0, 3, 1, 2, 3]);
        }
        data.extend_from_slice(&framed(Q_A));
        let mut s = tcp();
        let seen = feed(&mut s, &[(ToServer, 1, data)], Some(2));
        assert_eq!(
            seen.kinds(),
            ["malformed", "malformed", "malformed", "lost_framing"]
        );
        assert_eq!(seen.calls, []);
    }

    #[test]
    fn tcp_end_inside_a_message() {
        let q = framed(Q_A);
        let mut s = tcp();
        let mut out = Emitter::new();
        s.data(ToServer, 1, &q[..9], &mut out);
        s.end(ToServer, 2, &mut out);
        s.close(3, &mut out);
        assert_eq!(
            out.drain_anomalies().map(|a| a.kind).collect::<Vec<_>>(),
            ["incomplete_message"]
        );
        assert_eq!(out.drain_calls().count(), 0);
    }
}
