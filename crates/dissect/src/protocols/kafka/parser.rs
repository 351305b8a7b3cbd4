//! Pure parsing of Kafka's wire protocol heads: the request header
//! (v1, or v2 with tagged fields for flexible versions), the response
//! header (v0 or v1), the topic names of Produce, Fetch and Metadata
//! requests, and the error code of responses that start with one. A
//! static table names every API key and gives the first flexible version
//! of each (from Kafka's message schemas; a test checks it against the
//! `kafka-protocol` crate). Called by [`super::session`] and
//! [`super::probe`] on message heads; nothing here keeps state.

/// Largest message accepted. Kafka brokers refuse requests above
/// `socket.request.max.bytes` (100 MiB by default); a longer length is
/// not Kafka.
pub const MAX_MESSAGE_LEN: usize = 100 * 1024 * 1024;

/// Most topics kept per request; a Metadata request may list thousands.
pub const MAX_TOPICS: usize = 64;

/// One API key: its name (Kafka's `ApiKeys` enum) and the first version
/// whose messages are flexible (compact strings, tagged fields); `None`
/// when no version is.
struct ApiKeyInfo {
    name: &'static str,
    first_flexible: Option<i16>,
}

const fn k(name: &'static str, first_flexible: i16) -> ApiKeyInfo {
    ApiKeyInfo {
        name,
        first_flexible: if first_flexible < 0 {
            None
        } else {
            Some(first_flexible)
        },
    }
}

