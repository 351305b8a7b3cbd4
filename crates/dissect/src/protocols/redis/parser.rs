//! A streaming RESP2/RESP3 reader for one direction of a Redis connection:
//! bytes go in split anywhere, whole messages ([`Message`]) come out. It
//! never re-reads bytes it has seen (a 100 MB bulk string fed in 1500-byte
//! segments costs one pass) and keeps only a bounded summary of each
//! message: its top-level type, the element count of an aggregate, and the
//! scalar values in document order up to a byte budget.
//!
//! Used by [`super::session`]; the probe in [`super`] uses
//! [`looks_like_command`] and [`looks_like_reply`].
//!
//! Inline commands (a plain text line such as `PING\r\n`, which Redis
//! accepts from clients besides RESP arrays) are read on the client side
//! when a line does not start with a RESP type byte.

/// Longest line read (a RESP header, a simple string or error, an inline
/// command). Redis refuses inline requests over 64 KiB
/// (`PROTO_INLINE_MAX_SIZE`), so a longer line is not Redis.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Deepest nesting of aggregates followed. Replies nest a few levels
/// (XREAD: array of arrays of arrays); 64 is far past any real reply and
/// bounds the stack a crafted message can build.
pub const MAX_DEPTH: usize = 64;

/// Largest bulk string length accepted: Redis's `proto-max-bulk-len`
/// default (512 MiB). Longer is garbage, not a value to skip.
pub const MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// Largest element count of an aggregate: Redis lists and sets hold at
/// most 2^32 - 1 elements. Counts are only counted, never allocated.
pub const MAX_AGGREGATE_LEN: u64 = u32::MAX as u64;

/// Scalar values kept per message, whatever the byte budget: bounds the
/// vector an array of a million empty strings would grow.
pub const MAX_KEPT_VALUES: usize = 1024;

/// RESP value types (tshark's names, RESP3 ones after `Push`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Error,
    Integer,
    BulkString,
    Array,
    /// RESP3 `_`, and RESP2's null bulk string / null array.
    Null,
    Double,
    Boolean,
    BigNumber,
    BulkError,
    VerbatimString,
    Map,
    Set,
    Push,
    Attribute,
    /// A client's plain-text command line.
    Inline,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Error => "error",
            Kind::Integer => "integer",
            Kind::BulkString => "bulk_string",
            Kind::Array => "array",
            Kind::Null => "null",
            Kind::Double => "double",
            Kind::Boolean => "boolean",
            Kind::BigNumber => "big_number",
            Kind::BulkError => "bulk_error",
            Kind::VerbatimString => "verbatim_string",
            Kind::Map => "map",
            Kind::Set => "set",
            Kind::Push => "push",
            Kind::Attribute => "attribute",
            Kind::Inline => "inline",
        }
    }

    fn is_aggregate(self) -> bool {
        matches!(
            self,
            Kind::Array | Kind::Map | Kind::Set | Kind::Push | Kind::Attribute
        )
    }
}

/// The type a RESP header byte announces.
fn kind_of(b: u8) -> Option<Kind> {
    Some(match b {
        b'+' => Kind::String,
        b'-' => Kind::Error,
        b':' => Kind::Integer,
        b'$' => Kind::BulkString,
        b'*' => Kind::Array,
        b'_' => Kind::Null,
        b',' => Kind::Double,
        b'#' => Kind::Boolean,
        b'(' => Kind::BigNumber,
        b'!' => Kind::BulkError,
        b'=' => Kind::VerbatimString,
        b'%' => Kind::Map,
        b'~' => Kind::Set,
        b'>' => Kind::Push,
        b'|' => Kind::Attribute,
        _ => return None,
    })
}

