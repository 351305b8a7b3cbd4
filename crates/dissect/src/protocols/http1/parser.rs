//! Pure HTTP/1.x parsing over `&[u8]`: message heads (through `httparse`),
//! start-line recognition for probing and resynchronisation, request
//! targets, cookies, chunk-size lines and the body-framing facts a head
//! declares (RFC 9112 §6).
//!
//! Nothing here keeps state or allocates except to return owned values the
//! caller asked for; [`super::session`] drives these functions over each
//! direction's byte stream and decides what the facts mean for the
//! connection.

use std::mem::MaybeUninit;

/// Header fields parsed per head. Browsers send 10–20 and proxies add a
/// few; 256 leaves room for cookie-heavy and debug-header-heavy traffic.
/// The slots are uninitialised stack space, so the bound costs nothing per
/// parse; a head with more fields is reported as `too_many_headers`.
pub const MAX_HEADERS: usize = 256;

/// Longest chunk-size line (size, extensions, CRLF). Extensions are nearly
/// never used; real size lines are under 20 bytes. A longer line is
/// garbage or an attack, and the body is given up on.
pub const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;

/// Request methods recognised when probing a connection and when looking
/// for the next request after a gap: RFC 9110, WebDAV (RFC 4918, 3253,
/// 3648, 3744, 4791, 5842) and a few common extensions. The session itself
/// parses any token as a method once it is in step with the stream.
pub const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"CHECKIN",
    b"UNCHECKOUT",
    b"MERGE",
    b"MKCALENDAR",
    b"MKWORKSPACE",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
    b"UPDATE",
    b"LABEL",
    b"ACL",
    b"BIND",
    b"UNBIND",
    b"REBIND",
    b"ORDERPATCH",
    b"LINK",
    b"UNLINK",
    b"PURGE",
    b"QUERY",
    // Cisco CallManager's; Wireshark knows it, and zeek's methods trace has it.
    b"CCM_POST",
];

/// The start of every HTTP/1.x status line.
const STATUS_PREFIX: &[u8] = b"HTTP/1.";

/// Does a byte string start like something?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// It does.
    Yes,
    /// The bytes so far agree, but there are too few to tell.
    Maybe,
    /// It does not.
    No,
}

/// Does `data` start with `KNOWN-METHOD SP`?
pub fn request_line_start(data: &[u8]) -> Prefix {
    let mut maybe = false;
    for method in KNOWN_METHODS {
        match data.split_at_checked(method.len()) {
            Some((head, rest)) => {
                if head == *method {
                    match rest.first() {
                        Some(b' ') => return Prefix::Yes,
                        Some(_) => {}
                        None => maybe = true,
                    }
                }
            }
            None => {
                if method.starts_with(data) {
                    maybe = true;
                }
            }
        }
    }
    if maybe { Prefix::Maybe } else { Prefix::No }
}

/// Does `data` start with `HTTP/1.`?
pub fn status_line_start(data: &[u8]) -> Prefix {
    if data.starts_with(STATUS_PREFIX) {
        Prefix::Yes
    } else if STATUS_PREFIX.starts_with(data) {
        Prefix::Maybe
    } else {
        Prefix::No
    }
}

/// Outcome of parsing a message head.
#[derive(Debug)]
pub enum HeadParse<T> {
    Complete(T),
    /// The bytes so far are a valid beginning; the head needs more.
    Partial,
    /// Not an HTTP/1 head; the code names why (an anomaly kind).
    Invalid(&'static str),
}

/// A parsed request head, borrowing the input.
#[derive(Debug)]
pub struct RequestHead<'h, 'b> {
    pub method: &'b str,
    /// The request target as sent (origin, absolute, authority or asterisk form).
    pub target: &'b str,
    /// `HTTP/1.0` or `HTTP/1.1`; for a malformed request line, whatever
    /// stood in the version's place (maybe nothing).
    pub version: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    /// Bytes of the head, leading empty lines and final CRLF included.
    pub len: usize,
    /// The request line is not valid HTTP/1 but was read leniently
    /// (see [`lenient_request_start`]).
    pub malformed: bool,
}

/// A parsed response head, borrowing the input.
#[derive(Debug)]
pub struct ResponseHead<'h, 'b> {
    pub version: u8,
    pub code: u16,
    pub headers: &'h [httparse::Header<'b>],
    pub len: usize,
}

/// Uninitialised header slots for one parse, on the caller's stack.
pub type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh header slots (no initialisation cost).
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Tolerant settings: what browsers accept from servers, traffic we must
/// still show. Requests are held to a stricter line so that garbage is
/// told apart from a request quickly.
fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

