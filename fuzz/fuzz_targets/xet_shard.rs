#![no_main]
//! Parses arbitrary bytes as an upload shard: it must never panic, hang or allocate for counts
//! the body cannot hold.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kaiyuan_xet::parse_upload(data);
});