/// One whole message, summarised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Type of the top-level value (after any RESP3 attribute).
    pub kind: Option<Kind>,
    /// Element count of a top-level aggregate (pairs for a map); -1 for a
    /// null array; 0 for scalars.
    pub len: i64,
    /// Scalar values in document order (an inline command's words), each
    /// cut to what the budget left; `None` is a null.
    pub values: Vec<Option<Vec<u8>>>,
    /// Values (or bytes of values) were left out for the budget.
    pub truncated: bool,
    /// The whole line of an inline command, without its line end.
    pub inline_line: Vec<u8>,
    /// Bytes of the message on the wire.
    pub size: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// Why a direction's bytes stopped being RESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// A line longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// A header the protocol does not allow (bad type byte, bad length).
    BadHeader,
    /// A bulk string not followed by CRLF.
    BadBulkEnd,
    /// Aggregates nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl ReadError {
    pub fn code(self) -> &'static str {
        match self {
            ReadError::LineTooLong => "redis_line_too_long",
            ReadError::BadHeader => "redis_bad_header",
            ReadError::BadBulkEnd => "redis_bad_bulk_end",
            ReadError::TooDeep => "redis_too_deep",
        }
    }
}

/// Streaming state of one direction.
#[derive(Debug)]
pub struct Reader {
    /// Client side: inline commands are allowed.
    client: bool,
    /// Bytes kept per message for values.
    budget: usize,
    /// A line not yet ended.
    line: Vec<u8>,
    /// Inside a bulk string: payload bytes still to come.
    bulk_left: u64,
    /// Line-end bytes still expected after the bulk payload (0 = not in one).
    bulk_crlf_left: u8,
    in_bulk: bool,
    bulk_keep: Vec<u8>,
    bulk_truncated: bool,
    /// Open aggregates: children still expected, and whether it is an attribute.
    stack: Vec<(u64, bool)>,
    msg: Option<Message>,
    kept: usize,
}

impl Reader {
    pub fn new(client: bool, budget: usize) -> Reader {
        Reader {
            client,
            budget,
            line: Vec::new(),
            bulk_left: 0,
            bulk_crlf_left: 0,
            in_bulk: false,
            bulk_keep: Vec::new(),
            bulk_truncated: false,
            stack: Vec::new(),
            msg: None,
            kept: 0,
        }
    }

    /// Forget everything mid-message (after a gap or an error).
    pub fn reset(&mut self) {
        self.line.clear();
        self.in_bulk = false;
        self.bulk_left = 0;
        self.bulk_crlf_left = 0;
        self.bulk_keep.clear();
        self.stack.clear();
        self.msg = None;
        self.kept = 0;
    }

    /// True when no message is partly read.
    pub fn idle(&self) -> bool {
        self.msg.is_none() && self.line.is_empty() && !self.in_bulk
    }

    /// Reads `data`, pushing each message it completes into `out`.
    /// On an error the reader is reset and the rest of `data` dropped.
    pub fn feed(&mut self, ts: i64, data: &[u8], out: &mut Vec<Message>) -> Result<(), ReadError> {
        let r = self.feed_inner(ts, data, out);
        if r.is_err() {
            self.reset();
        }
        r
    }

    fn feed_inner(
        &mut self,
        ts: i64,
        mut data: &[u8],
        out: &mut Vec<Message>,
    ) -> Result<(), ReadError> {
        while !data.is_empty() {
            if self.in_bulk {
                data = self.step_bulk(ts, data, out)?;
                continue;
            }
            let Some(nl) = memchr::memchr(b'\n', data) else {
                if self.line.len().saturating_add(data.len()) > MAX_LINE_BYTES {
                    return Err(ReadError::LineTooLong);
                }
                if self.msg.is_none() && self.line.is_empty() {
                    self.start(ts);
                }
                self.line.extend_from_slice(data);
                self.add_size(ts, data.len());
                return Ok(());
            };
            let (head, rest) = data.split_at(nl.saturating_add(1));
            data = rest;
            if self.line.len().saturating_add(head.len()) > MAX_LINE_BYTES.saturating_add(2) {
                return Err(ReadError::LineTooLong);
            }
            if self.msg.is_none() && self.line.is_empty() {
                self.start(ts);
            }
            self.add_size(ts, head.len());
            if self.line.is_empty() {
                self.line_done(ts, head, out)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let r = self.line_done(ts, &line, out);
                line.clear();
                self.line = line;
                r?;
            }
        }
        Ok(())
    }

