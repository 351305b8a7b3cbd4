//! Fuzz target for the WebSocket session: the input is a script of
//! events (`trawl_fuzz::tcp_session_script_with`, which documents it) fed
//! to one `WsSession`, which is then closed. It must never panic, whatever
//! the bytes and however they are split.
//!
//! Bit 1 of the first byte: permessage-deflate was agreed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::websocket::WsSession;

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script_with(data, None, |limits, mode, _| {
        WsSession::new(limits, "/", mode & 2 != 0)
    });
});
