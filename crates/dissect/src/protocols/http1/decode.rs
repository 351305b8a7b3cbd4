//! Undoing a body's content coding (gzip, deflate, br) for display.
//!
//! The session hands over the bytes it kept (at most the body cap, maybe
//! fewer than the body had) and gets back what to show: the decoded bytes,
//! capped at the same limit so that a small compressed body cannot expand
//! without bound, or the raw bytes when they do not decode.

use std::io::Read;

use super::parser::Coding;

/// Buffer the brotli reader uses between its input and its decoder; 4 KiB
/// is the crate's own suggestion and plenty for bodies capped in the KiB.
const BROTLI_BUFFER_BYTES: usize = 4096;

/// A body ready for display.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub data: Vec<u8>,
    /// Fewer bytes than the (decoded) body had.
    pub truncated: bool,
    /// The coding undone, when decoding happened.
    pub decoded_from: Option<&'static str>,
    /// The body claimed a coding we know but did not decode.
    pub failed: bool,
}

/// Decode `raw` (kept body bytes; `raw_truncated` when the body had more)
/// from `coding`, keeping at most `cap` decoded bytes.
///
/// A truncated compressed body decodes as far as it goes. A complete body
/// that does not decode is returned raw with `failed` set.
pub fn decode_body(
    raw: Vec<u8>,
    raw_truncated: bool,
    coding: Option<Coding>,
    cap: usize,
) -> Decoded {
    let undecoded = |raw: Vec<u8>, failed: bool| Decoded {
        data: raw,
        truncated: raw_truncated,
        decoded_from: None,
        failed,
    };
    let coding = match coding {
        Some(c @ (Coding::Gzip | Coding::Deflate | Coding::Br)) if !raw.is_empty() => c,
        _ => return undecoded(raw, false),
    };
    let mut out = Vec::new();
    // One byte past the cap tells "exactly cap" from "more than cap".
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let result = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(limit)
            .read_to_end(&mut out),
        Coding::Deflate if looks_like_zlib(&raw) => flate2::read::ZlibDecoder::new(raw.as_slice())
            .take(limit)
            .read_to_end(&mut out),
        Coding::Deflate => flate2::read::DeflateDecoder::new(raw.as_slice())
            .take(limit)
            .read_to_end(&mut out),
        Coding::Br => brotli_decompressor::Decompressor::new(raw.as_slice(), BROTLI_BUFFER_BYTES)
            .take(limit)
            .read_to_end(&mut out),
        Coding::Other => return undecoded(raw, false),
    };
    let capped = out.len() > cap;
    out.truncate(cap);
    match result {
        Ok(_) => Decoded {
            data: out,
            truncated: raw_truncated || capped,
            decoded_from: Some(coding.name()),
            failed: false,
        },
        // Hitting the end of a cut-off stream is expected; show what came out.
        Err(_) if raw_truncated && !out.is_empty() => Decoded {
            data: out,
            truncated: true,
            decoded_from: Some(coding.name()),
            failed: false,
        },
        Err(_) => undecoded(raw, true),
    }
}

/// RFC 1950 header check: "deflate" on the wire is meant to be zlib, but
/// some servers send raw deflate (RFC 1951); the two are told apart here.
fn looks_like_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"abcdefghij"[i % 10] ^ (i / 7 % 3) as u8)
            .collect()
    }

    #[test]
    fn gzip_whole_and_capped() {
        let plain = text(5000);
        let z = gzip(&plain);
        let d = decode_body(z.clone(), false, Some(Coding::Gzip), 1 << 20);
        assert_eq!(d.data, plain);
        assert_eq!(
            (d.truncated, d.decoded_from, d.failed),
            (false, Some("gzip"), false)
        );
        let d = decode_body(z, false, Some(Coding::Gzip), 100);
        assert_eq!(d.data, &plain[..100]);
        assert!(d.truncated);
    }

    #[test]
    fn truncated_gzip_decodes_as_far_as_it_goes() {
        let plain = text(50_000);
        let z = gzip(&plain);
        let cut = z[..z.len() / 2].to_vec();
        let d = decode_body(cut, true, Some(Coding::Gzip), 1 << 20);
        assert!(
            !d.data.is_empty() && d.data.len() < plain.len(),
            "{}",
            d.data.len()
        );
        assert_eq!(d.data, &plain[..d.data.len()]);
        assert!(d.truncated);
        assert_eq!(d.decoded_from, Some("gzip"));
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let plain = text(3000);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        let d = decode_body(z.finish().unwrap(), false, Some(Coding::Deflate), 1 << 20);
        assert_eq!(d.data, plain);
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        r.write_all(&plain).unwrap();
        let d = decode_body(r.finish().unwrap(), false, Some(Coding::Deflate), 1 << 20);
        assert_eq!(d.data, plain);
        assert_eq!(d.decoded_from, Some("deflate"));
    }

    #[test]
    fn brotli() {
        // Hand-built stream: window bits 0 (16), one uncompressed meta-block
        // (ISLAST=0, MNIBBLES=4, MLEN-1=17, ISUNCOMPRESSED=1), then an
        // empty last meta-block (RFC 7932 §9.2).
        let mut br = vec![0x10, 0x01, 0x10];
        br.extend_from_slice(b"hello hello hello\n");
        br.push(0x03);
        let d = decode_body(br.to_vec(), false, Some(Coding::Br), 1024);
        assert_eq!(d.data, b"hello hello hello\n");
        assert_eq!(d.decoded_from, Some("br"));
    }

    #[test]
    fn garbage_is_kept_raw() {
        let d = decode_body(b"not gzip at all".to_vec(), false, Some(Coding::Gzip), 1024);
        assert_eq!(d.data, b"not gzip at all");
        assert!(d.failed);
        assert_eq!(d.decoded_from, None);
        let d = decode_body(b"zstd bytes".to_vec(), false, Some(Coding::Other), 1024);
        assert!(!d.failed);
        let d = decode_body(Vec::new(), true, Some(Coding::Gzip), 1024);
        assert!(!d.failed && d.data.is_empty());
    }
}
