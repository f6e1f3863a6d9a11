//! The transparency log's storage: append (serialised by an advisory lock held until the
//! caller's transaction ends), entries by index, the stored hashes of full subtrees
//! (`log_tree`, level 0 being the entries' leaf hashes) and the cached signed checkpoint.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kaiyuan_provenance::merkle::{Hash, Subtree};
use sqlx::PgConnection;

/// Arbitrary, fixed: the advisory lock that orders appends.
const APPEND_LOCK: i64 = 0x006b_6169_796c_6f67;

/// Appends a body and returns its index; call inside the transaction that makes the change it
/// records, then [`store_subtrees`] in the same transaction.
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

/// The number of entries (indices are contiguous from 0; read from the primary key's end).
pub async fn size(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(max(idx) + 1, 0) FROM log_entries")
        .fetch_one(conn)
        .await
}

/// The stored hashes of these full subtrees (level 0 from the entries' leaf hashes); a
/// subtree not stored is absent from the map.
pub async fn subtree_hashes(
    conn: &mut PgConnection,
    wanted: &[Subtree],
) -> sqlx::Result<HashMap<Subtree, Hash>> {
    let leaves: Vec<i64> = wanted
        .iter()
        .filter(|t| t.level == 0)
        .map(|t| t.index as i64)
        .collect();
    let (levels, indices): (Vec<i16>, Vec<i64>) = wanted
        .iter()
        .filter(|t| t.level > 0)
        .map(|t| (i16::from(t.level), t.index as i64))
        .unzip();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT 0::int2, idx, leaf_hash FROM log_entries WHERE idx = ANY($1)
         UNION ALL
         SELECT t.level, t.idx, t.hash
         FROM unnest($2::int2[], $3::int8[]) AS w (level, idx)
         JOIN log_tree t ON t.level = w.level AND t.idx = w.idx",
    )
    .bind(&leaves)
    .bind(&levels)
    .bind(&indices)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(level, index, hash)| {
            let hash: Hash = hash
                .as_slice()
                .try_into()
                .map_err(|_| sqlx::Error::Protocol("a stored log hash is not 32 bytes".into()))?;
            Ok((
                Subtree {
                    level: level as u8,
                    index: index as u64,
                },
                hash,
            ))
        })
        .collect()
}

/// Stores the hashes of subtrees an append completed (levels 1 and up).
pub async fn store_subtrees(conn: &mut PgConnection, done: &[(Subtree, Hash)]) -> sqlx::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let levels: Vec<i16> = done.iter().map(|(t, _)| i16::from(t.level)).collect();
    let indices: Vec<i64> = done.iter().map(|(t, _)| t.index as i64).collect();
    let hashes: Vec<Vec<u8>> = done.iter().map(|(_, h)| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO log_tree (level, idx, hash)
         SELECT * FROM unnest($1::int2[], $2::int8[], $3::bytea[])",
    )
    .bind(&levels)
    .bind(&indices)
    .bind(&hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// The log's size now and the cached signed checkpoint of that size, if one was signed.
pub async fn size_and_checkpoint(conn: &mut PgConnection) -> sqlx::Result<(i64, Option<String>)> {
    sqlx::query_as(
        "SELECT s.size, c.note
         FROM (SELECT COALESCE(max(idx) + 1, 0) AS size FROM log_entries) s
         LEFT JOIN log_checkpoint c ON c.tree_size = s.size",
    )
    .fetch_one(conn)
    .await
}

/// Caches a signed checkpoint unless one of a larger tree is cached already.
pub async fn cache_checkpoint(conn: &mut PgConnection, size: i64, note: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO log_checkpoint (one, tree_size, note) VALUES (true, $1, $2)
         ON CONFLICT (one) DO UPDATE SET tree_size = EXCLUDED.tree_size, note = EXCLUDED.note,
             signed_at = now()
         WHERE log_checkpoint.tree_size < EXCLUDED.tree_size",
    )
    .bind(size)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
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

/// The stored hashes at `height` of the subtrees `start..end` in order (height 0: the entries'
/// leaf hashes), for a C2SP tile.
pub async fn hashes_at(
    conn: &mut PgConnection,
    height: i16,
    start: i64,
    end: i64,
) -> sqlx::Result<Vec<Vec<u8>>> {
    if height == 0 {
        return sqlx::query_scalar(
            "SELECT leaf_hash FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(start)
        .bind(end)
        .fetch_all(conn)
        .await;
    }
    sqlx::query_scalar(
        "SELECT hash FROM log_tree WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
    )
    .bind(height)
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await
}

/// The bodies of entries `start..end` in order, for a C2SP entry bundle.
pub async fn bodies(conn: &mut PgConnection, start: i64, end: i64) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar("SELECT body FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx")
        .bind(start)
        .bind(end)
        .fetch_all(conn)
        .await
}
