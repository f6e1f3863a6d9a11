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
