//! Uploads: declared digests and sizes, limits, truncated bodies and dropped connections.

use std::time::Duration;

use kaiyuan_tests::{
    Backend, TestApp, expect_error, expect_status, pseudo_random_bytes, sha256_hex, spawn_app_with,
};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

async fn blob_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM blobs")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn assert_nothing_left(app: &TestApp, before: i64) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(blob_rows(app).await, before, "no blob was recorded");
    let grants: i64 = sqlx::query_scalar("SELECT count(*) FROM repository_uploads")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(grants, 0, "no upload grant was recorded");
    assert_eq!(
        app.store.collect_staging(Duration::ZERO).await.unwrap(),
        0,
        "the staging object was removed"
    );
}

/// Sends a request whose body stops after `sent` of `declared` bytes, then closes the socket.
async fn send_truncated(app: &TestApp, token: &str, declared: usize, sent: usize) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/repos/alice/m/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {declared}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all(&pseudo_random_bytes(sent, 1))
        .await
        .unwrap();
    socket.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(socket);
}

async fn upload_failures_leave_nothing(pool: PgPool, backend: Backend) {
    let app = spawn_app_with(pool, backend, |s| s.limits.max_file_size = 1024 * 1024).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let before = blob_rows(&app).await;

    let bytes = pseudo_random_bytes(100_000, 2);
    let res = app
        .upload(&alice, "alice/m", bytes.clone(), Some(&"00".repeat(32)))
        .await;
    let message = expect_error(res, StatusCode::BAD_REQUEST, "digest-mismatch").await;
    assert!(
        message.contains(&sha256_hex(&bytes)),
        "names the actual digest: {message}"
    );
    assert_nothing_left(&app, before).await;

    let res = app
        .request(Method::POST, "/api/v1/repos/alice/m/uploads", Some(&alice))
        .header("x-expected-size", "5")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "size-mismatch").await;
    let res = app
        .upload(&alice, "alice/m", bytes.clone(), Some("not-a-digest"))
        .await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid-sha256").await;

    // Over the limit: refused from Content-Length before reading, and while streaming without it.
    let res = app
        .upload(
            &alice,
            "alice/m",
            pseudo_random_bytes(2 * 1024 * 1024, 3),
            None,
        )
        .await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    let chunks = futures_util::stream::iter(
        (0..40).map(|i| Ok::<_, std::io::Error>(pseudo_random_bytes(64 * 1024, i))),
    );
    let res = app
        .request(Method::POST, "/api/v1/repos/alice/m/uploads", Some(&alice))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(res) = res {
        // The server may close the connection after answering; when the answer arrives, it is 413.
        expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    }
    assert_nothing_left(&app, before).await;

    // A body cut short, and a client that goes away mid-upload.
    send_truncated(&app, &alice, 900_000, 300_000).await;
    send_truncated(&app, &alice, 900_000, 0).await;
    assert_nothing_left(&app, before).await;

    // After all that, a good upload still works and is stored once.
    let ok = expect_status(
        app.upload(&alice, "alice/m", bytes.clone(), Some(&sha256_hex(&bytes)))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(ok["newly_stored"], true);
    let again = expect_status(
        app.upload(&alice, "alice/m", bytes.clone(), None).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again["newly_stored"], false);
    assert_eq!(blob_rows(&app).await, before + 1);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn local_upload_failures_leave_nothing(pool: PgPool) {
    upload_failures_leave_nothing(pool, Backend::Local).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn s3_upload_failures_leave_nothing(pool: PgPool) {
    upload_failures_leave_nothing(pool, Backend::S3).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn oversized_json_and_inline_files_get_413(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::Local, |s| {
        s.limits.max_json_body = 10_000;
        s.limits.max_file_size = 100;
    })
    .await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let big = serde_json::json!({"message": "x".repeat(20_000)});
    let res = app
        .post_json("/api/v1/repos/alice/m/commits/main", Some(&alice), &big)
        .await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "request-too-large").await;
    let res = app
        .post_json(
            "/api/v1/repos",
            Some(&alice),
            &serde_json::json!({"name": "x".repeat(20_000)}),
        )
        .await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "request-too-large").await;
    let inline = serde_json::json!({"message": "m", "operations": [{"op": "put", "path": "a", "content_base64": "A".repeat(400)}]});
    let res = app
        .post_json("/api/v1/repos/alice/m/commits/main", Some(&alice), &inline)
        .await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
}
