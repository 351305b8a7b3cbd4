//! Fuzz target for the MySQL session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `MysqlSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::mysql::{self, MysqlSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, mysql::probe, MysqlSession::new);
});
