//! Security reports, reviewer roles, comments and advisories.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub use super::types::{ReportCategory, ReportStatus, Severity};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Report {
    pub id: i64,
    #[serde(skip)]
    pub repository_id: i64,
    pub repository: String,
    pub commit_id: Option<String>,
    pub path: Option<String>,
    #[serde(serialize_with = "hex_opt")]
    pub sha256: Option<kaiyuan_storage::Sha256Digest>,
    #[serde(skip)]
    pub reporter_id: i64,
    pub reporter: String,
    pub category: ReportCategory,
    pub description: String,
    pub evidence: String,
    pub status: ReportStatus,
    pub resolution: Option<String>,
    pub disclosure_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn hex_opt<S: serde::Serializer>(
    v: &Option<kaiyuan_storage::Sha256Digest>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

const REPORT_COLUMNS: &str = "r.id, r.repository_id, n.name || '/' || repo.name AS repository, r.commit_id, r.path, r.sha256,
    r.reporter_id, u.name AS reporter, r.category, r.description, r.evidence, r.status, r.resolution,
    r.disclosure_at, r.created_at, r.updated_at";
const REPORT_FROM: &str = "FROM reports r JOIN repositories repo ON repo.id = r.repository_id
    JOIN namespaces n ON n.id = repo.namespace_id JOIN namespaces u ON u.id = r.reporter_id";

pub struct NewReport<'a> {
    pub repository_id: i64,
    pub commit_id: Option<&'a str>,
    pub path: Option<&'a str>,
    pub sha256: Option<&'a [u8]>,
    pub reporter_id: i64,
    pub category: ReportCategory,
    pub description: &'a str,
    pub evidence: &'a str,
    pub disclosure_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, r: &NewReport<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO reports (repository_id, commit_id, path, sha256, reporter_id, category, description, evidence, disclosure_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(r.repository_id)
    .bind(r.commit_id)
    .bind(r.path)
    .bind(r.sha256)
    .bind(r.reporter_id)
    .bind(r.category)
    .bind(r.description)
    .bind(r.evidence)
    .bind(r.disclosure_at)
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Report>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} {REPORT_FROM} WHERE r.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn for_repository(
    conn: &mut PgConnection,
    repository_id: i64,
) -> sqlx::Result<Vec<Report>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} {REPORT_FROM} WHERE r.repository_id = $1 ORDER BY r.id"
    )))
    .bind(repository_id)
    .fetch_all(conn)
    .await
}

/// Open reports a reviewer may triage: every one for hub reviewers, their organisations'
/// for organisation reviewers.
pub async fn queue(
    conn: &mut PgConnection,
    user_id: i64,
    hub_reviewer: bool,
) -> sqlx::Result<Vec<Report>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} {REPORT_FROM}
         WHERE r.status IN ('open', 'needs-info', 'confirmed')
           AND ($2 OR repo.namespace_id IN (SELECT org_id FROM org_reviewers WHERE user_id = $1))
         ORDER BY r.id"
    )))
    .bind(user_id)
    .bind(hub_reviewer)
    .fetch_all(conn)
    .await
}

