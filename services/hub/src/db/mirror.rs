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
    pub last_used_at: DateTime<Utc>,
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
         ON CONFLICT (repository_id) DO UPDATE SET synced_at = now(), last_used_at = now()",
    )
    .bind(repository_id)
    .bind(upstream)
    .bind(upstream_repo)
    .execute(conn)
    .await?;
    Ok(())
}

/// A licence decision on a mirrored commit: why it is refused (if it is), and the key of the
/// licence gate that decided it (`None`: no gate).
pub struct Verdict<'a> {
    pub refusal: Option<&'a str>,
    pub policy_key: Option<&'a str>,
}

/// Records a mirrored commit with its licence verdict.
pub async fn record_commit(
    conn: &mut PgConnection,
    repository_id: i64,
    upstream_commit: &str,
    commit_id: &str,
    verdict: &Verdict<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mirrored_commits (repository_id, upstream_commit, commit_id, refusal, policy_key)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (repository_id, upstream_commit) DO NOTHING",
    )
    .bind(repository_id)
    .bind(upstream_commit)
    .bind(commit_id)
    .bind(verdict.refusal)
    .bind(verdict.policy_key)
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

/// Whether `commit_id` is a mirrored commit of the repository (not, say, its first, empty one).
pub async fn holds(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mirrored_commits WHERE repository_id = $1 AND commit_id = $2)",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_one(conn)
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

/// The mirrored commits of a repository decided under another licence gate than `policy_key`.
pub async fn stale_verdicts(
    conn: &mut PgConnection,
    repository_id: i64,
    policy_key: Option<&str>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT commit_id FROM mirrored_commits
         WHERE repository_id = $1 AND policy_key IS DISTINCT FROM $2",
    )
    .bind(repository_id)
    .bind(policy_key)
    .fetch_all(conn)
    .await
}

/// Locks a mirrored commit's verdict for an update: its refusal and the key it was decided
/// under, or `None` if it is not a mirrored commit.
pub async fn lock_verdict(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Option<(Option<String>, Option<String>)>> {
    sqlx::query_as(
        "SELECT refusal, policy_key FROM mirrored_commits
         WHERE repository_id = $1 AND commit_id = $2 LIMIT 1 FOR UPDATE",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_optional(conn)
    .await
}

/// Replaces a mirrored commit's licence verdict.
pub async fn set_verdict(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    verdict: &Verdict<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mirrored_commits SET refusal = $3, policy_key = $4
         WHERE repository_id = $1 AND commit_id = $2",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(verdict.refusal)
    .bind(verdict.policy_key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why the mirror refuses to serve these bytes of the repository, if it does: every commit
/// of it that holds them is refused. Bytes that a served commit also holds are served.
pub async fn bytes_refusal(
    conn: &mut PgConnection,
    repository_id: i64,
    sha256: &[u8],
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT m.refusal FROM commit_files f
         JOIN mirrored_commits m ON m.repository_id = f.repository_id AND m.commit_id = f.commit_id
         WHERE f.repository_id = $1 AND f.sha256 = $2 AND m.refusal IS NOT NULL
           AND NOT EXISTS (
               SELECT 1 FROM commit_files g
               LEFT JOIN mirrored_commits n
                 ON n.repository_id = g.repository_id AND n.commit_id = g.commit_id
               WHERE g.repository_id = $1 AND g.sha256 = $2 AND n.refusal IS NULL)
         LIMIT 1",
    )
    .bind(repository_id)
    .bind(sha256)
    .fetch_optional(conn)
    .await
}

/// Notes a read of a mirrored repository (at most one write a minute per repository).
pub async fn touch(conn: &mut PgConnection, repository_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mirrored_repos SET last_used_at = now()
         WHERE repository_id = $1 AND last_used_at < now() - interval '1 minute'",
    )
    .bind(repository_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Bytes of the distinct files that mirrored repositories hold.
pub async fn usage(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(b.size), 0)::bigint FROM blobs b
         WHERE b.sha256 IN (SELECT f.sha256 FROM commit_files f
                            JOIN mirrored_repos m ON m.repository_id = f.repository_id)",
    )
    .fetch_one(conn)
    .await
}

/// Mirrored repositories that hold content, least recently read first.
pub async fn least_recently_used(conn: &mut PgConnection) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT m.repository_id, r.full_name FROM mirrored_repos m
         JOIN repositories r ON r.id = m.repository_id
         WHERE EXISTS (SELECT 1 FROM commit_files f WHERE f.repository_id = m.repository_id)
         ORDER BY m.last_used_at, m.repository_id",
    )
    .fetch_all(conn)
    .await
}

/// Drops a mirrored repository's content (refs, commits, grants, mirrored commits), keeping
/// the repository, so that the next read fetches it again. Files no commit references any more
/// are aged so that the next collection removes them.
pub async fn evict(conn: &mut PgConnection, repository_id: i64) -> sqlx::Result<()> {
    let held: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT DISTINCT sha256 FROM commit_files WHERE repository_id = $1")
            .bind(repository_id)
            .fetch_all(&mut *conn)
            .await?;
    for statement in [
        "DELETE FROM refs WHERE repository_id = $1",
        "DELETE FROM commits WHERE repository_id = $1",
        "DELETE FROM repository_uploads WHERE repository_id = $1",
        "DELETE FROM mirrored_commits WHERE repository_id = $1",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(repository_id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "UPDATE blobs SET last_seen_at = 'epoch' WHERE sha256 = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM commit_files f WHERE f.sha256 = blobs.sha256)",
    )
    .bind(&held)
    .execute(conn)
    .await?;
    Ok(())
}