    fn start(&mut self, ts: i64) {
        self.msg = Some(Message {
            first_ts: ts,
            last_ts: ts,
            ..Message::default()
        });
        self.kept = 0;
    }

    fn add_size(&mut self, ts: i64, n: usize) {
        if let Some(m) = self.msg.as_mut() {
            m.size = m.size.saturating_add(n as u64);
            m.last_ts = ts;
        }
    }

    fn step_bulk<'a>(
        &mut self,
        ts: i64,
        data: &'a [u8],
        out: &mut Vec<Message>,
    ) -> Result<&'a [u8], ReadError> {
        let mut data = data;
        if self.bulk_left > 0 {
            let n = usize::try_from(self.bulk_left)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let (payload, rest) = data.split_at(n);
            let room = self
                .budget
                .saturating_sub(self.kept.saturating_add(self.bulk_keep.len()));
            let keep = payload.get(..room).unwrap_or(payload);
            if keep.len() < payload.len() {
                self.bulk_truncated = true;
            }
            self.bulk_keep.extend_from_slice(keep);
            self.bulk_left -= n as u64;
            self.add_size(ts, n);
            data = rest;
        }
        while self.bulk_left == 0 && self.bulk_crlf_left > 0 {
            let Some((&b, rest)) = data.split_first() else {
                return Ok(data);
            };
            let want = if self.bulk_crlf_left == 2 {
                b'\r'
            } else {
                b'\n'
            };
            if b != want {
                return Err(ReadError::BadBulkEnd);
            }
            self.bulk_crlf_left -= 1;
            self.add_size(ts, 1);
            data = rest;
        }
        if self.bulk_left == 0 && self.bulk_crlf_left == 0 {
            self.in_bulk = false;
            let v = std::mem::take(&mut self.bulk_keep);
            let truncated = std::mem::take(&mut self.bulk_truncated);
            self.value(Some(v), truncated);
            self.value_done(ts, out);
        }
        Ok(data)
    }

    fn line_done(&mut self, ts: i64, line: &[u8], out: &mut Vec<Message>) -> Result<(), ReadError> {
        let body = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        let at_top = self.stack.is_empty()
            && self
                .msg
                .as_ref()
                .is_none_or(|m| m.kind.is_none() && m.values.is_empty());
        let Some((&tb, rest)) = body.split_first() else {
            if at_top && self.client {
                // Redis ignores empty lines between inline commands.
                self.msg = None;
                return Ok(());
            }
            return Err(ReadError::BadHeader);
        };
        let Some(kind) = kind_of(tb) else {
            if at_top && self.client {
                self.inline(body, out);
                return Ok(());
            }
            return Err(ReadError::BadHeader);
        };
        if self.stack.is_empty()
            && kind != Kind::Attribute
            && let Some(m) = self.msg.as_mut()
        {
            m.kind = Some(kind);
        }
        match kind {
            Kind::String
            | Kind::Error
            | Kind::Integer
            | Kind::Double
            | Kind::Boolean
            | Kind::BigNumber => {
                self.value(Some(rest.to_vec()), false);
                self.value_done(ts, out);
            }
            Kind::Null => {
                self.value(None, false);
                self.value_done(ts, out);
            }
            Kind::BulkString | Kind::BulkError | Kind::VerbatimString => {
                let n = parse_len(rest).ok_or(ReadError::BadHeader)?;
                if n < 0 {
                    self.value(None, false);
                    self.value_done(ts, out);
                } else if n as u64 > MAX_BULK_LEN {
                    return Err(ReadError::BadHeader);
                } else {
                    self.in_bulk = true;
                    self.bulk_left = n as u64;
                    self.bulk_crlf_left = 2;
                    self.bulk_keep.clear();
                }
            }
            Kind::Array | Kind::Map | Kind::Set | Kind::Push | Kind::Attribute => {
                let n = parse_len(rest).ok_or(ReadError::BadHeader)?;
                let top = self.stack.is_empty();
                if top
                    && kind != Kind::Attribute
                    && let Some(m) = self.msg.as_mut()
                {
                    m.len = n.max(-1);
                }
                if n < 0 {
                    self.value_done(ts, out);
                    return Ok(());
                }
                let n = n as u64;
                if n > MAX_AGGREGATE_LEN {
                    return Err(ReadError::BadHeader);
                }
                let children = if matches!(kind, Kind::Map | Kind::Attribute) {
                    n * 2
                } else {
                    n
                };
                if children == 0 {
                    self.value_done(ts, out);
                } else {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(ReadError::TooDeep);
                    }
                    debug_assert!(kind.is_aggregate());
                    self.stack.push((children, kind == Kind::Attribute));
                }
            }
            Kind::Inline => return Err(ReadError::BadHeader),
        }
        Ok(())
    }

    fn value(&mut self, v: Option<Vec<u8>>, cut: bool) {
        let Some(m) = self.msg.as_mut() else {
            return;
        };
        if m.values.len() >= MAX_KEPT_VALUES {
            m.truncated = true;
            return;
        }
        let room = self.budget.saturating_sub(self.kept);
        let v = v.map(|mut b| {
            if b.len() > room {
                b.truncate(room);
                m.truncated = true;
            }
            b
        });
        self.kept = self
            .kept
            .saturating_add(v.as_ref().map_or(0, Vec::len))
            .saturating_add(1);
        if cut {
            m.truncated = true;
        }
        m.values.push(v);
    }

    /// A value ended: close the aggregates it completes, and the message
    /// when the top one is done.
    fn value_done(&mut self, _ts: i64, out: &mut Vec<Message>) {
        let mut attribute_done = false;
        while let Some((left, attr)) = self.stack.last_mut() {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return;
            }
            attribute_done = *attr;
            self.stack.pop();
            if attribute_done && !self.stack.is_empty() {
                // An attribute inside an aggregate does not count as one
                // of its elements: the value it annotates follows.
                return;
            }
        }
        if attribute_done {
            // A top-level attribute annotates the reply that follows: the
            // message goes on; forget the attribute's values.
            if let Some(m) = self.msg.as_mut() {
                m.kind = None;
                m.values.clear();
                self.kept = 0;
            }
            return;
        }
        if let Some(m) = self.msg.take() {
            out.push(m);
        }
        self.kept = 0;
    }

    fn inline(&mut self, body: &[u8], out: &mut Vec<Message>) {
        let Some(mut m) = self.msg.take() else {
            return;
        };
        m.kind = Some(Kind::Inline);
        m.inline_line = body.get(..self.budget).unwrap_or(body).to_vec();
        for w in split_inline(body) {
            m.len = m.len.saturating_add(1);
            if m.values.len() < MAX_KEPT_VALUES {
                m.values.push(Some(w));
            } else {
                m.truncated = true;
            }
        }
        self.kept = 0;
        out.push(m);
    }
}

