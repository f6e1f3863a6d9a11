//! Xet records: stored xorbs with their chunk tables, the global-dedupe chunk index, and files
//! registered by shard uploads (their reconstruction terms).

use std::collections::HashMap;

use sqlx::PgConnection;

/// What the hub computed about a stored xorb.
#[derive(sqlx::FromRow)]
pub struct XorbRow {
    pub hash: Vec<u8>,
    pub stored_size: i64,
    pub chunk_table: Vec<u8>,
}

/// Records a stored xorb (or refreshes `last_seen_at`); true when the row is new.
pub async fn upsert_xorb(
    conn: &mut PgConnection,
    hash: &[u8],
    stored_size: i64,
    unpacked_size: i64,
    chunk_count: i32,
    chunk_table: &[u8],
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "INSERT INTO xet_xorbs (hash, stored_size, unpacked_size, chunk_count, chunk_table)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (hash) DO UPDATE SET last_seen_at = now()
         RETURNING xmax = 0",
    )
    .bind(hash)
    .bind(stored_size)
    .bind(unpacked_size)
    .bind(chunk_count)
    .bind(chunk_table)
    .fetch_one(conn)
    .await
}

/// Adds chunks of a xorb to the global-dedupe index.
pub async fn index_chunks(
    conn: &mut PgConnection,
    xorb: &[u8],
    chunk_hashes: &[Vec<u8>],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO xet_chunks (chunk_hash, xorb_hash)
         SELECT c, $1 FROM unnest($2::bytea[]) AS c
         ON CONFLICT DO NOTHING",
    )
    .bind(xorb)
    .bind(chunk_hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored xorbs among `hashes`, share-locked so that the collector cannot remove one while
/// a file that needs it is being registered.
pub async fn xorbs(conn: &mut PgConnection, hashes: &[Vec<u8>]) -> sqlx::Result<Vec<XorbRow>> {
    sqlx::query_as(
        "SELECT hash, stored_size, chunk_table FROM xet_xorbs WHERE hash = ANY($1) FOR SHARE",
    )
    .bind(hashes)
    .fetch_all(conn)
    .await
}

/// A registered file.
#[derive(sqlx::FromRow)]
pub struct FileRow {
    pub file_hash: Vec<u8>,
    pub sha256: kaiyuan_storage::Sha256Digest,
    pub size: i64,
    pub terms: Vec<u8>,
}

/// Registers a file the hub rebuilt and checked; true when it is new.
pub async fn insert_file(
    conn: &mut PgConnection,
    file: &FileRow,
    xorbs: &[Vec<u8>],
) -> sqlx::Result<bool> {
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO xet_files (file_hash, sha256, size, terms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (file_hash) DO NOTHING RETURNING true",
    )
    .bind(&file.file_hash)
    .bind(file.sha256)
    .bind(file.size)
    .bind(&file.terms)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO xet_file_xorbs (file_hash, xorb_hash)
         SELECT $1, x FROM unnest($2::bytea[]) AS x ON CONFLICT DO NOTHING",
    )
    .bind(&file.file_hash)
    .bind(xorbs)
    .execute(conn)
    .await?;
    Ok(inserted.is_some())
}

/// The file with this Xet hash.
pub async fn file(conn: &mut PgConnection, file_hash: &[u8]) -> sqlx::Result<Option<FileRow>> {
    sqlx::query_as("SELECT file_hash, sha256, size, terms FROM xet_files WHERE file_hash = $1")
        .bind(file_hash)
        .fetch_optional(conn)
        .await
}

/// A file stored as a reconstruction whose bytes have this sha256 (the oldest, if several
/// chunkings of the same bytes exist).
pub async fn file_by_sha256(
    conn: &mut PgConnection,
    sha256: &[u8],
) -> sqlx::Result<Option<FileRow>> {
    sqlx::query_as(
        "SELECT file_hash, sha256, size, terms FROM xet_files WHERE sha256 = $1
         ORDER BY created_at, file_hash LIMIT 1",
    )
    .bind(sha256)
    .fetch_optional(conn)
    .await
}

