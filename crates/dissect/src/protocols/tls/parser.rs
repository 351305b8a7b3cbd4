//! Pure parsing of the TLS pieces trawl reads: record headers, handshake
//! message headers, ClientHello and ServerHello (with the extensions that
//! name the server, the application protocol and the versions), alerts,
//! and the names of versions, cipher suites and alert descriptions.
//! Called by [`super::session`] on reassembled handshake bytes and by
//! [`super::probe`]; nothing here keeps state.
//!
//! Every length comes from the wire and is checked against what is left
//! of its enclosing structure before it is used (RFC 8446 §4, RFC 5246 §7).

/// Bytes of a TLS record header: type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;

/// Longest record body accepted: 2^14 plaintext plus the 2048 bytes of
/// expansion TLS 1.2 allows a protected record (RFC 5246 §6.2.3); TLS 1.3
/// allows 2^14 + 256. Past this the bytes are not TLS.
pub const MAX_RECORD_LEN: usize = 16_384 + 2_048;

/// Record content types (RFC 8446 §5.1).
pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;
pub const HEARTBEAT: u8 = 24;

/// Handshake message types read here.
pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;

/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// One record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    pub version: u16,
    pub len: usize,
}

/// The header of the record at the start of `b`, if `b` holds five bytes
/// that look like one: a known content type, major version 3 (SSL 3.0 to
/// TLS 1.3; TLS 1.3 still writes 0x0303 here) and a length within
/// [`MAX_RECORD_LEN`]. `None` is "not TLS" when `b` has five bytes.
pub fn record_header(b: &[u8]) -> Option<RecordHeader> {
    let h: &[u8; RECORD_HEADER_LEN] = b.first_chunk()?;
    let [content_type, major, minor, l0, l1] = *h;
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let known = (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&content_type);
    (known && major == 3 && minor <= 4 && len <= MAX_RECORD_LEN).then_some(RecordHeader {
        content_type,
        version: u16::from_be_bytes([major, minor]),
        len,
    })
}

/// Why a hello could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("{what} runs past the end of the hello at byte {at}")]
    Truncated { what: &'static str, at: usize },
}

/// A cursor over one structure; every read checks what is left.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(HelloError::Truncated { what, at: self.pos }),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.bytes(1, what)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = usize::from(self.u8(what)?);
        self.bytes(n, what)
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = usize::from(self.u16(what)?);
        self.bytes(n, what)
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Big-endian u16 values of a byte vector (an odd last byte is ignored).
fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect()
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// What trawl keeps of a ClientHello (RFC 8446 §4.1.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    /// In wire order, GREASE included (JA4 drops it).
    pub cipher_suites: Vec<u16>,
    /// Extension types in wire order, GREASE included.
    pub extensions: Vec<u16>,
    /// First host_name of the server_name extension.
    pub sni: Option<String>,
    /// Protocols offered by ALPN, in order (lossy UTF-8).
    pub alpn: Vec<String>,
    /// First and last byte of the first ALPN value (JA4 reads bytes).
    pub alpn_first: Option<(u8, u8)>,
    /// supported_versions, in order, GREASE included.
    pub supported_versions: Vec<u16>,
    /// signature_algorithms, in order.
    pub signature_algorithms: Vec<u16>,
}

impl ClientHello {
    /// The highest version offered: supported_versions without GREASE,
    /// else the legacy version.
    pub fn max_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.legacy_version)
    }
}

