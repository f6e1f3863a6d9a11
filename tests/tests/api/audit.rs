//! The audit log: every state-changing request is recorded with its actor, token, result,
//! client address and request id, and organisation admins query and export it.

use kaiyuan_tests::{expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn org_admins_query_every_state_changing_request(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let eve = app.create_user("eve").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    expect_status(
        app.send_json(
            Method::PUT,
            "/api/v1/orgs/acme/members/bob",
            Some(&alice),
            &json!({"role": "write"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    app.create_repo(&bob, "acme", "m", "private").await;
    let res = app.post_json("/api/v1/repos/acme/m/commits/main", Some(&bob), &json!({"message": "add", "operations": [{"op": "put", "path": "a.txt", "content_base64": "aGk="}]})).await;
    let commit_request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    expect_status(res, StatusCode::CREATED).await;
    // A refused request is recorded too, with its result.
    let res = app
        .post_json(
            "/api/v1/repos/acme/m/commits/main",
            Some(&bob),
            &json!({"message": "x", "operations": [{"op": "delete", "path": "nope"}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Reads are not state changes.
    app.get("/api/v1/repos/acme/m", Some(&bob)).await;

    let page = expect_status(
        app.get("/api/v1/orgs/acme/audit", Some(&alice)).await,
        StatusCode::OK,
    )
    .await;
    let events = page["events"].as_array().unwrap();
    let commit = events
        .iter()
        .find(|e| {
            e["request_id"] == commit_request_id
                && e["action"].as_str().unwrap().starts_with("POST ")
        })
        .unwrap_or_else(|| panic!("the commit request is missing: {page:#}"));
    assert_eq!(commit["actor"], "bob");
    assert_eq!(commit["result"], 201);
    assert_eq!(commit["client_addr"], "127.0.0.1");
    assert!(commit["token_id"].is_i64());
    assert_eq!(commit["target"], "/api/v1/repos/acme/m/commits/main");
    assert!(
        events
            .iter()
            .any(|e| e["result"] == 404 && e["actor"] == "bob"),
        "the refused request is missing"
    );
    assert!(
        events.iter().any(|e| e["action"] == "commit.create"),
        "domain events are there too"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["action"].as_str().unwrap().starts_with("GET "))
    );

    // Filters, pages and JSON lines.
    let only = expect_status(
        app.get(
            "/api/v1/orgs/acme/audit?action=POST%20*&actor=bob",
            Some(&alice),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let only = only["events"].as_array().unwrap();
    assert!(
        only.len() >= 2
            && only
                .iter()
                .all(|e| e["actor"] == "bob" && e["action"].as_str().unwrap().starts_with("POST "))
    );
    let future = expect_status(
        app.get(
            "/api/v1/orgs/acme/audit?since=2999-01-01T00:00:00Z",
            Some(&alice),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(future["events"].as_array().unwrap().is_empty());
    let first = expect_status(
        app.get("/api/v1/orgs/acme/audit?limit=2", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    let cursor = first["next_cursor"].as_i64().unwrap();
    let second = expect_status(
        app.get(
            &format!("/api/v1/orgs/acme/audit?limit=2&cursor={cursor}"),
            Some(&alice),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(second["events"][0]["id"].as_i64().unwrap() < cursor);
    let res = app
        .get("/api/v1/orgs/acme/audit?format=jsonl", Some(&alice))
        .await;
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.len());

    // Only admins read it; outsiders do not learn it exists.
    expect_error(
        app.get("/api/v1/orgs/acme/audit", Some(&bob)).await,
        StatusCode::FORBIDDEN,
        "insufficient-role",
    )
    .await;
    expect_error(
        app.get("/api/v1/orgs/acme/audit", Some(&eve)).await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;
    expect_error(
        app.get("/api/v1/orgs/acme/audit?limit=0", Some(&alice))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid-limit",
    )
    .await;
    expect_error(
        app.get("/api/v1/orgs/acme/audit?format=xml", Some(&alice))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid-query",
    )
    .await;
}
