//! Fuzz target for the AMQP 0-9-1 session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `AmqpSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::amqp::{self, AmqpSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, amqp::probe, AmqpSession::new);
});