/// Reads the body of a ClientHello handshake message (after its 4-byte
/// handshake header).
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader::new(body);
    let mut ch = ClientHello {
        legacy_version: r.u16("client_version")?,
        ..ClientHello::default()
    };
    r.bytes(32, "random")?;
    r.vec8("session_id")?;
    ch.cipher_suites = u16s(r.vec16("cipher_suites")?);
    r.vec8("compression_methods")?;
    if r.is_empty() {
        // No extensions (SSL 3.0 and early TLS clients).
        return Ok(ch);
    }
    let mut exts = Reader::new(r.vec16("extensions")?);
    while !exts.is_empty() {
        let ty = exts.u16("extension type")?;
        let data = exts.vec16("extension data")?;
        ch.extensions.push(ty);
        match ty {
            EXT_SERVER_NAME if ch.sni.is_none() => ch.sni = server_name(data),
            EXT_ALPN => {
                let mut list = Reader::new(data);
                let mut names = Reader::new(list.vec16("alpn list")?);
                while !names.is_empty() {
                    let name = names.vec8("alpn protocol")?;
                    if ch.alpn.is_empty()
                        && let (Some(f), Some(l)) = (name.first(), name.last())
                    {
                        ch.alpn_first = Some((*f, *l));
                    }
                    ch.alpn.push(String::from_utf8_lossy(name).into_owned());
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                let mut v = Reader::new(data);
                ch.supported_versions = u16s(v.vec8("supported_versions")?);
            }
            EXT_SIGNATURE_ALGORITHMS => {
                let mut v = Reader::new(data);
                ch.signature_algorithms = u16s(v.vec16("signature_algorithms")?);
            }
            _ => {}
        }
    }
    Ok(ch)
}

