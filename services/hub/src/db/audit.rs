//! The audit log: who changed what, when, from which request.

use sqlx::PgConnection;

pub async fn record(
    conn: &mut PgConnection,
    actor_id: Option<i64>,
    action: &str,
    target: &str,
    details: serde_json::Value,
    request_id: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (actor_id, action, target, details, request_id)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor_id)
    .bind(action)
    .bind(target)
    .bind(details)
    .bind(request_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
}

pub async fn list_for_target(
    conn: &mut PgConnection,
    target: &str,
) -> sqlx::Result<Vec<AuditEvent>> {
    sqlx::query_as(
        "SELECT a.id, a.at, n.name AS actor, a.action, a.target, a.details, a.request_id
         FROM audit_events a LEFT JOIN namespaces n ON n.id = a.actor_id
         WHERE a.target = $1 ORDER BY a.id",
    )
    .bind(target)
    .fetch_all(conn)
    .await
}
