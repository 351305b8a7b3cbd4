//! Fuzz target for the HTTP/1 session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `Http1Session`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::http1::{self, Http1Session};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, http1::probe, Http1Session::new);
});