/// A RESP length: optional `-`, then digits (at most 19, so it fits).
fn parse_len(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(if neg { -n } else { n })
}

/// Words of an inline command, as Redis splits them (`sdssplitargs`):
/// whitespace-separated, with "double quotes" (backslash escapes, `\xHH`)
/// and 'single quotes'. An unbalanced quote makes the rest one word.
pub fn split_inline(line: &[u8]) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while line.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut w = Vec::new();
        match line.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                i += 1;
                while let Some(&b) = line.get(i) {
                    i += 1;
                    if b == q {
                        break;
                    }
                    if b == b'\\' && q == b'"' {
                        match line.get(i) {
                            Some(b'n') => w.push(b'\n'),
                            Some(b'r') => w.push(b'\r'),
                            Some(b't') => w.push(b'\t'),
                            Some(b'x') => {
                                let hex = line
                                    .get(i + 1..i + 3)
                                    .and_then(|h| std::str::from_utf8(h).ok())
                                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                                if let Some(v) = hex {
                                    w.push(v);
                                    i += 2;
                                } else {
                                    w.push(b'x');
                                }
                            }
                            Some(&c) => w.push(c),
                            None => break,
                        }
                        i += 1;
                    } else {
                        w.push(b);
                    }
                }
            }
            _ => {
                while let Some(&b) = line.get(i) {
                    if b.is_ascii_whitespace() {
                        break;
                    }
                    w.push(b);
                    i += 1;
                }
            }
        }
        words.push(w);
    }
    words
}

