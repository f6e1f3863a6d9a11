//! Commits, their file snapshots and the refs (branches and tags) that point at them.

use super::types::RefKind;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommitRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub author_name: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub file_count: i32,
    pub total_size: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub path: String,
    pub sha256: Vec<u8>,
    pub size: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefRow {
    pub name: String,
    pub kind: RefKind,
    pub commit_id: String,
    pub updated_at: DateTime<Utc>,
}

/// What a new commit is made of.
pub struct NewCommit<'a> {
    pub repository_id: i64,
    pub id: &'a str,
    pub parent_id: Option<&'a str>,
    pub author_id: i64,
    pub author_name: &'a str,
    pub message: &'a str,
    pub created_at: DateTime<Utc>,
    pub files: &'a [FileRow],
}

/// Resolves a branch, a tag or a full commit id to a commit id.
pub async fn resolve(
    conn: &mut PgConnection,
    repository_id: i64,
    revision: &str,
) -> sqlx::Result<Option<String>> {
    if crate::commit_id::is_commit_id(revision) {
        return sqlx::query_scalar("SELECT id FROM commits WHERE repository_id = $1 AND id = $2")
            .bind(repository_id)
            .bind(revision)
            .fetch_optional(conn)
            .await;
    }
    sqlx::query_scalar("SELECT commit_id FROM refs WHERE repository_id = $1 AND name = $2")
        .bind(repository_id)
        .bind(revision)
        .fetch_optional(conn)
        .await
}

/// The branch's head, row-locked until the transaction ends: commits to one branch serialise here.
pub async fn lock_branch(
    conn: &mut PgConnection,
    repository_id: i64,
    branch: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT commit_id FROM refs WHERE repository_id = $1 AND name = $2 AND kind = 'branch'
         FOR UPDATE",
    )
    .bind(repository_id)
    .bind(branch)
    .fetch_optional(conn)
    .await
}

pub async fn find_ref(
    conn: &mut PgConnection,
    repository_id: i64,
    name: &str,
) -> sqlx::Result<Option<RefRow>> {
    sqlx::query_as(
        "SELECT name, kind, commit_id, updated_at FROM refs
         WHERE repository_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(repository_id)
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn list_refs(conn: &mut PgConnection, repository_id: i64) -> sqlx::Result<Vec<RefRow>> {
    sqlx::query_as(
        "SELECT name, kind, commit_id, updated_at FROM refs WHERE repository_id = $1
         ORDER BY kind, name",
    )
    .bind(repository_id)
    .fetch_all(conn)
    .await
}

pub async fn set_ref(
    conn: &mut PgConnection,
    repository_id: i64,
    name: &str,
    kind: RefKind,
    commit_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refs (repository_id, name, kind, commit_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository_id, name)
         DO UPDATE SET commit_id = EXCLUDED.commit_id, updated_at = now()",
    )
    .bind(repository_id)
    .bind(name)
    .bind(kind)
    .bind(commit_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_ref(
    conn: &mut PgConnection,
    repository_id: i64,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM refs WHERE repository_id = $1 AND name = $2")
        .bind(repository_id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn files(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Vec<FileRow>> {
    sqlx::query_as(
        "SELECT path, sha256, size FROM commit_files
         WHERE repository_id = $1 AND commit_id = $2 ORDER BY path COLLATE \"C\"",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_all(conn)
    .await
}

pub async fn file(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    path: &str,
) -> sqlx::Result<Option<FileRow>> {
    sqlx::query_as(
        "SELECT path, sha256, size FROM commit_files
         WHERE repository_id = $1 AND commit_id = $2 AND path = $3",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(path)
    .fetch_optional(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection, commit: &NewCommit<'_>) -> sqlx::Result<()> {
    let total_size: i64 = commit.files.iter().map(|f| f.size).sum();
    sqlx::query(
        "INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message,
                              created_at, file_count, total_size)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(commit.repository_id)
    .bind(commit.id)
    .bind(commit.parent_id)
    .bind(commit.author_id)
    .bind(commit.author_name)
    .bind(commit.message)
    .bind(commit.created_at)
    .bind(commit.files.len() as i32)
    .bind(total_size)
    .execute(&mut *conn)
    .await?;
    let paths: Vec<&str> = commit.files.iter().map(|f| f.path.as_str()).collect();
    let digests: Vec<&[u8]> = commit.files.iter().map(|f| f.sha256.as_slice()).collect();
    let sizes: Vec<i64> = commit.files.iter().map(|f| f.size).collect();
    sqlx::query(
        "INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::bytea[], $5::bigint[])",
    )
    .bind(commit.repository_id)
    .bind(commit.id)
    .bind(paths)
    .bind(digests)
    .bind(sizes)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(
    conn: &mut PgConnection,
    repository_id: i64,
    id: &str,
) -> sqlx::Result<Option<CommitRow>> {
    sqlx::query_as(
        "SELECT id, parent_id, author_name, message, created_at, file_count, total_size
         FROM commits WHERE repository_id = $1 AND id = $2",
    )
    .bind(repository_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Up to `limit` commits from `start` following parents: newest first.
pub async fn history(
    conn: &mut PgConnection,
    repository_id: i64,
    start: &str,
    limit: i64,
) -> sqlx::Result<Vec<CommitRow>> {
    sqlx::query_as(
        "WITH RECURSIVE chain AS (
             SELECT c.*, 1 AS depth FROM commits c WHERE c.repository_id = $1 AND c.id = $2
             UNION ALL
             SELECT c.*, chain.depth + 1 FROM commits c
             JOIN chain ON c.repository_id = chain.repository_id AND c.id = chain.parent_id
             WHERE chain.depth < $3
         )
         SELECT id, parent_id, author_name, message, created_at, file_count, total_size
         FROM chain ORDER BY depth",
    )
    .bind(repository_id)
    .bind(start)
    .bind(limit)
    .fetch_all(conn)
    .await
}