fn invalid_kind(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::TooManyHeaders => "too_many_headers",
        _ => "bad_head",
    }
}

/// Parse a request head at the start of `buf`.
pub fn parse_request_head<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut HeaderSlots<'b>,
) -> HeadParse<RequestHead<'h, 'b>> {
    let mut req = httparse::Request::new(&mut []);
    match config().parse_request_with_uninit_headers(&mut req, buf, slots) {
        Ok(httparse::Status::Complete(len)) => {
            match (req.method, req.path, req.version) {
                (Some(method), Some(target), Some(version)) => HeadParse::Complete(RequestHead {
                    method,
                    target,
                    version: version_str(version),
                    headers: req.headers,
                    len,
                    malformed: false,
                }),
                // httparse sets all three on Complete; treat otherwise as garbage.
                _ => HeadParse::Invalid("bad_head"),
            }
        }
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(e) => HeadParse::Invalid(invalid_kind(e)),
    }
}

/// Parse a response head at the start of `buf`.
pub fn parse_response_head<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut HeaderSlots<'b>,
) -> HeadParse<ResponseHead<'h, 'b>> {
    let mut resp = httparse::Response::new(&mut []);
    match config().parse_response_with_uninit_headers(&mut resp, buf, slots) {
        Ok(httparse::Status::Complete(len)) => match (resp.version, resp.code) {
            (Some(version), Some(code)) => HeadParse::Complete(ResponseHead {
                version,
                code,
                headers: resp.headers,
                len,
            }),
            _ => HeadParse::Invalid("bad_head"),
        },
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(e) => HeadParse::Invalid(invalid_kind(e)),
    }
}

/// The first line of `buf` without its line ending, if a whole line is there.
fn first_line(buf: &[u8]) -> Option<&[u8]> {
    let end = memchr::memchr(b'\n', buf)?;
    let line = buf.get(..end)?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// Does `buf` (after any empty lines) start like a request line that
/// httparse may refuse but that is still plainly a request: a known method
/// followed by a space or the line's end (`GET / HTTP/1.`, `OPTIONS`,
/// `GET /HTTP/1.1`)? Such heads are read leniently, as tshark does, so
/// that their responses still pair.
pub fn lenient_request_start(buf: &[u8]) -> Prefix {
    let buf = skip_empty_lines(buf);
    let mut maybe = buf.is_empty();
    for method in KNOWN_METHODS {
        match buf.strip_prefix(*method).map(|rest| rest.first()) {
            Some(Some(b' ' | b'\r' | b'\n')) => return Prefix::Yes,
            Some(None) => maybe = true,
            Some(Some(_)) => {}
            None => maybe |= method.starts_with(buf),
        }
    }
    if maybe { Prefix::Maybe } else { Prefix::No }
}

fn skip_empty_lines(mut buf: &[u8]) -> &[u8] {
    while let [b'\r' | b'\n', rest @ ..] = buf {
        buf = rest;
    }
    buf
}

/// Bytes up to and including the blank line that ends a head, searching
/// at most `limit` bytes; None when no blank line is there.
pub fn find_head_end(buf: &[u8], limit: usize) -> Option<usize> {
    let start = buf.len() - skip_empty_lines(buf).len();
    let window = buf.get(..limit).unwrap_or(buf);
    let body = window.get(start..)?;
    let mut from = 0usize;
    while let Some(i) = memchr::memchr(b'\n', body.get(from..)?) {
        let after = from.saturating_add(i).saturating_add(1);
        match body.get(after..) {
            Some([b'\n', ..]) => return Some(start + after + 1),
            Some([b'\r', b'\n', ..]) => return Some(start + after + 2),
            _ => from = after,
        }
    }
    None
}

/// Read a whole head (as delimited by [`find_head_end`]) leniently:
/// method, target and version are the first three words of the request
/// line (missing ones empty), and field lines that parse are kept in
/// `fields`. None when the line does not start with a known method.
pub fn parse_lenient_request<'b>(
    head: &'b [u8],
    fields: &mut Vec<httparse::Header<'b>>,
) -> Option<(&'b str, &'b str, &'b str)> {
    let head = skip_empty_lines(head);
    let line_end = memchr::memchr(b'\n', head)?;
    let (line, rest) = head.split_at_checked(line_end)?;
    let line = std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)).ok()?;
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let method = words.next()?;
    if !KNOWN_METHODS.contains(&method.as_bytes()) {
        return None;
    }
    let target = words.next().unwrap_or("");
    let version = words.next().unwrap_or("");
    for field in rest.split(|&b| b == b'\n').skip(1) {
        if fields.len() >= MAX_HEADERS {
            break;
        }
        if let Some((name, value)) = parse_field_line(field) {
            fields.push(httparse::Header {
                name,
                value: value.as_bytes(),
            });
        }
    }
    Some((method, target, version))
}

