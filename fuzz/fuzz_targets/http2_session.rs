//! Fuzz target for the HTTP/2 session (and the gRPC reading inside it):
//! the input is a script of events (`trawl_fuzz::tcp_session_script_with`,
//! which documents it) fed to one `Http2Session`, which is then closed. It
//! must never panic, whatever the bytes and however they are split. Also
//! runs the content probe.
//!
//! Bit 1 of the first byte: the client's bytes start with the connection
//! preface, so that the fuzzer starts from known tables as often as
//! mid-stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_dissect::protocols::http2::{self, Http2Session, frame};
use trawl_dissect::{Direction, Session};

fuzz_target!(|data: &[u8]| {
    trawl_fuzz::tcp_session_script_with(data, Some(http2::probe), |limits, mode, out| {
        let mut session = Http2Session::new(limits);
        if mode & 2 != 0 {
            session.data(Direction::ToServer, 0, frame::PREFACE, out);
        }
        session
    });
});