/// The Xet hash of each of `sha256s` that is stored as a reconstruction the CAS serves.
pub async fn servable_file_hashes(
    conn: &mut PgConnection,
    sha256s: &[Vec<u8>],
) -> sqlx::Result<HashMap<Vec<u8>, Vec<u8>>> {
    // Quarantined or held bytes have none to offer: the CAS refuses them.
    let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (x.sha256) x.sha256, x.file_hash FROM xet_files x
         WHERE x.sha256 = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = x.sha256 AND {})
         ORDER BY x.sha256, x.created_at, x.file_hash",
        crate::domain::scan::QUARANTINED_SQL
    )))
    .bind(sha256s)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Whether the repository may read these bytes: its history holds them, or they were uploaded
/// to it.
pub async fn repository_holds(
    conn: &mut PgConnection,
    repository_id: i64,
    sha256: &[u8],
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM commit_files WHERE repository_id = $1 AND sha256 = $2)
             OR EXISTS (SELECT 1 FROM repository_uploads WHERE repository_id = $1 AND sha256 = $2)",
    )
    .bind(repository_id)
    .bind(sha256)
    .fetch_one(conn)
    .await
}

/// The xorbs a client may deduplicate against after a hit on `chunk_hash` (at most `limit`):
/// the xorbs holding the chunk and the other xorbs of the files that need them, the hit's own
/// first. Only files readable by the repository, or in a public ungated repository, count, so
/// content that exists only in other private repositories is never named.
pub async fn dedupe_xorbs(
    conn: &mut PgConnection,
    repository_id: i64,
    chunk_hash: &[u8],
    limit: i64,
) -> sqlx::Result<Vec<XorbRow>> {
    sqlx::query_as(
        "WITH hit AS (
             SELECT xorb_hash FROM xet_chunks WHERE chunk_hash = $2
         ), files AS (
             SELECT DISTINCT f.file_hash FROM xet_file_xorbs fx
             JOIN xet_files f ON f.file_hash = fx.file_hash
             WHERE fx.xorb_hash IN (SELECT xorb_hash FROM hit)
               AND (EXISTS (SELECT 1 FROM commit_files cf
                            WHERE cf.sha256 = f.sha256 AND cf.repository_id = $1)
                    OR EXISTS (SELECT 1 FROM repository_uploads u
                               WHERE u.sha256 = f.sha256 AND u.repository_id = $1)
                    OR EXISTS (SELECT 1 FROM commit_files cf
                               JOIN repositories r ON r.id = cf.repository_id
                               WHERE cf.sha256 = f.sha256 AND r.visibility = 'public'
                                 AND r.gated = 'none' AND r.deleted_at IS NULL))
             LIMIT 16
         )
         SELECT x.hash, x.stored_size, x.chunk_table FROM xet_xorbs x
         WHERE x.hash IN (SELECT fx.xorb_hash FROM xet_file_xorbs fx
                          WHERE fx.file_hash IN (SELECT file_hash FROM files))
         ORDER BY x.hash IN (SELECT xorb_hash FROM hit) DESC, x.created_at, x.hash
         LIMIT $3",
    )
    .bind(repository_id)
    .bind(chunk_hash)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Deletes up to `batch` xorb rows that no file needs and no upload touched within
/// `grace_secs`; returns their hashes (whose objects the caller then deletes).
pub async fn collect_xorbs(
    conn: &mut PgConnection,
    grace_secs: u64,
    batch: i64,
) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar(
        "WITH doomed AS (
             SELECT x.hash FROM xet_xorbs x
             WHERE x.last_seen_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM xet_file_xorbs fx WHERE fx.xorb_hash = x.hash)
             ORDER BY x.hash LIMIT $2
             FOR UPDATE OF x SKIP LOCKED
         )
         DELETE FROM xet_xorbs d USING doomed WHERE d.hash = doomed.hash RETURNING d.hash",
    )
    .bind(grace_secs as f64)
    .bind(batch)
    .fetch_all(conn)
    .await
}

/// Whether the repository exists and is not deleted.
pub async fn repository_live(conn: &mut PgConnection, repository_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM repositories WHERE id = $1 AND deleted_at IS NULL)",
    )
    .bind(repository_id)
    .fetch_one(conn)
    .await
}
