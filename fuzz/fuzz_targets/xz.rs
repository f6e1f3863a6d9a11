#![no_main]
//! Fuzzes the scanner with `x.xz` as the path hint and the format's magic number in front,
//! so that every input reaches the bounded xz decoder: it must never panic, hang or exhaust
//! memory.
use libfuzzer_sys::fuzz_target;

const MAGIC: &[u8] = b"\xfd7zXZ\x00";

fuzz_target!(|data: &[u8]| {
    let mut input = MAGIC.to_vec();
    input.extend_from_slice(data);
    let _ = kaiyuan_scanner::scan_bytes(&input, "x.xz");
});
