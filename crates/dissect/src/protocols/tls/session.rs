//! One TLS connection: frames records in both directions, reassembles the
//! handshake bytes of each side until its hello (ClientHello from the
//! client, ServerHello from the server) is whole, however the hello is
//! split across records and TCP segments, and emits one call per
//! handshake: request = ClientHello, response = ServerHello. A
//! HelloRetryRequest ends one call (with the first ClientHello) and opens
//! the next. After the hellos only record headers are read, to see an
//! alert, a ChangeCipherSpec or application data; once both sides are
//! past the handshake the call is emitted and the rest of the
//! connection's bytes are skipped without being looked at (the flow
//! record counts them).
//!
//! Created by [`super::new_session`] for connections [`super::probe`]
//! accepted.

use trawl_flow::{Direction, Nanos};
use trawl_model::{Call, Protocol};

use super::ja4::ja4;
use super::parser::{
    self, ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, CLIENT_HELLO, ClientHello, HANDSHAKE,
    RECORD_HEADER_LEN, SERVER_HELLO, ServerHello,
};
use crate::seam::{Emitter, Limits, Session};

/// Most handshake bytes held for one side while its hello is incomplete.
/// A ClientHello with a post-quantum key share is about 1.8 KiB and the
/// largest seen in the wild (many PSK identities, padding) stay below
/// 16 KiB; 64 KiB leaves room for any sane hello and bounds the memory an
/// endless "handshake" can take.
const MAX_HELLO_BYTES: usize = 64 * 1024;

/// What one direction's record framer is doing.
#[derive(Debug, Default)]
struct Side {
    /// Bytes of a record header not yet complete.
    header: Vec<u8>,
    /// Content type and bytes left of the record being read.
    record_type: u8,
    record_left: usize,
    /// Length of the current record (alerts are read only when 2 bytes).
    record_len: usize,
    /// Handshake bytes kept while `want_hello`.
    handshake: Vec<u8>,
    /// Still waiting for this side's hello.
    want_hello: bool,
    /// Alert bytes of the current plaintext alert record.
    alert: Vec<u8>,
    /// Sent a ChangeCipherSpec: its later handshake records are encrypted.
    changed_cipher: bool,
    /// Sent application data.
    app_data: bool,
    /// Framing is lost (a gap, or bytes that are not TLS records).
    lost: bool,
    /// Timestamp of the data that began the hello being collected.
    hello_start: Option<Nanos>,
}

impl Side {
    fn new() -> Side {
        Side {
            want_hello: true,
            ..Side::default()
        }
    }

    fn past_handshake(&self) -> bool {
        self.changed_cipher || self.app_data || self.lost
    }
}

/// The hellos of the handshake being recorded.
#[derive(Debug, Default)]
struct Pending {
    client_hello: Option<(ClientHello, usize)>,
    client_ts: Nanos,
    server_hello: Option<(ServerHello, usize)>,
    server_ts: Nanos,
    alert: Option<String>,
    errors: Vec<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.client_hello.is_none() && self.server_hello.is_none() && self.alert.is_none()
    }
}

/// The TLS session of one connection.
#[derive(Debug)]
pub struct TlsSession {
    client: Side,
    server: Side,
    pending: Pending,
    /// The call of this connection's (last) handshake was emitted; the
    /// rest of the bytes are skipped.
    done: bool,
}

impl TlsSession {
    pub fn new(_limits: Limits) -> TlsSession {
        TlsSession {
            client: Side::new(),
            server: Side::new(),
            pending: Pending::default(),
            done: false,
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        }
    }

