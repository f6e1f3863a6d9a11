//! Hostile bytes can make a scan say `malformed` or `error`; they must never make it panic,
//! hang or allocate what a length field claims. Random inputs behind every magic number, and
//! every corpus file truncated and mutated, are scanned to the end.

use std::path::PathBuf;

use kaiyuan_scanner::scan_bytes;
use proptest::prelude::*;

const PREFIXES: &[&[u8]] = &[
    b"PK\x03\x04",
    b"GGUF\x03\x00\x00\x00",
    b"\x93NUMPY\x01\x00",
    b"\x80\x02",
    b"\x80\x04\x95",
    b"(",
    b"\x1f\x8b",
    b"\x89HDF\r\n\x1a\n",
    b"\x08\x07\x12",
    b"\x40\x00\x00\x00\x00\x00\x00\x00{\"",
];

const NAMES: &[&str] = &[
    "model.safetensors",
    "model.onnx",
    "saved_model.pb",
    "model.gguf",
    "x.pkl",
    "x.npy",
    "model.keras",
    "x.tar",
    "x",
    "tokenizer_config.json",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_behind_any_magic_never_panic(prefix in 0..PREFIXES.len(), name in 0..NAMES.len(), body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = PREFIXES[prefix].to_vec();
        bytes.extend(body);
        let report = scan_bytes(&bytes, NAMES[name]);
        prop_assert!(report.findings.len() <= 1000);
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/scan");
    let manifest = std::fs::read_to_string(dir.join("manifest.csv")).expect("shared corpus");
    manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|f| !f.is_empty())
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(dir.join(f)).expect("corpus file"),
            )
        })
        .collect()
}

#[test]
fn truncated_and_mutated_corpus_files_never_panic() {
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, bytes) in corpus() {
        for cut in [
            0,
            1,
            7,
            8,
            9,
            16,
            64,
            bytes.len() / 2,
            bytes.len().saturating_sub(1),
        ] {
            let _ = scan_bytes(&bytes[..cut.min(bytes.len())], &name);
        }
        for _ in 0..40 {
            let mut mutated = bytes.clone();
            if mutated.is_empty() {
                break;
            }
            for _ in 0..1 + next() % 4 {
                let at = (next() % mutated.len() as u64) as usize;
                mutated[at] = next() as u8;
            }
            let _ = scan_bytes(&mutated, &name);
        }
    }
}
