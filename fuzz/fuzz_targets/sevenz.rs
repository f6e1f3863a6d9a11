#![no_main]
//! Fuzzes the scanner with `x.7z` as the path hint. The input becomes the body of a 7z archive
//! whose signature header is written in front of it with correct CRCs (the first byte, times
//! four, is how many of the last bytes are the next header), so that inputs reach the header
//! parser and the decoders rather than stop at a CRC: it must never panic, hang or exhaust
//! memory.
use libfuzzer_sys::fuzz_target;

/// CRC-32 (IEEE), bit by bit: the fuzz crate has no CRC dependency.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let header_len = (usize::from(split) * 4).min(body.len());
    let offset = body.len() - header_len;
    let mut start = Vec::with_capacity(20);
    start.extend((offset as u64).to_le_bytes());
    start.extend((header_len as u64).to_le_bytes());
    start.extend(crc32(&body[offset..]).to_le_bytes());
    let mut archive = b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec();
    archive.extend(crc32(&start).to_le_bytes());
    archive.extend(start);
    archive.extend_from_slice(body);
    let _ = kaiyuan_scanner::scan_bytes(&archive, "x.7z");
});
