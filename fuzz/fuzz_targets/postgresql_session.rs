//! Fuzz target for the PostgreSQL session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `PostgresSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::postgresql::{self, PostgresSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, postgresql::probe, PostgresSession::new);
});
