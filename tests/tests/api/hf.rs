//! The Hugging Face-compatible API, driven by the real `huggingface_hub` client
//! (`tests/python/hf_client_reads.py`).

use kaiyuan_tests::{TestApp, expect_status, sha256_hex, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

async fn publish(app: &TestApp, token: &str) -> (String, serde_json::Value) {
    let safetensors = {
        let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header);
        out.extend_from_slice(&[1u8; 8]);
        out
    };
    let big = kaiyuan_tests::pseudo_random_bytes(3 * 1024 * 1024, 11);
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "README.md",
            b"---\nlicense: apache-2.0\n---\n# Tiny\n".to_vec(),
        ),
        ("config.json", br#"{"hidden_size": 2}"#.to_vec()),
        ("weights/model.safetensors", safetensors),
        ("weights/extra/big.bin", big),
    ];
    let pairs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let made = app.commit_files(token, "alice/tiny", &pairs).await;
    let digests: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(p, b)| (p.to_string(), json!(sha256_hex(b))))
        .collect();
    (
        made["id"].as_str().unwrap().to_string(),
        serde_json::Value::Object(digests),
    )
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn huggingface_hub_reads_and_downloads_unchanged(pool: PgPool) {
    reads_with(&spawn_app(pool).await, "KAIYUAN_TEST_PYTHON").await;
}

/// On S3 with presigned redirects, downloads leave the hub: the client follows the cross-origin
/// 302 without its token, and every check still holds.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn huggingface_hub_downloads_through_presigned_redirects(pool: PgPool) {
    let app = kaiyuan_tests::spawn_app_with(pool, kaiyuan_tests::Backend::S3, |s| {
        s.downloads.presigned_redirects = true
    })
    .await;
    reads_with(&app, "KAIYUAN_TEST_PYTHON").await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let redirected = metrics
        .lines()
        .find(|l| {
            l.contains("route=\"/{namespace}/{name}/resolve/{revision}/{path:.*}\",status=\"302\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        redirected > 0,
        "downloads went to presigned URLs:\n{metrics}"
    );
}

/// The same reads with the last 0.x client, which `transformers` 4.x users run.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn huggingface_hub_0x_reads_and_downloads_unchanged(pool: PgPool) {
    reads_with(&spawn_app(pool).await, "KAIYUAN_TEST_PYTHON_HF0").await;
}

async fn reads_with(app: &TestApp, python_var: &str) {
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "tiny", "public").await;
    app.create_repo(&alice, "alice", "secret", "private").await;
    let (commit, files) = publish(app, &alice).await;
    app.create_repo(&alice, "alice", "evil", "public").await;
    app.commit_files(
        &alice,
        "alice/evil",
        &[(
            "evil.pkl",
            b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.",
        )],
    )
    .await;
    app.run_jobs().await;
    app.create_repo(&alice, "alice", "gated", "public").await;
    app.commit_files(&alice, "alice/gated", &[("weights.bin", b"gated weights")])
        .await;
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/alice/gated",
            Some(&alice),
            &json!({"gated": "manual"}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/tiny/tags/v1",
            Some(&alice),
            &json!({"target": "main"}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;

    run_client(
        app,
        python_var,
        "hf_client_reads.py",
        &[
            ("KY_TOKEN", alice.as_str()),
            ("KY_OTHER_TOKEN", &bob),
            ("KY_COMMIT", &commit),
            ("KY_FILES", &files.to_string()),
        ],
    )
    .await;
}

/// Runs one of `tests/python/hf_client_*.py` with the Python environment named by `python_var`
/// against `app`, and asserts that all its checks passed.
pub(crate) async fn run_client(
    app: &TestApp,
    python_var: &str,
    script: &str,
    env: &[(&str, &str)],
) {
    let python = std::env::var(python_var).unwrap_or_else(|_| {
        panic!("{python_var} is not set: run the suite through scripts/test.sh")
    });
    let script = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let home = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .env("HF_ENDPOINT", &app.base)
        .env("HF_HOME", home.path())
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn errors_carry_hugging_face_codes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let res = app.get("/api/models/alice/nope", None).await;
    assert_eq!(res.headers()["x-error-code"], "RepoNotFound");
    let res = app.get("/api/models/alice/m/revision/nope", None).await;
    assert_eq!(res.headers()["x-error-code"], "RevisionNotFound");
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/missing.bin", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["x-error-code"], "EntryNotFound");
    assert_eq!(
        res.headers()["x-repo-commit"].len(),
        40,
        "lets clients cache the absence"
    );
    // Upload URLs authorise themselves: a forged or expired signature is refused.
    let oid = sha256_hex(b"x");
    let forged = format!(
        "/api/lfs/alice/m/{oid}?size=1&user=1&expires=99999999999&sig={}",
        "0".repeat(64)
    );
    let res = app
        .request(Method::PUT, &forged, None)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["x-error-code"], "invalid-upload-url");
    let res = app
        .request(
            Method::PUT,
            &format!("{}/parts/1", forged.split('?').next().unwrap()),
            None,
        )
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a part URL without a signature is malformed"
    );
    // A repository without a declared licence says so to Hugging Face clients.
    let res = app.get("/api/models/alice/m", None).await;
    assert!(
        res.headers()["x-hf-warning"]
            .to_str()
            .unwrap()
            .starts_with("kaiyuan-license; alice/m declares no licence")
    );
    // Card validation warns about a missing licence (the client turns it into a UserWarning).
    let res = app
        .post_json(
            "/api/validate-yaml",
            Some(&alice),
            &json!({"content": "# no front matter", "repoType": "model"}),
        )
        .await;
    let body = expect_status(res, StatusCode::OK).await;
    assert!(
        body["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("declares no licence")
    );
    let res = app
        .post_json(
            "/api/validate-yaml",
            Some(&alice),
            &json!({"content": "---\nlicense: mit\n---\n"}),
        )
        .await;
    assert_eq!(
        expect_status(res, StatusCode::OK).await,
        json!({"errors": [], "warnings": []})
    );
    // Download metadata headers on every resolve response.
    app.commit_files(&alice, "alice/m", &[("a.bin", b"abc")])
        .await;
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/a.bin", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-linked-size"], "3");
    assert!(res.headers().contains_key("x-hf-warning"));
    app.commit_files(
        &alice,
        "alice/m",
        &[("README.md", b"---\nlicense: mit\n---\n")],
    )
    .await;
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/a.bin", None)
        .send()
        .await
        .unwrap();
    assert!(
        !res.headers().contains_key("x-hf-warning"),
        "a declared licence needs no notice yet"
    );
    assert_eq!(
        res.headers()["x-linked-etag"],
        format!("\"{}\"", sha256_hex(b"abc")).as_str()
    );
}

