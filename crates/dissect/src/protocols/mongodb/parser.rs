//! Pure parsing of MongoDB wire messages (the 16-byte header, OP_MSG with
//! its kind 0 and kind 1 sections and optional checksum, OP_QUERY,
//! OP_REPLY, the legacy write opcodes, OP_COMPRESSED's header) into what
//! trawl keeps: command, database, collection, namespace, and the `ok`,
//! `errmsg`, `code` and `codeName` of replies. Called by
//! [`super::session`] on message heads and by [`super::probe`].

use super::bson::{self, Value};

/// Bytes of the standard message header.
pub const HEADER_LEN: usize = 16;

/// Largest message accepted: MongoDB's `maxMessageSizeBytes` is 48 MB
/// (48,000,000); a longer length is not MongoDB.
pub const MAX_MESSAGE_LEN: usize = 48_000_000;

pub const OP_REPLY: i32 = 1;
pub const OP_UPDATE: i32 = 2001;
pub const OP_INSERT: i32 = 2002;
pub const OP_QUERY: i32 = 2004;
pub const OP_GET_MORE: i32 = 2005;
pub const OP_DELETE: i32 = 2006;
pub const OP_KILL_CURSORS: i32 = 2007;
pub const OP_COMPRESSED: i32 = 2012;
pub const OP_MSG: i32 = 2013;

/// OP_MSG flag bits (MongoDB wire protocol spec).
const CHECKSUM_PRESENT: u32 = 1;
pub const MORE_TO_COME: u32 = 1 << 1;
const EXHAUST_ALLOWED: u32 = 1 << 16;

/// OP_REPLY's QueryFailure flag.
const QUERY_FAILURE: i32 = 1 << 1;

pub fn opcode_name(op: i32) -> Option<&'static str> {
    Some(match op {
        OP_REPLY => "OP_REPLY",
        OP_UPDATE => "OP_UPDATE",
        OP_INSERT => "OP_INSERT",
        OP_QUERY => "OP_QUERY",
        OP_GET_MORE => "OP_GET_MORE",
        OP_DELETE => "OP_DELETE",
        OP_KILL_CURSORS => "OP_KILL_CURSORS",
        OP_COMPRESSED => "OP_COMPRESSED",
        OP_MSG => "OP_MSG",
        _ => return None,
    })
}

/// The standard header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub request_id: i32,
    pub response_to: i32,
    pub opcode: i32,
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

/// The header at the start of `b`, if it is one: a length within
/// [`HEADER_LEN`]..=[`MAX_MESSAGE_LEN`] and a known opcode.
pub fn header(b: &[u8]) -> Option<Header> {
    let len = usize::try_from(le_i32(b, 0)?).ok()?;
    let h = Header {
        len,
        request_id: le_i32(b, 4)?,
        response_to: le_i32(b, 8)?,
        opcode: le_i32(b, 12)?,
    };
    ((HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) && opcode_name(h.opcode).is_some()).then_some(h)
}

/// What a message says, as far as trawl reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub command: String,
    pub database: String,
    pub collection: String,
    pub namespace: String,
    /// OP_MSG's moreToCome: no reply follows.
    pub more_to_come: bool,
    /// Reply fields.
    pub ok: Option<bool>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub error_code_name: Option<String>,
}

/// Reads the message whose head is `b` (header included; possibly cut
/// by the head cap, then what fits is read).
pub fn parse(h: &Header, b: &[u8]) -> Message {
    let body = b.get(HEADER_LEN..b.len().min(h.len)).unwrap_or_default();
    let mut m = Message::default();
    match h.opcode {
        OP_MSG => op_msg(body, &mut m),
        OP_QUERY => op_query(body, &mut m),
        OP_REPLY => op_reply(body, &mut m),
        OP_INSERT => legacy_write(body, 4, "insert", &mut m),
        OP_UPDATE | OP_DELETE | OP_GET_MORE => {
            let name = match h.opcode {
                OP_UPDATE => "update",
                OP_DELETE => "delete",
                _ => "getMore",
            };
            legacy_write(body, 4, name, &mut m);
        }
        OP_KILL_CURSORS => m.command = "killCursors".to_owned(),
        _ => {}
    }
    m
}