/// Commands a client may send inline; the probe accepts a first line
/// only when it starts with one of these, upper case (HTTP's `GET /…` is
/// refused by its ` HTTP/1.` tail).
const INLINE_COMMANDS: &[&str] = &[
    "PING",
    "ECHO",
    "GET",
    "SET",
    "DEL",
    "EXISTS",
    "INCR",
    "DECR",
    "INCRBY",
    "MGET",
    "MSET",
    "AUTH",
    "HELLO",
    "SELECT",
    "INFO",
    "KEYS",
    "SCAN",
    "TYPE",
    "TTL",
    "EXPIRE",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "SADD",
    "SPOP",
    "SMEMBERS",
    "HSET",
    "HGET",
    "HGETALL",
    "ZADD",
    "ZRANGE",
    "PUBLISH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "MONITOR",
    "CONFIG",
    "CLIENT",
    "COMMAND",
    "FLUSHALL",
    "FLUSHDB",
    "DBSIZE",
    "QUIT",
    "RESET",
    "MULTI",
    "EXEC",
    "XADD",
    "XREAD",
];

/// First bytes a client sends: a RESP array of bulk strings
/// (`*N\r\n$M\r\n`), or an inline line starting with a known command.
/// `None`: too few bytes to tell.
pub fn looks_like_command(data: &[u8]) -> Option<bool> {
    match data.first() {
        None => None,
        Some(b'*') => {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                let rest = data.get(1..).unwrap_or_default();
                let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
                let could = data.len() < 24 && rest.iter().all(u8::is_ascii_digit);
                return if could { None } else { Some(false) };
            };
            let header = data.get(1..nl).unwrap_or_default();
            let Some(n) = header.strip_suffix(b"\r").and_then(parse_len) else {
                return Some(false);
            };
            if n <= 0 {
                return Some(false);
            }
            data.get(nl + 1).map(|b| *b == b'$')
        }
        Some(_) => {
            let line_end = memchr::memchr(b'\n', data);
            let line = data
                .get(..line_end.unwrap_or(data.len()))
                .unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') {
                return Some(false);
            }
            let word_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
            let word = line.get(..word_end).unwrap_or_default();
            if line_end.is_none() && word_end == line.len() {
                // The first word is not complete yet.
                let could = line.len() < 16
                    && INLINE_COMMANDS
                        .iter()
                        .any(|c| c.as_bytes().get(..word.len()).is_some_and(|p| p == word));
                return if could { None } else { Some(false) };
            }
            // Upper case only: memcached's text protocol (`get key`,
            // `set k 0 0 5`) is lower case, and redis-benchmark, redis-cli
            // and scripts send inline commands upper case.
            let known = INLINE_COMMANDS.iter().any(|c| c.as_bytes() == word);
            if !known || memchr::memmem::find(line, b" HTTP/").is_some() {
                return Some(false);
            }
            if line_end.is_none() {
                return if line.len() < 256 { None } else { Some(false) };
            }
            Some(true)
        }
    }
}

