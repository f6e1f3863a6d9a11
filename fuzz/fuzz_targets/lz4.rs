#![no_main]
//! Fuzzes the scanner with `x.lz4` as the path hint and the format's magic number in front,
//! so that every input reaches the bounded lz4 decoder: it must never panic, hang or exhaust
//! memory.
use libfuzzer_sys::fuzz_target;

const MAGIC: &[u8] = b"\x04\x22\x4d\x18";

fuzz_target!(|data: &[u8]| {
    let mut input = MAGIC.to_vec();
    input.extend_from_slice(data);
    let _ = kaiyuan_scanner::scan_bytes(&input, "x.lz4");
});
