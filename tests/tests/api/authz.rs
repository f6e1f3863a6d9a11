//! Authorisation on every route: private repositories are invisible (404) to outsiders; writes
//! need a write token of a member with the right role.

use kaiyuan_tests::{TestApp, expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

/// Every repository route, with a body where it takes one.
fn routes(commit: &str) -> Vec<(Method, String, Option<serde_json::Value>)> {
    let r = "/api/v1/repos/alice/secret";
    vec![
        (Method::GET, r.to_string(), None),
        (
            Method::PATCH,
            r.to_string(),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, r.to_string(), None),
        (Method::GET, format!("{r}/audit"), None),
        (Method::GET, format!("{r}/refs"), None),
        (Method::GET, format!("{r}/commits"), None),
        (Method::GET, format!("{r}/tree/main"), None),
        (Method::GET, format!("{r}/tree/{commit}"), None),
        (Method::POST, format!("{r}/uploads"), None),
        (
            Method::POST,
            format!("{r}/commits/main"),
            Some(json!({"message": "m"})),
        ),
        (
            Method::PUT,
            format!("{r}/branches/x"),
            Some(json!({"target": "main"})),
        ),
        (Method::DELETE, format!("{r}/tags/x"), None),
        (
            Method::GET,
            "/alice/secret/resolve/main/w.bin".to_string(),
            None,
        ),
        (
            Method::HEAD,
            "/alice/secret/resolve/main/w.bin".to_string(),
            None,
        ),
        (
            Method::GET,
            format!("/alice/secret/resolve/{commit}/w.bin"),
            None,
        ),
    ]
}

async fn call(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: &Option<serde_json::Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = app.request(method.clone(), path, token);
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.unwrap()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn private_repositories_answer_404_to_outsiders_on_every_route(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let outsider = app.create_user("eve").await;
    app.create_repo(&alice, "alice", "secret", "private").await;
    let commit = app
        .commit_files(&alice, "alice/secret", &[("w.bin", b"private bytes")])
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    for (method, path, body) in routes(&commit) {
        for token in [None, Some(outsider.as_str())] {
            let res = call(&app, &method, &path, &body, token).await;
            // Anonymous changes are refused before any repository is looked up: 401 whether
            // it exists or not, so nothing leaks either way.
            let anonymous_write = token.is_none() && !matches!(method, Method::GET | Method::HEAD);
            let (status, code) = if anonymous_write {
                (StatusCode::UNAUTHORIZED, "authentication-required")
            } else {
                (StatusCode::NOT_FOUND, "repository-not-found")
            };
            assert_eq!(res.status(), status, "{method} {path} with {token:?}");
            if method != Method::HEAD {
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["error"]["code"], code, "{method} {path}");
            }
        }
    }
    // The owner sees everything.
    let res = app
        .get("/alice/secret/resolve/main/w.bin", Some(&alice))
        .await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"private bytes");
    // Search never reveals it either.
    let page = expect_status(
        app.get("/api/v1/repos?q=secret", Some(&outsider)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"], json!([]));
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn writes_need_a_write_token_and_a_role(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "open", "public").await;
    let read_token = app.read_token(&alice).await;
    let commit = json!({"message": "m", "operations": [{"op": "put", "path": "a", "content_base64": "AA=="}]});
    let path = "/api/v1/repos/alice/open/commits/main";
    expect_error(
        app.post_json(path, None, &commit).await,
        StatusCode::UNAUTHORIZED,
        "authentication-required",
    )
    .await;
    expect_error(
        app.post_json(path, Some(&read_token), &commit).await,
        StatusCode::FORBIDDEN,
        "token-read-only",
    )
    .await;
    expect_error(
        app.post_json(path, Some(&bob), &commit).await,
        StatusCode::FORBIDDEN,
        "insufficient-role",
    )
    .await;
    let res = app.upload(&bob, "alice/open", b"x".to_vec(), None).await;
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;
    let res = app
        .request(Method::DELETE, "/api/v1/repos/alice/open", Some(&bob))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;
    // Reads of a public repository need no token; a read token reads fine.
    expect_status(
        app.get("/api/v1/repos/alice/open/tree/main", None).await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        app.get("/api/v1/repos/alice/open/tree/main", Some(&read_token))
            .await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        app.post_json(path, Some(&alice), &commit).await,
        StatusCode::CREATED,
    )
    .await;
    // Hub admins may act anywhere.
    expect_status(
        app.post_json(path, Some(&app.admin_token), &commit).await,
        StatusCode::CREATED,
    )
    .await;
    // Org read members see private org repos but cannot write.
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "lab"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    app.send_json(
        Method::PUT,
        "/api/v1/orgs/lab/members/bob",
        Some(&alice),
        &json!({"role": "read"}),
    )
    .await;
    app.create_repo(&alice, "lab", "internal", "private").await;
    expect_status(
        app.get("/api/v1/repos/lab/internal", Some(&bob)).await,
        StatusCode::OK,
    )
    .await;
    let res = app
        .post_json(
            "/api/v1/repos/lab/internal/commits/main",
            Some(&bob),
            &commit,
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn gated_repositories_need_an_accepted_request_to_download(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "g", "public").await;
    app.commit_files(&alice, "alice/g", &[("w.bin", b"weights")])
        .await;
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/alice/g",
            Some(&alice),
            &json!({"gated": "sometimes"}),
        )
        .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-gating").await;
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/alice/g",
            Some(&alice),
            &json!({"gated": "auto"}),
        )
        .await;
    assert_eq!(expect_status(res, StatusCode::OK).await["gated"], "auto");

    // Listing stays open; file bytes do not.
    expect_status(
        app.get("/api/v1/repos/alice/g/tree/main", None).await,
        StatusCode::OK,
    )
    .await;
    let res = app.get("/alice/g/resolve/main/w.bin", None).await;
    assert_eq!(res.headers()["x-error-code"], "GatedRepo");
    expect_error(res, StatusCode::UNAUTHORIZED, "gated").await;
    expect_error(
        app.get("/alice/g/resolve/main/w.bin", Some(&bob)).await,
        StatusCode::FORBIDDEN,
        "gated",
    )
    .await;
    // Auto gating accepts at once; the decision is audited and visible to the owner.
    let res = app
        .post_json(
            "/api/v1/repos/alice/g/access-request",
            Some(&bob),
            &json!({}),
        )
        .await;
    assert_eq!(
        expect_status(res, StatusCode::OK).await["status"],
        "accepted"
    );
    let res = app.get("/alice/g/resolve/main/w.bin", Some(&bob)).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"weights");
    let requests = expect_status(
        app.get("/api/v1/repos/alice/g/access-requests", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(requests[0]["user"], "bob");
    expect_error(
        app.get("/api/v1/repos/alice/g/access-requests", Some(&bob))
            .await,
        StatusCode::FORBIDDEN,
        "insufficient-role",
    )
    .await;
    // An admin can revoke.
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/g/access-requests/bob",
            Some(&alice),
            &json!({"status": "rejected"}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    expect_error(
        app.get("/alice/g/resolve/main/w.bin", Some(&bob)).await,
        StatusCode::FORBIDDEN,
        "gated",
    )
    .await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'access.%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["access.request", "access.decide"]);
    // Ungated repositories refuse requests.
    app.create_repo(&alice, "alice", "open", "public").await;
    let res = app
        .post_json(
            "/api/v1/repos/alice/open/access-request",
            Some(&bob),
            &json!({}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "not-gated").await;
}
