//! The PostgreSQL job queue: claims, leases, retries, permanent failures and wake-ups.

use std::time::Duration;

use kaiyuan_hub::config::Workers;
use kaiyuan_hub::db;
use kaiyuan_hub::jobs::{self, JobContext};
use kaiyuan_tests::{Backend, test_store};
use sqlx::PgPool;

fn context(pool: &PgPool) -> (JobContext, Option<tempfile::TempDir>) {
    let (store, guard) = test_store(Backend::Local);
    (
        JobContext {
            db: pool.clone(),
            store,
            settings: std::sync::Arc::new(kaiyuan_hub::config::Settings::default()),
        },
        guard,
    )
}

async fn enqueue(pool: &PgPool, kind: &str, payload: serde_json::Value) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    db::jobs::enqueue_raw(&mut conn, kind, &payload, Some("req-1"))
        .await
        .unwrap()
}

async fn job(pool: &PgPool, id: i64) -> db::jobs::Job {
    let mut conn = pool.acquire().await.unwrap();
    db::jobs::get(&mut conn, id).await.unwrap().unwrap()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn concurrent_claims_never_share_a_job(pool: PgPool) {
    for i in 0..20 {
        enqueue(&pool, "test", serde_json::json!({"i": i})).await;
    }
    let claims = (0..8).map(|w| {
        let pool = pool.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let mut conn = pool.acquire().await.unwrap();
                match db::jobs::claim(&mut conn, &format!("w{w}"), 60, false)
                    .await
                    .unwrap()
                {
                    Some(job) => mine.push(job.id),
                    None => break mine,
                }
            }
        }
    });
    let mut all: Vec<i64> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, 20);
    assert_eq!(all.len(), 20, "each job claimed exactly once");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn expired_leases_are_reclaimed_and_heartbeats_keep_them(pool: PgPool) {
    let id = enqueue(&pool, "test", serde_json::json!({})).await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        db::jobs::claim(&mut conn, "dead-worker", 60, false)
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    assert!(
        db::jobs::claim(&mut conn, "other", 60, false)
            .await
            .unwrap()
            .is_none(),
        "leased jobs are not claimable"
    );
    assert!(
        db::jobs::heartbeat(&mut conn, id, "dead-worker", 60)
            .await
            .unwrap()
    );
    assert!(
        !db::jobs::heartbeat(&mut conn, id, "impostor", 60)
            .await
            .unwrap()
    );
    sqlx::query("UPDATE jobs SET lease_until = now() - interval '1 second'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let reclaimed = db::jobs::claim(&mut conn, "other", 60, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((reclaimed.id, reclaimed.attempts), (id, 2));
    assert!(
        !db::jobs::heartbeat(&mut conn, id, "dead-worker", 60)
            .await
            .unwrap(),
        "the old worker lost its lease"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn failures_retry_with_backoff_then_stay_failed(pool: PgPool) {
    let (ctx, _guard) = context(&pool);
    // A commit that does not exist: the handler finds no files and succeeds trivially, so use a
    // payload that cannot be parsed for a permanent failure, and an unknown kind too.
    let bad_payload = enqueue(&pool, jobs::COMMIT_CREATED, serde_json::json!({"nope": 1})).await;
    let unknown = enqueue(&pool, "no-such-kind", serde_json::json!({})).await;
    assert_eq!(jobs::run_until_idle(&ctx, 30).await.unwrap(), 2);
    for id in [bad_payload, unknown] {
        let job = job(&pool, id).await;
        assert_eq!(job.state.as_str(), "failed", "{job:?}");
        assert_eq!(job.attempts, 1, "permanent failures are not retried");
        assert!(job.last_error.is_some() && job.finished_at.is_some());
    }

    // A commit whose blob is missing from the store is retried later, not lost.
    let pool2 = pool.clone();
    sqlx::query("INSERT INTO namespaces (id, name, kind) VALUES (100, 'u', 'user')")
        .execute(&pool2)
        .await
        .unwrap();
    sqlx::query("INSERT INTO repositories (id, namespace_id, name, visibility) VALUES (100, 100, 'r', 'public')").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO blobs (sha256, size) VALUES ($1, 3)")
        .bind(vec![9u8; 32])
        .execute(&pool)
        .await
        .unwrap();
    let commit = "a".repeat(40);
    sqlx::query("INSERT INTO commits (repository_id, id, author_id, author_name, message, created_at, file_count, total_size) VALUES (100, $1, 100, 'u', 'm', now(), 1, 3)")
        .bind(&commit).execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO commit_files (repository_id, commit_id, path, sha256, size) VALUES (100, $1, 'x', $2, 3)")
        .bind(&commit).bind(vec![9u8; 32]).execute(&pool).await.unwrap();
    let retried = enqueue(
        &pool,
        jobs::COMMIT_CREATED,
        serde_json::json!({"repository_id": 100, "commit_id": commit}),
    )
    .await;
    assert_eq!(jobs::run_until_idle(&ctx, 30).await.unwrap(), 1);
    let job = job(&pool, retried).await;
    assert_eq!(job.state.as_str(), "queued");
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("missing from the store")
    );
    assert!(
        job.run_after > chrono::Utc::now(),
        "backoff delays the retry"
    );
    assert_eq!(
        jobs::run_until_idle(&ctx, 30).await.unwrap(),
        0,
        "not runnable before its backoff"
    );
    // Out of attempts: failed for good, kept for inspection.
    sqlx::query("UPDATE jobs SET run_after = now(), attempts = max_attempts - 1 WHERE id = $1")
        .bind(retried)
        .execute(&pool)
        .await
        .unwrap();
    jobs::run_until_idle(&ctx, 30).await.unwrap();
    assert_eq!(job_state(&pool, retried).await, "failed");
}

async fn job_state(pool: &PgPool, id: i64) -> String {
    job(pool, id).await.state.to_string()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn notify_wakes_an_idle_worker(pool: PgPool) {
    let (ctx, _guard) = context(&pool);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Polling every 10 minutes: only the notification can make it run the job quickly.
    let settings = Workers {
        in_process: 1,
        lease_secs: 30,
        poll_secs: 600,
    };
    let worker = tokio::spawn(jobs::run_worker(ctx, settings, 0, stop_rx));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = enqueue(&pool, "no-such-kind", serde_json::json!({})).await;
    let mut state = String::new();
    for _ in 0..50 {
        state = job_state(&pool, id).await;
        if state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "failed", "the worker woke up and ran the job");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("worker stops")
        .unwrap();
}
