//! `kaiyuan scan` as publishers and CI gates run it: the real binary, real files, exit codes.

use std::process::Command;

fn kaiyuan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kaiyuan"))
}

fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&[0u8; 4]);
    out
}

#[test]
fn exit_codes_and_json_reports() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("model.safetensors");
    std::fs::write(&clean, safetensors()).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let evil = dir.path().join("sub/evil.pkl");
    std::fs::write(&evil, b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.").unwrap();

    let out = kaiyuan().arg("scan").arg(&clean).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("clean"));

    // A directory is walked recursively; one JSON object per file.
    let out = kaiyuan()
        .args(["scan", "--json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let reports: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    let evil_report = reports
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("evil.pkl"))
        .unwrap();
    assert_eq!(evil_report["verdict"], "malicious");
    assert_eq!(evil_report["format"], "pickle");
    assert_eq!(evil_report["findings"][0]["evidence"], "posix.system");
    let clean_report = reports
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("model.safetensors"))
        .unwrap();
    assert_eq!(clean_report["verdict"], "clean");
    assert_eq!(clean_report["findings"], serde_json::json!([]));

    // The readable report names the finding and its evidence.
    let out = kaiyuan().arg("scan").arg(&evil).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("MALICIOUS") && text.contains("[posix.system]"),
        "{text}"
    );

    // I/O and usage errors exit 2.
    let out = kaiyuan()
        .args(["scan", "/nonexistent/model.bin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.bin"));
    let out = kaiyuan().arg("scan").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no path is a usage error");
}
