//! HPACK (RFC 7541) header block decoding for [`super::session`]: one
//! [`Decoder`] per direction of a connection, holding that direction's
//! dynamic table, fed every header block the direction sends (HEADERS +
//! CONTINUATION, PUSH_PROMISE) in order.
//!
//! Written for captures rather than for a peer: it never fails a whole
//! block for one bad field. A capture that starts mid-connection (or loses
//! a header block in a gap) leaves the table holding entries we never
//! saw; [`Decoder::forget`] says so, after which an index past the entries
//! seen since is reported as [`FieldError::UnknownIndex`] and decoding
//! goes on with the next field. This is sound because the newest entries
//! always have the lowest dynamic indices and eviction drops the oldest:
//! the entries inserted after the loss sit at the same indices in the
//! peer's table as in ours.
//!
//! Why not a crate: those we looked at (hpack, loona-hpack, httlib-hpack)
//! stop at the first error and cannot resume with a partly known table.

use std::collections::VecDeque;

use super::huffman;

/// Bytes of one header name or value we decode. A field this long is
/// already past any server's limit (nginx 8 KiB per line by default,
/// Go 1 MiB for the whole list); capping keeps a hostile length from
/// allocating.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// Dynamic table size we honour, whatever the peers agreed. RFC 7541's
/// default is 4 KiB and common servers advertise at most 64 KiB; a bigger
/// table than this is trimmed (its oldest entries then read as unknown),
/// which bounds memory per connection.
pub const MAX_TABLE_BYTES: usize = 64 * 1024;

/// Per-entry overhead in the table size (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Static table (RFC 7541 Appendix A), indices 1–61.
#[rustfmt::skip]
pub static STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""), ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""), ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""),
    ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
    ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""),
    ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""),
    ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""),
    ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
    ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""),
    ("www-authenticate", ""),
];

/// A problem with one field of a block (the rest still decodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// A dynamic index past the entries seen (capture started mid-connection,
    /// or a block was lost).
    UnknownIndex,
    /// Index 0, or past the table when the whole table is known.
    BadIndex,
}

/// A problem that stops the rest of a block from decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The block ends inside a field.
    Truncated,
    /// An integer longer than 32 bits.
    IntegerOverflow,
    /// A string longer than [`MAX_STRING_BYTES`].
    StringTooLong,
    /// Huffman coding that does not decode.
    BadHuffman,
}

impl BlockError {
    pub fn code(self) -> &'static str {
        match self {
            BlockError::Truncated => "hpack_truncated",
            BlockError::IntegerOverflow => "hpack_integer_overflow",
            BlockError::StringTooLong => "hpack_string_too_long",
            BlockError::BadHuffman => "hpack_bad_huffman",
        }
    }
}

/// What came out of one header block.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Block {
    /// Fields in order; names as sent (HTTP/2 sends them lower case).
    pub fields: Vec<(String, String)>,
    /// Fields that could not be decoded, in order.
    pub field_errors: Vec<FieldError>,
    /// Set when decoding stopped before the block's end.
    pub error: Option<BlockError>,
}

