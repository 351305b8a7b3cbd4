//! Catalogue slice of TLS handshake calls: one call per TLS connection,
//! request = ClientHello, response = ServerHello, filled by
//! `trawl_dissect::protocols::tls`. Kubeshark's KFL2 names where it has
//! them (`tls`, `tls_summary`, `tls_info`, sizes); the rest follow its
//! `tls_` pattern. The connection's byte counts after the handshake are
//! the flow's (`conn_id` joins them).

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("tls", &[], T::Bool, "tls", "true",
        "True for TLS handshake calls (protocol == \"tls\"): one per TLS connection, ClientHello as request, ServerHello as response."),
    f("tls_summary", &[], T::String, "tls_summary", r#""TLS 1.3 api.example.com h2""#,
        "Version, server name and application protocol in one line: the negotiated version and ALPN where the ServerHello shows them, else the client's highest version and first ALPN offer."),
    f("tls_info", &[], T::String, "tls_info", r#""TLS 1.3, TLS_AES_128_GCM_SHA256""#,
        "Negotiated version and cipher suite name."),
    f("tls_sni", &[], T::String, "tls_sni", r#""api.example.com""#,
        "Server name the client asked for (server_name extension); \"\" when absent."),
    f("tls_alpn", &[], T::StringList, "tls_alpn", r#""h2" in tls_alpn"#,
        "Application protocols the client offered (ALPN), in its order."),
    f("tls_alpn_selected", &[], T::String, "tls_alpn_selected", r#""h2""#,
        "Application protocol the server chose, from a TLS 1.2 (or older) ServerHello; \"\" when none, and for TLS 1.3, which sends the choice encrypted."),
    f("tls_version", &[], T::String, "tls_version", r#""TLS 1.3""#,
        "Negotiated version (ServerHello supported_versions, else its legacy version); the client's highest offer when there is no ServerHello."),
    f("tls_client_versions", &[], T::StringList, "tls_client_versions", r#""TLS 1.3" in tls_client_versions"#,
        "Versions the client offered (supported_versions, GREASE removed), else its legacy version."),
    f("tls_cipher", &[], T::String, "tls_cipher", r#""TLS_AES_128_GCM_SHA256""#,
        "Cipher suite the server chose (IANA name, or 0x-hex when unknown)."),
    f("tls_ja4", &[], T::String, "tls_ja4", r#""t13d1516h2_8daaf6152771_02713d6af862""#,
        "JA4 fingerprint of the ClientHello (FoxIO JA4 spec)."),
    f("tls_alert", &[], T::String, "tls_alert", r#""handshake_failure""#,
        "First alert seen during the handshake (its description); \"\" when none."),
    f("tls_request_size", &[], T::Int, "tls_request_size", "517",
        "Bytes of the ClientHello handshake message; 0 when absent."),
    f("tls_response_size", &[], T::Int, "tls_response_size", "122",
        "Bytes of the ServerHello handshake message; 0 when absent."),
    f("tls_total_size", &[], T::Int, "tls_total_size", "639",
        "tls_request_size + tls_response_size."),
];
