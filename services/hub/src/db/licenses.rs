//! Licence policies per namespace and stored licence evaluations per commit.

use crate::db::types::LicenseDecision;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

pub const LICENSE_EVALUATE: &str = crate::domain::task::Task::LICENSE_EVALUATE;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub document: serde_json::Value,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

pub async fn policy(conn: &mut PgConnection, namespace_id: i64) -> sqlx::Result<Option<PolicyRow>> {
    sqlx::query_as(
        "SELECT document, version, updated_at FROM license_policies WHERE namespace_id = $1",
    )
    .bind(namespace_id)
    .fetch_optional(conn)
    .await
}

/// Stores a namespace's policy; returns its new version.
pub async fn set_policy(
    conn: &mut PgConnection,
    namespace_id: i64,
    document: &serde_json::Value,
    by: i64,
) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO license_policies (namespace_id, document, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (namespace_id) DO UPDATE
         SET document = $2, updated_by = $3, updated_at = now(), version = license_policies.version + 1
         RETURNING version",
    )
    .bind(namespace_id)
    .bind(document)
    .bind(by)
    .fetch_one(conn)
    .await
}

pub async fn delete_policy(conn: &mut PgConnection, namespace_id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM license_policies WHERE namespace_id = $1")
        .bind(namespace_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvaluationRow {
    pub commit_id: crate::commit_id::CommitId,
    pub catalog_version: String,
    pub policy_version: i32,
    pub decision: LicenseDecision,
    pub effective: Option<String>,
    pub report: serde_json::Value,
    pub evaluated_at: DateTime<Utc>,
}

pub async fn evaluation(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Option<EvaluationRow>> {
    sqlx::query_as(
        "SELECT commit_id, catalog_version, policy_version, decision, effective, report, evaluated_at
         FROM license_evaluations WHERE repository_id = $1 AND commit_id = $2",
    )
    .bind(repository_id)
    .bind(commit_id)
    .fetch_optional(conn)
    .await
}

#[allow(clippy::too_many_arguments)]
pub async fn store_evaluation(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    catalog_version: &str,
    policy_version: i32,
    decision: &str,
    effective: Option<&str>,
    report: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO license_evaluations
             (repository_id, commit_id, catalog_version, policy_version, decision, effective, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (repository_id, commit_id) DO UPDATE
         SET catalog_version = $3, policy_version = $4, decision = $5, effective = $6,
             report = $7, evaluated_at = now()",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(catalog_version)
    .bind(policy_version)
    .bind(decision)
    .bind(effective)
    .bind(report)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues an evaluation of the head of `main` of every live repository in a namespace (or
/// of every namespace), e.g. after its policy or the catalog changed. Returns how many.
pub async fn enqueue_heads(
    conn: &mut PgConnection,
    namespace_id: Option<i64>,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, payload)
         SELECT $1, jsonb_build_object('repository_id', r.id, 'commit_id', f.commit_id)
         FROM repositories r JOIN refs f ON f.repository_id = r.id AND f.name = 'main'
         WHERE r.deleted_at IS NULL AND ($2::BIGINT IS NULL OR r.namespace_id = $2)",
    )
    .bind(LICENSE_EVALUATE)
    .bind(namespace_id)
    .execute(&mut *conn)
    .await?;
    crate::db::jobs::notify(conn, LICENSE_EVALUATE).await?;
    Ok(done.rows_affected())
}

/// Queues evaluations of heads whose stored result used another catalog version.
pub async fn enqueue_stale(conn: &mut PgConnection, catalog_version: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, payload)
         SELECT $1, jsonb_build_object('repository_id', e.repository_id, 'commit_id', e.commit_id)
         FROM license_evaluations e
         JOIN refs f ON f.repository_id = e.repository_id AND f.name = 'main' AND f.commit_id = e.commit_id
         WHERE e.catalog_version <> $2",
    )
    .bind(LICENSE_EVALUATE)
    .bind(catalog_version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        crate::db::jobs::notify(conn, LICENSE_EVALUATE).await?;
    }
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct HeadDecision {
    pub repository: String,
    pub commit_id: Option<String>,
    pub decision: Option<LicenseDecision>,
    pub effective: Option<String>,
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// A page of a namespace's licence report: which repositories, where it resumes, which decision.
#[derive(Debug, Clone, Default)]
pub struct ReportPage<'a> {
    pub namespace_id: i64,
    /// Only repositories named after this one (the previous page's last).
    pub after: Option<&'a str>,
    /// Only this decision (`pending`: no stored evaluation).
    pub decision: Option<&'a str>,
    pub limit: i64,
}

fn namespace_report_sql(explain: bool, page: &ReportPage<'_>) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    sql.push(
        "SELECT n.name || '/' || r.name AS repository, f.commit_id, e.decision, e.effective, e.evaluated_at
         FROM repositories r
         JOIN namespaces n ON n.id = r.namespace_id
         LEFT JOIN refs f ON f.repository_id = r.id AND f.name = 'main'
         LEFT JOIN license_evaluations e ON e.repository_id = r.id AND e.commit_id = f.commit_id
         WHERE r.namespace_id = ",
    )
    .push_bind(page.namespace_id)
    .push(" AND r.deleted_at IS NULL");
    if let Some(after) = page.after {
        sql.push(" AND r.name > ").push_bind(after.to_string());
    }
    // The head's decision as kept on the repository row (migration 0030): the filter walks
    // `repositories_namespace_head_decision`, which holds only the matching repositories. (Not
    // rechecked against the joined evaluation: the planner would then expect a few rows and
    // hash every repository of the organisation; the triggers keep the two equal, tested.)
    match page.decision {
        Some("pending") => {
            sql.push(" AND r.head_decision IS NULL");
        }
        Some(decision) => {
            sql.push(" AND r.head_decision = ")
                .push_bind(decision.to_string());
        }
        None => {}
    }
    sql.push(" ORDER BY r.name LIMIT ").push_bind(page.limit);
    sql
}

/// The stored decision for the head of `main` of a namespace's live repositories, by name: a
/// keyset page walked along the namespace's name index (with a decision: along the index of
/// that decision's repositories), two primary-key probes per repository.
pub async fn namespace_report(
    conn: &mut PgConnection,
    page: &ReportPage<'_>,
) -> sqlx::Result<Vec<HeadDecision>> {
    namespace_report_sql(false, page)
        .build_query_as()
        .fetch_all(conn)
        .await
}

/// PostgreSQL's plan (`EXPLAIN`) for a page of [`namespace_report`].
pub async fn explain_namespace_report(
    conn: &mut PgConnection,
    page: &ReportPage<'_>,
) -> sqlx::Result<String> {
    let rows: Vec<(String,)> = namespace_report_sql(true, page)
        .build_query_as()
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(line,)| line + "\n").collect())
}

