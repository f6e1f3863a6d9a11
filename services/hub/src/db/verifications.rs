//! Sample-inference verification results per commit (see `crate::verification`).

use super::types::VerificationStatus;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub const VERIFY_COMMIT: &str = crate::domain::task::Task::VERIFY_COMMIT;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerificationRow {
    pub commit_id: crate::commit_id::CommitId,
    pub status: VerificationStatus,
    pub requested_ep: String,
    pub files: serde_json::Value,
    pub worker: Option<String>,
    pub runs_started: i32,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Queues a verification of a commit in the caller's transaction; `pending` until a worker takes
/// it. `ep` is `any`, `cpu` or `cuda`; `cuda` jobs go only to GPU workers.
pub async fn enqueue(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    models: &[String],
    ep: &str,
    request_id: Option<&str>,
) -> sqlx::Result<()> {
    let files: Vec<serde_json::Value> = models
        .iter()
        .map(|p| serde_json::json!({"path": p, "status": "pending"}))
        .collect();
    sqlx::query(
        "INSERT INTO model_verifications (repository_id, commit_id, status, requested_ep, files)
         VALUES ($1, $2, 'pending', $3, $4)
         ON CONFLICT (repository_id, commit_id) DO UPDATE
         SET status = 'pending', requested_ep = $3, files = $4, queued_at = now(), finished_at = NULL",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(ep)
    .bind(serde_json::Value::Array(files))
    .execute(&mut *conn)
    .await?;
    let requires = (ep == "cuda").then_some("gpu");
    sqlx::query("INSERT INTO jobs (kind, payload, request_id, requires) VALUES ($1, $2, $3, $4)")
        .bind(VERIFY_COMMIT)
        .bind(serde_json::json!({"repository_id": repository_id, "commit_id": commit_id, "ep": ep}))
        .bind(request_id)
        .bind(requires)
        .execute(&mut *conn)
        .await?;
    super::jobs::notify(conn, VERIFY_COMMIT).await
}

pub async fn get(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Option<VerificationRow>> {
    sqlx::query_as(
        "SELECT commit_id, status, requested_ep, files, worker, runs_started, queued_at, started_at, finished_at
         FROM model_verifications WHERE repository_id = $1 AND commit_id = $2",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_optional(conn)
    .await
}

pub async fn mark_running(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    worker: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE model_verifications SET status = 'running', worker = $3, started_at = now(),
                runs_started = runs_started + 1,
                files = (SELECT coalesce(jsonb_agg(f || '{\"status\": \"running\"}'), '[]')
                         FROM jsonb_array_elements(files) f)
         WHERE repository_id = $1 AND commit_id = $2",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the result: one row per commit, so a job run twice leaves one result.
pub async fn finish(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    status: VerificationStatus,
    files: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE model_verifications SET status = $3, files = $4, finished_at = now()
         WHERE repository_id = $1 AND commit_id = $2",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(status)
    .bind(files)
    .execute(conn)
    .await?;
    Ok(())
}
