//! 7z archives written by py7zr (`tests/support/sevenz/`, see its README) are opened and their
//! members scanned by content; archives that lie about a count, size, offset or CRC are
//! malformed with a finding naming the field; none makes the scanner panic.

mod support;

use std::path::PathBuf;

use kaiyuan_scanner::{Limits, Report, Verdict, scan_bytes, scan_with};
use proptest::prelude::*;
use support::{Zip, assert_rule, assert_verdict, pk};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/sevenz")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[track_caller]
fn finding<'r>(report: &'r Report, rule: &str) -> &'r kaiyuan_scanner::Finding {
    report
        .findings
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("expected rule {rule} in {report:#?}"))
}

/// Nothing about the archive itself is wrong: no malformed finding, no CRC error.
#[track_caller]
fn assert_well_formed(report: &Report) {
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity != Verdict::Malformed),
        "{report:#?}"
    );
}

#[test]
fn a_malicious_pickle_is_found_whatever_the_coder() {
    for name in ["default.7z", "lzma2.7z", "lzma.7z", "copy.7z", "bcj.7z"] {
        let report = assert_verdict(&fixture(name), name, Verdict::Malicious);
        assert_eq!(report.format, "7z");
        assert_well_formed(&report);
        let f = finding(&report, "pickle-dangerous-global");
        assert_eq!(f.location, "evil.pkl offset 2", "{name}");
        assert_eq!(f.evidence.as_deref(), Some("os.system"), "{name}");
        // The clean members beside it, and BCJ-filtered code, add nothing.
        assert_eq!(report.findings.len(), 1, "{name}: {report:#?}");
    }
}

#[test]
fn clean_members_directories_and_empty_files_are_clean() {
    let report = assert_verdict(&fixture("clean.7z"), "weights.7z", Verdict::Clean);
    assert_eq!(report.format, "7z");
    assert!(report.findings.is_empty(), "{report:#?}");
    let report = assert_verdict(&fixture("empty.7z"), "empty.7z", Verdict::Clean);
    assert!(report.findings.is_empty(), "{report:#?}");
}

#[test]
fn encrypted_archives_are_reported_not_inspected() {
    let report = assert_verdict(&fixture("aes.7z"), "aes.7z", Verdict::Suspicious);
    assert_well_formed(&report);
    let f = finding(&report, "sevenz-encrypted");
    assert_eq!(f.location, "evil.pkl");
    assert!(
        f.message
            .contains("encrypted with coder 06F10701 (AES-256)"),
        "{f:?}"
    );
    assert!(
        f.message
            .contains("cannot be inspected without the password"),
        "{f:?}"
    );

    let report = assert_verdict(
        &fixture("aes_header.7z"),
        "aes_header.7z",
        Verdict::Suspicious,
    );
    assert_well_formed(&report);
    let f = finding(&report, "sevenz-encrypted");
    assert!(
        f.message
            .contains("the header is encrypted with coder 06F10701"),
        "{f:?}"
    );
}

#[test]
fn coders_that_are_not_decoded_are_named_not_malformed() {
    for (name, coder) in [
        ("ppmd.7z", "coder 030401 (PPMd)"),
        ("deflate.7z", "coder 040108 (Deflate)"),
    ] {
        let report = assert_verdict(&fixture(name), name, Verdict::Suspicious);
        assert_well_formed(&report);
        let f = finding(&report, "sevenz-unsupported-coder");
        assert_eq!(f.location, "evil.pkl");
        assert_eq!(f.evidence.as_deref(), Some(coder));
        assert!(f.message.contains("the content was not inspected"), "{f:?}");
    }
}

#[test]
fn traversal_links_and_bombs_are_reported_like_zip_and_tar() {
    let report = assert_verdict(&fixture("traversal.7z"), "t.7z", Verdict::Malicious);
    let f = finding(&report, "archive-path-traversal");
    assert_eq!(f.evidence.as_deref(), Some("../evil"));
    assert!(f.message.contains("`..` segment"), "{f:?}");

    let report = assert_verdict(&fixture("symlink.7z"), "s.7z", Verdict::Malicious);
    let f = finding(&report, "archive-link");
    assert_eq!(f.evidence.as_deref(), Some("link -> /etc/passwd"));

    let report = assert_verdict(&fixture("bomb.7z"), "b.7z", Verdict::Malicious);
    let f = finding(&report, "archive-bomb");
    assert_eq!(f.location, "zeros.bin");
    assert!(f.message.contains("4194304 bytes from"), "{f:?}");
}

