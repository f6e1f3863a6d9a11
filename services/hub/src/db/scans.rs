//! Scan results per (blob, scanner version), the current verdict on the blob, releases, and the
//! scan jobs that produce them.

use crate::db::types::ScanVerdict;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Job kind of a blob scan; payload `{"sha256": hex, "path": hint}`.
pub const SCAN_BLOB: &str = crate::domain::task::Task::SCAN_BLOB;
/// Priority of scans of new uploads, and of background rescans (higher runs later).
pub const PRIORITY_NEW: i32 = 0;
pub const PRIORITY_RESCAN: i32 = 10;

/// Records a finished scan and makes it the blob's current verdict.
pub async fn record(
    conn: &mut PgConnection,
    sha256: &[u8],
    version: &str,
    verdict: &str,
    format: &str,
    findings: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO blob_scans (sha256, scanner_version, verdict, format, findings) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sha256, scanner_version) DO UPDATE
         SET verdict = EXCLUDED.verdict, format = EXCLUDED.format, findings = EXCLUDED.findings, scanned_at = now()",
    )
    .bind(sha256)
    .bind(version)
    .bind(verdict)
    .bind(format)
    .bind(findings)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE blobs SET scan_verdict = $2, scan_version = $3 WHERE sha256 = $1")
        .bind(sha256)
        .bind(verdict)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

/// What downloads and listings need to know about a blob's scan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScanState {
    pub verdict: Option<ScanVerdict>,
    pub format: Option<String>,
    pub findings: Option<serde_json::Value>,
    pub scanned_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub release_reason: Option<String>,
    /// Set while a reviewer holds the blob pending review of a report.
    pub held_reason: Option<String>,
}

impl ScanState {
    /// Malicious and not released by an admin, or held by a reviewer: its bytes are not served.
    pub fn quarantined(&self) -> bool {
        crate::domain::scan::quarantined(
            self.verdict,
            self.released_at.is_some(),
            self.held_reason.is_some(),
        )
    }
}

pub async fn state(conn: &mut PgConnection, sha256: &[u8]) -> sqlx::Result<Option<ScanState>> {
    sqlx::query_as(
        "SELECT b.scan_verdict AS verdict, s.format, s.findings, s.scanned_at, b.released_at, b.release_reason, b.held_reason
         FROM blobs b LEFT JOIN blob_scans s ON s.sha256 = b.sha256 AND s.scanner_version = b.scan_version
         WHERE b.sha256 = $1",
    )
    .bind(sha256)
    .fetch_optional(conn)
    .await
}

/// Queues scans of the blobs of a commit that lack a result of `version`, in the caller's
/// transaction. A blob already waiting for a scan is not queued twice.
pub async fn enqueue_for_commit(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    version: &str,
    request_id: Option<&str>,
) -> sqlx::Result<u64> {
    enqueue(
        conn,
        Some((repository_id, commit_id)),
        version,
        false,
        PRIORITY_NEW,
        request_id,
    )
    .await
}

/// Queues background rescans: of every referenced blob (`force`), or of those whose current
/// result is not of `version`. Returns how many were queued.
pub async fn enqueue_rescans(
    conn: &mut PgConnection,
    version: &str,
    force: bool,
) -> sqlx::Result<u64> {
    enqueue(conn, None, version, force, PRIORITY_RESCAN, None).await
}

/// One `scan-blob` job per referenced blob (of one commit, or of the whole hub) that needs a
/// scan, with one of its paths as the format hint.
async fn enqueue(
    conn: &mut PgConnection,
    commit: Option<(i64, &str)>,
    version: &str,
    force: bool,
    priority: i32,
    request_id: Option<&str>,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, payload, priority, request_id)
         SELECT $5, jsonb_build_object('sha256', encode(f.sha256, 'hex'), 'path', min(f.path)), $6, $7
         FROM commit_files f JOIN blobs b ON b.sha256 = f.sha256
         WHERE ($1::bigint IS NULL OR (f.repository_id = $1 AND f.commit_id = $2))
           AND ($4 OR b.scan_version IS DISTINCT FROM $3)
         GROUP BY f.sha256
         ON CONFLICT ((payload ->> 'sha256')) WHERE kind = 'scan-blob' AND state IN ('queued', 'running') DO NOTHING",
    )
    .bind(commit.map(|c| c.0))
    .bind(commit.map(|c| c.1))
    .bind(version)
    .bind(force)
    .bind(SCAN_BLOB)
    .bind(priority)
    .bind(request_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        super::jobs::notify(conn, SCAN_BLOB).await?;
    }
    Ok(done.rows_affected())
}

