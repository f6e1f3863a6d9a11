//! Sample-inference verification through the hub: jobs per commit, the scan gate, the API and
//! its permissions, GPU-only jobs, a worker that dies mid-job, and the ONNX conformance corpus
//! compared with ONNX Runtime's own Python API.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use kaiyuan_tests::{Backend, expect_error, expect_status, run_python, spawn_app, spawn_app_with};

/// Every file under `dir`, as (path relative to `dir`, bytes).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

async fn publish(app: &kaiyuan_tests::TestApp, token: &str, repo: &str, dir: &Path) {
    let files = files_under(dir);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    app.commit_files(token, repo, &refs).await;
}

fn by_path(status: &Value) -> BTreeMap<String, Value> {
    status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f.clone()))
        .collect()
}

fn cases() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run_python("make_verify_cases.py", &[dir.path().as_os_str()]);
    dir
}

#[sqlx::test(migrations = "../migrations")]
async fn commits_with_onnx_models_are_verified_and_reported(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = cases();
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "adder", "private").await;
    let ok = std::fs::read(cases.path().join("ok/model.onnx")).unwrap();
    let ok_vectors = std::fs::read(cases.path().join("ok/model.test_vectors.safetensors")).unwrap();
    let wrong_vectors =
        std::fs::read(cases.path().join("ok_wrong/model.test_vectors.safetensors")).unwrap();
    app.commit_files(
        &alice,
        "alice/adder",
        &[
            ("model.onnx", &ok),
            ("model.test_vectors.safetensors", &ok_vectors),
            ("wrong/model.onnx", &ok),
            ("wrong/model.test_vectors.safetensors", &wrong_vectors),
            (
                "README.md",
                b"---\nlicense: mit\nverification:\n  runs: 3\n---\n# Adder\n",
            ),
        ],
    )
    .await;
    let path = "/api/v1/repos/alice/adder/verification";
    let pending = expect_status(app.get(path, Some(&alice)).await, StatusCode::OK).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(by_path(&pending)["wrong/model.onnx"]["status"], "pending");

    app.run_jobs().await;
    let done = expect_status(app.get(path, Some(&alice)).await, StatusCode::OK).await;
    assert_eq!(done["status"], "failed", "{done}");
    let files = by_path(&done);
    let good = &files["model.onnx"]["report"];
    assert_eq!(files["model.onnx"]["status"], "passed");
    assert_eq!(good["provider"], "cpu");
    assert_eq!(good["timings"]["runs"], 3, "the card's runs apply");
    assert_eq!(good["test_vectors"][0]["passed"], true);
    let bad = &files["wrong/model.onnx"]["report"];
    assert_eq!(files["wrong/model.onnx"]["status"], "failed");
    assert_eq!(bad["test_vectors"][0]["outputs"][0]["max_abs_error"], 0.5);
    assert_eq!(
        bad["test_vectors"][0]["outputs"][0]["first_mismatch_index"],
        json!([1, 1])
    );
    assert!(done["finished_at"].is_string());

    // Same permissions as the files: private stays invisible, re-runs need write access.
    expect_error(
        app.get(path, Some(&bob)).await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;
    expect_error(
        app.get(path, None).await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;
    let res = app.post_json(path, Some(&bob), &json!({})).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    expect_error(
        app.post_json(path, Some(&alice), &json!({"ep": "tpu"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-ep",
    )
    .await;

    // A GPU request waits for a GPU worker; this test's worker is a CPU one.
    let queued = expect_status(
        app.post_json(path, Some(&alice), &json!({"ep": "cuda"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(queued["status"], "pending");
    app.run_jobs().await;
    let waiting = expect_status(app.get(path, Some(&alice)).await, StatusCode::OK).await;
    assert_eq!(waiting["status"], "pending");
    let requires: Option<String> = sqlx::query_scalar(
        "SELECT requires FROM jobs WHERE kind = 'verify-commit' AND state = 'queued'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(requires.as_deref(), Some("gpu"));
    sqlx::query("DELETE FROM jobs WHERE kind = 'verify-commit' AND state = 'queued'")
        .execute(&app.db)
        .await
        .unwrap();

    // Re-run on demand on the CPU.
    expect_status(
        app.post_json(path, Some(&alice), &json!({"ep": "cpu"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.run_jobs().await;
    let again = expect_status(app.get(path, Some(&alice)).await, StatusCode::OK).await;
    assert_eq!(again["status"], "failed");
    assert_eq!(again["requested_ep"], "cpu");
    assert_eq!(again["runs_started"], 2);

    // A revision without models has nothing to verify.
    app.create_repo(&alice, "alice", "text", "public").await;
    app.commit_files(&alice, "alice/text", &[("notes.txt", b"hello")])
        .await;
    expect_error(
        app.get("/api/v1/repos/alice/text/verification", Some(&alice))
            .await,
        StatusCode::NOT_FOUND,
        "verification-not-found",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/repos/alice/text/verification",
            Some(&alice),
            &json!({}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no-onnx-models",
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn only_files_whose_scan_passed_are_run(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = cases();
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let model = std::fs::read(cases.path().join("ok/model.onnx")).unwrap();
    // A "test vector" that is a pickle calling os.system: quarantined by the scan.
    let evil = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
    app.commit_files(
        &alice,
        "alice/m",
        &[
            ("model.onnx", &model),
            ("test_data_set_0/input_0.pb", evil),
            ("test_data_set_0/output_0.pb", evil),
        ],
    )
    .await;
    app.run_jobs().await;
    let status = expect_status(
        app.get("/api/v1/repos/alice/m/verification", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "error", "{status}");
    let report = &status["files"][0]["report"];
    assert!(
        report["reason"].as_str().unwrap().contains("quarantined"),
        "{report}"
    );
    assert!(report["provider"].is_null(), "the model never ran");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_worker_that_dies_mid_job_loses_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = cases();
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    publish(&app, &alice, "alice/m", &cases.path().join("ok")).await;
    // A worker claimed the job, started the run and died: its lease has run out.
    sqlx::query("UPDATE jobs SET state = 'running', attempts = 1, locked_by = 'dead-worker', lease_until = now() - interval '1 second' WHERE kind = 'verify-commit'")
        .execute(&app.db)
        .await
        .unwrap();
    let (repo_id, commit): (i64, String) =
        sqlx::query_as("SELECT repository_id, commit_id FROM model_verifications")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    kaiyuan_hub::db::verifications::mark_running(&mut conn, repo_id, &commit, "dead-worker")
        .await
        .unwrap();
    drop(conn);
    let stuck = expect_status(
        app.get("/api/v1/repos/alice/m/verification", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        stuck["files"][0]["status"], "running",
        "per file too: {stuck}"
    );
    assert_eq!(stuck["status"], "running");
    app.run_jobs().await;
    let done = expect_status(
        app.get("/api/v1/repos/alice/m/verification", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["runs_started"], 2);
    assert_ne!(done["worker"], "dead-worker");
    let (rows, jobs): (i64, i64) = sqlx::query_as("SELECT (SELECT count(*) FROM model_verifications), (SELECT count(*) FROM jobs WHERE kind = 'verify-commit' AND state = 'succeeded')")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!((rows, jobs), (1, 1), "one job, one stored result");
    // The result is in the transparency log once.
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM log_entries WHERE convert_from(body, 'UTF8')::jsonb->>'kind' = 'verification'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(logged, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_onnx_conformance_corpus_verifies_as_onnxruntime_python_does(pool: PgPool) {
    let app = spawn_app(pool).await;
    let corpus = tempfile::tempdir().unwrap();
    run_python(
        "onnx_conformance.py",
        &["prepare".as_ref(), corpus.path().as_os_str()],
    );
    let expected: BTreeMap<String, Value> = serde_json::from_str(&run_python(
        "onnx_conformance.py",
        &["check".as_ref(), corpus.path().as_os_str()],
    ))
    .unwrap();
    let alice = app.create_user("alice").await;
    let suites = [
        "simple",
        "pytorch-converted",
        "pytorch-operator",
        "light",
        "perturbed",
    ];
    for suite in suites {
        app.create_repo(&alice, "alice", suite, "public").await;
        publish(
            &app,
            &alice,
            &format!("alice/{suite}"),
            &corpus.path().join(suite),
        )
        .await;
    }
    app.run_jobs().await;
    let mut actual = BTreeMap::new();
    for suite in suites {
        let status = expect_status(
            app.get(&format!("/api/v1/repos/alice/{suite}/verification"), None)
                .await,
            StatusCode::OK,
        )
        .await;
        for (path, file) in by_path(&status) {
            let case = format!("{suite}/{}", path.trim_end_matches("/model.onnx"));
            actual.insert(case, file);
        }
    }
    assert_eq!(actual.len(), expected.len(), "every case was verified");
    let (mut passed, mut python_passed, mut perturbed_failed, mut perturbed) = (0, 0, 0, 0);
    for (case, want) in &expected {
        let got = &actual[case];
        let python_ok = want["passed"].as_bool().unwrap();
        let ours_ok = got["status"] == "passed";
        if case.starts_with("perturbed/") {
            perturbed += 1;
            assert!(!ours_ok, "{case}: a perturbed reference output passed");
            let original = case.trim_start_matches("perturbed/").replacen("__", "/", 1);
            if expected[&original]["passed"] == true {
                let reason = got["report"]["reason"].as_str().unwrap();
                assert!(reason.contains("test vectors"), "{case}: {got}");
            }
            perturbed_failed += 1;
        } else {
            python_passed += python_ok as u32;
            passed += ours_ok as u32;
            assert_eq!(
                ours_ok, python_ok,
                "{case}: hub {} but onnxruntime Python {}: {got}",
                got["status"], want
            );
        }
    }
    eprintln!(
        "conformance: {passed} passed of {} ({python_passed} pass with onnxruntime Python); {perturbed_failed}/{perturbed} perturbed copies fail",
        expected.len() - perturbed
    );
    assert!(python_passed >= 100, "the corpus should be mostly runnable");
}

#[sqlx::test(migrations = "../migrations")]
async fn verification_waits_for_scans_without_spending_attempts_but_not_forever(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = cases();
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    publish(&app, &alice, "alice/m", &cases.path().join("ok")).await;
    // The scans never run (their jobs are gone): verification waits for them.
    sqlx::query("DELETE FROM jobs WHERE kind = 'scan-blob'")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_after = now() WHERE kind = 'verify-commit'")
        .execute(&app.db)
        .await
        .unwrap();
    app.run_jobs().await;
    let (state, attempts, error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT state, attempts, last_error FROM jobs WHERE kind = 'verify-commit'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("queued", 0),
        "deferred without spending an attempt"
    );
    assert!(error.unwrap().contains("waiting for the scan"));
    let status = expect_status(
        app.get("/api/v1/repos/alice/m/verification", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "pending");
    // An hour later it stops waiting and says why.
    sqlx::query("UPDATE model_verifications SET queued_at = now() - interval '2 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_after = now() WHERE kind = 'verify-commit'")
        .execute(&app.db)
        .await
        .unwrap();
    app.run_jobs().await;
    let status = expect_status(
        app.get("/api/v1/repos/alice/m/verification", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "error", "{status}");
    let reason = status["files"][0]["report"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("has not finished within 60 minutes"),
        "{reason}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn symbolic_dimensions_come_from_the_card_then_the_hub_configuration(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::Local, |s| {
        s.verification.dims.insert("sequence".into(), 5);
    })
    .await;
    let cases = cases();
    let alice = app.create_user("alice").await;
    let model = std::fs::read(cases.path().join("types/model.onnx")).unwrap();
    app.create_repo(&alice, "alice", "hub-dims", "public").await;
    app.commit_files(&alice, "alice/hub-dims", &[("model.onnx", &model)])
        .await;
    app.create_repo(&alice, "alice", "card-dims", "public")
        .await;
    let card = b"---\nverification:\n  dims: {sequence: 3, batch: 2}\n---\n";
    app.commit_files(
        &alice,
        "alice/card-dims",
        &[("model.onnx", &model), ("README.md", card)],
    )
    .await;
    app.run_jobs().await;
    for (repo, ids) in [("hub-dims", json!([1, 5])), ("card-dims", json!([2, 3]))] {
        let status = expect_status(
            app.get(&format!("/api/v1/repos/alice/{repo}/verification"), None)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(status["status"], "passed", "{status}");
        let shapes = &status["files"][0]["report"]["smoke_shapes"];
        let fed = shapes
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s[0] == "ids")
            .unwrap();
        assert_eq!(fed[1], ids, "{repo}: {shapes}");
    }
}
