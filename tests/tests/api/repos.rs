//! Repositories: names, visibility, search and pagination, settings, soft delete.

use kaiyuan_tests::{Backend, TestApp, expect_error, expect_status, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn creates_a_repository_with_main_and_an_initial_commit(pool: PgPool) {
    let app = spawn_app(pool).await;
    let token = app.create_user("alice").await;
    let repo = app
        .create_repo(&token, "alice", "Tiny-Model_1.0", "public")
        .await;
    assert_eq!(repo["id"], "alice/Tiny-Model_1.0");
    let head = repo["head"].as_str().unwrap();
    assert_eq!(head.len(), 40);
    let fetched = expect_status(
        app.get("/api/v1/repos/alice/Tiny-Model_1.0", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fetched["head"], head);
    assert_eq!(fetched["visibility"], "public");
    let refs = expect_status(
        app.get("/api/v1/repos/alice/Tiny-Model_1.0/refs", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(refs["branches"][0]["name"], "main");
    assert_eq!(refs["branches"][0]["commit"], head);

    let res = app
        .post_json(
            "/api/v1/repos",
            Some(&token),
            &json!({"name": "tiny-model_1.0"}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "repository-exists").await;
    for bad in ["", ".x", "-x", "a..b", "a/b", "api", "x y", &"n".repeat(97)] {
        let res = app
            .post_json("/api/v1/repos", Some(&token), &json!({"name": bad}))
            .await;
        expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-name").await;
    }
    let res = app
        .post_json(
            "/api/v1/repos",
            Some(&token),
            &json!({"name": "ok", "visibility": "secret"}),
        )
        .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-visibility").await;
    let res = app
        .post_json(
            "/api/v1/repos",
            Some(&token),
            &json!({"namespace": "nobody", "name": "ok"}),
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "namespace-not-found").await;
    let other = app.create_user("bob").await;
    let res = app
        .post_json(
            "/api/v1/repos",
            Some(&other),
            &json!({"namespace": "alice", "name": "ok"}),
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;
}

/// Follows `next_cursor` from the first page to the last, anonymously.
async fn walk_pages(app: &TestApp, sort: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/repos?sort={sort}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = expect_status(app.get(&path, None).await, StatusCode::OK).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return seen,
        }
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn search_filters_sorts_and_pages_without_leaking_private_repos(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::Local, |_| {}).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    for name in ["llama-ft", "qwen-quant", "mistral-merge", "bert-tiny"] {
        app.create_repo(&alice, "alice", name, "public").await;
    }
    app.create_repo(&alice, "alice", "secret-llama", "private")
        .await;
    app.create_repo(&bob, "bob", "llama-adapter", "public")
        .await;
    app.commit_files(
        &alice,
        "alice/bert-tiny",
        &[(
            "README.md",
            b"---\nlicense: apache-2.0\n---\n# A tiny encoder for llama tokenizers\n",
        )],
    )
    .await;

    let page = expect_status(
        app.get("/api/v1/repos?q=llama&sort=name", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ids(&page),
        ["alice/bert-tiny", "alice/llama-ft", "bob/llama-adapter"],
        "card text is searched too"
    );
    let page = expect_status(
        app.get("/api/v1/repos?q=llama&sort=name", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ids(&page),
        [
            "alice/bert-tiny",
            "alice/llama-ft",
            "alice/secret-llama",
            "bob/llama-adapter"
        ]
    );
    let page = expect_status(
        app.get("/api/v1/repos?q=llama&sort=name", Some(&bob)).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        !ids(&page).contains(&"alice/secret-llama".to_string()),
        "private repos never appear to others"
    );

    let page = expect_status(
        app.get("/api/v1/repos?namespace=bob", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&page), ["bob/llama-adapter"]);
    let page = expect_status(
        app.get("/api/v1/repos?license=Apache-2.0", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&page), ["alice/bert-tiny"]);
    let page = expect_status(
        app.get("/api/v1/repos?sort=updated&limit=1", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ids(&page),
        ["alice/bert-tiny"],
        "the last commit updated it"
    );

    // Walk every page: all public repositories once, in order.
    assert_eq!(
        walk_pages(&app, "name", 2).await,
        [
            "alice/bert-tiny",
            "alice/llama-ft",
            "alice/mistral-merge",
            "alice/qwen-quant",
            "bob/llama-adapter"
        ]
    );
    assert_eq!(
        walk_pages(&app, "created", 4).await,
        [
            "bob/llama-adapter",
            "alice/bert-tiny",
            "alice/mistral-merge",
            "alice/qwen-quant",
            "alice/llama-ft"
        ]
    );

    expect_error(
        app.get("/api/v1/repos?sort=stars", None).await,
        StatusCode::BAD_REQUEST,
        "invalid-sort",
    )
    .await;
    expect_error(
        app.get("/api/v1/repos?cursor=abc", None).await,
        StatusCode::BAD_REQUEST,
        "invalid-cursor",
    )
    .await;
    expect_error(
        app.get("/api/v1/repos?limit=0", None).await,
        StatusCode::BAD_REQUEST,
        "invalid-limit",
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn settings_change_needs_the_admin_role(pool: PgPool) {
    let app = spawn_app(pool).await;
    let owner = app.create_user("olga").await;
    let writer = app.create_user("will").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&owner), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    app.send_json(
        Method::PUT,
        "/api/v1/orgs/acme/members/will",
        Some(&owner),
        &json!({"role": "write"}),
    )
    .await;
    app.create_repo(&owner, "acme", "model", "public").await;

    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/acme/model",
            Some(&writer),
            &json!({"visibility": "private"}),
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/acme/model",
            Some(&owner),
            &json!({"visibility": "private", "description": "A model"}),
        )
        .await;
    let body = expect_status(res, StatusCode::OK).await;
    assert_eq!(body["visibility"], "private");
    assert_eq!(body["description"], "A model");
    // Now private: anonymous callers get the same 404 as for a missing repository.
    let res = app.get("/api/v1/repos/acme/model", None).await;
    let message = expect_error(res, StatusCode::NOT_FOUND, "repository-not-found").await;
    let missing = expect_error(
        app.get("/api/v1/repos/acme/missing", None).await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;
    assert_eq!(
        message.replace("model", "X"),
        missing.replace("missing", "X")
    );
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/acme/model",
            Some(&owner),
            &json!({"colour": "red"}),
        )
        .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-json").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn deletion_is_soft_audited_and_reserves_the_name(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "gone", "public").await;
    app.commit_files(&alice, "alice/gone", &[("weights.bin", b"abc")])
        .await;

    let res = app
        .request(Method::DELETE, "/api/v1/repos/alice/gone", Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.get("/api/v1/repos/alice/gone", Some(&alice)).await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;
    expect_error(
        app.get("/alice/gone/resolve/main/weights.bin", Some(&alice))
            .await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;
    let page = expect_status(
        app.get("/api/v1/repos?namespace=alice", Some(&alice)).await,
        StatusCode::OK,
    )
    .await;
    assert!(ids(&page).is_empty());

    // The name stays reserved during the grace period, so old links cannot be hijacked.
    let res = app
        .post_json("/api/v1/repos", Some(&alice), &json!({"name": "gone"}))
        .await;
    let message = expect_error(res, StatusCode::CONFLICT, "name-reserved").await;
    assert!(message.contains("reserved until"), "{message}");
    // The row is still there (soft delete) with who and when.
    let (deleted_by, has_commits): (Option<i64>, bool) = sqlx::query_as(
        "SELECT deleted_by, EXISTS (SELECT 1 FROM commits c WHERE c.repository_id = r.id) FROM repositories r WHERE name = 'gone'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(deleted_by.is_some() && has_commits);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE target = 'repo:alice/gone' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["repo.create", "commit.create", "repo.delete"]);

    // After the grace period the name can be reused by the same namespace.
    sqlx::query("UPDATE repositories SET deleted_at = now() - interval '31 days'")
        .execute(&pool)
        .await
        .unwrap();
    app.create_repo(&alice, "alice", "gone", "public").await;
    let listing = expect_status(
        app.get("/api/v1/repos/alice/gone/tree/main", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        listing["files"],
        json!([]),
        "the new repository starts empty"
    );
}
