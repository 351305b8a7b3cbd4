//! Fuzz target for the whole of `trawl-packet`: arbitrary bytes are read as a
//! capture file, every packet is decoded down to its transport header, and
//! fragments go through a defragmenter whose reassembled datagrams are
//! decoded too. Nothing may panic, and memory must stay bounded by the
//! reader's buffer and the defragmenter's caps whatever lengths the input
//! claims. Run with `cargo +nightly fuzz run capture_reader` from the
//! workspace root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_packet::Defragmenter;
use trawl_packet::capfile::CaptureReader;
use trawl_packet::decode::{decode_link, decode_transport};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::new(data, "fuzz") else {
        return;
    };
    let mut defrag = Defragmenter::new();
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(_) => {
                // The reader stays finished after an error.
                assert!(matches!(reader.next_packet(), Ok(None)));
                break;
            }
        };
        assert!(packet.data.len() as u64 <= u64::from(packet.orig_len));
        let Ok(ip) = decode_link(packet.link, packet.data) else {
            continue;
        };
        assert!(ip.payload.len() as u64 <= u64::from(ip.payload_len));
        if ip.fragment.is_some() {
            if let Some(whole) = defrag.push(packet.ts_ns, &ip) {
                let len = u32::try_from(whole.payload.len()).unwrap_or(u32::MAX);
                let _ = decode_transport(whole.protocol, &whole.payload, len);
            }
        } else {
            let _ = decode_transport(ip.protocol, ip.payload, ip.payload_len);
        }
    }
    let _ = reader.offset();
    assert!(defrag.bytes_held() <= trawl_packet::defrag::DEFAULT_MAX_BYTES);
    defrag.expire_all();
    assert_eq!(defrag.in_progress(), 0);
});