/// Every API key by number (Apache Kafka 4.x `clients/src/main/resources/
/// common/message/*Request.json`, `flexibleVersions`).
#[rustfmt::skip]
static API_KEYS: &[ApiKeyInfo] = &[
    k("PRODUCE", 9), k("FETCH", 12), k("LIST_OFFSETS", 6), k("METADATA", 9),
    k("LEADER_AND_ISR", 4), k("STOP_REPLICA", 2), k("UPDATE_METADATA", 6),
    k("CONTROLLED_SHUTDOWN", 3), k("OFFSET_COMMIT", 8), k("OFFSET_FETCH", 6),
    k("FIND_COORDINATOR", 3), k("JOIN_GROUP", 6), k("HEARTBEAT", 4), k("LEAVE_GROUP", 4),
    k("SYNC_GROUP", 4), k("DESCRIBE_GROUPS", 5), k("LIST_GROUPS", 3),
    k("SASL_HANDSHAKE", -1), k("API_VERSIONS", 3), k("CREATE_TOPICS", 5),
    k("DELETE_TOPICS", 4), k("DELETE_RECORDS", 2), k("INIT_PRODUCER_ID", 2),
    k("OFFSET_FOR_LEADER_EPOCH", 4), k("ADD_PARTITIONS_TO_TXN", 3),
    k("ADD_OFFSETS_TO_TXN", 3), k("END_TXN", 3), k("WRITE_TXN_MARKERS", 1),
    k("TXN_OFFSET_COMMIT", 3), k("DESCRIBE_ACLS", 2), k("CREATE_ACLS", 2),
    k("DELETE_ACLS", 2), k("DESCRIBE_CONFIGS", 4), k("ALTER_CONFIGS", 2),
    k("ALTER_REPLICA_LOG_DIRS", 2), k("DESCRIBE_LOG_DIRS", 2), k("SASL_AUTHENTICATE", 2),
    k("CREATE_PARTITIONS", 2), k("CREATE_DELEGATION_TOKEN", 2),
    k("RENEW_DELEGATION_TOKEN", 2), k("EXPIRE_DELEGATION_TOKEN", 2),
    k("DESCRIBE_DELEGATION_TOKEN", 2), k("DELETE_GROUPS", 2), k("ELECT_LEADERS", 2),
    k("INCREMENTAL_ALTER_CONFIGS", 1), k("ALTER_PARTITION_REASSIGNMENTS", 0),
    k("LIST_PARTITION_REASSIGNMENTS", 0), k("OFFSET_DELETE", -1),
    k("DESCRIBE_CLIENT_QUOTAS", 1), k("ALTER_CLIENT_QUOTAS", 1),
    k("DESCRIBE_USER_SCRAM_CREDENTIALS", 0), k("ALTER_USER_SCRAM_CREDENTIALS", 0),
    k("VOTE", 0), k("BEGIN_QUORUM_EPOCH", 1), k("END_QUORUM_EPOCH", 1),
    k("DESCRIBE_QUORUM", 0), k("ALTER_PARTITION", 0), k("UPDATE_FEATURES", 0),
    k("ENVELOPE", 0), k("FETCH_SNAPSHOT", 0), k("DESCRIBE_CLUSTER", 0),
    k("DESCRIBE_PRODUCERS", 0), k("BROKER_REGISTRATION", 0), k("BROKER_HEARTBEAT", 0),
    k("UNREGISTER_BROKER", 0), k("DESCRIBE_TRANSACTIONS", 0), k("LIST_TRANSACTIONS", 0),
    k("ALLOCATE_PRODUCER_IDS", 0), k("CONSUMER_GROUP_HEARTBEAT", 0),
    k("CONSUMER_GROUP_DESCRIBE", 0), k("CONTROLLER_REGISTRATION", 0),
    k("GET_TELEMETRY_SUBSCRIPTIONS", 0), k("PUSH_TELEMETRY", 0),
    k("ASSIGN_REPLICAS_TO_DIRS", 0), k("LIST_CLIENT_METRICS_RESOURCES", 0),
    k("DESCRIBE_TOPIC_PARTITIONS", 0), k("SHARE_GROUP_HEARTBEAT", 0),
    k("SHARE_GROUP_DESCRIBE", 0), k("SHARE_FETCH", 0), k("SHARE_ACKNOWLEDGE", 0),
    k("ADD_RAFT_VOTER", 0), k("REMOVE_RAFT_VOTER", 0), k("UPDATE_RAFT_VOTER", 0),
    k("INITIALIZE_SHARE_GROUP_STATE", 0), k("READ_SHARE_GROUP_STATE", 0),
    k("WRITE_SHARE_GROUP_STATE", 0), k("DELETE_SHARE_GROUP_STATE", 0),
    k("READ_SHARE_GROUP_STATE_SUMMARY", 0), k("STREAMS_GROUP_HEARTBEAT", 0),
    k("STREAMS_GROUP_DESCRIBE", 0), k("DESCRIBE_SHARE_GROUP_OFFSETS", 0),
    k("ALTER_SHARE_GROUP_OFFSETS", 0), k("DELETE_SHARE_GROUP_OFFSETS", 0),
];

/// Highest API version trawl believes possible; real keys stay below 20.
pub const MAX_API_VERSION: i16 = 30;

fn info(api_key: i16) -> Option<&'static ApiKeyInfo> {
    API_KEYS.get(usize::try_from(api_key).ok()?)
}

/// The name of an API key ("PRODUCE"), or None when unknown.
pub fn api_key_name(api_key: i16) -> Option<&'static str> {
    info(api_key).map(|i| i.name)
}

/// Whether messages of this key and version are flexible.
pub fn is_flexible(api_key: i16, version: i16) -> bool {
    info(api_key)
        .and_then(|i| i.first_flexible)
        .is_some_and(|f| version >= f)
}

/// Request header version: 2 for flexible versions, else 1 (the v0
/// header of ControlledShutdown v0 is treated as v1: its client id is
/// read as absent when it does not fit).
pub fn request_header_version(api_key: i16, version: i16) -> i16 {
    if is_flexible(api_key, version) { 2 } else { 1 }
}

/// Response header version: 1 for flexible versions, except ApiVersions,
/// whose response header is always v0 (so that old clients can read it).
pub fn response_header_version(api_key: i16, version: i16) -> i16 {
    if api_key != 18 && is_flexible(api_key, version) {
        1
    } else {
        0
    }
}

