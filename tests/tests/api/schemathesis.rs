//! Schemathesis (from PyPI) against the hub's own OpenAPI document, on loopback: a few examples
//! per operation, each answer checked for server errors and against the document (status codes,
//! content types, headers and body schemas). Three passes: with a write token (every operation
//! but token revocation, which would end the run's authentication early), anonymously, and the
//! revocation last.

use std::path::PathBuf;

use kaiyuan_tests::spawn_app;
use sqlx::PgPool;

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";

fn schemathesis() -> PathBuf {
    let python = std::env::var("KAIYUAN_TEST_PYTHON")
        .expect("KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh");
    PathBuf::from(python).with_file_name("st")
}

/// Runs one pass; panics with Schemathesis's report when it finds anything. Returns how many
/// test cases it generated.
async fn pass(base: &str, token: Option<&str>, scope: &[&str], seed: u32) -> u64 {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(schemathesis());
    cmd.current_dir(work.path())
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--max-examples", "5", "--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--request-timeout",
            "20",
            "--max-failures",
            "50",
            "--no-color",
        ])
        .args(["--seed", &seed.to_string()])
        .args(scope);
    if let Some(token) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.output().await.expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Schemathesis found problems ({:?}):\n{report}\n{}",
        token.map(|_| "with a token"),
        String::from_utf8_lossy(&out.stderr)
    );
    // "N generated, N passed" in its summary.
    report
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in:\n{report}"))
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn schemathesis_finds_no_server_error_and_no_departure_from_the_document(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.create_repo(&alice, "alice", "p", "private").await;
    app.commit_files(
        &alice,
        "alice/m",
        &[("README.md", b"---\nlicense: mit\n---\n# m\n")],
    )
    .await;
    let mut cases = 0;
    cases += pass(
        &app.base,
        Some(&alice),
        &["--exclude-path", "/api/v1/tokens/{id}"],
        1,
    )
    .await;
    cases += pass(&app.base, None, &[], 2).await;
    cases += pass(
        &app.base,
        Some(&alice),
        &["--include-path", "/api/v1/tokens/{id}"],
        3,
    )
    .await;
    println!("schemathesis: {cases} test cases, no failure");
    assert!(cases > 1000, "only {cases} test cases");
}
