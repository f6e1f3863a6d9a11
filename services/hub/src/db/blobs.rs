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

/// One batch of the collector's walk over the candidates (migration 0028).
#[derive(Debug, Default)]
pub struct CollectedBatch {
    /// The batch's last digest, where the next batch starts; none when the walk is done.
    pub last: Option<Vec<u8>>,
    /// The digests whose rows were deleted (whose bytes the caller then deletes).
    pub removed: Vec<Vec<u8>>,
}

/// One batch, each step an index probe per candidate (arrays and scalar subqueries, so that
/// PostgreSQL cannot hash a whole table per batch): each candidate's blob is looked up and, if
/// it exists, probed for references. Stale unreferenced blobs are deleted (their row locked and
/// its age checked again under the lock, so an upload refreshing it or a commit referencing it
/// wins). A candidate is settled when its blob is gone, deleted or referenced, unless someone
/// touched it meanwhile; a young unreferenced blob (an upload not committed yet) stays one.
const COLLECT_BATCH: &str = "WITH batch AS MATERIALIZED (
         SELECT c.sha256, c.touches,
                (SELECT b.last_seen_at FROM blobs b WHERE b.sha256 = c.sha256) AS seen
         FROM blob_gc_candidates c WHERE c.sha256 > $1 ORDER BY c.sha256 LIMIT $2
     ), checked AS MATERIALIZED (
         SELECT sha256, touches, seen,
                EXISTS (SELECT 1 FROM commit_files f WHERE f.sha256 = batch.sha256)
                 OR EXISTS (SELECT 1 FROM repository_uploads u WHERE u.sha256 = batch.sha256)
                 OR EXISTS (SELECT 1 FROM report_attachments a WHERE a.sha256 = batch.sha256) AS referenced
         FROM batch WHERE seen IS NOT NULL
     ), doomed AS (
         SELECT b.sha256 FROM blobs b
         WHERE b.sha256 = ANY (ARRAY(SELECT sha256 FROM checked
                                     WHERE NOT referenced AND seen < now() - make_interval(secs => $3)))
           AND b.last_seen_at < now() - make_interval(secs => $3)
         FOR UPDATE OF b SKIP LOCKED
     ), gone AS (
         DELETE FROM blobs d WHERE d.sha256 = ANY (ARRAY(SELECT sha256 FROM doomed))
         RETURNING d.sha256
     ), settle AS MATERIALIZED (
         SELECT sha256, touches FROM batch WHERE seen IS NULL
         UNION ALL
         SELECT sha256, touches FROM checked
         WHERE referenced OR sha256 = ANY (ARRAY(SELECT sha256 FROM gone))
     ), settled AS (
         DELETE FROM blob_gc_candidates c
         WHERE c.sha256 = ANY (ARRAY(SELECT sha256 FROM settle))
           AND (c.sha256, c.touches) IN (SELECT sha256, touches FROM settle)
     )
     SELECT (SELECT sha256 FROM batch ORDER BY sha256 DESC LIMIT 1),
            COALESCE((SELECT array_agg(sha256) FROM gone), '{}')";

/// Walks the collection candidates in digest order from after `after`, `batch` at a time:
/// deletes the rows of blobs that nothing references and nothing touched within `grace_secs`.
/// Only blobs that were added or lost a reference since they were last settled are candidates,
/// so a run costs in proportion to what changed, not to what is stored, and holds one batch in
/// memory.
pub async fn collect_batch(
    conn: &mut PgConnection,
    after: &[u8],
    batch: i64,
    grace_secs: u64,
) -> sqlx::Result<CollectedBatch> {
    let (last, removed): (Option<Vec<u8>>, Vec<Vec<u8>>) = sqlx::query_as(COLLECT_BATCH)
        .bind(after)
        .bind(batch)
        .bind(grace_secs as f64)
        .fetch_one(conn)
        .await?;
    Ok(CollectedBatch { last, removed })
}

/// PostgreSQL's plan (`EXPLAIN`) for [`collect_batch`], for the tests that hold it to its indexes.
pub async fn explain_collect_batch(conn: &mut PgConnection, batch: i64) -> sqlx::Result<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {COLLECT_BATCH}")))
            .bind(&[][..] as &[u8])
            .bind(batch)
            .bind(0f64)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(line,)| line + "\n").collect())
}