/// Releases a quarantined blob; false when the blob does not exist.
pub async fn release(
    conn: &mut PgConnection,
    sha256: &[u8],
    by: i64,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE blobs SET released_at = now(), released_by = $2, release_reason = $3 WHERE sha256 = $1")
        .bind(sha256)
        .bind(by)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Per-file scan status of a commit.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileScan {
    pub path: String,
    pub sha256: kaiyuan_storage::Sha256Digest,
    pub size: i64,
    pub verdict: Option<ScanVerdict>,
    pub released: bool,
    pub held: bool,
    pub findings: Option<serde_json::Value>,
}

pub async fn files_of_commit(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Vec<FileScan>> {
    sqlx::query_as(
        "SELECT f.path, f.sha256, f.size, b.scan_verdict AS verdict, b.released_at IS NOT NULL AS released, b.held_reason IS NOT NULL AS held, s.findings
         FROM commit_files f JOIN blobs b ON b.sha256 = f.sha256
         LEFT JOIN blob_scans s ON s.sha256 = b.sha256 AND s.scanner_version = b.scan_version
         WHERE f.repository_id = $1 AND f.commit_id = $2 ORDER BY f.path COLLATE \"C\"",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_all(conn)
    .await
}

/// How many files of a commit have each scan verdict (`None`: not scanned yet).
pub async fn verdict_counts(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Vec<(Option<ScanVerdict>, i64)>> {
    sqlx::query_as(
        "SELECT b.scan_verdict, count(*) FROM commit_files f JOIN blobs b ON b.sha256 = f.sha256
         WHERE f.repository_id = $1 AND f.commit_id = $2 GROUP BY b.scan_verdict",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_all(conn)
    .await
}

/// Holds a blob pending review (`Some(reason)`) or lifts the hold (`None`).
pub async fn set_hold(
    conn: &mut PgConnection,
    sha256: &[u8],
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE blobs SET held_at = CASE WHEN $2::TEXT IS NULL THEN NULL ELSE now() END, held_reason = $2 WHERE sha256 = $1")
        .bind(sha256)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A file of a commit as the model page shows it: its scan, findings and quarantine facts.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct FileView {
    pub path: String,
    pub size: i64,
    pub sha256: String,
    pub verdict: Option<ScanVerdict>,
    pub format: Option<String>,
    pub findings: Option<serde_json::Value>,
    pub released: bool,
    pub held_reason: Option<String>,
}

const FILE_VIEW: &str = "SELECT cf.path, cf.size, encode(cf.sha256, 'hex') AS sha256, b.scan_verdict AS verdict, s.format,
        s.findings, (b.released_at IS NOT NULL) AS released, b.held_reason
 FROM commit_files cf JOIN blobs b ON b.sha256 = cf.sha256
 LEFT JOIN blob_scans s ON s.sha256 = b.sha256 AND s.scanner_version = b.scan_version";

/// A page of a commit's files with their scan state, in path order after `after` (the path
/// index serves it: a model page costs the same with ten files or a hundred thousand).
pub async fn files_for_page(
    conn: &mut PgConnection,
    repository_id: i64,
    commit: &str,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<FileView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{FILE_VIEW} WHERE cf.repository_id = $1 AND cf.commit_id = $2 AND cf.path COLLATE \"C\" > $3
         ORDER BY cf.path COLLATE \"C\" LIMIT $4"
    )))
    .bind(repository_id)
    .bind(commit)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The commit's files that are not plainly clean: not scanned yet, flagged, held or released
/// (at most `limit`), found from the few such blobs (`blobs_not_clean`), not from every file.
pub async fn unclean_files(
    conn: &mut PgConnection,
    repository_id: i64,
    commit: &str,
    limit: i64,
) -> sqlx::Result<Vec<FileView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{FILE_VIEW} WHERE cf.repository_id = $1 AND cf.commit_id = $2
           AND (b.scan_verdict IS NULL OR b.scan_verdict <> 'clean' OR b.held_reason IS NOT NULL)
         ORDER BY cf.path COLLATE \"C\" LIMIT $3"
    )))
    .bind(repository_id)
    .bind(commit)
    .bind(limit)
    .fetch_all(conn)
    .await
}
