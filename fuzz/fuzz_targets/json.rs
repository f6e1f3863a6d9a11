#![no_main]
//! Fuzzes the scanner with `tokenizer_config.json` as the path hint: it must never panic or hang.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kaiyuan_scanner::scan_bytes(data, "tokenizer_config.json");
});