/// One direction's HPACK decoding state.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first (dynamic index 62 is `entries[0]`).
    entries: VecDeque<(String, String)>,
    size: usize,
    max_size: usize,
    /// The table may hold entries older than `entries` that we never saw.
    partial: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            entries: VecDeque::new(),
            size: 0,
            max_size: 4096,
            partial: false,
        }
    }

    /// The table's state before now is unknown (mid-connection start, or
    /// a lost block): keep nothing, and report references past what
    /// arrives from here on as unknown rather than bad.
    pub fn forget(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.partial = true;
    }

    /// True when references may point at entries never seen.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// Decode one complete header block.
    pub fn decode(&mut self, mut src: &[u8]) -> Block {
        let mut block = Block::default();
        while let Some(&first) = src.first() {
            let step = if first & 0x80 != 0 {
                // §6.1 Indexed Header Field.
                integer(src, 7).map(|(index, used)| {
                    src = src.get(used..).unwrap_or_default();
                    match self.get(index) {
                        Ok((n, v)) => block.fields.push((n.to_owned(), v.to_owned())),
                        Err(e) => block.field_errors.push(e),
                    }
                })
            } else if first & 0xe0 == 0x20 {
                // §6.3 Dynamic Table Size Update.
                // Honoured up to our own cap, whatever SETTINGS allowed.
                integer(src, 5).map(|(size, used)| {
                    src = src.get(used..).unwrap_or_default();
                    self.max_size =
                        usize::try_from(size).map_or(MAX_TABLE_BYTES, |s| s.min(MAX_TABLE_BYTES));
                    self.evict(0);
                })
            } else {
                // §6.2: with incremental indexing (01), without (0000),
                // never indexed (0001).
                let (prefix, index) = if first & 0x40 != 0 {
                    (6, true)
                } else {
                    (4, false)
                };
                self.literal(&mut src, prefix, index, &mut block)
            };
            if let Err(e) = step {
                block.error = Some(e);
                break;
            }
        }
        block
    }

    fn literal(
        &mut self,
        src: &mut &[u8],
        prefix: u8,
        index: bool,
        block: &mut Block,
    ) -> Result<(), BlockError> {
        let (name_index, used) = integer(src, prefix)?;
        *src = src.get(used..).unwrap_or_default();
        let name = if name_index == 0 {
            let (name, used) = string(src)?;
            *src = src.get(used..).unwrap_or_default();
            Ok(name)
        } else {
            self.get(name_index).map(|(n, _)| n.to_owned())
        };
        let (value, used) = string(src)?;
        *src = src.get(used..).unwrap_or_default();
        match name {
            Ok(name) => {
                if index {
                    self.insert(name.clone(), value.clone());
                }
                block.fields.push((name, value));
            }
            Err(e) => {
                // The peer inserted an entry we cannot name: keep the
                // indices of later entries right with a placeholder that
                // reads as unknown.
                if index {
                    self.insert(String::new(), value);
                }
                block.field_errors.push(e);
            }
        }
        Ok(())
    }

    fn get(&self, index: u64) -> Result<(&str, &str), FieldError> {
        let index = usize::try_from(index).map_err(|_| FieldError::BadIndex)?;
        if index == 0 {
            return Err(FieldError::BadIndex);
        }
        if let Some(&(n, v)) = STATIC_TABLE.get(index - 1) {
            return Ok((n, v));
        }
        let at = index - STATIC_TABLE.len() - 1;
        match self.entries.get(at) {
            // A placeholder for an entry whose name we never learned.
            Some((n, _)) if n.is_empty() => Err(FieldError::UnknownIndex),
            Some((n, v)) => Ok((n, v)),
            None if self.partial => Err(FieldError::UnknownIndex),
            None => Err(FieldError::BadIndex),
        }
    }

    fn insert(&mut self, name: String, value: String) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // §4.4: an entry larger than the table empties it.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.entries.push_front((name, value));
    }

    /// Drop the oldest entries until `extra` more bytes fit.
    fn evict(&mut self, extra: usize) {
        while self.size + extra > self.max_size {
            match self.entries.pop_back() {
                Some((n, v)) => {
                    self.size = self.size.saturating_sub(n.len() + v.len() + ENTRY_OVERHEAD)
                }
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// §5.1 integer with an N-bit prefix: (value, bytes used).
fn integer(src: &[u8], prefix: u8) -> Result<(u64, usize), BlockError> {
    let first = *src.first().ok_or(BlockError::Truncated)?;
    let mask = (1u16 << prefix) - 1;
    let mut value = u64::from(u16::from(first) & mask);
    if value < u64::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for (i, &b) in src.iter().enumerate().skip(1) {
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(BlockError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
        shift += 7;
        if shift > 28 {
            return Err(BlockError::IntegerOverflow);
        }
    }
    Err(BlockError::Truncated)
}

/// §5.2 string literal: (text, bytes used). Invalid UTF-8 is replaced.
fn string(src: &[u8]) -> Result<(String, usize), BlockError> {
    let huff = src.first().is_some_and(|b| b & 0x80 != 0);
    let (len, used) = integer(src, 7)?;
    let len = usize::try_from(len).map_err(|_| BlockError::StringTooLong)?;
    if len > MAX_STRING_BYTES {
        return Err(BlockError::StringTooLong);
    }
    let end = used.checked_add(len).ok_or(BlockError::Truncated)?;
    let raw = src.get(used..end).ok_or(BlockError::Truncated)?;
    let text = if huff {
        // Huffman codes are at least 5 bits: at most 8/5 symbols a byte.
        let mut out = Vec::with_capacity(len.saturating_mul(8) / 5);
        huffman::decode(raw, &mut out, MAX_STRING_BYTES).map_err(|_| BlockError::BadHuffman)?;
        into_text(out)
    } else {
        into_text(raw.to_vec())
    };
    Ok((text, end))
}

fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    fn pairs(b: &Block) -> Vec<(&str, &str)> {
        b.fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn rfc_7541_c3_requests_without_huffman() {
        let mut d = Decoder::new();
        let b = d.decode(&hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
        assert_eq!(
            pairs(&b),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ]
        );
        let b = d.decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865"));
        assert_eq!(
            pairs(&b),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ]
        );
        let b = d.decode(&hex(
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ));
        assert_eq!(
            pairs(&b),
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ]
        );
        assert_eq!(d.size, 164);
        assert!(b.error.is_none() && b.field_errors.is_empty());
    }

    #[test]
    fn rfc_7541_c6_responses_with_huffman_and_eviction() {
        let mut d = Decoder::new();
        d.max_size = 256;
        let b = d.decode(&hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        ));
        assert_eq!(
            pairs(&b),
            [
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ]
        );
        let b = d.decode(&hex("4883 640e ffc1 c0bf"));
        assert_eq!(
            pairs(&b),
            [
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ]
        );
        assert_eq!(d.size, 222);
        assert_eq!(d.entries.len(), 4);
    }

    #[test]
    fn size_updates_evict_and_are_capped() {
        let mut d = Decoder::new();
        let b = d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0176 be"));
        assert_eq!(pairs(&b), [("custom-key", "v"), ("custom-key", "v")]);
        // Size 0 empties the table: index 62 is gone (and, the whole
        // table being known, a bad index rather than an unknown one).
        let b = d.decode(&hex("20 be"));
        assert_eq!(b.field_errors, [FieldError::BadIndex]);
        assert_eq!(d.size, 0);
        // A size past our cap (2^20 here) is honoured up to the cap.
        let b = d.decode(&hex("3f e1ff 3f"));
        assert!(b.error.is_none());
        assert_eq!(d.max_size, MAX_TABLE_BYTES);
    }

    #[test]
    fn mid_stream_references_are_unknown_and_decoding_goes_on() {
        let mut d = Decoder::new();
        d.forget();
        // 0xbe = dynamic index 62 (never seen), then :method GET, then a
        // literal with incremental indexing whose name is index 63 (unknown).
        let b = d.decode(&hex("be 82 7f00 0178 84"));
        assert_eq!(pairs(&b), [(":method", "GET"), (":path", "/")]);
        assert_eq!(
            b.field_errors,
            [FieldError::UnknownIndex, FieldError::UnknownIndex]
        );
        assert!(b.error.is_none());
        // The placeholder inserted for the unnamed entry reads as unknown;
        // an entry inserted after it is known at index 62.
        let b = d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0176 be bf"));
        assert_eq!(pairs(&b), [("custom-key", "v"), ("custom-key", "v")]);
        assert_eq!(b.field_errors, [FieldError::UnknownIndex]);
    }

    #[test]
    fn hostile_blocks_stop_without_panicking() {
        let mut d = Decoder::new();
        assert_eq!(d.decode(&hex("80")).field_errors, [FieldError::BadIndex]);
        assert_eq!(d.decode(&hex("ff")).error, Some(BlockError::Truncated));
        assert_eq!(
            d.decode(&hex("ff ff ff ff ff ff 7f")).error,
            Some(BlockError::IntegerOverflow)
        );
        assert_eq!(
            d.decode(&hex("40 7f ff ff 03")).error,
            Some(BlockError::StringTooLong)
        );
        assert_eq!(
            d.decode(&hex("40 05 61")).error,
            Some(BlockError::Truncated)
        );
        assert_eq!(
            d.decode(&hex("40 81 00 00")).error,
            Some(BlockError::BadHuffman)
        );
        let mut seed = 7u64;
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let _ = d.decode(&bytes);
            assert!(d.size <= d.max_size);
        }
    }
}
