//! The PostgreSQL job queue: enqueue inside the caller's transaction, claim with
//! `FOR UPDATE SKIP LOCKED`, hold a lease renewed by heartbeats, retry with backoff.

use crate::db::types::JobState;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// The channel that `NOTIFY` wakes idle workers on.
pub const CHANNEL: &str = "kaiyuan_jobs";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub last_error: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, kind, payload, state, attempts, max_attempts, run_after, last_error, request_id, created_at, finished_at";

/// Queues a job. Run it in the transaction that makes the change, so that the job exists exactly
/// when the change does; the notification is delivered when that transaction commits.
pub async fn enqueue(
    conn: &mut PgConnection,
    task: &crate::domain::task::Task,
    request_id: Option<&str>,
) -> sqlx::Result<i64> {
    enqueue_raw(conn, task.kind(), &task.payload(), request_id).await
}

/// Queues a job of any kind and payload, typed or not: the queue's own tests use it to show
/// what a worker does with a kind it does not know or a payload that does not fit.
pub async fn enqueue_raw(
    conn: &mut PgConnection,
    kind: &str,
    payload: &serde_json::Value,
    request_id: Option<&str>,
) -> sqlx::Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, request_id) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(kind)
    .bind(payload)
    .bind(request_id)
    .fetch_one(&mut *conn)
    .await?;
    notify(conn, kind).await?;
    Ok(id)
}

/// Wakes idle workers; delivered when the caller's transaction commits.
pub async fn notify(conn: &mut PgConnection, kind: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(kind)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims the next runnable job: a queued one that is due, or a running one whose lease expired
/// (its worker died). Concurrent workers never claim the same job.
///
/// Jobs that require a GPU (`requires = 'gpu'`) go only to workers with `gpu`.
pub async fn claim(
    conn: &mut PgConnection,
    worker: &str,
    lease_secs: i64,
    gpu: bool,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1,
                lease_until = now() + make_interval(secs => $2), updated_at = now()
         WHERE id = (
             SELECT id FROM jobs
             WHERE ((state = 'queued' AND run_after <= now())
                    OR (state = 'running' AND lease_until < now()))
               AND (requires IS NULL OR (requires = 'gpu' AND $3))
             ORDER BY priority, run_after, id
             FOR UPDATE SKIP LOCKED
             LIMIT 1)
         RETURNING {JOB_COLUMNS}"
    )))
    .bind(worker)
    .bind(lease_secs as f64)
    .bind(gpu)
    .fetch_optional(conn)
    .await
}

/// Extends the lease of a job this worker still holds; false when the lease was lost.
pub async fn heartbeat(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    lease_secs: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $3), updated_at = now()
         WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(lease_secs as f64)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn succeed(conn: &mut PgConnection, id: i64, worker: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'succeeded', lease_until = NULL, finished_at = now(),
                updated_at = now(), last_error = NULL
         WHERE id = $1 AND locked_by = $2",
    )
    .bind(id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failure: the job runs again after `retry_in_secs`, or fails for good (kept for
/// inspection) when it is out of attempts or `permanent`.
pub async fn fail(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
    permanent: bool,
    retry_in_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET
             state = CASE WHEN $4 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
             finished_at = CASE WHEN $4 OR attempts >= max_attempts THEN now() END,
             run_after = now() + make_interval(secs => $5),
             last_error = $3, lease_until = NULL, updated_at = now()
         WHERE id = $1 AND locked_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(error)
    .bind(permanent)
    .bind(retry_in_secs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a job back to wait for something else (a scan still running) without spending an
/// attempt.
pub async fn defer(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    reason: &str,
    secs: f64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0),
             run_after = now() + make_interval(secs => $4), last_error = $3,
             lease_until = NULL, updated_at = now()
         WHERE id = $1 AND locked_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(reason)
    .bind(secs)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    conn: &mut PgConnection,
    state: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR state = $1)
         ORDER BY id DESC LIMIT $2"
    )))
    .bind(state)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Job counts by state, for `/metrics`.
pub async fn counts_by_state(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
        .fetch_all(conn)
        .await
}
