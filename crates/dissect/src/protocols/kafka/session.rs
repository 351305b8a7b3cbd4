//! One Kafka connection: frames requests and responses by their length
//! prefix (keeping only each message's head, see
//! [`crate::protocols::framing`]), reads their headers, and pairs each
//! response with its request by correlation id. Brokers answer a
//! connection's requests in order, so requests still waiting when a
//! later one is answered got no response (Produce with acks=0) and are
//! emitted as such. Kafka has no resynchronisation point: after a gap
//! the direction is given up. Created by [`super::new_session`].

use std::collections::VecDeque;

use trawl_flow::{Direction, Nanos};
use trawl_model::{Call, Protocol};

use super::parser::{self, MAX_MESSAGE_LEN, Request};
use crate::protocols::framing::{Framed, Framer};
use crate::seam::{Emitter, Limits, Session};

#[derive(Debug)]
struct PendingRequest {
    req: Request,
    size: usize,
    start: Nanos,
}

/// A response: its correlation id, size, times and error code (read once
/// its request is known).
#[derive(Debug)]
struct Response {
    size: usize,
    start: Nanos,
    end: Nanos,
    error_code: Option<i16>,
}

#[derive(Debug)]
pub struct KafkaSession {
    limits: Limits,
    client: Framer,
    server: Framer,
    client_lost: bool,
    server_lost: bool,
    pending: VecDeque<PendingRequest>,
}

/// Kafka's length prefix: a positive big-endian i32 not counting itself.
fn total_len(prefix: [u8; 4]) -> Option<usize> {
    let n = usize::try_from(i32::from_be_bytes(prefix)).ok()?;
    (n > 0 && n <= MAX_MESSAGE_LEN).then_some(n + 4)
}

impl KafkaSession {
    pub fn new(limits: Limits) -> KafkaSession {
        KafkaSession {
            limits,
            client: Framer::default(),
            server: Framer::default(),
            client_lost: false,
            server_lost: false,
            pending: VecDeque::new(),
        }
    }

    fn on_request(&mut self, m: &Framed<'_>, out: &mut Emitter) {
        let Some(req) = m.head.get(4..).and_then(parser::parse_request) else {
            out.anomaly(m.start, "kafka_bad_request");
            return;
        };
        self.pending.push_back(PendingRequest {
            req,
            size: m.total,
            start: m.start,
        });
        if self.pending.len() > self.limits.max_pending
            && let Some(old) = self.pending.pop_front()
        {
            let mut call = build_call(Some(&old), None, None);
            call.errors.push("too_many_pending".to_owned());
            out.call(Direction::ToServer, call);
        }
    }

    fn on_response(&mut self, m: &Framed<'_>, out: &mut Emitter) {
        let body = m.head.get(4..).unwrap_or_default();
        let Some(corr) = parser::response_correlation_id(body) else {
            out.anomaly(m.start, "kafka_bad_response");
            return;
        };
        let mut resp = Response {
            size: m.total,
            start: m.start,
            end: m.end,
            error_code: None,
        };
        match self
            .pending
            .iter()
            .position(|p| p.req.correlation_id == corr)
        {
            Some(i) => {
                // Earlier requests were not answered (in-order responses).
                for old in self.pending.drain(..i).collect::<Vec<_>>() {
                    out.call(Direction::ToServer, build_call(Some(&old), None, None));
                }
                if let Some(req) = self.pending.pop_front() {
                    resp.error_code =
                        parser::response_error_code(body, req.req.api_key, req.req.api_version);
                    out.call(
                        Direction::ToServer,
                        build_call(Some(&req), Some(&resp), Some(corr)),
                    );
                }
            }
            None => out.call(
                Direction::ToServer,
                build_call(None, Some(&resp), Some(corr)),
            ),
        }
    }
}

fn size_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn build_call(req: Option<&PendingRequest>, resp: Option<&Response>, corr: Option<i32>) -> Call {
    let mut call = Call::new(Protocol::Kafka);
    call.has_request = req.is_some();
    call.has_response = resp.is_some();
    call.timestamp = req.map(|r| r.start).or(resp.map(|r| r.start)).unwrap_or(0);
    if let (Some(q), Some(s)) = (req, resp) {
        call.elapsed_time = (s.end - q.start).max(0) / 1_000;
    }
    let a = &mut call.attrs;
    match req {
        Some(p) => {
            let r = &p.req;
            let name = parser::api_key_name(r.api_key)
                .map_or_else(|| format!("API_KEY_{}", r.api_key), str::to_owned);
            call.method.clone_from(&name);
            a.set("kafka_api_key", i64::from(r.api_key));
            a.set("kafka_api_key_name", name);
            a.set("kafka_api_version", i64::from(r.api_version));
            a.set("kafka_correlation_id", i64::from(r.correlation_id));
            a.set("kafka_client_id", r.client_id.clone().unwrap_or_default());
            let summary = r.topics.join(",");
            call.path.clone_from(&summary);
            a.set("kafka_topics", r.topics.clone());
            a.set("kafka_request_summary", summary);
            a.set("kafka_request", true);
            a.set("kafka_request_size", size_i64(p.size));
            a.set("kafka_size", size_i64(p.size));
        }
        None => {
            // The request was not seen: its key is unknown.
            a.set("kafka_api_key", -1i64);
            a.set("kafka_correlation_id", i64::from(corr.unwrap_or(0)));
            call.errors.push("no_request".to_owned());
        }
    }
    match resp {
        Some(s) => {
            a.set("kafka_response", true);
            a.set("kafka_response_size", size_i64(s.size));
            if req.is_none() {
                a.set("kafka_size", size_i64(s.size));
            }
            if let Some(e) = s.error_code {
                a.set("kafka_error_code", i64::from(e));
            }
        }
        None => call.errors.push("no_response".to_owned()),
    }
    call
}

