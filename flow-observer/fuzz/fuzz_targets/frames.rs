//! Any bytes as the frames of a valid pcap file of any link type, so that the link-layer,
//! IP, transport and DNS parsers get the fuzzer's attention rather than the file format.
//!
//! Input: link type selector (2 bytes: a supported type by index when the first is below
//! 0x80, else the raw value), options (1 byte: nanosecond stamps, per connection, a short idle
//! timeout, time steps), then frames, each a little-endian 16-bit length and that many bytes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

const LINK_TYPES: [u16; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 239, 276];

fuzz_target!(|data: &[u8]| {
    let [a, b, options, rest @ ..] = data else {
        return;
    };
    let linktype = if *a < 0x80 {
        LINK_TYPES[usize::from(*b) % LINK_TYPES.len()]
    } else {
        u16::from_be_bytes([*a, *b])
    };
    let nanos = options & 1 != 0;
    let mut file = Vec::with_capacity(data.len() + 64);
    file.extend(if nanos { 0xa1b2_3c4du32 } else { 0xa1b2_c3d4 }.to_le_bytes());
    file.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
    file.extend(u32::from(linktype).to_le_bytes());
    let mut rest = rest;
    let mut t: u64 = 1_700_000_000_000_000_000;
    let step = u64::from(options >> 4) * 100_000_000;
    while let [l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (frame, after) = tail.split_at(len);
        t += step;
        let (secs, sub) = (t / 1_000_000_000, t % 1_000_000_000);
        let sub = if nanos { sub } else { sub / 1_000 };
        file.extend((secs as u32).to_le_bytes());
        file.extend((sub as u32).to_le_bytes());
        file.extend((len as u32).to_le_bytes());
        file.extend((len as u32).to_le_bytes());
        file.extend(frame);
        rest = after;
    }
    common::run(&file, options & 2 != 0, options & 4 != 0);
});
