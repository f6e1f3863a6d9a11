//! Files written by the real libraries that produce them in the wild (numpy, joblib,
//! safetensors, onnx, gguf, h5py from PyPI; `tests/python/make_real_models.py`), plus hostile
//! twins: no false positive on the clean ones, every hostile one caught.

use std::path::PathBuf;
use std::process::Command;

use kaiyuan_scanner::{Verdict, scan};

#[test]
fn files_from_real_writers_get_their_expected_verdicts() {
    let python = std::env::var("KAIYUAN_TEST_PYTHON").expect(
        "KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh, which installs tests/python/requirements.txt",
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("kaiyuan-real-models-{}", std::process::id()));
    let generated = Command::new(python)
        .arg(root.join("tests/python/make_real_models.py"))
        .arg(&out)
        .output()
        .expect("python runs");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let listing = String::from_utf8(generated.stdout).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in listing.lines() {
        let (expected, file) = line.split_once(' ').unwrap();
        let expected = Verdict::parse(expected).unwrap();
        let path = out.join(file);
        let mut f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let report = scan(&mut f, len, file);
        checked += 1;
        if report.verdict != expected {
            failures.push(format!(
                "{file}: expected {expected:?}, got {:?} ({}): {:#?}",
                report.verdict, report.format, report.findings
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(checked >= 15);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
