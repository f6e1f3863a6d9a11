//! `kaiyuan license audit` as a publisher runs it: the real binary on real folders.

use std::fs;
use std::process::{Command, Output};

fn audit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaiyuan"))
        .args(["license", "audit"])
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_llama_finetune_relabelled_apache_is_denied_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("Acme-8B-Instruct");
    fs::create_dir(&model).unwrap();
    fs::write(
        model.join("README.md"),
        "---\nlicense: apache-2.0\nbase_model: meta-llama/Llama-3.1-8B\n---\n# Acme\n",
    )
    .unwrap();
    fs::write(model.join("LICENSE"), spdx_text("Apache-2.0")).unwrap();
    let out = audit(&[
        model.to_str().unwrap(),
        "--json",
        "--name",
        "acme/Acme-8B-Instruct",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["declared"], "apache-2.0");
    assert_eq!(r["expression"], "Apache-2.0");
    assert_eq!(r["detected"][0]["id"], "Apache-2.0");
    assert!(r["detected"][0]["confidence"].as_f64().unwrap() > 0.99);
    let effective = r["effective"].as_str().unwrap();
    assert!(
        effective.contains("LicenseRef-scancode-llama-3.1-license-2024")
            && effective.contains("Apache-2.0"),
        "{effective}"
    );
    let codes = codes(&r);
    for code in [
        "normalized",
        "base-license-violation",
        "naming-violation",
        "missing-notice",
    ] {
        assert!(
            codes.contains(&code.to_string()),
            "{code} missing from {codes:?}"
        );
    }
    // The readable report says the same and names the fix.
    let out = audit(&[model.to_str().unwrap(), "--name", "acme/Acme-8B-Instruct"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("deny"), "{text}");
    assert!(text.contains("begin with \"Llama\""), "{text}");
}

#[test]
fn policy_purpose_and_lineage_files_drive_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    fs::create_dir(&model).unwrap();
    fs::write(
        model.join("README.md"),
        "---\nlicense: mit\nbase_model: someone/private-base\ndatasets: [acme/chats]\n---\n",
    )
    .unwrap();
    fs::write(model.join("LICENSE"), spdx_text("MIT")).unwrap();
    let lineage = dir.path().join("lineage.yaml");
    fs::write(
        &lineage,
        "models:\n  someone/private-base: cc-by-nc-4.0\ndatasets:\n  acme/chats: cc-by-4.0\n",
    )
    .unwrap();
    // Relabelling a non-commercial base MIT breaks its licence whatever the purpose.
    let out = audit(&[
        model.to_str().unwrap(),
        "--json",
        "--lineage",
        lineage.to_str().unwrap(),
        "--purpose",
        "research",
    ]);
    let r = json(&out);
    assert_eq!(r["decision"], "deny");
    assert!(codes(&r).contains(&"base-license-violation".to_string()));
    assert_eq!(r["lineage"][0]["license"], "CC-BY-NC-4.0");
    assert_eq!(r["lineage"][1]["license"], "CC-BY-4.0");

    // Without the lineage the base is unknown: flagged, never assumed permissive.
    let out = audit(&[model.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["decision"], "flag_review");

    // A policy that only allows copyleft licences denies MIT.
    let policy = dir.path().join("policy.json");
    fs::write(&policy, r#"{"allow": ["copyleft"]}"#).unwrap();
    fs::write(model.join("README.md"), "---\nlicense: mit\n---\n").unwrap();
    let out = audit(&[
        model.to_str().unwrap(),
        "--json",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let r = json(&out);
    assert_eq!(r["decision"], "deny");
    assert!(codes(&r).contains(&"policy-denied".to_string()));
    let out = audit(&[model.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["decision"], "allow");
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec![dir.path().to_str().unwrap(), "--purpose", "fun"],
        vec![dir.path().to_str().unwrap(), "--region", "Germany"],
        vec![dir.path().to_str().unwrap(), "--mau-on", "June=5"],
        vec!["/no/such/dir"],
    ] {
        let out = audit(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("kaiyuan license audit"),
            "{args:?}"
        );
    }
    let bad_policy = dir.path().join("p.json");
    fs::write(&bad_policy, r#"{"deny": ["no-such-licence-xyz"]}"#).unwrap();
    let out = audit(&[
        dir.path().to_str().unwrap(),
        "--policy",
        bad_policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-licence-xyz"));
}

fn spdx_text(id: &str) -> String {
    // The hub binary does not expose texts; the license crate's catalog does.
    kaiyuan_license::catalog::catalog().texts(id)[0]
        .replace("<year> <copyright holders>", "2025 Acme")
}