impl Session for KafkaSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        let cap = self.limits.max_head_bytes;
        let mut done = Vec::new();
        let (framer, lost) = match dir {
            Direction::ToServer => (&mut self.client, &mut self.client_lost),
            Direction::ToClient => (&mut self.server, &mut self.server_lost),
        };
        if *lost {
            return;
        }
        let r = framer.push(ts, data, cap, total_len, |m| {
            done.push((m.head.to_vec(), m.total, m.start, m.end));
        });
        if r.is_err() {
            *lost = true;
            out.anomaly(ts, "kafka_bad_length");
        }
        for (head, total, start, end) in done {
            let m = Framed {
                head: &head,
                total,
                start,
                end,
            };
            match dir {
                Direction::ToServer => self.on_request(&m, out),
                Direction::ToClient => self.on_response(&m, out),
            }
        }
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        let (framer, lost) = match dir {
            Direction::ToServer => (&mut self.client, &mut self.client_lost),
            Direction::ToClient => (&mut self.server, &mut self.server_lost),
        };
        if !*lost {
            out.anomaly(ts, "kafka_gap");
        }
        framer.reset();
        *lost = true;
    }

    fn end(&mut self, _dir: Direction, _ts: Nanos, _out: &mut Emitter) {}

    fn close(&mut self, _ts: Nanos, out: &mut Emitter) {
        for p in std::mem::take(&mut self.pending) {
            out.call(Direction::ToServer, build_call(Some(&p), None, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    /// Frames 1 and 2 of kafka-deepflow-18-api-versions-v3.pcap, shaped
    /// by hand: ApiVersions v3 request (flexible header) and its v0-header
    /// response with error 0.
    fn conversation() -> (Vec<u8>, Vec<u8>) {
        let mut req = hex("0012 0003 00000002 000d");
        req.extend(b"adminclient-1");
        req.extend(hex("00 12"));
        req.extend(b"apache-kafka-java");
        req.extend(hex("06 332e302e30 00"));
        let mut framed = u32::try_from(req.len()).unwrap().to_be_bytes().to_vec();
        framed.extend(req);
        let resp_body = hex("00000002 0000 01 00000000 00");
        let mut resp = u32::try_from(resp_body.len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        resp.extend(resp_body);
        (framed, resp)
    }

    fn run(chunk: usize) -> Vec<Call> {
        let (req, resp) = conversation();
        let mut s = KafkaSession::new(Limits::default());
        let mut out = Emitter::new();
        for (i, c) in req.chunks(chunk).enumerate() {
            s.data(Direction::ToServer, i as i64, c, &mut out);
        }
        for c in resp.chunks(chunk) {
            s.data(Direction::ToClient, 1_000_000, c, &mut out);
        }
        s.close(2_000_000, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    #[test]
    fn pairs_api_versions_whole_and_split_anywhere() {
        let whole = run(usize::MAX);
        assert_eq!(whole.len(), 1);
        let c = &whole[0];
        assert_eq!(c.attrs.str("kafka_api_key_name"), "API_VERSIONS");
        assert_eq!(c.attrs.int("kafka_api_version"), 3);
        assert_eq!(c.attrs.int("kafka_correlation_id"), 2);
        assert_eq!(c.attrs.str("kafka_client_id"), "adminclient-1");
        assert_eq!(c.attrs.int("kafka_error_code"), 0);
        assert!(c.has_request && c.has_response && c.errors.is_empty());
        for chunk in 1..40 {
            assert_eq!(run(chunk).len(), 1, "chunk {chunk}");
            assert_eq!(run(chunk)[0].attrs, c.attrs, "chunk {chunk}");
        }
    }

    #[test]
    fn unanswered_and_unmatched() {
        let (req, resp) = conversation();
        let mut s = KafkaSession::new(Limits::default());
        let mut out = Emitter::new();
        s.data(Direction::ToClient, 0, &resp, &mut out);
        s.data(Direction::ToServer, 1, &req, &mut out);
        s.close(2, &mut out);
        let calls: Vec<Call> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].errors, vec!["no_request"]);
        assert_eq!(calls[0].attrs.int("kafka_api_key"), -1);
        assert_eq!(calls[1].errors, vec!["no_response"]);
        // Garbage lengths give up the direction with an anomaly.
        let mut s = KafkaSession::new(Limits::default());
        s.data(Direction::ToServer, 0, &[0xff; 16], &mut out);
        assert_eq!(
            out.drain_anomalies().next().unwrap().kind,
            "kafka_bad_length"
        );
    }
}