/// Request line of a head too long to parse whole: (method, target, minor version).
pub fn parse_request_line(buf: &[u8]) -> Option<(&str, &str, u8)> {
    let line = std::str::from_utf8(first_line(buf)?).ok()?;
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let method = parts.next()?;
    let target = parts.next()?;
    let version = match parts.next()? {
        "HTTP/1.0" => 0,
        "HTTP/1.1" => 1,
        _ => return None,
    };
    if parts.next().is_some() || !method.bytes().all(is_token_byte) {
        return None;
    }
    Some((method, target, version))
}

/// Status line of a head too long to parse whole: (minor version, code).
pub fn parse_status_line(buf: &[u8]) -> Option<(u8, u16)> {
    let line = first_line(buf)?;
    let rest = line.strip_prefix(STATUS_PREFIX)?;
    let (minor, rest) = rest.split_first()?;
    let version = match minor {
        b'0' => 0,
        b'1' => 1,
        _ => return None,
    };
    let rest = rest.strip_prefix(b" ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    Some((version, code))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `HTTP/1.0` or `HTTP/1.1` from httparse's minor version.
pub fn version_str(minor: u8) -> &'static str {
    if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" }
}

/// Split a request target into (path, query). Origin form
/// `/p?q` gives (`/p`, `q`); absolute form `http://h/p?q` gives the same
/// path and query (a bare `http://h` has path `/`); authority form
/// (`CONNECT host:443`) and asterisk form (`OPTIONS *`) are their own path.
/// A fragment (never sent by conforming clients) is dropped.
pub fn split_target(target: &str) -> (&str, &str) {
    let bytes = target.as_bytes();
    let target = match memchr::memchr(b'#', bytes) {
        Some(i) => target.get(..i).unwrap_or(target),
        None => target,
    };
    let (before, query) = match memchr::memchr(b'?', target.as_bytes()) {
        Some(i) => (
            target.get(..i).unwrap_or(target),
            target.get(i + 1..).unwrap_or(""),
        ),
        None => (target, ""),
    };
    if before.starts_with('/') {
        return (before, query);
    }
    if let Some(scheme_end) = memchr::memmem::find(before.as_bytes(), b"://") {
        let scheme = before.get(..scheme_end).unwrap_or("");
        if !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            let after = before.get(scheme_end + 3..).unwrap_or("");
            let path = memchr::memchr(b'/', after.as_bytes())
                .and_then(|i| after.get(i..))
                .unwrap_or("/");
            return (path, query);
        }
    }
    (before, query)
}

/// Pairs of a `Cookie` header value (`a=1; b=2`), in order. Pieces
/// without `=` or with an empty name are skipped.
pub fn cookie_pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(';').filter_map(|piece| {
        let (name, value) = piece.split_once('=')?;
        let name = name.trim();
        (!name.is_empty()).then_some((name, value.trim()))
    })
}

/// The name and value of a `Set-Cookie` header (attributes dropped).
pub fn set_cookie_pair(value: &str) -> Option<(&str, &str)> {
    let first = value.split(';').next()?;
    let (name, value) = first.split_once('=')?;
    let name = name.trim();
    (!name.is_empty()).then_some((name, value.trim()))
}

/// A content coding from `Content-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Br,
    /// Not one we decode (`zstd`, `compress`, typos, or several codings).
    Other,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Other => "other",
        }
    }
}

/// What a head says about its body and its connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadFacts {
    /// `Content-Length` when present and valid.
    pub content_length: Option<u64>,
    /// `Content-Length` present but not a number, or several that disagree.
    pub bad_content_length: bool,
    /// A `Transfer-Encoding` field is present.
    pub transfer_encoding: bool,
    /// ... and its final coding is `chunked`.
    pub chunked: bool,
    /// The single content coding applied to the body, if any
    /// (`identity` does not count).
    pub content_coding: Option<Coding>,
    /// An `Upgrade` field is present (WebSocket, h2c).
    pub upgrade: bool,
}

