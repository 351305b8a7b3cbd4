//! Fuzz target for the Redis session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `RedisSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::redis::{self, RedisSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, redis::probe, RedisSession::new);
});
