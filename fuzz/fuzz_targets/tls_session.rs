//! Fuzz target for the TLS session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `TlsSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::tls::{self, TlsSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, tls::probe, TlsSession::new);
});