/// First bytes a server sends when the capture starts mid-connection:
/// `+OK`-like status, `-ERR`-like error, an integer, a bulk string header
/// or an aggregate header followed by a value. `None`: too few bytes.
pub fn looks_like_reply(data: &[u8]) -> Option<bool> {
    let &t = data.first()?;
    if !matches!(t, b'+' | b'-' | b':' | b'$' | b'*' | b'>' | b'%' | b'~') {
        return Some(false);
    }
    let Some(nl) = memchr::memchr(b'\n', data) else {
        return (data.len() < 64)
            .then_some(())
            .map_or(Some(false), |()| None);
    };
    let line = data.get(1..nl).unwrap_or_default();
    let Some(line) = line.strip_suffix(b"\r") else {
        return Some(false);
    };
    let next = data.get(nl + 1).copied();
    Some(match t {
        b'+' => matches!(line, b"OK" | b"PONG" | b"QUEUED"),
        b'-' => {
            let word = line.split(|b| *b == b' ').next().unwrap_or_default();
            word.len() >= 3 && word.iter().all(u8::is_ascii_uppercase)
        }
        b':' => parse_len(line).is_some(),
        b'$' => parse_len(line).is_some_and(|n| n >= -1),
        b'*' | b'>' | b'%' | b'~' => {
            parse_len(line).is_some_and(|n| n > 0) && next.is_some_and(|b| kind_of(b).is_some())
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(client: bool, chunks: &[&[u8]]) -> (Vec<Message>, Option<ReadError>) {
        let mut r = Reader::new(client, 1024);
        let mut out = Vec::new();
        let mut err = None;
        for (i, c) in chunks.iter().enumerate() {
            if let Err(e) = r.feed(i as i64, c, &mut out) {
                err = Some(e);
            }
        }
        (out, err)
    }

    fn texts(m: &Message) -> Vec<String> {
        m.values
            .iter()
            .map(|v| {
                v.as_ref()
                    .map_or("(nil)".into(), |b| String::from_utf8_lossy(b).into_owned())
            })
            .collect()
    }

    #[test]
    fn pipelined_commands_split_anywhere() {
        let wire =
            b"*3\r\n$3\r\nSET\r\n$4\r\nkey1\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$4\r\nkey1\r\n";
        // Every split point gives the same two messages.
        for cut in 0..wire.len() {
            let (a, b) = wire.split_at(cut);
            let (msgs, err) = read_all(true, &[a, b]);
            assert_eq!(err, None);
            assert_eq!(msgs.len(), 2, "cut at {cut}");
            assert_eq!(texts(&msgs[0]), ["SET", "key1", "hello"]);
            assert_eq!(msgs[0].len, 3);
            assert_eq!(msgs[0].kind, Some(Kind::Array));
            assert_eq!(texts(&msgs[1]), ["GET", "key1"]);
            assert_eq!(msgs[0].size + msgs[1].size, wire.len() as u64);
        }
    }

    #[test]
    fn inline_commands_and_quotes() {
        let (msgs, err) = read_all(true, &[b"PING\r\n\r\nPUBLISH Foo \"Hi there :)\"\r\n"]);
        assert_eq!(err, None);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].kind, Some(Kind::Inline));
        assert_eq!(texts(&msgs[1]), ["PUBLISH", "Foo", "Hi there :)"]);
        assert_eq!(msgs[1].inline_line, b"PUBLISH Foo \"Hi there :)\"");
        // Servers never send inline.
        let (_, err) = read_all(false, &[b"PING\r\n"]);
        assert_eq!(err, Some(ReadError::BadHeader));
    }

    #[test]
    fn replies_of_every_type() {
        let (msgs, err) = read_all(
            false,
            &[b"+OK\r\n-ERR nope\r\n:42\r\n$-1\r\n*-1\r\n$0\r\n\r\n*2\r\n*1\r\n:1\r\n$2\r\nab\r\n",
              b"%1\r\n+k\r\n#t\r\n_\r\n,3.5\r\n(12345\r\n=8\r\ntxt:abcd\r\n!3\r\nERR\r\n~1\r\n:1\r\n",
              b"|1\r\n+ttl\r\n:3\r\n$1\r\nx\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"]);
        assert_eq!(err, None);
        let kinds: Vec<_> = msgs.iter().map(|m| m.kind.unwrap().as_str()).collect();
        assert_eq!(
            kinds,
            [
                "string",
                "error",
                "integer",
                "bulk_string",
                "array",
                "bulk_string",
                "array",
                "map",
                "null",
                "double",
                "big_number",
                "verbatim_string",
                "bulk_error",
                "set",
                "bulk_string",
                "push"
            ]
        );
        assert_eq!(texts(&msgs[3]), ["(nil)"]);
        assert_eq!(msgs[4].len, -1);
        assert_eq!(msgs[6].len, 2);
        assert_eq!(texts(&msgs[6]), ["1", "ab"]);
        assert_eq!(msgs[7].len, 1);
        // The attribute before a reply is not part of it.
        assert_eq!(texts(&msgs[7]), ["k", "t"]);
        assert_eq!(texts(&msgs[14]), ["x"]);
        assert_eq!(texts(&msgs[15]), ["message", "c", "hi"]);
    }

    #[test]
    fn limits_and_garbage() {
        let (_, err) = read_all(false, &[b"*99999999999\r\n"]);
        assert_eq!(err, Some(ReadError::BadHeader));
        let (_, err) = read_all(false, &[b"$3\r\nabcXY"]);
        assert_eq!(err, Some(ReadError::BadBulkEnd));
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        let (_, err) = read_all(false, &[&deep]);
        assert_eq!(err, Some(ReadError::TooDeep));
        let long = vec![b'a'; MAX_LINE_BYTES + 10];
        let (_, err) = read_all(true, &[&long]);
        assert_eq!(err, Some(ReadError::LineTooLong));
        // A big bulk string is counted, kept only up to the budget.
        let mut wire = b"$5000\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'z', 5000));
        wire.extend_from_slice(b"\r\n");
        let (msgs, err) = read_all(false, &wire.chunks(7).collect::<Vec<_>>());
        assert_eq!(err, None);
        assert_eq!(msgs[0].size, wire.len() as u64);
        assert_eq!(msgs[0].values[0].as_ref().unwrap().len(), 1024);
        assert!(msgs[0].truncated);
    }

    #[test]
    fn probes() {
        assert_eq!(looks_like_command(b"*1\r\n$4\r\nPING\r\n"), Some(true));
        assert_eq!(looks_like_command(b"*1\r"), None);
        assert_eq!(looks_like_command(b"PING\r\n"), Some(true));
        assert_eq!(looks_like_command(b"SET k v\r\n"), Some(true));
        // memcached's text protocol is not Redis.
        assert_eq!(looks_like_command(b"set k 0 0 5\r\nhello\r\n"), Some(false));
        assert_eq!(looks_like_command(b"get k\r\n"), Some(false));
        assert_eq!(looks_like_command(b"PIN"), None);
        assert_eq!(looks_like_command(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(looks_like_command(b"\x16\x03\x01"), Some(false));
        assert_eq!(looks_like_command(b"*1\r\n:1\r\n"), Some(false));
        assert_eq!(looks_like_reply(b"+OK\r\n"), Some(true));
        assert_eq!(looks_like_reply(b"+OK POP3 ready\r\n"), Some(false));
        assert_eq!(looks_like_reply(b"-ERR unknown\r\n"), Some(true));
        assert_eq!(looks_like_reply(b"$5\r\nhello\r\n"), Some(true));
        assert_eq!(looks_like_reply(b"*3\r\n$7\r\nmessage\r\n"), Some(true));
        assert_eq!(looks_like_reply(b"HTTP/1.1 200 OK\r\n"), Some(false));
    }
}
