//! Users, tokens, organisations and roles.

use kaiyuan_tests::{expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn admin_creates_users_whose_tokens_work(pool: PgPool) {
    let app = spawn_app(pool).await;
    let token = app.create_user("alice").await;
    assert!(token.starts_with("ky_"));
    let me = expect_status(
        app.get("/api/v1/whoami", Some(&token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["name"], "alice");
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["token_scope"], "write");

    // Only admins create users; names are unique case-insensitively.
    let res = app
        .post_json("/api/v1/users", Some(&token), &json!({"name": "mallory"}))
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "admin-required").await;
    let res = app
        .post_json(
            "/api/v1/users",
            Some(&app.admin_token),
            &json!({"name": "ALICE"}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "name-taken").await;
    let res = app
        .post_json(
            "/api/v1/users",
            Some(&app.admin_token),
            &json!({"name": "../x"}),
        )
        .await;
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-name").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn tokens_are_hashed_scoped_listed_and_revocable(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let token = app.create_user("bob").await;
    let created = expect_status(
        app.post_json(
            "/api/v1/tokens",
            Some(&token),
            &json!({"name": "ci", "scope": "read", "expires_in_days": 30}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let read_token = created["token"].as_str().unwrap().to_string();
    assert!(created["expires_at"].is_string());

    // At rest only the sha256 of the secret exists.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|h| h.len() == 32));
    let expected_hash = hex::decode(kaiyuan_tests::sha256_hex(read_token.as_bytes())).unwrap();
    assert!(stored.contains(&expected_hash));
    let as_text: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE encode(token_hash, 'escape') LIKE '%ky_%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(as_text, 0);

    let me = expect_status(
        app.get("/api/v1/whoami", Some(&read_token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["token_scope"], "read");
    // A read token cannot create tokens or repositories.
    let res = app
        .post_json(
            "/api/v1/tokens",
            Some(&read_token),
            &json!({"name": "x", "scope": "write"}),
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "token-read-only").await;

    let list = expect_status(
        app.get("/api/v1/tokens", Some(&token)).await,
        StatusCode::OK,
    )
    .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|t| t.get("token").is_none()),
        "secrets are never listed"
    );
    assert!(
        list.iter().any(|t| t["last_used_at"].is_string()),
        "use is recorded"
    );

    let id = created["id"].as_i64().unwrap();
    let res = app
        .request(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/api/v1/whoami", Some(&read_token)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid-token").await;
    // Another user cannot revoke bob's tokens.
    let other = app.create_user("carol").await;
    let res = app
        .request(Method::DELETE, "/api/v1/tokens/1", Some(&other))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "token-not-found").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn bad_and_expired_tokens_are_refused(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    expect_error(
        app.get("/api/v1/whoami", Some("ky_nope")).await,
        StatusCode::UNAUTHORIZED,
        "invalid-token",
    )
    .await;
    expect_error(
        app.get("/api/v1/whoami", None).await,
        StatusCode::UNAUTHORIZED,
        "authentication-required",
    )
    .await;
    let res = app
        .http
        .get(app.url("/api/v1/whoami"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid-authorization").await;
    let token = app.create_user("dave").await;
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    expect_error(
        app.get("/api/v1/whoami", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "invalid-token",
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn organisations_have_members_with_roles(pool: PgPool) {
    let app = spawn_app(pool).await;
    let owner = app.create_user("olga").await;
    let writer = app.create_user("will").await;
    let reader = app.create_user("rita").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&owner), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .post_json("/api/v1/orgs", Some(&writer), &json!({"name": "Acme"}))
        .await;
    expect_error(res, StatusCode::CONFLICT, "name-taken").await;

    for (user, role) in [("will", "write"), ("rita", "read")] {
        let res = app
            .send_json(
                Method::PUT,
                &format!("/api/v1/orgs/acme/members/{user}"),
                Some(&owner),
                &json!({"role": role}),
            )
            .await;
        expect_status(res, StatusCode::OK).await;
    }
    let members = expect_status(
        app.get("/api/v1/orgs/acme/members", Some(&reader)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        members,
        json!([{"name": "olga", "role": "owner"}, {"name": "rita", "role": "read"}, {"name": "will", "role": "write"}])
    );
    let me = expect_status(
        app.get("/api/v1/whoami", Some(&writer)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["orgs"], json!([{"name": "acme", "role": "write"}]));

    // A writer cannot manage members; outsiders cannot even see the member list.
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/orgs/acme/members/rita",
            Some(&writer),
            &json!({"role": "admin"}),
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;
    let outsider = app.create_user("otto").await;
    expect_error(
        app.get("/api/v1/orgs/acme/members", Some(&outsider)).await,
        StatusCode::NOT_FOUND,
        "org-not-found",
    )
    .await;

    // Members of an org can create repositories there according to their role.
    app.create_repo(&writer, "acme", "tiny", "public").await;
    let res = app
        .post_json(
            "/api/v1/repos",
            Some(&reader),
            &json!({"namespace": "acme", "name": "nope"}),
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "insufficient-role").await;

    // The last owner cannot leave or be demoted.
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/orgs/acme/members/olga",
            Some(&owner),
            &json!({"role": "read"}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "last-owner").await;
    let res = app
        .request(
            Method::DELETE,
            "/api/v1/orgs/acme/members/olga",
            Some(&owner),
        )
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::CONFLICT, "last-owner").await;
    // Members may leave; admins remove others.
    let res = app
        .request(
            Method::DELETE,
            "/api/v1/orgs/acme/members/rita",
            Some(&reader),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .request(
            Method::DELETE,
            "/api/v1/orgs/acme/members/will",
            Some(&owner),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let members = expect_status(
        app.get("/api/v1/orgs/acme/members", Some(&owner)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members.as_array().unwrap().len(), 1);
}
