//! Fuzz target for the MongoDB session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `MongoSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::mongodb::{self, MongoSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, mongodb::probe, MongoSession::new);
});
