//! Commits, their file snapshots and the refs (branches and tags) that point at them.

use super::types::RefKind;
use crate::commit_id::CommitId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommitRow {
    pub id: CommitId,
    pub parent_id: Option<CommitId>,
    pub author_name: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub file_count: i32,
    pub total_size: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub path: String,
    pub sha256: kaiyuan_storage::Sha256Digest,
    pub size: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefRow {
    pub name: String,
    pub kind: RefKind,
    pub commit_id: CommitId,
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

/// The candidate rows for a commit's licence facts (card, licence texts, notices), exactly the
/// predicate of the partial index `commit_files_licence_facts` (migration 0029): a superset of
/// `kaiyuan_license::folder`'s rules, which the caller applies.
const LICENCE_FACT_PATHS: &str = r#"path !~ '/.*/' AND (path ~ '(^|/)([Ll][Ii][Cc][Ee][Nn][CcSs][Ee]|[Cc][Oo][Pp][Yy][Ii][Nn][Gg]|[Uu][Ss][Ee][_-][Pp][Oo][Ll][Ii][Cc][Yy]|[Nn][Oo][Tt][Ii][Cc][Ee]|[Rr][Ee][Aa][Dd][Mm][Ee]\.[Mm][Dd])[^/]*$' OR path ~ '^[Ll][Ii][Cc][Ee][Nn][CcSs][Ee][Ss]/' OR path ~ '[^\x01-\x7f]')"#;

/// GGUF files, exactly the predicate of the partial index `commit_files_gguf` (migration 0029).
const GGUF_PATHS: &str = r#"path ~ '\.[Gg][Gg][Uu][Ff]$'"#;

/// Which candidate files of a commit to read for its licence facts.
#[derive(Debug, Clone, Copy)]
pub enum FactFiles {
    /// Card, licence and notice candidates, all of them (a handful in any real model).
    Licences,
    /// The first GGUF files in path order, up to the limit.
    Gguf(i64),
}

fn fact_files_sql(
    explain: bool,
    which: FactFiles,
    repository_id: i64,
    commit_id: &str,
) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    sql.push("SELECT path, sha256, size FROM commit_files WHERE repository_id = ")
        .push_bind(repository_id)
        .push(" AND commit_id = ")
        .push_bind(commit_id.to_string())
        .push(" AND ")
        .push(match which {
            FactFiles::Licences => LICENCE_FACT_PATHS,
            FactFiles::Gguf(_) => GGUF_PATHS,
        })
        .push(" ORDER BY path COLLATE \"C\"");
    if let FactFiles::Gguf(limit) = which {
        sql.push(" LIMIT ").push_bind(limit);
    }
    sql
}

/// The files of a commit that may carry licence facts, in path order, read through their
/// partial index whatever the commit's size.
pub async fn fact_files(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    which: FactFiles,
) -> sqlx::Result<Vec<FileRow>> {
    fact_files_sql(false, which, repository_id, commit_id)
        .build_query_as()
        .fetch_all(conn)
        .await
}

/// PostgreSQL's plan (`EXPLAIN`) for [`fact_files`].
pub async fn explain_fact_files(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    which: FactFiles,
) -> sqlx::Result<String> {
    let rows: Vec<(String,)> = fact_files_sql(true, which, repository_id, commit_id)
        .build_query_as()
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(line,)| line + "\n").collect())
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
    let digests: Vec<&[u8]> = commit.files.iter().map(|f| f.sha256.as_ref()).collect();
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

const HISTORY: &str = "WITH RECURSIVE chain AS (
         SELECT c.*, 1 AS depth FROM commits c WHERE c.repository_id = $1 AND c.id = $2
         UNION ALL
         SELECT c.*, chain.depth + 1 FROM commits c
         JOIN chain ON c.repository_id = chain.repository_id AND c.id = chain.parent_id
         WHERE chain.depth < $3
     )
     SELECT id, parent_id, author_name, message, created_at, file_count, total_size
     FROM chain ORDER BY depth";