/// A cursor over one message head; every read checks what is left.
/// Running out of bytes (a head cut by the cap) yields `None`.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }

    fn i8(&mut self) -> Option<i8> {
        self.bytes(1)?.first().map(|b| i8::from_be_bytes([*b]))
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(*self.bytes(2)?.first_chunk()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(*self.bytes(4)?.first_chunk()?))
    }

    /// Unsigned varint (flexible versions' lengths and tags).
    fn uvarint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = *self.bytes(1)?.first()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// STRING / NULLABLE_STRING (i16 length, -1 = null).
    fn string(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        self.bytes(usize::try_from(n).ok()?).map(Some)
    }

    /// COMPACT_STRING / COMPACT_NULLABLE_STRING (uvarint length + 1).
    fn compact_string(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Some(None);
        }
        self.bytes(usize::try_from(n - 1).ok()?).map(Some)
    }

    fn str_v(&mut self, flexible: bool) -> Option<Option<&'a [u8]>> {
        if flexible {
            self.compact_string()
        } else {
            self.string()
        }
    }

    /// ARRAY / COMPACT_ARRAY length; None for null.
    fn array_len(&mut self, flexible: bool) -> Option<Option<usize>> {
        if flexible {
            let n = self.uvarint()?;
            Some(if n == 0 {
                None
            } else {
                usize::try_from(n - 1).ok()
            })
        } else {
            let n = self.i32()?;
            Some(usize::try_from(n).ok())
        }
    }

    /// BYTES / RECORDS (i32 length, -1 = null) or their compact forms.
    fn skip_bytes(&mut self, flexible: bool) -> Option<()> {
        let n = if flexible {
            let n = self.uvarint()?;
            if n == 0 {
                return Some(());
            }
            usize::try_from(n - 1).ok()?
        } else {
            match usize::try_from(self.i32()?) {
                Ok(n) => n,
                Err(_) => return Some(()),
            }
        };
        self.skip(n)
    }

    /// A tagged-field section: count, then (tag, size, bytes) each.
    fn skip_tags(&mut self) -> Option<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.skip(size)?;
        }
        Some(())
    }
}

/// A request header and what trawl reads of the body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// Topics of Produce, Fetch and Metadata requests (those that fit the
    /// head), in wire order.
    pub topics: Vec<String>,
}

/// Reads a request from its head (after the 4-byte length). None when
/// even the fixed header does not fit.
pub fn parse_request(head: &[u8]) -> Option<Request> {
    let mut r = Reader::new(head);
    let api_key = r.i16()?;
    let api_version = r.i16()?;
    let correlation_id = r.i32()?;
    let mut req = Request {
        api_key,
        api_version,
        correlation_id,
        ..Request::default()
    };
    req.client_id = r
        .string()
        .flatten()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let flexible = is_flexible(api_key, api_version);
    if flexible && r.skip_tags().is_none() {
        return Some(req);
    }
    let mut topics = Vec::new();
    // A body cut by the head cap keeps the topics read before the cut.
    let _ = match api_key {
        0 => produce_topics(&mut r, api_version, flexible, &mut topics),
        1 => fetch_topics(&mut r, api_version, flexible, &mut topics),
        3 => metadata_topics(&mut r, api_version, flexible, &mut topics),
        _ => None,
    };
    req.topics = topics;
    Some(req)
}

fn push_topic(topics: &mut Vec<String>, name: Option<&[u8]>) {
    if let Some(n) = name
        && topics.len() < MAX_TOPICS
    {
        topics.push(String::from_utf8_lossy(n).into_owned());
    }
}