#[test]
fn nested_containers_are_scanned_within_the_depth_limit() {
    let bytes = fixture("nested.7z");
    let report = assert_verdict(&bytes, "nested.7z", Verdict::Malicious);
    let f = finding(&report, "pickle-dangerous-global");
    assert_eq!(f.location, "inner.zip!deep/inner.7z!evil.pkl offset 2");

    // 7z > zip > 7z > pickle: with two levels allowed the pickle is not reached, and says so.
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let report = scan_with(
        &mut std::io::Cursor::new(&bytes),
        bytes.len() as u64,
        "n.7z",
        &limits,
    );
    assert_eq!(report.verdict, Verdict::Suspicious, "{report:#?}");
    assert_eq!(
        finding(&report, "archive-too-deep").location,
        "inner.zip!deep/inner.7z evil.pkl"
    );
}

#[test]
fn member_counts_and_decoded_sizes_are_bounded_by_the_limits() {
    let bytes = fixture("lzma2.7z");
    let scan = |limits: &Limits| {
        scan_with(
            &mut std::io::Cursor::new(&bytes),
            bytes.len() as u64,
            "l.7z",
            limits,
        )
    };
    let report = scan(&Limits {
        archive_max_members: 2,
        ..Limits::default()
    });
    assert_eq!(report.verdict, Verdict::Suspicious, "{report:#?}");
    let f = finding(&report, "archive-too-many-members");
    assert!(f.message.contains("declares 3 files"), "{f:?}");

    // The three members are one LZMA2 block of 167 bytes.
    let report = scan(&Limits {
        max_member_in_memory: 100,
        ..Limits::default()
    });
    assert_eq!(report.verdict, Verdict::Suspicious, "{report:#?}");
    let f = finding(&report, "archive-member-too-large");
    assert!(
        f.message
            .contains("3 members (compressed together) are in a compressed block of 167 bytes"),
        "{f:?}"
    );
}

#[test]
fn a_7z_name_on_other_content_is_a_mismatch() {
    let mut zip = Zip::new();
    zip.add("a.pkl", &pk::call("builtins", "print", "hi"));
    let report = scan_bytes(&zip.finish(), "model.7z");
    assert_rule(&report, "extension-mismatch");
}

// --- Malformed archives, derived from the fixtures -------------------------------------------

