//! Upload scanning in the hub: verdicts per file, quarantine of malicious files on every route
//! that serves bytes, warnings for suspicious ones, admin release, rescans.

use base64::Engine;
use kaiyuan_tests::{Backend, TestApp, expect_error, expect_status, sha256_hex, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

/// `posix.system("id")` as a protocol-2 pickle.
const MALICIOUS_PICKLE: &[u8] =
    b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
/// An instance of an unresolvable `__main__.Net`: cannot be vetted.
const SUSPICIOUS_PICKLE: &[u8] = b"\x80\x02c__main__\nNet\nq\x00)\x81q\x01.";

fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&[0u8; 8]);
    out
}

async fn publish(app: &TestApp, token: &str, files: &[(&str, &[u8])]) {
    let ops: Vec<_> = files
        .iter()
        .map(|(p, b)| json!({"op": "put", "path": p, "content_base64": base64::engine::general_purpose::STANDARD.encode(b)}))
        .collect();
    let res = app
        .post_json(
            "/api/v1/repos/alice/m/commits/main",
            Some(token),
            &json!({"message": "files", "operations": ops}),
        )
        .await;
    expect_status(res, StatusCode::CREATED).await;
}

async fn scanning_contract(pool: PgPool, backend: Backend) {
    let app = spawn_app_with(pool.clone(), backend, |_| {}).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let weights = safetensors();
    publish(
        &app,
        &alice,
        &[
            ("model.safetensors", &weights),
            ("evil.pkl", MALICIOUS_PICKLE),
            ("net.pkl", SUSPICIOUS_PICKLE),
        ],
    )
    .await;

    // Before the workers run, files are pending (and served).
    let listing = expect_status(
        app.get("/api/v1/repos/alice/m/tree/main", None).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        listing["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["scan_status"] == "pending"),
        "{listing}"
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'scan-blob' AND state = 'queued'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        pending, 3,
        "one scan job per new blob, queued with the commit"
    );
    // The Hugging Face model info counts the same states (in SQL, not from the siblings).
    let info = expect_status(app.get("/api/models/alice/m", None).await, StatusCode::OK).await;
    assert_eq!(
        info["securityRepoStatus"],
        json!({"scansDone": false, "overall": "pending", "summary": {"clean": 0, "suspicious": 0, "malformed": 0, "malicious": 0, "error": 0, "pending": 3, "overall": "pending"}})
    );
    app.run_jobs().await;

    let scan = expect_status(
        app.get("/api/v1/repos/alice/m/scan", None).await,
        StatusCode::OK,
    )
    .await;
    let status = |path: &str| {
        scan["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap()
            .clone()
    };
    assert_eq!(status("model.safetensors")["scan_status"], "clean");
    assert_eq!(status("evil.pkl")["scan_status"], "malicious");
    assert_eq!(status("evil.pkl")["quarantined"], true);
    assert_eq!(
        status("evil.pkl")["findings"][0]["evidence"],
        "posix.system"
    );
    assert_eq!(status("net.pkl")["scan_status"], "suspicious");
    assert_eq!(
        scan["summary"],
        json!({"clean": 1, "suspicious": 1, "malformed": 0, "malicious": 1, "error": 0, "pending": 0, "overall": "malicious"})
    );
    let repo = expect_status(app.get("/api/v1/repos/alice/m", None).await, StatusCode::OK).await;
    assert_eq!(repo["scan_summary"]["overall"], "malicious");
    let info = expect_status(
        app.get("/api/models/alice/m?blobs=true", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        info["securityRepoStatus"],
        json!({"scansDone": true, "overall": "malicious", "summary": scan["summary"]})
    );
    let siblings = info["siblings"].as_array().unwrap();
    assert_eq!(siblings.len(), 3);
    let evil = siblings
        .iter()
        .find(|s| s["rfilename"] == "evil.pkl")
        .unwrap();
    assert_eq!(evil["size"], MALICIOUS_PICKLE.len());
    assert_eq!(evil["lfs"]["sha256"], sha256_hex(MALICIOUS_PICKLE));

    // Quarantine on every route that serves bytes, with the findings named.
    let res = app.get("/alice/m/resolve/main/evil.pkl", None).await;
    assert_eq!(res.headers()["x-error-code"], "quarantined");
    let body = expect_status(res, StatusCode::FORBIDDEN).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("posix.system"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["scan"]["verdict"], "malicious");
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/evil.pkl", None)
        .send()
        .await
        .unwrap();
    // HEAD serves no bytes: metadata and the scan verdict, so clients go on to the GET's 403.
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-kaiyuan-scan"], "malicious");
    let res = app
        .get("/alice/m/resolve/main/evil.pkl", Some(&alice))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "owners are protected too"
    );

    // Clean files are served as usual; suspicious ones with a warning header.
    let res = app
        .get("/alice/m/resolve/main/model.safetensors", None)
        .await;
    assert_eq!(res.headers()["x-kaiyuan-scan"], "clean");
    assert!(res.headers().get("x-kaiyuan-warning").is_none());
    assert_eq!(res.bytes().await.unwrap().as_ref(), weights.as_slice());
    let res = app.get("/alice/m/resolve/main/net.pkl", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-kaiyuan-scan"], "suspicious");
    assert!(
        res.headers()["x-kaiyuan-warning"]
            .to_str()
            .unwrap()
            .contains("__main__.Net")
    );

    // An admin can release it, with a reason that is audited.
    let sha = sha256_hex(MALICIOUS_PICKLE);
    let path = format!("/api/v1/admin/blobs/{sha}/release");
    let res = app
        .post_json(&path, Some(&alice), &json!({"reason": "mine"}))
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "admin-required").await;
    let res = app
        .post_json(&path, Some(&app.admin_token), &json!({"reason": ""}))
        .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-reason").await;
    let res = app
        .post_json(
            &path,
            Some(&app.admin_token),
            &json!({"reason": "security research sample, documented in the card"}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    let res = app.get("/alice/m/resolve/main/evil.pkl", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["x-kaiyuan-warning"]
            .to_str()
            .unwrap()
            .starts_with("malicious")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), MALICIOUS_PICKLE);
    let audit: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'reason' FROM audit_events WHERE action = 'blob.release' AND target = $1",
    )
    .bind(format!("blob:{sha}"))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(audit, ["security research sample, documented in the card"]);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn local_store_scanning_and_quarantine(pool: PgPool) {
    scanning_contract(pool, Backend::Local).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn s3_store_scanning_and_quarantine(pool: PgPool) {
    scanning_contract(pool, Backend::S3).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn rescans_replace_results_only_when_stored_and_never_twice(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), Backend::Local, |_| {}).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    publish(&app, &alice, &[("evil.pkl", MALICIOUS_PICKLE)]).await;
    // The same bytes committed again (another path, another commit) are not queued twice.
    publish(&app, &alice, &[("copy.pkl", MALICIOUS_PICKLE)]).await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'scan-blob'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 1);
    app.run_jobs().await;

    // Pretend the results came from an older scanner: a rescan is queued behind new uploads.
    sqlx::query("UPDATE blobs SET scan_version = '0'")
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let queued =
        kaiyuan_hub::db::scans::enqueue_rescans(&mut conn, kaiyuan_scanner::SCANNER_VERSION, false)
            .await
            .unwrap();
    assert_eq!(queued, 1);
    let priority: i32 = sqlx::query_scalar("SELECT priority FROM jobs WHERE state = 'queued'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(priority > 0, "rescans run after scans of new uploads");
    // Until the new result is stored the old verdict stands (the file stays quarantined).
    let res = app.get("/alice/m/resolve/main/evil.pkl", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    app.run_jobs().await;
    let version: String = sqlx::query_scalar("SELECT scan_version FROM blobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, kaiyuan_scanner::SCANNER_VERSION);
    // Forced rescans cover everything; up-to-date blobs need none otherwise.
    assert_eq!(
        kaiyuan_hub::db::scans::enqueue_rescans(&mut conn, kaiyuan_scanner::SCANNER_VERSION, false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        kaiyuan_hub::db::scans::enqueue_rescans(&mut conn, kaiyuan_scanner::SCANNER_VERSION, true)
            .await
            .unwrap(),
        1
    );
}
