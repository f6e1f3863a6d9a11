//! The scan corpus (`tests/corpus/scan/manifest.csv`, the project's scan corpus): every file
//! gets its expected verdict.

use std::path::PathBuf;

use kaiyuan_scanner::{Verdict, scan};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/scan")
}

#[test]
fn every_corpus_file_gets_its_expected_verdict() {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.csv"))
        .expect("the scan corpus is in tests/corpus/scan");
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut fields = line.splitn(4, ',');
        let (file, _format, expected) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        let expected = Verdict::parse(expected)
            .unwrap_or_else(|| panic!("unknown verdict in manifest: {line}"));
        let path = dir.join(file);
        let mut f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let report = scan(&mut f, len, file);
        checked += 1;
        if report.verdict != expected {
            failures.push(format!(
                "{file}: expected {expected:?}, got {:?} ({}) {:#?}",
                report.verdict, report.format, report.findings
            ));
        }
    }
    assert!(checked >= 60, "the manifest lists the corpus");
    assert!(
        failures.is_empty(),
        "{} of {checked} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