pub async fn accepted(
    conn: &mut PgConnection,
    repository_id: i64,
    user_id: i64,
    license_id: &str,
    version: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM license_acceptances
         WHERE repository_id = $1 AND user_id = $2 AND license_id = $3 AND license_version = $4)",
    )
    .bind(repository_id)
    .bind(user_id)
    .bind(license_id)
    .bind(version)
    .fetch_one(conn)
    .await
}

/// Records an acceptance; returns when it was (first) accepted.
pub async fn accept(
    conn: &mut PgConnection,
    repository_id: i64,
    user_id: i64,
    license_id: &str,
    version: &str,
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "INSERT INTO license_acceptances (repository_id, user_id, license_id, license_version)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository_id, user_id, license_id, license_version)
         DO UPDATE SET license_id = EXCLUDED.license_id
         RETURNING accepted_at",
    )
    .bind(repository_id)
    .bind(user_id)
    .bind(license_id)
    .bind(version)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AcceptanceRow {
    pub user: String,
    pub license_id: String,
    pub license_version: String,
    pub accepted_at: DateTime<Utc>,
}

pub async fn acceptances(
    conn: &mut PgConnection,
    repository_id: i64,
) -> sqlx::Result<Vec<AcceptanceRow>> {
    sqlx::query_as(
        "SELECT n.name AS user, a.license_id, a.license_version, a.accepted_at
         FROM license_acceptances a JOIN namespaces n ON n.id = a.user_id
         WHERE a.repository_id = $1 ORDER BY a.accepted_at, n.name",
    )
    .bind(repository_id)
    .fetch_all(conn)
    .await
}
