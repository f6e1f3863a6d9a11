//! Mirror records: which repositories came from an upstream hub, and the upstream commit each
//! mirrored commit holds.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Mirrored {
    pub repository_id: i64,
    pub upstream: String,
    pub upstream_repo: String,
    pub synced_at: DateTime<Utc>,
}

pub async fn find(conn: &mut PgConnection, repository_id: i64) -> sqlx::Result<Option<Mirrored>> {
    sqlx::query_as("SELECT * FROM mirrored_repos WHERE repository_id = $1")
        .bind(repository_id)
        .fetch_optional(conn)
        .await
}

pub async fn record_repo(
    conn: &mut PgConnection,
    repository_id: i64,
    upstream: &str,
    upstream_repo: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mirrored_repos (repository_id, upstream, upstream_repo) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id) DO UPDATE SET synced_at = now()",
    )
    .bind(repository_id)
    .bind(upstream)
    .bind(upstream_repo)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn record_commit(
    conn: &mut PgConnection,
    repository_id: i64,
    upstream_commit: &str,
    commit_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mirrored_commits (repository_id, upstream_commit, commit_id) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, upstream_commit) DO NOTHING",
    )
    .bind(repository_id)
    .bind(upstream_commit)
    .bind(commit_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The local commit holding an upstream commit.
pub async fn local_commit(
    conn: &mut PgConnection,
    repository_id: i64,
    upstream_commit: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT commit_id FROM mirrored_commits WHERE repository_id = $1 AND upstream_commit = $2",
    )
    .bind(repository_id)
    .bind(upstream_commit)
    .fetch_optional(conn)
    .await
}

/// Every mirrored repository with its name and latest fetch, for `kaiyuan mirror status`.
pub async fn status(
    conn: &mut PgConnection,
) -> sqlx::Result<Vec<(String, String, DateTime<Utc>, i64)>> {
    sqlx::query_as(
        "SELECT r.full_name, m.upstream, m.synced_at,
                (SELECT count(*) FROM mirrored_commits c WHERE c.repository_id = m.repository_id)
         FROM mirrored_repos m JOIN repositories r ON r.id = m.repository_id
         WHERE r.deleted_at IS NULL ORDER BY r.full_name",
    )
    .fetch_all(conn)
    .await
}

/// Records why the mirror refuses to serve a mirrored commit.
pub async fn refuse(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mirrored_commits SET refusal = $3 WHERE repository_id = $1 AND commit_id = $2",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why the mirror refuses to serve this commit, if it does.
pub async fn refusal(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT refusal FROM mirrored_commits WHERE repository_id = $1 AND commit_id = $2 AND refusal IS NOT NULL LIMIT 1",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_optional(conn)
    .await
}