    /// Frames `data` into records; handshake payloads go to the side's
    /// buffer while its hello is wanted.
    fn frame(&mut self, dir: Direction, ts: Nanos, mut data: &[u8], out: &mut Emitter) {
        while !data.is_empty() && !self.done {
            let side = self.side(dir);
            if side.lost {
                return;
            }
            if side.record_left == 0 {
                let need = RECORD_HEADER_LEN - side.header.len();
                let (take, rest) = data.split_at(need.min(data.len()));
                side.header.extend_from_slice(take);
                data = rest;
                if side.header.len() < RECORD_HEADER_LEN {
                    return;
                }
                let Some(h) = parser::record_header(&side.header) else {
                    side.lost = true;
                    out.anomaly(ts, "tls_not_a_record");
                    self.maybe_finish(ts, out);
                    return;
                };
                side.header.clear();
                side.record_type = h.content_type;
                side.record_left = h.len;
                side.record_len = h.len;
                side.alert.clear();
                // A ChangeCipherSpec before this side's hello is TLS 1.3's
                // middlebox-compatibility record (the client sends one
                // after a HelloRetryRequest): its next hello is plaintext.
                if h.content_type == CHANGE_CIPHER_SPEC && !side.want_hello {
                    side.changed_cipher = true;
                }
                if h.content_type == APPLICATION_DATA {
                    side.app_data = true;
                }
                if h.len == 0 {
                    continue;
                }
            }
            let side = self.side(dir);
            let n = side.record_left.min(data.len());
            let (body, rest) = data.split_at(n);
            data = rest;
            side.record_left -= n;
            match side.record_type {
                HANDSHAKE if side.want_hello && !side.changed_cipher => {
                    if side.handshake.is_empty() {
                        side.hello_start = Some(ts);
                    }
                    if side.handshake.len() + body.len() > MAX_HELLO_BYTES {
                        side.want_hello = false;
                        side.handshake = Vec::new();
                        self.pending.errors.push("tls_hello_too_long".to_owned());
                        out.anomaly(ts, "tls_hello_too_long");
                    } else {
                        side.handshake.extend_from_slice(body);
                        self.read_hellos(dir, ts, out);
                    }
                }
                // A plaintext alert is two bytes; a longer one is encrypted.
                ALERT if side.record_len == 2 && !side.changed_cipher => {
                    side.alert.extend_from_slice(body);
                    if let [_level, description] = side.alert[..] {
                        let name = parser::alert_name(description);
                        side.alert.clear();
                        if self.pending.alert.is_none() {
                            self.pending.alert = Some(name);
                        }
                        self.emit(ts, out);
                    }
                }
                _ => {}
            }
            self.maybe_finish(ts, out);
        }
    }

    /// Reads whole handshake messages from `dir`'s buffer until its hello.
    fn read_hellos(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter) {
        loop {
            let side = self.side(dir);
            let Some(&[ty, l0, l1, l2]) = side.handshake.first_chunk::<4>() else {
                return;
            };
            let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            if len > MAX_HELLO_BYTES {
                side.want_hello = false;
                side.handshake = Vec::new();
                self.pending.errors.push("tls_hello_too_long".to_owned());
                out.anomaly(ts, "tls_hello_too_long");
                return;
            }
            let Some(body) = side.handshake.get(4..4 + len) else {
                return;
            };
            let start = side.hello_start.unwrap_or(ts);
            match (dir, ty) {
                (Direction::ToServer, CLIENT_HELLO) => {
                    let parsed = parser::parse_client_hello(body);
                    side.want_hello = false;
                    side.handshake = Vec::new();
                    match parsed {
                        Ok(ch) => {
                            if self.pending.client_hello.is_some() {
                                // A second hello without a retry request
                                // between: record the first on its own.
                                self.emit(ts, out);
                            }
                            self.pending.client_hello = Some((ch, 4 + len));
                            self.pending.client_ts = start;
                        }
                        Err(_) => {
                            self.pending.errors.push("tls_bad_client_hello".to_owned());
                            out.anomaly(ts, "tls_bad_client_hello");
                        }
                    }
                    return;
                }
                (Direction::ToClient, SERVER_HELLO) => {
                    let parsed = parser::parse_server_hello(body);
                    side.want_hello = false;
                    side.handshake = Vec::new();
                    match parsed {
                        Ok(sh) => {
                            let retry = sh.retry_request;
                            self.pending.server_hello = Some((sh, 4 + len));
                            self.pending.server_ts = ts;
                            if retry {
                                // The client answers with a second
                                // ClientHello, the server with the real
                                // ServerHello: a new handshake call.
                                self.emit(ts, out);
                                self.done = false;
                                self.client.want_hello = true;
                                self.server.want_hello = true;
                            }
                        }
                        Err(_) => {
                            self.pending.errors.push("tls_bad_server_hello".to_owned());
                            out.anomaly(ts, "tls_bad_server_hello");
                        }
                    }
                    return;
                }
                _ => {
                    // Another message before the hello (HelloRequest):
                    // drop it and read on.
                    side.handshake.drain(..4 + len);
                    if side.handshake.is_empty() {
                        side.hello_start = None;
                    }
                }
            }
        }
    }

    /// Emits the call once both sides are past the hellos.
    fn maybe_finish(&mut self, ts: Nanos, out: &mut Emitter) {
        let hellos_done = !self.client.want_hello && !self.server.want_hello;
        let both_past = self.client.past_handshake() && self.server.past_handshake();
        if !self.done && ((hellos_done && both_past) || (self.client.lost && self.server.lost)) {
            self.emit(ts, out);
        }
    }

    /// Emits what is pending as one call and skips the rest of the
    /// connection.
    fn emit(&mut self, _ts: Nanos, out: &mut Emitter) {
        self.done = true;
        let p = std::mem::take(&mut self.pending);
        if p.is_empty() {
            return;
        }
        out.call(Direction::ToServer, build_call(p));
    }
}

