//! The transparency log's storage: append (serialised by an advisory lock held until the
//! caller's transaction ends), entries by index, and the leaf hashes of a tree size.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Arbitrary, fixed: the advisory lock that orders appends.
const APPEND_LOCK: i64 = 0x006b_6169_796c_6f67;

/// Appends a body; call inside the transaction that makes the change it records.
pub async fn append(
    conn: &mut PgConnection,
    body: &[u8],
    leaf_hash: &[u8; 32],
) -> sqlx::Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    let index: i64 = sqlx::query_scalar("SELECT COALESCE(max(idx) + 1, 0) FROM log_entries")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO log_entries (idx, body, leaf_hash) VALUES ($1, $2, $3)")
        .bind(index)
        .bind(body)
        .bind(leaf_hash.as_slice())
        .execute(conn)
        .await?;
    Ok(index)
}

pub async fn size(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(conn)
        .await
}

/// Leaf hashes of the first `size` entries, in order.
pub async fn leaf_hashes(conn: &mut PgConnection, size: i64) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar("SELECT leaf_hash FROM log_entries WHERE idx < $1 ORDER BY idx")
        .bind(size)
        .fetch_all(conn)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub idx: i64,
    pub body: Vec<u8>,
    pub leaf_hash: Vec<u8>,
    pub appended_at: DateTime<Utc>,
}

pub async fn entries(conn: &mut PgConnection, start: i64, end: i64) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as("SELECT idx, body, leaf_hash, appended_at FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx")
        .bind(start)
        .bind(end)
        .fetch_all(conn)
        .await
}

/// Keeps a sealed entry's body and nonce beside its public commitment.
pub async fn seal(
    conn: &mut PgConnection,
    index: i64,
    repository_id: i64,
    nonce: &[u8],
    body: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO log_sealed (idx, repository_id, nonce, body) VALUES ($1, $2, $3, $4)")
        .bind(index)
        .bind(repository_id)
        .bind(nonce)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedRow {
    pub idx: i64,
    pub nonce: Vec<u8>,
    pub body: Vec<u8>,
    pub leaf_hash: Vec<u8>,
    pub appended_at: DateTime<Utc>,
}

/// A repository's sealed entries from `start`, oldest first.
pub async fn sealed_for(
    conn: &mut PgConnection,
    repository_id: i64,
    start: i64,
    limit: i64,
) -> sqlx::Result<Vec<SealedRow>> {
    sqlx::query_as(
        "SELECT s.idx, s.nonce, s.body, e.leaf_hash, e.appended_at
         FROM log_sealed s JOIN log_entries e ON e.idx = s.idx
         WHERE s.repository_id = $1 AND s.idx >= $2 ORDER BY s.idx LIMIT $3",
    )
    .bind(repository_id)
    .bind(start)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The log index of a commit's publish entry: the public one, or for a private repository its
/// sealed one.
pub async fn publish_entry(
    conn: &mut PgConnection,
    repository_id: i64,
    commit: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT min(idx) FROM (
             SELECT idx FROM log_entries
             WHERE convert_from(body, 'UTF8')::jsonb->>'kind' = 'publish'
               AND convert_from(body, 'UTF8')::jsonb->>'commit' = $2
             UNION ALL
             SELECT idx FROM log_sealed
             WHERE repository_id = $1
               AND convert_from(body, 'UTF8')::jsonb->>'kind' = 'publish'
               AND convert_from(body, 'UTF8')::jsonb->>'commit' = $2) e",
    )
    .bind(repository_id)
    .bind(commit)
    .fetch_one(conn)
    .await
}
