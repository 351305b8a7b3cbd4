//! The JA4 fingerprint of a ClientHello (FoxIO's JA4 spec,
//! technical_details/JA4.md): `a_b_c` where `a` is readable (transport,
//! version, SNI or not, counts, ALPN), `b` hashes the sorted cipher
//! suites and `c` the sorted extensions (without SNI and ALPN) followed
//! by the signature algorithms in wire order. GREASE values are ignored
//! everywhere. Called by [`super::session`] once per ClientHello.

use sha2::{Digest, Sha256};

use super::parser::{ClientHello, is_grease};

/// JA4 of `ch` seen over TCP ("t").
pub fn ja4(ch: &ClientHello) -> String {
    let ciphers: Vec<u16> = ch
        .cipher_suites
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let version = match ch.max_version() {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };
    let sni = if ch.extensions.contains(&0x0000) {
        'd'
    } else {
        'i'
    };
    let alpn = match ch.alpn_first {
        None => "00".to_owned(),
        Some((f, l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() => {
            format!("{}{}", char::from(f), char::from(l))
        }
        // Not alphanumeric: first and last character of the value's hex.
        Some((f, l)) => {
            let f = format!("{f:02x}");
            let l = format!("{l:02x}");
            format!("{}{}", &f[..1], &l[1..])
        }
    };
    let a = format!(
        "t{version}{sni}{:02}{:02}{alpn}",
        ciphers.len().min(99),
        exts.len().min(99)
    );

    let mut sorted_ciphers = ciphers;
    sorted_ciphers.sort_unstable();
    let b = if sorted_ciphers.is_empty() {
        "000000000000".to_owned()
    } else {
        hash12(&hex_list(&sorted_ciphers))
    };

    let mut sorted_exts: Vec<u16> = exts
        .into_iter()
        .filter(|e| *e != 0x0000 && *e != 0x0010)
        .collect();
    sorted_exts.sort_unstable();
    let c = if sorted_exts.is_empty() {
        "000000000000".to_owned()
    } else {
        let sigs: Vec<u16> = ch
            .signature_algorithms
            .iter()
            .copied()
            .filter(|s| !is_grease(*s))
            .collect();
        let mut text = hex_list(&sorted_exts);
        if !sigs.is_empty() {
            text.push('_');
            text.push_str(&hex_list(&sigs));
        }
        hash12(&text)
    };
    format!("{a}_{b}_{c}")
}

/// "1301,1302,c02b": four lower-case hex digits each, comma-separated.
fn hex_list(v: &[u16]) -> String {
    let mut s = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{x:04x}"));
    }
    s
}

/// The first 12 lower-case hex digits of SHA-256(`text`).
fn hash12(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published JA4 with its raw (JA4_r) form, from the JA4 page of
    /// shigshag.com/tools/ja4: `t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3`,
    /// raw `t13d1011h2_00ff,1301,1302,1303,c02b,c02c,c02f,c030,cca8,cca9_
    /// 0005,000a,000b,000d,0017,0023,002b,002d,0033_0503,0403,0807,0806,
    /// 0805,0804,0601,0501,0401`. The hello below carries exactly those
    /// values (ciphers in another order, SNI and ALPN added, GREASE mixed
    /// in), so its JA4 must be the published one.
    #[test]
    fn matches_published_ja4_from_its_raw_form() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![
                0x3a3a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                0x00ff,
            ],
            extensions: vec![
                0x5a5a, 0x0000, 0x0017, 0x0005, 0x000a, 0x000b, 0x000d, 0x0023, 0x0010, 0x002b,
                0x002d, 0x0033,
            ],
            sni: Some("example.com".to_owned()),
            alpn: vec!["h2".to_owned(), "http/1.1".to_owned()],
            alpn_first: Some((b'h', b'2')),
            supported_versions: vec![0x0a0a, 0x0304, 0x0303],
            signature_algorithms: vec![
                0x0503, 0x0403, 0x0807, 0x0806, 0x0805, 0x0804, 0x0601, 0x0501, 0x0401,
            ],
        };
        assert_eq!(ja4(&ch), "t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3");
    }

    /// A real Firefox ClientHello (bytes and Wireshark's JA4 in
    /// testdata/firefox_client_hello.hex): 17 suites, 15 extensions.
    #[test]
    fn matches_wireshark_on_a_firefox_client_hello() {
        let text = include_str!("testdata/firefox_client_hello.hex");
        let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
        let record = crate::testutil::hex(&hex);
        let ch = super::super::parser::parse_client_hello(&record[9..]).unwrap();
        assert_eq!(ch.sni.as_deref(), Some("contile.services.mozilla.com"));
        assert_eq!(ja4(&ch), "t13d1715h2_5b57614c22b0_3d5424432f57");
    }

    #[test]
    fn edge_cases_hand_computed_from_the_spec() {
        // No SNI, no ALPN, no extensions, legacy TLS 1.0, no suites.
        let ch = ClientHello {
            legacy_version: 0x0301,
            ..ClientHello::default()
        };
        assert_eq!(ja4(&ch), "t10i000000_000000000000_000000000000");
        // A non-alphanumeric ALPN byte: hex of first byte's high digit and
        // last byte's low digit (0xab, 0xcd → "ad").
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![0x002f],
            extensions: vec![0x0010],
            alpn_first: Some((0xab, 0xcd)),
            ..ClientHello::default()
        };
        let j = ja4(&ch);
        assert!(j.starts_with("t12i0101ad_"), "{j}");
        // Only ALPN: after removing it no extension is left to hash.
        assert!(j.ends_with("_000000000000"), "{j}");
        // Without signature algorithms the extension string has no "_".
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![0x002f],
            extensions: vec![0x000a],
            ..ClientHello::default()
        };
        assert_eq!(
            ja4(&ch),
            format!("t12i010100_{}_{}", hash12("002f"), hash12("000a"))
        );
    }
}
