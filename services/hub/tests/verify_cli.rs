//! `kaiyuan verify` on models written by the real `onnx` package (tests/python/
//! make_verify_cases.py), through the real ONNX Runtime and the child-process limits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn cases() -> (tempfile::TempDir, PathBuf) {
    let python = std::env::var("KAIYUAN_TEST_PYTHON")
        .expect("KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh");
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/make_verify_cases.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.path().to_path_buf();
    (dir, root)
}

fn verify(args: &[&str]) -> (Output, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_kaiyuan"))
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    let reports = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, reports)
}

fn one(args: &[&str]) -> (i32, Value) {
    let (out, mut reports) = verify(args);
    assert_eq!(reports.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), reports.remove(0))
}

/// `kaiyuan verify --json <extra args> <case>` on a fresh set of cases: its exit code and report.
fn verify_case(extra: &[&str], case: &str) -> (i32, Value) {
    let (_keep, root) = cases();
    let path = root.join(case).to_string_lossy().into_owned();
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    args.push(&path);
    one(&args)
}

#[test]
fn a_passing_model_reports_its_description_vectors_and_timings() {
    let (code, ok) = verify_case(&[], "ok");
    assert_eq!(code, 0, "{ok}");
    assert_eq!(ok["status"], "passed");
    assert_eq!(ok["provider"], "cpu");
    assert!(
        ok["onnxruntime_version"]
            .as_str()
            .unwrap()
            .starts_with("1."),
        "{ok}"
    );
    assert_eq!(ok["inputs"][0]["name"], "X");
    assert_eq!(ok["inputs"][0]["shape"], serde_json::json!([-1, 4]));
    assert_eq!(ok["inputs"][0]["dimension_names"][0], "batch");
    assert_eq!(ok["opsets"][0]["version"], 17);
    assert_eq!(ok["producer"], "kaiyuan-tests");
    assert_eq!(
        ok["test_vectors"][0]["name"],
        "model.test_vectors.safetensors"
    );
    assert_eq!(ok["test_vectors"][0]["outputs"][0]["max_abs_error"], 0.0);
    assert_eq!(ok["deterministic"], true);
    assert!(ok["timings"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(ok["timings"]["p95_ms"].as_f64().unwrap() >= ok["timings"]["p50_ms"].as_f64().unwrap());
    assert!(ok["timings"]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
}

#[test]
fn wrong_outputs_fail_at_the_first_mismatch_unless_the_card_allows_them() {
    let (_keep, root) = cases();
    let p = root.join("ok_wrong").to_string_lossy().into_owned();

    let (code, wrong) = one(&["--json", &p]);
    assert_eq!(code, 1);
    assert_eq!(wrong["status"], "failed");
    let out = &wrong["test_vectors"][0]["outputs"][0];
    assert_eq!(out["name"], "Y");
    assert_eq!(out["max_abs_error"], 0.5);
    assert_eq!(out["first_mismatch_index"], serde_json::json!([1, 1]));
    assert_eq!(out["mismatched"], 1);

    // A tolerance from the card lets the same outputs pass.
    std::fs::write(
        root.join("ok_wrong/README.md"),
        "---\nverification:\n  tolerance:\n    float32: {rtol: 0.0, atol: 0.6}\n---\n",
    )
    .unwrap();
    let (code, loose) = one(&["--json", &p]);
    assert_eq!(
        (code, loose["status"].as_str()),
        (0, Some("passed")),
        "{loose}"
    );
}

#[test]
fn string_and_bool_inputs_get_a_smoke_run() {
    let (code, types) = verify_case(&["--dim", "sequence=5"], "types");
    assert_eq!(code, 0, "{types}");
    assert_eq!(types["inputs"][0]["element_type"], "string");
    assert_eq!(types["inputs"][1]["element_type"], "bool");
    assert_eq!(types["smoke_run"], true);
}

#[test]
fn external_data_beside_the_model_is_listed_and_outside_its_folder_fails() {
    let (code, ext) = verify_case(&[], "external");
    assert_eq!(code, 0, "{ext}");
    assert_eq!(ext["external_data"], serde_json::json!(["weights.bin"]));
    assert_eq!(ext["files"][1]["path"], "weights.bin");
    assert_eq!(ext["files"][1]["bytes"], 16);

    let (code, escape) = verify_case(&[], "escape");
    assert_eq!(code, 1);
    assert!(
        escape["reason"]
            .as_str()
            .unwrap()
            .contains("leaves the model's folder"),
        "{escape}"
    );
}

#[test]
fn nondeterministic_and_uncomparable_outputs_are_reported() {
    let (code, nondet) = verify_case(&[], "nondet");
    assert_eq!(
        (code, nondet["deterministic"].as_bool()),
        (0, Some(false)),
        "{nondet}"
    );

    // A classifier's sequence-of-maps output runs; it is named as not compared.
    let (code, zipmap) = verify_case(&[], "zipmap");
    assert_eq!(
        (code, zipmap["status"].as_str()),
        (0, Some("passed")),
        "{zipmap}"
    );
    assert!(
        zipmap["determinism_note"].as_str().unwrap().contains("`Z`"),
        "{zipmap}"
    );
}

#[test]
fn a_file_that_is_not_onnx_fails() {
    let (code, garbage) = verify_case(&[], "garbage");
    assert_eq!(code, 1);
    assert!(
        garbage["reason"]
            .as_str()
            .unwrap()
            .contains("not a readable ONNX model"),
        "{garbage}"
    );
}

#[test]
fn a_hanging_or_memory_hungry_model_is_stopped_and_reported() {
    let (_keep, root) = cases();
    let started = std::time::Instant::now();
    let (code, hang) = one(&[
        "--json",
        "--timeout-secs",
        "2",
        &root.join("hang").to_string_lossy(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(hang["status"], "failed");
    let reason = hang["reason"].as_str().unwrap();
    assert!(
        reason.contains("time limit") && reason.contains("stopped"),
        "{reason}"
    );
    assert!(started.elapsed().as_secs() < 20);

    let (code, memory) = one(&[
        "--json",
        "--memory-mib",
        "512",
        &root.join("memory").to_string_lossy(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(memory["status"], "failed");
    assert!(
        memory["reason"]
            .as_str()
            .unwrap()
            .contains("ran out of memory"),
        "{memory}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (out, _) = verify(&["/nonexistent/model/folder"]);
    assert_eq!(out.status.code(), Some(2));
    let empty = tempfile::tempdir().unwrap();
    let (out, _) = verify(&[&empty.path().to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no .onnx files"));
    let (out, _) = verify(&["--ep", "tpu", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let (out, _) = verify(&[
        "--onnxruntime",
        "/nonexistent/libonnxruntime.so",
        &empty.path().to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn auto_falls_back_to_the_cpu_and_cuda_says_why_without_a_gpu_build() {
    let (_keep, root) = cases();
    let p = root.join("ok").to_string_lossy().into_owned();
    let (_, auto) = one(&["--json", "--ep", "auto", &p]);
    // On a machine with the GPU build and a GPU this runs on CUDA; otherwise it falls back.
    if auto["provider"] == "cpu" {
        assert!(auto["provider_fallback"].is_string(), "{auto}");
        let (code, cuda) = one(&["--json", "--ep", "cuda", &p]);
        assert_eq!(code, 1);
        assert_eq!(cuda["status"], "error");
        assert!(cuda["reason"].as_str().unwrap().contains("CUDA"), "{cuda}");
    } else {
        assert_eq!(auto["provider"], "cuda");
    }
    assert_eq!(auto["status"], "passed");
    // A model no runtime loads is the model's failure on any provider, not a provider error.
    let rejected = root.join("rejected").to_string_lossy().into_owned();
    for ep in ["cpu", "auto", "cuda"] {
        let (code, r) = one(&["--json", "--ep", ep, &rejected]);
        assert_eq!(
            (code, r["status"].as_str()),
            (1, Some("failed")),
            "--ep {ep}: {r}"
        );
        assert!(
            r["reason"].as_str().unwrap().contains("NotAnOperator"),
            "{r}"
        );
    }
}
