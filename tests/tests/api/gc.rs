//! Garbage collection of unreferenced blobs and purged repositories.

use kaiyuan_hub::gc;
use kaiyuan_storage::Sha256Digest;
use kaiyuan_tests::{Backend, expect_status, sha256_hex, spawn_app_with};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

async fn stored(app: &kaiyuan_tests::TestApp, bytes: &[u8]) -> bool {
    let digest: Sha256Digest = sha256_hex(bytes).parse().unwrap();
    app.store.blob_size(&digest).await.unwrap().is_some()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn collects_only_unreferenced_blobs_after_the_grace_period(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), Backend::Local, |_| {}).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(&alice, "alice/m", &[("kept.bin", b"referenced")])
        .await;
    expect_status(
        app.upload(&alice, "alice/m", b"orphan".to_vec(), None)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let mut settings = app.state.settings.gc.clone();

    // Within the grace period nothing goes.
    let report = gc::collect(&pool, &app.store, &settings).await.unwrap();
    assert_eq!(report.blobs_removed, 0);
    assert!(stored(&app, b"orphan").await);

    settings.blob_grace_secs = 0;
    sqlx::query("UPDATE blobs SET last_seen_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE repository_uploads SET uploaded_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let report = gc::collect(&pool, &app.store, &settings).await.unwrap();
    assert_eq!(report.blobs_removed, 1);
    assert!(!stored(&app, b"orphan").await);
    assert!(stored(&app, b"referenced").await);
    let got = app
        .get("/alice/m/resolve/main/kept.bin", None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), b"referenced");

    // A deleted repository is purged after its grace period, then its blobs go too.
    app.request(Method::DELETE, "/api/v1/repos/alice/m", Some(&alice))
        .send()
        .await
        .unwrap();
    let report = gc::collect(&pool, &app.store, &settings).await.unwrap();
    assert_eq!(
        (report.repositories_purged, report.blobs_removed),
        (0, 0),
        "soft-deleted data is kept during the grace period"
    );
    sqlx::query("UPDATE repositories SET deleted_at = now() - interval '31 days'")
        .execute(&pool)
        .await
        .unwrap();
    let report = gc::collect(&pool, &app.store, &settings).await.unwrap();
    assert_eq!(
        report.repositories_purged, 2,
        "both commits of the repository"
    );
    assert_eq!(report.blobs_removed, 1);
    assert!(!stored(&app, b"referenced").await);

    // Admins can trigger a collection through the API.
    let res = app
        .request(Method::POST, "/api/v1/admin/gc", Some(&app.admin_token))
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::OK).await;
    let res = app
        .request(Method::POST, "/api/v1/admin/gc", Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