/// Collect the framing facts of a head's fields.
pub fn head_facts(headers: &[httparse::Header<'_>]) -> HeadFacts {
    let mut facts = HeadFacts::default();
    let mut codings = 0usize;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match parse_content_length(h.value) {
                Some(n) if facts.content_length.is_none_or(|m| m == n) => {
                    facts.content_length = Some(n);
                }
                _ => facts.bad_content_length = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            facts.transfer_encoding = true;
            // The last coding of the last field decides (RFC 9112 §6.3).
            let last = h.value.rsplit(|&b| b == b',').find(|t| !trim(t).is_empty());
            facts.chunked = last.is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            for token in h.value.split(|&b| b == b',') {
                let token = trim(token);
                if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                    continue;
                }
                codings = codings.saturating_add(1);
                facts.content_coding = Some(
                    if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip")
                    {
                        Coding::Gzip
                    } else if token.eq_ignore_ascii_case(b"deflate") {
                        Coding::Deflate
                    } else if token.eq_ignore_ascii_case(b"br") {
                        Coding::Br
                    } else {
                        Coding::Other
                    },
                );
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            facts.upgrade = true;
        }
    }
    if facts.bad_content_length {
        facts.content_length = None;
    }
    // Stacked codings ("gzip, br") are rare; they are shown as sent.
    if codings > 1 {
        facts.content_coding = Some(Coding::Other);
    }
    facts
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A `Content-Length` value: digits, or a list of identical values
/// (`5, 5`, which RFC 9110 §8.6 lets a recipient accept).
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        match result {
            Some(m) if m != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// The size on a chunk-size line (`1a;ext=v\r\n`, the line ending
/// optional): hex digits, optional whitespace, optional extensions.
pub fn parse_chunk_size_line(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at_checked(digits_end)?;
    // 16 hex digits fill a u64; more is garbage.
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let rest = trim(rest);
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        acc.checked_mul(16)?.checked_add(u64::from(v))
    })
}