/// ProduceRequest: [transactional_id v3+] acks timeout topics[name
/// partitions[index records]]. v13+ names topics by id only.
fn produce_topics(r: &mut Reader<'_>, v: i16, flex: bool, topics: &mut Vec<String>) -> Option<()> {
    if v >= 3 {
        r.str_v(flex)?;
    }
    r.skip(2 + 4)?;
    let n = r.array_len(flex)?.unwrap_or(0);
    for _ in 0..n {
        if v >= 13 {
            r.skip(16)?;
        } else {
            push_topic(topics, r.str_v(flex)?);
        }
        let parts = r.array_len(flex)?.unwrap_or(0);
        for _ in 0..parts {
            r.skip(4)?;
            r.skip_bytes(flex)?;
            if flex {
                r.skip_tags()?;
            }
        }
        if flex {
            r.skip_tags()?;
        }
    }
    Some(())
}

/// FetchRequest: [replica_id v0-14] max_wait min_bytes [max_bytes v3+]
/// [isolation v4+] [session_id epoch v7+] topics[name (id v13+)
/// partitions[...]].
fn fetch_topics(r: &mut Reader<'_>, v: i16, flex: bool, topics: &mut Vec<String>) -> Option<()> {
    if v <= 14 {
        r.skip(4)?;
    }
    r.skip(4 + 4)?;
    if v >= 3 {
        r.skip(4)?;
    }
    if v >= 4 {
        r.i8()?;
    }
    if v >= 7 {
        r.skip(4 + 4)?;
    }
    let n = r.array_len(flex)?.unwrap_or(0);
    // partition, [current_leader_epoch v9+], fetch_offset,
    // [last_fetched_epoch v12+], [log_start_offset v5+], max_bytes.
    let mut part = 4 + 8 + 4;
    if v >= 9 {
        part += 4;
    }
    if v >= 12 {
        part += 4;
    }
    if v >= 5 {
        part += 8;
    }
    for _ in 0..n {
        if v >= 13 {
            r.skip(16)?;
        } else {
            push_topic(topics, r.str_v(flex)?);
        }
        let parts = r.array_len(flex)?.unwrap_or(0);
        for _ in 0..parts {
            r.skip(part)?;
            if flex {
                r.skip_tags()?;
            }
        }
        if flex {
            r.skip_tags()?;
        }
    }
    Some(())
}

/// MetadataRequest: topics[[topic_id v10+] name] (null = all topics).
fn metadata_topics(r: &mut Reader<'_>, v: i16, flex: bool, topics: &mut Vec<String>) -> Option<()> {
    let n = r.array_len(flex)?.unwrap_or(0);
    for _ in 0..n {
        if v >= 10 {
            r.skip(16)?;
        }
        push_topic(topics, r.str_v(flex)?);
        if flex {
            r.skip_tags()?;
        }
    }
    Some(())
}

/// The correlation id of a response head (after the 4-byte length).
pub fn response_correlation_id(head: &[u8]) -> Option<i32> {
    Reader::new(head).i32()
}

