//! Blob records and the proof-of-possession grants that let a commit reference a blob.

use sqlx::PgConnection;

/// Records that the hub holds a blob (or refreshes `last_seen_at`, which protects it from the
/// garbage collector while a commit referencing it is being made).
pub async fn upsert(conn: &mut PgConnection, sha256: &[u8], size: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO blobs (sha256, size) VALUES ($1, $2)
         ON CONFLICT (sha256) DO UPDATE SET last_seen_at = now()",
    )
    .bind(sha256)
    .bind(size)
    .execute(conn)
    .await?;
    Ok(())
}

/// Grants `repository_id` the right to reference the blob; true when it is a new grant.
pub async fn grant_upload(
    conn: &mut PgConnection,
    repository_id: i64,
    sha256: &[u8],
    user_id: i64,
) -> sqlx::Result<bool> {
    // `xmax = 0` only on the row version an INSERT created, not on one an UPDATE rewrote.
    sqlx::query_scalar(
        "INSERT INTO repository_uploads (repository_id, sha256, uploaded_by) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, sha256) DO UPDATE SET uploaded_at = now()
         RETURNING xmax = 0",
    )
    .bind(repository_id)
    .bind(sha256)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// The size of a blob that `repository_id` may reference: one uploaded to it or already in its
/// history. The blob row is share-locked so the collector cannot remove it before the commit lands.
pub async fn referenceable_size(
    conn: &mut PgConnection,
    repository_id: i64,
    sha256: &[u8],
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT b.size FROM blobs b
         WHERE b.sha256 = $2
           AND (EXISTS (SELECT 1 FROM repository_uploads u
                        WHERE u.repository_id = $1 AND u.sha256 = b.sha256)
                OR EXISTS (SELECT 1 FROM commit_files f
                           WHERE f.repository_id = $1 AND f.sha256 = b.sha256))
         FOR SHARE OF b",
    )
    .bind(repository_id)
    .bind(sha256)
    .fetch_optional(conn)
    .await
}

/// Whether any live repository references the blob (used by the download path and the GC).
pub async fn is_referenced(conn: &mut PgConnection, sha256: &[u8]) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM commit_files WHERE sha256 = $1)")
        .bind(sha256)
        .fetch_one(conn)
        .await
}

/// Marks a blob as just seen, which protects it from the collector for the grace period.
pub async fn touch(conn: &mut PgConnection, sha256: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE blobs SET last_seen_at = now() WHERE sha256 = $1")
        .bind(sha256)
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops upload grants no commit used within `grace_secs`.
pub async fn expire_grants(conn: &mut PgConnection, grace_secs: u64) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM repository_uploads WHERE uploaded_at < now() - make_interval(secs => $1)",
    )
    .bind(grace_secs as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the rows of up to 500 blobs that nothing references and nothing touched within
/// `grace_secs`, and returns their digests (whose bytes the caller then deletes).
pub async fn take_unreferenced(
    conn: &mut PgConnection,
    grace_secs: u64,
) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar(
        "DELETE FROM blobs WHERE sha256 IN (
             SELECT b.sha256 FROM blobs b
             WHERE b.last_seen_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM commit_files f WHERE f.sha256 = b.sha256)
               AND NOT EXISTS (SELECT 1 FROM repository_uploads u WHERE u.sha256 = b.sha256)
               AND NOT EXISTS (SELECT 1 FROM report_attachments a WHERE a.sha256 = b.sha256)
             LIMIT 500
             FOR UPDATE SKIP LOCKED)
         RETURNING sha256",
    )
    .bind(grace_secs as f64)
    .fetch_all(conn)
    .await
}