/// The call of one handshake.
fn build_call(p: Pending) -> Call {
    let mut call = Call::new(Protocol::Tls);
    call.errors = p.errors;
    let ch = p.client_hello.as_ref();
    let sh = p.server_hello.as_ref();
    call.has_request = ch.is_some();
    call.has_response = sh.is_some();
    call.timestamp = if ch.is_some() {
        p.client_ts
    } else {
        p.server_ts
    };
    if ch.is_some() && sh.is_some() {
        call.elapsed_time = (p.server_ts - p.client_ts).max(0) / 1_000;
    }
    let a = &mut call.attrs;
    let mut version = String::new();
    let mut sni = String::new();
    let mut alpn = String::new();
    if let Some((ch, size)) = ch {
        version = parser::version_name(ch.max_version());
        sni = ch.sni.clone().unwrap_or_default();
        alpn = ch.alpn.first().cloned().unwrap_or_default();
        a.set("tls_sni", sni.clone());
        a.set("tls_alpn", ch.alpn.clone());
        let mut offered: Vec<String> = ch
            .supported_versions
            .iter()
            .filter(|v| !parser::is_grease(**v))
            .map(|v| parser::version_name(*v))
            .collect();
        if offered.is_empty() {
            offered.push(parser::version_name(ch.legacy_version));
        }
        a.set("tls_client_versions", offered);
        a.set("tls_ja4", ja4(ch));
        a.set("tls_request_size", i64::try_from(*size).unwrap_or(i64::MAX));
        call.request_header_size = *size as u64;
    }
    let mut info = String::new();
    if let Some((sh, size)) = sh {
        version = parser::version_name(sh.version());
        let cipher = parser::cipher_name(sh.cipher_suite);
        info = format!("{version}, {cipher}");
        a.set("tls_cipher", cipher);
        if let Some(sel) = &sh.alpn {
            alpn.clone_from(sel);
            a.set("tls_alpn_selected", sel.clone());
        } else if sh.version() < 0x0304 {
            // TLS 1.2 and older name the choice in the ServerHello: none
            // was made. TLS 1.3 sends it encrypted (EncryptedExtensions),
            // so the summary keeps the client's first offer.
            alpn.clear();
        }
        a.set(
            "tls_response_size",
            i64::try_from(*size).unwrap_or(i64::MAX),
        );
        call.response_header_size = *size as u64;
    }
    let total = call.request_header_size + call.response_header_size;
    a.set("tls_total_size", i64::try_from(total).unwrap_or(i64::MAX));
    a.set("tls_version", version.clone());
    if !info.is_empty() {
        a.set("tls_info", info);
    }
    let retry = sh.is_some_and(|(s, _)| s.retry_request);
    let mut summary: Vec<&str> = [version.as_str(), sni.as_str(), alpn.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if retry {
        summary.push("HelloRetryRequest");
    }
    let summary = summary.join(" ");
    a.set("tls_summary", summary);
    call.method = if retry {
        "HelloRetryRequest".to_owned()
    } else {
        "ClientHello".to_owned()
    };
    call.path = sni;
    if let Some(alert) = p.alert {
        call.attrs.set("tls_alert", alert);
        call.errors.push("tls_alert".to_owned());
    }
    if !call.has_response {
        call.errors.push("no_response".to_owned());
    }
    call
}

impl Session for TlsSession {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter) {
        if !self.done {
            self.frame(dir, ts, data, out);
        }
    }

    fn gap(&mut self, dir: Direction, ts: Nanos, _len: u64, out: &mut Emitter) {
        if self.done {
            return;
        }
        let side = self.side(dir);
        if side.want_hello {
            out.anomaly(ts, "tls_gap_in_handshake");
        }
        // Record boundaries are lost with the bytes.
        side.lost = true;
        side.want_hello = false;
        side.handshake = Vec::new();
        self.maybe_finish(ts, out);
    }

    fn end(&mut self, _dir: Direction, _ts: Nanos, _out: &mut Emitter) {}

    fn close(&mut self, ts: Nanos, out: &mut Emitter) {
        if !self.done {
            self.emit(ts, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::tls::parser::tests::sample_client_hello_body;
    use crate::testutil::hex;

    fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ty, 0x03, 0x03];
        r.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        r.extend(body);
        r
    }

    fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut h = vec![ty];
        h.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        h.extend(body);
        h
    }

    fn server_hello(cipher: &str, alpn: bool) -> Vec<u8> {
        let mut body = hex("0303");
        body.extend([0x22; 32]);
        body.extend(hex("00"));
        body.extend(hex(cipher));
        body.push(0);
        let mut exts = Vec::new();
        if alpn {
            exts.extend(hex("0010 0005 0003 02"));
            exts.extend(b"h2");
        }
        body.extend(u16::try_from(exts.len()).unwrap().to_be_bytes());
        body.extend(exts);
        handshake(2, &body)
    }

    /// A TLS 1.2 handshake: the ClientHello split over two records, the
    /// ServerHello with ALPN h2 and a Certificate in one record, then
    /// ChangeCipherSpec and application data both ways.
    fn conversation() -> (Vec<u8>, Vec<u8>) {
        let ch = handshake(1, &sample_client_hello_body());
        let (a, b) = ch.split_at(50);
        let mut client = record(22, a);
        client.extend(record(22, b));
        let mut sh = server_hello("c02f", true);
        sh.extend(handshake(11, &[0u8; 300]));
        let mut server = record(22, &sh);
        server.extend(record(20, &[1]));
        server.extend(record(23, &[0xab; 40]));
        client.extend(record(20, &[1]));
        client.extend(record(23, &[0xcd; 64]));
        (client, server)
    }

    fn run(client: &[u8], server: &[u8], chunk: usize) -> Vec<Call> {
        let mut s = TlsSession::new(Limits::default());
        let mut out = Emitter::new();
        let (c1, c2) = client.split_at(client.len() - 5 - 64 - 6);
        for p in c1.chunks(chunk) {
            s.data(Direction::ToServer, 1_000_000, p, &mut out);
        }
        for p in server.chunks(chunk) {
            s.data(Direction::ToClient, 3_000_000, p, &mut out);
        }
        for p in c2.chunks(chunk) {
            s.data(Direction::ToServer, 4_000_000, p, &mut out);
        }
        s.close(9_000_000, &mut out);
        out.drain_calls().map(|(_, c)| c).collect()
    }

    #[test]
    fn one_call_per_handshake_whole_and_split_anywhere() {
        let (client, server) = conversation();
        let whole = run(&client, &server, usize::MAX);
        assert_eq!(whole.len(), 1);
        let c = &whole[0];
        assert_eq!(c.attrs.str("tls_summary"), "TLS 1.2 example.com h2");
        assert_eq!(c.attrs.str("tls_sni"), "example.com");
        assert_eq!(
            c.attrs.str("tls_cipher"),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(c.attrs.str("tls_alpn_selected"), "h2");
        assert!(c.attrs.str("tls_ja4").starts_with("t13d0204h2_"));
        assert_eq!(c.elapsed_time, 2_000);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        for chunk in 1..200 {
            assert_eq!(run(&client, &server, chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn retry_request_makes_two_calls_and_alerts_are_errors() {
        let ch = record(22, &handshake(1, &sample_client_hello_body()));
        let mut hrr = hex("0303");
        hrr.extend(super::parser::tests::HRR);
        hrr.extend(hex("00 1302 00 0006 002b 0002 0304"));
        let mut s = TlsSession::new(Limits::default());
        let mut out = Emitter::new();
        s.data(Direction::ToServer, 0, &ch, &mut out);
        s.data(
            Direction::ToClient,
            1,
            &record(22, &handshake(2, &hrr)),
            &mut out,
        );
        // Middlebox-compatibility ChangeCipherSpec, then the second hello.
        s.data(Direction::ToServer, 2, &record(20, &[1]), &mut out);
        s.data(Direction::ToServer, 3, &ch, &mut out);
        s.data(Direction::ToClient, 4, &record(21, &[2, 40]), &mut out);
        s.close(5, &mut out);
        let calls: Vec<Call> = out.drain_calls().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 2, "{calls:#?}");
        assert_eq!(calls[0].method, "HelloRetryRequest");
        assert!(
            calls[0]
                .attrs
                .str("tls_summary")
                .ends_with("HelloRetryRequest")
        );
        assert_eq!(calls[1].attrs.str("tls_alert"), "handshake_failure");
        assert_eq!(calls[1].errors, vec!["tls_alert", "no_response"]);
    }

    #[test]
    fn garbage_after_the_probe_and_gaps_do_not_panic() {
        let mut s = TlsSession::new(Limits::default());
        let mut out = Emitter::new();
        s.data(
            Direction::ToServer,
            0,
            &hex("16 0303 0010 01 00000c"),
            &mut out,
        );
        s.gap(Direction::ToServer, 1, 100, &mut out);
        s.data(Direction::ToClient, 2, &[0xff; 64], &mut out);
        s.close(3, &mut out);
        let kinds: Vec<&str> = out.drain_anomalies().map(|a| a.kind).collect();
        assert_eq!(kinds, vec!["tls_gap_in_handshake", "tls_not_a_record"]);
        assert_eq!(out.drain_calls().count(), 0);
    }
}