/// Up to `limit` commits from `start` following parents: newest first (one primary-key probe
/// per commit, whatever the length of the history).
pub async fn history(
    conn: &mut PgConnection,
    repository_id: i64,
    start: &str,
    limit: i64,
) -> sqlx::Result<Vec<CommitRow>> {
    sqlx::query_as(HISTORY)
        .bind(repository_id)
        .bind(start)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Where a keyset page of a commit's files starts and ends, in byte order (`COLLATE "C"`, the
/// order every listing uses): paths under `prefix` (empty: all), from `from` (inclusive).
#[derive(Debug, Clone)]
pub struct FileRange<'a> {
    pub repository_id: i64,
    pub commit_id: &'a str,
    /// A folder with its trailing `/`, or empty.
    pub prefix: &'a str,
    /// The first path the page may hold (see [`resume_bound`]); the prefix when none.
    pub from: String,
}

impl<'a> FileRange<'a> {
    /// The range of `prefix`, resumed after `cursor` (the last path or `folder/` of a page).
    pub fn new(
        repository_id: i64,
        commit_id: &'a str,
        prefix: &'a str,
        cursor: Option<&str>,
    ) -> Self {
        let from = match cursor {
            Some(c) if c > prefix => resume_bound(c),
            _ => prefix.to_string(),
        };
        Self {
            repository_id,
            commit_id,
            prefix,
            from,
        }
    }
}

/// The least path after `cursor`: after a file `a/b` that is `a/b\u{1}` (no path holds NUL);
/// after a folder `a/` (which stands for every path under it) it is `a0`, `0` being the byte
/// after `/`.
pub fn resume_bound(cursor: &str) -> String {
    match cursor.strip_suffix('/') {
        Some(folder) => format!("{folder}0"),
        None => format!("{cursor}\u{1}"),
    }
}

/// The first path after every path under `prefix` (`a/` gives `a0`); none for the root.
fn prefix_end(prefix: &str) -> Option<String> {
    prefix.strip_suffix('/').map(|p| format!("{p}0"))
}

fn push_range(sql: &mut QueryBuilder<Postgres>, f: &str, range: &FileRange<'_>, from: bool) {
    sql.push(format!(" {f}.repository_id = "))
        .push_bind(range.repository_id)
        .push(format!(" AND {f}.commit_id = "))
        .push_bind(range.commit_id.to_string());
    if from {
        sql.push(format!(" AND {f}.path COLLATE \"C\" >= "))
            .push_bind(range.from.clone());
    }
    if let Some(end) = prefix_end(range.prefix) {
        sql.push(format!(" AND {f}.path COLLATE \"C\" < "))
            .push_bind(end);
    }
}

fn files_page_sql(explain: bool, range: &FileRange<'_>, limit: i64) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    sql.push("SELECT f.path, f.sha256, f.size FROM commit_files f WHERE");
    push_range(&mut sql, "f", range, true);
    sql.push(" ORDER BY f.path COLLATE \"C\" LIMIT ")
        .push_bind(limit);
    sql
}

/// Up to `limit` files of a commit in `range`, in path order: one walk of the path index.
pub async fn files_page(
    conn: &mut PgConnection,
    range: &FileRange<'_>,
    limit: i64,
) -> sqlx::Result<Vec<FileRow>> {
    files_page_sql(false, range, limit)
        .build_query_as()
        .fetch_all(conn)
        .await
}