/// Splits "db.collection" at the first dot.
fn split_namespace(ns: &str, m: &mut Message) {
    m.namespace = ns.to_owned();
    match ns.split_once('.') {
        Some((db, coll)) => {
            m.database = db.to_owned();
            m.collection = coll.to_owned();
        }
        None => m.database = ns.to_owned(),
    }
}

fn cstring(b: &[u8], at: usize) -> Option<(String, usize)> {
    let rest = b.get(at..)?;
    let n = memchr::memchr(0, rest)?;
    Some((
        String::from_utf8_lossy(rest.get(..n)?).into_owned(),
        at + n + 1,
    ))
}

/// A command document: its first key names the command; a string value
/// of that key is the collection (find, insert, update, delete, count,
/// aggregate, …). Reply fields are read when present.
fn command_doc(doc: &[u8], m: &mut Message) {
    let mut first = true;
    for (k, v) in bson::elements(doc) {
        let key = String::from_utf8_lossy(k);
        if first {
            first = false;
            m.command = key.clone().into_owned();
            if let Some(s) = v.string() {
                m.collection = s;
            }
        }
        match (&*key, v) {
            ("$db", v) => m.database = v.string().unwrap_or_default(),
            ("ok", v) => m.ok = v.number().map(|n| n == 1.0),
            ("code", v) => m.error_code = v.number().map(|n| n as i64),
            ("errmsg" | "$err", v) => m.error_message = v.string(),
            ("codeName", v) => m.error_code_name = v.string(),
            _ => {}
        }
    }
}

fn op_msg(body: &[u8], m: &mut Message) {
    let Some(flags) = le_i32(body, 0).map(|f| f as u32) else {
        return;
    };
    m.more_to_come = flags & MORE_TO_COME != 0;
    let end = if flags & CHECKSUM_PRESENT != 0 {
        body.len().saturating_sub(4)
    } else {
        body.len()
    };
    let mut at = 4;
    while at < end {
        match body.get(at) {
            Some(0) => {
                let Some(doc) = body.get(at + 1..).and_then(bson::document) else {
                    return;
                };
                command_doc(doc, m);
                at += 1 + doc.len();
            }
            Some(1) => {
                // A document sequence (insert's `documents`): its size
                // includes itself; the command is in the kind 0 body.
                let Some(size) = le_i32(body, at + 1).and_then(|s| usize::try_from(s).ok()) else {
                    return;
                };
                if size < 4 {
                    return;
                }
                at += 1 + size;
            }
            _ => return,
        }
    }
    if !m.database.is_empty() && !m.collection.is_empty() {
        m.namespace = format!("{}.{}", m.database, m.collection);
    }
}

fn op_query(body: &[u8], m: &mut Message) {
    let Some((ns, at)) = cstring(body, 4) else {
        return;
    };
    split_namespace(&ns, m);
    let Some(query) = body.get(at + 8..).and_then(bson::document) else {
        return;
    };
    if m.collection == "$cmd" {
        // A command; drivers wrap it in $query when they add a read
        // preference.
        let inner = match bson::get(query, "$query") {
            Some(Value::Doc(d)) => d,
            _ => query,
        };
        let db = std::mem::take(&mut m.database);
        m.collection.clear();
        command_doc(inner, m);
        m.database = db;
    } else {
        m.command = "find".to_owned();
    }
}

fn op_reply(body: &[u8], m: &mut Message) {
    let Some(flags) = le_i32(body, 0) else {
        return;
    };
    if let Some(doc) = body.get(20..).and_then(bson::document) {
        command_doc(doc, m);
        m.command.clear();
        m.collection.clear();
    }
    if flags & QUERY_FAILURE != 0 {
        m.ok = Some(false);
    } else if m.ok.is_none() {
        // A legacy query's documents, not a command reply: it worked.
        m.ok = Some(true);
    }
}

