//! Commits: operations, validation, optimistic concurrency, content-derived ids, history, refs.

use base64::Engine;
use kaiyuan_tests::{expect_error, expect_status, sha256_hex, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::PgPool;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn commit(
    app: &kaiyuan_tests::TestApp,
    token: &str,
    repo: &str,
    body: Value,
) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/repos/{repo}/commits/main"),
        Some(token),
        &body,
    )
    .await
}

async fn files_at(
    app: &kaiyuan_tests::TestApp,
    repo: &str,
    revision: &str,
) -> Vec<(String, String, i64)> {
    let listing = expect_status(
        app.get(&format!("/api/v1/repos/{repo}/tree/{revision}"), None)
            .await,
        StatusCode::OK,
    )
    .await;
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["sha256"].as_str().unwrap().into(),
                f["size"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn one_commit_adds_replaces_copies_and_deletes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let weights = vec![7u8; 100_000];
    let uploaded = expect_status(
        app.upload(&alice, "alice/m", weights.clone(), None).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(uploaded["sha256"], sha256_hex(&weights));

    let first = expect_status(
        commit(&app, &alice, "alice/m", json!({"message": "add model", "operations": [
            {"op": "put", "path": "model.safetensors", "sha256": sha256_hex(&weights), "size": 100_000},
            {"op": "put", "path": "config/config.json", "content_base64": b64(b"{}")},
            {"op": "put", "path": "config/extra.json", "content_base64": b64(b"[]")},
            {"op": "put", "path": "README.md", "content_base64": b64(b"# m")},
        ]}))
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["file_count"], 4);
    assert_eq!(first["total_size"], 100_000 + 2 + 2 + 3);

    let second = expect_status(
        commit(
            &app,
            &alice,
            "alice/m",
            json!({"message": "rework", "parent": first["id"], "operations": [
                {"op": "put", "path": "README.md", "content_base64": b64(b"# m v2")},
                {"op": "copy", "from": "model.safetensors", "path": "backup/model.safetensors"},
                {"op": "delete", "path": "config"},
            ]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(second["parent"], first["id"]);
    let files = files_at(&app, "alice/m", "main").await;
    assert_eq!(
        files,
        vec![
            ("README.md".into(), sha256_hex(b"# m v2"), 6),
            (
                "backup/model.safetensors".into(),
                sha256_hex(&weights),
                100_000
            ),
            ("model.safetensors".into(), sha256_hex(&weights), 100_000),
        ]
    );
    // The old revision is immutable and still readable by id.
    let old = files_at(&app, "alice/m", first["id"].as_str().unwrap()).await;
    assert_eq!(old.len(), 4);
    let history = expect_status(
        app.get("/api/v1/repos/alice/m/commits", None).await,
        StatusCode::OK,
    )
    .await;
    let messages: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["rework", "add model", "Initial commit"],
        "newest first"
    );
    let page = expect_status(
        app.get(
            &format!(
                "/api/v1/repos/alice/m/commits?revision={}&limit=1",
                first["id"].as_str().unwrap()
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["message"], "add model");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn commit_ids_follow_the_documented_rule(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let made = app
        .commit_files(&alice, "alice/m", &[("b.bin", b"bb"), ("a.txt", b"a")])
        .await;
    let id = made["id"].as_str().unwrap();
    let (parent, created_at): (String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT parent_id, created_at FROM commits WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let text = format!(
        "kaiyuan-commit-v1\nparent {parent}\nauthor alice\ntime {}\nmessage 9\nadd files\nfile {} 1 a.txt\nfile {} 2 b.bin\n",
        created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        sha256_hex(b"a"),
        sha256_hex(b"bb"),
    );
    assert_eq!(
        id,
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..20])
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn invalid_paths_and_trees_are_refused_with_nothing_committed(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let head = app.create_repo(&alice, "alice", "m", "public").await["head"].clone();
    for bad in [
        "../etc/passwd",
        "/abs",
        "a//b",
        "a/./b",
        "back\\slash",
        "nul\u{0}byte",
        "trailing/",
        &"x/".repeat(64).to_string(),
    ] {
        let res = commit(&app, &alice, "alice/m", json!({"message": "m", "operations": [{"op": "put", "path": bad, "content_base64": "AA=="}]})).await;
        expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-path").await;
    }
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "m", "operations": [
            {"op": "put", "path": "Model.bin", "content_base64": "AA=="},
            {"op": "put", "path": "model.bin", "content_base64": "AQ=="},
        ]}),
    )
    .await;
    let message = expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-change").await;
    assert!(message.contains("differ only by case"), "{message}");
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "m", "operations": [{"op": "delete", "path": "nothing"}]}),
    )
    .await;
    expect_error(res, StatusCode::NOT_FOUND, "entry-not-found").await;
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "", "operations": []}),
    )
    .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-message").await;
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "m", "operations": [{"op": "put", "path": "x"}]}),
    )
    .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "missing-content").await;
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "m", "operations": [{"op": "rename", "path": "x"}]}),
    )
    .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-json").await;
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-json").await;
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
        )
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let res = app
        .post_json(
            "/api/v1/repos/alice/m/commits/nope",
            Some(&alice),
            &json!({"message": "m"}),
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "revision-not-found").await;

    let repo = expect_status(app.get("/api/v1/repos/alice/m", None).await, StatusCode::OK).await;
    assert_eq!(repo["head"], head, "no refused request moved the branch");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn blobs_are_referenced_only_with_proof_of_possession(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let mallory = app.create_user("mallory").await;
    app.create_repo(&alice, "alice", "private-weights", "private")
        .await;
    let secret = b"alice's private weights".to_vec();
    app.commit_files(&alice, "alice/private-weights", &[("w.bin", &secret)])
        .await;

    // Knowing the digest is not enough to get the bytes into another repository.
    app.create_repo(&mallory, "mallory", "grab", "public").await;
    let res = commit(
        &app,
        &mallory,
        "mallory/grab",
        json!({"message": "steal", "operations": [
            {"op": "put", "path": "w.bin", "sha256": sha256_hex(&secret)},
        ]}),
    )
    .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "unknown-blob").await;
    // Uploading the real bytes is proof; it finishes without storing them again.
    let up = expect_status(
        app.upload(
            &mallory,
            "mallory/grab",
            secret.clone(),
            Some(&sha256_hex(&secret)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // New to this repository: the answer never hints that another repository holds the bytes.
    assert_eq!(up["newly_stored"], true);
    let res = commit(
        &app,
        &mallory,
        "mallory/grab",
        json!({"message": "own copy", "operations": [
            {"op": "put", "path": "w.bin", "sha256": sha256_hex(&secret), "size": 999},
        ]}),
    )
    .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "size-mismatch").await;
    let res = commit(
        &app,
        &mallory,
        "mallory/grab",
        json!({"message": "own copy", "operations": [
            {"op": "put", "path": "w.bin", "sha256": sha256_hex(&secret)},
        ]}),
    )
    .await;
    expect_status(res, StatusCode::CREATED).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_moved_branch_rejects_a_stale_parent_and_concurrent_commits_serialise(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let head = app.create_repo(&alice, "alice", "m", "public").await["head"]
        .as_str()
        .unwrap()
        .to_string();
    app.commit_files(&alice, "alice/m", &[("a", b"1")]).await;
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "stale", "parent": head, "operations": []}),
    )
    .await;
    let message = expect_error(res, StatusCode::CONFLICT, "branch-moved").await;
    assert!(message.contains(&head));

    // Eight writers race on one branch, all based on the same parent: exactly one wins.
    let current = expect_status(app.get("/api/v1/repos/alice/m", None).await, StatusCode::OK).await
        ["head"]
        .as_str()
        .unwrap()
        .to_string();
    let attempts = (0..8).map(|i| {
        let body = json!({"message": format!("race {i}"), "parent": current, "operations": [{"op": "put", "path": format!("f{i}"), "content_base64": b64(&[i as u8])}]});
        let (app, alice) = (&app, &alice);
        async move { commit(app, alice, "alice/m", body).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        7,
        "{statuses:?}"
    );
    // Without a parent check, concurrent commits all land, one after another.
    let attempts = (0..6).map(|i| {
        let body = json!({"message": format!("append {i}"), "operations": [{"op": "put", "path": format!("g{i}"), "content_base64": b64(&[i as u8])}]});
        let (app, alice) = (&app, &alice);
        async move { commit(app, alice, "alice/m", body).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    let files = files_at(&app, "alice/m", "main").await;
    assert_eq!(
        files.iter().filter(|f| f.0.starts_with('g')).count(),
        6,
        "no commit lost another's files"
    );
    let history = expect_status(
        app.get("/api/v1/repos/alice/m/commits?limit=100", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(history.as_array().unwrap().len(), 1 + 1 + 1 + 6);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn multipart_commits_stream_files_in_one_request(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let big = kaiyuan_tests::pseudo_random_bytes(3 * 1024 * 1024 + 5, 9);
    let form = reqwest::multipart::Form::new()
        .part("commit", reqwest::multipart::Part::text(json!({"message": "multipart", "operations": [
            {"op": "put", "path": "weights/model.bin", "sha256": sha256_hex(&big), "size": big.len()},
        ]}).to_string()).mime_str("application/json").unwrap())
        .part("file", reqwest::multipart::Part::bytes(big.clone()).file_name("weights/model.bin"))
        .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("notes.txt"));
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    let made = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(made["file_count"], 2);
    let got = app
        .get("/alice/m/resolve/main/weights/model.bin", None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), big.as_slice());

    // A declared digest that the part does not match refuses the whole commit.
    let form = reqwest::multipart::Form::new()
        .part(
            "commit",
            reqwest::multipart::Part::text(
                json!({"message": "bad", "operations": [
                    {"op": "put", "path": "x.bin", "sha256": "00".repeat(32)},
                ]})
                .to_string(),
            ),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"not that".to_vec()).file_name("x.bin"),
        );
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "digest-mismatch").await;
    // Files before the commit part, and parts without a filename, are refused.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
    );
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "commit-part-first").await;
    let form = reqwest::multipart::Form::new().part(
        "commit",
        reqwest::multipart::Part::text(
            json!({"message": "m", "operations": [{"op": "put", "path": "announced.bin"}]})
                .to_string(),
        ),
    );
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "missing-file-part").await;
    assert_eq!(
        files_at(&app, "alice/m", "main").await.len(),
        2,
        "refused commits changed nothing"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn branches_and_tags_are_created_moved_and_deleted(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let first = app.create_repo(&alice, "alice", "m", "public").await["head"]
        .as_str()
        .unwrap()
        .to_string();
    let second = app.commit_files(&alice, "alice/m", &[("a", b"1")]).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/m/tags/v1.0",
            Some(&alice),
            &json!({"target": first}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/m/branches/dev",
            Some(&alice),
            &json!({"target": "main"}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    // Commit to the new branch; main does not move.
    let res = app
        .post_json(
            "/api/v1/repos/alice/m/commits/dev",
            Some(&alice),
            &json!({"message": "dev work", "operations": [{"op": "delete", "path": "a"}]}),
        )
        .await;
    let dev_head = expect_status(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(files_at(&app, "alice/m", "dev").await.len(), 0);
    assert_eq!(files_at(&app, "alice/m", "main").await.len(), 1);
    assert_eq!(files_at(&app, "alice/m", "v1.0").await.len(), 0);

    // Moving with an expected value is compare-and-swap.
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/m/tags/v1.0",
            Some(&alice),
            &json!({"target": second, "expected": dev_head}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "ref-moved").await;
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/m/tags/v1.0",
            Some(&alice),
            &json!({"target": second, "expected": first}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/m/branches/v1.0",
            Some(&alice),
            &json!({"target": "main"}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "ref-kind-conflict").await;
    let res = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/repos/alice/m/branches/{}", "a".repeat(40)),
            Some(&alice),
            &json!({"target": "main"}),
        )
        .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-ref").await;
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/m/branches/x",
            Some(&alice),
            &json!({"target": "nope"}),
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "revision-not-found").await;

    let refs = expect_status(
        app.get("/api/v1/repos/alice/m/refs", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(refs["tags"][0]["commit"], second.as_str());
    assert_eq!(refs["branches"].as_array().unwrap().len(), 2);

    let res = app
        .request(
            Method::DELETE,
            "/api/v1/repos/alice/m/branches/main",
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::CONFLICT, "default-branch").await;
    for path in [
        "/api/v1/repos/alice/m/branches/dev",
        "/api/v1/repos/alice/m/tags/v1.0",
    ] {
        let res = app
            .request(Method::DELETE, path, Some(&alice))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    expect_error(
        app.get("/api/v1/repos/alice/m/tree/dev", None).await,
        StatusCode::NOT_FOUND,
        "revision-not-found",
    )
    .await;
    // The commit stays reachable by id after its branch is gone.
    assert_eq!(files_at(&app, "alice/m", &dev_head).await.len(), 0);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn each_commit_queues_a_commit_created_job_in_the_same_transaction(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let made = app.commit_files(&alice, "alice/m", &[("a", b"1")]).await;
    let jobs: Vec<(String, serde_json::Value, String)> =
        sqlx::query_as("SELECT kind, payload, state FROM jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let kinds: Vec<&str> = jobs.iter().map(|(kind, _, _)| kind.as_str()).collect();
    // Per commit: a scan of each new blob, the signature check, the licence evaluation and
    // the commit-created check (the initial commit has no blob).
    let per_commit = ["signature-verify", "license-evaluate", "commit-created"];
    let mut expected: Vec<&str> = per_commit.to_vec();
    expected.push("scan-blob");
    expected.extend(per_commit);
    assert_eq!(kinds, expected, "the initial commit, then this one");
    assert!(jobs.iter().all(|(_, _, state)| state == "queued"));
    assert_eq!(jobs[3].1["sha256"], kaiyuan_tests::sha256_hex(b"1"));
    assert_eq!(jobs[3].1["path"], "a");
    for job in &jobs[4..] {
        assert_eq!(job.1["commit_id"], made["id"]);
    }
    // A refused commit queues nothing.
    let res = commit(
        &app,
        &alice,
        "alice/m",
        json!({"message": "m", "operations": [{"op": "delete", "path": "zzz"}]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 7);
    assert_eq!(app.run_jobs().await, 7);
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(states.len(), 7);
    assert!(states.iter().all(|s| s == "succeeded"), "{states:?}");
}
