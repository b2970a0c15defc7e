//! Any bytes as a capture file (pcap or pcapng, damaged or not): reading, decoding and
//! counting never panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::run(data, data.len() % 2 == 1, data.len() % 3 == 0);
});