/// Rewrites the start header's CRC after an edit of bytes 12..32.
fn fix_start_crc(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[12..32]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// `copy.7z` (plain header) with header byte `at` (expected to be `old`) replaced by `new`,
/// and the sizes and CRCs that cover the header rewritten: only the edited field lies.
fn copy_with_header_edit(at: usize, old: u8, new: &[u8]) -> Vec<u8> {
    let bytes = fixture("copy.7z");
    let offset = 32 + u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let mut header = bytes[offset..].to_vec();
    assert_eq!(header[0], 0x01, "copy.7z has a plain header");
    assert_eq!(header[at], old, "copy.7z's header layout changed");
    header.splice(at..at + 1, new.iter().copied());
    let mut out = bytes[..offset].to_vec();
    out[20..28].copy_from_slice(&(header.len() as u64).to_le_bytes());
    out[28..32].copy_from_slice(&crc32fast::hash(&header).to_le_bytes());
    fix_start_crc(&mut out);
    out.extend(header);
    out
}

/// 7z's number encoding of a value that needs all eight extra bytes.
fn huge(value: u64) -> Vec<u8> {
    let mut out = vec![0xff];
    out.extend(value.to_le_bytes());
    out
}

#[track_caller]
fn assert_malformed(bytes: &[u8], says: &str) {
    let report = assert_verdict(bytes, "bad.7z", Verdict::Malformed);
    let f = finding(&report, "sevenz-malformed");
    assert!(f.message.starts_with("invalid 7z archive: "), "{f:?}");
    assert!(f.message.contains(says), "expected {says:?} in {f:?}");
}

#[test]
fn truncated_archives_are_malformed() {
    let bytes = fixture("default.7z");
    assert_malformed(&bytes[..20], "ends inside the 32-byte signature header");
    // What loader_semantics.rs once asserted to be "not inspected" is now read, and cut short.
    assert_malformed(
        b"7z\xbc\xaf\x27\x1c\x00\x04rest",
        "ends inside the 32-byte signature header (12 bytes)",
    );
    for cut in [32, 100, bytes.len() - 1] {
        assert_malformed(&bytes[..cut], "lies past the end of the file");
    }
    // Every prefix: never a panic, never clean.
    for cut in 6..bytes.len() {
        assert_eq!(
            scan_bytes(&bytes[..cut], "x.7z").verdict,
            Verdict::Malformed,
            "cut {cut}"
        );
    }
}

#[test]
fn bad_crcs_are_malformed() {
    let mut bytes = fixture("default.7z");
    bytes[9] ^= 1;
    assert_malformed(&bytes, "the start header's CRC does not match");

    let mut bytes = fixture("default.7z");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_malformed(&bytes, "the next header's CRC does not match");

    // A member's data changed (copy.7z stores evil.pkl at offset 32): its CRC says so, and
    // the content is scanned all the same.
    let mut bytes = fixture("copy.7z");
    let evil = pk::call("os", "system", "echo kaiyuan-7z-marker");
    assert_eq!(&bytes[32..32 + evil.len()], evil);
    bytes[40] ^= 0x20;
    let report = scan_bytes(&bytes, "c.7z");
    let f = finding(&report, "sevenz-bad-crc");
    assert_eq!(
        (f.location.as_str(), f.severity),
        ("evil.pkl", Verdict::Malformed)
    );
}

#[test]
fn header_offsets_and_sizes_past_the_end_are_malformed() {
    let bytes = fixture("default.7z");
    let mut far = bytes.clone();
    far[12..20].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    fix_start_crc(&mut far);
    assert_malformed(&far, "the next header");
    assert_malformed(&far, "lies past the end of the file");

    let mut wraps = bytes.clone();
    wraps[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    fix_start_crc(&mut wraps);
    assert_malformed(&wraps, "lies past the end of the file");

    let mut huge_size = bytes;
    huge_size[20..28].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    fix_start_crc(&mut huge_size);
    assert_malformed(&huge_size, "lies past the end of the file");
}

#[test]
fn counts_and_sizes_that_the_archive_cannot_hold_are_malformed() {
    // copy.7z's plain header: 01 04 | 06 00 01 09 70 00 | 07 0b 01 00 01 01 00 0c 70 00 |
    // 08 0d 02 09 28 0a 01 <crc> <crc> 00 | 00 | 05 02 19 01 00 11 37 00 <names> ...
    let cases: &[(usize, u8, Vec<u8>, &str)] = &[
        (
            4,
            0x01,
            huge(1 << 40),
            "the number of pack streams is 1099511627776",
        ),
        (6, 0x70, huge(1 << 40), "pack stream 0 (1099511627776 bytes"),
        (
            10,
            0x01,
            huge(u64::MAX),
            "the number of folders is 18446744073709551615",
        ),
        (12, 0x01, vec![0x41], "a folder declares 65 coders"),
        (
            16,
            0x70,
            vec![0x71],
            "coder 00 (Copy) turns 112 bytes into a declared 113",
        ),
        (
            18,
            0x08,
            vec![0x07],
            "property 0x07 repeated or out of order",
        ),
        (
            20,
            0x02,
            huge(1 << 50),
            "a folder declares 1125899906842624 files",
        ),
        (
            22,
            0x28,
            vec![0x71],
            "the files of folder 0 add up to 113 bytes, more than its 112",
        ),
        (36, 0x02, huge(1 << 33), "the number of files is 8589934592"),
        (
            36,
            0x02,
            vec![0x03],
            "the names property does not hold exactly 3 names",
        ),
        (
            41,
            0x37,
            huge(1 << 40),
            "file property 0x11 declares 1099511627776 bytes",
        ),
    ];
    for (at, old, new, says) in cases {
        assert_malformed(&copy_with_header_edit(*at, *old, new), says);
    }
}

#[test]
fn a_well_formed_edit_keeps_copy_7z_readable() {
    // The edit helper itself changes nothing when the byte stays the same.
    let bytes = copy_with_header_edit(36, 0x02, &[0x02]);
    assert_eq!(bytes, fixture("copy.7z"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random byte changes anywhere in any fixture, and in copy.7z's plain header with its CRCs
    /// rewritten (so the parser, not the CRC check, meets them): never a panic.
    #[test]
    fn mutated_archives_never_panic(
        which in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        in_header in any::<bool>(),
    ) {
        let mut bytes = if in_header {
            copy_with_header_edit(36, 0x02, &[0x02])
        } else {
            fixture(FIXTURES[which])
        };
        if in_header {
            let offset = 32 + u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
            for (index, value) in &edits {
                let at = offset + index.index(bytes.len() - offset);
                bytes[at] = *value;
            }
            let crc = crc32fast::hash(&bytes[offset..]);
            bytes[28..32].copy_from_slice(&crc.to_le_bytes());
            fix_start_crc(&mut bytes);
        } else {
            for (index, value) in &edits {
                let at = index.index(bytes.len());
                bytes[at] = *value;
            }
        }
        let report = scan_bytes(&bytes, "m.7z");
        prop_assert!(report.findings.len() <= 1000);
    }
}

const FIXTURES: &[&str] = &[
    "default.7z",
    "lzma2.7z",
    "lzma.7z",
    "copy.7z",
    "bcj.7z",
    "aes.7z",
    "aes_header.7z",
    "ppmd.7z",
    "deflate.7z",
    "traversal.7z",
    "bomb.7z",
    "empty.7z",
    "clean.7z",
    "symlink.7z",
    "nested.7z",
];