/// OP_INSERT (flags first), OP_UPDATE, OP_DELETE, OP_GET_MORE (ZERO
/// first): a full collection name after 4 bytes.
fn legacy_write(body: &[u8], at: usize, name: &str, m: &mut Message) {
    m.command = name.to_owned();
    if let Some((ns, _)) = cstring(body, at) {
        split_namespace(&ns, m);
    }
}

/// Whether OP_MSG flag bits are ones the spec defines.
pub fn known_msg_flags(flags: u32) -> bool {
    flags & !(CHECKSUM_PRESENT | MORE_TO_COME | EXHAUST_ALLOWED) == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocols::mongodb::bson::tests::{B, doc};

    pub(crate) fn message(request_id: i32, response_to: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
        let mut m = ((HEADER_LEN + body.len()) as i32).to_le_bytes().to_vec();
        m.extend(request_id.to_le_bytes());
        m.extend(response_to.to_le_bytes());
        m.extend(opcode.to_le_bytes());
        m.extend(body);
        m
    }

    pub(crate) fn op_msg_body(flags: u32, d: &[u8]) -> Vec<u8> {
        let mut b = flags.to_le_bytes().to_vec();
        b.push(0);
        b.extend(d);
        b
    }

    #[test]
    fn op_msg_find_and_error_reply() {
        let cmd = doc(&[("find", B::S("users")), ("$db", B::S("shop"))]);
        let mut body = op_msg_body(0, &cmd);
        // A kind 1 section after the body is skipped.
        let mut seq = b"documents\0".to_vec();
        seq.extend(doc(&[("a", B::I(1))]));
        body.push(1);
        body.extend(((seq.len() + 4) as i32).to_le_bytes());
        body.extend(seq);
        let bytes = message(40, 0, OP_MSG, &body);
        let h = header(&bytes).unwrap();
        let m = parse(&h, &bytes);
        assert_eq!(
            (
                m.command.as_str(),
                m.database.as_str(),
                m.collection.as_str()
            ),
            ("find", "shop", "users")
        );
        assert_eq!(m.namespace, "shop.users");
        let reply = doc(&[
            ("ok", B::D(0.0)),
            ("errmsg", B::S("E11000 duplicate key")),
            ("code", B::I(11000)),
            ("codeName", B::S("DuplicateKey")),
        ]);
        let bytes = message(
            7,
            40,
            OP_MSG,
            &op_msg_body(1, &[reply, vec![0; 4]].concat()),
        );
        let m = parse(&header(&bytes).unwrap(), &bytes);
        assert_eq!(m.ok, Some(false));
        assert_eq!(m.error_code, Some(11000));
        assert_eq!(m.error_code_name.as_deref(), Some("DuplicateKey"));
        for cut in 0..bytes.len() {
            let _ = header(&bytes[..cut]).map(|h| parse(&h, &bytes[..cut]));
        }
    }

    #[test]
    fn op_query_command_and_legacy_find() {
        // Frame 1 of mongo-packetbeat-mongo_3.0_session.pcap's shape.
        let q = doc(&[("listCollections", B::I(1))]);
        let mut body = 0i32.to_le_bytes().to_vec();
        body.extend(b"test.$cmd\0");
        body.extend(0i32.to_le_bytes());
        body.extend((-1i32).to_le_bytes());
        body.extend(&q);
        let bytes = message(8, 0, OP_QUERY, &body);
        let m = parse(&header(&bytes).unwrap(), &bytes);
        assert_eq!(
            (
                m.command.as_str(),
                m.database.as_str(),
                m.namespace.as_str()
            ),
            ("listCollections", "test", "test.$cmd")
        );
        let mut body = 0i32.to_le_bytes().to_vec();
        body.extend(b"testDB.testCollection\0");
        body.extend([0; 8]);
        body.extend(doc(&[("testKey", B::S("v"))]));
        let bytes = message(22, 0, OP_QUERY, &body);
        let m = parse(&header(&bytes).unwrap(), &bytes);
        assert_eq!(
            (m.command.as_str(), m.collection.as_str()),
            ("find", "testCollection")
        );
        assert!(header(&message(1, 0, 9999, b"")).is_none());
    }
}