fn file_scans_page_sql(explain: bool, range: &FileRange<'_>, limit: i64) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    sql.push(
        "SELECT f.path, f.sha256, f.size, b.scan_verdict AS verdict,
                b.released_at IS NOT NULL AS released, b.held_reason IS NOT NULL AS held, s.findings
         FROM (SELECT f.path, f.sha256, f.size FROM commit_files f WHERE",
    );
    push_range(&mut sql, "f", range, true);
    sql.push(" ORDER BY f.path COLLATE \"C\" LIMIT ")
        .push_bind(limit)
        .push(
            ") f JOIN blobs b ON b.sha256 = f.sha256
             LEFT JOIN blob_scans s ON s.sha256 = b.sha256 AND s.scanner_version = b.scan_version
             ORDER BY f.path COLLATE \"C\"",
        );
    sql
}

/// [`files_page`] with each file's scan facts (the native tree listing).
pub async fn file_scans_page(
    conn: &mut PgConnection,
    range: &FileRange<'_>,
    limit: i64,
) -> sqlx::Result<Vec<super::scans::FileScan>> {
    file_scans_page_sql(false, range, limit)
        .build_query_as()
        .fetch_all(conn)
        .await
}

fn children_page_sql(explain: bool, range: &FileRange<'_>, limit: i64) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    sql.push(
        "WITH RECURSIVE walk AS ((SELECT f.path, f.sha256, f.size, 1 AS n FROM commit_files f WHERE",
    );
    push_range(&mut sql, "f", range, true);
    sql.push(
        " ORDER BY f.path COLLATE \"C\" LIMIT 1)
         UNION ALL
         SELECT nx.path, nx.sha256, nx.size, walk.n + 1 FROM walk CROSS JOIN LATERAL (
             SELECT f.path, f.sha256, f.size FROM commit_files f WHERE",
    );
    push_range(&mut sql, "f", range, false);
    // After a file, the next path; after a folder's first file, the first path past the folder.
    sql.push(" AND f.path COLLATE \"C\" >= CASE WHEN strpos(substr(walk.path, length(")
        .push_bind(range.prefix.to_string())
        .push(") + 1), '/') > 0 THEN ")
        .push_bind(range.prefix.to_string())
        .push(" || split_part(substr(walk.path, length(")
        .push_bind(range.prefix.to_string())
        .push(
            ") + 1), '/', 1) || '0' ELSE walk.path || chr(1) END
             ORDER BY f.path COLLATE \"C\" LIMIT 1) nx
         WHERE walk.n < ",
        )
        .push_bind(limit)
        .push(") SELECT path, sha256, size FROM walk ORDER BY n");
    sql
}

/// The entries directly under `range.prefix`, at most `limit`, in path order: a file's own row,
/// or for a folder the first file under it. Each entry is one index probe, so a folder's size
/// costs nothing (a loose index scan).
pub async fn children_page(
    conn: &mut PgConnection,
    range: &FileRange<'_>,
    limit: i64,
) -> sqlx::Result<Vec<FileRow>> {
    children_page_sql(false, range, limit)
        .build_query_as()
        .fetch_all(conn)
        .await
}

/// The listings whose plans the tests check.
#[derive(Debug, Clone, Copy)]
pub enum Listing {
    Files,
    FileScans,
    Children,
}

/// PostgreSQL's plan (`EXPLAIN`) for a page of `listing`, for the tests that hold each listing
/// to its index.
pub async fn explain_listing(
    conn: &mut PgConnection,
    listing: Listing,
    range: &FileRange<'_>,
    limit: i64,
) -> sqlx::Result<String> {
    let mut sql = match listing {
        Listing::Files => files_page_sql(true, range, limit),
        Listing::FileScans => file_scans_page_sql(true, range, limit),
        Listing::Children => children_page_sql(true, range, limit),
    };
    let rows: Vec<(String,)> = sql.build_query_as().fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(line,)| line + "\n").collect())
}

/// PostgreSQL's plan for [`history`]: a walk along parents, one primary-key probe each.
pub async fn explain_history(
    conn: &mut PgConnection,
    repository_id: i64,
    start: &str,
    limit: i64,
) -> sqlx::Result<String> {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {HISTORY}")))
        .bind(repository_id)
        .bind(start)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(line,)| line + "\n").collect())
}
