//! Fuzz target for the Kafka session: the shared event script
//! (`trawl_fuzz::tcp_session_script`, which documents it) fed to one
//! `KafkaSession`, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::kafka::{self, KafkaSession};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script(data, kafka::probe, KafkaSession::new);
});
