//! Operational endpoints and the error envelope.

use kaiyuan_tests::{expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn health_readiness_and_metrics(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_eq!(
        expect_status(app.get("/healthz", None).await, StatusCode::OK).await["status"],
        "ok"
    );
    let ready = expect_status(app.get("/readyz", None).await, StatusCode::OK).await;
    assert_eq!(ready, serde_json::json!({"database": "ok", "store": "ok"}));
    app.get("/api/v1/repos/nobody/nothing", None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains("kaiyuan_http_requests_total{method=\"GET\",route=\"/api/v1/repos/{namespace}/{name}\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(text.contains(
        "kaiyuan_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1"
    ));
    assert!(text.contains("kaiyuan_jobs{state=\"queued\"} 0"));
    assert!(text.contains("kaiyuan_bytes_received_total 0"));
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn readiness_fails_when_the_database_is_gone(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    pool.close().await;
    let res = app.get("/readyz", None).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["database"]
            .as_str()
            .unwrap()
            .starts_with("unavailable")
    );
    assert_eq!(body["store"], "ok");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn openapi_document_describes_the_api(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc = expect_status(app.get("/api/v1/openapi.json", None).await, StatusCode::OK).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/repos",
        "/api/v1/repos/{namespace}/{name}/commits/{branch}",
        "/{namespace}/{name}/resolve/{revision}/{path}",
        "/api/v1/tokens",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn errors_are_json_with_codes_and_request_ids(pool: PgPool) {
    let app = spawn_app(pool).await;
    expect_error(
        app.get("/no/such/route/at/all/here", None).await,
        StatusCode::NOT_FOUND,
        "route-not-found",
    )
    .await;
    let res = app
        .request(Method::POST, "/api/v1/repos", Some(&app.admin_token))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-json").await;
    let res = app
        .request(Method::POST, "/api/v1/repos", Some(&app.admin_token))
        .body("name=x")
        .send()
        .await
        .unwrap();
    expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    expect_error(
        app.get("/api/v1/admin/jobs?limit=many", Some(&app.admin_token))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid-query",
    )
    .await;
    let res = app
        .request(
            Method::DELETE,
            "/api/v1/tokens/not-a-number",
            Some(&app.admin_token),
        )
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    // A client-supplied request id is echoed so logs join across services.
    let res = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-123");
    let res = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");
}

/// A client that pauses between requests (reading, hashing, validating) reuses its
/// connection: the server must not close idle connections after a few seconds (actix's
/// default of 5 s raced with clients' next request, which then failed as an incomplete
/// message). Checked on a raw socket, where a closed connection cannot be hidden by a retry.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn idle_connections_survive_a_pause_between_requests(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(pool).await;
    let address = app.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    let mut buf = vec![0u8; 4096];
    for round in 0..2 {
        socket.write_all(request.as_bytes()).await.unwrap();
        let n = socket.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head:?}");
        if round == 0 {
            tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        }
    }
}