/// Is this line (with its ending) empty: `\r\n` or `\n`?
pub fn is_blank_line(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

/// A trailer field line (`name: value`), trimmed. None when malformed.
pub fn parse_field_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let colon = memchr::memchr(b':', line)?;
    let (name, value) = line.split_at_checked(colon)?;
    let value = value.get(1..)?;
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    let name = std::str::from_utf8(name).ok()?;
    let value = std::str::from_utf8(trim(value)).ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_prefixes() {
        assert_eq!(request_line_start(b"GET / HTTP/1.1"), Prefix::Yes);
        assert_eq!(request_line_start(b"PROPFIND /x"), Prefix::Yes);
        assert_eq!(request_line_start(b"GE"), Prefix::Maybe);
        assert_eq!(request_line_start(b"GET"), Prefix::Maybe);
        assert_eq!(request_line_start(b""), Prefix::Maybe);
        assert_eq!(request_line_start(b"GETX /"), Prefix::No);
        assert_eq!(request_line_start(b"\x16\x03\x01"), Prefix::No);
        assert_eq!(status_line_start(b"HTTP/1.1 200"), Prefix::Yes);
        assert_eq!(status_line_start(b"HTT"), Prefix::Maybe);
        assert_eq!(status_line_start(b"HTTP/2"), Prefix::No);
    }

    #[test]
    fn request_head_borrows_input() {
        // Shape of frame 4 of http-zeek-http-get-gzip.pcap.
        let buf = b"GET /gzip?x=1 HTTP/1.1\r\nHost: httpbin.org\r\nCookie: a=1; b=2\r\n\r\nrest";
        let mut slots = header_slots();
        let HeadParse::Complete(h) = parse_request_head(buf, &mut slots) else {
            panic!("not complete");
        };
        assert_eq!(
            (h.method, h.target, h.version),
            ("GET", "/gzip?x=1", "HTTP/1.1")
        );
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.len, buf.len() - 4);
        let mut slots = header_slots();
        assert!(matches!(
            parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut slots),
            HeadParse::Partial
        ));
        let mut slots = header_slots();
        assert!(matches!(
            parse_request_head(b"\x00\x01garbage\r\n\r\n", &mut slots),
            HeadParse::Invalid("bad_head")
        ));
    }

    #[test]
    fn response_head() {
        let buf = b"HTTP/1.0 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
        let mut slots = header_slots();
        let HeadParse::Complete(h) = parse_response_head(buf, &mut slots) else {
            panic!("not complete");
        };
        assert_eq!((h.version, h.code, h.len), (0, 304, buf.len()));
    }

    #[test]
    fn lenient_requests() {
        // Request lines from zeek's http/methods.trace (http-zeek-http-methods.pcap).
        assert_eq!(lenient_request_start(b"GET / HTTP/1.\n\n"), Prefix::Yes);
        assert_eq!(lenient_request_start(b"OPTIONS\n\n"), Prefix::Yes);
        assert_eq!(lenient_request_start(b"OPTIONSHTTP/1.1\n\n"), Prefix::No);
        assert_eq!(lenient_request_start(b"\r\nGE"), Prefix::Maybe);
        let head = b"GET /HTTP/1.1\nHost: www.google.com\nbad line\n\nbody";
        let end = find_head_end(head, 1000).unwrap();
        assert_eq!(&head[end..], b"body");
        assert_eq!(find_head_end(head, 20), None);
        let mut fields = Vec::new();
        let parsed = parse_lenient_request(&head[..end], &mut fields);
        assert_eq!(parsed, Some(("GET", "/HTTP/1.1", "")));
        assert_eq!(fields.len(), 1);
        assert_eq!(
            (fields[0].name, fields[0].value),
            ("Host", &b"www.google.com"[..])
        );
        assert_eq!(
            find_head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 100),
            Some(22)
        );
        assert_eq!(
            parse_lenient_request(b"FOO / HTTP/1.1\n\n", &mut Vec::new()),
            None
        );
    }

    #[test]
    fn start_lines_of_long_heads() {
        assert_eq!(
            parse_request_line(b"POST /a?b HTTP/1.1\r\nX: y"),
            Some(("POST", "/a?b", 1))
        );
        assert_eq!(parse_request_line(b"POST /a?b HTTP/1.1"), None);
        assert_eq!(
            parse_status_line(b"HTTP/1.1 404 Not Found\r\n"),
            Some((1, 404))
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 4x4\r\n"), None);
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/a/b?x=1&y=2"), ("/a/b", "x=1&y=2"));
        assert_eq!(split_target("/a/b"), ("/a/b", ""));
        assert_eq!(split_target("http://h.example:8080/p?q=1"), ("/p", "q=1"));
        assert_eq!(split_target("http://h.example"), ("/", ""));
        assert_eq!(split_target("example.com:443"), ("example.com:443", ""));
        assert_eq!(split_target("*"), ("*", ""));
        assert_eq!(split_target("/x#frag"), ("/x", ""));
    }

    #[test]
    fn cookies() {
        let pairs: Vec<_> = cookie_pairs("a=1; B=two=2;bad; =x; c=").collect();
        assert_eq!(pairs, vec![("a", "1"), ("B", "two=2"), ("c", "")]);
        assert_eq!(
            set_cookie_pair("sid=abc; Path=/; HttpOnly"),
            Some(("sid", "abc"))
        );
        assert_eq!(set_cookie_pair("garbage"), None);
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"42"), Some(42));
        assert_eq!(parse_content_length(b" 5, 5 "), Some(5));
        assert_eq!(parse_content_length(b"5, 6"), None);
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"99999999999999999999999"), None);
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(parse_chunk_size_line(b"1a\r\n"), Some(26));
        assert_eq!(parse_chunk_size_line(b"1A ; name=\"v\"\r\n"), Some(26));
        assert_eq!(parse_chunk_size_line(b"0\n"), Some(0));
        assert_eq!(parse_chunk_size_line(b"\r\n"), None);
        assert_eq!(parse_chunk_size_line(b"zz\r\n"), None);
        assert_eq!(parse_chunk_size_line(b"11111111111111111\r\n"), None);
        assert_eq!(
            parse_chunk_size_line(b"ffffffffffffffff\r\n"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn facts() {
        let mut slots = header_slots();
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, chunked\r\nContent-Encoding: GZIP\r\nUpgrade: websocket\r\n\r\n";
        let HeadParse::Complete(h) = parse_response_head(buf, &mut slots) else {
            panic!("not complete");
        };
        let f = head_facts(h.headers);
        assert_eq!(f.content_length, Some(10));
        assert!(f.transfer_encoding && f.chunked && f.upgrade);
        assert_eq!(f.content_coding, Some(Coding::Gzip));

        let mut slots = header_slots();
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\nContent-Encoding: gzip, br\r\n\r\n";
        let HeadParse::Complete(h) = parse_response_head(buf, &mut slots) else {
            panic!("not complete");
        };
        let f = head_facts(h.headers);
        assert!(f.bad_content_length);
        assert_eq!(f.content_length, None);
        assert_eq!(f.content_coding, Some(Coding::Other));
    }

    #[test]
    fn field_lines() {
        assert_eq!(
            parse_field_line(b"Expires: never\r\n"),
            Some(("Expires", "never"))
        );
        assert_eq!(parse_field_line(b"no colon\r\n"), None);
    }
}