/// Every page of a listing, following `Link: <...>; rel="next"` as Hugging Face clients do.
async fn follow_links(app: &TestApp, first: String) -> Vec<Vec<serde_json::Value>> {
    let mut pages = Vec::new();
    let mut url = Some(first);
    while let Some(current) = url {
        let res = app.http.get(&current).send().await.unwrap();
        url = res.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            l.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_string()
        });
        pages.push(res.json().await.unwrap());
    }
    pages
}

async fn run_upload_client(app: &TestApp, token: &str, mode: &str) {
    let mut env = vec![("KY_TOKEN", token), ("KY_MODE", mode)];
    if mode == "lfs" {
        env.push(("HF_HUB_DISABLE_XET", "1"));
    }
    run_client(app, "KAIYUAN_TEST_PYTHON", "hf_client_uploads.py", &env).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn huggingface_hub_uploads_through_lfs_with_xet_disabled(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    run_upload_client(&app, &alice, "lfs").await;
    // The same records as the native API: commits, scan jobs, audit events.
    let commits: i64 = sqlx::query_scalar("SELECT count(*) FROM commits c JOIN repositories r ON r.id = c.repository_id WHERE r.name = 'upload-lfs'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        commits,
        1 + 10,
        "initial, upload, same bytes again, CLI upload, two deletes, replace, copy, delete copy, delete file, delete folder"
    );
    let scans: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'scan-blob'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        scans >= 5,
        "every new blob was queued for scanning: {scans}"
    );
    let big: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE size = 12582912")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(big, 1, "the large file went through LFS once");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("kaiyuan_http_requests_total{method=\"PUT\",route=\"/api/lfs/{namespace}/{name}/{oid}\",status=\"200\"} 1\n"),
        "the second upload of the same bytes sent nothing:\n{metrics}"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn default_huggingface_hub_clients_upload_small_files_inline(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    run_upload_client(&app, &alice, "default").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn large_lfs_objects_upload_in_parts(pool: PgPool) {
    let app = kaiyuan_tests::spawn_app_with(pool.clone(), kaiyuan_tests::Backend::Local, |s| {
        s.limits.lfs_multipart_threshold = 8 * 1024 * 1024;
        s.limits.lfs_part_size = 5 * 1024 * 1024;
    })
    .await;
    let alice = app.create_user("alice").await;
    // The 12 MiB file of the LFS run crosses the threshold: three parts, then completion.
    run_upload_client(&app, &alice, "lfs").await;
    let big: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE size = 12582912")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(big, 1);
    assert_eq!(
        app.store
            .collect_staging(std::time::Duration::ZERO)
            .await
            .unwrap(),
        0,
        "no part is left behind"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn tree_listings_page_with_link_headers(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(
        &alice,
        "alice/m",
        &[("a", b"1"), ("b/c", b"2"), ("b/d", b"3"), ("e", b"4")],
    )
    .await;
    let pages = follow_links(
        &app,
        app.url("/api/models/alice/m/tree/main?recursive=true&limit=2"),
    )
    .await;
    assert!(pages.iter().all(|page| page.len() <= 2));
    let paths: Vec<String> = pages
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        paths,
        ["file:a", "directory:b", "file:b/c", "file:b/d", "file:e"]
    );
    let top: Vec<serde_json::Value> = app
        .get("/api/models/alice/m/tree/main", None)
        .await
        .json()
        .await
        .unwrap();
    let top: Vec<&str> = top.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        top,
        ["a", "b", "e"],
        "not recursive: folders, not their files"
    );
    let sub: Vec<serde_json::Value> = app
        .get("/api/models/alice/m/tree/main/b", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sub.len(), 2);
    let res = app.get("/api/models/alice/m/tree/main/nope", None).await;
    assert_eq!(res.headers()["x-error-code"], "EntryNotFound");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn model_listings_page_with_link_headers(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    // More repositories than one page (100) holds.
    sqlx::query(
        "INSERT INTO repositories (namespace_id, name, visibility)
         SELECT n.id, 'm' || g, 'public' FROM namespaces n, generate_series(1, 105) g WHERE n.name = 'alice'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let _ = alice;
    let pages = follow_links(&app, app.url("/api/models?author=alice")).await;
    let mut ids: Vec<String> = pages
        .iter()
        .flatten()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pages.len(), 2);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 105, "every repository once");
    let limited: Vec<serde_json::Value> = app
        .get("/api/models?author=alice&limit=3", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(limited.len(), 3);
}
