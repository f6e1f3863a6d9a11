//! Downloads through `/{namespace}/{name}/resolve/{revision}/{path}` on both store backends.

use kaiyuan_tests::{
    Backend, TestApp, expect_error, expect_status, pseudo_random_bytes, sha256_hex, spawn_app_with,
};
use reqwest::{Method, StatusCode, header};
use sqlx::PgPool;

async fn publish(app: &TestApp, bytes: &[u8]) -> (String, String) {
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let up = expect_status(
        app.upload(&alice, "alice/m", bytes.to_vec(), Some(&sha256_hex(bytes)))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let made = expect_status(
        app.post_json("/api/v1/repos/alice/m/commits/main", Some(&alice), &serde_json::json!({"message": "w", "operations": [
            {"op": "put", "path": "dir/model.onnx", "sha256": up["sha256"]}, {"op": "put", "path": "config.json", "content_base64": "e30="}]}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    (alice, made["id"].as_str().unwrap().to_string())
}

async fn download_contract(pool: PgPool, backend: Backend) {
    let app = spawn_app_with(pool, backend, |_| {}).await;
    let bytes = pseudo_random_bytes(10 * 1024 * 1024 + 17, 5);
    let (_, commit) = publish(&app, &bytes).await;
    let etag = format!("\"{}\"", sha256_hex(&bytes));

    for revision in ["main", commit.as_str()] {
        let res = app
            .get(&format!("/alice/m/resolve/{revision}/dir/model.onnx"), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers().clone();
        assert_eq!(h[header::ETAG], etag.as_str());
        assert_eq!(h[header::CONTENT_LENGTH], bytes.len().to_string().as_str());
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(h["x-repo-commit"], commit.as_str());
        assert!(h.contains_key("x-request-id"));
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "bytes are exact"
        );
    }
    let res = app.get("/alice/m/resolve/main/config.json", None).await;
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"{}");

    // HEAD: same headers, no body.
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/dir/model.onnx", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ETAG], etag.as_str());
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );
    assert!(res.bytes().await.unwrap().is_empty());

    // Single ranges.
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/dir/model.onnx", None)
        .header(header::RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "1000");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/dir/model.onnx", None)
        .header(header::RANGE, "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 10..]
    );
    let resume_from = 9 * 1024 * 1024;
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/dir/model.onnx", None)
        .header(header::RANGE, format!("bytes={resume_from}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes[resume_from..],
        "resume returns the tail"
    );
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/dir/model.onnx", None)
        .header(header::RANGE, format!("bytes={}-", bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE],
        format!("bytes */{}", bytes.len()).as_str()
    );

    // Conditional requests.
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/dir/model.onnx", None)
        .header(header::IF_NONE_MATCH, etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()[header::ETAG], etag.as_str());
    assert!(res.bytes().await.unwrap().is_empty());
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/dir/model.onnx", None)
        .header(header::IF_NONE_MATCH, "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Unknown revision, missing file, missing repository: distinct codes.
    expect_error(
        app.get("/alice/m/resolve/nope/dir/model.onnx", None).await,
        StatusCode::NOT_FOUND,
        "revision-not-found",
    )
    .await;
    expect_error(
        app.get(
            &format!("/alice/m/resolve/{}/dir/model.onnx", "0".repeat(40)),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "revision-not-found",
    )
    .await;
    expect_error(
        app.get("/alice/m/resolve/main/dir/missing.onnx", None)
            .await,
        StatusCode::NOT_FOUND,
        "entry-not-found",
    )
    .await;
    expect_error(
        app.get("/alice/nope/resolve/main/x", None).await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kaiyuan_bytes_sent_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        sent >= 2 * bytes.len() as u64,
        "bytes out are counted: {sent}"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn local_store_downloads(pool: PgPool) {
    download_contract(pool, Backend::Local).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn s3_store_downloads(pool: PgPool) {
    download_contract(pool, Backend::S3).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn s3_downloads_can_redirect_to_presigned_urls(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::S3, |s| {
        s.downloads.presigned_redirects = true
    })
    .await;
    let bytes = pseudo_random_bytes(50_000, 6);
    publish(&app, &bytes).await;
    let res = app.get("/alice/m/resolve/main/dir/model.onnx", None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()[header::ETAG],
        format!("\"{}\"", sha256_hex(&bytes)).as_str()
    );
    let location = res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert!(location.contains("X-Amz-Signature"), "{location}");
    let fetched = reqwest::get(&location).await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // HEAD still answers locally with the metadata.
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/dir/model.onnx", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