/// Open reports the user filed, and those on repositories of namespaces they own or
/// administer (whom `routes::reviews::visible` shows them to), newest first.
pub async fn reports_of(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Vec<Report>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} {REPORT_FROM}
         WHERE r.status IN ('open', 'needs-info', 'confirmed')
           AND (r.reporter_id = $1 OR repo.namespace_id = $1
                OR repo.namespace_id IN (SELECT org_id FROM memberships
                                         WHERE user_id = $1 AND role IN ('owner', 'admin')))
         ORDER BY r.id DESC"
    )))
    .bind(user_id)
    .fetch_all(conn)
    .await
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: i64,
    status: ReportStatus,
    resolution: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE reports SET status = $2, resolution = COALESCE($3, resolution), updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(resolution)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Comment {
    pub id: i64,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

pub async fn add_comment(
    conn: &mut PgConnection,
    report_id: i64,
    author_id: i64,
    body: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO report_comments (report_id, author_id, body) VALUES ($1, $2, $3)")
        .bind(report_id)
        .bind(author_id)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn comments(conn: &mut PgConnection, report_id: i64) -> sqlx::Result<Vec<Comment>> {
    sqlx::query_as(
        "SELECT c.id, n.name AS author, c.body, c.created_at FROM report_comments c JOIN namespaces n ON n.id = c.author_id
         WHERE c.report_id = $1 ORDER BY c.id",
    )
    .bind(report_id)
    .fetch_all(conn)
    .await
}

pub async fn is_hub_reviewer(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT is_reviewer FROM namespaces WHERE id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

pub async fn is_org_reviewer(
    conn: &mut PgConnection,
    org_id: i64,
    user_id: i64,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM org_reviewers WHERE org_id = $1 AND user_id = $2)",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

pub async fn set_hub_reviewer(conn: &mut PgConnection, user_id: i64, on: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE namespaces SET is_reviewer = $2 WHERE id = $1")
        .bind(user_id)
        .bind(on)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_org_reviewer(
    conn: &mut PgConnection,
    org_id: i64,
    user_id: i64,
    on: bool,
) -> sqlx::Result<()> {
    let sql = if on {
        "INSERT INTO org_reviewers (org_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM org_reviewers WHERE org_id = $1 AND user_id = $2"
    };
    sqlx::query(sql)
        .bind(org_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Advisory {
    pub id: String,
    #[serde(skip)]
    pub report_id: i64,
    pub severity: Severity,
    pub summary: String,
    pub details: String,
    pub remediation: String,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Affected {
    pub repository: String,
    pub commit_id: Option<String>,
    pub path: Option<String>,
    #[serde(serialize_with = "hex_vec")]
    pub sha256: kaiyuan_storage::Sha256Digest,
}

fn hex_vec<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

/// Allocates `KYSA-<year>-<nnnn>` under a lock so that ids never repeat or skip.
pub async fn create_advisory(
    conn: &mut PgConnection,
    report_id: i64,
    severity: Severity,
    summary: &str,
    details: &str,
    remediation: &str,
    by: i64,
) -> sqlx::Result<String> {
    sqlx::query("LOCK TABLE advisories IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let year = Utc::now().format("%Y").to_string();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM advisories WHERE id LIKE $1")
        .bind(format!("KYSA-{year}-%"))
        .fetch_one(&mut *conn)
        .await?;
    let id = format!("KYSA-{year}-{:04}", count + 1);
    sqlx::query(
        "INSERT INTO advisories (id, report_id, severity, summary, details, remediation, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(report_id)
    .bind(severity)
    .bind(summary)
    .bind(details)
    .bind(remediation)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn add_affected(
    conn: &mut PgConnection,
    advisory: &str,
    repository_id: i64,
    repository: &str,
    commit: Option<&str>,
    path: Option<&str>,
    sha256: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO advisory_affected (advisory_id, repository_id, repository, commit_id, path, sha256) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(advisory)
    .bind(repository_id)
    .bind(repository)
    .bind(commit)
    .bind(path)
    .bind(sha256)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn advisory(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Advisory>> {
    sqlx::query_as("SELECT id, report_id, severity, summary, details, remediation, created_at, modified_at, published_at FROM advisories WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The advisory drafted from a report, if any.
pub async fn advisory_of_report(
    conn: &mut PgConnection,
    report_id: i64,
) -> sqlx::Result<Option<Advisory>> {
    sqlx::query_as("SELECT id, report_id, severity, summary, details, remediation, created_at, modified_at, published_at FROM advisories WHERE report_id = $1 ORDER BY created_at LIMIT 1")
        .bind(report_id)
        .fetch_optional(conn)
        .await
}

pub async fn published(conn: &mut PgConnection) -> sqlx::Result<Vec<Advisory>> {
    sqlx::query_as(
        "SELECT id, report_id, severity, summary, details, remediation, created_at, modified_at, published_at FROM advisories
         WHERE published_at IS NOT NULL ORDER BY published_at DESC",
    )
    .fetch_all(conn)
    .await
}

pub async fn affected(conn: &mut PgConnection, advisory: &str) -> sqlx::Result<Vec<Affected>> {
    sqlx::query_as("SELECT repository, commit_id, path, sha256 FROM advisory_affected WHERE advisory_id = $1 ORDER BY repository, path")
        .bind(advisory)
        .fetch_all(conn)
        .await
}

pub async fn publish(conn: &mut PgConnection, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE advisories SET published_at = now(), modified_at = now() WHERE id = $1 AND published_at IS NULL")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Published advisories that name a blob, wherever it was reported: the same bytes in any
/// repository, uploaded before or after, are flagged.
pub async fn advisories_for_blob(
    conn: &mut PgConnection,
    sha256: &[u8],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT a.id FROM advisory_affected f JOIN advisories a ON a.id = f.advisory_id
         WHERE f.sha256 = $1 AND a.published_at IS NOT NULL ORDER BY a.id",
    )
    .bind(sha256)
    .fetch_all(conn)
    .await
}

/// Published advisories for the blobs of a commit, by path.
pub async fn advisories_for_commit(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT DISTINCT c.path, a.id FROM commit_files c
         JOIN advisory_affected f ON f.sha256 = c.sha256
         JOIN advisories a ON a.id = f.advisory_id AND a.published_at IS NOT NULL
         WHERE c.repository_id = $1 AND c.commit_id = $2 ORDER BY c.path, a.id",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttestationRow {
    pub id: i64,
    pub commit_id: crate::commit_id::CommitId,
    pub reviewer: String,
    pub scope: String,
    pub notes: String,
    pub bundle: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub async fn add_attestation(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    reviewer_id: i64,
    scope: &str,
    notes: &str,
    bundle: &[u8],
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO review_attestations (repository_id, commit_id, reviewer_id, scope, notes, bundle) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(reviewer_id)
    .bind(scope)
    .bind(notes)
    .bind(bundle)
    .fetch_one(conn)
    .await
}

/// The attestations of exactly this commit: a later revision needs its own.
pub async fn attestations(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Vec<AttestationRow>> {
    sqlx::query_as(
        "SELECT a.id, a.commit_id, n.name AS reviewer, a.scope, a.notes, a.bundle, a.created_at
         FROM review_attestations a JOIN namespaces n ON n.id = a.reviewer_id
         WHERE a.repository_id = $1 AND a.commit_id = $2 ORDER BY a.id",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Attachment {
    pub id: i64,
    pub name: String,
    #[serde(serialize_with = "hex_vec")]
    pub sha256: kaiyuan_storage::Sha256Digest,
    pub size: i64,
    pub scan_status: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn add_attachment(
    conn: &mut PgConnection,
    report_id: i64,
    name: &str,
    sha256: &[u8],
    size: i64,
    by: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO report_attachments (report_id, name, sha256, size, uploaded_by) VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(report_id)
        .bind(name)
        .bind(sha256)
        .bind(size)
        .bind(by)
        .fetch_one(conn)
        .await
}

pub async fn attachments(conn: &mut PgConnection, report_id: i64) -> sqlx::Result<Vec<Attachment>> {
    sqlx::query_as(
        "SELECT a.id, a.name, a.sha256, a.size, COALESCE(b.scan_verdict, 'pending') AS scan_status, a.created_at
         FROM report_attachments a LEFT JOIN blobs b ON b.sha256 = a.sha256 WHERE a.report_id = $1 ORDER BY a.id",
    )
    .bind(report_id)
    .fetch_all(conn)
    .await
}

/// Whether the repository already has a report on the blob whose evidence starts with `tag:`.
pub async fn has_report_tagged(
    conn: &mut PgConnection,
    repository_id: i64,
    sha256: &[u8],
    tag: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM reports WHERE repository_id = $1 AND sha256 = $2 AND evidence LIKE $3)",
    )
    .bind(repository_id)
    .bind(sha256)
    .bind(format!("{tag}:%"))
    .fetch_one(conn)
    .await
}

/// A published advisory on a file of a commit, as the model page lists it.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct AdvisoryAt {
    pub id: String,
    pub severity: Severity,
    pub summary: String,
    pub path: String,
}

pub async fn advisories_at(
    conn: &mut PgConnection,
    repository_id: i64,
    commit: &str,
) -> sqlx::Result<Vec<AdvisoryAt>> {
    sqlx::query_as(
        "SELECT DISTINCT a.id, a.severity, a.summary, cf.path
         FROM advisories a JOIN advisory_affected aa ON aa.advisory_id = a.id
         JOIN commit_files cf ON cf.sha256 = aa.sha256
         WHERE cf.repository_id = $1 AND cf.commit_id = $2 AND a.published_at IS NOT NULL
         ORDER BY a.id",
    )
    .bind(repository_id)
    .bind(commit)
    .fetch_all(conn)
    .await
}