/// The first host_name entry of a server_name extension (RFC 6066 §3).
fn server_name(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let mut list = Reader::new(r.vec16("server_name_list").ok()?);
    while !list.is_empty() {
        let kind = list.u8("name_type").ok()?;
        let name = list.vec16("host_name").ok()?;
        if kind == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

/// What trawl keeps of a ServerHello (RFC 8446 §4.1.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub cipher_suite: u16,
    /// supported_versions of the ServerHello (TLS 1.3).
    pub selected_version: Option<u16>,
    pub alpn: Option<String>,
    /// A HelloRetryRequest: the client sends a second ClientHello.
    pub retry_request: bool,
}

impl ServerHello {
    /// The negotiated version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// Reads the body of a ServerHello handshake message.
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, HelloError> {
    let mut r = Reader::new(body);
    let mut sh = ServerHello {
        legacy_version: r.u16("server_version")?,
        ..ServerHello::default()
    };
    sh.retry_request = r.bytes(32, "random")? == HRR_RANDOM;
    r.vec8("session_id")?;
    sh.cipher_suite = r.u16("cipher_suite")?;
    r.u8("compression_method")?;
    if r.is_empty() {
        return Ok(sh);
    }
    let mut exts = Reader::new(r.vec16("extensions")?);
    while !exts.is_empty() {
        let ty = exts.u16("extension type")?;
        let data = exts.vec16("extension data")?;
        match ty {
            EXT_SUPPORTED_VERSIONS => {
                sh.selected_version = Reader::new(data).u16("selected_version").ok();
            }
            EXT_ALPN => {
                let mut list = Reader::new(data);
                let mut names = Reader::new(list.vec16("alpn list")?);
                if let Ok(name) = names.vec8("alpn protocol") {
                    sh.alpn = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
            _ => {}
        }
    }
    Ok(sh)
}

/// A version as people write it ("TLS 1.3"), or its hex value.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301 => "TLS 1.0".to_owned(),
        0x0302 => "TLS 1.1".to_owned(),
        0x0303 => "TLS 1.2".to_owned(),
        0x0304 => "TLS 1.3".to_owned(),
        other => format!("0x{other:04x}"),
    }
}

/// The IANA name of a cipher suite (the common ones), or its hex value.
pub fn cipher_name(c: u16) -> String {
    let name = match c {
        0x0004 => "TLS_RSA_WITH_RC4_128_MD5",
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        0x006b => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        other => return format!("0x{other:04x}"),
    };
    name.to_owned()
}

/// The name of an alert description (RFC 8446 §6), or its number.
pub fn alert_name(d: u8) -> String {
    let name = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        other => return format!("alert_{other}"),
    };
    name.to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::hex;

    pub(crate) const HRR: [u8; 32] = HRR_RANDOM;

    /// A ClientHello body built by hand: TLS 1.2 legacy version, GREASE
    /// cipher 0x0a0a plus 0x1301 and 0xc02f, SNI "example.com", ALPN
    /// h2 and http/1.1, supported_versions (GREASE, 1.3, 1.2), signature
    /// algorithms 0x0403 and 0x0804.
    pub(crate) fn sample_client_hello_body() -> Vec<u8> {
        let mut exts = Vec::new();
        // server_name
        exts.extend(hex("0000 0010 000e 00 000b"));
        exts.extend(b"example.com");
        // alpn: list len 12 = (1+2) + (1+8)
        exts.extend(hex("0010 000e 000c 02"));
        exts.extend(b"h2");
        exts.extend(hex("08"));
        exts.extend(b"http/1.1");
        // supported_versions
        exts.extend(hex("002b 0007 06 2a2a 0304 0303"));
        // signature_algorithms
        exts.extend(hex("000d 0006 0004 0403 0804"));
        let mut body = hex("0303");
        body.extend([0x11; 32]);
        body.extend(hex("00")); // session id
        body.extend(hex("0006 0a0a 1301 c02f"));
        body.extend(hex("01 00"));
        body.extend(u16::try_from(exts.len()).unwrap().to_be_bytes());
        body.extend(exts);
        body
    }

    #[test]
    fn reads_client_hello() {
        let ch = parse_client_hello(&sample_client_hello_body()).unwrap();
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.cipher_suites, vec![0x0a0a, 0x1301, 0xc02f]);
        assert_eq!(ch.extensions, vec![0x0000, 0x0010, 0x002b, 0x000d]);
        assert_eq!(ch.sni.as_deref(), Some("example.com"));
        assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(ch.alpn_first, Some((b'h', b'2')));
        assert_eq!(ch.max_version(), 0x0304);
        assert_eq!(ch.signature_algorithms, vec![0x0403, 0x0804]);
    }

    #[test]
    fn truncated_client_hello_is_an_error_at_every_cut() {
        let body = sample_client_hello_body();
        // Version, random, empty session id, three suites, one compression
        // method: a hello without extensions ends here, and is valid.
        let no_extensions = 2 + 32 + 1 + 8 + 2;
        for cut in 0..body.len() {
            let r = parse_client_hello(&body[..cut]);
            assert_eq!(r.is_ok(), cut == no_extensions, "cut {cut}: {r:?}");
        }
        let err = parse_client_hello(&body[..20]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "random runs past the end of the hello at byte 2"
        );
    }

    #[test]
    fn reads_server_hello_and_retry_request() {
        // ServerHello of tls-zeek-tls-hrr.pcap's shape: 1.3 via supported_versions.
        let mut body = hex("0303");
        body.extend([0x22; 32]);
        body.extend(hex("00 1301 00 0006 002b 0002 0304"));
        let sh = parse_server_hello(&body).unwrap();
        assert_eq!(sh.version(), 0x0304);
        assert_eq!(sh.cipher_suite, 0x1301);
        assert!(!sh.retry_request);
        let mut hrr = hex("0303");
        hrr.extend(HRR_RANDOM);
        hrr.extend(hex("00 1302 00 0000"));
        let sh = parse_server_hello(&hrr).unwrap();
        assert!(sh.retry_request);
        assert_eq!(sh.version(), 0x0303);
    }

    #[test]
    fn record_headers() {
        assert_eq!(
            record_header(&hex("16 0301 0200")),
            Some(RecordHeader {
                content_type: HANDSHAKE,
                version: 0x0301,
                len: 512
            })
        );
        assert_eq!(record_header(&hex("16 0301")), None);
        assert_eq!(record_header(&hex("47 4554 2f20")), None); // "GET /"
        assert_eq!(record_header(&hex("17 0303 ffff")), None); // too long
        assert!(is_grease(0x2a2a) && is_grease(0xfafa) && !is_grease(0x2a3a));
        assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
        assert_eq!(cipher_name(0x1399), "0x1399");
        assert_eq!(alert_name(40), "handshake_failure");
    }
}