/// The error code of a response whose body starts with one (possibly
/// after throttle_time_ms), or the first partition's error of a Produce
/// response; None for other responses or when it does not fit.
pub fn response_error_code(head: &[u8], api_key: i16, v: i16) -> Option<i16> {
    let mut r = Reader::new(head);
    r.i32()?;
    let flex = is_flexible(api_key, v);
    if response_header_version(api_key, v) == 1 {
        r.skip_tags()?;
    }
    // (throttle first?) for keys whose body starts with error_code.
    let throttle_first = match api_key {
        17 | 18 | 36 => false,
        10 => {
            if v >= 4 {
                return None;
            }
            v >= 1
        }
        11 => v >= 2,
        12..=14 | 16 => v >= 1,
        22 | 25 | 26 => true,
        0 => {
            // responses[name partitions[index error_code ...]]
            let n = r.array_len(flex)?.unwrap_or(0);
            if n == 0 {
                return Some(0);
            }
            if v >= 13 {
                r.skip(16)?;
            } else {
                r.str_v(flex)?;
            }
            let parts = r.array_len(flex)?.unwrap_or(0);
            if parts == 0 {
                return Some(0);
            }
            r.skip(4)?;
            return r.i16();
        }
        _ => return None,
    };
    if throttle_first {
        r.skip(4)?;
    }
    r.i16()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    #[test]
    fn header_versions_agree_with_kafka_protocol() {
        use kafka_protocol::messages::ApiKey;
        let mut checked = 0;
        for key in 0..=i16::try_from(API_KEYS.len()).unwrap() {
            let Ok(api) = ApiKey::try_from(key) else {
                continue;
            };
            let range = api.valid_versions();
            for v in range.min..=range.max {
                assert_eq!(
                    request_header_version(key, v),
                    api.request_header_version(v).max(1),
                    "request header of key {key} v{v}"
                );
                assert_eq!(
                    response_header_version(key, v),
                    api.response_header_version(v),
                    "response header of key {key} v{v}"
                );
                checked += 1;
            }
        }
        assert!(checked > 300, "{checked}");
        assert_eq!(api_key_name(0), Some("PRODUCE"));
        assert_eq!(api_key_name(18), Some("API_VERSIONS"));
        assert_eq!(api_key_name(-1), None);
        assert_eq!(api_key_name(999), None);
    }

    #[test]
    fn produce_v2_request_of_deepflow_capture() {
        // Head of frame 1 of kafka-deepflow-00-produce-v2.pcap, after the
        // length: key 0 v2, correlation 1, client "console-producer",
        // acks 1, timeout 1500, one topic "topic2".
        let mut head = hex("0000 0002 00000001 0010");
        head.extend(b"console-producer");
        head.extend(hex("0001 000005dc 00000001 0006"));
        head.extend(b"topic2");
        head.extend(hex("00000001 00000000 00000000"));
        let req = parse_request(&head).unwrap();
        assert_eq!(req.api_key, 0);
        assert_eq!(req.api_version, 2);
        assert_eq!(req.correlation_id, 1);
        assert_eq!(req.client_id.as_deref(), Some("console-producer"));
        assert_eq!(req.topics, vec!["topic2"]);
        // Cut anywhere, never a panic; the header survives once it fits.
        for cut in 0..head.len() {
            let r = parse_request(&head[..cut]);
            assert_eq!(r.is_some(), cut >= 8, "cut {cut}");
        }
    }

    #[test]
    fn flexible_fetch_and_metadata_topics() {
        // Fetch v12: header v2 (tags), compact strings.
        let mut head = hex("0001 000c 00003cf3 0005");
        head.extend(b"cons1");
        head.extend(hex("00")); // header tags
        head.extend(hex(
            "ffffffff 000001f4 00000001 03200000 00 00000000 ffffffff",
        ));
        head.extend(hex("02 07")); // one topic, name length 6
        head.extend(b"orders");
        head.extend(hex("02")); // one partition
        head.extend([0u8; 4 + 4 + 8 + 4 + 8 + 4]);
        head.extend(hex("00 00")); // partition tags, topic tags
        let req = parse_request(&head).unwrap();
        assert_eq!(
            (req.api_key, req.api_version, req.correlation_id),
            (1, 12, 15603)
        );
        assert_eq!(req.topics, vec!["orders"]);
        // Metadata v1: two topics.
        let mut head = hex("0003 0001 00000007 0001 63 00000002 0001 61 0002 6262");
        head.truncate(head.len());
        let req = parse_request(&head).unwrap();
        assert_eq!(req.client_id.as_deref(), Some("c"));
        assert_eq!(req.topics, vec!["a", "bb"]);
    }

    #[test]
    fn response_error_codes() {
        // ApiVersions v3 response: correlation, error 35 (UNSUPPORTED_VERSION).
        assert_eq!(response_error_code(&hex("00000002 0023"), 18, 3), Some(35));
        // JoinGroup v7 (flexible): correlation, tags, throttle, error 79.
        assert_eq!(
            response_error_code(&hex("00000078 00 00000000 004f"), 11, 7),
            Some(79)
        );
        assert_eq!(response_error_code(&hex("00000001"), 3, 1), None);
        assert_eq!(response_correlation_id(&hex("0000000f")), Some(15));
    }
}
